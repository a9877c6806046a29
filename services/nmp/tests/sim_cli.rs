//! `nmp sim`: the backend simulator as its own component, on NMP_SIM_ADDR.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const NMP: &str = env!("CARGO_BIN_EXE_nmp");

/// Kills the simulator when the test ends, pass or fail.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn sim_listens_on_its_address_and_plays_the_backend() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("address")
        .port();
    let child = Command::new(NMP)
        .args(["sim", "--order-delay-ms", "0"])
        .env("NMP_SIM_ADDR", format!("127.0.0.1:{port}"))
        .env_remove("NMP_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nmp sim starts");
    let _running = Running(child);
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(answer) = client.get(format!("{base}/healthz")).send().await
            && answer.status() == 200
        {
            break;
        }
        assert!(Instant::now() < deadline, "nmp sim did not answer");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let tenant = "00000000-0000-4000-8000-000000000001";
    let added = client
        .post(format!("{base}/_sim/consents"))
        .json(&serde_json::json!({
            "tenantId": tenant,
            "countries": ["GB"],
            "contacts": [{"fullName": "Ada Lovelace", "email": "ada@example.com"}]
        }))
        .send()
        .await
        .expect("a consent is added");
    assert_eq!(added.status(), 201);
    let consents: serde_json::Value = client
        .get(format!("{base}/consents"))
        .send()
        .await
        .expect("consents")
        .json()
        .await
        .expect("json");
    assert_eq!(consents["value"][0]["tenantId"], tenant, "{consents}");
    assert_eq!(consents["value"][0]["status"], "active", "{consents}");
    let settings: serde_json::Value = client
        .get(format!("{base}/_sim/settings"))
        .send()
        .await
        .expect("settings")
        .json()
        .await
        .expect("json");
    assert_eq!(settings["orderDelayMs"], 0);
}

#[test]
fn sim_refuses_an_address_other_hosts_reach_unless_told_it_is_public() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("a free port")
        .local_addr()
        .expect("address")
        .port();
    let refused = Command::new(NMP)
        .args(["sim"])
        .env("NMP_SIM_ADDR", format!("0.0.0.0:{port}"))
        .env_remove("NMP_CONFIG")
        .output()
        .expect("nmp sim runs");
    assert!(!refused.status.success(), "{refused:?}");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("--public") && said.contains("no authentication"),
        "{said}"
    );
    // With --public it serves (and is stopped here).
    let child = Command::new(NMP)
        .args(["sim", "--public"])
        .env("NMP_SIM_ADDR", format!("0.0.0.0:{port}"))
        .env_remove("NMP_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nmp sim starts");
    let _running = Running(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nmp sim --public did not listen");
        std::thread::sleep(Duration::from_millis(100));
    }
}
