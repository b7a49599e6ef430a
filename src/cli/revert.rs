//! `steward revert`: undoes logged object changes through a running
//! server's API (`POST /director/activity/revert`) and prints a table of
//! the changes. It shares `steward deploy`'s client, password and exit
//! codes (see [`super::deploy`]).

use std::process::ExitCode;

use serde_json::Value;

use super::deploy::{Api, Exit, Failure, exit_for_refusal, printable, read_password, server_base};
pub use crate::api::{Revert, RevertChange};

/// The options of `steward revert` (its help text is on the `Revert`
/// variant of the command enum in `main.rs`).
#[derive(Debug, Clone, clap::Args)]
pub struct RevertArgs {
    /// The server's URL, http or https, with its base path if it has one.
    #[arg(long, env = "STEWARD_SERVER", value_name = "URL")]
    pub server: String,
    /// The API user (needs the write permissions of the objects, and deploy
    /// for --to). The password comes from STEWARD_PASSWORD, a prompt on a
    /// terminal, or the first line of standard input.
    #[arg(long, env = "STEWARD_USER", default_value = "admin")]
    pub user: String,
    /// Undo this activity entry alone (while its object is as it left it).
    #[arg(
        long,
        value_name = "ENTRY",
        required_unless_present = "to",
        conflicts_with = "to"
    )]
    pub id: Option<i64>,
    /// Undo every object change after this activity entry (a deployment's
    /// activity_id), newest first, all or nothing.
    #[arg(long, value_name = "ENTRY", required_unless_present = "id")]
    pub to: Option<i64>,
    /// Show the changes it would make, and make none.
    #[arg(long)]
    pub dry_run: bool,
}

/// `POST` here reverts (`id=` or `to=`).
pub fn revert_url(base: &str, args: &RevertArgs) -> String {
    let target = match (args.id, args.to) {
        (Some(id), _) => format!("id={id}"),
        (None, Some(to)) => format!("to={to}"),
        // clap requires one of them.
        (None, None) => String::new(),
    };
    let dry_run = if args.dry_run { "&dry_run=1" } else { "" };
    format!("{base}/director/activity/revert?{target}{dry_run}")
}

/// The exit for a refusal: as `steward deploy`, and an entry that cannot
/// be undone (422) is a usage error too.
pub fn exit_for(status: u16) -> Exit {
    match status {
        422 => Exit::Usage,
        other => exit_for_refusal(other),
    }
}

/// The table `steward revert` prints: one line per change, then a line
/// saying what happened.
///
/// ```text
/// ENTRY  ACTION  TYPE    OBJECT
///    12  rename  script  load -> uptime
///     9  delete  host    web-2
/// 2 changes made; entries left alone: 10 (not object changes)
/// ```
pub fn table(answer: &Revert) -> String {
    let rows: Vec<(String, &str, &str, String)> = answer
        .changes
        .iter()
        .map(|c| {
            let object = match &c.new_name {
                Some(new) => format!("{} -> {}", printable(&c.object_name), printable(new)),
                None => printable(&c.object_name),
            };
            (
                c.reverts.to_string(),
                c.action.as_str(),
                c.object_type.as_str(),
                object,
            )
        })
        .collect();
    let entry = rows
        .iter()
        .map(|r| r.0.len())
        .max()
        .unwrap_or(0)
        .max("ENTRY".len());
    let mut lines = Vec::new();
    if !rows.is_empty() {
        lines.push(format!(
            "{:>entry$}  {:<6}  {:<6}  OBJECT",
            "ENTRY", "ACTION", "TYPE"
        ));
        for (id, action, kind, object) in rows {
            lines.push(format!("{id:>entry$}  {action:<6}  {kind:<6}  {object}"));
        }
    }
    let n = answer.changes.len();
    let changes = if n == 1 { "change" } else { "changes" };
    let mut last = if answer.dry_run {
        format!("dry run: {n} {changes} would be made")
    } else {
        format!("{n} {changes} made")
    };
    let list = |ids: &[i64]| {
        ids.iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !answer.unchanged.is_empty() {
        last.push_str(&format!("; already as before: {}", list(&answer.unchanged)));
    }
    if !answer.skipped.is_empty() {
        last.push_str(&format!(
            "; entries left alone: {} (not object changes)",
            list(&answer.skipped)
        ));
    }
    lines.push(last);
    lines.push(String::new());
    lines.join("\n")
}

/// Runs `steward revert`: the table on standard output, what went wrong on
/// standard error, and the exit code.
pub async fn run(args: &RevertArgs) -> ExitCode {
    match revert(args).await {
        Ok(answer) => {
            print!("{}", table(&answer));
            ExitCode::from(Exit::Done.code())
        }
        Err(failure) => {
            eprintln!("steward: {}", failure.message);
            ExitCode::from(failure.exit.code())
        }
    }
}

async fn revert(args: &RevertArgs) -> Result<Revert, Failure> {
    if args.id.or(args.to).is_some_and(|n| n < 1) {
        return Err(Failure::new(
            Exit::Usage,
            "--id and --to take an activity entry's id (1 or more)",
        ));
    }
    let base = server_base(&args.server).map_err(|e| Failure::new(Exit::Usage, e))?;
    let password = read_password(&args.user)?;
    let api = Api::new(base, args.user.clone(), password)?;
    let url = revert_url(&api.base, args);
    let (status, location, bytes) = api.send(api.post(&url)).await?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|e| {
            Failure::new(
                Exit::NotDone,
                format!("the server answered the revert with an unexpected body: {e}"),
            )
        });
    }
    let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    match (status.as_u16(), body["error"].as_str()) {
        // The server's own words say what is wrong with the entry or the
        // objects (a 404 without them is a URL that does not lead to Steward).
        (code @ (400 | 404 | 409 | 422), Some(reason)) => {
            Err(Failure::new(exit_for(code), printable(reason)))
        }
        _ => Err(api.refusal(status, &body, location)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(id: Option<i64>, to: Option<i64>, dry_run: bool) -> RevertArgs {
        RevertArgs {
            server: "http://127.0.0.1:7440".into(),
            user: "admin".into(),
            id,
            to,
            dry_run,
        }
    }

    #[test]
    fn the_url_names_the_target_and_the_dry_run() {
        let base = "http://127.0.0.1:7440/icingaweb2";
        assert_eq!(
            revert_url(base, &args(Some(4), None, false)),
            "http://127.0.0.1:7440/icingaweb2/director/activity/revert?id=4"
        );
        assert_eq!(
            revert_url(base, &args(None, Some(9), true)),
            "http://127.0.0.1:7440/icingaweb2/director/activity/revert?to=9&dry_run=1"
        );
    }

    #[test]
    fn the_table_lists_each_change_and_what_was_left_alone() {
        let change = |reverts, action: &str, name: &str, new_name: Option<&str>| RevertChange {
            reverts,
            action: action.into(),
            object_type: "host".into(),
            object_name: name.into(),
            new_name: new_name.map(Into::into),
            after: None,
        };
        let answer = Revert {
            dry_run: true,
            changes: vec![
                change(12, "rename", "b\u{1b}[2J", Some("a")),
                change(9, "delete", "web-2", None),
            ],
            unchanged: vec![11],
            skipped: vec![10],
            activity_id: None,
        };
        assert_eq!(
            table(&answer),
            "ENTRY  ACTION  TYPE    OBJECT\n\
             \x20  12  rename  host    b [2J -> a\n\
             \x20   9  delete  host    web-2\n\
             dry run: 2 changes would be made; already as before: 11; \
             entries left alone: 10 (not object changes)\n"
        );
        let none = Revert {
            dry_run: false,
            changes: vec![],
            unchanged: vec![],
            skipped: vec![],
            activity_id: Some(3),
        };
        assert_eq!(table(&none), "0 changes made\n");
    }

    #[test]
    fn an_entry_that_cannot_be_undone_is_a_usage_error_and_a_conflict_is_4() {
        assert_eq!(exit_for(422), Exit::Usage);
        assert_eq!(exit_for(404), Exit::Usage);
        assert_eq!(exit_for(409), Exit::Conflict);
        assert_eq!(exit_for(403), Exit::Refused);
    }
}
