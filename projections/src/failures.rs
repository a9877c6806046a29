//! The resources whose provisioning failed — accounts, numbers and consents — in one list, for
//! `GET /provisioning/failures`: each with the backend's errors and when it failed, read from
//! the read tables (`sync_status = 'failed'`) and, for the time, the audit rows the projector
//! writes with them.
//!
//! Items are in key order: `<kind>/<id>` compared bytewise (`COLLATE "C"`), so accounts come
//! first, then consents, then numbers, and a page continues after the last key of the one
//! before it.

use chrono::{DateTime, Utc};
use domain::{ProvisioningError, SyncState};
use sqlx::{PgPool, Row};

use crate::filter::CONSENT_ACCOUNT_SQL;
use crate::query::{Listed, QueryError};

/// Which kind of resource failed; its wire name is the aggregate type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    Account,
    Consent,
    Number,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Account => "account",
            FailureKind::Consent => "consent",
            FailureKind::Number => "number",
        }
    }

    fn parse(text: &str) -> Option<FailureKind> {
        match text {
            "account" => Some(FailureKind::Account),
            "consent" => Some(FailureKind::Consent),
            "number" => Some(FailureKind::Number),
            _ => None,
        }
    }
}

/// One resource whose last change the backend refused.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub kind: FailureKind,
    /// The account name, the tenant id or the telephone number.
    pub id: String,
    /// The account it belongs to (a consent's: the account linked to its tenant, if any).
    pub account_name: Option<String>,
    pub errors: Vec<ProvisioningError>,
    /// When the backend's refusal was recorded.
    pub failed_at: DateTime<Utc>,
    /// The version of the change that failed.
    pub version: u64,
    /// Whether the change that failed is the resource's deletion (a release in the backend).
    pub deleting: bool,
}

/// Which slice of the failures to read.
#[derive(Debug, Clone, Default)]
pub struct FailureQuery {
    /// Only failures whose key (`<kind>/<id>`) follows this one.
    pub after: Option<String>,
    pub skip: u64,
    pub take: u64,
    /// Whether to count every failure, ignoring `after`, `skip` and `take`.
    pub count: bool,
}

/// The failures of every resource kind; `page_key` is each one's key.
fn failures_sql() -> String {
    format!(
        "WITH failures AS ( \
           SELECT 'account'::text AS kind, a.name AS id, a.name AS account_name, \
                  a.state -> 'sync' AS sync, a.state -> 'deleting' AS deleting, \
                  a.updated_at, 'AccountProvisioningFailed'::text AS failed_event \
             FROM read_accounts a WHERE NOT a.deleted AND a.sync_status = 'failed' \
           UNION ALL \
           SELECT 'consent'::text, c.tenant_id, {CONSENT_ACCOUNT_SQL}, \
                  c.state -> 'sync', 'false'::jsonb, \
                  c.updated_at, 'ConsentProvisioningFailed'::text \
             FROM read_consents c WHERE NOT c.deleted AND c.sync_status = 'failed' \
           UNION ALL \
           SELECT 'number'::text, n.telephone_number, n.account_name, \
                  n.state -> 'sync', n.state -> 'deleting', \
                  n.updated_at, 'NumberProvisioningFailed'::text \
             FROM read_numbers n WHERE NOT n.deleted AND n.sync_status = 'failed' \
         ), keyed AS ( \
           SELECT f.*, (f.kind || '/' || f.id) COLLATE \"C\" AS page_key FROM failures f \
         )"
    )
}

fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// One page of failures in key order, and their total when asked; both read one snapshot.
pub async fn failures(pool: &PgPool, query: &FailureQuery) -> Result<Listed<Failure>, QueryError> {
    let with = failures_sql();
    // One row more than asked tells whether another page follows.
    let page = format!(
        "{with} \
         SELECT k.kind, k.id, k.account_name, k.sync, k.deleting, k.page_key, \
                coalesce(l.occurred_at, k.updated_at) AS failed_at \
           FROM keyed k \
           LEFT JOIN LATERAL ( \
             SELECT a.occurred_at FROM audit_log a \
              WHERE a.aggregate_type = k.kind AND a.aggregate_id = k.id \
                AND a.event_type = k.failed_event \
              ORDER BY a.sequence DESC LIMIT 1) l ON true \
          WHERE $1::text IS NULL OR k.page_key > $1::text COLLATE \"C\" \
          ORDER BY k.page_key \
          LIMIT $2 OFFSET $3"
    );
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    sqlx::query("SET LOCAL statement_timeout = '15s'")
        .execute(&mut *tx)
        .await?;
    let mut rows = sqlx::query(&page)
        .bind(query.after.as_deref())
        .bind(clamp(query.take.saturating_add(1)))
        .bind(clamp(query.skip))
        .fetch_all(&mut *tx)
        .await?;
    let more = rows.len() as u64 > query.take;
    rows.truncate(usize::try_from(query.take).unwrap_or(usize::MAX));
    let last_key = rows
        .last()
        .map(|row| row.try_get::<String, _>("page_key"))
        .transpose()?;
    let total = if query.count {
        let total: i64 = sqlx::query_scalar(&format!("{with} SELECT count(*) FROM keyed"))
            .fetch_one(&mut *tx)
            .await?;
        Some(total.max(0) as u64)
    } else {
        None
    };
    tx.commit().await?;
    let items = rows
        .iter()
        .map(failure)
        .collect::<Result<Vec<_>, QueryError>>()?;
    Ok(Listed {
        items,
        more,
        total,
        last_key,
    })
}

fn corrupt(reason: impl Into<String>) -> QueryError {
    QueryError::Corrupt {
        what: "provisioning failure",
        reason: reason.into(),
    }
}

fn failure(row: &sqlx::postgres::PgRow) -> Result<Failure, QueryError> {
    let kind: String = row.try_get("kind")?;
    let kind = FailureKind::parse(&kind).ok_or_else(|| corrupt(format!("kind {kind}")))?;
    let sync: Option<serde_json::Value> = row.try_get("sync")?;
    let sync: SyncState = serde_json::from_value(sync.unwrap_or_default())
        .map_err(|error| corrupt(error.to_string()))?;
    let deleting: Option<serde_json::Value> = row.try_get("deleting")?;
    Ok(Failure {
        kind,
        id: row.try_get("id")?,
        account_name: row.try_get("account_name")?,
        errors: sync.errors,
        failed_at: row.try_get("failed_at")?,
        version: sync.version,
        deleting: deleting.and_then(|d| d.as_bool()).unwrap_or(false),
    })
}
