//! Helpers for nmp's end-to-end tests. Typed helpers call each endpoint.
//!
//! `spawn_app()` starts nmp through `nmp::Runtime`, as `nmp serve --components api` does, but
//! without NATS (`RuntimeBuilder::without_nats`): a fresh Postgres database of the test's own,
//! migrated; an HS256 verifier with a secret of the test's own; no backend client; the REST API
//! and the janitor of repeatable-request answers on a free port of 127.0.0.1, so tests run in
//! parallel. It starts none of the parts that need NATS: no relay, projector, saga, live feed or
//! NATS API. Tests that need one start it themselves: [`nats::TestStream`] for a relay,
//! [`projections::ReadSide`] for the projector, `nats_api::start` for the NATS API,
//! [`spawn_app_with`] for a feed and [`spawn_app_with_backend`] for a backend; or a whole
//! `nmp::Runtime` with [`test_settings`].

pub mod browser;
pub mod nats;
pub mod oidc_provider;
pub mod portal;
pub mod projections;
pub mod saga;

use std::time::Duration;

use auth::Role;
use chrono::Utc;
use commands::CommandService;
use domain::{ConsentReport, ConsentStatus, Contact, CountryCode, Identifier, TenantId};
use reqwest::{Method, RequestBuilder, Response};
use serde_json::{Value, json};
use store::{EventMetadata, EventStore};

pub const API_VERSION: &str = "2024-02-29-preview";
pub const TENANT: &str = "a7f4bd5c-cc01-40f4-8baa-2b6bdb272b8a";

/// Where the tests find Postgres: `NMP_TEST_DATABASE_URL` names the server (any database on it).
fn server_url() -> String {
    std::env::var("NMP_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

fn database_url(name: &str) -> String {
    let server = server_url();
    match server.rfind('/') {
        Some(slash) if slash > "postgres://".len() => format!("{}/{name}", &server[..slash]),
        _ => format!("{server}/{name}"),
    }
}

/// A running nmp HTTP API (see `spawn_app`) with its own database.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub secret: String,
    pub database: String,
    pub pool: sqlx::PgPool,
    /// The command side, for what has no HTTP route yet (recording consents as the backend
    /// sync will).
    pub commands: CommandService,
    /// The HTTP API's state, to start the NATS API on the same command side.
    pub state: api::AppState,
    stopper: nmp::Stopper,
}

/// Starts nmp's HTTP API (and nothing else, see the crate's documentation) on 127.0.0.1:0
/// with an HS256 secret and a fresh database.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// `spawn_app`, with the HTTP state changed by `configure` before nmp serves (a live feed, …).
pub async fn spawn_app_with(configure: impl FnOnce(&mut api::AppState)) -> TestApp {
    let database = format!("nmp_test_{}", uuid::Uuid::new_v4().simple());
    let secret = format!("test-secret-{}", uuid::Uuid::new_v4());
    let settings = test_settings(&database, &secret);
    let runtime = nmp::Runtime::builder(
        settings,
        nmp::Components {
            api: true,
            ..nmp::Components::NONE
        },
    )
    .without_nats()
    .start_with(configure)
    .await
    .expect("nmp starts");
    let state = runtime.state().clone();
    let pool = state.commands.store().pool().clone();
    let commands = state.commands.clone();
    let address = format!("http://{}", runtime.address());
    // The runtime supervises on; the stopper ends it when the test app is dropped.
    let stopper = runtime.stopper();
    TestApp {
        address,
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
        secret,
        database,
        pool,
        commands,
        state,
        stopper,
    }
}

/// nmp's settings for a test: the database `database` (created by nmp), tokens signed with
/// `secret`, HTTP on a free port of 127.0.0.1.
pub fn test_settings(database: &str, secret: &str) -> nmp::Settings {
    nmp::Settings {
        database_url: database_url(database),
        database_max_connections: 10,
        http_addr: "127.0.0.1:0".parse().expect("address"),
        jwt: nmp::settings::JwtSettings {
            hs256_secret: Some(secret.to_string()),
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Drops the test database `database` (connections and all).
pub async fn drop_database(database: &str) {
    if let Ok(pool) = sqlx::PgPool::connect(&server_url()).await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
            .execute(&pool)
            .await;
        pool.close().await;
    }
}

impl Drop for TestApp {
    /// Stops the server and drops the test's database.
    fn drop(&mut self) {
        self.stopper.stop();
        let database = self.database.clone();
        // Drop runs inside the test's runtime; a fresh thread with its own runtime may block.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                if let Ok(pool) = sqlx::PgPool::connect(&server_url()).await {
                    let _ =
                        sqlx::query(&format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
                            .execute(&pool)
                            .await;
                }
            });
        })
        .join();
    }
}

/// A response read whole: status, headers and JSON body (Null when empty).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Answer {
    pub async fn from(response: Response) -> Answer {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Answer {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn etag(&self) -> String {
        self.header("etag").expect("an ETag").to_string()
    }

    /// The API error code, from the body; checks the header says the same.
    pub fn error_code(&self) -> &str {
        let code = self.body["error"]["code"].as_str().unwrap_or("");
        assert_eq!(
            self.header("x-ms-error-code"),
            Some(code),
            "x-ms-error-code matches the body: {self:?}"
        );
        code
    }

    pub fn error_target(&self) -> Option<&str> {
        self.body["error"]["target"].as_str()
    }

    /// Asserts a refusal with this status and code, and returns self for more checks.
    #[track_caller]
    pub fn assert_error(&self, status: u16, code: &str) -> &Self {
        assert_eq!(self.status, status, "status of {self:?}");
        assert_eq!(self.error_code(), code, "code of {self:?}");
        self
    }
}

impl TestApp {
    pub fn token(&self, roles: &[Role]) -> String {
        auth::mint_token(
            self.secret.as_bytes(),
            "test-user",
            roles,
            Duration::from_secs(600),
        )
    }

    pub fn admin(&self) -> String {
        self.token(&[Role::Admin])
    }

    /// A request to `path` (with api-version added) as an administrator.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let separator = if path.contains('?') { '&' } else { '?' };
        self.client
            .request(
                method,
                format!("{}{path}{separator}api-version={API_VERSION}", self.address),
            )
            .bearer_auth(self.admin())
    }

    pub async fn send(&self, request: RequestBuilder) -> Answer {
        Answer::from(request.send().await.expect("request is sent")).await
    }

    pub async fn put_account(&self, name: &str, body: &Value) -> Answer {
        self.send(
            self.request(Method::PUT, &format!("/accounts/{name}"))
                .json(body),
        )
        .await
    }

    pub async fn get_account(&self, name: &str) -> Answer {
        self.send(self.request(Method::GET, &format!("/accounts/{name}")))
            .await
    }

    pub async fn delete_account(&self, name: &str, delete_numbers: bool) -> Answer {
        self.send(self.request(
            Method::DELETE,
            &format!("/accounts/{name}?deleteNumbers={delete_numbers}"),
        ))
        .await
    }

    pub async fn put_number(&self, account: &str, number: &str, body: &Value) -> Answer {
        self.send(
            self.request(Method::PUT, &number_path(account, number))
                .json(body),
        )
        .await
    }

    pub async fn get_number(&self, account: &str, number: &str) -> Answer {
        self.send(self.request(Method::GET, &number_path(account, number)))
            .await
    }

    pub async fn delete_number(&self, account: &str, number: &str) -> Answer {
        self.send(self.request(Method::DELETE, &number_path(account, number)))
            .await
    }

    pub async fn upsert_numbers(&self, account: &str, body: &Value) -> Answer {
        self.send(
            self.request(
                Method::POST,
                &format!("/accounts/{account}:createOrUpdateNumbers"),
            )
            .json(body),
        )
        .await
    }

    pub async fn delete_numbers(&self, account: &str, numbers: &[&str]) -> Answer {
        let body = json!({"numbers": numbers.iter().map(|n| json!({"telephoneNumber": n})).collect::<Vec<_>>()});
        self.send(
            self.request(Method::POST, &format!("/accounts/{account}:deleteNumbers"))
                .json(&body),
        )
        .await
    }

    pub async fn get_consent(&self, tenant: &str) -> Answer {
        self.send(self.request(
            Method::GET,
            &format!("/teamsRequestsForInformation/{tenant}"),
        ))
        .await
    }

    pub async fn patch_consent(&self, tenant: &str, body: &Value) -> Answer {
        self.send(
            self.request(
                Method::PATCH,
                &format!("/teamsRequestsForInformation/{tenant}"),
            )
            .header("content-type", "application/merge-patch+json")
            .body(body.to_string()),
        )
        .await
    }

    /// Records a consent as the backend sync will, through the command side.
    pub async fn record_consent(&self, tenant: &str) {
        let report = ConsentReport {
            consent_id: Identifier::parse("214b3a0e-fb7c-481f-9f38-fcb7eab5fad3").expect("id"),
            operator_id: Some(
                Identifier::parse("75f9fed4-d8e9-4c90-bc28-523cfdb83244").expect("id"),
            ),
            status: ConsentStatus::Active,
            consented_on: Utc::now(),
            countries: vec![CountryCode::parse("US").expect("country")],
            contacts: vec![Contact {
                full_name: "John Smith".to_string(),
                email: "johnsmith@example.com".to_string(),
                telephone_number: Some("+15105850321".to_string()),
                company_name: Some("Contoso".to_string()),
                company_size: Some("L1_U1".to_string()),
            }],
        };
        self.commands
            .record_consent(
                &TenantId::parse(tenant).expect("tenant"),
                report,
                &EventMetadata::system("test-backend-sync"),
            )
            .await
            .expect("consent recorded");
    }

    /// How many events the store holds.
    pub async fn event_count(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await
            .expect("count")
    }

    pub fn event_store(&self) -> EventStore {
        self.commands.store().clone()
    }
}

/// The path of a number, with `+` written as `%2B`.
pub fn number_path(account: &str, number: &str) -> String {
    format!("/accounts/{account}/numbers/{}", number.replace('+', "%2B"))
}

/// An Operator Connect account linked to `TENANT`.
/// An account with Operator Connect and flow-through but no Teams tenant yet, as the public
/// API allows.
pub fn account_body_without_tenant(name: &str) -> Value {
    let mut body = account_body(name);
    if let Some(details) = body["serviceDetails"].as_object_mut() {
        details.remove("teamsTenantId");
    }
    body
}

pub fn account_body(name: &str) -> Value {
    json!({
        "name": name,
        "correlationId": "c7aa0070-3956-11eb-8d59-4d9d2e7a4a8d",
        "serviceDetails": {
            "teamsTenantId": TENANT,
            "teamsOperatorConnect": {"enabled": true, "syncEnabled": true}
        }
    })
}

/// An Operator Connect calling-user number of `account`.
pub fn number_body(account: &str, number: &str) -> Value {
    json!({
        "telephoneNumber": number,
        "accountName": account,
        "serviceDetails": {
            "teamsOperatorConnect": {
                "enabled": true,
                "assignmentStatus": "assigned",
                "configuration": {
                    "usage": "CallingUserAssignment",
                    "choosableCapabilities": ["InboundCalling"]
                }
            }
        },
        "configuration": {"customSipHeader": "contoso-commsgw"}
    })
}

impl TestApp {
    /// A request to `path` (with api-version added) carrying `token` as its bearer token, or no
    /// Authorization header at all when `token` is None.
    pub fn request_as(&self, method: Method, path: &str, token: Option<&str>) -> RequestBuilder {
        let separator = if path.contains('?') { '&' } else { '?' };
        let request = self.client.request(
            method,
            format!("{}{path}{separator}api-version={API_VERSION}", self.address),
        );
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// A request to `path` exactly as given (no api-version added) as an administrator.
    pub fn request_unversioned(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, format!("{}{path}", self.address))
            .bearer_auth(self.admin())
    }
}

impl TestApp {
    /// Records a civic address of `tenant` as the backend sync will, through the command side.
    pub async fn record_civic_address(&self, tenant: &str, id: &str, city: &str) {
        let report = domain::CivicAddressReport {
            country: CountryCode::parse("US").expect("country"),
            house_number: Some("1".to_string()),
            house_number_suffix: None,
            pre_directional: None,
            street_name: Some("Microsoft Way".to_string()),
            street_suffix: None,
            post_directional: None,
            state_or_province: Some("WA".to_string()),
            county_or_district: None,
            city_or_town: Some(city.to_string()),
            city_or_town_alias: None,
            postal_or_zip_code: Some("98052".to_string()),
            description: Some("Head office".to_string()),
            company_name: Some("Contoso".to_string()),
            company_id: None,
            default_location_id: Some(Identifier::parse(format!("{id}-floor-1")).expect("id")),
            validation_status: domain::ValidationStatus::Validated,
            partner_id: None,
            latitude: Some("47.64".to_string()),
            longitude: Some("-122.13".to_string()),
            locations: vec![domain::Location {
                id: Identifier::parse(format!("{id}-floor-1")).expect("id"),
                description: Some("Floor 1".to_string()),
                additional_info: None,
                is_default: true,
                elin: Some("ELIN-1".to_string()),
            }],
        };
        self.commands
            .record_civic_address(
                &Identifier::parse(id).expect("id"),
                &TenantId::parse(tenant).expect("tenant"),
                report,
                &EventMetadata::system("test-backend-sync"),
            )
            .await
            .expect("civic address recorded");
    }
}

impl TestApp {
    /// Records, as the provisioning saga will, that the backend accepted the pending change of
    /// each number (for a number being deleted: released it, which deletes it).
    pub async fn backend_accepts(&self, numbers: &[&str]) {
        self.backend_answers(numbers, Ok(())).await;
    }

    /// Records, as the provisioning saga will, that the backend refused the pending change of
    /// each number with the error `code`.
    pub async fn backend_refuses(&self, numbers: &[&str], code: &str) {
        let errors = vec![domain::ProvisioningError {
            code: code.to_string(),
            message: format!("the backend says {code}"),
        }];
        self.backend_answers(numbers, Err(errors)).await;
    }

    async fn backend_answers(&self, numbers: &[&str], result: commands::ProvisioningResult) {
        let mut outcomes = Vec::new();
        for number in numbers {
            let telephone_number = domain::E164::parse(*number).expect("a number");
            let loaded = self
                .commands
                .number(&telephone_number)
                .await
                .expect("the number loads");
            let state = loaded.aggregate.state.expect("the number exists");
            outcomes.push(commands::NumberOutcome {
                telephone_number,
                for_version: state.sync.version,
                result: result.clone(),
            });
        }
        self.commands
            .record_number_outcomes(outcomes, &commands::saga_metadata())
            .await
            .expect("the outcomes are recorded");
    }
}

/// A backend simulator, and nmp connected to it (`AppState::backend`).
pub async fn spawn_app_with_backend() -> (TestApp, sim::RunningSim) {
    let sim = sim::spawn(sim::SimSettings::default())
        .await
        .expect("the simulator starts");
    let backend = backend::client::HttpBackend::new(&sim.url(), Default::default())
        .expect("a backend client");
    let app = spawn_app_with(|state| state.backend = Some(std::sync::Arc::new(backend))).await;
    (app, sim)
}
