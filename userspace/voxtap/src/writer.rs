//! Writes off the capture thread: the store (WAV files and the SQLite catalog) runs on its
//! own thread and takes the engine's events in batches through a bounded queue.
//!
//! The queue holds at most [`QUEUE_BATCHES`] batches of [`BATCH`] events. When it is full the
//! engine's thread waits: events are never dropped, and their order is kept, so a run writes
//! the same files and rows as with the store on the engine's thread. A live capture that
//! waits here falls behind its ring, and the kernel counts what it drops (ring full); the
//! live figures show both.
//!
//! With a live view, the writer thread also keeps its [`crate::board::Board`] up to date:
//! each batch goes to the board (under its lock, once per batch), then to the store, and the
//! recordings the store finished follow.
//!
//! The first store error ends the writer: the next [`Writer::push`] or [`Writer::finish`]
//! returns it, and the run stops with it, as before.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow};
use voxtap_core::event::Event;
use voxtap_store::{RunSummary, Store, StoreReport, WriteHealth};

use crate::status::SharedBoard;

/// Events per batch: large enough that the hand-off costs little per event, small enough
/// that audio reaches the writer within a few milliseconds of packet time.
pub const BATCH: usize = 512;
/// Batches in flight between the engine and the writer.
pub const QUEUE_BATCHES: usize = 64;

enum Msg {
    Events(Vec<Event>),
    /// Write the run's row, and stop.
    Finish(Box<RunSummary>),
}

pub struct Writer {
    tx: Option<SyncSender<Msg>>,
    batch: Vec<Event>,
    /// How the disk stands, as of the last batch the writer thread wrote.
    health: Arc<Mutex<WriteHealth>>,
    thread: Option<JoinHandle<Result<StoreReport>>>,
    waits: QueueWaits,
    /// Events handed over and not yet written.
    queued: Arc<AtomicU64>,
    /// When each batch not yet written was handed over, oldest first.
    pending: Arc<Mutex<VecDeque<Instant>>>,
}

/// Times the engine's thread found the writer's queue full and waited for room, and how long
/// it waited in all: the writer (the disk, SQLite) holding the engine back.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueWaits {
    pub times: u64,
    pub waited: Duration,
}

impl Writer {
    /// `board`: a live view to keep up to date, if there is one.
    pub fn spawn(store: Store, board: Option<SharedBoard>) -> Writer {
        let (tx, rx) = sync_channel(QUEUE_BATCHES);
        let health = Arc::new(Mutex::new(WriteHealth::default()));
        let h = Arc::clone(&health);
        let queued = Arc::new(AtomicU64::new(0));
        let q = Arc::clone(&queued);
        let pending = Arc::new(Mutex::new(VecDeque::new()));
        let p = Arc::clone(&pending);
        let thread = std::thread::Builder::new()
            .name("voxtap-writer".into())
            .spawn(move || write(store, &rx, &h, (&q, &p), board.as_ref()))
            .expect("spawn the writer thread");
        Writer {
            tx: Some(tx),
            batch: Vec::with_capacity(BATCH),
            health,
            thread: Some(thread),
            waits: QueueWaits::default(),
            queued,
            pending,
        }
    }

    /// Queues one event; waits when the queue is full.
    pub fn push(&mut self, ev: Event) -> Result<()> {
        self.batch.push(ev);
        if self.batch.len() >= BATCH {
            self.send()?;
        }
        Ok(())
    }

    /// Hands over what is batched now (before a pause in the input, so audio is not held).
    pub fn send(&mut self) -> Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(BATCH));
        self.queued.fetch_add(batch.len() as u64, Ordering::Relaxed);
        if let Ok(mut p) = self.pending.lock() {
            p.push_back(Instant::now());
        }
        let sent = match self.tx.as_ref().map(|tx| tx.try_send(Msg::Events(batch))) {
            Some(Ok(())) => true,
            Some(Err(TrySendError::Full(msg))) => {
                let since = Instant::now();
                let sent = self.tx.as_ref().is_some_and(|tx| tx.send(msg).is_ok());
                self.waits.times += 1;
                self.waits.waited += since.elapsed();
                sent
            }
            Some(Err(TrySendError::Disconnected(_))) | None => false,
        };
        if !sent {
            // The writer stopped on an error: collect it.
            return Err(self
                .join()
                .err()
                .unwrap_or_else(|| anyhow!("the writer thread stopped")));
        }
        Ok(())
    }

    /// How often, and how long, the engine's thread waited for room in the queue.
    pub fn waits(&self) -> QueueWaits {
        self.waits
    }

    /// Events handed to the writer thread and not yet written.
    pub fn queued(&self) -> u64 {
        self.queued.load(Ordering::Relaxed) + self.batch.len() as u64
    }

    /// How long the oldest batch not yet written has waited: how far the catalog and the
    /// files are behind the capture.
    pub fn lag(&self) -> Duration {
        self.pending
            .lock()
            .ok()
            .and_then(|p| p.front().map(Instant::elapsed))
            .unwrap_or_default()
    }

    /// How the disk stands, as of the last batch written.
    pub fn health(&self) -> WriteHealth {
        self.health.lock().map(|h| *h).unwrap_or_default()
    }

    /// Writes everything queued, finishes the store and returns its report.
    pub fn finish(mut self, summary: &RunSummary) -> Result<StoreReport> {
        self.send()?;
        if let Some(tx) = self.tx.take() {
            // A failed send means the writer already stopped; join says why.
            let _ = tx.send(Msg::Finish(Box::new(summary.clone())));
        }
        self.join()
    }

    fn join(&mut self) -> Result<StoreReport> {
        self.tx = None;
        match self.thread.take() {
            Some(t) => t
                .join()
                .map_err(|_| anyhow!("the writer thread panicked"))?,
            None => Err(anyhow!("the writer thread already stopped")),
        }
    }
}

fn write(
    mut store: Store,
    rx: &Receiver<Msg>,
    health: &Mutex<WriteHealth>,
    (queued, pending): (&AtomicU64, &Mutex<VecDeque<Instant>>),
    board: Option<&SharedBoard>,
) -> Result<StoreReport> {
    while let Ok(msg) = rx.recv() {
        match msg {
            Msg::Events(batch) => {
                let n = batch.len() as u64;
                if let Some(Ok(mut b)) = board.map(|b| b.lock()) {
                    for ev in &batch {
                        b.apply(ev);
                    }
                }
                // One transaction for what in the batch commits (calls ending, recordings
                // stopping), not one each.
                store.begin_batch();
                for ev in batch {
                    store
                        .handle(ev)
                        .context("cannot write recording or catalog")?;
                }
                store
                    .end_batch()
                    .context("cannot write recording or catalog")?;
                queued.fetch_sub(n, Ordering::Relaxed);
                if let Ok(mut p) = pending.lock() {
                    p.pop_front();
                }
                if let Some(b) = board {
                    let done = store.take_finished();
                    if !done.is_empty()
                        && let Ok(mut b) = b.lock()
                    {
                        b.finished(done);
                    }
                }
                if let Ok(mut h) = health.lock() {
                    *h = store.write_health();
                }
            }
            Msg::Finish(summary) => {
                // The engine stopped every recording before: none is left for the board.
                return store.finish(&summary).context("cannot finish the catalog");
            }
        }
    }
    Err(anyhow!("the run ended before the catalog was finished"))
}
