//! [`Simulator`]: the backend's state in memory (consents, civic addresses, the numbers each
//! tenant holds, orders, the ledger, the faults) behind one mutex, and the rules a real backend
//! enforces on each number. The HTTP layer (`routes.rs`) only translates.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use backend::{
    AvailableCapabilities, BackendCivicAddress, BackendConsent, CapabilityPlan,
    MAX_NUMBERS_PER_CALL, NumberConfiguration, NumberResult, NumberSettings, OrderState,
    OrderStatus, Product, Rejection, RelationshipUpdate, UploadOrder,
};
use chrono::{DateTime, Utc};
use domain::{Capability, ConsentStatus, E164, Identifier, TenantId, Usage};

use crate::countries;
use crate::faults::{Decision, FaultState, Faults, InvalidFaults};
use crate::model::{
    Change, CivicAddressInput, ConsentInput, HeldNumber, LedgerEntry, RuntimeSettings, Stats,
};

/// How the simulator starts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimSettings {
    /// How long an order stays in progress; zero completes it while it is placed.
    pub order_delay: Duration,
}

/// The operator id the simulator reports on every consent.
pub const OPERATOR_ID: &str = "nmp-simulated-operator";

/// A refusal of a whole call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SimError {
    pub kind: SimErrorKind,
    pub code: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SimErrorKind {
    Invalid,
    NotFound,
}

impl SimError {
    fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        SimError {
            kind: SimErrorKind::Invalid,
            code,
            message: message.into(),
        }
    }

    fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        SimError {
            kind: SimErrorKind::NotFound,
            code,
            message: message.into(),
        }
    }
}

impl From<InvalidFaults> for SimError {
    fn from(error: InvalidFaults) -> Self {
        SimError::invalid("InvalidFaults", error.to_string())
    }
}

/// The per-number rejection codes.
pub mod rejection {
    pub const UNKNOWN_COUNTRY_CODE: &str = "UnknownCountryCode";
    pub const NO_ACTIVE_CONSENT: &str = "NoActiveConsent";
    pub const COUNTRY_NOT_CONSENTED: &str = "CountryNotConsented";
    pub const USAGE_NOT_AVAILABLE: &str = "UsageNotAvailable";
    pub const CAPABILITY_NOT_AVAILABLE: &str = "CapabilityNotAvailable";
    pub const CIVIC_ADDRESS_REQUIRED: &str = "CivicAddressRequired";
    pub const CIVIC_ADDRESS_NOT_FOUND: &str = "CivicAddressNotFound";
    pub const LOCATION_NOT_FOUND: &str = "LocationNotFound";
    pub const NUMBER_ALREADY_TAKEN: &str = "NumberAlreadyTaken";
    pub const NUMBER_NOT_FOUND: &str = "NumberNotFound";
}

fn reject(code: &str, message: impl Into<String>) -> Rejection {
    Rejection {
        code: code.to_string(),
        message: message.into(),
    }
}

/// The simulated backend. Cloning shares it.
#[derive(Debug, Clone)]
pub struct Simulator {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    startup: SimSettings,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    order_delay: Duration,
    consents: BTreeMap<TenantId, BackendConsent>,
    civic_addresses: BTreeMap<TenantId, Vec<BackendCivicAddress>>,
    numbers: HashMap<E164, HeldNumber>,
    orders: HashMap<String, Order>,
    /// Orders in progress by the time they complete (and the order they were placed in).
    due: BTreeMap<(Instant, u64), String>,
    orders_placed: u64,
    ledger: Vec<LedgerEntry>,
    faults: FaultState,
    stats: Stats,
}

#[derive(Debug)]
struct Order {
    status: OrderStatus,
    numbers: Vec<NumberConfiguration>,
}

impl Simulator {
    pub fn new(settings: SimSettings) -> Self {
        let state = State::new(&settings);
        Simulator {
            shared: Arc::new(Shared {
                startup: settings,
                state: Mutex::new(state),
            }),
        }
    }

    /// The state, with every order that is due completed. Every look at the state goes through
    /// here, so an order completes, as far as anyone can tell, when it falls due: no timer needed.
    fn state(&self) -> MutexGuard<'_, State> {
        let mut state = self
            .shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        state.complete_due_orders(Instant::now());
        state
    }

    // ---- the backend API ----

    pub fn consents(&self) -> Vec<BackendConsent> {
        self.state().consents.values().cloned().collect()
    }

    pub fn update_relationship(
        &self,
        tenant: &TenantId,
        update: RelationshipUpdate,
    ) -> Result<(), SimError> {
        if update.status.needs_reason() && update.comment.is_none() {
            return Err(SimError::invalid(
                "CommentRequired",
                format!("{} needs a comment giving the reason", update.status),
            ));
        }
        let mut state = self.state();
        let Some(consent) = state.consents.get_mut(tenant) else {
            return Err(SimError::not_found(
                "ConsentNotFound",
                format!("tenant {tenant} has not consented to this operator"),
            ));
        };
        if consent.customer_relationship.as_ref() == Some(&update) {
            return Ok(());
        }
        consent.customer_relationship = Some(update.clone());
        consent.last_modified_on = Utc::now();
        state.record(Change::RelationshipUpdated {
            tenant_id: tenant.clone(),
            status: update.status,
            comment: update.comment,
        });
        Ok(())
    }

    /// Places an order, or returns the one known by its id (`true`: newly placed).
    pub fn place_order(&self, order: UploadOrder) -> Result<(OrderStatus, bool), SimError> {
        if order.id.is_empty() || order.id.len() > 200 {
            return Err(SimError::invalid(
                "InvalidOrderId",
                "an order id has 1 to 200 characters",
            ));
        }
        let mut state = self.state();
        state.note_batch(order.numbers.len());
        if let Some(known) = state.orders.get(&order.id) {
            return Ok((known.status.clone(), false));
        }
        check_batch(order.numbers.len(), false)?;
        let delay = state.order_delay;
        let status = OrderStatus {
            id: order.id.clone(),
            tenant_id: order.tenant_id,
            state: OrderState::InProgress,
            results: Vec::new(),
        };
        state.orders.insert(
            order.id.clone(),
            Order {
                status,
                numbers: order.numbers,
            },
        );
        state.orders_placed += 1;
        let due = Instant::now() + delay;
        let placed = state.orders_placed;
        state.due.insert((due, placed), order.id.clone());
        if delay.is_zero() {
            state.complete_due_orders(due);
        }
        let status = state.orders[&order.id].status.clone();
        Ok((status, true))
    }

    pub fn order(&self, id: &str) -> Result<OrderStatus, SimError> {
        self.state()
            .orders
            .get(id)
            .map(|order| order.status.clone())
            .ok_or_else(|| SimError::not_found("OrderNotFound", format!("no order '{id}'")))
    }

    pub fn update_numbers(
        &self,
        tenant: &TenantId,
        numbers: Vec<NumberConfiguration>,
    ) -> Result<Vec<NumberResult>, SimError> {
        let mut state = self.state();
        state.note_batch(numbers.len());
        check_batch(numbers.len(), true)?;
        Ok(numbers
            .into_iter()
            .map(|number| {
                let telephone_number = number.telephone_number.clone();
                let error = state.update_number(tenant, number).err();
                NumberResult {
                    telephone_number,
                    error,
                }
            })
            .collect())
    }

    pub fn release_numbers(
        &self,
        tenant: &TenantId,
        numbers: Vec<E164>,
    ) -> Result<Vec<NumberResult>, SimError> {
        let mut state = self.state();
        state.note_batch(numbers.len());
        check_batch(numbers.len(), true)?;
        Ok(numbers
            .into_iter()
            .map(|telephone_number| {
                let held_here = state
                    .numbers
                    .get(&telephone_number)
                    .is_some_and(|held| &held.tenant_id == tenant);
                if held_here {
                    state.numbers.remove(&telephone_number);
                    state.record(Change::NumberReleased {
                        tenant_id: tenant.clone(),
                        telephone_number: telephone_number.clone(),
                    });
                }
                NumberResult {
                    telephone_number,
                    error: None,
                }
            })
            .collect())
    }

    pub fn civic_addresses(&self, tenant: &TenantId) -> Vec<BackendCivicAddress> {
        self.state()
            .civic_addresses
            .get(tenant)
            .cloned()
            .unwrap_or_default()
    }

    /// The same plans for every tenant.
    pub fn capability_plans(&self, _tenant: &TenantId) -> Vec<CapabilityPlan> {
        capability_plans()
    }

    /// A number the tenant holds has the capabilities of its product and usage; a number not yet
    /// uploaded, those of Operator Connect.
    pub fn available_capabilities(
        &self,
        tenant: &TenantId,
        numbers: Vec<E164>,
    ) -> Result<Vec<AvailableCapabilities>, SimError> {
        let mut state = self.state();
        state.note_batch(numbers.len());
        check_batch(numbers.len(), true)?;
        Ok(numbers
            .into_iter()
            .map(|telephone_number| {
                let found = state.available_capabilities(tenant, &telephone_number);
                let (capabilities, error) = match found {
                    Ok(capabilities) => (capabilities, None),
                    Err(rejection) => (Vec::new(), Some(rejection)),
                };
                AvailableCapabilities {
                    telephone_number,
                    capabilities,
                    error,
                }
            })
            .collect())
    }

    // ---- faults ----

    /// Counts a call of the backend API and decides which faults hit it.
    pub(crate) fn decide_faults(&self, route: &str) -> Decision {
        let mut state = self.state();
        state.stats.calls += 1;
        *state.stats.by_route.entry(route.to_string()).or_default() += 1;
        let decision = state.faults.decide(Instant::now());
        let stats = &mut state.stats;
        match decision.refusal {
            Some(crate::faults::Refusal::RateLimited { .. }) => stats.rate_limited += 1,
            Some(crate::faults::Refusal::ServerError { .. }) => stats.server_errors += 1,
            None => {}
        }
        if decision.drop_before || decision.drop_after {
            stats.dropped += 1;
        }
        if decision.delay.is_some() {
            stats.delayed += 1;
        }
        decision
    }

    pub fn faults(&self) -> Faults {
        self.state().faults.faults()
    }

    pub fn set_faults(&self, faults: Faults) -> Result<(), SimError> {
        faults.validate()?;
        self.state().faults = FaultState::new(faults);
        Ok(())
    }

    // ---- setting the scene and looking at it ----

    /// Adds or replaces the tenant's consent, active; a consent given again keeps its id and
    /// customer relationship. `true`: a new consent.
    pub fn put_consent(&self, input: ConsentInput) -> (BackendConsent, bool) {
        let now = Utc::now();
        let mut state = self.state();
        let countries = input.countries;
        let contacts = input.contacts.into_iter().map(Into::into).collect();
        match state.consents.get_mut(&input.tenant_id) {
            Some(consent) => {
                consent.status = ConsentStatus::Active;
                consent.countries = countries;
                consent.contacts = contacts;
                consent.last_modified_on = now;
                (consent.clone(), false)
            }
            None => {
                let consent = BackendConsent {
                    tenant_id: input.tenant_id.clone(),
                    consent_id: new_id(),
                    operator_id: Some(Identifier::parse(OPERATOR_ID).expect("an identifier")),
                    status: ConsentStatus::Active,
                    consented_on: now,
                    last_modified_on: now,
                    countries,
                    contacts,
                    customer_relationship: None,
                };
                state.consents.insert(input.tenant_id, consent.clone());
                (consent, true)
            }
        }
    }

    pub fn set_consent_status(
        &self,
        tenant: &TenantId,
        status: ConsentStatus,
    ) -> Result<BackendConsent, SimError> {
        let mut state = self.state();
        let consent = state.consents.get_mut(tenant).ok_or_else(|| {
            SimError::not_found("ConsentNotFound", format!("no consent of tenant {tenant}"))
        })?;
        if consent.status != status {
            consent.status = status;
            consent.last_modified_on = Utc::now();
        }
        Ok(consent.clone())
    }

    /// Adds a civic address to the tenant, or replaces the one with the same id.
    pub fn put_civic_address(
        &self,
        tenant: &TenantId,
        input: CivicAddressInput,
    ) -> BackendCivicAddress {
        let id = input.id.clone().unwrap_or_else(new_id);
        let address = BackendCivicAddress {
            id: id.clone(),
            tenant_id: tenant.clone(),
            report: input.into_report(new_id),
        };
        let mut state = self.state();
        let addresses = state.civic_addresses.entry(tenant.clone()).or_default();
        match addresses.iter_mut().find(|known| known.id == id) {
            Some(known) => *known = address.clone(),
            None => addresses.push(address.clone()),
        }
        address
    }

    pub fn remove_civic_address(&self, tenant: &TenantId, id: &str) -> Result<(), SimError> {
        let mut state = self.state();
        let addresses = state.civic_addresses.entry(tenant.clone()).or_default();
        let before = addresses.len();
        addresses.retain(|address| address.id.as_str() != id);
        if addresses.len() == before {
            return Err(SimError::not_found(
                "CivicAddressNotFound",
                format!("tenant {tenant} has no civic address '{id}'"),
            ));
        }
        Ok(())
    }

    /// The ledger's entries after `since` (all of them for 0).
    pub fn ledger(&self, since: u64) -> Vec<LedgerEntry> {
        let state = self.state();
        // Sequences are 1, 2, 3...: entry n sits at index n - 1.
        let from = usize::try_from(since)
            .unwrap_or(usize::MAX)
            .min(state.ledger.len());
        state.ledger[from..].to_vec()
    }

    /// The numbers held, by tenant then number; only the tenant's when given.
    pub fn numbers(&self, tenant: Option<&TenantId>) -> Vec<HeldNumber> {
        let state = self.state();
        let mut numbers: Vec<HeldNumber> = state
            .numbers
            .values()
            .filter(|held| tenant.is_none_or(|tenant| &held.tenant_id == tenant))
            .cloned()
            .collect();
        numbers.sort_by(|a, b| {
            (&a.tenant_id, &a.number.telephone_number)
                .cmp(&(&b.tenant_id, &b.number.telephone_number))
        });
        numbers
    }

    pub fn stats(&self) -> Stats {
        self.state().stats.clone()
    }

    pub fn settings(&self) -> RuntimeSettings {
        RuntimeSettings {
            order_delay_ms: self.state().order_delay.as_millis() as u64,
        }
    }

    /// Applies to orders placed from now on.
    pub fn set_settings(&self, settings: RuntimeSettings) {
        self.state().order_delay = Duration::from_millis(settings.order_delay_ms);
    }

    /// Forgets everything: back to the state at start-up, no faults.
    pub fn reset(&self) {
        *self.state() = State::new(&self.shared.startup);
    }
}

fn new_id() -> Identifier {
    Identifier::parse(uuid::Uuid::new_v4().to_string()).expect("a UUID is an identifier")
}

fn check_batch(count: usize, empty_allowed: bool) -> Result<(), SimError> {
    if count > MAX_NUMBERS_PER_CALL || (count == 0 && !empty_allowed) {
        let least = if empty_allowed { 0 } else { 1 };
        return Err(SimError::invalid(
            "InvalidNumberCount",
            format!("a call carries {least} to {MAX_NUMBERS_PER_CALL} numbers, not {count}"),
        ));
    }
    Ok(())
}

/// Per product, the usages and the capabilities of each.
fn capability_plans() -> Vec<CapabilityPlan> {
    use Capability::{InboundCalling, Mobile, OutboundCalling};
    let plan = |product, usage, capabilities: &[Capability]| CapabilityPlan {
        product,
        usage,
        capabilities: capabilities.to_vec(),
    };
    vec![
        plan(
            Product::OperatorConnect,
            Usage::CallingUserAssignment,
            &[InboundCalling, OutboundCalling],
        ),
        plan(
            Product::OperatorConnect,
            Usage::FirstPartyAppAssignment,
            &[InboundCalling, OutboundCalling],
        ),
        plan(
            Product::OperatorConnect,
            Usage::ConferenceAssignment,
            &[InboundCalling],
        ),
        plan(
            Product::TeamsPhoneMobile,
            Usage::CallingUserAssignment,
            &[InboundCalling, OutboundCalling, Mobile],
        ),
    ]
}

fn plan_capabilities(product: Product, usage: Usage) -> Option<Vec<Capability>> {
    capability_plans()
        .into_iter()
        .find(|plan| plan.product == product && plan.usage == usage)
        .map(|plan| plan.capabilities)
}

impl State {
    fn new(settings: &SimSettings) -> Self {
        State {
            order_delay: settings.order_delay,
            consents: BTreeMap::new(),
            civic_addresses: BTreeMap::new(),
            numbers: HashMap::new(),
            orders: HashMap::new(),
            due: BTreeMap::new(),
            orders_placed: 0,
            ledger: Vec::new(),
            faults: FaultState::default(),
            stats: Stats::default(),
        }
    }

    fn record(&mut self, change: Change) {
        self.record_at(Utc::now(), change);
    }

    fn record_at(&mut self, at: DateTime<Utc>, change: Change) {
        let sequence = self.ledger.len() as u64 + 1;
        self.ledger.push(LedgerEntry {
            sequence,
            at,
            change,
        });
    }

    fn note_batch(&mut self, count: usize) {
        self.stats.largest_batch = self.stats.largest_batch.max(count);
    }

    fn complete_due_orders(&mut self, now: Instant) {
        let wall_now = Utc::now();
        while let Some(entry) = self.due.first_entry() {
            let due = entry.key().0;
            if due > now {
                break;
            }
            let id = entry.remove();
            let late = chrono::Duration::from_std(now - due).unwrap_or_default();
            self.complete_order(&id, wall_now - late);
        }
    }

    /// Works through an order's numbers in turn: each takes effect or is rejected. `at`: when
    /// it fell due.
    fn complete_order(&mut self, id: &str, at: DateTime<Utc>) {
        let Some(order) = self.orders.get_mut(id) else {
            return;
        };
        let tenant = order.status.tenant_id.clone();
        let numbers = std::mem::take(&mut order.numbers);
        let results = numbers
            .into_iter()
            .map(|number| {
                let telephone_number = number.telephone_number.clone();
                let error = self.upload_number(id, &tenant, number, at).err();
                NumberResult {
                    telephone_number,
                    error,
                }
            })
            .collect();
        if let Some(order) = self.orders.get_mut(id) {
            order.status.state = OrderState::Completed;
            order.status.results = results;
        }
    }

    fn upload_number(
        &mut self,
        order_id: &str,
        tenant: &TenantId,
        number: NumberConfiguration,
        at: DateTime<Utc>,
    ) -> Result<(), Rejection> {
        use rejection::*;
        let telephone_number = &number.telephone_number;
        let Some(countries) = countries::countries_of(telephone_number) else {
            return Err(reject(
                UNKNOWN_COUNTRY_CODE,
                format!("the calling code of {telephone_number} is not a known country's"),
            ));
        };
        let consent = self.consents.get(tenant);
        let Some(consent) = consent.filter(|c| c.status == ConsentStatus::Active) else {
            let why = match consent {
                Some(consent) => format!("the consent of tenant {tenant} is {}", consent.status),
                None => format!("tenant {tenant} has not consented to this operator"),
            };
            return Err(reject(NO_ACTIVE_CONSENT, why));
        };
        let covered = match &number.configuration.displayed_country_code {
            Some(country) => consent.countries.contains(country),
            None => consent
                .countries
                .iter()
                .any(|country| countries.contains(&country.as_str())),
        };
        if !covered {
            return Err(reject(
                COUNTRY_NOT_CONSENTED,
                format!(
                    "tenant {tenant} has not consented to numbers of {} for {telephone_number}",
                    number
                        .configuration
                        .displayed_country_code
                        .as_ref()
                        .map_or_else(|| countries.join(" or "), ToString::to_string),
                ),
            ));
        }
        self.check_configuration(tenant, &number)?;
        if let Some(held) = self.numbers.get(telephone_number) {
            if &held.tenant_id != tenant {
                return Err(reject(
                    NUMBER_ALREADY_TAKEN,
                    format!("{telephone_number} is held by another tenant"),
                ));
            }
            if held.number == number {
                return Ok(());
            }
        }
        self.record_at(
            at,
            Change::NumberUploaded {
                tenant_id: tenant.clone(),
                order_id: order_id.to_string(),
                telephone_number: telephone_number.clone(),
                product: number.product,
                assignment_status: number.assignment_status,
                configuration: number.configuration.clone(),
            },
        );
        let order_id = self
            .numbers
            .get(telephone_number)
            .map_or_else(|| order_id.to_string(), |held| held.order_id.clone());
        self.numbers.insert(
            telephone_number.clone(),
            HeldNumber {
                tenant_id: tenant.clone(),
                order_id,
                number,
            },
        );
        Ok(())
    }

    fn update_number(
        &mut self,
        tenant: &TenantId,
        number: NumberConfiguration,
    ) -> Result<(), Rejection> {
        let telephone_number = number.telephone_number.clone();
        let Some(held) = self
            .numbers
            .get(&telephone_number)
            .filter(|held| &held.tenant_id == tenant)
        else {
            return Err(reject(
                rejection::NUMBER_NOT_FOUND,
                format!("tenant {tenant} does not hold {telephone_number}"),
            ));
        };
        if held.number == number {
            return Ok(());
        }
        self.check_configuration(tenant, &number)?;
        self.record(Change::NumberUpdated {
            tenant_id: tenant.clone(),
            telephone_number: telephone_number.clone(),
            product: number.product,
            assignment_status: number.assignment_status,
            configuration: number.configuration.clone(),
        });
        if let Some(held) = self.numbers.get_mut(&telephone_number) {
            held.number = number;
        }
        Ok(())
    }

    /// The rules on a number's configuration: its usage and capabilities in the product's plan,
    /// its emergency address one of the tenant's.
    fn check_configuration(
        &self,
        tenant: &TenantId,
        number: &NumberConfiguration,
    ) -> Result<(), Rejection> {
        use rejection::*;
        let configuration: &NumberSettings = &number.configuration;
        let product = number.product;
        let Some(capabilities) = plan_capabilities(product, configuration.usage) else {
            return Err(reject(
                USAGE_NOT_AVAILABLE,
                format!("{} is not offered for {product:?}", configuration.usage),
            ));
        };
        if let Some(usage) = configuration
            .additional_usages
            .iter()
            .find(|usage| plan_capabilities(product, **usage).is_none())
        {
            return Err(reject(
                USAGE_NOT_AVAILABLE,
                format!("{usage} is not offered for {product:?}"),
            ));
        }
        if let Some(capability) = configuration
            .choosable_capabilities
            .iter()
            .find(|capability| !capabilities.contains(capability))
        {
            return Err(reject(
                CAPABILITY_NOT_AVAILABLE,
                format!(
                    "{capability} is not available to {} numbers of {product:?}",
                    configuration.usage
                ),
            ));
        }
        let addresses = self
            .civic_addresses
            .get(tenant)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let address = match &configuration.civic_address_id {
            Some(id) => match addresses.iter().find(|address| &address.id == id) {
                Some(address) => Some(address),
                None => {
                    return Err(reject(
                        CIVIC_ADDRESS_NOT_FOUND,
                        format!("tenant {tenant} has no civic address '{id}'"),
                    ));
                }
            },
            None => None,
        };
        if let Some(location) = &configuration.location_id {
            let mut candidates = address.into_iter().chain(
                addresses
                    .iter()
                    .filter(|_| configuration.civic_address_id.is_none()),
            );
            let found = candidates.any(|address| {
                address
                    .report
                    .locations
                    .iter()
                    .any(|known| &known.id == location)
            });
            if !found {
                return Err(reject(
                    LOCATION_NOT_FOUND,
                    format!("tenant {tenant} has no location '{location}' there"),
                ));
            }
        }
        let needs_address = product == Product::OperatorConnect
            && configuration.usage == Usage::CallingUserAssignment
            && configuration.civic_address_id.is_none()
            && configuration.location_id.is_none()
            && !configuration.allow_tenant_address_update;
        if needs_address {
            return Err(reject(
                CIVIC_ADDRESS_REQUIRED,
                "a calling-user number needs a civic address or location, unless the \
                 tenant may update it",
            ));
        }
        Ok(())
    }

    fn available_capabilities(
        &self,
        tenant: &TenantId,
        telephone_number: &E164,
    ) -> Result<Vec<Capability>, Rejection> {
        use rejection::*;
        if countries::countries_of(telephone_number).is_none() {
            return Err(reject(
                UNKNOWN_COUNTRY_CODE,
                format!("the calling code of {telephone_number} is not a known country's"),
            ));
        }
        let (product, usage) = match self.numbers.get(telephone_number) {
            Some(held) if &held.tenant_id != tenant => {
                return Err(reject(
                    NUMBER_ALREADY_TAKEN,
                    format!("{telephone_number} is held by another tenant"),
                ));
            }
            Some(held) => (held.number.product, held.number.configuration.usage),
            None => (Product::OperatorConnect, Usage::CallingUserAssignment),
        };
        Ok(plan_capabilities(product, usage).unwrap_or_default())
    }
}
