//! Headers exchange: a message goes to the bindings whose arguments match its headers;
//! the routing key is ignored. The rules follow RabbitMQ's rabbit_exchange_type_headers.erl:
//!
//! - `x-match` is `all` (the default), `any`, `all-with-x` or `any-with-x`.
//! - `x-match` itself never takes part in matching. Other arguments starting with `x-`
//!   take part only with `all-with-x` and `any-with-x`.
//! - An argument matches a header of the same name whose value is equal; a void argument
//!   matches a header of that name with any value (presence only).
//! - `all` matches when every argument that takes part matches, so a binding with none
//!   matches every message; `any` when at least one does, so with none it matches nothing.

use super::Routing;
use crate::core::error::{AmqpError, Result};
use crate::core::ids::Destination;
use crate::core::value::{FieldValue, Table};

#[derive(Debug, Default)]
pub struct HeadersRouter {
    bindings: Vec<HeadersBinding>,
}

#[derive(Debug)]
struct HeadersBinding {
    dest: Destination,
    match_any: bool,
    /// The arguments that take part in matching, in key order.
    patterns: Vec<(String, FieldValue)>,
}

impl HeadersBinding {
    fn new(dest: Destination, args: &Table) -> Self {
        let (match_any, with_x) = match args.get("x-match").and_then(FieldValue::as_str) {
            Some("any") => (true, false),
            Some("all-with-x") => (false, true),
            Some("any-with-x") => (true, true),
            // `validate_binding` refused any other value, so this is "all" or no x-match.
            _ => (false, false),
        };
        let patterns = args
            .iter()
            .filter(|(key, _)| *key != "x-match" && (with_x || !key.starts_with("x-")))
            .map(|(key, value)| (key.clone(), value.clone()))
            .collect();
        HeadersBinding { dest, match_any, patterns }
    }

    fn matches(&self, headers: &Table) -> bool {
        let mut matching = self.patterns.iter().map(|(key, pattern)| {
            headers.get(key).is_some_and(|value| matches!(pattern, FieldValue::Void) || values_equal(pattern, value))
        });
        if self.match_any {
            matching.any(|m| m)
        } else {
            matching.all(|m| m)
        }
    }

    /// Whether `other` is a binding that routes exactly like this one. The routing key and
    /// ignored `x-` arguments do not change routing, so any such binding may stand for
    /// another on removal. Floats compare by bits here so that a NaN argument can be
    /// removed.
    fn routes_like(&self, other: &HeadersBinding) -> bool {
        self.dest == other.dest
            && self.match_any == other.match_any
            && self.patterns.len() == other.patterns.len()
            && self.patterns.iter().zip(&other.patterns).all(|((k1, v1), (k2, v2))| k1 == k2 && v1.same(v2))
    }
}

/// Header value equality as RabbitMQ's: it compares the values and not their AMQP types
/// (Erlang `==`), so numbers compare by value across integer widths, floats and
/// timestamps (JS numbers arrive as floats: a float 5.0 header matches an integer 5
/// argument), and strings equal byte arrays of the same bytes. Arrays and tables compare
/// their elements with their types, as RabbitMQ's nested values keep their type tags.
fn values_equal(a: &FieldValue, b: &FieldValue) -> bool {
    use FieldValue::*;
    match (a, b) {
        (Int(_) | Float(_) | Timestamp(_), Int(_) | Float(_) | Timestamp(_)) => numbers_equal(a, b),
        (Str(_) | Bytes(_), Str(_) | Bytes(_)) => bytes(a) == bytes(b),
        _ => a == b,
    }
}

fn numbers_equal(a: &FieldValue, b: &FieldValue) -> bool {
    match (exact_integer(a), exact_integer(b)) {
        (Some(x), Some(y)) => x == y,
        _ => matches!((a, b), (FieldValue::Float(x), FieldValue::Float(y)) if x == y),
    }
}

/// A number's integer value, if it has one: floats with no fractional part included.
/// i128 holds every i64 and u64 (timestamps) exactly.
fn exact_integer(v: &FieldValue) -> Option<i128> {
    match *v {
        FieldValue::Int(i) => Some(i.into()),
        FieldValue::Timestamp(t) => Some(t.into()),
        // Bounded so the cast is exact; larger floats equal no i64 or u64 anyway.
        FieldValue::Float(f) if f.fract() == 0.0 && f.abs() < 2f64.powi(65) => Some(f as i128),
        _ => None,
    }
}

fn bytes(v: &FieldValue) -> &[u8] {
    match v {
        FieldValue::Str(s) => s.as_bytes(),
        FieldValue::Bytes(b) => b,
        _ => &[],
    }
}

impl Routing for HeadersRouter {
    fn validate_binding(&self, _key: &str, args: &Table) -> Result<()> {
        const EXPECTED: &str = "x-match must be one of 'all', 'any', 'all-with-x', 'any-with-x'";
        match args.get("x-match") {
            None => Ok(()),
            Some(FieldValue::Str(s)) if ["all", "any", "all-with-x", "any-with-x"].contains(&s.as_str()) => Ok(()),
            Some(FieldValue::Str(other)) => Err(AmqpError::precondition(format!("{EXPECTED}; got '{other}'"))),
            // RabbitMQ accepts only a string (longstr) here, not e.g. bytes spelling "all".
            Some(other) => Err(AmqpError::precondition(format!(
                "{EXPECTED} as a string; got a value of type {}",
                other.type_name()
            ))),
        }
    }

    fn add_binding(&mut self, dest: Destination, _key: &str, args: &Table) {
        self.bindings.push(HeadersBinding::new(dest, args));
    }

    fn remove_binding(&mut self, dest: Destination, _key: &str, args: &Table) {
        let removed = HeadersBinding::new(dest, args);
        if let Some(i) = self.bindings.iter().position(|b| b.routes_like(&removed)) {
            self.bindings.swap_remove(i);
        }
    }

    fn route(&self, _routing_key: &str, headers: &Table, out: &mut Vec<Destination>) {
        out.extend(self.bindings.iter().filter(|b| b.matches(headers)).map(|b| b.dest));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::error::ReplyCode;
    use crate::core::ids::QueueId;

    fn q(n: u32) -> Destination {
        Destination::Queue(QueueId(n))
    }

    fn table(entries: &[(&str, FieldValue)]) -> Table {
        entries.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    fn s(v: &str) -> FieldValue {
        FieldValue::Str(v.into())
    }

    /// A router with one binding to queue 1.
    fn bound(args: &[(&str, FieldValue)]) -> HeadersRouter {
        let args = table(args);
        let mut r = HeadersRouter::default();
        r.validate_binding("", &args).expect("valid binding");
        r.add_binding(q(1), "", &args);
        r
    }

    fn routes(r: &HeadersRouter, headers: &[(&str, FieldValue)]) -> bool {
        let mut out = Vec::new();
        r.route("ignored", &table(headers), &mut out);
        out.contains(&q(1))
    }

    #[test]
    fn all_is_the_default_and_needs_every_argument() {
        let r = bound(&[("format", s("pdf")), ("type", s("report"))]);
        assert!(routes(&r, &[("format", s("pdf")), ("type", s("report"))]));
        assert!(routes(&r, &[("format", s("pdf")), ("type", s("report")), ("extra", s("x"))]));
        assert!(!routes(&r, &[("format", s("pdf"))]), "a missing header fails all");
        assert!(!routes(&r, &[("format", s("pdf")), ("type", s("log"))]), "a different value fails all");
        assert!(!routes(&r, &[]));
    }

    #[test]
    fn explicit_all_behaves_as_the_default() {
        let r = bound(&[("x-match", s("all")), ("a", FieldValue::Int(1)), ("b", FieldValue::Int(2))]);
        assert!(routes(&r, &[("a", FieldValue::Int(1)), ("b", FieldValue::Int(2))]));
        assert!(!routes(&r, &[("a", FieldValue::Int(1))]));
    }

    #[test]
    fn any_needs_one_matching_argument() {
        let r = bound(&[("x-match", s("any")), ("format", s("pdf")), ("type", s("report"))]);
        assert!(routes(&r, &[("format", s("pdf"))]));
        assert!(routes(&r, &[("type", s("report")), ("format", s("zip"))]));
        assert!(!routes(&r, &[("format", s("zip")), ("type", s("log"))]));
        assert!(!routes(&r, &[]));
    }

    /// rabbit_exchange_type_headers:headers_match/5 starts with "all matched" true and
    /// "any matched" false, and returns them unchanged when no arguments take part.
    #[test]
    fn all_with_no_arguments_matches_every_message() {
        let r = bound(&[]);
        assert!(routes(&r, &[]));
        assert!(routes(&r, &[("anything", s("at all"))]));
        let r = bound(&[("x-match", s("all")), ("x-ignored", s("v"))]);
        assert!(routes(&r, &[]), "ignored x- arguments leave no arguments to fail");
    }

    #[test]
    fn any_with_no_arguments_matches_nothing() {
        let r = bound(&[("x-match", s("any"))]);
        assert!(!routes(&r, &[]));
        assert!(!routes(&r, &[("a", s("b"))]));
        let r = bound(&[("x-match", s("any")), ("x-ignored", s("v"))]);
        assert!(!routes(&r, &[("x-ignored", s("v"))]), "x- arguments do not count with plain any");
    }

    /// headers_match/5 skips binding arguments starting with "x-" unless x-match is
    /// all-with-x or any-with-x.
    #[test]
    fn x_arguments_are_ignored_by_all_and_any() {
        let r = bound(&[("x-match", s("all")), ("x-tenant", s("t1")), ("kind", s("k"))]);
        assert!(routes(&r, &[("kind", s("k"))]));
        assert!(routes(&r, &[("kind", s("k")), ("x-tenant", s("other"))]));
        let r = bound(&[("x-match", s("any")), ("x-tenant", s("t1")), ("kind", s("k"))]);
        assert!(!routes(&r, &[("x-tenant", s("t1"))]));
    }

    #[test]
    fn all_with_x_matches_x_arguments_too() {
        let r = bound(&[("x-match", s("all-with-x")), ("x-tenant", s("t1")), ("kind", s("k"))]);
        assert!(routes(&r, &[("kind", s("k")), ("x-tenant", s("t1"))]));
        assert!(!routes(&r, &[("kind", s("k"))]));
        assert!(!routes(&r, &[("kind", s("k")), ("x-tenant", s("t2"))]));
    }

    #[test]
    fn any_with_x_matches_on_an_x_argument_alone() {
        let r = bound(&[("x-match", s("any-with-x")), ("x-tenant", s("t1")), ("kind", s("k"))]);
        assert!(routes(&r, &[("x-tenant", s("t1"))]));
        assert!(routes(&r, &[("kind", s("k"))]));
        assert!(!routes(&r, &[("x-tenant", s("t2")), ("kind", s("j"))]));
    }

    /// headers_match/5 always skips the x-match argument itself, even with *-with-x: a
    /// message need not carry an x-match header.
    #[test]
    fn x_match_itself_never_takes_part() {
        let r = bound(&[("x-match", s("all-with-x")), ("kind", s("k"))]);
        assert!(routes(&r, &[("kind", s("k"))]));
        let r = bound(&[("x-match", s("any-with-x"))]);
        assert!(!routes(&r, &[("x-match", s("any-with-x"))]));
    }

    /// headers_match/5: a pattern field of type void matches on the presence of the
    /// header alone, whatever its value.
    #[test]
    fn void_argument_matches_presence_only() {
        let r = bound(&[("trace", FieldValue::Void)]);
        assert!(routes(&r, &[("trace", s("anything"))]));
        assert!(routes(&r, &[("trace", FieldValue::Int(0))]));
        assert!(routes(&r, &[("trace", FieldValue::Void)]));
        assert!(!routes(&r, &[("other", s("x"))]), "the header must be present");
        let r = bound(&[("x-match", s("any")), ("trace", FieldValue::Void), ("kind", s("k"))]);
        assert!(routes(&r, &[("trace", FieldValue::Bool(false))]));
    }

    #[test]
    fn void_header_matches_only_a_void_argument() {
        let r = bound(&[("flag", s(""))]);
        assert!(!routes(&r, &[("flag", FieldValue::Void)]));
    }

    /// headers_match/5 compares values with Erlang's `==`, which ignores the AMQP type
    /// tag and compares numbers by value: an integer 5 equals a float 5.0 (JS numbers
    /// arrive as floats) and a timestamp 5.
    #[test]
    fn numbers_compare_by_value_across_types() {
        let r = bound(&[("n", FieldValue::Int(5))]);
        assert!(routes(&r, &[("n", FieldValue::Int(5))]));
        assert!(routes(&r, &[("n", FieldValue::Float(5.0))]));
        assert!(routes(&r, &[("n", FieldValue::Timestamp(5))]));
        assert!(!routes(&r, &[("n", FieldValue::Float(5.5))]));
        assert!(!routes(&r, &[("n", FieldValue::Int(6))]));
        let r = bound(&[("n", FieldValue::Float(2.5))]);
        assert!(routes(&r, &[("n", FieldValue::Float(2.5))]));
        assert!(!routes(&r, &[("n", FieldValue::Int(2))]));
        let r = bound(&[("n", FieldValue::Int(i64::MAX))]);
        assert!(!routes(&r, &[("n", FieldValue::Float(i64::MAX as f64))]), "2^63 as a float is not i64::MAX");
        let r = bound(&[("n", FieldValue::Int(-1))]);
        assert!(!routes(&r, &[("n", FieldValue::Timestamp(u64::MAX))]));
    }

    #[test]
    fn values_of_different_kinds_do_not_match() {
        let r = bound(&[("n", FieldValue::Int(1))]);
        assert!(!routes(&r, &[("n", s("1"))]));
        assert!(!routes(&r, &[("n", FieldValue::Bool(true))]));
        let r = bound(&[("b", FieldValue::Bool(true))]);
        assert!(routes(&r, &[("b", FieldValue::Bool(true))]));
        assert!(!routes(&r, &[("b", s("true"))]));
        assert!(!routes(&r, &[("b", FieldValue::Bool(false))]));
    }

    /// Erlang holds both longstr and byte-array values as binaries, so `==` finds equal
    /// bytes equal whatever the tag.
    #[test]
    fn strings_equal_byte_arrays_of_the_same_bytes() {
        let r = bound(&[("k", s("abc"))]);
        assert!(routes(&r, &[("k", FieldValue::Bytes(b"abc".to_vec()))]));
        assert!(!routes(&r, &[("k", FieldValue::Bytes(b"abd".to_vec()))]));
    }

    /// Inside arrays and tables RabbitMQ's values keep their type tags, so `==` compares
    /// the types there.
    #[test]
    fn nested_values_compare_with_their_types() {
        let arr = |v: FieldValue| FieldValue::Array(vec![s("a"), v]);
        let r = bound(&[("list", arr(FieldValue::Int(1)))]);
        assert!(routes(&r, &[("list", arr(FieldValue::Int(1)))]));
        assert!(!routes(&r, &[("list", arr(FieldValue::Int(2)))]));
        assert!(!routes(&r, &[("list", arr(FieldValue::Float(1.0)))]));
        let nested = FieldValue::Table(table(&[("x", s("y"))]));
        let r = bound(&[("t", nested.clone())]);
        assert!(routes(&r, &[("t", nested)]));
        assert!(!routes(&r, &[("t", FieldValue::Table(table(&[("x", s("z"))])))]));
    }

    #[test]
    fn routing_key_is_ignored() {
        let r = bound(&[("a", s("1"))]);
        let headers = table(&[("a", s("1"))]);
        for key in ["", "anything", "a.b.#"] {
            let mut out = Vec::new();
            r.route(key, &headers, &mut out);
            assert_eq!(out, [q(1)], "routing key {key:?}");
        }
    }

    /// rabbit_exchange_type_headers:validate_binding/2 accepts the four longstr values and
    /// a missing x-match; RabbitMQ turns its binding_invalid error into PRECONDITION_FAILED.
    #[test]
    fn validation_accepts_the_four_match_kinds_and_no_x_match() {
        let r = HeadersRouter::default();
        for kind in ["all", "any", "all-with-x", "any-with-x"] {
            assert!(r.validate_binding("", &table(&[("x-match", s(kind))])).is_ok(), "{kind}");
        }
        assert!(r.validate_binding("", &table(&[("a", s("b"))])).is_ok());
    }

    #[test]
    fn validation_refuses_other_x_match_strings() {
        let r = HeadersRouter::default();
        for bad in ["foo", "ALL", "", "all-with-X", " any"] {
            let e = r.validate_binding("", &table(&[("x-match", s(bad))])).unwrap_err();
            assert_eq!(e.code, ReplyCode::PreconditionFailed);
            assert_eq!(
                e.message,
                format!("x-match must be one of 'all', 'any', 'all-with-x', 'any-with-x'; got '{bad}'")
            );
        }
    }

    /// validate_binding/2 refuses an x-match of any type but longstr, even bytes or void.
    #[test]
    fn validation_refuses_x_match_values_that_are_not_strings() {
        let r = HeadersRouter::default();
        for bad in [FieldValue::Int(1), FieldValue::Bytes(b"all".to_vec()), FieldValue::Void, FieldValue::Bool(true)] {
            let type_name = bad.type_name();
            let e = r.validate_binding("", &table(&[("x-match", bad)])).unwrap_err();
            assert_eq!(e.code, ReplyCode::PreconditionFailed);
            assert!(e.message.contains("'all', 'any', 'all-with-x', 'any-with-x'"), "{}", e.message);
            assert!(e.message.contains(type_name), "{}", e.message);
        }
    }

    #[test]
    fn several_bindings_route_independently() {
        let mut r = HeadersRouter::default();
        r.add_binding(q(1), "", &table(&[("a", s("1"))]));
        r.add_binding(q(2), "", &table(&[("x-match", s("any")), ("a", s("2")), ("b", s("2"))]));
        r.add_binding(q(3), "", &table(&[]));
        let mut out = Vec::new();
        r.route("", &table(&[("a", s("1")), ("b", s("2"))]), &mut out);
        out.sort();
        assert_eq!(out, [q(1), q(2), q(3)]);
    }

    #[test]
    fn removal_removes_one_binding_with_those_arguments() {
        let mut r = HeadersRouter::default();
        let a1 = table(&[("a", s("1"))]);
        let a2 = table(&[("a", s("2"))]);
        r.add_binding(q(1), "k1", &a1);
        r.add_binding(q(1), "k2", &a1);
        r.add_binding(q(1), "", &a2);
        r.add_binding(q(2), "", &a1);
        r.remove_binding(q(1), "k1", &a1);
        let route = |r: &HeadersRouter, headers: &Table| {
            let mut out = Vec::new();
            r.route("", headers, &mut out);
            out.sort();
            out
        };
        assert_eq!(route(&r, &a1), [q(1), q(2)], "the k2 binding still routes");
        assert_eq!(route(&r, &a2), [q(1)]);
        r.remove_binding(q(1), "k2", &a1);
        assert_eq!(route(&r, &a1), [q(2)]);
        assert_eq!(route(&r, &a2), [q(1)]);
        r.remove_binding(q(1), "", &table(&[("a", s("3"))]));
        assert_eq!(r.bindings.len(), 2, "removing a binding that does not exist changes nothing");
    }

    #[test]
    fn a_binding_with_a_nan_argument_can_be_removed() {
        let mut r = HeadersRouter::default();
        let args = table(&[("n", FieldValue::Float(f64::NAN))]);
        r.add_binding(q(1), "", &args);
        assert!(!routes(&r, &[("n", FieldValue::Float(f64::NAN))]), "NaN equals nothing");
        r.remove_binding(q(1), "", &args);
        assert!(r.bindings.is_empty());
    }
}
