//! Connections that do nothing are closed, and a cap on open connections
//! answers beyond it instead of failing: a real `steward serve` on
//! loopback, with short timeouts so that each case takes a few seconds.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use support::{Server, ServerOptions, http};

const PASSWORD: &str = "connections-test-password";

/// A server with `--body-timeout 2`, a header and an idle timeout and the
/// given extra flags; `before` runs first in the shell that starts it, so
/// that a test can set the soft open files limit (`ulimit`).
fn serve(before: &str, header_timeout: u64, idle_timeout: u64, extra: &[&str]) -> Server {
    // An address of this test process's own (nextest runs each test in a
    // process), so that no other test's server can take the port between
    // choosing it and the bind.
    let pid = std::process::id();
    let ip = format!("127.{}.{}.1", 1 + pid % 200, 1 + (pid / 200) % 200);
    let options = ServerOptions {
        ip: Some(ip),
        before: Some(before.to_owned()).filter(|b| !b.is_empty()),
        ..ServerOptions::admin(PASSWORD)
    };
    Server::with(
        options
            .args(&[
                "--header-timeout",
                &header_timeout.to_string(),
                "--idle-timeout",
                &idle_timeout.to_string(),
                "--body-timeout",
                "2",
            ])
            .args(extra),
    )
}

/// A server with a 1 s header and a 2 s idle timeout.
fn start() -> Server {
    serve("", 1, 2, &[])
}

/// A connection to `server` that gives up reading after 10 s.
fn connect(server: &Server) -> TcpStream {
    let stream = TcpStream::connect(&server.addr).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Reads until the server closes the connection (or 10 s pass): what it
/// sent, and how long after `since` it closed (`None`: it did not).
fn read_until_closed(stream: &mut TcpStream, since: Instant) -> (String, Option<Duration>) {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (String::from_utf8_lossy(&got).into(), Some(since.elapsed())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                return (String::from_utf8_lossy(&got).into(), Some(since.elapsed()));
            }
            Err(_) => return (String::from_utf8_lossy(&got).into(), None),
        }
    }
}

#[test]
fn a_connection_that_sends_nothing_is_closed_after_the_header_timeout() {
    // The idle timeout (30 s) is beyond the 10 s this waits: only the
    // header timeout can close it.
    let server = serve("", 1, 30, &[]);
    let mut silent = connect(&server);
    let (_, closed) = read_until_closed(&mut silent, Instant::now());
    assert!(closed.is_some(), "a silent connection was held for 10 s");
}

#[test]
fn headers_sent_a_byte_at_a_time_do_not_hold_the_connection() {
    let server = start();
    let mut slow = connect(&server);
    slow.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let start = Instant::now();
    let request = b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut closed = false;
    for byte in request {
        if slow.write_all(&[*byte]).is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        match slow.read(&mut buf) {
            Ok(0) => {
                closed = true;
                break;
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                closed = true;
                break;
            }
            _ => {}
        }
        if start.elapsed() > Duration::from_secs(10) {
            break;
        }
    }
    assert!(
        closed,
        "a trickle of header bytes held the connection for 10 s"
    );
}

#[test]
fn a_kept_alive_connection_left_idle_is_closed() {
    let server = start();
    let mut kept = connect(&server);
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = kept.read(&mut buf).unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let (_, closed) = read_until_closed(&mut kept, Instant::now());
    assert!(
        closed.is_some(),
        "an idle keep-alive connection was held for 10 s"
    );
}

#[test]
fn a_body_that_does_not_arrive_in_time_gets_408_and_changes_nothing() {
    let server = start();
    let mut slow = connect(&server);
    let auth = server.admin();
    let head = format!(
        "POST /director/host HTTP/1.1\r\nHost: x\r\nAuthorization: {auth}\r\nContent-Length: 200\r\n\r\n{{\"object_name\": \"slow\""
    );
    slow.write_all(head.as_bytes()).unwrap();
    let start = Instant::now();
    // One byte every 300 ms: always moving, never done.
    slow.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut answer = Vec::new();
    while start.elapsed() < Duration::from_secs(10) {
        let mut buf = [0u8; 1024];
        match slow.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.windows(4).any(|w| w == b"\r\n\r\n") && answer.ends_with(b"}\n") {
                    break;
                }
            }
            Err(_) => {
                if slow.write_all(b" ").is_err() {
                    break;
                }
            }
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"error\""), "{answer}");
    let (status, _) = http(
        &server.addr,
        "GET",
        "/director/host?name=slow",
        Some(&auth),
        "",
    );
    assert_eq!(status, 404);
}

#[test]
fn a_request_in_progress_is_not_cut_by_the_idle_timeout() {
    // A long poll with a host key and nothing deployed waits its whole
    // `wait` (3 s, beyond the 2 s idle timeout) and then answers 404.
    let server = start();
    let auth = server.admin();
    let (status, _) = http(
        &server.addr,
        "POST",
        "/director/host",
        Some(&auth),
        r#"{"object_name": "agents", "object_type": "template", "has_agent": true}"#,
    );
    assert_eq!(status, 201);
    let (status, key) = http(
        &server.addr,
        "POST",
        "/director/host/api-key?name=agents",
        Some(&auth),
        "{}",
    );
    assert_eq!(status, 200, "{key}");
    let template_key = key["api_key"].as_str().unwrap().to_owned();
    let (status, host_key) = http(
        &server.addr,
        "POST",
        &format!("/director/self-service/register-host?name=node-1&key={template_key}"),
        None,
        r#"{"address": "127.0.0.1"}"#,
    );
    assert_eq!(status, 200, "{host_key}");
    let host_key = host_key.as_str().unwrap().to_owned();
    let start = Instant::now();
    let (status, body) = http(
        &server.addr,
        "GET",
        &format!("/director/self-service/allowlist?key={host_key}&wait=3"),
        None,
        "",
    );
    assert_eq!(status, 404, "{body}");
    assert!(start.elapsed() >= Duration::from_millis(2900));
}

#[test]
fn connections_beyond_the_cap_get_503_and_the_server_keeps_answering() {
    // Timeouts longer than the test: the three held connections stay open.
    let server = serve("", 30, 30, &["--max-connections", "3"]);
    // Three connections, each answered once and kept alive: the server
    // holds all three (no fixed wait, which a busy machine outlasts). One
    // refused while the server still counts the start's readiness probe
    // is tried again.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut held: Vec<TcpStream> = Vec::new();
    while held.len() < 3 {
        assert!(Instant::now() < deadline, "3 connections not held in 10 s");
        let mut kept = connect(&server);
        kept.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = kept.read(&mut buf).unwrap_or(0);
        if String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200") {
            held.push(kept);
        } else {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let mut extra = connect(&server);
    extra
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let (answer, closed) = read_until_closed(&mut extra, Instant::now());
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after: 1"),
        "{answer}"
    );
    assert!(answer.contains("\"error\""), "{answer}");
    assert!(closed.is_some());
    // Once they are closed, the server answers again (it notices the
    // closes within moments; 10 s at most here).
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    while http(&server.addr, "GET", "/health", None, "").0 != 200 {
        assert!(
            Instant::now() < deadline,
            "no 200 within 10 s of the closes"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_server_raises_its_soft_open_files_limit_to_the_hard_limit() {
    let mut server = serve("ulimit -Sn 512;", 1, 2, &[]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", server.child().id()))
        .expect("the server's limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a line for open files");
    let numbers: Vec<&str> = line.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers.len(), 2, "{line}");
    assert_ne!(numbers[0], "512", "{line}");
    assert_eq!(numbers[0], numbers[1], "{line}");
}
