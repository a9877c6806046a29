//! `nmp audit`: for auditors, against the database `nmp serve` uses. `verify` recomputes every
//! event's tamper-evidence chain; `export` writes events as CloudEvents JSON Lines, as
//! `GET /audit/export` does. Both only read: the database is neither created nor migrated.

use std::io::Write;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Subcommand;
use futures::TryStreamExt;
use nmp::Settings;
use sqlx::postgres::PgPoolOptions;
use store::audit::ExportFilter;

#[derive(Subcommand)]
pub enum Audit {
    /// Recompute every event's chain and report each altered, removed or reordered event.
    /// Exit code 0 when every chain is intact, 1 when something is wrong, 2 when the check
    /// could not be made.
    Verify,
    /// Write the events recorded in [--from, --to) to standard output, in commit order, as
    /// CloudEvents 1.0 JSON, one per line.
    Export {
        /// RFC 3339; events recorded at or after it (default: from the first).
        #[arg(long, value_parser = parse_time)]
        from: Option<DateTime<Utc>>,
        /// RFC 3339; events recorded before it (default: to the last).
        #[arg(long, value_parser = parse_time)]
        to: Option<DateTime<Utc>>,
        /// Only events of this aggregate type: account, number or consent.
        #[arg(long = "type", value_parser = domain::AggregateKind::names())]
        aggregate_type: Option<String>,
    },
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|time| time.with_timezone(&Utc))
        .map_err(|error| format!("not an RFC 3339 time such as 2024-05-01T10:00:00Z: {error}"))
}

pub async fn run(settings: &Settings, command: Audit) -> anyhow::Result<()> {
    match command {
        Audit::Verify => {
            let report = match verify(settings).await {
                Ok(report) => report,
                Err(error) => {
                    eprintln!("nmp audit verify: {error:#}");
                    std::process::exit(2);
                }
            };
            println!("{report}");
            if !report.is_clean() {
                std::io::stdout().flush().ok();
                std::process::exit(1);
            }
            Ok(())
        }
        Audit::Export {
            from,
            to,
            aggregate_type,
        } => {
            if let (Some(from), Some(to)) = (from, to) {
                anyhow::ensure!(from <= to, "--from ({from}) is later than --to ({to})");
            }
            let filter = ExportFilter {
                from,
                to,
                aggregate_type,
            };
            let source = format!("urn:nmp:{}", settings.nats.prefix);
            let count = export(settings, &filter, &source).await?;
            eprintln!("exported {count} events");
            Ok(())
        }
    }
}

async fn connect(settings: &Settings) -> anyhow::Result<sqlx::PgPool> {
    PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(std::time::Duration::from_secs(5))
        .connect(&settings.database_url)
        .await
        .context("cannot connect to the database")
}

async fn verify(settings: &Settings) -> anyhow::Result<store::chain::Report> {
    let pool = connect(settings).await?;
    store::chain::verify(&pool)
        .await
        .context("cannot read the events")
}

/// Writes the export to standard output; returns how many events it holds. A closed pipe (the
/// reader had enough) ends it quietly.
async fn export(settings: &Settings, filter: &ExportFilter, source: &str) -> anyhow::Result<u64> {
    let pool = connect(settings).await?;
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout());
    let mut events = std::pin::pin!(store::audit::export(&pool, filter));
    let mut count = 0;
    while let Some(event) = events.try_next().await.context("cannot read the events")? {
        let written = serde_json::to_writer(&mut out, &event.cloud_event(source))
            .map_err(std::io::Error::from)
            .and_then(|()| out.write_all(b"\n"));
        match written {
            Ok(()) => count += 1,
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => return Ok(count),
            Err(error) => return Err(error).context("cannot write the export"),
        }
    }
    match out.flush() {
        Err(error) if error.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(error).context("cannot write the export")
        }
        _ => Ok(count),
    }
}
