//! AMQP field values: the type of message headers and of declare arguments.

use std::collections::BTreeMap;

/// A field table: message headers, queue and exchange arguments, binding arguments.
/// Ordered so that equality, hashing of declarations and encodings are deterministic.
pub type Table = BTreeMap<String, FieldValue>;

/// One value of a field table, as AMQP 0-9-1 (RabbitMQ's dialect) carries it.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue {
    Void,
    Bool(bool),
    /// Every integer width (AMQP `b`, `s`, `I`, `l`) folds into one signed 64-bit value.
    Int(i64),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    /// Seconds since the Unix epoch, as AMQP timestamps (and RabbitMQ's `x-death.time`) are.
    Timestamp(u64),
    Array(Vec<FieldValue>),
    Table(Table),
}

impl FieldValue {
    /// The name of this value's type, for error messages.
    pub fn type_name(&self) -> &'static str {
        match self {
            FieldValue::Void => "void",
            FieldValue::Bool(_) => "boolean",
            FieldValue::Int(_) => "integer",
            FieldValue::Float(_) => "float",
            FieldValue::Str(_) => "string",
            FieldValue::Bytes(_) => "bytes",
            FieldValue::Timestamp(_) => "timestamp",
            FieldValue::Array(_) => "array",
            FieldValue::Table(_) => "table",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            FieldValue::Str(s) => Some(s),
            _ => None,
        }
    }

    /// An integer, also from a float with no fractional part (JS numbers arrive as floats).
    pub fn as_int(&self) -> Option<i64> {
        match *self {
            FieldValue::Int(i) => Some(i),
            FieldValue::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(f as i64),
            _ => None,
        }
    }

    /// The approximate number of bytes this value takes, for byte limits and stats.
    pub fn approx_size(&self) -> usize {
        match self {
            FieldValue::Void | FieldValue::Bool(_) => 1,
            FieldValue::Int(_) | FieldValue::Float(_) | FieldValue::Timestamp(_) => 8,
            FieldValue::Str(s) => s.len(),
            FieldValue::Bytes(b) => b.len(),
            FieldValue::Array(a) => a.iter().map(FieldValue::approx_size).sum(),
            FieldValue::Table(t) => table_size(t),
        }
    }

    /// Structural equality with floats compared bit for bit (`==` has NaN ≠ NaN).
    pub fn same(&self, other: &FieldValue) -> bool {
        match (self, other) {
            (FieldValue::Float(a), FieldValue::Float(b)) => a.to_bits() == b.to_bits(),
            (FieldValue::Array(a), FieldValue::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.same(y))
            }
            (FieldValue::Table(a), FieldValue::Table(b)) => same_table(a, b),
            _ => self == other,
        }
    }
}

/// Whether two tables are the same binding arguments: structural equality where floats
/// compare bit for bit, so that a NaN argument still names its own binding.
pub fn same_table(a: &Table, b: &Table) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|((ka, va), (kb, vb))| ka == kb && va.same(vb))
}

/// The approximate number of bytes a table takes.
pub fn table_size(t: &Table) -> usize {
    t.iter().map(|(k, v)| k.len() + v.approx_size()).sum()
}

impl From<&str> for FieldValue {
    fn from(s: &str) -> Self {
        FieldValue::Str(s.to_owned())
    }
}
impl From<String> for FieldValue {
    fn from(s: String) -> Self {
        FieldValue::Str(s)
    }
}
impl From<i64> for FieldValue {
    fn from(i: i64) -> Self {
        FieldValue::Int(i)
    }
}
impl From<bool> for FieldValue {
    fn from(b: bool) -> Self {
        FieldValue::Bool(b)
    }
}
