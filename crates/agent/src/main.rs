//! The `steward-agent` command, run on each node: parse the command line,
//! dispatch, turn errors into exit codes.
//!
//! Exit codes of `register`, `serve` and `pull`: 0 success, 1 failure (state file,
//! unexpected answer, address in use), 2 usage (for `serve`: no state),
//! 3 refused (key or server key), 4 name taken, 5 invalid request,
//! 6 server not reachable. `check` exits 0 (allowed), 1 (not allowed) or
//! 2 (no valid allowlist).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use steward_agent::AgentError;
use steward_agent::check::{self, Outcome};
use steward_agent::client::Registration;
use steward_agent::pull::{self, PullOptions};
use steward_agent::register::{self, Options, parse_fingerprint};
use steward_agent::serve::{self, ServeOptions};
use steward_agent::state::DEFAULT_STATE_DIR;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "steward-agent",
    version,
    about = "The Steward agent: registers this node and keeps its allowlist"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Register this node with the server (first boot), or re-register it
    /// with its own host key (every later boot).
    Register(RegisterArgs),
    /// Listen for the signed allowlists the server pushes, check and keep
    /// them (and ctrl-exec's scripts.conf), and report what is held.
    Serve(ServeArgs),
    /// Fetch the signed allowlist from the server instead (long polling),
    /// for nodes the server cannot reach; checked and kept as serve does.
    Pull(PullArgs),
    /// Exit 0 and print the command when NAME with ARGS is allowed, 1 when
    /// not, 2 when no valid allowlist is held. Options go before NAME:
    /// everything after it is taken as ARGS.
    Check(CheckArgs),
}

#[derive(Args)]
struct ServeArgs {
    /// The address to listen on [default: 0.0.0.0 and the registered agent
    /// port].
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    #[command(flatten)]
    hold: HoldArgs,
}

#[derive(Args)]
struct PullArgs {
    /// How long each request may wait for a new allowlist, in seconds
    /// (at most 300).
    #[arg(long, value_name = "SECONDS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(0..=300))]
    wait: u64,
    /// Ask once and exit: 0 when the newest allowlist is held, 1 when it was
    /// refused, 3 when the key was, 6 when the server was not reachable.
    #[arg(long)]
    once: bool,
    /// Also trust the certificates in this PEM file for an https server (a
    /// private CA, or the server's self-signed certificate).
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
    #[command(flatten)]
    hold: HoldArgs,
}

/// Where the allowlist is kept and what it must satisfy (serve and pull).
#[derive(Args)]
struct HoldArgs {
    /// Where the agent keeps its state.
    #[arg(long, env = "STEWARD_AGENT_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// The allowlist file [default: STATE_DIR/allowlist.json].
    #[arg(long, value_name = "FILE")]
    allowlist: Option<PathBuf>,
    /// Also write ctrl-exec's scripts.conf (`name = /path` lines) here.
    #[arg(long, value_name = "FILE")]
    scripts_conf: Option<PathBuf>,
    /// Accept only commands inside this directory (repeatable; default:
    /// anywhere).
    #[arg(long = "allowed-dir", value_name = "DIR")]
    allowed_dirs: Vec<PathBuf>,
    /// A shell command run (sh -c, at most 30 s) after each new allowlist
    /// is written, for example `systemctl reload ctrl-exec`.
    #[arg(long, value_name = "CMD")]
    reload_command: Option<String>,
}

#[derive(Args)]
#[command(override_usage = "steward-agent check [OPTIONS] NAME [ARGS]...")]
struct CheckArgs {
    /// Where the agent keeps its state.
    #[arg(long, env = "STEWARD_AGENT_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// The allowlist file [default: STATE_DIR/allowlist.json].
    #[arg(long, value_name = "FILE")]
    allowlist: Option<PathBuf>,
    /// The script's name, then its arguments. Everything from NAME on is
    /// taken as given, options included, so that arguments a caller passes
    /// through can never choose another state directory or allowlist.
    #[arg(
        value_name = "NAME",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    command: Vec<String>,
}

#[derive(Args)]
struct RegisterArgs {
    /// The server's base URL, for example https://steward.example or
    /// https://host/icingaweb2.
    #[arg(long, env = "STEWARD_SERVER")]
    server: String,
    /// The host template's key, for the first registration.
    #[arg(long, env = "STEWARD_KEY", hide_env_values = true)]
    key: Option<String>,
    /// The host name to register as [default: this machine's FQDN].
    #[arg(long)]
    name: Option<String>,
    /// The host's address.
    #[arg(long)]
    address: Option<String>,
    /// The host's IPv6 address.
    #[arg(long)]
    address6: Option<String>,
    /// The port the agent listens on.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    agent_port: Option<u16>,
    /// Register for pull delivery: this agent fetches its allowlist
    /// (`steward-agent pull`) and the server never pushes to it.
    #[arg(long)]
    pull: bool,
    /// Where the agent keeps its state.
    #[arg(long, env = "STEWARD_AGENT_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// Refuse a server whose signing key has another fingerprint (sha256:HEX).
    #[arg(long, value_parser = parse_fingerprint)]
    server_key: Option<String>,
    /// How many seconds to keep retrying an unreachable or busy server.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    retry_for: u64,
    /// Also trust the certificates in this PEM file for an https server (a
    /// private CA, or the server's self-signed certificate).
    #[arg(long, value_name = "FILE")]
    ca: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = match cli.command {
        Command::Check(args) => return run_check(&args),
        command => command,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("steward-agent: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match command {
        Command::Register(args) => runtime.block_on(run_register(args)),
        Command::Serve(args) => {
            init_logging();
            runtime.block_on(serve::serve(args.hold.options(args.listen)))
        }
        Command::Pull(args) => {
            init_logging();
            runtime.block_on(pull::pull(PullOptions {
                hold: args.hold.options(None),
                wait: args.wait,
                once: args.once,
                ca: args.ca,
            }))
        }
        Command::Check(args) => return run_check(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("steward-agent: {error}");
            ExitCode::from(error.exit_code())
        }
    }
}

async fn run_register(args: RegisterArgs) -> Result<(), AgentError> {
    let name = match args.name {
        Some(name) => name,
        None => register::default_name()?,
    };
    let options = Options {
        server: args.server,
        key: args.key,
        name,
        registration: Registration {
            address: args.address,
            address6: args.address6,
            agent_port: args.agent_port,
            delivery: args.pull.then_some(steward_domain::kind::Delivery::Pull),
        },
        state_dir: args.state_dir,
        server_key: args.server_key,
        retry_for: Duration::from_secs(args.retry_for),
        ca: args.ca,
    };
    let registered = register::register(&options).await?;
    println!("{}", registered.summary());
    Ok(())
}

impl HoldArgs {
    fn options(self, listen: Option<SocketAddr>) -> ServeOptions {
        ServeOptions {
            listen,
            state_dir: self.state_dir,
            allowlist: self.allowlist,
            scripts_conf: self.scripts_conf,
            allowed_dirs: self.allowed_dirs,
            reload_command: self.reload_command,
        }
    }
}

fn run_check(args: &CheckArgs) -> ExitCode {
    let (name, rest) = match args.command.split_first() {
        Some((name, rest)) => (name.as_str(), rest),
        None => ("", &[][..]),
    };
    let outcome = check::check(&args.state_dir, args.allowlist.as_deref(), name, rest);
    match &outcome {
        Outcome::Allowed(line) => println!("{line}"),
        Outcome::Denied(reason) => eprintln!("steward-agent: not allowed: {reason}"),
        Outcome::NoAllowlist(reason) => eprintln!("steward-agent: {reason}"),
    }
    ExitCode::from(outcome.exit_code())
}

/// Logs to stderr, at the level `STEWARD_AGENT_LOG` gives (default `info`).
fn init_logging() {
    let filter =
        EnvFilter::try_from_env("STEWARD_AGENT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
