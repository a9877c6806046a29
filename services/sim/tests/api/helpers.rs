//! A simulator on a free port, the HTTP client against it, and builders for the values tests
//! send.

use std::time::Duration;

use backend::client::{HttpBackend, Timeouts};
use backend::{NumberConfiguration, NumberSettings, Product, UploadOrder};
use domain::{AssignmentStatus, Capability, CountryCode, E164, Identifier, TenantId, Usage};
use sim::{
    CivicAddressInput, ConsentInput, ContactInput, LocationInput, RunningSim, SimControl,
    SimSettings,
};

pub struct TestSim {
    pub sim: RunningSim,
    /// The client under test.
    pub backend: HttpBackend,
    /// `/_sim`.
    pub control: SimControl,
}

/// Orders complete at once; the client waits 5 s at most.
pub async fn spawn_sim() -> TestSim {
    spawn_sim_with(SimSettings::default(), Duration::from_secs(5)).await
}

pub async fn spawn_sim_with(settings: SimSettings, request_timeout: Duration) -> TestSim {
    let sim = sim::spawn(settings).await.expect("the simulator starts");
    let backend = HttpBackend::new(
        &sim.url(),
        Timeouts {
            connect: Duration::from_secs(2),
            request: request_timeout,
        },
    )
    .expect("a client");
    let control = sim.control();
    TestSim {
        sim,
        backend,
        control,
    }
}

pub fn tenant(n: u32) -> TenantId {
    TenantId::parse(format!("00000000-0000-4000-8000-{n:012}")).unwrap()
}

pub fn number(text: &str) -> E164 {
    E164::parse(text).unwrap()
}

pub fn country(text: &str) -> CountryCode {
    CountryCode::parse(text).unwrap()
}

pub fn id(text: &str) -> Identifier {
    Identifier::parse(text).unwrap()
}

/// An Operator Connect calling-user number the tenant may give an address later.
pub fn oc_number(text: &str) -> NumberConfiguration {
    NumberConfiguration {
        telephone_number: number(text),
        product: Product::OperatorConnect,
        assignment_status: Some(AssignmentStatus::Unassigned),
        configuration: NumberSettings {
            usage: Usage::CallingUserAssignment,
            choosable_capabilities: vec![Capability::InboundCalling, Capability::OutboundCalling],
            additional_usages: Vec::new(),
            civic_address_id: None,
            location_id: None,
            allow_tenant_address_update: true,
            displayed_country_code: None,
        },
    }
}

/// A Teams Phone Mobile number.
pub fn mobile_number(text: &str) -> NumberConfiguration {
    let mut number = oc_number(text);
    number.product = Product::TeamsPhoneMobile;
    number
        .configuration
        .choosable_capabilities
        .push(Capability::Mobile);
    number
}

pub fn order(id: &str, tenant: &TenantId, numbers: Vec<NumberConfiguration>) -> UploadOrder {
    UploadOrder {
        id: id.to_string(),
        tenant_id: tenant.clone(),
        numbers,
    }
}

/// `count` GB numbers from +442000000000 on.
pub fn gb_numbers(start: u64, count: u64) -> Vec<NumberConfiguration> {
    (start..start + count)
        .map(|n| oc_number(&format!("+44{:010}", 2_000_000_000 + n)))
        .collect()
}

impl TestSim {
    /// The tenant consents, active, for these countries.
    pub async fn consent(&self, tenant: &TenantId, countries: &[&str]) {
        self.control
            .put_consent(&ConsentInput {
                tenant_id: tenant.clone(),
                countries: countries.iter().map(|c| country(c)).collect(),
                contacts: vec![ContactInput {
                    full_name: "Ada Lovelace".to_string(),
                    email: "ada@example.com".to_string(),
                    telephone_number: None,
                    company_name: Some("Contoso".to_string()),
                    company_size: None,
                }],
            })
            .await
            .expect("the consent is set");
    }

    /// The tenant gets a civic address `address` with one location `location`.
    pub async fn civic_address(&self, tenant: &TenantId, address: &str, location: &str) {
        self.control
            .put_civic_address(
                tenant,
                &CivicAddressInput {
                    id: Some(id(address)),
                    country: Some(country("GB")),
                    street_name: Some("Whitehall".to_string()),
                    city_or_town: Some("London".to_string()),
                    locations: vec![LocationInput {
                        id: Some(id(location)),
                        description: Some("Floor 1".to_string()),
                        is_default: true,
                        elin: Some("ELIN1".to_string()),
                        ..LocationInput::default()
                    }],
                    ..CivicAddressInput::default()
                },
            )
            .await
            .expect("the civic address is added");
    }
}
