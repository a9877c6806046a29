//! The saga's work items (`saga_work`) and what the backend holds (`saga_held`), in SQL.

use std::collections::HashMap;
use std::time::Duration;

use domain::TenantId;
use sqlx::PgPool;

/// An aggregate the stream named, as the intake saw it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub aggregate_type: String,
    pub aggregate_id: String,
}

/// A claimed work item.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WorkItem {
    pub aggregate_type: String,
    pub aggregate_id: String,
    /// The greatest event sequence seen for the aggregate.
    pub version: i64,
    /// Transient failures so far.
    pub attempts: i32,
    /// How long ago the intake first recorded it, in seconds.
    pub age: f64,
}

impl WorkItem {
    pub fn key(&self) -> Key {
        Key {
            aggregate_type: self.aggregate_type.clone(),
            aggregate_id: self.aggregate_id.clone(),
        }
    }

    pub fn age(&self) -> Duration {
        Duration::try_from_secs_f64(self.age.max(0.0)).unwrap_or_default()
    }
}

/// Which work items a claim takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Numbers,
    /// Consents, accounts and anything else.
    Others,
}

/// Records that these aggregates changed up to these versions (the greatest wins).
pub async fn record(pool: &PgPool, seen: &[(Key, i64)]) -> Result<(), sqlx::Error> {
    if seen.is_empty() {
        return Ok(());
    }
    let mut merged: HashMap<&Key, i64> = HashMap::with_capacity(seen.len());
    for (key, version) in seen {
        let entry = merged.entry(key).or_insert(*version);
        *entry = (*entry).max(*version);
    }
    // In key order, so concurrent intakes lock rows in the same order.
    let mut rows: Vec<(&Key, i64)> = merged.into_iter().collect();
    rows.sort();
    let types: Vec<&str> = rows
        .iter()
        .map(|(k, _)| k.aggregate_type.as_str())
        .collect();
    let ids: Vec<&str> = rows.iter().map(|(k, _)| k.aggregate_id.as_str()).collect();
    let versions: Vec<i64> = rows.iter().map(|(_, v)| *v).collect();
    sqlx::query(
        "INSERT INTO saga_work (aggregate_type, aggregate_id, version) \
         SELECT t, i, v FROM UNNEST($1::text[], $2::text[], $3::bigint[]) AS w(t, i, v) \
         ON CONFLICT (aggregate_type, aggregate_id) DO UPDATE \
            SET version = GREATEST(saga_work.version, EXCLUDED.version), updated_at = now()",
    )
    .bind(&types)
    .bind(&ids)
    .bind(&versions)
    .execute(pool)
    .await?;
    Ok(())
}

/// Claims up to `limit` items of `kind` that are due and not leased (nor, for numbers, in an
/// unfinished order), oldest due first, leasing them for `lease`.
pub async fn claim(
    pool: &PgPool,
    kind: Kind,
    limit: usize,
    lease: Duration,
) -> Result<Vec<WorkItem>, sqlx::Error> {
    let which = match kind {
        Kind::Numbers => "w.aggregate_type = 'number'",
        Kind::Others => "w.aggregate_type <> 'number'",
    };
    sqlx::query_as(&format!(
        "WITH due AS ( \
            SELECT w.aggregate_type, w.aggregate_id FROM saga_work w \
             WHERE {which} \
               AND w.not_before <= now() \
               AND (w.leased_until IS NULL OR w.leased_until < now()) \
               AND NOT (w.aggregate_type = 'number' AND EXISTS ( \
                    SELECT 1 FROM saga_order_items i \
                     WHERE i.open AND i.telephone_number = w.aggregate_id)) \
             ORDER BY w.not_before \
             LIMIT $1 \
             FOR UPDATE OF w SKIP LOCKED) \
         UPDATE saga_work w SET leased_until = now() + make_interval(secs => $2) \
           FROM due \
          WHERE w.aggregate_type = due.aggregate_type AND w.aggregate_id = due.aggregate_id \
         RETURNING w.aggregate_type, w.aggregate_id, w.version, w.attempts, \
                   extract(epoch FROM now() - w.first_seen)::float8 AS age"
    ))
    .bind(limit as i64)
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await
}

/// Done with these items up to these versions: an item whose aggregate has not changed since
/// is deleted; one that has (the intake raised its version meanwhile) is released for the
/// next round.
pub async fn finish(pool: &PgPool, answered: &[(Key, i64)]) -> Result<(), sqlx::Error> {
    if answered.is_empty() {
        return Ok(());
    }
    let mut tx = asynchronous(pool).await?;
    finish_in(&mut tx, answered).await?;
    tx.commit().await
}

/// A transaction that commits without waiting for its WAL to reach the disk. For the saga's
/// bookkeeping that a crash may lose without harm: work given back or finished comes back,
/// and is found answered (or is answered again, which every call allows).
pub async fn asynchronous(
    pool: &PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL synchronous_commit = off")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// [`finish`], inside the caller's transaction.
pub async fn finish_in(
    tx: &mut sqlx::PgConnection,
    answered: &[(Key, i64)],
) -> Result<(), sqlx::Error> {
    if answered.is_empty() {
        return Ok(());
    }
    let mut rows: Vec<&(Key, i64)> = answered.iter().collect();
    rows.sort();
    let types: Vec<&str> = rows
        .iter()
        .map(|(k, _)| k.aggregate_type.as_str())
        .collect();
    let ids: Vec<&str> = rows.iter().map(|(k, _)| k.aggregate_id.as_str()).collect();
    let versions: Vec<i64> = rows.iter().map(|(_, v)| *v).collect();
    sqlx::query(
        "DELETE FROM saga_work w USING UNNEST($1::text[], $2::text[], $3::bigint[]) AS a(t, i, v) \
          WHERE w.aggregate_type = a.t AND w.aggregate_id = a.i AND w.version <= a.v",
    )
    .bind(&types)
    .bind(&ids)
    .bind(&versions)
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "UPDATE saga_work w \
            SET leased_until = NULL, attempts = 0, last_error = NULL, not_before = now() \
           FROM UNNEST($1::text[], $2::text[]) AS a(t, i) \
          WHERE w.aggregate_type = a.t AND w.aggregate_id = a.i",
    )
    .bind(&types)
    .bind(&ids)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// Gives items back to be claimed again after `delay` each, counting a failure when
/// `failed` (a transient error: `error` says which).
pub async fn postpone(
    pool: &PgPool,
    items: &[(Key, Duration)],
    failed: bool,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    if items.is_empty() {
        return Ok(());
    }
    let mut rows: Vec<&(Key, Duration)> = items.iter().collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let types: Vec<&str> = rows
        .iter()
        .map(|(k, _)| k.aggregate_type.as_str())
        .collect();
    let ids: Vec<&str> = rows.iter().map(|(k, _)| k.aggregate_id.as_str()).collect();
    let delays: Vec<f64> = rows.iter().map(|(_, d)| d.as_secs_f64()).collect();
    let mut tx = asynchronous(pool).await?;
    sqlx::query(
        "UPDATE saga_work w \
            SET leased_until = NULL, \
                not_before = now() + make_interval(secs => a.d), \
                attempts = w.attempts + CASE WHEN $4 THEN 1 ELSE 0 END, \
                last_error = coalesce($5, w.last_error) \
           FROM UNNEST($1::text[], $2::text[], $3::float8[]) AS a(t, i, d) \
          WHERE w.aggregate_type = a.t AND w.aggregate_id = a.i",
    )
    .bind(&types)
    .bind(&ids)
    .bind(&delays)
    .bind(failed)
    .bind(error)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    if failed {
        nmp_metrics::saga_retries(nmp_metrics::SagaRetry::WorkItem, items.len() as u64);
    }
    Ok(())
}

/// The tenants the backend holds these numbers for.
pub async fn held(
    pool: &PgPool,
    numbers: &[String],
) -> Result<HashMap<String, TenantId>, sqlx::Error> {
    if numbers.is_empty() {
        return Ok(HashMap::new());
    }
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT telephone_number, tenant_id FROM saga_held WHERE telephone_number = ANY($1)",
    )
    .bind(numbers)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(number, tenant)| Some((number, TenantId::parse(tenant).ok()?)))
        .collect())
}

/// Records that the backend holds `numbers` for `tenant`.
pub async fn hold(
    executor: impl sqlx::PgExecutor<'_>,
    tenant: &TenantId,
    numbers: &[String],
) -> Result<(), sqlx::Error> {
    if numbers.is_empty() {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO saga_held (telephone_number, tenant_id) SELECT n, $2 FROM UNNEST($1::text[]) AS n \
         ON CONFLICT (telephone_number) DO UPDATE SET tenant_id = EXCLUDED.tenant_id, since = now()",
    )
    .bind(numbers)
    .bind(tenant.as_str())
    .execute(executor)
    .await?;
    Ok(())
}

/// Records that the backend released `numbers` (from whichever tenant held them).
pub async fn let_go(pool: &PgPool, numbers: &[String]) -> Result<(), sqlx::Error> {
    if numbers.is_empty() {
        return Ok(());
    }
    sqlx::query("DELETE FROM saga_held WHERE telephone_number = ANY($1)")
        .bind(numbers)
        .execute(pool)
        .await?;
    Ok(())
}

/// Work items waiting (leased or not) and unfinished orders, for the metrics.
pub async fn backlog(pool: &PgPool) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM saga_work), \
                (SELECT count(*) FROM saga_orders WHERE state <> 'done')",
    )
    .fetch_one(pool)
    .await
}
