//! A compact, deterministic binary codec: the primitives of the records tabbit stores
//! (`crate::store`, kept as `Uint8Array`s) and of the posts between contexts
//! (`crate::mesh::frame`); each of those keeps its own encodings, built from these. This
//! file holds the scalars, [`Writer`] and [`Reader`]; `value.rs` the field values and
//! tables, `message.rs` the messages, each with its encoder beside its decoder.
//!
//! The format, all integers little endian:
//!
//! - `uvar`: unsigned LEB128, at most 10 bytes, minimal (no trailing `0x80 … 0x00` padding).
//! - `ivar`: zigzag, then `uvar`.
//! - `f64`: the 8 bytes of [`f64::to_bits`], so every NaN payload survives.
//! - `bytes` / `str`: `uvar` length, then the bytes (a `str` must be UTF-8).
//! - `opt_str`: `uvar` 0 for `None`, else `uvar` length + 1 and the bytes.
//! - `opt_uvar`: a byte 0 for `None`, else 1 and the `uvar`.
//! - a [`FieldValue`]: a one-byte tag ([`tag`]), then the payload: nothing for `Void`, a
//!   byte 0/1 for `Bool`, `ivar` for `Int`, `f64` for `Float`, `str`, `bytes`, `uvar` for
//!   `Timestamp`, `uvar` count and the elements for `Array`, a table for `Table`.
//! - a [`Table`]: `uvar` count, then each key (`str`) and value, keys in ascending byte
//!   order (a `BTreeMap`'s order).
//! - a [`Message`]: the presence mask (`uvar`, bits in [`prop`]), exchange, routing key,
//!   the present properties in bit order, then the body (`bytes`).
//!
//! Decoding never panics and is strict, so every byte string decodes to at most one value
//! and that value re-encodes to the same bytes: a length larger than the remaining input is
//! an error before anything is allocated, as are nesting deeper than [`MAX_DEPTH`],
//! non-minimal or overlong varints, booleans other than 0/1, duplicate or unsorted table
//! keys, unknown tags and unknown property bits.
//!
//! [`FieldValue`]: crate::core::FieldValue
//! [`Table`]: crate::core::Table
//! [`Message`]: crate::core::Message

use std::fmt;

mod message;
mod value;
pub use message::prop;
pub use value::tag;

/// The deepest nesting of arrays and tables a record may have; a top-level table or array
/// is level 1. The [`Writer`] does not check it (it cannot fail): validate on input.
pub const MAX_DEPTH: u32 = 64;

/// Why a record could not be decoded: what failed, and the byte offset where the item that
/// failed starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    pub what: &'static str,
    pub at: usize,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "corrupt record: {} at byte {}", self.what, self.at)
    }
}

impl std::error::Error for DecodeError {}

/// Appends encoded items to a byte buffer.
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Writer { buf: Vec::new() }
    }

    pub fn with_capacity(n: usize) -> Self {
        Writer { buf: Vec::with_capacity(n) }
    }

    pub fn u8(&mut self, v: u8) {
        self.buf.push(v);
    }

    pub fn bool(&mut self, v: bool) {
        self.buf.push(v as u8);
    }

    /// Unsigned LEB128, 1 to 10 bytes.
    pub fn uvar(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.buf.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.buf.push(v as u8);
    }

    /// Zigzag (small magnitudes of either sign stay short), then LEB128.
    pub fn ivar(&mut self, v: i64) {
        self.uvar(((v << 1) ^ (v >> 63)) as u64);
    }

    /// The 8 bytes of the IEEE bits, little endian: bit exact, NaN payloads included.
    pub fn f64(&mut self, v: f64) {
        self.buf.extend_from_slice(&v.to_bits().to_le_bytes());
    }

    pub fn bytes(&mut self, v: &[u8]) {
        self.uvar(v.len() as u64);
        self.buf.extend_from_slice(v);
    }

    pub fn str(&mut self, v: &str) {
        self.bytes(v.as_bytes());
    }

    /// `None` is one byte 0; `Some(s)` is the length + 1 and the bytes.
    pub fn opt_str(&mut self, v: Option<&str>) {
        match v {
            None => self.uvar(0),
            Some(s) => {
                self.uvar(s.len() as u64 + 1);
                self.buf.extend_from_slice(s.as_bytes());
            }
        }
    }

    /// `None` is one byte 0; `Some(v)` is a byte 1 and the varint.
    pub fn opt_uvar(&mut self, v: Option<u64>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.uvar(v);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }
}

/// Reads encoded items from a byte slice; every method fails (never panics) on bad input.
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    fn err<T>(&self, what: &'static str, at: usize) -> Result<T, DecodeError> {
        Err(DecodeError { what, at })
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// The next `n` bytes; fails before anything is allocated if the input is shorter.
    fn take(&mut self, n: u64) -> Result<&'a [u8], DecodeError> {
        if n > self.remaining() as u64 {
            return self.err("unexpected end of record", self.pos);
        }
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        match self.buf.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                Ok(b)
            }
            None => self.err("unexpected end of record", self.pos),
        }
    }

    /// Only 0 and 1 are valid.
    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => self.err("bad boolean", self.pos - 1),
        }
    }

    /// Rejects varints longer than 10 bytes, values above `u64::MAX` and non-minimal forms.
    pub fn uvar(&mut self) -> Result<u64, DecodeError> {
        let start = self.pos;
        let mut v = 0u64;
        let mut shift = 0u32;
        loop {
            let b = self.u8()?;
            if shift == 63 && b > 1 {
                return self.err("varint overflow", start);
            }
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                if b == 0 && shift > 0 {
                    return self.err("non-minimal varint", start);
                }
                return Ok(v);
            }
            shift += 7;
        }
    }

    pub fn ivar(&mut self) -> Result<i64, DecodeError> {
        let u = self.uvar()?;
        Ok((u >> 1) as i64 ^ -((u & 1) as i64))
    }

    pub fn f64(&mut self) -> Result<f64, DecodeError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(f64::from_bits(u64::from_le_bytes(b)))
    }

    /// A length prefix and that many bytes, borrowed from the input.
    pub fn bytes(&mut self) -> Result<&'a [u8], DecodeError> {
        let at = self.pos;
        let n = self.uvar()?;
        self.take(n).or_else(|_| self.err("length exceeds record", at))
    }

    fn utf8(&self, b: &'a [u8]) -> Result<&'a str, DecodeError> {
        match std::str::from_utf8(b) {
            Ok(s) => Ok(s),
            Err(e) => self.err("bad utf-8", self.pos - b.len() + e.valid_up_to()),
        }
    }

    /// A validated UTF-8 string, borrowed from the input.
    pub fn str(&mut self) -> Result<&'a str, DecodeError> {
        let b = self.bytes()?;
        self.utf8(b)
    }

    pub fn opt_str(&mut self) -> Result<Option<String>, DecodeError> {
        let at = self.pos;
        match self.uvar()? {
            0 => Ok(None),
            n => {
                let b = self.take(n - 1).or_else(|_| self.err("length exceeds record", at))?;
                Ok(Some(self.utf8(b)?.to_owned()))
            }
        }
    }

    pub fn opt_uvar(&mut self) -> Result<Option<u64>, DecodeError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.uvar()?)),
            _ => self.err("bad option flag", self.pos - 1),
        }
    }

    /// A count of items each at least `min` bytes long, checked against the input left.
    pub fn count(&mut self, min: u64) -> Result<usize, DecodeError> {
        let at = self.pos;
        let n = self.uvar()?;
        if n > self.remaining() as u64 / min {
            return self.err("count exceeds record", at);
        }
        Ok(n as usize)
    }

    pub fn is_at_end(&self) -> bool {
        self.pos == self.buf.len()
    }

    pub fn pos(&self) -> usize {
        self.pos
    }

    /// Fails with "trailing bytes" unless the whole input was read.
    pub fn finish(&self) -> Result<(), DecodeError> {
        if self.is_at_end() {
            Ok(())
        } else {
            self.err("trailing bytes", self.pos)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::value::same_table;
    use crate::core::{FieldValue, Message, Properties, Table};

    fn enc_value(v: &FieldValue) -> Vec<u8> {
        let mut w = Writer::new();
        w.value(v);
        w.into_bytes()
    }

    fn dec_value(b: &[u8]) -> Result<FieldValue, DecodeError> {
        let mut r = Reader::new(b);
        let v = r.value()?;
        r.finish()?;
        Ok(v)
    }

    fn enc_message(m: &Message) -> Vec<u8> {
        let mut w = Writer::new();
        w.message(m);
        w.into_bytes()
    }

    fn dec_message(b: &[u8]) -> Result<Message, DecodeError> {
        let mut r = Reader::new(b);
        let m = r.message()?;
        r.finish()?;
        Ok(m)
    }

    fn err_what<T: fmt::Debug>(r: Result<T, DecodeError>) -> &'static str {
        r.unwrap_err().what
    }

    fn nested(depth: usize) -> FieldValue {
        let mut v = FieldValue::Array(vec![]);
        for _ in 1..depth {
            v = FieldValue::Array(vec![v]);
        }
        v
    }

    fn sample_table() -> Table {
        let mut t = Table::new();
        t.insert("".into(), FieldValue::Void);
        t.insert("a".into(), FieldValue::Int(-1));
        t.insert("é".into(), FieldValue::Str("ü€😀".into()));
        t.insert("f".into(), FieldValue::Array(vec![FieldValue::Float(2.5), FieldValue::Bool(true)]));
        t
    }

    fn every_variant() -> Vec<FieldValue> {
        vec![
            FieldValue::Void,
            FieldValue::Bool(false),
            FieldValue::Bool(true),
            FieldValue::Int(0),
            FieldValue::Int(1),
            FieldValue::Int(-1),
            FieldValue::Int(63),
            FieldValue::Int(-64),
            FieldValue::Int(64),
            FieldValue::Int(i64::MAX),
            FieldValue::Int(i64::MIN),
            FieldValue::Float(0.0),
            FieldValue::Float(-0.0),
            FieldValue::Float(1.5),
            FieldValue::Float(f64::INFINITY),
            FieldValue::Float(f64::NEG_INFINITY),
            FieldValue::Float(f64::MIN_POSITIVE / 2.0),
            FieldValue::Float(f64::NAN),
            FieldValue::Float(f64::from_bits(0xfff0_0000_dead_beef)),
            FieldValue::Float(f64::from_bits(0x7ff8_0000_0000_0001)),
            FieldValue::Str(String::new()),
            FieldValue::Str("hello, wörld".into()),
            FieldValue::Bytes(vec![]),
            FieldValue::Bytes((0..=255).collect()),
            FieldValue::Timestamp(0),
            FieldValue::Timestamp(1_700_000_000),
            FieldValue::Timestamp(u64::MAX),
            FieldValue::Array(vec![]),
            FieldValue::Array(vec![FieldValue::Void, FieldValue::Int(7), FieldValue::Array(vec![])]),
            FieldValue::Table(Table::new()),
            FieldValue::Table(sample_table()),
            nested(MAX_DEPTH as usize),
        ]
    }

    fn full_message() -> Message {
        let mut h = Table::new();
        h.insert("x-death".into(), FieldValue::Array(vec![FieldValue::Table(Table::new())]));
        h.insert("n".into(), FieldValue::Float(f64::from_bits(0x7ff4_0000_0000_0042)));
        h.insert("t".into(), FieldValue::Timestamp(u64::MAX));
        Message {
            exchange: "amq.topic".into(),
            routing_key: "a.b.c".into(),
            properties: Properties {
                content_type: Some("application/json".into()),
                content_encoding: Some("gzip".into()),
                headers: h,
                persistent: true,
                priority: Some(255),
                correlation_id: Some("corr".into()),
                reply_to: Some("amq.rabbitmq.reply-to".into()),
                expiration: Some("60000".into()),
                message_id: Some("m-1".into()),
                timestamp: Some(u64::MAX),
                kind: Some("kind".into()),
                user_id: Some("guest".into()),
                app_id: Some("app".into()),
            },
            body: b"{\"hello\":\"world\"}".to_vec(),
        }
    }

    fn same_message(a: &Message, b: &Message) -> bool {
        let (mut a, mut b) = (a.clone(), b.clone());
        let ha = std::mem::take(&mut a.properties.headers);
        let hb = std::mem::take(&mut b.properties.headers);
        a == b && same_table(&ha, &hb)
    }

    #[test]
    fn every_variant_round_trips_bit_exact() {
        for v in every_variant() {
            let b = enc_value(&v);
            let d = dec_value(&b).unwrap();
            assert!(d.same(&v), "{v:?} decoded as {d:?}");
            assert_eq!(enc_value(&d), b);
        }
    }

    #[test]
    fn scalars_round_trip() {
        let mut w = Writer::with_capacity(64);
        assert!(w.is_empty());
        w.u8(200);
        w.bool(true);
        w.uvar(u64::MAX);
        w.ivar(i64::MIN);
        w.f64(f64::from_bits(0x7ff0_0000_0000_0001));
        w.bytes(&[1, 2, 3]);
        w.str("ß");
        w.opt_str(None);
        w.opt_str(Some(""));
        w.opt_str(Some("x"));
        w.opt_uvar(None);
        w.opt_uvar(Some(u64::MAX));
        let mut t = Table::new();
        t.insert("k".into(), FieldValue::Bool(true));
        w.table(&t);
        assert_eq!(w.len(), w.as_bytes().len());
        let b = w.into_bytes();
        let mut r = Reader::new(&b);
        assert_eq!(r.u8(), Ok(200));
        assert_eq!(r.bool(), Ok(true));
        assert_eq!(r.uvar(), Ok(u64::MAX));
        assert_eq!(r.ivar(), Ok(i64::MIN));
        assert_eq!(r.f64().unwrap().to_bits(), 0x7ff0_0000_0000_0001);
        assert_eq!(r.bytes(), Ok(&[1u8, 2, 3][..]));
        assert_eq!(r.str(), Ok("ß"));
        assert_eq!(r.opt_str(), Ok(None));
        assert_eq!(r.opt_str(), Ok(Some(String::new())));
        assert_eq!(r.opt_str(), Ok(Some("x".into())));
        assert_eq!(r.opt_uvar(), Ok(None));
        assert_eq!(r.opt_uvar(), Ok(Some(u64::MAX)));
        assert_eq!(r.table(), Ok(t));
        assert!(r.is_at_end());
        assert_eq!(r.pos(), b.len());
        assert_eq!(r.finish(), Ok(()));
    }

    #[test]
    fn varints_are_leb128_and_zigzag() {
        let enc = |f: &dyn Fn(&mut Writer)| {
            let mut w = Writer::new();
            f(&mut w);
            w.into_bytes()
        };
        assert_eq!(enc(&|w| w.uvar(0)), [0]);
        assert_eq!(enc(&|w| w.uvar(127)), [127]);
        assert_eq!(enc(&|w| w.uvar(128)), [0x80, 1]);
        assert_eq!(enc(&|w| w.uvar(u64::MAX)).len(), 10);
        assert_eq!(enc(&|w| w.ivar(-1)), [1]);
        assert_eq!(enc(&|w| w.ivar(1)), [2]);
        assert_eq!(enc(&|w| w.ivar(-64)), [127]);
        for v in [0, 1, 127, 128, 300, 1 << 35, u64::MAX - 1, u64::MAX] {
            assert_eq!(Reader::new(&enc(&|w| w.uvar(v))).uvar(), Ok(v));
        }
        for v in [0, 1, -1, 63, -64, 64, -65, i64::MAX, i64::MIN] {
            assert_eq!(Reader::new(&enc(&|w| w.ivar(v))).ivar(), Ok(v));
        }
    }

    #[test]
    fn full_message_round_trips() {
        let m = full_message();
        let b = enc_message(&m);
        let d = dec_message(&b).unwrap();
        assert!(same_message(&m, &d), "{d:?}");
        assert_eq!(enc_message(&d), b);
        let plain = Message::new("ex", "rk", vec![9u8; 3]);
        assert_eq!(dec_message(&enc_message(&plain)), Ok(plain));
    }

    #[test]
    fn each_property_alone_round_trips() {
        let full = full_message();
        let fp = &full.properties;
        let none = Properties::default();
        let variants = [
            Properties { content_type: fp.content_type.clone(), ..none.clone() },
            Properties { content_encoding: fp.content_encoding.clone(), ..none.clone() },
            Properties { headers: fp.headers.clone(), ..none.clone() },
            Properties { persistent: true, ..none.clone() },
            Properties { priority: Some(0), ..none.clone() },
            Properties { correlation_id: Some(String::new()), ..none.clone() },
            Properties { reply_to: fp.reply_to.clone(), ..none.clone() },
            Properties { expiration: fp.expiration.clone(), ..none.clone() },
            Properties { message_id: fp.message_id.clone(), ..none.clone() },
            Properties { timestamp: Some(0), ..none.clone() },
            Properties { kind: fp.kind.clone(), ..none.clone() },
            Properties { user_id: fp.user_id.clone(), ..none.clone() },
            Properties { app_id: fp.app_id.clone(), ..none.clone() },
        ];
        for p in variants {
            let m = Message { properties: p, ..Message::new("", "q", b"x".to_vec()) };
            let d = dec_message(&enc_message(&m)).unwrap();
            assert!(same_message(&m, &d), "{m:?} decoded as {d:?}");
        }
    }

    #[test]
    fn plain_message_is_small() {
        let m = Message::new("", "q", vec![0u8; 100]);
        // mask 1 + exchange 1 + routing key 1 + 1 + body length 1 + body 100
        assert_eq!(enc_message(&m).len(), 105);
        let p = Message { properties: Properties { persistent: true, ..Properties::default() }, ..m };
        assert_eq!(enc_message(&p).len(), 105);
    }

    #[test]
    fn every_truncation_is_an_error() {
        let m = enc_message(&full_message());
        for i in 0..m.len() {
            assert!(Reader::new(&m[..i]).message().is_err(), "prefix {i}");
        }
        for v in every_variant() {
            let b = enc_value(&v);
            for i in 0..b.len() {
                assert!(Reader::new(&b[..i]).value().is_err(), "{v:?} prefix {i}");
            }
        }
        let mut w = Writer::new();
        w.table(&sample_table());
        let b = w.into_bytes();
        for i in 0..b.len() {
            assert!(Reader::new(&b[..i]).table().is_err(), "table prefix {i}");
        }
    }

    #[test]
    fn bad_varints_are_errors() {
        // 11 bytes: overlong.
        let mut b = vec![0x80u8; 10];
        b.push(0);
        assert_eq!(err_what(Reader::new(&b).uvar()), "varint overflow");
        // 10 bytes whose last carries more than bit 63.
        let mut b = vec![0xffu8; 9];
        b.push(2);
        assert_eq!(err_what(Reader::new(&b).uvar()), "varint overflow");
        // Non-minimal forms of 0 and 1.
        assert_eq!(err_what(Reader::new(&[0x80, 0]).uvar()), "non-minimal varint");
        assert_eq!(err_what(Reader::new(&[0x81, 0x80, 0]).uvar()), "non-minimal varint");
        assert_eq!(err_what(Reader::new(&[0x80, 0x80]).uvar()), "unexpected end of record");
        assert_eq!(err_what(Reader::new(&[]).uvar()), "unexpected end of record");
    }

    #[test]
    fn bad_utf8_is_an_error() {
        let mut w = Writer::new();
        w.u8(tag::STR);
        w.bytes(b"ok\xff");
        let e = dec_value(w.as_bytes()).unwrap_err();
        assert_eq!(e, DecodeError { what: "bad utf-8", at: 4 });
        assert_eq!(e.to_string(), "corrupt record: bad utf-8 at byte 4");
        assert_eq!(err_what(Reader::new(&[3, b'a', 0xc3]).opt_str()), "bad utf-8");
        let mut w = Writer::new();
        w.uvar(0);
        w.bytes(&[0xed, 0xa0, 0x80]); // a surrogate: not UTF-8
        w.str("");
        w.bytes(b"");
        assert_eq!(err_what(dec_message(w.as_bytes())), "bad utf-8");
    }

    #[test]
    fn hostile_lengths_fail_without_allocating() {
        let mut w = Writer::new();
        w.uvar(u64::MAX);
        let huge = w.into_bytes();
        assert_eq!(err_what(Reader::new(&huge).bytes()), "length exceeds record");
        assert_eq!(err_what(Reader::new(&huge).str()), "length exceeds record");
        assert_eq!(err_what(Reader::new(&huge).opt_str()), "length exceeds record");
        assert_eq!(err_what(Reader::new(&huge).table()), "count exceeds record");
        for t in [tag::STR, tag::BYTES, tag::ARRAY, tag::TABLE] {
            let mut b = vec![t];
            b.extend_from_slice(&huge);
            assert!(Reader::new(&b).value().is_err());
        }
        let mut w = Writer::new();
        w.uvar(0);
        w.str("");
        w.str("q");
        w.uvar(1 << 40);
        w.bytes(&[0; 16]);
        assert_eq!(err_what(dec_message(w.as_bytes())), "length exceeds record");
    }

    #[test]
    fn nesting_is_limited() {
        assert!(dec_value(&enc_value(&nested(64))).is_ok());
        let e = dec_value(&enc_value(&nested(65))).unwrap_err();
        assert_eq!(e, DecodeError { what: "nesting too deep", at: 128 });
        // Tables count as levels too, also under a message's headers.
        let mut v = FieldValue::Table(Table::new());
        for _ in 1..64 {
            let mut t = Table::new();
            t.insert("k".into(), v);
            v = FieldValue::Table(t);
        }
        assert!(dec_value(&enc_value(&v)).is_ok());
        let FieldValue::Table(deep) = v else { panic!() };
        let mut m = Message::new("", "q", vec![]);
        m.properties.headers = deep.clone();
        assert!(dec_message(&enc_message(&m)).is_ok());
        let mut t = Table::new();
        t.insert("k".into(), FieldValue::Table(deep));
        let mut w = Writer::new();
        w.table(&t);
        assert_eq!(err_what(Reader::new(w.as_bytes()).table()), "nesting too deep");
        m.properties.headers = t;
        assert_eq!(err_what(dec_message(&enc_message(&m))), "nesting too deep");
        // A long hostile run of array tags fails rather than overflowing the stack.
        let b: Vec<u8> = [tag::ARRAY, 1].repeat(100_000);
        assert_eq!(err_what(Reader::new(&b).value()), "nesting too deep");
    }

    #[test]
    fn duplicate_and_unsorted_keys_are_rejected() {
        let mut w = Writer::new();
        w.uvar(2);
        w.str("a");
        w.value(&FieldValue::Void);
        w.str("a");
        w.value(&FieldValue::Int(1));
        let e = Reader::new(w.as_bytes()).table().unwrap_err();
        assert_eq!(e, DecodeError { what: "duplicate or unsorted table key", at: 4 });
        let mut w = Writer::new();
        w.uvar(2);
        w.str("b");
        w.value(&FieldValue::Void);
        w.str("a");
        w.value(&FieldValue::Void);
        assert_eq!(err_what(Reader::new(w.as_bytes()).table()), "duplicate or unsorted table key");
    }

    #[test]
    fn other_corruption_is_rejected() {
        assert_eq!(err_what(Reader::new(&[2]).bool()), "bad boolean");
        assert_eq!(err_what(dec_value(&[tag::BOOL, 2])), "bad boolean");
        assert_eq!(err_what(dec_value(&[9])), "unknown value tag");
        assert_eq!(err_what(dec_value(&[0xff])), "unknown value tag");
        assert_eq!(err_what(Reader::new(&[2, 0]).opt_uvar()), "bad option flag");
        // A mask bit beyond the defined ones.
        let mut w = Writer::new();
        w.uvar(1 << 13);
        w.str("");
        w.str("");
        w.bytes(b"");
        assert_eq!(err_what(dec_message(w.as_bytes())), "unknown property bits");
        // The headers bit with an empty table.
        assert_eq!(err_what(dec_message(&[prop::HEADERS as u8, 0, 0, 0, 0])), "empty headers marked present");
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut b = enc_message(&full_message());
        b.push(0);
        let mut r = Reader::new(&b);
        assert!(r.message().is_ok());
        assert!(!r.is_at_end());
        assert_eq!(r.finish(), Err(DecodeError { what: "trailing bytes", at: b.len() - 1 }));
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod proptests {
    use super::*;
    use crate::core::value::same_table;
    use crate::core::{FieldValue, Message, Properties, Table};
    use proptest::collection::{btree_map, vec};
    use proptest::option;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = FieldValue> {
        let leaf = prop_oneof![
            Just(FieldValue::Void),
            any::<bool>().prop_map(FieldValue::Bool),
            any::<i64>().prop_map(FieldValue::Int),
            any::<u64>().prop_map(|b| FieldValue::Float(f64::from_bits(b))),
            ".{0,12}".prop_map(FieldValue::Str),
            vec(any::<u8>(), 0..16).prop_map(FieldValue::Bytes),
            any::<u64>().prop_map(FieldValue::Timestamp),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            prop_oneof![
                vec(inner.clone(), 0..6).prop_map(FieldValue::Array),
                btree_map(".{0,6}", inner, 0..6).prop_map(|m| FieldValue::Table(m.into_iter().collect())),
            ]
        })
    }

    fn table() -> impl Strategy<Value = Table> {
        btree_map(".{0,8}", value(), 0..5).prop_map(|m| m.into_iter().collect())
    }

    fn s() -> impl Strategy<Value = Option<String>> {
        option::of(".{0,10}")
    }

    fn message() -> impl Strategy<Value = Message> {
        (
            (".{0,10}", ".{0,10}", vec(any::<u8>(), 0..64), table(), any::<bool>()),
            (s(), s(), option::of(any::<u8>()), s(), s(), s()),
            (s(), option::of(any::<u64>()), s(), s(), s()),
        )
            .prop_map(|((exchange, routing_key, body, headers, persistent), a, b)| Message {
                exchange,
                routing_key,
                body,
                properties: Properties {
                    headers,
                    persistent,
                    content_type: a.0,
                    content_encoding: a.1,
                    priority: a.2,
                    correlation_id: a.3,
                    reply_to: a.4,
                    expiration: a.5,
                    message_id: b.0,
                    timestamp: b.1,
                    kind: b.2,
                    user_id: b.3,
                    app_id: b.4,
                },
            })
    }

    proptest! {
        #[test]
        fn values_round_trip(v in value()) {
            let mut w = Writer::new();
            w.value(&v);
            let mut r = Reader::new(w.as_bytes());
            let d = r.value().unwrap();
            r.finish().unwrap();
            prop_assert!(d.same(&v));
        }

        #[test]
        fn messages_round_trip(m in message()) {
            let mut w = Writer::new();
            w.message(&m);
            let mut r = Reader::new(w.as_bytes());
            let mut d = r.message().unwrap();
            r.finish().unwrap();
            let mut w2 = Writer::new();
            w2.message(&d);
            prop_assert_eq!(w2.as_bytes(), w.as_bytes());
            // Headers compare bit for bit (NaN), the rest with `==`.
            let mut m = m;
            prop_assert!(same_table(&d.properties.headers, &m.properties.headers));
            d.properties.headers.clear();
            m.properties.headers.clear();
            prop_assert_eq!(d, m);
        }

        /// Valid records with a few bytes overwritten never panic, and re-encode exactly
        /// when they still decode.
        #[test]
        fn mutated_records_never_panic(m in message(), edits in vec((any::<usize>(), any::<u8>()), 1..4)) {
            let mut w = Writer::new();
            w.message(&m);
            let mut b = w.into_bytes();
            for (i, x) in edits {
                let n = b.len();
                b[i % n] = x;
            }
            let mut r = Reader::new(&b);
            if let Ok(d) = r.message() {
                let mut w = Writer::new();
                w.message(&d);
                prop_assert_eq!(w.as_bytes(), &b[..r.pos()]);
            }
        }

        /// Arbitrary bytes never panic, and whatever decodes re-encodes to the bytes read.
        #[test]
        fn arbitrary_bytes_never_panic(b in vec(any::<u8>(), 0..512)) {
            let mut r = Reader::new(&b);
            if let Ok(m) = r.message() {
                let mut w = Writer::new();
                w.message(&m);
                prop_assert_eq!(w.as_bytes(), &b[..r.pos()]);
            }
            let mut r = Reader::new(&b);
            if let Ok(t) = r.table() {
                let mut w = Writer::new();
                w.table(&t);
                prop_assert_eq!(w.as_bytes(), &b[..r.pos()]);
            }
            let mut r = Reader::new(&b);
            if let Ok(v) = r.value() {
                let mut w = Writer::new();
                w.value(&v);
                prop_assert_eq!(w.as_bytes(), &b[..r.pos()]);
            }
        }
    }
}
