//! Commands on accounts: create or replace, delete (with their numbers), and their
//! provisioning (a retry asked by the operator, the backend's answer recorded by the saga).

use domain::{
    Account, AccountCommand, AccountEvent, AccountName, AccountServices, DomainError, E164,
    Identifier, Number, NumberCommand, NumberCounts,
};
use store::{Changes, EventMetadata, Loaded, StoreError, TenantLink};

use crate::numbers::decide_number;
use crate::{
    CommandError, CommandService, Preconditions, ProvisioningResult, decide, number_counts,
};

impl CommandService {
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

    /// Pushes again an account's change whose provisioning failed.
    pub async fn retry_account_provisioning(
        &self,
        name: &AccountName,
        preconditions: &Preconditions,
        metadata: &EventMetadata,
    ) -> Result<Loaded<Account>, CommandError> {
        let command = AccountCommand::RetryProvisioning {
            account: name.clone(),
        };
        self.execute(
            name.as_str(),
            command,
            Account::exists,
            preconditions,
            metadata,
        )
        .await
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
        let anyway = |_: &Account| true;
        self.execute(
            name.as_str(),
            command,
            anyway,
            &Preconditions::none(),
            metadata,
        )
        .await?;
        Ok(())
    }
}

/// Appends an account's events to `changes`; when they delete the account, its tenant link
/// goes in the same commit.
pub(crate) fn append_account_events(
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
