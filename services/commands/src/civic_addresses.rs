//! Commands on civic addresses: recorded as the backend reports them, removed when it no
//! longer does.

use domain::{CivicAddress, CivicAddressCommand, CivicAddressReport, Identifier, TenantId};
use store::{EventMetadata, Loaded};

use crate::{CommandError, CommandService, Preconditions};

impl CommandService {
    /// Records a civic address as the backend reports it (new or changed).
    pub async fn record_civic_address(
        &self,
        id: &Identifier,
        tenant: &TenantId,
        report: CivicAddressReport,
        metadata: &EventMetadata,
    ) -> Result<Loaded<CivicAddress>, CommandError> {
        let command = CivicAddressCommand::RecordCivicAddress {
            id: id.clone(),
            tenant_id: tenant.clone(),
            report,
        };
        self.execute(
            id.as_str(),
            command,
            |_: &CivicAddress| true,
            &Preconditions::none(),
            metadata,
        )
        .await
    }

    /// Records that the backend no longer reports a civic address.
    pub async fn remove_civic_address(
        &self,
        id: &Identifier,
        metadata: &EventMetadata,
    ) -> Result<Loaded<CivicAddress>, CommandError> {
        let command = CivicAddressCommand::RemoveCivicAddress { id: id.clone() };
        self.execute(
            id.as_str(),
            command,
            |_: &CivicAddress| true,
            &Preconditions::none(),
            metadata,
        )
        .await
    }
}
