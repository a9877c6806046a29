//! Reading the read tables: pages of live rows in key order with an optional filter and total,
//! and the dashboard's aggregates. Rows hold the domain's state as serde wrote it; this module
//! gives it back typed, and the API turns it into wire resources.
//!
//! `read_civic_addresses.address` holds a civic address in the API's wire shape
//! (`TeamsCivicAddressResource`, camelCase); the key columns win over any `id` or `tenantId`
//! inside it.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use domain::{AccountState, ConsentState, NumberState, Service};
use serde::de::DeserializeOwned;
use sqlx::postgres::{PgArguments, PgRow};
use sqlx::query::Query;
use sqlx::{PgPool, Postgres, Row};

use crate::filter::{CONSENT_ACCOUNT_SQL, Filter, Param, Resource, Sql, compile};

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("a stored {what} row cannot be read: {reason}")]
    Corrupt { what: &'static str, reason: String },
    #[error("a filter parsed for {parsed_for} was used to list {used_for}")]
    WrongFilter {
        parsed_for: &'static str,
        used_for: &'static str,
    },
}

/// Which rows, and which slice of them, a list asks for.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    /// A filter parsed for the listed resource.
    pub filter: Option<Filter>,
    /// Only rows whose key follows this one (the last key of the previous page, for key-set
    /// paging), in key order.
    pub after: Option<String>,
    /// Rows passed over, in key order (after `after`, when given).
    pub skip: u64,
    /// The most rows to answer.
    pub take: u64,
    /// Whether to count every row matching the filter, ignoring `after`, `skip` and `take`.
    pub count: bool,
}

/// A page of rows: `more` tells whether rows follow it, `last_key` is the key of its last row
/// (to continue after it with [`ListQuery::after`]).
#[derive(Debug, Clone)]
pub struct Listed<T> {
    pub items: Vec<T>,
    pub more: bool,
    pub total: Option<u64>,
    pub last_key: Option<String>,
}

/// An account as its read row holds it: the state without the map of its numbers (left
/// empty), and how many of its numbers use each service.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountRow {
    pub state: AccountState,
    pub number_counts: BTreeMap<Service, u64>,
}

impl AccountRow {
    /// How many of the account's numbers have `service` enabled.
    pub fn number_count(&self, service: Service) -> u64 {
        self.number_counts.get(&service).copied().unwrap_or(0)
    }
}

/// A consent with the account its tenant is linked to.
#[derive(Debug, Clone)]
pub struct ConsentRow {
    pub state: ConsentState,
    pub account_name: Option<String>,
}

/// A civic address row.
#[derive(Debug, Clone)]
pub struct CivicAddressRow {
    pub tenant_id: Option<String>,
    pub civic_address_id: String,
    pub address: serde_json::Value,
}

/// Where a list reads from: the table (aliased as the filter's fields expect), what it
/// selects, its key, and the condition every listed row meets.
struct Source {
    resource: Resource,
    from: &'static str,
    select: &'static str,
    key: &'static str,
    live: &'static str,
}

const ACCOUNTS: Source = Source {
    resource: Resource::Accounts,
    from: "read_accounts a",
    select: "a.state, a.number_counts",
    key: "a.name",
    live: "NOT a.deleted",
};

const NUMBERS: Source = Source {
    resource: Resource::Numbers,
    from: "read_numbers n",
    select: "n.state",
    key: "n.telephone_number",
    live: "NOT n.deleted",
};

const CONSENTS: Source = Source {
    resource: Resource::RequestsForInformation,
    from: "read_consents c",
    select: "c.state",
    key: "c.tenant_id",
    live: "NOT c.deleted",
};

const CIVIC_ADDRESSES: Source = Source {
    resource: Resource::CivicAddresses,
    from: "read_civic_addresses c",
    select: "c.tenant_id, c.civic_address_id, c.address",
    key: "c.civic_address_id",
    live: "NOT c.deleted",
};

fn bind_all<'q>(
    mut query: Query<'q, Postgres, PgArguments>,
    params: &'q [Param],
) -> Query<'q, Postgres, PgArguments> {
    for param in params {
        query = match param {
            Param::Text(text) => query.bind(text.as_str()),
            Param::Bool(value) => query.bind(*value),
            Param::Int(value) => query.bind(*value),
        };
    }
    query
}

fn clamp(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The column under which a page's rows carry their key.
const PAGE_KEY: &str = "page_key";

/// One page of `source`'s live rows meeting `scope` (SQL over the first bind values, already in
/// `sql`) and the filter, plus the total when asked; both read one snapshot.
///
/// The page's keys are found first, in key order, on the key column alone — with the indexes
/// that end in the key, an index-only scan that never sorts or reads the rows it passes over —
/// and only then are the page's rows read, by key. Reading whole rows while passing over
/// `skip` of them sorted `skip` + `take` wide rows (316 ms at skip 45,000 of 1 M numbers;
/// 8–10 ms this way). With `after`, the scan starts just after that key (a key-set page: about
/// 1 ms at any depth). The total counts the rows meeting the same condition, without `after`.
async fn page(
    pool: &PgPool,
    source: &Source,
    extra_select: &str,
    mut sql: Sql,
    scope: Option<String>,
    query: &ListQuery,
) -> Result<(Vec<PgRow>, bool, Option<u64>, Option<String>), QueryError> {
    let mut conditions = vec![source.live.to_string()];
    conditions.extend(scope);
    if let Some(filter) = &query.filter {
        check_resource(filter, source.resource)?;
        conditions.push(compile(&filter.expr, &mut sql));
    }
    let condition = conditions.join(" AND ");
    let counted_params = sql.params.clone();
    let key = source.key;
    let after = match &query.after {
        Some(last) => {
            let at = sql.bind(Param::Text(last.clone()));
            format!(" AND {key} > {at}")
        }
        None => String::new(),
    };
    // One row more than asked tells whether another page follows.
    let limit = sql.bind(Param::Int(clamp(query.take.saturating_add(1))));
    let offset = sql.bind(Param::Int(clamp(query.skip)));
    // The CTE and the outer query each give the table the alias the filter and the select use.
    let text = format!(
        "WITH page AS (SELECT {key} AS {PAGE_KEY} FROM {from} WHERE {condition}{after} \
         ORDER BY {key} LIMIT {limit} OFFSET {offset}) \
         SELECT page.{PAGE_KEY}, {select}{extra_select} \
         FROM page JOIN {from} ON {key} = page.{PAGE_KEY} ORDER BY page.{PAGE_KEY}",
        from = source.from,
        select = source.select,
    );
    let mut tx = read_only(pool).await?;
    let mut rows = bind_all(sqlx::query(&text), &sql.params)
        .fetch_all(&mut *tx)
        .await?;
    let more = rows.len() as u64 > query.take;
    rows.truncate(usize::try_from(query.take).unwrap_or(usize::MAX));
    let last_key = rows
        .last()
        .map(|row| row.try_get::<String, _>(PAGE_KEY))
        .transpose()?;
    let total = if query.count {
        let text = format!("SELECT count(*) FROM {} WHERE {condition}", source.from);
        let total: i64 = bind_all(sqlx::query(&text), &counted_params)
            .fetch_one(&mut *tx)
            .await?
            .try_get(0)?;
        Some(total.max(0) as u64)
    } else {
        None
    };
    tx.commit().await?;
    Ok((rows, more, total, last_key))
}

/// How long one statement of a read for the API may run.
pub const READ_STATEMENT_TIMEOUT: &str = "15s";

/// A read-only transaction on one snapshot whose statements are cut at
/// [`READ_STATEMENT_TIMEOUT`], for the lists and the dashboard.
async fn read_only(
    pool: &PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, QueryError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!(
        "SET LOCAL statement_timeout = '{READ_STATEMENT_TIMEOUT}'"
    ))
    .execute(&mut *tx)
    .await?;
    Ok(tx)
}

/// A filter names the fields of one resource; used on another's table it would be wrong SQL.
fn check_resource(filter: &Filter, resource: Resource) -> Result<(), QueryError> {
    if filter.resource == resource {
        Ok(())
    } else {
        Err(QueryError::WrongFilter {
            parsed_for: filter.resource.plural(),
            used_for: resource.plural(),
        })
    }
}

fn state<T: DeserializeOwned>(row: &PgRow, what: &'static str) -> Result<T, QueryError> {
    let value: Option<serde_json::Value> = row.try_get("state")?;
    let value = value.ok_or_else(|| QueryError::Corrupt {
        what,
        reason: "a live row without state".to_string(),
    })?;
    serde_json::from_value(value).map_err(|error| QueryError::Corrupt {
        what,
        reason: error.to_string(),
    })
}

/// An account row: the aggregate's state, and the counts of its numbers per service (the
/// `number_counts` column, which the projector recounts from the number rows). A state written
/// before the counts moved out of it may still hold `numbers` or `number_counts`: both are
/// ignored.
fn account_row(row: &PgRow) -> Result<AccountRow, QueryError> {
    account_from_parts(row.try_get("state")?, row.try_get("number_counts")?)
}

fn account_from_parts(
    value: Option<serde_json::Value>,
    counts: serde_json::Value,
) -> Result<AccountRow, QueryError> {
    let corrupt = |reason: String| QueryError::Corrupt {
        what: "account",
        reason,
    };
    let value = value.ok_or_else(|| corrupt("a live row without state".to_string()))?;
    let state: AccountState =
        serde_json::from_value(value).map_err(|error| corrupt(error.to_string()))?;
    let counts: BTreeMap<String, u64> =
        serde_json::from_value(counts).map_err(|error| corrupt(error.to_string()))?;
    let number_counts = counts
        .into_iter()
        .filter_map(|(name, count)| Service::from_wire_name(&name).map(|s| (s, count)))
        .collect();
    Ok(AccountRow {
        state,
        number_counts,
    })
}

/// Live accounts in name order.
pub async fn accounts(pool: &PgPool, query: &ListQuery) -> Result<Listed<AccountRow>, QueryError> {
    let (rows, more, total, last_key) =
        page(pool, &ACCOUNTS, "", Sql::default(), None, query).await?;
    let items = rows.iter().map(account_row).collect::<Result<_, _>>()?;
    Ok(Listed {
        items,
        more,
        total,
        last_key,
    })
}

/// Live numbers in telephone number order, of one account or of all.
pub async fn numbers(
    pool: &PgPool,
    account: Option<&str>,
    query: &ListQuery,
) -> Result<Listed<NumberState>, QueryError> {
    let mut sql = Sql::default();
    let scope = account.map(|name| {
        let at = sql.bind(Param::Text(name.to_string()));
        format!("n.account_name = {at}")
    });
    let (rows, more, total, last_key) = page(pool, &NUMBERS, "", sql, scope, query).await?;
    let items = rows
        .iter()
        .map(|row| state(row, "number"))
        .collect::<Result<_, _>>()?;
    Ok(Listed {
        items,
        more,
        total,
        last_key,
    })
}

/// Live consents in tenant order, each with its account.
pub async fn consents(pool: &PgPool, query: &ListQuery) -> Result<Listed<ConsentRow>, QueryError> {
    let extra = format!(", {CONSENT_ACCOUNT_SQL} AS account_name");
    let (rows, more, total, last_key) =
        page(pool, &CONSENTS, &extra, Sql::default(), None, query).await?;
    let items = rows
        .iter()
        .map(|row| {
            Ok(ConsentRow {
                state: state(row, "consent")?,
                account_name: row.try_get("account_name")?,
            })
        })
        .collect::<Result<_, QueryError>>()?;
    Ok(Listed {
        items,
        more,
        total,
        last_key,
    })
}

fn civic_address_row(row: &PgRow) -> Result<CivicAddressRow, QueryError> {
    let address: Option<serde_json::Value> = row.try_get("address")?;
    Ok(CivicAddressRow {
        tenant_id: row.try_get("tenant_id")?,
        civic_address_id: row.try_get("civic_address_id")?,
        address: address.ok_or_else(|| QueryError::Corrupt {
            what: "civic address",
            reason: "a live row without its address".to_string(),
        })?,
    })
}

/// The civic addresses of a Teams tenant, in id order.
pub async fn civic_addresses(
    pool: &PgPool,
    tenant: &str,
    query: &ListQuery,
) -> Result<Listed<CivicAddressRow>, QueryError> {
    let mut sql = Sql::default();
    let at = sql.bind(Param::Text(tenant.to_string()));
    let scope = Some(format!("c.tenant_id = {at}"));
    let (rows, more, total, last_key) = page(pool, &CIVIC_ADDRESSES, "", sql, scope, query).await?;
    let items = rows
        .iter()
        .map(civic_address_row)
        .collect::<Result<_, _>>()?;
    Ok(Listed {
        items,
        more,
        total,
        last_key,
    })
}

/// One civic address of a Teams tenant.
pub async fn civic_address(
    pool: &PgPool,
    tenant: &str,
    id: &str,
) -> Result<Option<CivicAddressRow>, QueryError> {
    let row = sqlx::query(
        "SELECT tenant_id, civic_address_id, address FROM read_civic_addresses \
          WHERE tenant_id = $1 AND civic_address_id = $2 AND NOT deleted",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(civic_address_row).transpose()
}

// ---- dashboard -----------------------------------------------------------------------------

/// How the dashboard groups live numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberGrouping {
    Account,
    /// Each enabled service: a number counts once under each of its services.
    Service,
    Usage,
    SyncState,
}

impl NumberGrouping {
    pub const NAMES: &'static [&'static str] = &["account", "service", "usage", "syncState"];

    pub fn parse(name: &str) -> Option<NumberGrouping> {
        match name {
            "account" => Some(NumberGrouping::Account),
            "service" => Some(NumberGrouping::Service),
            "usage" => Some(NumberGrouping::Usage),
            "syncState" => Some(NumberGrouping::SyncState),
            _ => None,
        }
    }
}

/// A group's key (None for rows without a value) and its count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub key: Option<String>,
    pub count: u64,
}

/// Counts of numbers per group, and the number of numbers, matching `filter`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Totals {
    pub total: u64,
    pub groups: Vec<Group>,
}

async fn groups(
    tx: &mut sqlx::PgConnection,
    text: &str,
    params: &[Param],
) -> Result<Vec<Group>, QueryError> {
    let rows = bind_all(sqlx::query(text), params).fetch_all(tx).await?;
    rows.iter()
        .map(|row| {
            let count: i64 = row.try_get(1)?;
            Ok(Group {
                key: row.try_get(0)?,
                count: count.max(0) as u64,
            })
        })
        .collect()
}

/// Live numbers counted per group, most first, then by key.
pub async fn number_totals(
    pool: &PgPool,
    grouping: NumberGrouping,
    filter: Option<&Filter>,
) -> Result<Totals, QueryError> {
    let mut sql = Sql::default();
    let mut condition = "NOT n.deleted".to_string();
    if let Some(filter) = filter {
        check_resource(filter, Resource::Numbers)?;
        condition = format!("{condition} AND {}", compile(&filter.expr, &mut sql));
    }
    let grouped = match grouping {
        // One count per service, each over its partial index (`… WHERE '<service>' =
        // ANY(services)`, migration 0004) instead of unnesting every row's services; the names
        // are the fixed wire names, never input.
        NumberGrouping::Service => {
            let counts: Vec<String> = domain::Service::ALL
                .iter()
                .map(|service| {
                    let name = service.wire_name();
                    format!(
                        "SELECT '{name}'::text AS k, count(*) AS c FROM read_numbers n \
                         WHERE {condition} AND '{name}' = ANY(n.services)"
                    )
                })
                .collect();
            format!(
                "SELECT k, c FROM ({}) t WHERE c > 0 ORDER BY 2 DESC, 1",
                counts.join(" UNION ALL ")
            )
        }
        _ => {
            let key = match grouping {
                NumberGrouping::Account => "n.account_name",
                NumberGrouping::Usage => "n.usage",
                _ => "n.sync_status",
            };
            format!(
                "SELECT {key}, count(*) FROM read_numbers n WHERE {condition} \
                 GROUP BY 1 ORDER BY 2 DESC, 1 NULLS LAST"
            )
        }
    };
    let mut tx = read_only(pool).await?;
    let groups = groups(&mut tx, &grouped, &sql.params).await?;
    let total: i64 = bind_all(
        sqlx::query(&format!(
            "SELECT count(*) FROM read_numbers n WHERE {condition}"
        )),
        &sql.params,
    )
    .fetch_one(&mut *tx)
    .await?
    .try_get(0)?;
    tx.commit().await?;
    Ok(Totals {
        total: total.max(0) as u64,
        groups,
    })
}

/// Live consents counted by their status and by their customer relationship's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentTotals {
    pub total: u64,
    pub by_status: Vec<Group>,
    pub by_relationship_status: Vec<Group>,
}

pub async fn consent_totals(pool: &PgPool) -> Result<ConsentTotals, QueryError> {
    let mut tx = read_only(pool).await?;
    let by_status = groups(
        &mut tx,
        "SELECT status, count(*) FROM read_consents WHERE NOT deleted \
         GROUP BY 1 ORDER BY 2 DESC, 1 NULLS LAST",
        &[],
    )
    .await?;
    let by_relationship_status = groups(
        &mut tx,
        "SELECT relationship_status, count(*) FROM read_consents WHERE NOT deleted \
         GROUP BY 1 ORDER BY 2 DESC, 1 NULLS LAST",
        &[],
    )
    .await?;
    tx.commit().await?;
    let total = by_status.iter().map(|g| g.count).sum();
    Ok(ConsentTotals {
        total,
        by_status,
        by_relationship_status,
    })
}

/// One row of the audit log.
#[derive(Debug, Clone, PartialEq)]
pub struct Activity {
    pub global_position: i64,
    pub occurred_at: DateTime<Utc>,
    pub subject: Option<String>,
    pub roles: Option<serde_json::Value>,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub ticket_id: Option<String>,
    pub correlation_id: Option<String>,
    pub client_request_id: Option<String>,
}

/// The `top` most recent audit rows, newest first.
pub async fn recent_activity(pool: &PgPool, top: u32) -> Result<Vec<Activity>, QueryError> {
    let rows = sqlx::query(
        "SELECT global_position, occurred_at, subject, roles, aggregate_type, aggregate_id, \
                sequence, event_type, ticket_id, correlation_id, client_request_id \
           FROM audit_log ORDER BY occurred_at DESC, global_position DESC LIMIT $1",
    )
    .bind(i64::from(top))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|row| {
            Ok(Activity {
                global_position: row.try_get("global_position")?,
                occurred_at: row.try_get("occurred_at")?,
                subject: row.try_get("subject")?,
                roles: row.try_get("roles")?,
                aggregate_type: row.try_get("aggregate_type")?,
                aggregate_id: row.try_get("aggregate_id")?,
                sequence: row.try_get("sequence")?,
                event_type: row.try_get("event_type")?,
                ticket_id: row.try_get("ticket_id")?,
                correlation_id: row.try_get("correlation_id")?,
                client_request_id: row.try_get("client_request_id")?,
            })
        })
        .collect()
}

// ---- search (the portal's search box) ------------------------------------------------------

/// Live numbers whose E.164 starts with `prefix` (a `+` and digits; anything else finds none),
/// in telephone number order, at most `take`, and whether more follow. It reads a range of the
/// key — from the prefix up to the prefix followed by `:`, the character after `9` — so the
/// key's index bounds the scan however many numbers are stored (`startswith` in a filter
/// would pass over every number after the prefix when few match).
pub async fn numbers_with_prefix(
    pool: &PgPool,
    prefix: &str,
    take: u64,
) -> Result<Listed<NumberState>, QueryError> {
    let well_formed = prefix
        .strip_prefix('+')
        .is_some_and(|digits| digits.chars().all(|c| c.is_ascii_digit()));
    if !well_formed {
        return Ok(Listed {
            items: Vec::new(),
            more: false,
            total: None,
            last_key: None,
        });
    }
    let mut tx = read_only(pool).await?;
    let rows = sqlx::query(
        "SELECT n.telephone_number AS page_key, n.state FROM read_numbers n \
          WHERE NOT n.deleted AND n.telephone_number >= $1 AND n.telephone_number < $2 \
          ORDER BY n.telephone_number LIMIT $3",
    )
    .bind(prefix)
    .bind(format!("{prefix}:"))
    .bind(clamp(take.saturating_add(1)))
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    listed_of(rows, take, |row| state(row, "number"))
}

/// Live accounts whose name holds `text`, whatever its case: those whose name starts with it
/// first, then in name order; at most `take`, and whether more follow.
pub async fn accounts_matching(
    pool: &PgPool,
    text: &str,
    take: u64,
) -> Result<Listed<AccountRow>, QueryError> {
    if text.is_empty() {
        return listed_of(Vec::new(), take, account_row);
    }
    let mut tx = read_only(pool).await?;
    let rows = sqlx::query(
        "SELECT a.name AS page_key, a.state, a.number_counts FROM read_accounts a \
          WHERE NOT a.deleted AND strpos(lower(a.name), lower($1)) > 0 \
          ORDER BY NOT starts_with(lower(a.name), lower($1)), a.name LIMIT $2",
    )
    .bind(text)
    .bind(clamp(take.saturating_add(1)))
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    listed_of(rows, take, account_row)
}

/// The first `take` of `rows` (one more was asked for, to tell whether more follow), read.
fn listed_of<T>(
    mut rows: Vec<PgRow>,
    take: u64,
    read: impl Fn(&PgRow) -> Result<T, QueryError>,
) -> Result<Listed<T>, QueryError> {
    let more = rows.len() as u64 > take;
    rows.truncate(usize::try_from(take).unwrap_or(usize::MAX));
    let last_key = rows
        .last()
        .map(|row| row.try_get::<String, _>(PAGE_KEY))
        .transpose()?;
    let items = rows.iter().map(read).collect::<Result<_, _>>()?;
    Ok(Listed {
        items,
        more,
        total: None,
        last_key,
    })
}

#[cfg(test)]
mod tests {
    use domain::{
        AccountName, AccountServices, PlainService, ProvisioningStatus, SyncState, SyncableService,
    };
    use serde_json::json;

    use super::*;
    use crate::write;

    fn account() -> AccountState {
        AccountState {
            name: AccountName::parse("contoso").expect("a name"),
            correlation_id: None,
            services: AccountServices {
                teams_operator_connect: Some(SyncableService {
                    enabled: true,
                    sync_enabled: true,
                }),
                zoom_phone_cloud_peering: Some(SyncableService {
                    enabled: true,
                    sync_enabled: false,
                }),
                azure_operator_call_protection: Some(PlainService { enabled: false }),
                ..AccountServices::default()
            },
            sync: SyncState {
                status: ProvisioningStatus::Pending,
                errors: Vec::new(),
                version: 4,
            },
            deleting: false,
        }
    }

    #[test]
    fn an_account_row_holds_the_state_and_reads_the_counts_beside_it() {
        let state = account();
        let row = write::account_row(Some(&state));
        let stored = row.state.expect("a state");
        assert_eq!(stored, serde_json::to_value(&state).expect("serialisable"));

        let counts = json!({"teamsOperatorConnect": 2, "zoomPhoneCloudPeering": 1});
        let read = account_from_parts(Some(stored), counts).expect("readable");
        assert_eq!(read.state, state);
        assert_eq!(read.number_count(Service::TeamsOperatorConnect), 2);
        assert_eq!(read.number_count(Service::ZoomPhoneCloudPeering), 1);
        assert_eq!(read.number_count(Service::TeamsPhoneMobile), 0);
    }

    #[test]
    fn an_account_row_written_before_the_counts_moved_out_still_reads() {
        let state = account();
        let mut old = serde_json::to_value(&state).expect("serialisable");
        let object = old.as_object_mut().expect("an object");
        object.insert(
            "numbers".into(),
            json!({"+15105850001": ["teamsOperatorConnect"]}),
        );
        object.insert("number_counts".into(), json!({"teamsOperatorConnect": 1}));
        let read = account_from_parts(Some(old), json!({})).expect("readable");
        assert_eq!(read.state, state);
        assert_eq!(read.number_count(Service::TeamsOperatorConnect), 0);

        assert!(matches!(
            account_from_parts(None, json!({})),
            Err(QueryError::Corrupt { .. })
        ));
        assert!(matches!(
            account_from_parts(Some(json!({"name": "contoso"})), json!({})),
            Err(QueryError::Corrupt { .. })
        ));
        assert!(matches!(
            account_from_parts(Some(serde_json::to_value(&state).unwrap()), json!([1])),
            Err(QueryError::Corrupt { .. })
        ));
    }
}
