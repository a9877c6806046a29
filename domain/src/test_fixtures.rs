//! Builders shared by the aggregate tests: names, numbers, tenants, account services, number
//! details and consent reports, so each test states only what it is about.

use chrono::{DateTime, TimeZone, Utc};
use cqrs_es::Aggregate;

use crate::consent::{ConsentReport, Contact, RelationshipChange};
use crate::service_details::{
    AccountServices, DirectRoutingService, NumberDetails, PlainService, SyncableService,
    TeamsNumberConfiguration, TeamsNumberService,
};
use crate::values::{
    AccountName, Capability, Comment, ConsentStatus, CountryCode, E164, Identifier,
    ProvisioningError, SipHeaderValue, TenantId, TicketId, Usage,
};

pub fn account(name: &str) -> AccountName {
    AccountName::parse(name).expect("a valid account name")
}

pub fn contoso() -> AccountName {
    account("contoso")
}

pub fn fabrikam() -> AccountName {
    account("fabrikam")
}

pub fn number(value: &str) -> E164 {
    E164::parse(value).expect("a valid E.164 number")
}

pub fn tenant() -> TenantId {
    TenantId::parse("a7f4bd5c-cc01-40f4-8baa-2b6bdb272b8a").expect("a valid tenant id")
}

pub fn other_tenant() -> TenantId {
    TenantId::parse("0c9a1e2f-3b4d-4e5f-8a6b-7c8d9e0f1a2b").expect("a valid tenant id")
}

pub fn sip_header(value: &str) -> SipHeaderValue {
    SipHeaderValue::parse(value).expect("a valid SIP header value")
}

pub fn identifier(value: &str) -> Identifier {
    Identifier::parse(value).expect("a valid identifier")
}

pub fn comment(value: &str) -> Comment {
    Comment::parse(value).expect("a valid comment")
}

pub fn ticket(value: &str) -> TicketId {
    TicketId::parse(value).expect("a valid ticket id")
}

pub fn country(value: &str) -> CountryCode {
    CountryCode::parse(value).expect("a valid country code")
}

/// A fixed moment, `minutes` after 09:00 on 1 March 2024.
pub fn moment(minutes: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 3, 1, 9, 0, 0).unwrap() + chrono::Duration::minutes(minutes.into())
}

pub fn backend_error(code: &str) -> ProvisioningError {
    ProvisioningError {
        code: code.into(),
        message: format!("the backend said {code}"),
    }
}

/// The aggregate as it stands after `events`, for tests about its state rather than its events.
pub fn replay<A: Aggregate>(events: Vec<A::Event>) -> A {
    let mut aggregate = A::default();
    for event in events {
        aggregate.apply(event);
    }
    aggregate
}

/// Whether an enabled service flows through to the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Synced,
    NotSynced,
}

impl Flow {
    fn sync_enabled(self) -> bool {
        self == Flow::Synced
    }
}

fn syncable(flow: Flow) -> Option<SyncableService> {
    Some(SyncableService {
        enabled: true,
        sync_enabled: flow.sync_enabled(),
    })
}

/// Starts an account's services with nothing enabled and no tenant.
pub fn account_services() -> AccountServicesBuilder {
    AccountServicesBuilder(AccountServices::default())
}

pub struct AccountServicesBuilder(AccountServices);

impl AccountServicesBuilder {
    pub fn tenant(mut self, tenant: TenantId) -> Self {
        self.0.teams_tenant_id = Some(tenant);
        self
    }

    pub fn operator_connect(mut self, flow: Flow) -> Self {
        self.0.teams_operator_connect = syncable(flow);
        self
    }

    pub fn phone_mobile(mut self, flow: Flow) -> Self {
        self.0.teams_phone_mobile = syncable(flow);
        self
    }

    pub fn direct_routing(mut self, flow: Flow) -> Self {
        self.0.teams_direct_routing = Some(DirectRoutingService {
            enabled: true,
            sync_enabled: flow.sync_enabled(),
            configuration: None,
        });
        self
    }

    pub fn zoom(mut self, flow: Flow) -> Self {
        self.0.zoom_phone_cloud_peering = syncable(flow);
        self
    }

    pub fn call_protection(mut self) -> Self {
        self.0.azure_operator_call_protection = Some(PlainService { enabled: true });
        self
    }

    pub fn build(self) -> AccountServices {
        self.0
    }
}

/// An account with every service enabled and synced, tenant set: any valid number fits it.
pub fn all_services() -> AccountServices {
    account_services()
        .tenant(tenant())
        .operator_connect(Flow::Synced)
        .phone_mobile(Flow::Synced)
        .direct_routing(Flow::Synced)
        .zoom(Flow::Synced)
        .call_protection()
        .build()
}

/// A valid Teams configuration: a calling user that can call in and out.
pub fn teams_configuration() -> TeamsNumberConfiguration {
    TeamsNumberConfiguration {
        usage: Usage::CallingUserAssignment,
        choosable_capabilities: vec![Capability::InboundCalling, Capability::OutboundCalling],
        additional_usages: Vec::new(),
        civic_address_id: Some(identifier("civic-1")),
        location_id: None,
        allow_tenant_address_update: false,
        displayed_country_code: None,
    }
}

fn teams_service(configuration: Option<TeamsNumberConfiguration>) -> Option<TeamsNumberService> {
    Some(TeamsNumberService {
        enabled: true,
        assignment_status: None,
        configuration,
    })
}

/// Starts a number's details with nothing enabled and no SIP header.
pub fn number_details() -> NumberDetailsBuilder {
    NumberDetailsBuilder(NumberDetails::default())
}

pub struct NumberDetailsBuilder(NumberDetails);

impl NumberDetailsBuilder {
    pub fn operator_connect(self) -> Self {
        self.operator_connect_with(teams_configuration())
    }

    pub fn operator_connect_with(mut self, configuration: TeamsNumberConfiguration) -> Self {
        self.0.teams_operator_connect = teams_service(Some(configuration));
        self
    }

    pub fn operator_connect_without_configuration(mut self) -> Self {
        self.0.teams_operator_connect = teams_service(None);
        self
    }

    pub fn phone_mobile(self) -> Self {
        self.phone_mobile_with(TeamsNumberConfiguration {
            choosable_capabilities: vec![Capability::Mobile],
            ..teams_configuration()
        })
    }

    pub fn phone_mobile_with(mut self, configuration: TeamsNumberConfiguration) -> Self {
        self.0.teams_phone_mobile = teams_service(Some(configuration));
        self
    }

    pub fn phone_mobile_without_configuration(mut self) -> Self {
        self.0.teams_phone_mobile = teams_service(None);
        self
    }

    pub fn direct_routing(mut self) -> Self {
        self.0.teams_direct_routing = Some(PlainService { enabled: true });
        self
    }

    pub fn zoom(mut self) -> Self {
        self.0.zoom_phone_cloud_peering = Some(PlainService { enabled: true });
        self
    }

    pub fn call_protection(mut self) -> Self {
        self.0.azure_operator_call_protection = Some(PlainService { enabled: true });
        self
    }

    pub fn sip_header(mut self, value: &str) -> Self {
        self.0.custom_sip_header = Some(sip_header(value));
        self
    }

    pub fn build(self) -> NumberDetails {
        self.0
    }
}

/// What the backend reports for a consent with this status.
pub fn consent_report(status: ConsentStatus) -> ConsentReport {
    ConsentReport {
        consent_id: identifier("consent-1"),
        operator_id: Some(identifier("operator-1")),
        status,
        consented_on: moment(0),
        countries: vec![country("GB"), country("US")],
        contacts: vec![Contact {
            full_name: "Ada Lovelace".into(),
            email: "ada@contoso.example".into(),
            telephone_number: Some("+441632960000".into()),
            company_name: Some("Contoso".into()),
            company_size: Some("100-1000".into()),
        }],
    }
}

/// A relationship change for the fixture tenant, without comment or ticket.
pub fn relationship_change(at: DateTime<Utc>) -> RelationshipChange {
    RelationshipChange {
        tenant_id: tenant(),
        comment: None,
        ticket_id: None,
        at,
    }
}
