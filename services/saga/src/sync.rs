//! The backend sync (component `sync`): every interval it reads the backend's consents and,
//! for each consenting tenant, its civic addresses (with their locations), and records what is
//! new or changed as commands — `record_consent`, `record_civic_address`, and
//! `remove_civic_address` for an address the backend no longer reports — so they reach the
//! API and the read side as events. The domain ignores a report that repeats what it holds, so
//! an unchanged backend writes nothing.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use backend::{Backend, BackendConsent, BackendError};
use commands::{CommandError, CommandService};
use domain::{CivicAddress, CivicAddressReport, Consent, ConsentReport, Identifier, TenantId};
use store::EventMetadata;

/// The subject the sync's commands record as their author.
pub const SYNC_SUBJECT: &str = "nmp-backend-sync";

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("cannot read the backend: {0}")]
    Backend(#[from] BackendError),
    #[error("cannot record what the backend reports: {0}")]
    Command(#[from] CommandError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// What one pass recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SyncReport {
    pub consents_seen: usize,
    pub consents_recorded: usize,
    pub civic_addresses_recorded: usize,
    pub civic_addresses_removed: usize,
}

/// What the sync reports about itself (its metrics are recorded as they change, in
/// `nmp_metrics`).
#[derive(Debug)]
pub struct SyncStatus {
    passes: AtomicU64,
    failures: AtomicU64,
    /// Unix seconds of the last pass that completed; -1 before the first.
    last_success: AtomicI64,
}

impl Default for SyncStatus {
    fn default() -> Self {
        SyncStatus {
            passes: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            last_success: AtomicI64::new(-1),
        }
    }
}

impl SyncStatus {
    pub fn passes(&self) -> u64 {
        self.passes.load(Ordering::Relaxed)
    }
}

/// Polls the backend and records what it reports.
#[derive(Clone)]
pub struct BackendSync {
    commands: CommandService,
    backend: Arc<dyn Backend>,
    interval: Duration,
    status: Arc<SyncStatus>,
}

impl BackendSync {
    pub fn new(commands: CommandService, backend: Arc<dyn Backend>, interval: Duration) -> Self {
        nmp_metrics::install();
        BackendSync {
            commands,
            backend,
            interval,
            status: Arc::new(SyncStatus::default()),
        }
    }

    pub fn status(&self) -> Arc<SyncStatus> {
        self.status.clone()
    }

    /// A pass every interval, until the future is dropped.
    pub async fn run(self) {
        loop {
            match self.run_once().await {
                Ok(report) => {
                    if report.consents_recorded
                        + report.civic_addresses_recorded
                        + report.civic_addresses_removed
                        > 0
                    {
                        tracing::info!(?report, "recorded changes reported by the backend");
                    }
                }
                Err(error) => {
                    self.status.failures.fetch_add(1, Ordering::Relaxed);
                    nmp_metrics::sync_pass_failed();
                    tracing::warn!(%error, "backend sync pass failed; trying again next interval");
                }
            }
            tokio::time::sleep(self.interval).await;
        }
    }

    /// One pass: consents, then each consenting tenant's civic addresses.
    pub async fn run_once(&self) -> Result<SyncReport, SyncError> {
        let mut report = SyncReport::default();
        let consents = self.backend.consents().await?;
        report.consents_seen = consents.len();
        let tenants: Vec<String> = consents.iter().map(|c| c.tenant_id.to_string()).collect();
        let loaded = self
            .commands
            .store()
            .load_many::<Consent>(&tenants)
            .await
            .map_err(CommandError::from)?;
        for (consent, loaded) in consents.iter().zip(loaded) {
            let reported = consent_report(consent);
            let known = loaded.aggregate.state.as_ref().map(|s| &s.report);
            if known != Some(&reported) {
                self.commands
                    .record_consent(&consent.tenant_id, reported, &metadata())
                    .await?;
                report.consents_recorded += 1;
            }
        }
        for consent in &consents {
            let (recorded, removed) = self.sync_civic_addresses(&consent.tenant_id).await?;
            report.civic_addresses_recorded += recorded;
            report.civic_addresses_removed += removed;
        }
        self.status.passes.fetch_add(1, Ordering::Relaxed);
        self.status
            .last_success
            .store(chrono::Utc::now().timestamp(), Ordering::Relaxed);
        nmp_metrics::sync_pass_completed(chrono::Utc::now().timestamp());
        Ok(report)
    }

    /// Records a tenant's civic addresses as the backend reports them, and removes those it no
    /// longer reports. Returns how many were recorded and removed.
    async fn sync_civic_addresses(&self, tenant: &TenantId) -> Result<(usize, usize), SyncError> {
        let addresses = self.backend.civic_addresses(tenant).await?;
        let pool = self.commands.store().pool();
        let ids: Vec<String> = addresses.iter().map(|a| a.id.to_string()).collect();
        let loaded = self
            .commands
            .store()
            .load_many::<CivicAddress>(&ids)
            .await
            .map_err(CommandError::from)?;
        let mut recorded = 0;
        for (address, loaded) in addresses.iter().zip(loaded) {
            let report = CivicAddressReport::from(address.report.clone());
            let same = loaded
                .aggregate
                .state
                .as_ref()
                .is_some_and(|s| s.report == report && s.tenant_id == address.tenant_id);
            if !same {
                self.commands
                    .record_civic_address(&address.id, tenant, report, &metadata())
                    .await?;
                recorded += 1;
            }
        }
        sqlx::query(
            "INSERT INTO sync_civic_addresses (civic_address_id, tenant_id) \
             SELECT i, $2 FROM UNNEST($1::text[]) AS i \
             ON CONFLICT (civic_address_id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id",
        )
        .bind(&ids)
        .bind(tenant.as_str())
        .execute(pool)
        .await?;
        let known: Vec<String> = sqlx::query_scalar(
            "SELECT civic_address_id FROM sync_civic_addresses WHERE tenant_id = $1",
        )
        .bind(tenant.as_str())
        .fetch_all(pool)
        .await?;
        let reported: HashSet<&str> = ids.iter().map(String::as_str).collect();
        let mut removed = 0;
        for id in known.iter().filter(|id| !reported.contains(id.as_str())) {
            let Ok(identifier) = Identifier::parse(id.as_str()) else {
                continue;
            };
            let exists = self
                .commands
                .store()
                .load::<CivicAddress>(id)
                .await
                .map_err(CommandError::from)?
                .aggregate
                .state
                .is_some();
            if exists {
                self.commands
                    .remove_civic_address(&identifier, &metadata())
                    .await?;
                removed += 1;
            }
            sqlx::query("DELETE FROM sync_civic_addresses WHERE civic_address_id = $1")
                .bind(id)
                .execute(pool)
                .await?;
        }
        Ok((recorded, removed))
    }
}

fn consent_report(consent: &BackendConsent) -> ConsentReport {
    ConsentReport {
        consent_id: consent.consent_id.clone(),
        operator_id: consent.operator_id.clone(),
        status: consent.status,
        consented_on: consent.consented_on,
        countries: consent.countries.clone(),
        contacts: consent.contacts.iter().cloned().map(Into::into).collect(),
    }
}

fn metadata() -> EventMetadata {
    EventMetadata {
        roles: vec!["system".to_string()],
        ..EventMetadata::system(SYNC_SUBJECT)
    }
}
