//! The `steward` command: parse the command line, dispatch.

use std::io::{BufRead, IsTerminal};
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Parser, Subcommand};
use serde_json::{Map, Value, json};
use steward::config::{Config, ConfigArgs};
use steward::domain::activity::Break;
use steward::service::caller::Caller;
use steward::service::{activity, users};
use steward::store::Store;
use steward::{AppState, app};
use tracing_subscriber::EnvFilter;

mod tls;

#[derive(Debug, Parser)]
#[command(
    name = "steward",
    version,
    about = "Icinga Director-style REST object configuration service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Server(Box<ServerCommand>),
    /// Deploy through a running server's API; --wait follows it to the end.
    ///
    /// Starts a deployment (POST /director/config/deploy) as --user, with
    /// the password from STEWARD_PASSWORD, a prompt on a terminal, or the
    /// first line of standard input. Without --wait it prints the
    /// deployment's id, status and hosts; with --wait it shows a progress
    /// bar on a terminal (with the stage of a staged deploy) and prints a
    /// table of the results. With --dry-run it prints what the deploy would
    /// do to each host and does nothing; with --hosts it deploys only to the
    /// hosts matching the filter. --stages, --max-failed and --stage-wait
    /// make it a staged deploy; --resume ID resumes a halted one instead.
    ///
    /// Exit codes:
    ///   0  every host deployed or skipped, or nothing to deploy (without
    ///      --wait: the deployment started)
    ///   1  the deployment ended partial, failed or cancelled, --wait timed
    ///      out, or the server answered something unexpected
    ///   2  usage or configuration: --server, no password, no Steward API
    ///      at that URL
    ///   3  the credentials or the permission were refused (401, 403, 429)
    ///   4  another deployment is running (its id is printed; with
    ///      --dry-run: the deploy would be refused for it), or with
    ///      --resume: the deployment is not halted, or a newer one exists
    ///   5  a staged deployment halted (more hosts failed than
    ///      --max-failed); --resume ID goes on with its next stage
    ///   6  the server is not reachable
    #[command(verbatim_doc_comment)]
    Deploy(steward::cli::deploy::DeployArgs),
    /// Undo logged object changes through a running server's API.
    ///
    /// --id ENTRY undoes that activity entry while its object is still as
    /// the entry left it; --to ENTRY undoes every host and script change
    /// after that entry, newest first, all or nothing (a deployment's
    /// activity_id: back to what that deployment rolled out). --dry-run
    /// shows the changes and makes none. Prints a table of the changes.
    /// The password comes as for `steward deploy`.
    ///
    /// Exit codes:
    ///   0  the changes were made (or, with --dry-run, could be)
    ///   1  the server answered something unexpected
    ///   2  usage: --server, no password, no such entry, an entry that is
    ///      not an object change, more than 1000 entries (400, 404, 422)
    ///   3  the credentials or a permission were refused (401, 403, 429)
    ///   4  an object changed since the entry, or is still referenced (409)
    ///   6  the server is not reachable
    #[command(verbatim_doc_comment)]
    Revert(steward::cli::revert::RevertArgs),
}

/// The commands that work on a server's configuration (its database and
/// data directory).
#[derive(Debug, Subcommand)]
enum ServerCommand {
    /// Start the service.
    Serve(ConfigArgs),
    /// Run the database migrations and exit.
    Migrate(ConfigArgs),
    /// Manage API users (works while the server runs).
    User {
        #[command(subcommand)]
        action: UserCommand,
    },
    /// The activity log.
    Activity {
        #[command(subcommand)]
        action: ActivityCommand,
    },
    /// The allowlist signing key (in the data directory) and its rotation.
    Key {
        #[command(subcommand)]
        action: KeyCommand,
    },
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Print the key's fingerprint, and the next key's during a rotation.
    Show(ConfigArgs),
    /// Begin a rotation: make the next key. Allowlists signed with the
    /// current key announce it; deploy with force=1 so every agent learns it.
    Rotate(ConfigArgs),
    /// End a rotation: the next key becomes the key (the old one is kept
    /// as signing.key.retired-SECONDS). Then deploy with force=1.
    Promote(ConfigArgs),
}

#[derive(Debug, Subcommand)]
enum UserCommand {
    /// Add a user; the password is read from standard input (or prompted for).
    Add {
        name: String,
        /// admin, operator or reader.
        #[arg(long)]
        role: String,
        /// A permission beyond the role's (repeatable).
        #[arg(long = "permission")]
        permissions: Vec<String>,
        /// A host name glob the user is restricted to (repeatable).
        #[arg(long = "restrict")]
        restrictions: Vec<String>,
        #[command(flatten)]
        config: ConfigArgs,
    },
    /// List the users.
    List(ConfigArgs),
    /// Set a user's password, read from standard input (or prompted for).
    Passwd(NamedUser),
    /// Disable a user: their credentials stop working at once.
    Disable(NamedUser),
    /// Enable a disabled user.
    Enable(NamedUser),
    /// Remove a user.
    Remove(NamedUser),
}

#[derive(Debug, Args)]
struct NamedUser {
    name: String,
    #[command(flatten)]
    config: ConfigArgs,
}

#[derive(Debug, Subcommand)]
enum ActivityCommand {
    /// Check the checksum chain; exits 1 naming the first broken entry.
    Verify(ConfigArgs),
}

impl ServerCommand {
    /// The server configuration the command works on.
    fn config_args(&self) -> &ConfigArgs {
        match self {
            ServerCommand::Serve(c) | ServerCommand::Migrate(c) => c,
            ServerCommand::Key {
                action: KeyCommand::Show(c) | KeyCommand::Rotate(c) | KeyCommand::Promote(c),
            } => c,
            ServerCommand::User { action } => match action {
                UserCommand::Add { config, .. } | UserCommand::List(config) => config,
                UserCommand::Passwd(u)
                | UserCommand::Disable(u)
                | UserCommand::Enable(u)
                | UserCommand::Remove(u) => &u.config,
            },
            ServerCommand::Activity {
                action: ActivityCommand::Verify(c),
            } => c,
        }
    }
}

fn init_logging(config: &Config) {
    let filter = EnvFilter::try_from_env("STEWARD_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if config.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn open_store(config: &Config) -> Result<Store, String> {
    if config.database_url.starts_with("sqlite:") && steward::files::private_dir(&config.data_dir)?
    {
        tracing::warn!(dir = %config.data_dir.display(), "the data directory was open to others: now its owner's only");
    }
    Store::open(&config.database_url)
        .await
        .map_err(|e| format!("cannot open the database: {e}"))
}

/// `STEWARD_ADMIN_PASSWORD`, the first admin's password, checked before
/// anything is opened or migrated: a password the user rules refuse (fewer
/// than 8 characters) stops the start with a message naming the variable,
/// instead of a bare password rule after the migrations ran.
fn admin_password_from_env() -> Result<Option<String>, String> {
    let Some(password) = std::env::var("STEWARD_ADMIN_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty())
    else {
        return Ok(None);
    };
    steward::domain::user::check_password(&password).map_err(|e| {
        format!("STEWARD_ADMIN_PASSWORD (the first admin's password) is refused: {e}")
    })?;
    Ok(Some(password))
}

/// Below this open files limit (after raising the soft limit to the hard
/// one), a server warns: a fleet of long-polling agents needs one each.
const LOW_OPEN_FILES: u64 = 8192;

async fn serve(config: Config) -> Result<(), String> {
    // An unusable certificate or key stops the start before anything else.
    let tls = tls::from_config(&config)?;
    let open_files = steward::server::raise_open_files_limit();
    if let Some(files) = open_files.filter(|f| *f < LOW_OPEN_FILES) {
        tracing::warn!(
            open_files = files,
            "the open files limit is low: each connection (a waiting agent, a client) takes one; raise LimitNOFILE (docs/OPERATIONS.md)"
        );
    }
    let admin_password = admin_password_from_env()?;
    let store = Arc::new(open_store(&config).await?);
    if let Some(path) = users::bootstrap_admin(&store, admin_password, &config.data_dir).await? {
        tracing::warn!(file = %path.display(), "created the user admin; its password is in this file");
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let config = Arc::new(config);
    let state = AppState::new(store, config.clone())
        .await
        .map_err(|e| format!("cannot load users: {e}"))?;
    tokio::spawn(state.deployer.clone().watch());
    tokio::spawn(state.store.clone().sweep_open_groups());
    tokio::spawn(state.store.clone().follow_changes(config.catch_up_every));
    let deployer = state.deployer.clone();
    let stop = state.shutdown.clone();
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(listen = %config.listen, scheme, data_dir = %config.data_dir.display(), "steward is ready");
    let limits = steward::server::Limits {
        header_timeout: config.header_timeout,
        idle_timeout: config.idle_timeout,
        max_connections: steward::server::connection_cap(config.max_connections, open_files),
    };
    tracing::info!(
        max_connections = limits.max_connections,
        open_files = open_files.unwrap_or_default(),
        "connection limits"
    );
    let served =
        steward::server::serve(listener, tls, app(state), limits, shutdown_signal(stop)).await;
    deployer.checkpoint().await;
    served
}

/// Resolves at SIGTERM or SIGINT, after telling everything that waits
/// (long polls, deploy requests with `wait`, the deployment runner).
async fn shutdown_signal(stop: steward::shutdown::Shutdown) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
    stop.trigger();
}

/// A password from a prompt on a terminal, or the first line of standard input.
fn read_password() -> Result<String, String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let again = rpassword::prompt_password("Again: ").map_err(|e| e.to_string())?;
        if first != again {
            return Err("the passwords differ".into());
        }
        return Ok(first);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    let password = line.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err("no password on standard input".into());
    }
    Ok(password)
}

fn body(value: Value) -> Map<String, Value> {
    value.as_object().cloned().unwrap_or_default()
}

async fn user_command(action: UserCommand, config: &Config) -> Result<(), String> {
    let store = open_store(config).await?;
    let cli = Caller::system("cli");
    let done = |r: Result<users::UserWritten, steward::error::ApiError>| {
        r.map(|_| ()).map_err(|e| e.to_string())
    };
    match action {
        UserCommand::Add {
            name,
            role,
            permissions,
            restrictions,
            ..
        } => {
            let password = read_password()?;
            let b = body(
                json!({"object_name": name, "role": role, "permissions": permissions, "restrictions": restrictions, "password": password}),
            );
            done(users::create(&store, None, &cli, None, &b).await)?;
            println!("added user {name}");
        }
        UserCommand::List(_) => {
            println!(
                "{:<24} {:<9} {:<9} {:<30} RESTRICTIONS",
                "NAME", "ROLE", "STATE", "EXTRA PERMISSIONS"
            );
            for user in users::all(&store).await.map_err(|e| e.to_string())? {
                let d = &user.draft;
                let extra: Vec<&str> = d.permissions.iter().map(|p| p.as_str()).collect();
                println!(
                    "{:<24} {:<9} {:<9} {:<30} {}",
                    d.name,
                    d.role.as_str(),
                    if d.disabled { "disabled" } else { "enabled" },
                    if extra.is_empty() {
                        "-".to_owned()
                    } else {
                        extra.join(",")
                    },
                    if d.restrictions.is_unrestricted() {
                        "-".to_owned()
                    } else {
                        d.restrictions.globs().join(",")
                    }
                );
            }
        }
        UserCommand::Passwd(u) => {
            let password = read_password()?;
            done(
                users::merge(
                    &store,
                    None,
                    &cli,
                    &u.name,
                    &body(json!({"password": password})),
                )
                .await,
            )?;
            println!("password of {} changed", u.name);
        }
        UserCommand::Disable(u) => {
            done(
                users::merge(
                    &store,
                    None,
                    &cli,
                    &u.name,
                    &body(json!({"disabled": true})),
                )
                .await,
            )?;
            println!("disabled user {}", u.name);
        }
        UserCommand::Enable(u) => {
            done(
                users::merge(
                    &store,
                    None,
                    &cli,
                    &u.name,
                    &body(json!({"disabled": false})),
                )
                .await,
            )?;
            println!("enabled user {}", u.name);
        }
        UserCommand::Remove(u) => {
            users::delete(&store, None, &cli, &u.name)
                .await
                .map_err(|e| e.to_string())?;
            println!("removed user {}", u.name);
        }
    }
    Ok(())
}

async fn verify_activity(config: &Config) -> Result<(), String> {
    let store = open_store(config).await?;
    match activity::verify(&store).await.map_err(|e| e.to_string())? {
        Ok(count) => {
            println!("activity log intact: {count} entries");
            Ok(())
        }
        Err(Break::Checksum { id }) => Err(format!(
            "activity entry {id} is broken: its checksum does not match its content"
        )),
        Err(Break::Link { id }) => Err(format!(
            "activity entry {id} is broken: it does not chain to the entry before it"
        )),
    }
}

fn key_command(action: &KeyCommand, config: &Config) -> Result<(), String> {
    use steward::signing::{self, ServerKey};
    let dir = &config.data_dir;
    match action {
        KeyCommand::Show(_) => {
            let key = ServerKey::load_or_create(dir)?;
            println!("key   {}", key.fingerprint());
            if let Some(next) = key.next_fingerprint() {
                println!("next  {next}");
            }
        }
        KeyCommand::Rotate(_) => {
            let next = signing::rotate(dir)?;
            println!("next  {next}");
            eprintln!(
                "allowlists now announce this key; deploy with force=1, and once every agent has it, run `steward key promote`"
            );
        }
        KeyCommand::Promote(_) => {
            let key = signing::promote(dir)?;
            println!("key   {key}");
            eprintln!("allowlists are signed with this key now; deploy with force=1");
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let command = match Cli::parse().command {
        // A client of a running server: no server configuration to load.
        Command::Deploy(args) => return steward::cli::deploy::run(&args).await,
        Command::Revert(args) => return steward::cli::revert::run(&args).await,
        Command::Server(command) => *command,
    };
    let config = match command.config_args().load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("steward: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match command {
        ServerCommand::Serve(_) => {
            init_logging(&config);
            serve(config).await
        }
        ServerCommand::Migrate(_) => open_store(&config)
            .await
            .map(|_| eprintln!("migrations are up to date")),
        ServerCommand::User { action } => user_command(action, &config).await,
        ServerCommand::Activity {
            action: ActivityCommand::Verify(_),
        } => verify_activity(&config).await,
        ServerCommand::Key { action } => key_command(&action, &config),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("steward: {e}");
            ExitCode::FAILURE
        }
    }
}
