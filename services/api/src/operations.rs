//! The application layer: every operation of the Provisioning API, independent of transport.
//! The REST handlers and the NATS API both call these, so they share validation, rules and
//! error codes. An operation takes path values as strings and bodies as wire types, and answers
//! an `Outcome` or an `AppError` (`commands::application`), which know nothing of HTTP or NATS;
//! each adapter maps them (`error::respond` and `AppError: From<AppError>` for REST, the reply
//! headers for NATS). Nothing here uses axum.

use commands::{AppError, CommandError, ErrorDetail, ErrorKind, OutcomeKind};
use domain::{
    AccountName, Comment, ConsentState, DomainError, E164, RelationshipStatus, SipHeaderValue,
    TenantId,
};

use crate::AppState;
use crate::context::Caller;
use crate::wire::account::AccountResource;
use crate::wire::capabilities::{
    TeamsAvailableCapabilities, TeamsCapabilityPlan, TeamsCapabilityPlans,
};
use crate::wire::consent::{RequestForInformationPatch, RequestForInformationResource};
use crate::wire::number::{BatchNumbers, BatchNumbersDelete, MAX_BATCH, NumberResource};
use crate::wire::parse_at;

pub use commands::Outcome;

fn account_name(value: &str) -> Result<AccountName, AppError> {
    parse_at("accountName", AccountName::parse(value))
}

fn telephone_number(value: &str) -> Result<E164, AppError> {
    parse_at("telephoneNumber", E164::parse(value))
}

fn tenant_id(value: &str) -> Result<TenantId, AppError> {
    parse_at("tenantId", TenantId::parse(value))
}

fn vanished(what: &str) -> AppError {
    AppError::new(
        ErrorKind::Internal,
        "InternalError",
        format!("the {what} vanished after its write"),
    )
}

// ---- accounts ------------------------------------------------------------------------------

pub async fn get_account(state: &AppState, account: &str) -> Result<Outcome, AppError> {
    let name = account_name(account)?;
    let loaded = state.commands.account(&name).await?;
    let account = loaded
        .aggregate
        .state
        .as_ref()
        .ok_or_else(|| AppError::not_found(&format!("account '{name}'")))?;
    let numbers = state.commands.account_number_counts(&name).await?;
    Ok(Outcome::resource(
        OutcomeKind::Done,
        loaded.version,
        AccountResource::from_state(account, &numbers),
    ))
}

pub async fn put_account(
    state: &AppState,
    caller: &Caller,
    account: &str,
    body: AccountResource,
) -> Result<Outcome, AppError> {
    let name = account_name(account)?;
    let request = body.into_request(&name)?;
    let (loaded, created) = state
        .commands
        .create_or_replace_account(
            &name,
            request.correlation_id,
            request.services,
            &caller.preconditions,
            &caller.metadata,
        )
        .await?;
    let status = if created {
        OutcomeKind::Created
    } else {
        OutcomeKind::Done
    };
    let account = loaded
        .aggregate
        .state
        .as_ref()
        .ok_or_else(|| vanished("account"))?;
    let numbers = state.commands.account_number_counts(&name).await?;
    Ok(Outcome::resource(
        status,
        loaded.version,
        AccountResource::from_state(account, &numbers),
    ))
}

/// Pushes again an account's change whose provisioning failed (nmp's own).
pub async fn retry_account_provisioning(
    state: &AppState,
    caller: &Caller,
    account: &str,
) -> Result<Outcome, AppError> {
    let name = account_name(account)?;
    let loaded = state
        .commands
        .retry_account_provisioning(&name, &caller.preconditions, &caller.metadata)
        .await?;
    let account = loaded
        .aggregate
        .state
        .as_ref()
        .ok_or_else(|| vanished("account"))?;
    let numbers = state.commands.account_number_counts(&name).await?;
    Ok(Outcome::resource(
        OutcomeKind::Done,
        loaded.version,
        AccountResource::from_state(account, &numbers),
    ))
}

pub async fn delete_account(
    state: &AppState,
    caller: &Caller,
    account: &str,
    delete_numbers: bool,
) -> Result<Outcome, AppError> {
    let name = account_name(account)?;
    state
        .commands
        .delete_account(
            &name,
            delete_numbers,
            &caller.preconditions,
            &caller.metadata,
        )
        .await?;
    Ok(Outcome::removed())
}

// ---- Teams capabilities, asked of the backend ----------------------------------------------

fn backend_error(error: backend::BackendError) -> AppError {
    match error {
        backend::BackendError::Transient {
            reason,
            retry_after,
        } => {
            tracing::warn!(%reason, "the Teams backend is unavailable");
            AppError::new(
                ErrorKind::Unavailable,
                "BackendUnavailable",
                "the Teams backend is unavailable for now; retry later",
            )
            .with_retry_after(retry_after)
        }
        backend::BackendError::Permanent { code, message } => {
            tracing::warn!(%code, %message, "the Teams backend refused a request");
            AppError::new(
                ErrorKind::BackendRefused,
                code,
                format!("the Teams backend refused the request: {message}"),
            )
        }
    }
}

/// The backend nmp reaches, if one is configured.
fn configured_backend(state: &AppState) -> Result<std::sync::Arc<dyn backend::Backend>, AppError> {
    state.backend.clone().ok_or_else(|| {
        AppError::new(
            ErrorKind::Unavailable,
            "BackendNotConfigured",
            "nmp is not connected to a Teams backend (NMP_BACKEND_URL), so it cannot ask it",
        )
    })
}

/// The Teams tenant of an existing account: the backend knows tenants, not accounts.
async fn teams_tenant(state: &AppState, name: &AccountName) -> Result<TenantId, AppError> {
    let loaded = state.commands.account(name).await?;
    let account = loaded
        .aggregate
        .state
        .as_ref()
        .ok_or_else(|| AppError::not_found(&format!("account '{name}'")))?;
    account.services.teams_tenant_id.clone().ok_or_else(|| {
        AppError::new(
            ErrorKind::Conflict,
            "AccountWithoutTeamsTenant",
            format!("account '{name}' has no teamsTenantId, so the Teams backend cannot tell"),
        )
        .with_target("serviceDetails.teamsTenantId")
    })
}

/// The Teams capability plans the backend offers the account's tenant.
pub async fn get_teams_capability_plans(
    state: &AppState,
    account: &str,
) -> Result<Outcome, AppError> {
    let name = account_name(account)?;
    let backend = configured_backend(state)?;
    let tenant = teams_tenant(state, &name).await?;
    let plans = backend
        .capability_plans(&tenant)
        .await
        .map_err(backend_error)?;
    let body = TeamsCapabilityPlans {
        capability_plans: plans
            .iter()
            .map(TeamsCapabilityPlan::from_backend)
            .collect(),
    };
    Ok(Outcome::answer(body))
}

/// The Teams capabilities the backend would give all the numbers named (at most 100) in the
/// account's tenant. A number the backend rejects is reported with its code.
pub async fn get_teams_available_capabilities(
    state: &AppState,
    account: &str,
    batch: BatchNumbersDelete,
) -> Result<Outcome, AppError> {
    let name = account_name(account)?;
    let numbers = telephone_numbers(batch, false)?;
    let backend = configured_backend(state)?;
    let tenant = teams_tenant(state, &name).await?;
    let answers = backend
        .available_capabilities(&tenant, &numbers)
        .await
        .map_err(backend_error)?;
    let rejected: Vec<ErrorDetail> = answers
        .iter()
        .filter_map(|answer| {
            let rejection = answer.error.as_ref()?;
            let index = numbers.iter().position(|n| n == &answer.telephone_number);
            Some(ErrorDetail {
                code: rejection.code.clone(),
                message: rejection.message.clone(),
                target: Some(match index {
                    Some(index) => format!("numbers[{index}].telephoneNumber"),
                    None => "numbers".to_string(),
                }),
                details: Vec::new(),
            })
        })
        .collect();
    if !rejected.is_empty() {
        let count = rejected.len();
        let target = rejected.first().and_then(|r| r.target.clone());
        let mut error = AppError::invalid(
            "InvalidBatch",
            format!("the Teams backend rejected {count} of the request's numbers"),
        )
        .with_details(rejected);
        error.body.target = target;
        return Err(error);
    }
    let body = TeamsAvailableCapabilities::common_to(&answers);
    Ok(Outcome::answer(body))
}

// ---- numbers -------------------------------------------------------------------------------

/// At most 100 numbers; none only where nothing is asked (an empty write is a no-op, as the
/// public API has no `minItems`; capabilities common to no numbers mean nothing).
fn check_batch_size(count: usize, none_allowed: bool) -> Result<(), AppError> {
    if count > MAX_BATCH {
        return Err(AppError::invalid(
            "TooManyNumbers",
            format!("a request may hold at most {MAX_BATCH} numbers, not {count}"),
        )
        .with_target("numbers"));
    }
    if count == 0 && !none_allowed {
        return Err(
            AppError::invalid("NoNumbers", "the request names no numbers").with_target("numbers"),
        );
    }
    Ok(())
}

/// Upserts at most 100 numbers; every item is checked before any is written.
pub async fn create_or_update_numbers(
    state: &AppState,
    caller: &Caller,
    account: &str,
    batch: BatchNumbers,
) -> Result<Outcome, AppError> {
    let account = account_name(account)?;
    check_batch_size(batch.numbers.len(), true)?;
    let items = batch
        .numbers
        .into_iter()
        .enumerate()
        .map(|(i, n)| n.into_details(&account, &format!("numbers[{i}].")))
        .collect::<Result<Vec<_>, _>>()?;
    let outcomes = state
        .commands
        .upsert_numbers(&account, items, &caller.metadata)
        .await
        .map_err(|e| AppError::from_command(e, "numbers"))?;
    let numbers = outcomes
        .iter()
        .filter_map(|o| o.number.aggregate.state.as_ref())
        .map(NumberResource::from_state)
        .collect();
    Ok(Outcome::answer(BatchNumbers { numbers }))
}

/// The telephone numbers of a batch naming numbers (at most 100), each checked, with the
/// index of a bad one in its target.
fn telephone_numbers(batch: BatchNumbersDelete, none_allowed: bool) -> Result<Vec<E164>, AppError> {
    check_batch_size(batch.numbers.len(), none_allowed)?;
    batch
        .numbers
        .into_iter()
        .enumerate()
        .map(|(i, n)| {
            parse_at(
                format!("numbers[{i}].telephoneNumber"),
                E164::parse(n.telephone_number),
            )
        })
        .collect()
}

/// Deletes at most 100 numbers: all must belong to the account, or none is deleted.
pub async fn delete_numbers(
    state: &AppState,
    caller: &Caller,
    account: &str,
    batch: BatchNumbersDelete,
) -> Result<Outcome, AppError> {
    let account = account_name(account)?;
    let numbers = telephone_numbers(batch, true)?;
    state
        .commands
        .delete_numbers(&account, numbers, &caller.metadata)
        .await
        .map_err(|e| AppError::from_command(e, "numbers"))?;
    Ok(Outcome::removed())
}

pub async fn get_number(
    state: &AppState,
    account: &str,
    number: &str,
) -> Result<Outcome, AppError> {
    let account = account_name(account)?;
    let number = telephone_number(number)?;
    let loaded = state.commands.number(&number).await?;
    let resource = loaded
        .aggregate
        .state
        .as_ref()
        .filter(|s| s.account == account)
        .ok_or_else(|| AppError::not_found(&format!("number {number} in account '{account}'")))?;
    Ok(Outcome::resource(
        OutcomeKind::Done,
        loaded.version,
        NumberResource::from_state(resource),
    ))
}

pub async fn put_number(
    state: &AppState,
    caller: &Caller,
    account: &str,
    number: &str,
    body: NumberResource,
) -> Result<Outcome, AppError> {
    let account = account_name(account)?;
    let number = telephone_number(number)?;
    let (body_number, details) = body.into_details(&account, "")?;
    if body_number != number {
        return Err(AppError::invalid(
            "TelephoneNumberMismatch",
            format!("the body's telephoneNumber {body_number} differs from the path's {number}"),
        )
        .with_target("telephoneNumber"));
    }
    let outcome = state
        .commands
        .upsert_number(
            &account,
            number,
            details,
            &caller.preconditions,
            &caller.metadata,
        )
        .await?;
    let status = if outcome.created {
        OutcomeKind::Created
    } else {
        OutcomeKind::Done
    };
    let resource = outcome
        .number
        .aggregate
        .state
        .as_ref()
        .ok_or_else(|| vanished("number"))?;
    Ok(Outcome::resource(
        status,
        outcome.number.version,
        NumberResource::from_state(resource),
    ))
}

pub async fn delete_number(
    state: &AppState,
    caller: &Caller,
    account: &str,
    number: &str,
) -> Result<Outcome, AppError> {
    let account = account_name(account)?;
    let number = telephone_number(number)?;
    state
        .commands
        .delete_number(&account, number, &caller.preconditions, &caller.metadata)
        .await?;
    Ok(Outcome::removed())
}

/// Pushes again a number's change whose provisioning failed (nmp's own): an upload, an update
/// or a release.
pub async fn retry_number_provisioning(
    state: &AppState,
    caller: &Caller,
    account: &str,
    number: &str,
) -> Result<Outcome, AppError> {
    let account = account_name(account)?;
    let number = telephone_number(number)?;
    let loaded = state
        .commands
        .retry_number_provisioning(&account, &number, &caller.preconditions, &caller.metadata)
        .await?;
    let resource = loaded
        .aggregate
        .state
        .as_ref()
        .ok_or_else(|| vanished("number"))?;
    Ok(Outcome::resource(
        OutcomeKind::Done,
        loaded.version,
        NumberResource::from_state(resource),
    ))
}

/// Sets (or, with `None`, clears) a number's custom SIP header.
pub async fn set_custom_sip_header(
    state: &AppState,
    caller: &Caller,
    account: &str,
    number: &str,
    value: Option<String>,
) -> Result<Outcome, AppError> {
    let account = account_name(account)?;
    let number = telephone_number(number)?;
    let value = value
        .map(|v| parse_at("customSipHeader", SipHeaderValue::parse(v)))
        .transpose()?;
    let loaded = state
        .commands
        .set_sip_header(
            &account,
            &number,
            value,
            &caller.preconditions,
            &caller.metadata,
        )
        .await?;
    let resource = loaded
        .aggregate
        .state
        .as_ref()
        .ok_or_else(|| vanished("number"))?;
    Ok(Outcome::resource(
        OutcomeKind::Done,
        loaded.version,
        NumberResource::from_state(resource),
    ))
}

// ---- requests for information (consents) ---------------------------------------------------

async fn consent_resource(
    state: &AppState,
    consent: &ConsentState,
) -> Result<RequestForInformationResource, AppError> {
    let account = state.commands.account_of_tenant(&consent.tenant_id).await?;
    Ok(RequestForInformationResource::from_state(
        consent,
        account.as_ref(),
    ))
}

pub async fn get_request_for_information(
    state: &AppState,
    tenant: &str,
) -> Result<Outcome, AppError> {
    let tenant = tenant_id(tenant)?;
    let loaded = state.commands.consent(&tenant).await?;
    let consent =
        loaded.aggregate.state.as_ref().ok_or_else(|| {
            AppError::refused(&DomainError::ConsentNotFound(tenant.clone()), None)
        })?;
    Ok(Outcome::resource(
        OutcomeKind::Done,
        loaded.version,
        consent_resource(state, consent).await?,
    ))
}

/// Applies a JSON merge patch to the customer relationship: absent fields keep their value,
/// `null` removes the comment.
pub async fn patch_request_for_information(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
    patch: RequestForInformationPatch,
) -> Result<Outcome, AppError> {
    let tenant = tenant_id(tenant)?;
    let current = state.commands.consent(&tenant).await?;
    let Some(consent) = &current.aggregate.state else {
        return Err(AppError::refused(
            &DomainError::ConsentNotFound(tenant),
            None,
        ));
    };
    let Some(relationship) = patch.customer_relationship else {
        // Nothing writable was named: the merge patch changes nothing.
        caller
            .preconditions
            .check(true, current.version)
            .map_err(AppError::from)?;
        return Ok(Outcome::resource(
            OutcomeKind::Done,
            current.version,
            consent_resource(state, consent).await?,
        ));
    };
    let existing = consent.relationship.as_ref();
    let status = match relationship.status {
        Some(status) => parse_at(
            "customerRelationship.status",
            RelationshipStatus::parse(&status),
        )?,
        None => existing.map(|r| r.status).ok_or_else(|| {
            AppError::invalid(
                "MissingRelationshipStatus",
                "customerRelationship.status is required: the consent has no relationship yet",
            )
            .with_target("customerRelationship.status")
        })?,
    };
    let comment = match relationship.comment {
        None => existing.and_then(|r| r.comment.clone()),
        Some(None) => None,
        Some(Some(text)) => Some(parse_at(
            "customerRelationship.comment",
            Comment::parse(text),
        )?),
    };
    let loaded = state
        .commands
        .change_relationship(
            &tenant,
            status,
            comment,
            caller.ticket_id.clone(),
            &caller.preconditions,
            &caller.metadata,
        )
        .await
        .map_err(|error| match error {
            CommandError::Refused(error) => AppError::refused(&error, None),
            other => AppError::from(other),
        })?;
    let consent = loaded
        .aggregate
        .state
        .as_ref()
        .ok_or_else(|| vanished("request for information"))?;
    Ok(Outcome::resource(
        OutcomeKind::Done,
        loaded.version,
        consent_resource(state, consent).await?,
    ))
}

/// Pushes again a consent's customer relationship whose provisioning failed (nmp's own).
pub async fn retry_request_for_information_provisioning(
    state: &AppState,
    caller: &Caller,
    tenant: &str,
) -> Result<Outcome, AppError> {
    let tenant = tenant_id(tenant)?;
    let loaded = state
        .commands
        .retry_consent_provisioning(&tenant, &caller.preconditions, &caller.metadata)
        .await?;
    let consent = loaded
        .aggregate
        .state
        .as_ref()
        .ok_or_else(|| vanished("request for information"))?;
    Ok(Outcome::resource(
        OutcomeKind::Done,
        loaded.version,
        consent_resource(state, consent).await?,
    ))
}
