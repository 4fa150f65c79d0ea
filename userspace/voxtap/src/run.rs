//! `voxtap run`: live capture from an interface into the same engine `voxtap replay` uses.
//!
//! The capture thread: capture batches → engine, with the engine's media endpoints mirrored
//! into the XDP program's map so the kernel passes exactly the RTP of known calls; the store
//! (files and catalog) runs on its own thread behind a bounded queue ([`crate::writer`]). The control
//! socket has threads of its own: the capture thread only takes its parsed requests off a
//! queue, without waiting. SIGINT or
//! SIGTERM ends the run cleanly: every open recording and catalog row is finalised and the XDP
//! program detaches (it is held by a bpf_link, so it also goes away if the process is killed).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use voxtap_capture::afpacket::{AfPacket, AfPacketOptions};
use voxtap_capture::afxdp::{AfXdp, AfXdpOptions};
use voxtap_capture::live::{LiveCapture, QueueStats};
use voxtap_capture::promisc::Promiscuous;
use voxtap_capture::xdp::{XdpOptions, XdpProgram, rx_queue_count};
use voxtap_core::stats::Stats;
use voxtap_core::{Event, Timestamp};
use voxtap_store::{RunSummary, WriteHealth};

use std::sync::Mutex;

use voxtap_view::metrics::MetricsServer;
use voxtap_view::proto::Snapshot;

use crate::board::{Board, HeadInput, Meter};
use crate::status::{self, SharedBoard, StatusSocket};
use crate::workers::{self, Engines, Sink};
use crate::writer::{QueueWaits, Writer};

use crate::config::Config;
use crate::control::{ControlFigures, ControlSocket, Limits};
use crate::{CaptureKind, RunArgs};

pub fn run(args: &RunArgs) -> Result<()> {
    let mut cfg = Config::load_or_default(args.config.as_deref())?;
    cfg.monitor = cfg.status.enabled;
    let workers = workers::count(args.workers, &cfg, "run");
    let mut engines = Engines::new(&cfg, workers, true);

    let term = Arc::new(AtomicBool::new(false));
    let report_now = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&term))
            .context("cannot install a signal handler")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGUSR1, Arc::clone(&report_now))
        .context("cannot install a signal handler")?;
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload))
        .context("cannot install a signal handler")?;

    // Capture first: if it cannot work, nothing is written.
    let mut live = open_capture(args, &cfg)?;
    eprintln!(
        "voxtap run: capturing on {} with {}",
        args.iface,
        live.describe()
    );

    let source = format!("{} ({})", args.iface, live.describe());
    let store = cfg.open_store(&args.out, source.clone())?;
    // Recordings are sent on as they are finished, by a thread of its own.
    let dispatcher = crate::dispatch::Background::start(&args.out, &cfg)?;

    let control_path = args
        .control
        .clone()
        .unwrap_or_else(|| args.out.join("control.sock"));
    let (control, control_queue) = ControlSocket::bind(&control_path, Limits::default())?;

    // The live view: the board the writer keeps, published to viewers and to Prometheus.
    let board: Option<SharedBoard> = cfg.status.enabled.then(|| {
        Arc::new(Mutex::new(Board::new(Duration::from_secs(
            cfg.status.linger_s,
        ))))
    });
    let status_socket = match &board {
        Some(b) => {
            let path = cfg
                .status
                .socket
                .clone()
                .unwrap_or_else(|| status::default_socket(&args.out));
            let s = StatusSocket::bind(&path, Arc::clone(b))?;
            eprintln!("voxtap run: live view on {} (voxtap tui)", path.display());
            Some(s)
        }
        None => None,
    };
    let _metrics = match (cfg.metrics_listen(), &board) {
        (Some(addr), Some(b)) => {
            let b = Arc::clone(b);
            let latest: Arc<dyn Fn() -> Option<Arc<Snapshot>> + Send + Sync> =
                Arc::new(move || b.lock().ok().map(|b| Arc::new(b.summary())));
            let m = MetricsServer::start(addr, latest)?;
            eprintln!("voxtap run: metrics on http://{}/metrics", m.local_addr());
            Some(m)
        }
        (Some(_), None) => {
            anyhow::bail!("metrics.listen needs the live view: set status.enabled = true")
        }
        _ => None,
    };
    let mode = match args.capture {
        CaptureKind::Xdp => "xdp",
        CaptureKind::Afpacket => "afpacket",
    };
    let mut meter = Meter::default();
    let mut last_head = Instant::now();

    // Everything privileged is done: the program is attached, the sockets are bound, the
    // output is open. Map updates and reads go through file descriptors we already hold.
    crate::privileges::drop_all().context("cannot drop capabilities")?;
    eprintln!("voxtap run: ready (capabilities dropped); SIGINT or SIGTERM stops, SIGUSR1 reports");

    let interval = Duration::from_secs(cfg.capture.stats_interval_s.max(1));
    let mut report = Reporter::new(interval);
    let mut endpoint_errors = 0u64;
    let mut store = Writer::spawn(store, board.clone());
    let _pruner = crate::retention::Pruner::spawn(
        &args.out,
        cfg.retention.policy(),
        cfg.retention.interval(),
    );
    if engines.count() > 1 {
        eprintln!("voxtap run: {} workers", engines.count());
    }
    while !term.load(Ordering::Relaxed) {
        let mut sink = |ev| route(ev, &mut store, live.xdp.as_mut(), &mut endpoint_errors);
        let mut failed = None;
        let got = live
            .capture
            .poll(Duration::from_millis(100), &mut |f| {
                if failed.is_none()
                    && let Err(e) = engines.handle(f.ts, f.link, f.data, &mut sink)
                {
                    failed = Some(e);
                }
            })
            .context("capture failed")?;
        if let Some(e) = failed {
            return Err(e);
        }
        if got == 0 {
            // Idle: let packet time advance with the clock so timeouts still fire.
            engines.timeout(wall_clock(), &mut sink)?;
        }
        engines.flush_live(got == 0, &mut sink)?;
        control_queue.drain(|req| {
            match engines.control(&req.sip_call_id, wall_clock(), req.command(), &mut sink) {
                Ok(outcome) => outcome.refusal(&req.sip_call_id).map_or(Ok(()), Err),
                Err(e) => Err(format!("{e:#}")),
            }
        });
        if reload.swap(false, Ordering::Relaxed) {
            reload_rules(args, &mut engines, &mut sink)?;
        }
        // Live audio is not held back for a full batch.
        store.send()?;
        if let Some(b) = &board
            && last_head.elapsed() >= status::INTERVAL
        {
            last_head = Instant::now();
            let (stats, calls, recordings, each) = engines.figures();
            let queues = live.capture.stats();
            let xdp = live.xdp.as_ref().and_then(|p| p.counters().ok());
            let head = meter.head(&HeadInput {
                source: &source,
                mode,
                stats: &stats,
                active_calls: calls,
                active_recordings: recordings,
                workers: &each,
                shed: engines.dropped(),
                queues: &queues,
                redirect_failed: xdp.map_or(0, |c| c.redirect_failed),
                kernel_filter: xdp.map(kernel_filter).unwrap_or_default(),
                progress: None,
                finished: false,
                writer_queued: store.queued(),
                writer_lag: store.lag(),
                disk: store.health(),
                now: wall_clock(),
            });
            // Never wait for a viewer's copy or the writer: a busy board gets the next head.
            if let Ok(mut b) = b.try_lock() {
                b.set_head(head);
            }
        }
        if report.due() || report_now.swap(false, Ordering::Relaxed) {
            report.print(
                View::Running(&engines),
                &mut live,
                Sides {
                    endpoint_errors,
                    control: control.figures(),
                    disk: store.health(),
                    writer: store.waits(),
                    viewers: status_socket.as_ref().map(|s| &*s.figures),
                },
            );
        }
    }

    eprintln!("voxtap run: stopping: finalising open calls and recordings");
    let shed = engines.dropped();
    let (stats, now, figures) =
        engines.finish(&mut |ev| route(ev, &mut store, live.xdp.as_mut(), &mut endpoint_errors))?;
    store.send()?;
    report.print(
        View::Finished(&stats),
        &mut live,
        Sides {
            endpoint_errors,
            control: control.figures(),
            disk: store.health(),
            writer: store.waits(),
            viewers: status_socket.as_ref().map(|s| &*s.figures),
        },
    );
    // The last figures are out before the run says it stopped.
    drop(report);
    let summary = RunSummary::from_stats(&stats, now);
    let done = store.finish(&summary)?;
    if let Some(d) = dispatcher {
        d.stop();
    }
    // Detach before reporting success.
    drop(live);
    println!(
        "voxtap run: stopped: {} calls seen, {} answered, {} recorded ({} partial, {} without audio, {} the disk refused), {} frames, {} malformed, {} unmatched RTP, {} late, {} SRTP failed, {} undecodable streams, {} encrypted streams",
        stats.calls_seen,
        stats.calls_answered,
        done.recordings,
        done.recordings_partial,
        done.recordings_no_audio,
        done.recordings_write_failed,
        stats.frames,
        stats.malformed_total(),
        stats.rtp_unmatched,
        stats.late_packets,
        stats.decrypt_failures,
        stats.undecodable_streams,
        stats.encrypted_streams
    );
    if let Some(line) = crate::evidence::summary_line(&stats, &done.evidence) {
        println!("voxtap run: evidence: {line}");
    }
    if !figures.is_empty() {
        let each: Vec<String> = figures
            .iter()
            .enumerate()
            .map(|(i, f)| format!("worker {i} {} RTP packets of its calls", f.owned_rtp))
            .collect();
        println!(
            "voxtap run: {} workers: {}; shed while behind: {} media frames, {} other frames",
            figures.len(),
            each.join(", "),
            shed.media,
            shed.other
        );
    }
    Ok(())
}

/// SIGHUP: re-reads the config file and swaps in its recording rules without touching calls in
/// flight. A bad file is reported and the running rules stay, so a typo never stops recording.
/// The XDP program's counters as the status protocol carries them.
fn kernel_filter(c: voxtap_capture::xdp::XdpCounters) -> voxtap_view::proto::KernelFilter {
    voxtap_view::proto::KernelFilter {
        passed_sip: c.passed_sip,
        passed_rtp: c.passed_rtp,
        passed_fragment: c.passed_fragment,
        passed_rtp_guess: c.passed_rtp_guess,
        dropped: c.dropped,
        parse_failed: c.parse_failed,
        decapsulated: c.decapsulated,
    }
}

fn reload_rules(args: &RunArgs, engines: &mut Engines, sink: &mut Sink<'_>) -> Result<()> {
    let Some(path) = &args.config else {
        eprintln!("voxtap run: SIGHUP: no --config file to reload");
        return Ok(());
    };
    match Config::load(path) {
        Ok(cfg) => {
            engines.set_policy(&|| cfg.policy(), sink)?;
            eprintln!(
                "voxtap run: SIGHUP: reloaded the recording rules from {}",
                path.display()
            );
        }
        Err(e) => eprintln!("voxtap run: SIGHUP: kept the running rules: {e:#}"),
    }
    Ok(())
}

/// The capture in use, and the XDP program when there is one.
struct Live {
    // Field order matters: the sockets close before the program detaches.
    capture: Box<dyn LiveCapture>,
    xdp: Option<XdpProgram>,
    /// Mirrored frames are addressed to other hosts: without this a NIC's MAC filter drops
    /// them before XDP runs. (libpcap does the same for AF_PACKET.)
    _promiscuous: Option<Promiscuous>,
}

impl Live {
    fn describe(&self) -> String {
        match &self.xdp {
            Some(p) => format!("XDP {:?} mode, {}", p.mode(), self.capture.describe()),
            None => self.capture.describe(),
        }
    }
}

fn open_capture(args: &RunArgs, cfg: &Config) -> Result<Live> {
    // Neither capture can use an interface that is not there: say so, not "try the other".
    if !voxtap_capture::interface_exists(&args.iface) {
        bail!("{}", voxtap_capture::no_such_interface(&args.iface));
    }
    match args.capture {
        CaptureKind::Afpacket => {
            let cap = AfPacket::open(&args.iface, AfPacketOptions::default())
                .with_context(|| format!("cannot capture on {} with AF_PACKET", args.iface))?;
            Ok(Live {
                capture: Box::new(cap),
                xdp: None,
                _promiscuous: None,
            })
        }
        CaptureKind::Xdp => {
            let opts = XdpOptions {
                sip_ports: cfg.capture.sip_ports.clone(),
                pass_unknown_rtp: cfg.capture.pass_unknown_rtp,
            };
            // The loader's errors say why XDP cannot work and suggest --capture afpacket.
            let mut prog = XdpProgram::attach(&args.iface, &opts)?;
            let queues: Vec<u32> = match args.queues {
                Some(n) => (0..n).collect(),
                None => (0..rx_queue_count(&args.iface).unwrap_or(1).max(1)).collect(),
            };
            let xsk = AfXdp::open(&args.iface, &queues, AfXdpOptions::default()).map_err(|e| {
                anyhow::anyhow!(
                    "cannot open AF_XDP sockets on {}: {e}\nhint: use --capture afpacket",
                    args.iface
                )
            })?;
            for (queue, fd) in xsk.socket_fds() {
                prog.register_socket(queue, fd).with_context(|| {
                    format!("cannot register the AF_XDP socket of queue {queue}")
                })?;
            }
            let promiscuous = Promiscuous::enable(&args.iface)
                .with_context(|| format!("cannot put {} in promiscuous mode", args.iface))?;
            Ok(Live {
                capture: Box::new(xsk),
                xdp: Some(prog),
                _promiscuous: Some(promiscuous),
            })
        }
    }
}

/// An event to the store, or (a media endpoint) to the XDP program's map.
fn route(
    ev: Event,
    store: &mut Writer,
    xdp: Option<&mut XdpProgram>,
    errors: &mut u64,
) -> Result<()> {
    if let Event::MediaEndpoint {
        endpoint, active, ..
    } = ev
    {
        if let Some(p) = xdp {
            let r = if active {
                p.add_endpoint(endpoint)
            } else {
                p.remove_endpoint(endpoint)
            };
            if r.is_err() {
                // A full map only costs that call's RTP in the kernel filter; count it.
                *errors += 1;
            }
        }
        return Ok(());
    }
    store.push(ev)
}

pub(crate) fn wall_clock() -> Timestamp {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(d.as_nanos() as u64)
}

/// Live figures on stderr: per-queue rates, kernel and engine drops, active calls, and the
/// clients the control socket turned away.
///
/// The capture thread only builds the line; a thread of its own writes it, so a stderr that
/// nobody reads (a journal that has stalled, a full pipe) never holds capture up. Lines that
/// find that thread still stuck on an earlier one are not written, and the next line that is
/// says how many were lost.
struct Reporter {
    interval: Duration,
    last: Instant,
    last_packets: Vec<u64>,
    /// Each worker's RTP packets of its calls at the last line.
    last_owned: Vec<u64>,
    out: Option<std::sync::mpsc::SyncSender<String>>,
    writer: Option<std::thread::JoinHandle<()>>,
    unwritten: u64,
}

/// What a live line reports: the running engines, or a run's final figures.
enum View<'a> {
    Running(&'a Engines),
    Finished(&'a Stats),
}

/// What a live line reports besides the engines and the capture.
struct Sides<'a> {
    endpoint_errors: u64,
    control: ControlFigures,
    disk: WriteHealth,
    writer: QueueWaits,
    viewers: Option<&'a status::StatusFigures>,
}

/// Report lines waiting for stderr: a few, so a slow reader loses lines, not capture time.
const REPORT_LINES_AHEAD: usize = 4;

impl Reporter {
    fn new(interval: Duration) -> Self {
        let (out, lines) = std::sync::mpsc::sync_channel::<String>(REPORT_LINES_AHEAD);
        // It ends when the reporter (the sender) goes, after the last line.
        let writer = std::thread::Builder::new()
            .name("voxtap-report".into())
            .spawn(move || {
                use std::io::Write;
                for line in lines {
                    let mut err = std::io::stderr().lock();
                    let _ = writeln!(err, "{line}");
                }
            })
            .ok();
        Self::with_output(interval, out, writer)
    }

    fn with_output(
        interval: Duration,
        out: std::sync::mpsc::SyncSender<String>,
        writer: Option<std::thread::JoinHandle<()>>,
    ) -> Self {
        Self {
            interval,
            last: Instant::now(),
            last_packets: Vec::new(),
            last_owned: Vec::new(),
            out: Some(out),
            writer,
            unwritten: 0,
        }
    }

    fn emit(&mut self, mut line: String) {
        if self.unwritten > 0 {
            line += &format!(
                " | {} earlier report lines not written (stderr was not read)",
                self.unwritten
            );
        }
        match self.out.as_ref().map(|o| o.try_send(line)) {
            Some(Ok(())) => self.unwritten = 0,
            _ => self.unwritten += 1,
        }
    }

    fn due(&self) -> bool {
        self.last.elapsed() >= self.interval
    }

    fn print(&mut self, view: View<'_>, live: &mut Live, sides: Sides<'_>) {
        let Sides {
            endpoint_errors,
            control,
            disk,
            writer,
            viewers,
        } = sides;
        let secs = self.last.elapsed().as_secs_f64().max(1e-3);
        let mut workers = String::new();
        let (stats, calls, recordings) = match view {
            View::Finished(stats) => (stats.clone(), 0, 0),
            View::Running(engines) => {
                let (stats, calls, recordings, each) = engines.figures();
                if !each.is_empty() {
                    self.last_owned.resize(each.len(), 0);
                    let d = engines.dropped();
                    workers = format!(
                        " | workers {}: behind, shed {} media frames, dropped {} other frames",
                        each.len(),
                        d.media,
                        d.other
                    );
                    for (i, (f, last)) in each.iter().zip(self.last_owned.iter_mut()).enumerate() {
                        let pps = (f.owned_rtp - (*last).min(f.owned_rtp)) as f64 / secs;
                        *last = f.owned_rtp;
                        workers += &format!(", w{i} {pps:.0} RTP pps of its calls");
                    }
                }
                (stats, calls, recordings)
            }
        };
        let s = &stats;
        self.last = Instant::now();
        let queues: Vec<QueueStats> = live.capture.stats();
        self.last_packets.resize(queues.len(), 0);
        let mut line = String::from("voxtap run:");
        for (q, last) in queues.iter().zip(self.last_packets.iter_mut()) {
            let pps = (q.packets - (*last).min(q.packets)) as f64 / secs;
            *last = q.packets;
            line += &format!(
                " q{} {:.0} pps (ring full {}, fill empty {}, kernel drop {})",
                q.queue, pps, q.rx_ring_full, q.fill_ring_empty, q.kernel_dropped
            );
        }
        if let Some(Ok(c)) = live.xdp.as_ref().map(XdpProgram::counters) {
            line += &format!(
                " | xdp passed sip {} rtp {} frag {} guess {}, dropped {}, parse failed {}, redirect failed {}, decapsulated {}",
                c.passed_sip,
                c.passed_rtp,
                c.passed_fragment,
                c.passed_rtp_guess,
                c.dropped,
                c.parse_failed,
                c.redirect_failed,
                c.decapsulated
            );
        }
        line += &format!(
            " | engine frames {}, malformed {}, unmatched RTP {}, active calls {}, recording {}, recorded {}, endpoint map errors {} | audio late {}, duplicate {}, SRTP failed {}, concealed {:.1} s, undecodable streams {}, encrypted streams {}, cut {}",
            s.frames,
            s.malformed_total(),
            s.rtp_unmatched,
            calls,
            recordings,
            s.recordings_started,
            endpoint_errors,
            s.late_packets,
            s.duplicate_packets,
            s.decrypt_failures,
            s.concealed_ms as f64 / 1000.0,
            s.undecodable_streams,
            s.encrypted_streams,
            s.recordings_cut
        );
        if s.dropped_total() > 0 {
            let reasons: Vec<String> = voxtap_core::stats::Dropped::ALL
                .iter()
                .filter(|d| s.dropped[**d as usize] > 0)
                .map(|d| format!("{} {}", d.as_str(), s.dropped[*d as usize]))
                .collect();
            line += &format!(
                " | dropped {} ({}; buffers peaked at {:.1} MiB)",
                s.dropped_total(),
                reasons.join(", "),
                s.buffered_peak_bytes as f64 / 1048576.0
            );
        }
        if disk.refused > 0 || disk.failed > 0 {
            line += &format!(
                " | disk refused {} recordings ({:.1} MiB held in memory), write failed {}",
                disk.refused,
                disk.held_bytes as f64 / 1048576.0,
                disk.failed
            );
        }
        line += &format!(
            " | writer queue full {} times, the engine waited {:.3} s",
            writer.times,
            writer.waited.as_secs_f64()
        );
        line += &format!(
            " | control requests {}, busy {}, timed out {}, open {}",
            control.requests, control.busy, control.timed_out, control.open
        );
        if let Some(v) = viewers {
            use std::sync::atomic::Ordering::Relaxed;
            line += &format!(
                " | viewers open {}, refused {}, cut off for not reading {}",
                v.open.load(Relaxed),
                v.refused.load(Relaxed),
                v.stalled.load(Relaxed)
            );
        }
        line += &workers;
        self.emit(line);
    }
}

impl Drop for Reporter {
    /// The last lines are written before the run ends, unless stderr stays blocked: then the
    /// run ends after a second without them.
    fn drop(&mut self) {
        self.out = None;
        if let Some(w) = self.writer.take() {
            let until = Instant::now() + Duration::from_secs(1);
            while !w.is_finished() && Instant::now() < until {
                std::thread::sleep(Duration::from_millis(5));
            }
            if w.is_finished() {
                let _ = w.join();
            }
        }
    }
}

#[cfg(test)]
mod reporter_tests {
    use super::*;

    #[test]
    fn a_stderr_nobody_reads_loses_report_lines_not_capture_time_and_says_so() {
        // A writer that is stuck: one line fits, nobody takes it.
        let (out, lines) = std::sync::mpsc::sync_channel(1);
        let mut r = Reporter::with_output(Duration::from_secs(10), out, None);
        // None of these waits: a blocking send would hang here.
        r.emit("first".into());
        r.emit("second".into());
        r.emit("third".into());
        assert_eq!(r.unwritten, 2);
        assert_eq!(lines.recv().unwrap(), "first");
        r.emit("fourth".into());
        assert_eq!(
            lines.recv().unwrap(),
            "fourth | 2 earlier report lines not written (stderr was not read)"
        );
        assert_eq!(r.unwritten, 0);
        r.emit("fifth".into());
        assert_eq!(lines.recv().unwrap(), "fifth");
    }
}
