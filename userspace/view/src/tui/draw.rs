//! Drawing the screens. Everything here reads the [`App`] and writes the frame; nothing else.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, Clear, Paragraph};

use super::app::{App, Pane, RecFilter, Screen, SortKey, StateFilter, call_duration};
use super::ladder::{Ladder, TIME_W};
use super::text::{
    bytes, clean, duration, fit, fit_right, hard_wrap, hms, hms_ms, rate, trunc, trunc_left,
    uptime, width,
};
use crate::proto::{CallDetail, CallRow, Snapshot};

/// Below this size the screen only says it is too small.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 16;

const SPARK: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
/// How many snapshots a worker's sparkline shows.
const SPARK_W: usize = 16;

fn dim() -> Style {
    Style::new().fg(Color::DarkGray)
}

fn bold() -> Style {
    Style::new().add_modifier(Modifier::BOLD)
}

/// A count that is a loss: grey when zero, red when not.
fn loss_count(n: u64) -> Span<'static> {
    if n == 0 {
        Span::styled("0", dim())
    } else {
        Span::styled(
            n.to_string(),
            Style::new()
                .fg(Color::LightRed)
                .add_modifier(Modifier::BOLD),
        )
    }
}

/// Places items (groups of spans) on lines of `w` cells, two spaces apart, starting a new line
/// (indented under the first item) when the next does not fit. An item wider than a line is cut.
fn flow(lead: &str, items: Vec<Vec<Span<'static>>>, w: usize) -> Vec<Line<'static>> {
    let indent = width(lead);
    let mut lines = Vec::new();
    let mut cur: Vec<Span<'static>> = vec![Span::styled(lead.to_string(), bold())];
    let mut used = indent;
    let mut empty = true;
    for item in items {
        let iw: usize = item.iter().map(|s| width(&s.content)).sum();
        let sep = if empty { 0 } else { 2 };
        if !empty && used + sep + iw > w {
            lines.push(Line::from(std::mem::take(&mut cur)));
            cur.push(Span::raw(" ".repeat(indent)));
            used = indent;
            empty = true;
        }
        if !empty {
            cur.push(Span::raw("  "));
            used += 2;
        }
        let room = w.saturating_sub(used);
        if iw > room {
            let text: String = item.iter().map(|s| s.content.as_ref()).collect();
            cur.push(Span::raw(trunc(&text, room)));
            used = w;
        } else {
            cur.extend(item);
            used += iw;
        }
        empty = false;
    }
    lines.push(Line::from(cur));
    lines
}

fn kv(label: &str, value: Span<'static>) -> Vec<Span<'static>> {
    vec![Span::raw(format!("{label} ")), value]
}

impl App {
    /// Draws the current screen into the frame, whatever its size.
    pub fn draw(&self, frame: &mut Frame) {
        let area = frame.area();
        if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
            too_small(frame, area);
            return;
        }
        let banner_h = u16::from(self.status.is_some());
        let [banner, body, footer] = Layout::vertical([
            Constraint::Length(banner_h),
            Constraint::Fill(1),
            Constraint::Length(1),
        ])
        .areas(area);
        if let Some(status) = &self.status {
            let style = Style::new()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD);
            let text = fit(&format!(" !! {status}"), banner.width as usize);
            frame.render_widget(Paragraph::new(Line::styled(text, style)), banner);
        }
        match (&self.snapshot, self.screen) {
            (None, _) => {
                let p = Paragraph::new(Line::styled(
                    trunc("waiting for the first snapshot…", body.width as usize),
                    dim(),
                ));
                frame.render_widget(p, body);
            }
            (Some(s), Screen::List) => self.draw_list(frame, body, s),
            (Some(s), Screen::Detail) => self.draw_detail(frame, body, s),
            (Some(s), Screen::Recordings) => self.draw_recordings(frame, body, s),
        }
        self.draw_footer(frame, footer);
        if self.help {
            draw_help(frame, area);
        }
    }

    fn draw_footer(&self, frame: &mut Frame, area: Rect) {
        let w = area.width as usize;
        let line = if let Some(input) = &self.search_input {
            Line::from(vec![
                Span::styled("Search: ", bold().fg(Color::Yellow)),
                Span::raw(trunc(
                    &format!("{input}_   (Enter applies, Esc cancels)"),
                    w.saturating_sub(8),
                )),
            ])
        } else if let Some((ok, note)) = &self.note {
            let color = if *ok { Color::Green } else { Color::LightRed };
            Line::styled(trunc(note, w), bold().fg(color))
        } else {
            let hints: &[(&str, &str)] = match self.screen {
                Screen::List => &[
                    ("q", "Quit"),
                    ("Enter", "Detail"),
                    ("/", "Search"),
                    ("s", "Sort"),
                    ("z", "Reverse"),
                    ("f", "State"),
                    ("F", "Rec"),
                    ("x", "Clear"),
                    ("r", "Recordings"),
                    ("w", "Save pcap"),
                    ("?", "Help"),
                ],
                Screen::Detail => &[
                    ("Esc", "Back"),
                    ("Tab/1-4", "Pane"),
                    ("j/k", "Move"),
                    ("J/K", "Scroll msg"),
                    ("w", "Save pcap"),
                    ("W", "Save text"),
                    ("?", "Help"),
                ],
                Screen::Recordings => &[("Esc", "Back"), ("j/k", "Scroll"), ("?", "Help")],
            };
            let mut spans = Vec::new();
            let mut used = 0;
            for (k, what) in hints {
                let n = width(k) + width(what) + 2;
                if used + n > w {
                    break;
                }
                spans.push(Span::styled(
                    k.to_string(),
                    Style::new().fg(Color::Black).bg(Color::Cyan),
                ));
                spans.push(Span::raw(format!(" {what} ")));
                used += n;
            }
            Line::from(spans)
        };
        frame.render_widget(Paragraph::new(line), area);
    }

    // ---- the list screen ----

    fn draw_list(&self, frame: &mut Frame, area: Rect, s: &Snapshot) {
        let w = area.width as usize;
        let header = header_lines(s, w);
        let n_workers = s.workers.len();
        let per_line = (w / 52).max(1);
        let mut worker_rows = n_workers.div_ceil(per_line).clamp(1, 4);
        // The call list keeps at least five rows.
        let spare = (area.height as usize).saturating_sub(header.len() + 1 + 6);
        worker_rows = worker_rows.min(spare);
        let workers_h = if worker_rows == 0 { 0 } else { worker_rows + 1 };
        let [h_area, w_area, c_area] = Layout::vertical([
            Constraint::Length(header.len() as u16),
            Constraint::Length(workers_h as u16),
            Constraint::Fill(1),
        ])
        .areas(area);
        frame.render_widget(Paragraph::new(header), h_area);
        if workers_h > 0 {
            self.draw_workers(frame, w_area, s, per_line, worker_rows);
        }
        self.draw_calls(frame, c_area, s);
    }

    fn draw_workers(
        &self,
        frame: &mut Frame,
        area: Rect,
        s: &Snapshot,
        per_line: usize,
        rows: usize,
    ) {
        let block = Block::new()
            .borders(Borders::TOP)
            .border_style(dim())
            .title(Span::styled(
                format!(" workers ({}) ", s.workers.len()),
                bold(),
            ));
        let inner = block.inner(area);
        frame.render_widget(block, area);
        if s.workers.is_empty() {
            frame.render_widget(
                Paragraph::new(Line::styled("no workers reported", dim())),
                inner,
            );
            return;
        }
        let max = self
            .history
            .iter()
            .flat_map(|h| h.iter().rev().take(SPARK_W))
            .fold(0.0f64, |m, v| m.max(*v));
        let cell_w = (inner.width as usize / per_line).max(1);
        let shown = (rows * per_line).min(s.workers.len());
        let mut lines: Vec<Line> = Vec::new();
        for r in 0..rows {
            let mut spans = Vec::new();
            for c in 0..per_line {
                let i = r * per_line + c;
                if i >= shown {
                    break;
                }
                let last_cell = r == rows - 1 && c == per_line - 1 && shown < s.workers.len();
                if last_cell {
                    spans.push(Span::styled(
                        format!("… {} more workers", s.workers.len() - shown + 1),
                        dim(),
                    ));
                    break;
                }
                spans.extend(worker_cell(
                    i,
                    &s.workers[i],
                    self.history.get(i),
                    max,
                    cell_w,
                ));
            }
            lines.push(Line::from(spans));
        }
        frame.render_widget(Paragraph::new(lines), inner);
    }

    fn draw_calls(&self, frame: &mut Frame, area: Rect, s: &Snapshot) {
        let rows = self.rows();
        let filt = |active: bool, text: String| {
            if active {
                Span::styled(text, bold().fg(Color::Yellow))
            } else {
                Span::raw(text)
            }
        };
        let arrow = if self.reverse { "▼" } else { "▲" };
        let title = vec![
            Span::styled(format!(" calls {}/{} ", rows.len(), s.calls.len()), bold()),
            // The daemon sent only its newest calls.
            if s.calls_total > s.calls.len() as u64 {
                Span::styled(
                    format!("(newest of {}) ", s.calls_total),
                    bold().fg(Color::Yellow),
                )
            } else {
                Span::raw("")
            },
            Span::raw("· sort "),
            Span::raw(format!("{} {arrow} ", self.sort.name())),
            Span::raw("· "),
            filt(
                self.state_filter != StateFilter::All,
                format!("state: {} ", self.state_filter.name()),
            ),
            Span::raw("· "),
            filt(
                self.rec_filter != RecFilter::All,
                format!("recording: {} ", self.rec_filter.name()),
            ),
            Span::raw("· "),
            filt(
                !self.search.is_empty(),
                if self.search.is_empty() {
                    "search: - ".to_string()
                } else {
                    format!("search: \"{}\" ", clean(&self.search))
                },
            ),
        ];
        let block = Block::new()
            .borders(Borders::TOP)
            .border_style(dim())
            .title(Line::from(title));
        let inner = block.inner(area);
        frame.render_widget(block, area);
        if inner.height == 0 {
            return;
        }
        let cols = list_columns(inner.width);
        let mut lines = vec![list_header(&cols, self.sort, arrow)];
        let height = inner.height as usize - 1;
        self.list_page.set(height.max(1));
        if rows.is_empty() {
            let why = if s.calls.is_empty() {
                "no calls"
            } else {
                "no call matches the filters (x clears them)"
            };
            lines.push(Line::styled(format!("  {why}"), dim()));
        } else {
            let sel = self.sel_index(&rows);
            let off = sticky(self.list_offset.get(), sel, height, rows.len());
            self.list_offset.set(off);
            for (i, c) in rows.iter().enumerate().skip(off).take(height) {
                lines.push(call_line(&cols, c, s.now, i == sel));
            }
        }
        frame.render_widget(Paragraph::new(lines), inner);
    }

    // ---- the detail screen ----

    fn draw_detail(&self, frame: &mut Frame, area: Rect, s: &Snapshot) {
        let w = area.width as usize;
        let id = self.detail_call.unwrap_or(0);
        let detail = self.detail();
        let row = detail
            .map(|d| &d.call)
            .or_else(|| s.calls.iter().find(|c| c.id == id));
        let mut head: Vec<Line> = Vec::new();
        match row {
            Some(c) => {
                let items = vec![
                    vec![Span::raw(format!(
                        "{} → {}",
                        trunc(&c.caller, 30),
                        trunc(&c.callee, 30)
                    ))],
                    vec![Span::raw(or_dash(&c.direction))],
                    vec![Span::styled(clean(&c.state), state_style(&c.state))],
                    vec![Span::raw(duration(call_duration(c, s.now)))],
                    vec![Span::raw(or_dash(&c.codec))],
                    vec![Span::styled(or_dash(&c.recording), rec_style(&c.recording))],
                ];
                head.extend(flow(&format!("call #{id}  "), items, w));
                let mut items = vec![vec![Span::raw(format!(
                    "Call-ID {}",
                    trunc(&c.sip_call_id, 40)
                ))]];
                if let Some(conv) = c.conversation {
                    items.push(vec![Span::raw(format!("conversation #{conv}"))]);
                }
                if let Some(d) = detail {
                    let ladder = Ladder::new(d, w);
                    let legs: Vec<String> = ladder
                        .legs
                        .iter()
                        .map(|l| format!("{} #{l}", ladder.leg_letter(*l)))
                        .collect();
                    items.push(vec![Span::raw(format!("legs {}", legs.join(", ")))]);
                    items.push(vec![Span::raw(format!(
                        "{} messages{}",
                        d.messages.len(),
                        if d.messages_dropped > 0 {
                            format!(" ({} left out)", d.messages_dropped)
                        } else {
                            String::new()
                        }
                    ))]);
                }
                head.extend(flow("", items, w));
            }
            None => head.push(Line::from(vec![
                Span::styled(format!("call #{id}  "), bold()),
                Span::styled("no longer in the list", dim()),
            ])),
        }
        // The pane tabs.
        let mut tabs = Vec::new();
        for (i, p) in Pane::ALL.iter().enumerate() {
            let t = format!(" {} {} ", i + 1, p.title());
            if *p == self.pane {
                tabs.push(Span::styled(
                    format!("[{}]", t.trim()),
                    Style::new()
                        .fg(Color::Black)
                        .bg(Color::Cyan)
                        .add_modifier(Modifier::BOLD),
                ));
            } else {
                tabs.push(Span::raw(t));
            }
            tabs.push(Span::styled("│", dim()));
        }
        head.push(Line::from(tabs));
        let [h_area, p_area] =
            Layout::vertical([Constraint::Length(head.len() as u16), Constraint::Fill(1)])
                .areas(area);
        frame.render_widget(Paragraph::new(head), h_area);
        let Some(d) = detail else {
            frame.render_widget(
                Paragraph::new(Line::styled(
                    trunc("waiting for the call's detail…", p_area.width as usize),
                    dim(),
                )),
                p_area,
            );
            return;
        };
        match self.pane {
            Pane::Flow => self.draw_flow(frame, p_area, d),
            Pane::Streams => {
                self.draw_lines(frame, p_area, streams_lines(d, p_area.width as usize))
            }
            Pane::Timeline => {
                let lines: Vec<Line> = if d.timeline.is_empty() {
                    vec![Line::styled("no recording events", dim())]
                } else {
                    d.timeline
                        .iter()
                        .map(|t| {
                            Line::from(vec![
                                Span::styled(hms_ms(t.ts), dim()),
                                Span::raw("  "),
                                Span::raw(trunc(
                                    &t.what,
                                    (p_area.width as usize).saturating_sub(14),
                                )),
                            ])
                        })
                        .collect()
                };
                self.draw_lines(frame, p_area, lines)
            }
            Pane::Decision => {
                let lines: Vec<Line> = if d.decision.is_empty() {
                    vec![Line::styled("no decision yet", dim())]
                } else {
                    d.decision
                        .iter()
                        .enumerate()
                        .map(|(i, l)| {
                            let t = trunc(&l.replace('\t', "    "), p_area.width as usize);
                            if i == 0 {
                                Line::styled(t, bold())
                            } else {
                                Line::raw(t)
                            }
                        })
                        .collect()
                };
                self.draw_lines(frame, p_area, lines)
            }
        }
    }

    /// A scrollable pane of lines (streams, timeline, decision).
    fn draw_lines(&self, frame: &mut Frame, area: Rect, lines: Vec<Line<'static>>) {
        let h = area.height as usize;
        let max = lines.len().saturating_sub(h);
        self.scroll_max.set(max);
        self.pane_page.set(h.max(1));
        let off = self.pane_scroll.min(max);
        let shown: Vec<Line> = lines.into_iter().skip(off).take(h).collect();
        frame.render_widget(Paragraph::new(shown), area);
    }

    fn draw_flow(&self, frame: &mut Frame, area: Rect, d: &CallDetail) {
        let n_cols = {
            let mut c: Vec<&str> = Vec::new();
            for m in &d.messages {
                for a in [m.src.as_str(), m.dst.as_str()] {
                    if !c.contains(&a) {
                        c.push(a);
                    }
                }
            }
            c.len().max(1)
        };
        let (l_area, m_area) = if area.width >= 140 {
            let lw = (TIME_W + n_cols * 26 + 2).min(area.width as usize * 3 / 5) as u16;
            let [l, m] =
                Layout::horizontal([Constraint::Length(lw), Constraint::Fill(1)]).areas(area);
            (l, m)
        } else {
            let mh = (area.height * 2 / 5).max(5);
            let [l, m] =
                Layout::vertical([Constraint::Fill(1), Constraint::Length(mh)]).areas(area);
            (l, m)
        };
        if d.messages.is_empty() {
            frame.render_widget(
                Paragraph::new(Line::styled("no SIP messages", dim())),
                l_area,
            );
            return;
        }
        let cursor = self.msg_cursor.min(d.messages.len() - 1);
        // The ladder: a fixed row of addresses, then two rows per message.
        let ladder = Ladder::new(d, l_area.width as usize);
        let body_rows = (l_area.height as usize).saturating_sub(1);
        let visible = (body_rows / 2).max(1);
        self.ladder_page.set(visible);
        let off = sticky(self.ladder_offset.get(), cursor, visible, d.messages.len());
        self.ladder_offset.set(off);
        let mut lines = vec![ladder.header()];
        for (i, m) in d.messages.iter().enumerate().skip(off).take(visible) {
            lines.extend(ladder.message(m, i == cursor));
        }
        frame.render_widget(Paragraph::new(lines), l_area);

        // The message under the cursor, in full.
        let m = &d.messages[cursor];
        let block = Block::bordered().border_style(dim()).title(Span::styled(
            format!(" message {}/{} (J/K scroll) ", cursor + 1, d.messages.len()),
            bold(),
        ));
        let inner = block.inner(m_area);
        frame.render_widget(block, m_area);
        let iw = inner.width as usize;
        let mut text = vec![Line::styled(
            trunc(
                &format!(
                    "{} {} -> {} {}  leg {} #{}",
                    hms_ms(m.ts),
                    m.src,
                    m.dst,
                    m.transport,
                    ladder.leg_letter(m.leg),
                    m.leg
                ),
                iw,
            ),
            Style::new().fg(Color::Yellow),
        )];
        text.extend(hard_wrap(&m.text, iw).into_iter().map(Line::raw));
        let h = inner.height as usize;
        let max = text.len().saturating_sub(h);
        self.scroll_max.set(max);
        let off = self.msg_scroll.min(max);
        let shown: Vec<Line> = text.into_iter().skip(off).take(h).collect();
        frame.render_widget(Paragraph::new(shown), inner);
    }

    // ---- the recordings screen ----

    fn draw_recordings(&self, frame: &mut Frame, area: Rect, s: &Snapshot) {
        let block = Block::new()
            .borders(Borders::TOP)
            .border_style(dim())
            .title(Span::styled(
                format!(
                    " recent recordings ({}) · {} started, {} written, {} failed, {} deleted ",
                    s.recent.len(),
                    s.recordings.started,
                    s.recordings.written,
                    s.recordings.failed,
                    s.recordings.deleted
                ),
                bold(),
            ));
        let inner = block.inner(area);
        frame.render_widget(block, area);
        if inner.height == 0 {
            return;
        }
        let widths = col_widths(
            inner.width,
            &[
                Constraint::Length(8),
                Constraint::Length(6),
                Constraint::Fill(1),
                Constraint::Length(6),
                Constraint::Length(10),
                Constraint::Length(8),
                Constraint::Length(10),
            ],
        );
        let heads = ["start", "call", "path", "format", "size", "length", "state"];
        let right = [false, true, false, false, true, true, false];
        let header: Vec<String> = heads.iter().map(|h| h.to_string()).collect();
        let mut lines = vec![row_line(&widths, &header, &right, header_style(), None)];
        let h = inner.height as usize - 1;
        if s.recent.is_empty() {
            lines.push(Line::styled("no recordings yet", dim()));
            self.scroll_max.set(0);
        } else {
            let max = s.recent.len().saturating_sub(h);
            self.scroll_max.set(max);
            self.pane_page.set(h.max(1));
            for r in s.recent.iter().skip(self.rec_scroll.min(max)).take(h) {
                let mut cells = vec![
                    hms(r.start),
                    format!("#{}", r.call),
                    String::new(),
                    r.format.clone(),
                    bytes(r.bytes),
                    duration(r.duration_s),
                    r.state.clone(),
                ];
                // Paths are cut from the left: their end names the file.
                cells[2] = trunc_left(&r.path, widths[2]);
                let st = match r.state.as_str() {
                    "complete" => Style::new().fg(Color::Green),
                    "failed" => Style::new().fg(Color::LightRed),
                    "partial" | "no-audio" => Style::new().fg(Color::Yellow),
                    _ => Style::new(),
                };
                lines.push(row_line(
                    &widths,
                    &cells,
                    &right,
                    Style::new(),
                    Some((6, st)),
                ));
            }
        }
        frame.render_widget(Paragraph::new(lines), inner);
    }
}

fn or_dash(s: &str) -> String {
    if s.is_empty() { "-".into() } else { clean(s) }
}

/// The first line to show so that row `sel` is within `height` rows, moving as little as
/// possible from `off`.
fn sticky(off: usize, sel: usize, height: usize, len: usize) -> usize {
    if height == 0 {
        return 0;
    }
    let mut off = off.min(len.saturating_sub(height));
    if sel < off {
        off = sel;
    } else if sel >= off + height {
        off = sel + 1 - height;
    }
    off
}

fn too_small(frame: &mut Frame, area: Rect) {
    let w = area.width as usize;
    let lines = vec![
        Line::styled(trunc("terminal too small", w), bold().fg(Color::LightRed)),
        Line::raw(trunc(
            &format!(
                "{}x{}, need {MIN_WIDTH}x{MIN_HEIGHT}",
                area.width, area.height
            ),
            w,
        )),
    ];
    frame.render_widget(Paragraph::new(lines), area);
}

fn header_lines(s: &Snapshot, w: usize) -> Vec<Line<'static>> {
    let mut top = vec![
        kv("source", Span::raw(trunc(&s.source, w / 2))),
        kv("mode", Span::raw(or_dash(&s.mode))),
        kv("up", Span::raw(uptime(s.uptime_s))),
        kv("time", Span::raw(format!("{} UTC", hms(s.now)))),
    ];
    if let Some(p) = s.progress {
        let mut item = kv(
            "replay",
            Span::raw(format!("{:.0}%", (p * 100.0).clamp(0.0, 100.0))),
        );
        if s.finished {
            item.push(Span::styled(" finished", bold().fg(Color::Green)));
        }
        top.push(item);
    } else if s.finished {
        top.push(vec![Span::styled("finished", bold().fg(Color::Green))]);
    }
    let mut lines = flow("voxtap  ", top, w);
    let rates = vec![
        kv("total", Span::raw(format!("{}/s", rate(s.rates.frames)))),
        kv("SIP", Span::raw(format!("{}/s", rate(s.rates.sip)))),
        kv("RTP", Span::raw(format!("{}/s", rate(s.rates.rtp)))),
        vec![Span::raw(format!(
            "calls {} active, {} seen, {} answered",
            s.active_calls, s.totals.calls_seen, s.totals.calls_answered
        ))],
        vec![
            Span::raw(format!(
                "recordings {} active, {} written, ",
                s.active_recordings, s.recordings.written
            )),
            loss_count(s.recordings.failed),
            Span::raw(" failed"),
        ],
        vec![
            Span::raw(format!(
                "writer lag {:.1} s, {} queued, ",
                s.writer.lag_s, s.writer.queued_events
            )),
            loss_count(s.writer.refused),
            Span::raw(" refused"),
        ],
    ];
    lines.extend(flow("packets ", rates, w));
    let d = &s.drops;
    let group = |g: &str| Span::styled(format!("{g}: "), Style::new().fg(Color::Cyan));
    let item = |g: Option<&str>, label: &str, n: u64| {
        let mut v = Vec::new();
        if let Some(g) = g {
            v.push(group(g));
        }
        v.push(Span::raw(format!("{label} ")));
        v.push(loss_count(n));
        v
    };
    let drops = vec![
        item(Some("kernel"), "ring full", d.kernel_ring_full),
        item(None, "fill ring empty", d.kernel_fill_ring_empty),
        item(None, "af_packet", d.kernel_dropped),
        item(None, "no socket", d.kernel_redirect_failed),
        item(Some("voxtap"), "queue full", d.queue_full),
        item(None, "malformed", d.malformed),
        item(None, "bounds", d.bounds),
        item(None, "late audio", d.late_audio),
        item(None, "decrypt", d.decrypt_failures),
        item(None, "undecodable", d.undecodable_streams),
        item(None, "encrypted", d.encrypted_streams),
        item(Some("network"), "rtp lost", d.network_rtp_lost),
    ];
    lines.extend(flow("drops   ", drops, w));
    lines
}

fn worker_cell(
    i: usize,
    w: &crate::proto::WorkerLoad,
    history: Option<&std::collections::VecDeque<f64>>,
    max: f64,
    cell_w: usize,
) -> Vec<Span<'static>> {
    let spark: String = {
        let h: Vec<f64> = history
            .map(|h| h.iter().rev().take(SPARK_W).rev().copied().collect())
            .unwrap_or_default();
        let mut s: String = std::iter::repeat_n(' ', SPARK_W - h.len()).collect();
        for v in h {
            let level = if max > 0.0 {
                ((v / max) * 7.0).round().clamp(0.0, 7.0) as usize
            } else {
                0
            };
            s.push(SPARK[level]);
        }
        s
    };
    let fill = w.queue_fill.clamp(0.0, 1.0);
    let filled = (fill * 10.0).round() as usize;
    let gauge: String = "█".repeat(filled) + &"░".repeat(10 - filled);
    let gauge_style = Style::new().fg(if fill >= 0.8 {
        Color::LightRed
    } else if fill >= 0.5 {
        Color::Yellow
    } else {
        Color::Green
    });
    let spans = vec![
        Span::styled(format!("w{i:<2} "), bold()),
        Span::styled(spark, Style::new().fg(Color::Cyan)),
        Span::raw(format!(" {:>6} pps  queue ", rate(w.rtp_pps))),
        Span::styled(gauge, gauge_style),
        Span::raw(format!(" {:>3.0}%", fill * 100.0)),
    ];
    let used: usize = spans.iter().map(|s| width(&s.content)).sum();
    let mut spans = spans;
    if cell_w > used {
        spans.push(Span::raw(" ".repeat(cell_w - used)));
    }
    spans
}

fn header_style() -> Style {
    Style::new()
        .fg(Color::Black)
        .bg(Color::Cyan)
        .add_modifier(Modifier::BOLD)
}

/// The widths of columns in `w` cells, one cell apart.
fn col_widths(w: u16, constraints: &[Constraint]) -> Vec<usize> {
    Layout::horizontal(constraints.iter().copied())
        .spacing(1)
        .split(Rect::new(0, 0, w, 1))
        .iter()
        .map(|r| r.width as usize)
        .collect()
}

/// A table row: each cell cut (with `…`) and padded to its column, one space apart; one cell
/// may have a style of its own.
fn row_line(
    widths: &[usize],
    cells: &[String],
    right: &[bool],
    style: Style,
    special: Option<(usize, Style)>,
) -> Line<'static> {
    let mut spans = Vec::new();
    for (i, (w, c)) in widths.iter().zip(cells).enumerate() {
        if *w == 0 {
            continue;
        }
        let t = if right.get(i).copied().unwrap_or(false) {
            fit_right(c, *w)
        } else {
            fit(c, *w)
        };
        let st = match special {
            Some((j, s)) if j == i => style.patch(s),
            _ => style,
        };
        spans.push(Span::styled(t, st));
        if i + 1 < widths.len() {
            spans.push(Span::styled(" ", style));
        }
    }
    Line::from(spans)
}

const LIST_COLS: [(SortKey, &str, bool); 11] = [
    (SortKey::Start, "start", false),
    (SortKey::Caller, "caller", false),
    (SortKey::Callee, "callee", false),
    (SortKey::Direction, "direction", false),
    (SortKey::State, "state", false),
    (SortKey::Duration, "dur", true),
    (SortKey::Codec, "codec", false),
    (SortKey::Recording, "recording", false),
    (SortKey::Loss, "loss", true),
    (SortKey::Jitter, "jitter", true),
    (SortKey::Mos, "MOS", true),
];

/// The call list's columns that fit in `w` cells (after a gutter of two for the cursor), each
/// as its index in [`LIST_COLS`] and its width. Narrow screens drop direction first, then codec
/// and jitter.
fn list_columns(w: u16) -> Vec<(usize, usize)> {
    let avail = w.saturating_sub(2);
    let constraint = |i: usize| match i {
        0 => Constraint::Length(8),
        1 | 2 => Constraint::Fill(3),
        3 => Constraint::Length(9),
        4 => Constraint::Length(13),
        5 => Constraint::Length(7),
        6 => Constraint::Length(6),
        7 => Constraint::Fill(2),
        8 | 9 => Constraint::Length(6),
        _ => Constraint::Length(4),
    };
    let shown: Vec<usize> = (0..LIST_COLS.len())
        .filter(|i| match i {
            3 => avail >= 110,
            6 | 9 => avail >= 90,
            _ => true,
        })
        .collect();
    let constraints: Vec<Constraint> = shown.iter().map(|i| constraint(*i)).collect();
    shown
        .into_iter()
        .zip(col_widths(avail, &constraints))
        .collect()
}

fn list_header(cols: &[(usize, usize)], sort: SortKey, arrow: &str) -> Line<'static> {
    let mut spans = vec![Span::styled("  ", header_style())];
    for (n, (i, w)) in cols.iter().enumerate() {
        let (k, name, right) = LIST_COLS[*i];
        let t = if k == sort {
            format!("{name}{arrow}")
        } else {
            name.to_string()
        };
        spans.push(Span::styled(
            if right {
                fit_right(&t, *w)
            } else {
                fit(&t, *w)
            },
            header_style(),
        ));
        if n + 1 < cols.len() {
            spans.push(Span::styled(" ", header_style()));
        }
    }
    Line::from(spans)
}

fn state_style(state: &str) -> Style {
    let c = if state.starts_with("ringing") {
        Color::Yellow
    } else if state.starts_with("talking") {
        Color::Green
    } else if state.starts_with("on hold") {
        Color::Cyan
    } else {
        Color::DarkGray
    };
    Style::new().fg(c)
}

fn rec_style(rec: &str) -> Style {
    if rec == "recording" {
        Style::new()
            .fg(Color::LightRed)
            .add_modifier(Modifier::BOLD)
    } else if rec.starts_with("paused") {
        Style::new().fg(Color::Yellow)
    } else if rec == "recorded" {
        Style::new().fg(Color::Blue)
    } else {
        Style::new().fg(Color::DarkGray)
    }
}

fn mos_style(mos: f64) -> Style {
    Style::new().fg(if mos >= 4.0 {
        Color::Green
    } else if mos >= 3.6 {
        Color::Yellow
    } else {
        Color::LightRed
    })
}

fn call_line(cols: &[(usize, usize)], c: &CallRow, now: f64, selected: bool) -> Line<'static> {
    let ended = c.state.starts_with("ended");
    let has_rtp = c.mos.is_some();
    let cells = [
        hms(c.start),
        clean(&c.caller),
        clean(&c.callee),
        or_dash(&c.direction),
        or_dash(&c.state),
        duration(call_duration(c, now)),
        or_dash(&c.codec),
        or_dash(&c.recording),
        if has_rtp {
            format!("{:.1}%", c.loss * 100.0)
        } else {
            "-".into()
        },
        if has_rtp {
            format!("{:.1}", c.jitter_ms)
        } else {
            "-".into()
        },
        c.mos.map_or("-".into(), |m| format!("{m:.1}")),
    ];
    let base = if ended { dim() } else { Style::new() };
    let mut spans = vec![Span::styled(if selected { "> " } else { "  " }, base)];
    for (n, &(i, w)) in cols.iter().enumerate() {
        let t = &cells[i];
        let text = if LIST_COLS[i].2 {
            fit_right(t, w)
        } else {
            fit(t, w)
        };
        let st = match i {
            4 if !ended => state_style(&c.state),
            7 if !ended => rec_style(&c.recording),
            8 if has_rtp && c.loss > 0.01 => Style::new().fg(Color::LightRed),
            10 if !ended => c.mos.map_or(base, mos_style),
            _ => base,
        };
        spans.push(Span::styled(text, st));
        if n + 1 < cols.len() {
            spans.push(Span::styled(" ", base));
        }
    }
    let mut line = Line::from(spans);
    if selected {
        line = line.patch_style(Style::new().add_modifier(Modifier::REVERSED));
    }
    line
}

fn streams_lines(d: &CallDetail, w: usize) -> Vec<Line<'static>> {
    let mut lines = vec![Line::styled("legs", bold())];
    let ladder = Ladder::new(d, w);
    let leg_cols = col_widths(
        w as u16,
        &[
            Constraint::Length(8),
            Constraint::Length(8),
            Constraint::Fill(3),
            Constraint::Length(9),
            Constraint::Length(12),
            Constraint::Length(6),
            Constraint::Fill(2),
        ],
    );
    let legs: Vec<&CallRow> = if d.legs.is_empty() {
        vec![&d.call]
    } else {
        d.legs.iter().collect()
    };
    for l in legs {
        let cells = vec![
            format!("{} #{}", ladder.leg_letter(l.id), l.id),
            hms(l.start),
            format!("{} → {}", clean(&l.caller), clean(&l.callee)),
            or_dash(&l.direction),
            or_dash(&l.state),
            or_dash(&l.codec),
            or_dash(&l.recording),
        ];
        lines.push(row_line(
            &leg_cols,
            &cells,
            &[],
            Style::new(),
            Some((4, state_style(&l.state))),
        ));
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled("RTP streams", bold()));
    let cols = col_widths(
        w as u16,
        &[
            Constraint::Length(6),
            Constraint::Fill(1),
            Constraint::Length(6),
            Constraint::Length(7),
            Constraint::Length(12),
            Constraint::Length(11),
            Constraint::Length(4),
            Constraint::Length(13),
        ],
    );
    let right = [false, false, false, true, true, true, true, false];
    let head: Vec<String> = [
        "side",
        "src → dst",
        "codec",
        "packets",
        "lost",
        "jitter ms",
        "MOS",
        "status",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    lines.push(row_line(&cols, &head, &right, header_style(), None));
    if d.streams.is_empty() {
        lines.push(Line::styled("no RTP streams", dim()));
    }
    for st in &d.streams {
        let share = if st.expected > 0 {
            format!(
                " {:.1}%",
                st.lost.max(0) as f64 * 100.0 / st.expected as f64
            )
        } else {
            String::new()
        };
        let status = if st.ended {
            or_dash(&st.status)
        } else if st.status.is_empty() {
            "live".into()
        } else {
            clean(&st.status)
        };
        let cells = vec![
            or_dash(&st.side),
            format!("{} → {}", st.src, st.dst),
            or_dash(&st.codec),
            st.packets.to_string(),
            format!("{}{share}", st.lost),
            format!("{:.1}/{:.1}", st.jitter_ms, st.max_jitter_ms),
            st.mos.map_or("-".into(), |m| format!("{m:.1}")),
            status,
        ];
        let sst = match st.status.as_str() {
            "decoded" | "live" => Style::new().fg(Color::Green),
            "undecodable" | "encrypted" => Style::new().fg(Color::LightRed),
            "partial" | "no-audio" => Style::new().fg(Color::Yellow),
            _ => Style::new(),
        };
        lines.push(row_line(
            &cols,
            &cells,
            &right,
            Style::new(),
            Some((7, sst)),
        ));
    }
    lines
}

/// Every key, as the help popup lists them.
pub const HELP: &[(&str, &str)] = &[
    ("", "Anywhere"),
    ("F1 ?", "this help (any key closes it)"),
    ("Ctrl-C", "quit"),
    ("", "Call list"),
    ("↑ ↓ k j", "select a call"),
    ("PgUp PgDn", "a page up / down"),
    ("Home End g G", "first / last call"),
    ("Enter → l", "the call's detail"),
    (
        "/",
        "search caller, callee, Call-ID (Enter applies, Esc cancels)",
    ),
    ("s > <", "sort by the next / previous column"),
    ("z", "reverse the sort"),
    (
        "f",
        "filter by state: all, live, ringing, talking, on hold, ended",
    ),
    (
        "F",
        "filter by recording: all, recording, paused, recorded, not recorded",
    ),
    ("x", "clear the filters and the search"),
    ("r", "recent recordings"),
    (
        "w F2 / W",
        "save the call's SIP as pcap / text (needs its detail)",
    ),
    (
        "p / R",
        "pause or resume / stop or start the recording (control socket)",
    ),
    ("q", "quit"),
    ("", "Call detail"),
    (
        "Tab S-Tab 1-4",
        "pane: 1 flow, 2 streams, 3 timeline, 4 decision",
    ),
    (
        "↑ ↓ k j",
        "flow: the previous / next message; others: scroll",
    ),
    ("PgUp PgDn", "a page of messages / lines"),
    ("Home End g G", "first / last message / line"),
    ("J K", "scroll the message pane"),
    ("w F2 / W", "save this call's SIP as pcap / text"),
    ("p / R", "pause or resume / stop or start the recording"),
    ("Esc q ← h", "back to the list"),
    ("", "Recent recordings"),
    ("↑ ↓ k j PgUp PgDn", "scroll"),
    ("Esc q r ←", "back to the list"),
];

fn draw_help(frame: &mut Frame, area: Rect) {
    let w = area.width.saturating_sub(4).min(90);
    let h = area.height.saturating_sub(2).min(HELP.len() as u16 + 2);
    let popup = Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    );
    frame.render_widget(Clear, popup);
    let block = Block::bordered()
        .title(Span::styled(" keys (any key closes) ", bold()))
        .border_style(Style::new().fg(Color::Cyan));
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let iw = inner.width as usize;
    let lines: Vec<Line> = HELP
        .iter()
        .map(|(k, what)| {
            if k.is_empty() {
                Line::styled(trunc(what, iw), bold().fg(Color::Yellow))
            } else {
                Line::from(vec![
                    Span::styled(fit(k, 18), bold()),
                    Span::raw(trunc(what, iw.saturating_sub(18))),
                ])
            }
        })
        .collect();
    frame.render_widget(Paragraph::new(lines), inner);
}
