//! Formatting for the screens: times, durations, sizes, and cutting text to a width with `…`.

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Display width of a string in terminal cells.
pub fn width(s: &str) -> usize {
    UnicodeWidthStr::width(s)
}

/// `s` with control characters (tabs, CR, LF, ...) replaced by spaces, so a field stays on its
/// line.
pub fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// `s` cut to at most `w` cells; a cut string ends with `…`.
pub fn trunc(s: &str, w: usize) -> String {
    let s = clean(s);
    if width(&s) <= w {
        return s;
    }
    if w == 0 {
        return String::new();
    }
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let cw = c.width().unwrap_or(0);
        if used + cw > w - 1 {
            break;
        }
        used += cw;
        out.push(c);
    }
    out.push('…');
    out
}

/// `s` cut from the left to at most `w` cells (`…` then the end): for paths, whose end says
/// most.
pub fn trunc_left(s: &str, w: usize) -> String {
    let s = clean(s);
    if width(&s) <= w {
        return s;
    }
    if w == 0 {
        return String::new();
    }
    let mut tail: Vec<char> = Vec::new();
    let mut used = 0;
    for c in s.chars().rev() {
        let cw = c.width().unwrap_or(0);
        if used + cw > w - 1 {
            break;
        }
        used += cw;
        tail.push(c);
    }
    let mut out = String::from("…");
    out.extend(tail.into_iter().rev());
    out
}

/// `s` cut to `w` cells and padded with spaces to exactly `w`.
pub fn fit(s: &str, w: usize) -> String {
    let mut t = trunc(s, w);
    let pad = w.saturating_sub(width(&t));
    t.extend(std::iter::repeat_n(' ', pad));
    t
}

/// `s` cut to `w` cells and right-aligned in exactly `w`.
pub fn fit_right(s: &str, w: usize) -> String {
    let t = trunc(s, w);
    let pad = w.saturating_sub(width(&t));
    let mut out: String = std::iter::repeat_n(' ', pad).collect();
    out.push_str(&t);
    out
}

/// Seconds of the day (UTC) of an epoch time, or `None` for a time that is not one.
fn day_seconds(ts: f64) -> Option<(u64, f64)> {
    if !ts.is_finite() || ts < 0.0 {
        return None;
    }
    let secs = ts.floor();
    Some(((secs as u64) % 86_400, ts - secs))
}

/// `HH:MM:SS` (UTC) of epoch seconds; `--:--:--` for a time that is not one.
pub fn hms(ts: f64) -> String {
    match day_seconds(ts) {
        Some((d, _)) => format!("{:02}:{:02}:{:02}", d / 3600, d / 60 % 60, d % 60),
        None => "--:--:--".into(),
    }
}

/// `HH:MM:SS.mmm` (UTC) of epoch seconds.
pub fn hms_ms(ts: f64) -> String {
    // Rounded to the millisecond first, so 0.010 shown as .010, not .009.
    match day_seconds((ts * 1000.0).round() / 1000.0) {
        Some((d, frac)) => {
            let ms = ((frac * 1000.0).round() as u64).min(999);
            format!("{:02}:{:02}:{:02}.{ms:03}", d / 3600, d / 60 % 60, d % 60)
        }
        None => "--:--:--.---".into(),
    }
}

/// `YYYY-MM-DD HH:MM:SS.uuuuuu` (UTC) of epoch seconds, for the saved text.
pub fn datetime_us(ts: f64) -> String {
    let us = (ts * 1e6).round();
    // jiff's calendar; a time that is not one (NaN, before 1970, past its range) is dashes.
    let t = (us.is_finite() && us >= 0.0)
        .then(|| jiff::Timestamp::from_microsecond(us as i64).ok())
        .flatten();
    match t {
        Some(t) => t.strftime("%Y-%m-%d %H:%M:%S%.6f").to_string(),
        None => "------ --:--:--".into(),
    }
}

/// A call's length: `MM:SS`, or `H:MM:SS` from an hour on.
pub fn duration(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "--:--".into();
    }
    let s = s.floor() as u64;
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{:02}:{:02}", s / 60, s % 60)
    }
}

/// The run's uptime: `5m07s`, `2h03m`, `3d04h`.
pub fn uptime(s: f64) -> String {
    if !s.is_finite() || s < 0.0 {
        return "-".into();
    }
    let s = s.floor() as u64;
    if s < 60 {
        format!("{s}s")
    } else if s < 3600 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else if s < 86_400 {
        format!("{}h{:02}m{:02}s", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}d{:02}h{:02}m", s / 86_400, s / 3600 % 24, s / 60 % 60)
    }
}

/// A byte count in binary units: `512 B`, `1.5 KiB`, `23.4 MiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    format!("{v:.1} {}", UNITS[i])
}

/// A rate per second, compact: `950`, `12.3k`, `4.56M`.
pub fn rate(v: f64) -> String {
    if !v.is_finite() || v < 0.0 {
        return "-".into();
    }
    if v < 10_000.0 {
        format!("{v:.0}")
    } else if v < 10_000_000.0 {
        format!("{:.1}k", v / 1e3)
    } else {
        format!("{:.2}M", v / 1e6)
    }
}

/// Splits text into lines of at most `w` cells (hard wrap), after expanding tabs and dropping
/// CRs: for the full message pane, where the whole text must be readable.
pub fn hard_wrap(text: &str, w: usize) -> Vec<String> {
    let w = w.max(1);
    let mut out = Vec::new();
    for raw in text.split('\n') {
        let line: String = raw
            .trim_end_matches('\r')
            .replace('\t', "    ")
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let mut cur = String::new();
        let mut used = 0;
        for c in line.chars() {
            let cw = c.width().unwrap_or(0);
            if used + cw > w && !cur.is_empty() {
                out.push(std::mem::take(&mut cur));
                used = 0;
            }
            used += cw;
            cur.push(c);
        }
        out.push(cur);
    }
    while out.len() > 1 && out.last().is_some_and(|l| l.is_empty()) {
        out.pop();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_with_an_ellipsis() {
        assert_eq!(trunc("alice@example.com", 8), "alice@e…");
        assert_eq!(trunc("bob", 8), "bob");
        assert_eq!(trunc("bob", 0), "");
        assert_eq!(trunc("bob", 1), "…");
        assert_eq!(fit("bob", 5), "bob  ");
        assert_eq!(fit_right("7", 3), "  7");
        assert_eq!(
            trunc_left("/var/voxtap/2024/call-12.wav", 12),
            "…call-12.wav"
        );
        assert_eq!(trunc("a\tb", 5), "a b");
    }

    #[test]
    fn formats_times_and_sizes() {
        // 2024-05-01 12:34:56.789 UTC
        let t = 1_714_566_896.789;
        assert_eq!(hms(t), "12:34:56");
        assert_eq!(hms_ms(t), "12:34:56.789");
        assert_eq!(hms_ms(t - 0.789 + 0.010), "12:34:56.010");
        assert_eq!(hms_ms(t - 0.789 + 0.9996), "12:34:57.000");
        assert_eq!(datetime_us(t), "2024-05-01 12:34:56.789000");
        assert_eq!(datetime_us(0.0), "1970-01-01 00:00:00.000000");
        assert_eq!(hms(f64::NAN), "--:--:--");
        assert_eq!(duration(83.9), "01:23");
        assert_eq!(duration(3723.0), "1:02:03");
        assert_eq!(uptime(3723.0), "1h02m03s");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(5 * 1024 * 1024), "5.0 MiB");
        assert_eq!(rate(12_345.0), "12.3k");
    }

    #[test]
    fn wraps_hard() {
        assert_eq!(hard_wrap("abcdef\r\nxy\r\n", 4), vec!["abcd", "ef", "xy"]);
    }
}
