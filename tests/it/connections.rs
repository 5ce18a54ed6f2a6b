//! The listener on a real port: slow or idle clients are disconnected, connections are capped,
//! and errors hyper hands to the router come back as problem+json.

use std::net::SocketAddr;
use std::time::Duration;

use askmark::api::{serve, ConnectionLimits};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

use crate::api::app;

/// A server on a free loopback port; it stops when the returned sender is dropped.
async fn start(limits: ConnectionLimits) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(serve(listener, app(), limits, async move {
        let _ = stopped.await;
    }));
    (addr, stop)
}

/// Reads until the peer closes the connection or `within` passes; `None` when it stayed open.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Option<String> {
    let mut received = Vec::new();
    match tokio::time::timeout(within, stream.read_to_end(&mut received)).await {
        Ok(_) => Some(String::from_utf8_lossy(&received).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test]
async fn idle_and_trickling_clients_are_disconnected_after_the_header_timeout() {
    let (addr, _stop) = start(ConnectionLimits { header_read_timeout: Duration::from_millis(300), ..ConnectionLimits::default() }).await;
    let mut idle = TcpStream::connect(addr).await.unwrap();
    assert!(read_until_closed(&mut idle, Duration::from_secs(3)).await.is_some(), "an idle connection is closed");

    let mut trickling = TcpStream::connect(addr).await.unwrap();
    trickling.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if trickling.write_all(b"X-Slow: 1\r\n").await.is_err() {
            break;
        }
    }
    let answer = read_until_closed(&mut trickling, Duration::from_secs(3)).await.expect("a trickling connection is closed");
    assert!(!answer.contains("200 OK"), "{answer}");
}

#[tokio::test]
async fn connections_over_the_cap_wait_until_one_closes() {
    let limits = ConnectionLimits { max_connections: 2, header_read_timeout: Duration::from_secs(30) };
    let (addr, _stop) = start(limits).await;
    let first = TcpStream::connect(addr).await.unwrap();
    let _second = TcpStream::connect(addr).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let mut third = TcpStream::connect(addr).await.unwrap();
    third.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
    assert!(read_until_closed(&mut third, Duration::from_millis(500)).await.is_none(), "the third connection is not served yet");

    drop(first);
    let answer = read_until_closed(&mut third, Duration::from_secs(5)).await.expect("served once a slot frees");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[tokio::test]
async fn errors_over_a_real_connection_are_problem_json() {
    let (addr, _stop) = start(ConnectionLimits::default()).await;
    for (request, status, code) in [
        ("GET /v1/questions/%ff HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".to_string(), "400", "invalid_path"),
        (
            format!("GET /v1/search?q={} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n", "a".repeat(20_000)),
            "414",
            "uri_too_long",
        ),
        (
            format!("GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\nConnection: close\r\n\r\n", "b".repeat(40_000)),
            "431",
            "headers_too_large",
        ),
    ] {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let answer = read_until_closed(&mut stream, Duration::from_secs(5)).await.unwrap();
        let lowercase = answer.to_lowercase();
        assert!(answer.starts_with(&format!("HTTP/1.1 {status}")), "{answer}");
        assert!(lowercase.contains("content-type: application/problem+json"), "{answer}");
        assert!(answer.contains(&format!("\"code\":\"{code}\"")), "{answer}");
    }
}

#[test]
fn a_key_list_of_only_blanks_stops_start_up() {
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_askmark"))
        .args(["serve", "--addr", "127.0.0.1:0"])
        .env("ASKMARK_API_KEYS", ", ,")
        .env("ASKMARK_MODELS", crate::common::repo().join("models"))
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let exit = loop {
        if let Some(exit) = server.try_wait().unwrap() {
            break exit;
        }
        if std::time::Instant::now() > deadline {
            server.kill().unwrap();
            server.wait().unwrap();
            panic!("the server started with only blank keys");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!exit.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut server.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(stderr.contains("every API key given is blank"), "{stderr}");
}
