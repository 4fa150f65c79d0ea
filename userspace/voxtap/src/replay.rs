//! `voxtap replay`: capture files → engine → WAV files and the catalog.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use voxtap_capture::CaptureFile;
use voxtap_core::stats::{Dropped, Malformed};
use voxtap_core::{LinkType, Timestamp};
use voxtap_store::RunSummary;

use crate::board::{Board, HeadInput, Meter};
use crate::status::{LocalFeed, SharedBoard};
use crate::workers::{self, Engines};
use crate::writer::Writer;

use crate::ReplayArgs;
use crate::config::Config;

const MIB: f64 = 1024.0 * 1024.0;

pub fn run(args: &ReplayArgs) -> Result<()> {
    let mut cfg = Config::load_or_default(args.config.as_deref())?;
    if args.tui && !std::io::stdout().is_terminal() {
        bail!("--tui needs a terminal (stdout is not one)");
    }
    cfg.monitor = args.tui;
    // Every input is checked before anything is written: a file that is missing, unreadable
    // or not a capture stops the run with nothing made.
    for path in &args.captures {
        CaptureFile::open(path)?;
    }
    let workers = workers::count(args.workers, &cfg, "replay");
    let mut engines = Engines::new(&cfg, workers, false);
    let source = args
        .captures
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(" ");
    let mut dash = args.tui.then(|| Dash::start(source.clone()));
    // The store writes on its own thread; the engine's waits when it falls behind.
    let mut store = Writer::spawn(
        cfg.open_store(&args.out, source)?,
        dash.as_ref().map(|d| Arc::clone(&d.board)),
    );

    let started = Instant::now();
    let mut pace = args.realtime.then(Pace::default);
    let mut progress = Progress::new(!args.quiet && !args.tui && std::io::stderr().is_terminal());
    let total_bytes: u64 = args
        .captures
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let mut done_bytes = 0u64;
    // Corrupt stretches skipped in the input: how many, and bytes.
    let mut skipped = (0u64, 0u64);
    let mut input_error = None;

    'files: for path in &args.captures {
        let mut file = match CaptureFile::open(path) {
            Ok(f) => f,
            Err(e) => {
                input_error = Some(anyhow::Error::new(e));
                break;
            }
        };
        // Frames of a link type the engine cannot read (it counts them as not VoIP).
        let (mut frames_in_file, mut unreadable) = (0u64, None::<(u32, u64)>);
        loop {
            match file.next_frame() {
                Ok(Some(frame)) => {
                    frames_in_file += 1;
                    if let LinkType::Unknown(t) = frame.link {
                        unreadable.get_or_insert((t, 0)).1 += 1;
                    }
                    if let Some(p) = pace.as_mut() {
                        p.wait(frame.ts);
                    }
                    engines.handle(frame.ts, frame.link, frame.data, &mut |ev| store.push(ev))?
                }
                Ok(None) => break,
                Err(e) => {
                    input_error = Some(anyhow::Error::new(e));
                    break 'files;
                }
            }
            if progress.due() {
                progress.show(done_bytes + file.position(), total_bytes, &engines);
            }
            if let Some(d) = dash.as_mut()
                && d.due(pace.is_some())
            {
                if d.quit.load(Ordering::Relaxed) {
                    eprintln!("voxtap replay: the dashboard was closed: stopping the replay");
                    break 'files;
                }
                // Audio and calls reach the board as they are replayed, not in bursts.
                store.send()?;
                let fraction = (done_bytes + file.position()) as f64 / total_bytes.max(1) as f64;
                d.update(&engines, &store, Some(fraction.min(1.0)), false);
            }
        }
        for &(at, n) in file.skipped().iter().take(10) {
            eprintln!(
                "voxtap replay: warning: {}: skipped {n} corrupt bytes at byte offset {at} to reach the next good record",
                path.display()
            );
        }
        if let Some((n, kept)) = file.cut_short() {
            eprintln!(
                "voxtap replay: warning: {}: {n} of its {frames_in_file} frames were cut short by the capture, to at most {kept} bytes (its snapshot length): the SIP and audio past the cut are lost, so those calls cannot be catalogued or recorded whole, and the cut frames are counted as malformed. Capture whole frames (`tcpdump -s 0`)",
                path.display()
            );
        }
        if let Some((link, n)) = unreadable {
            let what = format!(
                "{}: {n} of its {frames_in_file} frames have link type {link}, which voxtap cannot read (it reads Ethernet, Linux cooked SLL/SLL2, raw IP and loopback)",
                path.display()
            );
            if n == frames_in_file {
                input_error = Some(anyhow::anyhow!(what));
                break 'files;
            }
            eprintln!("voxtap replay: warning: {what}");
        }
        skipped.0 += file.skipped().len() as u64;
        skipped.1 += file.skipped().iter().map(|s| s.1).sum::<u64>();
        done_bytes += file.len();
    }
    // Whatever happened to the input, everything seen so far is written.
    let (stats, now, figures) = engines.finish(&mut |ev| store.push(ev))?;
    progress.clear();

    let summary = RunSummary::from_stats(&stats, now);
    let waits = store.waits();
    let report = store.finish(&summary)?;
    let elapsed = started.elapsed();
    let dispatched =
        crate::dispatch::after_replay(&args.out, &cfg, Duration::from_secs(args.dispatch_wait))?;
    if let Some(d) = dash.take() {
        // Browsable until the user quits; the summary follows on the restored terminal.
        d.finish(&stats, now, &figures);
    }

    let pps = stats.frames as f64 / elapsed.as_secs_f64().max(1e-9);
    let malformed: Vec<String> = Malformed::ALL
        .iter()
        .filter(|m| stats.malformed[**m as usize] > 0)
        .map(|m| format!("{} {}", m.as_str(), stats.malformed[*m as usize]))
        .collect();
    println!("voxtap replay: {}", args.out.display());
    println!(
        "  calls seen      {:>10}  ({} picked up from their answer, their INVITE not seen)",
        stats.calls_seen, stats.calls_picked_up
    );
    println!("  answered        {:>10}", stats.calls_answered);
    println!("  recorded        {:>10}", report.recordings);
    println!("  RTP streams     {:>10}", stats.rtp_streams);
    println!(
        "  packets         {:>10}  (SIP messages {}, RTP {}, RTCP {})",
        stats.frames, stats.sip_messages, stats.rtp_packets, stats.rtcp_packets
    );
    println!("  unmatched RTP   {:>10}", stats.rtp_unmatched);
    println!(
        "  audio lost      {:>10}  (late {}, duplicates {}, SRTP failed {}, after call end {}; concealed {:.3} s)",
        stats.late_packets + stats.duplicate_packets + stats.decrypt_failures + stats.rtp_after_end,
        stats.late_packets,
        stats.duplicate_packets,
        stats.decrypt_failures,
        stats.rtp_after_end,
        stats.concealed_ms as f64 / 1000.0
    );
    println!(
        "  streams unread  {:>10}  (undecodable {}, encrypted {})",
        stats.undecodable_streams + stats.encrypted_streams,
        stats.undecodable_streams,
        stats.encrypted_streams
    );
    println!(
        "  recordings      {:>10}  complete, {} partial, {} without audio, {} cut at the maximum length",
        report.recordings_finalised.len() as u64 - report.recordings_partial,
        report.recordings_partial,
        report.recordings_no_audio,
        stats.recordings_cut
    );
    if report.recordings_write_failed > 0 {
        println!(
            "  write failed    {:>10}  recordings the disk refused (their rows say why; {:.1} s of audio arrived after and was dropped)",
            report.recordings_write_failed,
            report.ms_after_write_failure as f64 / 1000.0
        );
    }
    if let Some(line) = crate::evidence::summary_line(&stats, &report.evidence) {
        println!("  evidence        {line}");
    }
    println!(
        "  malformed       {:>10}{}",
        stats.malformed_total(),
        if malformed.is_empty() {
            String::new()
        } else {
            format!("  ({})", malformed.join(", "))
        }
    );
    let dropped: Vec<String> = Dropped::ALL
        .iter()
        .filter(|d| stats.dropped[**d as usize] > 0)
        .map(|d| format!("{} {}", d.as_str(), stats.dropped[*d as usize]))
        .chain([format!(
            "buffers peaked at {:.1} of {:.0} MiB",
            stats.buffered_peak_bytes as f64 / MIB,
            cfg.engine_config().buffer_budget_bytes as f64 / MIB
        )])
        .collect();
    println!(
        "  dropped         {:>10}  ({})",
        stats.dropped_total(),
        dropped.join(", ")
    );
    println!("  not VoIP        {:>10}", stats.ignored);
    if skipped.0 > 0 {
        println!(
            "  corrupt input   {:>10}  bytes skipped in {} places to reach good records",
            skipped.1, skipped.0
        );
    }
    println!(
        "  elapsed         {:>10.3} s  ({:.0} packets/s)",
        elapsed.as_secs_f64(),
        pps
    );
    println!(
        "  writer queue    {:>10}  times full: the engine waited {:.3} s for the disk and the catalog",
        waits.times,
        waits.waited.as_secs_f64()
    );
    println!("  workers         {workers:>10}");
    let secs = elapsed.as_secs_f64().max(1e-9);
    for (i, f) in figures.iter().enumerate() {
        println!(
            "  worker {i:<3}      {:>10}  RTP packets of its calls ({:.0}/s), busy {:.3} s of {:.3} s",
            f.owned_rtp,
            f.owned_rtp as f64 / secs,
            f.busy.as_secs_f64(),
            secs
        );
    }
    if let Some(line) = dispatched {
        println!("  dispatch        {line}");
    }
    println!(
        "  catalog         {}",
        args.out.join("catalog.sqlite").display()
    );
    println!(
        "  recordings      {}",
        args.out.join("recordings").display()
    );

    match input_error {
        Some(e) => Err(e.context("the input ended early; everything before the error was written")),
        None => Ok(()),
    }
}

/// `--tui`: the dashboard on its own thread, fed by the board the writer keeps.
struct Dash {
    board: SharedBoard,
    meter: Meter,
    source: String,
    /// The dashboard was closed (q): the replay stops.
    quit: Arc<AtomicBool>,
    tui: Option<JoinHandle<std::io::Result<()>>>,
    last: Instant,
    counter: u32,
}

impl Dash {
    fn start(source: String) -> Dash {
        // A replay keeps its ended calls to browse (within the board's bounds).
        let mut b = Board::new(Duration::from_secs(u64::from(u32::MAX)));
        b.max_ended = 50_000;
        let board = Arc::new(Mutex::new(b));
        let quit = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
            let _ = signal_hook::flag::register(sig, Arc::clone(&stop));
        }
        let tui = std::thread::Builder::new()
            .name("voxtap-tui".into())
            .spawn({
                let (board, quit) = (Arc::clone(&board), Arc::clone(&quit));
                move || {
                    let mut feed = LocalFeed::new(board);
                    let r = voxtap_view::tui::run(&mut feed, &stop);
                    quit.store(true, Ordering::Relaxed);
                    r
                }
            })
            .expect("spawn the dashboard thread");
        Dash {
            board,
            meter: Meter::default(),
            source,
            quit,
            tui: Some(tui),
            last: Instant::now(),
            counter: 0,
        }
    }

    fn due(&mut self, paced: bool) -> bool {
        self.counter = self.counter.wrapping_add(1);
        (paced || self.counter.is_multiple_of(1024))
            && self.last.elapsed() >= Duration::from_millis(250)
    }

    fn update(&mut self, engines: &Engines, store: &Writer, progress: Option<f64>, done: bool) {
        self.last = Instant::now();
        let (stats, calls, recordings, each) = engines.figures();
        let now = each.iter().map(|f| f.now).max().unwrap_or(Timestamp(0));
        self.set(&HeadInput {
            source: &self.source.clone(),
            mode: "replay",
            stats: &stats,
            active_calls: calls,
            active_recordings: recordings,
            workers: &each,
            shed: engines.dropped(),
            queues: &[],
            redirect_failed: 0,
            kernel_filter: Default::default(),
            progress,
            finished: done,
            writer_queued: store.queued(),
            writer_lag: store.lag(),
            disk: store.health(),
            now,
        });
    }

    fn set(&mut self, input: &HeadInput<'_>) {
        let mut head = self.meter.head(input);
        if let Ok(mut b) = self.board.lock() {
            if head.now == 0.0 {
                head.now = b.summary().now;
            }
            b.set_head(head);
        }
    }

    /// The input is over: the board says so, and the dashboard stays until it is closed.
    fn finish(
        mut self,
        stats: &voxtap_core::stats::Stats,
        now: Timestamp,
        figures: &[workers::WorkerFigures],
    ) {
        self.set(&HeadInput {
            source: &self.source.clone(),
            mode: "replay",
            stats,
            active_calls: 0,
            active_recordings: 0,
            workers: figures,
            shed: workers::Dropped::default(),
            queues: &[],
            redirect_failed: 0,
            kernel_filter: Default::default(),
            progress: Some(1.0),
            finished: true,
            writer_queued: 0,
            writer_lag: Duration::ZERO,
            disk: Default::default(),
            now,
        });
        if let Some(t) = self.tui.take() {
            match t.join() {
                Ok(Err(e)) => eprintln!("voxtap replay: the dashboard failed: {e}"),
                Err(_) => eprintln!("voxtap replay: the dashboard panicked"),
                Ok(Ok(())) => {}
            }
        }
    }
}

/// `--realtime`: holds each frame back until as much wall time has passed since the first
/// as packet time has.
#[derive(Default)]
struct Pace {
    start: Option<(Timestamp, Instant)>,
}

impl Pace {
    fn wait(&mut self, ts: Timestamp) {
        let (first, at) = *self.start.get_or_insert((ts, Instant::now()));
        let due = at + ts.saturating_since(first);
        let now = Instant::now();
        if due > now + Duration::from_millis(1) {
            std::thread::sleep(due - now);
        }
    }
}

/// A one-line progress report on stderr, redrawn at most a few times a second.
struct Progress {
    enabled: bool,
    last: Instant,
    counter: u32,
}

impl Progress {
    fn new(enabled: bool) -> Self {
        Self {
            enabled,
            last: Instant::now(),
            counter: 0,
        }
    }

    fn due(&mut self) -> bool {
        if !self.enabled {
            return false;
        }
        // Checking the clock per frame would cost more than the frame.
        self.counter = self.counter.wrapping_add(1);
        self.counter.is_multiple_of(4096) && self.last.elapsed() >= Duration::from_millis(250)
    }

    fn show(&mut self, done: u64, total: u64, engines: &Engines) {
        self.last = Instant::now();
        let pct = if total > 0 {
            done as f64 * 100.0 / total as f64
        } else {
            0.0
        };
        let (s, active, _, _) = engines.figures();
        eprint!(
            "\r{pct:5.1}%  {} packets  {} calls ({active} active)  {} recorded  {} malformed   ",
            s.frames,
            s.calls_seen,
            s.recordings_started,
            s.malformed_total()
        );
        let _ = std::io::stderr().flush();
    }

    fn clear(&self) {
        if self.enabled {
            eprint!("\r{:80}\r", "");
        }
    }
}
