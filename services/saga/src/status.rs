//! What the saga reports about itself (its metrics are recorded as they change, in
//! `nmp_metrics`).

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

#[derive(Debug)]
pub struct SagaStatus {
    pub(crate) intake_running: AtomicBool,
    /// Work items waiting (claimed or not); -1 until measured.
    pub(crate) work_items: AtomicI64,
    /// Orders placed or to be placed whose outcomes are not recorded yet; -1 until measured.
    pub(crate) open_orders: AtomicI64,
    pub(crate) orders_created: AtomicU64,
    pub(crate) numbers_synced: AtomicU64,
    pub(crate) numbers_failed: AtomicU64,
}

impl Default for SagaStatus {
    fn default() -> Self {
        SagaStatus {
            intake_running: AtomicBool::new(false),
            work_items: AtomicI64::new(-1),
            open_orders: AtomicI64::new(-1),
            orders_created: AtomicU64::new(0),
            numbers_synced: AtomicU64::new(0),
            numbers_failed: AtomicU64::new(0),
        }
    }
}

impl SagaStatus {
    /// Whether the intake follows the stream.
    pub fn is_running(&self) -> bool {
        self.intake_running.load(Ordering::Relaxed)
    }

    pub fn work_items(&self) -> Option<u64> {
        u64::try_from(self.work_items.load(Ordering::Relaxed)).ok()
    }

    pub fn open_orders(&self) -> Option<u64> {
        u64::try_from(self.open_orders.load(Ordering::Relaxed)).ok()
    }

    /// Upload orders this process wrote.
    pub fn orders_created(&self) -> u64 {
        self.orders_created.load(Ordering::Relaxed)
    }

    /// Backend answers recorded by this process: (synced, failed).
    pub fn outcomes(&self) -> (u64, u64) {
        (
            self.numbers_synced.load(Ordering::Relaxed),
            self.numbers_failed.load(Ordering::Relaxed),
        )
    }

    pub(crate) fn count_outcomes<'a>(
        &self,
        results: impl IntoIterator<Item = &'a commands::ProvisioningResult>,
    ) {
        for result in results {
            let counter = match result {
                Ok(()) => &self.numbers_synced,
                Err(_) => &self.numbers_failed,
            };
            counter.fetch_add(1, Ordering::Relaxed);
            nmp_metrics::saga_outcome(result.is_ok());
        }
    }
}
