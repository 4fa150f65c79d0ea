//! The live view's state: what a viewer (`voxtap tui`, `replay --tui`) and the metrics show,
//! built from the engine's events ([`Board::apply`]) and the run's figures
//! ([`Board::set_head`]), handed out as [`Snapshot`]s of the status protocol
//! ([`voxtap_view::proto`]).
//!
//! It is sans-IO and bounded: calls leave [`Board::linger`] after they end (and the oldest
//! ended ones first past [`MAX_ENDED`]), each call keeps at most [`MESSAGES_PER_CALL`] SIP
//! messages of at most [`MESSAGE_CAP`] bytes, and all the calls' messages together at most
//! [`MESSAGE_BUDGET`] bytes. Messages past a bound are counted, not kept.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use voxtap_capture::live::QueueStats;
use voxtap_core::Timestamp;
use voxtap_core::event::{Event, StreamReport};
use voxtap_core::stats::Stats;
use voxtap_core::vocab::{Action, CallHandle, Party};
use voxtap_store::{FinishedRecording, WriteHealth};
use voxtap_view::proto::{
    CallDetail, CallRow, Drops, MESSAGE_CAP, Rates, RecordingCounts, RecordingRow, SipMessage,
    Snapshot, StreamRow, TimelineEntry, Totals, VERSION, WorkerLoad, WriterLoad,
};

use crate::workers::{self, WorkerFigures};

/// Ended calls kept at most, however recent.
pub const MAX_ENDED: usize = 2000;
/// SIP messages kept per call (its first ones: the ladder's start matters most).
pub const MESSAGES_PER_CALL: usize = 200;
/// Bytes of SIP text kept for all calls together.
pub const MESSAGE_BUDGET: usize = 64 << 20;
/// Recent recordings listed.
pub const RECENT: usize = 20;
/// Call rows in a snapshot at most: the newest (`Snapshot::calls_total` says how many there
/// are).
pub const MAX_ROWS: usize = 5000;

pub struct Board {
    calls: BTreeMap<u64, Live>,
    /// Ended calls, by end time.
    ended: VecDeque<(Timestamp, u64)>,
    /// Conversation id → its legs.
    conversations: HashMap<u64, Vec<u64>>,
    recent: VecDeque<RecordingRow>,
    /// How long an ended call stays listed.
    pub linger: Duration,
    /// Ended calls kept at most ([`MAX_ENDED`] by default).
    pub max_ended: usize,
    /// Bytes of SIP text kept for all calls ([`MESSAGE_BUDGET`] by default).
    pub message_budget: usize,
    now: Timestamp,
    message_bytes: usize,
    /// Figures the run sets; the board adds the calls.
    head: Snapshot,
    started: u64,
    written: u64,
    deleted: u64,
    network_lost: u64,
}

#[derive(Default)]
struct Live {
    row: CallRow,
    on_hold: bool,
    messages: Vec<SipMessage>,
    messages_dropped: u64,
    /// Streams as last reported, by (src, dst, ssrc).
    streams: Vec<StreamRow>,
    timeline: Vec<TimelineEntry>,
    decision: Vec<String>,
    /// Bytes of `messages`' text.
    bytes: usize,
}

impl Default for Board {
    fn default() -> Self {
        Board::new(Duration::from_secs(60))
    }
}

impl Board {
    pub fn new(linger: Duration) -> Board {
        Board {
            calls: BTreeMap::new(),
            ended: VecDeque::new(),
            conversations: HashMap::new(),
            recent: VecDeque::new(),
            linger,
            max_ended: MAX_ENDED,
            message_budget: MESSAGE_BUDGET,
            now: Timestamp(0),
            message_bytes: 0,
            head: Snapshot::default(),
            started: 0,
            written: 0,
            deleted: 0,
            network_lost: 0,
        }
    }

    /// The run's own figures (source, rates, totals, drops, workers, writer): kept for every
    /// snapshot until set again.
    pub fn set_head(&mut self, head: Snapshot) {
        self.head = head;
    }

    #[cfg(test)]
    pub fn head_mut(&mut self) -> &mut Snapshot {
        &mut self.head
    }

    #[cfg(test)]
    /// Calls known now, live and lingering.
    pub fn len(&self) -> usize {
        self.calls.len()
    }

    #[cfg(test)]
    /// Bytes of SIP text held for the detail screens.
    pub fn message_bytes(&self) -> usize {
        self.message_bytes
    }

    /// Recordings the store finished ([`voxtap_store::Store::take_finished`]).
    pub fn finished(&mut self, done: Vec<FinishedRecording>) {
        for r in done {
            match r.state.as_str() {
                "deleted" | "no-audio" => self.deleted += 1,
                "complete" | "partial" => self.written += 1,
                _ => {}
            }
            if let Some(live) = self.calls.get_mut(&r.call.0) {
                live.row.recording = recorded(&r.state);
            }
            if self.recent.len() >= RECENT {
                self.recent.pop_back();
            }
            self.recent.push_front(RecordingRow {
                call: r.call.0,
                path: r.path.display().to_string(),
                format: r.format.as_str().to_string(),
                bytes: r.bytes,
                state: r.state,
                start: r.start.as_secs_f64(),
                duration_s: r.duration_s,
            });
        }
    }

    /// Follows one engine event. Audio and media endpoints are not its business.
    pub fn apply(&mut self, ev: &Event) {
        let ts = match ev {
            Event::CallStarted(c) => Some(c.ts),
            Event::CallAnswered { ts, .. }
            | Event::CallEnded { ts, .. }
            | Event::RecordingStopped { ts, .. }
            | Event::Transfer { ts, .. }
            | Event::CallProgress { ts, .. } => Some(*ts),
            Event::Sip(m) => Some(m.ts),
            Event::Decision(d) => Some(d.ts),
            Event::RecordingStarted(r) => Some(r.ts),
            Event::RecordingControl(c) => Some(c.ts),
            Event::Dtmf(d) => Some(d.ts),
            Event::Conversation(c) => Some(c.ts),
            _ => None,
        };
        if let Some(ts) = ts {
            self.now = self.now.max(ts);
        }
        match ev {
            Event::CallStarted(c) => {
                let row = CallRow {
                    id: c.call.0,
                    sip_call_id: c.sip_call_id.clone(),
                    start: c.ts.as_secs_f64(),
                    caller: party(&c.caller),
                    callee: party(&c.callee),
                    state: "ringing".into(),
                    ..CallRow::default()
                };
                self.calls.insert(
                    c.call.0,
                    Live {
                        row,
                        ..Live::default()
                    },
                );
            }
            Event::CallAnswered { call, ts, .. } => {
                if let Some(l) = self.live(*call) {
                    l.row.answered = Some(ts.as_secs_f64());
                    l.row.state = "talking".into();
                }
            }
            Event::CallEnded {
                call, ts, reason, ..
            } => {
                if let Some(l) = self.live(*call) {
                    l.row.end = Some(ts.as_secs_f64());
                    l.row.state = format!("ended: {}", reason.as_str());
                    if l.row.recording.is_empty() {
                        l.row.recording = "not recorded: no decision (not answered)".into();
                    }
                    self.ended.push_back((*ts, call.0));
                }
            }
            Event::Decision(d) => {
                if let Some(l) = self.live(d.call) {
                    l.row.direction = d.direction.unwrap_or_default().to_string();
                    // As `voxtap explain` prints it; a later decision (a new policy) follows.
                    l.decision.extend(crate::explain::decision_lines(
                        &d.ts.to_string(),
                        d.record,
                        &d.reason,
                        d.trace.iter().map(String::as_str),
                    ));
                    l.row.recording = match (d.record, d.covered_by) {
                        (_, Some(other)) => format!("on leg {}", other.0),
                        (true, None) => "decided: record".into(),
                        (false, None) => format!("not recorded: {}", d.reason),
                    };
                }
            }
            Event::RecordingStarted(r) => {
                self.started += 1;
                if let Some(l) = self.live(r.call) {
                    l.row.recording = "recording".into();
                    l.timeline.push(TimelineEntry {
                        ts: r.ts.as_secs_f64(),
                        what: format!("recording started ({}), {}", r.reason, r.format.as_str()),
                    });
                }
            }
            Event::RecordingControl(c) => {
                if let Some(l) = self.live(c.call) {
                    let who = match (&c.requested_by, &c.requested_by_user) {
                        (Some(side), Some(user)) => format!(" by the {} ({user})", side.as_str()),
                        (Some(side), None) => format!(" by the {}", side.as_str()),
                        _ => String::new(),
                    };
                    match c.action {
                        Action::Pause => l.row.recording = "paused".into(),
                        Action::Resume => l.row.recording = "recording".into(),
                        _ => {}
                    }
                    l.timeline.push(TimelineEntry {
                        ts: c.ts.as_secs_f64(),
                        what: format!("{}{who}: {}", c.action.as_str(), c.reason),
                    });
                }
            }
            Event::RecordingStopped {
                call,
                ts,
                reason,
                outcome,
                ..
            } => {
                if let Some(l) = self.live(*call) {
                    l.row.recording = recorded(outcome.state.as_str());
                    l.timeline.push(TimelineEntry {
                        ts: ts.as_secs_f64(),
                        what: format!(
                            "recording stopped ({}): {}{}",
                            reason.as_str(),
                            outcome.state.as_str(),
                            outcome
                                .reason
                                .as_deref()
                                .map(|r| format!(", {r}"))
                                .unwrap_or_default()
                        ),
                    });
                }
            }
            Event::Dtmf(d) => {
                if let Some(l) = self.live(d.call) {
                    l.timeline.push(TimelineEntry {
                        ts: d.ts.as_secs_f64(),
                        what: format!(
                            "DTMF {} from the {} ({}, {} ms)",
                            d.digit,
                            d.side.as_str(),
                            d.source.as_str(),
                            d.duration_ms
                        ),
                    });
                }
            }
            Event::Transfer {
                call,
                ts,
                side,
                target,
                status,
                ..
            } => {
                if let Some(l) = self.live(*call) {
                    l.timeline.push(TimelineEntry {
                        ts: ts.as_secs_f64(),
                        what: format!("the {} transferred to {target} ({status})", side.as_str()),
                    });
                }
            }
            Event::Conversation(c) => {
                if let Some(old) = c.merged
                    && let Some(legs) = self.conversations.remove(&old)
                {
                    for leg in &legs {
                        if let Some(l) = self.calls.get_mut(leg) {
                            l.row.conversation = Some(c.conversation);
                        }
                    }
                    self.conversations
                        .entry(c.conversation)
                        .or_default()
                        .extend(legs);
                }
                if let Some(l) = self.calls.get_mut(&c.call.0) {
                    l.row.conversation = Some(c.conversation);
                    let legs = self.conversations.entry(c.conversation).or_default();
                    if !legs.contains(&c.call.0) {
                        legs.push(c.call.0);
                    }
                }
            }
            Event::StreamEnded(r) => {
                self.network_lost += r.lost.max(0) as u64;
                if let Some(l) = self.live(r.call) {
                    l.update_stream(r, true);
                }
            }
            Event::CallProgress {
                call,
                on_hold,
                streams,
                ..
            } => {
                if let Some(l) = self.live(*call) {
                    l.on_hold = *on_hold;
                    if l.row.end.is_none() && l.row.answered.is_some() {
                        l.row.state = if *on_hold { "on hold" } else { "talking" }.into();
                    }
                    for s in streams {
                        l.update_stream(s, false);
                    }
                }
            }
            Event::Sip(m) => {
                let budget = self.message_budget.saturating_sub(self.message_bytes);
                if let Some(l) = self.calls.get_mut(&m.call.0) {
                    let text = capped_text(&m.message);
                    if l.messages.len() >= MESSAGES_PER_CALL || text.len() > budget {
                        l.messages_dropped += 1;
                    } else {
                        l.bytes += text.len();
                        self.message_bytes += text.len();
                        l.messages.push(SipMessage {
                            ts: m.ts.as_secs_f64(),
                            leg: m.call.0,
                            src: m.src.to_string(),
                            dst: m.dst.to_string(),
                            transport: m.transport.as_str().to_string(),
                            first_line: text.lines().next().unwrap_or_default().to_string(),
                            text,
                        });
                    }
                }
            }
            _ => {}
        }
        self.expire();
    }

    fn live(&mut self, call: CallHandle) -> Option<&mut Live> {
        self.calls.get_mut(&call.0)
    }

    /// Forgets calls that ended more than the linger ago (in packet time), and the oldest
    /// ended ones past [`MAX_ENDED`].
    fn expire(&mut self) {
        while let Some(&(end, id)) = self.ended.front() {
            let old = self.now.saturating_since(end) > self.linger;
            if !old && self.ended.len() <= self.max_ended {
                break;
            }
            self.ended.pop_front();
            self.forget(id);
        }
    }

    fn forget(&mut self, id: u64) {
        let Some(l) = self.calls.remove(&id) else {
            return;
        };
        self.message_bytes -= l.bytes;
        if let Some(conv) = l.row.conversation
            && let Some(legs) = self.conversations.get_mut(&conv)
        {
            legs.retain(|&x| x != id);
            if legs.is_empty() {
                self.conversations.remove(&conv);
            }
        }
    }

    /// The state now, with the detail of call `detail` if it is known. `uptime_s` is the
    /// run's wall-clock age.
    pub fn snapshot(&self, detail: Option<u64>) -> Snapshot {
        let mut s = self.summary();
        let skip = self.calls.len().saturating_sub(MAX_ROWS);
        s.calls = self
            .calls
            .values()
            .skip(skip)
            .map(|l| self.row(l))
            .collect();
        s.recent = self.recent.iter().cloned().collect();
        s.detail = detail.and_then(|id| self.detail(id));
        s
    }

    /// The figures without the calls: what the metrics need.
    pub fn summary(&self) -> Snapshot {
        let mut s = self.head.clone();
        s.version = VERSION;
        if self.now.0 > 0 {
            s.now = s.now.max(self.now.as_secs_f64());
        }
        s.calls_total = self.calls.len() as u64;
        s.recordings.started = self.started;
        s.recordings.written = self.written;
        s.recordings.deleted = self.deleted;
        s.drops.network_rtp_lost = self.network_lost;

        s
    }

    fn row(&self, l: &Live) -> CallRow {
        let mut row = l.row.clone();
        let (mut lost, mut expected, mut jitter) = (0u64, 0u64, 0f64);
        for s in &l.streams {
            lost += s.lost.max(0) as u64;
            expected += s.expected;
            jitter = jitter.max(s.jitter_ms);
        }
        row.loss = if expected > 0 {
            lost as f64 / expected as f64
        } else {
            0.0
        };
        row.jitter_ms = jitter;
        row.mos = l
            .streams
            .iter()
            .filter_map(|s| s.mos)
            .min_by(|a, b| a.total_cmp(b));
        if row.codec.is_empty() {
            row.codec = l
                .streams
                .iter()
                .find(|s| !s.codec.is_empty())
                .map(|s| s.codec.clone())
                .unwrap_or_default();
        }
        row
    }

    fn detail(&self, id: u64) -> Option<CallDetail> {
        let l = self.calls.get(&id)?;
        let legs: Vec<u64> = l
            .row
            .conversation
            .and_then(|c| self.conversations.get(&c))
            .cloned()
            .unwrap_or_else(|| vec![id]);
        let legs: Vec<&Live> = legs.iter().filter_map(|x| self.calls.get(x)).collect();
        let mut messages: Vec<SipMessage> = legs
            .iter()
            .flat_map(|leg| leg.messages.iter().cloned())
            .collect();
        messages.sort_by(|a, b| a.ts.total_cmp(&b.ts));
        Some(CallDetail {
            call: self.row(l),
            legs: legs.iter().map(|leg| self.row(leg)).collect(),
            messages,
            messages_dropped: legs.iter().map(|leg| leg.messages_dropped).sum(),
            streams: l.streams.clone(),
            timeline: l.timeline.clone(),
            decision: l.decision.clone(),
        })
    }
}

impl Live {
    fn update_stream(&mut self, r: &StreamReport, ended: bool) {
        let src = r.src.to_string();
        let dst = r.dst.to_string();
        let row = StreamRow {
            side: r.side.as_str().to_string(),
            ssrc: r.ssrc,
            codec: r.codec.clone(),
            packets: r.packets,
            lost: r.lost,
            expected: r.expected,
            jitter_ms: r.mean_jitter_ms,
            max_jitter_ms: r.max_jitter_ms,
            mos: mos(r),
            status: if ended {
                r.status.to_string()
            } else {
                "live".to_string()
            },
            ended,
            src,
            dst,
        };
        match self
            .streams
            .iter_mut()
            .find(|s| s.src == row.src && s.dst == row.dst && s.ssrc == row.ssrc)
        {
            // A final report is not undone by a later live one.
            Some(s) if !s.ended || ended => *s = row,
            Some(_) => {}
            None => self.streams.push(row),
        }
        if self.row.codec.is_empty() && !r.codec.is_empty() {
            self.row.codec = r.codec.clone();
        }
    }
}

/// The recording column of a finished recording: `recorded`, or what it is short of.
fn recorded(state: &str) -> String {
    match state {
        "complete" => "recorded".into(),
        "deleted" => "deleted (shorter than the minimum)".into(),
        other => format!("recorded: {other}"),
    }
}

/// `Alice <alice@example.com>` style, short: the display name if any, else user@host.
fn party(p: &Party) -> String {
    let uri = if p.host.is_empty() {
        p.user.clone()
    } else if p.user.is_empty() {
        p.host.clone()
    } else {
        format!("{}@{}", p.user, p.host)
    };
    match &p.display_name {
        Some(name) if !name.is_empty() => format!("{name} <{uri}>"),
        _ => uri,
    }
}

/// A message's text, lossy UTF-8, cut at [`MESSAGE_CAP`] bytes on a character boundary.
fn capped_text(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.len() <= MESSAGE_CAP {
        return text.into_owned();
    }
    let mut end = MESSAGE_CAP;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Listening quality estimated by a simplified E-model (ITU-T G.107): the codec's impairment
/// and its robustness to loss (G.113 Appendix I), random loss, and a delay of 20 ms plus
/// twice the mean jitter (what a jitter buffer adds). `None` before any packet; it says
/// nothing of an undecodable stream's audio.
fn mos(r: &StreamReport) -> Option<f64> {
    if r.packets == 0 {
        return None;
    }
    let (ie, bpl) = match r.codec.to_ascii_uppercase().as_str() {
        "PCMU" | "PCMA" => (0.0, 25.1),
        "G722" => (0.0, 25.1),
        "G729" | "G729A" => (11.0, 19.0),
        "GSM" => (20.0, 10.0),
        "ILBC" => (11.0, 32.0),
        "OPUS" => (0.0, 20.0),
        "AMR" | "AMR-WB" => (5.0, 10.0),
        "SPEEX" => (11.0, 15.0),
        "G726-32" | "G726" => (7.0, 10.0),
        _ => (5.0, 10.0),
    };
    let ppl = if r.expected > 0 {
        (r.lost.max(0) as f64 / r.expected as f64 * 100.0).clamp(0.0, 100.0)
    } else {
        0.0
    };
    let ie_eff = ie + (95.0 - ie) * ppl / (ppl + bpl);
    let d = 20.0 + 2.0 * r.mean_jitter_ms;
    let id = 0.024 * d + if d > 177.3 { 0.11 * (d - 177.3) } else { 0.0 };
    let rf = (93.2 - id - ie_eff).clamp(0.0, 100.0);
    let m = 1.0 + 0.035 * rf + 7e-6 * rf * (rf - 60.0) * (100.0 - rf);
    Some((m.clamp(1.0, 4.5) * 100.0).round() / 100.0)
}

/// What the run knows of itself at one moment, for [`Meter::head`].
pub struct HeadInput<'a> {
    pub source: &'a str,
    /// `xdp`, `afpacket` or `replay`.
    pub mode: &'a str,
    pub stats: &'a Stats,
    pub active_calls: usize,
    pub active_recordings: usize,
    /// Each worker's figures (none with one engine).
    pub workers: &'a [WorkerFigures],
    /// What a live capture shed because the workers were behind.
    pub shed: workers::Dropped,
    pub queues: &'a [QueueStats],
    /// XDP: frames passed for a queue without a socket.
    pub redirect_failed: u64,
    /// XDP: the program's verdicts (zeros in other modes).
    pub kernel_filter: voxtap_view::proto::KernelFilter,
    pub progress: Option<f64>,
    pub finished: bool,
    pub writer_queued: u64,
    pub writer_lag: Duration,
    pub disk: WriteHealth,
    /// Packet time now (the latest frame, or the clock when idle).
    pub now: Timestamp,
}

/// Turns the run's counters into a snapshot's head, with rates measured over about a
/// second (a head made more often repeats the last ones).
pub struct Meter {
    started: Instant,
    /// When the rates were last measured, and the counts then.
    last: Option<(Instant, [u64; 3], Vec<u64>)>,
    /// The rates measured then.
    rates: (Rates, Vec<f64>),
}

impl Default for Meter {
    fn default() -> Self {
        Meter {
            started: Instant::now(),
            last: None,
            rates: (Rates::default(), Vec::new()),
        }
    }
}

impl Meter {
    pub fn head(&mut self, i: &HeadInput<'_>) -> Snapshot {
        let s = i.stats;
        let now = Instant::now();
        let owned: Vec<u64> = if i.workers.is_empty() {
            vec![s.rtp_matched]
        } else {
            i.workers.iter().map(|w| w.owned_rtp).collect()
        };
        let counts = [s.frames, s.sip_messages, s.rtp_packets];
        let due = self
            .last
            .as_ref()
            .is_none_or(|(t, ..)| now.duration_since(*t) >= Duration::from_millis(900));
        if due {
            if let Some((t, c0, w0)) = &self.last {
                let secs = now.duration_since(*t).as_secs_f64().max(1e-3);
                let rate = |n: u64, then: u64| n.saturating_sub(then) as f64 / secs;
                self.rates = (
                    Rates {
                        frames: rate(counts[0], c0[0]),
                        sip: rate(counts[1], c0[1]),
                        rtp: rate(counts[2], c0[2]),
                    },
                    owned
                        .iter()
                        .enumerate()
                        .map(|(k, n)| rate(*n, w0.get(k).copied().unwrap_or(0)))
                        .collect(),
                );
            }
            self.last = Some((now, counts, owned.clone()));
        }
        Snapshot {
            version: VERSION,
            source: i.source.to_string(),
            mode: i.mode.to_string(),
            now: i.now.as_secs_f64(),
            uptime_s: self.started.elapsed().as_secs_f64(),
            progress: i.progress,
            finished: i.finished,
            rates: self.rates.0,
            totals: Totals {
                frames: s.frames,
                bytes: s.bytes,
                sip_messages: s.sip_messages,
                rtp_packets: s.rtp_packets,
                rtcp_packets: s.rtcp_packets,
                other: s.ignored,
                calls_seen: s.calls_seen,
                calls_answered: s.calls_answered,
                calls_picked_up: s.calls_picked_up,
            },
            drops: Drops {
                kernel_ring_full: i.queues.iter().map(|q| q.rx_ring_full).sum(),
                kernel_fill_ring_empty: i.queues.iter().map(|q| q.fill_ring_empty).sum(),
                kernel_dropped: i.queues.iter().map(|q| q.kernel_dropped).sum(),
                kernel_redirect_failed: i.redirect_failed,
                queue_full: i.shed.media + i.shed.other,
                malformed: s.malformed_total(),
                bounds: s.dropped_total(),
                late_audio: s.late_packets + s.duplicate_packets,
                decrypt_failures: s.decrypt_failures,
                undecodable_streams: s.undecodable_streams,
                encrypted_streams: s.encrypted_streams,
                network_rtp_lost: 0,
            },
            kernel_filter: i.kernel_filter,
            workers: owned
                .iter()
                .enumerate()
                .map(|(k, n)| WorkerLoad {
                    rtp_pps: self.rates.1.get(k).copied().unwrap_or(0.0),
                    rtp_packets: *n,
                    queue_fill: i.workers.get(k).map_or(0.0, |w| w.queue_fill),
                })
                .collect(),
            active_calls: i.active_calls as u64,
            active_recordings: i.active_recordings as u64,
            recordings: RecordingCounts {
                failed: i.disk.failed,
                ..RecordingCounts::default()
            },
            writer: WriterLoad {
                queued_events: i.writer_queued,
                lag_s: i.writer_lag.as_secs_f64(),
                refused: i.disk.refused,
            },
            ..Snapshot::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use voxtap_core::{Engine, EngineConfig, LinkType};
    use voxtap_gen::{GenConfig, Scenario, generate};

    fn board_of(cfg: &GenConfig, linger: Duration) -> Board {
        let (frames, _) = generate(cfg);
        let mut engine = Engine::new(EngineConfig {
            monitor: true,
            ..EngineConfig::default()
        });
        let mut board = Board::new(linger);
        for f in &frames {
            engine.handle(Timestamp(f.ts_ns), LinkType::Ethernet, &f.data);
            while let Some(e) = engine.poll_event() {
                board.apply(&e);
            }
        }
        engine.finish();
        while let Some(e) = engine.poll_event() {
            board.apply(&e);
        }
        board
    }

    #[test]
    fn a_pbx_conversation_shows_its_legs_ladder_streams_and_decision() {
        let cfg = GenConfig::new(Scenario::PbxInbound);
        let board = board_of(&GenConfig { calls: 1, ..cfg }, Duration::from_secs(3600));
        let snap = board.snapshot(None);
        assert_eq!(snap.version, VERSION);
        assert!(snap.calls.len() >= 2, "{:?}", snap.calls);
        let conv = snap.calls[0].conversation.expect("a conversation");
        assert!(snap.calls.iter().all(|c| c.conversation == Some(conv)));
        assert!(snap.calls.iter().all(|c| c.state.starts_with("ended")));
        let recorded: Vec<&CallRow> = snap
            .calls
            .iter()
            .filter(|c| c.recording == "recorded")
            .collect();
        assert_eq!(recorded.len(), 1, "{:?}", snap.calls);

        let d = board.snapshot(Some(recorded[0].id)).detail.expect("detail");
        assert_eq!(d.legs.len(), snap.calls.len());
        let invites = d
            .messages
            .iter()
            .filter(|m| m.first_line.starts_with("INVITE "))
            .count();
        assert!(invites >= snap.calls.len(), "{:?}", d.messages);
        assert!(d.messages.windows(2).all(|w| w[0].ts <= w[1].ts));
        assert!(
            d.messages
                .iter()
                .any(|m| m.first_line.starts_with("SIP/2.0 200"))
        );
        assert!(d.messages.iter().any(|m| m.first_line.starts_with("BYE ")));
        assert!(d.streams.len() >= 2 && d.streams.iter().all(|s| s.ended));
        assert!(d.streams.iter().all(|s| s.mos.is_some_and(|m| m > 4.0)));
        assert!(
            d.decision[0].starts_with("decision at 2026-01-01T00:00:0")
                && d.decision[0].ends_with(": record (default: record every answered call)")
                && d.decision[1] == "  1. default: record every answered call",
            "{:?}",
            d.decision
        );
        assert!(
            d.timeline
                .iter()
                .any(|t| t.what.starts_with("recording started"))
        );
        assert!(
            d.timeline
                .iter()
                .any(|t| t.what.starts_with("recording stopped"))
        );
    }

    #[test]
    fn a_call_on_hold_says_so_and_talks_again_after() {
        let (frames, _) = generate(&GenConfig::new(Scenario::HoldMove));
        let mut engine = Engine::new(EngineConfig {
            monitor: true,
            ..EngineConfig::default()
        });
        let mut board = Board::default();
        let mut states: Vec<String> = Vec::new();
        for f in &frames {
            engine.handle(Timestamp(f.ts_ns), LinkType::Ethernet, &f.data);
            while let Some(e) = engine.poll_event() {
                board.apply(&e);
                if let Some(row) = board.snapshot(None).calls.first()
                    && states.last() != Some(&row.state)
                {
                    states.push(row.state.clone());
                }
            }
        }
        assert_eq!(
            states,
            ["ringing", "talking", "on hold", "talking"],
            "{states:?}"
        );
    }

    #[test]
    fn ended_calls_linger_then_go_and_take_their_messages() {
        let cfg = GenConfig::new(Scenario::Concurrent);
        let cfg = GenConfig {
            calls: 30,
            talk_secs: 2.0,
            ..cfg
        };
        let kept = board_of(&cfg, Duration::from_secs(3600));
        assert_eq!(kept.len(), 30);
        assert!(kept.message_bytes() > 30 * 1000);
        let gone = board_of(&cfg, Duration::ZERO);
        // The last call to end is the only one the linger of zero may still hold.
        assert!(gone.len() <= 1, "{}", gone.len());
        assert!(gone.message_bytes() < kept.message_bytes() / 10);
    }

    #[test]
    fn the_estimate_of_quality_falls_with_loss_and_jitter() {
        let r = |lost: i64, jitter: f64, codec: &str| StreamReport {
            packets: 1000,
            expected: 1000,
            lost,
            mean_jitter_ms: jitter,
            codec: codec.into(),
            ..test_report()
        };
        let clean = mos(&r(0, 1.0, "PCMU")).unwrap();
        assert!(clean > 4.3, "{clean}");
        let lossy = mos(&r(50, 1.0, "PCMU")).unwrap();
        assert!(lossy < clean - 0.3, "{lossy}");
        let jittery = mos(&r(0, 120.0, "PCMU")).unwrap();
        assert!(jittery < clean - 0.2, "{jittery}");
        assert!(mos(&r(0, 1.0, "G729")).unwrap() < clean);
        assert_eq!(
            mos(&StreamReport {
                packets: 0,
                ..test_report()
            }),
            None
        );
    }

    fn test_report() -> StreamReport {
        let (frames, _) = generate(&GenConfig::new(Scenario::Pcmu));
        let mut engine = Engine::new(EngineConfig::default());
        for f in &frames {
            engine.handle(Timestamp(f.ts_ns), LinkType::Ethernet, &f.data);
        }
        engine.finish();
        std::iter::from_fn(|| engine.poll_event())
            .find_map(|e| match e {
                Event::StreamEnded(r) => Some(r),
                _ => None,
            })
            .expect("a stream")
    }

    #[test]
    fn the_meter_measures_rates_over_about_a_second() {
        let mut m = Meter::default();
        let mut stats = Stats::default();
        let head = |m: &mut Meter, stats: &Stats| {
            m.head(&HeadInput {
                source: "test",
                mode: "replay",
                stats,
                active_calls: 0,
                active_recordings: 0,
                workers: &[],
                shed: workers::Dropped::default(),
                queues: &[],
                redirect_failed: 0,
                kernel_filter: Default::default(),
                progress: None,
                finished: false,
                writer_queued: 0,
                writer_lag: Duration::ZERO,
                disk: WriteHealth::default(),
                now: Timestamp(0),
            })
        };
        assert_eq!(head(&mut m, &stats).rates.frames, 0.0);
        std::thread::sleep(Duration::from_millis(1000));
        stats.frames = 1000;
        stats.rtp_packets = 900;
        stats.rtp_matched = 900;
        let h = head(&mut m, &stats);
        assert!((800.0..=1000.0).contains(&h.rates.frames), "{:?}", h.rates);
        assert!((700.0..=900.0).contains(&h.rates.rtp), "{:?}", h.rates);
        assert!(
            (700.0..=900.0).contains(&h.workers[0].rtp_pps),
            "{:?}",
            h.workers
        );
        // Asked again at once: the same rates, not a zero over no time.
        stats.frames = 1001;
        assert_eq!(head(&mut m, &stats).rates, h.rates);
    }

    /// A call's SIP past its bounds: the first messages are kept, the rest counted.
    #[test]
    fn messages_past_the_per_call_and_total_bounds_are_counted_not_kept() {
        use voxtap_core::event::{CallStarted, SipSeen};
        use voxtap_core::vocab::SipTransport;
        let addr: std::net::SocketAddr = "192.0.2.1:5060".parse().unwrap();
        let start = |call: u64| {
            Event::CallStarted(CallStarted {
                call: CallHandle(call),
                ts: Timestamp(1_000_000_000),
                sip_call_id: format!("c{call}"),
                from_tag: "t".into(),
                caller: Party::default(),
                callee: Party::default(),
                caller_signalling: addr,
                callee_signalling: addr,
                transport: SipTransport::Udp,
                picked_up: false,
            })
        };
        let sip = |call: u64, n: usize, len: usize| {
            Event::Sip(SipSeen {
                call: CallHandle(call),
                ts: Timestamp(1_000_000_000 + n as u64),
                src: addr,
                dst: addr,
                transport: SipTransport::Udp,
                message: format!("OPTIONS sip:{n} SIP/2.0\r\n{}", "x".repeat(len))
                    .into_bytes()
                    .into(),
            })
        };
        let mut b = Board {
            message_budget: 100_000,
            ..Board::default()
        };
        b.apply(&start(1));
        for n in 0..MESSAGES_PER_CALL + 50 {
            b.apply(&sip(1, n, 100));
        }
        let d = b.snapshot(Some(1)).detail.unwrap();
        assert_eq!(d.messages.len(), MESSAGES_PER_CALL);
        assert_eq!(d.messages_dropped, 50);
        assert_eq!(d.messages[0].first_line, "OPTIONS sip:0 SIP/2.0");
        // Another call's messages stop at the total budget.
        b.apply(&start(2));
        for n in 0..100 {
            b.apply(&sip(2, n, 4000));
        }
        assert!(b.message_bytes() <= 100_000, "{}", b.message_bytes());
        let d = b.snapshot(Some(2)).detail.unwrap();
        assert!(
            d.messages.len() < 25 && d.messages_dropped > 75,
            "{}",
            d.messages.len()
        );
        // A message past the cap is cut, so one huge message cannot take the budget.
        let mut c = Board::default();
        c.apply(&start(3));
        c.apply(&sip(3, 0, 50_000));
        let d = c.snapshot(Some(3)).detail.unwrap();
        assert_eq!(d.messages.len(), 1);
        assert!(d.messages[0].text.len() <= MESSAGE_CAP + '…'.len_utf8());
        assert!(d.messages[0].text.ends_with('…'));
    }

    #[test]
    fn a_long_message_is_cut_on_a_character_boundary() {
        let long = "é".repeat(MESSAGE_CAP);
        let cut = capped_text(long.as_bytes());
        assert!(cut.ends_with('…'));
        assert!(cut.len() <= MESSAGE_CAP + '…'.len_utf8());
        assert_eq!(
            capped_text(b"INVITE sip:a@b SIP/2.0\r\n"),
            "INVITE sip:a@b SIP/2.0\r\n"
        );
    }
}
