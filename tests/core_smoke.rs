#![cfg(not(target_arch = "wasm32"))]
mod common;
use common::*;

#[test]
fn publish_consume_ack_round_trip() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue(ch, "work").unwrap();
    h.send(ch, "work", "one");
    h.send(ch, "work", "two");
    assert_eq!(h.info("work").ready, 2);
    let tag = h.consume(ch, "work");
    let ds = h.take_deliveries();
    assert_eq!(ds.len(), 2);
    assert_eq!(ds[0].consumer_tag.as_deref(), Some(&*tag));
    assert_eq!((ds[0].delivery_tag, ds[1].delivery_tag), (1, 2));
    assert_eq!(h.info("work").unacked, 2);
    h.ack(ch, 2, true).unwrap();
    let i = h.info("work");
    assert_eq!((i.ready, i.unacked, i.counters.acked), (0, 0, 2));
}
