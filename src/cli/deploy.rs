//! `steward deploy`: starts a deployment through a running server's API
//! (`POST /director/config/deploy`), and with `--wait` follows it
//! (`GET /director/config/deployment?id=N`) with a progress bar on a
//! terminal's standard error, then prints a summary table.
//!
//! The pure parts (URLs, the table, exit codes) are functions of their
//! input, tested below; [`run`] does the talking.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION};
use reqwest::{StatusCode, Url};
use serde_json::Value;

pub use crate::api::{
    BUSY, DeployAnswer, Deployment, DeploymentHost, DryRun, DryRunHost, ScriptChange,
    ScriptDefinition, UNCHANGED,
};
use crate::domain::deployment::Action;
pub use crate::domain::deployment::Counts;
use crate::domain::deployment::{DeploymentStatus, HostResult};

/// How often `--wait` asks for the deployment.
pub const POLL_EVERY: Duration = Duration::from_millis(200);
/// How long connecting to the server may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one request may take, answer included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The options of `steward deploy` (its help text is on the `Deploy`
/// variant of the command enum in `main.rs`).
#[derive(Debug, Clone, clap::Args)]
pub struct DeployArgs {
    /// The server's URL, http or https, with its base path if it has one
    /// (e.g. https://steward.example/icingaweb2).
    #[arg(long, env = "STEWARD_SERVER", value_name = "URL")]
    pub server: String,
    /// The API user (needs the deploy permission). The password comes from
    /// STEWARD_PASSWORD, a prompt on a terminal, or the first line of
    /// standard input.
    #[arg(long, env = "STEWARD_USER", default_value = "admin")]
    pub user: String,
    /// Push to every host, also to those that already hold their allowlist.
    #[arg(long)]
    pub force: bool,
    /// Show what the deploy would do (a table of each host's changes), and
    /// do nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Deploy only to the hosts matching the hosts list's filters, joined
    /// with & (e.g. 'vars.env=canary&has_agent=1'; q, has_agent, disabled,
    /// imports, vars.KEY).
    #[arg(long, value_name = "FILTER")]
    pub hosts: Option<String>,
    /// Follow the deployment to its end, then print a summary table.
    #[arg(long)]
    pub wait: bool,
    /// How long --wait waits for the end.
    #[arg(long, value_name = "SECONDS", default_value_t = 600)]
    pub timeout: u64,
    /// A staged deploy: cumulative stages, each a number of hosts or a
    /// percentage of those that get a new allowlist (e.g. 1,10%,100%).
    #[arg(long, value_name = "LIST", conflicts_with = "resume")]
    pub stages: Option<String>,
    /// With --stages: failed or unreachable hosts tolerated (N or N%);
    /// more halt the deployment after a stage. Default 0.
    #[arg(long, value_name = "N", requires = "stages")]
    pub max_failed: Option<String>,
    /// With --stages: seconds between a stage's end and the next one's start.
    #[arg(long, value_name = "SECONDS", requires = "stages")]
    pub stage_wait: Option<u32>,
    /// Resume halted deployment ID with its next stage instead of deploying.
    #[arg(long, value_name = "ID", conflicts_with = "force")]
    pub resume: Option<i64>,
}

/// A staged deploy's parameters, passed on to the server as given (it
/// checks them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Staging {
    pub stages: Option<String>,
    pub max_failed: Option<String>,
    pub stage_wait: Option<u32>,
}

impl DeployArgs {
    /// The staged deploy's parameters (all absent without --stages).
    pub fn staging(&self) -> Staging {
        Staging {
            stages: self.stages.clone(),
            max_failed: self.max_failed.clone(),
            stage_wait: self.stage_wait,
        }
    }
}

/// How `steward deploy` exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: every host deployed or skipped, nothing to deploy, or (without
    /// `--wait`) the deployment started.
    Done,
    /// 1: the deployment ended otherwise (partial, failed, cancelled), the
    /// wait timed out, or the server answered something unexpected.
    NotDone,
    /// 2: usage or configuration: the URL, the password, a server that is
    /// not Steward's API there.
    Usage,
    /// 3: the server refused the credentials or the permission.
    Refused,
    /// 4: another deployment is running (or, with `--resume`, the
    /// deployment cannot be resumed).
    Conflict,
    /// 5: a staged deployment halted: more hosts failed than allowed; the
    /// later stages got nothing (`--resume ID` goes on).
    Halted,
    /// 6: the server is not reachable.
    Unreachable,
}

impl Exit {
    /// The process exit code.
    pub fn code(self) -> u8 {
        match self {
            Exit::Done => 0,
            Exit::NotDone => 1,
            Exit::Usage => 2,
            Exit::Refused => 3,
            Exit::Conflict => 4,
            Exit::Halted => 5,
            Exit::Unreachable => 6,
        }
    }
}

/// The exit for a deployment's final status: 0 only when every host was
/// deployed or skipped, 5 when it halted.
pub fn exit_for_status(status: &str) -> Exit {
    if status == UNCHANGED || status == DeploymentStatus::Succeeded.as_str() {
        Exit::Done
    } else if status == DeploymentStatus::Halted.as_str() {
        Exit::Halted
    } else {
        Exit::NotDone
    }
}

/// Whether a status the server named when it started a deployment is
/// still running.
fn is_running(status: &str) -> bool {
    status == DeploymentStatus::Running.as_str()
}

/// The exit for an HTTP status the server answered instead of what was
/// asked for.
pub fn exit_for_refusal(status: u16) -> Exit {
    match status {
        // 429: too many failed logins from here.
        401 | 403 | 429 => Exit::Refused,
        409 => Exit::Conflict,
        // No such route or parameter: the URL does not lead to the API.
        400 | 404 | 405 => Exit::Usage,
        // A proxy in front of a server that is down.
        502..=504 => Exit::Unreachable,
        _ => Exit::NotDone,
    }
}

/// Why `steward deploy` stops early: the message for standard error and
/// how to exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
}

impl Failure {
    /// A failure that exits with `exit`.
    pub(crate) fn new(exit: Exit, message: impl Into<String>) -> Self {
        Failure {
            exit,
            message: message.into(),
        }
    }
}

/// Checks `--server` and makes it a base URL the API paths are appended
/// to: `http` or `https`, a host, an optional base path, no query, fragment
/// or credentials; trailing slashes dropped.
pub fn server_base(server: &str) -> Result<String, String> {
    let url =
        Url::parse(server.trim()).map_err(|e| format!("--server {server:?} is not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "--server {server:?}: the scheme must be http or https"
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(format!("--server {server:?} has no host"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "--server {server:?}: give the base URL without a query or fragment"
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        // Credentials in a URL end up in shell histories and error messages.
        return Err(
            "--server must not carry credentials: use --user and STEWARD_PASSWORD".to_owned(),
        );
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

/// The host filters `--hosts` may name.
const FILTERS: [&str; 4] = ["q", "has_agent", "disabled", "imports"];

/// Parses `--hosts`: `KEY=VALUE` pairs joined with `&`, each a filter of
/// the hosts list, values percent-decoded.
pub fn host_filter(text: &str) -> Result<Vec<(String, String)>, String> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(text.as_bytes())
        .into_owned()
        .collect();
    if pairs.is_empty() {
        return Err("--hosts needs a filter such as 'vars.env=canary'".into());
    }
    for (key, _) in &pairs {
        let known = FILTERS.contains(&key.as_str())
            || key.strip_prefix("vars.").is_some_and(|k| !k.is_empty());
        if !known {
            return Err(format!(
                "--hosts: {key:?} is not a host filter: use q, has_agent, disabled, imports or vars.KEY"
            ));
        }
    }
    Ok(pairs)
}

/// What `POST /director/config/deploy` is asked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeployQuery {
    pub force: bool,
    pub dry_run: bool,
    /// A staged deploy's parameters.
    pub staging: Staging,
    /// Host filters (from [`host_filter`]).
    pub hosts: Vec<(String, String)>,
}

/// `POST` here starts a deployment (staged when `staging` says so), or
/// with `dry_run` tells what it would do.
pub fn deploy_url(base: &str, query: &DeployQuery) -> String {
    let mut params = form_urlencoded::Serializer::new(String::new());
    if query.force {
        params.append_pair("force", "1");
    }
    if query.dry_run {
        params.append_pair("dry_run", "1");
    }
    let staging = &query.staging;
    if let Some(stages) = &staging.stages {
        params.append_pair("stages", stages);
    }
    if let Some(max_failed) = &staging.max_failed {
        params.append_pair("max_failed", max_failed);
    }
    if let Some(wait) = staging.stage_wait {
        params.append_pair("stage_wait", &wait.to_string());
    }
    params.extend_pairs(&query.hosts);
    let params = params.finish();
    if params.is_empty() {
        format!("{base}/director/config/deploy")
    } else {
        format!("{base}/director/config/deploy?{params}")
    }
}

/// `POST` here resumes halted deployment `id`.
pub fn resume_url(base: &str, id: i64) -> String {
    format!("{base}/director/config/deployment?id={id}&resume=1")
}

/// `GET` here shows deployment `id`.
pub fn deployment_url(base: &str, id: i64) -> String {
    format!("{base}/director/config/deployment?id={id}")
}

/// What `POST /director/config/deploy` answered with `200` or `202`.
pub type Started = DeployAnswer;

/// The line `steward deploy` prints when it does not wait (and for
/// `unchanged`).
pub fn started_line(started: &Started) -> String {
    let id = started.deployment_id.map_or_else(
        || "no deployment yet".to_owned(),
        |id| format!("deployment {id}"),
    );
    match (started.status.as_str(), started.hosts) {
        (UNCHANGED, _) => format!("{id}: unchanged, nothing to deploy"),
        (status, Some(1)) => format!("{id}: {status}, 1 host"),
        (status, Some(n)) => format!("{id}: {status}, {n} hosts"),
        (status, None) => format!("{id}: {status}"),
    }
}

/// Hosts done (no longer `pending`) and hosts in all: from the host list,
/// or from the counts when the list is empty.
pub fn progress(deployment: &Deployment) -> (u64, u64) {
    if deployment.hosts.is_empty() {
        let total = deployment.counts.total();
        return (total - deployment.counts.pending.min(total), total);
    }
    let done = deployment
        .hosts
        .iter()
        .filter(|h| h.result != HostResult::Pending)
        .count();
    (done as u64, deployment.hosts.len() as u64)
}

/// The progress bar's words: the stage of a staged deployment, and the
/// hosts missed so far.
pub fn progress_message(deployment: &Deployment) -> String {
    let mut words = Vec::new();
    if let Some(staging) = &deployment.staging {
        let waiting = if staging.next_stage_at.is_some() {
            ", waiting for the next"
        } else {
            ""
        };
        words.push(format!(
            "stage {}/{}{waiting}",
            staging.stage, staging.stage_count
        ));
    }
    let missed = deployment.counts.failed + deployment.counts.unreachable;
    if missed > 0 {
        words.push(format!("{missed} failed/unreachable"));
    }
    words.join(", ")
}

/// Control characters (a terminal's escape sequences among them) become
/// spaces: hosts and errors come from the server, errors from its agents.
pub(crate) fn printable(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// The summary `--wait` prints at the end: the hosts per result, the
/// deployment's status, and each failed or unreachable host with its error.
///
/// ```text
/// RESULT       HOSTS
/// deployed         1
/// skipped          0
/// failed           0
/// unreachable      1
/// pending          0
/// deployment 3: partial
///
/// HOST            RESULT       ERROR
/// node-1.example  unreachable  connection failed
/// ```
pub fn summary(deployment: &Deployment) -> String {
    let c = &deployment.counts;
    let mut lines = vec![format!("{:<12} {:>5}", "RESULT", "HOSTS")];
    for result in HostResult::SETTLED.iter().chain([&HostResult::Pending]) {
        let n = c.get(*result);
        lines.push(format!("{:<12} {n:>5}", result.as_str()));
    }
    lines.push(format!(
        "deployment {}: {}",
        deployment.id, deployment.status
    ));
    if let Some(staging) = &deployment.staging {
        lines.push(format!(
            "stage {} of {} ({})",
            staging.stage,
            staging.stage_count,
            printable(&staging.stages)
        ));
        if let Some(reason) = &staging.halted_reason {
            lines.push(format!(
                "halted: {}; resume with --resume {}",
                printable(reason),
                deployment.id
            ));
        }
    }
    let missed: Vec<&DeploymentHost> = deployment
        .hosts
        .iter()
        .filter(|h| h.result.is_trouble())
        .collect();
    if !missed.is_empty() {
        let rows: Vec<(String, &str, String)> = missed
            .iter()
            .map(|h| {
                let error = h.error.as_deref().filter(|e| !e.is_empty()).unwrap_or("-");
                (printable(&h.host), h.result.as_str(), printable(error))
            })
            .collect();
        let width = rows
            .iter()
            .map(|(host, ..)| host.chars().count())
            .max()
            .unwrap_or(0)
            .max("HOST".len());
        lines.push(String::new());
        lines.push(format!("{:<width$}  {:<11}  ERROR", "HOST", "RESULT"));
        for (host, result, error) in rows {
            lines.push(format!("{host:<width$}  {result:<11}  {error}"));
        }
    }
    lines.push(String::new());
    lines.join("\n")
}

/// One script as a dry run's table shows it: its command and arguments.
fn script_line(script: &ScriptDefinition) -> String {
    let command = script.command.as_deref().unwrap_or("(no longer on record)");
    match &script.arguments {
        Some(arguments) if !arguments.is_empty() => {
            format!("{}: {command} {}", script.name, arguments.join(" "))
        }
        Some(_) => format!("{}: {command} (no arguments)", script.name),
        None => format!("{}: {command}", script.name),
    }
}

/// What differs between a held script and the one that would replace it.
fn change_line(change: &ScriptChange) -> String {
    let arguments = |a: &Option<Vec<String>>| match a {
        None => "any".to_owned(),
        Some(a) => format!("[{}]", a.join(" ")),
    };
    let timeout = |t: Option<i64>| t.map_or_else(|| "none".to_owned(), |t| format!("{t}s"));
    let (old, new) = (&change.old, &change.new);
    let mut parts = Vec::new();
    if old.command != new.command {
        parts.push(format!(
            "command {} -> {}",
            old.command.as_deref().unwrap_or("?"),
            new.command.as_deref().unwrap_or("?")
        ));
    }
    if old.arguments != new.arguments {
        parts.push(format!(
            "arguments {} -> {}",
            arguments(&old.arguments),
            arguments(&new.arguments)
        ));
    }
    if old.timeout != new.timeout {
        parts.push(format!(
            "timeout {} -> {}",
            timeout(old.timeout),
            timeout(new.timeout)
        ));
    }
    format!("{}: {}", change.name, parts.join(", "))
}

/// The table `--dry-run` prints: each host that would get something, with
/// its scripts added (`+`), removed (`-`) and changed (`~`), then the
/// counts. Hosts that would be skipped are only counted.
///
/// ```text
/// HOST            DELIVERY  ACTION  SCRIPTS
/// node-0.example  push      update  + df: /usr/bin/df -h
///                                   ~ uptime: timeout none -> 30s
/// node-3.example  push      revoke  - uptime: /usr/bin/uptime
/// 3 to update, 1 to revoke, 0 to skip: would-deploy (config 37a7e51e9486)
/// ```
pub fn dry_run_table(dry: &DryRun) -> String {
    let shown: Vec<&DryRunHost> = dry
        .hosts
        .iter()
        .filter(|h| h.action != Action::Skip)
        .collect();
    let width = shown
        .iter()
        .map(|h| printable(&h.host).chars().count())
        .max()
        .unwrap_or(0)
        .max("HOST".len());
    let staged = shown.iter().any(|h| h.stage.is_some());
    let mut lines = Vec::new();
    if !shown.is_empty() {
        let stage = if staged { "STAGE  " } else { "" };
        lines.push(format!(
            "{:<width$}  DELIVERY  ACTION  {stage}SCRIPTS",
            "HOST"
        ));
    }
    for host in shown {
        let mut scripts: Vec<String> = host
            .added
            .iter()
            .map(|s| format!("+ {}", script_line(s)))
            .collect();
        scripts.extend(host.removed.iter().map(|s| format!("- {}", script_line(s))));
        match &host.changed {
            Some(changed) => {
                scripts.extend(changed.iter().map(|c| format!("~ {}", change_line(c))))
            }
            None => scripts.push("? what the agent holds is no longer on record".into()),
        }
        if scripts.is_empty() {
            scripts.push("(the same scripts, sent again)".into());
        }
        let stage = match host.stage {
            Some(stage) if staged => format!("{stage:<5}  "),
            _ if staged => "-      ".to_owned(),
            _ => String::new(),
        };
        let lead = format!(
            "{:<width$}  {:<8}  {:<6}  {stage}",
            printable(&host.host),
            host.delivery.as_str(),
            host.action.as_str()
        );
        let indent = " ".repeat(lead.chars().count());
        for (i, script) in scripts.iter().enumerate() {
            let lead = if i == 0 { &lead } else { &indent };
            lines.push(format!("{lead}{}", printable(script)));
        }
    }
    let c = &dry.counts;
    let scope = dry
        .scope
        .as_deref()
        .map(|s| format!(", hosts {}", printable(s)))
        .unwrap_or_default();
    lines.push(format!(
        "{} to update, {} to revoke, {} to skip: {} (config {}{scope})",
        c.update,
        c.revoke,
        c.skip,
        dry.status,
        dry.checksum.get(..12).unwrap_or(&dry.checksum)
    ));
    lines.push(String::new());
    lines.join("\n")
}

/// Runs `steward deploy`: prints what became of the deployment on standard
/// output, what went wrong on standard error, and answers the exit code.
pub async fn run(args: &DeployArgs) -> ExitCode {
    match deploy(args).await {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(failure) => {
            eprintln!("steward: {}", failure.message);
            ExitCode::from(failure.exit.code())
        }
    }
}

/// Starts (or joins) a deployment and, with `--wait`, follows it to its
/// end: how to exit when it got that far.
async fn deploy(args: &DeployArgs) -> Result<Exit, Failure> {
    let base = server_base(&args.server).map_err(|e| Failure::new(Exit::Usage, e))?;
    let password = read_password(&args.user)?;
    let api = Api::new(base, args.user.clone(), password)?;
    let query = DeployQuery {
        force: args.force,
        dry_run: args.dry_run,
        staging: args.staging(),
        hosts: match &args.hosts {
            Some(text) => host_filter(text).map_err(|e| Failure::new(Exit::Usage, e))?,
            None => Vec::new(),
        },
    };
    if args.dry_run {
        let dry: DryRun = api.start(&query, "dry run").await?;
        print!("{}", dry_run_table(&dry));
        return Ok(if dry.status == BUSY {
            Exit::Conflict
        } else {
            Exit::Done
        });
    }
    let started: Started = match args.resume {
        Some(id) => api.resume(id).await?,
        None => api.start(&query, "deploy").await?,
    };
    let id = match (started.status.as_str(), started.deployment_id) {
        (status, Some(id)) if args.wait && is_running(status) => id,
        (status, _) if is_running(status) || status == UNCHANGED => {
            println!("{}", started_line(&started));
            return Ok(Exit::Done);
        }
        // Already final (as a server asked to wait would answer): nothing
        // to follow.
        (status, _) => {
            println!("{}", started_line(&started));
            return Ok(exit_for_status(status));
        }
    };
    let timeout = Duration::from_secs(args.timeout);
    let (deployment, finished) = follow(&api, id, started.hosts.unwrap_or(0), timeout).await?;
    if let Some(deployment) = &deployment {
        print!("{}", summary(deployment));
    }
    match deployment {
        Some(deployment) if finished => Ok(exit_for_status(deployment.status.as_str())),
        _ => Err(Failure::new(
            Exit::NotDone,
            format!(
                "deployment {id} did not end within {} s; it goes on on the server \
                 (GET {})",
                args.timeout,
                deployment_url(&api.base, id)
            ),
        )),
    }
}

/// The password: `STEWARD_PASSWORD`, else a prompt when standard input is
/// a terminal, else the first line of standard input.
pub(crate) fn read_password(user: &str) -> Result<String, Failure> {
    match std::env::var("STEWARD_PASSWORD") {
        Ok(password) if !password.is_empty() => return Ok(password),
        Ok(_) | Err(std::env::VarError::NotPresent) => {}
        Err(std::env::VarError::NotUnicode(_)) => {
            return Err(Failure::new(
                Exit::Usage,
                "STEWARD_PASSWORD is not valid UTF-8",
            ));
        }
    }
    let password = if std::io::stdin().is_terminal() {
        rpassword::prompt_password(format!("Password for {user}: "))
            .map_err(|e| Failure::new(Exit::Usage, format!("cannot read the password: {e}")))?
    } else {
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line).map_err(|e| {
            Failure::new(
                Exit::Usage,
                format!("cannot read the password from standard input: {e}"),
            )
        })?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    };
    if password.is_empty() {
        return Err(Failure::new(
            Exit::Usage,
            "no password: set STEWARD_PASSWORD or give it on standard input",
        ));
    }
    Ok(password)
}

/// The server's API as one user sees it.
pub(crate) struct Api {
    http: reqwest::Client,
    pub(crate) base: String,
    user: String,
    password: String,
}

impl Api {
    /// A client of the API at `base` as `user`.
    pub(crate) fn new(base: String, user: String, password: String) -> Result<Self, Failure> {
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            // Credentials go to the URL given and nowhere else.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("steward/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::new(Exit::Usage, format!("cannot set up HTTP: {e}")))?;
        Ok(Api {
            http,
            base,
            user,
            password,
        })
    }

    /// A `POST` to `url` (without a body).
    pub(crate) fn post(&self, url: &str) -> reqwest::RequestBuilder {
        self.http.post(url)
    }

    /// `POST /director/config/deploy`: started, joined or unchanged (or a
    /// dry run's answer); a running deployment with another checksum is a
    /// [`Exit::Conflict`].
    async fn start<T: serde::de::DeserializeOwned>(
        &self,
        query: &DeployQuery,
        what: &str,
    ) -> Result<T, Failure> {
        let request = self
            .http
            .post(deploy_url(&self.base, query))
            .header(CONTENT_TYPE, "application/json")
            .body("[]");
        let body = self.call(request).await?;
        serde_json::from_value(body).map_err(|e| {
            Failure::new(
                Exit::NotDone,
                format!("the server answered the {what} with an unexpected body: {e}"),
            )
        })
    }

    /// `POST /director/config/deployment?id=N&resume=1`: the resumed
    /// deployment, as a start would answer it.
    async fn resume(&self, id: i64) -> Result<Started, Failure> {
        let request = self
            .http
            .post(resume_url(&self.base, id))
            .header(CONTENT_TYPE, "application/json")
            .body("[]");
        let body = self.call(request).await?;
        let resumed: Deployment = serde_json::from_value(body).map_err(|e| {
            Failure::new(
                Exit::NotDone,
                format!("the server answered the resume with an unexpected body: {e}"),
            )
        })?;
        Ok(Started {
            checksum: resumed.checksum,
            status: resumed.status.as_str().to_owned(),
            deployment_id: Some(resumed.id),
            hosts: Some(resumed.counts.total()),
        })
    }

    /// `GET /director/config/deployment?id=N`.
    async fn deployment(&self, id: i64) -> Result<Deployment, Failure> {
        let body = self
            .call(self.http.get(deployment_url(&self.base, id)))
            .await?;
        serde_json::from_value(body).map_err(|e| {
            Failure::new(
                Exit::NotDone,
                format!("the server answered deployment {id} with an unexpected body: {e}"),
            )
        })
    }

    /// Sends `request` with the credentials: the JSON body of a 2xx, or a
    /// [`Failure`] saying what else came.
    pub(crate) async fn call(&self, request: reqwest::RequestBuilder) -> Result<Value, Failure> {
        let (status, location, bytes) = self.send(request).await?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| {
                Failure::new(
                    Exit::NotDone,
                    format!("the server answered {status} without JSON: {e}"),
                )
            });
        }
        // A refusal's meaning is in its status; its body may be anything.
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Err(self.refusal(status, &body, location))
    }

    /// Sends `request` with the credentials: the status, the `Location`
    /// (printable) and the body of whatever answer came.
    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Option<String>, bytes::Bytes), Failure> {
        let response = request
            .basic_auth(&self.user, Some(&self.password))
            .header(ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| unreachable(&self.base, &e))?;
        let status = response.status();
        let location = response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(printable);
        let bytes = response
            .bytes()
            .await
            .map_err(|e| unreachable(&self.base, &e))?;
        Ok((status, location, bytes))
    }

    /// What a non-2xx answer means, in words and as an exit.
    pub(crate) fn refusal(
        &self,
        status: StatusCode,
        body: &Value,
        location: Option<String>,
    ) -> Failure {
        let reason = body["error"]
            .as_str()
            .map(printable)
            .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_owned());
        let exit = exit_for_refusal(status.as_u16());
        let message = match status.as_u16() {
            401 | 403 => format!("refused for user {}: {reason}", self.user),
            409 => match body["deployment_id"].as_i64() {
                Some(id) => format!(
                    "deployment {id} is running with another checksum: wait for it \
                     (GET {}) and deploy again",
                    deployment_url(&self.base, id)
                ),
                None => format!("conflict: {reason}"),
            },
            404 | 405 => format!(
                "{} answered {status}: is it Steward, with its base path in --server?",
                self.base
            ),
            300..=399 => {
                return Failure::new(
                    Exit::Usage,
                    format!(
                        "{} redirects to {}: give that URL as --server",
                        self.base,
                        location.as_deref().unwrap_or("elsewhere")
                    ),
                );
            }
            _ => format!("the server answered {status}: {reason}"),
        };
        Failure::new(exit, message)
    }
}

/// A request that got no answer: the server is not reachable.
fn unreachable(base: &str, error: &reqwest::Error) -> Failure {
    // The error's own text names the URL, which carries no credentials.
    let mut cause = String::new();
    let mut source: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = source {
        cause = e.to_string();
        source = e.source();
    }
    let what = if error.is_timeout() {
        "timed out"
    } else {
        "not reachable"
    };
    Failure::new(
        Exit::Unreachable,
        format!("{base} {what}: {}", printable(&cause)),
    )
}

/// Whether asking again may help: no answer, or a proxy's 502 to 504.
fn is_transient(failure: &Failure) -> bool {
    failure.exit == Exit::Unreachable
}

/// A progress bar on standard error, hidden when that is not a terminal.
fn progress_bar(id: i64, hosts: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(hosts), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{spinner} deployment {prefix} [{bar:25}] {pos}/{len} hosts {elapsed} {wide_msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    bar.set_style(style);
    bar.set_prefix(id.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

/// Asks for deployment `id` every [`POLL_EVERY`] until it no longer runs or
/// `timeout` passed: the last state seen, and whether it ended. An answer
/// missing (a restarting server) is asked again until then; a refusal ends
/// the wait.
async fn follow(
    api: &Api,
    id: i64,
    hosts: u64,
    timeout: Duration,
) -> Result<(Option<Deployment>, bool), Failure> {
    let bar = progress_bar(id, hosts);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = None;
    let outcome = loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        let asked = tokio::time::timeout(remaining, api.deployment(id)).await;
        match asked {
            Ok(Ok(deployment)) => {
                let (done, total) = progress(&deployment);
                bar.set_length(total);
                bar.set_position(done);
                bar.set_message(progress_message(&deployment));
                let ended = deployment.status.is_final();
                last = Some(deployment);
                if ended {
                    break Ok(true);
                }
            }
            Ok(Err(failure)) if is_transient(&failure) => {
                bar.set_message(format!("asking again: {}", failure.message));
            }
            Ok(Err(failure)) => break Err(failure),
            // The deadline passed during the request.
            Err(_) => break Ok(false),
        }
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        if remaining.is_zero() {
            break Ok(false);
        }
        tokio::time::sleep(POLL_EVERY.min(remaining)).await;
    };
    bar.finish_and_clear();
    outcome.map(|finished| (last, finished))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A deployment as the server shows it: `value`, with what a test
    /// does not name filled in (the server always sends every field).
    fn deployment(mut value: Value) -> Deployment {
        let defaults = json!({"checksum": "c", "author": "admin", "force": false,
                              "started_at": null, "finished_at": null, "version": "v"});
        let host = json!({"host_id": 1, "delivery": "push", "checksum": "c", "serial": 1,
                          "error": null, "attempts": 0});
        fill(&mut value, &defaults);
        for line in value["hosts"].as_array_mut().into_iter().flatten() {
            fill(line, &host);
        }
        serde_json::from_value(value).unwrap()
    }

    fn fill(value: &mut Value, defaults: &Value) {
        for (key, default) in defaults.as_object().unwrap() {
            if value.get(key).is_none() {
                value[key] = default.clone();
            }
        }
    }

    #[test]
    fn the_server_url_may_have_a_base_path_and_trailing_slashes() {
        assert_eq!(
            server_base("http://127.0.0.1:7440").unwrap(),
            "http://127.0.0.1:7440"
        );
        assert_eq!(
            server_base(" https://steward.example/ ").unwrap(),
            "https://steward.example"
        );
        assert_eq!(
            server_base("https://steward.example/icingaweb2/").unwrap(),
            "https://steward.example/icingaweb2"
        );
        let base = server_base("https://h.example:8443/icingaweb2//").unwrap();
        assert_eq!(
            deploy_url(&base, &DeployQuery::default()),
            "https://h.example:8443/icingaweb2/director/config/deploy"
        );
        let forced = DeployQuery {
            force: true,
            ..DeployQuery::default()
        };
        assert_eq!(
            deploy_url(&base, &forced),
            "https://h.example:8443/icingaweb2/director/config/deploy?force=1"
        );
        let scoped = DeployQuery {
            dry_run: true,
            hosts: host_filter("vars.env=canary&q=web 1%26co").unwrap(),
            ..DeployQuery::default()
        };
        assert_eq!(
            deploy_url(&base, &scoped),
            "https://h.example:8443/icingaweb2/director/config/deploy?dry_run=1&vars.env=canary&q=web+1%26co"
        );
        let staged = DeployQuery {
            staging: Staging {
                stages: Some("1,10%,100%".into()),
                max_failed: Some("5%".into()),
                stage_wait: Some(30),
            },
            ..DeployQuery::default()
        };
        assert_eq!(
            deploy_url(&base, &staged),
            "https://h.example:8443/icingaweb2/director/config/deploy\
             ?stages=1%2C10%25%2C100%25&max_failed=5%25&stage_wait=30"
        );
        assert_eq!(
            resume_url(&base, 7),
            "https://h.example:8443/icingaweb2/director/config/deployment?id=7&resume=1"
        );
        assert_eq!(
            deployment_url(&base, 42),
            "https://h.example:8443/icingaweb2/director/config/deployment?id=42"
        );
    }

    #[test]
    fn hosts_takes_only_the_hosts_lists_filters() {
        assert_eq!(
            host_filter("has_agent=1&vars.rack=a").unwrap(),
            [
                ("has_agent".to_owned(), "1".to_owned()),
                ("vars.rack".to_owned(), "a".to_owned())
            ]
        );
        for bad in ["", "var.env=prod", "name=web", "vars.=x", "q=web&force=1"] {
            assert!(host_filter(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn a_dry_run_table_lists_what_each_host_would_get() {
        let dry: DryRun = serde_json::from_value(json!({
            "checksum": "37a7e51e9486e1065e85", "status": "would-deploy", "scope": "vars.env=canary",
            "counts": {"update": 1, "revoke": 1, "skip": 1},
            "hosts": [
                {"host": "node-0.example", "host_id": 1, "delivery": "push", "action": "update",
                 "checksum": "a", "confirmed_checksum": "b",
                 "added": [{"name": "df", "command": "/usr/bin/df", "arguments": ["-h"], "timeout": null}],
                 "removed": [],
                 "changed": [{"name": "uptime",
                     "old": {"name": "uptime", "command": "/usr/bin/uptime", "arguments": null, "timeout": null},
                     "new": {"name": "uptime", "command": "/usr/bin/uptime", "arguments": [], "timeout": 30}}]},
                {"host": "node-1.example", "host_id": 2, "delivery": "pull", "action": "skip",
                 "checksum": "a", "confirmed_checksum": "a", "added": [], "removed": [], "changed": []},
                {"host": "node-\u{1b}[2J3", "host_id": 3, "delivery": "pull", "action": "revoke",
                 "checksum": "e", "confirmed_checksum": "f", "added": [],
                 "removed": [{"name": "uptime", "command": null, "arguments": null, "timeout": null}],
                 "changed": null},
            ]
        }))
        .unwrap();
        assert_eq!(
            dry_run_table(&dry),
            "HOST            DELIVERY  ACTION  SCRIPTS\n\
             node-0.example  push      update  + df: /usr/bin/df -h\n\
             \x20                                 ~ uptime: arguments any -> [], timeout none -> 30s\n\
             node- [2J3      pull      revoke  - uptime: (no longer on record)\n\
             \x20                                 ? what the agent holds is no longer on record\n\
             1 to update, 1 to revoke, 1 to skip: would-deploy (config 37a7e51e9486, hosts vars.env=canary)\n"
        );
    }

    #[test]
    fn a_staged_dry_run_shows_each_hosts_stage() {
        let dry: DryRun = serde_json::from_value(json!({
            "checksum": "c", "status": "would-deploy", "scope": null,
            "counts": {"update": 2, "revoke": 0, "skip": 0},
            "hosts": [
                {"host": "a", "host_id": 1, "delivery": "push", "action": "update", "stage": 2,
                 "checksum": "a", "confirmed_checksum": null, "added": [], "removed": [], "changed": []},
                {"host": "b", "host_id": 2, "delivery": "push", "action": "update", "stage": 1,
                 "checksum": "a", "confirmed_checksum": null, "added": [], "removed": [], "changed": []},
            ]
        }))
        .unwrap();
        let table = dry_run_table(&dry);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "HOST  DELIVERY  ACTION  STAGE  SCRIPTS");
        assert_eq!(
            lines[1],
            "a     push      update  2      (the same scripts, sent again)"
        );
        assert_eq!(
            lines[2],
            "b     push      update  1      (the same scripts, sent again)"
        );
    }

    #[test]
    fn a_server_url_that_cannot_lead_to_the_api_is_refused() {
        for bad in [
            "steward.example",
            "ftp://steward.example",
            "https://steward.example/?x=1",
            "https://steward.example/#top",
            "http://",
        ] {
            assert!(server_base(bad).is_err(), "{bad} was accepted");
        }
        let with_password = server_base("https://admin:secret@steward.example").unwrap_err();
        assert!(!with_password.contains("secret"), "{with_password}");
    }

    #[test]
    fn only_succeeded_and_unchanged_exit_0_and_halted_has_its_own_code() {
        assert_eq!(exit_for_status("succeeded"), Exit::Done);
        assert_eq!(exit_for_status("unchanged"), Exit::Done);
        assert_eq!(exit_for_status("halted"), Exit::Halted);
        assert_eq!(Exit::Halted.code(), 5);
        for status in ["partial", "failed", "cancelled", "running", ""] {
            assert_eq!(exit_for_status(status), Exit::NotDone, "{status}");
        }
    }

    #[test]
    fn refusals_map_to_their_documented_exit_codes() {
        let codes: Vec<(u16, u8)> = [401, 403, 429, 409, 404, 400, 503, 500]
            .into_iter()
            .map(|s| (s, exit_for_refusal(s).code()))
            .collect();
        assert_eq!(
            codes,
            [
                (401, 3),
                (403, 3),
                (429, 3),
                (409, 4),
                (404, 2),
                (400, 2),
                (503, 6),
                (500, 1)
            ]
        );
        assert_eq!(Exit::Unreachable.code(), 6);
    }

    #[test]
    fn the_line_without_wait_names_the_deployment_and_its_hosts() {
        let started = |v: Value| serde_json::from_value::<Started>(v).unwrap();
        assert_eq!(
            started_line(&started(
                json!({"checksum": "c", "deployment_id": 7, "status": "running", "hosts": 3})
            )),
            "deployment 7: running, 3 hosts"
        );
        assert_eq!(
            started_line(&started(
                json!({"checksum": "c", "deployment_id": 7, "status": "running", "hosts": 1})
            )),
            "deployment 7: running, 1 host"
        );
        assert_eq!(
            started_line(&started(
                json!({"checksum": "c", "status": "unchanged", "deployment_id": 6})
            )),
            "deployment 6: unchanged, nothing to deploy"
        );
        assert_eq!(
            started_line(&started(
                json!({"checksum": "c", "status": "unchanged", "deployment_id": null})
            )),
            "no deployment yet: unchanged, nothing to deploy"
        );
    }

    #[test]
    fn the_summary_counts_every_result_and_names_the_missed_hosts() {
        let d = deployment(json!({
            "id": 3, "status": "partial", "checksum": "abc", "force": false,
            "counts": {"pending": 0, "deployed": 2, "skipped": 1, "failed": 1, "unreachable": 1},
            "hosts": [
                {"host": "a.example", "host_id": 1, "result": "deployed", "error": null, "attempts": 1},
                {"host": "b.example", "host_id": 2, "result": "skipped", "error": null, "attempts": 0},
                {"host": "c.example", "host_id": 3, "result": "deployed", "error": null, "attempts": 1},
                {"host": "long-name.example", "host_id": 4, "result": "unreachable", "error": "connection failed", "attempts": 3},
                {"host": "e.example", "host_id": 5, "result": "failed", "error": "403: \u{1b}[31mwrong key\nsee log", "attempts": 1},
            ],
        }));
        assert_eq!(
            summary(&d),
            "\
RESULT       HOSTS
deployed         2
skipped          1
failed           1
unreachable      1
pending          0
deployment 3: partial

HOST               RESULT       ERROR
long-name.example  unreachable  connection failed
e.example          failed       403:  [31mwrong key see log
"
        );
    }

    #[test]
    fn a_halted_summary_and_progress_name_the_stage_and_the_reason() {
        let d = deployment(json!({
            "id": 4, "status": "halted",
            "counts": {"pending": 3, "deployed": 0, "skipped": 0, "failed": 1, "unreachable": 0},
            "staging": {"stages": "1,100%", "stage_count": 2, "stage": 1, "max_failed": 0,
                        "accepted_failures": 0, "stage_wait": 0,
                        "halted_reason": "1 hosts failed or were unreachable after stage 1 of 2 (0 allowed)",
                        "summary": []},
            "hosts": [],
        }));
        let table = summary(&d);
        assert!(
            table.contains("deployment 4: halted\nstage 1 of 2 (1,100%)\n"),
            "{table}"
        );
        assert!(table.contains("halted: 1 hosts failed"), "{table}");
        assert!(table.contains("resume with --resume 4"), "{table}");
        assert_eq!(progress_message(&d), "stage 1/2, 1 failed/unreachable");
    }

    #[test]
    fn a_clean_summary_has_no_host_list() {
        let d = deployment(json!({
            "id": 1, "status": "succeeded",
            "counts": {"pending": 0, "deployed": 20, "skipped": 0, "failed": 0, "unreachable": 0},
            "hosts": [],
        }));
        let table = summary(&d);
        assert!(table.contains("\ndeployed        20\n"), "{table}");
        assert!(table.ends_with("deployment 1: succeeded\n"), "{table}");
        assert!(!table.contains("HOST "), "{table}");
    }

    #[test]
    fn progress_counts_the_hosts_no_longer_pending() {
        let running = deployment(json!({
            "id": 2, "status": "running",
            "counts": {"pending": 2, "deployed": 1, "skipped": 0, "failed": 0, "unreachable": 1},
            "hosts": [
                {"host": "a", "result": "deployed"},
                {"host": "b", "result": "pending"},
                {"host": "c", "result": "unreachable", "error": "timed out"},
                {"host": "d", "result": "pending"},
            ],
        }));
        assert_eq!(progress(&running), (2, 4));
        // Details pruned (or none visible): the counts tell.
        let pruned = deployment(json!({
            "id": 1, "status": "partial",
            "counts": {"pending": 1, "deployed": 5, "unreachable": 2},
            "hosts": [],
        }));
        assert_eq!(progress(&pruned), (7, 8));
    }
}
