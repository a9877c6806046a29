//! Commands on numbers: add, update and delete them (one, or a batch of which every item is
//! checked before any is written), set their custom SIP header, and their provisioning (a retry
//! asked by the operator, the backend's answers recorded by the saga). Numbers belong to
//! accounts: a write records the membership it makes, decided under the account's lock.

use std::collections::BTreeMap;

use domain::{
    Account, AccountCommand, AccountName, DomainError, E164, Number, NumberCommand, NumberDetails,
    NumberState, SipHeaderValue,
};
use store::{Changes, EventMetadata, Loaded, StoreError};

use crate::accounts::append_account_events;
use crate::{
    CommandError, CommandService, ItemRefusal, NumberOutcome, Preconditions, UpsertedNumber, decide,
};

impl CommandService {
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
                    Err(StoreError::Conflict) => {
                        nmp_metrics::command_conflict(nmp_metrics::Conflict::Retried)
                    }
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

    /// Pushes again a number's change whose provisioning failed: it goes back to pending at a
    /// new version, which the saga picks up. Refused unless its provisioning failed.
    pub async fn retry_number_provisioning(
        &self,
        account: &AccountName,
        number: &E164,
        preconditions: &Preconditions,
        metadata: &EventMetadata,
    ) -> Result<Loaded<Number>, CommandError> {
        let command = NumberCommand::RetryProvisioning {
            telephone_number: number.clone(),
            account: account.clone(),
        };
        let owned = |number: &Number| number.state.as_ref().is_some_and(|s| &s.account == account);
        self.execute(number.as_str(), command, owned, preconditions, metadata)
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
pub(crate) async fn decide_number(
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
