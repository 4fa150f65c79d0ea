//! The policy's input side: on-demand recording commands carried in SIP, read from one message
//! (see `docs/rules.md`). The SIP INFO record key (Yealink `Record: on|off`, its header and
//! values set by the rules), and the MESSAGE media-control requests, in dialog as
//! `application/x-media-control` and out of dialog as `application/x-media-control+json`.
//!
//! These functions read a message and nothing of a dialog. The dialogs call them because only
//! the dialogs know which call and side a message belongs to (its tags; for the JSON, the
//! session id the call's INVITE or 2xx carried). They hand the answer to the engine as a
//! `DialogEvent`, and the engine to the policy as a [`super::Trigger`]. Handing the raw message
//! over instead would keep a borrowed message past `Dialogs::on_message` for no gain.

use crate::sip::Message;

/// Ties an out-of-dialog MESSAGE to its call (the media-control JSON's `session_id`).
pub const SESSION_ID_HEADER: &str = "X-Session-Id";

/// The header of a SIP INFO that starts or stops recording (the Yealink Record key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InfoRecordHeader {
    pub name: String,
    pub on: String,
    pub off: String,
}

impl Default for InfoRecordHeader {
    fn default() -> Self {
        Self {
            name: "Record".into(),
            on: "on".into(),
            off: "off".into(),
        }
    }
}

/// `Some(true)` for the record key's on value, `Some(false)` for off (case-insensitive).
pub fn info_record(msg: &Message<'_>, key: &InfoRecordHeader) -> Option<bool> {
    let v = msg.header_named(&key.name)?.trim();
    if v.eq_ignore_ascii_case(&key.on) {
        Some(true)
    } else if v.eq_ignore_ascii_case(&key.off) {
        Some(false)
    } else {
        None
    }
}

/// An in-dialog MESSAGE `application/x-media-control`: `Some(true)` to pause, `Some(false)`
/// to resume the audio recording.
pub fn media_control(msg: &Message<'_>) -> Option<bool> {
    let ct = msg.content_type()?;
    if !ct.eq_ignore_ascii_case("application/x-media-control") {
        return None;
    }
    media_control_operation(msg.body.trim_ascii())
}

/// An out-of-dialog MESSAGE `application/x-media-control+json`: pause (`true`) or resume
/// (`false`), and the `session_id` that names its call.
pub fn media_control_json<'a>(msg: &Message<'a>) -> Option<(bool, &'a str)> {
    let ct = msg.content_type()?;
    if !ct.eq_ignore_ascii_case("application/x-media-control+json") {
        return None;
    }
    let body = std::str::from_utf8(msg.body).ok()?;
    let (Some(op), Some(id)) = (
        json_string(body, "operation"),
        json_string(body, "session_id"),
    ) else {
        return None;
    };
    let pause = media_control_operation(op.as_bytes())?;
    Some((pause, id))
}

/// `Some(true)` to pause, `Some(false)` to resume the audio recording. The video forms
/// (`pause-video-recording`...) are ignored: voxtap records audio only.
fn media_control_operation(op: &[u8]) -> Option<bool> {
    if op.eq_ignore_ascii_case(b"pause-audio-recording") {
        Some(true)
    } else if op.eq_ignore_ascii_case(b"resume-audio-recording") {
        Some(false)
    } else {
        None
    }
}

/// The string value of `"key": "value"` in a flat JSON object. Enough for the media-control
/// body: no escapes are decoded (a value holding one is refused), nesting is not followed.
fn json_string<'a>(json: &'a str, key: &str) -> Option<&'a str> {
    let mut rest = json;
    loop {
        let at = rest.find('"')?;
        let after = &rest[at + 1..];
        let end = after.find('"')?;
        let name = &after[..end];
        let tail = after[end + 1..].trim_start();
        match tail.strip_prefix(':') {
            Some(value) if name == key => {
                let value = value.trim_start().strip_prefix('"')?;
                let close = value.find('"')?;
                let v = &value[..close];
                return (!v.contains('\\')).then_some(v);
            }
            // A string that is not this key (another key or a value): skip it.
            _ => rest = &after[end + 1..],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(extra: &str, content_type: &str, body: &str) -> String {
        let ct = if content_type.is_empty() {
            String::new()
        } else {
            format!("Content-Type: {content_type}\r\n")
        };
        format!(
            "MESSAGE sip:recorder@pbx SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.50\r\nFrom: <sip:alice@pbx>;tag=m1\r\nTo: <sip:recorder@pbx>\r\nCall-ID: c@desk\r\nCSeq: 1 MESSAGE\r\n{extra}{ct}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    }

    fn parse(text: &str) -> Message<'_> {
        Message::parse(text.as_bytes()).expect("a valid SIP message")
    }

    #[test]
    fn info_record_reads_the_configured_header_and_values() {
        let key = InfoRecordHeader::default();
        let text = |v: &str| message(&format!("Record:  {v} \r\n"), "", "");
        assert_eq!(info_record(&parse(&text("on")), &key), Some(true));
        assert_eq!(info_record(&parse(&text("OFF")), &key), Some(false));
        assert_eq!(info_record(&parse(&text("maybe")), &key), None);
        assert_eq!(info_record(&parse(&message("", "", "")), &key), None);
        let custom = InfoRecordHeader {
            name: "X-Rec".into(),
            on: "start".into(),
            off: "stop".into(),
        };
        assert_eq!(info_record(&parse(&text("on")), &custom), None);
        let stop = message("X-Rec: Stop\r\n", "", "");
        assert_eq!(info_record(&parse(&stop), &custom), Some(false));
    }

    #[test]
    fn media_control_needs_its_content_type() {
        let ct = "application/x-media-control";
        let m = |ct: &str, body: &str| media_control(&parse(&message("", ct, body)));
        assert_eq!(m(ct, "pause-audio-recording\r\n"), Some(true));
        assert_eq!(
            m("Application/X-Media-Control", "RESUME-audio-recording"),
            Some(false)
        );
        assert_eq!(m(ct, "pause-video-recording"), None);
        assert_eq!(m("text/plain", "pause-audio-recording"), None);
        assert_eq!(m("", "pause-audio-recording"), None);
    }

    #[test]
    fn media_control_json_gives_the_operation_and_the_session() {
        let ct = "application/x-media-control+json";
        let m = |ct: &str, body: &str| {
            let text = message("", ct, body);
            media_control_json(&parse(&text)).map(|(p, id)| (p, id.to_string()))
        };
        assert_eq!(
            m(
                ct,
                r#"{ "operation" : "pause-audio-recording", "session_id": "abc-1" }"#
            ),
            Some((true, "abc-1".into()))
        );
        assert_eq!(
            m(
                ct,
                r#"{"session_id":"abc-1","operation":"resume-audio-recording"}"#
            ),
            Some((false, "abc-1".into()))
        );
        assert_eq!(
            m(ct, r#"{"operation":"explode","session_id":"abc-1"}"#),
            None
        );
        assert_eq!(m(ct, r#"{"operation":"pause-audio-recording""#), None);
        assert_eq!(m(ct, ""), None);
        let body = r#"{"operation":"pause-audio-recording","session_id":"abc-1"}"#;
        assert_eq!(m("application/x-media-control", body), None);
    }

    #[test]
    fn json_string_reads_flat_objects_only() {
        assert_eq!(json_string(r#"{"a":"b","c":"d"}"#, "c"), Some("d"));
        assert_eq!(json_string(r#"{"a":"c","c":"d"}"#, "c"), Some("d"));
        assert_eq!(json_string(r#"{"a": 1, "c" :  "d" }"#, "c"), Some("d"));
        assert_eq!(json_string(r#"{"c":"a\"b"}"#, "c"), None);
        assert_eq!(json_string(r#"{"c":5}"#, "c"), None);
        assert_eq!(json_string(r#"{"a":"b"}"#, "c"), None);
    }

    proptest::proptest! {
        /// Emit a media-control body, then read it back; arbitrary text never panics.
        #[test]
        fn json_string_round_trips(
            op in "[a-z-]{0,24}",
            id in "[^\"\\\\]{0,40}",
            junk in ".{0,80}",
        ) {
            let body = format!("{{ \"session_id\" : \"{id}\", \"operation\":\"{op}\" }}");
            proptest::prop_assert_eq!(json_string(&body, "operation"), Some(op.as_str()));
            proptest::prop_assert_eq!(json_string(&body, "session_id"), Some(id.as_str()));
            let _ = json_string(&junk, "operation");
        }
    }
}
