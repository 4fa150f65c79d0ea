//! Borrowed SIP message parsing (RFC 3261): start line, header walk, bodies, stream framing.
//!
//! Nothing here allocates or panics: every accessor walks the borrowed header block again,
//! which for the handful of headers a recorder needs is cheaper than building an index.

use core::fmt;

/// Header blocks larger than this are refused rather than buffered (RFC 3261 §18.3 streams).
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;
/// A stream message whose Content-Length exceeds this is skipped, not awaited.
pub const MAX_STREAM_BODY: usize = 256 * 1024;
/// `looks_like_sip` and `frame` look no further than this for the end of the start line.
pub const MAX_START_LINE: usize = 2048;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Error {
    /// The first line is neither a request line nor a status line.
    NotSip,
    /// The header block or the Content-Length body is cut short.
    Truncated,
    /// The first line claims SIP but cannot be parsed.
    BadStartLine,
    /// A header line has no `name:`.
    BadHeader,
    /// Content-Length is not a decimal number.
    BadContentLength,
    /// The header block exceeds [`MAX_HEADER_BLOCK`].
    TooLarge,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Error::NotSip => "not a SIP message",
            Error::Truncated => "truncated SIP message",
            Error::BadStartLine => "malformed SIP start line",
            Error::BadHeader => "malformed SIP header",
            Error::BadContentLength => "malformed Content-Length",
            Error::TooLarge => "SIP header block too large",
        })
    }
}

impl std::error::Error for Error {}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method<'a> {
    Invite,
    Ack,
    Bye,
    Cancel,
    Options,
    Register,
    Info,
    Message,
    Refer,
    Update,
    Prack,
    Notify,
    Subscribe,
    Publish,
    Other(&'a str),
}

impl<'a> Method<'a> {
    /// Methods are case-sensitive (RFC 3261 §7.1), so `invite` is `Other("invite")`.
    pub fn parse(s: &'a str) -> Method<'a> {
        match s {
            "INVITE" => Method::Invite,
            "ACK" => Method::Ack,
            "BYE" => Method::Bye,
            "CANCEL" => Method::Cancel,
            "OPTIONS" => Method::Options,
            "REGISTER" => Method::Register,
            "INFO" => Method::Info,
            "MESSAGE" => Method::Message,
            "REFER" => Method::Refer,
            "UPDATE" => Method::Update,
            "PRACK" => Method::Prack,
            "NOTIFY" => Method::Notify,
            "SUBSCRIBE" => Method::Subscribe,
            "PUBLISH" => Method::Publish,
            other => Method::Other(other),
        }
    }

    pub fn as_str(&self) -> &'a str {
        match *self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Options => "OPTIONS",
            Method::Register => "REGISTER",
            Method::Info => "INFO",
            Method::Message => "MESSAGE",
            Method::Refer => "REFER",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Notify => "NOTIFY",
            Method::Subscribe => "SUBSCRIBE",
            Method::Publish => "PUBLISH",
            Method::Other(s) => s,
        }
    }
}

impl fmt::Display for Method<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartLine<'a> {
    Request { method: Method<'a>, uri: &'a str },
    Response { code: u16, reason: &'a str },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeaderName {
    CallId,
    From,
    To,
    Via,
    CSeq,
    Contact,
    ContentType,
    ContentLength,
    MaxForwards,
    Supported,
    Other,
}

impl HeaderName {
    /// How many names have a variant (all but `Other`, which is the last).
    pub const KNOWN: usize = HeaderName::Other as usize;

    /// Header names are case-insensitive and have compact forms (RFC 3261 §7.3.3, §20).
    pub fn parse(name: &str) -> HeaderName {
        // A static, not a const: a const table is copied onto the stack at each call.
        static TABLE: [(&str, &str, HeaderName); 10] = [
            ("call-id", "i", HeaderName::CallId),
            ("from", "f", HeaderName::From),
            ("to", "t", HeaderName::To),
            ("via", "v", HeaderName::Via),
            ("cseq", "", HeaderName::CSeq),
            ("contact", "m", HeaderName::Contact),
            ("content-type", "c", HeaderName::ContentType),
            ("content-length", "l", HeaderName::ContentLength),
            ("max-forwards", "", HeaderName::MaxForwards),
            // k is Supported's compact form (RFC 3261 §20.37).
            ("supported", "k", HeaderName::Supported),
        ];
        for &(long, short, kind) in &TABLE {
            if name.eq_ignore_ascii_case(long)
                || (!short.is_empty() && name.eq_ignore_ascii_case(short))
            {
                return kind;
            }
        }
        HeaderName::Other
    }

    /// The canonical long form; `""` for `Other`.
    pub fn as_str(&self) -> &'static str {
        match self {
            HeaderName::CallId => "Call-ID",
            HeaderName::From => "From",
            HeaderName::To => "To",
            HeaderName::Via => "Via",
            HeaderName::CSeq => "CSeq",
            HeaderName::Contact => "Contact",
            HeaderName::ContentType => "Content-Type",
            HeaderName::ContentLength => "Content-Length",
            HeaderName::MaxForwards => "Max-Forwards",
            HeaderName::Supported => "Supported",
            HeaderName::Other => "",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    pub name: &'a str,
    /// Trimmed; a folded value (RFC 3261 §7.3.1) keeps its inner CRLF + whitespace.
    /// A value with invalid UTF-8 is cut before the first bad byte (seen from real PBXes).
    pub value: &'a str,
}

impl Header<'_> {
    /// `is(HeaderName::Other)` is true for every header without a variant; use `name_eq` for those.
    pub fn is(&self, name: HeaderName) -> bool {
        HeaderName::parse(self.name) == name
    }

    /// Case-insensitive; a known name also matches its compact form (`Call-ID` matches `i`).
    pub fn name_eq(&self, name: &str) -> bool {
        names_match(self.name, name)
    }
}

fn names_match(a: &str, b: &str) -> bool {
    match HeaderName::parse(b) {
        HeaderName::Other => a.eq_ignore_ascii_case(b),
        kind => HeaderName::parse(a) == kind,
    }
}

/// Iterator over the headers of a block; lines without a valid name are skipped.
#[derive(Clone, Debug)]
pub struct Headers<'m, 'a> {
    /// What the parse walk kept ([`Message::headers`]), handed out first...
    kept: core::slice::Iter<'m, Header<'a>>,
    /// ...then the rest of the block, walked.
    rest: &'a [u8],
}

impl<'a> Headers<'_, 'a> {
    /// Walks any header block (lines ending in LF or CRLF, optionally folded).
    pub fn new(block: &'a [u8]) -> Self {
        Headers {
            kept: Default::default(),
            rest: block,
        }
    }
}

impl<'a> Iterator for Headers<'_, 'a> {
    type Item = Header<'a>;

    fn next(&mut self) -> Option<Header<'a>> {
        if let Some(h) = self.kept.next() {
            return Some(*h);
        }
        while !self.rest.is_empty() {
            let (rest, line) = logical_line(self.rest);
            self.rest = rest;
            if let Some(h) = split_header(line) {
                return Some(h);
            }
        }
        None
    }
}

/// Splits one header line including its folded continuations (RFC 3261 §7.3.1): `(rest, line)`.
fn logical_line(b: &[u8]) -> (&[u8], &[u8]) {
    let mut from = 0;
    while let Some(off) = memchr::memchr(b'\n', &b[from..]) {
        let nl = from + off;
        match b.get(nl + 1) {
            Some(b' ' | b'\t') => from = nl + 1,
            _ => return (&b[nl + 1..], &b[..nl]),
        }
    }
    (&[], b)
}

fn split_header(line: &[u8]) -> Option<Header<'_>> {
    let colon = memchr::memchr(b':', line)?;
    // HCOLON allows whitespace before the colon (RFC 3261 §25.1).
    let name = line[..colon].trim_ascii_end();
    if name.is_empty() || !name.iter().all(|&b| is_token_byte(b)) {
        return None;
    }
    let name = core::str::from_utf8(name).ok()?;
    Some(Header {
        name,
        value: utf8_prefix(line[colon + 1..].trim_ascii()).trim_end(),
    })
}

/// The longest valid UTF-8 prefix: garbage cannot reject a whole message, and cutting is
/// deterministic so the same garbled tag compares equal across messages.
fn utf8_prefix(b: &[u8]) -> &str {
    match core::str::from_utf8(b) {
        Ok(s) => s,
        Err(e) => core::str::from_utf8(&b[..e.valid_up_to()]).unwrap_or(""),
    }
}

/// RFC 3261 §25.1 `token` characters.
fn is_token_byte(b: u8) -> bool {
    matches!(b, b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~')
}

/// One parsed SIP message, borrowing from the datagram or stream frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Message<'a> {
    pub start: StartLine<'a>,
    pub body: &'a [u8],
    headers: &'a [u8],
    /// The first value of each known header ([`HeaderName`] but `Other`), found by the one
    /// walk that parsing makes: a lookup of those is an index, not another walk.
    known: [Option<&'a str>; HeaderName::KNOWN],
    /// The first [`KEPT_HEADERS`] headers as that walk split them, and where the block goes
    /// on past them: walking the headers again (the evidence pass, a name not known) reads
    /// this, not the bytes. A split costs about 450 instructions a header, mostly checking
    /// the value's UTF-8.
    kept: [Header<'a>; KEPT_HEADERS],
    kept_len: usize,
    after_kept: &'a [u8],
}

/// Headers a parsed message keeps split (most messages have 8 to 20; a longer block is
/// walked on from the last one kept).
pub const KEPT_HEADERS: usize = 24;

impl<'a> Message<'a> {
    /// Parses one complete message. The body is what follows the blank line, cut to
    /// Content-Length when present (a shorter remainder is `Truncated`); bare LF is accepted.
    pub fn parse(data: &'a [u8]) -> Result<Message<'a>, Error> {
        // Leading CRLFs are keep-alives or padding (RFC 3261 §7.5).
        let data = skip_crlf(data);
        let (head_end, body_start) = match find_blank_line(data, MAX_HEADER_BLOCK) {
            Some(p) => p,
            None if data.len() > MAX_HEADER_BLOCK => return Err(Error::TooLarge),
            None => {
                // Classify the start line first so random bytes report NotSip, not Truncated.
                return match first_line(data) {
                    Some((_, line)) => parse_start_line(line).and(Err(Error::Truncated)),
                    None if data.is_empty() => Err(Error::NotSip),
                    None => Err(classify_partial(data)),
                };
            }
        };
        let head = &data[..head_end];
        let (block, line) = first_line(head).unwrap_or((&[], head));
        let start = parse_start_line(line)?;
        let headers = block;
        let mut walk = headers;
        let mut known = [None; HeaderName::KNOWN];
        let mut kept = [Header {
            name: "",
            value: "",
        }; KEPT_HEADERS];
        let (mut kept_len, mut after_kept) = (0, headers);
        while !walk.is_empty() {
            let (rest, line) = logical_line(walk);
            walk = rest;
            let h = split_header(line).ok_or(Error::BadHeader)?;
            if kept_len < KEPT_HEADERS {
                kept[kept_len] = h;
                kept_len += 1;
                after_kept = rest;
            }
            let kind = HeaderName::parse(h.name);
            if kind != HeaderName::Other && known[kind as usize].is_none() {
                known[kind as usize] = Some(h.value);
            }
        }
        let content_length = match known[HeaderName::ContentLength as usize] {
            Some(v) => Some(parse_decimal(v.as_bytes()).ok_or(Error::BadContentLength)?),
            None => None,
        };
        let rest = &data[body_start..];
        let body = match content_length {
            Some(n) => rest.get(..n).ok_or(Error::Truncated)?,
            None => rest,
        };
        Ok(Message {
            start,
            body,
            headers,
            known,
            kept,
            kept_len,
            after_kept,
        })
    }

    /// The raw header block (after the start line), for callers that need to walk it themselves.
    pub fn header_block(&self) -> &'a [u8] {
        self.headers
    }

    pub fn headers(&self) -> Headers<'_, 'a> {
        Headers {
            kept: self.kept[..self.kept_len].iter(),
            rest: self.after_kept,
        }
    }

    /// First occurrence, long or compact form.
    pub fn header(&self, name: HeaderName) -> Option<&'a str> {
        match name {
            HeaderName::Other => self.headers().find(|h| h.is(name)).map(|h| h.value),
            known => self.known[known as usize],
        }
    }

    /// First occurrence of an arbitrary header, case-insensitive (compact forms match too).
    pub fn header_named(&self, name: &str) -> Option<&'a str> {
        match HeaderName::parse(name) {
            HeaderName::Other => self
                .headers()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| h.value),
            known => self.known[known as usize],
        }
    }

    /// The Call-ID; `None` when it is empty or holds a control character (NUL, say), which
    /// RFC 3261 §25.1 (`word`) forbids: such a message is malformed, never a call keyed by it.
    pub fn call_id(&self) -> Option<&'a str> {
        self.header(HeaderName::CallId)
            .filter(|v| !v.is_empty() && !v.bytes().any(|b| b.is_ascii_control()))
    }

    pub fn from(&self) -> Option<NameAddr<'a>> {
        self.header(HeaderName::From).and_then(parse_name_addr)
    }

    pub fn to(&self) -> Option<NameAddr<'a>> {
        self.header(HeaderName::To).and_then(parse_name_addr)
    }

    /// The first Contact, if it is a name-addr or addr-spec (not `*`).
    pub fn contact(&self) -> Option<NameAddr<'a>> {
        self.header(HeaderName::Contact)
            .filter(|v| *v != "*")
            .and_then(parse_name_addr)
    }

    /// The `branch` parameter of the topmost Via (RFC 3261 §8.1.1.7).
    pub fn via_branch(&self) -> Option<&'a str> {
        let via = self.header(HeaderName::Via)?;
        let first = via.split(',').next().unwrap_or(via);
        param(first, "branch")
    }

    pub fn cseq(&self) -> Option<(u32, Method<'a>)> {
        let v = self.header(HeaderName::CSeq)?;
        let mut it = v.split_ascii_whitespace();
        let num = it.next()?.parse().ok()?;
        let method = it.next()?;
        Some((num, Method::parse(method)))
    }

    /// The media type of Content-Type without parameters, e.g. `application/sdp`.
    pub fn content_type(&self) -> Option<&'a str> {
        self.header(HeaderName::ContentType).map(media_type)
    }

    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// The request method, or the CSeq method for a response (RFC 3261 §8.1.3.1).
    pub fn method(&self) -> Option<Method<'a>> {
        match self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => self.cseq().map(|(_, m)| m),
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self.start {
            StartLine::Response { code, .. } => Some(code),
            StartLine::Request { .. } => None,
        }
    }

    /// The SDP: the body when it is application/sdp, else the first application/sdp part of a
    /// multipart body (RFC 2046 §5.1), searching nested multiparts a few levels deep.
    pub fn sdp_body(&self) -> Option<&'a [u8]> {
        let ct = self.header(HeaderName::ContentType)?;
        find_typed_body(ct, self.body, "application/sdp", 0)
    }
}

fn find_typed_body<'a>(ct: &str, body: &'a [u8], want: &str, depth: u8) -> Option<&'a [u8]> {
    let mt = media_type(ct);
    if mt.eq_ignore_ascii_case(want) {
        return (!body.is_empty()).then_some(body);
    }
    let is_multipart = mt
        .get(..10)
        .is_some_and(|p| p.eq_ignore_ascii_case("multipart/"));
    if !is_multipart || depth >= 3 {
        return None;
    }
    let boundary = param(ct, "boundary")?;
    // RFC 2046 §5.1.1: a boundary is 1..=70 characters.
    if boundary.is_empty() || boundary.len() > 70 {
        return None;
    }
    let mut parts = Parts {
        body,
        boundary: boundary.as_bytes(),
        pos: find_delimiter(body, boundary.as_bytes(), 0),
    };
    parts.find_map(|part| {
        let (headers, content) = split_part(part)?;
        let ct = Headers::new(headers)
            .find(|h| h.is(HeaderName::ContentType))?
            .value;
        find_typed_body(ct, content, want, depth + 1)
    })
}

/// Walks the body parts between RFC 2046 §5.1.1 delimiters.
struct Parts<'a, 'b> {
    body: &'a [u8],
    boundary: &'b [u8],
    pos: Option<usize>,
}

impl<'a> Iterator for Parts<'a, '_> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let pos = self.pos.take()?;
        let after = pos + 2 + self.boundary.len();
        let tail = self.body.get(after..)?;
        if tail.starts_with(b"--") {
            return None; // close-delimiter
        }
        // Transport padding may follow the delimiter on its line.
        let start = after + tail.iter().position(|&b| b == b'\n')? + 1;
        let next = find_delimiter(self.body, self.boundary, start);
        let end = next.unwrap_or(self.body.len());
        let mut part = &self.body[start..end];
        if next.is_some() {
            // The CRLF before a delimiter belongs to the delimiter.
            part = part.strip_suffix(b"\n").unwrap_or(part);
            part = part.strip_suffix(b"\r").unwrap_or(part);
        }
        self.pos = next;
        Some(part)
    }
}

/// Position of the next `--boundary` that starts a line, at or after `from`.
fn find_delimiter(body: &[u8], boundary: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 2 + boundary.len() <= body.len() {
        let at_line_start = i == 0 || body[i - 1] == b'\n';
        if at_line_start && body[i..].starts_with(b"--") && body[i + 2..].starts_with(boundary) {
            return Some(i);
        }
        i += match body[i..].iter().position(|&b| b == b'\n') {
            Some(off) => off + 1,
            None => return None,
        };
    }
    None
}

/// Splits a MIME part into (header block, content); a part with no headers has none.
fn split_part(part: &[u8]) -> Option<(&[u8], &[u8])> {
    if part.starts_with(b"\n") || part.starts_with(b"\r\n") {
        return Some((&[], skip_one_eol(part)));
    }
    let (head_end, body_start) = find_blank_line(part, MAX_HEADER_BLOCK)?;
    Some((&part[..head_end], &part[body_start..]))
}

fn skip_one_eol(b: &[u8]) -> &[u8] {
    let b = b.strip_prefix(b"\r").unwrap_or(b);
    b.strip_prefix(b"\n").unwrap_or(b)
}

fn skip_crlf(data: &[u8]) -> &[u8] {
    let n = data
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    &data[n..]
}

/// Finds the empty line ending a header block, within `limit` bytes:
/// `(end of the last header line incl. its EOL, start of body)`.
fn find_blank_line(data: &[u8], limit: usize) -> Option<(usize, usize)> {
    let mut p = 0;
    while p < data.len() && p <= limit {
        let nl = p + memchr::memchr(b'\n', &data[p..])?;
        let line = &data[p..nl];
        if line.is_empty() || line == b"\r" {
            return Some((p, nl + 1));
        }
        p = nl + 1;
    }
    None
}

/// `(rest, line)` with the line's CR/LF removed; None if there is no LF.
fn first_line(data: &[u8]) -> Option<(&[u8], &[u8])> {
    let nl = memchr::memchr(b'\n', data)?;
    let line = &data[..nl];
    Some((&data[nl + 1..], line.strip_suffix(b"\r").unwrap_or(line)))
}

fn parse_decimal(v: &[u8]) -> Option<usize> {
    let v = v.trim_ascii();
    if v.is_empty() || v.len() > 12 || !v.iter().all(u8::is_ascii_digit) {
        return None;
    }
    v.iter().try_fold(0usize, |n, &d| {
        n.checked_mul(10)?.checked_add(usize::from(d - b'0'))
    })
}

fn parse_start_line(line: &[u8]) -> Result<StartLine<'_>, Error> {
    if let Some((code, reason)) = split_status_line(line) {
        // Reason phrases in Latin-1 exist; they are cut like header values.
        return Ok(StartLine::Response {
            code,
            reason: utf8_prefix(reason).trim_end(),
        });
    }
    if let Some((method, uri)) = split_request_line(line) {
        // Both parts were checked to be ASCII.
        let method = core::str::from_utf8(method).map_err(|_| Error::BadStartLine)?;
        let uri = core::str::from_utf8(uri).map_err(|_| Error::BadStartLine)?;
        return Ok(StartLine::Request {
            method: Method::parse(method),
            uri,
        });
    }
    let claims_sip = starts_with_ic(line, b"SIP/") || ends_with_ic(line, b" SIP/2.0");
    Err(if claims_sip {
        Error::BadStartLine
    } else {
        Error::NotSip
    })
}

/// A first line that never ended: NotSip unless it could still become a start line.
fn classify_partial(line: &[u8]) -> Error {
    if plausible_partial_start(line) {
        Error::Truncated
    } else {
        Error::NotSip
    }
}

fn starts_with_ic(s: &[u8], p: &[u8]) -> bool {
    s.get(..p.len()).is_some_and(|h| h.eq_ignore_ascii_case(p))
}

fn ends_with_ic(s: &[u8], p: &[u8]) -> bool {
    s.len() >= p.len() && s[s.len() - p.len()..].eq_ignore_ascii_case(p)
}

/// `SIP/2.0 SP 3DIGIT [SP reason]` (RFC 3261 §7.2): `(code, reason)`.
fn split_status_line(line: &[u8]) -> Option<(u16, &[u8])> {
    if !starts_with_ic(line, b"SIP/2.0 ") {
        return None;
    }
    let rest = &line[8..];
    let digits = rest.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) || digits[0] == b'0' {
        return None;
    }
    let code = digits
        .iter()
        .fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    let reason = match &rest[3..] {
        [] => &[][..],
        [b' ', reason @ ..] => reason,
        _ => return None,
    };
    Some((code, reason.trim_ascii()))
}

/// `Method SP Request-URI SP SIP/2.0` (RFC 3261 §7.1): `(method, uri)`.
fn split_request_line(line: &[u8]) -> Option<(&[u8], &[u8])> {
    let sp = line.iter().position(|&b| b == b' ')?;
    let method = &line[..sp];
    if method.is_empty() || method.len() > 32 || !method.iter().all(|&b| is_token_byte(b)) {
        return None;
    }
    let rest = &line[sp + 1..];
    let last = rest.iter().rposition(|&b| b == b' ')?;
    if !rest[last + 1..].eq_ignore_ascii_case(b"SIP/2.0") {
        return None;
    }
    let uri = rest[..last].trim_ascii();
    let colon = uri.iter().position(|&b| b == b':')?;
    let scheme_ok = colon > 0
        && uri[0].is_ascii_alphabetic()
        && uri[..colon]
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"+-.".contains(&b));
    let uri_ok = uri.iter().all(|&b| b.is_ascii_graphic());
    (scheme_ok && uri_ok).then_some((method, uri))
}

/// Could these bytes (no LF yet) be the beginning of a start line?
fn plausible_partial_start(line: &[u8]) -> bool {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.len() > MAX_START_LINE || !line.iter().all(|&b| b == b'\t' || (b >= 0x20 && b != 0x7f))
    {
        return false;
    }
    let n = line.len().min(8);
    if line[..n].eq_ignore_ascii_case(&b"SIP/2.0 "[..n]) {
        return true;
    }
    let method_len = line.iter().take_while(|&&b| is_token_byte(b)).count();
    method_len > 0 && method_len <= 32 && (method_len == line.len() || line[method_len] == b' ')
}

/// Media type of a Content-Type value, parameters and whitespace removed.
pub fn media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// The value of `;name=value` in a header value (case-insensitive name, quotes removed).
/// Parameters inside `<...>` belong to the URI and are skipped; stops at a top-level comma.
pub fn param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let first_sep = value.find([';', ',']).unwrap_or(value.len());
    let s = match value.find('<') {
        Some(lt) if lt < first_sep => &value[lt + value[lt..].find('>')? + 1..],
        _ => value,
    };
    find_param(s, name)
}

/// `param` over a string that starts at the parameters (no URI to skip).
fn find_param<'a>(mut s: &'a str, name: &str) -> Option<&'a str> {
    while let Some((rest, key, val)) = next_param(s) {
        if key.eq_ignore_ascii_case(name) {
            return val;
        }
        s = rest;
    }
    None
}

/// Next `;key[=value]` in `s`: `(rest, key, value)`; quoted values may hold `;` and `,`.
fn next_param(s: &str) -> Option<(&str, &str, Option<&str>)> {
    let b = s.as_bytes();
    let mut i = 0;
    // Find the next top-level ';', giving up at ','.
    let mut quoted = false;
    loop {
        match b.get(i)? {
            b'"' => quoted = !quoted,
            b'\\' if quoted => i += 1,
            b';' if !quoted => break,
            b',' if !quoted => return None,
            _ => {}
        }
        i += 1;
    }
    let start = i + 1;
    let mut end = start;
    quoted = false;
    while let Some(&c) = b.get(end) {
        match c {
            b'"' => quoted = !quoted,
            b'\\' if quoted => end += 1,
            b';' | b',' if !quoted => break,
            _ => {}
        }
        end += 1;
    }
    let end = end.min(b.len());
    let item = &s[start..end];
    let (key, val) = match item.find('=') {
        Some(eq) => {
            let v = item[eq + 1..].trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .unwrap_or(v);
            (item[..eq].trim(), Some(v))
        }
        None => (item.trim(), None),
    };
    Some((&s[end..], key, val))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NameAddr<'a> {
    /// Without the surrounding quotes; backslash escapes are left as they are. None if empty.
    pub display_name: Option<&'a str>,
    pub uri: &'a str,
    pub tag: Option<&'a str>,
}

/// Parses the first name-addr or addr-spec of a From/To/Contact value (RFC 3261 §20.10).
pub fn parse_name_addr(value: &str) -> Option<NameAddr<'_>> {
    let v = value.trim();
    let (display, uri, params) = if let Some(quoted) = v.strip_prefix('"') {
        let close = closing_quote(quoted)?;
        let after = quoted[close + 1..].trim_start().strip_prefix('<')?;
        let gt = after.find('>')?;
        (&quoted[..close], after[..gt].trim(), &after[gt + 1..])
    } else if let Some(lt) = v.find('<').filter(|&lt| !v[..lt].contains([',', ';'])) {
        let after = &v[lt + 1..];
        let gt = after.find('>')?;
        (v[..lt].trim(), after[..gt].trim(), &after[gt + 1..])
    } else {
        // RFC 3261 §20.10: without <>, parameters after the URI are header parameters.
        let end = v.find([';', ',']).unwrap_or(v.len());
        ("", v[..end].trim(), &v[end..])
    };
    if uri.is_empty() || !uri.contains(':') {
        return None;
    }
    let display_name = (!display.is_empty()).then_some(display);
    let tag = find_param(params, "tag").filter(|t| !t.is_empty());
    Some(NameAddr {
        display_name,
        uri,
        tag,
    })
}

/// Index of the unescaped closing quote of a quoted-string body (RFC 3261 §25.1).
fn closing_quote(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UriParts<'a> {
    /// As written (compare case-insensitively).
    pub scheme: &'a str,
    /// The user part without password; for tel: the number.
    pub user: Option<&'a str>,
    /// Host without IPv6 brackets; empty for tel:.
    pub host: &'a str,
    pub port: Option<u16>,
}

/// Splits a sip:, sips: or tel: URI (RFC 3261 §19.1.1, RFC 3966); other schemes give None.
pub fn parse_uri(uri: &str) -> Option<UriParts<'_>> {
    let uri = uri.trim();
    let uri = uri
        .strip_prefix('<')
        .and_then(|u| u.strip_suffix('>'))
        .unwrap_or(uri);
    let colon = uri.find(':')?;
    let (scheme, rest) = (&uri[..colon], &uri[colon + 1..]);
    if scheme.eq_ignore_ascii_case("tel") {
        let number = rest.split([';', '?']).next().unwrap_or("").trim();
        return (!number.is_empty()).then_some(UriParts {
            scheme,
            user: Some(number),
            host: "",
            port: None,
        });
    }
    if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
        return None;
    }
    // userinfo may contain ';' and '?' (RFC 3261 §25.1 user-unreserved), so split at '@' first.
    let (user, hostport) = match rest.find('@') {
        Some(at) => {
            let userinfo = &rest[..at];
            let user = userinfo.split(':').next().unwrap_or("");
            ((!user.is_empty()).then_some(user), &rest[at + 1..])
        }
        None => (None, rest),
    };
    let hostport = hostport.split([';', '?']).next().unwrap_or("");
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let close = v6.find(']')?;
        (&v6[..close], &v6[close + 1..])
    } else {
        match hostport.find(':') {
            Some(c) => (&hostport[..c], &hostport[c..]),
            None => (hostport, ""),
        }
    };
    let port = match port {
        "" => None,
        p => Some(p.strip_prefix(':')?.parse::<u16>().ok()?),
    };
    (!host.is_empty()).then_some(UriParts {
        scheme,
        user,
        host,
        port,
    })
}

/// Cheap test of a UDP/TCP payload: does its first line look like a SIP request or status line?
/// Looks at most [`MAX_START_LINE`] bytes; leading CRLFs (RFC 3261 §7.5) are skipped.
pub fn looks_like_sip(payload: &[u8]) -> bool {
    let p = skip_crlf(&payload[..payload.len().min(MAX_START_LINE)]);
    // Either start line begins with a token byte (a method, or the `S` of `SIP/2.0`): any
    // other first byte (an RTP or RTCP header's 0x80-0xbf, binary) is rejected here, before
    // the line is looked for (a `memchr` over up to 2 KiB: about 190 instructions for an
    // RTP packet, paid by every datagram on no known flow).
    if !p.first().is_some_and(|&b| is_token_byte(b)) {
        return false;
    }
    let Some((_, line)) = first_line(p) else {
        return false;
    };
    split_status_line(line).is_some() || split_request_line(line).is_some()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// A whole message occupies the first n bytes.
    Complete(usize),
    /// Wait for more bytes.
    Incomplete,
    /// Drop the first n bytes (keep-alives or garbage); n > 0.
    Skip(usize),
    /// A message too large to wait for: drop its n bytes (n > 0), perhaps more than are here
    /// yet. A header block past [`MAX_HEADER_BLOCK`] gives its first that many bytes; the
    /// rest is resynchronised past.
    TooLarge(usize),
}

/// Frames SIP on a byte stream (RFC 3261 §18.3): keep-alive CRLFs and garbage are skipped,
/// a message is complete once its header block and Content-Length body (0 if absent) are in.
pub fn frame(stream: &[u8]) -> Frame {
    frame_within(stream, usize::MAX)
}

/// [`frame`], where a message longer than `max_message` bytes (header block and body) is
/// [`Frame::TooLarge`] as soon as its header block says so, like one whose body passes
/// [`MAX_STREAM_BODY`].
pub fn frame_within(stream: &[u8], max_message: usize) -> Frame {
    // CRLF keep-alives (RFC 5626 §3.5.1) between messages.
    let crlf = stream
        .iter()
        .take_while(|&&b| b == b'\r' || b == b'\n')
        .count();
    if crlf > 0 {
        return Frame::Skip(crlf);
    }
    if stream.is_empty() {
        return Frame::Incomplete;
    }
    let Some((_, line)) = first_line(&stream[..stream.len().min(MAX_START_LINE)]) else {
        return if plausible_partial_start(stream) {
            Frame::Incomplete
        } else {
            resync(stream)
        };
    };
    if split_status_line(line).is_none() && split_request_line(line).is_none() {
        return resync(stream);
    }
    let Some((head_end, body_start)) = find_blank_line(stream, MAX_HEADER_BLOCK) else {
        return if stream.len() > MAX_HEADER_BLOCK {
            Frame::TooLarge(MAX_HEADER_BLOCK)
        } else {
            Frame::Incomplete
        };
    };
    let len = match stream_content_length(&stream[..head_end]) {
        // Let Message::parse report BadContentLength; the body becomes garbage to resync past.
        Err(()) => 0,
        Ok(len) => len.unwrap_or(0),
    };
    let total = body_start.saturating_add(len);
    if len > MAX_STREAM_BODY || total > max_message {
        return Frame::TooLarge(total);
    }
    if stream.len() >= total {
        Frame::Complete(total)
    } else {
        Frame::Incomplete
    }
}

/// Skips to the next line that is, or could become, a start line; keeps a plausible tail.
fn resync(stream: &[u8]) -> Frame {
    let mut p = 0;
    while let Some(off) = memchr::memchr(b'\n', &stream[p..]) {
        p += off + 1;
        let rest = &stream[p..];
        let window = &rest[..rest.len().min(MAX_START_LINE)];
        let candidate = match first_line(window) {
            Some((_, line)) => {
                line.is_empty()
                    || split_status_line(line).is_some()
                    || split_request_line(line).is_some()
            }
            None => plausible_partial_start(window) && rest.len() <= MAX_START_LINE,
        };
        if candidate {
            return Frame::Skip(p);
        }
    }
    Frame::Skip(stream.len())
}

/// Content-Length from a raw header block (start line included): Ok(None) if absent.
fn stream_content_length(head: &[u8]) -> Result<Option<usize>, ()> {
    for line in head.split(|&b| b == b'\n') {
        if matches!(line.first(), Some(b' ' | b'\t')) {
            continue; // a folded continuation, not a header name (RFC 3261 §7.3.1)
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let name = line[..colon].trim_ascii();
        if name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l") {
            return parse_decimal(&line[colon + 1..]).map(Some).ok_or(());
        }
    }
    Ok(None)
}

/// DTMF from an INFO body: application/dtmf-relay (`Signal=5`, `Duration=160`) or
/// application/dtmf (the digit or its RFC 4733 §3.2 event code): `(digit, duration_ms or 0)`.
pub fn info_dtmf(content_type: &str, body: &[u8]) -> Option<(char, u32)> {
    let mt = media_type(content_type);
    if mt.eq_ignore_ascii_case("application/dtmf-relay") {
        let mut signal = None;
        let mut duration = 0;
        for line in body.split(|&b| b == b'\n') {
            let Some(eq) = line.iter().position(|&b| b == b'=') else {
                continue;
            };
            let (key, val) = (line[..eq].trim_ascii(), line[eq + 1..].trim_ascii());
            if key.eq_ignore_ascii_case(b"signal") {
                signal = dtmf_signal(val);
            } else if key.eq_ignore_ascii_case(b"duration") {
                duration = parse_decimal(val)
                    .and_then(|d| u32::try_from(d).ok())
                    .unwrap_or(0);
            }
        }
        signal.map(|c| (c, duration))
    } else if mt.eq_ignore_ascii_case("application/dtmf") {
        let first = body.split(|&b| b == b'\n').next().unwrap_or(body);
        dtmf_signal(first.trim_ascii()).map(|c| (c, 0))
    } else {
        None
    }
}

/// A DTMF character or RFC 4733 §3.2 event code (0-9, 10 `*`, 11 `#`, 12-15 A-D).
fn dtmf_signal(v: &[u8]) -> Option<char> {
    match v {
        [c @ (b'0'..=b'9' | b'*' | b'#')] => Some(char::from(*c)),
        [c @ (b'A'..=b'D' | b'a'..=b'd')] => Some(char::from(c.to_ascii_uppercase())),
        [b'1', d @ b'0'..=b'5'] => Some(char::from(b"*#ABCD"[usize::from(d - b'0')])),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index parsing builds answers every lookup as a walk of the headers would: first
    /// occurrence, compact forms, any case, folded values, names it has no variant for.
    #[test]
    fn a_call_id_with_a_control_character_is_refused() {
        for id in ["a\0b@host", "nul\0", "bell\x07@h", "del\x7f@h", "tab\tx@h"] {
            let raw = format!(
                "INVITE sip:b@x SIP/2.0\r\nCall-ID: {id}\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>\r\nCSeq: 1 INVITE\r\n\r\n"
            );
            let m = Message::parse(raw.as_bytes()).expect("the message itself parses");
            assert_eq!(m.call_id(), None, "{id:?}");
        }
        let ok = Message::parse(b"BYE sip:a@b SIP/2.0\r\nCall-ID: plain-1@[::1]\r\n\r\n").unwrap();
        assert_eq!(ok.call_id(), Some("plain-1@[::1]"));
    }

    #[test]
    fn header_lookups_read_as_the_walk() {
        let raw = "INVITE sip:b@x SIP/2.0\r\ni: first@x\r\nCall-ID: second@x\r\nf: <sip:a@x>;tag=1\r\n\
                   TO: <sip:b@x>\r\nv: SIP/2.0/UDP x\r\nX-Corr: one,\r\n two\r\nx-corr: again\r\n\
                   k: timer\r\nCSeq: 1 INVITE\r\nl: 0\r\n\r\n";
        let m = Message::parse(raw.as_bytes()).unwrap();
        let walk = |name: &str| m.headers().find(|h| h.name_eq(name)).map(|h| h.value);
        for name in [
            "call-id",
            "I",
            "Call-ID",
            "from",
            "F",
            "to",
            "t",
            "via",
            "V",
            "cseq",
            "contact",
            "content-length",
            "L",
            "supported",
            "K",
            "x-corr",
            "X-CORR",
            "max-forwards",
            "absent",
        ] {
            assert_eq!(m.header_named(name), walk(name), "{name}");
            let kind = HeaderName::parse(name);
            if kind != HeaderName::Other {
                assert_eq!(m.header(kind), walk(name), "{name}");
            }
        }
        assert_eq!(m.call_id(), Some("first@x"));
        assert_eq!(m.header_named("x-corr"), Some("one,\r\n two"));
        assert_eq!(m.header(HeaderName::Other), Some("one,\r\n two"));
    }

    const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: \"Alice \\\"A\\\"\" <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 149\r\n\
\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 pc33.atlanta.example.com\r\n\
s=-\r\n\
c=IN IP4 192.0.2.101\r\n\
t=0 0\r\n\
m=audio 49172 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n";

    fn parse(data: &[u8]) -> Message<'_> {
        Message::parse(data).unwrap_or_else(|e| panic!("parse failed: {e:?}"))
    }

    #[test]
    fn headers_past_the_kept_ones_are_walked_on_in_order() {
        for count in [
            0,
            1,
            KEPT_HEADERS - 1,
            KEPT_HEADERS,
            KEPT_HEADERS + 1,
            3 * KEPT_HEADERS,
        ] {
            let mut raw = String::from("OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x\r\n");
            for i in 0..count {
                // Folded lines and bare LF count as one header each, kept or walked.
                if i % 5 == 4 {
                    raw.push_str(&format!("X-H{i}: v{i}\r\n  folded\r\n"));
                } else {
                    raw.push_str(&format!("X-H{i}: v{i}\n"));
                }
            }
            raw.push_str("\r\n");
            let m = Message::parse(raw.as_bytes()).expect("parses");
            let kept: Vec<Header<'_>> = m.headers().collect();
            let walked: Vec<Header<'_>> = Headers::new(m.header_block()).collect();
            assert_eq!(kept, walked, "{count} headers");
            assert_eq!(kept.len(), count + 1);
            if count > 0 {
                let last = format!("X-H{}", count - 1);
                assert!(
                    m.header_named(&last)
                        .is_some_and(|v| v.starts_with(&format!("v{}", count - 1)))
                );
            }
        }
    }

    #[test]
    fn invite_with_sdp() {
        let m = parse(INVITE);
        assert_eq!(
            m.start,
            StartLine::Request {
                method: Method::Invite,
                uri: "sip:bob@biloxi.example.com"
            }
        );
        assert!(m.is_request());
        assert_eq!(m.method(), Some(Method::Invite));
        assert_eq!(m.status(), None);
        assert_eq!(m.call_id(), Some("a84b4c76e66710@pc33.atlanta.example.com"));
        let from = m.from().expect("from");
        assert_eq!(from.display_name, Some("Alice \\\"A\\\""));
        assert_eq!(from.uri, "sip:alice@atlanta.example.com");
        assert_eq!(from.tag, Some("1928301774"));
        let to = m.to().expect("to");
        assert_eq!(
            (to.display_name, to.uri, to.tag),
            (Some("Bob"), "sip:bob@biloxi.example.com", None)
        );
        assert_eq!(m.cseq(), Some((314159, Method::Invite)));
        assert_eq!(m.content_type(), Some("application/sdp"));
        assert_eq!(m.header(HeaderName::MaxForwards), Some("70"));
        assert_eq!(m.via_branch(), Some("z9hG4bK776asdhds"));
        assert_eq!(
            m.contact().map(|c| c.uri),
            Some("sip:alice@pc33.atlanta.example.com")
        );
        assert_eq!(m.body.len(), 149);
        assert!(m.body.starts_with(b"v=0\r\n") && m.body.ends_with(b"PCMU/8000\r\n"));
        assert_eq!(m.sdp_body(), Some(m.body));
        assert_eq!(m.headers().count(), 9);
        assert!(looks_like_sip(INVITE));
        assert_eq!(frame(INVITE), Frame::Complete(INVITE.len()));
    }

    #[test]
    fn ringing_180_and_183_with_sdp() {
        let ringing = b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\n\
From: <sip:a@x>;tag=aa\r\nTo: <sip:b@y>;tag=bb\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n";
        let m = parse(ringing);
        assert_eq!(
            m.start,
            StartLine::Response {
                code: 180,
                reason: "Ringing"
            }
        );
        assert_eq!(m.status(), Some(180));
        assert_eq!(m.method(), Some(Method::Invite));
        assert_eq!(m.to().and_then(|t| t.tag), Some("bb"));
        assert!(m.body.is_empty());
        assert_eq!(m.sdp_body(), None);

        let progress = b"SIP/2.0 183 Session Progress\r\nCall-ID: c1\r\nCSeq: 1 INVITE\r\n\
Content-Type: Application/SDP\r\nContent-Length: 10\r\n\r\nv=0\r\no=- 1";
        let m = parse(progress);
        assert_eq!(
            m.start,
            StartLine::Response {
                code: 183,
                reason: "Session Progress"
            }
        );
        assert_eq!(m.sdp_body(), Some(&b"v=0\r\no=- 1"[..]));
    }

    #[test]
    fn ok_ack_bye_cancel_487() {
        let ok = b"SIP/2.0 200 OK\r\nCSeq: 2 BYE\r\nCall-ID: x\r\nContent-Length: 0\r\n\r\n";
        let m = parse(ok);
        assert_eq!((m.status(), m.method()), (Some(200), Some(Method::Bye)));
        let ack = b"ACK sip:bob@192.0.2.4 SIP/2.0\r\nCSeq: 1 ACK\r\nCall-ID: x\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(parse(ack).method(), Some(Method::Ack));
        let bye = b"BYE sip:alice@pc33.atlanta.example.com SIP/2.0\r\nCall-ID: x\r\nCSeq: 231 BYE\r\n\r\n";
        assert_eq!(parse(bye).cseq(), Some((231, Method::Bye)));
        let cancel = b"CANCEL sip:bob@b.com SIP/2.0\r\nCSeq: 1 CANCEL\r\n\r\n";
        assert_eq!(parse(cancel).method(), Some(Method::Cancel));
        let terminated = b"SIP/2.0 487 Request Terminated\r\nCSeq: 1 INVITE\r\n\r\n";
        let m = parse(terminated);
        assert_eq!(
            m.start,
            StartLine::Response {
                code: 487,
                reason: "Request Terminated"
            }
        );
        assert_eq!(m.method(), Some(Method::Invite));
        // Status line with no reason phrase.
        assert_eq!(
            parse(b"SIP/2.0 200\r\n\r\n").start,
            StartLine::Response {
                code: 200,
                reason: ""
            }
        );
    }

    #[test]
    fn compact_and_mixed_case_headers() {
        let msg = b"INVITE sip:b@y SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bKc\r\ni: compact-id\r\n\
f: <sip:a@x>;tag=ft\r\nt: sip:b@y\r\nm: <sip:a@10.1.1.1:5062>\r\nc: application/sdp\r\nk: 100rel\r\n\
x-CUSTOM-header : yes\r\nl: 4\r\n\r\nv=0\r\nEXTRA";
        let m = parse(msg);
        assert_eq!(m.call_id(), Some("compact-id"));
        assert_eq!(m.from().and_then(|f| f.tag), Some("ft"));
        assert_eq!(m.to().map(|t| t.uri), Some("sip:b@y"));
        assert_eq!(m.content_type(), Some("application/sdp"));
        assert_eq!(m.header(HeaderName::Supported), Some("100rel"));
        assert_eq!(m.header(HeaderName::Contact), Some("<sip:a@10.1.1.1:5062>"));
        assert_eq!(m.header_named("X-Custom-Header"), Some("yes"));
        assert_eq!(m.header_named("call-id"), Some("compact-id"));
        assert_eq!(m.body, b"v=0\r");

        let mixed = b"OPTIONS sip:x@y SIP/2.0\r\nCALL-ID: up\r\ncseq: 7 OPTIONS\r\nfRoM: <sip:a@b>;TAG=t1\r\n\r\n";
        let m = parse(mixed);
        assert_eq!(m.call_id(), Some("up"));
        assert_eq!(m.cseq(), Some((7, Method::Options)));
        assert_eq!(m.from().and_then(|f| f.tag), Some("t1"));
        let h = m.headers().next().expect("a header");
        assert!(
            h.is(HeaderName::CallId) && h.name_eq("i") && h.name_eq("Call-Id") && !h.name_eq("To")
        );
    }

    #[test]
    fn folded_header() {
        let msg = b"REGISTER sip:r.com SIP/2.0\r\nSubject: I know you're there,\r\n   pick up the phone\r\n\tand talk to me!\r\nCall-ID: f1\r\n\r\n";
        let m = parse(msg);
        assert_eq!(
            m.header_named("subject"),
            Some("I know you're there,\r\n   pick up the phone\r\n\tand talk to me!")
        );
        assert_eq!(m.call_id(), Some("f1"));
        assert_eq!(m.method(), Some(Method::Register));
    }

    #[test]
    fn bare_lf_line_endings() {
        let msg = b"INFO sip:b@y SIP/2.0\nCall-ID: lf\nContent-Type: application/dtmf-relay\nContent-Length: 22\n\nSignal=5\nDuration=160\n";
        let m = parse(msg);
        assert_eq!(m.call_id(), Some("lf"));
        assert_eq!(m.method(), Some(Method::Info));
        assert_eq!(m.body, b"Signal=5\nDuration=160\n");
        assert_eq!(
            info_dtmf(m.header(HeaderName::ContentType).unwrap_or(""), m.body),
            Some(('5', 160))
        );
        assert!(looks_like_sip(msg));
        assert_eq!(frame(msg), Frame::Complete(msg.len()));
    }

    #[test]
    fn content_length_checks() {
        let long = b"BYE sip:a@b SIP/2.0\r\nContent-Length: 50\r\n\r\nshort";
        assert_eq!(Message::parse(long), Err(Error::Truncated));
        assert_eq!(frame(long), Frame::Incomplete);
        let shorter = b"BYE sip:a@b SIP/2.0\r\nContent-Length: 3\r\n\r\nabcdef";
        assert_eq!(parse(shorter).body, b"abc");
        let absent = b"BYE sip:a@b SIP/2.0\r\nCall-ID: q\r\n\r\nabcdef";
        assert_eq!(parse(absent).body, b"abcdef");
        // On a stream a missing Content-Length means an empty body (RFC 3261 §18.3).
        assert_eq!(frame(absent), Frame::Complete(absent.len() - 6));
        let bad = b"BYE sip:a@b SIP/2.0\r\nContent-Length: ten\r\n\r\n";
        assert_eq!(Message::parse(bad), Err(Error::BadContentLength));
        let huge = b"BYE sip:a@b SIP/2.0\r\nl: 99999999999999999999999\r\n\r\n";
        assert_eq!(Message::parse(huge), Err(Error::BadContentLength));
    }

    #[test]
    fn errors() {
        assert_eq!(Message::parse(b""), Err(Error::NotSip));
        assert_eq!(
            Message::parse(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Err(Error::NotSip)
        );
        assert_eq!(
            Message::parse(b"SIP/2.0 2x0 OK\r\n\r\n"),
            Err(Error::BadStartLine)
        );
        assert_eq!(
            Message::parse(b"INVITE  SIP/2.0\r\n\r\n"),
            Err(Error::BadStartLine)
        );
        assert_eq!(
            Message::parse(b"INVITE sip:a@b SIP/2.0\r\nCall-ID: x\r\n"),
            Err(Error::Truncated)
        );
        assert_eq!(
            Message::parse(b"INVITE sip:a@b SIP/2.0\r\nCall-ID x\r\n\r\n"),
            Err(Error::BadHeader)
        );
        assert_eq!(
            Message::parse(b"INVITE sip:a@b SIP/2.0\r\nCall\xff: x\r\n\r\n"),
            Err(Error::BadHeader)
        );
        // Garbage after a tag (seen from a real PBX) cuts the value instead of failing the message.
        let m = parse(b"SIP/2.0 481 Gone \xe9t\xe9\r\nTo: <sip:a@b>;tag=5af5720\x91\x0e\xe7b\x01\r\nCall-ID: g\r\n\r\n");
        assert_eq!(m.to().and_then(|t| t.tag), Some("5af5720"));
        assert_eq!((m.status(), m.call_id()), (Some(481), Some("g")));
        assert_eq!(
            m.start,
            StartLine::Response {
                code: 481,
                reason: "Gone"
            }
        );
        assert_eq!(Message::parse(b"INVITE sip:a@b SIP"), Err(Error::Truncated));
        assert_eq!(Message::parse(b"\x80\x00\x12\x34"), Err(Error::NotSip));
        let mut big = b"INVITE sip:a@b SIP/2.0\r\n".to_vec();
        while big.len() <= MAX_HEADER_BLOCK + 10 {
            big.extend_from_slice(b"X-Pad: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        big.extend_from_slice(b"\r\n");
        assert_eq!(Message::parse(&big), Err(Error::TooLarge));
        // Non-UTF-8 bodies are fine: the body stays bytes.
        let bin = b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 3\r\n\r\n\xff\x00\xfe";
        assert_eq!(parse(bin).body, b"\xff\x00\xfe");
        // Keep-alive CRLFs before a datagram message are ignored (RFC 3261 §7.5).
        assert_eq!(
            parse(b"\r\n\r\nACK sip:a@b SIP/2.0\r\n\r\n").method(),
            Some(Method::Ack)
        );
    }

    #[test]
    fn methods_are_case_sensitive() {
        assert_eq!(Method::parse("INVITE"), Method::Invite);
        assert_eq!(Method::parse("invite"), Method::Other("invite"));
        assert_eq!(Method::parse("PRACK").as_str(), "PRACK");
        assert_eq!(Method::Other("FOO").as_str(), "FOO");
        let m = parse(b"PUBLISH sip:p@q SIP/2.0\r\n\r\n");
        assert_eq!(m.method(), Some(Method::Publish));
        let m = parse(b"X-CUSTOM sip:p@q SIP/2.0\r\n\r\n");
        assert_eq!(m.method(), Some(Method::Other("X-CUSTOM")));
    }

    const MULTIPART: &[u8] = b"INVITE sip:+15551234@gw.example.net;user=phone SIP/2.0\r\n\
Call-ID: mp1\r\n\
Content-Type: multipart/mixed;boundary=unique-boundary-1\r\n\
MIME-Version: 1.0\r\n\
\r\n\
--unique-boundary-1\r\n\
Content-Type: application/isup;version=itu-t92+\r\n\
Content-Disposition: signal;handling=optional\r\n\
\r\n\
\x01\x00\x49\x00\x00\x03\x02\x00\x07\r\n\
--unique-boundary-1\r\n\
Content-Type: application/SDP; charset=ISO-10646\r\n\
\r\n\
v=0\r\n\
o=- 1 1 IN IP4 10.0.0.1\r\n\
m=audio 4000 RTP/AVP 8\r\n\
\r\n\
--unique-boundary-1--\r\n";

    #[test]
    fn multipart_sdp() {
        let m = parse(MULTIPART);
        assert_eq!(m.content_type(), Some("multipart/mixed"));
        let sdp = m.sdp_body().expect("sdp part");
        assert_eq!(
            sdp,
            b"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\nm=audio 4000 RTP/AVP 8\r\n"
        );
        assert_eq!(
            parse_uri(match m.start {
                StartLine::Request { uri, .. } => uri,
                StartLine::Response { .. } => "",
            })
            .and_then(|u| u.user),
            Some("+15551234")
        );
    }

    #[test]
    fn multipart_quoted_boundary_and_bare_lf() {
        let msg = b"INVITE sip:a@b SIP/2.0\nContent-Type: multipart/mixed; boundary=\"b;1 x\"\n\n\
preamble\n--b;1 x\nContent-Type: text/plain\n\nhello\n--b;1 x  \ncontent-type:application/sdp\n\nv=0\n--b;1 x--\n";
        assert_eq!(parse(msg).sdp_body(), Some(&b"v=0"[..]));
        let none = b"INVITE sip:a@b SIP/2.0\r\nContent-Type: multipart/mixed;boundary=zz\r\n\r\n--zz\r\n\r\nv=0\r\n--zz--\r\n";
        assert_eq!(parse(none).sdp_body(), None);
        let nested = b"INVITE sip:a@b SIP/2.0\r\nContent-Type: multipart/mixed;boundary=outer\r\n\r\n\
--outer\r\nContent-Type: multipart/alternative;boundary=inner\r\n\r\n--inner\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--inner--\r\n--outer--\r\n";
        assert_eq!(parse(nested).sdp_body(), Some(&b"v=0"[..]));
    }

    #[test]
    fn name_addr_forms() {
        let n = parse_name_addr("\"Alice\" <sip:alice@a.com>;tag=1").expect("quoted");
        assert_eq!(
            n,
            NameAddr {
                display_name: Some("Alice"),
                uri: "sip:alice@a.com",
                tag: Some("1")
            }
        );
        let n = parse_name_addr("Alice Smith <sip:alice@a.com;transport=tcp>;foo=bar;tag=9x")
            .expect("token");
        assert_eq!(
            n,
            NameAddr {
                display_name: Some("Alice Smith"),
                uri: "sip:alice@a.com;transport=tcp",
                tag: Some("9x")
            }
        );
        // RFC 3261 §20.10: a bare addr-spec's parameters are header parameters.
        let n = parse_name_addr("sip:bob@b.com;tag=2").expect("addr-spec");
        assert_eq!(
            n,
            NameAddr {
                display_name: None,
                uri: "sip:bob@b.com",
                tag: Some("2")
            }
        );
        let n = parse_name_addr("<tel:+123>").expect("tel");
        assert_eq!(
            n,
            NameAddr {
                display_name: None,
                uri: "tel:+123",
                tag: None
            }
        );
        let n = parse_name_addr("<sip:a@x>;tag=t1, \"B\" <sip:b@y>;tag=t2").expect("list");
        assert_eq!((n.uri, n.tag), ("sip:a@x", Some("t1")));
        let n = parse_name_addr("sip:a@x, <sip:b@y>").expect("list of addr-spec");
        assert_eq!(n.uri, "sip:a@x");
        let n = parse_name_addr("\"a, <b>\" <sip:c@d>").expect("comma in quotes");
        assert_eq!((n.display_name, n.uri), (Some("a, <b>"), "sip:c@d"));
        let n = parse_name_addr("\"\" <sip:c@d> ; tag = \"q\"").expect("empty display");
        assert_eq!((n.display_name, n.tag), (None, Some("q")));
        assert_eq!(parse_name_addr(""), None);
        assert_eq!(parse_name_addr("\"unterminated <sip:a@b>"), None);
        assert_eq!(parse_name_addr("Alice <sip:a@b"), None);
        assert_eq!(parse_name_addr("nothing"), None);
    }

    #[test]
    fn uris() {
        let u =
            parse_uri("sip:alice:secret@atlanta.com:5061;transport=tcp?subject=x").expect("sip");
        assert_eq!(
            u,
            UriParts {
                scheme: "sip",
                user: Some("alice"),
                host: "atlanta.com",
                port: Some(5061)
            }
        );
        let u = parse_uri("sips:[2001:db8::1]:5061").expect("v6");
        assert_eq!(
            u,
            UriParts {
                scheme: "sips",
                user: None,
                host: "2001:db8::1",
                port: Some(5061)
            }
        );
        let u = parse_uri("SIP:+1555;npdi@gw.example.net").expect("user params");
        assert_eq!(
            (u.user, u.host, u.port),
            (Some("+1555;npdi"), "gw.example.net", None)
        );
        let u = parse_uri("tel:+1-201-555-0123;phone-context=example.com").expect("tel");
        assert_eq!(
            u,
            UriParts {
                scheme: "tel",
                user: Some("+1-201-555-0123"),
                host: "",
                port: None
            }
        );
        assert_eq!(
            parse_uri("<sip:10.0.0.1>").map(|u| u.host),
            Some("10.0.0.1")
        );
        assert_eq!(parse_uri("sip:a@host:99999"), None);
        assert_eq!(parse_uri("http://example.com"), None);
        assert_eq!(parse_uri("sip:"), None);
        assert_eq!(parse_uri("nocolon"), None);
    }

    #[test]
    fn params() {
        assert_eq!(
            param("SIP/2.0/UDP h:5060;rport;branch=z9hG4bKx", "branch"),
            Some("z9hG4bKx")
        );
        assert_eq!(
            param("SIP/2.0/UDP h:5060;rport;branch=z9hG4bKx", "rport"),
            None
        );
        assert_eq!(param("<sip:a@b;tag=inner>;x=1", "tag"), None);
        assert_eq!(
            param("multipart/mixed; boundary=\"a;b\"; x=y", "boundary"),
            Some("a;b")
        );
        assert_eq!(param("a;b=\"unterminated", "b"), Some("\"unterminated"));
        assert_eq!(
            media_type(" Application/SDP ; charset=x"),
            "Application/SDP"
        );
    }

    #[test]
    fn info_dtmf_forms() {
        assert_eq!(
            info_dtmf("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n"),
            Some(('5', 160))
        );
        assert_eq!(
            info_dtmf("Application/DTMF-Relay", b"signal= #\r\nduration =250"),
            Some(('#', 250))
        );
        assert_eq!(
            info_dtmf("application/dtmf-relay", b"Signal=10\r\nDuration=100"),
            Some(('*', 100))
        );
        assert_eq!(
            info_dtmf("application/dtmf-relay", b"Signal=11"),
            Some(('#', 0))
        );
        assert_eq!(
            info_dtmf("application/dtmf-relay", b"Signal=d\r\nDuration=x"),
            Some(('D', 0))
        );
        assert_eq!(info_dtmf("application/dtmf-relay", b"Duration=100"), None);
        assert_eq!(info_dtmf("application/dtmf-relay", b"Signal=16"), None);
        assert_eq!(info_dtmf("application/dtmf", b"7\r\n"), Some(('7', 0)));
        assert_eq!(info_dtmf("application/dtmf; x=y", b"11"), Some(('#', 0)));
        assert_eq!(info_dtmf("text/plain", b"Signal=5"), None);
        assert_eq!(info_dtmf("application/dtmf", b"\xff"), None);
    }

    #[test]
    fn looks_like_sip_cases() {
        assert!(looks_like_sip(b"SIP/2.0 200 OK\r\n"));
        assert!(looks_like_sip(b"SIP/2.0 100\r\n"));
        assert!(looks_like_sip(
            b"REGISTER sip:reg.example.com SIP/2.0\r\nVia: x\r\n"
        ));
        assert!(looks_like_sip(b"\r\nNOTIFY sips:x@y SIP/2.0\n"));
        assert!(looks_like_sip(b"INVITE tel:+1555 SIP/2.0\r\n"));
        // RTP (version 2, PT 0), HTTP, STUN binding request, TLS.
        assert!(!looks_like_sip(
            b"\x80\x00\x12\x34\x00\x00\x00\xa0\xde\xad\xbe\xef\xff\xff"
        ));
        assert!(!looks_like_sip(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
        assert!(!looks_like_sip(b"HTTP/1.1 200 OK\r\n"));
        assert!(!looks_like_sip(
            b"\x00\x01\x00\x00\x21\x12\xa4\x42abcdefghijkl"
        ));
        assert!(!looks_like_sip(b"\x16\x03\x01\x02\x00\x01"));
        assert!(!looks_like_sip(b""));
        assert!(!looks_like_sip(b"\r\n\r\n"));
        assert!(!looks_like_sip(b"INVITE sip:a@b SIP/2.0"));
        assert!(!looks_like_sip(b"SIP/2.0 20 OK\r\n"));
        assert!(!looks_like_sip(b"INVITE nocolon SIP/2.0\r\n"));
        let mut long = b"INVITE sip:".to_vec();
        long.resize(MAX_START_LINE + 10, b'a');
        long.extend_from_slice(b" SIP/2.0\r\n");
        assert!(!looks_like_sip(&long));
    }

    /// The first-byte reject takes nothing the start-line check would accept: every first
    /// byte, before the rest of a request line and of a status line, gives what the whole
    /// check gives.
    #[test]
    fn looks_like_sip_first_byte_reject_agrees_with_the_start_line_check() {
        let whole = |p: &[u8]| {
            let p = skip_crlf(&p[..p.len().min(MAX_START_LINE)]);
            first_line(p).is_some_and(|(_, line)| {
                split_status_line(line).is_some() || split_request_line(line).is_some()
            })
        };
        let mut accepted = 0;
        for b in 0..=255u8 {
            for rest in [
                &b"NVITE sip:a@b SIP/2.0\r\n"[..],
                b"IP/2.0 200 OK\r\n",
                b" sip:a@b SIP/2.0\r\n",
            ] {
                let mut p = vec![b];
                p.extend_from_slice(rest);
                assert_eq!(
                    looks_like_sip(&p),
                    whole(&p),
                    "first byte {b:#04x}, then {rest:?}"
                );
                accepted += usize::from(whole(&p));
            }
        }
        // Every token byte starts an extension method; `S` and `s` start `SIP/2.0`.
        assert!(accepted > 70, "{accepted}");
    }

    #[test]
    fn frame_keepalives_coalesced_split_garbage() {
        assert_eq!(frame(b""), Frame::Incomplete);
        assert_eq!(frame(b"\r\n\r\n"), Frame::Skip(4));
        let one = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 2\r\n\r\nhi";
        let two = b"SIP/2.0 200 OK\r\nl: 0\r\n\r\n";
        let mut stream = b"\r\n\r\n".to_vec();
        stream.extend_from_slice(one);
        stream.extend_from_slice(two);
        stream.extend_from_slice(&INVITE[..100]);
        let mut frames = Vec::new();
        let mut buf = &stream[..];
        loop {
            match frame(buf) {
                Frame::Skip(n) => {
                    frames.push(Err(n));
                    buf = &buf[n..];
                }
                Frame::Complete(n) => {
                    frames.push(Ok(parse(&buf[..n]).status().unwrap_or(0)));
                    buf = &buf[n..];
                }
                Frame::Incomplete | Frame::TooLarge(_) => break,
            }
        }
        assert_eq!(frames, vec![Err(4), Ok(0), Ok(200)]);
        assert_eq!(buf, &INVITE[..100]);
        // A split message completes byte by byte.
        for cut in 0..INVITE.len() {
            assert_eq!(frame(&INVITE[..cut]), Frame::Incomplete, "cut at {cut}");
        }
        // Garbage before a message is skipped up to the start line.
        let mut g = b"\x00\x01garbage line\r\nmore junk\n".to_vec();
        let junk = g.len();
        g.extend_from_slice(two);
        assert_eq!(frame(&g), Frame::Skip(junk));
        assert_eq!(frame(&g[junk..]), Frame::Complete(two.len()));
        // Garbage with a plausible unfinished tail keeps the tail.
        assert_eq!(frame(b"\xff\xfe\nSIP/2.0 2"), Frame::Skip(3));
        assert_eq!(frame(b"SIP/2.0 2"), Frame::Incomplete);
        assert_eq!(frame(b"\xff\xfe\xfd"), Frame::Skip(3));
        // Header block never ending is dropped rather than awaited forever.
        let mut endless = b"INVITE sip:a@b SIP/2.0\r\n".to_vec();
        while endless.len() <= MAX_HEADER_BLOCK {
            endless.extend_from_slice(b"X: y\r\n");
        }
        assert_eq!(frame(&endless), Frame::TooLarge(MAX_HEADER_BLOCK));
        let oversized = b"INVITE sip:a@b SIP/2.0\r\nContent-Length: 99999999\r\n\r\n";
        assert_eq!(
            frame(oversized),
            Frame::TooLarge(oversized.len() + 99_999_999)
        );
        // Within a smaller limit: known too large from the header block alone.
        let msg = b"MESSAGE sip:a@b SIP/2.0\r\nContent-Length: 10\r\n\r\n0123";
        let head = msg.len() - 4;
        assert_eq!(frame_within(msg, head + 9), Frame::TooLarge(head + 10));
        assert_eq!(frame_within(msg, head + 10), Frame::Incomplete);
        // A folded line mentioning `l:` is not a Content-Length.
        let folded = b"MESSAGE sip:a@b SIP/2.0\r\nSubject: x\r\n l: 5\r\n\r\n";
        assert_eq!(frame(folded), Frame::Complete(folded.len()));
    }

    #[test]
    fn error_display() {
        assert_eq!(Error::Truncated.to_string(), "truncated SIP message");
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..600)) {
                if let Ok(m) = Message::parse(&data) {
                    let _ = (m.call_id(), m.from(), m.to(), m.cseq(), m.method(), m.sdp_body(), m.via_branch());
                    for h in m.headers() { let _ = parse_name_addr(h.value); let _ = parse_uri(h.value); }
                }
                let _ = looks_like_sip(&data);
                let _ = info_dtmf("application/dtmf-relay", &data);
            }

            #[test]
            fn frame_never_panics_and_progresses(data in proptest::collection::vec(any::<u8>(), 0..600)) {
                match frame(&data) {
                    Frame::Skip(n) => prop_assert!(n > 0 && n <= data.len()),
                    Frame::TooLarge(n) => prop_assert!(n > 0),
                    Frame::Complete(n) => prop_assert!(n > 0 && n <= data.len()),
                    Frame::Incomplete => {}
                }
            }

            #[test]
            fn sip_shaped_never_panics(
                lines in proptest::collection::vec("[A-Za-z:;<>\"=@ ,/\\-0-9]{0,30}", 0..10),
                eol in prop_oneof![Just("\r\n"), Just("\n")],
            ) {
                let mut s = String::from("INVITE sip:a@b SIP/2.0");
                for l in &lines { s.push_str(eol); s.push_str(l); }
                s.push_str(eol); s.push_str(eol);
                if let Ok(m) = Message::parse(s.as_bytes()) {
                    let _ = (m.from(), m.to(), m.cseq(), m.sdp_body(), m.contact());
                }
                let _ = frame(s.as_bytes());
            }

            #[test]
            fn multipart_never_panics(
                boundary in "[a-z0-9;\"= -]{0,12}",
                parts in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..60), 0..5),
                sep in prop_oneof![Just("\r\n"), Just("\n")],
            ) {
                let mut msg = format!("INVITE sip:a@b SIP/2.0{sep}Content-Type: multipart/mixed;boundary={boundary}{sep}{sep}").into_bytes();
                for (i, p) in parts.iter().enumerate() {
                    msg.extend_from_slice(format!("--{boundary}{sep}").as_bytes());
                    if i % 2 == 0 {
                        msg.extend_from_slice(format!("Content-Type: application/sdp{sep}{sep}").as_bytes());
                    }
                    msg.extend_from_slice(p);
                    msg.extend_from_slice(sep.as_bytes());
                }
                if let Ok(m) = Message::parse(&msg)
                    && let Some(sdp) = m.sdp_body()
                {
                    let body = m.body.as_ptr_range();
                    prop_assert!(body.contains(&sdp.as_ptr()) || sdp.is_empty());
                }
            }

            #[test]
            fn round_trip(
                call_id in "[A-Za-z0-9.!%*_+`'~-]{1,24}(@[a-z0-9.]{1,16})?",
                from_tag in "[A-Za-z0-9-]{1,16}",
                to_tag in proptest::option::of("[A-Za-z0-9-]{1,16}"),
                display in proptest::option::of("[A-Za-z ]{0,12}[A-Za-z]"),
                method in prop_oneof![Just("INVITE"), Just("BYE"), Just("INFO"), Just("UPDATE"), Just("FOO")],
                cseq in any::<u32>(),
                code in proptest::option::of(100u16..700),
                body in "[ -~]{0,40}",
                compact in any::<bool>(),
            ) {
                let (i, f, t, l) = if compact { ("i", "f", "t", "l") } else { ("Call-ID", "From", "To", "Content-Length") };
                let start = match code {
                    Some(c) => format!("SIP/2.0 {c} Whatever"),
                    None => format!("{method} sip:bob@example.com SIP/2.0"),
                };
                let from = match &display {
                    Some(d) => format!("\"{d}\" <sip:alice@example.com>;tag={from_tag}"),
                    None => format!("<sip:alice@example.com>;tag={from_tag}"),
                };
                let to = match &to_tag {
                    Some(t) => format!("sip:bob@example.com;tag={t}"),
                    None => "sip:bob@example.com".to_owned(),
                };
                let msg = format!("{start}\r\n{i}: {call_id}\r\n{f}: {from}\r\n{t}: {to}\r\nCSeq: {cseq} {method}\r\n{l}: {}\r\n\r\n{body}", body.len());
                let m = Message::parse(msg.as_bytes()).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
                prop_assert_eq!(m.call_id(), Some(call_id.as_str()));
                let fa = m.from().ok_or_else(|| TestCaseError::fail("from"))?;
                prop_assert_eq!(fa.tag, Some(from_tag.as_str()));
                prop_assert_eq!(fa.display_name, display.as_deref());
                prop_assert_eq!(fa.uri, "sip:alice@example.com");
                let ta = m.to().ok_or_else(|| TestCaseError::fail("to"))?;
                prop_assert_eq!(ta.tag, to_tag.as_deref());
                prop_assert_eq!(m.cseq(), Some((cseq, Method::parse(method))));
                prop_assert_eq!(m.method(), Some(Method::parse(method)));
                prop_assert_eq!(m.status(), code);
                prop_assert_eq!(m.body, body.as_bytes());
                prop_assert!(looks_like_sip(msg.as_bytes()));
                prop_assert_eq!(frame(msg.as_bytes()), Frame::Complete(msg.len()));
            }
        }
    }
}
