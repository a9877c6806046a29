//! Writing one aggregate's read row. A row is a function of its aggregate's events, so it is
//! written from the aggregate rebuilt from the event store — which also repairs any gap — and
//! only when that is newer than what the row holds; the audit rows of the events in between go
//! in the same transaction.

use domain::{
    Account, AccountState, CivicAddress, CivicAddressState, Consent, ConsentState, Number,
    NumberState, Service,
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
    pub fn parse(aggregate_type: &str) -> Option<Kind> {
        match aggregate_type {
            "account" => Some(Kind::Account),
            "number" => Some(Kind::Number),
            "consent" => Some(Kind::Consent),
            "civicAddress" => Some(Kind::CivicAddress),
            _ => None,
        }
    }

    pub fn aggregate_type(self) -> &'static str {
        match self {
            Kind::Account => "account",
            Kind::Number => "number",
            Kind::Consent => "consent",
            Kind::CivicAddress => "civicAddress",
        }
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
    let projected = write_row(&mut tx, kind, table, id, version, row).await?;
    if let Projected::Advanced { from, to } = projected {
        record_audit(&mut tx, kind, id, from, to).await?;
    }
    tx.commit().await?;
    Ok(projected)
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
    pub number_count: Option<i64>,
    pub state: Option<serde_json::Value>,
    pub sync_status: String,
}

fn services(list: impl IntoIterator<Item = Service>) -> Vec<String> {
    list.into_iter()
        .map(|s| s.wire_name().to_string())
        .collect()
}

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
        number_count: Some(state.numbers.len() as i64),
        state: serde_json::to_value(state).ok(),
        sync_status: state.sync.status.as_str().to_string(),
    }
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
        number_count: None,
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
        number_count: None,
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
        number_count: None,
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
    let (_, key) = kind.table();
    let stored: Option<i64> = sqlx::query_scalar(&format!(
        "SELECT version FROM {table} WHERE {key} = $1 FOR UPDATE"
    ))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await?;
    let from = stored.unwrap_or(0) as u64;
    if version <= from {
        return Ok(Projected::Unchanged);
    }
    let mut columns = vec![
        key,
        "version",
        "deleted",
        "sync_status",
        kind.state_column(),
        "updated_at",
    ];
    let mut values = vec!["$1", "$2", "$3", "$4", "$5", "now()"];
    let placeholders = ["$6", "$7", "$8", "$9", "$10", "$11"];
    let mut next = 0;
    for (column, _) in &row.text {
        columns.push(column);
        values.push(placeholders[next]);
        next += 1;
    }
    let services_at = placeholders[next];
    if kind.has_services() {
        columns.push("services");
        values.push(services_at);
        next += 1;
    }
    let count_at = placeholders[next];
    if kind == Kind::Account {
        columns.push("number_count");
        values.push(count_at);
    }
    let updates: Vec<String> = columns
        .iter()
        .skip(1)
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect();
    let sql = format!(
        "INSERT INTO {table} ({}) VALUES ({}) ON CONFLICT ({key}) DO UPDATE SET {} \
         WHERE {table}.version < EXCLUDED.version",
        columns.join(", "),
        values.join(", "),
        updates.join(", ")
    );
    let mut query = sqlx::query(&sql)
        .bind(id)
        .bind(version as i64)
        .bind(row.deleted)
        .bind(row.sync_status)
        .bind(row.state);
    for (_, value) in row.text {
        query = query.bind(value);
    }
    if kind.has_services() {
        query = query.bind(row.services);
    }
    if kind == Kind::Account {
        query = query.bind(row.number_count.unwrap_or(0));
    }
    query.execute(&mut **tx).await?;
    Ok(Projected::Advanced { from, to: version })
}

/// One audit row per event of the aggregate in `(from, to]`; rows already there stay.
async fn record_audit(
    tx: &mut Transaction<'_, Postgres>,
    kind: Kind,
    id: &str,
    from: u64,
    to: u64,
) -> Result<(), ProjectionError> {
    sqlx::query(&AUDIT_FROM_EVENTS.replace("{table}", "audit_log").replace(
        "{condition}",
        "aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3 AND sequence <= $4",
    ))
    .bind(kind.aggregate_type())
    .bind(id)
    .bind(from as i64)
    .bind(to as i64)
    .execute(&mut **tx)
    .await?;
    Ok(())
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
      WHERE aggregate_type IN ('account', 'number', 'consent', 'civicAddress') AND {condition} \
     ON CONFLICT (global_position) DO NOTHING";
