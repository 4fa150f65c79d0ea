//! voxtap: a passive SIP/RTP call recorder for mirror ports.

/// mimalloc: per-thread free lists suit the engine's and the writer's threads, each
/// allocating and freeing its own (the capture path allocates nothing per packet; see
/// perf/RESULTS.md for allocations per packet).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod board;
mod config;
mod control;
mod dispatch;
mod evidence;
mod explain;
mod privileges;
mod replay;
mod retention;
mod rules_config;
mod run;
mod status;
mod workers;
mod writer;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// A passive SIP/RTP call recorder for mirror ports and capture files.
///
/// voxtap records calls it sees on a mirror (SPAN) port or in a capture file. It never takes
/// part in a call: it reads copies of SIP and RTP and writes one stereo recording per answered
/// conversation (caller left, callee right; the legs a PBX makes of it tied together) and an
/// SQLite catalog of every call, conversation, stream and DTMF digit.
#[derive(Parser, Debug)]
#[command(
    name = "voxtap",
    version,
    propagate_version = true,
    after_help = "Exit status: 0 on success, 1 on error, 2 on a usage error (an unknown option, a missing argument)."
)]
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
    /// everything read before it has been written. Exit status: 0 on success, 1 on error,
    /// 2 on a usage error.
    Replay(ReplayArgs),
    /// Capture live from a network interface (a mirror/SPAN port) until SIGINT or SIGTERM.
    ///
    /// With --capture xdp (the default) an XDP program filters in the kernel: it passes SIP on
    /// the configured ports, IP fragments, and RTP of the media endpoints learned from SDP to
    /// AF_XDP sockets (one per RX queue) and drops everything else before it costs anything.
    /// --capture afpacket reads every frame through libpcap instead, for NICs or kernels
    /// without XDP. Recordings and the catalog are the same as `voxtap replay` writes. Needs
    /// CAP_BPF, CAP_NET_ADMIN, CAP_NET_RAW, CAP_PERFMON and CAP_IPC_LOCK (or root) to start,
    /// and drops them all once capture is set up. Live figures go to stderr every
    /// capture.stats_interval_s seconds and on SIGUSR1.
    Run(RunArgs),
    /// Tell the story of one call from the catalog: parties, times, how it ended, the
    /// recording decision with the policy's trace, recordings, DTMF and pause/resume events,
    /// and RTP streams with loss and jitter.
    Explain(ExplainArgs),
    /// A call's evidence (its SIP and RTP frames as captured, with `[evidence] enabled`; see
    /// docs/evidence.md): list its files, or write them as one plain pcap with -w. `voxtap erase` and `voxtap
    /// prune` remove them with the call's recordings.
    /// Exit status: 0 on success, 1 on error.
    Evidence(EvidenceArgs),
    /// Start, stop, pause or resume the recording of a running call through the control socket
    /// of `voxtap run` (see its --control option).
    Control(ControlArgs),
    /// The live dashboard of a running `voxtap run`: calls, SIP ladders, streams, drops and
    /// workers (see docs/tui.md). It attaches to the run's status socket and, if the run goes
    /// away, says so and attaches again every second. q quits, F1 or ? lists the keys.
    Tui(TuiArgs),
    /// Send on the finished recordings a run left in its catalog's dispatch queue (see
    /// docs/dispatch.md): works the queue until every job is done or has given up, or --wait
    /// passes; what is left stays pending. Exit status: 0 when the queue was worked (the
    /// summary says what is left), 1 on an error.
    Dispatch(dispatch::DispatchArgs),
    /// Apply the retention of [retention] now (the daemon also does, as it runs): recordings
    /// and evidence older than their tenant's age or over its quota are deleted, oldest first,
    /// and their catalog rows become `expired`, keeping their metadata. A recording whose
    /// dispatch is pending is held back for its grace period. Exit status: 0 on success, 1 on
    /// error.
    Prune(retention::PruneArgs),
    /// Erase a person's calls for a data-protection request: their recordings and evidence
    /// are deleted, the personal fields of their catalog rows (numbers, names, SIP URIs,
    /// addresses, DTMF digits) blanked, an audit row written (who, when, which calls, why),
    /// and the catalog vacuumed so the values are gone from the file. Every leg of the calls'
    /// conversations goes with them. Root only. Exit status: 0 on success, 1 on error.
    Erase(retention::EraseArgs),
    /// Recording rules (see docs/rules.md).
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Print a completion script for a shell (the README installs bash's in
    /// /usr/local/share/bash-completion/completions/voxtap).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the voxtap(1) man page, or write it and one page per command (voxtap-run(1), ...)
    /// into a directory.
    Man {
        /// Write voxtap.1, voxtap-replay.1, ... here instead (e.g. /usr/local/share/man/man1).
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

/// `voxtap completions SHELL`: the script on stdout.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<()> {
    let mut cmd = <Cli as clap::CommandFactory>::command();
    clap_complete::generate(shell, &mut cmd, "voxtap", &mut std::io::stdout());
    Ok(())
}

/// `voxtap man [--out-dir DIR]`: the pages, generated from the same definitions as `--help`.
fn man(out_dir: Option<&std::path::Path>) -> anyhow::Result<()> {
    use anyhow::Context as _;
    let cmd = <Cli as clap::CommandFactory>::command();
    match out_dir {
        None => clap_mangen::Man::new(cmd)
            .render(&mut std::io::stdout())
            .context("cannot write the man page to stdout"),
        Some(dir) => clap_mangen::generate_to(cmd, dir)
            .with_context(|| format!("cannot write the man pages into {}", dir.display())),
    }
}

#[derive(Subcommand, Debug)]
enum RulesCommand {
    /// Validate a config file's [rules] and print a summary of tenants, users, devices and
    /// DDIs. A malformed or contradictory rule is reported with its line. Exit status: 0 if
    /// the config is valid, 1 if not, 2 on a usage error.
    Check {
        /// The TOML configuration file.
        #[arg(value_name = "CONFIG")]
        config: PathBuf,
    },
}

#[derive(clap::Args, Debug)]
pub struct ControlArgs {
    /// The control socket of the running voxtap (by default DIR/control.sock of its --out).
    #[arg(long, value_name = "PATH")]
    pub socket: PathBuf,
    /// What to do.
    #[arg(value_parser = ["start", "stop", "pause", "resume"])]
    pub action: String,
    /// The SIP Call-ID of the answered call.
    #[arg(value_name = "CALL-ID")]
    pub call: String,
}

#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("where").required(true).args(["out", "socket"])))]
pub struct TuiArgs {
    /// The output directory of the running voxtap: its status socket is DIR/status.sock.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The status socket itself (the run's [status] socket setting).
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,
    /// The run's control socket, for the keys p (pause, resume) and R (stop, start). Default:
    /// DIR/control.sock with --out; without either, the dashboard only shows.
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,
    /// Where the keys w and W save a call's SIP (pcap, text). Default: the current directory.
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub save_dir: PathBuf,
}

#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    /// The output directory voxtap wrote (holding catalog.sqlite).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The call: its number in the catalog (calls.id) or its SIP Call-ID.
    #[arg(value_name = "CALL")]
    pub call: String,
}

#[derive(clap::Args, Debug)]
pub struct EvidenceArgs {
    /// The output directory voxtap wrote (holding catalog.sqlite).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// The call: its number in the catalog (calls.id) or its SIP Call-ID.
    #[arg(value_name = "CALL")]
    pub call: String,
    /// Write the call's frames to FILE as a plain libpcap file (as tcpdump -w does).
    #[arg(short = 'w', long = "write", value_name = "FILE")]
    pub write: Option<PathBuf>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureKind {
    /// XDP program + AF_XDP sockets (kernel-side filtering; native driver mode if possible).
    Xdp,
    /// AF_PACKET through libpcap: works on any interface, filters in userspace.
    Afpacket,
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The interface to capture on, e.g. the mirror port eth1.
    #[arg(long, value_name = "IF")]
    pub iface: String,
    /// How to capture.
    #[arg(long, value_enum, default_value = "xdp")]
    pub capture: CaptureKind,
    /// TOML configuration file (see docs/config.md); defaults apply without one.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output directory for recordings/ and catalog.sqlite; created if missing.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Number of RX queues to bind AF_XDP sockets to (default: all of the interface's).
    #[arg(long, value_name = "N")]
    pub queues: Option<u32>,
    /// The local control socket (start/stop/pause/resume by SIP Call-ID; see `voxtap
    /// control`). Default: DIR/control.sock.
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,
    /// Engine threads, each decoding and recording a share of the calls (every worker reads
    /// all the input). Default: one per core; one when a tenant listens for in-band DTMF.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub workers: Option<u32>,
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
    /// Engine threads, each decoding and recording a share of the calls (every worker reads
    /// all the input; the output is the same whatever the count). Default: one per core;
    /// one when a tenant listens for in-band DTMF. On 2 cores, 1 is faster for G.711 and 2
    /// for costlier codecs (perf/RESULTS.md).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=256))]
    pub workers: Option<u32>,
    /// Show the live dashboard while replaying (see docs/tui.md); it stays up, browsable,
    /// when the input is over, until q. The summary is printed after it closes.
    #[arg(long)]
    pub tui: bool,
    /// Replay at the capture's own pace (its timestamps), not as fast as it goes.
    #[arg(long)]
    pub realtime: bool,
    /// Seconds to work the dispatch queue (docs/dispatch.md) after the input is over, until
    /// every job is done or has given up; 0 leaves it all pending for `voxtap dispatch`.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub dispatch_wait: u64,
    /// Capture files (pcap or pcapng; Ethernet, Linux cooked SLL/SLL2, raw IP or loopback).
    #[arg(value_name = "CAPTURE", required = true)]
    pub captures: Vec<PathBuf>,
}

/// `voxtap tui`: the dashboard on this terminal, fed by a running voxtap's status socket.
fn tui(args: &TuiArgs) -> anyhow::Result<()> {
    let path = match (&args.socket, &args.out) {
        (Some(p), _) => p.clone(),
        (None, Some(out)) => status::default_socket(out),
        (None, None) => unreachable!("clap requires one"),
    };
    if !std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        anyhow::bail!("voxtap tui needs a terminal (stdout is not one)");
    }
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGHUP] {
        signal_hook::flag::register(sig, std::sync::Arc::clone(&stop))?;
    }
    let mut feed = status::Viewer::new(path);
    let mut app = voxtap_view::tui::App::with_save_dir(&args.save_dir);
    // Control needs the control socket's permissions too; the daemon's answer or the
    // refusal shows on the bottom line.
    if let Some(socket) = args
        .control
        .clone()
        .or_else(|| args.out.as_ref().map(|o| o.join("control.sock")))
    {
        app = app.with_control(Box::new(move |action, call| {
            control::ask(&socket, action, call).map_err(|e| format!("{e:#}"))
        }));
    }
    voxtap_view::tui::run_app(app, &mut feed, &stop)?;
    Ok(())
}

fn rules_check(path: &std::path::Path) -> anyhow::Result<()> {
    let cfg = config::Config::load(path)?;
    match &cfg.compiled_rules {
        Some(rules) => print!("{}", rules_config::summary(rules)),
        None => println!("no [rules] section: every answered call is recorded"),
    }
    if !cfg.recording.enabled {
        println!("note: recording.enabled = false: nothing is recorded whatever the rules say");
    }
    Ok(())
}

/// Raises the soft descriptor limit to the hard one (systemd's default soft limit is 1,024):
/// recordings share a pool sized from it, so a higher limit keeps more of them open.
fn raise_nofile_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a pointer to a local rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    raise_nofile_limit();
    if !matches!(cli.command, Command::Run(_) | Command::Tui(_)) {
        // A command that prints and ends (`replay | head`) ends quietly when its reader goes,
        // as Unix tools do, rather than panic on the write. The daemon and the dashboard
        // keep Rust's default (a closed pipe is an error they handle).
        // SAFETY: signal(2) with the default disposition, before any thread is started.
        unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    }
    let result = match cli.command {
        Command::Replay(args) => replay::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Explain(args) => explain::run(&args),
        Command::Dispatch(args) => dispatch::command(&args),
        Command::Evidence(args) => evidence::run(&args),
        Command::Control(args) => control::client(&args.socket, &args.action, &args.call),
        Command::Tui(args) => tui(&args),
        Command::Prune(args) => retention::prune(&args),
        Command::Erase(args) => retention::erase(&args),
        Command::Rules {
            command: RulesCommand::Check { config },
        } => rules_check(&config),
        Command::Completions { shell } => completions(shell),
        Command::Man { out_dir } => man(out_dir.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("voxtap: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
