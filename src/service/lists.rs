//! Lists: filtered, keyset-paged or streamed whole in flat memory.

use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use futures::Stream;
use sea_orm::DbErr;
use serde_json::Value;
use tokio::sync::mpsc;

use super::caller::{Caller, permissions_of};
use super::objects::{View, resolver};
use crate::domain::filter::Filter;
use crate::domain::object::{render, render_owned};
use crate::domain::resolve::{Resolved, Resolver};
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

/// Whether a list shows the object: the caller sees it and the filter
/// matches it. `Some` with its resolved form when the filter or the view
/// needed it (resolved at most once).
fn matching(
    object: &StoredObject,
    request: &ListRequest,
    resolver: &Resolver,
) -> Option<Option<Resolved>> {
    let d = &object.draft;
    if !request.caller.sees_draft(d) {
        return None;
    }
    let resolved =
        (request.filter.needs_resolution() || request.view.resolved).then(|| resolver.resolve(d));
    request
        .filter
        .matches(d, resolved.as_ref())
        .then_some(resolved)
}

/// Filters and renders one object, resolving at most once.
fn select(object: &StoredObject, request: &ListRequest, resolver: &Resolver) -> Option<Value> {
    let d = &object.draft;
    let resolved = matching(object, request, resolver)?;
    Some(match resolved {
        Some(r) if request.view.resolved => render_owned(
            d.kind,
            &d.name,
            d.object_type,
            r.props,
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

/// Rows per thread at least when a batch's rendering is split.
const SPLIT_FROM: usize = 200;

/// The selected rows, each with its name and its pretty rendering as a list
/// item, in order. Resolving and rendering a batch is CPU work of several
/// milliseconds, so a large batch is split across the machine's cores
/// (blocking threads); a page of 1,000 resolved hosts then takes about half
/// as long for its client.
async fn render_rows(
    rows: Vec<StoredObject>,
    request: &Arc<ListRequest>,
    resolver: &Arc<Resolver>,
) -> Result<Vec<(String, Vec<u8>)>, ApiError> {
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let parts = (rows.len() / SPLIT_FROM).clamp(1, threads);
    let per_part = rows.len().div_ceil(parts).max(1);
    let mut rows = rows.into_iter();
    let mut tasks = Vec::with_capacity(parts);
    for _ in 0..parts {
        let part: Vec<StoredObject> = rows.by_ref().take(per_part).collect();
        let request = Arc::clone(request);
        let resolver = Arc::clone(resolver);
        tasks.push(tokio::task::spawn_blocking(move || {
            part.iter()
                .filter_map(|object| {
                    let value = select(object, &request, &resolver)?;
                    Some((
                        object.draft.name.as_str().to_owned(),
                        to_pretty_nested(&value, 2),
                    ))
                })
                .collect::<Vec<_>>()
        }));
    }
    let mut out = Vec::new();
    for task in tasks {
        out.extend(
            task.await
                .map_err(|e| ApiError::Internal(format!("rendering a list failed: {e}")))?,
        );
    }
    Ok(out)
}

/// A page's body, pretty-printed as `to_pretty` would print
/// `{"next"?, "objects": [...], "total"?}` (keys in order).
fn page_body(items: &[(String, Vec<u8>)], next: Option<&str>, total: Option<u64>) -> Vec<u8> {
    let mut out = b"{\n".to_vec();
    if let Some(next) = next {
        out.extend_from_slice(format!("  \"next\": {},\n", Value::from(next)).as_bytes());
    }
    if items.is_empty() {
        out.extend_from_slice(b"  \"objects\": []");
    } else {
        out.extend_from_slice(b"  \"objects\": [");
        for (i, (_, item)) in items.iter().enumerate() {
            out.extend_from_slice(if i == 0 { b"\n" } else { b",\n" });
            out.extend_from_slice(item);
        }
        out.extend_from_slice(b"\n  ]");
    }
    if let Some(total) = total {
        out.extend_from_slice(format!(",\n  \"total\": {total}").as_bytes());
    }
    out.extend_from_slice(b"\n}\n");
    out
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

/// One page: `{"objects": [...], "next"?: cursor, "total"?: n}`, printed.
pub async fn page(store: &Store, request: &ListRequest, limit: u64) -> Result<Vec<u8>, ApiError> {
    let resolver = prepare(store, request).await?;
    let shared = Arc::new(request.clone());
    let (items, next) = walk(store, request, limit, item_name, |batch| {
        render_rows(batch, &shared, &resolver)
    })
    .await?;
    let total = if request.count {
        Some(count(store, request, &resolver).await?)
    } else {
        None
    };
    Ok(page_body(&items, next.as_deref(), total))
}

/// The keyset walk of a page: batches read in name order after the
/// request's cursor, each turned by `take` into the rows it shows, until one
/// row more than the page holds (which tells that a next page exists) or
/// the end. Answers the page's rows and the next page's cursor. When every
/// row is shown, one batch of `limit + 1` is all to read; otherwise it reads
/// on in batches of [`BATCH`].
async fn walk<T, Rows>(
    store: &Store,
    request: &ListRequest,
    limit: u64,
    name: fn(&T) -> &str,
    mut take: impl FnMut(Vec<StoredObject>) -> Rows,
) -> Result<(Vec<T>, Option<String>), ApiError>
where
    Rows: std::future::Future<Output = Result<Vec<T>, ApiError>>,
{
    let shows_every_row =
        request.filter.is_empty() && request.caller.restrictions.is_unrestricted();
    let size = if shows_every_row {
        limit + 1
    } else {
        BATCH.max(limit + 1)
    };
    let mut rows = Vec::new();
    let mut after = request.after.clone();
    loop {
        let batch = store
            .page(request.kind, request.object_type, after.as_deref(), size)
            .await?;
        let exhausted = (batch.len() as u64) < size;
        let last = batch.last().map(|o| o.draft.name.as_str().to_owned());
        rows.extend(take(batch).await?);
        if rows.len() as u64 > limit || exhausted {
            break;
        }
        match last {
            Some(last) => after = Some(last),
            None => break,
        }
    }
    let mut next = None;
    if rows.len() as u64 > limit {
        rows.truncate(limit as usize);
        next = rows.last().map(|row| encode_cursor(name(row)));
    }
    Ok((rows, next))
}

fn item_name(item: &(String, Vec<u8>)) -> &str {
    &item.0
}

fn object_name(object: &(StoredObject, Option<Resolved>)) -> &str {
    object.0.draft.name.as_str()
}

/// One page of a list as objects rather than printed: the same selection,
/// order and cursor as [`page`], each object with its resolved form when
/// the request's view is resolved. For the console.
#[derive(Debug)]
pub struct ObjectPage {
    pub objects: Vec<(StoredObject, Option<Resolved>)>,
    /// The cursor of the next page, when one follows.
    pub next: Option<String>,
    /// With `count`: how many objects match, whatever the page.
    pub total: Option<u64>,
}

/// [`page`], as objects.
pub async fn page_objects(
    store: &Store,
    request: &ListRequest,
    limit: u64,
) -> Result<ObjectPage, ApiError> {
    let resolver = prepare(store, request).await?;
    let (objects, next) = walk(store, request, limit, object_name, |batch| {
        let shown = batch
            .into_iter()
            .filter_map(|object| {
                let resolved = matching(&object, request, &resolver)?;
                Some((object, resolved))
            })
            .collect();
        std::future::ready(Ok(shown))
    })
    .await?;
    let total = if request.count {
        Some(count(store, request, &resolver).await?)
    } else {
        None
    };
    Ok(ObjectPage {
        objects,
        next,
        total,
    })
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
        let batch = store
            .page(request.kind, request.object_type, after.as_deref(), BATCH)
            .await?;
        total += batch
            .iter()
            .filter(|o| select(o, &counting, resolver).is_some())
            .count() as u64;
        after = next_after(&batch);
        if after.is_none() {
            return Ok(total);
        }
    }
}

/// The name to read the next batch after, when `batch` was a full one.
fn next_after(batch: &[StoredObject]) -> Option<String> {
    match batch.last() {
        Some(last) if batch.len() as u64 == BATCH => Some(last.draft.name.as_str().to_owned()),
        _ => None,
    }
}

enum Phase {
    Rows,
    End,
    Done,
}

struct StreamState {
    batches: mpsc::Receiver<Result<Vec<StoredObject>, DbErr>>,
    request: Arc<ListRequest>,
    resolver: Arc<Resolver>,
    first: bool,
    total: u64,
    phase: Phase,
}

/// Reads the list's rows `BATCH` at a time, one batch ahead of the
/// rendering (which then overlaps the next read); stops at the end, at an
/// error, or when the stream is dropped.
fn read_ahead(
    store: Arc<Store>,
    request: Arc<ListRequest>,
) -> mpsc::Receiver<Result<Vec<StoredObject>, DbErr>> {
    let (sender, receiver) = mpsc::channel(1);
    tokio::spawn(async move {
        let mut after = request.after.clone();
        loop {
            let batch = store
                .page(request.kind, request.object_type, after.as_deref(), BATCH)
                .await;
            after = batch.as_deref().ok().and_then(next_after);
            if sender.send(batch).await.is_err() || after.is_none() {
                return;
            }
        }
    });
    receiver
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
    let request = Arc::new(request);
    let state = StreamState {
        batches: read_ahead(store, Arc::clone(&request)),
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
                let batch = match st.batches.recv().await {
                    Some(Ok(batch)) => batch,
                    // The reader stops after the last batch.
                    None => Vec::new(),
                    Some(Err(e)) => {
                        tracing::error!(error = %e, "list stream failed");
                        st.phase = Phase::Done;
                        return Some((Err(std::io::Error::other("database error")), st));
                    }
                };
                if (batch.len() as u64) < BATCH {
                    st.phase = Phase::End;
                }
                let items = match render_rows(batch, &st.request, &st.resolver).await {
                    Ok(items) => items,
                    Err(e) => {
                        tracing::error!(error = %e, "list stream failed");
                        st.phase = Phase::Done;
                        return Some((Err(std::io::Error::other("rendering failed")), st));
                    }
                };
                let mut out = Vec::new();
                for (_, item) in items {
                    out.extend_from_slice(if st.first { b"\n" } else { b",\n" });
                    out.extend(item);
                    st.first = false;
                    st.total += 1;
                }
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
    use crate::http::json::to_pretty;
    use serde_json::json;

    #[test]
    fn a_page_body_prints_as_the_whole_document_would() {
        let objects = [
            json!({"object_name": "a", "vars": {"x": [1, "é\n"]}}),
            json!({"b": null}),
        ];
        let items: Vec<(String, Vec<u8>)> = objects
            .iter()
            .map(|o| (String::new(), to_pretty_nested(o, 2)))
            .collect();
        assert_eq!(
            page_body(&items, Some("bjpi"), Some(7)),
            to_pretty(&json!({"next": "bjpi", "objects": objects, "total": 7}))
        );
        assert_eq!(
            page_body(&items, None, None),
            to_pretty(&json!({"objects": objects}))
        );
        assert_eq!(
            page_body(&[], None, Some(0)),
            to_pretty(&json!({"objects": [], "total": 0}))
        );
    }

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
