//! Upload orders in SQL (`saga_orders`, `saga_order_items`): written before they are placed,
//! moved `new → placed → done`, and resumed from wherever they stood.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use backend::{NumberConfiguration, NumberResult, UploadOrder};
use domain::TenantId;
use sqlx::PgPool;
use sqlx::types::Json;
use uuid::Uuid;

use crate::work::{self, Key};

/// Where an order stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderState {
    /// Written; maybe placed already (the answer may have been lost): place it (again).
    New,
    /// The backend accepted it: poll it.
    Placed,
    /// Its outcomes are recorded and its results saved.
    Done,
}

impl OrderState {
    fn parse(state: &str) -> OrderState {
        match state {
            "new" => OrderState::New,
            "placed" => OrderState::Placed,
            _ => OrderState::Done,
        }
    }
}

/// An unfinished order, claimed.
#[derive(Debug, Clone)]
pub struct Order {
    pub id: Uuid,
    pub tenant: TenantId,
    pub state: OrderState,
    pub body: UploadOrder,
    /// The changes it carries: number and the version of its change.
    pub items: Vec<(String, i64)>,
    /// Polls and failures since it last moved on.
    pub attempts: u32,
}

type OrderRow = (Uuid, String, String, Json<UploadOrder>, i32);

/// Numbers for one order, each with the version of its change.
pub type Changes = Vec<(NumberConfiguration, u64)>;

/// Writes upload orders — per tenant, numbers each with the version of its change — with
/// their items, in one transaction; the numbers' work items wait for their orders. A change
/// already in an order, or a number in another unfinished order, is left out, and an order
/// left empty is not written. The orders come back leased to the caller, which places them.
pub async fn create(
    pool: &PgPool,
    batches: Vec<(TenantId, Changes)>,
    lease: Duration,
) -> Result<Vec<Order>, sqlx::Error> {
    let mut order_ids = Vec::new();
    let mut numbers = Vec::new();
    let mut versions = Vec::new();
    let batches: Vec<(Uuid, TenantId, Changes)> = batches
        .into_iter()
        .map(|(tenant, changes)| (Uuid::new_v4(), tenant, changes))
        .collect();
    for (id, _, changes) in &batches {
        for (configuration, version) in changes {
            order_ids.push(*id);
            numbers.push(configuration.telephone_number.to_string());
            versions.push(*version as i64);
        }
    }
    if numbers.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = pool.begin().await?;
    let taken: Vec<(Uuid, String)> = sqlx::query_as(
        "INSERT INTO saga_order_items (order_id, telephone_number, for_version) \
         SELECT o, n, v FROM UNNEST($1::uuid[], $2::text[], $3::bigint[]) AS t(o, n, v) \
         ON CONFLICT DO NOTHING \
         RETURNING order_id, telephone_number",
    )
    .bind(&order_ids)
    .bind(&numbers)
    .bind(&versions)
    .fetch_all(&mut *tx)
    .await?;
    let taken: HashSet<(Uuid, String)> = taken.into_iter().collect();
    let mut created = Vec::new();
    for (id, tenant, changes) in batches {
        let (kept, items): (Vec<NumberConfiguration>, Vec<(String, i64)>) = changes
            .into_iter()
            .filter(|(c, _)| taken.contains(&(id, c.telephone_number.to_string())))
            .map(|(c, v)| {
                let item = (c.telephone_number.to_string(), v as i64);
                (c, item)
            })
            .unzip();
        if kept.is_empty() {
            continue;
        }
        created.push(Order {
            id,
            body: UploadOrder {
                id: id.to_string(),
                tenant_id: tenant.clone(),
                numbers: kept,
            },
            tenant,
            state: OrderState::New,
            items,
            attempts: 0,
        });
    }
    let ids: Vec<Uuid> = created.iter().map(|o| o.id).collect();
    let tenants: Vec<&str> = created.iter().map(|o| o.tenant.as_str()).collect();
    let bodies: Vec<Json<&UploadOrder>> = created.iter().map(|o| Json(&o.body)).collect();
    sqlx::query(
        "INSERT INTO saga_orders (id, tenant_id, state, body, leased_until) \
         SELECT i, t, 'new', b, now() + make_interval(secs => $4) \
           FROM UNNEST($1::uuid[], $2::text[], $3::jsonb[]) AS o(i, t, b)",
    )
    .bind(&ids)
    .bind(&tenants)
    .bind(&bodies)
    .bind(lease.as_secs_f64())
    .execute(&mut *tx)
    .await?;
    // Claimed again only once their order is done (`finish` gives them back).
    let parked: Vec<&str> = created
        .iter()
        .flat_map(|o| o.items.iter().map(|(n, _)| n.as_str()))
        .collect();
    sqlx::query(
        "UPDATE saga_work SET not_before = 'infinity', leased_until = NULL \
          WHERE aggregate_type = 'number' AND aggregate_id = ANY($1)",
    )
    .bind(&parked)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(created)
}

/// Claims up to `limit` unfinished orders that are due, leasing them for `lease`.
pub async fn claim_due(
    pool: &PgPool,
    limit: usize,
    lease: Duration,
) -> Result<Vec<Order>, sqlx::Error> {
    let rows: Vec<OrderRow> = sqlx::query_as(
        "WITH due AS ( \
            SELECT id FROM saga_orders \
             WHERE state <> 'done' AND next_at <= now() \
               AND (leased_until IS NULL OR leased_until < now()) \
             ORDER BY next_at \
             LIMIT $1 \
             FOR UPDATE SKIP LOCKED) \
         UPDATE saga_orders o SET leased_until = now() + make_interval(secs => $2) \
           FROM due WHERE o.id = due.id \
         RETURNING o.id, o.tenant_id, o.state, o.body, o.attempts",
    )
    .bind(limit as i64)
    .bind(lease.as_secs_f64())
    .fetch_all(pool)
    .await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    let item_rows: Vec<(Uuid, String, i64)> = sqlx::query_as(
        "SELECT order_id, telephone_number, for_version FROM saga_order_items \
          WHERE order_id = ANY($1)",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    let mut items: HashMap<Uuid, Vec<(String, i64)>> = HashMap::new();
    for (order, number, version) in item_rows {
        items.entry(order).or_default().push((number, version));
    }
    Ok(rows
        .into_iter()
        .filter_map(|(id, tenant, state, body, attempts)| {
            Some(Order {
                id,
                tenant: TenantId::parse(tenant).ok()?,
                state: OrderState::parse(&state),
                body: body.0,
                items: items.remove(&id).unwrap_or_default(),
                attempts: attempts.max(0) as u32,
            })
        })
        .collect())
}

/// The backend accepted the order: poll it after `poll_in`.
pub async fn placed(pool: &PgPool, id: Uuid, poll_in: Duration) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE saga_orders SET state = 'placed', placed_at = coalesce(placed_at, now()), \
                attempts = 0, last_error = NULL, leased_until = NULL, \
                next_at = now() + make_interval(secs => $2) \
          WHERE id = $1 AND state IN ('new', 'placed')",
    )
    .bind(id)
    .bind(poll_in.as_secs_f64())
    .execute(pool)
    .await?;
    Ok(())
}

/// Comes back to the order after `delay`, as it stands (a poll that found it in progress, or a
/// transient failure, which `error` names).
pub async fn later(
    pool: &PgPool,
    id: Uuid,
    delay: Duration,
    error: Option<&str>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE saga_orders SET attempts = attempts + 1, leased_until = NULL, \
                next_at = now() + make_interval(secs => $2), last_error = coalesce($3, last_error) \
          WHERE id = $1",
    )
    .bind(id)
    .bind(delay.as_secs_f64())
    .bind(error)
    .execute(pool)
    .await?;
    if error.is_some() {
        nmp_metrics::saga_retries(nmp_metrics::SagaRetry::Order, 1);
    }
    Ok(())
}

/// The order's outcomes are recorded: it is done with its results, the numbers the backend
/// took are held by its tenant, its numbers may be claimed again, and their work items are
/// finished up to `answered` — in one transaction. It may commit asynchronously: if a crash
/// loses it, the order is resumed, its results read again from the backend and its (repeated)
/// outcomes ignored, and it is done again.
pub async fn finish(
    pool: &PgPool,
    order: &Order,
    results: &[NumberResult],
    answered: &[(Key, i64)],
) -> Result<(), sqlx::Error> {
    let ordered: HashSet<&str> = order.items.iter().map(|(n, _)| n.as_str()).collect();
    let accepted: Vec<String> = results
        .iter()
        .filter(|r| r.error.is_none() && ordered.contains(r.telephone_number.as_str()))
        .map(|r| r.telephone_number.to_string())
        .collect();
    let mut tx = work::asynchronous(pool).await?;
    let moved = sqlx::query(
        "UPDATE saga_orders SET state = 'done', results = $2, completed_at = now(), \
                leased_until = NULL, last_error = NULL \
          WHERE id = $1 AND state <> 'done'",
    )
    .bind(order.id)
    .bind(Json(results))
    .execute(&mut *tx)
    .await?;
    if moved.rows_affected() == 0 {
        // Another worker finished it (a lease ran out): nothing left to do.
        tx.rollback().await?;
        return Ok(());
    }
    work::hold(&mut *tx, &order.tenant, &accepted).await?;
    sqlx::query("UPDATE saga_order_items SET open = false WHERE order_id = $1 AND open")
        .bind(order.id)
        .execute(&mut *tx)
        .await?;
    work::finish_in(&mut tx, answered).await?;
    tx.commit().await
}

/// What became of a change already in an order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ordered {
    /// Its order is unfinished.
    InFlight,
    /// Its order is done; the backend's result for the number, if it gave one.
    Answered(Option<NumberResult>),
}

/// For changes (number, version) that are in an order already, where that order stands.
/// Normally none is: a change goes into an order once, and its outcome is recorded before the
/// order is done.
pub async fn already_ordered(
    pool: &PgPool,
    changes: &[(String, i64)],
) -> Result<HashMap<(String, i64), Ordered>, sqlx::Error> {
    if changes.is_empty() {
        return Ok(HashMap::new());
    }
    let numbers: Vec<&str> = changes.iter().map(|(n, _)| n.as_str()).collect();
    let versions: Vec<i64> = changes.iter().map(|(_, v)| *v).collect();
    let rows: Vec<(String, i64, bool, Option<Json<NumberResult>>)> = sqlx::query_as(
        "SELECT i.telephone_number, i.for_version, i.open, r.result \
           FROM UNNEST($1::text[], $2::bigint[]) AS c(n, v) \
           JOIN saga_order_items i ON i.telephone_number = c.n AND i.for_version = c.v \
           JOIN saga_orders o ON o.id = i.order_id \
           LEFT JOIN LATERAL ( \
                SELECT e AS result FROM jsonb_array_elements(coalesce(o.results, '[]'::jsonb)) AS e \
                 WHERE e->>'telephoneNumber' = i.telephone_number LIMIT 1) r ON true",
    )
    .bind(&numbers)
    .bind(&versions)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(number, version, open, result)| {
            let ordered = if open {
                Ordered::InFlight
            } else {
                Ordered::Answered(result.map(|r| r.0))
            };
            ((number, version), ordered)
        })
        .collect())
}
