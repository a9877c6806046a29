//! The budget of backend calls: one rate limit for every call this process makes to the
//! backend (upload orders, order polls, updates, releases, relationship pushes, and the sync's
//! reads), and the counts of its calls (also recorded as metrics, in `nmp_metrics`).
//!
//! Calls are spaced evenly, `60 s / calls_per_minute` apart (and 1% more, so that jitter on
//! the way never brings two calls a limit apart within the same minute), rather than let
//! through in bursts: a backend that counts calls over any sliding minute then never sees more
//! than the limit, and the saga never trips its 429s by its own doing. A 429 (or any answer with
//! `Retry-After`) holds every further call until the backend's time is up.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use backend::{
    AvailableCapabilities, Backend, BackendCivicAddress, BackendConsent, BackendError,
    CapabilityPlan, NumberConfiguration, NumberResult, OrderStatus, RelationshipUpdate,
    UploadOrder,
};
use domain::{E164, TenantId};
use nmp_metrics::BackendOutcome;
use std::sync::Arc;
use tokio::time::Instant;

/// Calls are spaced this much wider than the limit asks.
const SPACING_MARGIN: f64 = 1.01;

/// How long every call waits after a 429 that named no `Retry-After`.
const DEFAULT_RATE_LIMIT_PAUSE: Duration = Duration::from_secs(1);

/// A shared rate limit on backend calls, with counters.
#[derive(Debug)]
pub struct CallBudget {
    /// The least time between two calls; `None` when unlimited.
    spacing: Option<Duration>,
    /// The earliest moment the next call may start.
    next_call: Mutex<Instant>,
    calls: AtomicU64,
    rate_limited: AtomicU64,
    transient_errors: AtomicU64,
    permanent_errors: AtomicU64,
}

impl CallBudget {
    /// At most `calls_per_minute` calls a minute, spaced evenly; 0 means no limit.
    pub fn per_minute(calls_per_minute: u32) -> CallBudget {
        let spacing = (calls_per_minute > 0)
            .then(|| Duration::from_secs(60).mul_f64(SPACING_MARGIN / f64::from(calls_per_minute)));
        CallBudget {
            spacing,
            next_call: Mutex::new(Instant::now()),
            calls: AtomicU64::new(0),
            rate_limited: AtomicU64::new(0),
            transient_errors: AtomicU64::new(0),
            permanent_errors: AtomicU64::new(0),
        }
    }

    /// No limit (but a 429 still holds calls back for its `Retry-After`).
    pub fn unlimited() -> CallBudget {
        CallBudget::per_minute(0)
    }

    /// Waits until a call may start, and books it.
    pub async fn acquire(&self) {
        let start = {
            let mut next = self.next_call.lock().expect("not poisoned");
            let now = Instant::now();
            let start = (*next).max(now);
            if let Some(spacing) = self.spacing {
                *next = start + spacing;
            }
            start
        };
        let waited = start.saturating_duration_since(Instant::now());
        if !waited.is_zero() {
            nmp_metrics::backend_rate_limit_wait(waited);
        }
        tokio::time::sleep_until(start).await;
    }

    /// Holds every call back for `pause` from now.
    pub fn pause(&self, pause: Duration) {
        let mut next = self.next_call.lock().expect("not poisoned");
        let until = Instant::now() + pause;
        if *next < until {
            *next = until;
        }
    }

    /// Counts a call's answer, and holds further calls back after a 429.
    pub fn observe<T>(&self, result: &Result<T, BackendError>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        match result {
            Ok(_) => nmp_metrics::backend_call(BackendOutcome::Ok),
            Err(error @ BackendError::Transient { retry_after, .. }) => {
                self.transient_errors.fetch_add(1, Ordering::Relaxed);
                if is_rate_limited(error) {
                    self.rate_limited.fetch_add(1, Ordering::Relaxed);
                    nmp_metrics::backend_call(BackendOutcome::RateLimited);
                    self.pause(retry_after.unwrap_or(DEFAULT_RATE_LIMIT_PAUSE));
                } else {
                    nmp_metrics::backend_call(BackendOutcome::Transient);
                }
            }
            Err(BackendError::Permanent { .. }) => {
                nmp_metrics::backend_call(BackendOutcome::Permanent);
                self.permanent_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Calls made so far (answered or failed).
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// 429 answers seen so far.
    pub fn rate_limited(&self) -> u64 {
        self.rate_limited.load(Ordering::Relaxed)
    }

    pub fn transient_errors(&self) -> u64 {
        self.transient_errors.load(Ordering::Relaxed)
    }

    pub fn permanent_errors(&self) -> u64 {
        self.permanent_errors.load(Ordering::Relaxed)
    }
}

/// Whether a transient error is the backend's rate limit (an HTTP 429, or an answer that said
/// when to come back).
pub fn is_rate_limited(error: &BackendError) -> bool {
    match error {
        BackendError::Transient {
            reason,
            retry_after,
        } => retry_after.is_some() || reason.contains("HTTP 429"),
        BackendError::Permanent { .. } => false,
    }
}

/// A [`Backend`] whose every call goes through a [`CallBudget`].
pub struct LimitedBackend {
    inner: Arc<dyn Backend>,
    budget: Arc<CallBudget>,
}

impl LimitedBackend {
    pub fn new(inner: Arc<dyn Backend>, budget: Arc<CallBudget>) -> LimitedBackend {
        LimitedBackend { inner, budget }
    }

    pub fn budget(&self) -> &Arc<CallBudget> {
        &self.budget
    }

    async fn call<T>(
        &self,
        call: impl Future<Output = Result<T, BackendError>>,
    ) -> Result<T, BackendError> {
        self.budget.acquire().await;
        let result = call.await;
        self.budget.observe(&result);
        result
    }
}

#[async_trait]
impl Backend for LimitedBackend {
    async fn consents(&self) -> Result<Vec<BackendConsent>, BackendError> {
        self.call(self.inner.consents()).await
    }

    async fn update_relationship(
        &self,
        tenant: &TenantId,
        update: &RelationshipUpdate,
    ) -> Result<(), BackendError> {
        self.call(self.inner.update_relationship(tenant, update))
            .await
    }

    async fn place_order(&self, order: &UploadOrder) -> Result<OrderStatus, BackendError> {
        self.call(self.inner.place_order(order)).await
    }

    async fn order(&self, id: &str) -> Result<OrderStatus, BackendError> {
        self.call(self.inner.order(id)).await
    }

    async fn update_numbers(
        &self,
        tenant: &TenantId,
        numbers: &[NumberConfiguration],
    ) -> Result<Vec<NumberResult>, BackendError> {
        self.call(self.inner.update_numbers(tenant, numbers)).await
    }

    async fn release_numbers(
        &self,
        tenant: &TenantId,
        numbers: &[E164],
    ) -> Result<Vec<NumberResult>, BackendError> {
        self.call(self.inner.release_numbers(tenant, numbers)).await
    }

    async fn civic_addresses(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<BackendCivicAddress>, BackendError> {
        self.call(self.inner.civic_addresses(tenant)).await
    }

    async fn capability_plans(
        &self,
        tenant: &TenantId,
    ) -> Result<Vec<CapabilityPlan>, BackendError> {
        self.call(self.inner.capability_plans(tenant)).await
    }

    async fn available_capabilities(
        &self,
        tenant: &TenantId,
        numbers: &[E164],
    ) -> Result<Vec<AvailableCapabilities>, BackendError> {
        self.call(self.inner.available_capabilities(tenant, numbers))
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn calls_are_spaced_evenly_within_the_limit() {
        let budget = CallBudget::per_minute(120);
        let started = Instant::now();
        for _ in 0..5 {
            budget.acquire().await;
        }
        // The first call goes at once, the next four half a second (and 1%) apart.
        assert_eq!(started.elapsed(), Duration::from_millis(2020));
    }

    #[tokio::test(start_paused = true)]
    async fn without_a_limit_calls_never_wait() {
        let budget = CallBudget::unlimited();
        let started = Instant::now();
        for _ in 0..1000 {
            budget.acquire().await;
        }
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_429_holds_every_call_for_its_retry_after() {
        let budget = CallBudget::unlimited();
        let answer: Result<(), _> = Err(BackendError::Transient {
            reason: "place an order: HTTP 429: TooManyRequests: slow down".to_string(),
            retry_after: Some(Duration::from_secs(3)),
        });
        budget.observe(&answer);
        let started = Instant::now();
        budget.acquire().await;
        assert_eq!(started.elapsed(), Duration::from_secs(3));
        assert_eq!((budget.calls(), budget.rate_limited()), (1, 1));
    }

    #[test]
    fn a_5xx_is_not_taken_for_the_rate_limit() {
        let error = BackendError::Transient {
            reason: "update numbers: HTTP 503: Unavailable: try later".to_string(),
            retry_after: None,
        };
        assert!(!is_rate_limited(&error));
    }
}
