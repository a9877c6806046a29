//! NATS for the tests: a per-test prefix (and so stream) on the shared server, removed when the
//! test ends; a nats-server of the test's own for stop-and-restart tests; relays started and
//! killed at will; and reading back what the stream holds.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use async_nats::jetstream;
use relay::{Relay, RelaySettings, RelayStatus, StreamSettings};
use sqlx::PgPool;
use tokio::task::JoinHandle;

/// The shared NATS server (`NMP_TEST_NATS_URL`).
pub fn nats_url() -> String {
    std::env::var("NMP_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".to_string())
}

/// An installation prefix for one test, so tests share the server without seeing each other.
pub fn test_prefix() -> String {
    format!("t{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// A test's event stream; deleted when dropped.
pub struct TestStream {
    pub settings: StreamSettings,
    pub jetstream: jetstream::Context,
    url: String,
}

impl TestStream {
    pub async fn new(url: &str) -> TestStream {
        let client = relay::connect_nats(url).await.expect("NATS");
        let jetstream = jetstream::new(client);
        let mut settings = StreamSettings::new(&test_prefix()).expect("prefix");
        settings.duplicate_window = Duration::from_secs(120);
        TestStream {
            settings,
            jetstream,
            url: url.to_string(),
        }
    }

    pub async fn ensure(&self) {
        relay::ensure_stream(&self.jetstream, &self.settings)
            .await
            .expect("stream");
    }

    /// A relay of this installation with short pauses, running until aborted.
    pub fn spawn_relay(&self, pool: &PgPool) -> (JoinHandle<()>, std::sync::Arc<RelayStatus>) {
        let mut settings = RelaySettings::new(self.settings.clone());
        settings.standby_interval = Duration::from_millis(50);
        let relay = Relay::new(pool.clone(), self.jetstream.clone(), settings);
        let status = relay.status();
        (tokio::spawn(relay.run()), status)
    }

    /// How many messages the stream holds; fails the test when the stream cannot be read.
    pub async fn message_count(&self) -> u64 {
        self.try_message_count()
            .await
            .unwrap_or_else(|error| panic!("cannot count the stream's messages: {error}"))
    }

    async fn try_message_count(&self) -> Result<u64, String> {
        let mut stream = self
            .jetstream
            .get_stream(self.settings.stream_name())
            .await
            .map_err(|e| format!("stream {}: {e}", self.settings.stream_name()))?;
        let info = stream
            .info()
            .await
            .map_err(|e| format!("stream info: {e}"))?;
        Ok(info.state.messages)
    }

    /// Waits until the stream holds `count` messages (or fails the test after `limit`). A read
    /// that fails (NATS restarting) counts as not yet; the last failure is reported at the end.
    pub async fn wait_for(&self, count: u64, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let have = self.try_message_count().await;
            if have.as_ref().is_ok_and(|have| *have >= count) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the stream holds {have:?} of {count} messages"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the stream holds a message on `subject` (or fails the test after `limit`),
    /// and returns the stream sequence of the last one.
    pub async fn wait_for_subject(&self, subject: &str, limit: Duration) -> u64 {
        let deadline = Instant::now() + limit;
        loop {
            let found = match self.jetstream.get_stream(self.settings.stream_name()).await {
                Ok(stream) => stream
                    .get_last_raw_message_by_subject(subject)
                    .await
                    .map(|message| message.sequence)
                    .map_err(|e| e.to_string()),
                Err(error) => Err(error.to_string()),
            };
            match found {
                Ok(sequence) => return sequence,
                Err(error) => assert!(
                    Instant::now() < deadline,
                    "no message on {subject} after {limit:?}: {error}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The stream sequence of its last message (0 when empty); fails the test when the stream
    /// cannot be read.
    pub async fn last_sequence(&self) -> u64 {
        self.jetstream
            .get_stream(self.settings.stream_name())
            .await
            .expect("stream")
            .get_info()
            .await
            .expect("stream info")
            .state
            .last_sequence
    }

    /// Every message of the stream in stream order.
    pub async fn messages(&self) -> Vec<StreamedEvent> {
        let stream = self
            .jetstream
            .get_stream(self.settings.stream_name())
            .await
            .expect("stream");
        let last = stream.get_info().await.expect("info").state.last_sequence;
        let mut messages = Vec::new();
        for sequence in 1..=last {
            let message = stream
                .get_raw_message(sequence)
                .await
                .unwrap_or_else(|e| panic!("message {sequence} of the stream: {e}"));
            let header = |name: &str| {
                message
                    .headers
                    .get(name)
                    .map(|v| v.as_str().to_string())
                    .unwrap_or_default()
            };
            messages.push(StreamedEvent {
                subject: message.subject.to_string(),
                message_id: header("Nats-Msg-Id"),
                aggregate_type: header("nmp-aggregate-type"),
                aggregate_id: header("nmp-aggregate-id"),
                sequence: header("nmp-sequence").parse().unwrap_or(-1),
                headers: message
                    .headers
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.to_string(),
                            v.first()
                                .map(|v| v.as_str().to_string())
                                .unwrap_or_default(),
                        )
                    })
                    .collect(),
                payload: String::from_utf8_lossy(&message.payload).into_owned(),
            });
        }
        messages
    }
}

impl Drop for TestStream {
    fn drop(&mut self) {
        // The test's client is driven by the test's runtime, which is blocked here: delete
        // through a client of the cleanup thread's own.
        let url = self.url.clone();
        let name = self.settings.stream_name();
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async move {
                let delete = async {
                    let client = async_nats::connect(&url).await.ok()?;
                    jetstream::new(client).delete_stream(name).await.ok()
                };
                let _ = tokio::time::timeout(Duration::from_secs(5), delete).await;
            });
        })
        .join();
    }
}

/// One message as the stream holds it.
#[derive(Debug, Clone)]
pub struct StreamedEvent {
    pub subject: String,
    pub message_id: String,
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub headers: HashMap<String, String>,
    pub payload: String,
}

/// A nats-server of the test's own on a free port, with its own storage, so the test may stop
/// and restart it.
pub struct OwnNatsServer {
    pub port: u16,
    store: std::path::PathBuf,
    child: Option<Child>,
}

impl OwnNatsServer {
    pub fn start() -> OwnNatsServer {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("a free port")
            .local_addr()
            .expect("address")
            .port();
        let store = std::env::temp_dir().join(format!("nmp-nats-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&store).expect("store dir");
        let mut server = OwnNatsServer {
            port,
            store,
            child: None,
        };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn restart(&mut self) {
        self.stop();
        let binary = [
            "/usr/sbin/nats-server",
            "/usr/bin/nats-server",
            "nats-server",
        ]
        .into_iter()
        .find(|path| !path.starts_with('/') || std::path::Path::new(path).exists())
        .expect("nats-server");
        let child = Command::new(binary)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "nats-server did not come up");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for OwnNatsServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}
