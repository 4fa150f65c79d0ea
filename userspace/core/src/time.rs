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
    /// RFC 3339 UTC with milliseconds, e.g. `2005-09-09T12:02:25.330Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = (self.0 / 1_000_000_000) as i64;
        let millis = (self.0 / 1_000_000) % 1000;
        let days = secs.div_euclid(86_400);
        let sod = secs.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60
        )
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
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
    }

    #[test]
    fn arithmetic_saturates() {
        let t = Timestamp(5);
        assert_eq!(t - Duration::from_nanos(10), Timestamp(0));
        assert_eq!(Timestamp(3).saturating_since(t), Duration::ZERO);
    }
}
