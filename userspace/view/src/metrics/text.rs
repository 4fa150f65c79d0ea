//! Writing the text exposition format, version 0.0.4: a family's `# HELP` and `# TYPE`
//! lines, then its samples, each `name{label="value",...} value`.

use std::fmt::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// A sample's value: counts are written as integers, measurements as floats.
pub(crate) trait Value {
    fn write_to(&self, out: &mut String);
}

impl Value for u64 {
    fn write_to(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Value for f64 {
    fn write_to(&self, out: &mut String) {
        write_float(out, *self);
    }
}

/// Writes `v` as Prometheus parses it: Rust's shortest round-trip form for a finite value,
/// and `NaN`, `+Inf`, `-Inf` (where Rust would write `NaN`, `inf`, `-inf`).
pub(crate) fn write_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{v}");
    }
}

/// A label value between its quotes: backslash, double quote and line feed escaped.
pub(crate) fn escape_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// A HELP text: backslash and line feed escaped (quotes are left as they are).
pub(crate) fn escape_help(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Writes families one after the other; [`Exposition::sample`] writes under the name of the
/// latest [`Exposition::family`], so a sample cannot stray from its HELP and TYPE.
pub(crate) struct Exposition<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl<'a> Exposition<'a> {
    pub(crate) fn new(out: &'a mut String) -> Self {
        Exposition { out, name: "" }
    }

    pub(crate) fn family(&mut self, name: &'static str, kind: Kind, help: &str) {
        debug_assert!(valid_name(name), "bad metric name {name}");
        debug_assert_eq!(
            kind == Kind::Counter,
            name.ends_with("_total"),
            "{name}: counters, and only counters, end in _total"
        );
        self.name = name;
        let o = &mut *self.out;
        o.push_str("# HELP ");
        o.push_str(name);
        o.push(' ');
        escape_help(o, help);
        o.push_str("\n# TYPE ");
        o.push_str(name);
        o.push(' ');
        o.push_str(kind.as_str());
        o.push('\n');
    }

    pub(crate) fn sample(&mut self, labels: &[(&str, &str)], v: impl Value) {
        debug_assert!(!self.name.is_empty(), "a sample before any family");
        let o = &mut *self.out;
        o.push_str(self.name);
        if !labels.is_empty() {
            o.push('{');
            for (i, (k, val)) in labels.iter().enumerate() {
                if i > 0 {
                    o.push(',');
                }
                o.push_str(k);
                o.push_str("=\"");
                escape_label_value(o, val);
                o.push('"');
            }
            o.push('}');
        }
        o.push(' ');
        v.write_to(o);
        o.push('\n');
    }
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`, the metric name syntax.
pub(crate) fn valid_name(name: &str) -> bool {
    let mut b = name.bytes();
    matches!(b.next(), Some(c) if c.is_ascii_alphabetic() || c == b'_' || c == b':')
        && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
}
