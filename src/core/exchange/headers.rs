//! Headers exchange: a binding's arguments are matched against a message's headers;
//! the routing key is ignored. RabbitMQ's rules:
//!
//! - `x-match` is `all` (the default: every argument must match), `any` (at least one),
//!   `all-with-x` or `any-with-x`; any other value is refused when binding.
//! - Arguments whose names start with `x-` take part only in the `-with-x` modes.
//! - An argument with no value (void) matches when the header is present, whatever its value.
//! - `all` with no arguments to match matches every message; `any` with none matches none.
//! - Values are compared as values: the integer 1 equals the float 1.0 (JS numbers arrive
//!   as floats; RabbitMQ compares numbers numerically too).

use super::Routing;
use crate::core::error::{AmqpError, Result};
use crate::core::ids::Destination;
use crate::core::value::{FieldValue, Table};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    All,
    Any,
}

#[derive(Debug)]
struct Binding {
    dest: Destination,
    mode: Mode,
    /// The arguments that take part in matching (without `x-match`).
    args: Table,
    /// The binding's full arguments, to find it again on removal.
    raw: Table,
}

#[derive(Debug, Default)]
pub struct HeadersRouter {
    bindings: Vec<Binding>,
}

fn parse_mode(args: &Table) -> Result<(Mode, bool)> {
    match args.get("x-match") {
        None => Ok((Mode::All, false)),
        Some(FieldValue::Str(s)) if s == "all" => Ok((Mode::All, false)),
        Some(FieldValue::Str(s)) if s == "any" => Ok((Mode::Any, false)),
        Some(FieldValue::Str(s)) if s == "all-with-x" => Ok((Mode::All, true)),
        Some(FieldValue::Str(s)) if s == "any-with-x" => Ok((Mode::Any, true)),
        Some(other) => Err(AmqpError::precondition(format!(
            "invalid x-match field value {other:?}: use one of 'all', 'any', 'all-with-x', 'any-with-x'"
        ))),
    }
}

fn same_value(a: &FieldValue, b: &FieldValue) -> bool {
    match (a, b) {
        (FieldValue::Int(i), FieldValue::Float(f)) | (FieldValue::Float(f), FieldValue::Int(i)) => *i as f64 == *f,
        _ => a == b,
    }
}

fn matches(b: &Binding, headers: &Table) -> bool {
    let mut considered = b.args.iter().map(|(key, want)| match headers.get(key) {
        None => false,
        Some(_) if *want == FieldValue::Void => true,
        Some(got) => same_value(want, got),
    });
    match b.mode {
        Mode::All => considered.all(|m| m),
        Mode::Any => considered.any(|m| m),
    }
}

impl Routing for HeadersRouter {
    fn validate_binding(&self, _key: &str, args: &Table) -> Result<()> {
        parse_mode(args).map(|_| ())
    }

    fn add_binding(&mut self, dest: Destination, _key: &str, args: &Table) {
        let (mode, with_x) = parse_mode(args).expect("validated before adding");
        let considered = args
            .iter()
            .filter(|(k, _)| *k != "x-match" && (with_x || !k.starts_with("x-")))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.bindings.push(Binding { dest, mode, args: considered, raw: args.clone() });
    }

    fn remove_binding(&mut self, dest: Destination, _key: &str, args: &Table) {
        if let Some(i) = self.bindings.iter().position(|b| b.dest == dest && b.raw == *args) {
            self.bindings.swap_remove(i);
        }
    }

    fn route(&self, _routing_key: &str, headers: &Table, out: &mut Vec<Destination>) {
        out.extend(self.bindings.iter().filter(|b| matches(b, headers)).map(|b| b.dest));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::ids::QueueId;

    fn t(pairs: &[(&str, FieldValue)]) -> Table {
        pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
    }

    fn routes(binding: &[(&str, FieldValue)], headers: &[(&str, FieldValue)]) -> bool {
        let mut r = HeadersRouter::default();
        let args = t(binding);
        r.validate_binding("", &args).unwrap();
        r.add_binding(Destination::Queue(QueueId(1)), "", &args);
        let mut out = Vec::new();
        r.route("ignored", &t(headers), &mut out);
        !out.is_empty()
    }

    fn s(v: &str) -> FieldValue {
        FieldValue::Str(v.into())
    }

    #[test]
    fn all_needs_every_argument_and_is_the_default() {
        let b = [("format", s("pdf")), ("type", s("report"))];
        assert!(routes(&b, &[("format", s("pdf")), ("type", s("report")), ("extra", s("x"))]));
        assert!(!routes(&b, &[("format", s("pdf"))]));
        let mut explicit = b.to_vec();
        explicit.push(("x-match", s("all")));
        assert!(!routes(&explicit, &[("format", s("pdf")), ("type", s("log"))]));
    }

    #[test]
    fn any_needs_one_argument() {
        let b = [("x-match", s("any")), ("format", s("pdf")), ("type", s("report"))];
        assert!(routes(&b, &[("type", s("report"))]));
        assert!(!routes(&b, &[("type", s("log")), ("other", s("pdf"))]));
    }

    #[test]
    fn x_arguments_count_only_with_x() {
        let plain = [("x-match", s("all")), ("x-tenant", s("a")), ("k", s("v"))];
        assert!(routes(&plain, &[("k", s("v"))]), "x- arguments are ignored by all");
        let with_x = [("x-match", s("all-with-x")), ("x-tenant", s("a")), ("k", s("v"))];
        assert!(!routes(&with_x, &[("k", s("v"))]));
        assert!(routes(&with_x, &[("k", s("v")), ("x-tenant", s("a"))]));
        let any_x = [("x-match", s("any-with-x")), ("x-tenant", s("a"))];
        assert!(routes(&any_x, &[("x-tenant", s("a"))]));
        let any_plain = [("x-match", s("any")), ("x-tenant", s("a"))];
        assert!(!routes(&any_plain, &[("x-tenant", s("a"))]), "any with nothing to match matches nothing");
    }

    #[test]
    fn all_with_no_arguments_matches_everything() {
        assert!(routes(&[], &[]));
        assert!(routes(&[("x-match", s("all"))], &[("a", s("b"))]));
    }

    #[test]
    fn void_argument_matches_presence() {
        let b = [("flag", FieldValue::Void)];
        assert!(routes(&b, &[("flag", s("anything"))]));
        assert!(routes(&b, &[("flag", FieldValue::Int(0))]));
        assert!(!routes(&b, &[("other", s("x"))]));
    }

    #[test]
    fn values_compare_as_values_across_number_types_but_not_strings() {
        assert!(routes(&[("n", FieldValue::Int(1))], &[("n", FieldValue::Float(1.0))]));
        assert!(routes(&[("n", FieldValue::Float(2.0))], &[("n", FieldValue::Int(2))]));
        assert!(!routes(&[("n", FieldValue::Int(1))], &[("n", FieldValue::Float(1.5))]));
        assert!(!routes(&[("n", FieldValue::Int(1))], &[("n", s("1"))]));
        assert!(!routes(&[("b", FieldValue::Bool(true))], &[("b", FieldValue::Int(1))]));
    }

    #[test]
    fn invalid_x_match_is_refused_with_the_choices() {
        let r = HeadersRouter::default();
        for bad in [s("some"), FieldValue::Int(1)] {
            let e = r.validate_binding("", &t(&[("x-match", bad)])).unwrap_err();
            assert_eq!(e.code.code(), 406);
            assert!(e.message.contains("'all', 'any', 'all-with-x', 'any-with-x'"), "{}", e.message);
        }
    }

    #[test]
    fn removal_takes_the_binding_with_the_same_arguments() {
        let mut r = HeadersRouter::default();
        let (a, b) = (t(&[("k", s("1"))]), t(&[("k", s("2"))]));
        let d = Destination::Queue(QueueId(1));
        r.add_binding(d, "", &a);
        r.add_binding(d, "", &b);
        r.remove_binding(d, "", &a);
        let mut out = Vec::new();
        r.route("", &t(&[("k", s("1"))]), &mut out);
        assert!(out.is_empty());
        r.route("", &t(&[("k", s("2"))]), &mut out);
        assert_eq!(out, [d]);
    }
}
