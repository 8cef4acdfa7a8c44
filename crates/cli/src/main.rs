//! The `strato` binary: a thin command line over the strato libraries.
//!
//! `strato runtime …` is the OCI runtime (runc-compatible verbs). It never
//! starts threads before it forks containers (see strato-container's fork-safety
//! invariant), so it must stay free of async runtimes.

mod runtime;

use clap::{Parser, Subcommand};

/// strato: a container platform in one binary.
#[derive(Debug, Parser)]
#[command(name = "strato", version, about, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The OCI runtime: run bundles with runc-compatible verbs.
    Runtime(runtime::RuntimeArgs),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Runtime(args) => runtime::main(args),
    };
    std::process::exit(code);
}
