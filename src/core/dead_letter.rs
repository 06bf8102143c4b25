//! Dead-lettering: the message a queue republishes to its dead-letter exchange, with
//! the `x-death` history RabbitMQ writes.
//!
//! `x-death` is an array of tables, most recent first, one per (queue, reason): a
//! repeat of the same pair increments its `count` and moves it to the front. Each has
//! `count`, `reason`, `queue`, `time` (AMQP timestamp, seconds), `exchange`,
//! `routing-keys`, and `original-expiration` when the message had one (the property
//! is removed so the copy does not expire again). `x-first-death-reason`, `-queue`
//! and `-exchange` are written once; `x-last-death-*` (RabbitMQ 3.13) every time.

use super::message::Message;
use super::queue::DropReason;
use super::value::{FieldValue, Table};

/// The copy of `original` that queue `queue` publishes to `dlx` for `reason`.
pub fn dead_lettered(
    original: &Message,
    queue: &str,
    reason: DropReason,
    now_ms: u64,
    dlx: &str,
    dl_routing_key: Option<&str>,
) -> Message {
    let mut msg = original.clone();
    let headers = &mut msg.properties.headers;
    let reason_str = reason.as_str();

    let mut deaths = match headers.remove("x-death") {
        Some(FieldValue::Array(a)) => a,
        _ => Vec::new(),
    };
    let same = |t: &Table| {
        t.get("queue").and_then(FieldValue::as_str) == Some(queue)
            && t.get("reason").and_then(FieldValue::as_str) == Some(reason_str)
    };
    let existing = deaths.iter().position(|d| matches!(d, FieldValue::Table(t) if same(t)));
    let entry = match existing {
        Some(i) => {
            let mut d = deaths.remove(i);
            if let FieldValue::Table(t) = &mut d {
                // A header from the publisher: any integer, `i64::MAX` included.
                let count = t.get("count").and_then(FieldValue::as_int).unwrap_or(0);
                t.insert("count".into(), FieldValue::Int(count.saturating_add(1)));
            }
            d
        }
        None => {
            let mut t = Table::new();
            t.insert("count".into(), FieldValue::Int(1));
            t.insert("reason".into(), reason_str.into());
            t.insert("queue".into(), queue.into());
            t.insert("time".into(), FieldValue::Timestamp(now_ms / 1000));
            t.insert("exchange".into(), original.exchange.as_str().into());
            t.insert("routing-keys".into(), FieldValue::Array(vec![original.routing_key.as_str().into()]));
            if let Some(exp) = &original.properties.expiration {
                t.insert("original-expiration".into(), exp.as_str().into());
            }
            FieldValue::Table(t)
        }
    };
    deaths.insert(0, entry);
    headers.insert("x-death".into(), FieldValue::Array(deaths));

    for (key, value) in [("reason", reason_str), ("queue", queue), ("exchange", &original.exchange)] {
        headers.get_or_insert_with(format!("x-first-death-{key}"), || value.into());
        headers.insert(format!("x-last-death-{key}"), value.into());
    }

    msg.properties.expiration = None;
    msg.exchange = dlx.to_owned();
    if let Some(rk) = dl_routing_key {
        msg.routing_key = rk.to_owned();
    }
    msg
}

/// Whether dead-lettering `msg` into queue `target` would close a loop with no
/// rejection in it: RabbitMQ drops the message then, so that an expiring message
/// cannot cycle forever. A loop that a consumer's reject closes is allowed.
pub fn is_cycle(msg: &Message, target: &str) -> bool {
    let Some(FieldValue::Array(deaths)) = msg.properties.headers.get("x-death") else {
        return false;
    };
    for d in deaths {
        let FieldValue::Table(t) = d else { continue };
        if t.get("reason").and_then(FieldValue::as_str) == Some("rejected") {
            return false;
        }
        if t.get("queue").and_then(FieldValue::as_str) == Some(target) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deaths(m: &Message) -> Vec<Table> {
        match m.properties.headers.get("x-death") {
            Some(FieldValue::Array(a)) => a
                .iter()
                .map(|d| match d {
                    FieldValue::Table(t) => t.clone(),
                    _ => panic!("x-death entry is not a table"),
                })
                .collect(),
            _ => vec![],
        }
    }

    #[test]
    fn first_dead_letter_writes_x_death_and_first_death_headers() {
        let mut m = Message::new("logs", "a.b", b"x".to_vec());
        m.properties.expiration = Some("500".into());
        let d = dead_lettered(&m, "work", DropReason::Expired, 12_345_678, "dlx", None);
        assert_eq!(d.exchange, "dlx");
        assert_eq!(d.routing_key, "a.b", "original routing key kept without x-dead-letter-routing-key");
        assert_eq!(d.properties.expiration, None, "expiration removed so the copy does not expire again");
        let x = deaths(&d);
        assert_eq!(x.len(), 1);
        assert_eq!(x[0]["count"], FieldValue::Int(1));
        assert_eq!(x[0]["reason"], "expired".into());
        assert_eq!(x[0]["queue"], "work".into());
        assert_eq!(x[0]["exchange"], "logs".into());
        assert_eq!(x[0]["time"], FieldValue::Timestamp(12_345));
        assert_eq!(x[0]["routing-keys"], FieldValue::Array(vec!["a.b".into()]));
        assert_eq!(x[0]["original-expiration"], "500".into());
        let h = &d.properties.headers;
        assert_eq!(h["x-first-death-reason"], "expired".into());
        assert_eq!(h["x-first-death-queue"], "work".into());
        assert_eq!(h["x-first-death-exchange"], "logs".into());
    }

    #[test]
    fn repeat_of_same_queue_and_reason_counts_and_moves_to_front() {
        let m = Message::new("ex", "k", b"x".to_vec());
        let d1 = dead_lettered(&m, "q1", DropReason::Rejected, 1000, "dlx", Some("to-q2"));
        assert_eq!(d1.routing_key, "to-q2");
        let d2 = dead_lettered(&d1, "q2", DropReason::Expired, 2000, "dlx2", Some("to-q1"));
        let d3 = dead_lettered(&d2, "q1", DropReason::Rejected, 3000, "dlx", None);
        let x = deaths(&d3);
        assert_eq!(x.len(), 2);
        assert_eq!(x[0]["queue"], "q1".into());
        assert_eq!(x[0]["count"], FieldValue::Int(2));
        assert_eq!(x[1]["queue"], "q2".into());
        let h = &d3.properties.headers;
        assert_eq!(h["x-first-death-queue"], "q1".into(), "first-death headers never change");
        assert_eq!(h["x-first-death-exchange"], "ex".into());
        assert_eq!(h["x-last-death-exchange"], "dlx2".into());
    }

    #[test]
    fn cycles_without_rejection_are_detected() {
        let m = Message::new("", "q", b"x".to_vec());
        let expired = dead_lettered(&m, "q", DropReason::Expired, 0, "", Some("q"));
        assert!(is_cycle(&expired, "q"));
        assert!(!is_cycle(&expired, "other"));
        let rejected = dead_lettered(&m, "q", DropReason::Rejected, 0, "", Some("q"));
        assert!(!is_cycle(&rejected, "q"));
    }
}
