//! Lists: filtered, keyset-paged or streamed whole in flat memory.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use futures::Stream;
use serde_json::{Map, Value};

use super::caller::{Caller, permissions_of};
use super::objects::{View, resolver};
use crate::domain::filter::Filter;
use crate::domain::object::render;
use crate::domain::resolve::Resolver;
use crate::domain::{Kind, ObjectType};
use crate::error::ApiError;
use crate::http::json::to_pretty_nested;
use crate::store::objects as rows;
use crate::store::{Store, StoredObject};

/// Rows read from the database at a time, for pages and streams alike.
const BATCH: u64 = 500;

/// The largest page a client may ask for.
pub const MAX_LIMIT: u64 = 1000;

/// A list request, checked.
#[derive(Debug, Clone)]
pub struct ListRequest {
    pub kind: Kind,
    pub object_type: ObjectType,
    pub filter: Filter,
    pub view: View,
    /// A page size (1..=1000); `None` streams the whole list.
    pub limit: Option<u64>,
    /// The name after which the page starts (decoded from the cursor).
    pub after: Option<String>,
    pub count: bool,
    /// Who asks: host objects outside their restrictions are left out.
    pub caller: Caller,
}

/// Encodes the opaque cursor that continues after `name`.
pub fn encode_cursor(name: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("n:{name}"))
}

/// Decodes a cursor made by [`encode_cursor`].
pub fn decode_cursor(cursor: &str) -> Result<String, ApiError> {
    URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix("n:").map(str::to_owned))
        .ok_or_else(|| {
            ApiError::BadRequest(
                "Invalid cursor: pass the \"next\" value of the previous page".into(),
            )
        })
}

/// Filters and renders one object, resolving at most once.
fn select(object: &StoredObject, request: &ListRequest, resolver: &Resolver) -> Option<Value> {
    let d = &object.draft;
    if !request.caller.sees_draft(d) {
        return None;
    }
    let resolved =
        (request.filter.needs_resolution() || request.view.resolved).then(|| resolver.resolve(d));
    if !request.filter.matches(d, resolved.as_ref()) {
        return None;
    }
    Some(match &resolved {
        Some(r) if request.view.resolved => render(
            d.kind,
            &d.name,
            d.object_type,
            &r.props,
            &request.view.options,
            true,
        ),
        _ => render(
            d.kind,
            &d.name,
            d.object_type,
            &d.props,
            &request.view.options,
            false,
        ),
    })
}

/// The resolver a list needs (empty when it needs none).
pub async fn prepare(store: &Store, request: &ListRequest) -> Result<Arc<Resolver>, ApiError> {
    request.caller.require(permissions_of(request.kind).0)?;
    if request.filter.needs_resolution() || request.view.resolved {
        resolver(store, request.kind).await
    } else {
        Ok(Arc::new(Resolver::default()))
    }
}

/// One page: `{"objects": [...], "next"?: cursor, "total"?: n}`.
pub async fn page(store: &Store, request: &ListRequest, limit: u64) -> Result<Value, ApiError> {
    let resolver = prepare(store, request).await?;
    // One more than the page tells whether a next page exists. When every
    // row is shown, that is all to read; otherwise read on in batches.
    let shows_every_row =
        request.filter.is_empty() && request.caller.restrictions.is_unrestricted();
    let size = if shows_every_row {
        limit + 1
    } else {
        BATCH.max(limit + 1)
    };
    let mut items: Vec<(String, Value)> = Vec::new();
    let mut after = request.after.clone();
    'scan: loop {
        let batch = rows::page(
            store.db(),
            request.kind,
            request.object_type,
            after.as_deref(),
            size,
        )
        .await?;
        let exhausted = (batch.len() as u64) < size;
        for object in &batch {
            if let Some(value) = select(object, request, &resolver) {
                items.push((object.draft.name.as_str().to_owned(), value));
                if items.len() as u64 > limit {
                    break 'scan;
                }
            }
        }
        match batch.last() {
            Some(last) if !exhausted => after = Some(last.draft.name.as_str().to_owned()),
            _ => break,
        }
    }
    let mut body = Map::new();
    if items.len() as u64 > limit {
        items.truncate(limit as usize);
        if let Some((name, _)) = items.last() {
            body.insert("next".into(), encode_cursor(name).into());
        }
    }
    if request.count {
        body.insert(
            "total".into(),
            count(store, request, &resolver).await?.into(),
        );
    }
    body.insert(
        "objects".into(),
        Value::Array(items.into_iter().map(|(_, v)| v).collect()),
    );
    Ok(Value::Object(body))
}

/// How many objects match, whatever the page.
async fn count(store: &Store, request: &ListRequest, resolver: &Resolver) -> Result<u64, ApiError> {
    if request.filter.is_empty() && request.caller.restrictions.is_unrestricted() {
        return Ok(rows::count(store.db(), request.kind, request.object_type).await?);
    }
    let counting = ListRequest {
        view: View::default(),
        ..request.clone()
    };
    let mut total = 0;
    let mut after: Option<String> = None;
    loop {
        let batch = rows::page(
            store.db(),
            request.kind,
            request.object_type,
            after.as_deref(),
            BATCH,
        )
        .await?;
        total += batch
            .iter()
            .filter(|o| select(o, &counting, resolver).is_some())
            .count() as u64;
        match batch.last() {
            Some(last) if batch.len() as u64 == BATCH => {
                after = Some(last.draft.name.as_str().to_owned())
            }
            _ => return Ok(total),
        }
    }
}

enum Phase {
    Rows,
    End,
    Done,
}

struct StreamState {
    store: Arc<Store>,
    request: ListRequest,
    resolver: Arc<Resolver>,
    after: Option<String>,
    first: bool,
    total: u64,
    phase: Phase,
}

/// The whole list as a byte stream, pretty-printed like [`page`] would, read
/// from the database `BATCH` rows at a time: memory stays flat whatever the
/// list's length. Not a snapshot: objects written meanwhile may or may not
/// appear (each appears at most once, in name order).
pub fn stream(
    store: Arc<Store>,
    request: ListRequest,
    resolver: Arc<Resolver>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> {
    let state = StreamState {
        store,
        after: request.after.clone(),
        request,
        resolver,
        first: true,
        total: 0,
        phase: Phase::Rows,
    };
    let head = futures::stream::once(async { Ok(Bytes::from_static(b"{\n  \"objects\": [")) });
    let rest = futures::stream::unfold(state, |mut st| async move {
        match st.phase {
            Phase::Rows => {
                let batch = match rows::page(
                    st.store.db(),
                    st.request.kind,
                    st.request.object_type,
                    st.after.as_deref(),
                    BATCH,
                )
                .await
                {
                    Ok(batch) => batch,
                    Err(e) => {
                        tracing::error!(error = %e, "list stream failed");
                        st.phase = Phase::Done;
                        return Some((Err(std::io::Error::other("database error")), st));
                    }
                };
                if (batch.len() as u64) < BATCH {
                    st.phase = Phase::End;
                }
                let mut out = Vec::new();
                for object in &batch {
                    if let Some(value) = select(object, &st.request, &st.resolver) {
                        out.extend_from_slice(if st.first { b"\n" } else { b",\n" });
                        out.extend(to_pretty_nested(&value, 2));
                        st.first = false;
                        st.total += 1;
                    }
                }
                st.after = batch.last().map(|o| o.draft.name.as_str().to_owned());
                Some((Ok(Bytes::from(out)), st))
            }
            Phase::End => {
                let mut out = if st.first {
                    b"]".to_vec()
                } else {
                    b"\n  ]".to_vec()
                };
                if st.request.count {
                    out.extend_from_slice(format!(",\n  \"total\": {}", st.total).as_bytes());
                }
                out.extend_from_slice(b"\n}\n");
                st.phase = Phase::Done;
                Some((Ok(Bytes::from(out)), st))
            }
            Phase::Done => None,
        }
    });
    futures::StreamExt::chain(head, rest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_garbage_is_refused() {
        assert_eq!(
            decode_cursor(&encode_cursor("web-01.example"))
                .ok()
                .as_deref(),
            Some("web-01.example")
        );
        assert!(decode_cursor("garbage!").is_err());
        assert!(decode_cursor(&URL_SAFE_NO_PAD.encode("x:abc")).is_err());
    }
}
