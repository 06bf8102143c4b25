#![cfg(not(target_arch = "wasm32"))]
//! Consumers, prefetch, acknowledgements and publisher confirms.
mod common;
use common::*;
use tabbit::core::*;

fn tags(ds: &[Delivery]) -> Vec<String> {
    ds.iter().map(|d| d.consumer_tag.as_deref().unwrap().to_owned()).collect()
}

#[test]
fn competing_consumers_get_messages_round_robin() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue(ch, "q").unwrap();
    let a = h.consume(ch, "q");
    let b = h.consume(ch, "q");
    let c = h.consume(ch, "q");
    for i in 0..6 {
        h.send(ch, "q", &i.to_string());
    }
    let got = tags(&h.take_deliveries());
    let want: Vec<String> = [&a, &b, &c, &a, &b, &c].iter().map(|t| t.to_string()).collect();
    assert_eq!(got, want);
}

#[test]
fn per_consumer_prefetch_limits_unacked_and_ack_releases_more() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue(ch, "q").unwrap();
    for i in 0..5 {
        h.send(ch, "q", &i.to_string());
    }
    h.run(|b, now| b.prefetch(ch, 2, false, now)).unwrap();
    h.consume(ch, "q");
    assert_eq!(h.bodies(), ["0", "1"]);
    h.ack(ch, 1, false).unwrap();
    assert_eq!(h.bodies(), ["2"]);
    h.ack(ch, 3, true).unwrap();
    assert_eq!(h.bodies(), ["3", "4"]);
}

#[test]
fn prefetch_applies_to_consumers_created_after_it() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue(ch, "q").unwrap();
    h.consume(ch, "q"); // unlimited
    h.run(|b, now| b.prefetch(ch, 1, false, now)).unwrap();
    for i in 0..4 {
        h.send(ch, "q", &i.to_string());
    }
    assert_eq!(h.take_deliveries().len(), 4, "the earlier consumer keeps no limit");
}

#[test]
fn global_prefetch_is_shared_by_the_channels_consumers() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue(ch, "a").unwrap();
    h.queue(ch, "b").unwrap();
    h.run(|b, now| b.prefetch(ch, 3, true, now)).unwrap();
    h.consume(ch, "a");
    h.consume(ch, "b");
    for i in 0..4 {
        h.send(ch, "a", &format!("a{i}"));
        h.send(ch, "b", &format!("b{i}"));
    }
    assert_eq!(h.bodies(), ["a0", "b0", "a1"]);
    h.ack(ch, 2, false).unwrap(); // b0
    assert_eq!(h.bodies(), ["b1"], "room on the channel goes to the queue with the freed delivery");
}

#[test]
fn consumer_priority_wins_while_it_has_room_then_lower_ones_get_messages() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue(ch, "q").unwrap();
    h.run(|b, now| b.prefetch(ch, 2, false, now)).unwrap();
    let low = h.consume(ch, "q");
    let high = h
        .consume_with(
            ch,
            Consume { queue: "q".into(), arguments: table(&[("x-priority", int(10))]), ..Default::default() },
        )
        .unwrap();
    for i in 0..3 {
        h.send(ch, "q", &i.to_string());
    }
    assert_eq!(tags(&h.take_deliveries()), [high.to_string(), high.to_string(), low.to_string()]);
    let ch2 = h.channel();
    assert_eq!(
        code(h.consume_with(
            ch2,
            Consume { queue: "q".into(), arguments: table(&[("x-priority", s("hi"))]), ..Default::default() }
        )),
        406
    );
}

#[test]
fn exclusive_consumer_excludes_others() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue(ch, "q").unwrap();
    let tag = h.consume_with(ch, Consume { queue: "q".into(), exclusive: true, ..Default::default() }).unwrap();
    let other = h.channel();
    assert_eq!(code(h.consume_with(other, Consume { queue: "q".into(), ..Default::default() })), 403);
    h.run(|b, now| b.cancel(ch, &tag, now)).unwrap();
    h.consume(ch, "q");
    let other = h.channel();
    assert_eq!(code(h.consume_with(other, Consume { queue: "q".into(), exclusive: true, ..Default::default() })), 403);
}

#[test]
fn reusing_a_consumer_tag_on_a_channel_is_refused() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue(ch, "q").unwrap();
    h.consume_with(ch, Consume { queue: "q".into(), consumer_tag: "me".into(), ..Default::default() }).unwrap();
    let e =
        h.consume_with(ch, Consume { queue: "q".into(), consumer_tag: "me".into(), ..Default::default() }).unwrap_err();
    assert_eq!(e.code.code(), 530);
}

#[test]
fn single_active_consumer_gets_everything_until_it_goes() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue_args(ch, "q", &[("x-single-active-consumer", FieldValue::Bool(true))]).unwrap();
    let first = h.consume(ch, "q");
    let second = h.consume(ch, "q");
    for i in 0..3 {
        h.send(ch, "q", &i.to_string());
    }
    assert_eq!(tags(&h.take_deliveries()), vec![first.to_string(); 3]);
    h.run(|b, now| b.cancel(ch, &first, now)).unwrap();
    h.send(ch, "q", "next");
    assert_eq!(tags(&h.take_deliveries()), [second.to_string()]);
}

#[test]
fn no_ack_consumers_settle_on_delivery_and_ignore_prefetch() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue(ch, "q").unwrap();
    h.run(|b, now| b.prefetch(ch, 1, false, now)).unwrap();
    h.consume_with(ch, Consume { queue: "q".into(), no_ack: true, ..Default::default() }).unwrap();
    for i in 0..3 {
        h.send(ch, "q", &i.to_string());
    }
    assert_eq!(h.bodies(), ["0", "1", "2"]);
    let i = h.info("q");
    assert_eq!((i.unacked, i.counters.auto_acked), (0, 3));
}

#[test]
fn nack_with_requeue_puts_back_in_original_position_flagged_redelivered() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue(ch, "q").unwrap();
    for i in 0..4 {
        h.send(ch, "q", &i.to_string());
    }
    let a = h.get(ch, "q", false).unwrap().unwrap().delivery;
    let b = h.get(ch, "q", false).unwrap().unwrap().delivery;
    h.nack(ch, b.delivery_tag, false, true).unwrap();
    h.run(|br, now| br.reject(ch, a.delivery_tag, true, now)).unwrap();
    let again: Vec<Delivery> = (0..4).map(|_| h.get(ch, "q", true).unwrap().unwrap().delivery).collect();
    let order: Vec<String> = again.iter().map(|d| body(&d.message)).collect();
    assert_eq!(order, ["0", "1", "2", "3"], "requeued messages return to where they were");
    assert!(again[0].redelivered && again[1].redelivered && !again[2].redelivered);
    assert_eq!((again[0].delivery_count, again[2].delivery_count), (1, 0));
}

#[test]
fn nack_multiple_without_requeue_drops_everything_up_to_the_tag() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue(ch, "q").unwrap();
    for i in 0..4 {
        h.send(ch, "q", &i.to_string());
    }
    h.consume(ch, "q");
    h.take_deliveries();
    h.nack(ch, 3, true, false).unwrap();
    let i = h.info("q");
    assert_eq!((i.unacked, i.counters.discarded), (1, 3));
    h.nack(ch, 0, true, true).unwrap(); // nackAll with requeue
    assert_eq!(h.bodies(), ["3"], "the last one comes back to the same consumer");
    assert!(h.effects.is_empty() || !h.effects.iter().any(|e| matches!(e, Effect::ChannelClosed { .. })));
}

#[test]
fn unknown_or_double_ack_is_406_and_closes_the_channel_requeueing_the_rest() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue(ch, "q").unwrap();
    h.send(ch, "q", "a");
    h.send(ch, "q", "b");
    h.consume(ch, "q");
    h.take_deliveries();
    h.ack(ch, 1, false).unwrap();
    let e = h.ack(ch, 1, false).unwrap_err();
    assert_eq!(e.code.code(), 406);
    assert!(e.message.contains("unknown delivery tag 1"), "{}", e.message);
    assert!(!h.b.has_channel(ch));
    let i = h.info("q");
    assert_eq!((i.ready, i.unacked, i.consumers), (1, 0, 0), "b went back when the channel closed");
    let ch = h.channel();
    h.consume(ch, "q");
    let d = h.take_deliveries();
    assert!(d[0].redelivered);
    assert_eq!(code(h.ack(ch, 99, true)), 406);
}

#[test]
fn closing_a_channel_or_connection_requeues_unacked_to_other_consumers() {
    let mut h = H::new();
    let conn = h.b.connect();
    let dying = h.channel_on(conn);
    let live = h.channel();
    h.queue(live, "q").unwrap();
    h.run(|b, now| b.prefetch(dying, 2, false, now)).unwrap();
    h.consume(dying, "q");
    for i in 0..2 {
        h.send(live, "q", &i.to_string());
    }
    assert_eq!(h.take_deliveries().len(), 2);
    h.run(|b, now| b.prefetch(live, 0, false, now)).unwrap();
    h.consume(live, "q");
    h.disconnect(conn);
    let ds = h.take_deliveries();
    assert_eq!(ds.iter().map(|d| body(&d.message)).collect::<Vec<_>>(), ["0", "1"]);
    assert!(ds.iter().all(|d| d.redelivered && d.channel == live));
}

#[test]
fn cancel_keeps_unacked_deliveries_ackable() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue(ch, "q").unwrap();
    let tag = h.consume(ch, "q");
    h.send(ch, "q", "m");
    let d = h.take_deliveries();
    h.run(|b, now| b.cancel(ch, &tag, now)).unwrap();
    assert_eq!(h.info("q").unacked, 1);
    h.ack(ch, d[0].delivery_tag, false).unwrap();
    assert_eq!(h.info("q").counters.acked, 1);
    h.run(|b, now| b.cancel(ch, "never-existed", now)).unwrap();
}

#[test]
fn recover_requeues_every_unacked_delivery() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue(ch, "q").unwrap();
    h.send(ch, "q", "a");
    h.send(ch, "q", "b");
    h.get(ch, "q", false).unwrap();
    h.get(ch, "q", false).unwrap();
    h.run(|b, now| b.recover(ch, now)).unwrap();
    let i = h.info("q");
    assert_eq!((i.ready, i.unacked), (2, 0));
}

#[test]
fn confirms_number_publishes_and_ack_routed_unroutable_and_nack_refused() {
    let mut h = H::new();
    let ch = h.channel();
    h.run(|b, _| b.confirm_select(ch)).unwrap();
    h.queue_args(ch, "small", &[("x-max-length", int(1)), ("x-overflow", s("reject-publish"))]).unwrap();
    h.send(ch, "small", "fits");
    h.send(ch, "small", "refused");
    h.send(ch, "nowhere", "unroutable");
    let c = h.confirms();
    assert_eq!(c.iter().map(|c| (c.seq, c.ack)).collect::<Vec<_>>(), [(1, true), (2, false), (3, true)]);
    assert!(c.iter().all(|c| !c.durable && c.channel == ch));
    let plain = h.channel();
    h.send(plain, "small", "x");
    assert!(h.confirms().is_empty(), "no confirms outside confirm mode");
}

#[test]
fn persistent_message_to_durable_queue_gives_a_durable_confirm() {
    let mut h = H::new();
    let ch = h.channel();
    h.run(|b, _| b.confirm_select(ch)).unwrap();
    h.queue_with(ch, QueueDeclare { name: "d".into(), durable: true, ..Default::default() }).unwrap();
    let mut m = Message::new("", "d", b"p".to_vec());
    m.properties.persistent = true;
    h.publish_msg(ch, m, false).unwrap();
    h.send(ch, "d", "transient");
    let c = h.confirms();
    assert_eq!(c.iter().map(|c| c.durable).collect::<Vec<_>>(), [true, false]);
}

#[test]
fn operations_on_unknown_channels_are_504() {
    let mut h = H::new();
    let ch = h.channel();
    h.close(ch);
    assert_eq!(code(h.publish(ch, "", "q", "x")), 504);
    assert_eq!(code(h.run(|b, now| b.prefetch(ch, 1, false, now))), 504);
    assert_eq!(code(h.run(|b, now| b.close_channel(ch, now))), 504);
}
