//! `docs/asyncapi.yaml` is the contract of nmp's NATS interface; these tests keep it honest
//! against the code: every event the domain can emit is a documented message whose schema names
//! its fields, every header the relay sets is documented, the stream and subject rules match the
//! relay's, and every operation of the NATS API has its channel, operation and permission.
//! The aggregate kinds come from one list, `domain::AggregateKind`: a new kind does not compile
//! here until its events are sampled, and fails the checks until the document covers them.
//! The checks read the YAML as text (the workspace has no YAML parser), relying on its two-space
//! block layout.

use std::collections::BTreeSet;
use std::path::PathBuf;

use auth::AuthError;
use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::DomainEvent;
use domain::consent::RelationshipNote;
use domain::{
    AccountEvent, AccountName, AccountServices, AggregateKind, AssignmentStatus, Capability,
    CivicAddressEvent, CivicAddressReport, Comment, ConsentEvent, ConsentReport, ConsentStatus,
    Contact, CountryCode, DirectRoutingConfiguration, DirectRoutingService, E164, Identifier,
    Location, NumberDetails, NumberEvent, NumberMembership, PlainService, ProvisioningError,
    Service, SipHeaderValue, Subdomain, SubdomainToken, SyncableService, TeamsNumberConfiguration,
    TeamsNumberService, TenantId, TicketId, Usage, ValidationStatus,
};
use relay::StreamSettings;
use relay::message::subject_token;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Every event type of the domain, by aggregate kind, as the document lists them.
const EVENTS: &[(AggregateKind, &str)] = &[
    (AggregateKind::Account, "AccountCreated"),
    (AggregateKind::Account, "AccountUpdated"),
    (AggregateKind::Account, "NumbersAdded"),
    (AggregateKind::Account, "NumbersRemoved"),
    (AggregateKind::Account, "AccountDeleted"),
    (AggregateKind::Account, "AccountDeletionRequested"),
    (AggregateKind::Account, "AccountProvisioningRetried"),
    (AggregateKind::Account, "AccountProvisioned"),
    (AggregateKind::Account, "AccountProvisioningFailed"),
    (AggregateKind::Number, "NumberAdded"),
    (AggregateKind::Number, "NumberUpdated"),
    (AggregateKind::Number, "SipHeaderSet"),
    (AggregateKind::Number, "SipHeaderCleared"),
    (AggregateKind::Number, "NumberDeleted"),
    (AggregateKind::Number, "NumberDeletionRequested"),
    (AggregateKind::Number, "NumberProvisioningRetried"),
    (AggregateKind::Number, "NumberProvisioned"),
    (AggregateKind::Number, "NumberProvisioningFailed"),
    (AggregateKind::Consent, "ConsentRecorded"),
    (AggregateKind::Consent, "ConsentChanged"),
    (AggregateKind::Consent, "ConsentAcknowledged"),
    (AggregateKind::Consent, "CustomerContacted"),
    (AggregateKind::Consent, "AgreementSigned"),
    (AggregateKind::Consent, "ConsentDeclined"),
    (AggregateKind::Consent, "ContractTerminated"),
    (AggregateKind::Consent, "ConsentProvisioned"),
    (AggregateKind::Consent, "ConsentProvisioningFailed"),
    (AggregateKind::Consent, "ConsentProvisioningRetried"),
    (AggregateKind::CivicAddress, "CivicAddressRecorded"),
    (AggregateKind::CivicAddress, "CivicAddressChanged"),
    (AggregateKind::CivicAddress, "CivicAddressRemoved"),
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

/// A civic address of a Teams tenant as the backend reports it, every optional field given.
fn civic_address_report() -> CivicAddressReport {
    let floor = identifier("6d1e0f7a-2b3c-4d5e-8f90-a1b2c3d4e5f6");
    CivicAddressReport {
        country: CountryCode::parse("US").unwrap(),
        house_number: Some("1".to_string()),
        house_number_suffix: Some("A".to_string()),
        pre_directional: Some("NE".to_string()),
        street_name: Some("Microsoft".to_string()),
        street_suffix: Some("Way".to_string()),
        post_directional: Some("SW".to_string()),
        state_or_province: Some("WA".to_string()),
        county_or_district: Some("King".to_string()),
        city_or_town: Some("Redmond".to_string()),
        city_or_town_alias: Some("Overlake".to_string()),
        postal_or_zip_code: Some("98052".to_string()),
        description: Some("Head office".to_string()),
        company_name: Some("Contoso".to_string()),
        company_id: Some("contoso-hq".to_string()),
        default_location_id: Some(floor.clone()),
        validation_status: ValidationStatus::Validated,
        partner_id: Some("partner-7".to_string()),
        latitude: Some("47.6396".to_string()),
        longitude: Some("-122.1283".to_string()),
        locations: vec![
            Location {
                id: floor,
                description: Some("Floor 1".to_string()),
                additional_info: Some("Reception".to_string()),
                is_default: true,
                elin: Some("REDMOND-F1".to_string()),
            },
            Location {
                id: identifier("9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"),
                description: Some("Floor 2".to_string()),
                additional_info: Some("East wing".to_string()),
                is_default: false,
                elin: Some("REDMOND-F2".to_string()),
            },
        ],
    }
}

fn civic_address_events() -> Vec<CivicAddressEvent> {
    vec![
        CivicAddressEvent::CivicAddressRecorded {
            id: identifier("3f2b8c1e-9d4a-4e6b-b5f0-2c7d8e9a1b34"),
            tenant_id: TenantId::parse("a7f4bd5c-cc01-40f4-8baa-2b6bdb272b8a").unwrap(),
            report: civic_address_report(),
        },
        CivicAddressEvent::CivicAddressChanged {
            report: CivicAddressReport {
                validation_status: ValidationStatus::NotValidated,
                ..civic_address_report()
            },
        },
        CivicAddressEvent::CivicAddressRemoved,
    ]
}

/// Every event type of one event enum, as serde names them, and one sample of each event as
/// (event type from `DomainEvent`, JSON as stored and published).
type DomainEvents = (BTreeSet<String>, Vec<(String, Value)>);

fn each<E: DomainEvent + DeserializeOwned + std::fmt::Debug>(events: Vec<E>) -> DomainEvents {
    let samples = events
        .into_iter()
        .map(|event| {
            let json = serde_json::to_value(&event).unwrap();
            (event.event_type(), json)
        })
        .collect();
    (serde_variants::<E>(), samples)
}

/// The events of an aggregate kind. The match is exhaustive: a new kind in
/// `domain::AggregateKind` does not compile until its events are sampled here.
fn domain_events(kind: AggregateKind) -> DomainEvents {
    match kind {
        AggregateKind::Account => each(account_events()),
        AggregateKind::Number => each(number_events()),
        AggregateKind::Consent => each(consent_events()),
        AggregateKind::CivicAddress => each(civic_address_events()),
    }
}

/// One sample of every event of every aggregate kind as (kind, event type from `DomainEvent`,
/// JSON as stored and published).
fn samples() -> Vec<(AggregateKind, String, Value)> {
    AggregateKind::ALL
        .into_iter()
        .flat_map(|kind| {
            domain_events(kind)
                .1
                .into_iter()
                .map(move |(event_type, json)| (kind, event_type, json))
        })
        .collect()
}

/// The event type a stored event is tagged with (serde's external tagging): the single key of
/// an event with fields, or the string an event without fields (a unit variant) is.
fn outer_key(json: &Value) -> String {
    if let Value::String(name) = json {
        return name.clone();
    }
    let object = json
        .as_object()
        .expect("an event serialises as an object, or as a string without fields");
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

fn documented(kind: AggregateKind) -> BTreeSet<String> {
    EVENTS
        .iter()
        .filter(|(k, _)| *k == kind)
        .map(|(_, name)| name.to_string())
        .collect()
}

/// The names `refs` point to in `block`: each `'<prefix><name>'`.
fn refs(block: &str, prefix: &str) -> BTreeSet<String> {
    let quoted = format!("'{prefix}");
    block
        .lines()
        .filter_map(|line| line.split_once(&quoted))
        .map(|(_, rest)| rest.trim_end().trim_end_matches('\'').to_string())
        .collect()
}

/// The items of the shallowest `key:` list in `block` (such as a schema's own `required`).
fn list(block: &str, key: &str) -> BTreeSet<String> {
    let lines: Vec<&str> = block.lines().collect();
    let Some(start) = (0..lines.len())
        .filter(|&i| lines[i].trim() == format!("{key}:"))
        .min_by_key(|&i| indentation(lines[i]))
    else {
        return BTreeSet::new();
    };
    let indent = indentation(lines[start]);
    lines[start + 1..]
        .iter()
        .take_while(|line| indentation(line) > indent && line.trim_start().starts_with("- "))
        .map(|line| line.trim_start()[2..].trim().to_string())
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

fn pascal(kind: AggregateKind) -> String {
    let mut chars = kind.as_str().chars();
    let first = chars.next().unwrap().to_ascii_uppercase();
    format!("{first}{}", chars.as_str())
}

// ---- the tests -------------------------------------------------------------------------------

#[test]
fn asyncapi_event_list_matches_the_domain() {
    for kind in AggregateKind::ALL {
        let (variants, samples) = domain_events(kind);
        let sampled: BTreeSet<String> = samples.iter().map(|(_, json)| outer_key(json)).collect();
        assert!(
            !documented(kind).is_empty(),
            "the aggregate kind {kind} has no events in EVENTS: document its events in \
             docs/asyncapi.yaml and add them to EVENTS"
        );
        assert_eq!(
            variants,
            documented(kind),
            "the {kind} events of the domain differ from EVENTS: document the new event in \
             docs/asyncapi.yaml and add it to EVENTS and to the samples here"
        );
        assert_eq!(sampled, variants, "every {kind} event has one sample here");
        for (event_type, json) in &samples {
            assert_eq!(
                &outer_key(json),
                event_type,
                "the {kind} event's serde name is its event_type (ce-type and the message name)"
            );
        }
    }
    let kinds: BTreeSet<AggregateKind> = EVENTS.iter().map(|(kind, _)| *kind).collect();
    assert_eq!(
        kinds,
        AggregateKind::ALL.into_iter().collect(),
        "EVENTS covers every aggregate kind"
    );
}

#[test]
fn asyncapi_documents_every_event_as_a_message() {
    let doc = document();
    let channel_messages = expect_block(&doc, &["channels", "events", "messages"]);
    for (kind, name) in EVENTS {
        let message = expect_block(&doc, &["components", "messages", name]);
        assert!(
            message.contains(&format!("const: nmp.{kind}.{name}")),
            "message {name} pins its ce-type header to nmp.{kind}.{name}"
        );
        assert!(
            message.contains(&format!("'#/components/schemas/{name}Event'")),
            "message {name} has the payload schema {name}Event"
        );
        assert!(
            message.contains(&format!(
                "'#/components/schemas/{}EventHeaders'",
                pascal(*kind)
            )),
            "message {name} has the {kind} event headers"
        );
        assert!(
            channel_messages.contains(&format!("'#/components/messages/{name}'")),
            "the events channel carries {name}"
        );
    }
    let all: BTreeSet<String> = EVENTS.iter().map(|(_, name)| name.to_string()).collect();
    assert_eq!(
        refs(&channel_messages, "#/components/messages/"),
        all,
        "the events channel carries exactly the events of EVENTS"
    );
    for kind in AggregateKind::ALL {
        let key = format!("receive{}Events", pascal(kind));
        let operation = expect_block(&doc, &["operations", &key]);
        assert!(
            operation.contains("$ref: '#/channels/events'"),
            "{key} receives from the events channel"
        );
        assert_eq!(
            refs(&operation, "#/channels/events/messages/"),
            documented(kind),
            "{key} lists exactly the {kind} events"
        );
        let headers = expect_block(
            &doc,
            &[
                "components",
                "schemas",
                &format!("{}EventHeaders", pascal(kind)),
            ],
        );
        for pinned in [
            format!("const: {kind}"),
            format!("pattern: '^{kind}:'"),
            format!("pattern: '^{kind}/'"),
            format!("pattern: '^nmp\\.{kind}\\.'"),
        ] {
            assert!(
                headers.contains(&pinned),
                "{}EventHeaders has {pinned}",
                pascal(kind)
            );
        }
    }
    // The headers every event has admit every kind, and only those.
    let common = expect_block(&doc, &["components", "schemas", "EventHeaders"]);
    let names = AggregateKind::names().join("|");
    for pattern in [
        format!("pattern: '^({names}):.+:[1-9][0-9]*$'"),
        format!("pattern: '^nmp\\.({names})\\.[A-Za-z]+$'"),
        format!("pattern: '^({names})/.+$'"),
    ] {
        assert!(
            common.contains(&pattern),
            "EventHeaders has {pattern}, naming every aggregate kind"
        );
    }
    let aggregate_type = expect_block(
        &doc,
        &[
            "components",
            "schemas",
            "EventHeaders",
            "properties",
            "nmp-aggregate-type",
        ],
    );
    assert_eq!(
        list(&aggregate_type, "enum"),
        AggregateKind::names().map(str::to_string).into(),
        "nmp-aggregate-type lists every aggregate kind"
    );
}

#[test]
fn asyncapi_event_schemas_name_every_field() {
    let doc = document();
    let schemas = expect_block(&doc, &["components", "schemas"]);
    for (kind, _, json) in samples() {
        let name = outer_key(&json);
        let schema = expect_block(&doc, &["components", "schemas", &format!("{name}Event")]);
        if json.is_string() {
            // An event without fields is stored as the string of its type.
            assert!(
                has_key(&schema, "type") && schema.contains("type: string"),
                "{name}Event is a string: the {kind} event {name} has no fields"
            );
            assert!(
                schema.contains(&format!("const: {name}")),
                "{name}Event is the string {name}"
            );
            continue;
        }
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
                "the {kind} event {name} has the field {field}: document it in {name}Event"
            );
        }
        // Every field is always present (optional ones as null), so every field is required.
        assert_eq!(
            list(&body_schema, "required"),
            own.keys().cloned().collect(),
            "{name}Event requires exactly the fields of the {kind} event {name}"
        );
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
    for aggregate in AggregateKind::names() {
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
