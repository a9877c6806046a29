//! The provisioning saga for tests: a backend simulator in-process on a free port (real HTTP),
//! the saga (and the backend sync) on a test's own stream, killed and restarted at will, and a
//! wait until the saga has answered every change.

use std::sync::Arc;
use std::time::{Duration, Instant};

use backend::Backend;
use backend::client::{HttpBackend, Timeouts};
use commands::CommandService;
use domain::{Account, Consent, CountryCode, Number, ProvisioningStatus, TenantId};
use saga::{Backoff, CallBudget, LimitedBackend, Saga, SagaSettings, SagaStatus};
use serde_json::{Value, json};
use sim::{ConsentInput, ContactInput, RunningSim, SimControl, SimSettings};
use tokio::task::JoinHandle;

use crate::TestApp;
use crate::nats::TestStream;

/// How the saga and the simulator run in a test.
#[derive(Debug, Clone)]
pub struct SagaOptions {
    /// How long the simulator keeps an order in progress.
    pub order_delay: Duration,
    /// The saga's rate limit (0: none).
    pub calls_per_minute: u32,
    /// The client's timeout for one call (the simulator's `slow` fault beyond it is a timeout).
    pub request_timeout: Duration,
    /// How long a claim holds (a killed saga's claims wait this long).
    pub lease: Duration,
    /// Worker loops.
    pub workers: usize,
}

impl Default for SagaOptions {
    fn default() -> Self {
        SagaOptions {
            order_delay: Duration::from_millis(20),
            calls_per_minute: 0,
            request_timeout: Duration::from_secs(2),
            lease: Duration::from_secs(3),
            workers: 2,
        }
    }
}

/// The simulator, and the saga provisioning it for one test app.
pub struct SagaSide {
    pub sim: RunningSim,
    pub control: SimControl,
    /// The simulator behind the saga's rate limit, as the saga and the sync call it.
    pub backend: Arc<dyn Backend>,
    pub budget: Arc<CallBudget>,
    pub settings: SagaSettings,
    pub status: Arc<SagaStatus>,
    commands: CommandService,
    jetstream: async_nats::jetstream::Context,
    saga: Option<JoinHandle<()>>,
    sync: Option<JoinHandle<()>>,
}

impl SagaSide {
    /// A simulator and a saga with the default test options, on `stream` (whose relay the
    /// test runs).
    pub async fn start(app: &TestApp, stream: &TestStream) -> SagaSide {
        SagaSide::start_with(app, stream, SagaOptions::default()).await
    }

    pub async fn start_with(app: &TestApp, stream: &TestStream, options: SagaOptions) -> SagaSide {
        let sim = sim::spawn(SimSettings {
            order_delay: options.order_delay,
        })
        .await
        .expect("the simulator starts");
        let client = HttpBackend::new(
            &sim.url(),
            Timeouts {
                connect: Duration::from_secs(2),
                request: options.request_timeout,
            },
        )
        .expect("a client");
        let budget = Arc::new(CallBudget::per_minute(options.calls_per_minute));
        let backend: Arc<dyn Backend> =
            Arc::new(LimitedBackend::new(Arc::new(client), budget.clone()));
        let mut settings = SagaSettings::new(&stream.settings.stream_name());
        settings.workers = options.workers;
        settings.lease = options.lease;
        settings.order_poll = Duration::from_millis(20);
        settings.max_order_poll = Duration::from_millis(200);
        settings.retry = Backoff {
            base: Duration::from_millis(50),
            max: Duration::from_millis(1000),
        };
        settings.idle_poll = Duration::from_millis(20);
        settings.batch_linger = Duration::from_millis(20);
        settings.ack_wait = Duration::from_secs(5);
        let control = sim.control();
        let mut side = SagaSide {
            sim,
            control,
            backend,
            budget,
            settings,
            status: Arc::new(SagaStatus::default()),
            commands: app.commands.clone(),
            jetstream: stream.jetstream.clone(),
            saga: None,
            sync: None,
        };
        side.restart();
        side
    }

    /// Starts the saga (again, if it was killed).
    pub fn restart(&mut self) {
        self.kill();
        let saga = Saga::new(
            self.commands.clone(),
            self.backend.clone(),
            self.jetstream.clone(),
            self.settings.clone(),
        );
        self.status = saga.status();
        self.saga = Some(tokio::spawn(saga.run()));
    }

    /// Aborts the saga wherever it is.
    pub fn kill(&mut self) {
        if let Some(task) = self.saga.take() {
            task.abort();
        }
    }

    /// Starts the backend sync, a pass every `interval`.
    pub fn start_sync(&mut self, interval: Duration) {
        let sync = saga::BackendSync::new(self.commands.clone(), self.backend.clone(), interval);
        self.sync = Some(tokio::spawn(sync.run()));
    }

    /// The enterprise `tenant` consents to the operator in the simulator, for `countries`.
    pub async fn consent(&self, tenant: &str, countries: &[&str]) {
        self.control
            .put_consent(&ConsentInput {
                tenant_id: TenantId::parse(tenant).expect("tenant"),
                countries: countries
                    .iter()
                    .map(|c| CountryCode::parse(*c).expect("country"))
                    .collect(),
                contacts: vec![ContactInput {
                    full_name: "John Smith".to_string(),
                    email: "johnsmith@example.com".to_string(),
                    telephone_number: None,
                    company_name: Some("Contoso".to_string()),
                    company_size: None,
                }],
            })
            .await
            .expect("consent in the simulator");
    }

    /// Waits until the saga has answered every change: no account, number or consent is
    /// pending, and no work item or order is left.
    pub async fn wait_until_settled(&self, app: &TestApp, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let left = unsettled(app).await;
            if left == Unsettled::default() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the saga has not settled: {left:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for SagaSide {
    fn drop(&mut self) {
        self.kill();
        if let Some(task) = self.sync.take() {
            task.abort();
        }
    }
}

/// What the saga still has to do.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Unsettled {
    pub pending_numbers: usize,
    pub pending_accounts: usize,
    pub pending_consents: usize,
    pub work_items: i64,
    pub open_orders: i64,
}

pub async fn unsettled(app: &TestApp) -> Unsettled {
    let store = app.event_store();
    let ids = |kind: &'static str| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT DISTINCT aggregate_id FROM events WHERE aggregate_type = $1",
            )
            .bind(kind)
            .fetch_all(&pool)
            .await
            .expect("ids")
        }
    };
    let numbers = store
        .load_many::<Number>(&ids("number").await)
        .await
        .expect("numbers");
    let accounts = store
        .load_many::<Account>(&ids("account").await)
        .await
        .expect("accounts");
    let consents = store
        .load_many::<Consent>(&ids("consent").await)
        .await
        .expect("consents");
    let pending = ProvisioningStatus::Pending;
    let (work_items, open_orders): (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM saga_work), \
                (SELECT count(*) FROM saga_orders WHERE state <> 'done')",
    )
    .fetch_one(&app.pool)
    .await
    .expect("backlog");
    Unsettled {
        pending_numbers: numbers
            .iter()
            .filter(|n| {
                n.aggregate
                    .state
                    .as_ref()
                    .is_some_and(|s| s.sync.status == pending)
            })
            .count(),
        pending_accounts: accounts
            .iter()
            .filter(|a| {
                a.aggregate
                    .state
                    .as_ref()
                    .is_some_and(|s| s.sync.status == pending)
            })
            .count(),
        pending_consents: consents
            .iter()
            .filter(|c| {
                c.aggregate
                    .state
                    .as_ref()
                    .is_some_and(|s| s.sync.status == pending)
            })
            .count(),
        work_items,
        open_orders,
    }
}

/// An Operator Connect calling-user number the simulator accepts: the tenant may set its
/// emergency address itself.
pub fn accepted_number_body(account: &str, number: &str) -> Value {
    json!({
        "telephoneNumber": number,
        "accountName": account,
        "serviceDetails": {
            "teamsOperatorConnect": {
                "enabled": true,
                "assignmentStatus": "assigned",
                "configuration": {
                    "usage": "CallingUserAssignment",
                    "choosableCapabilities": ["InboundCalling"],
                    "allowTenantAddressUpdate": true
                }
            }
        }
    })
}

/// An Operator Connect calling-user number the simulator rejects (`CivicAddressRequired`):
/// neither an address nor the tenant's leave to set one.
pub fn rejected_number_body(account: &str, number: &str) -> Value {
    json!({
        "telephoneNumber": number,
        "accountName": account,
        "serviceDetails": {
            "teamsOperatorConnect": {
                "enabled": true,
                "configuration": {
                    "usage": "CallingUserAssignment",
                    "choosableCapabilities": ["InboundCalling"]
                }
            }
        }
    })
}

impl TestApp {
    /// Waits until the number's `serviceProvisioningStatus` is `status`, and returns it read.
    pub async fn wait_for_number_status(
        &self,
        account: &str,
        number: &str,
        status: &str,
        limit: Duration,
    ) -> crate::Answer {
        let deadline = Instant::now() + limit;
        loop {
            let answer = self.get_number(account, number).await;
            if answer.body["serviceProvisioningStatus"] == status {
                return answer;
            }
            assert!(
                Instant::now() < deadline,
                "number {number} is not {status}: {answer:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `GET path` answers `status`, and returns the answer.
    pub async fn wait_for_status(&self, path: &str, status: u16, limit: Duration) -> crate::Answer {
        let deadline = Instant::now() + limit;
        loop {
            let answer = self.send(self.request(reqwest::Method::GET, path)).await;
            if answer.status == status {
                return answer;
            }
            assert!(
                Instant::now() < deadline,
                "GET {path} did not answer {status}: {answer:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
