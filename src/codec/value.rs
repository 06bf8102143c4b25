//! [`FieldValue`]s and [`Table`]s: their one-byte tags, and how each is written and read.

use super::{DecodeError, Reader, Writer, MAX_DEPTH};
use crate::core::{FieldValue, Table};

/// The one-byte tags of [`FieldValue`] variants.
pub mod tag {
    pub const VOID: u8 = 0;
    pub const BOOL: u8 = 1;
    pub const INT: u8 = 2;
    pub const FLOAT: u8 = 3;
    pub const STR: u8 = 4;
    pub const BYTES: u8 = 5;
    pub const TIMESTAMP: u8 = 6;
    pub const ARRAY: u8 = 7;
    pub const TABLE: u8 = 8;
}

impl Writer {
    /// The entry count, then the entries in key order.
    pub fn table(&mut self, t: &Table) {
        self.uvar(t.len() as u64);
        for (k, v) in t {
            self.str(k);
            self.value(v);
        }
    }

    pub fn value(&mut self, v: &FieldValue) {
        match v {
            FieldValue::Void => self.u8(tag::VOID),
            FieldValue::Bool(b) => {
                self.u8(tag::BOOL);
                self.bool(*b);
            }
            FieldValue::Int(i) => {
                self.u8(tag::INT);
                self.ivar(*i);
            }
            FieldValue::Float(f) => {
                self.u8(tag::FLOAT);
                self.f64(*f);
            }
            FieldValue::Str(s) => {
                self.u8(tag::STR);
                self.str(s);
            }
            FieldValue::Bytes(b) => {
                self.u8(tag::BYTES);
                self.bytes(b);
            }
            FieldValue::Timestamp(t) => {
                self.u8(tag::TIMESTAMP);
                self.uvar(*t);
            }
            FieldValue::Array(a) => {
                self.u8(tag::ARRAY);
                self.uvar(a.len() as u64);
                for x in a {
                    self.value(x);
                }
            }
            FieldValue::Table(t) => {
                self.u8(tag::TABLE);
                self.table(t);
            }
        }
    }
}

impl<'a> Reader<'a> {
    /// A table. Keys must be strictly ascending, as the writer emits them: a duplicate key
    /// (or an unsorted one) is rejected rather than silently keeping one of the values.
    pub fn table(&mut self) -> Result<Table, DecodeError> {
        self.table_at(1)
    }

    pub fn value(&mut self) -> Result<FieldValue, DecodeError> {
        self.value_at(1)
    }

    pub(super) fn table_at(&mut self, level: u32) -> Result<Table, DecodeError> {
        if level > MAX_DEPTH {
            return self.err("nesting too deep", self.pos);
        }
        // Each entry takes at least 2 bytes: an empty key and a tag.
        let n = self.count(2)?;
        let mut t = Table::with_capacity(n);
        let mut last: Option<&str> = None;
        for _ in 0..n {
            let at = self.pos;
            let k = self.str()?;
            if last.is_some_and(|l| l >= k) {
                return self.err("duplicate or unsorted table key", at);
            }
            last = Some(k);
            let v = self.value_at(level + 1)?;
            t.insert(k.to_owned(), v);
        }
        Ok(t)
    }

    fn value_at(&mut self, level: u32) -> Result<FieldValue, DecodeError> {
        let at = self.pos;
        Ok(match self.u8()? {
            tag::VOID => FieldValue::Void,
            tag::BOOL => FieldValue::Bool(self.bool()?),
            tag::INT => FieldValue::Int(self.ivar()?),
            tag::FLOAT => FieldValue::Float(self.f64()?),
            tag::STR => FieldValue::Str(self.str()?.to_owned()),
            tag::BYTES => FieldValue::Bytes(self.bytes()?.to_vec()),
            tag::TIMESTAMP => FieldValue::Timestamp(self.uvar()?),
            tag::ARRAY => {
                if level > MAX_DEPTH {
                    return self.err("nesting too deep", at);
                }
                let n = self.count(1)?;
                let mut a = Vec::with_capacity(n);
                for _ in 0..n {
                    a.push(self.value_at(level + 1)?);
                }
                FieldValue::Array(a)
            }
            tag::TABLE => FieldValue::Table(self.table_at(level)?),
            _ => return self.err("unknown value tag", at),
        })
    }
}
