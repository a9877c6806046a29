//! The OpenAPI description, generated from the handlers and wire types.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::{accounts, audit, consents, dashboard, failures, lists, numbers};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "nmp Provisioning API",
        description = "Wire-compatible with the Azure Communications Gateway Provisioning API, \
                       api-version 2024-02-29-preview. Every operation takes `api-version`. \
                       Writes accept `Repeatability-Request-ID` / `Repeatability-First-Sent`, \
                       `If-Match` / `If-None-Match`, and `x-nmp-ticket-id` (the operator's \
                       ticket, at most 64 characters). Lists take `top`, `skip`, \
                       `maxpagesize` (1–500, default 200), `countRecords` and `filter`: \
                       `field eq 'v'`, `ne`, `startswith(field, 'prefix')`, `and`, `or`, `not`, \
                       parentheses; strings in single quotes ('' for a quote), `true`, \
                       `false`, `null`."
    ),
    paths(
        accounts::get_account,
        accounts::put_account,
        accounts::delete_account,
        accounts::create_or_update_numbers,
        accounts::delete_numbers,
        accounts::get_teams_capability_plans,
        accounts::get_teams_available_capabilities,
        accounts::retry_provisioning,
        numbers::get_number,
        numbers::put_number,
        numbers::delete_number,
        numbers::retry_provisioning,
        consents::get_request_for_information,
        consents::patch_request_for_information,
        consents::retry_provisioning,
        failures::list_failures,
        audit::history,
        audit::as_of,
        audit::export,
        lists::list_accounts,
        lists::list_account_numbers,
        lists::list_numbers,
        lists::list_requests_for_information,
        lists::list_civic_addresses,
        lists::get_civic_address,
        dashboard::number_totals,
        dashboard::consent_totals,
        dashboard::activity,
        dashboard::feed,
    ),
    tags((name = "Dashboard", description = "nmp's own, beyond the Provisioning API: totals, \
        recent activity and a live feed of changes (Server-Sent Events); all need Read."),
        (name = "Provisioning", description = "nmp's own, beyond the Provisioning API: flow-through \
        provisioning to the Teams backend. Every account, number and consent carries \
        `serviceProvisioningStatus` (`pending`, then `synced` or `failed` with \
        `serviceProvisioningErrors`). `GET /provisioning/failures` (Read) lists every failed \
        resource; `:retryProvisioning` (Write) on an account, a number or a request for \
        information pushes its failed change again (409 `ProvisioningNotFailed` unless it \
        failed). Deleting a number whose services flow to the backend answers 204 at once, \
        but the number stays, `pending`, until the backend has released it; meanwhile changes \
        to it are refused with 409 `NumberBeingDeleted`, and a failed release shows as \
        `failed`. Deleting an account with `deleteNumbers=true` waits for the same releases: \
        the account refuses changes with 409 `AccountBeingDeleted` until its last number is \
        gone.")),
    modifiers(&BearerAuth)
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}
