#![cfg(not(target_arch = "wasm32"))]
//! Resuming a channel on a new broker after failover (`Broker::resume_channel`): the
//! deliveries a client holds are taken back, not delivered again; the ones whose
//! messages were lost are forgiven; tags, confirms and prefetch go on as before.
mod common;
use std::collections::BTreeMap;
use std::rc::Rc;

use common::*;
use tabbit::core::*;

fn persistent(body: &str) -> Message {
    let mut m = Message::new("", "q", body.as_bytes().to_vec());
    m.properties.persistent = true;
    m
}

fn stored(seq: u64, body: &str, delivered: bool) -> StoredMessage {
    StoredMessage {
        seq,
        message: Some(Rc::new(persistent(body))),
        body_len: body.len() as u32,
        priority: 0,
        expires_at: None,
        ready_at: None,
        delivery_count: 0,
        delivered,
    }
}

/// A broker that recovered durable queue `q` holding `m1`..`mn` at positions 1..=n,
/// each handed out before the crash when `delivered`.
fn recovered(n: u64, delivered: bool) -> H {
    let mut h = H::new();
    h.run(|b, now| b.restore_queue("q", false, Table::new(), n + 1, now, now)).unwrap();
    for seq in 1..=n {
        h.run(|b, now| b.restore_message("q", stored(seq, &format!("m{seq}"), delivered), now)).unwrap();
    }
    h.run(|b, now| b.end_recovery(now));
    h
}

fn in_flight(queue: &str, seq: u64, delivery_tag: u64, consumer: Option<&str>) -> InFlight {
    InFlight { queue: queue.into(), seq, delivery_tag, consumer_tag: consumer.map(str::to_owned) }
}

fn consumer(queue: &str, tag: &str) -> Consume {
    Consume { queue: queue.into(), consumer_tag: tag.into(), ..Default::default() }
}

fn resume(h: &mut H, r: Resume) -> Resumed {
    let conn = h.b.connect();
    h.run(|b, now| b.resume_channel(conn, r, now)).unwrap()
}

fn tags(ds: &[Delivery]) -> Vec<u64> {
    ds.iter().map(|d| d.delivery_tag).collect()
}

#[test]
fn in_flight_messages_are_not_delivered_again_to_another_consumer() {
    let mut h = recovered(4, true);
    let r = resume(
        &mut h,
        Resume {
            next_delivery_tag: 3,
            consumers: vec![consumer("q", "a")],
            consumer_prefetch: 2,
            in_flight: vec![in_flight("q", 2, 2, Some("a")), in_flight("q", 1, 1, None)],
            ..Default::default()
        },
    );
    assert_eq!((r.adopted.as_slice(), r.forgiven.as_slice(), r.cancelled.len()), (&[1, 2][..], &[][..], 0));
    // The get counts on no prefetch; the other delivery takes one of the consumer's 2.
    assert_eq!(h.bodies(), ["m3"]);
    let other = h.channel();
    h.consume(other, "q");
    assert_eq!(h.bodies(), ["m4"], "m1 and m2 go to nobody");
    let info = h.info("q");
    assert_eq!((info.ready, info.unacked), (0, 4));
}

#[test]
fn resumed_consumer_gets_ready_messages_once_its_deliveries_are_back() {
    let mut h = recovered(3, true);
    let r = resume(
        &mut h,
        Resume {
            next_delivery_tag: 2,
            consumers: vec![consumer("q", "a")],
            in_flight: vec![in_flight("q", 1, 1, Some("a"))],
            ..Default::default()
        },
    );
    let ds = h.take_deliveries();
    assert_eq!(ds.iter().map(|d| body(&d.message)).collect::<Vec<_>>(), ["m2", "m3"]);
    assert!(ds.iter().all(|d| d.channel == r.channel && d.consumer_tag.as_deref() == Some("a")));
    assert_eq!(tags(&ds), [2, 3], "delivery tags go on from next_delivery_tag");
}

#[test]
fn a_late_ack_of_an_adopted_delivery_works() {
    let mut h = recovered(3, true);
    let r = resume(
        &mut h,
        Resume {
            next_delivery_tag: 8,
            in_flight: vec![in_flight("q", 1, 5, None), in_flight("q", 2, 6, None), in_flight("q", 3, 7, None)],
            ..Default::default()
        },
    );
    h.store_ops();
    h.ack(r.channel, 5, false).unwrap();
    h.ack(r.channel, 7, true).unwrap();
    let removed: Vec<u64> = h
        .store_ops()
        .iter()
        .filter_map(|op| if let StoreOp::RemoveMessage { seq, .. } = op { Some(*seq) } else { None })
        .collect();
    assert_eq!(removed, [1, 2, 3]);
    let info = h.info("q");
    assert_eq!((info.ready, info.unacked, info.counters.acked), (0, 0, 3));
    assert_eq!(code(h.ack(r.channel, 6, false)), 406, "settled once, like any delivery");
}

#[test]
fn nack_with_requeue_of_an_adopted_delivery_delivers_it_again_as_redelivered() {
    let mut h = recovered(2, false);
    let r = resume(
        &mut h,
        Resume {
            next_delivery_tag: 6,
            consumer_prefetch: 1,
            consumers: vec![consumer("q", "a")],
            in_flight: vec![in_flight("q", 1, 5, Some("a"))],
            ..Default::default()
        },
    );
    assert!(h.take_deliveries().is_empty(), "prefetch 1 is taken by the adopted delivery");
    h.nack(r.channel, 5, false, true).unwrap();
    let ds = h.take_deliveries();
    assert_eq!(ds.len(), 1);
    assert_eq!((body(&ds[0].message).as_str(), ds[0].delivery_tag, ds[0].redelivered), ("m1", 6, true));
    assert_eq!(ds[0].delivery_count, 1);
}

#[test]
fn adopting_a_stored_message_marks_it_delivered_in_the_store_as_a_delivery_does() {
    let mut h = recovered(2, false);
    h.store_ops();
    resume(&mut h, Resume { next_delivery_tag: 2, in_flight: vec![in_flight("q", 2, 1, None)], ..Default::default() });
    let ops = h.store_ops();
    assert!(matches!(ops.as_slice(), [StoreOp::Delivered { queue, seq: 2 }] if &**queue == "q"), "{ops:?}");

    // One flagged redelivered already needs no mark.
    let mut h = recovered(1, true);
    h.store_ops();
    resume(&mut h, Resume { next_delivery_tag: 2, in_flight: vec![in_flight("q", 1, 1, None)], ..Default::default() });
    assert!(h.store_ops().is_empty());
}

#[test]
fn settling_a_forgiven_tag_is_a_no_op_and_an_unknown_tag_still_fails() {
    let mut h = recovered(3, true);
    let ch = h.channel();
    h.queue(ch, "transient").unwrap();
    let r = resume(
        &mut h,
        Resume {
            next_delivery_tag: 10,
            in_flight: vec![
                in_flight("q", 1, 1, None),
                in_flight("q", 99, 2, None), // gone already (acked before the crash)
                in_flight("q", 2, 3, None),
                in_flight("transient", 1, 4, None), // lost with the old broker
                in_flight("nowhere", 1, 5, None),   // its queue is gone
                in_flight("q", 3, 6, None),
            ],
            ..Default::default()
        },
    );
    assert_eq!(r.adopted, [1, 3, 6]);
    assert_eq!(r.forgiven, [2, 4, 5]);
    let ch = r.channel;
    h.ack(ch, 2, false).unwrap();
    h.run(|b, now| b.reject(ch, 5, true, now)).unwrap();
    assert_eq!(h.b.channel_unacked(ch), Some(3));
    h.ack(ch, 4, true).unwrap(); // a forgiven tag ends the range: tags 1 and 3 are acked
    assert_eq!(h.b.channel_unacked(ch), Some(1));
    assert_eq!(h.info("q").counters.acked, 2);
    assert!(h.effects.iter().all(|e| !matches!(e, Effect::ChannelClosed { .. })));
    assert_eq!(code(h.ack(ch, 9, false)), 406, "a tag never delivered is still an error");
    assert!(!h.b.has_channel(ch));
}

#[test]
fn a_forgiven_tag_is_settled_once_and_multiple_ranges_skip_forgiven_tags() {
    let mut h = recovered(2, true);
    let r = resume(
        &mut h,
        Resume {
            next_delivery_tag: 5,
            in_flight: vec![in_flight("q", 7, 1, None), in_flight("q", 1, 2, None), in_flight("q", 8, 3, None)],
            ..Default::default()
        },
    );
    let ch = r.channel;
    h.nack(ch, 2, true, false).unwrap(); // settles forgiven 1 and adopted 2
    assert_eq!(h.info("q").counters.discarded, 1);
    assert_eq!(code(h.ack(ch, 1, false)), 406, "tag 1 was settled by the range");

    let mut h = recovered(2, true);
    let r = resume(
        &mut h,
        Resume { next_delivery_tag: 5, in_flight: vec![in_flight("q", 7, 3, None)], ..Default::default() },
    );
    h.ack(r.channel, 3, false).unwrap();
    assert_eq!(code(h.ack(r.channel, 3, false)), 406);
}

#[test]
fn ack_all_and_recover_clear_forgiven_tags() {
    let mut h = recovered(1, true);
    let r = resume(
        &mut h,
        Resume {
            next_delivery_tag: 5,
            in_flight: vec![in_flight("q", 1, 1, None), in_flight("q", 9, 4, None)],
            ..Default::default()
        },
    );
    h.ack(r.channel, 0, true).unwrap();
    assert_eq!(h.b.channel_unacked(r.channel), Some(0));
    assert_eq!(code(h.ack(r.channel, 4, false)), 406);

    let mut h = recovered(1, true);
    let r = resume(
        &mut h,
        Resume {
            next_delivery_tag: 5,
            in_flight: vec![in_flight("q", 1, 1, None), in_flight("q", 9, 4, None)],
            ..Default::default()
        },
    );
    h.run(|b, now| b.recover(r.channel, now)).unwrap();
    assert_eq!(h.info("q").ready, 1, "recover requeues the adopted delivery");
    assert_eq!(code(h.ack(r.channel, 4, false)), 406, "and settles the forgiven one");
}

#[test]
fn delivery_tags_and_get_continue_above_next_delivery_tag() {
    let mut h = recovered(2, true);
    let r = resume(
        &mut h,
        Resume { next_delivery_tag: 42, in_flight: vec![in_flight("q", 1, 41, None)], ..Default::default() },
    );
    let g = h.get(r.channel, "q", false).unwrap().unwrap();
    assert_eq!((g.delivery.delivery_tag, body(&g.delivery.message).as_str()), (42, "m2"));
    h.ack(r.channel, 42, true).unwrap();
    assert_eq!(h.b.channel_unacked(r.channel), Some(0));
}

#[test]
fn confirm_numbers_continue_and_no_confirm_mode_means_no_confirms() {
    let mut h = H::new();
    let ch = h.channel();
    h.queue(ch, "q").unwrap();
    let r = resume(&mut h, Resume { next_delivery_tag: 1, confirm_seq: Some(7), ..Default::default() });
    h.send(r.channel, "q", "a");
    h.send(r.channel, "q", "b");
    assert_eq!(h.confirms().iter().map(|c| c.seq).collect::<Vec<_>>(), [7, 8]);

    let r = resume(&mut h, Resume { next_delivery_tag: 1, ..Default::default() });
    h.send(r.channel, "q", "c");
    assert!(h.confirms().is_empty());
}

#[test]
fn prefetch_counts_adopted_deliveries() {
    let mut h = recovered(4, true);
    let r = resume(
        &mut h,
        Resume {
            next_delivery_tag: 3,
            consumer_prefetch: 2,
            consumers: vec![consumer("q", "a")],
            in_flight: vec![in_flight("q", 1, 1, Some("a")), in_flight("q", 2, 2, Some("a"))],
            ..Default::default()
        },
    );
    assert!(h.take_deliveries().is_empty(), "2 unacked of prefetch 2");
    h.ack(r.channel, 1, false).unwrap();
    assert_eq!(h.bodies(), ["m3"]);

    // The channel-wide limit counts them too.
    let mut h = recovered(4, true);
    let r = resume(
        &mut h,
        Resume {
            next_delivery_tag: 3,
            channel_prefetch: 2,
            consumers: vec![consumer("q", "a")],
            in_flight: vec![in_flight("q", 1, 1, Some("a")), in_flight("q", 2, 2, Some("a"))],
            ..Default::default()
        },
    );
    assert!(h.take_deliveries().is_empty(), "2 unacked of the channel's 2");
    h.ack(r.channel, 2, true).unwrap();
    assert_eq!(h.bodies(), ["m3", "m4"]);
}

#[test]
fn a_consumer_holding_more_than_the_channels_prefetch_keeps_what_it_holds() {
    // prefetch(n, false) applies to consumers created after it: the consumer may have
    // got 3 under an earlier, higher limit. It keeps them, and gets more as acks come.
    let mut h = recovered(5, true);
    let r = resume(
        &mut h,
        Resume {
            next_delivery_tag: 4,
            consumer_prefetch: 1,
            consumers: vec![consumer("q", "a")],
            in_flight: (1..=3).map(|i| in_flight("q", i, i, Some("a"))).collect(),
            ..Default::default()
        },
    );
    assert_eq!(r.adopted, [1, 2, 3]);
    assert!(h.take_deliveries().is_empty());
    h.ack(r.channel, 1, false).unwrap();
    assert_eq!(h.bodies(), ["m4"]);
}

#[test]
fn a_consumer_that_cannot_be_registered_is_reported_and_the_channel_stays_open() {
    let mut h = recovered(3, true);
    let owner = h.channel();
    h.queue(owner, "x").unwrap();
    h.consume_with(owner, Consume { queue: "x".into(), exclusive: true, ..Default::default() }).unwrap();
    let r = resume(
        &mut h,
        Resume {
            next_delivery_tag: 3,
            consumers: vec![consumer("gone", "g"), consumer("x", "x"), consumer("q", "a"), consumer("q", "a")],
            in_flight: vec![in_flight("q", 1, 1, Some("g")), in_flight("q", 2, 2, Some("a"))],
            ..Default::default()
        },
    );
    let cancelled: Vec<(&str, u16)> = r.cancelled.iter().map(|(t, e)| (t.as_str(), e.code.code())).collect();
    assert_eq!(cancelled, [("g", 404), ("x", 403), ("a", 530)]);
    assert!(h.b.has_channel(r.channel));
    assert!(h.effects.iter().all(|e| !matches!(e, Effect::ChannelClosed { .. } | Effect::ConsumerCancelled { .. })));
    assert_eq!(r.adopted, [1, 2], "a cancelled consumer's delivery is still taken back");
    let ds = h.take_deliveries();
    assert_eq!((tags(&ds), ds[0].consumer_tag.as_deref()), (vec![3], Some("a")));
    h.ack(r.channel, 1, false).unwrap();
    assert_eq!(h.info("q").consumers, 1);
}

#[test]
fn a_consumer_without_its_tag_is_cancelled() {
    let mut h = recovered(1, true);
    let r = resume(&mut h, Resume { next_delivery_tag: 1, consumers: vec![consumer("q", "")], ..Default::default() });
    assert_eq!(r.cancelled.len(), 1);
    assert_eq!(r.cancelled[0].1.code.code(), 406);
    assert_eq!(h.info("q").consumers, 0);
}

#[test]
fn a_resume_that_contradicts_itself_is_refused_and_opens_no_channel() {
    let mut h = recovered(2, true);
    let conn = h.b.connect();
    let bad = [
        Resume { next_delivery_tag: 2, in_flight: vec![in_flight("q", 1, 2, None)], ..Default::default() },
        Resume {
            next_delivery_tag: 5,
            in_flight: vec![in_flight("q", 1, 2, None), in_flight("q", 2, 2, None)],
            ..Default::default()
        },
        Resume { next_delivery_tag: 5, in_flight: vec![in_flight("q", 1, 0, None)], ..Default::default() },
        Resume { next_delivery_tag: 0, ..Default::default() },
        Resume { next_delivery_tag: 1, confirm_seq: Some(0), ..Default::default() },
    ];
    for r in bad {
        assert_eq!(code(h.run(|b, now| b.resume_channel(conn, r, now))), 406);
    }
    assert_eq!(h.info("q").ready, 2);
    assert_eq!(h.b.open_channel(conn).unwrap().channel, 1, "no channel was left open");
    let gone = ConnId(999);
    assert_eq!(
        code(h.run(|b, now| b.resume_channel(gone, Resume { next_delivery_tag: 1, ..Default::default() }, now))),
        504
    );
}

#[test]
fn a_paged_out_message_is_not_adopted() {
    let mut h = H::new();
    h.run(|b, now| b.restore_queue("q", false, Table::new(), 3, now, now)).unwrap();
    h.run(|b, now| b.restore_message("q", stored(1, "m1", true), now)).unwrap();
    let paged = StoredMessage { message: None, ..stored(2, "m2", true) };
    h.run(|b, now| b.restore_message("q", paged, now)).unwrap();
    h.run(|b, now| b.end_recovery(now));
    let r = resume(
        &mut h,
        Resume {
            next_delivery_tag: 3,
            in_flight: vec![in_flight("q", 1, 1, None), in_flight("q", 2, 2, None)],
            ..Default::default()
        },
    );
    assert_eq!((r.adopted, r.forgiven), (vec![1], vec![2]));
    let info = h.info("q");
    assert_eq!((info.ready, info.paged, info.unacked), (1, 1, 1));
}

#[test]
fn closing_a_resumed_channel_requeues_what_it_took_back() {
    let mut h = recovered(2, false);
    let r = resume(
        &mut h,
        Resume {
            next_delivery_tag: 3,
            in_flight: vec![in_flight("q", 1, 1, None), in_flight("q", 2, 2, None)],
            ..Default::default()
        },
    );
    h.close(r.channel);
    let other = h.channel();
    h.consume(other, "q");
    let ds = h.take_deliveries();
    assert_eq!(
        ds.iter().map(|d| (body(&d.message), d.redelivered)).collect::<Vec<_>>(),
        [("m1".to_owned(), true), ("m2".to_owned(), true)]
    );
}

/// What a store keeps of queue `q` after applying a broker's store ops: each live
/// message by position, with whether it was handed out and its returns.
#[derive(Default)]
struct Store {
    messages: BTreeMap<u64, (Rc<Message>, bool, u32)>,
}

impl Store {
    fn apply(&mut self, ops: Vec<StoreOp>) {
        for op in ops {
            match op {
                StoreOp::PutMessage { seq, message, .. } => {
                    self.messages.insert(seq, (message, false, 0));
                }
                StoreOp::RemoveMessage { seq, .. } => {
                    self.messages.remove(&seq);
                }
                StoreOp::Delivered { seq, .. } => {
                    if let Some(m) = self.messages.get_mut(&seq) {
                        m.1 = true;
                    }
                }
                StoreOp::ReturnMessage { seq, delivery_count, .. } => {
                    if let Some(m) = self.messages.get_mut(&seq) {
                        m.2 = delivery_count;
                    }
                }
                _ => {}
            }
        }
    }

    /// A new broker that recovered this store.
    fn recover(&self) -> H {
        let mut h = H::new();
        let next = self.messages.keys().last().map_or(1, |s| s + 1);
        h.run(|b, now| b.restore_queue("q", false, Table::new(), next, now, now)).unwrap();
        for (&seq, (m, delivered, delivery_count)) in &self.messages {
            let sm = StoredMessage {
                seq,
                message: Some(m.clone()),
                body_len: m.body.len() as u32,
                priority: 0,
                expires_at: None,
                ready_at: None,
                delivery_count: *delivery_count,
                delivered: *delivered,
            };
            h.run(|b, now| b.restore_message("q", sm, now)).unwrap();
        }
        h.run(|b, now| b.end_recovery(now));
        h.store_ops();
        h
    }
}

#[test]
fn failover_of_a_durable_queue_through_recovery() {
    // The old broker: m1..m3 persistent, m4 not; a consumer holds all four, acked m1.
    let mut old = H::new();
    let ch = old.channel();
    old.queue_with(ch, QueueDeclare { name: "q".into(), durable: true, ..Default::default() }).unwrap();
    old.run(|b, _| b.confirm_select(ch)).unwrap();
    for body in ["m1", "m2", "m3"] {
        old.publish_msg(ch, persistent(body), false).unwrap();
    }
    old.send(ch, "q", "m4");
    old.confirms();
    let tag = old.consume_with(ch, consumer("q", "c1")).unwrap();
    let held = old.take_deliveries();
    assert_eq!(tags(&held), [1, 2, 3, 4]);
    old.ack(ch, 1, false).unwrap();
    let mut store = Store::default();
    store.apply(old.store_ops());

    // The host dies; the new one recovers, and another client publishes before this
    // client resumes: its message takes m4's old position, which was never stored.
    let mut h = store.recover();
    let publisher = h.channel();
    h.publish_msg(publisher, persistent("new"), false).unwrap();
    let r = resume(
        &mut h,
        Resume {
            next_delivery_tag: 5,
            confirm_seq: Some(5),
            consumer_prefetch: 3,
            consumers: vec![consumer("q", &tag)],
            in_flight: held[1..]
                .iter()
                .map(|d| in_flight("q", d.seq, d.delivery_tag, d.consumer_tag.as_deref()))
                .collect(),
            ..Default::default()
        },
    );
    assert_eq!((r.adopted.as_slice(), r.forgiven.as_slice()), (&[2, 3][..], &[4][..]));
    // The new message is not mistaken for m4: with one slot left it goes to the consumer.
    let ds = h.take_deliveries();
    assert_eq!((ds.iter().map(|d| body(&d.message)).collect::<Vec<_>>(), tags(&ds)), (vec!["new".to_owned()], vec![5]));
    h.ack(r.channel, 4, false).unwrap(); // m4, lost: forgiven
    h.ack(r.channel, 2, false).unwrap(); // m2
    h.publish_msg(r.channel, persistent("after"), false).unwrap();
    h.publish_msg(r.channel, persistent("waiting"), false).unwrap();
    assert_eq!(h.confirms().iter().map(|c| (c.seq, c.channel)).collect::<Vec<_>>(), [(5, r.channel), (6, r.channel)]);
    assert_eq!(tags(&h.take_deliveries()), [6], "'after' takes the slot m2's ack freed");
    store.apply(h.store_ops());

    // Another crash: what the consumer held unacked (m3 adopted, 'new' and 'after'
    // delivered here) comes back flagged redelivered; 'waiting' was never handed out.
    let mut h = store.recover();
    let ch = h.channel();
    h.consume(ch, "q");
    let ds = h.take_deliveries();
    let got: Vec<(String, bool)> = ds.iter().map(|d| (body(&d.message), d.redelivered)).collect();
    let want = [("m3", true), ("new", true), ("after", true), ("waiting", false)];
    assert_eq!(got, want.map(|(b, r)| (b.to_owned(), r)));
}

mod properties {
    //! Random resumes and settles: whatever the client announces and whatever it settles
    //! next, the broker's invariants hold, no delivery the channel holds goes out again,
    //! and a settle fails exactly when its tag is not outstanding.
    use std::collections::{BTreeMap, BTreeSet, HashSet};

    use proptest::prelude::*;

    use super::*;

    /// One settle on the resumed channel: which tag (an index into the outstanding ones;
    /// past them, 15 for tag 0, 12 to 14 for one settled already, else one never
    /// delivered), `multiple`, and 0 ack / 1 requeue / 2 reject.
    type Op = (usize, bool, u8);

    struct Model {
        ch: ChannelRef,
        /// Tags the client may settle, with the message of each that is not forgiven.
        outstanding: BTreeMap<u64, Option<u64>>,
        /// Positions out unacked on some channel: none may be delivered.
        held: HashSet<u64>,
        /// Positions handed out before: they come again flagged redelivered.
        seen: HashSet<u64>,
        /// Tags settled already: settling one again is an error, forgiven or not.
        settled: Vec<u64>,
    }

    impl Model {
        fn take_deliveries(&mut self, h: &mut H) {
            for d in h.take_deliveries() {
                assert!(self.held.insert(d.seq), "message {} delivered while held", d.seq);
                assert!(d.redelivered || !self.seen.contains(&d.seq), "message {} not flagged redelivered", d.seq);
                self.seen.insert(d.seq);
                if d.channel == self.ch {
                    self.outstanding.insert(d.delivery_tag, Some(d.seq));
                }
            }
        }

        /// Settles `tag`; returns whether it should have worked.
        fn settle(&mut self, tag: u64, multiple: bool) -> bool {
            let settled: Vec<u64> = match (tag, multiple) {
                (0, true) => self.outstanding.keys().copied().collect(),
                (_, true) if self.outstanding.contains_key(&tag) => {
                    self.outstanding.range(..=tag).map(|(t, _)| *t).collect()
                }
                (_, false) if self.outstanding.contains_key(&tag) => vec![tag],
                _ => return false,
            };
            for t in settled {
                if let Some(Some(seq)) = self.outstanding.remove(&t) {
                    self.held.remove(&seq);
                }
                self.settled.push(t);
            }
            true
        }
    }

    fn run(
        priorities: bool,
        stored_msgs: Vec<(u8, bool)>,
        flight: Vec<(u64, u64, bool)>,
        prefetch: (u32, u32),
        with_other: bool,
        ops: Vec<Op>,
    ) {
        let mut h = H::new();
        let args = if priorities { table(&[("x-max-priority", int(2))]) } else { Table::new() };
        let n = stored_msgs.len() as u64;
        h.run(|b, now| b.restore_queue("q", false, args, n + 1, now, now)).unwrap();
        for (i, (priority, delivered)) in stored_msgs.iter().enumerate() {
            let m = StoredMessage { priority: *priority, ..stored(i as u64 + 1, "m", *delivered) };
            h.run(|b, now| b.restore_message("q", m, now)).unwrap();
        }
        h.run(|b, now| b.end_recovery(now));

        // A client holds each message at most once, under increasing tags.
        let mut seqs = BTreeSet::new();
        let mut tag = 0;
        let mut in_flights = Vec::new();
        for (seq, gap, by_consumer) in flight {
            if seqs.insert(seq) {
                tag += gap;
                in_flights.push(in_flight("q", seq, tag, by_consumer.then_some("a")));
            }
        }
        let r = resume(
            &mut h,
            Resume {
                next_delivery_tag: tag + 1,
                consumer_prefetch: prefetch.0,
                channel_prefetch: prefetch.1,
                consumers: vec![consumer("q", "a")],
                in_flight: in_flights.clone(),
                ..Default::default()
            },
        );
        let adopted: Vec<u64> =
            in_flights.iter().filter(|f| (1..=n).contains(&f.seq)).map(|f| f.delivery_tag).collect();
        assert_eq!(r.adopted, adopted);
        assert!(r.cancelled.is_empty());
        let mut model = Model {
            ch: r.channel,
            outstanding: in_flights
                .iter()
                .map(|f| (f.delivery_tag, adopted.contains(&f.delivery_tag).then_some(f.seq)))
                .collect(),
            held: in_flights.iter().filter(|f| f.seq <= n).map(|f| f.seq).collect(),
            seen: in_flights.iter().map(|f| f.seq).collect(),
            settled: Vec::new(),
        };
        model.seen.extend(stored_msgs.iter().enumerate().filter(|(_, m)| m.1).map(|(i, _)| i as u64 + 1));
        model.take_deliveries(&mut h);
        if with_other {
            let other = h.channel();
            h.consume(other, "q");
            model.take_deliveries(&mut h);
        }

        for (pick, multiple, how) in ops {
            let tag = match model.outstanding.keys().nth(pick) {
                Some(t) => *t,
                None if pick == 15 => 0,
                None if pick >= 12 && !model.settled.is_empty() => model.settled[pick % model.settled.len()],
                None => 1_000 + pick as u64,
            };
            let ch = r.channel;
            let result = h.run(|b, now| match how {
                0 => b.ack(ch, tag, multiple, now),
                1 => b.nack(ch, tag, multiple, true, now),
                _ => b.nack(ch, tag, multiple, false, now),
            });
            let expected = model.settle(tag, multiple);
            assert_eq!(result.is_ok(), expected, "settle of tag {tag} (multiple {multiple})");
            if !expected {
                assert!(!h.b.has_channel(ch));
                return;
            }
            model.take_deliveries(&mut h);
            let window = model.outstanding.values().filter(|s| s.is_some()).count();
            assert_eq!(h.b.channel_unacked(ch), Some(window));
        }
    }

    proptest! {
        #[test]
        fn resumed_channels_hold_their_deliveries_and_settle_like_any_other(
            priorities in any::<bool>(),
            stored_msgs in prop::collection::vec((0u8..3, any::<bool>()), 0..10),
            flight in prop::collection::vec((0u64..13, 1u64..3, any::<bool>()), 0..10),
            prefetch in (0u32..4, 0u32..4),
            with_other in any::<bool>(),
            ops in prop::collection::vec((0usize..16, any::<bool>(), 0u8..3), 0..20),
        ) {
            run(priorities, stored_msgs, flight, prefetch, with_other, ops);
        }
    }
}

/// Topology recovery after failover (`crate::mesh::topology`): the owner declares its
/// server-named exclusive queue again under the name it was given.
#[test]
fn a_server_named_queue_is_declared_again_under_its_name_by_redeclare_only() {
    let mut h = H::new();
    let ch = h.channel();
    let d = QueueDeclare { exclusive: true, ..Default::default() };
    let name = h.queue_with(ch, d.clone()).unwrap().queue;
    assert!(name.starts_with("amq.gen-"));

    // A new broker (the next host): the owner's new connection declares it again.
    let mut next = H::new();
    let owner = next.channel();
    let again = QueueDeclare { name: name.to_string(), ..d.clone() };
    // An app may not declare an amq. name itself.
    assert_eq!(code(next.queue_with(owner, again.clone())), 403);
    let owner = next.channel();
    let ok = next.run(|b, now| b.redeclare_queue(owner, again.clone(), now)).unwrap();
    assert_eq!(ok.queue, name);
    // Exclusive to the connection that declared it again.
    let other = next.channel();
    assert_eq!(code(next.run(|b, now| b.redeclare_queue(other, again.clone(), now))), 405);
    // Any other reserved name is still refused.
    let owner2 = next.channel();
    let reserved = QueueDeclare { name: "amq.mine".into(), ..Default::default() };
    assert_eq!(code(next.run(|b, now| b.redeclare_queue(owner2, reserved, now))), 403);
}
