//! HTTP calls from the agent to the Steward server: self-service
//! registration and the agent configuration, with the server's answers
//! mapped to [`AgentError`]s and transient failures retried with backoff.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::header::{ACCEPT, AUTHORIZATION, ETAG, IF_NONE_MATCH, LOCATION, RETRY_AFTER};
use reqwest::{RequestBuilder, StatusCode, Url};
use serde::{Deserialize, Serialize};

use super::AgentError;

/// How long connecting to the server may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one request may take, answer included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The first retry delay.
pub const BACKOFF_START: Duration = Duration::from_secs(1);
/// The longest retry delay.
pub const BACKOFF_CAP: Duration = Duration::from_secs(30);
/// How far a delay may stray from its base, as a fraction (±20 %).
pub const BACKOFF_JITTER: f64 = 0.2;

/// The delay before retry number `attempt` (0 for the first retry), before
/// jitter: 1 s, doubling, at most 30 s.
pub fn backoff_base(attempt: u32) -> Duration {
    let factor = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
    BACKOFF_START.saturating_mul(factor).min(BACKOFF_CAP)
}

/// `base` with jitter: `unit`, a number in `[0, 1]` (random in use), maps
/// linearly onto a factor from 0.8 to 1.2.
pub fn jittered(base: Duration, unit: f64) -> Duration {
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.5
    };
    base.mul_f64(1.0 - BACKOFF_JITTER + 2.0 * BACKOFF_JITTER * unit)
}

/// How long to wait before the next attempt, or `None` to give up.
///
/// `retry_after` is the server's `Retry-After` (a 429): it is obeyed, and
/// when it reaches past the remaining budget there is no point waiting.
/// Otherwise the delay is the jittered backoff for `attempt`, cut to what
/// remains of the budget so that one last attempt is made at its end.
pub fn next_wait(
    retry_after: Option<Duration>,
    attempt: u32,
    unit: f64,
    remaining: Duration,
) -> Option<Duration> {
    if remaining.is_zero() {
        return None;
    }
    match retry_after {
        Some(after) if after > remaining => None,
        Some(after) if !after.is_zero() => Some(after),
        _ => Some(jittered(backoff_base(attempt), unit).min(remaining)),
    }
}

/// Checks and normalises the server's base URL: `http` or `https`, a host,
/// no query, fragment or credentials; no trailing slash.
pub fn normalize_server(server: &str) -> Result<String, AgentError> {
    let url = Url::parse(server.trim())
        .map_err(|e| AgentError::Usage(format!("--server {server:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(AgentError::Usage(format!(
            "--server {server:?}: the scheme must be http or https"
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(AgentError::Usage(format!(
            "--server {server:?} has no host"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(AgentError::Usage(format!(
            "--server {server:?}: give the base URL without a query or fragment"
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(AgentError::Usage(
            "--server: the URL must not carry credentials".to_owned(),
        ));
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// What a node sends about itself when it registers; absent fields are left out.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Registration {
    /// The host's IPv4 address (or what the server accepts as `address`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The host's IPv6 address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address6: Option<String>,
    /// The port the agent listens on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent_port: Option<u16>,
    /// `pull` for an agent that fetches its allowlist itself (the server
    /// then never pushes to it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub delivery: Option<crate::domain::kind::Delivery>,
}

/// The answer of `GET /director/self-service/agent-config`.
#[derive(Clone, Debug, Deserialize)]
pub struct AgentConfig {
    /// The host object's name.
    pub host: String,
    /// The host object's stable id.
    pub host_id: i64,
    /// The port the agent should listen on.
    #[serde(default)]
    pub agent_port: Option<u16>,
    /// How the host gets its allowlist: `push` or `pull` (absent from
    /// older servers).
    #[serde(default)]
    pub delivery: Option<String>,
    /// The server's allowlist signing key.
    pub signing_key: SigningKeyInfo,
    /// The newest allowlist serial issued to the host: nothing older is
    /// ever accepted (absent before the first deployment).
    #[serde(default)]
    pub serial_floor: Option<i64>,
}

/// The server's public signing key as `agent-config` presents it.
#[derive(Clone, Debug, Deserialize)]
pub struct SigningKeyInfo {
    /// `ed25519`.
    pub algorithm: String,
    /// Base64 of the 32-byte public key.
    pub public_key: String,
    /// `sha256:` and the hex SHA-256 of the raw public key.
    pub fingerprint: String,
    /// During a key rotation, the key that will replace it.
    #[serde(default)]
    pub next: Option<NextKeyInfo>,
}

/// The key a rotation will bring.
#[derive(Clone, Debug, Deserialize)]
pub struct NextKeyInfo {
    /// Base64 of the 32-byte public key.
    pub public_key: String,
}

/// What one attempt came to.
enum Attempt<T> {
    Done(T),
    Retry {
        reason: String,
        retry_after: Option<Duration>,
    },
    Fail(AgentError),
}

/// What one long poll of the allowlist brought.
#[derive(Debug)]
pub enum Pulled {
    /// An allowlist other than the one named by the ETag sent.
    New {
        etag: Option<String>,
        document: serde_json::Value,
    },
    /// Nothing newer within the wait.
    NotModified,
    /// Nothing was deployed to this host yet.
    NoneYet,
    /// The server is busy or failing (429, 5xx): ask again later, after
    /// its `Retry-After` when it gave one.
    Later {
        retry_after: Option<Duration>,
        reason: String,
    },
}

/// How long a pulling agent waits before asking again after a `Later`
/// answer or an error: at least the server's `Retry-After`, spread by up to
/// half again (so that agents told the same do not come back together),
/// otherwise the jittered backoff for `failures`. `unit` in `[0, 1]` is
/// random in use.
pub fn pull_delay(retry_after: Option<Duration>, failures: u32, unit: f64) -> Duration {
    let unit = if unit.is_finite() {
        unit.clamp(0.0, 1.0)
    } else {
        0.5
    };
    match retry_after {
        Some(after) if !after.is_zero() => after.min(BACKOFF_CAP).mul_f64(1.0 + 0.5 * unit),
        _ => jittered(backoff_base(failures), unit),
    }
}

/// A client of one Steward server with one retry budget for all its calls.
pub struct Client {
    http: reqwest::Client,
    base: String,
    deadline: Instant,
}

impl Client {
    /// A client for `server` (a base URL, see [`normalize_server`]) that keeps
    /// retrying transient failures for `retry_for` from now.
    pub fn new(server: &str, retry_for: Duration) -> Result<Self, AgentError> {
        Self::with_ca(server, retry_for, None)
    }

    /// [`Client::new`], trusting for https also the certificates in the PEM
    /// file `ca` (`--ca`: a private CA, or a self-signed server), besides
    /// the built-in roots.
    pub fn with_ca(
        server: &str,
        retry_for: Duration,
        ca: Option<&Path>,
    ) -> Result<Self, AgentError> {
        let base = normalize_server(server)?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // Never carry a key to wherever a redirect points.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("steward-agent/", env!("CARGO_PKG_VERSION")));
        for certificate in ca.map(load_ca).transpose()?.unwrap_or_default() {
            builder = builder.add_root_certificate(certificate);
        }
        let http = builder.build().map_err(|e| match ca {
            // What the file holds is the likeliest cause.
            Some(file) => AgentError::Usage(format!(
                "--ca {}: cannot use its certificates: {}",
                file.display(),
                error_chain(&e)
            )),
            None => AgentError::Protocol(format!("cannot set up HTTP: {e}")),
        })?;
        let now = Instant::now();
        let deadline = now.checked_add(retry_for).unwrap_or(now);
        Ok(Client {
            http,
            base,
            deadline,
        })
    }

    /// The normalised base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Whether the server is spoken to over plain `http://`.
    pub fn is_plain_http(&self) -> bool {
        self.base.starts_with("http://")
    }

    /// `POST /director/self-service/register-host?name=NAME` with `key` (a
    /// template's key, or the host's own to re-register): the host's key.
    pub async fn register_host(
        &self,
        name: &str,
        key: &str,
        registration: &Registration,
    ) -> Result<String, AgentError> {
        let url = format!("{}/director/self-service/register-host", self.base);
        let body = self
            .call("registering", key, || {
                self.http
                    .post(&url)
                    .query(&[("name", name)])
                    .json(registration)
            })
            .await?;
        match serde_json::from_slice::<serde_json::Value>(&body) {
            Ok(serde_json::Value::String(host_key)) if !host_key.trim().is_empty() => Ok(host_key),
            _ => Err(AgentError::Protocol(
                "register-host did not answer a key as a JSON string".to_owned(),
            )),
        }
    }

    /// `GET /director/self-service/agent-config` with the host's key.
    pub async fn agent_config(&self, host_key: &str) -> Result<AgentConfig, AgentError> {
        let url = format!("{}/director/self-service/agent-config", self.base);
        let body = self
            .call("fetching the agent configuration", host_key, || {
                self.http.get(&url)
            })
            .await?;
        serde_json::from_slice(&body).map_err(|e| {
            AgentError::Protocol(format!("agent-config answered an unexpected body: {e}"))
        })
    }

    /// One long poll of `GET /director/self-service/allowlist` with the
    /// host's key: a newer allowlist than `etag`, or none within `wait`
    /// seconds. Not retried here: the pull loop backs off and asks again.
    pub async fn pull_allowlist(
        &self,
        host_key: &str,
        etag: Option<&str>,
        wait: u64,
    ) -> Result<Pulled, AgentError> {
        let url = format!("{}/director/self-service/allowlist", self.base);
        let mut request = self
            .http
            .get(&url)
            .query(&[("wait", wait)])
            .timeout(REQUEST_TIMEOUT + Duration::from_secs(wait))
            .header(AUTHORIZATION, format!("Bearer {host_key}"))
            .header(ACCEPT, "application/json");
        if let Some(etag) = etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let response = request
            .send()
            .await
            .map_err(|e| AgentError::Unreachable(redact(&error_chain(&e), host_key)))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let etag = response
            .headers()
            .get(ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .bytes()
            .await
            .map_err(|e| AgentError::Unreachable(redact(&error_chain(&e), host_key)))?;
        match status {
            StatusCode::OK => serde_json::from_slice(&body)
                .map(|document| Pulled::New { etag, document })
                .map_err(|e| AgentError::Protocol(format!("the allowlist is not JSON: {e}"))),
            StatusCode::NOT_MODIFIED => Ok(Pulled::NotModified),
            StatusCode::NOT_FOUND => Ok(Pulled::NoneYet),
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(AgentError::Refused(redact(
                &server_message(status, &body),
                host_key,
            ))),
            s if s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS => Ok(Pulled::Later {
                retry_after,
                reason: redact(&server_message(status, &body), host_key),
            }),
            _ => Err(AgentError::Protocol(redact(
                &server_message(status, &body),
                host_key,
            ))),
        }
    }

    /// Sends the request `build` makes, with `key` as bearer token, until it
    /// succeeds, fails for good, or the retry budget is spent; the body of a
    /// 2xx answer.
    async fn call(
        &self,
        what: &str,
        key: &str,
        build: impl Fn() -> RequestBuilder,
    ) -> Result<Vec<u8>, AgentError> {
        let mut attempt = 0u32;
        loop {
            let request = build()
                .header(AUTHORIZATION, format!("Bearer {key}"))
                .header(ACCEPT, "application/json");
            match self.once(request, key).await {
                Attempt::Done(body) => return Ok(body),
                Attempt::Fail(error) => return Err(error),
                Attempt::Retry {
                    reason,
                    retry_after,
                } => {
                    let remaining = self.deadline.saturating_duration_since(Instant::now());
                    let Some(wait) =
                        next_wait(retry_after, attempt, rand::random::<f64>(), remaining)
                    else {
                        return Err(AgentError::Unreachable(format!("{what}: {reason}")));
                    };
                    eprintln!(
                        "steward-agent: {what}: {reason}; retrying in {:.1} s",
                        wait.as_secs_f64()
                    );
                    tokio::time::sleep(wait).await;
                    attempt = attempt.saturating_add(1);
                }
            }
        }
    }

    /// One request and what its answer means.
    async fn once(&self, request: RequestBuilder, key: &str) -> Attempt<Vec<u8>> {
        let response = match request.send().await {
            Ok(response) => response,
            Err(e) if e.is_builder() => {
                return Attempt::Fail(AgentError::Usage(redact(&error_chain(&e), key)));
            }
            Err(e) => {
                return Attempt::Retry {
                    reason: redact(&error_chain(&e), key),
                    retry_after: None,
                };
            }
        };
        let status = response.status();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = match response.bytes().await {
            Ok(body) => body.to_vec(),
            Err(e) => {
                return Attempt::Retry {
                    reason: redact(&error_chain(&e), key),
                    retry_after: None,
                };
            }
        };
        if status.is_success() {
            return Attempt::Done(body);
        }
        let message = redact(&server_message(status, &body), key);
        match status {
            StatusCode::TOO_MANY_REQUESTS => Attempt::Retry {
                reason: message,
                retry_after,
            },
            StatusCode::REQUEST_TIMEOUT => Attempt::Retry {
                reason: message,
                retry_after: None,
            },
            s if s.is_server_error() => Attempt::Retry {
                reason: message,
                retry_after: None,
            },
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => {
                Attempt::Fail(AgentError::Invalid(message))
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Attempt::Fail(AgentError::Refused(message))
            }
            StatusCode::CONFLICT => Attempt::Fail(AgentError::Conflict(message)),
            StatusCode::NOT_FOUND => Attempt::Fail(AgentError::Protocol(format!(
                "{message} (is --server the server's base URL?)"
            ))),
            s if s.is_redirection() => Attempt::Fail(AgentError::Protocol(format!(
                "the server redirects to {}; give that as --server",
                location.as_deref().unwrap_or("another URL")
            ))),
            _ => Attempt::Fail(AgentError::Protocol(message)),
        }
    }
}

/// The certificates of the PEM file `file` (`--ca`): at least one, or a
/// usage error naming the file.
pub fn load_ca(file: &Path) -> Result<Vec<reqwest::Certificate>, AgentError> {
    let pem = std::fs::read(file)
        .map_err(|e| AgentError::Usage(format!("--ca {}: cannot read it: {e}", file.display())))?;
    let certificates = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| {
        AgentError::Usage(format!(
            "--ca {}: not PEM certificates: {}",
            file.display(),
            error_chain(&e)
        ))
    })?;
    if certificates.is_empty() {
        return Err(AgentError::Usage(format!(
            "--ca {}: no certificate in it (expected PEM: -----BEGIN CERTIFICATE-----)",
            file.display()
        )));
    }
    Ok(certificates)
}

/// The server's `{"error": "..."}` message, or the start of whatever else it
/// sent, with the status.
fn server_message(status: StatusCode, body: &[u8]) -> String {
    let text = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
        .unwrap_or_else(|| {
            let text = String::from_utf8_lossy(body);
            let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
            line.chars().take(200).collect()
        });
    if text.is_empty() {
        format!("server answered {status}")
    } else {
        format!("server answered {status}: {text}")
    }
}

/// An error and its causes, joined, without repeats.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut parts: Vec<String> = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = cause.source();
    }
    parts.join(": ")
}

/// `text` with every occurrence of `secret` replaced.
fn redact(text: &str, secret: &str) -> String {
    if secret.is_empty() {
        text.to_owned()
    } else {
        text.replace(secret, "<redacted>")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used, clippy::unwrap_used)]

    use super::*;

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// Equal to within a microsecond (floating point jitter factors).
    fn close(a: Duration, b: Duration) -> bool {
        a.abs_diff(b) < Duration::from_micros(1)
    }

    fn wait_is(wait: Option<Duration>, expected: f64) -> bool {
        wait.is_some_and(|w| close(w, secs(expected)))
    }

    #[test]
    fn backoff_starts_at_one_second_doubles_and_stops_at_thirty() {
        let schedule: Vec<u64> = (0..8).map(|a| backoff_base(a).as_secs()).collect();
        assert_eq!(schedule, vec![1, 2, 4, 8, 16, 30, 30, 30]);
        assert_eq!(backoff_base(31), BACKOFF_CAP);
        assert_eq!(backoff_base(32), BACKOFF_CAP);
        assert_eq!(backoff_base(u32::MAX), BACKOFF_CAP);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let base = secs(10.0);
        assert!(close(jittered(base, 0.0), secs(8.0)));
        assert!(close(jittered(base, 0.5), secs(10.0)));
        assert!(close(jittered(base, 1.0), secs(12.0)));
        assert!(close(jittered(base, -3.0), secs(8.0)));
        assert!(close(jittered(base, 7.0), secs(12.0)));
        assert!(close(jittered(base, f64::NAN), secs(10.0)));
        for _ in 0..1000 {
            let d = jittered(BACKOFF_CAP, rand::random::<f64>());
            assert!(d >= secs(23.999) && d <= secs(36.001), "{d:?}");
        }
    }

    #[test]
    fn the_wait_is_the_backoff_cut_to_the_budget() {
        let big = secs(1000.0);
        assert!(wait_is(next_wait(None, 0, 0.5, big), 1.0));
        assert!(wait_is(next_wait(None, 3, 0.5, big), 8.0));
        assert!(wait_is(next_wait(None, 9, 0.5, big), 30.0));
        assert!(wait_is(next_wait(None, 0, 0.0, big), 0.8));
        assert!(wait_is(next_wait(None, 0, 1.0, big), 1.2));
        // One last attempt at the end of the budget, then none.
        assert_eq!(next_wait(None, 3, 0.5, secs(2.5)), Some(secs(2.5)));
        assert_eq!(next_wait(None, 3, 0.5, Duration::ZERO), None);
    }

    #[test]
    fn retry_after_is_obeyed_within_the_budget() {
        assert_eq!(
            next_wait(Some(secs(7.0)), 0, 0.0, secs(10.0)),
            Some(secs(7.0))
        );
        // Waiting past the budget is pointless: give up now.
        assert_eq!(next_wait(Some(secs(11.0)), 0, 0.0, secs(10.0)), None);
        // Retry-After: 0 falls back to the backoff.
        assert!(wait_is(
            next_wait(Some(Duration::ZERO), 1, 0.5, secs(10.0)),
            2.0
        ));
        assert_eq!(next_wait(Some(secs(1.0)), 0, 0.5, Duration::ZERO), None);
    }

    #[test]
    fn a_whole_schedule_spends_the_budget_and_ends() {
        // With the middle of the jitter, a 300 s budget: 1+2+4+8+16 and eight
        // times 30 make 271 s, then the remaining 29 s, then the end.
        let budget = secs(300.0);
        let mut spent = Duration::ZERO;
        let mut waits = Vec::new();
        let mut attempt = 0;
        while let Some(wait) = next_wait(None, attempt, 0.5, budget.saturating_sub(spent)) {
            waits.push(wait.as_secs_f64().round() as u64);
            spent += wait;
            attempt += 1;
            assert!(attempt < 100, "the schedule does not end");
        }
        assert!(close(spent, budget));
        assert_eq!(waits[..6], [1, 2, 4, 8, 16, 30]);
        assert_eq!(waits.len(), 14);
        assert_eq!(waits.last(), Some(&29));
    }

    #[test]
    fn server_urls_are_checked_and_normalised() {
        assert_eq!(
            normalize_server("http://127.0.0.1:8080").unwrap(),
            "http://127.0.0.1:8080"
        );
        assert_eq!(
            normalize_server(" https://h.example/icingaweb2/ ").unwrap(),
            "https://h.example/icingaweb2"
        );
        for bad in [
            "",
            "h.example",
            "ftp://h.example",
            "https://h.example/?a=1",
            "https://h.example/#x",
            "https://u:p@h.example/",
        ] {
            assert!(
                matches!(normalize_server(bad), Err(AgentError::Usage(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_busy_servers_retry_after_is_honoured_and_spread() {
        let after = Some(secs(4.0));
        assert!(close(pull_delay(after, 0, 0.0), secs(4.0)));
        assert!(close(pull_delay(after, 5, 1.0), secs(6.0)));
        // Never sooner than asked, whatever the draw.
        for unit in [0.0, 0.3, 0.99, f64::NAN] {
            assert!(pull_delay(after, 0, unit) >= secs(4.0));
        }
        // Without one: the backoff.
        assert!(close(pull_delay(None, 0, 0.5), secs(1.0)));
        assert!(close(pull_delay(Some(Duration::ZERO), 3, 0.5), secs(8.0)));
    }

    #[test]
    fn registration_bodies_leave_out_what_is_absent() {
        let body = serde_json::to_value(Registration {
            address: Some("127.0.0.5".into()),
            address6: None,
            agent_port: Some(5665),
            delivery: None,
        })
        .unwrap();
        assert_eq!(
            body,
            serde_json::json!({"address": "127.0.0.5", "agent_port": 5665})
        );
        let pull = Registration {
            delivery: Some(crate::domain::kind::Delivery::Pull),
            ..Registration::default()
        };
        assert_eq!(
            serde_json::to_value(pull).unwrap(),
            serde_json::json!({"delivery": "pull"})
        );
        assert_eq!(
            serde_json::to_value(Registration::default()).unwrap(),
            serde_json::json!({})
        );
    }

    #[test]
    fn server_messages_come_from_the_error_field_or_the_text() {
        assert_eq!(
            server_message(StatusCode::CONFLICT, br#"{"error": "taken"}"#),
            "server answered 409 Conflict: taken"
        );
        assert_eq!(
            server_message(StatusCode::BAD_GATEWAY, b"<html>\n bad  gateway</html>"),
            "server answered 502 Bad Gateway: <html> bad gateway</html>"
        );
        assert_eq!(
            server_message(StatusCode::FORBIDDEN, b""),
            "server answered 403 Forbidden"
        );
    }

    #[test]
    fn a_ca_file_must_hold_pem_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let one = dir.path().join("one.pem");
        std::fs::write(&one, ca.cert.pem()).unwrap();
        assert_eq!(load_ca(&one).unwrap().len(), 1);
        let other = rcgen::generate_simple_self_signed(vec!["other".to_owned()]).unwrap();
        let bundle = dir.path().join("bundle.pem");
        std::fs::write(&bundle, format!("{}{}", ca.cert.pem(), other.cert.pem())).unwrap();
        assert_eq!(load_ca(&bundle).unwrap().len(), 2);
        let client = Client::with_ca("https://127.0.0.1:1", Duration::ZERO, Some(&bundle));
        assert!(client.is_ok());

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate\n").unwrap();
        let broken = dir.path().join("broken.pem");
        std::fs::write(&broken, "-----BEGIN CERTIFICATE-----\n%%%\n").unwrap();
        let missing = dir.path().join("missing.pem");
        for file in [&garbage, &broken, &missing] {
            match Client::with_ca("https://127.0.0.1:1", Duration::ZERO, Some(file)) {
                Err(AgentError::Usage(message)) => {
                    assert!(message.contains(&file.display().to_string()), "{message}");
                }
                Err(other) => panic!("{}: {other:?}", file.display()),
                Ok(_) => panic!("{}: accepted", file.display()),
            }
        }
    }

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(redact("key abc is bad", "abc"), "key <redacted> is bad");
        assert_eq!(redact("nothing", ""), "nothing");
    }
}
