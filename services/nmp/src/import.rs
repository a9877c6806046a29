//! `nmp import numbers FILE.csv --account NAME`: the portal's CSV import from the command line,
//! on the same engine (`api::import`). Every row is checked before anything is written; the
//! rows that pass are written a hundred at a time, with progress on standard error.
//!
//! Exit code: 0 when every row went in, 1 when some were refused (the others went in, unless
//! `--check-only`), 2 when the file or the account cannot be used at all.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use api::import::{self, RowResult};
use clap::Args;
use commands::CommandService;
use domain::AccountName;
use store::{EventMetadata, EventStore};

use crate::Settings;

#[derive(Args, Debug)]
pub struct ImportNumbers {
    /// The CSV file (columns as in README, "Importing numbers from CSV").
    pub file: PathBuf,
    /// The account the numbers go into.
    #[arg(long)]
    pub account: String,
    /// Check every row and report, without writing anything.
    #[arg(long)]
    pub check_only: bool,
    /// Write the file back with each row's result (`result`, `errorCode`, `errorColumn`,
    /// `errorMessage`) to this file.
    #[arg(long)]
    pub results: Option<PathBuf>,
}

/// Runs the import; the exit code as the module says.
pub async fn run(settings: &Settings, args: ImportNumbers) -> anyhow::Result<i32> {
    let account = match AccountName::parse(args.account.clone()) {
        Ok(account) => account,
        Err(error) => {
            eprintln!("error: --account: {error}");
            return Ok(2);
        }
    };
    let bytes = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let sheet = match import::read(&bytes) {
        Ok(sheet) => sheet,
        Err(error) => {
            eprintln!("error: {}: {error}", args.file.display());
            return Ok(2);
        }
    };
    let pool = store::connect(&settings.database_url, 4)
        .await
        .context("cannot open the event store")?;
    let commands = CommandService::new(EventStore::new(pool));
    let checked = match import::check(&commands, &account, &sheet).await {
        Ok(checked) => checked,
        Err(import::ImportError::AccountNotFound(name)) => {
            eprintln!("error: account '{name}' does not exist");
            return Ok(2);
        }
        Err(error) => return Err(error.into()),
    };
    let refused = checked.iter().filter(|c| c.outcome.is_err()).count();
    eprintln!(
        "{} rows checked: {} can go in, {refused} refused",
        checked.len(),
        checked.len() - refused
    );
    let results: Vec<RowResult> = if args.check_only {
        checked
            .into_iter()
            .map(|c| match c.outcome {
                Ok(_) => RowResult::Updated,
                Err(error) => RowResult::Refused(error),
            })
            .collect()
    } else {
        let metadata = EventMetadata::system("nmp-import");
        let mut last_shown = 0;
        let results = import::import(&commands, &account, checked, &metadata, |done, total| {
            // A line a tenth of the way, and at the end.
            if done == total || done >= last_shown + total.div_ceil(10).max(1) {
                last_shown = done;
                eprint!(
                    "\rimported {done} of {total} rows ({}%)",
                    done * 100 / total.max(1)
                );
                let _ = std::io::stderr().flush();
            }
        })
        .await;
        eprintln!();
        results
    };
    let mut failed = 0;
    for result in &results {
        if let RowResult::Refused(error) = result {
            failed += 1;
            if failed <= 50 {
                eprintln!(
                    "row {}: {}{}: {}",
                    error.row,
                    error
                        .column
                        .as_deref()
                        .map(|c| format!("{c}: "))
                        .unwrap_or_default(),
                    error.code,
                    error.message
                );
            }
        }
    }
    if failed > 50 {
        eprintln!("… and {} more refused rows", failed - 50);
    }
    if let Some(path) = &args.results {
        std::fs::write(path, import::results_csv(&sheet, &results))
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    let created = results
        .iter()
        .filter(|r| matches!(r, RowResult::Created))
        .count();
    if args.check_only {
        println!(
            "{} rows would go in, {failed} refused",
            results.len() - failed
        );
    } else {
        println!(
            "{created} created, {} updated, {failed} refused",
            results.len() - created - failed
        );
    }
    Ok(if failed == 0 { 0 } else { 1 })
}
