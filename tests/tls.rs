//! `steward serve` over HTTPS with a certificate from a private CA made here
//! (rcgen), and `steward-agent register` and `pull` trusting that CA with
//! `--ca`: real processes on loopback.

#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use reqwest::StatusCode;
use serde_json::{Value, json};
use support::{Killed, STEWARD, Server, ServerOptions, agent_binary, free_port};

const PASSWORD: &str = "tls-admin-password";

/// A private CA and a server certificate it signed for `127.0.0.1` and
/// `localhost`, as PEM files in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    ca_pem: String,
}

impl Pki {
    fn new() -> Pki {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "Steward test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_key = KeyPair::generate().unwrap();
        let ca_pem = ca.self_signed(&ca_key).unwrap().pem();
        let issuer = Issuer::new(ca, ca_key);

        let mut server =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
        server
            .distinguished_name
            .push(DnType::CommonName, "127.0.0.1");
        server.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        server.use_authority_key_identifier_extension = true;
        let server_key = KeyPair::generate().unwrap();
        let server_pem = server.signed_by(&server_key, &issuer).unwrap().pem();

        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), &ca_pem).unwrap();
        std::fs::write(dir.path().join("cert.pem"), server_pem).unwrap();
        std::fs::write(dir.path().join("key.pem"), server_key.serialize_pem()).unwrap();
        Pki { dir, ca_pem }
    }

    fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn cert(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    fn key(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }

    /// An HTTPS client that trusts the test CA.
    fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap())
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }
}

/// `steward serve` with its environment cleared of what could change it.
fn steward(data: &Path) -> Command {
    let mut command = Command::new(STEWARD);
    command
        .arg("serve")
        .arg("--data-dir")
        .arg(data)
        .env("STEWARD_ADMIN_PASSWORD", PASSWORD)
        .env("STEWARD_LOG", "info")
        .env_remove("STEWARD_DATABASE_URL")
        .env_remove("STEWARD_CONFIG")
        .env_remove("STEWARD_LISTEN")
        .env_remove("STEWARD_BASE_PATH")
        .env_remove("STEWARD_TLS_CERT")
        .env_remove("STEWARD_TLS_KEY")
        .stdin(Stdio::null());
    command
}

/// `steward serve --tls-cert .. --tls-key ..`, ready over https, and a
/// client of it that trusts the test CA.
fn start(pki: &Pki) -> (Server, Https) {
    let mut server = Server::with(
        ServerOptions {
            tls: true,
            ..ServerOptions::admin(PASSWORD)
        }
        .args(&[
            "--tls-cert",
            path(&pki.cert()),
            "--tls-key",
            path(&pki.key()),
        ]),
    );
    let https = Https {
        url: format!("https://{}", server.addr),
        runtime: tokio::runtime::Runtime::new().unwrap(),
        client: pki.client(),
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok((StatusCode::OK, _)) = https.get(&https.client, "/ready") {
            break;
        }
        if let Ok(Some(exit)) = server.child().try_wait() {
            panic!("steward exited early ({exit}):\n{}", log(&server));
        }
        assert!(
            Instant::now() < deadline,
            "steward did not become ready over https:\n{}",
            log(&server)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    (server, https)
}

/// What the server logged, without the terminal colours.
fn log(server: &Server) -> String {
    let text = server.log();
    let mut plain = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ parameters, ended by a letter.
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain
}

/// Waits (at most 15 s) for a terminated server's exit.
fn exited(process: &mut Killed) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(Some(status)) = process.0.try_wait() {
            return status;
        }
        assert!(Instant::now() < deadline, "steward did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// An HTTPS client of the server, with a runtime of its own.
struct Https {
    /// `https://IP:PORT`.
    url: String,
    runtime: tokio::runtime::Runtime,
    /// Trusts the test CA.
    client: reqwest::Client,
}

impl Https {
    /// `GET path` with `client`: the status and the body, or the error
    /// with its causes.
    fn get(&self, client: &reqwest::Client, path: &str) -> Result<(StatusCode, String), String> {
        self.send(client.get(format!("{}{path}", self.url)))
    }

    fn send(&self, request: reqwest::RequestBuilder) -> Result<(StatusCode, String), String> {
        self.runtime.block_on(async {
            let response = request.send().await.map_err(|e| error_chain(&e))?;
            let status = response.status();
            let body = response.text().await.map_err(|e| error_chain(&e))?;
            Ok((status, body))
        })
    }

    /// A Director call as the admin: status and JSON body (`body` is sent
    /// unless it is null).
    fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.url))
            .basic_auth("admin", Some(PASSWORD))
            .header("Accept", "application/json");
        if !body.is_null() {
            request = request.json(&body);
        }
        let (status, text) = self.send(request).expect("the admin call is answered");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// An error and its causes, joined: rustls' reason is in a cause.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What one process run did.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Run {
    fn of(output: Output) -> Run {
        Run {
            code: output.status.code().expect("an exit code"),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn assert_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "exit code\nstdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs `steward-agent ARGS` with none of its environment variables set.
fn agent(args: &[&str]) -> Run {
    Run::of(
        Command::new(agent_binary())
            .args(args)
            .env_remove("STEWARD_SERVER")
            .env_remove("STEWARD_KEY")
            .env_remove("STEWARD_AGENT_STATE_DIR")
            .stdin(Stdio::null())
            .output()
            .expect("run steward-agent"),
    )
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn https_serves_the_api_and_refuses_plain_http_and_clients_without_the_ca() {
    let pki = Pki::new();
    let (server, https) = start(&pki);
    assert!(
        log(&server).contains("scheme=\"https\""),
        "the start is logged as https:\n{}",
        log(&server)
    );

    let (status, body) = https.get(&https.client, "/ready").unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    // HTTP/2 for a client that takes it by ALPN, HTTP/1.1 for one that
    // does not: the version is chosen before the first request is read.
    for (only_http1, version) in [
        (false, reqwest::Version::HTTP_2),
        (true, reqwest::Version::HTTP_11),
    ] {
        let mut client = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap());
        if only_http1 {
            client = client.http1_only();
        }
        let client = client.build().unwrap();
        let response = https
            .runtime
            .block_on(client.get(format!("{}/ready", https.url)).send())
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.version(), version);
    }
    let (status, hosts) = https.admin(reqwest::Method::GET, "/director/hosts", Value::Null);
    assert_eq!(status, StatusCode::OK, "{hosts}");
    assert!(hosts.get("objects").is_some(), "{hosts}");

    // The client's address reaches the handlers (throttling, logs) under TLS
    // too: a login from 127.0.0.2 is logged with that address.
    let from_elsewhere = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap())
        .local_address(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)))
        .build()
        .unwrap();
    let request = from_elsewhere
        .get(format!("{}/director/hosts", https.url))
        .basic_auth("nobody", Some("wrong"));
    let (status, _) = https.send(request).unwrap();
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let deadline = Instant::now() + Duration::from_secs(5);
    while !log(&server).contains("client=127.0.0.2") {
        assert!(
            Instant::now() < deadline,
            "the failed login is not logged with the client's address:\n{}",
            log(&server)
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // Plain http to the https port gets no answer but a closed connection.
    let mut stream = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream
        .write_all(b"GET /ready HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        !answer.starts_with("HTTP/1.") || !answer.contains(" 200 "),
        "plain http was answered: {answer}"
    );
    let plain = reqwest::Client::new();
    let plain = https.send(plain.get(format!("http://127.0.0.1:{}/ready", server.port)));
    assert!(
        !matches!(plain, Ok((StatusCode::OK, _))),
        "plain http was answered: {plain:?}"
    );

    // A client that does not trust the CA fails the handshake.
    let stranger = reqwest::Client::new();
    let error = https
        .get(&stranger, "/ready")
        .expect_err("a client without the CA is refused");
    assert!(
        error.to_lowercase().contains("certificate"),
        "not a certificate error: {error}"
    );

    // None of that disturbed the server.
    assert_eq!(
        https.get(&https.client, "/ready").unwrap().0,
        StatusCode::OK
    );
}

#[test]
fn half_a_tls_configuration_or_an_unusable_file_stops_the_start() {
    let pki = Pki::new();
    let data = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port("127.0.0.1"));

    let run = Run::of(
        steward(data.path())
            .args(["--listen", &listen])
            .arg("--tls-cert")
            .arg(pki.cert())
            .output()
            .unwrap(),
    );
    run.assert_code(2);
    assert!(run.stderr.contains("tls_key"), "{}", run.stderr);
    assert!(run.stderr.contains("--tls-key"), "{}", run.stderr);

    let run = Run::of(
        steward(data.path())
            .args(["--listen", &listen])
            .env("STEWARD_TLS_KEY", pki.key())
            .output()
            .unwrap(),
    );
    run.assert_code(2);
    assert!(run.stderr.contains("--tls-cert"), "{}", run.stderr);

    let garbage = pki.dir.path().join("garbage.pem");
    std::fs::write(&garbage, "this is not a certificate\n").unwrap();
    let run = Run::of(
        steward(data.path())
            .args(["--listen", &listen])
            .arg("--tls-cert")
            .arg(&garbage)
            .arg("--tls-key")
            .arg(pki.key())
            .output()
            .unwrap(),
    );
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains(path(&garbage)), "{}", run.stderr);
    assert!(!run.stderr.contains("panicked"), "{}", run.stderr);

    let missing = pki.dir.path().join("missing-key.pem");
    let run = Run::of(
        steward(data.path())
            .args(["--listen", &listen])
            .arg("--tls-cert")
            .arg(pki.cert())
            .arg("--tls-key")
            .arg(&missing)
            .output()
            .unwrap(),
    );
    assert_ne!(run.code, 0, "{}", run.stderr);
    assert!(run.stderr.contains(path(&missing)), "{}", run.stderr);
}

#[test]
fn the_agent_registers_and_pulls_over_https_trusting_the_ca_it_is_given() {
    let pki = Pki::new();
    let (mut server, https) = start(&pki);
    let template = json!({"object_name": "agents", "object_type": "template", "has_agent": true});
    let (status, body) = https.admin(reqwest::Method::POST, "/director/host", template);
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = https.admin(
        reqwest::Method::POST,
        "/director/host/api-key?name=agents",
        json!({}),
    );
    assert!(status.is_success(), "{status} {body}");
    let key = body["api_key"].as_str().expect("an api_key").to_owned();
    let url = https.url.clone();
    let ca = pki.ca();
    let states = tempfile::tempdir().unwrap();
    let state = states.path().join("node-1");
    let register = |state: &Path, ca: Option<&Path>| {
        let mut args = vec![
            "register",
            "--server",
            &url,
            "--key",
            &key,
            "--name",
            "node-1.example",
            "--address",
            "127.0.0.1",
            "--retry-for",
            "0",
            "--state-dir",
            path(state),
        ];
        if let Some(ca) = ca {
            args.extend(["--ca", path(ca)]);
        }
        agent(&args)
    };

    // Without the CA the server's certificate is not trusted.
    let refused = register(&states.path().join("untrusting"), None);
    refused.assert_code(6);
    assert!(
        refused.stderr.to_lowercase().contains("certificate"),
        "{}",
        refused.stderr
    );
    assert!(!states.path().join("untrusting/state.json").exists());

    let registered = register(&state, Some(&ca));
    registered.assert_code(0);
    assert!(
        registered.stdout.contains("registered node-1.example"),
        "{}",
        registered.stdout
    );
    assert!(
        !registered.stderr.contains("warning"),
        "{}",
        registered.stderr
    );
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("state.json")).unwrap()).unwrap();
    assert_eq!(saved["server"], json!(url));

    // A CA file that cannot be used is a usage error naming it.
    let garbage = pki.dir.path().join("garbage-ca.pem");
    std::fs::write(&garbage, "no certificate here\n").unwrap();
    let bad = register(&state, Some(&garbage));
    bad.assert_code(2);
    assert!(bad.stderr.contains(path(&garbage)), "{}", bad.stderr);

    // Nothing is deployed yet: the server answers 404, which --once takes as
    // success; without the CA the server is not reachable.
    let pull = |ca: Option<&Path>, wait: &str| {
        let mut args = vec![
            "pull",
            "--once",
            "--wait",
            wait,
            "--state-dir",
            path(&state),
        ];
        if let Some(ca) = ca {
            args.extend(["--ca", path(ca)]);
        }
        agent(&args)
    };
    pull(Some(&ca), "0").assert_code(0);
    let unreachable = pull(None, "0");
    unreachable.assert_code(6);
    assert!(
        unreachable.stderr.to_lowercase().contains("certificate"),
        "{}",
        unreachable.stderr
    );
    pull(Some(&garbage), "0").assert_code(2);

    // SIGTERM under TLS: a long poll under way is answered, new
    // connections are refused, and the server exits 0.
    let host_key = saved["host_key"].as_str().unwrap().to_owned();
    let poller = pki.client();
    assert_eq!(https.get(&poller, "/ready").unwrap().0, StatusCode::OK);
    let request = poller
        .get(format!("{url}/director/self-service/allowlist?wait=4"))
        .bearer_auth(host_key)
        .header("Accept", "application/json");
    let long_poll = https.runtime.spawn(async move { request.send().await });
    std::thread::sleep(Duration::from_millis(500));
    let mut process = server.terminate();
    std::thread::sleep(Duration::from_millis(500));
    assert!(
        https.get(&pki.client(), "/ready").is_err(),
        "a new connection was accepted after SIGTERM"
    );
    let answered = https
        .runtime
        .block_on(long_poll)
        .unwrap()
        .expect("the long poll under way is answered");
    assert_eq!(answered.status(), StatusCode::NOT_FOUND);
    assert!(exited(&mut process).success(), "{}", log(&server));
}
