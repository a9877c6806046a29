//! The command side: carries out each operation of the Provisioning API (and of the NATS API)
//! by loading the aggregates it touches, letting them decide, and committing every resulting
//! event in one transaction. REST and NATS both call this crate, so they share every rule.
//! The provisioning saga records the backend's answers here too (`record_number_outcomes`,
//! `record_account_outcome`, `record_consent_outcome`), as commands like any other.

pub mod application;
mod preconditions;

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use cqrs_es::Aggregate;
use cqrs_es::event_sink::EventSink;
use domain::{
    Account, AccountCommand, AccountEvent, AccountName, AccountServices, Comment, Consent,
    ConsentCommand, ConsentReport, DomainError, E164, Identifier, Number, NumberCommand,
    NumberCounts, NumberDetails, NumberState, ProvisioningError, RelationshipChange,
    RelationshipStatus, Service, SipHeaderValue, TenantId, TicketId,
};
use store::{Changes, EventMetadata, EventStore, Loaded, StoreError, TenantLink};

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
{
    let sink = EventSink::default();
    aggregate.handle(command, &(), &sink).await?;
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
                    return Err(CommandError::PreconditionFailed);
                }
                Err(CommandError::Conflict) if tries < MAX_ATTEMPTS => {
                    // Spread the retries so racing writers do not collide again in step.
                    let jitter = rand_millis(tries);
                    tokio::time::sleep(Duration::from_millis(jitter)).await;
                }
                other => return other,
            }
        }
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

    // ---- accounts ----------------------------------------------------------------------

    /// Creates or replaces an account. Returns it and whether it was created.
    pub async fn create_or_replace_account(
        &self,
        name: &AccountName,
        correlation_id: Option<Identifier>,
        services: AccountServices,
        preconditions: &Preconditions,
        metadata: &EventMetadata,
    ) -> Result<(Loaded<Account>, bool), CommandError> {
        self.with_retries(preconditions, || async {
            let mut loaded = self.store.load::<Account>(name.as_str()).await?;
            preconditions.check(loaded.aggregate.exists(), loaded.version)?;
            let created = !loaded.aggregate.exists();
            let old_tenant = loaded
                .aggregate
                .state
                .as_ref()
                .and_then(|s| s.services.teams_tenant_id.clone());
            // Changing the services of an account with numbers is decided on its memberships,
            // which must not change until the decision is committed.
            let mut lock = None;
            let mut numbers = NumberCounts::default();
            if loaded
                .aggregate
                .state
                .as_ref()
                .is_some_and(|state| state.services != services)
            {
                let mut held = self.store.lock_accounts(&[name.as_str()]).await?;
                numbers = number_counts(held.member_counts(name.as_str()).await?);
                lock = Some(held);
            }
            let events = decide(
                &mut loaded.aggregate,
                AccountCommand::CreateOrReplace {
                    name: name.clone(),
                    correlation_id: correlation_id.clone(),
                    services: services.clone(),
                    numbers,
                },
            )
            .await?;
            let mut changes = Changes::new();
            changes.append_after::<Account>(name.as_str(), &loaded, &events)?;
            if !events.is_empty() && old_tenant != services.teams_tenant_id {
                changes.link_tenant(match &services.teams_tenant_id {
                    Some(tenant) => TenantLink::Set {
                        account: name.to_string(),
                        tenant: tenant.to_string(),
                    },
                    None => TenantLink::Clear {
                        account: name.to_string(),
                    },
                });
            }
            match lock {
                Some(lock) => lock.commit(changes, metadata).await?,
                None => self.store.commit(changes, metadata).await?,
            }
            loaded.version += events.len() as u64;
            Ok((loaded, created))
        })
        .await
    }

    /// Deletes an account; with `delete_numbers`, all its numbers in the same transaction.
    /// Numbers the backend must release first are only asked to go, and so is the account: it
    /// is deleted with its last number, when the saga records the backend's confirmation.
    pub async fn delete_account(
        &self,
        name: &AccountName,
        delete_numbers: bool,
        preconditions: &Preconditions,
        metadata: &EventMetadata,
    ) -> Result<(), CommandError> {
        self.with_retries(preconditions, || async {
            let mut loaded = self.store.load::<Account>(name.as_str()).await?;
            let Some(state) = &loaded.aggregate.state else {
                return Err(DomainError::AccountNotFound(name.clone()).into());
            };
            preconditions.check(true, loaded.version)?;
            // The account's numbers cannot change from here to the commit.
            let mut lock = self.store.lock_accounts(&[name.as_str()]).await?;
            let members: Vec<E164> = if state.deleting {
                Vec::new()
            } else {
                lock.members(name.as_str())
                    .await?
                    .into_iter()
                    .map(|m| {
                        E164::parse(m.telephone_number).map_err(|error| {
                            StoreError::Corrupt(format!("account_numbers of {name}: {error}"))
                        })
                    })
                    .collect::<Result<_, _>>()?
            };
            let mut changes = Changes::new();
            let mut awaiting_release = Vec::new();
            let ids: Vec<String> = members.iter().map(E164::to_string).collect();
            let loaded_numbers = lock.load_many::<Number>(&ids).await?;
            for (number, mut loaded_number) in members.iter().zip(loaded_numbers) {
                if !delete_numbers {
                    // Only those already being deleted; the account decides on the rest.
                    if loaded_number
                        .aggregate
                        .state
                        .as_ref()
                        .is_some_and(|s| s.deleting)
                    {
                        awaiting_release.push(number.clone());
                    }
                    continue;
                }
                let command = NumberCommand::Delete {
                    telephone_number: number.clone(),
                    account: name.clone(),
                };
                decide_number(&mut changes, number, &mut loaded_number, command).await??;
                if loaded_number.aggregate.state.is_some() {
                    awaiting_release.push(number.clone());
                }
            }
            let events = decide(
                &mut loaded.aggregate,
                AccountCommand::Delete {
                    account: name.clone(),
                    delete_numbers,
                    members,
                    awaiting_release,
                },
            )
            .await?;
            append_account_events(&mut changes, name, &loaded, &events)?;
            lock.commit(changes, metadata).await?;
            Ok(())
        })
        .await
    }

    // ---- numbers -----------------------------------------------------------------------

    /// Adds or updates numbers of an account. Every item is checked before anything is
    /// written; if any is refused, nothing is.
    pub async fn upsert_numbers(
        &self,
        account: &AccountName,
        items: Vec<(E164, NumberDetails)>,
        metadata: &EventMetadata,
    ) -> Result<Vec<UpsertedNumber>, CommandError> {
        self.upsert_numbers_with(account, items, &Preconditions::none(), metadata)
            .await
    }

    /// Adds or replaces one number, honouring `If-Match` / `If-None-Match` on it.
    pub async fn upsert_number(
        &self,
        account: &AccountName,
        number: E164,
        details: NumberDetails,
        preconditions: &Preconditions,
        metadata: &EventMetadata,
    ) -> Result<UpsertedNumber, CommandError> {
        let mut outcomes = self
            .upsert_numbers_with(account, vec![(number, details)], preconditions, metadata)
            .await
            .map_err(single_item)?;
        Ok(outcomes.remove(0))
    }

    async fn upsert_numbers_with(
        &self,
        account: &AccountName,
        items: Vec<(E164, NumberDetails)>,
        preconditions: &Preconditions,
        metadata: &EventMetadata,
    ) -> Result<Vec<UpsertedNumber>, CommandError> {
        refuse_duplicates(items.iter().map(|(number, _)| number))?;
        let ids: Vec<String> = items.iter().map(|(n, _)| n.to_string()).collect();
        // First without reading: what this process knows of the account and the numbers (a
        // number it never saw taken to be new). The commit holds only if that was the truth —
        // the account still at the version known, each number's next sequence still free — so
        // a write that succeeds was decided on the current state. Anything else (a conflict, a
        // refusal or a no-op that stale knowledge may have caused) is decided again on what is
        // stored.
        if !preconditions.is_conditional()
            && let Some(account_known) = self.store.cached::<Account>(account.as_str())
        {
            let numbers = ids
                .iter()
                .map(|id| self.store.cached::<Number>(id).unwrap_or_default())
                .collect();
            // Only a decision that writes to every number is checked by the commit: one that
            // finds nothing to change was decided on knowledge nothing confirms.
            if let Ok((changes, outcomes)) =
                upsert_decisions(account, &items, account_known, numbers, preconditions).await
                && changes.event_count() == items.len()
            {
                match self.store.commit(changes, metadata).await {
                    Ok(()) => return Ok(outcomes),
                    Err(StoreError::Conflict) => {}
                    Err(other) => return Err(other.into()),
                }
            }
        }
        self.with_retries(preconditions, || async {
            // The account and the numbers in one query.
            let (loaded_account, numbers) = self
                .store
                .load_with::<Account, Number>(account.as_str(), &ids)
                .await?;
            let (changes, outcomes) =
                upsert_decisions(account, &items, loaded_account, numbers, preconditions).await?;
            self.store.commit(changes, metadata).await?;
            Ok(outcomes)
        })
        .await
    }

    /// Deletes numbers of an account. Every number must belong to the account; if any does
    /// not, nothing is deleted.
    pub async fn delete_numbers(
        &self,
        account: &AccountName,
        numbers: Vec<E164>,
        metadata: &EventMetadata,
    ) -> Result<(), CommandError> {
        self.delete_numbers_with(account, numbers, &Preconditions::none(), metadata)
            .await
    }

    /// Deletes one number, honouring `If-Match` / `If-None-Match` on it.
    pub async fn delete_number(
        &self,
        account: &AccountName,
        number: E164,
        preconditions: &Preconditions,
        metadata: &EventMetadata,
    ) -> Result<(), CommandError> {
        self.delete_numbers_with(account, vec![number], preconditions, metadata)
            .await
            .map_err(single_item)
    }

    async fn delete_numbers_with(
        &self,
        account: &AccountName,
        numbers: Vec<E164>,
        preconditions: &Preconditions,
        metadata: &EventMetadata,
    ) -> Result<(), CommandError> {
        refuse_duplicates(numbers.iter())?;
        self.with_retries(preconditions, || async {
            let ids: Vec<String> = numbers.iter().map(E164::to_string).collect();
            let (loaded_account, loaded_numbers) = self
                .store
                .load_with::<Account, Number>(account.as_str(), &ids)
                .await?;
            if !loaded_account.aggregate.exists() {
                return Err(DomainError::AccountNotFound(account.clone()).into());
            }
            let mut changes = Changes::new();
            let mut refusals = Vec::new();
            // Numbers that must be released in the backend first stay members until then.
            let mut gone = Vec::new();
            for (index, (number, mut loaded)) in numbers.iter().zip(loaded_numbers).enumerate() {
                let owned = loaded
                    .aggregate
                    .state
                    .as_ref()
                    .is_some_and(|s| &s.account == account);
                if owned {
                    preconditions.check(true, loaded.version)?;
                }
                let command = NumberCommand::Delete {
                    telephone_number: number.clone(),
                    account: account.clone(),
                };
                match decide_number(&mut changes, number, &mut loaded, command).await? {
                    Err(error) => refusals.push(ItemRefusal { index, error }),
                    Ok(()) => {
                        if loaded.aggregate.state.is_none() {
                            gone.push(number.clone());
                        }
                    }
                }
            }
            if !refusals.is_empty() {
                return Err(CommandError::BatchRefused(refusals));
            }
            let mut departures = BTreeMap::new();
            departures.insert(account.clone(), (loaded_account, gone));
            self.commit_departures(changes, departures, metadata).await
        })
        .await
    }

    /// Sets or clears a number's custom SIP header.
    pub async fn set_sip_header(
        &self,
        account: &AccountName,
        number: &E164,
        value: Option<SipHeaderValue>,
        preconditions: &Preconditions,
        metadata: &EventMetadata,
    ) -> Result<Loaded<Number>, CommandError> {
        self.with_retries(preconditions, || async {
            let (loaded_account, mut loaded) = self
                .store
                .load_with::<Account, Number>(account.as_str(), &[number.to_string()])
                .await?;
            let Some(account_state) = &loaded_account.aggregate.state else {
                return Err(DomainError::AccountNotFound(account.clone()).into());
            };
            let mut loaded = loaded.pop().expect("one number");
            let owned = loaded
                .aggregate
                .state
                .as_ref()
                .is_some_and(|s| &s.account == account);
            preconditions.check(owned, loaded.version)?;
            let events = decide(
                &mut loaded.aggregate,
                NumberCommand::SetSipHeader {
                    telephone_number: number.clone(),
                    account: account.clone(),
                    account_services: account_state.services.clone(),
                    value: value.clone(),
                },
            )
            .await?;
            let mut changes = Changes::new();
            changes.append_after::<Number>(number.as_str(), &loaded, &events)?;
            if !events.is_empty() {
                // Decided on the account's services: committed only if the account is unchanged.
                changes.share_account(account.as_str(), loaded_account.version);
            }
            self.store.commit(changes, metadata).await?;
            loaded.version += events.len() as u64;
            Ok(loaded)
        })
        .await
    }

    // ---- provisioning: retries asked by the operator, outcomes recorded by the saga ------

    /// Pushes again a number's change whose provisioning failed: it goes back to pending at a
    /// new version, which the saga picks up. Refused unless its provisioning failed.
    pub async fn retry_number_provisioning(
        &self,
        account: &AccountName,
        number: &E164,
        preconditions: &Preconditions,
        metadata: &EventMetadata,
    ) -> Result<Loaded<Number>, CommandError> {
        self.with_retries(preconditions, || async {
            let mut loaded = self.store.load::<Number>(number.as_str()).await?;
            let owned = loaded
                .aggregate
                .state
                .as_ref()
                .is_some_and(|s| &s.account == account);
            preconditions.check(owned, loaded.version)?;
            let events = decide(
                &mut loaded.aggregate,
                NumberCommand::RetryProvisioning {
                    telephone_number: number.clone(),
                    account: account.clone(),
                },
            )
            .await?;
            let mut changes = Changes::new();
            changes.append_after::<Number>(number.as_str(), &loaded, &events)?;
            self.store.commit(changes, metadata).await?;
            loaded.version += events.len() as u64;
            Ok(loaded)
        })
        .await
    }

    /// Pushes again an account's change whose provisioning failed.
    pub async fn retry_account_provisioning(
        &self,
        name: &AccountName,
        preconditions: &Preconditions,
        metadata: &EventMetadata,
    ) -> Result<Loaded<Account>, CommandError> {
        self.with_retries(preconditions, || async {
            let mut loaded = self.store.load::<Account>(name.as_str()).await?;
            preconditions.check(loaded.aggregate.exists(), loaded.version)?;
            let command = AccountCommand::RetryProvisioning {
                account: name.clone(),
            };
            let events = decide(&mut loaded.aggregate, command).await?;
            let mut changes = Changes::new();
            changes.append_after::<Account>(name.as_str(), &loaded, &events)?;
            self.store.commit(changes, metadata).await?;
            loaded.version += events.len() as u64;
            Ok(loaded)
        })
        .await
    }

    /// Pushes again a consent's customer relationship whose provisioning failed.
    pub async fn retry_consent_provisioning(
        &self,
        tenant: &TenantId,
        preconditions: &Preconditions,
        metadata: &EventMetadata,
    ) -> Result<Loaded<Consent>, CommandError> {
        let command = ConsentCommand::RetryProvisioning {
            tenant_id: tenant.clone(),
        };
        self.execute_consent(tenant, command, preconditions, metadata)
            .await
    }

    /// Records the backend's answers for numbers, all in one transaction. An answer for a
    /// change since superseded, one already recorded, or one for a number that does not exist
    /// changes nothing. A confirmed release deletes the number, removes it from its account in
    /// the same transaction, and deletes the account too when it was waiting for its last
    /// number. Answers for the same number apply in the order given.
    pub async fn record_number_outcomes(
        &self,
        outcomes: Vec<NumberOutcome>,
        metadata: &EventMetadata,
    ) -> Result<(), CommandError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        self.with_retries(&Preconditions::none(), || async {
            // Each number once, even when several answers name it.
            let mut ids: Vec<String> = outcomes
                .iter()
                .map(|o| o.telephone_number.to_string())
                .collect();
            ids.sort();
            ids.dedup();
            let loaded_numbers = self.store.load_many::<Number>(&ids).await?;
            let mut numbers: BTreeMap<String, (Loaded<Number>, Vec<domain::NumberEvent>)> = ids
                .into_iter()
                .zip(loaded_numbers)
                .map(|(id, loaded)| (id, (loaded, Vec::new())))
                .collect();
            // Numbers whose release the backend confirmed, by the account they leave.
            let mut released: BTreeMap<AccountName, Vec<E164>> = BTreeMap::new();
            for outcome in &outcomes {
                let Some((loaded, events)) = numbers.get_mut(outcome.telephone_number.as_str())
                else {
                    continue;
                };
                let account = loaded.aggregate.state.as_ref().map(|s| s.account.clone());
                let command = match &outcome.result {
                    Ok(()) => NumberCommand::RecordProvisioned {
                        for_version: outcome.for_version,
                    },
                    Err(errors) => NumberCommand::RecordProvisioningFailed {
                        for_version: outcome.for_version,
                        errors: errors.clone(),
                    },
                };
                let decided = decide(&mut loaded.aggregate, command).await?;
                if let Some(account) = account
                    && loaded.aggregate.state.is_none()
                    && !decided.is_empty()
                {
                    released
                        .entry(account)
                        .or_default()
                        .push(outcome.telephone_number.clone());
                }
                events.extend(decided);
            }
            let mut changes = Changes::new();
            for (id, (loaded, events)) in &numbers {
                changes.append_after::<Number>(id, loaded, events)?;
                // A confirmed release is the only outcome that changes a membership.
                if !events.is_empty() && loaded.aggregate.state.is_none() {
                    changes.remove_member(id);
                }
            }
            let names: Vec<String> = released.keys().map(AccountName::to_string).collect();
            let accounts = self.store.load_many::<Account>(&names).await?;
            let departures = released
                .into_iter()
                .zip(accounts)
                .map(|((name, gone), loaded)| (name, (loaded, gone)))
                .collect();
            self.commit_departures(changes, departures, metadata).await
        })
        .await
    }

    /// Commits `changes`, in which numbers leave accounts (`departures`: each account as loaded
    /// with the numbers that leave it). Each account must still be at the version loaded (a
    /// number write shares its lock); an account being deleted is locked exclusively instead, and
    /// goes in the same commit when no number is left.
    async fn commit_departures(
        &self,
        mut changes: Changes,
        departures: BTreeMap<AccountName, (Loaded<Account>, Vec<E164>)>,
        metadata: &EventMetadata,
    ) -> Result<(), CommandError> {
        let deleting: Vec<&str> = departures
            .iter()
            .filter(|(_, (loaded, gone))| {
                !gone.is_empty() && loaded.aggregate.state.as_ref().is_some_and(|s| s.deleting)
            })
            .map(|(name, _)| name.as_str())
            .collect();
        let mut lock = if deleting.is_empty() {
            None
        } else {
            Some(self.store.lock_accounts(&deleting).await?)
        };
        for (name, (mut loaded, gone)) in departures {
            if !loaded.aggregate.exists() {
                // Nothing to leave: the membership went with the account.
                continue;
            }
            let deleting = loaded.aggregate.state.as_ref().is_some_and(|s| s.deleting);
            match lock.as_mut().filter(|_| deleting && !gone.is_empty()) {
                Some(lock) => {
                    let remaining = lock
                        .members(name.as_str())
                        .await?
                        .iter()
                        .filter(|m| !gone.iter().any(|n| n.as_str() == m.telephone_number))
                        .count() as u64;
                    let events = decide(
                        &mut loaded.aggregate,
                        AccountCommand::CompleteDeletion {
                            account: name.clone(),
                            remaining_numbers: remaining,
                        },
                    )
                    .await?;
                    append_account_events(&mut changes, &name, &loaded, &events)?;
                }
                None => changes.share_account(name.as_str(), loaded.version),
            }
        }
        match lock {
            Some(lock) => lock.commit(changes, metadata).await?,
            None => self.store.commit(changes, metadata).await?,
        }
        Ok(())
    }

    /// Records the backend's answer for the change made to an account at `for_version`; a
    /// stale or repeated answer, or one for a missing account, changes nothing.
    pub async fn record_account_outcome(
        &self,
        name: &AccountName,
        for_version: u64,
        result: ProvisioningResult,
        metadata: &EventMetadata,
    ) -> Result<(), CommandError> {
        let command = match result {
            Ok(()) => AccountCommand::RecordProvisioned { for_version },
            Err(errors) => AccountCommand::RecordProvisioningFailed {
                for_version,
                errors,
            },
        };
        self.with_retries(&Preconditions::none(), || async {
            let mut loaded = self.store.load::<Account>(name.as_str()).await?;
            let events = decide(&mut loaded.aggregate, command.clone()).await?;
            let mut changes = Changes::new();
            changes.append_after::<Account>(name.as_str(), &loaded, &events)?;
            self.store.commit(changes, metadata).await?;
            Ok(())
        })
        .await
    }

    /// Records the backend's answer for the customer relationship pushed at `for_version`; a
    /// stale or repeated answer, or one for a missing consent, changes nothing.
    pub async fn record_consent_outcome(
        &self,
        tenant: &TenantId,
        for_version: u64,
        result: ProvisioningResult,
        metadata: &EventMetadata,
    ) -> Result<(), CommandError> {
        let command = match result {
            Ok(()) => ConsentCommand::RecordProvisioned { for_version },
            Err(errors) => ConsentCommand::RecordProvisioningFailed {
                for_version,
                errors,
            },
        };
        self.execute_consent(tenant, command, &Preconditions::none(), metadata)
            .await?;
        Ok(())
    }

    // ---- civic addresses -------------------------------------------------------------

    /// Records a civic address as the backend reports it (new or changed).
    pub async fn record_civic_address(
        &self,
        id: &Identifier,
        tenant: &TenantId,
        report: domain::CivicAddressReport,
        metadata: &EventMetadata,
    ) -> Result<Loaded<domain::CivicAddress>, CommandError> {
        let command = domain::CivicAddressCommand::RecordCivicAddress {
            id: id.clone(),
            tenant_id: tenant.clone(),
            report,
        };
        self.execute_civic_address(id, command, metadata).await
    }

    /// Records that the backend no longer reports a civic address.
    pub async fn remove_civic_address(
        &self,
        id: &Identifier,
        metadata: &EventMetadata,
    ) -> Result<Loaded<domain::CivicAddress>, CommandError> {
        let command = domain::CivicAddressCommand::RemoveCivicAddress { id: id.clone() };
        self.execute_civic_address(id, command, metadata).await
    }

    async fn execute_civic_address(
        &self,
        id: &Identifier,
        command: domain::CivicAddressCommand,
        metadata: &EventMetadata,
    ) -> Result<Loaded<domain::CivicAddress>, CommandError> {
        self.with_retries(&Preconditions::none(), || async {
            let mut loaded = self.store.load::<domain::CivicAddress>(id.as_str()).await?;
            let events = decide(&mut loaded.aggregate, command.clone()).await?;
            let mut changes = Changes::new();
            changes.append::<domain::CivicAddress>(id.as_str(), loaded.version, &events)?;
            self.store.commit(changes, metadata).await?;
            loaded.version += events.len() as u64;
            Ok(loaded)
        })
        .await
    }

    // ---- consents ----------------------------------------------------------------------

    /// Records a consent as the backend reports it (new or changed).
    pub async fn record_consent(
        &self,
        tenant: &TenantId,
        report: ConsentReport,
        metadata: &EventMetadata,
    ) -> Result<Loaded<Consent>, CommandError> {
        let command = ConsentCommand::RecordConsent {
            tenant_id: tenant.clone(),
            report,
            at: metadata.time,
        };
        self.execute_consent(tenant, command, &Preconditions::none(), metadata)
            .await
    }

    /// Moves a consent's customer relationship to `status`.
    pub async fn change_relationship(
        &self,
        tenant: &TenantId,
        status: RelationshipStatus,
        comment: Option<Comment>,
        ticket_id: Option<TicketId>,
        preconditions: &Preconditions,
        metadata: &EventMetadata,
    ) -> Result<Loaded<Consent>, CommandError> {
        let change = RelationshipChange {
            tenant_id: tenant.clone(),
            comment,
            ticket_id,
            at: Utc::now(),
        };
        let command = ConsentCommand::relationship(status, change);
        self.execute_consent(tenant, command, preconditions, metadata)
            .await
    }

    async fn execute_consent(
        &self,
        tenant: &TenantId,
        command: ConsentCommand,
        preconditions: &Preconditions,
        metadata: &EventMetadata,
    ) -> Result<Loaded<Consent>, CommandError> {
        self.with_retries(preconditions, || async {
            let mut loaded = self.store.load::<Consent>(tenant.as_str()).await?;
            preconditions.check(loaded.aggregate.state.is_some(), loaded.version)?;
            let events = decide(&mut loaded.aggregate, command.clone()).await?;
            let mut changes = Changes::new();
            changes.append_after::<Consent>(tenant.as_str(), &loaded, &events)?;
            self.store.commit(changes, metadata).await?;
            loaded.version += events.len() as u64;
            Ok(loaded)
        })
        .await
    }
}

/// Decides an upsert of `items` into `account` on the states given (as loaded, or as known):
/// the changes to commit and the numbers as they will be. Every item is decided; if any is
/// refused, the refusals are the answer.
async fn upsert_decisions(
    account: &AccountName,
    items: &[(E164, NumberDetails)],
    loaded_account: Loaded<Account>,
    numbers: Vec<Loaded<Number>>,
    preconditions: &Preconditions,
) -> Result<(Changes, Vec<UpsertedNumber>), CommandError> {
    let Some(account_state) = &loaded_account.aggregate.state else {
        return Err(DomainError::AccountNotFound(account.clone()).into());
    };
    // Said once for the whole request rather than for each of its numbers.
    account_state.check_changeable()?;
    let account_services = &account_state.services;
    let mut changes = Changes::new();
    let mut refusals = Vec::new();
    let mut outcomes = Vec::with_capacity(items.len());
    for (index, ((number, details), mut loaded)) in items.iter().zip(numbers).enumerate() {
        let owned = loaded
            .aggregate
            .state
            .as_ref()
            .is_some_and(|s| &s.account == account);
        preconditions.check(owned, loaded.version)?;
        let created = loaded.aggregate.state.is_none();
        let command = NumberCommand::AddOrUpdate {
            telephone_number: number.clone(),
            account: account.clone(),
            account_services: account_services.clone(),
            details: details.clone(),
        };
        match decide_number(&mut changes, number, &mut loaded, command).await? {
            Err(error) => refusals.push(ItemRefusal { index, error }),
            Ok(()) => {
                outcomes.push(UpsertedNumber {
                    number: loaded,
                    created,
                });
            }
        }
    }
    if !refusals.is_empty() {
        return Err(CommandError::BatchRefused(refusals));
    }
    // Decided on the account's services: committed only if the account is unchanged.
    changes.share_account(account.as_str(), loaded_account.version);
    Ok((changes, outcomes))
}

/// Decides `command` on a number as loaded; on success queues its events and the membership
/// change they make, and moves `loaded` to its new state and version. A refusal queues nothing.
async fn decide_number(
    changes: &mut Changes,
    number: &E164,
    loaded: &mut Loaded<Number>,
    command: NumberCommand,
) -> Result<Result<(), DomainError>, StoreError> {
    let before = loaded.aggregate.state.clone();
    let events = match decide(&mut loaded.aggregate, command).await {
        Ok(events) => events,
        Err(error) => return Ok(Err(error)),
    };
    changes.append_after::<Number>(number.as_str(), loaded, &events)?;
    loaded.version += events.len() as u64;
    track_membership(
        changes,
        number,
        before.as_ref(),
        loaded.aggregate.state.as_ref(),
    );
    Ok(Ok(()))
}

/// Queues the membership change that a number's events made: a number that exists belongs to
/// its account with the services it uses; one that is gone belongs to none.
fn track_membership(
    changes: &mut Changes,
    number: &E164,
    before: Option<&NumberState>,
    after: Option<&NumberState>,
) {
    let services = |state: &NumberState| state.details.enabled_services();
    match (before, after) {
        (Some(before), Some(after))
            if before.account == after.account && services(before) == services(after) => {}
        (_, Some(after)) => changes.set_member(
            after.account.as_str(),
            number.as_str(),
            services(after)
                .into_iter()
                .map(|s| s.wire_name().to_string())
                .collect(),
        ),
        (Some(_), None) => changes.remove_member(number.as_str()),
        (None, None) => {}
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

/// Appends an account's events to `changes`; when they delete the account, its tenant link
/// goes in the same commit.
fn append_account_events(
    changes: &mut Changes,
    name: &AccountName,
    loaded: &Loaded<Account>,
    events: &[AccountEvent],
) -> Result<(), CommandError> {
    changes.append_after::<Account>(name.as_str(), loaded, events)?;
    if events
        .iter()
        .any(|event| matches!(event, AccountEvent::AccountDeleted { .. }))
    {
        changes.link_tenant(TenantLink::Clear {
            account: name.to_string(),
        });
    }
    Ok(())
}

/// A single-resource request reports its one refusal as a plain refusal, not as a batch.
fn single_item(error: CommandError) -> CommandError {
    match error {
        CommandError::BatchRefused(mut refusals) if refusals.len() == 1 => {
            CommandError::Refused(refusals.remove(0).error)
        }
        other => other,
    }
}

fn refuse_duplicates<'a>(numbers: impl Iterator<Item = &'a E164>) -> Result<(), CommandError> {
    let mut seen = std::collections::HashSet::new();
    let refusals: Vec<ItemRefusal> = numbers
        .enumerate()
        .filter(|(_, number)| !seen.insert(*number))
        .map(|(index, number)| ItemRefusal {
            index,
            error: DomainError::DuplicateNumberInRequest(number.clone()),
        })
        .collect();
    if refusals.is_empty() {
        Ok(())
    } else {
        Err(CommandError::BatchRefused(refusals))
    }
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
