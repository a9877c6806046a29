//! Writing read rows. A row is a function of its aggregate's events, so it is written from the
//! aggregate rebuilt from the event store — which also repairs any gap — and only when that is
//! newer than what the row holds; the audit rows of the events in between go in the same
//! transaction. The projector writes a batch of aggregates at a time (`project_batch`): one
//! load, one read of the stored versions and one upsert per kind, one audit insert, one commit.

use std::collections::{BTreeSet, HashMap};

use domain::{
    Account, AccountState, AggregateKind, CivicAddress, CivicAddressState, Consent, ConsentState,
    Number, NumberState, Service,
};
use serde_json::json;
use sqlx::{Postgres, Transaction};
use store::{EventStore, Loaded};

use crate::ProjectionError;

/// The aggregate types the projector builds rows for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Account,
    Number,
    Consent,
    CivicAddress,
}

impl Kind {
    /// Every kind, in the order a batch writes them.
    pub const ALL: [Kind; 4] = [
        Kind::Account,
        Kind::Number,
        Kind::Consent,
        Kind::CivicAddress,
    ];

    pub fn parse(aggregate_type: &str) -> Option<Kind> {
        AggregateKind::parse(aggregate_type).map(Kind::from)
    }

    pub fn aggregate_type(self) -> &'static str {
        AggregateKind::from(self).as_str()
    }

    /// Accounts and numbers list the services they use.
    pub fn has_services(self) -> bool {
        matches!(self, Kind::Account | Kind::Number)
    }

    /// The column holding the row's JSON: the domain state, or for civic addresses the API's
    /// resource.
    pub fn state_column(self) -> &'static str {
        match self {
            Kind::CivicAddress => "address",
            _ => "state",
        }
    }

    /// The read table and its key column.
    pub fn table(self) -> (&'static str, &'static str) {
        match self {
            Kind::Account => ("read_accounts", "name"),
            Kind::Number => ("read_numbers", "telephone_number"),
            Kind::Consent => ("read_consents", "tenant_id"),
            Kind::CivicAddress => ("read_civic_addresses", "civic_address_id"),
        }
    }
}

/// Every aggregate kind has its read table: a new kind does not compile until it has one.
impl From<AggregateKind> for Kind {
    fn from(kind: AggregateKind) -> Kind {
        match kind {
            AggregateKind::Account => Kind::Account,
            AggregateKind::Number => Kind::Number,
            AggregateKind::Consent => Kind::Consent,
            AggregateKind::CivicAddress => Kind::CivicAddress,
        }
    }
}

impl From<Kind> for AggregateKind {
    fn from(kind: Kind) -> AggregateKind {
        match kind {
            Kind::Account => AggregateKind::Account,
            Kind::Number => AggregateKind::Number,
            Kind::Consent => AggregateKind::Consent,
            Kind::CivicAddress => AggregateKind::CivicAddress,
        }
    }
}

/// What projecting an aggregate did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projected {
    /// The row moved from one version to another.
    Advanced { from: u64, to: u64 },
    /// The row already held this version or a newer one.
    Unchanged,
}

/// Brings the read row of aggregate `id` up to the event store, in `table` (the live table,
/// or a table being rebuilt).
pub async fn project(
    store: &EventStore,
    kind: Kind,
    id: &str,
    table: &str,
) -> Result<Projected, ProjectionError> {
    // Rebuild first, then take a connection for the write: a projection never holds two.
    let (version, row) = rebuilt_row(store, kind, id).await?;
    let mut tx = store.pool().begin().await?;
    let rows = vec![(id.to_string(), version, row)];
    let counted = counted_accounts(&mut tx, kind, &rows).await?;
    let moved = write_rows(&mut tx, kind, table, rows).await?;
    record_audit(&mut tx, &moved).await?;
    tx.commit().await?;
    if table == kind.table().0 {
        recount_accounts(store.pool(), &counted).await?;
    }
    Ok(moved
        .first()
        .map_or(Projected::Unchanged, |m| Projected::Advanced {
            from: m.from,
            to: m.to,
        }))
}

/// An aggregate whose row a batch moved on, from one version to another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Moved {
    pub kind: Kind,
    pub id: String,
    pub from: u64,
    pub to: u64,
}

/// Brings the live read rows of `aggregates` (any kinds; an aggregate named twice is projected
/// once) up to the event store, with their audit rows, in one transaction: the aggregates of
/// each kind are rebuilt with one load, their stored versions read with one query, the rows
/// that moved on written with one upsert, and the audit rows of every event in between with
/// one insert. Answers the rows that moved on.
///
/// Without row locks, two batches (or two projector instances) racing on an aggregate write
/// the same thing: the upsert only replaces an older version, and audit rows already there
/// stay. Rows are written in one order (kind, then key), so racing batches queue on each other
/// instead of deadlocking.
pub async fn project_batch(
    store: &EventStore,
    aggregates: &[(Kind, String)],
) -> Result<Vec<Moved>, ProjectionError> {
    let mut by_kind: Vec<(Kind, Vec<String>)> = Vec::new();
    for kind in Kind::ALL {
        let ids: BTreeSet<&str> = aggregates
            .iter()
            .filter(|(k, _)| *k == kind)
            .map(|(_, id)| id.as_str())
            .collect();
        if !ids.is_empty() {
            by_kind.push((kind, ids.into_iter().map(str::to_string).collect()));
        }
    }
    // Rebuild first, then take a connection for the write: a projection never holds two.
    let mut rows = Vec::with_capacity(by_kind.len());
    for (kind, ids) in by_kind {
        rows.push((kind, rebuilt_rows(store, kind, ids).await?));
    }
    let mut tx = store.pool().begin().await?;
    // The accounts whose counts of numbers the batch may change, read before the rows move.
    let mut counted = Vec::new();
    for (kind, rows) in &rows {
        counted.extend(counted_accounts(&mut tx, *kind, rows).await?);
    }
    let mut moved = Vec::new();
    for (kind, rows) in rows {
        moved.extend(write_rows(&mut tx, kind, kind.table().0, rows).await?);
    }
    record_audit(&mut tx, &moved).await?;
    tx.commit().await?;
    // Recounted even when no row moved: a batch redelivered after a crash between its commit
    // and its recount recounts then.
    recount_accounts(store.pool(), &counted).await?;
    Ok(moved)
}

/// The rows of aggregates `ids` of one kind as their events make them, with their versions,
/// rebuilt with one load.
async fn rebuilt_rows(
    store: &EventStore,
    kind: Kind,
    ids: Vec<String>,
) -> Result<Vec<(String, u64, Row)>, ProjectionError> {
    fn rows<A>(
        ids: Vec<String>,
        loaded: Vec<Loaded<A>>,
        row: impl Fn(&A) -> Row,
    ) -> Vec<(String, u64, Row)> {
        ids.into_iter()
            .zip(loaded)
            .map(|(id, loaded)| (id, loaded.version, row(&loaded.aggregate)))
            .collect()
    }
    Ok(match kind {
        Kind::Account => {
            let loaded = store.load_many::<Account>(&ids).await?;
            rows(ids, loaded, |a| account_row(a.state.as_ref()))
        }
        Kind::Number => {
            let loaded = store.load_many::<Number>(&ids).await?;
            rows(ids, loaded, |a| number_row(a.state.as_ref()))
        }
        Kind::Consent => {
            let loaded = store.load_many::<Consent>(&ids).await?;
            rows(ids, loaded, |a| consent_row(a.state.as_ref()))
        }
        Kind::CivicAddress => {
            let loaded = store.load_many::<CivicAddress>(&ids).await?;
            rows(ids, loaded, |a| civic_address_row(a.state.as_ref()))
        }
    })
}

/// The row of aggregate `id` as its events make it, with its version.
pub async fn rebuilt_row(
    store: &EventStore,
    kind: Kind,
    id: &str,
) -> Result<(u64, Row), ProjectionError> {
    Ok(match kind {
        Kind::Account => {
            let loaded: Loaded<Account> = store.load::<Account>(id).await?;
            (loaded.version, account_row(loaded.aggregate.state.as_ref()))
        }
        Kind::Number => {
            let loaded: Loaded<Number> = store.load::<Number>(id).await?;
            (loaded.version, number_row(loaded.aggregate.state.as_ref()))
        }
        Kind::Consent => {
            let loaded: Loaded<Consent> = store.load::<Consent>(id).await?;
            (loaded.version, consent_row(loaded.aggregate.state.as_ref()))
        }
        Kind::CivicAddress => {
            let loaded: Loaded<CivicAddress> = store.load::<CivicAddress>(id).await?;
            (
                loaded.version,
                civic_address_row(loaded.aggregate.state.as_ref()),
            )
        }
    })
}

/// The columns of a row besides its key and version; `None` fields are NULL.
#[derive(Debug, Default)]
pub struct Row {
    pub deleted: bool,
    pub text: Vec<(&'static str, Option<String>)>,
    pub services: Vec<String>,
    pub state: Option<serde_json::Value>,
    pub sync_status: String,
}

fn services(list: impl IntoIterator<Item = Service>) -> Vec<String> {
    list.into_iter()
        .map(|s| s.wire_name().to_string())
        .collect()
}

/// An account's row: the aggregate's state. The counts of its numbers are columns of the row
/// (`number_count`, `number_counts`) that only [`recount`] writes, from the number rows: an
/// account's events do not change when its numbers do.
pub fn account_row(state: Option<&AccountState>) -> Row {
    let Some(state) = state else {
        return deleted_row(Kind::Account);
    };
    let enabled = Service::ALL
        .into_iter()
        .filter(|s| state.services.is_enabled(*s));
    Row {
        deleted: false,
        text: vec![(
            "teams_tenant_id",
            state
                .services
                .teams_tenant_id
                .as_ref()
                .map(ToString::to_string),
        )],
        services: services(enabled),
        state: serde_json::to_value(state).ok(),
        sync_status: state.sync.status.as_str().to_string(),
    }
}

/// The accounts whose counts of numbers writing `rows` (of `kind`) may change: the accounts
/// written, and for numbers the account each belonged to (as its stored row says, or its
/// deletion) and belongs to now.
pub(crate) async fn counted_accounts(
    tx: &mut Transaction<'_, Postgres>,
    kind: Kind,
    rows: &[(String, u64, Row)],
) -> Result<Vec<String>, ProjectionError> {
    match kind {
        Kind::Account => Ok(rows.iter().map(|(id, _, _)| id.clone()).collect()),
        Kind::Number => {
            let ids: Vec<&str> = rows.iter().map(|(id, _, _)| id.as_str()).collect();
            let mut accounts: Vec<String> = sqlx::query_scalar(
                "SELECT DISTINCT account_name FROM read_numbers \
                  WHERE telephone_number = ANY($1) AND account_name IS NOT NULL",
            )
            .bind(&ids)
            .fetch_all(&mut **tx)
            .await?;
            for (_, _, row) in rows {
                let account = row
                    .text
                    .iter()
                    .find(|(column, _)| *column == "account_name")
                    .and_then(|(_, value)| value.clone());
                accounts.extend(account);
            }
            // A deleted number's row names no account, and its stored row may not be readable
            // yet (written by a batch still in flight): the account it left is in its
            // `NumberDeleted` event.
            let deleted: Vec<&str> = rows
                .iter()
                .filter(|(_, _, row)| row.deleted)
                .map(|(id, _, _)| id.as_str())
                .collect();
            if !deleted.is_empty() {
                let left: Vec<Option<String>> = sqlx::query_scalar(
                    "SELECT DISTINCT ON (aggregate_id) payload->'NumberDeleted'->>'account' \
                       FROM events \
                      WHERE aggregate_type = 'number' AND aggregate_id = ANY($1) \
                        AND event_type = 'NumberDeleted' \
                      ORDER BY aggregate_id, sequence DESC",
                )
                .bind(&deleted)
                .fetch_all(&mut **tx)
                .await?;
                accounts.extend(left.into_iter().flatten());
            }
            Ok(accounts)
        }
        Kind::Consent | Kind::CivicAddress => Ok(Vec::new()),
    }
}

/// The advisory lock of the counts: recounts of some accounts share it, a recount of all takes
/// it alone.
const COUNTS_LOCK: &str = "hashtextextended('nmp.read_counts', 0)";

/// Recounts the numbers of `accounts` into their live rows, in a transaction of its own taken
/// after the rows it counts are committed. Each account's lock is held before the counting
/// statement takes its snapshot, so recounts of one account run one after the other and the
/// last one sees every number row committed before it: the count left is never older than the
/// rows. (Counting inside a batch's own transaction would miss another batch's rows, uncommitted
/// when counted, and that batch's count would miss these.)
pub(crate) async fn recount_accounts(
    pool: &sqlx::PgPool,
    accounts: &[String],
) -> Result<(), ProjectionError> {
    if accounts.is_empty() {
        return Ok(());
    }
    let mut accounts = accounts.to_vec();
    accounts.sort();
    accounts.dedup();
    let mut tx = pool.begin().await?;
    sqlx::query(&format!(
        "SELECT pg_advisory_xact_lock_shared({COUNTS_LOCK})"
    ))
    .execute(&mut *tx)
    .await?;
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtextextended('nmp.read_counts:' || a, 0)) \
           FROM (SELECT unnest($1::text[]) AS a ORDER BY 1) AS wanted",
    )
    .bind(&accounts)
    .execute(&mut *tx)
    .await?;
    recount(&mut tx, "read_accounts", "read_numbers", Some(&accounts)).await?;
    tx.commit().await?;
    Ok(())
}

/// Recounts the numbers of every account of `accounts_table` from `numbers_table`, holding the
/// counts' lock alone. Take it before any table lock: recounts of some accounts take the
/// counts' lock first, then the tables'.
pub(crate) async fn recount_all(
    tx: &mut Transaction<'_, Postgres>,
    accounts_table: &str,
    numbers_table: &str,
) -> Result<(), ProjectionError> {
    lock_all_counts(tx).await?;
    recount(tx, accounts_table, numbers_table, None).await
}

/// Recounts the numbers of every account of `accounts_table` (the live table, or one being
/// built) from `numbers_table`, in a transaction of its own.
pub async fn recount_table(
    pool: &sqlx::PgPool,
    accounts_table: &str,
    numbers_table: &str,
) -> Result<(), ProjectionError> {
    let mut tx = pool.begin().await?;
    recount_all(&mut tx, accounts_table, numbers_table).await?;
    tx.commit().await?;
    Ok(())
}

/// Takes the counts' lock alone, until the transaction ends.
pub(crate) async fn lock_all_counts(
    tx: &mut Transaction<'_, Postgres>,
) -> Result<(), ProjectionError> {
    sqlx::query(&format!("SELECT pg_advisory_xact_lock({COUNTS_LOCK})"))
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Writes the counts of the live numbers of `accounts` (all accounts with `None`) into the
/// account rows of `accounts_table`, counted from `numbers_table`.
async fn recount(
    tx: &mut Transaction<'_, Postgres>,
    accounts_table: &str,
    numbers_table: &str,
    accounts: Option<&[String]>,
) -> Result<(), ProjectionError> {
    let (scope, numbers_scope) = match accounts {
        Some([]) => return Ok(()),
        Some(_) => ("a.name = ANY($1)", "AND n.account_name = ANY($1)"),
        None => ("true", ""),
    };
    let sql = format!(
        "WITH totals AS (SELECT n.account_name, count(*) AS total FROM {numbers_table} n \
                          WHERE NOT n.deleted {numbers_scope} GROUP BY 1), \
              per AS (SELECT n.account_name, s, count(*) AS k \
                        FROM {numbers_table} n, unnest(n.services) AS s \
                       WHERE NOT n.deleted {numbers_scope} GROUP BY 1, 2), \
              by_service AS (SELECT account_name, jsonb_object_agg(s, k) AS counts \
                               FROM per GROUP BY 1) \
         UPDATE {accounts_table} a \
            SET number_count = COALESCE(t.total, 0), \
                number_counts = COALESCE(b.counts, '{{}}'::jsonb) \
           FROM {accounts_table} a2 \
           LEFT JOIN totals t ON t.account_name = a2.name \
           LEFT JOIN by_service b ON b.account_name = a2.name \
          WHERE a.name = a2.name AND {scope} \
            AND (a.number_count IS DISTINCT FROM COALESCE(t.total, 0) \
                 OR a.number_counts IS DISTINCT FROM COALESCE(b.counts, '{{}}'::jsonb))"
    );
    let mut query = sqlx::query(&sql);
    if let Some(accounts) = accounts {
        query = query.bind(accounts);
    }
    query.execute(&mut **tx).await?;
    Ok(())
}

pub fn number_row(state: Option<&NumberState>) -> Row {
    let Some(state) = state else {
        return deleted_row(Kind::Number);
    };
    let teams = state
        .details
        .teams_operator_connect
        .as_ref()
        .filter(|s| s.enabled)
        .or(state
            .details
            .teams_phone_mobile
            .as_ref()
            .filter(|s| s.enabled));
    let usage = teams
        .and_then(|s| s.configuration.as_ref())
        .map(|c| c.usage.as_str().to_string());
    let assignment = teams
        .and_then(|s| s.assignment_status)
        .map(|a| a.as_str().to_string());
    Row {
        deleted: false,
        text: vec![
            ("account_name", Some(state.account.to_string())),
            ("usage", usage),
            ("assignment_status", assignment),
            (
                "custom_sip_header",
                state
                    .details
                    .custom_sip_header
                    .as_ref()
                    .map(ToString::to_string),
            ),
        ],
        services: services(state.details.enabled_services()),
        state: serde_json::to_value(state).ok(),
        sync_status: state.sync.status.as_str().to_string(),
    }
}

pub fn consent_row(state: Option<&ConsentState>) -> Row {
    let Some(state) = state else {
        return deleted_row(Kind::Consent);
    };
    Row {
        deleted: false,
        text: vec![
            ("status", Some(state.report.status.as_str().to_string())),
            (
                "relationship_status",
                state
                    .relationship
                    .as_ref()
                    .map(|r| r.status.as_str().to_string()),
            ),
        ],
        services: Vec::new(),
        state: serde_json::to_value(state).ok(),
        sync_status: state.sync.status.as_str().to_string(),
    }
}

pub fn civic_address_row(state: Option<&CivicAddressState>) -> Row {
    let Some(state) = state else {
        return deleted_row(Kind::CivicAddress);
    };
    let report = &state.report;
    let resource = json!({
        "id": state.id.as_str(),
        "tenantId": state.tenant_id.as_str(),
        "country": report.country.as_str(),
        "houseNumber": report.house_number,
        "houseNumberSuffix": report.house_number_suffix,
        "preDirectional": report.pre_directional,
        "streetName": report.street_name,
        "streetSuffix": report.street_suffix,
        "postDirectional": report.post_directional,
        "stateOrProvince": report.state_or_province,
        "countyOrDistrict": report.county_or_district,
        "cityOrTown": report.city_or_town,
        "cityOrTownAlias": report.city_or_town_alias,
        "postalOrZipCode": report.postal_or_zip_code,
        "description": report.description,
        "companyName": report.company_name,
        "companyId": report.company_id,
        "defaultLocationId": report.default_location_id.as_ref().map(|l| l.as_str()),
        "validationStatus": report.validation_status.as_str(),
        "partnerId": report.partner_id,
        "latitude": report.latitude,
        "longitude": report.longitude,
        "locations": report.locations.iter().map(|l| json!({
            "id": l.id.as_str(),
            "civicAddressId": state.id.as_str(),
            "description": l.description,
            "additionalInfo": l.additional_info,
            "isDefault": l.is_default,
            "elin": l.elin,
        })).collect::<Vec<_>>(),
    });
    // The API leaves out what the backend did not report.
    let resource = strip_nulls(resource);
    Row {
        deleted: false,
        text: vec![
            ("tenant_id", Some(state.tenant_id.to_string())),
            ("country", Some(report.country.to_string())),
            (
                "validation_status",
                Some(report.validation_status.as_str().to_string()),
            ),
        ],
        services: Vec::new(),
        state: Some(resource),
        sync_status: "synced".to_string(),
    }
}

fn strip_nulls(value: serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => serde_json::Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(strip_nulls).collect())
        }
        other => other,
    }
}

/// The filter columns of each table besides key, version, services and counts.
fn text_columns(kind: Kind) -> &'static [&'static str] {
    match kind {
        Kind::Account => &["teams_tenant_id"],
        Kind::Number => &[
            "account_name",
            "usage",
            "assignment_status",
            "custom_sip_header",
        ],
        Kind::Consent => &["status", "relationship_status"],
        Kind::CivicAddress => &["tenant_id", "country", "validation_status"],
    }
}

/// A deleted aggregate's row: every column cleared, so a row deleted live and one rebuilt are
/// the same.
fn deleted_row(kind: Kind) -> Row {
    Row {
        deleted: true,
        text: text_columns(kind).iter().map(|c| (*c, None)).collect(),
        sync_status: "deleted".to_string(),
        ..Row::default()
    }
}

/// Upserts the row if `version` is newer than the stored one; returns what moved.
pub async fn write_row(
    tx: &mut Transaction<'_, Postgres>,
    kind: Kind,
    table: &str,
    id: &str,
    version: u64,
    row: Row,
) -> Result<Projected, ProjectionError> {
    let moved = write_rows(tx, kind, table, vec![(id.to_string(), version, row)]).await?;
    Ok(moved
        .first()
        .map_or(Projected::Unchanged, |m| Projected::Advanced {
            from: m.from,
            to: m.to,
        }))
}

/// Writes the rows of aggregates of one kind (`(id, version, row)`, ids distinct) into
/// `table`, each only if its version is newer than the stored one: one query reads the stored
/// versions, one upsert writes the rows that moved on, in key order. Returns those, with the
/// versions they moved from and to.
///
/// The stored versions are read without locking: the upsert itself only replaces an older
/// version, so a row written meanwhile by someone else is never overwritten by an older one,
/// and the `from` answered is at worst lower than it could be (its audit rows already there).
pub async fn write_rows(
    tx: &mut Transaction<'_, Postgres>,
    kind: Kind,
    table: &str,
    mut rows: Vec<(String, u64, Row)>,
) -> Result<Vec<Moved>, ProjectionError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let (_, key) = kind.table();
    let ids: Vec<&str> = rows.iter().map(|(id, _, _)| id.as_str()).collect();
    let stored: HashMap<String, i64> = sqlx::query_as::<_, (String, i64)>(&format!(
        "SELECT {key}, version FROM {table} WHERE {key} = ANY($1)"
    ))
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await?
    .into_iter()
    .collect();
    rows.retain(|(id, version, _)| *version > stored.get(id).map_or(0, |v| *v as u64));
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    // One order for every writer: racing batches wait for each other's rows, never deadlock.
    rows.sort_by(|a, b| a.0.cmp(&b.0));

    // The filter columns: the kind's, and any other a row names (matched by name; a row
    // without one leaves it NULL).
    let mut text: Vec<&'static str> = text_columns(kind).to_vec();
    for (_, _, row) in &rows {
        for (column, _) in &row.text {
            if !text.contains(column) {
                text.push(column);
            }
        }
    }
    let mut moved = Vec::with_capacity(rows.len());
    let mut keys = Vec::with_capacity(rows.len());
    let mut versions = Vec::with_capacity(rows.len());
    let mut deleted = Vec::with_capacity(rows.len());
    let mut sync = Vec::with_capacity(rows.len());
    let mut states = Vec::with_capacity(rows.len());
    let mut services = Vec::with_capacity(rows.len());
    let mut texts: Vec<Vec<Option<String>>> = vec![Vec::with_capacity(rows.len()); text.len()];
    for (id, version, row) in rows {
        moved.push(Moved {
            kind,
            from: stored.get(&id).map_or(0, |v| *v as u64),
            to: version,
            id: id.clone(),
        });
        keys.push(id);
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
        let mut values = row.text;
        for (column, out) in text.iter().zip(texts.iter_mut()) {
            out.push(
                values
                    .iter_mut()
                    .find(|(c, _)| c == column)
                    .and_then(|(_, v)| v.take()),
            );
        }
    }

    let state = kind.state_column();
    let mut columns = vec![
        key,
        "version",
        "deleted",
        "sync_status",
        state,
        "updated_at",
    ];
    let mut selects = vec![
        "k".to_string(),
        "v".into(),
        "d".into(),
        "s".into(),
        "NULLIF(j, 'null'::jsonb)".into(),
        "now()".into(),
    ];
    let mut arrays = vec![
        "$1::text[]".to_string(),
        "$2::bigint[]".into(),
        "$3::bool[]".into(),
        "$4::text[]".into(),
        "$5::jsonb[]".into(),
    ];
    let mut aliases: Vec<String> = ["k", "v", "d", "s", "j"].map(String::from).into();
    for (i, column) in text.iter().enumerate() {
        columns.push(column);
        selects.push(format!("t{i}"));
        arrays.push(format!("${}::text[]", arrays.len() + 1));
        aliases.push(format!("t{i}"));
    }
    if kind.has_services() {
        columns.push("services");
        selects.push("sv::text[]".into());
        arrays.push(format!("${}::text[]", arrays.len() + 1));
        aliases.push("sv".into());
    }
    let updates: Vec<String> = columns
        .iter()
        .skip(1)
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect();
    let sql = format!(
        "INSERT INTO {table} ({}) SELECT {} FROM UNNEST({}) AS r({}) \
         ON CONFLICT ({key}) DO UPDATE SET {} WHERE {table}.version < EXCLUDED.version",
        columns.join(", "),
        selects.join(", "),
        arrays.join(", "),
        aliases.join(", "),
        updates.join(", ")
    );
    let mut query = sqlx::query(&sql)
        .bind(keys)
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
    query.execute(&mut **tx).await?;
    Ok(moved)
}

/// One audit row per event of each moved aggregate in `(from, to]`, with one statement; rows
/// already there stay.
async fn record_audit(
    tx: &mut Transaction<'_, Postgres>,
    moved: &[Moved],
) -> Result<(), ProjectionError> {
    // The events by key (the events' primary key), which the planner finds one index lookup
    // each for; a range per aggregate would not tell it how few rows it wants.
    let events: usize = moved.iter().map(|m| (m.to - m.from) as usize).sum();
    if events == 0 {
        return Ok(());
    }
    let mut types = Vec::with_capacity(events);
    let mut ids = Vec::with_capacity(events);
    let mut sequences = Vec::with_capacity(events);
    for m in moved {
        for sequence in m.from + 1..=m.to {
            types.push(m.kind.aggregate_type());
            ids.push(m.id.as_str());
            sequences.push(sequence as i64);
        }
    }
    sqlx::query(
        &audit_from_events().replace("{table}", "audit_log").replace(
            "{condition}",
            "(aggregate_type, aggregate_id, sequence) IN \
         (SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[]))",
        ),
    )
    .bind(types)
    .bind(ids)
    .bind(sequences)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// [`AUDIT_FROM_EVENTS`] with every aggregate kind filled in.
pub(crate) fn audit_from_events() -> String {
    let kinds: Vec<String> = AggregateKind::names()
        .iter()
        .map(|name| format!("'{name}'"))
        .collect();
    AUDIT_FROM_EVENTS.replace("{kinds}", &kinds.join(", "))
}

/// Audit rows of the events that meet `{condition}`, into `{table}`; rows already there stay.
/// The live projector and the rebuild both write audit rows with it.
pub(crate) const AUDIT_FROM_EVENTS: &str = "INSERT INTO {table} (global_position, aggregate_type, aggregate_id, sequence, \
        event_type, subject, roles, ticket_id, correlation_id, client_request_id, occurred_at) \
     SELECT global_position, aggregate_type, aggregate_id, sequence, event_type, \
            metadata->>'subject', metadata->'roles', metadata->>'ticket_id', \
            metadata->>'correlation_id', metadata->>'client_request_id', \
            (metadata->>'time')::timestamptz \
       FROM events \
      WHERE aggregate_type IN ({kinds}) AND {condition} \
     ON CONFLICT (global_position) DO NOTHING";
