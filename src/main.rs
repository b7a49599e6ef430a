//! The `steward` command: parse the command line, dispatch.

use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use steward::config::{Config, ConfigArgs};
use steward::store::Store;
use steward::{AppState, app};
use tracing_subscriber::EnvFilter;

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
    /// Start the service.
    Serve(ConfigArgs),
    /// Run the database migrations and exit.
    Migrate(ConfigArgs),
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
    if config.database_url.starts_with("sqlite:") {
        std::fs::create_dir_all(&config.data_dir).map_err(|e| {
            format!(
                "cannot create the data directory {}: {e}",
                config.data_dir.display()
            )
        })?;
    }
    Store::open(&config.database_url)
        .await
        .map_err(|e| format!("cannot open the database: {e}"))
}

async fn serve(config: Config) -> Result<(), String> {
    let store = open_store(&config).await?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", config.listen))?;
    let config = Arc::new(config);
    tracing::info!(listen = %config.listen, data_dir = %config.data_dir.display(), "steward is ready");
    let state = AppState {
        store: Arc::new(store),
        config,
    };
    axum::serve(listener, app(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(|e| format!("server error: {e}"))
}

async fn shutdown_signal() {
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
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let (Command::Serve(args) | Command::Migrate(args)) = &cli.command;
    let config = match args.load() {
        Ok(config) => config,
        Err(e) => {
            eprintln!("steward: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config);
    let result = match cli.command {
        Command::Serve(_) => serve(config).await,
        Command::Migrate(_) => open_store(&config)
            .await
            .map(|_| tracing::info!("migrations are up to date")),
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
