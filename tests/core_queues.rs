#![cfg(not(target_arch = "wasm32"))]
//! Queue declaration, exclusivity, auto-delete, get, purge and delete.
mod common;
use common::*;
use tabbit::core::*;

#[test]
fn server_named_queues_get_unique_amq_gen_names() {
    let mut h = H::new();
    let ch = h.channel();
    let a = h.queue(ch, "").unwrap();
    let b = h.queue(ch, "").unwrap();
    assert!(a.queue.starts_with("amq.gen-"), "{}", a.queue);
    assert_ne!(a.queue, b.queue);
    h.send(ch, &a.queue, "x");
    assert_eq!(h.drain(ch, &a.queue), ["x"]);
}

#[test]
fn declare_ok_counts_ready_messages_and_consumers() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue(ch, "q").unwrap();
    for i in 0..3 {
        h.send(ch, "q", &i.to_string());
    }
    let ok = h.queue(ch, "q").unwrap();
    assert_eq!((ok.message_count, ok.consumer_count), (3, 0));
    h.run(|b, now| b.prefetch(ch, 1, false, now)).unwrap();
    h.consume(ch, "q");
    let ok = h.queue(ch, "q").unwrap();
    assert_eq!((ok.message_count, ok.consumer_count), (2, 1), "the unacked one is not counted");
}

#[test]
fn passive_declare_of_missing_queue_is_404_and_closes_the_channel() {
    let mut h = H::new();
    let ch = h.channel();
    let e = h.queue_with(ch, QueueDeclare { name: "ghost".into(), passive: true, ..Default::default() }).unwrap_err();
    assert_eq!(e.code.code(), 404);
    assert!(e.message.contains("ghost"), "{}", e.message);
    assert!(!h.b.has_channel(ch));
    assert!(h.effects.iter().any(|e| matches!(e, Effect::ChannelClosed { channel, .. } if *channel == ch)));
    assert_eq!(code(h.queue(ch, "q")), 504, "a closed channel refuses work");
}

#[test]
fn redeclare_with_different_arguments_is_406() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue_args(ch, "q", &[("x-message-ttl", int(1000))]).unwrap();
    h.queue_args(ch, "q", &[("x-message-ttl", int(1000))]).unwrap();
    // JS numbers arrive as floats: 1000.0 is the same argument.
    h.queue_args(ch, "q", &[("x-message-ttl", FieldValue::Float(1000.0))]).unwrap();
    let e = h.queue_args(ch, "q", &[("x-message-ttl", int(2000))]).unwrap_err();
    assert_eq!(e.code.code(), 406);
    assert!(e.message.contains("inequivalent arg 'x-message-ttl'"), "{}", e.message);
    let ch = h.channel();
    assert_eq!(code(h.queue(ch, "q")), 406, "missing argument is inequivalent too");
    let ch = h.channel();
    assert_eq!(code(h.queue_with(ch, QueueDeclare { name: "q".into(), durable: true, ..Default::default() })), 406);
    let ch = h.channel();
    h.queue_args(ch, "q", &[("x-message-ttl", int(1000)), ("x-unknown", s("ignored"))]).unwrap();
}

#[test]
fn bad_queue_arguments_are_406_naming_the_argument() {
    let mut h = H::new();
    for (key, value, expect) in [
        ("x-message-ttl", s("soon"), "x-message-ttl"),
        ("x-message-ttl", int(-1), "x-message-ttl"),
        ("x-max-length", s("10"), "x-max-length"),
        ("x-max-priority", int(256), "x-max-priority"),
        ("x-overflow", s("explode"), "'drop-head', 'reject-publish', 'reject-publish-dlx'"),
        ("x-single-active-consumer", s("yes"), "boolean"),
        ("x-expires", int(0), "x-expires"),
        ("x-queue-type", s("quorum"), "classic"),
        ("x-dead-letter-routing-key", s("k"), "x-dead-letter-exchange"),
    ] {
        let ch = h.channel();
        let e = h.queue_args(ch, "q", &[(key, value)]).unwrap_err();
        assert_eq!(e.code.code(), 406, "{key}");
        assert!(e.message.contains(expect), "{key}: {}", e.message);
    }
    let ch = h.channel();
    assert_eq!(code(h.queue(ch, &"q".repeat(256))), 406);
    let ch = h.channel();
    assert_eq!(code(h.queue(ch, "amq.custom")), 403);
}

#[test]
fn exclusive_queue_is_locked_to_its_connection_and_goes_with_it() {
    let mut h = H::new();
    let owner = h.b.connect();
    let ch = h.channel_on(owner);
    let ch2 = h.channel_on(owner);
    h.queue_with(ch, QueueDeclare { name: "mine".into(), exclusive: true, ..Default::default() }).unwrap();
    h.queue_with(ch2, QueueDeclare { name: "mine".into(), exclusive: true, ..Default::default() }).unwrap();
    h.consume(ch2, "mine");
    let other = h.channel();
    assert_eq!(
        code(h.queue_with(other, QueueDeclare { name: "mine".into(), exclusive: true, ..Default::default() })),
        405
    );
    for f in [
        |h: &mut H, ch| h.consume_with(ch, Consume { queue: "mine".into(), ..Default::default() }).map(|_| ()),
        |h: &mut H, ch| h.get(ch, "mine", false).map(|_| ()),
        |h: &mut H, ch| h.run(|b, now| b.purge_queue(ch, "mine", now)).map(|_| ()),
        |h: &mut H, ch| h.run(|b, now| b.delete_queue(ch, "mine", false, false, now)).map(|_| ()),
        |h: &mut H, ch| {
            h.queue_with(ch, QueueDeclare { name: "mine".into(), passive: true, ..Default::default() }).map(|_| ())
        },
    ] {
        let ch = h.channel();
        assert_eq!(code(f(&mut h, ch)), 405);
    }
    // Publishing to it is allowed from anywhere, as in RabbitMQ.
    let other = h.channel();
    h.send(other, "mine", "hello");
    assert_eq!(h.bodies(), ["hello"]);
    h.disconnect(owner);
    assert!(h.b.queue_info("mine").is_none(), "exclusive queue deleted with its connection");
}

#[test]
fn non_exclusive_queue_cannot_be_redeclared_exclusive() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue(ch, "shared").unwrap();
    assert_eq!(
        code(h.queue_with(ch, QueueDeclare { name: "shared".into(), exclusive: true, ..Default::default() })),
        405
    );
}

#[test]
fn auto_delete_queue_goes_after_its_last_consumer_not_before_the_first() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue_with(ch, QueueDeclare { name: "ad".into(), auto_delete: true, ..Default::default() }).unwrap();
    h.send(ch, "ad", "kept");
    assert!(h.b.queue_info("ad").is_some(), "no consumer yet: the queue stays");
    let a = h.consume(ch, "ad");
    let b = h.consume(ch, "ad");
    h.run(|br, now| br.cancel(ch, &a, now)).unwrap();
    assert!(h.b.queue_info("ad").is_some());
    h.run(|br, now| br.cancel(ch, &b, now)).unwrap();
    assert!(h.b.queue_info("ad").is_none());
}

#[test]
fn get_returns_messages_in_order_with_message_count_and_false_when_empty() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue(ch, "q").unwrap();
    h.send(ch, "q", "a");
    h.send(ch, "q", "b");
    let g = h.get(ch, "q", false).unwrap().unwrap();
    assert_eq!((body(&g.delivery.message).as_str(), g.message_count, g.delivery.consumer_tag.clone()), ("a", 1, None));
    assert_eq!(h.info("q").unacked, 1);
    h.ack(ch, g.delivery.delivery_tag, false).unwrap();
    let g = h.get(ch, "q", true).unwrap().unwrap();
    assert_eq!((body(&g.delivery.message).as_str(), g.message_count), ("b", 0));
    assert_eq!(h.info("q").unacked, 0, "noAck get needs no ack");
    assert!(h.get(ch, "q", false).unwrap().is_none());
    assert_eq!(code(h.get(ch, "missing", false)), 404);
}

#[test]
fn purge_counts_ready_messages_and_leaves_unacked() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue(ch, "q").unwrap();
    for i in 0..5 {
        h.send(ch, "q", &i.to_string());
    }
    let g = h.get(ch, "q", false).unwrap().unwrap();
    assert_eq!(h.run(|b, now| b.purge_queue(ch, "q", now)).unwrap(), 4);
    let i = h.info("q");
    assert_eq!((i.ready, i.unacked, i.counters.purged), (0, 1, 4));
    h.nack(ch, g.delivery.delivery_tag, false, true).unwrap();
    assert_eq!(h.info("q").ready, 1, "the unacked one survives the purge and can come back");
}

#[test]
fn delete_queue_if_unused_if_empty_and_consumer_cancel_notification() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue(ch, "q").unwrap();
    h.send(ch, "q", "m");
    let other = h.channel();
    let tag = h.consume_with(other, Consume { queue: "q".into(), no_ack: true, ..Default::default() }).unwrap();
    h.send(ch, "q", "n");
    assert_eq!(code(h.run(|b, now| b.delete_queue(ch, "q", true, false, now))), 406);
    let ch = h.channel();
    h.run(|b, now| b.cancel(other, &tag, now)).unwrap();
    h.send(ch, "q", "o");
    assert_eq!(code(h.run(|b, now| b.delete_queue(ch, "q", false, true, now))), 406);
    let ch = h.channel();
    let tag2 = h.consume(other, "q");
    h.send(ch, "q", "p");
    h.run(|b, now| b.prefetch(ch, 0, false, now)).unwrap();
    let n = h.run(|b, now| b.delete_queue(ch, "q", false, false, now)).unwrap();
    assert_eq!(n, 0, "everything was delivered to the consumer before the delete");
    assert!(h.effects.iter().any(|e| matches!(e,
        Effect::ConsumerCancelled { channel, consumer_tag } if *channel == other && *consumer_tag == tag2)));
    assert_eq!(h.run(|b, now| b.delete_queue(ch, "q", false, false, now)).unwrap(), 0, "deleting twice is fine");
    // Acking a delivery of a deleted queue is accepted.
    h.ack(other, 0, true).unwrap();
}

#[test]
fn limits_are_errors_that_name_the_limit() {
    let mut h = H::with_limits(Limits { max_queues: 2, max_message_bytes: 10, ..Default::default() });
    let ch = h.channel();
    h.queue(ch, "a").unwrap();
    h.queue(ch, "b").unwrap();
    let e = h.queue(ch, "c").unwrap_err();
    assert!(e.message.contains("limits.maxQueues"), "{}", e.message);
    let ch = h.channel();
    let e = h.publish(ch, "", "a", "this is more than ten bytes").unwrap_err();
    assert_eq!(e.code.code(), 406);
    assert!(e.message.contains("limits.maxMessageBytes"), "{}", e.message);
    assert_eq!(h.info("a").ready, 0, "nothing half-published");
}
