//! The `steward-agent` command, run on each node: parse the command line,
//! dispatch, turn errors into exit codes.
//!
//! Exit codes: 0 success, 1 failure (state file, unexpected answer), 2 usage,
//! 3 refused (key or server key), 4 name taken, 5 invalid request,
//! 6 server not reachable.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use steward::agent::AgentError;
use steward::agent::client::Registration;
use steward::agent::register::{self, Options, parse_fingerprint};
use steward::agent::state::DEFAULT_STATE_DIR;

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
    /// Where the agent keeps its state.
    #[arg(long, env = "STEWARD_AGENT_STATE_DIR", default_value = DEFAULT_STATE_DIR)]
    state_dir: PathBuf,
    /// Refuse a server whose signing key has another fingerprint (sha256:HEX).
    #[arg(long, value_parser = parse_fingerprint)]
    server_key: Option<String>,
    /// How many seconds to keep retrying an unreachable or busy server.
    #[arg(long, value_name = "SECONDS", default_value_t = 300)]
    retry_for: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
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
    let result = match cli.command {
        Command::Register(args) => runtime.block_on(run_register(args)),
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
        },
        state_dir: args.state_dir,
        server_key: args.server_key,
        retry_for: Duration::from_secs(args.retry_for),
    };
    let registered = register::register(&options).await?;
    println!("{}", registered.summary());
    Ok(())
}
