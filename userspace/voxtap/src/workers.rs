//! `--workers N`: the engine on N threads, each owning a share of the calls.
//!
//! Every worker reads every packet and keeps the same state for every call: the dialogs, the
//! conversations, the servers, the decisions, the flows and each RTP stream's order and
//! digits. That shared state is what makes outputs the same whatever the worker count
//! (docs/pipeline.md says why a split by Call-ID would not be). The audio — SRTP, reordering,
//! decoding, concealment, resampling, the stereo timeline — is done only by the worker that
//! owns the call ([`voxtap_core::vocab::Shard`]), and only it reports the call.
//!
//! The reading thread packs frames into batches that all workers share (one copy, behind an
//! [`Arc`]). Each worker answers each batch with the events it caused, tagged with the
//! packet that caused them; the reading thread merges the answers, packet by packet, and
//! hands them to the writer in that order. Queues are bounded: at most [`IN_FLIGHT`] batches
//! are between the reader and the slowest worker, so replay waits on the slowest worker and
//! drops nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Result, anyhow};
use voxtap_core::event::Event;
use voxtap_core::stats::Stats;
use voxtap_core::{Engine, LinkType, Timestamp};

use crate::writer::Writer;

/// Frames per batch.
pub const BATCH_FRAMES: usize = 256;
/// Batches handed out and not yet answered by every worker.
pub const IN_FLIGHT: usize = 8;

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
    /// End of input: finish the engine.
    Finish,
}

/// A worker's events for one batch, each with the index in the batch of the frame that
/// caused it (`u32::MAX`: the end of input).
type Answer = Vec<(u32, Event)>;

/// What a worker did, for the run summary.
#[derive(Clone, Debug)]
pub struct WorkerFigures {
    pub stats: Stats,
    pub now: Timestamp,
    /// RTP packets of the calls it owns: its share of the audio work.
    pub owned_rtp: u64,
    /// Time spent in the engine (not waiting for input).
    pub busy: Duration,
}

struct Worker {
    input: SyncSender<Input>,
    answers: Receiver<Answer>,
    thread: JoinHandle<WorkerFigures>,
}

/// The first worker's running figures (every worker counts the calls alike), for the
/// progress line.
#[derive(Default)]
pub struct Progress {
    pub frames: AtomicU64,
    pub calls_seen: AtomicU64,
    pub active_calls: AtomicU64,
    pub recordings_started: AtomicU64,
    pub malformed: AtomicU64,
}

impl Progress {
    fn update(&self, e: &Engine) {
        let s = e.stats();
        self.frames.store(s.frames, Ordering::Relaxed);
        self.calls_seen.store(s.calls_seen, Ordering::Relaxed);
        self.active_calls
            .store(e.active_calls() as u64, Ordering::Relaxed);
        self.recordings_started
            .store(s.recordings_started, Ordering::Relaxed);
        self.malformed.store(s.malformed_total(), Ordering::Relaxed);
    }
}

pub struct Pool {
    workers: Vec<Worker>,
    batch: Batch,
    in_flight: usize,
    progress: Arc<Progress>,
}

impl Pool {
    /// Starts one thread per engine; `engines[i]` must own shard `i` of `engines.len()`.
    pub fn spawn(engines: Vec<Engine>) -> Pool {
        let progress = Arc::new(Progress::default());
        let workers = engines
            .into_iter()
            .enumerate()
            .map(|(i, engine)| {
                let (input, rx) = sync_channel(IN_FLIGHT + 1);
                let (tx, answers) = sync_channel(IN_FLIGHT + 1);
                let calls = (i == 0).then(|| Arc::clone(&progress));
                let thread = std::thread::Builder::new()
                    .name(format!("voxtap-worker-{i}"))
                    .spawn(move || work(engine, &rx, &tx, calls.as_deref()))
                    .expect("spawn a worker thread");
                Worker {
                    input,
                    answers,
                    thread,
                }
            })
            .collect();
        Pool {
            workers,
            batch: Batch::default(),
            in_flight: 0,
            progress,
        }
    }

    /// Queues one frame; hands a full batch to the workers, and what they answered to the
    /// writer.
    pub fn push(
        &mut self,
        ts: Timestamp,
        link: LinkType,
        data: &[u8],
        out: &mut Writer,
    ) -> Result<()> {
        let start = self.batch.data.len();
        self.batch.data.extend_from_slice(data);
        self.batch.frames.push(FrameAt {
            ts,
            link,
            start,
            len: data.len(),
        });
        if self.batch.frames.len() >= BATCH_FRAMES {
            self.dispatch(out)?;
        }
        Ok(())
    }

    fn dispatch(&mut self, out: &mut Writer) -> Result<()> {
        let batch = Arc::new(std::mem::take(&mut self.batch));
        self.batch.data.reserve(batch.data.len());
        self.batch.frames.reserve(BATCH_FRAMES);
        self.send(&Input::Frames(batch))?;
        while self.in_flight > IN_FLIGHT {
            self.collect(out)?;
        }
        Ok(())
    }

    fn send(&mut self, input: &Input) -> Result<()> {
        for w in &self.workers {
            let msg = match input {
                Input::Frames(b) => Input::Frames(Arc::clone(b)),
                Input::Finish => Input::Finish,
            };
            w.input
                .send(msg)
                .map_err(|_| anyhow!("a worker thread stopped"))?;
        }
        self.in_flight += 1;
        Ok(())
    }

    /// Takes every worker's answer to the oldest batch and writes the events in packet
    /// order; for one packet, the first worker's first.
    fn collect(&mut self, out: &mut Writer) -> Result<()> {
        let mut answers = Vec::with_capacity(self.workers.len());
        for w in &self.workers {
            let a = w
                .answers
                .recv()
                .map_err(|_| anyhow!("a worker thread stopped"))?;
            answers.push(a.into_iter().peekable());
        }
        self.in_flight -= 1;
        loop {
            let next = answers
                .iter_mut()
                .enumerate()
                .filter_map(|(i, a)| a.peek().map(|(frame, _)| (*frame, i)))
                .min();
            let Some((_, i)) = next else {
                break;
            };
            let (_, ev) = answers[i].next().expect("peeked");
            out.push(ev)?;
        }
        Ok(())
    }

    /// How far the workers are (the progress line).
    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    /// End of input: the workers finish their engines, everything is written, and each
    /// worker's figures come back, in worker order.
    pub fn finish(mut self, out: &mut Writer) -> Result<Vec<WorkerFigures>> {
        if !self.batch.frames.is_empty() {
            let batch = Arc::new(std::mem::take(&mut self.batch));
            self.send(&Input::Frames(batch))?;
        }
        self.send(&Input::Finish)?;
        while self.in_flight > 0 {
            self.collect(out)?;
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

fn work(
    mut engine: Engine,
    input: &Receiver<Input>,
    answers: &SyncSender<Answer>,
    progress: Option<&Progress>,
) -> WorkerFigures {
    let mut busy = Duration::ZERO;
    while let Ok(msg) = input.recv() {
        let since = Instant::now();
        let mut answer = Answer::new();
        match msg {
            Input::Frames(batch) => {
                for (i, f) in batch.frames.iter().enumerate() {
                    engine.handle(f.ts, f.link, &batch.data[f.start..f.start + f.len]);
                    while let Some(ev) = engine.poll_event() {
                        answer.push((i as u32, ev));
                    }
                }
            }
            Input::Finish => {
                engine.finish();
                while let Some(ev) = engine.poll_event() {
                    answer.push((u32::MAX, ev));
                }
            }
        }
        if let Some(p) = progress {
            p.update(&engine);
        }
        busy += since.elapsed();
        if answers.send(answer).is_err() {
            break;
        }
    }
    WorkerFigures {
        stats: engine.stats().clone(),
        now: engine.now(),
        owned_rtp: engine.owned_rtp_packets(),
        busy,
    }
}
