//! Queue arguments (`x-…`): parsed and checked once at declare time, compared on
//! redeclare as RabbitMQ does (a differing or missing argument is inequivalent).

use super::error::{AmqpError, Result};
use super::value::{FieldValue, Table};

/// What a full queue does with one more message (`x-overflow`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overflow {
    /// Drop (or dead-letter) the oldest ready messages to make room. RabbitMQ's default.
    #[default]
    DropHead,
    /// Refuse the new message; a confirm channel gets a nack.
    RejectPublish,
    /// Refuse the new message and dead-letter it.
    RejectPublishDlx,
}

/// The queue arguments tabbit acts on. Unknown `x-` arguments are kept but ignored, as
/// RabbitMQ does.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueueArgs {
    pub message_ttl: Option<u64>,
    pub expires: Option<u64>,
    pub max_length: Option<u64>,
    pub max_length_bytes: Option<u64>,
    pub overflow: Overflow,
    pub dead_letter_exchange: Option<String>,
    pub dead_letter_routing_key: Option<String>,
    pub max_priority: Option<u8>,
    pub single_active_consumer: bool,
    pub delivery_limit: Option<u32>,
}

/// The argument keys whose values must match on redeclare.
const EQUIVALENCE_KEYS: &[&str] = &[
    "x-message-ttl",
    "x-expires",
    "x-max-length",
    "x-max-length-bytes",
    "x-overflow",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-priority",
    "x-single-active-consumer",
    "x-delivery-limit",
    "x-queue-type",
];

fn invalid(queue: &str, key: &str, expected: &str, got: &FieldValue) -> AmqpError {
    AmqpError::precondition(format!(
        "invalid arg '{key}' for queue '{queue}': expected {expected}, got {}{}",
        got.type_name(),
        show(got)
    ))
}

/// The value after its type name in an error: scalars only, and floats without `f64`'s
/// `Display` (float formatting would ship ~10 KB of wasm for this one message).
fn show(v: &FieldValue) -> String {
    match v {
        FieldValue::Str(s) => format!(" '{s}'"),
        FieldValue::Int(i) => format!(" {i}"),
        FieldValue::Timestamp(t) => format!(" {t}"),
        FieldValue::Float(f) => format!(" {}", float_text(*f)),
        FieldValue::Bool(b) => format!(" {b}"),
        _ => String::new(),
    }
}

/// `f` in decimal with at most 6 decimals (trailing zeros dropped), as integers format it.
fn float_text(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    let sign = if f < 0.0 { "-" } else { "" };
    let a = f.abs();
    if a >= 1e15 {
        return format!("{sign}{}", if a.is_infinite() { "Infinity" } else { "1e15 or more" });
    }
    let micros = (a * 1e6).round() as u64;
    let (int, frac) = (micros / 1_000_000, micros % 1_000_000);
    if frac == 0 {
        return format!("{sign}{int}");
    }
    let digits = format!("{frac:06}");
    format!("{sign}{int}.{}", digits.trim_end_matches('0'))
}

fn uint(queue: &str, key: &str, v: &FieldValue, min: i64, max: i64, unit: &str) -> Result<u64> {
    match v.as_int() {
        Some(i) if i >= min && i <= max => Ok(i as u64),
        _ => Err(invalid(queue, key, &format!("an integer from {min} to {max}{unit}"), v)),
    }
}

impl QueueArgs {
    /// Parses the arguments of queue `queue`; an argument of the wrong type or range is
    /// a 406 that names the argument and what it takes.
    pub fn parse(queue: &str, args: &Table) -> Result<QueueArgs> {
        let mut out = QueueArgs::default();
        for (key, v) in args {
            match key.as_str() {
                "x-message-ttl" => out.message_ttl = Some(uint(queue, key, v, 0, u32::MAX as i64, " (milliseconds)")?),
                "x-expires" => out.expires = Some(uint(queue, key, v, 1, u32::MAX as i64, " (milliseconds)")?),
                "x-max-length" => out.max_length = Some(uint(queue, key, v, 0, i64::MAX, "")?),
                "x-max-length-bytes" => out.max_length_bytes = Some(uint(queue, key, v, 0, i64::MAX, "")?),
                "x-delivery-limit" => out.delivery_limit = Some(uint(queue, key, v, 0, u32::MAX as i64, "")? as u32),
                "x-max-priority" => out.max_priority = Some(uint(queue, key, v, 1, 255, "")? as u8),
                "x-overflow" => {
                    out.overflow = match v.as_str() {
                        Some("drop-head") => Overflow::DropHead,
                        Some("reject-publish") => Overflow::RejectPublish,
                        Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
                        _ => {
                            return Err(invalid(
                                queue,
                                key,
                                "one of 'drop-head', 'reject-publish', 'reject-publish-dlx'",
                                v,
                            ))
                        }
                    }
                }
                "x-dead-letter-exchange" => match v.as_str() {
                    Some(s) => out.dead_letter_exchange = Some(s.to_owned()),
                    None => return Err(invalid(queue, key, "an exchange name (string)", v)),
                },
                "x-dead-letter-routing-key" => match v.as_str() {
                    Some(s) => out.dead_letter_routing_key = Some(s.to_owned()),
                    None => return Err(invalid(queue, key, "a routing key (string)", v)),
                },
                "x-single-active-consumer" => match v {
                    FieldValue::Bool(b) => out.single_active_consumer = *b,
                    _ => return Err(invalid(queue, key, "a boolean", v)),
                },
                "x-queue-type" => match v.as_str() {
                    Some("classic") => {}
                    _ => return Err(invalid(queue, key, "'classic' (the only queue type tabbit has)", v)),
                },
                _ => {}
            }
        }
        if out.dead_letter_routing_key.is_some() && out.dead_letter_exchange.is_none() {
            return Err(AmqpError::precondition(format!(
                "invalid arg 'x-dead-letter-routing-key' for queue '{queue}': it needs 'x-dead-letter-exchange' too"
            )));
        }
        Ok(out)
    }

    /// Checks a redeclaration's raw arguments against the queue's, as RabbitMQ does:
    /// every argument tabbit acts on must be the same, present or absent alike.
    pub fn check_equivalent(queue: &str, current: &Table, requested: &Table) -> Result<()> {
        for key in EQUIVALENCE_KEYS {
            let (a, b) = (current.get(key), requested.get(key));
            let same = match (a, b) {
                (Some(x), Some(y)) => x == y || (x.as_int().is_some() && x.as_int() == y.as_int()),
                (None, None) => true,
                _ => false,
            };
            if !same {
                let fmt = |v: Option<&FieldValue>| v.map_or("none".to_owned(), show);
                return Err(AmqpError::precondition(format!(
                    "inequivalent arg '{key}' for queue '{queue}': received {} but current is {}; \
                     declare it with the same arguments, or delete it first",
                    fmt(b),
                    fmt(a)
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::float_text;

    #[test]
    fn floats_show_in_decimal_without_float_formatting() {
        let cases =
            [(1.5, "1.5"), (-0.25, "-0.25"), (3.0, "3"), (0.1, "0.1"), (2.0000004, "2"), (1e20, "1e15 or more")];
        for (f, want) in cases {
            assert_eq!(float_text(f), want, "{f}");
        }
        assert_eq!(float_text(f64::NAN), "NaN");
        assert_eq!(float_text(f64::NEG_INFINITY), "-Infinity");
    }
}
