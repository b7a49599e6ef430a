//! One object: show, create, merge, replace, patch, delete, rename.

use std::sync::Arc;

use serde_json::{Map, Value};

use super::caller::{Caller, permissions_of};
use crate::domain::activity::Entry;
use crate::domain::object::{ViewOptions, render, render_owned};
use crate::domain::resolve::{Origins, Resolver};
use crate::domain::{Draft, Kind, ObjectName, ObjectType, integrity, write};
use crate::error::ApiError;
use crate::http::conditions::{Conditions, etag};
use crate::store::objects::Relation;
use crate::store::{ObjectTx, Store, StoredObject, now_millis};

/// What a client asked to see of an object.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub resolved: bool,
    pub options: ViewOptions,
}

/// An object's representation and its ETag.
#[derive(Debug, Clone)]
pub struct Shown {
    pub body: Value,
    pub etag: String,
}

/// The result of a write.
#[derive(Debug, Clone)]
pub enum Written {
    Created(Shown),
    Changed(Shown),
    /// Nothing changed: the current ETag.
    Unchanged(String),
}

/// A PATCH document.
#[derive(Debug)]
pub enum Patch {
    Merge(Value),
    Json(json_patch::Patch),
}

fn shown(object: &StoredObject) -> Shown {
    let d = &object.draft;
    Shown {
        body: render(
            d.kind,
            &d.name,
            d.object_type,
            &d.props,
            &ViewOptions::default(),
            false,
        ),
        etag: etag(&object.checksum),
    }
}

/// The resolver over a kind's current templates.
pub async fn resolver(store: &Store, kind: Kind) -> Result<Arc<Resolver>, ApiError> {
    Ok(store.resolver(kind).await?)
}

/// Renders one object in the requested view.
pub fn view_of(object: &StoredObject, view: &View, resolver: Option<&Resolver>) -> Shown {
    let d = &object.draft;
    match (view.resolved, resolver) {
        (true, Some(resolver)) => {
            let resolved = resolver.resolve(d);
            let version = resolver.checksum(&resolved, &object.checksum);
            Shown {
                body: render_owned(
                    d.kind,
                    &d.name,
                    d.object_type,
                    resolved.props,
                    &view.options,
                    true,
                ),
                etag: etag(&format!("r{version}")),
            }
        }
        _ => Shown {
            body: render(
                d.kind,
                &d.name,
                d.object_type,
                &d.props,
                &view.options,
                false,
            ),
            etag: etag(&object.checksum),
        },
    }
}

/// Object `name` of `kind` and its kind's template revision, for a
/// caller who may read the kind: 404 when it does not exist or the caller
/// may not see it.
async fn read_visible(
    store: &Store,
    caller: &Caller,
    kind: Kind,
    name: &str,
) -> Result<crate::store::reads::Found, ApiError> {
    caller.require(permissions_of(kind).0)?;
    store
        .find_object(kind, name)
        .await?
        .filter(|(o, _)| caller.sees_draft(&o.draft))
        .ok_or_else(|| ApiError::no_such_object(kind, name))
}

/// `GET ?name=`.
pub async fn show(
    store: &Store,
    caller: &Caller,
    kind: Kind,
    name: &str,
    view: &View,
) -> Result<Shown, ApiError> {
    let (object, revision) = read_visible(store, caller, kind, name).await?;
    let resolver = if view.resolved {
        Some(store.resolver_at(kind, revision).await?)
    } else {
        None
    };
    Ok(view_of(&object, view, resolver.as_deref()))
}

/// Where each resolved value of a visible object comes from (the console's
/// host page): the same checks as [`show`].
pub async fn origins(
    store: &Store,
    caller: &Caller,
    kind: Kind,
    name: &str,
) -> Result<Origins, ApiError> {
    let (object, revision) = read_visible(store, caller, kind, name).await?;
    let resolver = store.resolver_at(kind, revision).await?;
    Ok(resolver.origins(&object.draft))
}

/// A template's place among its kind's templates.
#[derive(Debug, Clone, Default)]
pub struct TemplateGraph {
    /// What it imports itself, in order.
    pub imports: Vec<String>,
    /// Its linearised chain, in the order values apply.
    pub ancestors: Vec<String>,
    /// The templates importing it directly, by name.
    pub imported_by: Vec<String>,
}

/// The import graph around template `name` of `kind`.
pub async fn template_graph(
    store: &Store,
    caller: &Caller,
    kind: Kind,
    name: &str,
) -> Result<TemplateGraph, ApiError> {
    caller.require(permissions_of(kind).0)?;
    let resolver = store.resolver(kind).await?;
    let template = resolver.template(name).ok_or_else(|| {
        ApiError::NotFound(format!("No {kind} template \"{}\"", name.escape_debug()))
    })?;
    let imports: Vec<String> = template.imports().map(str::to_owned).collect();
    let ancestors = resolver
        .ancestors(template.imports())
        .into_iter()
        .map(str::to_owned)
        .collect();
    let mut imported_by: Vec<String> = resolver
        .templates()
        .filter(|t| t.imports().any(|i| i == name))
        .map(|t| t.name.as_str().to_owned())
        .collect();
    imported_by.sort();
    Ok(TemplateGraph {
        imports,
        ancestors,
        imported_by,
    })
}

fn check_if_match(conditions: &Conditions, current: Option<&StoredObject>) -> Result<(), ApiError> {
    let Some(if_match) = &conditions.if_match else {
        return Ok(());
    };
    match current {
        Some(object) if if_match.matches(&etag(&object.checksum)) => Ok(()),
        Some(_) => Err(ApiError::PreconditionFailed(
            "If-Match does not match the current version".into(),
        )),
        None => Err(ApiError::PreconditionFailed(
            "If-Match given, but the object does not exist".into(),
        )),
    }
}

/// The object, or 404 when it does not exist or the caller may not see it.
async fn find_visible(
    tx: &ObjectTx<'_>,
    caller: &Caller,
    kind: Kind,
    name: &str,
) -> Result<StoredObject, ApiError> {
    tx.find(kind, name)
        .await?
        .filter(|o| caller.sees_draft(&o.draft))
        .ok_or_else(|| ApiError::no_such_object(kind, name))
}

pub(crate) fn representation(draft: &Draft) -> Value {
    render(
        draft.kind,
        &draft.name,
        draft.object_type,
        &draft.props,
        &ViewOptions::default(),
        false,
    )
}

/// How a change is logged: its action, and the entry it undoes when it is
/// a `revert`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Logged<'a> {
    pub action: &'a str,
    pub reverts: Option<i64>,
}

impl<'a> Logged<'a> {
    /// A change logged as `action`.
    pub(crate) fn as_action(action: &'a str) -> Self {
        Self {
            action,
            reverts: None,
        }
    }
}

/// Logs one change of object `object_id` in the write transaction.
async fn log(
    tx: &ObjectTx<'_>,
    caller: &Caller,
    logged: Logged<'_>,
    object_id: i64,
    before: Option<&Draft>,
    after: Option<&Draft>,
) -> Result<(), ApiError> {
    let Some(subject) = after.or(before) else {
        return Ok(());
    };
    let entry = Entry {
        at: now_millis(),
        author: caller.author.clone(),
        action: logged.action.to_owned(),
        object_type: subject.kind.as_str().to_owned(),
        object_name: subject.name.as_str().to_owned(),
        before: before.map(representation),
        after: after.map(representation),
        request_id: caller.request_id.clone(),
        object_id: Some(object_id),
        reverts: logged.reverts,
    };
    tx.append_activity(&entry).await?;
    Ok(())
}

fn recreate(kind: Kind, name: &ObjectName) -> ApiError {
    ApiError::Unprocessable(format!("Trying to recreate {kind} \"{name}\""))
}

/// `POST` or `PUT` without `?name=`: creates, or 422 when the name is taken.
pub async fn create(
    store: &Store,
    caller: &Caller,
    kind: Kind,
    body: &Map<String, Value>,
    conditions: &Conditions,
) -> Result<Written, ApiError> {
    caller.require(permissions_of(kind).1)?;
    let draft = write::create(kind, None, body)?;
    caller.may_write(&draft)?;
    let tx = store.begin_object_write().await?;
    if let Some(existing) = tx.find(kind, draft.name.as_str()).await? {
        check_if_match(conditions, Some(&existing))?;
        return Err(recreate(kind, &draft.name));
    }
    check_if_match(conditions, None)?;
    let stored = insert(&tx, caller, &draft).await?;
    tx.commit().await?;
    Ok(Written::Created(shown(&stored)))
}

/// `POST ?name=`: merges the body into the object.
pub async fn merge(
    store: &Store,
    caller: &Caller,
    kind: Kind,
    name: &str,
    body: &Map<String, Value>,
    conditions: &Conditions,
) -> Result<Written, ApiError> {
    change(store, caller, kind, name, conditions, |current| {
        write::merge(current, body).map_err(ApiError::from)
    })
    .await
}

/// `PUT ?name=`: replaces the object, or creates it when absent.
pub async fn replace(
    store: &Store,
    caller: &Caller,
    kind: Kind,
    name: &str,
    body: &Map<String, Value>,
    conditions: &Conditions,
) -> Result<Written, ApiError> {
    caller.require(permissions_of(kind).1)?;
    let tx = store.begin_object_write().await?;
    let current = tx.find(kind, name).await?;
    let hidden = current
        .as_ref()
        .is_some_and(|o| !caller.sees_draft(&o.draft));
    let current = current.filter(|o| caller.sees_draft(&o.draft));
    check_if_match(conditions, current.as_ref())?;
    let Some(current) = current else {
        let draft = write::create(kind, Some(name), body)?;
        // Creating is refused outside the restrictions, which also covers
        // the objects the caller cannot see.
        caller.may_write(&draft)?;
        if hidden {
            return Err(recreate(kind, &draft.name));
        }
        let stored = insert(&tx, caller, &draft).await?;
        tx.commit().await?;
        return Ok(Written::Created(shown(&stored)));
    };
    if conditions
        .if_none_match
        .as_ref()
        .is_some_and(|c| c.matches(&etag(&current.checksum)))
    {
        return Err(ApiError::PreconditionFailed(format!(
            "{kind} \"{name}\" already exists"
        )));
    }
    caller.may_write(&current.draft)?;
    let next = write::replace(&current.draft, body)?;
    finish_change(tx, caller, current, next).await
}

/// `PATCH ?name=`.
pub async fn patch(
    store: &Store,
    caller: &Caller,
    kind: Kind,
    name: &str,
    patch: &Patch,
    conditions: &Conditions,
) -> Result<Written, ApiError> {
    change(store, caller, kind, name, conditions, |current| {
        match patch {
            Patch::Merge(doc) => write::merge_patch(current, doc),
            Patch::Json(ops) => write::json_patch(current, ops),
        }
        .map_err(ApiError::from)
    })
    .await
}

async fn change(
    store: &Store,
    caller: &Caller,
    kind: Kind,
    name: &str,
    conditions: &Conditions,
    rule: impl FnOnce(&Draft) -> Result<Draft, ApiError>,
) -> Result<Written, ApiError> {
    caller.require(permissions_of(kind).1)?;
    let tx = store.begin_object_write().await?;
    let current = find_visible(&tx, caller, kind, name).await?;
    check_if_match(conditions, Some(&current))?;
    caller.may_write(&current.draft)?;
    let next = rule(&current.draft)?;
    finish_change(tx, caller, current, next).await
}

async fn finish_change(
    tx: ObjectTx<'_>,
    caller: &Caller,
    current: StoredObject,
    next: Draft,
) -> Result<Written, ApiError> {
    if next == current.draft {
        return Ok(Written::Unchanged(etag(&current.checksum)));
    }
    let stored = apply_change(&tx, caller, &current, &next, None).await?;
    tx.commit().await?;
    Ok(Written::Changed(shown(&stored)))
}

/// Writes `next` over `current` inside a write transaction: a rename
/// rewrites every dependant; references are checked and recorded, and each
/// changed object gets an activity entry (as `logged`, or `modify`/`rename`).
pub(crate) async fn apply_change(
    tx: &ObjectTx<'_>,
    caller: &Caller,
    current: &StoredObject,
    next: &Draft,
    logged: Option<Logged<'_>>,
) -> Result<StoredObject, ApiError> {
    let renamed = next.name != current.draft.name;
    if renamed {
        caller.may_write(next)?;
        if tx.find(next.kind, next.name.as_str()).await?.is_some() {
            return Err(ApiError::Unprocessable(format!(
                "Cannot rename {} \"{}\" to \"{}\": that name is taken",
                next.kind, current.draft.name, next.name
            )));
        }
        // Templates may import it and hosts may list it: they follow.
        for dependant in tx.dependants(current.id).await? {
            let followed = write::rename_reference(
                &dependant.draft,
                next.kind,
                &current.draft.name,
                &next.name,
            );
            tx.update(&dependant, &followed).await?;
            log(
                tx,
                caller,
                Logged::as_action("modify"),
                dependant.id,
                Some(&dependant.draft),
                Some(&followed),
            )
            .await?;
        }
    }
    // References that did not change were checked when they were written
    // (and what they name cannot be deleted or renamed away meanwhile).
    let references_changed = renamed || !same_references(&current.draft, next);
    if references_changed {
        check_references(tx, next, renamed.then_some(&current.draft.name)).await?;
    }
    let stored = tx.update(current, next).await?;
    if references_changed {
        store_refs(tx, &stored).await?;
    }
    let logged =
        logged.unwrap_or_else(|| Logged::as_action(if renamed { "rename" } else { "modify" }));
    log(
        tx,
        caller,
        logged,
        current.id,
        Some(&current.draft),
        Some(next),
    )
    .await?;
    Ok(stored)
}

/// `DELETE ?name=`: answers the deleted object; 409 while others reference it.
pub async fn delete(
    store: &Store,
    caller: &Caller,
    kind: Kind,
    name: &str,
    conditions: &Conditions,
) -> Result<Shown, ApiError> {
    caller.require(permissions_of(kind).1)?;
    let tx = store.begin_object_write().await?;
    let current = find_visible(&tx, caller, kind, name).await?;
    check_if_match(conditions, Some(&current))?;
    caller.may_write(&current.draft)?;
    delete_in(&tx, caller, &current, Logged::as_action("delete")).await?;
    tx.commit().await?;
    Ok(shown(&current))
}

/// Deletes `current` inside a write transaction (409 while others
/// reference it), retiring its key, with an activity entry as `logged`.
pub(crate) async fn delete_in(
    tx: &ObjectTx<'_>,
    caller: &Caller,
    current: &StoredObject,
    logged: Logged<'_>,
) -> Result<(), ApiError> {
    let (kind, name) = (current.draft.kind, &current.draft.name);
    let dependants = tx.dependants(current.id).await?;
    if !dependants.is_empty() {
        let what = if current.draft.object_type == ObjectType::Template {
            "imported"
        } else {
            "listed"
        };
        return Err(ApiError::Conflict(format!(
            "Cannot delete {} \"{}\": still {what} by {}",
            kind,
            name,
            name_list(caller, &dependants)
        )));
    }
    tx.retire_key(current.id).await?;
    tx.delete(current).await?;
    log(tx, caller, logged, current.id, Some(&current.draft), None).await
}

/// Names the dependants the caller may see, and counts the others.
fn name_list(caller: &Caller, objects: &[StoredObject]) -> String {
    const SHOWN: usize = 10;
    let visible: Vec<&StoredObject> = objects
        .iter()
        .filter(|o| caller.sees_draft(&o.draft))
        .collect();
    let hidden = objects.len() - visible.len();
    let mut names: Vec<String> = visible
        .iter()
        .take(SHOWN)
        .map(|o| {
            format!(
                "{} {} \"{}\"",
                o.draft.kind,
                o.draft.object_type.as_str(),
                o.draft.name
            )
        })
        .collect();
    if visible.len() > SHOWN {
        names.push(format!("{} more", visible.len() - SHOWN));
    }
    if hidden > 0 {
        names.push(format!("{hidden} hosts outside your restrictions"));
    }
    names.join(", ")
}

async fn insert(
    tx: &ObjectTx<'_>,
    caller: &Caller,
    draft: &Draft,
) -> Result<StoredObject, ApiError> {
    insert_as(tx, caller, draft, Logged::as_action("create"), None).await
}

/// Inserts a new object inside a write transaction (with the stable id
/// `id` when given, which no object may have), with its references
/// checked and recorded and an activity entry as `logged`.
pub(crate) async fn insert_as(
    tx: &ObjectTx<'_>,
    caller: &Caller,
    draft: &Draft,
    logged: Logged<'_>,
    id: Option<i64>,
) -> Result<StoredObject, ApiError> {
    check_references(tx, draft, None).await?;
    let stored = match id {
        Some(id) => tx.insert_with_id(id, draft).await?,
        None => tx.insert(draft).await?,
    };
    store_refs(tx, &stored).await?;
    log(tx, caller, logged, stored.id, None, Some(draft)).await?;
    Ok(stored)
}

/// Whether two versions of an object import the same templates and list
/// the same scripts.
fn same_references(a: &Draft, b: &Draft) -> bool {
    a.imports().eq(b.imports()) && a.props.names("scripts").eq(b.props.names("scripts"))
}

/// Imports name templates of the kind without loops; a host's scripts exist.
async fn check_references(
    tx: &ObjectTx<'_>,
    draft: &Draft,
    old_name: Option<&ObjectName>,
) -> Result<(), ApiError> {
    if draft.imports().next().is_some() {
        integrity::check_imports(draft, old_name, &*tx.resolver(draft.kind).await?)?;
    }
    if draft.kind == Kind::Host {
        let names: Vec<&str> = draft.props.names("scripts").collect();
        if !names.is_empty() {
            let existing = tx
                .ids_by_name(Kind::Script, ObjectType::Object, &names)
                .await?;
            integrity::check_scripts(draft, &existing.into_keys().collect())?;
        }
    }
    Ok(())
}

/// Records which objects `object` references, by id.
async fn store_refs(tx: &ObjectTx<'_>, object: &StoredObject) -> Result<(), ApiError> {
    let d = &object.draft;
    let imports: Vec<&str> = d.imports().collect();
    let mut refs: Vec<(Relation, i64)> = tx
        .ids_by_name(d.kind, ObjectType::Template, &imports)
        .await?
        .into_values()
        .map(|id| (Relation::Import, id))
        .collect();
    if d.kind == Kind::Host {
        let scripts: Vec<&str> = d.props.names("scripts").collect();
        refs.extend(
            tx.ids_by_name(Kind::Script, ObjectType::Object, &scripts)
                .await?
                .into_values()
                .map(|id| (Relation::Script, id)),
        );
    }
    tx.set_refs(object.id, &refs).await?;
    Ok(())
}
