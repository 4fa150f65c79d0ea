//! voxtap: a passive SIP/RTP call recorder for mirror ports.

mod config;
mod replay;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// voxtap records calls it sees on a mirror (SPAN) port or in a capture file. It never takes
/// part in a call: it reads copies of SIP and RTP and writes one stereo WAV per answered call
/// (caller left, callee right) and an SQLite catalog of every call, stream and DTMF digit.
#[derive(Parser, Debug)]
#[command(name = "voxtap", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Replay pcap/pcapng capture files through the engine and write recordings and a catalog.
    ///
    /// Files are read in the order given, as one continuous input. Recordings go to
    /// DIR/recordings/, the catalog to DIR/catalog.sqlite (see docs/catalog.md). A summary is
    /// printed at the end; on a terminal a progress line shows how far the input has got.
    /// A corrupt capture stops the run with an error naming the file and byte offset, after
    /// everything read before it has been written. Exit status: 0 on success, 1 on error.
    Replay(ReplayArgs),
}

#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    /// TOML configuration file (see docs/config.md); defaults apply without one.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output directory for recordings/ and catalog.sqlite; created if missing.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Do not show the progress line even on a terminal.
    #[arg(long)]
    pub quiet: bool,
    /// Capture files (pcap or pcapng; Ethernet, Linux cooked SLL/SLL2, raw IP or loopback).
    #[arg(value_name = "CAPTURE", required = true)]
    pub captures: Vec<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Replay(args) => replay::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("voxtap: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
