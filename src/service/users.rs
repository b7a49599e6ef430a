//! API users: show, list, create, merge, replace, delete; the first admin.

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

use crate::api::{User, UserList};

use super::caller::Caller;
use crate::auth::Authenticator;
use crate::auth::password;
use crate::domain::activity::Entry;
use crate::domain::auth::{Permission, Role};
use crate::domain::user::{self as rules, UserDraft, UserWrite};
use crate::error::ApiError;
use crate::files::write_private;
use crate::store::users::{self as rows, StoredUser};
use crate::store::{Store, activity, now_millis};
use sea_orm::ConnectionTrait;

/// The result of a user write.
#[derive(Debug, Clone)]
pub enum UserWritten {
    Created(User),
    Changed(User),
    Unchanged,
}

/// A user as its activity entries show it: as the API does.
fn shown(user: &UserDraft) -> Value {
    // Strings and lists of them: it always serialises.
    serde_json::to_value(User::from(user)).unwrap_or_default()
}

fn no_such_user(name: &str) -> ApiError {
    ApiError::NotFound(format!("No such user \"{}\"", name.escape_debug()))
}

/// `GET /director/user?name=`.
pub async fn show(store: &Store, caller: &Caller, name: &str) -> Result<User, ApiError> {
    caller.require(Permission::Users)?;
    let user = rows::find(store.db(), name)
        .await?
        .ok_or_else(|| no_such_user(name))?;
    Ok(User::from(&user.draft))
}

/// `GET /director/users`.
pub async fn list(store: &Store, caller: &Caller) -> Result<UserList, ApiError> {
    caller.require(Permission::Users)?;
    let objects = rows::all(store.db())
        .await?
        .iter()
        .map(|u| User::from(&u.draft))
        .collect();
    Ok(UserList { objects })
}

async fn hash(password: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(password) = password.map(str::to_owned) else {
        return Ok(None);
    };
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map(Some)
        .map_err(ApiError::Internal)
}

async fn log(
    db: &impl ConnectionTrait,
    caller: &Caller,
    action: &str,
    before: Option<&UserDraft>,
    after: Option<(&UserDraft, bool)>,
) -> Result<(), ApiError> {
    let name = after
        .map(|(d, _)| d)
        .or(before)
        .map(|d| d.name.clone())
        .unwrap_or_default();
    let after = after.map(|(draft, password_changed)| {
        let mut value = shown(draft);
        if password_changed {
            value["password_changed"] = Value::Bool(true);
        }
        value
    });
    let entry = Entry {
        at: now_millis(),
        author: caller.author.clone(),
        action: action.to_owned(),
        object_type: "user".to_owned(),
        object_name: name,
        before: before.map(shown),
        after,
        request_id: caller.request_id.clone(),
        object_id: None,
        reverts: None,
    };
    activity::append(db, &entry).await?;
    Ok(())
}

/// Refuses a change that would leave no enabled user able to manage users.
async fn keep_an_administrator(db: &impl ConnectionTrait) -> Result<(), ApiError> {
    let any = rows::all(db)
        .await?
        .iter()
        .any(|u| !u.draft.disabled && u.draft.effective_permissions().contains(&Permission::Users));
    if any {
        Ok(())
    } else {
        Err(ApiError::Conflict(
            "This would leave no enabled user with the users permission".into(),
        ))
    }
}

async fn reload(auth: Option<&Authenticator>) -> Result<(), ApiError> {
    if let Some(auth) = auth {
        auth.reload().await?;
    }
    Ok(())
}

/// Creates a user (`POST` without a name, `PUT` of a new name).
pub async fn create(
    store: &Store,
    auth: Option<&Authenticator>,
    caller: &Caller,
    url_name: Option<&str>,
    body: &Map<String, Value>,
) -> Result<UserWritten, ApiError> {
    caller.require(Permission::Users)?;
    let write = rules::create(url_name, body)?;
    let hash = hash(write.password.as_deref()).await?.unwrap_or_default();
    let tx = store.begin_write().await?;
    if rows::find(&tx.tx, &write.draft.name).await?.is_some() {
        return Err(ApiError::Unprocessable(format!(
            "Trying to recreate user \"{}\"",
            write.draft.name
        )));
    }
    let stored = rows::insert(&tx.tx, &write.draft, &hash).await?;
    log(&tx.tx, caller, "create", None, Some((&stored.draft, true))).await?;
    tx.commit().await?;
    reload(auth).await?;
    Ok(UserWritten::Created(User::from(&stored.draft)))
}

/// `POST ?name=`: merges.
pub async fn merge(
    store: &Store,
    auth: Option<&Authenticator>,
    caller: &Caller,
    name: &str,
    body: &Map<String, Value>,
) -> Result<UserWritten, ApiError> {
    change(store, auth, caller, name, |current| {
        rules::merge(current, body)
    })
    .await
}

/// `PUT ?name=`: replaces, or creates a new user.
pub async fn replace(
    store: &Store,
    auth: Option<&Authenticator>,
    caller: &Caller,
    name: &str,
    body: &Map<String, Value>,
) -> Result<UserWritten, ApiError> {
    caller.require(Permission::Users)?;
    if rows::find(store.db(), name).await?.is_none() {
        return create(store, auth, caller, Some(name), body).await;
    }
    change(store, auth, caller, name, |current| {
        rules::replace(current, body)
    })
    .await
}

async fn change(
    store: &Store,
    auth: Option<&Authenticator>,
    caller: &Caller,
    name: &str,
    rule: impl FnOnce(&UserDraft) -> Result<UserWrite, crate::domain::RuleError>,
) -> Result<UserWritten, ApiError> {
    caller.require(Permission::Users)?;
    let current = rows::find(store.db(), name)
        .await?
        .ok_or_else(|| no_such_user(name))?;
    let write = rule(&current.draft)?;
    // A password that is already the current one changes nothing.
    let new_password = match write.password.as_deref() {
        Some(p) if !same_password(p, &current.password_hash).await => Some(p),
        _ => None,
    };
    if write.draft == current.draft && new_password.is_none() {
        return Ok(UserWritten::Unchanged);
    }
    let new_hash = hash(new_password).await?;
    let tx = store.begin_write().await?;
    let current = rows::find(&tx.tx, name)
        .await?
        .ok_or_else(|| no_such_user(name))?;
    if write.draft.name != current.draft.name
        && rows::find(&tx.tx, &write.draft.name).await?.is_some()
    {
        return Err(ApiError::Unprocessable(format!(
            "Cannot rename user \"{}\" to \"{}\": that name is taken",
            current.draft.name, write.draft.name
        )));
    }
    let stored = rows::update(&tx.tx, &current, &write.draft, new_hash.as_deref()).await?;
    keep_an_administrator(&tx.tx).await?;
    let action = if stored.draft.name != current.draft.name {
        "rename"
    } else {
        "modify"
    };
    log(
        &tx.tx,
        caller,
        action,
        Some(&current.draft),
        Some((&stored.draft, new_hash.is_some())),
    )
    .await?;
    tx.commit().await?;
    reload(auth).await?;
    Ok(UserWritten::Changed(User::from(&stored.draft)))
}

async fn same_password(password: &str, phc: &str) -> bool {
    let (password, phc) = (password.to_owned(), phc.to_owned());
    tokio::task::spawn_blocking(move || password::verify(&password, &phc))
        .await
        .unwrap_or(false)
}

/// `DELETE ?name=`: answers the deleted user.
pub async fn delete(
    store: &Store,
    auth: Option<&Authenticator>,
    caller: &Caller,
    name: &str,
) -> Result<User, ApiError> {
    caller.require(Permission::Users)?;
    let tx = store.begin_write().await?;
    let current = rows::find(&tx.tx, name)
        .await?
        .ok_or_else(|| no_such_user(name))?;
    rows::delete(&tx.tx, current.id).await?;
    keep_an_administrator(&tx.tx).await?;
    log(&tx.tx, caller, "delete", Some(&current.draft), None).await?;
    tx.commit().await?;
    reload(auth).await?;
    Ok(User::from(&current.draft))
}

/// Every user (for the CLI).
pub async fn all(store: &Store) -> Result<Vec<StoredUser>, ApiError> {
    Ok(rows::all(store.db()).await?)
}

/// On a database without users, creates `admin` with `password`, or with a
/// random password written to `admin.cred` (mode 0600) in `data_dir`.
/// Answers where the password was written, if it was.
pub async fn bootstrap_admin(
    store: &Store,
    password: Option<String>,
    data_dir: &Path,
) -> Result<Option<PathBuf>, String> {
    if rows::count(store.db()).await.map_err(|e| e.to_string())? > 0 {
        return Ok(None);
    }
    let (password, written) = match password.filter(|p| !p.is_empty()) {
        Some(p) => (p, None),
        None => {
            let p = password::random_secret(24);
            let path = data_dir.join("admin.cred");
            write_private(
                &path,
                &json!({"username": "admin", "password": p}).to_string(),
            )?;
            (p, Some(path))
        }
    };
    let body = json!({"object_name": "admin", "role": Role::Admin.as_str(), "password": password});
    let body = body.as_object().cloned().unwrap_or_default();
    match create(store, None, &Caller::system("cli"), None, &body).await {
        Ok(_) => Ok(written),
        Err(e) => Err(e.to_string()),
    }
}
