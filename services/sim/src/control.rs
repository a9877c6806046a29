//! [`SimControl`]: a typed client of `/_sim`, one method per route, for tests, benchmarks and
//! demos that set the scene over HTTP and compare the simulator's ledger with nmp's state.

use backend::wire::List;
use backend::{BackendCivicAddress, BackendConsent};
use domain::{ConsentStatus, TenantId};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::faults::Faults;
use crate::model::{
    CivicAddressInput, ConsentInput, ConsentStatusInput, HeldNumber, LedgerEntry, RuntimeSettings,
    Stats,
};

/// The simulator at `base_url`, such as `http://127.0.0.1:8090`.
#[derive(Debug, Clone)]
pub struct SimControl {
    base_url: String,
    http: reqwest::Client,
}

impl SimControl {
    pub fn new(base_url: impl Into<String>) -> Self {
        SimControl {
            base_url: base_url.into().trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/_sim{path}", self.base_url)
    }

    async fn read<T: DeserializeOwned>(&self, path: &str) -> reqwest::Result<T> {
        self.http
            .get(self.url(path))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
    }

    async fn post<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &(impl Serialize + ?Sized),
    ) -> reqwest::Result<T> {
        self.http
            .post(self.url(path))
            .json(body)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
    }

    /// Adds or replaces the tenant's consent, active.
    pub async fn put_consent(&self, consent: &ConsentInput) -> reqwest::Result<BackendConsent> {
        self.post("/consents", consent).await
    }

    pub async fn set_consent_status(
        &self,
        tenant: &TenantId,
        status: ConsentStatus,
    ) -> reqwest::Result<BackendConsent> {
        self.post(
            &format!("/consents/{tenant}/status"),
            &ConsentStatusInput { status },
        )
        .await
    }

    pub async fn put_civic_address(
        &self,
        tenant: &TenantId,
        address: &CivicAddressInput,
    ) -> reqwest::Result<BackendCivicAddress> {
        self.post(&format!("/tenants/{tenant}/civicAddresses"), address)
            .await
    }

    pub async fn remove_civic_address(&self, tenant: &TenantId, id: &str) -> reqwest::Result<()> {
        let mut url = reqwest::Url::parse(&self.url("/tenants")).expect("a URL");
        if let Ok(mut segments) = url.path_segments_mut() {
            segments.extend([tenant.as_str(), "civicAddresses", id]);
        }
        self.http.delete(url).send().await?.error_for_status()?;
        Ok(())
    }

    /// Replaces the faults switched on (`Faults::default()` switches them all off).
    pub async fn set_faults(&self, faults: &Faults) -> reqwest::Result<Faults> {
        self.post("/faults", faults).await
    }

    pub async fn faults(&self) -> reqwest::Result<Faults> {
        self.read("/faults").await
    }

    pub async fn set_settings(
        &self,
        settings: &RuntimeSettings,
    ) -> reqwest::Result<RuntimeSettings> {
        self.post("/settings", settings).await
    }

    pub async fn settings(&self) -> reqwest::Result<RuntimeSettings> {
        self.read("/settings").await
    }

    /// The ledger's entries after sequence `since` (0: all).
    pub async fn ledger(&self, since: u64) -> reqwest::Result<Vec<LedgerEntry>> {
        let list: List<LedgerEntry> = self.read(&format!("/ledger?since={since}")).await?;
        Ok(list.value)
    }

    /// The numbers held, of one tenant or of all.
    pub async fn numbers(&self, tenant: Option<&TenantId>) -> reqwest::Result<Vec<HeldNumber>> {
        let path = match tenant {
            Some(tenant) => format!("/numbers?tenantId={tenant}"),
            None => "/numbers".to_string(),
        };
        let list: List<HeldNumber> = self.read(&path).await?;
        Ok(list.value)
    }

    pub async fn stats(&self) -> reqwest::Result<Stats> {
        self.read("/stats").await
    }

    pub async fn reset(&self) -> reqwest::Result<()> {
        self.http
            .post(self.url("/reset"))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }
}
