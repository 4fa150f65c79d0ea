//! The SIP ladder (call flow) of a call, drawn the way sngrep draws one: a column per address,
//! a vertical line under each, and per message a label row and an arrow row from its source
//! column to its destination column.

use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use unicode_width::UnicodeWidthChar;

use super::text::{hms_ms, trunc};
use crate::proto::{CallDetail, SipMessage};

/// The cells left of the first column: cursor mark, leg letter, space, `HH:MM:SS.mmm`, space.
pub const TIME_W: usize = 16;
const MIN_SPACING: usize = 10;
const MAX_SPACING: usize = 26;

/// The colours the legs' arrows are drawn in, in leg order.
const LEG_COLORS: [Color; 5] = [
    Color::Cyan,
    Color::Magenta,
    Color::Yellow,
    Color::Green,
    Color::Blue,
];

/// A ladder's geometry: its columns (addresses in order of first appearance), their spacing, and
/// the letter of each leg.
pub struct Ladder {
    pub columns: Vec<String>,
    pub spacing: usize,
    pub width: usize,
    /// The legs' call ids, in the order of their letters (A, B, ...).
    pub legs: Vec<u64>,
}

impl Ladder {
    pub fn new(detail: &CallDetail, width: usize) -> Ladder {
        let mut columns: Vec<String> = Vec::new();
        for m in &detail.messages {
            for a in [&m.src, &m.dst] {
                if !columns.iter().any(|c| c == a) {
                    columns.push(a.clone());
                }
            }
        }
        let mut legs: Vec<u64> = detail.legs.iter().map(|l| l.id).collect();
        if !legs.contains(&detail.call.id) {
            legs.insert(0, detail.call.id);
        }
        for m in &detail.messages {
            if !legs.contains(&m.leg) {
                legs.push(m.leg);
            }
        }
        let n = columns.len().max(1);
        let spacing = (width.saturating_sub(TIME_W) / n).clamp(MIN_SPACING, MAX_SPACING);
        Ladder {
            columns,
            spacing,
            width,
            legs,
        }
    }

    /// The letter of a leg: `A` for the first, ...
    pub fn leg_letter(&self, leg: u64) -> char {
        let i = self.legs.iter().position(|l| *l == leg).unwrap_or(0);
        (b'A' + (i % 26) as u8) as char
    }

    fn leg_style(&self, leg: u64) -> Style {
        let i = self.legs.iter().position(|l| *l == leg).unwrap_or(0);
        Style::new().fg(LEG_COLORS[i % LEG_COLORS.len()])
    }

    fn x(&self, col: usize) -> usize {
        TIME_W + self.spacing / 2 + col * self.spacing
    }

    fn col(&self, addr: &str) -> usize {
        self.columns.iter().position(|c| c == addr).unwrap_or(0)
    }

    /// The row of addresses over the columns.
    pub fn header(&self) -> Line<'static> {
        let mut g = Grid::new(self.width);
        let bold = Style::new().add_modifier(Modifier::BOLD);
        g.put_str(3, "time (UTC)", Style::new().fg(Color::DarkGray));
        for (i, a) in self.columns.iter().enumerate() {
            let label = trunc(a, self.spacing - 1);
            let w = label.chars().count();
            let start = self.x(i).saturating_sub(w / 2).max(TIME_W);
            g.put_str(start, &label, bold);
        }
        g.line()
    }

    /// The two rows of message `m`: its label, then its arrow with its time.
    pub fn message(&self, m: &SipMessage, selected: bool) -> [Line<'static>; 2] {
        let dim = Style::new().fg(Color::DarkGray);
        let mut style = self.leg_style(m.leg);
        if selected {
            style = style.add_modifier(Modifier::REVERSED | Modifier::BOLD);
        }
        let mut label = Grid::new(self.width);
        let mut arrow = Grid::new(self.width);
        for i in 0..self.columns.len() {
            label.put(self.x(i), '│', dim);
            arrow.put(self.x(i), '│', dim);
        }
        if selected {
            label.put(0, '>', style);
            arrow.put(0, '>', style);
        }
        arrow.put(1, self.leg_letter(m.leg), self.leg_style(m.leg));
        arrow.put_str(3, &hms_ms(m.ts), Style::new());
        let text = short_first_line(&m.first_line);
        let (xa, xb) = (self.x(self.col(&m.src)), self.x(self.col(&m.dst)));
        if xa == xb {
            // To itself: a loop mark and the label beside the line.
            let t = trunc(&text, self.spacing.saturating_sub(4));
            arrow.put_str(xa + 1, &format!("↻ {t}"), style);
        } else {
            let (lo, hi) = (xa.min(xb), xa.max(xb));
            let t = trunc(&text, hi - lo - 3);
            label.put_str(lo + 2, &t, style);
            for x in lo + 1..hi {
                arrow.put(x, '─', style);
            }
            if xb > xa {
                arrow.put(hi - 1, '>', style);
            } else {
                arrow.put(lo + 1, '<', style);
            }
        }
        [label.line(), arrow.line()]
    }
}

/// What a message's arrow is labelled with: the status of a response (`200 OK`), the method
/// and URI of a request.
pub fn short_first_line(first: &str) -> String {
    let f = first.trim();
    if let Some(rest) = f.strip_prefix("SIP/2.0 ") {
        return rest.trim().to_string();
    }
    f.strip_suffix("SIP/2.0").unwrap_or(f).trim().to_string()
}

/// A row of cells, each a char of width 1 and its style.
struct Grid {
    cells: Vec<(char, Style)>,
}

impl Grid {
    fn new(w: usize) -> Grid {
        Grid {
            cells: vec![(' ', Style::new()); w],
        }
    }

    fn put(&mut self, x: usize, c: char, s: Style) {
        if let Some(cell) = self.cells.get_mut(x) {
            // The grid is one cell per char: anything wider or zero-width is shown as `?`.
            let c = if c.width() == Some(1) { c } else { '?' };
            *cell = (c, s);
        }
    }

    fn put_str(&mut self, x: usize, t: &str, s: Style) {
        for (i, c) in t.chars().enumerate() {
            self.put(x + i, c, s);
        }
    }

    fn line(self) -> Line<'static> {
        let mut spans: Vec<Span<'static>> = Vec::new();
        let mut cur = String::new();
        let mut style = Style::new();
        for (c, s) in self.cells {
            if s != style && !cur.is_empty() {
                spans.push(Span::styled(std::mem::take(&mut cur), style));
            }
            style = s;
            cur.push(c);
        }
        if !cur.is_empty() {
            spans.push(Span::styled(cur, style));
        }
        Line::from(spans)
    }
}
