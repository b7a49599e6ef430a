//! Reading and verifying the activity log.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use futures::Stream;
use serde_json::{Map, Value, json};

use super::caller::Caller;
use super::waiting::Wait;
use crate::api::ActivityEntry;
use crate::domain::activity::{Break, GENESIS, verify as verify_chain};
use crate::domain::auth::Permission;
use crate::error::ApiError;
use crate::http::json::to_pretty_nested;
use crate::store::Store;
use crate::store::activity::{self as rows, Query, StoredEntry};

const BATCH: u64 = 500;

/// The `object_type` of the entries about users.
const USER_ENTRIES: &str = "user";

/// A checked request for the log.
#[derive(Debug, Clone)]
pub struct ActivityRequest {
    pub query: Query,
    pub limit: Option<u64>,
    pub caller: Caller,
}

/// Parses `since`: RFC 3339 (any offset), or Unix seconds.
pub fn parse_since(value: &str) -> Result<i64, ApiError> {
    if let Ok(seconds) = value.parse::<i64>() {
        return Ok(seconds.saturating_mul(1000));
    }
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|t| t.timestamp_millis())
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "Invalid since \"{}\": use RFC 3339 or Unix seconds",
                value.escape_debug()
            ))
        })
}

/// The cursor that continues before entry `id`.
pub fn encode_cursor(id: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("a:{id}"))
}

/// Decodes a cursor made by [`encode_cursor`].
pub fn decode_cursor(cursor: &str) -> Result<i64, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|t| t.strip_prefix("a:").and_then(|id| id.parse().ok()))
        .ok_or_else(|| {
            ApiError::BadRequest(
                "Invalid cursor: pass the \"next\" value of the previous page".into(),
            )
        })
}

fn time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// An entry as the API shows it (its fields moved, not copied).
fn shown(stored: StoredEntry) -> Value {
    let e = stored.entry;
    let entry = ActivityEntry {
        id: stored.id,
        time: time(e.at),
        author: e.author,
        action: e.action,
        object_type: e.object_type,
        object_name: e.object_name,
        before: e.before,
        after: e.after,
        request_id: e.request_id,
        object_id: e.object_id,
        reverts: e.reverts,
        checksum: stored.checksum,
        parent_checksum: stored.parent_checksum,
    };
    // Strings and JSON values: it always serialises.
    serde_json::to_value(entry).unwrap_or_default()
}

/// Whether the caller may see an entry: entries about users (names, roles,
/// restrictions) only with the `users` permission, and entries about host
/// objects outside the caller's restrictions never.
pub(crate) fn visible(caller: &Caller, stored: &StoredEntry) -> bool {
    let e = &stored.entry;
    if e.object_type == USER_ENTRIES {
        return caller.permissions.contains(&Permission::Users);
    }
    if e.object_type != "host" || caller.restrictions.is_unrestricted() {
        return true;
    }
    [&e.before, &e.after].into_iter().flatten().all(|object| {
        object["object_type"] == json!("template")
            || object["object_name"]
                .as_str()
                .is_some_and(|n| caller.restrictions.allows(n))
    })
}

/// A blocking query on the log (`after=ID&wait=`): the page of entries
/// after the request's `after_id` as soon as it holds one the caller may
/// see, or an empty one when `wait` is over.
pub async fn page_after(
    store: &Store,
    request: &ActivityRequest,
    limit: u64,
    wait: &Wait,
) -> Result<Value, ApiError> {
    let found = |page: &Value| page["objects"].as_array().is_some_and(|o| !o.is_empty());
    wait.until(store, || page(store, request, limit), found)
        .await
}

/// One page, newest first: `{"objects": [...], "next"?: cursor}`.
pub async fn page(store: &Store, request: &ActivityRequest, limit: u64) -> Result<Value, ApiError> {
    request.caller.require(Permission::ActivityRead)?;
    let mut query = request.query.clone();
    let mut all: Vec<StoredEntry> = Vec::new();
    'scan: loop {
        let batch = rows::find(store.db(), &query, BATCH).await?;
        let exhausted = (batch.len() as u64) < BATCH;
        query.before_id = batch.last().map(|e| e.id);
        for entry in batch {
            if visible(&request.caller, &entry) {
                all.push(entry);
                if all.len() as u64 > limit {
                    break 'scan;
                }
            }
        }
        if exhausted {
            break;
        }
    }
    let mut body = Map::new();
    if all.len() as u64 > limit {
        all.truncate(limit as usize);
        if let Some(last) = all.last() {
            body.insert("next".into(), encode_cursor(last.id).into());
        }
    }
    body.insert(
        "objects".into(),
        Value::Array(all.into_iter().map(shown).collect()),
    );
    Ok(Value::Object(body))
}

/// The whole selection, newest first, streamed in batches.
pub fn stream(
    store: Arc<Store>,
    request: ActivityRequest,
) -> Result<impl Stream<Item = Result<Bytes, std::io::Error>>, ApiError> {
    request.caller.require(Permission::ActivityRead)?;
    let head = futures::stream::once(async { Ok(Bytes::from_static(b"{\n  \"objects\": [")) });
    let state = (store, request, true, false);
    let rest = futures::stream::unfold(state, |(store, mut request, mut first, done)| async move {
        if done {
            return None;
        }
        let batch = match rows::find(store.db(), &request.query, BATCH).await {
            Ok(batch) => batch,
            Err(e) => {
                tracing::error!(error = %e, "activity stream failed");
                return Some((
                    Err(std::io::Error::other("database error")),
                    (store, request, first, true),
                ));
            }
        };
        let last = (batch.len() as u64) < BATCH;
        request.query.before_id = batch.last().map(|e| e.id);
        let mut out = Vec::new();
        for entry in batch.into_iter().filter(|e| visible(&request.caller, e)) {
            out.extend_from_slice(if first { b"\n" } else { b",\n" });
            out.extend(to_pretty_nested(&shown(entry), 2));
            first = false;
        }
        if last {
            out.extend_from_slice(if first { b"]\n}\n" } else { b"\n  ]\n}\n" });
        }
        Some((Ok(Bytes::from(out)), (store, request, first, last)))
    });
    Ok(futures::StreamExt::chain(head, rest))
}

/// Checks the whole chain: the number of entries, or where it breaks.
pub async fn verify(store: &Store) -> Result<Result<u64, Break>, ApiError> {
    let mut previous = GENESIS.to_owned();
    let mut after = 0;
    let mut count = 0;
    loop {
        let batch = rows::chain(store.db(), after, 1000).await?;
        if batch.is_empty() {
            return Ok(Ok(count));
        }
        let links = batch.iter().map(|e| {
            (
                e.id,
                &e.entry,
                e.parent_checksum.as_str(),
                e.checksum.as_str(),
            )
        });
        match verify_chain(links, previous) {
            Ok(last) => previous = last,
            Err(broken) => return Ok(Err(broken)),
        }
        count += batch.len() as u64;
        after = batch.last().map_or(after, |e| e.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_rfc_3339_with_any_offset_and_unix_seconds() {
        assert_eq!(parse_since("1700000000").ok(), Some(1_700_000_000_000));
        assert_eq!(
            parse_since("2023-11-14T22:13:20Z").ok(),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            parse_since("2023-11-14T23:13:20+01:00").ok(),
            Some(1_700_000_000_000)
        );
        assert_eq!(
            parse_since("2023-11-14T22:13:20.5Z").ok(),
            Some(1_700_000_000_500)
        );
        assert!(parse_since("yesterday").is_err());
        assert_eq!(time(1_700_000_000_500), "2023-11-14T22:13:20.500Z");
    }

    #[test]
    fn activity_cursors_round_trip() {
        assert_eq!(decode_cursor(&encode_cursor(42)).ok(), Some(42));
        assert!(decode_cursor("abc").is_err());
    }
}
