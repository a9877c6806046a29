//! Rebuilding a read table from scratch: replay the event store in commit order into a fresh
//! table, then swap it in. Readers never see an empty table: the swap happens in one
//! transaction, under a lock that makes readers wait a moment instead. Live projectors keep
//! running; what they projected meanwhile is caught up inside the swap.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use cqrs_es::Aggregate;
use domain::{Account, CivicAddress, Consent, Number};
use futures::TryStreamExt;
use serde::de::DeserializeOwned;
use sqlx::{Postgres, Transaction};
use store::EventStore;

use crate::ProjectionError;
use crate::write::{Kind, Row, account_row, civic_address_row, consent_row, number_row};

/// What can be rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Table(Kind),
    AuditLog,
}

impl Target {
    pub const ALL: [Target; 5] = [
        Target::Table(Kind::Account),
        Target::Table(Kind::Number),
        Target::Table(Kind::Consent),
        Target::Table(Kind::CivicAddress),
        Target::AuditLog,
    ];

    /// `accounts`, `numbers`, `consents` or `audit`.
    pub fn parse(name: &str) -> Option<Target> {
        match name {
            "accounts" => Some(Target::Table(Kind::Account)),
            "numbers" => Some(Target::Table(Kind::Number)),
            "consents" => Some(Target::Table(Kind::Consent)),
            "civicAddresses" => Some(Target::Table(Kind::CivicAddress)),
            "audit" => Some(Target::AuditLog),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Target::Table(Kind::Account) => "accounts",
            Target::Table(Kind::Number) => "numbers",
            Target::Table(Kind::Consent) => "consents",
            Target::Table(Kind::CivicAddress) => "civicAddresses",
            Target::AuditLog => "audit",
        }
    }

    pub fn table(self) -> &'static str {
        match self {
            Target::Table(kind) => kind.table().0,
            Target::AuditLog => "audit_log",
        }
    }
}

/// What a rebuild did.
#[derive(Debug, Clone)]
pub struct RebuildReport {
    pub target: Target,
    /// Events replayed into the fresh table before the swap.
    pub events: u64,
    /// Rows in the fresh table after the swap.
    pub rows: u64,
    /// Aggregates brought up to date inside the swap (changed while the rebuild ran).
    pub caught_up: u64,
    pub elapsed: Duration,
}

/// Rebuilds `target` while nmp keeps running.
pub async fn rebuild(store: &EventStore, target: Target) -> Result<RebuildReport, ProjectionError> {
    let started = Instant::now();
    let pool = store.pool();
    let live = target.table();
    let fresh = format!("{live}_rebuild");
    sqlx::query(&format!("DROP TABLE IF EXISTS {fresh}"))
        .execute(pool)
        .await?;
    sqlx::query(&format!("CREATE TABLE {fresh} (LIKE {live} INCLUDING ALL)"))
        .execute(pool)
        .await?;
    // Everything committed before this point is replayed now; everything after, in the swap.
    let watermark: String =
        sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
            .fetch_one(pool)
            .await?;
    let events = match target {
        Target::Table(Kind::Account) => {
            replay::<Account>(store, Kind::Account, &fresh, &watermark, account_row_of).await?
        }
        Target::Table(Kind::Number) => {
            replay::<Number>(store, Kind::Number, &fresh, &watermark, number_row_of).await?
        }
        Target::Table(Kind::Consent) => {
            replay::<Consent>(store, Kind::Consent, &fresh, &watermark, consent_row_of).await?
        }
        Target::Table(Kind::CivicAddress) => {
            replay::<CivicAddress>(store, Kind::CivicAddress, &fresh, &watermark, civic_row_of)
                .await?
        }
        Target::AuditLog => copy_audit(store, &fresh, &watermark).await?,
    };

    // Catch up what changed during the replay without any lock, so that the locked moment
    // below only has the last few changes to bring in.
    let mut caught_up = 0;
    let watermark = match target {
        Target::Table(kind) => {
            let (count, next) = catch_up_unlocked(store, kind, &fresh, &watermark).await?;
            caught_up += count;
            next
        }
        Target::AuditLog => watermark,
    };
    // Readers plan their queries on the swapped table at once; without statistics the planner
    // would guess until autovacuum comes by.
    sqlx::query(&format!("ANALYZE {fresh}"))
        .execute(pool)
        .await?;

    let mut tx = pool.begin().await?;
    let counts = matches!(target, Target::Table(Kind::Account | Kind::Number));
    if counts {
        // Before the table's lock: recounts take the counts' lock before the tables'.
        crate::write::lock_all_counts(&mut tx).await?;
    }
    if target == Target::Table(Kind::Number) {
        // The swap writes the accounts' counts: it waits for projector batches writing account
        // rows first, as they lock the accounts before the numbers.
        sqlx::query("LOCK TABLE read_accounts IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
    }
    // Projectors wait here; readers too, for the moment of the swap.
    sqlx::query(&format!("LOCK TABLE {live} IN ACCESS EXCLUSIVE MODE"))
        .execute(&mut *tx)
        .await?;
    caught_up += match target {
        Target::Table(Kind::Account) => {
            catch_up_locked::<Account>(&mut tx, Kind::Account, &fresh, &watermark, account_row_of)
                .await?
        }
        Target::Table(Kind::Number) => {
            catch_up_locked::<Number>(&mut tx, Kind::Number, &fresh, &watermark, number_row_of)
                .await?
        }
        Target::Table(Kind::Consent) => {
            catch_up_locked::<Consent>(&mut tx, Kind::Consent, &fresh, &watermark, consent_row_of)
                .await?
        }
        Target::Table(Kind::CivicAddress) => {
            catch_up_locked::<CivicAddress>(
                &mut tx,
                Kind::CivicAddress,
                &fresh,
                &watermark,
                civic_row_of,
            )
            .await?
        }
        Target::AuditLog => copy_audit_in(&mut tx, &fresh, &watermark).await?,
    };
    // The counts of each account's numbers, from the number rows as they are now.
    match target {
        Target::Table(Kind::Account) => {
            crate::write::recount_all(&mut tx, &fresh, "read_numbers").await?
        }
        Target::Table(Kind::Number) => {
            crate::write::recount_all(&mut tx, "read_accounts", &fresh).await?
        }
        _ => {}
    }
    let renames = index_renames(&mut tx, live, &fresh).await?;
    sqlx::query(&format!("ALTER TABLE {live} RENAME TO {live}_replaced"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("ALTER TABLE {fresh} RENAME TO {live}"))
        .execute(&mut *tx)
        .await?;
    sqlx::query(&format!("DROP TABLE {live}_replaced"))
        .execute(&mut *tx)
        .await?;
    // The fresh table's indexes (and its primary key) take the names of those they replace,
    // so later migrations find the names they were written against.
    for (fresh_name, live_name) in renames {
        sqlx::query(&format!(
            "ALTER INDEX {} RENAME TO {}",
            quote_ident(&fresh_name),
            quote_ident(&live_name)
        ))
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    let rows: i64 = sqlx::query_scalar(&format!("SELECT count(*) FROM {live}"))
        .fetch_one(pool)
        .await?;
    Ok(RebuildReport {
        target,
        events,
        rows: rows as u64,
        caught_up,
        elapsed: started.elapsed(),
    })
}

/// Pairs each index of `fresh` with the index of `live` it copies, matched on their definitions
/// with the index and table names left out: `(fresh index name, live index name)`.
async fn index_renames(
    tx: &mut Transaction<'_, Postgres>,
    live: &str,
    fresh: &str,
) -> Result<Vec<(String, String)>, ProjectionError> {
    let indexes: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT t.relname::text, i.relname::text, pg_get_indexdef(x.indexrelid) \
           FROM pg_index x \
           JOIN pg_class i ON i.oid = x.indexrelid \
           JOIN pg_class t ON t.oid = x.indrelid \
           JOIN pg_namespace n ON n.oid = t.relnamespace \
          WHERE n.nspname = current_schema() AND t.relname IN ($1, $2)",
    )
    .bind(live)
    .bind(fresh)
    .fetch_all(&mut **tx)
    .await?;
    // `CREATE [UNIQUE] INDEX <name> ON <schema>.<table> USING ...`: keep what follows the table.
    let shape = |table: &str, definition: &str| -> Option<(bool, String)> {
        let unique = definition.starts_with("CREATE UNIQUE INDEX");
        let on = definition.find(" ON ")?;
        let rest = &definition[on + 4..];
        let rest = rest.strip_prefix("ONLY ").unwrap_or(rest);
        let after_table = rest.find(' ').map(|at| &rest[at..])?;
        let qualified = &rest[..rest.len() - after_table.len()];
        let name = qualified.rsplit('.').next().unwrap_or(qualified);
        (name.trim_matches('"') == table).then(|| (unique, after_table.to_string()))
    };
    let live_shapes: Vec<((bool, String), String)> = indexes
        .iter()
        .filter(|(table, _, _)| table == live)
        .filter_map(|(_, name, def)| shape(live, def).map(|s| (s, name.clone())))
        .collect();
    let mut renames = Vec::new();
    for (table, name, definition) in &indexes {
        if table != fresh {
            continue;
        }
        let Some(fresh_shape) = shape(fresh, definition) else {
            continue;
        };
        if let Some((_, live_name)) = live_shapes.iter().find(|(s, _)| *s == fresh_shape)
            && live_name != name
        {
            renames.push((name.clone(), live_name.clone()));
        }
    }
    Ok(renames)
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn account_row_of(aggregate: &Account) -> Row {
    account_row(aggregate.state.as_ref())
}

fn number_row_of(aggregate: &Number) -> Row {
    number_row(aggregate.state.as_ref())
}

fn consent_row_of(aggregate: &Consent) -> Row {
    consent_row(aggregate.state.as_ref())
}

fn civic_row_of(aggregate: &CivicAddress) -> Row {
    civic_address_row(aggregate.state.as_ref())
}

/// Folds every event of `kind` committed before `watermark`, in commit order, and writes the
/// rows in bulk.
async fn replay<A>(
    store: &EventStore,
    kind: Kind,
    fresh: &str,
    watermark: &str,
    row_of: fn(&A) -> Row,
) -> Result<u64, ProjectionError>
where
    A: Aggregate,
    A::Event: DeserializeOwned,
{
    let pool = store.pool();
    let mut aggregates: HashMap<String, (A, u64)> = HashMap::new();
    let mut events = 0u64;
    {
        let mut rows = sqlx::query_as::<_, (String, i64, serde_json::Value)>(
            "SELECT aggregate_id, sequence, payload FROM events \
              WHERE aggregate_type = $1 AND tx_id < $2::text::xid8 \
              ORDER BY tx_id, global_position",
        )
        .bind(kind.aggregate_type())
        .bind(watermark)
        .fetch(pool);
        while let Some((id, sequence, payload)) = rows.try_next().await? {
            let event: A::Event = serde_json::from_value(payload).map_err(|e| {
                ProjectionError::Replay(format!("{}/{id}#{sequence}: {e}", kind.aggregate_type()))
            })?;
            let entry = aggregates.entry(id).or_insert_with(|| (A::default(), 0));
            entry.0.apply(event);
            entry.1 = sequence as u64;
            events += 1;
        }
    }
    // Rows go in in key order, so the table's heap follows its primary key: a page of keys
    // then reads neighbouring blocks, and one account's numbers sit together.
    let mut aggregates: Vec<(String, (A, u64))> = aggregates.into_iter().collect();
    aggregates.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    let mut batch: Vec<(String, u64, Row)> = Vec::with_capacity(2_000);
    for (id, (aggregate, version)) in aggregates {
        batch.push((id, version, row_of(&aggregate)));
        if batch.len() == 2_000 {
            insert_rows(store, kind, fresh, std::mem::take(&mut batch)).await?;
        }
    }
    if !batch.is_empty() {
        insert_rows(store, kind, fresh, batch).await?;
    }
    Ok(events)
}

/// One multi-row insert for a batch of rows.
async fn insert_rows(
    store: &EventStore,
    kind: Kind,
    table: &str,
    rows: Vec<(String, u64, Row)>,
) -> Result<(), ProjectionError> {
    let (_, key) = kind.table();
    let text_columns: Vec<&'static str> = rows
        .first()
        .map(|(_, _, row)| row.text.iter().map(|(c, _)| *c).collect())
        .unwrap_or_default();
    let mut ids = Vec::with_capacity(rows.len());
    let mut versions = Vec::with_capacity(rows.len());
    let mut deleted = Vec::with_capacity(rows.len());
    let mut sync = Vec::with_capacity(rows.len());
    let mut states = Vec::with_capacity(rows.len());
    let mut services = Vec::with_capacity(rows.len());
    let mut texts: Vec<Vec<Option<String>>> =
        vec![Vec::with_capacity(rows.len()); text_columns.len()];
    for (id, version, row) in rows {
        ids.push(id);
        versions.push(version as i64);
        deleted.push(row.deleted);
        sync.push(row.sync_status);
        states.push(row.state.unwrap_or(serde_json::Value::Null));
        // Postgres arrays of arrays must be rectangular: services travel as a text literal.
        services.push(format!(
            "{{{}}}",
            row.services
                .iter()
                .map(|s| format!("\"{s}\""))
                .collect::<Vec<_>>()
                .join(",")
        ));
        // Deleted rows carry no text columns: fill by position.
        for (i, column) in text_columns.iter().enumerate() {
            let value = row
                .text
                .iter()
                .find(|(c, _)| c == column)
                .and_then(|(_, v)| v.clone());
            texts[i].push(value);
        }
    }
    let mut columns = vec![
        key.to_string(),
        "version".into(),
        "deleted".into(),
        "sync_status".into(),
        kind.state_column().to_string(),
    ];
    let mut selects = vec![
        "k".to_string(),
        "v".into(),
        "d".into(),
        "s".into(),
        "NULLIF(j, 'null'::jsonb)".into(),
    ];
    let mut unnest = vec![
        "$1::text[]".to_string(),
        "$2::bigint[]".into(),
        "$3::bool[]".into(),
        "$4::text[]".into(),
        "$5::jsonb[]".into(),
    ];
    let mut aliases = vec!["k", "v", "d", "s", "j"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    let mut parameter = 6;
    for (i, column) in text_columns.iter().enumerate() {
        columns.push(column.to_string());
        selects.push(format!("t{i}"));
        unnest.push(format!("${parameter}::text[]"));
        aliases.push(format!("t{i}"));
        parameter += 1;
    }
    if kind.has_services() {
        columns.push("services".into());
        selects.push("sv::text[]".into());
        unnest.push(format!("${parameter}::text[]"));
        aliases.push("sv".into());
    }
    let sql = format!(
        "INSERT INTO {table} ({}) SELECT {} FROM UNNEST({}) AS r({})",
        columns.join(", "),
        selects.join(", "),
        unnest.join(", "),
        aliases.join(", ")
    );
    let mut query = sqlx::query(&sql)
        .bind(ids)
        .bind(versions)
        .bind(deleted)
        .bind(sync)
        .bind(states);
    for values in texts {
        query = query.bind(values);
    }
    if kind.has_services() {
        query = query.bind(services);
    }
    query.execute(store.pool()).await?;
    Ok(())
}

/// Brings the fresh table up to date, without a lock, with the aggregates that changed since
/// `watermark`; returns how many, and the watermark it caught up to.
async fn catch_up_unlocked(
    store: &EventStore,
    kind: Kind,
    fresh: &str,
    watermark: &str,
) -> Result<(u64, String), ProjectionError> {
    let pool = store.pool();
    let next: String = sqlx::query_scalar("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")
        .fetch_one(pool)
        .await?;
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT aggregate_id FROM events \
          WHERE aggregate_type = $1 AND tx_id >= $2::text::xid8 AND tx_id < $3::text::xid8",
    )
    .bind(kind.aggregate_type())
    .bind(watermark)
    .bind(&next)
    .fetch_all(pool)
    .await?;
    for id in &ids {
        let (version, row) = crate::write::rebuilt_row(store, kind, id).await?;
        let mut tx = pool.begin().await?;
        crate::write::write_row(&mut tx, kind, fresh, id, version, row).await?;
        tx.commit().await?;
    }
    Ok((ids.len() as u64, next))
}

/// Inside the swap: folds, on the swap's own connection (the pool may be busy with readers
/// waiting for the lock), every aggregate changed since `watermark` into the fresh table.
async fn catch_up_locked<A>(
    tx: &mut Transaction<'_, Postgres>,
    kind: Kind,
    fresh: &str,
    watermark: &str,
    row_of: fn(&A) -> Row,
) -> Result<u64, ProjectionError>
where
    A: Aggregate,
    A::Event: DeserializeOwned,
{
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT DISTINCT aggregate_id FROM events WHERE aggregate_type = $1 AND tx_id >= $2::text::xid8",
    )
    .bind(kind.aggregate_type())
    .bind(watermark)
    .fetch_all(&mut **tx)
    .await?;
    for id in &ids {
        let events: Vec<(i64, serde_json::Value)> = sqlx::query_as(
            "SELECT sequence, payload FROM events \
              WHERE aggregate_type = $1 AND aggregate_id = $2 ORDER BY sequence",
        )
        .bind(kind.aggregate_type())
        .bind(id)
        .fetch_all(&mut **tx)
        .await?;
        let mut aggregate = A::default();
        let mut version = 0;
        for (sequence, payload) in events {
            let event: A::Event = serde_json::from_value(payload).map_err(|e| {
                ProjectionError::Replay(format!("{}/{id}#{sequence}: {e}", kind.aggregate_type()))
            })?;
            aggregate.apply(event);
            version = sequence as u64;
        }
        crate::write::write_row(tx, kind, fresh, id, version, row_of(&aggregate)).await?;
    }
    Ok(ids.len() as u64)
}

async fn copy_audit(
    store: &EventStore,
    fresh: &str,
    watermark: &str,
) -> Result<u64, ProjectionError> {
    let sql = crate::write::audit_from_events()
        .replace("{table}", fresh)
        .replace("{condition}", "tx_id < $1::text::xid8");
    let done = sqlx::query(&sql)
        .bind(watermark)
        .execute(store.pool())
        .await?;
    Ok(done.rows_affected())
}

async fn copy_audit_in(
    tx: &mut Transaction<'_, Postgres>,
    fresh: &str,
    watermark: &str,
) -> Result<u64, ProjectionError> {
    let sql = crate::write::audit_from_events()
        .replace("{table}", fresh)
        .replace("{condition}", "tx_id >= $1::text::xid8");
    let done = sqlx::query(&sql).bind(watermark).execute(&mut **tx).await?;
    Ok(done.rows_affected())
}
