//! What one client can hold of the HTTP server: a slow client is cut off, and connections are
//! capped.

use std::time::{Duration, Instant};

use tests::spawn_app;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Serves the app's state on a fresh port within `limits`; the server stops with the test.
async fn serve(limits: api::ServerLimits) -> (String, tests::TestApp) {
    let app = spawn_app().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address").to_string();
    let state = app.state.clone();
    tokio::spawn(api::serve_with(
        listener,
        state,
        limits,
        std::future::pending(),
    ));
    (address, app)
}

/// Reads until the server closes the connection or `limit` passes; answers what was read and
/// whether it was closed.
async fn read_until_closed(stream: &mut TcpStream, limit: Duration) -> (String, bool) {
    let mut text = Vec::new();
    let mut buffer = [0u8; 4096];
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&text).into(), true),
            Ok(Ok(n)) => text.extend_from_slice(&buffer[..n]),
            Err(_) => return (String::from_utf8_lossy(&text).into(), false),
        }
    }
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let (address, _app) = serve(api::ServerLimits {
        header_read: Duration::from_millis(500),
        ..api::ServerLimits::default()
    })
    .await;
    let mut stream = TcpStream::connect(&address).await.expect("connected");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: nmp\r\n")
        .await
        .expect("written");
    let started = Instant::now();
    let (_, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(closed, "the connection stays open");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );

    // A client that sends its request in time is served.
    let mut stream = TcpStream::connect(&address).await.expect("connected");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: nmp\r\nConnection: close\r\n\r\n")
        .await
        .expect("written");
    let (answer, _) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn a_client_that_stops_sending_its_body_is_cut_off() {
    let (address, app) = serve(api::ServerLimits {
        body_read: Duration::from_millis(500),
        ..api::ServerLimits::default()
    })
    .await;
    let mut stream = TcpStream::connect(&address).await.expect("connected");
    let head = format!(
        "PUT /accounts/contoso?api-version=2024-02-29-preview HTTP/1.1\r\nHost: nmp\r\n\
         Authorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n\
         {{\"name\": ",
        app.admin()
    );
    stream.write_all(head.as_bytes()).await.expect("written");
    let started = Instant::now();
    let (answer, closed) = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert!(
        closed || answer.starts_with("HTTP/1.1 4"),
        "neither answered nor closed: {answer}"
    );
    assert!(!answer.starts_with("HTTP/1.1 5"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(app.event_count().await, 0, "nothing was written");
}

#[tokio::test]
async fn connections_beyond_the_limit_wait_for_one_to_close() {
    let (address, _app) = serve(api::ServerLimits {
        max_connections: 2,
        ..api::ServerLimits::default()
    })
    .await;
    let request = b"GET /healthz HTTP/1.1\r\nHost: nmp\r\n\r\n";
    // Two kept-alive connections, each served once.
    let mut open = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(&address).await.expect("connected");
        stream.write_all(request).await.expect("written");
        let mut buffer = [0u8; 1024];
        let n = stream.read(&mut buffer).await.expect("answered");
        assert!(buffer[..n].starts_with(b"HTTP/1.1 200"));
        open.push(stream);
    }
    // A third is accepted by the kernel but not served while both are open.
    let mut third = TcpStream::connect(&address).await.expect("connected");
    third.write_all(request).await.expect("written");
    let mut buffer = [0u8; 1024];
    let waited = tokio::time::timeout(Duration::from_millis(700), third.read(&mut buffer)).await;
    assert!(waited.is_err(), "served beyond the limit");
    // One closes: the third is served.
    drop(open.pop());
    let n = tokio::time::timeout(Duration::from_secs(5), third.read(&mut buffer))
        .await
        .expect("served once a connection closed")
        .expect("read");
    assert!(
        buffer[..n].starts_with(b"HTTP/1.1 200"),
        "{:?}",
        &buffer[..n]
    );
}
