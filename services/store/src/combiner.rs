//! Group commit: commands committed at the same moment share one statement and one
//! transaction.
//!
//! Under load most of the database's time for a command went to what every transaction pays
//! whatever it writes — its round trip, its commit record and the wait for it to reach the
//! disk — not to the rows. The combiner takes the commands queued while earlier ones are being
//! written and writes them together with `nmp_append_batch`: each command in a
//! subtransaction of its own, so one that loses a race (a sequence taken, an account changed
//! since) is rolled back alone and answered `Conflict`, while the others commit together.
//! Nothing is answered before the transaction has committed. A lone command is written as it
//! always was (`nmp_append`), so a quiet system waits for nothing.
//!
//! Commands in a batch are written in the order of the first aggregate each writes, so two
//! batches writing the same aggregates meet them in one order. Should batches still deadlock,
//! or a batch fail as a whole, its commands are written again one by one, each answered with
//! its own outcome.

use std::sync::Arc;

use sqlx::PgPool;
use tokio::sync::{Notify, Semaphore, mpsc, oneshot};

use crate::event_store::{Prepared, StoreError};

/// At most this many commands share a batch.
const MAX_BATCH: usize = 64;
/// Batches being written at once, each on a connection of its own.
const IN_FLIGHT: usize = 4;

/// A command's changes waiting to be written, and who waits for the outcome.
pub(crate) struct Job {
    pub(crate) prepared: Prepared,
    pub(crate) reply: oneshot::Sender<Result<(), StoreError>>,
}

/// Starts the combiner on the current runtime; it ends when every sender is dropped.
pub(crate) fn start(pool: PgPool, appended: Arc<Notify>) -> mpsc::UnboundedSender<Job> {
    let (sender, receiver) = mpsc::unbounded_channel();
    tokio::spawn(run(pool, appended, receiver));
    sender
}

async fn run(pool: PgPool, appended: Arc<Notify>, mut queue: mpsc::UnboundedReceiver<Job>) {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    while let Some(first) = queue.recv().await {
        // Wait for a connection's turn first: meanwhile more commands queue up to join.
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let pool = pool.clone();
        let appended = appended.clone();
        tokio::spawn(async move {
            write(&pool, jobs).await;
            appended.notify_one();
            drop(permit);
        });
    }
}

/// Writes `jobs` and answers each.
async fn write(pool: &PgPool, mut jobs: Vec<Job>) {
    if jobs.len() > 1 {
        jobs.sort_by(|a, b| a.prepared.first_key().cmp(&b.prepared.first_key()));
        match append_batch(pool, &jobs).await {
            Ok(outcomes) if outcomes.len() == jobs.len() => {
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    let _ = job.reply.send(outcome);
                }
                return;
            }
            Ok(outcomes) => tracing::error!(
                commands = jobs.len(),
                outcomes = outcomes.len(),
                "a batch answered for a different number of commands; writing them one by one"
            ),
            Err(error) => tracing::debug!(
                commands = jobs.len(),
                %error,
                "a batch failed as a whole; writing its commands one by one"
            ),
        }
    }
    for job in jobs {
        let outcome = match pool.acquire().await {
            Ok(mut connection) => job.prepared.append(&mut connection).await,
            Err(error) => Err(StoreError::Database(error)),
        };
        let _ = job.reply.send(outcome);
    }
}

/// One `nmp_append_batch` statement for every job: each command's slice of the arrays is
/// bounded by its entries in the `*_ends` arrays (the end of each command's entries, after
/// those of the commands before it).
async fn append_batch(
    pool: &PgPool,
    jobs: &[Job],
) -> Result<Vec<Result<(), StoreError>>, StoreError> {
    let mut batch = Batch::default();
    for job in jobs {
        batch.add(&job.prepared);
    }
    let mut connection = pool.acquire().await?;
    let codes: Vec<String> = sqlx::query_scalar(
        "SELECT * FROM nmp_append_batch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
                                        $14, $15, $16, $17, $18, $19, $20)",
    )
    .bind(&batch.shared_ends)
    .bind(&batch.shared_accounts)
    .bind(&batch.shared_versions)
    .bind(&batch.row_ends)
    .bind(&batch.types)
    .bind(&batch.ids)
    .bind(&batch.sequences)
    .bind(&batch.event_types)
    .bind(&batch.versions)
    .bind(&batch.payloads)
    .bind(&batch.metadata)
    .bind(&batch.member_ends)
    .bind(&batch.member_numbers)
    .bind(&batch.member_accounts)
    .bind(&batch.member_services)
    .bind(&batch.removed_ends)
    .bind(&batch.removed)
    .bind(&batch.tenant_ends)
    .bind(&batch.tenant_accounts)
    .bind(&batch.tenant_ids)
    .fetch_all(&mut *connection)
    .await?;
    Ok(codes
        .into_iter()
        .map(|code| match code.as_str() {
            "ok" => Ok(()),
            // A sequence taken, or an account changed since the command decided.
            "23505" | "40001" => Err(StoreError::Conflict),
            other => Err(StoreError::Corrupt(format!(
                "nmp_append_batch answered '{other}' for a command"
            ))),
        })
        .collect())
}

/// The arrays of a batch, every command's entries after those of the commands before it.
#[derive(Default)]
struct Batch<'a> {
    shared_ends: Vec<i32>,
    shared_accounts: Vec<&'a str>,
    shared_versions: Vec<i64>,
    row_ends: Vec<i32>,
    types: Vec<&'a str>,
    ids: Vec<&'a str>,
    sequences: Vec<i64>,
    event_types: Vec<&'a str>,
    versions: Vec<&'a str>,
    payloads: Vec<&'a serde_json::Value>,
    metadata: Vec<&'a serde_json::Value>,
    member_ends: Vec<i32>,
    member_numbers: Vec<&'a str>,
    member_accounts: Vec<&'a str>,
    member_services: Vec<&'a str>,
    removed_ends: Vec<i32>,
    removed: Vec<&'a str>,
    tenant_ends: Vec<i32>,
    tenant_accounts: Vec<&'a str>,
    tenant_ids: Vec<Option<&'a str>>,
}

impl<'a> Batch<'a> {
    fn add(&mut self, p: &'a Prepared) {
        let strs = |v: &'a [String]| v.iter().map(String::as_str);
        self.shared_accounts.extend(strs(&p.shared_accounts));
        self.shared_versions.extend(&p.shared_versions);
        self.shared_ends.push(self.shared_accounts.len() as i32);
        self.types.extend(strs(&p.types));
        self.ids.extend(strs(&p.ids));
        self.sequences.extend(&p.sequences);
        self.event_types.extend(strs(&p.event_types));
        self.versions.extend(strs(&p.versions));
        self.payloads.extend(&p.payloads);
        self.metadata.extend(&p.metadata);
        self.row_ends.push(self.types.len() as i32);
        self.member_numbers.extend(strs(&p.members.numbers));
        self.member_accounts.extend(strs(&p.members.accounts));
        self.member_services.extend(strs(&p.members.services));
        self.member_ends.push(self.member_numbers.len() as i32);
        self.removed.extend(strs(&p.members.removed));
        self.removed_ends.push(self.removed.len() as i32);
        self.tenant_accounts.extend(strs(&p.tenant_accounts));
        self.tenant_ids
            .extend(p.tenant_ids.iter().map(|t| t.as_deref()));
        self.tenant_ends.push(self.tenant_accounts.len() as i32);
    }
}
