//! The command side: carries out each operation of the Provisioning API (and of the NATS API)
//! by loading the aggregates it touches, letting them decide, and committing every resulting
//! event in one transaction. REST and NATS both call this crate, so they share every rule.
//! The provisioning saga records the backend's answers here too (`record_number_outcomes`,
//! `record_account_outcome`, `record_consent_outcome`), as commands like any other.
//!
//! `CommandService` is split by aggregate — `accounts`, `numbers`, `consents`,
//! `civic_addresses` — around one `execute` helper (load → check preconditions → decide →
//! append → commit, retried while a concurrent writer wins). Commands deciding on several
//! aggregates at once compose the same steps (`with_retries`, `decide`, `Changes`, a commit
//! under the accounts' locks). `application` holds the transport-free answers of the
//! operations built on it.

mod accounts;
pub mod application;
mod civic_addresses;
mod consents;
mod numbers;
mod preconditions;

use std::time::Duration;

use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use domain::{
    Account, AccountName, Consent, DomainError, E164, Number, NumberCounts, ProvisioningError,
    Service, TenantId,
};
use store::{Changes, EventMetadata, EventStore, Loaded, StoreError};

pub use application::{AppError, ErrorDetail, ErrorKind, Outcome, OutcomeKind};
pub use preconditions::{EntityTag, Preconditions, etag};

/// How often an unconditional command is retried when a concurrent writer wins the race.
const MAX_ATTEMPTS: u32 = 8;

#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error(transparent)]
    Refused(#[from] DomainError),
    /// Items of a batch were refused; nothing was written.
    #[error("{} item(s) of the request were refused", .0.len())]
    BatchRefused(Vec<ItemRefusal>),
    /// `If-Match` or `If-None-Match` did not hold.
    #[error("the resource does not match the request's precondition")]
    PreconditionFailed,
    /// Concurrent writers kept winning; the client may retry.
    #[error("the resource was changed concurrently; retry the request")]
    Conflict,
    #[error(transparent)]
    Store(StoreError),
}

impl From<StoreError> for CommandError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict => CommandError::Conflict,
            other => CommandError::Store(other),
        }
    }
}

/// Why one item of a batch was refused.
#[derive(Debug, Clone, PartialEq)]
pub struct ItemRefusal {
    /// The item's position in the request.
    pub index: usize,
    pub error: DomainError,
}

/// A number after a write, and whether the write created it.
#[derive(Debug, Clone)]
pub struct UpsertedNumber {
    pub number: Loaded<Number>,
    pub created: bool,
}

/// The subject the provisioning saga's commands record as their author.
pub const SAGA_SUBJECT: &str = "nmp-saga";

/// The metadata of a command the provisioning saga sends: subject [`SAGA_SUBJECT`], role
/// `system`. The saga may set `correlation_id` and `traceparent` from the event it answers.
pub fn saga_metadata() -> EventMetadata {
    EventMetadata {
        roles: vec!["system".to_string()],
        ..EventMetadata::system(SAGA_SUBJECT)
    }
}

/// The backend's answer for a change to a resource: `Ok` when it took effect, otherwise the
/// backend's errors (at least one is expected; an empty list is recorded as it is).
pub type ProvisioningResult = Result<(), Vec<ProvisioningError>>;

/// The backend's answer for the change made to a number at version `for_version` (the
/// `sync.version` the saga acted on: the sequence of the event that made the change).
#[derive(Debug, Clone, PartialEq)]
pub struct NumberOutcome {
    pub telephone_number: E164,
    pub for_version: u64,
    pub result: ProvisioningResult,
}

/// Runs the domain's decision for one command and returns the events it produced. The aggregate
/// is left in its new state.
async fn decide<A>(aggregate: &mut A, command: A::Command) -> Result<Vec<A::Event>, A::Error>
where
    A: Aggregate<Services = ()>,
    A::Command: std::fmt::Debug,
{
    let sink = EventSink::default();
    let name = nmp_metrics::variant_name(&command);
    let decided = aggregate.handle(command, &(), &sink).await;
    nmp_metrics::command_decided(A::TYPE, &name, decided.is_ok());
    decided?;
    Ok(sink.collect().await)
}

/// Carries out commands against the event store. Cheap to clone.
#[derive(Clone)]
pub struct CommandService {
    store: EventStore,
}

impl CommandService {
    pub fn new(store: EventStore) -> Self {
        CommandService { store }
    }

    pub fn store(&self) -> &EventStore {
        &self.store
    }

    /// Retries `attempt` while a concurrent writer wins, unless the caller made the write
    /// conditional: then the race means the condition no longer holds.
    async fn with_retries<T, F, Fut>(
        &self,
        preconditions: &Preconditions,
        mut attempt: F,
    ) -> Result<T, CommandError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, CommandError>>,
    {
        let mut tries = 0;
        loop {
            tries += 1;
            match attempt().await {
                Err(CommandError::Conflict) if preconditions.is_conditional() => {
                    nmp_metrics::command_conflict(nmp_metrics::Conflict::PreconditionFailed);
                    return Err(CommandError::PreconditionFailed);
                }
                Err(CommandError::Conflict) if tries < MAX_ATTEMPTS => {
                    nmp_metrics::command_conflict(nmp_metrics::Conflict::Retried);
                    // Spread the retries so racing writers do not collide again in step.
                    let jitter = rand_millis(tries);
                    tokio::time::sleep(Duration::from_millis(jitter)).await;
                }
                Err(CommandError::Conflict) => {
                    nmp_metrics::command_conflict(nmp_metrics::Conflict::GaveUp);
                    return Err(CommandError::Conflict);
                }
                other => return other,
            }
        }
    }

    /// Runs one command on one aggregate, the way most commands go: load it, check the
    /// request's preconditions against it (`exists` says whether it exists as the request
    /// names it), let it decide, append the events after the version loaded and commit —
    /// again while a concurrent writer wins (see `with_retries`). Answers the aggregate as it
    /// is now. Commands that decide on several aggregates at once (an account and its numbers,
    /// a batch) compose the same steps themselves.
    async fn execute<A>(
        &self,
        id: &str,
        command: A::Command,
        exists: impl Fn(&A) -> bool,
        preconditions: &Preconditions,
        metadata: &EventMetadata,
    ) -> Result<Loaded<A>, CommandError>
    where
        A: Aggregate<Services = ()> + Clone + 'static,
        A::Command: Clone + std::fmt::Debug,
        CommandError: From<A::Error>,
    {
        self.with_retries(preconditions, || async {
            let mut loaded = self.store.load::<A>(id).await?;
            preconditions.check(exists(&loaded.aggregate), loaded.version)?;
            let events = decide(&mut loaded.aggregate, command.clone()).await?;
            let mut changes = Changes::new();
            changes.append_after::<A>(id, &loaded, &events)?;
            self.store.commit(changes, metadata).await?;
            loaded.version += events.len() as u64;
            Ok(loaded)
        })
        .await
    }

    // ---- reads -------------------------------------------------------------------------

    pub async fn account(&self, name: &AccountName) -> Result<Loaded<Account>, CommandError> {
        Ok(self.store.load::<Account>(name.as_str()).await?)
    }

    /// How many numbers an account holds, by service, as committed now.
    pub async fn account_number_counts(
        &self,
        name: &AccountName,
    ) -> Result<NumberCounts, CommandError> {
        let groups = self.store.member_counts(name.as_str()).await?;
        Ok(number_counts(groups))
    }

    pub async fn number(&self, number: &E164) -> Result<Loaded<Number>, CommandError> {
        Ok(self.store.load::<Number>(number.as_str()).await?)
    }

    pub async fn consent(&self, tenant: &TenantId) -> Result<Loaded<Consent>, CommandError> {
        Ok(self.store.load::<Consent>(tenant.as_str()).await?)
    }

    /// The account linked to a tenant, if any (the first by name when several are).
    pub async fn account_of_tenant(
        &self,
        tenant: &TenantId,
    ) -> Result<Option<AccountName>, CommandError> {
        let names = self.store.accounts_of_tenant(tenant.as_str()).await?;
        Ok(names
            .into_iter()
            .next()
            .and_then(|name| AccountName::parse(name).ok()))
    }
}

/// Counts from the event store's groups of memberships; a service name nmp does not know (none
/// is ever written) counts under no service.
fn number_counts(groups: Vec<(Vec<String>, u64)>) -> NumberCounts {
    NumberCounts::from_groups(groups.into_iter().map(|(services, count)| {
        let services = services
            .iter()
            .filter_map(|name| Service::from_wire_name(name))
            .collect();
        (services, count)
    }))
}

/// A small, growing, pseudo-random pause for retry `attempt`, without a random-number crate:
/// the sub-second clock is random enough to break lock-step between racing writers.
fn rand_millis(attempt: u32) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let ceiling = 5u64 << attempt.min(6);
    u64::from(nanos) % ceiling + 1
}
