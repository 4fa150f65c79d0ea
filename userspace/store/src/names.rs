//! Where a recording goes: `recordings/YYYY/MM/DD/<calls.id>-<Call-ID>.<ext>`, by call start UTC.

use std::path::PathBuf;

use voxtap_core::Timestamp;

/// Longest Call-ID part of a file name.
pub const CALL_ID_CHARS: usize = 48;

/// The Call-ID reduced to `[A-Za-z0-9._-]`, other characters as `_`, at most 48 characters.
pub fn sanitise_call_id(call_id: &str) -> String {
    let s: String = call_id
        .chars()
        .take(CALL_ID_CHARS)
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if s.is_empty() { "call".to_owned() } else { s }
}

/// `recordings/YYYY/MM/DD` of a UTC instant, relative to the store directory.
pub fn day_dir(start: Timestamp) -> PathBuf {
    let text = start.to_string(); // 2005-09-09T12:02:25.330Z
    let mut p = PathBuf::from("recordings");
    p.push(&text[0..4]);
    p.push(&text[5..7]);
    p.push(&text[8..10]);
    p
}

/// File name of the `n`th (1-based) recording of call row `call_id`; `ext` is the format's
/// (`RecordingFormat::extension`).
pub fn file_name(call_id: i64, sip_call_id: &str, n: u32, ext: &str) -> String {
    let base = sanitise_call_id(sip_call_id);
    if n <= 1 {
        format!("{call_id}-{base}.{ext}")
    } else {
        format!("{call_id}-{base}-{n}.{ext}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_ids_become_safe_names() {
        assert_eq!(
            sanitise_call_id("a84b4c76e66710@pc33.atlanta.com"),
            "a84b4c76e66710_pc33.atlanta.com"
        );
        assert_eq!(sanitise_call_id("../../etc/passwd"), ".._.._etc_passwd");
        assert_eq!(sanitise_call_id(""), "call");
        assert_eq!(sanitise_call_id("ü/x"), "__x");
        assert_eq!(sanitise_call_id(&"x".repeat(200)).len(), CALL_ID_CHARS);
        assert_eq!(file_name(7, "abc@h", 1, "wav"), "7-abc_h.wav");
        assert_eq!(file_name(7, "abc@h", 2, "wav"), "7-abc_h-2.wav");
        assert_eq!(file_name(7, "abc@h", 1, "ogg"), "7-abc_h.ogg");
    }

    #[test]
    fn day_dir_is_utc_date() {
        let t = Timestamp::from_secs_nanos(1_126_267_345, 330_945_000); // 2005-09-09T12:02:25Z
        assert_eq!(day_dir(t), PathBuf::from("recordings/2005/09/09"));
    }
}
