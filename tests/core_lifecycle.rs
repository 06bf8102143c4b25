#![cfg(not(target_arch = "wasm32"))]
//! A message's life in a queue: TTL, queue expiry, length limits, dead-lettering,
//! delivery limits, delayed delivery, priorities and the store effects that follow it.
//!
//! Each test names the RabbitMQ document (rabbitmq-website `site/*.md`) whose
//! behaviour it pins.
mod common;
use common::*;
use tabbit::core::*;

// ---- helpers -----------------------------------------------------------------------------

fn msg(exchange: &str, key: &str, body: &str) -> Message {
    Message::new(exchange, key, body.as_bytes().to_vec())
}

fn expiring(key: &str, body: &str, expiration: &str) -> Message {
    let mut m = msg("", key, body);
    m.properties.expiration = Some(expiration.into());
    m
}

fn with_priority(key: &str, body: &str, priority: Option<u8>) -> Message {
    let mut m = msg("", key, body);
    m.properties.priority = priority;
    m
}

fn persistent(key: &str, body: &str) -> Message {
    let mut m = msg("", key, body);
    m.properties.persistent = true;
    m
}

fn delayed(key: &str, body: &str, delay: i64) -> Message {
    let mut m = msg("", key, body);
    m.properties.headers.insert("x-delay".into(), int(delay));
    m
}

/// The `x-death` entries of a message, most recent first.
fn x_death(m: &Message) -> Vec<Table> {
    match m.properties.headers.get("x-death") {
        Some(FieldValue::Array(a)) => a
            .iter()
            .map(|d| match d {
                FieldValue::Table(t) => t.clone(),
                other => panic!("x-death entry is not a table: {other:?}"),
            })
            .collect(),
        None => vec![],
        Some(other) => panic!("x-death is not an array: {other:?}"),
    }
}

fn header<'a>(m: &'a Message, key: &str) -> Option<&'a FieldValue> {
    m.properties.headers.get(key)
}

/// A fanout exchange `dlx` bound to a queue `dlq`: the usual dead-letter sink.
fn dlx_sink(h: &mut H, ch: ChannelRef) {
    h.exchange(ch, "dlx", "fanout").unwrap();
    h.queue(ch, "dlq").unwrap();
    h.bind(ch, "dlq", "dlx", "").unwrap();
}

fn message_store_ops(h: &mut H) -> Vec<StoreOp> {
    h.store_ops()
        .into_iter()
        .filter(|op| {
            matches!(op, StoreOp::PutMessage { .. } | StoreOp::RemoveMessage { .. } | StoreOp::ReturnMessage { .. })
        })
        .collect()
}

// ---- message TTL (site/ttl.md) -------------------------------------------------------------

/// ttl.md "Per-Message TTL in Publishers": "When both a per-queue and a per-message TTL
/// are specified, the lower value between the two will be chosen."
#[test]
fn the_lower_of_queue_ttl_and_message_expiration_wins() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue_args(ch, "long-queue-ttl", &[("x-message-ttl", int(1000))]).unwrap();
    h.queue_args(ch, "short-queue-ttl", &[("x-message-ttl", int(300))]).unwrap();
    h.publish_msg(ch, expiring("long-queue-ttl", "m", "300"), false).unwrap();
    h.publish_msg(ch, expiring("short-queue-ttl", "m", "1000"), false).unwrap();
    h.advance(299);
    assert_eq!(h.info("long-queue-ttl").ready, 1);
    assert_eq!(h.info("short-queue-ttl").ready, 1);
    h.advance(1);
    assert_eq!(h.info("long-queue-ttl").ready, 0, "message expiration 300 beats queue TTL 1000");
    assert_eq!(h.info("short-queue-ttl").ready, 0, "queue TTL 300 beats message expiration 1000");
    assert_eq!(h.info("long-queue-ttl").counters.discarded, 1);

    // The queue TTL alone, and the expiration alone.
    h.send(ch, "long-queue-ttl", "plain");
    h.queue(ch, "no-ttl").unwrap();
    h.publish_msg(ch, expiring("no-ttl", "e", "500"), false).unwrap();
    h.advance(500);
    assert_eq!(h.info("no-ttl").ready, 0);
    assert_eq!(h.info("long-queue-ttl").ready, 1);
    h.advance(500);
    assert_eq!(h.info("long-queue-ttl").ready, 0);
}

/// ttl.md "Caveats": "Only when expired messages reach the head of a queue will they
/// actually be discarded (or dead-lettered). Consumers will not have expired messages
/// delivered to them." Expired messages behind live ones still count as ready.
#[test]
fn messages_expire_only_at_the_head_and_are_never_delivered_expired() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue(ch, "q").unwrap();
    let t0 = h.now;
    h.publish_msg(ch, expiring("q", "long", "10000"), false).unwrap();
    h.publish_msg(ch, expiring("q", "short", "100"), false).unwrap();
    h.advance(200);
    assert_eq!(h.info("q").ready, 2, "the expired message waits behind a live head");
    assert_eq!(h.b.tick(h.now), Some(t0 + 10_000), "only the head's expiry is a deadline");

    // A consumer gets the live head; the expired one behind it is dropped, not delivered.
    h.consume(ch, "q");
    assert_eq!(h.bodies(), ["long"]);
    let i = h.info("q");
    assert_eq!((i.ready, i.unacked, i.counters.discarded), (0, 1, 1));
}

/// A dead message uncovered at the head, by a delivery or by drop-head overflow, goes at
/// once: RabbitMQ drops expired messages after every fetch and after dropping from the
/// head (ttl.md: "the server will try to remove messages at or shortly after their
/// TTL-based expiry").
#[test]
fn a_dead_message_uncovered_at_the_head_goes_at_once() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue(ch, "q").unwrap();
    h.send(ch, "q", "live");
    h.publish_msg(ch, expiring("q", "dead", "10"), false).unwrap();
    h.now += 20; // no tick
    h.run(|b, now| b.prefetch(ch, 1, false, now)).unwrap();
    h.consume(ch, "q");
    assert_eq!(h.bodies(), ["live"]);
    let i = h.info("q");
    assert_eq!((i.ready, i.counters.discarded), (0, 1), "uncovered by the delivery: expired without a tick");

    h.queue_args(ch, "capped", &[("x-max-length", int(2))]).unwrap();
    h.send(ch, "capped", "live");
    h.publish_msg(ch, expiring("capped", "dead", "10"), false).unwrap();
    h.now += 20;
    h.send(ch, "capped", "new");
    let i = h.info("capped");
    assert_eq!((i.ready, i.counters.discarded), (1, 2), "uncovered by drop-head: expired without a tick");
    assert_eq!(h.drain(ch, "capped"), ["new"]);
}

/// Same as above, through `get`: basic.get-ok never carries a dead message (ttl.md
/// "Per-Queue Message TTL": "The server guarantees that dead messages will not be
/// delivered using basic.deliver ... or included into a basic.get-ok response").
#[test]
fn get_skips_expired_messages() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue_args(ch, "q", &[("x-message-ttl", int(100))]).unwrap();
    h.send(ch, "q", "a");
    h.send(ch, "q", "b");
    h.now += 100; // no tick: `get` itself must not hand out dead messages
    assert!(h.get(ch, "q", false).unwrap().is_none());
    assert_eq!(h.info("q").counters.discarded, 2);
}

/// ttl.md: "Setting the TTL to 0 causes messages to be expired upon reaching a queue
/// unless they can be delivered to a consumer immediately. ... if a dead letter exchange
/// is set then messages will be dead-lettered."
#[test]
fn ttl_zero_delivers_to_a_waiting_consumer_or_expires_at_once() {
    let mut h = H::new();
    let ch = h.channel();
    dlx_sink(&mut h, ch);
    h.queue_args(ch, "now", &[("x-message-ttl", int(0)), ("x-dead-letter-exchange", s("dlx"))]).unwrap();

    // Nobody waiting: expired (dead-lettered) straight away, without a tick.
    h.send(ch, "now", "nobody");
    assert_eq!(h.info("now").ready, 0);
    assert_eq!(h.info("dlq").ready, 1);
    let g = h.get(ch, "dlq", true).unwrap().unwrap();
    assert_eq!(x_death(&g.delivery.message)[0]["reason"], s("expired"));

    // A consumer with room: delivered.
    let c = h.channel();
    h.consume(c, "now");
    h.send(ch, "now", "waiting");
    assert_eq!(h.bodies(), ["waiting"]);
    assert_eq!(h.info("dlq").ready, 0);

    // Per-message expiration "0" behaves the same, in a queue without TTL.
    h.queue(ch, "plain").unwrap();
    h.publish_msg(ch, expiring("plain", "gone", "0"), false).unwrap();
    assert_eq!(h.info("plain").ready, 0);
    assert_eq!(h.info("plain").counters.discarded, 1);
    h.consume(c, "plain");
    h.publish_msg(ch, expiring("plain", "taken", "0"), false).unwrap();
    assert_eq!(h.bodies(), ["taken"]);
}

/// ttl.md: a TTL bounds the time "until it is delivered to a consumer": an unacked
/// message does not expire while out, and "The original expiry time of a message is
/// preserved if it is requeued (... requeue parameter, or ... channel closure)."
#[test]
fn unacked_messages_do_not_expire_and_requeue_keeps_the_original_expiry() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue_args(ch, "q", &[("x-message-ttl", int(1000))]).unwrap();
    h.send(ch, "q", "m");
    h.now += 100;
    let tag = h.get(ch, "q", false).unwrap().unwrap().delivery.delivery_tag;
    h.advance(5_000);
    assert_eq!(h.info("q").unacked, 1, "out on a channel: no expiry");
    h.ack(ch, tag, false).unwrap();
    assert_eq!(h.info("q").counters.acked, 1);

    // Requeued at +500 with its expiry at +1000: it dies at +1000, not +1500.
    let t0 = h.now;
    h.send(ch, "q", "r");
    h.advance(100);
    let tag = h.get(ch, "q", false).unwrap().unwrap().delivery.delivery_tag;
    h.advance(400);
    h.nack(ch, tag, false, true).unwrap();
    assert_eq!(h.info("q").ready, 1);
    assert_eq!(h.b.next_deadline(), Some(t0 + 1000));
    h.advance(499);
    assert_eq!(h.info("q").ready, 1);
    h.advance(1);
    assert_eq!(h.info("q").ready, 0, "the requeued message kept its original expiry");

    // Requeued by a channel closing after its expiry passed: expired, never redelivered.
    h.send(ch, "q", "late");
    let c = h.channel();
    h.get(c, "q", false).unwrap().unwrap();
    h.advance(2_000);
    let d = h.channel();
    h.consume(d, "q");
    h.close(c);
    assert!(h.take_deliveries().is_empty(), "an expired requeued message is not delivered");
    h.advance(0);
    let i = h.info("q");
    assert_eq!((i.ready, i.unacked, i.counters.discarded), (0, 0, 2));
}

/// ttl.md "Per-Message TTL in Publishers": the expiration field is "the string
/// representation of the number" of milliseconds, non-negative; anything else is
/// refused with 406 PRECONDITION_FAILED, which closes the channel.
#[test]
fn invalid_expiration_is_406_and_closes_the_channel() {
    let mut h = H::new();
    let setup = h.channel();
    h.queue(setup, "q").unwrap();
    for bad in ["abc", "-1", "1.5", "10s", "", " 5"] {
        let ch = h.channel();
        assert_eq!(code(h.publish_msg(ch, expiring("q", "x", bad), false)), 406, "expiration {bad:?}");
        assert!(!h.b.has_channel(ch), "406 closes the channel");
    }
    assert_eq!(h.info("q").counters.enqueued, 0);
    h.publish_msg(setup, expiring("q", "ok", "60000"), false).unwrap();
    assert_eq!(h.info("q").ready, 1);
}

/// `tick` answers when it next needs to run: the earliest message expiry at a queue
/// head, delayed message release, or unused-queue expiry.
#[test]
fn tick_returns_the_next_deadline() {
    let mut h = H::new();
    let ch = h.channel();
    let t0 = h.now;
    assert_eq!(h.b.tick(t0), None, "nothing timed: no deadline");
    h.queue_args(ch, "ttl", &[("x-message-ttl", int(700))]).unwrap();
    h.queue(ch, "plain").unwrap();
    h.send(ch, "plain", "untimed");
    assert_eq!(h.b.tick(t0), None, "an empty TTL queue and an untimed message need no tick");
    h.send(ch, "ttl", "m");
    assert_eq!(h.b.tick(t0), Some(t0 + 700));
    h.publish_msg(ch, delayed("plain", "later", 300), false).unwrap();
    assert_eq!(h.b.tick(t0), Some(t0 + 300));
    h.queue_args(ch, "expiring-queue", &[("x-expires", int(200))]).unwrap();
    assert_eq!(h.b.tick(t0), Some(t0 + 200));
    assert_eq!(h.b.tick(t0 + 200), Some(t0 + 300), "queue gone, delayed release next");
    assert!(h.b.queue_info("expiring-queue").is_none());
    assert_eq!(h.b.tick(t0 + 300), Some(t0 + 700), "released, expiry next");
    assert_eq!(h.b.tick(t0 + 700), None);
    h.run(|_, _| ()); // collect the effects of the direct calls
    assert_eq!(h.info("ttl").ready, 0);
    assert_eq!(h.info("plain").ready, 2);
}

// ---- queue expiry (site/ttl.md "Queue TTL") --------------------------------------------------

/// ttl.md "Queue TTL": x-expires "controls for how long a queue can be unused before it
/// is automatically deleted"; dlx.md: "expiration of a queue will not dead letter the
/// messages in it".
#[test]
fn unused_queue_is_deleted_after_x_expires_without_dead_lettering() {
    let mut h = H::new();
    let ch = h.channel();
    dlx_sink(&mut h, ch);
    h.queue_args(ch, "tmp", &[("x-expires", int(1000)), ("x-dead-letter-exchange", s("dlx"))]).unwrap();
    h.send(ch, "tmp", "lost with the queue");
    h.advance(999);
    assert!(h.b.queue_info("tmp").is_some());
    h.advance(1);
    assert!(h.b.queue_info("tmp").is_none(), "deleted after 1000 ms unused");
    assert_eq!(h.info("dlq").ready, 0, "queue expiry does not dead-letter");
    h.send(ch, "tmp", "unroutable now");
    assert!(h.b.queue_info("tmp").is_none());
}

/// ttl.md "Queue TTL": "Unused means the queue has no consumers, the queue has not been
/// recently redeclared (redeclaring renews the lease), and basic.get has not been
/// invoked". Publishing is not in that list.
#[test]
fn redeclare_and_get_renew_the_lease_but_publishing_does_not() {
    let mut h = H::new();
    let ch = h.channel();
    let args = [("x-expires", int(1000))];
    h.queue_args(ch, "pub", &args).unwrap();
    h.queue_args(ch, "redecl", &args).unwrap();
    h.queue_args(ch, "got", &args).unwrap();
    h.queue_args(ch, "checked", &args).unwrap();
    h.advance(600);
    h.send(ch, "pub", "x");
    h.queue_args(ch, "redecl", &args).unwrap();
    h.get(ch, "got", true).unwrap();
    // A passive declare (checkQueue) renews it too: RabbitMQ's queue `stat` restarts the
    // expiry timer.
    h.queue_with(ch, QueueDeclare { name: "checked".into(), passive: true, ..Default::default() }).unwrap();
    h.advance(400);
    assert!(h.b.queue_info("pub").is_none(), "publishing is not use");
    let alive = |h: &H| ["redecl", "got", "checked"].map(|q| h.b.queue_info(q).is_some());
    assert_eq!(alive(&h), [true; 3]);
    h.advance(599);
    assert_eq!(alive(&h), [true; 3]);
    h.advance(1);
    assert_eq!(alive(&h), [false; 3]);
}

/// ttl.md "Queue TTL": queues expire "only when they are not used (e.g. do not have
/// consumers)"; the unused period starts when the last consumer goes (RabbitMQ restarts
/// the expiry timer on basic.cancel).
#[test]
fn a_consumer_keeps_the_queue_alive_and_the_lease_starts_when_it_goes() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue_args(ch, "q", &[("x-expires", int(1000))]).unwrap();
    let tag = h.consume(ch, "q");
    h.advance(10_000);
    assert!(h.b.queue_info("q").is_some(), "a consumer keeps it");
    assert_eq!(h.b.tick(h.now), None, "no expiry deadline while consumed");
    h.run(|b, now| b.cancel(ch, &tag, now)).unwrap();
    h.advance(0);
    assert!(h.b.queue_info("q").is_some(), "unused from the cancel on, not from the consume");
    h.advance(999);
    assert!(h.b.queue_info("q").is_some());
    h.advance(1);
    assert!(h.b.queue_info("q").is_none());

    // The same when the consumer goes with its channel.
    h.queue_args(ch, "q2", &[("x-expires", int(1000))]).unwrap();
    let c = h.channel();
    h.consume(c, "q2");
    h.advance(5_000);
    h.close(c);
    h.advance(999);
    assert!(h.b.queue_info("q2").is_some());
    h.advance(1);
    assert!(h.b.queue_info("q2").is_none());
}

// ---- length limits (site/maxlength.md) -------------------------------------------------------

/// maxlength.md "Default Max Queue Length Limit Behaviour": drop "messages from the
/// front of the queue (i.e. the oldest messages in the queue)".
#[test]
fn max_length_drop_head_drops_the_oldest() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue_args(ch, "q", &[("x-max-length", int(2))]).unwrap();
    for b in ["1", "2", "3", "4"] {
        h.send(ch, "q", b);
    }
    let i = h.info("q");
    assert_eq!((i.ready, i.counters.discarded), (2, 2));
    assert_eq!(h.drain(ch, "q"), ["3", "4"]);

    // x-overflow: drop-head spelled out is the same; max-length 0 keeps nothing ready.
    h.queue_args(ch, "zero", &[("x-max-length", int(0)), ("x-overflow", s("drop-head"))]).unwrap();
    h.send(ch, "zero", "x");
    assert_eq!(h.info("zero").ready, 0);
}

/// maxlength.md: dropped messages are "drop[ped] or dead-letter[ed]"; dlx.md lists
/// `maxlen` as the reason.
#[test]
fn max_length_drop_head_dead_letters_with_reason_maxlen() {
    let mut h = H::new();
    let ch = h.channel();
    dlx_sink(&mut h, ch);
    h.queue_args(ch, "q", &[("x-max-length", int(1)), ("x-dead-letter-exchange", s("dlx"))]).unwrap();
    h.send(ch, "q", "old");
    h.send(ch, "q", "new");
    let g = h.get(ch, "dlq", true).unwrap().unwrap();
    assert_eq!(body(&g.delivery.message), "old");
    let d = x_death(&g.delivery.message);
    assert_eq!((d[0]["reason"].clone(), d[0]["queue"].clone()), (s("maxlen"), s("q")));
    assert_eq!(h.info("q").counters.dead_lettered, 1);
    assert_eq!(h.drain(ch, "q"), ["new"]);
}

/// maxlength.md "Overview": the byte limit is "the total of all message body lengths,
/// ignoring message properties and any overheads".
#[test]
fn max_length_bytes_counts_body_bytes_only() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue_args(ch, "q", &[("x-max-length-bytes", int(10))]).unwrap();
    let mut m = msg("", "q", "aaaa");
    m.properties.headers.insert("big-header".into(), s(&"h".repeat(100)));
    h.publish_msg(ch, m, false).unwrap();
    h.send(ch, "q", "bbbb");
    assert_eq!(h.info("q").ready_bytes, 8, "headers do not count");
    h.send(ch, "q", "cc"); // exactly 10: fits
    assert_eq!(h.info("q").ready, 3);
    h.send(ch, "q", "d"); // 11: the oldest goes
    assert_eq!(h.info("q").ready_bytes, 7);
    assert_eq!(h.drain(ch, "q"), ["bbbb", "cc", "d"]);
    // A message larger than the limit on its own is dropped itself.
    h.send(ch, "q", "12345678901");
    assert_eq!(h.info("q").ready, 0);
    assert_eq!(h.info("q").counters.discarded, 2);
}

/// maxlength.md "Queue Overflow Behaviour": with reject-publish "the most recently
/// published messages will be discarded ... the publisher will be informed of the
/// reject via a basic.nack"; "If a message is routed to multiple queues and rejected by
/// at least one of them, the channel will inform the publisher via basic.nack. The
/// message will still be published to all other queues which can enqueue it."
/// Plain reject-publish does not dead-letter.
#[test]
fn reject_publish_nacks_and_keeps_the_old_messages() {
    let mut h = H::new();
    let ch = h.channel();
    dlx_sink(&mut h, ch);
    h.run(|b, _| b.confirm_select(ch)).unwrap();
    h.exchange(ch, "fan", "fanout").unwrap();
    h.queue_args(
        ch,
        "small",
        &[("x-max-length", int(1)), ("x-overflow", s("reject-publish")), ("x-dead-letter-exchange", s("dlx"))],
    )
    .unwrap();
    h.queue(ch, "big").unwrap();
    h.bind(ch, "small", "fan", "").unwrap();
    h.bind(ch, "big", "fan", "").unwrap();
    h.publish(ch, "fan", "", "first").unwrap();
    h.publish(ch, "fan", "", "second").unwrap();
    let acks: Vec<(u64, bool)> = h.confirms().iter().map(|c| (c.seq, c.ack)).collect();
    assert_eq!(acks, [(1, true), (2, false)]);
    assert_eq!(h.drain(ch, "small"), ["first"]);
    assert_eq!(h.drain(ch, "big"), ["first", "second"], "other queues still take it");
    assert_eq!(h.info("dlq").ready, 0, "reject-publish does not dead-letter");

    // Byte limit with reject-publish: refused when the new body would go over.
    h.queue_args(ch, "bytes", &[("x-max-length-bytes", int(5)), ("x-overflow", s("reject-publish"))]).unwrap();
    h.send(ch, "bytes", "abc");
    h.send(ch, "bytes", "defg");
    h.send(ch, "bytes", "hi");
    let acks: Vec<bool> = h.confirms().iter().map(|c| c.ack).collect();
    assert_eq!(acks, [true, false, true]);
    assert_eq!(h.drain(ch, "bytes"), ["abc", "hi"]);
}

/// maxlength.md: "The difference between reject-publish and reject-publish-dlx is that
/// reject-publish-dlx also dead-letters rejected messages" (dlx.md: reason `maxlen`).
#[test]
fn reject_publish_dlx_nacks_and_dead_letters_the_new_message() {
    let mut h = H::new();
    let ch = h.channel();
    dlx_sink(&mut h, ch);
    h.run(|b, _| b.confirm_select(ch)).unwrap();
    h.queue_args(
        ch,
        "small",
        &[("x-max-length", int(1)), ("x-overflow", s("reject-publish-dlx")), ("x-dead-letter-exchange", s("dlx"))],
    )
    .unwrap();
    h.send(ch, "small", "kept");
    h.send(ch, "small", "refused");
    let acks: Vec<bool> = h.confirms().iter().map(|c| c.ack).collect();
    assert_eq!(acks, [true, false]);
    assert_eq!(h.drain(ch, "small"), ["kept"]);
    let g = h.get(ch, "dlq", true).unwrap().unwrap();
    assert_eq!(body(&g.delivery.message), "refused");
    let d = x_death(&g.delivery.message);
    assert_eq!((d[0]["reason"].clone(), d[0]["queue"].clone()), (s("maxlen"), s("small")));
}

/// maxlength.md "Overview": "In all cases the number of messages in the ready state is
/// used; messages unacknowledged by consumers do not count towards the limit."
/// A requeue that takes a drop-head queue over its limit drops from the head
/// (RabbitMQ's requeue runs the same drop-head check as a publish).
#[test]
fn length_limits_count_ready_messages_only() {
    let mut h = H::new();
    let ch = h.channel();
    h.run(|b, _| b.confirm_select(ch)).unwrap();
    h.queue_args(ch, "rp", &[("x-max-length", int(1)), ("x-overflow", s("reject-publish"))]).unwrap();
    h.send(ch, "rp", "a");
    let tag = h.get(ch, "rp", false).unwrap().unwrap().delivery.delivery_tag;
    h.send(ch, "rp", "b");
    assert!(h.confirms().iter().all(|c| c.ack), "the unacked one does not count");
    let i = h.info("rp");
    assert_eq!((i.ready, i.unacked), (1, 1));
    h.ack(ch, tag, false).unwrap();

    h.queue_args(ch, "dh", &[("x-max-length", int(1))]).unwrap();
    h.send(ch, "dh", "first");
    let tag = h.get(ch, "dh", false).unwrap().unwrap().delivery.delivery_tag;
    h.send(ch, "dh", "second");
    h.send(ch, "dh", "third");
    assert_eq!(h.info("dh").counters.discarded, 1, "only ready messages were over the limit");
    h.nack(ch, tag, false, true).unwrap();
    let i = h.info("dh");
    assert_eq!((i.ready, i.unacked), (1, 0), "the requeue went over the limit: the head was dropped");
    assert_eq!(h.drain(ch, "dh"), ["third"]);
}

/// tabbit's `limits.maxQueueLength`: a queue declared without `x-max-length` takes at most
/// that many ready messages; the next publish is refused (reject-publish, a nack that
/// names the limit), nothing already queued is dropped, and the queue's arguments stay
/// as declared.
#[test]
fn default_max_length_refuses_publishes_and_names_the_limit() {
    let mut h = H::with_limits(Limits { max_queue_length: Some(2), ..Default::default() });
    let ch = h.channel();
    h.run(|b, _| b.confirm_select(ch)).unwrap();
    h.queue(ch, "q").unwrap();
    for body in ["a", "b", "c"] {
        h.send(ch, "q", body);
    }
    let c = h.confirms();
    assert_eq!(c.iter().map(|c| (c.seq, c.ack)).collect::<Vec<_>>(), [(1, true), (2, true), (3, false)]);
    assert_eq!(c[0].refused, None);
    let why = c[2].refused.as_deref().expect("a nack says why");
    assert!(
        why.contains("queue 'q'") && why.contains("limits.maxQueueLength") && why.contains("x-max-length"),
        "{why}"
    );
    let i = h.info("q");
    assert_eq!((i.ready, i.counters.discarded, i.counters.dead_lettered), (2, 0, 0), "nothing dropped");
    assert!(i.arguments.is_empty(), "the default is not written into the arguments: {:?}", i.arguments);
    assert_eq!(i.effective_max_length, Some(2));
    assert_eq!(h.drain(ch, "q"), ["a", "b"], "the oldest stay");
    h.send(ch, "q", "d");
    assert!(h.confirms()[0].ack, "room again once consumed");

    // Unacked messages do not count, as with x-max-length.
    h.send(ch, "q", "e");
    h.get(ch, "q", false).unwrap().unwrap();
    h.get(ch, "q", false).unwrap().unwrap();
    h.send(ch, "q", "f");
    h.send(ch, "q", "g");
    assert!(h.confirms().iter().all(|c| c.ack));
}

/// A queue's own `x-max-length` wins over the default, with its own `x-overflow`.
#[test]
fn a_queues_own_max_length_wins_over_the_default() {
    let mut h = H::with_limits(Limits { max_queue_length: Some(2), ..Default::default() });
    let ch = h.channel();
    h.run(|b, _| b.confirm_select(ch)).unwrap();
    // Larger than the default, drop-head (RabbitMQ's default overflow).
    h.queue_args(ch, "big", &[("x-max-length", int(4))]).unwrap();
    for body in ["1", "2", "3", "4", "5"] {
        h.send(ch, "big", body);
    }
    assert!(h.confirms().iter().all(|c| c.ack));
    let i = h.info("big");
    assert_eq!((i.ready, i.counters.discarded, i.effective_max_length), (4, 1, Some(4)));
    // Smaller, reject-publish: the nack names the queue's own argument, not the default.
    h.queue_args(ch, "small", &[("x-max-length", int(1)), ("x-overflow", s("reject-publish"))]).unwrap();
    h.send(ch, "small", "kept");
    h.send(ch, "small", "refused");
    let c = h.confirms();
    let why = c[1].refused.as_deref().unwrap();
    assert!(why.contains("x-max-length (x-overflow reject-publish)") && !why.contains("maxQueueLength"), "{why}");
    // x-max-length 0 is a queue's own choice too (it takes nothing).
    h.queue_args(ch, "zero", &[("x-max-length", int(0)), ("x-overflow", s("reject-publish"))]).unwrap();
    assert_eq!(h.info("zero").effective_max_length, Some(0));
}

/// The default refuses whatever the queue's `x-overflow` (drop-head would lose messages
/// nobody asked to bound); with `reject-publish-dlx` the refused message is dead-lettered.
#[test]
fn the_default_refuses_whatever_the_overflow_and_dead_letters_with_reject_publish_dlx() {
    let mut h = H::with_limits(Limits { max_queue_length: Some(1), ..Default::default() });
    let ch = h.channel();
    h.run(|b, _| b.confirm_select(ch)).unwrap();
    h.queue_args(ch, "dh", &[("x-overflow", s("drop-head")), ("x-max-length-bytes", int(1000))]).unwrap();
    h.send(ch, "dh", "first");
    h.send(ch, "dh", "second");
    assert_eq!(h.confirms().iter().map(|c| c.ack).collect::<Vec<_>>(), [true, false]);
    assert_eq!(h.drain(ch, "dh"), ["first"], "the head was not dropped");

    h.exchange(ch, "dlx", "fanout").unwrap();
    h.queue_args(ch, "dlq", &[("x-max-length", int(10))]).unwrap();
    h.bind(ch, "dlq", "dlx", "").unwrap();
    h.queue_args(ch, "rpd", &[("x-overflow", s("reject-publish-dlx")), ("x-dead-letter-exchange", s("dlx"))]).unwrap();
    h.send(ch, "rpd", "kept");
    h.send(ch, "rpd", "refused");
    assert_eq!(h.confirms().iter().map(|c| c.ack).collect::<Vec<_>>(), [true, false]);
    assert_eq!(h.drain(ch, "rpd"), ["kept"]);
    let g = h.get(ch, "dlq", true).unwrap().unwrap();
    assert_eq!(body(&g.delivery.message), "refused");
    assert_eq!(x_death(&g.delivery.message)[0]["reason"], s("maxlen"));
}

/// `max_queue_length: None` (`Infinity` in connect()) is no default; the stock default is
/// 1,000,000 and leaves durable queues pageable (it is not an `x-max-length`).
#[test]
fn no_default_max_length_and_the_stock_one() {
    let mut h = H::with_limits(Limits { max_queue_length: None, ..Default::default() });
    let ch = h.channel();
    h.run(|b, _| b.confirm_select(ch)).unwrap();
    h.queue(ch, "q").unwrap();
    for i in 0..100 {
        h.send(ch, "q", &i.to_string());
    }
    assert!(h.confirms().iter().all(|c| c.ack));
    assert_eq!((h.info("q").ready, h.info("q").effective_max_length), (100, None));

    let mut h = H::new();
    let ch = h.channel();
    h.queue_with(ch, QueueDeclare { name: "d".into(), durable: true, ..Default::default() }).unwrap();
    assert_eq!(h.info("d").effective_max_length, Some(1_000_000));
    assert!(h.b.can_page("d"), "the default does not stop a durable queue from paging");
    h.queue_with(
        ch,
        QueueDeclare {
            name: "bounded".into(),
            durable: true,
            arguments: table(&[("x-max-length", int(10))]),
            ..Default::default()
        },
    )
    .unwrap();
    assert!(!h.b.can_page("bounded"));
}

// ---- dead-lettering (site/dlx.md) ------------------------------------------------------------

/// dlx.md "Overview": a message is dead-lettered when "negatively acknowledged by a
/// consumer using basic.reject or basic.nack with requeue parameter set to false";
/// "Dead-Lettered Effects on Messages": the x-death entry fields and the
/// x-first-death-* headers.
#[test]
fn reject_and_nack_without_requeue_dead_letter_with_full_x_death() {
    let mut h = H::new();
    let ch = h.channel();
    dlx_sink(&mut h, ch);
    h.exchange(ch, "orders", "direct").unwrap();
    h.queue_args(ch, "work", &[("x-dead-letter-exchange", s("dlx"))]).unwrap();
    h.bind(ch, "work", "orders", "new").unwrap();
    h.now = 1_700_000_123_456;
    let mut m = msg("orders", "new", "one");
    m.properties.headers.insert("app".into(), s("kept"));
    h.publish_msg(ch, m, false).unwrap();
    h.publish(ch, "orders", "new", "two").unwrap();
    let t1 = h.get(ch, "work", false).unwrap().unwrap().delivery.delivery_tag;
    let t2 = h.get(ch, "work", false).unwrap().unwrap().delivery.delivery_tag;
    h.run(|b, now| b.reject(ch, t1, false, now)).unwrap();
    h.nack(ch, t2, false, false).unwrap();
    assert_eq!(h.info("work").counters.dead_lettered, 2);

    let one = h.get(ch, "dlq", true).unwrap().unwrap().delivery.message;
    assert_eq!(body(&one), "one");
    assert_eq!(one.exchange, "dlx", "republished through the dead-letter exchange");
    assert_eq!(one.routing_key, "new", "with its original routing key");
    assert_eq!(header(&one, "app"), Some(&s("kept")));
    let d = x_death(&one);
    assert_eq!(d.len(), 1);
    assert_eq!(d[0]["count"], int(1));
    assert_eq!(d[0]["reason"], s("rejected"));
    assert_eq!(d[0]["queue"], s("work"));
    assert_eq!(d[0]["time"], FieldValue::Timestamp(1_700_000_123), "an AMQP timestamp, in seconds");
    assert_eq!(d[0]["exchange"], s("orders"));
    assert_eq!(d[0]["routing-keys"], FieldValue::Array(vec![s("new")]));
    assert!(!d[0].contains_key("original-expiration"));
    assert_eq!(header(&one, "x-first-death-reason"), Some(&s("rejected")));
    assert_eq!(header(&one, "x-first-death-queue"), Some(&s("work")));
    assert_eq!(header(&one, "x-first-death-exchange"), Some(&s("orders")));
    let two = h.get(ch, "dlq", true).unwrap().unwrap().delivery.message;
    assert_eq!(body(&two), "two");
    assert_eq!(x_death(&two)[0]["reason"], s("rejected"));

    // nack multiple without requeue dead-letters every one.
    for b in ["x", "y"] {
        h.publish(ch, "orders", "new", b).unwrap();
    }
    h.get(ch, "work", false).unwrap().unwrap();
    let last = h.get(ch, "work", false).unwrap().unwrap().delivery.delivery_tag;
    h.nack(ch, last, true, false).unwrap();
    assert_eq!(h.drain(ch, "dlq"), ["x", "y"]);
}

/// dlx.md: an expired message is dead-lettered with reason `expired`; `original-expiration`
/// holds its expiration property, which "is removed from the message on dead-lettering in
/// order to prevent it from expiring again in any queues it is routed to".
#[test]
fn expiry_dead_letters_with_reason_expired_and_original_expiration() {
    let mut h = H::new();
    let ch = h.channel();
    dlx_sink(&mut h, ch);
    h.queue_args(ch, "q", &[("x-dead-letter-exchange", s("dlx"))]).unwrap();
    h.queue_args(ch, "queue-ttl", &[("x-message-ttl", int(50)), ("x-dead-letter-exchange", s("dlx"))]).unwrap();
    h.publish_msg(ch, expiring("q", "m", "100"), false).unwrap();
    h.send(ch, "queue-ttl", "n");
    h.advance(50);
    let m = h.get(ch, "dlq", true).unwrap().unwrap().delivery.message;
    assert_eq!(body(&m), "n", "the queue TTL of 50 applies");
    let d = x_death(&m);
    assert_eq!((d[0]["reason"].clone(), d[0]["queue"].clone()), (s("expired"), s("queue-ttl")));
    assert!(!d[0].contains_key("original-expiration"), "no expiration property, no original-expiration");
    assert!(h.get(ch, "dlq", true).unwrap().is_none());
    h.advance(50);
    let m = h.get(ch, "dlq", true).unwrap().unwrap().delivery.message;
    assert_eq!(body(&m), "m");
    let d = x_death(&m);
    assert_eq!(d[0]["reason"], s("expired"));
    assert_eq!(d[0]["original-expiration"], s("100"));
    assert_eq!(m.properties.expiration, None);
    assert_eq!(header(&m, "x-first-death-reason"), Some(&s("expired")));
}

/// dlx.md "Routing Dead-Lettered Messages": with x-dead-letter-routing-key the message
/// is routed "with the routing key specified for the queue they were on"; x-death keeps
/// the routing keys the message was published with.
#[test]
fn dead_letter_routing_key_replaces_the_key() {
    let mut h = H::new();
    let ch = h.channel();
    h.exchange(ch, "dlx", "direct").unwrap();
    h.queue(ch, "by-original").unwrap();
    h.queue(ch, "by-dl-key").unwrap();
    h.bind(ch, "by-original", "dlx", "task").unwrap();
    h.bind(ch, "by-dl-key", "dlx", "dead").unwrap();
    h.queue_args(ch, "keyed", &[("x-dead-letter-exchange", s("dlx")), ("x-dead-letter-routing-key", s("dead"))])
        .unwrap();
    h.queue_args(ch, "unkeyed", &[("x-dead-letter-exchange", s("dlx"))]).unwrap();
    h.exchange(ch, "in", "fanout").unwrap();
    h.bind(ch, "keyed", "in", "").unwrap();
    h.bind(ch, "unkeyed", "in", "").unwrap();
    h.publish(ch, "in", "task", "m").unwrap();
    for q in ["keyed", "unkeyed"] {
        let t = h.get(ch, q, false).unwrap().unwrap().delivery.delivery_tag;
        h.nack(ch, t, false, false).unwrap();
    }
    let a = h.get(ch, "by-dl-key", true).unwrap().unwrap().delivery.message;
    assert_eq!(a.routing_key, "dead");
    assert_eq!(x_death(&a)[0]["routing-keys"], FieldValue::Array(vec![s("task")]));
    assert_eq!(x_death(&a)[0]["queue"], s("keyed"));
    let b = h.get(ch, "by-original", true).unwrap().unwrap().delivery.message;
    assert_eq!(b.routing_key, "task");
    assert_eq!(x_death(&b)[0]["queue"], s("unkeyed"));
    assert!(h.get(ch, "by-dl-key", true).unwrap().is_none());
    assert!(h.get(ch, "by-original", true).unwrap().is_none());
}

/// dlx.md "Configuration Using Optional Queue Arguments": the DLX "should exist by the
/// time messages need to be dead-lettered; if it is missing then, the messages will be
/// silently dropped."
#[test]
fn a_missing_dead_letter_exchange_drops_the_message() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue_args(ch, "q", &[("x-dead-letter-exchange", s("not-yet")), ("x-message-ttl", int(10))]).unwrap();
    h.send(ch, "q", "rejected");
    let t = h.get(ch, "q", false).unwrap().unwrap().delivery.delivery_tag;
    h.nack(ch, t, false, false).unwrap();
    h.send(ch, "q", "expired");
    h.advance(10);
    let i = h.info("q");
    assert_eq!((i.ready, i.unacked), (0, 0));
    assert_eq!(h.b.queue_names().len(), 1, "nothing went anywhere");

    // Declared later, it starts receiving.
    h.exchange(ch, "not-yet", "fanout").unwrap();
    h.queue(ch, "dlq").unwrap();
    h.bind(ch, "dlq", "not-yet", "").unwrap();
    h.send(ch, "q", "now routed");
    h.advance(10);
    assert_eq!(h.drain(ch, "dlq"), ["now routed"]);
}

/// dlx.md "Routing Dead-Lettered Messages": "Messages in such cycles (i.e. messages that
/// reach the same queue twice) will be dropped if there was no rejections in the entire
/// cycle." The doc's example: a queue dead-lettering to the default exchange without a
/// dead-letter routing key.
#[test]
fn a_dead_letter_cycle_without_rejection_is_dropped_but_one_with_rejection_is_not() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue_args(ch, "self", &[("x-dead-letter-exchange", s("")), ("x-message-ttl", int(100))]).unwrap();
    h.send(ch, "self", "m");
    h.advance(100);
    let i = h.info("self");
    assert_eq!((i.ready, i.counters.enqueued), (0, 1), "expired into itself: dropped, not re-enqueued");
    assert_eq!(h.b.tick(h.now), None);

    // Two queues expiring into each other: the message goes round once, then is dropped.
    h.queue_args(
        ch,
        "a",
        &[("x-dead-letter-exchange", s("")), ("x-dead-letter-routing-key", s("b")), ("x-message-ttl", int(10))],
    )
    .unwrap();
    h.queue_args(
        ch,
        "b",
        &[("x-dead-letter-exchange", s("")), ("x-dead-letter-routing-key", s("a")), ("x-message-ttl", int(10))],
    )
    .unwrap();
    h.send(ch, "a", "loop");
    h.advance(10);
    assert_eq!(h.info("b").ready, 1);
    h.advance(10);
    assert_eq!((h.info("a").ready, h.info("b").ready), (0, 0), "back to 'a' with no rejection: dropped");
    assert_eq!(h.info("a").counters.enqueued, 1);

    // A rejection in the cycle lets it through.
    h.queue_args(ch, "r", &[("x-dead-letter-exchange", s(""))]).unwrap();
    h.send(ch, "r", "again");
    for round in 1..=3 {
        let g = h.get(ch, "r", false).unwrap().unwrap();
        if round > 1 {
            assert_eq!(x_death(&g.delivery.message)[0]["count"], int(round - 1));
        }
        h.nack(ch, g.delivery.delivery_tag, false, false).unwrap();
    }
    assert_eq!(h.info("r").ready, 1);
}

/// dlx.md "Dead-Lettered Effects on Messages": "In case x-death already contains an entry
/// with the same queue and dead lettering reason, its count field will be incremented and
/// it will be moved to the beginning of the array"; x-first-death-* "Once added, these
/// headers are never modified". The usual retry-with-delay pattern: the work queue
/// rejects to a wait queue whose TTL dead-letters back to work.
#[test]
fn retry_with_delay_keeps_cycling_and_counts_in_x_death() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue_args(ch, "work", &[("x-dead-letter-exchange", s("")), ("x-dead-letter-routing-key", s("wait"))]).unwrap();
    h.queue_args(
        ch,
        "wait",
        &[("x-dead-letter-exchange", s("")), ("x-dead-letter-routing-key", s("work")), ("x-message-ttl", int(1000))],
    )
    .unwrap();
    let c = h.channel();
    h.consume(c, "work");
    h.send(ch, "work", "job");
    for attempt in 1..=4i64 {
        let ds = h.take_deliveries();
        assert_eq!(ds.len(), 1, "attempt {attempt}");
        let m = &ds[0].message;
        assert_eq!(body(m), "job");
        let d = x_death(m);
        if attempt == 1 {
            assert!(d.is_empty());
        } else {
            let n = attempt - 1;
            assert_eq!(d.len(), 2);
            assert_eq!(
                (d[0]["queue"].clone(), d[0]["reason"].clone(), d[0]["count"].clone()),
                (s("wait"), s("expired"), int(n))
            );
            assert_eq!(
                (d[1]["queue"].clone(), d[1]["reason"].clone(), d[1]["count"].clone()),
                (s("work"), s("rejected"), int(n))
            );
            assert_eq!(d[1]["exchange"], s(""), "first published to the default exchange");
            assert_eq!(d[1]["routing-keys"], FieldValue::Array(vec![s("work")]));
            assert_eq!(header(m, "x-first-death-reason"), Some(&s("rejected")));
            assert_eq!(header(m, "x-first-death-queue"), Some(&s("work")));
        }
        h.run(|b, now| b.reject(c, ds[0].delivery_tag, false, now)).unwrap();
        assert_eq!(h.info("wait").ready, 1);
        h.advance(999);
        assert!(h.take_deliveries().is_empty(), "waits the full TTL");
        h.advance(1);
    }
    assert_eq!(h.take_deliveries().len(), 1, "still cycling");
}

// ---- delivery limit (site/quorum-queues.md "Poison Message Handling") ------------------------

/// quorum-queues.md "Poison Message Handling": "When a message has been returned more
/// times than the limit the message will be dropped or dead-lettered (if a DLX is
/// configured)"; the count of returns is exposed as x-delivery-count (here
/// `Delivery::delivery_count`). consumers.md / AMQP: a redelivery has `redelivered` set.
#[test]
fn delivery_limit_dead_letters_after_too_many_returns() {
    let mut h = H::new();
    let ch = h.channel();
    dlx_sink(&mut h, ch);
    h.queue_args(ch, "q", &[("x-delivery-limit", int(2)), ("x-dead-letter-exchange", s("dlx"))]).unwrap();
    h.send(ch, "q", "poison");
    let c = h.channel();
    h.consume(c, "q");
    let mut seen = Vec::new();
    for _ in 0..3 {
        let ds = h.take_deliveries();
        assert_eq!(ds.len(), 1);
        seen.push((ds[0].delivery_count, ds[0].redelivered));
        h.nack(c, ds[0].delivery_tag, false, true).unwrap();
    }
    assert_eq!(seen, [(0, false), (1, true), (2, true)]);
    assert!(h.take_deliveries().is_empty(), "third return is over the limit of 2");
    let i = h.info("q");
    assert_eq!((i.ready, i.unacked, i.counters.dead_lettered), (0, 0, 1));
    let m = h.get(ch, "dlq", true).unwrap().unwrap().delivery.message;
    assert_eq!(x_death(&m)[0]["reason"], s("delivery_limit"));
    assert_eq!(x_death(&m)[0]["queue"], s("q"));
}

/// A channel closing returns its deliveries, which counts towards the delivery limit
/// like a nack with requeue; without a DLX the message is dropped (quorum-queues.md).
#[test]
fn delivery_limit_counts_channel_closes_and_drops_without_dlx() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue_args(ch, "q", &[("x-delivery-limit", int(1))]).unwrap();
    h.send(ch, "q", "m");
    let a = h.channel();
    let g = h.get(a, "q", false).unwrap().unwrap();
    assert_eq!((g.delivery.delivery_count, g.delivery.redelivered), (0, false));
    h.close(a);
    let b = h.channel();
    let g = h.get(b, "q", false).unwrap().unwrap();
    assert_eq!((g.delivery.delivery_count, g.delivery.redelivered), (1, true));
    h.run(|br, now| br.recover(b, now)).unwrap();
    let i = h.info("q");
    assert_eq!((i.ready, i.unacked, i.counters.discarded), (0, 0, 1));

    // A limit of 0: the first return is already too many.
    h.queue_args(ch, "zero", &[("x-delivery-limit", int(0))]).unwrap();
    h.send(ch, "zero", "m");
    let t = h.get(ch, "zero", false).unwrap().unwrap().delivery.delivery_tag;
    h.nack(ch, t, false, true).unwrap();
    assert_eq!(h.info("zero").ready, 0);
    // Without a limit, returns go on for ever and are counted.
    h.queue(ch, "free").unwrap();
    h.send(ch, "free", "m");
    for n in 0..5 {
        let g = h.get(ch, "free", false).unwrap().unwrap();
        assert_eq!(g.delivery.delivery_count, n);
        assert_eq!(g.delivery.redelivered, n > 0);
        h.nack(ch, g.delivery.delivery_tag, false, true).unwrap();
    }
}

// ---- delayed delivery -------------------------------------------------------------------------

/// tabbit's delayed delivery (the x-delay header of RabbitMQ's delayed-message plugin):
/// held until `tick` reaches its time, counted as delayed, not ready.
#[test]
fn x_delay_holds_the_message_until_tick_reaches_its_time() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue(ch, "q").unwrap();
    let t0 = h.now;
    h.publish_msg(ch, delayed("q", "later", 500), false).unwrap();
    h.send(ch, "q", "now");
    let i = h.info("q");
    assert_eq!((i.ready, i.delayed), (1, 1));
    let ok = h.queue(ch, "q").unwrap();
    assert_eq!(ok.message_count, 1, "declare-ok counts ready messages only");
    let c = h.channel();
    h.consume(c, "q");
    assert_eq!(h.bodies(), ["now"]);
    assert!(h.get(ch, "q", true).unwrap().is_none(), "get does not see it either");
    assert_eq!(h.b.tick(h.now), Some(t0 + 500));
    h.advance(499);
    assert!(h.take_deliveries().is_empty());
    h.advance(1);
    assert_eq!(h.bodies(), ["later"]);
    let i = h.info("q");
    assert_eq!((i.ready, i.delayed, i.unacked), (0, 0, 2));

    // x-delay of 0 or less is no delay; a non-number is 406.
    h.publish_msg(ch, delayed("q", "zero", 0), false).unwrap();
    h.publish_msg(ch, delayed("q", "negative", -5), false).unwrap();
    assert_eq!(h.bodies(), ["zero", "negative"]);
    let mut bad = msg("", "q", "bad");
    bad.properties.headers.insert("x-delay".into(), s("soon"));
    assert_eq!(code(h.publish_msg(ch, bad, false)), 406);
}

/// Purge removes delayed messages too: they never come back.
#[test]
fn purge_removes_delayed_messages() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue(ch, "q").unwrap();
    h.publish_msg(ch, delayed("q", "later", 100), false).unwrap();
    h.send(ch, "q", "ready");
    assert_eq!(h.run(|b, now| b.purge_queue(ch, "q", now)).unwrap(), 2);
    let i = h.info("q");
    assert_eq!((i.ready, i.delayed, i.counters.purged), (0, 0, 2));
    h.advance(1000);
    assert_eq!(h.info("q").ready, 0);
}

// ---- priorities (site/priority.md) -------------------------------------------------------------

/// priority.md: higher priorities first; "Messages without a priority property are
/// treated as if their priority were 0. Messages with a priority which is higher than
/// the queue's maximum are treated as if they were published with the maximum
/// priority." Within a priority, FIFO.
#[test]
fn priority_queue_orders_by_priority_fifo_within_and_caps_at_max() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue_args(ch, "pq", &[("x-max-priority", int(5))]).unwrap();
    for (b, p) in
        [("a", Some(0)), ("b", Some(3)), ("c", Some(9)), ("d", Some(5)), ("e", None), ("f", Some(3)), ("g", Some(255))]
    {
        h.publish_msg(ch, with_priority("pq", b, p), false).unwrap();
    }
    assert_eq!(h.drain(ch, "pq"), ["c", "d", "g", "b", "f", "a", "e"]);

    // A requeued message goes back to its place within its priority.
    for (b, p) in [("low", 1), ("hi1", 4), ("hi2", 4)] {
        h.publish_msg(ch, with_priority("pq", b, Some(p)), false).unwrap();
    }
    let t = h.get(ch, "pq", false).unwrap().unwrap().delivery.delivery_tag;
    h.nack(ch, t, false, true).unwrap();
    assert_eq!(h.drain(ch, "pq"), ["hi1", "hi2", "low"]);

    // Consumers get the highest priority ready message first.
    for (b, p) in [("1", 1), ("2", 2), ("3", 3)] {
        h.publish_msg(ch, with_priority("pq", b, Some(p)), false).unwrap();
    }
    h.consume(ch, "pq");
    assert_eq!(h.bodies(), ["3", "2", "1"]);
}

/// priority.md: only queues declared with x-max-priority are priority queues; others
/// ignore the property.
#[test]
fn a_queue_without_max_priority_ignores_priority() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue(ch, "plain").unwrap();
    for (b, p) in [("a", Some(0)), ("b", Some(9)), ("c", None), ("d", Some(200))] {
        h.publish_msg(ch, with_priority("plain", b, p), false).unwrap();
    }
    assert_eq!(h.drain(ch, "plain"), ["a", "b", "c", "d"]);
}

// ---- store effects -----------------------------------------------------------------------------

/// A persistent message in a durable queue is written (PutMessage), returned
/// (ReturnMessage with the count of returns so far) and removed (RemoveMessage) as it
/// moves; its confirm waits for the write (`durable: true`).
#[test]
fn persistent_messages_in_durable_queues_are_stored_through_their_life() {
    let mut h = H::new();
    let ch = h.channel();
    h.run(|b, _| b.confirm_select(ch)).unwrap();
    h.queue_with(ch, QueueDeclare { name: "d".into(), durable: true, ..Default::default() }).unwrap();
    h.store_ops();
    h.publish_msg(ch, persistent("d", "p"), false).unwrap();
    // The store write comes before the confirm that depends on it.
    let kinds: Vec<&str> = h
        .effects
        .iter()
        .map(|e| match e {
            Effect::Store(StoreOp::PutMessage { .. }) => "put",
            Effect::Confirm(c) if c.durable && c.ack => "durable-ack",
            _ => "other",
        })
        .collect();
    assert_eq!(kinds, ["put", "durable-ack"]);
    h.confirms();
    let ops = message_store_ops(&mut h);
    let seq = match &ops[..] {
        [StoreOp::PutMessage { queue, seq, message, expires_at: None, ready_at: None }] => {
            assert_eq!((&**queue, body(message).as_str()), ("d", "p"));
            *seq
        }
        other => panic!("expected one PutMessage, got {other:?}"),
    };

    for n in 1..=2u32 {
        let g = h.get(ch, "d", false).unwrap().unwrap();
        assert_eq!(g.delivery.seq, seq);
        h.nack(ch, g.delivery.delivery_tag, false, true).unwrap();
        match &message_store_ops(&mut h)[..] {
            [StoreOp::ReturnMessage { queue, seq: s2, delivery_count }] => {
                assert_eq!((&**queue, *s2, *delivery_count), ("d", seq, n));
            }
            other => panic!("expected one ReturnMessage, got {other:?}"),
        }
    }
    let t = h.get(ch, "d", false).unwrap().unwrap().delivery.delivery_tag;
    assert!(message_store_ops(&mut h).is_empty(), "a delivery alone changes nothing stored");
    h.ack(ch, t, false).unwrap();
    match &message_store_ops(&mut h)[..] {
        [StoreOp::RemoveMessage { queue, seq: s2 }] => assert_eq!((&**queue, *s2), ("d", seq)),
        other => panic!("expected one RemoveMessage, got {other:?}"),
    }

    // Expiry, delay and every other way out are stored too.
    let t0 = h.now;
    let mut m = persistent("d", "timed");
    m.properties.expiration = Some("5000".into());
    m.properties.headers.insert("x-delay".into(), int(1000));
    h.publish_msg(ch, m, false).unwrap();
    match &message_store_ops(&mut h)[..] {
        [StoreOp::PutMessage { expires_at, ready_at, .. }] => {
            assert_eq!((*expires_at, *ready_at), (Some(t0 + 5000), Some(t0 + 1000)));
        }
        other => panic!("expected one PutMessage, got {other:?}"),
    }
    h.advance(5000);
    assert!(matches!(&message_store_ops(&mut h)[..], [StoreOp::RemoveMessage { .. }]), "expired: removed");
    h.publish_msg(ch, persistent("d", "auto-acked"), false).unwrap();
    h.get(ch, "d", true).unwrap().unwrap();
    assert!(matches!(&message_store_ops(&mut h)[..], [StoreOp::PutMessage { .. }, StoreOp::RemoveMessage { .. }]));
    h.publish_msg(ch, persistent("d", "purged"), false).unwrap();
    h.run(|b, now| b.purge_queue(ch, "d", now)).unwrap();
    assert!(matches!(&message_store_ops(&mut h)[..], [StoreOp::PutMessage { .. }, StoreOp::RemoveMessage { .. }]));
}

/// Transient messages, and any message in a non-durable queue, are never stored; their
/// confirms need no write (`durable: false`). A message routed to a durable and a
/// transient queue is stored once, for the durable one, and its confirm is durable.
#[test]
fn transient_messages_and_non_durable_queues_are_not_stored() {
    let mut h = H::new();
    let ch = h.channel();
    h.run(|b, _| b.confirm_select(ch)).unwrap();
    h.queue_with(ch, QueueDeclare { name: "d".into(), durable: true, ..Default::default() }).unwrap();
    h.queue(ch, "t").unwrap();
    h.send(ch, "d", "transient");
    h.publish_msg(ch, persistent("t", "persistent-in-transient-queue"), false).unwrap();
    let t = h.get(ch, "d", false).unwrap().unwrap().delivery.delivery_tag;
    h.nack(ch, t, false, true).unwrap();
    h.drain(ch, "d");
    h.drain(ch, "t");
    assert!(message_store_ops(&mut h).is_empty());
    let c: Vec<bool> = h.confirms().iter().map(|c| c.durable).collect();
    assert_eq!(c, [false, false]);

    h.exchange(ch, "both", "fanout").unwrap();
    h.bind(ch, "d", "both", "").unwrap();
    h.bind(ch, "t", "both", "").unwrap();
    let mut m = persistent("", "x");
    m.exchange = "both".into();
    h.publish_msg(ch, m, false).unwrap();
    let ops = message_store_ops(&mut h);
    assert!(matches!(&ops[..], [StoreOp::PutMessage { queue, .. }] if &**queue == "d"), "{ops:?}");
    assert_eq!(h.confirms().iter().map(|c| c.durable).collect::<Vec<_>>(), [true]);
}

/// A persistent message dead-lettered from a durable queue is removed there and put in
/// the durable queue it lands in.
#[test]
fn dead_lettering_between_durable_queues_moves_the_stored_message() {
    let mut h = H::new();
    let ch = h.channel();
    let durable = |name: &str, args: &[(&str, FieldValue)]| QueueDeclare {
        name: name.into(),
        durable: true,
        arguments: table(args),
        ..Default::default()
    };
    h.queue_with(ch, durable("dead", &[])).unwrap();
    h.queue_with(ch, durable("work", &[("x-dead-letter-exchange", s("")), ("x-dead-letter-routing-key", s("dead"))]))
        .unwrap();
    h.publish_msg(ch, persistent("work", "m"), false).unwrap();
    let t = h.get(ch, "work", false).unwrap().unwrap().delivery.delivery_tag;
    message_store_ops(&mut h);
    h.nack(ch, t, false, false).unwrap();
    let ops = message_store_ops(&mut h);
    match &ops[..] {
        [StoreOp::RemoveMessage { queue: a, .. }, StoreOp::PutMessage { queue: b, message, .. }] => {
            assert_eq!((&**a, &**b), ("work", "dead"));
            assert!(message.properties.persistent);
            assert_eq!(x_death(message)[0]["reason"], s("rejected"));
        }
        other => panic!("expected Remove then Put, got {other:?}"),
    }
}
