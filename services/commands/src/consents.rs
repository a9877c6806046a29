//! Commands on consents (requests for information): recorded as the backend reports them,
//! their customer relationship moved by the operator, and its provisioning (a retry asked by
//! the operator, the backend's answer recorded by the saga).

use chrono::Utc;
use domain::{
    Comment, Consent, ConsentCommand, ConsentReport, RelationshipChange, RelationshipStatus,
    TenantId, TicketId,
};
use store::{EventMetadata, Loaded};

use crate::{CommandError, CommandService, Preconditions, ProvisioningResult};

impl CommandService {
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
        self.execute(
            tenant.as_str(),
            command,
            |c: &Consent| c.state.is_some(),
            &Preconditions::none(),
            metadata,
        )
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
        self.execute(
            tenant.as_str(),
            command,
            |c: &Consent| c.state.is_some(),
            preconditions,
            metadata,
        )
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
        self.execute(
            tenant.as_str(),
            command,
            |c: &Consent| c.state.is_some(),
            preconditions,
            metadata,
        )
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
        self.execute(
            tenant.as_str(),
            command,
            |c: &Consent| c.state.is_some(),
            &Preconditions::none(),
            metadata,
        )
        .await?;
        Ok(())
    }
}
