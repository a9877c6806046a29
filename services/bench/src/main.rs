//! `nmp-bench`: measure nmp's components against the local PostgreSQL and NATS
//! (`nmp-bench relay`, `nmp-bench projections`, `nmp-bench saga`). A binary of its own, so the
//! production `nmp` binary carries none of it.

mod bench;
mod bench_saga;

use clap::Parser;

// The same allocator as the nmp binary, so the figures measure what production runs.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "nmp-bench",
    version,
    about = "Measure nmp's components against the local PostgreSQL and NATS"
)]
struct Cli {
    #[command(subcommand)]
    target: bench::Bench,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    bench::run(Cli::parse().target).await
}
