//! `{field}` templates for URLs, links and subjects, over one job's call fields.

use crate::Job;

/// The fields a template may name (docs/dispatch.md).
pub const FIELDS: [&str; 9] = [
    "call_id",
    "sip_call_id",
    "recording_id",
    "caller",
    "callee",
    "start",
    "file",
    "format",
    "tenant",
];

/// The first `{name}` of `template` that is not a field, or an unclosed brace, as an error
/// message; `None` if every field is known.
pub fn check(template: &str) -> Option<String> {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return Some(format!("an unclosed {{ in {template:?}"));
        };
        let name = &after[..close];
        if !FIELDS.contains(&name) {
            return Some(format!(
                "{{{name}}} is not a field (the fields are {})",
                FIELDS.join(", ")
            ));
        }
        rest = &after[close + 1..];
    }
    None
}

/// `template` with each `{field}` replaced by the job's value; `encode` percent-encodes
/// each value (for URLs: a Call-ID may hold `@`, `/` or `%`).
pub fn render(template: &str, job: &Job, encode: bool) -> String {
    let mut out = String::with_capacity(template.len() + 64);
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        match after.find('}') {
            Some(close) => {
                let value = field(job, &after[..close]);
                if encode {
                    percent_encode(&value, &mut out);
                } else {
                    out.push_str(&value);
                }
                rest = &after[close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn field(job: &Job, name: &str) -> String {
    match name {
        "call_id" => job.call_id.to_string(),
        "sip_call_id" => job.sip_call_id.clone(),
        "recording_id" => job.recording_id.to_string(),
        "caller" => job.caller.clone(),
        "callee" => job.callee.clone(),
        "start" => job.start.clone(),
        "file" => job.file_name(),
        "format" => job.format.clone(),
        "tenant" => job.tenant.clone().unwrap_or_default(),
        other => format!("{{{other}}}"),
    }
}

/// RFC 3986 §2.3: only unreserved characters pass as they are.
fn percent_encode(value: &str, out: &mut String) {
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Job {
        Job {
            id: 1,
            recording_id: 7,
            call_id: 3,
            target: "t".into(),
            kind: "http".into(),
            attempts: 0,
            sip_call_id: "a84b4c76e66710@pc33.example.com/x y".into(),
            caller: "+4930123".into(),
            callee: "200".into(),
            start: "2026-12-02T05:00:00.000Z".into(),
            path: "recordings/2026/12/02/7-a84b.wav".into(),
            format: "wav".into(),
            state: "complete".into(),
            duration_s: Some(1.5),
            size_bytes: Some(100),
            tenant: Some("acme".into()),
            users: vec!["alice".into()],
        }
    }

    #[test]
    fn fields_are_rendered_and_encoded() {
        let url = render(
            "http://h/{tenant}/{call_id}-{recording_id}/{sip_call_id}/{caller}.{format}?f={file}",
            &job(),
            true,
        );
        assert_eq!(
            url,
            "http://h/acme/3-7/a84b4c76e66710%40pc33.example.com%2Fx%20y/%2B4930123.wav?f=7-a84b.wav"
        );
        assert_eq!(
            render("{caller} to {callee}", &job(), false),
            "+4930123 to 200"
        );
    }

    #[test]
    fn unknown_fields_and_open_braces_are_named() {
        assert_eq!(check("http://h/{call_id}/{file}"), None);
        assert!(check("http://h/{callid}").unwrap().contains("{callid}"));
        assert!(check("http://h/{call_id").unwrap().contains("unclosed"));
    }
}
