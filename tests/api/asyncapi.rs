//! `docs/asyncapi.yaml` is the contract of nmp's NATS interface; these tests keep it honest
//! against the code: every event the domain can emit is a documented message whose schema names
//! its fields, every header the relay sets is documented, the stream and subject rules match the
//! relay's, and every operation of the NATS API has its channel, operation and permission.
//! The checks read the YAML as text (the workspace has no YAML parser), relying on its two-space
//! block layout.

use std::collections::BTreeSet;
use std::path::PathBuf;

use auth::AuthError;
use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::DomainEvent;
use domain::consent::RelationshipNote;
use domain::{
    AccountEvent, AccountName, AccountServices, AssignmentStatus, Capability, Comment,
    ConsentEvent, ConsentReport, ConsentStatus, Contact, CountryCode, DirectRoutingConfiguration,
    DirectRoutingService, E164, Identifier, NumberDetails, NumberEvent, NumberMembership,
    PlainService, ProvisioningError, Service, SipHeaderValue, Subdomain, SubdomainToken,
    SyncableService, TeamsNumberConfiguration, TeamsNumberService, TenantId, TicketId, Usage,
};
use relay::StreamSettings;
use relay::message::subject_token;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Every event type of the domain, by aggregate type, as the document lists them.
const EVENTS: &[(&str, &str)] = &[
    ("account", "AccountCreated"),
    ("account", "AccountUpdated"),
    ("account", "NumbersAdded"),
    ("account", "NumbersRemoved"),
    ("account", "AccountDeleted"),
    ("account", "AccountDeletionRequested"),
    ("account", "AccountProvisioningRetried"),
    ("account", "AccountProvisioned"),
    ("account", "AccountProvisioningFailed"),
    ("number", "NumberAdded"),
    ("number", "NumberUpdated"),
    ("number", "SipHeaderSet"),
    ("number", "SipHeaderCleared"),
    ("number", "NumberDeleted"),
    ("number", "NumberDeletionRequested"),
    ("number", "NumberProvisioningRetried"),
    ("number", "NumberProvisioned"),
    ("number", "NumberProvisioningFailed"),
    ("consent", "ConsentRecorded"),
    ("consent", "ConsentChanged"),
    ("consent", "ConsentAcknowledged"),
    ("consent", "CustomerContacted"),
    ("consent", "AgreementSigned"),
    ("consent", "ConsentDeclined"),
    ("consent", "ContractTerminated"),
    ("consent", "ConsentProvisioned"),
    ("consent", "ConsentProvisioningFailed"),
    ("consent", "ConsentProvisioningRetried"),
];

/// Every operation of the NATS API (`<prefix>.api.<operation>`), the key of its channel and
/// operation in the document, and the permission it needs.
const OPERATIONS: &[(&str, &str, &str)] = &[
    ("accounts.get", "accountsGet", "Read"),
    (
        "accounts.createOrReplace",
        "accountsCreateOrReplace",
        "Write",
    ),
    ("accounts.delete", "accountsDelete", "Delete"),
    (
        "accounts.retryProvisioning",
        "accountsRetryProvisioning",
        "Write",
    ),
    (
        "accounts.getTeamsCapabilityPlans",
        "accountsGetTeamsCapabilityPlans",
        "Write",
    ),
    (
        "accounts.getTeamsAvailableCapabilities",
        "accountsGetTeamsAvailableCapabilities",
        "Write",
    ),
    ("numbers.get", "numbersGet", "Read"),
    ("numbers.createOrReplace", "numbersCreateOrReplace", "Write"),
    ("numbers.delete", "numbersDelete", "Delete"),
    (
        "numbers.createOrUpdateBatch",
        "numbersCreateOrUpdateBatch",
        "Write",
    ),
    ("numbers.deleteBatch", "numbersDeleteBatch", "Delete"),
    (
        "numbers.setCustomSipHeader",
        "numbersSetCustomSipHeader",
        "Write",
    ),
    (
        "numbers.retryProvisioning",
        "numbersRetryProvisioning",
        "Write",
    ),
    (
        "requestsForInformation.get",
        "requestsForInformationGet",
        "Read",
    ),
    (
        "requestsForInformation.updateRelationship",
        "requestsForInformationUpdateRelationship",
        "Write",
    ),
    (
        "requestsForInformation.retryProvisioning",
        "requestsForInformationRetryProvisioning",
        "Write",
    ),
];

/// Headers a NATS API request may carry.
const REQUEST_HEADERS: &[&str] = &[
    "Authorization",
    "If-Match",
    "If-None-Match",
    "x-nmp-ticket-id",
    "x-ms-client-request-id",
    "x-ms-correlation-id",
    "traceparent",
];

/// Headers of NATS API replies, on success or on error.
const REPLY_HEADERS: &[&str] = &[
    "Nmp-Status",
    "ETag",
    "Nats-Service-Error",
    "Nats-Service-Error-Code",
    "Nmp-Error-Code",
];

/// Error codes particular to the NATS API or named by its contract.
const API_ERROR_CODES: &[&str] = &[
    "UnknownOperation",
    "InvalidJson",
    "InvalidRequestBody",
    "Forbidden",
    "RequestBodyTooLarge",
    "NumberBeingDeleted",
    "AccountBeingDeleted",
    "ProvisioningNotFailed",
    "BackendNotConfigured",
    "BackendUnavailable",
];

fn workspace_file(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(path);
    std::fs::read_to_string(&full)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", full.display()))
}

fn document() -> String {
    workspace_file("docs/asyncapi.yaml")
}

fn indentation(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

/// The block under the mapping keys `path`, each one level (two spaces) below the previous,
/// starting at the document's top level; `None` when a key is missing.
fn block(text: &str, path: &[&str]) -> Option<String> {
    let mut lines: Vec<&str> = text.lines().collect();
    for (level, key) in path.iter().enumerate() {
        let indent = level * 2;
        let header = format!("{}{key}:", " ".repeat(indent));
        let start = lines.iter().position(|line| {
            line.trim_end() == header || line.starts_with(&format!("{header} "))
        })?;
        let rest = &lines[start + 1..];
        let end = rest
            .iter()
            .position(|line| !line.trim().is_empty() && indentation(line) <= indent)
            .unwrap_or(rest.len());
        lines = rest[..end].to_vec();
    }
    Some(lines.join("\n"))
}

fn expect_block(text: &str, path: &[&str]) -> String {
    block(text, path).unwrap_or_else(|| panic!("docs/asyncapi.yaml has no {}", path.join(".")))
}

/// Whether `block` has a line that is the mapping key `key` (at any depth).
fn has_key(block: &str, key: &str) -> bool {
    block.lines().any(|line| {
        let line = line.trim_start();
        line == format!("{key}:") || line.starts_with(&format!("{key}: "))
    })
}

// ---- one instance of every event, every optional field given --------------------------------

fn at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, 0).unwrap()
}

fn number() -> E164 {
    E164::parse("+441632960001").unwrap()
}

fn account_name() -> AccountName {
    AccountName::parse("contoso").unwrap()
}

fn identifier(value: &str) -> Identifier {
    Identifier::parse(value).unwrap()
}

fn errors() -> Vec<ProvisioningError> {
    vec![ProvisioningError {
        code: "NumberTaken".to_string(),
        message: "the number is held by another operator".to_string(),
    }]
}

fn account_services() -> AccountServices {
    let syncable = SyncableService {
        enabled: true,
        sync_enabled: true,
    };
    AccountServices {
        teams_tenant_id: Some(TenantId::parse("a7f4bd5c-cc01-40f4-8baa-2b6bdb272b8a").unwrap()),
        teams_operator_connect: Some(syncable),
        teams_phone_mobile: Some(syncable),
        teams_direct_routing: Some(DirectRoutingService {
            enabled: true,
            sync_enabled: false,
            configuration: Some(DirectRoutingConfiguration {
                call_screening: true,
                subdomain: Subdomain::parse("contoso").unwrap(),
                region1_token: SubdomainToken::parse("token1==").unwrap(),
                region2_token: SubdomainToken::parse("token2==").unwrap(),
            }),
        }),
        zoom_phone_cloud_peering: Some(syncable),
        azure_operator_call_protection: Some(PlainService { enabled: true }),
    }
}

fn number_details() -> NumberDetails {
    let teams = TeamsNumberService {
        enabled: true,
        assignment_status: Some(AssignmentStatus::Unassigned),
        configuration: Some(TeamsNumberConfiguration {
            usage: Usage::CallingUserAssignment,
            choosable_capabilities: vec![Capability::InboundCalling, Capability::OutboundCalling],
            additional_usages: vec![Usage::ConferenceAssignment],
            civic_address_id: Some(identifier("civic-1")),
            location_id: Some(identifier("location-1")),
            allow_tenant_address_update: true,
            displayed_country_code: Some(CountryCode::parse("GB").unwrap()),
        }),
    };
    NumberDetails {
        teams_operator_connect: Some(teams.clone()),
        teams_phone_mobile: Some(teams),
        teams_direct_routing: Some(PlainService { enabled: true }),
        zoom_phone_cloud_peering: Some(PlainService { enabled: true }),
        azure_operator_call_protection: Some(PlainService { enabled: false }),
        custom_sip_header: Some(SipHeaderValue::parse("trunk-7").unwrap()),
    }
}

fn consent_report() -> ConsentReport {
    ConsentReport {
        consent_id: identifier("consent-1"),
        operator_id: Some(identifier("operator-1")),
        status: ConsentStatus::Active,
        consented_on: at(),
        countries: vec![CountryCode::parse("GB").unwrap()],
        contacts: vec![Contact {
            full_name: "Ada Lovelace".to_string(),
            email: "ada@contoso.example".to_string(),
            telephone_number: Some("+441632960999".to_string()),
            company_name: Some("Contoso".to_string()),
            company_size: Some("100-500".to_string()),
        }],
    }
}

fn note() -> RelationshipNote {
    RelationshipNote {
        comment: Some(Comment::parse("called the customer").unwrap()),
        ticket_id: Some(TicketId::parse("CHG-42").unwrap()),
        at: at(),
    }
}

fn account_events() -> Vec<AccountEvent> {
    vec![
        AccountEvent::AccountCreated {
            name: account_name(),
            correlation_id: Some(identifier("crm-1")),
            services: account_services(),
            sync_required: true,
        },
        AccountEvent::AccountUpdated {
            correlation_id: Some(identifier("crm-1")),
            services: account_services(),
            sync_required: true,
        },
        AccountEvent::NumbersAdded {
            numbers: vec![NumberMembership {
                telephone_number: number(),
                services: vec![Service::TeamsOperatorConnect],
            }],
        },
        AccountEvent::NumbersRemoved {
            numbers: vec![number()],
        },
        AccountEvent::AccountDeleted {
            deleted_numbers: vec![number()],
        },
        AccountEvent::AccountDeletionRequested {
            deleted_numbers: vec![number()],
            awaiting_release: vec![E164::parse("+15105850322").unwrap()],
        },
        AccountEvent::AccountProvisioningRetried {
            services: account_services(),
        },
        AccountEvent::AccountProvisioned { for_version: 1 },
        AccountEvent::AccountProvisioningFailed {
            for_version: 1,
            errors: errors(),
        },
    ]
}

fn number_events() -> Vec<NumberEvent> {
    vec![
        NumberEvent::NumberAdded {
            telephone_number: number(),
            account: account_name(),
            details: number_details(),
            sync_required: true,
        },
        NumberEvent::NumberUpdated {
            details: number_details(),
            sync_required: true,
        },
        NumberEvent::SipHeaderSet {
            value: SipHeaderValue::parse("trunk-7").unwrap(),
            sync_required: true,
        },
        NumberEvent::SipHeaderCleared {
            sync_required: false,
        },
        NumberEvent::NumberDeleted {
            account: account_name(),
            sync_required: true,
        },
        NumberEvent::NumberDeletionRequested {
            account: account_name(),
        },
        NumberEvent::NumberProvisioningRetried {
            account: account_name(),
            details: number_details(),
            deleting: true,
        },
        NumberEvent::NumberProvisioned { for_version: 2 },
        NumberEvent::NumberProvisioningFailed {
            for_version: 2,
            errors: errors(),
        },
    ]
}

fn consent_events() -> Vec<ConsentEvent> {
    vec![
        ConsentEvent::ConsentRecorded {
            tenant_id: TenantId::parse("a7f4bd5c-cc01-40f4-8baa-2b6bdb272b8a").unwrap(),
            report: consent_report(),
            at: at(),
        },
        ConsentEvent::ConsentChanged {
            report: consent_report(),
            at: at(),
        },
        ConsentEvent::ConsentAcknowledged(note()),
        ConsentEvent::CustomerContacted(note()),
        ConsentEvent::AgreementSigned(note()),
        ConsentEvent::ConsentDeclined(note()),
        ConsentEvent::ContractTerminated(note()),
        ConsentEvent::ConsentProvisioned { for_version: 3 },
        ConsentEvent::ConsentProvisioningFailed {
            for_version: 3,
            errors: errors(),
        },
        ConsentEvent::ConsentProvisioningRetried {
            relationship: Some(domain::CustomerRelationship {
                status: domain::RelationshipStatus::ConsentDeclined,
                comment: Some(Comment::parse("outside our coverage").unwrap()),
                ticket_id: Some(TicketId::parse("CHG-42").unwrap()),
                last_modified_on: at(),
            }),
        },
    ]
}

/// One sample of every event as (aggregate type, event type from `DomainEvent`, JSON as stored
/// and published).
fn samples() -> Vec<(&'static str, String, Value)> {
    fn each<E: DomainEvent>(
        aggregate: &'static str,
        events: Vec<E>,
    ) -> Vec<(&'static str, String, Value)> {
        events
            .into_iter()
            .map(|event| {
                let json = serde_json::to_value(&event).unwrap();
                (aggregate, event.event_type(), json)
            })
            .collect()
    }
    let mut all = each("account", account_events());
    all.extend(each("number", number_events()));
    all.extend(each("consent", consent_events()));
    all
}

/// The single key of an externally tagged event.
fn outer_key(json: &Value) -> String {
    let object = json.as_object().expect("an event serialises as an object");
    assert_eq!(
        object.len(),
        1,
        "externally tagged: one key, the event type: {json}"
    );
    object.keys().next().unwrap().clone()
}

/// Every variant name of an event enum, as serde's derive knows them: deserialising an unknown
/// variant fails with "unknown variant `x`, expected one of `A`, `B`, …".
fn serde_variants<E: DeserializeOwned + std::fmt::Debug>() -> BTreeSet<String> {
    let error = serde_json::from_str::<E>(r#"{"NoSuchEvent": {}}"#)
        .expect_err("an unknown variant is refused")
        .to_string();
    let expected = error
        .split_once("expected")
        .unwrap_or_else(|| panic!("serde's message lists the variants: {error}"))
        .1;
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn documented(aggregate: &str) -> BTreeSet<String> {
    EVENTS
        .iter()
        .filter(|(a, _)| *a == aggregate)
        .map(|(_, name)| name.to_string())
        .collect()
}

/// Every key of every object in `json`, recursively, each with its path.
fn keys(json: &Value, path: &str, found: &mut Vec<(String, String)>) {
    match json {
        Value::Object(object) => {
            for (key, value) in object {
                let here = format!("{path}.{key}");
                found.push((key.clone(), here.clone()));
                keys(value, &here, found);
            }
        }
        Value::Array(items) => {
            for item in items {
                keys(item, &format!("{path}[]"), found);
            }
        }
        _ => {}
    }
}

fn pascal(aggregate: &str) -> String {
    let mut chars = aggregate.chars();
    let first = chars.next().unwrap().to_ascii_uppercase();
    format!("{first}{}", chars.as_str())
}

// ---- the tests -------------------------------------------------------------------------------

#[test]
fn asyncapi_event_list_matches_the_domain() {
    let samples = samples();
    for aggregate in ["account", "number", "consent"] {
        let sampled: BTreeSet<String> = samples
            .iter()
            .filter(|(a, ..)| *a == aggregate)
            .map(|(_, _, json)| outer_key(json))
            .collect();
        let variants = match aggregate {
            "account" => serde_variants::<AccountEvent>(),
            "number" => serde_variants::<NumberEvent>(),
            _ => serde_variants::<ConsentEvent>(),
        };
        assert_eq!(
            variants,
            documented(aggregate),
            "the {aggregate} events of the domain differ from EVENTS: document the new event in \
             docs/asyncapi.yaml and add it to EVENTS and to the samples here"
        );
        assert_eq!(
            sampled, variants,
            "every {aggregate} event has one sample here"
        );
    }
    for (aggregate, event_type, json) in &samples {
        assert_eq!(
            &outer_key(json),
            event_type,
            "the {aggregate} event's serde name is its event_type (ce-type and the message name)"
        );
    }
}

#[test]
fn asyncapi_documents_every_event_as_a_message() {
    let doc = document();
    let channel_messages = expect_block(&doc, &["channels", "events", "messages"]);
    for (aggregate, name) in EVENTS {
        let message = expect_block(&doc, &["components", "messages", name]);
        assert!(
            message.contains(&format!("const: nmp.{aggregate}.{name}")),
            "message {name} pins its ce-type header to nmp.{aggregate}.{name}"
        );
        assert!(
            message.contains(&format!("'#/components/schemas/{name}Event'")),
            "message {name} has the payload schema {name}Event"
        );
        assert!(
            message.contains(&format!(
                "'#/components/schemas/{}EventHeaders'",
                pascal(aggregate)
            )),
            "message {name} has the {aggregate} event headers"
        );
        assert!(
            channel_messages.contains(&format!("'#/components/messages/{name}'")),
            "the events channel carries {name}"
        );
        let operation = expect_block(
            &doc,
            &["operations", &format!("receive{}Events", pascal(aggregate))],
        );
        assert!(
            operation.contains(&format!("'#/channels/events/messages/{name}'")),
            "receive{}Events lists {name}",
            pascal(aggregate)
        );
    }
}

#[test]
fn asyncapi_event_schemas_name_every_field() {
    let doc = document();
    let schemas = expect_block(&doc, &["components", "schemas"]);
    for (aggregate, _, json) in samples() {
        let name = outer_key(&json);
        let schema = expect_block(&doc, &["components", "schemas", &format!("{name}Event")]);
        assert!(
            has_key(&schema, &name),
            "{name}Event has the single property {name} (externally tagged)"
        );
        let body = &json[&name];
        let own = body.as_object().expect("every event's body is an object");
        // The body's schema, or, for a body that is a shared struct (RelationshipNote), the
        // schema it refers to.
        let inner = expect_block(
            &doc,
            &[
                "components",
                "schemas",
                &format!("{name}Event"),
                "properties",
                &name,
            ],
        );
        let body_schema = match inner
            .trim()
            .strip_prefix("$ref: '#/components/schemas/")
            .filter(|target| !target.contains('\n'))
        {
            Some(target) => expect_block(
                &doc,
                &["components", "schemas", target.trim_end_matches('\'')],
            ),
            None => inner,
        };
        for field in own.keys() {
            assert!(
                has_key(&body_schema, field),
                "the {aggregate} event {name} has the field {field}: document it in {name}Event"
            );
        }
        let mut nested = Vec::new();
        keys(body, &name, &mut nested);
        for (key, path) in nested {
            assert!(
                has_key(&schemas, &key),
                "{path} is not named in any schema of docs/asyncapi.yaml"
            );
        }
    }
}

#[test]
fn asyncapi_documents_every_relay_header() {
    let source = workspace_file("services/relay/src/message.rs");
    let mut names = Vec::new();
    let mut rest = source.as_str();
    while let Some(index) = rest.find("headers.insert(") {
        rest = rest[index + "headers.insert(".len()..].trim_start();
        let name = rest
            .strip_prefix('"')
            .and_then(|quoted| quoted.split_once('"'))
            .map(|(name, _)| name.to_string())
            .expect("each header is inserted under a string literal");
        names.push(name);
    }
    assert!(
        names.len() >= 13,
        "found only {names:?} in relay/src/message.rs; has the way headers are set changed?"
    );
    let doc = document();
    let properties = expect_block(
        &doc,
        &["components", "schemas", "EventHeaders", "properties"],
    );
    for name in &names {
        assert!(
            has_key(&properties, name),
            "the relay sets the header {name}: document it in EventHeaders"
        );
    }
}

#[test]
fn asyncapi_stream_and_subjects_match_the_relay() {
    let doc = document();
    let settings = StreamSettings::new("nmp").unwrap();
    assert!(
        doc.contains(&settings.stream_name()),
        "the stream name NMP_EVENTS"
    );
    assert!(
        doc.contains(&settings.subjects()),
        "the stream's subjects nmp.events.>"
    );
    assert!(doc.contains("<PREFIX>_EVENTS"));
    assert!(doc.contains("address: '{prefix}.events.{aggregateType}.{aggregateId}'"));
    let prefix = expect_block(&doc, &["components", "parameters", "prefix"]);
    assert!(
        prefix.contains("default: nmp"),
        "the prefix defaults to nmp"
    );
    let aggregate_type = expect_block(&doc, &["channels", "events", "parameters", "aggregateType"]);
    for aggregate in domain::AggregateKind::names() {
        assert!(
            aggregate_type.contains(aggregate),
            "aggregateType {aggregate}"
        );
    }
    // The escaping examples in the document are what the relay does.
    for (id, token) in [
        ("a.b", "a%2Eb"),
        ("*>", "%2A%3E"),
        ("50%", "50%25"),
        ("é", "%C3%A9"),
        ("+15105850321", "+15105850321"),
    ] {
        assert_eq!(subject_token(id), token);
        assert!(
            doc.contains(&format!("`{id}` → `{token}`")),
            "the escaping example `{id}` → `{token}`"
        );
    }
}

#[test]
fn asyncapi_documents_every_nats_api_operation() {
    let doc = document();
    for (operation, key, permission) in OPERATIONS {
        let channel = expect_block(&doc, &["channels", key]);
        assert!(
            channel.contains(&format!("address: '{{prefix}}.api.{operation}'")),
            "channel {key} is {{prefix}}.api.{operation}"
        );
        let documented = expect_block(&doc, &["operations", key]);
        assert!(
            documented.contains(&format!("'#/channels/{key}'")),
            "operation {key} serves channel {key}"
        );
        assert!(
            documented.contains(&format!("x-nmp-permission: {permission}")),
            "operation {key} needs the {permission} permission"
        );
        assert!(has_key(&documented, "reply"), "operation {key} has a reply");
        assert!(
            documented.contains("'#/channels/apiReply/messages/error'"),
            "operation {key} may answer with an error"
        );
    }
}

#[test]
fn asyncapi_documents_api_headers_and_error_codes() {
    let doc = document();
    let request = expect_block(
        &doc,
        &["components", "schemas", "ApiRequestHeaders", "properties"],
    );
    for name in REQUEST_HEADERS {
        assert!(has_key(&request, name), "request header {name}");
    }
    for name in REPLY_HEADERS {
        assert!(has_key(&doc, name), "reply header {name}");
    }
    let auth_codes = [
        AuthError::MissingToken,
        AuthError::Malformed,
        AuthError::Expired,
        AuthError::NotYetValid,
        AuthError::InvalidSignature,
        AuthError::UnsupportedAlgorithm,
        AuthError::WrongIssuer,
        AuthError::WrongAudience,
        AuthError::UnknownKey,
        AuthError::KeysUnavailable,
    ]
    .map(|error| error.code());
    for code in API_ERROR_CODES.iter().chain(&auth_codes) {
        assert!(doc.contains(code), "error code {code}");
    }
    assert!(
        doc.contains("## Trust boundary"),
        "the document explains the trust boundary"
    );
}

#[test]
fn asyncapi_operations_are_the_ones_the_nats_api_serves() {
    let served: BTreeSet<&str> = nats_api::Operation::ALL
        .iter()
        .map(|(name, _)| *name)
        .collect();
    let documented: BTreeSet<&str> = OPERATIONS.iter().map(|(name, ..)| *name).collect();
    assert_eq!(served, documented);
    for (name, operation) in nats_api::Operation::ALL {
        let (_, _, permission) = OPERATIONS
            .iter()
            .find(|(documented, ..)| *documented == name)
            .expect("documented");
        assert_eq!(
            operation.permission().to_string(),
            *permission,
            "{name} needs what the document says"
        );
    }
}
