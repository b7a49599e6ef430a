//! Undoing logged object changes (`POST /director/activity/revert`): one
//! entry, or every entry after a point, in one object write transaction
//! through the object write path, so references, renames and the activity
//! chain stay as any write keeps them.

use serde_json::{Map, Value};

use super::activity::visible;
use super::caller::{Caller, permissions_of};
use super::objects::{Logged, apply_change, delete_in, insert_as, representation};
use crate::api::{Revert, RevertChange};
use crate::domain::auth::Permission;
use crate::domain::revert::{Decision, Step, Undo, decide, name_of, plan, undo_of};
use crate::domain::{Kind, write};
use crate::error::ApiError;
use crate::store::activity as rows;
use crate::store::{ObjectTx, Store, StoredObject};

/// The most entries `to=` undoes in one request: the transaction holds the
/// write lock for all of them.
pub const MAX_ENTRIES: u64 = 1000;

/// What to undo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `id=N`: entry N alone, while its object is as N left it.
    Entry(i64),
    /// `to=N`: every entry after N, newest first.
    To(i64),
}

fn no_entry(id: i64) -> ApiError {
    ApiError::NotFound(format!("No activity entry {id}"))
}

/// Undoes `target`, or on a dry run finds what it would do and rolls back.
pub async fn revert(
    store: &Store,
    caller: &Caller,
    target: Target,
    dry_run: bool,
) -> Result<Revert, ApiError> {
    if matches!(target, Target::To(_)) {
        caller.require(Permission::Deploy)?;
    }
    let tx = store.begin_object_write().await?;
    let (steps, skipped) = match target {
        Target::Entry(id) => {
            let stored = rows::get(&tx, id)
                .await?
                .filter(|e| visible(caller, e))
                .ok_or_else(|| no_entry(id))?;
            let step = undo_of(id, &stored.entry).map_err(|e| ApiError::Unprocessable(e.0))?;
            (vec![step], Vec::new())
        }
        Target::To(n) => {
            rows::get(&tx, n).await?.ok_or_else(|| no_entry(n))?;
            let entries = rows::newest_after(&tx, n, MAX_ENTRIES + 1).await?;
            if entries.len() as u64 > MAX_ENTRIES {
                return Err(ApiError::Unprocessable(format!(
                    "More than {MAX_ENTRIES} activity entries follow entry {n}: \
                     revert to a later entry first"
                )));
            }
            // Host restrictions hide the changes of hosts outside them; what
            // is not an object change (users, keys) is skipped, whoever
            // reverts.
            let mut hosts = entries
                .iter()
                .filter(|e| undo_of(e.id, &e.entry).is_ok_and(|step| step.kind == Kind::Host));
            if !hosts.all(|e| visible(caller, e)) {
                return Err(ApiError::Forbidden(format!(
                    "The changes after entry {n} include hosts outside your host restrictions"
                )));
            }
            let plan = plan(entries.iter().map(|e| (e.id, &e.entry)));
            (plan.steps, plan.skipped)
        }
    };
    let strict = matches!(target, Target::Entry(_));
    let mut answer = Revert {
        dry_run,
        changes: Vec::new(),
        unchanged: Vec::new(),
        skipped,
        activity_id: None,
    };
    for step in &steps {
        caller.require(permissions_of(step.kind).1)?;
        let current = tx.find(step.kind, step.name()).await?;
        let shown = current.as_ref().map(|o| representation(&o.draft));
        match decide(step, shown.as_ref()) {
            Decision::Apply => {}
            Decision::AlreadyUndone if !strict => {
                answer.unchanged.push(step.entry);
                continue;
            }
            Decision::AlreadyUndone => {
                return Err(ApiError::Conflict(format!(
                    "Cannot revert entry {}: {} \"{}\" is already as before it",
                    step.entry,
                    step.kind,
                    step.name()
                )));
            }
            Decision::Conflict(what) => {
                let since = rows::newest_about(&tx, step.kind.as_str(), step.name(), step.entry)
                    .await?
                    .map(|id| format!(" (last changed by entry {id})"))
                    .unwrap_or_default();
                return Err(ApiError::Conflict(format!(
                    "Cannot revert entry {}: {what}{since}",
                    step.entry
                )));
            }
        }
        undo(&tx, caller, step, current)
            .await
            .map_err(|e| about(step, e))?;
        answer.changes.push(change_of(step));
    }
    if dry_run {
        // Dropped without a commit: nothing of it stays.
        return Ok(answer);
    }
    answer.activity_id = rows::newest_after(&tx, 0, 1).await?.first().map(|e| e.id);
    tx.commit().await?;
    Ok(answer)
}

/// Runs one step's undo through the object write path, logged as a
/// `revert` of its entry.
async fn undo(
    tx: &ObjectTx<'_>,
    caller: &Caller,
    step: &Step,
    current: Option<StoredObject>,
) -> Result<(), ApiError> {
    let logged = Logged {
        action: "revert",
        reverts: Some(step.entry),
    };
    match (&step.undo, current) {
        (Undo::Delete { .. }, Some(current)) => {
            caller.may_write(&current.draft)?;
            delete_in(tx, caller, &current, logged).await
        }
        (Undo::Recreate { object, object_id }, None) => {
            let draft = write::create(step.kind, None, as_map(object)?)?;
            caller.may_write(&draft)?;
            // The object comes back with its stable id (agents are bound to
            // it) unless the entry predates ids or another object has it.
            let id = match object_id {
                Some(id) if tx.find_by_id(*id).await?.is_none() => Some(*id),
                _ => None,
            };
            if let (Some(id), Kind::Host) = (id, step.kind) {
                // Its retired key stays retired: see docs/API.md.
                tx.forget_retired_keys(id).await?;
            }
            insert_as(tx, caller, &draft, logged, id).await.map(drop)
        }
        (Undo::Restore { target, .. }, Some(current)) => {
            caller.may_write(&current.draft)?;
            let next = write::replace(&current.draft, as_map(target)?)?;
            caller.may_write(&next)?;
            apply_change(tx, caller, &current, &next, Some(logged))
                .await
                .map(drop)
        }
        // `decide` answered Apply only with an object for these (and
        // without one for a recreation).
        _ => Err(ApiError::Internal(format!(
            "revert of entry {} found no object to apply to",
            step.entry
        ))),
    }
}

/// A logged representation as a write body.
fn as_map(object: &Value) -> Result<&Map<String, Value>, ApiError> {
    object
        .as_object()
        .ok_or_else(|| ApiError::Unprocessable("The logged object is not a JSON object".into()))
}

/// An error of one step, naming the entry and the object.
fn about(step: &Step, error: ApiError) -> ApiError {
    let prefix = format!(
        "Cannot revert entry {} ({} \"{}\")",
        step.entry,
        step.kind,
        step.name()
    );
    match error {
        ApiError::Conflict(m) => ApiError::Conflict(format!("{prefix}: {m}")),
        ApiError::Unprocessable(m) => ApiError::Unprocessable(format!("{prefix}: {m}")),
        ApiError::Forbidden(m) => ApiError::Forbidden(format!("{prefix}: {m}")),
        other => other,
    }
}

fn change_of(step: &Step) -> RevertChange {
    let target = step.target();
    let new_name = target
        .map(name_of)
        .filter(|n| *n != step.name())
        .map(str::to_owned);
    RevertChange {
        reverts: step.entry,
        action: step.action().to_owned(),
        object_type: step.kind.as_str().to_owned(),
        object_name: step.name().to_owned(),
        new_name,
        after: target.cloned(),
    }
}
