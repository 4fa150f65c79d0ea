//! `--workers N`: the engine on N threads, each owning a share of the calls.
//!
//! Every worker reads every packet and keeps the same state for every call: the dialogs, the
//! conversations, the servers, the decisions, the flows and each RTP stream's order and
//! digits. That shared state is what makes outputs the same whatever the worker count
//! (docs/pipeline.md says why a split by Call-ID would not be). The audio — SRTP, reordering,
//! decoding, concealment, resampling, the stereo timeline — is done only by the worker that
//! owns the call ([`voxtap_core::vocab::Shard`]), and only it reports the call.
//!
//! The capture thread packs frames into batches that all workers share (one copy, behind an
//! [`Arc`]). Everything else a worker is told — timers, control requests, new rules — goes
//! in the same queues, in order, so every worker sees the same input. Each worker answers
//! each message with the events it caused, tagged with the packet that caused them; the
//! capture thread merges the answers, packet by packet, and hands them on in that order.
//!
//! Replay keeps at most [`IN_FLIGHT`] batches between the reader and the slowest worker,
//! and waits for it: nothing is dropped. A live capture does not wait. Its batches go out at
//! every poll once they hold [`LIVE_FLUSH_FRAMES`] frames or are [`LIVE_FLUSH_AGE`] old, and
//! up to [`LIVE_FRAMES`] frames may be in flight. Past that the workers are behind, and the
//! capture thread sheds media: the RTP and RTCP of the batch are dropped for every worker (so
//! none misses what another saw) and counted, while SIP and everything else is kept for when
//! there is room, so no call is lost for it.

use std::collections::VecDeque;
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use voxtap_core::engine::ControlOutcome;
use voxtap_core::event::Event;
use voxtap_core::policy::{Command, RecordingPolicy};
use voxtap_core::stats::Stats;
use voxtap_core::vocab::Shard;
use voxtap_core::wire::{self, Decoded, Transport};
use voxtap_core::{Engine, LinkType, Timestamp, rtp, sip};

use crate::config::Config;

/// Frames per batch.
pub const BATCH_FRAMES: usize = 256;
/// Replay: messages handed out and not yet answered by every worker.
pub const IN_FLIGHT: usize = 16;
/// Live: messages in flight at most (the queues' size).
pub const LIVE_MESSAGES: usize = 1024;
/// Live: frames in flight at most, about 30 ms of a loaded 10G port, before media is shed.
pub const LIVE_FRAMES: usize = 65_536;
/// Live: a batch goes out at a poll once it holds this many frames...
pub const LIVE_FLUSH_FRAMES: usize = 64;
/// ...or its first frame is this old.
pub const LIVE_FLUSH_AGE: Duration = Duration::from_millis(2);

/// Where the merged events go.
pub type Sink<'a> = dyn FnMut(Event) -> Result<()> + 'a;

struct FrameAt {
    ts: Timestamp,
    link: LinkType,
    start: usize,
    len: usize,
}

/// Frames as read, packed in one buffer.
#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    frames: Vec<FrameAt>,
}

enum Input {
    Frames(Arc<Batch>),
    Timeout(Timestamp),
    /// A control request; the first worker says what came of it (every worker keeps the
    /// same recording state, the owner's real and the others' shadows).
    Control {
        sip_call_id: Arc<str>,
        ts: Timestamp,
        cmd: Command,
        found: Option<SyncSender<ControlOutcome>>,
    },
    Policy(Box<dyn RecordingPolicy>),
    /// End of input: finish the engine.
    Finish,
}

/// A worker's events for one message, each with the index in the batch of the frame that
/// caused it.
type Answer = Vec<(u32, Event)>;

/// What a worker did, for the run summary.
#[derive(Clone, Debug, Default)]
pub struct WorkerFigures {
    pub stats: Stats,
    pub now: Timestamp,
    /// RTP packets of the calls it owns: its share of the audio work.
    pub owned_rtp: u64,
    /// Calls it tracks (all of them) and recordings it makes (its own).
    pub active_calls: usize,
    pub active_recordings: usize,
    /// Time spent in the engine (not waiting for input).
    pub busy: Duration,
    /// Messages (batches, timers...) it has answered.
    pub answered: u64,
    /// The share of its queue waiting for it, 0 to 1 (set by [`Pool::figures`]).
    pub queue_fill: f64,
}

struct Worker {
    input: SyncSender<Input>,
    answers: Receiver<Answer>,
    /// Answers taken off the queue, not yet merged (the others' are not all in).
    ready: VecDeque<Answer>,
    /// Its figures, as of the last message it answered.
    figures: Arc<Mutex<WorkerFigures>>,
    thread: JoinHandle<WorkerFigures>,
}

pub struct Pool {
    workers: Vec<Worker>,
    batch: Batch,
    /// When the batch's first frame came (live).
    batch_since: Instant,
    /// The frames of each message in flight (handed out, not yet answered by every
    /// worker), oldest first, and their sum.
    frames_in_flight: VecDeque<usize>,
    frames_total: usize,
    /// A live capture: shed media rather than wait.
    live: bool,
    /// Frames in flight before a live capture sheds media ([`LIVE_FRAMES`]).
    live_frames: usize,
    /// Frames a live capture dropped because the workers were behind: media shed, and other
    /// frames (only when even those overflowed).
    dropped: Dropped,
    /// Messages handed to each worker.
    sent: u64,
}

/// What a live capture dropped because the workers were behind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// RTP and RTCP frames shed.
    pub media: u64,
    /// Other frames (SIP...), dropped only when the signalling held back overflowed too.
    pub other: u64,
}

impl Pool {
    /// Starts one thread per engine; `engines[i]` must own shard `i` of `engines.len()`.
    /// `live`: shed media when the workers are behind, rather than wait for them.
    pub fn spawn(engines: Vec<Engine>, live: bool) -> Pool {
        let workers = engines
            .into_iter()
            .enumerate()
            .map(|(i, engine)| {
                let (input, rx) = sync_channel(LIVE_MESSAGES + 1);
                let (tx, answers) = sync_channel(LIVE_MESSAGES + 1);
                let figures = Arc::new(Mutex::new(WorkerFigures::default()));
                let f = Arc::clone(&figures);
                let thread = std::thread::Builder::new()
                    .name(format!("voxtap-worker-{i}"))
                    .spawn(move || work(engine, &rx, &tx, &f))
                    .expect("spawn a worker thread");
                Worker {
                    input,
                    answers,
                    ready: VecDeque::new(),
                    figures,
                    thread,
                }
            })
            .collect();
        Pool {
            workers,
            batch: Batch::default(),
            batch_since: Instant::now(),
            frames_in_flight: VecDeque::new(),
            frames_total: 0,
            live,
            live_frames: LIVE_FRAMES,
            dropped: Dropped::default(),
            sent: 0,
        }
    }

    fn pack(&mut self, ts: Timestamp, link: LinkType, data: &[u8]) {
        if self.live && self.batch.frames.is_empty() {
            self.batch_since = Instant::now();
        }
        let start = self.batch.data.len();
        self.batch.data.extend_from_slice(data);
        self.batch.frames.push(FrameAt {
            ts,
            link,
            start,
            len: data.len(),
        });
    }

    fn take_batch(&mut self) -> Arc<Batch> {
        let batch = Arc::new(std::mem::take(&mut self.batch));
        self.batch.data.reserve(batch.data.len());
        self.batch.frames.reserve(batch.frames.len());
        batch
    }

    /// Sends a message of `frames` frames to every worker; there is room (see
    /// [`Pool::make_room`]).
    fn send(&mut self, frames: usize, make: &mut dyn FnMut(usize) -> Input) -> Result<()> {
        for (i, w) in self.workers.iter().enumerate() {
            w.input
                .send(make(i))
                .map_err(|_| anyhow!("a worker thread stopped"))?;
        }
        self.frames_in_flight.push_back(frames);
        self.frames_total += frames;
        self.sent += 1;
        Ok(())
    }

    /// Messages handed out and not yet answered by every worker.
    fn in_flight(&self) -> usize {
        self.frames_in_flight.len()
    }

    fn limit(&self) -> usize {
        if self.live { LIVE_MESSAGES } else { IN_FLIGHT }
    }

    /// Waits until one more message fits in every worker's queue.
    fn make_room(&mut self, sink: &mut Sink<'_>) -> Result<()> {
        while self.in_flight() >= self.limit() {
            self.collect(true, sink)?;
        }
        Ok(())
    }

    fn send_batch(&mut self, sink: &mut Sink<'_>) -> Result<()> {
        self.make_room(sink)?;
        let batch = self.take_batch();
        self.send(batch.frames.len(), &mut |_| {
            Input::Frames(Arc::clone(&batch))
        })
    }

    /// The workers are behind: the batch keeps what is not media (SIP, TCP, fragments...),
    /// for when there is room, and its RTP and RTCP are dropped and counted.
    fn shed_media(&mut self) {
        let old = std::mem::take(&mut self.batch);
        let since = self.batch_since;
        for f in &old.frames {
            let data = &old.data[f.start..f.start + f.len];
            if is_media(f.link, data) {
                self.dropped.media += 1;
            } else {
                self.pack(f.ts, f.link, data);
            }
        }
        self.batch_since = since;
        if self.batch.frames.len() > self.live_frames {
            self.dropped.other += self.batch.frames.len() as u64;
            self.batch.frames.clear();
            self.batch.data.clear();
        }
    }

    /// Queues one frame and hands a full batch out: replay waits for the workers, a live
    /// capture sends it as [`Pool::flush_live`] does.
    pub fn push(
        &mut self,
        ts: Timestamp,
        link: LinkType,
        data: &[u8],
        sink: &mut Sink<'_>,
    ) -> Result<()> {
        self.pack(ts, link, data);
        if self.batch.frames.len() < BATCH_FRAMES {
            return Ok(());
        }
        if self.live {
            self.flush_live(false, sink)
        } else {
            self.send_batch(sink)
        }
    }

    /// Live: hands what is batched out without waiting for a worker, once it is
    /// [`LIVE_FLUSH_FRAMES`] frames or [`LIVE_FLUSH_AGE`] old (`now`: whatever it holds).
    /// When the workers are [`LIVE_FRAMES`] frames behind, media is shed
    /// ([`Pool::shed_media`]).
    pub fn flush_live(&mut self, now: bool, sink: &mut Sink<'_>) -> Result<()> {
        self.collect(false, sink)?;
        let n = self.batch.frames.len();
        if n == 0 || !now && n < LIVE_FLUSH_FRAMES && self.batch_since.elapsed() < LIVE_FLUSH_AGE {
            return Ok(());
        }
        if self.in_flight() + 1 >= LIVE_MESSAGES || self.frames_total + n > self.live_frames {
            self.shed_media();
            return Ok(());
        }
        let batch = self.take_batch();
        self.send(n, &mut |_| Input::Frames(Arc::clone(&batch)))
    }

    /// Hands out what is batched, waiting for room (before a timer or a request, which must
    /// come after the frames before it).
    fn flush(&mut self, sink: &mut Sink<'_>) -> Result<()> {
        if !self.batch.frames.is_empty() {
            self.send_batch(sink)?;
        }
        Ok(())
    }

    /// Timers at `ts` (an idle live capture).
    pub fn timeout(&mut self, ts: Timestamp, sink: &mut Sink<'_>) -> Result<()> {
        self.flush(sink)?;
        self.make_room(sink)?;
        self.send(0, &mut |_| Input::Timeout(ts))
    }

    /// A control request, carried out by every worker; what came of it.
    pub fn control(
        &mut self,
        sip_call_id: &str,
        ts: Timestamp,
        cmd: Command,
        sink: &mut Sink<'_>,
    ) -> Result<ControlOutcome> {
        self.flush(sink)?;
        self.make_room(sink)?;
        let (tx, rx) = sync_channel(1);
        let id: Arc<str> = Arc::from(sip_call_id);
        let mut tx = Some(tx);
        self.send(0, &mut |i| Input::Control {
            sip_call_id: Arc::clone(&id),
            ts,
            cmd: cmd.clone(),
            found: if i == 0 { tx.take() } else { None },
        })?;
        rx.recv().map_err(|_| anyhow!("a worker thread stopped"))
    }

    /// New rules for every worker (a reload), each its own copy.
    pub fn set_policy(
        &mut self,
        make: &dyn Fn() -> Box<dyn RecordingPolicy>,
        sink: &mut Sink<'_>,
    ) -> Result<()> {
        self.flush(sink)?;
        self.make_room(sink)?;
        self.send(0, &mut |_| Input::Policy(make()))
    }

    /// Takes the workers' answers to the oldest messages and hands their events on, in packet
    /// order; for one packet, the first worker's first. `wait`: for one message at least.
    fn collect(&mut self, wait: bool, sink: &mut Sink<'_>) -> Result<()> {
        let mut waited = !wait;
        loop {
            for w in &mut self.workers {
                loop {
                    match w.answers.try_recv() {
                        Ok(a) => w.ready.push_back(a),
                        Err(TryRecvError::Empty) => break,
                        Err(TryRecvError::Disconnected) => {
                            return Err(anyhow!("a worker thread stopped"));
                        }
                    }
                }
            }
            if self.workers.iter().all(|w| !w.ready.is_empty()) {
                let answers: Vec<Answer> = self
                    .workers
                    .iter_mut()
                    .map(|w| w.ready.pop_front().expect("checked"))
                    .collect();
                self.frames_total -= self.frames_in_flight.pop_front().unwrap_or(0);
                merge(answers, sink)?;
                waited = true;
                continue;
            }
            if waited {
                return Ok(());
            }
            // Wait for the slowest: the first worker with nothing ready.
            let w = self
                .workers
                .iter_mut()
                .find(|w| w.ready.is_empty())
                .expect("one has nothing ready");
            let a = w
                .answers
                .recv()
                .map_err(|_| anyhow!("a worker thread stopped"))?;
            w.ready.push_back(a);
        }
    }

    /// The run's figures so far, and each worker's.
    pub fn figures(&self) -> (Stats, Vec<WorkerFigures>) {
        let each: Vec<WorkerFigures> = self
            .workers
            .iter()
            .map(|w| {
                let mut f = w.figures.lock().map(|f| f.clone()).unwrap_or_default();
                f.queue_fill = self.sent.saturating_sub(f.answered) as f64 / self.limit() as f64;
                f
            })
            .collect();
        let stats: Vec<Stats> = each.iter().map(|f| f.stats.clone()).collect();
        (Stats::merge_shards(&stats), each)
    }

    /// What a live capture dropped because the workers were behind.
    pub fn dropped(&self) -> Dropped {
        self.dropped
    }

    /// End of input: the workers finish their engines, everything is handed on, and each
    /// worker's figures come back, in worker order.
    pub fn finish(mut self, sink: &mut Sink<'_>) -> Result<Vec<WorkerFigures>> {
        self.flush(sink)?;
        self.make_room(sink)?;
        self.send(0, &mut |_| Input::Finish)?;
        while self.in_flight() > 0 {
            self.collect(true, sink)?;
        }
        let mut figures = Vec::new();
        for w in self.workers {
            drop(w.input);
            figures.push(
                w.thread
                    .join()
                    .map_err(|_| anyhow!("a worker thread panicked"))?,
            );
        }
        Ok(figures)
    }
}

/// RTP or RTCP: what a live capture sheds first when the workers are behind.
fn is_media(link: LinkType, frame: &[u8]) -> bool {
    match wire::decode(link, frame) {
        Ok(Decoded::Packet {
            transport: Transport::Udp { payload, .. },
            ..
        }) => {
            !sip::looks_like_sip(payload)
                && (rtp::looks_like_rtp(payload) || rtp::looks_like_rtcp(payload))
        }
        _ => false,
    }
}

/// The answers to one message, merged by packet (stable: the first worker's first).
fn merge(answers: Vec<Answer>, sink: &mut Sink<'_>) -> Result<()> {
    let mut answers: Vec<_> = answers
        .into_iter()
        .map(|a| a.into_iter().peekable())
        .collect();
    loop {
        let next = answers
            .iter_mut()
            .enumerate()
            .filter_map(|(i, a)| a.peek().map(|(frame, _)| (*frame, i)))
            .min();
        let Some((_, i)) = next else {
            return Ok(());
        };
        let (_, ev) = answers[i].next().expect("peeked");
        sink(ev)?;
    }
}

fn work(
    mut engine: Engine,
    input: &Receiver<Input>,
    answers: &SyncSender<Answer>,
    figures: &Mutex<WorkerFigures>,
) -> WorkerFigures {
    let mut busy = Duration::ZERO;
    let mut answered = 0u64;
    let snapshot = |engine: &Engine, busy: Duration, answered: u64| WorkerFigures {
        stats: engine.stats().clone(),
        now: engine.now(),
        owned_rtp: engine.owned_rtp_packets(),
        active_calls: engine.active_calls(),
        active_recordings: engine.active_recordings(),
        busy,
        answered,
        queue_fill: 0.0,
    };
    while let Ok(msg) = input.recv() {
        let since = Instant::now();
        let mut answer = Answer::new();
        let mut drain = |engine: &mut Engine, at: u32| {
            while let Some(ev) = engine.poll_event() {
                answer.push((at, ev));
            }
        };
        match msg {
            Input::Frames(batch) => {
                for (i, f) in batch.frames.iter().enumerate() {
                    engine.handle(f.ts, f.link, &batch.data[f.start..f.start + f.len]);
                    drain(&mut engine, i as u32);
                }
            }
            Input::Timeout(ts) => {
                engine.handle_timeout(ts);
                drain(&mut engine, 0);
            }
            Input::Control {
                sip_call_id,
                ts,
                cmd,
                found,
            } => {
                let ok = engine.control(&sip_call_id, ts, cmd);
                if let Some(tx) = found {
                    let _ = tx.send(ok);
                }
                drain(&mut engine, 0);
            }
            Input::Policy(p) => engine.set_policy(p),
            Input::Finish => {
                engine.finish();
                drain(&mut engine, 0);
            }
        }
        busy += since.elapsed();
        answered += 1;
        if let Ok(mut f) = figures.lock() {
            *f = snapshot(&engine, busy, answered);
        }
        if answers.send(answer).is_err() {
            break;
        }
    }
    snapshot(&engine, busy, answered)
}

/// The engine on the capture thread, or on worker threads.
pub enum Engines {
    One(Box<Engine>),
    Many(Pool),
}

impl Engines {
    /// `live`: a live capture, which sheds media rather than wait for a worker behind.
    pub fn new(cfg: &Config, workers: u32, live: bool) -> Engines {
        if workers <= 1 {
            return Engines::One(Box::new(cfg.engine()));
        }
        let engines = (0..workers)
            .map(|index| {
                cfg.engine_shard(Shard {
                    index,
                    count: workers,
                })
            })
            .collect();
        Engines::Many(Pool::spawn(engines, live))
    }

    pub fn count(&self) -> usize {
        match self {
            Engines::One(_) => 1,
            Engines::Many(p) => p.workers.len(),
        }
    }

    /// One frame. Replay waits for the workers rather than drop; a live capture hands its
    /// batches out at polls ([`Engines::flush_live`]).
    pub fn handle(
        &mut self,
        ts: Timestamp,
        link: LinkType,
        data: &[u8],
        sink: &mut Sink<'_>,
    ) -> Result<()> {
        match self {
            Engines::One(e) => {
                e.handle(ts, link, data);
                drain(e, sink)
            }
            Engines::Many(p) => p.push(ts, link, data, sink),
        }
    }

    /// Live: after a poll, what is batched goes out (see [`Pool::flush_live`]), and what
    /// came back is handed on.
    pub fn flush_live(&mut self, now: bool, sink: &mut Sink<'_>) -> Result<()> {
        match self {
            Engines::One(e) => drain(e, sink),
            Engines::Many(p) => p.flush_live(now, sink),
        }
    }

    pub fn timeout(&mut self, ts: Timestamp, sink: &mut Sink<'_>) -> Result<()> {
        match self {
            Engines::One(e) => {
                e.handle_timeout(ts);
                drain(e, sink)
            }
            Engines::Many(p) => p.timeout(ts, sink),
        }
    }

    pub fn control(
        &mut self,
        sip_call_id: &str,
        ts: Timestamp,
        cmd: Command,
        sink: &mut Sink<'_>,
    ) -> Result<ControlOutcome> {
        match self {
            Engines::One(e) => {
                let ok = e.control(sip_call_id, ts, cmd);
                drain(e, sink)?;
                Ok(ok)
            }
            Engines::Many(p) => p.control(sip_call_id, ts, cmd, sink),
        }
    }

    pub fn set_policy(
        &mut self,
        make: &dyn Fn() -> Box<dyn RecordingPolicy>,
        sink: &mut Sink<'_>,
    ) -> Result<()> {
        match self {
            Engines::One(e) => {
                e.set_policy(make());
                Ok(())
            }
            Engines::Many(p) => p.set_policy(make, sink),
        }
    }

    /// The run's figures so far, calls tracked, recordings open, and each worker's figures
    /// (none with one engine).
    pub fn figures(&self) -> (Stats, usize, usize, Vec<WorkerFigures>) {
        match self {
            Engines::One(e) => (
                e.stats().clone(),
                e.active_calls(),
                e.active_recordings(),
                Vec::new(),
            ),
            Engines::Many(p) => {
                let (stats, each) = p.figures();
                let calls = each.first().map_or(0, |f| f.active_calls);
                let recs = each.iter().map(|f| f.active_recordings).sum();
                (stats, calls, recs, each)
            }
        }
    }

    /// What a live capture dropped because the workers were behind.
    pub fn dropped(&self) -> Dropped {
        match self {
            Engines::One(_) => Dropped::default(),
            Engines::Many(p) => p.dropped(),
        }
    }

    /// End of input: everything is handed on; the run's figures, and each worker's.
    pub fn finish(self, sink: &mut Sink<'_>) -> Result<(Stats, Timestamp, Vec<WorkerFigures>)> {
        match self {
            Engines::One(mut e) => {
                e.finish();
                drain(&mut e, sink)?;
                Ok((e.stats().clone(), e.now(), Vec::new()))
            }
            Engines::Many(p) => {
                let figures = p.finish(sink)?;
                let stats: Vec<Stats> = figures.iter().map(|f| f.stats.clone()).collect();
                let now = figures.iter().map(|f| f.now).max().unwrap_or(Timestamp(0));
                Ok((Stats::merge_shards(&stats), now, figures))
            }
        }
    }
}

fn drain(engine: &mut Engine, sink: &mut Sink<'_>) -> Result<()> {
    while let Some(ev) = engine.poll_event() {
        sink(ev)?;
    }
    Ok(())
}

/// How many workers a run uses: `--workers`, else one per core; one when in-band DTMF is
/// listened for (the digits heard in one worker's audio are every worker's policy input).
pub fn count(asked: Option<u32>, cfg: &Config, command: &str) -> u32 {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let n = asked.unwrap_or(cores).max(1);
    if n > 1 && cfg.engine_config().inband_dtmf {
        eprintln!(
            "voxtap {command}: one worker: a tenant listens for in-band DTMF, and digits heard \
             in one worker's audio are policy input for all (docs/pipeline.md)"
        );
        return 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;
    use voxtap_core::EngineConfig;
    use voxtap_core::policy::{CallFacts, Decision};
    use voxtap_gen::{GenConfig, Scenario};

    /// A policy that takes its time over each answer: its worker falls behind.
    struct Slow(Duration);

    impl RecordingPolicy for Slow {
        fn on_answer(&mut self, _facts: &CallFacts<'_>) -> Decision {
            std::thread::sleep(self.0);
            Decision::new(true, "slow")
        }
    }

    fn pool(slow: Duration, live: bool) -> Pool {
        let engines = (0..2)
            .map(|index| {
                let cfg = EngineConfig {
                    shard: Shard { index, count: 2 },
                    ..EngineConfig::default()
                };
                Engine::with_policy(cfg, Box::new(Slow(slow)))
            })
            .collect();
        Pool::spawn(engines, live)
    }

    fn frames() -> Vec<voxtap_gen::Frame> {
        let mut cfg = GenConfig::new(Scenario::Concurrent);
        cfg.calls = 40;
        cfg.talk_secs = 1.0;
        voxtap_gen::generate(&cfg).0
    }

    /// A live capture never waits for a worker: when they are behind, the media of a batch
    /// is dropped for every worker (so they still read the same input) and counted, and its
    /// SIP is kept for when there is room, so every call is still followed.
    #[test]
    fn workers_behind_shed_media_for_all_keep_the_calls_and_count_it() {
        let frames = frames();
        let mut pool = pool(Duration::from_millis(20), true);
        pool.live_frames = 512;
        let mut events = 0u64;
        let mut sink = |_ev: Event| -> Result<()> {
            events += 1;
            Ok(())
        };
        for (i, f) in frames.iter().enumerate() {
            pool.push(Timestamp(f.ts_ns), LinkType::Ethernet, &f.data, &mut sink)
                .unwrap();
            if i % 4 == 3 {
                pool.flush_live(true, &mut sink).unwrap();
            }
        }
        pool.flush_live(true, &mut sink).unwrap();
        let dropped = pool.dropped();
        let figures = pool.finish(&mut sink).unwrap();
        assert!(
            dropped.media > 0,
            "40 answers at 20 ms each keep the workers behind"
        );
        assert_eq!(dropped.other, 0, "no signalling is dropped");
        let handled = frames.len() as u64 - dropped.media;
        for f in &figures {
            assert_eq!(
                f.stats.frames, handled,
                "every worker read what was not dropped"
            );
            assert_eq!(f.stats.calls_seen, 40, "every call is followed");
        }
        assert!(events > 0);
    }

    /// Replay waits for the slowest worker instead, and loses nothing.
    #[test]
    fn replay_waits_for_a_worker_behind_and_drops_nothing() {
        let frames = frames();
        let mut pool = pool(Duration::from_millis(2), false);
        let mut sink = |_ev: Event| -> Result<()> { Ok(()) };
        for f in &frames {
            pool.push(Timestamp(f.ts_ns), LinkType::Ethernet, &f.data, &mut sink)
                .unwrap();
        }
        assert_eq!(pool.dropped(), Dropped::default());
        let figures = pool.finish(&mut sink).unwrap();
        for f in &figures {
            assert_eq!(f.stats.frames, frames.len() as u64);
        }
        assert_eq!(
            figures.iter().map(|f| f.stats.recordings_started).max(),
            Some(40)
        );
    }
}
