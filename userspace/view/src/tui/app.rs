//! The viewer's state and how it reacts to keys and snapshots; drawing is in `draw.rs`.

use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::VecDeque;
use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::save;
use crate::proto::{CallDetail, CallRow, Snapshot};

/// How many snapshots of each worker's RTP rate the sparklines keep (at 4 Hz, 15 s).
pub const HISTORY: usize = 60;

/// What the caller of [`App::on_key`] should do next.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    None,
    /// The user wants to leave.
    Quit,
    /// The call whose detail the viewer wants changed (send it as a `proto::Request`).
    Follow(Option<u64>),
    /// A save was asked for: the file written, or why nothing was.
    Saved(Result<PathBuf, String>),
    /// A recording was started, stopped, paused or resumed through the control socket: the
    /// daemon's answer, or why not.
    Controlled(Result<String, String>),
}

/// Starts, stops, pauses or resumes a call's recording: `(action, sip_call_id)` to the
/// daemon's answer, or why it could not be asked. [`App::with_control`] gives it.
pub type Control = Box<dyn FnMut(&str, &str) -> Result<String, String> + Send>;

/// The screen shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Screen {
    /// The header, workers and the live call list.
    List,
    /// One call: its ladder, streams, timeline and decision.
    Detail,
    /// The latest recordings.
    Recordings,
}

/// The panes of the call detail screen (keys 1–4, Tab).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pane {
    Flow,
    Streams,
    Timeline,
    Decision,
}

impl Pane {
    pub const ALL: [Pane; 4] = [Pane::Flow, Pane::Streams, Pane::Timeline, Pane::Decision];

    pub fn title(self) -> &'static str {
        match self {
            Pane::Flow => "Flow",
            Pane::Streams => "Streams",
            Pane::Timeline => "Timeline",
            Pane::Decision => "Decision",
        }
    }

    fn index(self) -> usize {
        Pane::ALL.iter().position(|p| *p == self).unwrap_or(0)
    }
}

/// The column the call list is sorted by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    Start,
    Caller,
    Callee,
    Direction,
    State,
    Duration,
    Codec,
    Recording,
    Loss,
    Jitter,
    Mos,
}

impl SortKey {
    pub const ALL: [SortKey; 11] = [
        SortKey::Start,
        SortKey::Caller,
        SortKey::Callee,
        SortKey::Direction,
        SortKey::State,
        SortKey::Duration,
        SortKey::Codec,
        SortKey::Recording,
        SortKey::Loss,
        SortKey::Jitter,
        SortKey::Mos,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SortKey::Start => "start",
            SortKey::Caller => "caller",
            SortKey::Callee => "callee",
            SortKey::Direction => "direction",
            SortKey::State => "state",
            SortKey::Duration => "duration",
            SortKey::Codec => "codec",
            SortKey::Recording => "recording",
            SortKey::Loss => "loss",
            SortKey::Jitter => "jitter",
            SortKey::Mos => "MOS",
        }
    }

    fn step(self, forward: bool) -> SortKey {
        let n = SortKey::ALL.len();
        let i = SortKey::ALL.iter().position(|k| *k == self).unwrap_or(0);
        SortKey::ALL[if forward {
            (i + 1) % n
        } else {
            (i + n - 1) % n
        }]
    }
}

/// Which calls the list shows by state (key `f` cycles).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateFilter {
    All,
    /// Not ended.
    Live,
    Ringing,
    Talking,
    OnHold,
    Ended,
}

impl StateFilter {
    pub fn name(self) -> &'static str {
        match self {
            StateFilter::All => "all",
            StateFilter::Live => "live",
            StateFilter::Ringing => "ringing",
            StateFilter::Talking => "talking",
            StateFilter::OnHold => "on hold",
            StateFilter::Ended => "ended",
        }
    }

    fn next(self) -> StateFilter {
        match self {
            StateFilter::All => StateFilter::Live,
            StateFilter::Live => StateFilter::Ringing,
            StateFilter::Ringing => StateFilter::Talking,
            StateFilter::Talking => StateFilter::OnHold,
            StateFilter::OnHold => StateFilter::Ended,
            StateFilter::Ended => StateFilter::All,
        }
    }

    fn admits(self, c: &CallRow) -> bool {
        let s = c.state.as_str();
        match self {
            StateFilter::All => true,
            StateFilter::Live => !s.starts_with("ended"),
            StateFilter::Ringing => s.starts_with("ringing"),
            StateFilter::Talking => s.starts_with("talking"),
            StateFilter::OnHold => s.starts_with("on hold"),
            StateFilter::Ended => s.starts_with("ended"),
        }
    }
}

/// Which calls the list shows by recording (key `F` cycles).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecFilter {
    All,
    Recording,
    Paused,
    Recorded,
    NotRecorded,
}

impl RecFilter {
    pub fn name(self) -> &'static str {
        match self {
            RecFilter::All => "all",
            RecFilter::Recording => "recording",
            RecFilter::Paused => "paused",
            RecFilter::Recorded => "recorded",
            RecFilter::NotRecorded => "not recorded",
        }
    }

    fn next(self) -> RecFilter {
        match self {
            RecFilter::All => RecFilter::Recording,
            RecFilter::Recording => RecFilter::Paused,
            RecFilter::Paused => RecFilter::Recorded,
            RecFilter::Recorded => RecFilter::NotRecorded,
            RecFilter::NotRecorded => RecFilter::All,
        }
    }

    fn admits(self, c: &CallRow) -> bool {
        let r = c.recording.as_str();
        match self {
            RecFilter::All => true,
            RecFilter::Recording => r == "recording",
            RecFilter::Paused => r.starts_with("paused"),
            RecFilter::Recorded => r == "recorded",
            RecFilter::NotRecorded => r.starts_with("not recorded"),
        }
    }
}

/// The viewer: the latest snapshot and everything about how it is looked at.
pub struct App {
    /// How to control a call's recording, when this viewer may (the control socket).
    pub(super) control: Option<Control>,
    pub(super) snapshot: Option<Snapshot>,
    pub(super) status: Option<String>,
    pub(super) screen: Screen,
    pub(super) help: bool,
    /// The selected call of the list, by id, so it survives the list changing.
    pub(super) selected: Option<u64>,
    /// Its row, for when the call itself goes away: the selection stays at that row.
    pub(super) selected_row: usize,
    pub(super) sort: SortKey,
    pub(super) reverse: bool,
    pub(super) state_filter: StateFilter,
    pub(super) rec_filter: RecFilter,
    /// The applied search (lowercase match on caller, callee and Call-ID).
    pub(super) search: String,
    /// The search being typed, while `/` is active.
    pub(super) search_input: Option<String>,
    /// The detail screen's call.
    pub(super) detail_call: Option<u64>,
    pub(super) pane: Pane,
    /// The message under the cursor in the flow pane.
    pub(super) msg_cursor: usize,
    /// The first line of the message pane shown.
    pub(super) msg_scroll: usize,
    /// The first line of the streams, timeline or decision pane shown.
    pub(super) pane_scroll: usize,
    /// The first line of the recordings screen shown.
    pub(super) rec_scroll: usize,
    /// Each worker's RTP rate over the last snapshots, oldest first.
    pub(super) history: Vec<VecDeque<f64>>,
    /// A one-off note in the footer (a save's result), until the next key.
    pub(super) note: Option<(bool, String)>,
    pub(super) save_dir: PathBuf,
    // What the last draw learnt, for scrolling and paging: kept sticky between draws.
    pub(super) list_offset: Cell<usize>,
    pub(super) list_page: Cell<usize>,
    pub(super) ladder_offset: Cell<usize>,
    pub(super) ladder_page: Cell<usize>,
    pub(super) pane_page: Cell<usize>,
    /// The furthest the scrollable text of the screen or pane shown can scroll.
    pub(super) scroll_max: Cell<usize>,
}

impl Default for App {
    fn default() -> Self {
        App::new()
    }
}

impl App {
    /// A viewer with no snapshot yet, saving into the current directory.
    pub fn new() -> App {
        App::with_save_dir(".")
    }

    /// This viewer may also control recordings (keys `p` and `R`) with `control`.
    pub fn with_control(mut self, control: Control) -> App {
        self.control = Some(control);
        self
    }

    /// A viewer saving calls into `dir`.
    pub fn with_save_dir(dir: impl Into<PathBuf>) -> App {
        App {
            control: None,
            snapshot: None,
            status: None,
            screen: Screen::List,
            help: false,
            selected: None,
            selected_row: 0,
            sort: SortKey::Start,
            reverse: false,
            state_filter: StateFilter::All,
            rec_filter: RecFilter::All,
            search: String::new(),
            search_input: None,
            detail_call: None,
            pane: Pane::Flow,
            msg_cursor: 0,
            msg_scroll: 0,
            pane_scroll: 0,
            rec_scroll: 0,
            history: Vec::new(),
            note: None,
            save_dir: dir.into(),
            list_offset: Cell::new(0),
            list_page: Cell::new(10),
            ladder_offset: Cell::new(0),
            ladder_page: Cell::new(5),
            pane_page: Cell::new(10),
            scroll_max: Cell::new(usize::MAX / 2),
        }
    }

    /// A new snapshot arrived. The selection stays on the same call id when the list changes
    /// (or at the same row if that call is gone).
    pub fn set_snapshot(&mut self, s: Snapshot) {
        self.history.resize_with(s.workers.len(), VecDeque::new);
        for (h, w) in self.history.iter_mut().zip(&s.workers) {
            if h.len() == HISTORY {
                h.pop_front();
            }
            h.push_back(w.rtp_pps);
        }
        self.snapshot = Some(s);
        self.fix_selection();
    }

    /// A banner such as "daemon gone (connection refused); retrying every 1 s", or `None`.
    pub fn set_status(&mut self, status: Option<String>) {
        self.status = status;
    }

    /// The call whose detail the viewer wants: the detail screen's call.
    pub fn wanted_detail(&self) -> Option<u64> {
        match self.screen {
            Screen::Detail => self.detail_call,
            _ => None,
        }
    }

    pub fn screen(&self) -> Screen {
        self.screen
    }

    pub fn pane(&self) -> Pane {
        self.pane
    }

    pub fn help_shown(&self) -> bool {
        self.help
    }

    /// The selected call of the list.
    pub fn selected(&self) -> Option<u64> {
        let rows = self.rows();
        rows.get(self.sel_index(&rows)).map(|c| c.id)
    }

    /// The ids of the calls the list shows, in its order (after the filters, search and sort).
    pub fn visible_calls(&self) -> Vec<u64> {
        self.rows().iter().map(|c| c.id).collect()
    }

    /// The message under the flow pane's cursor.
    pub fn message_cursor(&self) -> usize {
        self.msg_cursor
    }

    pub fn snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// The detail of the detail screen's call, once it has arrived.
    pub fn detail(&self) -> Option<&CallDetail> {
        let want = self.detail_call?;
        self.snapshot
            .as_ref()?
            .detail
            .as_ref()
            .filter(|d| d.call.id == want)
    }

    /// The calls of the list, filtered, searched and sorted.
    pub(super) fn rows(&self) -> Vec<&CallRow> {
        let Some(s) = &self.snapshot else {
            return Vec::new();
        };
        let needle = self.search.to_lowercase();
        let mut rows: Vec<&CallRow> = s
            .calls
            .iter()
            .filter(|c| self.state_filter.admits(c) && self.rec_filter.admits(c))
            .filter(|c| {
                needle.is_empty()
                    || c.caller.to_lowercase().contains(&needle)
                    || c.callee.to_lowercase().contains(&needle)
                    || c.sip_call_id.to_lowercase().contains(&needle)
            })
            .collect();
        let now = s.now;
        let key = self.sort;
        // A stable sort on the list's own order (oldest first) breaks ties.
        rows.sort_by(|a, b| {
            let o = compare(key, a, b, now);
            if self.reverse { o.reverse() } else { o }
        });
        rows
    }

    pub(super) fn sel_index(&self, rows: &[&CallRow]) -> usize {
        self.selected
            .and_then(|id| rows.iter().position(|c| c.id == id))
            .unwrap_or_else(|| self.selected_row.min(rows.len().saturating_sub(1)))
    }

    /// Puts the selection back on a visible call after the list changed.
    fn fix_selection(&mut self) {
        let rows = self.rows();
        let i = self.sel_index(&rows);
        let id = rows.get(i).map(|c| c.id);
        self.selected_row = i;
        if id.is_some() {
            self.selected = id;
        }
    }

    fn select_index(&mut self, i: usize) {
        let rows = self.rows();
        if rows.is_empty() {
            self.selected_row = 0;
            return;
        }
        let i = i.min(rows.len() - 1);
        self.selected = Some(rows[i].id);
        self.selected_row = i;
    }

    fn move_selection(&mut self, delta: isize) {
        let rows = self.rows();
        let i = self.sel_index(&rows) as isize + delta;
        let n = rows.len() as isize;
        self.select_index(i.clamp(0, (n - 1).max(0)) as usize);
    }

    /// Reacts to a key.
    pub fn on_key(&mut self, key: KeyEvent) -> Action {
        if key.kind == KeyEventKind::Release {
            return Action::None;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c') | KeyCode::Char('C')) {
            return Action::Quit;
        }
        self.note = None;
        if let Some(input) = &mut self.search_input {
            match key.code {
                KeyCode::Enter => {
                    self.search = input.trim().to_string();
                    self.search_input = None;
                    self.fix_selection();
                }
                KeyCode::Esc => self.search_input = None,
                KeyCode::Backspace => {
                    input.pop();
                }
                KeyCode::Char(c) if !ctrl => input.push(c),
                _ => {}
            }
            return Action::None;
        }
        if self.help {
            // Any key closes the help.
            self.help = false;
            return Action::None;
        }
        if matches!(key.code, KeyCode::F(1) | KeyCode::Char('?')) {
            self.help = true;
            return Action::None;
        }
        match self.screen {
            Screen::List => self.list_key(key),
            Screen::Detail => self.detail_key(key),
            Screen::Recordings => self.recordings_key(key),
        }
    }

    fn list_key(&mut self, key: KeyEvent) -> Action {
        let page = self.list_page.get().max(1) as isize;
        match key.code {
            KeyCode::Char('q') => return Action::Quit,
            KeyCode::Esc => {}
            KeyCode::Up | KeyCode::Char('k') => self.move_selection(-1),
            KeyCode::Down | KeyCode::Char('j') => self.move_selection(1),
            KeyCode::PageUp => self.move_selection(-page),
            KeyCode::PageDown => self.move_selection(page),
            KeyCode::Home | KeyCode::Char('g') => self.select_index(0),
            KeyCode::End | KeyCode::Char('G') => self.select_index(usize::MAX),
            KeyCode::Enter | KeyCode::Right | KeyCode::Char('l') => {
                if let Some(id) = self.selected() {
                    self.screen = Screen::Detail;
                    self.detail_call = Some(id);
                    self.pane = Pane::Flow;
                    self.msg_cursor = 0;
                    self.msg_scroll = 0;
                    self.pane_scroll = 0;
                    self.ladder_offset.set(0);
                    return Action::Follow(Some(id));
                }
            }
            KeyCode::Char('/') => self.search_input = Some(self.search.clone()),
            KeyCode::Char('s') | KeyCode::Char('>') => {
                self.sort = self.sort.step(true);
                self.fix_selection();
            }
            KeyCode::Char('<') => {
                self.sort = self.sort.step(false);
                self.fix_selection();
            }
            KeyCode::Char('z') => {
                self.reverse = !self.reverse;
                self.fix_selection();
            }
            KeyCode::Char('f') => {
                self.state_filter = self.state_filter.next();
                self.fix_selection();
            }
            KeyCode::Char('F') => {
                self.rec_filter = self.rec_filter.next();
                self.fix_selection();
            }
            KeyCode::Char('x') => {
                self.state_filter = StateFilter::All;
                self.rec_filter = RecFilter::All;
                self.search.clear();
                self.fix_selection();
            }
            KeyCode::Char('r') => {
                self.screen = Screen::Recordings;
                self.rec_scroll = 0;
            }
            KeyCode::F(2) | KeyCode::Char('w') => return self.save(self.selected(), false),
            KeyCode::Char('W') => return self.save(self.selected(), true),
            KeyCode::Char('p') => return self.control(self.selected(), false),
            KeyCode::Char('R') => return self.control(self.selected(), true),
            _ => {}
        }
        Action::None
    }

    /// `p` pauses a recording or resumes a paused one; `R` (`start_stop`) stops a recording or
    /// starts one on a call that has none.
    fn control(&mut self, call: Option<u64>, start_stop: bool) -> Action {
        let result = self.control_inner(call, start_stop);
        self.note = Some(match &result {
            Ok(answer) => (true, answer.clone()),
            Err(e) => (false, format!("not done: {e}")),
        });
        Action::Controlled(result)
    }

    fn control_inner(&mut self, call: Option<u64>, start_stop: bool) -> Result<String, String> {
        let id = call.ok_or("no call selected")?;
        let row = self
            .snapshot
            .as_ref()
            .and_then(|s| s.calls.iter().find(|c| c.id == id))
            .ok_or_else(|| format!("call {id} is no longer listed"))?;
        if row.end.is_some() {
            return Err(format!("call {id} has ended"));
        }
        let recording = matches!(row.recording.as_str(), "recording" | "paused");
        let action = match (start_stop, row.recording.as_str()) {
            (false, "paused") => "resume",
            (false, _) if recording => "pause",
            (false, _) => return Err(format!("call {id} is not being recorded")),
            (true, _) if recording => "stop",
            (true, _) => "start",
        };
        let sip_call_id = row.sip_call_id.clone();
        let control = self.control.as_mut().ok_or(
            "this viewer may not control recordings (no access to the control socket; see voxtap tui --control)",
        )?;
        control(action, &sip_call_id).map(|answer| format!("{action} call {id}: {answer}"))
    }

    fn back_to_list(&mut self) -> Action {
        let was = self.screen;
        self.screen = Screen::List;
        self.fix_selection();
        if was == Screen::Detail {
            self.detail_call = None;
            Action::Follow(None)
        } else {
            Action::None
        }
    }

    fn detail_key(&mut self, key: KeyEvent) -> Action {
        let n_msgs = self.detail().map_or(0, |d| d.messages.len());
        let page = self.ladder_page.get().max(1);
        let pane_page = self.pane_page.get().max(1);
        match key.code {
            KeyCode::Esc | KeyCode::Char('q') | KeyCode::Left | KeyCode::Char('h') => {
                return self.back_to_list();
            }
            KeyCode::Tab => self.set_pane(Pane::ALL[(self.pane.index() + 1) % 4]),
            KeyCode::BackTab => self.set_pane(Pane::ALL[(self.pane.index() + 3) % 4]),
            KeyCode::Char('1') => self.set_pane(Pane::Flow),
            KeyCode::Char('2') => self.set_pane(Pane::Streams),
            KeyCode::Char('3') => self.set_pane(Pane::Timeline),
            KeyCode::Char('4') => self.set_pane(Pane::Decision),
            KeyCode::F(2) | KeyCode::Char('w') => return self.save(self.detail_call, false),
            KeyCode::Char('W') => return self.save(self.detail_call, true),
            KeyCode::Char('p') => return self.control(self.detail_call, false),
            KeyCode::Char('R') => return self.control(self.detail_call, true),
            code if self.pane == Pane::Flow => {
                let last = n_msgs.saturating_sub(1);
                let cur = self.msg_cursor.min(last);
                let new = match code {
                    KeyCode::Up | KeyCode::Char('k') => cur.saturating_sub(1),
                    KeyCode::Down | KeyCode::Char('j') => (cur + 1).min(last),
                    KeyCode::PageUp => cur.saturating_sub(page),
                    KeyCode::PageDown => (cur + page).min(last),
                    KeyCode::Home | KeyCode::Char('g') => 0,
                    KeyCode::End | KeyCode::Char('G') => last,
                    KeyCode::Char('K') => {
                        self.msg_scroll = self.msg_scroll.saturating_sub(1);
                        cur
                    }
                    KeyCode::Char('J') => {
                        self.msg_scroll = (self.msg_scroll + 1).min(self.scroll_max.get());
                        cur
                    }
                    _ => cur,
                };
                if new != cur {
                    self.msg_scroll = 0;
                }
                self.msg_cursor = new;
            }
            code => {
                self.pane_scroll = scroll(self.pane_scroll, code, pane_page, self.scroll_max.get());
            }
        }
        Action::None
    }

    fn set_pane(&mut self, p: Pane) {
        if self.pane != p {
            self.pane = p;
            self.pane_scroll = 0;
        }
    }

    fn recordings_key(&mut self, key: KeyEvent) -> Action {
        let page = self.pane_page.get().max(1);
        match key.code {
            KeyCode::Esc | KeyCode::Char('q') | KeyCode::Char('r') | KeyCode::Left => {
                self.back_to_list()
            }
            code => {
                self.rec_scroll = scroll(self.rec_scroll, code, page, self.scroll_max.get());
                Action::None
            }
        }
    }

    /// Saves `call`'s SIP (pcap, or text) into the save directory, if its detail is loaded.
    fn save(&mut self, call: Option<u64>, text: bool) -> Action {
        let result = self.save_inner(call, text);
        self.note = Some(match &result {
            Ok(p) => (true, format!("saved {}", p.display())),
            Err(e) => (false, format!("not saved: {e}")),
        });
        Action::Saved(result)
    }

    fn save_inner(&self, call: Option<u64>, text: bool) -> Result<PathBuf, String> {
        let id = call.ok_or("no call selected")?;
        let detail = self
            .snapshot
            .as_ref()
            .and_then(|s| s.detail.as_ref())
            .filter(|d| d.call.id == id)
            .ok_or_else(|| {
                if self.screen == Screen::Detail {
                    format!("the detail of call {id} has not arrived yet")
                } else {
                    format!("the detail of call {id} is not loaded: open it with Enter first")
                }
            })?;
        if detail.messages.is_empty() {
            return Err(format!("call {id} has no SIP messages"));
        }
        let name = format!("voxtap-call-{id}.{}", if text { "txt" } else { "pcap" });
        let path = self.save_dir.join(name);
        let file = File::create(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let w = BufWriter::new(file);
        let r = if text {
            save::write_text(&detail.messages, w)
        } else {
            save::write_pcap(&detail.messages, w)
        };
        r.map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(path)
    }
}

/// A scroll position moved by a key, within `0..=max`.
fn scroll(s: usize, code: KeyCode, page: usize, max: usize) -> usize {
    let s = s.min(max);
    match code {
        KeyCode::Up | KeyCode::Char('k') => s.saturating_sub(1),
        KeyCode::Down | KeyCode::Char('j') => (s + 1).min(max),
        KeyCode::PageUp => s.saturating_sub(page),
        KeyCode::PageDown => (s + page).min(max),
        KeyCode::Home | KeyCode::Char('g') => 0,
        KeyCode::End | KeyCode::Char('G') => max,
        _ => s,
    }
}

/// The length of a call at `now`: from its answer (or start) to its end (or `now`).
pub(super) fn call_duration(c: &CallRow, now: f64) -> f64 {
    let from = c.answered.unwrap_or(c.start);
    (c.end.unwrap_or(now) - from).max(0.0)
}

fn cmp_f64(a: f64, b: f64) -> Ordering {
    a.partial_cmp(&b).unwrap_or(Ordering::Equal)
}

fn compare(key: SortKey, a: &CallRow, b: &CallRow, now: f64) -> Ordering {
    let text = |x: &str, y: &str| x.to_lowercase().cmp(&y.to_lowercase());
    match key {
        SortKey::Start => cmp_f64(a.start, b.start),
        SortKey::Caller => text(&a.caller, &b.caller),
        SortKey::Callee => text(&a.callee, &b.callee),
        SortKey::Direction => text(&a.direction, &b.direction),
        SortKey::State => text(&a.state, &b.state),
        SortKey::Duration => cmp_f64(call_duration(a, now), call_duration(b, now)),
        SortKey::Codec => text(&a.codec, &b.codec),
        SortKey::Recording => text(&a.recording, &b.recording),
        SortKey::Loss => cmp_f64(a.loss, b.loss),
        SortKey::Jitter => cmp_f64(a.jitter_ms, b.jitter_ms),
        // No MOS (no RTP) sorts below every MOS.
        SortKey::Mos => cmp_f64(a.mos.unwrap_or(-1.0), b.mos.unwrap_or(-1.0)),
    }
}
