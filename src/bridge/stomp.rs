//! STOMP 1.2 frames, as RabbitMQ's Web-STOMP plugin speaks them over a WebSocket.
//!
//! A frame is a command line, header lines `name:value`, an empty line, a body and a NUL
//! byte. Header names and values escape `\`, CR, LF and `:` as `\\`, `\r`, `\n` and `\c`,
//! except in `CONNECT` and `CONNECTED`, which STOMP 1.2 leaves unescaped for older peers. A
//! body is as long as the `content-length` header says, or, without one, runs to the first
//! NUL. Between frames a peer may send end-of-line bytes as heart-beats.
//!
//! The decoder takes bytes as they arrive (a WebSocket message may carry one frame, several,
//! or a part of one) and never panics: what the server sends is not trusted. An error poisons
//! it, since after a malformed frame the stream cannot be resynchronised: the connection is
//! closed and opened anew.

use std::fmt;

/// One frame: a command, its headers in order (a repeated header keeps every copy; the
/// first is the one that counts, as STOMP 1.2 says) and its body.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    pub command: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why a stream of frames could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StompError {
    /// A frame is larger than the decoder accepts (its limit, in bytes).
    TooLarge(usize),
    /// The command line is empty or not ASCII letters.
    BadCommand(String),
    /// A header line has no colon, or its name or value is not UTF-8.
    BadHeader(String),
    /// A backslash followed by something other than `\`, `r`, `n` or `c`.
    BadEscape(String),
    /// `content-length` is not a whole number.
    BadContentLength(String),
    /// The byte after a body of `content-length` bytes is not NUL.
    MissingNul,
    /// A decoder that failed once takes no more bytes.
    Poisoned,
}

impl fmt::Display for StompError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StompError::TooLarge(limit) => write!(f, "a STOMP frame from the server is over {limit} bytes"),
            StompError::BadCommand(c) => write!(f, "a STOMP frame from the server has a bad command line \"{c}\""),
            StompError::BadHeader(h) => write!(f, "a STOMP frame from the server has a bad header line \"{h}\""),
            StompError::BadEscape(h) => write!(f, "a STOMP header from the server has a bad escape: \"{h}\""),
            StompError::BadContentLength(v) => {
                write!(f, "a STOMP frame from the server has a bad content-length \"{v}\"")
            }
            StompError::MissingNul => {
                write!(f, "a STOMP frame from the server does not end with NUL after its content-length")
            }
            StompError::Poisoned => write!(f, "the STOMP stream failed before: reconnect"),
        }
    }
}

impl std::error::Error for StompError {}

impl Frame {
    pub fn new(command: &str) -> Frame {
        Frame { command: command.to_owned(), headers: Vec::new(), body: Vec::new() }
    }

    /// Adds a header (builder style).
    pub fn header(mut self, name: &str, value: impl Into<String>) -> Frame {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    pub fn body(mut self, body: Vec<u8>) -> Frame {
        self.body = body;
        self
    }

    /// The first value of header `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }

    /// Whether this frame's headers are written without escapes (STOMP 1.2: CONNECT, CONNECTED).
    fn raw_headers(command: &str) -> bool {
        command == "CONNECT" || command == "CONNECTED"
    }

    /// The frame's bytes. A `content-length` header is added for a non-empty body (so that
    /// a body may hold NUL bytes); one given by the caller is dropped in its favour.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.command.len() + 64 + self.body.len());
        self.encode_into(&mut out, &self.body);
        out
    }

    /// Appends the frame's bytes to `out`, as [`Frame::encode`] makes them, with `body` for
    /// its body: a message's body goes from where it is straight into the bytes to send, and
    /// several frames into one buffer (one WebSocket message).
    pub fn encode_into(&self, out: &mut Vec<u8>, body: &[u8]) {
        let raw = Frame::raw_headers(&self.command);
        out.reserve(self.command.len() + 64 + body.len());
        out.extend_from_slice(self.command.as_bytes());
        out.push(b'\n');
        for (k, v) in &self.headers {
            if k == "content-length" {
                continue;
            }
            escape_into(out, k, raw);
            out.push(b':');
            escape_into(out, v, raw);
            out.push(b'\n');
        }
        if !body.is_empty() {
            out.extend_from_slice(b"content-length:");
            out.extend_from_slice(body.len().to_string().as_bytes());
            out.push(b'\n');
        }
        out.push(b'\n');
        out.extend_from_slice(body);
        out.push(0);
    }
}

fn escape_into(out: &mut Vec<u8>, s: &str, raw: bool) {
    if raw {
        // CONNECT cannot escape: drop what would break the frame instead.
        out.extend(s.bytes().filter(|&b| b != b'\n' && b != b'\r' && b != 0));
        return;
    }
    for b in s.bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b':' => out.extend_from_slice(b"\\c"),
            0 => {}
            _ => out.push(b),
        }
    }
}

fn unescape(s: &str, raw: bool) -> Result<String, StompError> {
    if raw || !s.contains('\\') {
        return Ok(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('c') => out.push(':'),
            _ => return Err(StompError::BadEscape(s.to_owned())),
        }
    }
    Ok(out)
}

/// Reads frames out of a byte stream.
#[derive(Debug)]
pub struct Decoder {
    buf: Vec<u8>,
    max: usize,
    poisoned: bool,
}

impl Decoder {
    /// A decoder that refuses frames over `max_frame_bytes` (headers and body).
    pub fn new(max_frame_bytes: usize) -> Decoder {
        Decoder { buf: Vec::new(), max: max_frame_bytes, poisoned: false }
    }

    /// Bytes held for a frame not complete yet.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Takes `bytes` and returns the frames they complete, in order.
    pub fn push(&mut self, bytes: &[u8]) -> Result<Vec<Frame>, StompError> {
        if self.poisoned {
            return Err(StompError::Poisoned);
        }
        self.buf.extend_from_slice(bytes);
        let mut frames = Vec::new();
        let mut at = 0;
        let result = loop {
            // Heart-beats: end-of-line bytes between frames.
            while at < self.buf.len() && (self.buf[at] == b'\n' || self.buf[at] == b'\r') {
                at += 1;
            }
            match parse(&self.buf[at..], self.max) {
                Ok(Some((frame, used))) => {
                    frames.push(frame);
                    at += used;
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        self.buf.drain(..at);
        match result {
            Ok(()) => Ok(frames),
            Err(e) => {
                self.poisoned = true;
                self.buf = Vec::new();
                Err(e)
            }
        }
    }
}

/// One frame at the start of `b`, and the bytes it took; `None` if `b` holds only a part of one.
fn parse(b: &[u8], max: usize) -> Result<Option<(Frame, usize)>, StompError> {
    if b.is_empty() {
        return Ok(None);
    }
    let Some(head_end) = find_blank_line(b) else {
        return if b.len() > max { Err(StompError::TooLarge(max)) } else { Ok(None) };
    };
    let (head, body_start) = head_end;
    if body_start > max {
        return Err(StompError::TooLarge(max));
    }
    let head = std::str::from_utf8(&b[..head]).map_err(|_| StompError::BadHeader("(not UTF-8)".into()))?;
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let command = lines.next().unwrap_or_default();
    if command.is_empty() || !command.bytes().all(|c| c.is_ascii_uppercase()) {
        return Err(StompError::BadCommand(command.chars().take(40).collect()));
    }
    let raw = Frame::raw_headers(command);
    let mut headers = Vec::new();
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            return Err(StompError::BadHeader(line.chars().take(80).collect()));
        };
        headers.push((unescape(k, raw)?, unescape(v, raw)?));
    }
    let length = headers.iter().find(|(k, _)| k == "content-length").map(|(_, v)| v.as_str());
    let (body_end, end) = match length {
        Some(v) => {
            let n: usize = v
                .trim()
                .parse()
                .ok()
                .filter(|_| !v.trim().is_empty() && v.trim().bytes().all(|c| c.is_ascii_digit()))
                .ok_or_else(|| StompError::BadContentLength(v.chars().take(40).collect()))?;
            let body_end = body_start.checked_add(n).filter(|&e| e < max).ok_or(StompError::TooLarge(max))?;
            if b.len() <= body_end {
                return Ok(None);
            }
            if b[body_end] != 0 {
                return Err(StompError::MissingNul);
            }
            (body_end, body_end + 1)
        }
        None => match b[body_start..].iter().position(|&c| c == 0) {
            // A whole frame in one push is held to the limit too, as one in parts is.
            Some(n) if body_start + n + 1 > max => return Err(StompError::TooLarge(max)),
            Some(n) => (body_start + n, body_start + n + 1),
            None if b.len() > max => return Err(StompError::TooLarge(max)),
            None => return Ok(None),
        },
    };
    let frame = Frame { command: command.to_owned(), headers, body: b[body_start..body_end].to_vec() };
    Ok(Some((frame, end)))
}

/// Where the headers end: (end of the head, start of the body), for a blank line made of
/// `\n\n`, `\r\n\r\n` or a mix.
fn find_blank_line(b: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while let Some(n) = b[i..].iter().position(|&c| c == b'\n') {
        let nl = i + n;
        let next = nl + 1;
        if b.get(next) == Some(&b'\n') {
            let head = if nl > 0 && b[nl - 1] == b'\r' { nl - 1 } else { nl };
            return Some((head, next + 1));
        }
        if b.get(next) == Some(&b'\r') && b.get(next + 1) == Some(&b'\n') {
            let head = if nl > 0 && b[nl - 1] == b'\r' { nl - 1 } else { nl };
            return Some((head, next + 2));
        }
        i = next;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(bytes: &[u8]) -> Result<Vec<Frame>, StompError> {
        Decoder::new(1 << 20).push(bytes)
    }

    #[test]
    fn round_trips_with_escapes_and_binary_body() {
        let f = Frame::new("SEND")
            .header("destination", "/queue/a")
            .header("x:odd\\name", "line1\nline2\r:")
            .body(vec![0, 1, 2, 0, 255]);
        let mut got = decode_all(&f.encode()).unwrap();
        assert_eq!(got.len(), 1);
        let got = got.remove(0);
        assert_eq!(got.get("content-length"), Some("5"));
        assert_eq!((&got.command, &got.headers[..2], &got.body), (&f.command, &f.headers[..], &f.body));
    }

    #[test]
    fn connect_headers_are_not_escaped() {
        let f = Frame::new("CONNECT").header("passcode", "a\\b:c");
        let bytes = f.encode();
        assert!(bytes.windows(6).any(|w| w == b"a\\b:c\n"));
        assert_eq!(decode_all(&bytes).unwrap()[0].get("passcode"), Some("a\\b:c"));
    }

    #[test]
    fn heartbeats_crlf_and_several_frames_in_one_push() {
        let bytes = b"\n\r\nCONNECTED\r\nversion:1.2\r\n\r\n\0\nRECEIPT\nreceipt-id:7\n\n\0\n";
        let frames = decode_all(bytes).unwrap();
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].get("version"), Some("1.2"));
        assert_eq!(frames[1].get("receipt-id"), Some("7"));
    }

    #[test]
    fn frames_split_at_every_byte() {
        let a = Frame::new("MESSAGE").header("ack", "1").body(b"hello\0world".to_vec()).encode();
        let b = Frame::new("ERROR").header("message", "bad").body(b"text".to_vec());
        let mut bytes = a.clone();
        bytes.extend_from_slice(b"\n");
        // An ERROR without content-length: its body runs to the NUL.
        bytes.extend_from_slice(b"ERROR\nmessage:bad\n\ntext\0");
        let mut d = Decoder::new(1 << 20);
        let mut frames = Vec::new();
        for byte in &bytes {
            frames.extend(d.push(std::slice::from_ref(byte)).unwrap());
        }
        assert_eq!(frames.len(), 2);
        assert_eq!(frames[0].body, b"hello\0world");
        assert_eq!(frames[1], b);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn first_header_wins() {
        let f = decode_all(b"MESSAGE\nfoo:1\nfoo:2\n\n\0").unwrap().remove(0);
        assert_eq!(f.get("foo"), Some("1"));
        assert_eq!(f.headers.len(), 2);
    }

    #[test]
    fn malformed_frames_are_errors_and_poison() {
        type Case = (&'static [u8], fn(&StompError) -> bool);
        let cases: &[Case] = &[
            (b"message\n\n\0", |e| matches!(e, StompError::BadCommand(_))),
            (b"MESSAGE\nnocolon\n\n\0", |e| matches!(e, StompError::BadHeader(_))),
            (b"MESSAGE\na:b\\t\n\n\0", |e| matches!(e, StompError::BadEscape(_))),
            (b"MESSAGE\ncontent-length:x\n\n\0", |e| matches!(e, StompError::BadContentLength(_))),
            (b"MESSAGE\ncontent-length:-1\n\n\0", |e| matches!(e, StompError::BadContentLength(_))),
            (b"MESSAGE\ncontent-length:2\n\nabc\0", |e| *e == StompError::MissingNul),
            (b"MESSAGE\na:\xff\n\n\0", |e| matches!(e, StompError::BadHeader(_))),
            (b"MESSAGE\ncontent-length:99999999999999999999999\n\n", |e| {
                matches!(e, StompError::BadContentLength(_) | StompError::TooLarge(_))
            }),
        ];
        for (bytes, ok) in cases {
            let mut d = Decoder::new(1 << 20);
            let e = d.push(bytes).unwrap_err();
            assert!(ok(&e), "{:?} gave {e:?}", String::from_utf8_lossy(bytes));
            assert_eq!(d.push(b"RECEIPT\n\n\0").unwrap_err(), StompError::Poisoned);
            assert!(!e.to_string().is_empty());
        }
    }

    #[test]
    fn too_large_frames_are_refused_before_buffering_them_whole() {
        let mut d = Decoder::new(100);
        assert!(d.push(b"MESSAGE\n\n").unwrap().is_empty());
        assert_eq!(d.push(&[b'a'; 200]).unwrap_err(), StompError::TooLarge(100));
        let mut d = Decoder::new(100);
        assert_eq!(d.push(b"MESSAGE\ncontent-length:500\n\n").unwrap_err(), StompError::TooLarge(100));
        let mut d = Decoder::new(100);
        assert_eq!(d.push(&[b'A'; 101]).unwrap_err(), StompError::TooLarge(100));
        // A frame over the limit that comes whole, NUL included, with no content-length.
        let mut d = Decoder::new(100);
        let whole = [&b"SEND\ndestination:/queue/q\n\n"[..], &[b'x'; 100], b"\0"].concat();
        assert_eq!(d.push(&whole).unwrap_err(), StompError::TooLarge(100));
        let mut d = Decoder::new(100);
        let fits = [&b"SEND\n\n"[..], &[b'x'; 93], b"\0"].concat();
        assert_eq!(fits.len(), 100);
        assert_eq!(d.push(&fits).unwrap().len(), 1);
    }

    #[test]
    fn caller_content_length_is_replaced() {
        let f = Frame::new("SEND").header("content-length", "999").body(b"ab".to_vec());
        let got = decode_all(&f.encode()).unwrap().remove(0);
        assert_eq!(got.get("content-length"), Some("2"));
        assert_eq!(got.body, b"ab");
    }
}
