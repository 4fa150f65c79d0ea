//! Packet time. The engine never reads a clock: every deadline is derived from these.

use core::fmt;
use core::ops::{Add, Sub};
use core::time::Duration;

/// Nanoseconds since the Unix epoch, UTC, as stamped on the captured frame.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub const fn from_nanos(ns: u64) -> Self {
        Self(ns)
    }

    pub const fn from_secs_nanos(secs: u64, nanos: u32) -> Self {
        Self(secs * 1_000_000_000 + nanos as u64)
    }

    pub const fn as_nanos(self) -> u64 {
        self.0
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }

    /// `self - earlier`, or zero when `earlier` is later (captures are not always in order).
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(d.as_nanos() as u64))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(d.as_nanos() as u64))
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 UTC with milliseconds (cut, not rounded), e.g. `2005-09-09T12:02:25.330Z`;
    /// jiff's formatting. Every `u64` of nanoseconds (up to the year 2554) is in its range.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match jiff::Timestamp::from_nanosecond(i128::from(self.0)) {
            Ok(t) => write!(f, "{t:.3}"),
            Err(_) => write!(f, "{} ns after the epoch", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_utc() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000Z");
        // 2005-09-09 12:02:25.330945 UTC, the first packet of sip-dtmf-rfc2833.pcap.
        let t = Timestamp::from_secs_nanos(1_126_267_345, 330_945_000);
        assert_eq!(t.to_string(), "2005-09-09T12:02:25.330Z");
        let leap = Timestamp::from_secs_nanos(951_825_600, 0); // 2000-02-29 12:00
        assert_eq!(leap.to_string(), "2000-02-29T12:00:00.000Z");
        // Cut to the millisecond, never rounded up into the next second.
        let late = Timestamp::from_secs_nanos(951_825_600, 999_999_999);
        assert_eq!(late.to_string(), "2000-02-29T12:00:00.999Z");
        assert_eq!(
            Timestamp(u64::MAX).to_string(),
            "2554-07-21T23:34:33.709Z",
            "the last time a u64 of nanoseconds holds"
        );
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp(5);
        assert_eq!(t - Duration::from_nanos(10), Timestamp(0));
        assert_eq!(Timestamp(3).saturating_since(t), Duration::ZERO);
    }
}
