//! `nmp`: serve the platform, or mint a development token.

mod audit;
mod import;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use nmp::{LogFormat, Settings};

// glibc's allocator was a seventh of nmp's CPU under a write load (malloc, free and their
// consolidation across threads).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "nmp",
    version,
    about = "Number Management Platform for Teams calling operators"
)]
struct Cli {
    /// TOML settings file (also NMP_CONFIG); NMP_* variables override it.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum ImportWhat {
    /// Numbers into an account, from CSV.
    Numbers(import::ImportNumbers),
}

#[derive(Subcommand)]
enum Command {
    /// Run nmp's components until SIGINT or SIGTERM.
    Serve {
        /// Components to run, comma-separated (all by default).
        #[arg(long, value_delimiter = ',')]
        components: Vec<String>,
    },
    /// Print the effective settings, as `nmp serve` would load them (defaults, the config file,
    /// NMP_* variables), as JSON with the config file's keys and every secret redacted. Exits
    /// non-zero, naming the setting, when one is invalid.
    Config,
    /// Print a bearer token signed with the configured HS256 secret (or the development
    /// secret), for local use.
    Token {
        /// Role(s) to grant, such as ProvisioningAPI.Admin.
        #[arg(long = "role", required = true)]
        roles: Vec<auth::Role>,
        /// The token's subject.
        #[arg(long, default_value = "nmp-cli")]
        subject: String,
        /// Lifetime in minutes.
        #[arg(long, default_value_t = 60)]
        ttl_minutes: u64,
    },
    /// Import data: `nmp import numbers FILE.csv --account NAME` (the portal's CSV format).
    Import {
        #[command(subcommand)]
        what: ImportWhat,
    },
    /// Read models: `nmp projections rebuild [accounts|numbers|consents|audit]...`.
    Projections {
        #[command(subcommand)]
        action: ProjectionsAction,
    },
    /// For auditors: verify the events' tamper-evidence chains, or export events as CloudEvents
    /// JSON Lines (`nmp audit verify`, `nmp audit export --from … --to …`).
    Audit {
        #[command(subcommand)]
        command: audit::Audit,
    },
    /// Run the backend simulator on NMP_SIM_ADDR (127.0.0.1:8090 by default): nmp's backend
    /// API with state in memory, and `/_sim` to set the scene, inject faults and read its
    /// ledger.
    Sim {
        /// How long an upload order stays in progress, in milliseconds (also `/_sim/settings`).
        #[arg(long, default_value_t = 200)]
        order_delay_ms: u64,
        /// Listen on an address other hosts reach. The simulator has no authentication: anyone
        /// who reaches it can read and change what it holds and switch its faults.
        #[arg(long)]
        public: bool,
    },
}

#[derive(Subcommand)]
enum ProjectionsAction {
    /// Replay the event store into fresh read tables and swap them in, while nmp keeps
    /// running (all tables when none is named).
    Rebuild {
        /// accounts, numbers, consents or audit.
        names: Vec<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Serve { components } => serve(settings, components).await,
        Command::Sim {
            order_delay_ms,
            public,
        } => simulate(settings, order_delay_ms, public).await,
        Command::Audit { command } => audit::run(&settings, command).await,
        Command::Import {
            what: ImportWhat::Numbers(args),
        } => {
            // Standard output is the summary; logs, warnings and up only, go to standard error.
            tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
                )
                .with_writer(std::io::stderr)
                .init();
            let code = import::run(&settings, args).await?;
            std::process::exit(code);
        }
        Command::Projections {
            action: ProjectionsAction::Rebuild { names },
        } => nmp::rebuild_projections(&settings, &names).await,
        Command::Config => {
            // The token keys and the portal's sign-in are checked as `nmp serve` checks them
            // before it connects.
            let key_source = settings
                .jwt
                .key_source(&settings.http_addr, &settings.nats.url)?;
            nmp::oidc_client(&settings, &key_source)?;
            println!("{}", serde_json::to_string_pretty(&settings)?);
            Ok(())
        }
        Command::Token {
            roles,
            subject,
            ttl_minutes,
        } => {
            let secret = settings
                .jwt
                .hs256_secret
                .clone()
                .unwrap_or_else(|| auth::DEVELOPMENT_SECRET.to_string());
            let ttl = Duration::from_secs(ttl_minutes * 60);
            println!(
                "{}",
                auth::mint_token(secret.as_bytes(), &subject, &roles, ttl)
            );
            Ok(())
        }
    }
}

async fn serve(settings: Settings, components: Vec<String>) -> anyhow::Result<()> {
    init_tracing(settings.log_format);
    let components_named = !components.is_empty();
    let components = nmp::Components::parse(&components)?;
    tracing::info!(?settings, ?components, "starting nmp");
    let shutdown = Duration::from_secs(settings.shutdown_secs);
    let mut builder = nmp::Runtime::builder(settings, components);
    if components_named {
        builder = builder.require_backend();
    }
    let runtime = builder.start().await?;
    let stopper = runtime.stopper();
    tokio::spawn(async move {
        shutdown_signal().await;
        stopper.stop();
        // The runtime keeps to the time itself; this is the backstop should anything hang.
        tokio::time::sleep(shutdown).await;
        tracing::error!("nmp did not stop within NMP_SHUTDOWN_SECS; exiting");
        std::process::exit(1);
    });
    runtime.wait().await
}

async fn simulate(settings: Settings, order_delay_ms: u64, public: bool) -> anyhow::Result<()> {
    init_tracing(settings.log_format);
    if !settings.sim_addr.ip().is_loopback() && !public {
        anyhow::bail!(
            "refusing to serve the backend simulator on {} without --public: it has no \
             authentication, so anyone who reaches it can change what it holds",
            settings.sim_addr
        );
    }
    let listener = tokio::net::TcpListener::bind(settings.sim_addr)
        .await
        .with_context(|| format!("cannot listen on {}", settings.sim_addr))?;
    tracing::info!(addr = %listener.local_addr()?, order_delay_ms, "simulating the backend");
    let simulator = sim::Simulator::new(sim::SimSettings {
        order_delay: Duration::from_millis(order_delay_ms),
    });
    sim::serve(listener, simulator, shutdown_signal())
        .await
        .context("the simulator stopped")
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn shutdown_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
    tracing::info!("shutting down");
}
