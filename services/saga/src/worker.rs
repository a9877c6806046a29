//! One step of a worker: move due orders on, then claim due work items, decide what each needs
//! from the backend, make the calls (at most 100 numbers each, by tenant) and record the
//! answers as commands.

use std::collections::{BTreeMap, HashMap};
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::time::Duration;

use backend::{
    BackendError, MAX_NUMBERS_PER_CALL, NumberConfiguration, NumberResult,
    OrderState as BackendOrderState, Rejection, RelationshipUpdate,
};
use commands::{NumberOutcome, ProvisioningResult, saga_metadata};
use domain::{
    Account, Consent, E164, Number, NumberState, ProvisioningError, ProvisioningStatus, TenantId,
};
use futures::StreamExt;

use crate::orders::{self, Order, OrderState, Ordered};
use crate::plan::{self, AfterRelease, Need};
use crate::work::{self, Key, Kind, WorkItem};
use crate::{Saga, SagaError};

/// The backend's rejection of an update for a number the tenant does not hold.
const NUMBER_NOT_FOUND: &str = "NumberNotFound";

/// What a step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// It moved something on; there may be more.
    Processed,
    /// Nothing was due.
    Idle,
}

/// A number whose change waits for the backend, as claimed and loaded.
#[derive(Debug, Clone)]
struct Pending {
    item: WorkItem,
    /// The aggregate's version as loaded: every change up to it is covered.
    loaded_version: u64,
    state: NumberState,
}

impl Pending {
    fn number(&self) -> &E164 {
        &self.state.telephone_number
    }

    fn outcome(&self, result: ProvisioningResult) -> NumberOutcome {
        NumberOutcome {
            telephone_number: self.state.telephone_number.clone(),
            for_version: self.state.sync.version,
            result,
        }
    }

    fn answered(&self) -> (Key, i64) {
        (self.item.key(), self.loaded_version as i64)
    }
}

/// What a step decided for its claimed items, applied at its end.
#[derive(Default)]
struct Round {
    /// Answers for numbers, recorded as one command; then their items are finished.
    outcomes: Vec<NumberOutcome>,
    answered_by_outcomes: Vec<(Key, i64)>,
    /// Items with nothing (more) to do, finished at once.
    answered: Vec<(Key, i64)>,
    /// Transient failures: tried again after their backoff.
    failed_for_now: Vec<(Key, Duration, String)>,
    /// Items to take up again soon without counting a failure (a release before an upload,
    /// a number whose order is not finished).
    again: Vec<(Key, Duration)>,
}

impl Round {
    fn answer(&mut self, pending: &Pending, result: ProvisioningResult) {
        self.outcomes.push(pending.outcome(result));
        self.answered_by_outcomes.push(pending.answered());
    }

    fn merge(&mut self, other: Round) {
        self.outcomes.extend(other.outcomes);
        self.answered_by_outcomes.extend(other.answered_by_outcomes);
        self.answered.extend(other.answered);
        self.failed_for_now.extend(other.failed_for_now);
        self.again.extend(other.again);
    }
}

type Job<'a> = Pin<Box<dyn Future<Output = Result<Round, SagaError>> + Send + 'a>>;

impl Saga {
    /// One step: due orders, then due work items.
    pub async fn try_process_next(&self) -> Result<Step, SagaError> {
        let orders = self.advance_due_orders().await?;
        let items = self.process_work().await?;
        Ok(if orders + items > 0 {
            Step::Processed
        } else {
            Step::Idle
        })
    }

    // ---- orders ------------------------------------------------------------------------

    async fn advance_due_orders(&self) -> Result<usize, SagaError> {
        let due = orders::claim_due(
            self.pool(),
            self.settings.orders_per_step,
            self.settings.lease,
        )
        .await?;
        let count = due.len();
        let results: Vec<Result<(), SagaError>> = futures::stream::iter(due)
            .map(|order| self.advance_order(order))
            .buffer_unordered(self.settings.call_concurrency.max(1))
            .collect()
            .await;
        for result in results {
            result?;
        }
        Ok(count)
    }

    /// Moves an order on by one call (place or poll), or records its outcomes.
    async fn advance_order(&self, order: Order) -> Result<(), SagaError> {
        match order.state {
            OrderState::New => match self.backend.place_order(&order.body).await {
                Ok(status) if status.state == BackendOrderState::Completed => {
                    self.complete_order(order, status.results).await
                }
                Ok(_) => {
                    orders::placed(self.pool(), order.id, self.settings.order_poll).await?;
                    Ok(())
                }
                Err(error) => self.order_failed(order, error).await,
            },
            OrderState::Placed => match self.backend.order(&order.body.id).await {
                Ok(status) if status.state == BackendOrderState::Completed => {
                    self.complete_order(order, status.results).await
                }
                Ok(_) => {
                    let poll = self
                        .settings
                        .order_poll
                        .saturating_mul(1 << order.attempts.min(16))
                        .min(self.settings.max_order_poll);
                    orders::later(self.pool(), order.id, poll, None).await?;
                    Ok(())
                }
                Err(error) => self.order_failed(order, error).await,
            },
            OrderState::Done => Ok(()),
        }
    }

    async fn order_failed(&self, order: Order, error: BackendError) -> Result<(), SagaError> {
        match error {
            BackendError::Transient {
                reason,
                retry_after,
            } => {
                let delay = self.settings.retry.delay(order.attempts, retry_after);
                tracing::debug!(order = %order.id, %reason, ?delay, "order call failed for now");
                orders::later(self.pool(), order.id, delay, Some(&reason)).await?;
                Ok(())
            }
            BackendError::Permanent { code, message } => {
                tracing::warn!(order = %order.id, %code, %message, "the backend refused an order");
                let results = order
                    .body
                    .numbers
                    .iter()
                    .map(|c| NumberResult {
                        telephone_number: c.telephone_number.clone(),
                        error: Some(Rejection {
                            code: code.clone(),
                            message: message.clone(),
                        }),
                    })
                    .collect();
                self.complete_order(order, results).await
            }
        }
    }

    /// The backend completed the order: records its outcomes as one command, then marks it
    /// done (results saved, numbers held, work items finished). A crash in between resumes the
    /// order: its results are read again and the repeated outcomes ignored.
    async fn complete_order(
        &self,
        order: Order,
        results: Vec<NumberResult>,
    ) -> Result<(), SagaError> {
        let started = std::time::Instant::now();
        let by_number: HashMap<&str, &NumberResult> = results
            .iter()
            .map(|r| (r.telephone_number.as_str(), r))
            .collect();
        let mut outcomes = Vec::with_capacity(order.items.len());
        let mut answered = Vec::with_capacity(order.items.len());
        for (number, version) in &order.items {
            let Ok(telephone_number) = E164::parse(number.as_str()) else {
                continue;
            };
            outcomes.push(NumberOutcome {
                telephone_number,
                for_version: *version as u64,
                result: result_of(by_number.get(number.as_str()).copied()),
            });
            answered.push((number_key(number), *version));
        }
        if let Err(error) = self.record(outcomes).await {
            let delay = self.settings.retry.delay(order.attempts, None);
            orders::later(self.pool(), order.id, delay, Some(&error.to_string())).await?;
            return Err(error);
        }
        let recorded = started.elapsed();
        orders::finish(self.pool(), &order, &results, &answered).await?;
        tracing::debug!(order = %order.id, ?recorded, took = ?started.elapsed(), "order completed");
        Ok(())
    }

    /// Records answers for numbers as one command.
    async fn record(&self, outcomes: Vec<NumberOutcome>) -> Result<(), SagaError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        self.status
            .count_outcomes(outcomes.iter().map(|o| &o.result));
        self.commands
            .record_number_outcomes(outcomes, &saga_metadata())
            .await?;
        Ok(())
    }

    // ---- work items --------------------------------------------------------------------

    async fn process_work(&self) -> Result<usize, SagaError> {
        let started = std::time::Instant::now();
        let lease = self.settings.lease;
        let numbers =
            work::claim(self.pool(), Kind::Numbers, self.settings.claim_size, lease).await?;
        let others =
            work::claim(self.pool(), Kind::Others, self.settings.claim_size, lease).await?;
        let count = numbers.len() + others.len();
        if count == 0 {
            return Ok(0);
        }
        // More numbers may be due than this step took: a short call can wait for them.
        let more_due = numbers.len() >= self.settings.claim_size;
        let mut consents = Vec::new();
        let mut accounts = Vec::new();
        let mut round = Round::default();
        for item in others {
            match item.aggregate_type.as_str() {
                "consent" => consents.push(item),
                "account" => accounts.push(item),
                _ => round.answered.push((item.key(), item.version)),
            }
        }
        let mut jobs: Vec<Job<'_>> = Vec::new();
        self.plan_numbers(numbers, more_due, &mut round, &mut jobs)
            .await?;
        self.plan_consents(consents, &mut round, &mut jobs).await?;
        self.answer_accounts(accounts, &mut round).await?;
        let planned = started.elapsed();
        let calls = jobs.len();
        let results: Vec<Result<Round, SagaError>> = futures::stream::iter(jobs)
            .buffer_unordered(self.settings.call_concurrency.max(1))
            .collect()
            .await;
        let mut first_error = None;
        for result in results {
            match result {
                Ok(part) => round.merge(part),
                Err(error) => {
                    first_error.get_or_insert(error);
                }
            }
        }
        let called = started.elapsed();
        self.apply(round).await?;
        tracing::debug!(
            items = count,
            calls,
            ?planned,
            ?called,
            took = ?started.elapsed(),
            "saga step"
        );
        match first_error {
            Some(error) => Err(error),
            None => Ok(count),
        }
    }

    /// Decides what each claimed number needs; answers those that need no call, writes the
    /// upload orders, and queues the calls as jobs.
    async fn plan_numbers<'a>(
        &'a self,
        items: Vec<WorkItem>,
        more_due: bool,
        round: &mut Round,
        jobs: &mut Vec<Job<'a>>,
    ) -> Result<(), SagaError> {
        if items.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = items.iter().map(|i| i.aggregate_id.clone()).collect();
        let loaded = self.commands.store().load_many::<Number>(&ids).await?;
        let mut pending = Vec::new();
        for (item, loaded) in items.into_iter().zip(loaded) {
            match loaded.aggregate.state {
                Some(state) if state.sync.status == ProvisioningStatus::Pending => {
                    pending.push(Pending {
                        item,
                        loaded_version: loaded.version,
                        state,
                    })
                }
                _ => round
                    .answered
                    .push((item.key(), (loaded.version as i64).max(0))),
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        let mut account_names: Vec<String> = pending
            .iter()
            .map(|p| p.state.account.to_string())
            .collect();
        account_names.sort();
        account_names.dedup();
        let accounts: HashMap<String, Account> = account_names
            .iter()
            .cloned()
            .zip(
                self.commands
                    .store()
                    .load_many::<Account>(&account_names)
                    .await?,
            )
            .map(|(name, loaded)| (name, loaded.aggregate))
            .collect();
        let pending_ids: Vec<String> = pending.iter().map(|p| p.number().to_string()).collect();
        let held = work::held(self.pool(), &pending_ids).await?;

        let mut uploads: BTreeMap<TenantId, Vec<(Pending, NumberConfiguration)>> = BTreeMap::new();
        let mut updates: BTreeMap<TenantId, Vec<(Pending, NumberConfiguration)>> = BTreeMap::new();
        let mut releases: BTreeMap<TenantId, Vec<(Pending, AfterRelease)>> = BTreeMap::new();
        for p in pending {
            let account = accounts
                .get(p.state.account.as_str())
                .and_then(|a| a.state.as_ref());
            match plan::need(&p.state, account, held.get(p.number().as_str())) {
                Need::Answer(result) => round.answer(&p, result),
                Need::Upload {
                    tenant,
                    configuration,
                } => uploads.entry(tenant).or_default().push((p, configuration)),
                Need::Update {
                    tenant,
                    configuration,
                } => updates.entry(tenant).or_default().push((p, configuration)),
                Need::Release { tenant, then } => {
                    releases.entry(tenant).or_default().push((p, then))
                }
            }
        }

        let uploads = uploads
            .into_iter()
            .map(|(tenant, numbers)| (tenant, self.split_into_calls(numbers, more_due, round)))
            .collect();
        self.write_orders(uploads, round, jobs).await?;
        for (tenant, numbers) in updates {
            for call in self.split_into_calls(numbers, more_due, round) {
                let tenant = tenant.clone();
                jobs.push(Box::pin(self.update_numbers(tenant, call)));
            }
        }
        for (tenant, numbers) in releases {
            for call in self.split_into_calls(numbers, more_due, round) {
                let tenant = tenant.clone();
                jobs.push(Box::pin(self.release_numbers(tenant, call)));
            }
        }
        Ok(())
    }

    /// Splits one tenant's numbers for one kind of call into calls of at most 100. A last,
    /// short call waits for more numbers to fill it — its items go back to the queue — while
    /// more are due than this step took, or while its oldest item is younger than
    /// `batch_linger`; never once its oldest item has waited `max_batch_hold`.
    fn split_into_calls<T>(
        &self,
        numbers: Vec<(Pending, T)>,
        more_due: bool,
        round: &mut Round,
    ) -> Vec<Vec<(Pending, T)>> {
        let mut calls = chunks(numbers);
        let Some(last) = calls
            .last()
            .filter(|last| last.len() < MAX_NUMBERS_PER_CALL)
        else {
            return calls;
        };
        let oldest = last
            .iter()
            .map(|(p, _)| p.item.age())
            .max()
            .unwrap_or_default();
        let wait = if oldest >= self.settings.max_batch_hold {
            None
        } else if more_due {
            Some(Duration::ZERO)
        } else {
            self.settings
                .batch_linger
                .checked_sub(oldest)
                .filter(|w| !w.is_zero())
        };
        if let Some(wait) = wait {
            for (p, _) in calls.pop().into_iter().flatten() {
                round.again.push((p.item.key(), wait));
            }
        }
        calls
    }

    /// Writes upload orders of at most 100 numbers per tenant, and queues placing them. A
    /// change that is somehow in an order already is answered from that order, never ordered
    /// again.
    async fn write_orders<'a>(
        &'a self,
        uploads: BTreeMap<TenantId, Vec<Vec<(Pending, NumberConfiguration)>>>,
        round: &mut Round,
        jobs: &mut Vec<Job<'a>>,
    ) -> Result<(), SagaError> {
        if uploads.is_empty() {
            return Ok(());
        }
        let changes: Vec<(String, i64)> = uploads
            .values()
            .flatten()
            .flatten()
            .map(|(p, _)| (p.number().to_string(), p.state.sync.version as i64))
            .collect();
        let ordered = orders::already_ordered(self.pool(), &changes).await?;
        let mut batches = Vec::new();
        let mut batched: Vec<Pending> = Vec::new();
        for (tenant, calls) in uploads {
            for call in calls {
                let mut changes = Vec::with_capacity(call.len());
                for (p, configuration) in call {
                    let change = (p.number().to_string(), p.state.sync.version as i64);
                    match ordered.get(&change) {
                        Some(Ordered::InFlight) => {
                            round.again.push((p.item.key(), Duration::from_secs(1)))
                        }
                        Some(Ordered::Answered(result)) => {
                            round.answer(&p, result_of(result.as_ref()));
                        }
                        None => {
                            changes.push((configuration, p.state.sync.version));
                            batched.push(p);
                        }
                    }
                }
                if !changes.is_empty() {
                    batches.push((tenant.clone(), changes));
                }
            }
        }
        let created = orders::create(self.pool(), batches, self.settings.lease).await?;
        let taken: std::collections::HashSet<&str> = created
            .iter()
            .flat_map(|o| o.items.iter().map(|(n, _)| n.as_str()))
            .collect();
        for p in &batched {
            if !taken.contains(p.number().as_str()) {
                // In another unfinished order (a lease ran out): after that one.
                round.again.push((p.item.key(), Duration::from_secs(1)));
            }
        }
        self.status
            .orders_created
            .fetch_add(created.len() as u64, Ordering::Relaxed);
        nmp_metrics::saga_orders_created(created.len() as u64);
        for order in created {
            jobs.push(Box::pin(async move {
                self.advance_order(order).await?;
                Ok(Round::default())
            }));
        }
        Ok(())
    }

    async fn update_numbers(
        &self,
        tenant: TenantId,
        numbers: Vec<(Pending, NumberConfiguration)>,
    ) -> Result<Round, SagaError> {
        let configurations: Vec<NumberConfiguration> =
            numbers.iter().map(|(_, c)| c.clone()).collect();
        let answer = self.backend.update_numbers(&tenant, &configurations).await;
        let pending: Vec<Pending> = numbers.into_iter().map(|(p, _)| p).collect();
        let mut round = Round::default();
        match answer {
            Ok(results) => {
                let results = by_number(&results);
                let mut not_held = Vec::new();
                for p in &pending {
                    let result = results.get(p.number().as_str()).copied();
                    let lost = result
                        .and_then(|r| r.error.as_ref())
                        .is_some_and(|e| e.code == NUMBER_NOT_FOUND);
                    if lost {
                        // The backend no longer holds it (saga_held was wrong): upload it.
                        not_held.push(p.number().to_string());
                        round.again.push((p.item.key(), Duration::ZERO));
                    } else {
                        round.answer(p, result_of(result));
                    }
                }
                work::let_go(self.pool(), &not_held).await?;
            }
            Err(error) => self.call_failed(&pending, error, &mut round),
        }
        Ok(round)
    }

    async fn release_numbers(
        &self,
        tenant: TenantId,
        numbers: Vec<(Pending, AfterRelease)>,
    ) -> Result<Round, SagaError> {
        let to_release: Vec<E164> = numbers.iter().map(|(p, _)| p.number().clone()).collect();
        let answer = self.backend.release_numbers(&tenant, &to_release).await;
        let mut round = Round::default();
        match answer {
            Ok(results) => {
                let results = by_number(&results);
                let mut released = Vec::new();
                for (p, then) in &numbers {
                    let result = result_of(results.get(p.number().as_str()).copied());
                    if result.is_ok() {
                        released.push(p.number().to_string());
                    }
                    match (result, then) {
                        (Ok(()), AfterRelease::UploadNext) => {
                            round.again.push((p.item.key(), Duration::ZERO))
                        }
                        (result, _) => round.answer(p, result),
                    }
                }
                work::let_go(self.pool(), &released).await?;
            }
            Err(error) => {
                let pending: Vec<Pending> = numbers.into_iter().map(|(p, _)| p).collect();
                self.call_failed(&pending, error, &mut round);
            }
        }
        Ok(round)
    }

    /// A call for these numbers failed as a whole: for now (they are tried again after their
    /// backoff), or for good (each is recorded failed with the backend's error).
    fn call_failed(&self, numbers: &[Pending], error: BackendError, round: &mut Round) {
        match error {
            BackendError::Transient {
                reason,
                retry_after,
            } => {
                for p in numbers {
                    let delay = self
                        .settings
                        .retry
                        .delay(p.item.attempts.max(0) as u32, retry_after);
                    round
                        .failed_for_now
                        .push((p.item.key(), delay, reason.clone()));
                }
            }
            BackendError::Permanent { code, message } => {
                for p in numbers {
                    round.answer(
                        p,
                        Err(vec![ProvisioningError {
                            code: code.clone(),
                            message: message.clone(),
                        }]),
                    );
                }
            }
        }
    }

    // ---- consents and accounts ----------------------------------------------------------

    async fn plan_consents<'a>(
        &'a self,
        items: Vec<WorkItem>,
        round: &mut Round,
        jobs: &mut Vec<Job<'a>>,
    ) -> Result<(), SagaError> {
        if items.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = items.iter().map(|i| i.aggregate_id.clone()).collect();
        let loaded = self.commands.store().load_many::<Consent>(&ids).await?;
        for (item, loaded) in items.into_iter().zip(loaded) {
            let answered = (item.key(), loaded.version as i64);
            let Some(state) = loaded
                .aggregate
                .state
                .filter(|s| s.sync.status == ProvisioningStatus::Pending)
            else {
                round.answered.push(answered);
                continue;
            };
            jobs.push(Box::pin(async move {
                let mut round = Round::default();
                let result = match &state.relationship {
                    // Nothing of the operator's to push.
                    None => Ok(()),
                    Some(relationship) => {
                        let update = RelationshipUpdate {
                            status: relationship.status,
                            comment: relationship.comment.clone(),
                        };
                        self.backend
                            .update_relationship(&state.tenant_id, &update)
                            .await
                    }
                };
                let result = match result {
                    Ok(()) => Ok(()),
                    Err(BackendError::Permanent { code, message }) => {
                        Err(vec![ProvisioningError { code, message }])
                    }
                    Err(BackendError::Transient {
                        reason,
                        retry_after,
                    }) => {
                        let delay = self
                            .settings
                            .retry
                            .delay(item.attempts.max(0) as u32, retry_after);
                        round.failed_for_now.push((item.key(), delay, reason));
                        return Ok(round);
                    }
                };
                self.commands
                    .record_consent_outcome(
                        &state.tenant_id,
                        state.sync.version,
                        result,
                        &saga_metadata(),
                    )
                    .await?;
                round.answered.push(answered);
                Ok(round)
            }));
        }
        Ok(())
    }

    /// An account has no resource of its own in the backend (its numbers carry the
    /// flow-through), so a pending account change is in step as soon as it is seen.
    async fn answer_accounts(
        &self,
        items: Vec<WorkItem>,
        round: &mut Round,
    ) -> Result<(), SagaError> {
        if items.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = items.iter().map(|i| i.aggregate_id.clone()).collect();
        let loaded = self.commands.store().load_many::<Account>(&ids).await?;
        for (item, loaded) in items.into_iter().zip(loaded) {
            if let Some(state) = &loaded.aggregate.state
                && state.sync.status == ProvisioningStatus::Pending
            {
                self.commands
                    .record_account_outcome(
                        &state.name,
                        state.sync.version,
                        Ok(()),
                        &saga_metadata(),
                    )
                    .await?;
            }
            round.answered.push((item.key(), loaded.version as i64));
        }
        Ok(())
    }

    // ---- the end of a step --------------------------------------------------------------

    async fn apply(&self, round: Round) -> Result<(), SagaError> {
        let Round {
            outcomes,
            answered_by_outcomes,
            answered,
            failed_for_now,
            again,
        } = round;
        work::finish(self.pool(), &answered).await?;
        work::postpone(self.pool(), &again, false, None).await?;
        let mut by_reason: BTreeMap<String, Vec<(Key, Duration)>> = BTreeMap::new();
        for (key, delay, reason) in failed_for_now {
            by_reason.entry(reason).or_default().push((key, delay));
        }
        for (reason, items) in by_reason {
            work::postpone(self.pool(), &items, true, Some(&reason)).await?;
        }
        match self.record(outcomes).await {
            Ok(()) => work::finish(self.pool(), &answered_by_outcomes).await?,
            Err(error) => {
                // The calls may be made again: each is safe to repeat.
                let retry: Vec<(Key, Duration)> = answered_by_outcomes
                    .into_iter()
                    .map(|(key, _)| (key, self.settings.retry.delay(0, None)))
                    .collect();
                work::postpone(self.pool(), &retry, true, Some(&error.to_string())).await?;
                return Err(error);
            }
        }
        Ok(())
    }
}

fn number_key(number: &str) -> Key {
    Key {
        aggregate_type: "number".to_string(),
        aggregate_id: number.to_string(),
    }
}

fn by_number(results: &[NumberResult]) -> HashMap<&str, &NumberResult> {
    results
        .iter()
        .map(|r| (r.telephone_number.as_str(), r))
        .collect()
}

/// The outcome a per-number result stands for; no result at all is a failure too.
fn result_of(result: Option<&NumberResult>) -> ProvisioningResult {
    match result {
        Some(NumberResult { error: None, .. }) => Ok(()),
        Some(NumberResult {
            error: Some(rejection),
            ..
        }) => Err(vec![ProvisioningError {
            code: rejection.code.clone(),
            message: rejection.message.clone(),
        }]),
        None => Err(vec![ProvisioningError {
            code: "NoResult".to_string(),
            message: "the backend answered without a result for this number".to_string(),
        }]),
    }
}

/// Splits into calls of at most [`MAX_NUMBERS_PER_CALL`] numbers.
fn chunks<T>(items: Vec<T>) -> Vec<Vec<T>> {
    let mut chunks = Vec::with_capacity(items.len().div_ceil(MAX_NUMBERS_PER_CALL));
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        chunks.push(items.by_ref().take(MAX_NUMBERS_PER_CALL).collect());
    }
    chunks
}
