//! The store's layout and recovery, natively: a broker writes through the log into a
//! memory store, "crashes" (is dropped), and a new broker recovers from the records.
#![cfg(not(target_arch = "wasm32"))]

mod common;

use common::*;
use tabbit::core::*;
use tabbit::store::{end_write, restore, start_write, Batch, Collection, Key, Log, MemoryStore, Recovery};

/// A store and its bookkeeping: what survives a crash is `store`, nothing else.
struct Disk {
    log: Log,
    store: MemoryStore,
}

impl Disk {
    fn new() -> Self {
        Disk { log: Log::new(), store: MemoryStore::new() }
    }

    /// Ends a turn: the broker's store ops go into one batch, committed.
    fn commit(&mut self, h: &mut H) {
        self.end_turn(h, true);
    }

    /// Ends a turn whose transaction fails (storage full): nothing of it is written.
    /// Returns what the host writes next: the fence's deletion, if a first delivery
    /// waits for a horizon (see `store::log`).
    fn fail(&mut self, h: &mut H) -> Option<Batch> {
        self.end_turn(h, false)
    }

    fn end_turn(&mut self, h: &mut H, ok: bool) -> Option<Batch> {
        for op in h.store_ops() {
            self.log.apply(&op);
        }
        let batch = h.run(|b, now| start_write(&mut self.log, b, now))?;
        self.write(h, batch, ok)
    }

    /// Writes `batch` (or fails to), and tells the log and the broker as the host does.
    fn write(&mut self, h: &mut H, batch: Batch, ok: bool) -> Option<Batch> {
        if ok {
            self.store.apply(&batch);
        }
        let next = h.run(|b, now| end_write(&mut self.log, b, batch, ok, now));
        h.b.check_invariants().unwrap();
        next
    }

    /// Drops bodies beyond the first `keep` of every queue, for messages committed.
    fn page_out(&mut self, h: &mut H, keep: usize) -> usize {
        let log = &self.log;
        h.b.page_out_all(keep, |q, seq| log.is_committed(q, seq))
    }

    /// Pages in what the broker wants among the first `window` of each queue.
    fn page_in(&mut self, h: &mut H, window: usize) {
        for (queue, seqs) in h.b.page_in_wanted(window, |_| false) {
            let segments = self.store.segments(&self.log.segments_for(&queue, &seqs));
            let (found, lost) = self.log.paged_in(&queue, &seqs, &segments);
            let now = h.now;
            h.run(|b, _| b.page_in(&queue, found, &lost, now));
        }
    }

    /// A new broker from what the store holds, at `now`; its recovery writes committed.
    fn reopen(&mut self, now: u64) -> (H, Vec<String>) {
        self.reopen_with(now, false)
    }

    /// `reopen`, with a broker that keeps delivery horizons (as the host's does) or not.
    fn reopen_with(&mut self, now: u64, delivery_horizon: bool) -> (H, Vec<String>) {
        let (log, recovered) = Log::recover(self.store.records());
        self.log = log;
        let mut h = if delivery_horizon { horizon_broker() } else { H::new() };
        h.now = now;
        let problems = restore(&mut h.b, recovered, now);
        h.b.check_invariants().unwrap();
        h.effects.extend(h.b.drain_effects());
        self.commit(&mut h);
        (h, problems)
    }
}

fn persistent(queue: &str, body: &str) -> Message {
    let mut m = Message::new("", queue, body.as_bytes().to_vec());
    m.properties.persistent = true;
    m
}

fn durable_queue(h: &mut H, ch: ChannelRef, name: &str, args: &[(&str, FieldValue)]) {
    h.queue_with(ch, QueueDeclare { name: name.into(), durable: true, arguments: table(args), ..Default::default() })
        .unwrap();
}

/// Gets every ready message with ack: (body, redelivered, x-delivery-count).
fn drain_flags(h: &mut H, ch: ChannelRef, queue: &str) -> Vec<(String, bool, u32)> {
    let mut out = Vec::new();
    while let Some(g) = h.get(ch, queue, true).unwrap() {
        out.push((body(&g.delivery.message), g.delivery.redelivered, g.delivery.delivery_count));
    }
    out
}

#[test]
fn acked_messages_stay_gone_unacked_come_back_flagged_in_order() {
    let mut disk = Disk::new();
    let mut h = H::new();
    let ch = h.channel();
    durable_queue(&mut h, ch, "jobs", &[]);
    for i in 1..=6 {
        h.publish_msg(ch, persistent("jobs", &format!("m{i}")), false).unwrap();
    }
    h.publish(ch, "", "jobs", "transient").unwrap();
    disk.commit(&mut h);
    // m1 acked; m2 delivered and unacked; m3 returned twice and unacked; m4.. never delivered.
    let g1 = h.get(ch, "jobs", false).unwrap().unwrap();
    h.ack(ch, g1.delivery.delivery_tag, false).unwrap();
    let _g2 = h.get(ch, "jobs", false).unwrap().unwrap();
    for _ in 0..2 {
        let g3 = h.get(ch, "jobs", false).unwrap().unwrap();
        assert_eq!(body(&g3.delivery.message), "m3");
        h.nack(ch, g3.delivery.delivery_tag, false, true).unwrap();
    }
    let _g3 = h.get(ch, "jobs", false).unwrap().unwrap();
    disk.commit(&mut h);
    drop(h); // the crash

    let (mut h, problems) = disk.reopen(2_000_000);
    assert!(problems.is_empty(), "{problems:?}");
    let ch = h.channel();
    let got = drain_flags(&mut h, ch, "jobs");
    let want = [("m2", true, 0), ("m3", true, 2), ("m4", false, 0), ("m5", false, 0), ("m6", false, 0)];
    let want: Vec<(String, bool, u32)> = want.iter().map(|(b, r, c)| (b.to_string(), *r, *c)).collect();
    assert_eq!(got, want, "the transient message is gone, the acked one too");
    disk.commit(&mut h);
    assert_eq!(disk.store.count(Collection::Segments), 0, "a fully acked segment is deleted");

    // New messages after recovery never reuse a stored position.
    h.publish_msg(ch, persistent("jobs", "after"), false).unwrap();
    disk.commit(&mut h);
    let (mut h, _) = disk.reopen(2_000_001);
    let ch = h.channel();
    assert_eq!(drain_flags(&mut h, ch, "jobs"), [("after".to_string(), false, 0)]);
}

#[test]
fn exchanges_bindings_and_priorities_survive() {
    let mut disk = Disk::new();
    let mut h = H::new();
    let ch = h.channel();
    h.exchange_with(
        ch,
        ExchangeDeclare { name: "logs".into(), kind: "topic".into(), durable: true, ..Default::default() },
    )
    .unwrap();
    h.exchange_with(ch, ExchangeDeclare { name: "tmp".into(), kind: "fanout".into(), ..Default::default() }).unwrap();
    durable_queue(&mut h, ch, "errors", &[("x-max-priority", int(5))]);
    durable_queue(&mut h, ch, "all", &[]);
    h.bind(ch, "errors", "logs", "*.error").unwrap();
    h.bind(ch, "all", "logs", "#").unwrap();
    h.bind(ch, "all", "tmp", "").unwrap();
    for (key, prio, text) in [("a.error", 1, "low"), ("b.error", 5, "high"), ("c.info", 0, "info")] {
        let mut m = Message::new("logs", key, text.as_bytes().to_vec());
        m.properties.persistent = true;
        m.properties.priority = Some(prio);
        h.publish_msg(ch, m, false).unwrap();
    }
    disk.commit(&mut h);
    assert_eq!(disk.store.count(Collection::Segments), 1, "one turn, one segment");
    drop(h);

    let (mut h, problems) = disk.reopen(1_000_001);
    assert!(problems.is_empty(), "{problems:?}");
    let ch = h.channel();
    assert!(h.b.has_exchange("logs") && !h.b.has_exchange("tmp"), "only the durable exchange is back");
    assert_eq!(h.drain(ch, "errors"), ["high", "low"], "priority order kept");
    assert_eq!(h.drain(ch, "all"), ["low", "high", "info"]);
    // The bindings route again.
    let mut m = Message::new("logs", "z.error", b"again".to_vec());
    m.properties.persistent = true;
    h.publish_msg(ch, m, false).unwrap();
    assert_eq!(h.drain(ch, "errors"), ["again"]);
    assert_eq!(h.drain(ch, "all"), ["again"]);
}

#[test]
fn ttl_that_passed_while_closed_expires_and_dead_letters() {
    let mut disk = Disk::new();
    let mut h = H::new();
    let ch = h.channel();
    h.exchange_with(
        ch,
        ExchangeDeclare { name: "dlx".into(), kind: "fanout".into(), durable: true, ..Default::default() },
    )
    .unwrap();
    durable_queue(&mut h, ch, "dead", &[]);
    h.bind(ch, "dead", "dlx", "").unwrap();
    durable_queue(&mut h, ch, "short", &[("x-message-ttl", int(1000)), ("x-dead-letter-exchange", s("dlx"))]);
    h.publish_msg(ch, persistent("short", "old"), false).unwrap();
    disk.commit(&mut h);
    h.advance(600);
    h.publish_msg(ch, persistent("short", "young"), false).unwrap();
    disk.commit(&mut h);
    let closed_at = h.now;
    drop(h);

    let (mut h, _) = disk.reopen(closed_at + 500); // "old" is 1100 ms old, "young" 500
    let ch = h.channel();
    assert_eq!(h.drain(ch, "short"), ["young"]);
    let dead = h.get(ch, "dead", true).unwrap().unwrap();
    assert_eq!(body(&dead.delivery.message), "old");
    assert!(dead.delivery.message.properties.headers.contains_key("x-death"));
    disk.commit(&mut h);
    // The dead-lettered copy is itself stored: it survives another reopen... once acked, gone.
    let (mut h, _) = disk.reopen(closed_at + 600);
    let ch = h.channel();
    assert!(h.get(ch, "dead", true).unwrap().is_none(), "taken with noAck before the reopen");
}

#[test]
fn queue_unused_for_its_expires_goes_at_reopen() {
    let mut disk = Disk::new();
    let mut h = H::new();
    let ch = h.channel();
    durable_queue(&mut h, ch, "lease", &[("x-expires", int(10_000))]);
    durable_queue(&mut h, ch, "keep", &[]);
    disk.commit(&mut h);
    let t = h.now;
    drop(h);
    let (h, _) = disk.reopen(t + 5_000);
    assert!(h.b.queue_info("lease").is_some(), "5 s of 10: still there");
    drop(h);
    let (mut h, _) = disk.reopen(t + 20_000);
    assert!(h.b.queue_info("lease").is_none(), "unused since the last write, 20 s ago");
    disk.commit(&mut h);
    assert!(disk.store.records().iter().all(|r| r.key != Key::Str("lease".into())));
}

#[test]
fn a_queue_deleted_and_declared_again_does_not_get_old_messages() {
    let mut disk = Disk::new();
    let mut h = H::new();
    let ch = h.channel();
    durable_queue(&mut h, ch, "q", &[]);
    durable_queue(&mut h, ch, "other", &[]);
    // One segment holds messages of both queues.
    h.publish_msg(ch, persistent("q", "old"), false).unwrap();
    h.publish_msg(ch, persistent("other", "keep"), false).unwrap();
    disk.commit(&mut h);
    h.run(|b, now| b.delete_queue(ch, "q", false, false, now)).unwrap();
    durable_queue(&mut h, ch, "q", &[]);
    h.publish_msg(ch, persistent("q", "new"), false).unwrap();
    disk.commit(&mut h);
    let (mut h, problems) = disk.reopen(1_000_001);
    assert!(problems.is_empty(), "{problems:?}");
    let ch = h.channel();
    assert_eq!(h.drain(ch, "q"), ["new"]);
    assert_eq!(h.drain(ch, "other"), ["keep"]);
}

#[test]
fn a_failed_transaction_loses_its_messages_only_and_is_retried() {
    let mut disk = Disk::new();
    let mut h = H::new();
    let ch = h.channel();
    h.run(|b, _| b.confirm_select(ch)).unwrap();
    durable_queue(&mut h, ch, "q", &[]);
    h.publish_msg(ch, persistent("q", "a"), false).unwrap();
    disk.commit(&mut h);
    // This turn: ack "a", declare a queue, publish "b"; the transaction fails.
    let g = h.get(ch, "q", false).unwrap().unwrap();
    h.ack(ch, g.delivery.delivery_tag, false).unwrap();
    durable_queue(&mut h, ch, "declared-in-failed-turn", &[]);
    h.publish_msg(ch, persistent("q", "b"), false).unwrap();
    disk.fail(&mut h);
    // The broker goes on; "b" was withdrawn (its publisher got a nack, and may send it again).
    assert!(h.get(ch, "q", false).unwrap().is_none());
    h.publish_msg(ch, persistent("q", "c"), false).unwrap();
    disk.commit(&mut h);

    let (mut h, problems) = disk.reopen(1_000_001);
    assert!(problems.is_empty(), "{problems:?}");
    let ch = h.channel();
    assert!(h.b.queue_info("declared-in-failed-turn").is_some(), "the failed turn's declaration was written again");
    assert_eq!(h.drain(ch, "q"), ["c"], "the ack of the failed turn was written again, 'b' was never stored");
    disk.commit(&mut h);
    assert_eq!(disk.store.count(Collection::Segments), 0);
}

#[test]
fn corrupt_records_are_skipped_and_reported() {
    let mut disk = Disk::new();
    let mut h = H::new();
    let ch = h.channel();
    durable_queue(&mut h, ch, "a", &[]);
    h.publish_msg(ch, persistent("a", "one"), false).unwrap();
    disk.commit(&mut h);
    durable_queue(&mut h, ch, "b", &[]);
    h.publish_msg(ch, persistent("b", "two"), false).unwrap();
    disk.commit(&mut h);
    let segs: Vec<Key> =
        disk.store.records().into_iter().filter(|r| r.collection == Collection::Segments).map(|r| r.key).collect();
    assert_eq!(segs.len(), 2);
    disk.store.overwrite(Collection::Segments, segs[0].clone(), vec![1, 200, 200, 200]);
    disk.store.overwrite(Collection::Acks, Key::Num(99), vec![0xff]);
    disk.store.overwrite(Collection::Exchanges, Key::Str("junk".into()), b"\x05oops".to_vec());
    let (mut h, problems) = disk.reopen(1_000_001);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("segment")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("junk")), "{problems:?}");
    let ch = h.channel();
    assert_eq!(h.drain(ch, "a"), Vec::<String>::new(), "its segment was corrupt");
    assert_eq!(h.drain(ch, "b"), ["two"]);
}

/// A tiny deterministic generator for the random schedule below.
struct Rng(u64);
impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// Random publishes, gets, acks, requeues, failed transactions and crashes: after every
/// crash the recovered queues hold exactly the stored messages not acked, in order.
#[test]
fn random_schedules_recover_exactly_what_was_committed() {
    let seeds: u64 = std::env::var("STORE_SCHEDULES").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    for seed in 1..=seeds {
        let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let mut disk = Disk::new();
        let mut h = H::new();
        let mut ch = h.channel();
        for q in ["q0", "q1"] {
            durable_queue(&mut h, ch, q, &[]);
        }
        disk.commit(&mut h);
        // What the store must hold: per queue, committed bodies not acked (in order).
        let mut model: Vec<Vec<u32>> = vec![Vec::new(), Vec::new()];
        // This turn's changes, applied to the model when the turn commits.
        let mut turn_puts: Vec<(usize, u32)> = Vec::new();
        let mut turn_acks: Vec<(usize, u32)> = Vec::new();
        // Deliveries out, unacked: (tag, queue, body).
        let mut out: Vec<(u64, usize, u32)> = Vec::new();
        let mut next = 0u32;
        for _step in 0..300 {
            match rng.below(10) {
                0..=3 => {
                    let q = rng.below(2) as usize;
                    next += 1;
                    h.publish_msg(ch, persistent(["q0", "q1"][q], &next.to_string()), false).unwrap();
                    turn_puts.push((q, next));
                }
                4 | 5 => {
                    let q = rng.below(2) as usize;
                    disk.page_in(&mut h, 4);
                    if let Some(g) = h.get(ch, ["q0", "q1"][q], false).unwrap() {
                        out.push((g.delivery.delivery_tag, q, body(&g.delivery.message).parse().unwrap()));
                    }
                }
                6 if !out.is_empty() => {
                    let (tag, q, b) = out.remove(rng.below(out.len() as u64) as usize);
                    if rng.below(3) == 0 {
                        h.nack(ch, tag, false, true).unwrap();
                    } else {
                        h.ack(ch, tag, false).unwrap();
                        turn_acks.push((q, b));
                    }
                }
                7 => {
                    if rng.below(4) == 0 {
                        // Storage full: this turn's messages are not stored; its acks are
                        // written with the next batch that commits, so they stay pending.
                        disk.fail(&mut h);
                        turn_puts.clear();
                    } else {
                        disk.commit(&mut h);
                        disk.page_out(&mut h, 3);
                        for (q, b) in turn_puts.drain(..) {
                            model[q].push(b);
                        }
                        for (q, b) in turn_acks.drain(..) {
                            model[q].retain(|x| *x != b);
                        }
                    }
                }
                8 if rng.below(4) == 0 => {
                    // Crash: whatever was not committed is gone.
                    let now = h.now + 1;
                    drop(h);
                    let (h2, problems) = disk.reopen(now);
                    assert!(problems.is_empty(), "seed {seed}: {problems:?}");
                    h = h2;
                    ch = h.channel();
                    // Anything not yet written is lost: uncommitted puts; uncommitted acks
                    // leave their messages in place.
                    turn_puts.clear();
                    turn_acks.clear();
                    out.clear();
                    for (q, name) in ["q0", "q1"].iter().enumerate() {
                        let mut got: Vec<u32> = Vec::new();
                        disk.page_out(&mut h, 2);
                        while let Some(g) = {
                            disk.page_in(&mut h, 4);
                            h.get(ch, name, false).unwrap()
                        } {
                            got.push(body(&g.delivery.message).parse().unwrap());
                        }
                        let mut want = model[q].clone();
                        want.sort_unstable();
                        let mut sorted = got.clone();
                        sorted.sort_unstable();
                        assert_eq!(sorted, want, "seed {seed}: queue {name} after a crash");
                        assert!(got.windows(2).all(|w| w[0] < w[1]), "seed {seed}: FIFO kept in {name}: {got:?}");
                        h.run(|b, now| b.recover(ch, now)).unwrap();
                    }
                }
                _ => {}
            }
        }
    }
}

#[test]
fn deep_queues_page_out_bodies_and_page_them_back_in_order() {
    let mut disk = Disk::new();
    let mut h = H::new();
    let ch = h.channel();
    durable_queue(&mut h, ch, "deep", &[]);
    durable_queue(&mut h, ch, "prio", &[("x-max-priority", int(3))]);
    for i in 0..1000 {
        h.publish_msg(ch, persistent("deep", &i.to_string()), false).unwrap();
        if i % 100 == 0 {
            h.publish(ch, "", "deep", &format!("t{i}")).unwrap(); // transient: never paged
        }
    }
    h.publish_msg(ch, persistent("prio", "p"), false).unwrap();
    assert_eq!(disk.page_out(&mut h, 10), 0, "nothing is committed yet");
    disk.commit(&mut h);
    let dropped = disk.page_out(&mut h, 10);
    assert_eq!(dropped, 1000 - 10 + 1, "all but the first 10 entries, less the transient ones");
    assert_eq!(disk.page_out(&mut h, 10), 0, "considered once");
    h.b.check_invariants().unwrap();
    assert_eq!(h.info("deep").ready, 1010, "paged messages still count");
    // Consume everything, paging in ahead of the head as the host does.
    let mut got = Vec::new();
    loop {
        disk.page_in(&mut h, 64);
        match h.get(ch, "deep", true).unwrap() {
            Some(g) => got.push(body(&g.delivery.message)),
            None => break,
        }
    }
    let mut want: Vec<String> = Vec::new();
    for i in 0..1000 {
        want.push(i.to_string());
        if i % 100 == 0 {
            want.push(format!("t{i}"));
        }
    }
    assert_eq!(got, want, "every message once, in order");
    assert_eq!(h.drain(ch, "prio"), ["p"], "a priority queue does not page");
}

#[test]
fn recovery_can_leave_deep_messages_paged_out() {
    let mut disk = Disk::new();
    let mut h = H::new();
    let ch = h.channel();
    durable_queue(&mut h, ch, "deep", &[]);
    for i in 0..300 {
        h.publish_msg(ch, persistent("deep", &i.to_string()), false).unwrap();
    }
    disk.commit(&mut h);
    drop(h);
    // Stream the segments as the host does, a segment at a time, keeping the first 20 bodies only.
    let (segs, rest): (Vec<_>, Vec<_>) =
        disk.store.records().into_iter().partition(|r| r.collection == Collection::Segments);
    assert_eq!(segs.len(), 2);
    let mut h = H::new();
    let mut recovery = Recovery::start(&mut h.b, rest, Vec::new(), 20, h.now);
    for r in segs {
        let Key::Num(id) = r.key else { unreachable!() };
        recovery.segments(&mut h.b, vec![(id, r.value)]);
    }
    let (log, problems) = recovery.finish(&mut h.b);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(h.b.page_in_wanted(300, |_| false)[0].1.len(), 280, "all but the first 20 paged out");
    disk.log = log;
    h.b.check_invariants().unwrap();
    let ch = h.channel();
    let mut got = Vec::new();
    loop {
        disk.page_in(&mut h, 16);
        match h.get(ch, "deep", true).unwrap() {
            Some(g) => got.push(body(&g.delivery.message)),
            None => break,
        }
    }
    assert_eq!(got, (0..300).map(|i| i.to_string()).collect::<Vec<_>>());
}

/// A broker that keeps delivery horizons, as the host's does with storage.
fn horizon_broker() -> H {
    H { b: Broker::new(BrokerConfig { seed: 1, delivery_horizon: true, ..Default::default() }), ..H::new() }
}

/// A broker with delivery horizons, one channel, durable queue "q" (with a consumer on
/// the channel under `prefetch`, if given), and m1..=mn published to it.
fn horizon_queue(prefetch: Option<u32>, n: usize) -> (Disk, H, ChannelRef) {
    let disk = Disk::new();
    let mut h = horizon_broker();
    let ch = h.channel();
    durable_queue(&mut h, ch, "q", &[]);
    if let Some(p) = prefetch {
        h.run(|b, now| b.prefetch(ch, p, false, now)).unwrap();
        h.consume(ch, "q");
    }
    for i in 1..=n {
        h.publish_msg(ch, persistent("q", &format!("m{i}")), false).unwrap();
    }
    (disk, h, ch)
}

/// `horizon_queue` without consumer, committed.
fn stored_queue(n: usize) -> (Disk, H, ChannelRef) {
    let (mut disk, mut h, ch) = horizon_queue(None, n);
    disk.commit(&mut h);
    (disk, h, ch)
}

/// The horizons the broker asked for since the last call.
fn horizons_asked(h: &mut H) -> Vec<u64> {
    h.effects
        .iter()
        .filter_map(|e| if let Effect::Store(StoreOp::Horizon { through, .. }) = e { Some(*through) } else { None })
        .collect()
}

/// What a crash now would leave of `queue`: (body, redelivered) in order, from a broker
/// recovered from a copy of the store (the disk itself goes on).
fn crash_copy(disk: &Disk, queue: &str) -> Vec<(String, bool)> {
    let mut copy = Disk { log: Log::new(), store: disk.store.clone() };
    let (mut h, problems) = copy.reopen_with(9_000_000, false);
    assert!(problems.is_empty(), "{problems:?}");
    let ch = h.channel();
    drain_flags(&mut h, ch, queue).into_iter().map(|(b, r, _)| (b, r)).collect()
}

fn flags(list: &[(&str, bool)]) -> Vec<(String, bool)> {
    list.iter().map(|(b, r)| (b.to_string(), *r)).collect()
}

/// Bug 3 of the README's fault schedules: a stored message goes out for the first time
/// only once a horizon at or above its position is stored, so a crash at any point
/// brings back every message that may have been seen flagged `redelivered`, and those
/// beyond the horizon unflagged. `get` waits (`get_wait`) while its head is beyond it.
#[test]
fn a_get_waits_for_the_horizon_and_a_crash_flags_what_may_have_gone_out() {
    let (mut disk, mut h, ch) = stored_queue(8);
    // Nothing handed out yet: a get of the head waits for a horizon that covers it.
    assert_eq!(h.run(|b, now| b.get_wait("q", now)), Some(GetWait::Horizon));
    let e = h.get(ch, "q", false).expect_err("beyond the horizon");
    assert_eq!(e.code, ReplyCode::InternalError);
    assert!(h.b.has_channel(ch), "the channel stays open");
    assert_eq!(horizons_asked(&mut h), [1], "the demand of one get, no lookahead after idling");
    let none: Vec<(String, bool)> = (1..=8).map(|i| (format!("m{i}"), false)).collect();
    assert_eq!(crash_copy(&disk, "q"), none, "asked for, not stored: a crash flags nothing");
    disk.commit(&mut h);
    assert_eq!(h.run(|b, now| b.get_wait("q", now)), None);
    let g = h.get(ch, "q", false).unwrap().unwrap();
    assert_eq!((body(&g.delivery.message), g.delivery.redelivered), ("m1".into(), false));
    // Its mark is not stored yet: a crash now flags m1 all the same (it is within the horizon).
    let m1: Vec<(String, bool)> = (1..=8).map(|i| (format!("m{i}"), i == 1)).collect();
    assert_eq!(crash_copy(&disk, "q"), m1);
    // Demand catches up again: the lookahead grows (1, 4, 16, ...), one wait each time.
    let mut waits = 0;
    for i in 2..=8 {
        if i == 3 {
            // The host writes every turn that has something to write.
            disk.commit(&mut h);
        }
        while h.run(|b, now| b.get_wait("q", now)).is_some() {
            waits += 1;
            disk.commit(&mut h);
        }
        let g = h.get(ch, "q", false).unwrap().unwrap();
        assert_eq!(body(&g.delivery.message), format!("m{i}"));
        assert_eq!(h.b.horizon("q").map(|(stored, _)| g.delivery.seq <= stored), Some(true));
    }
    assert!(waits < 7, "{waits} waits for 7 gets: one per get is what this avoids");
    let all: Vec<(String, bool)> = (1..=8).map(|i| (format!("m{i}"), true)).collect();
    assert_eq!(crash_copy(&disk, "q"), all, "all went out, some marks not stored: all flagged");
    disk.commit(&mut h);
    assert_eq!(crash_copy(&disk, "q"), all);
    // A long run of gets waits for a commit about log4(n) times, not n times.
    for i in 0..1000 {
        h.publish_msg(ch, persistent("q", &format!("n{i}")), false).unwrap();
    }
    disk.commit(&mut h);
    let mut waits = 0;
    for i in 0..1000 {
        while h.run(|b, now| b.get_wait("q", now)).is_some() {
            waits += 1;
            disk.commit(&mut h);
        }
        let g = h.get(ch, "q", false).unwrap().unwrap();
        assert_eq!(body(&g.delivery.message), format!("n{i}"));
        h.ack(ch, g.delivery.delivery_tag, false).unwrap();
        if i % 10 == 9 {
            disk.commit(&mut h); // a write every ten gets (acks)
        }
    }
    println!("{waits} waits for 1000 gets");
    assert!(waits <= 12, "{waits} waits for 1000 gets");
}

/// Consumers: nothing goes out before the horizon is stored, then what the consumers
/// have room for; a crash flags those (by the horizon) and not the rest.
#[test]
fn consumers_get_what_the_stored_horizon_covers_and_a_crash_flags_only_that() {
    let (mut disk, mut h, _) = horizon_queue(Some(3), 6);
    assert_eq!(h.bodies(), Vec::<String>::new(), "first deliveries wait for the commit of their horizon");
    assert_eq!(horizons_asked(&mut h), [1, 2, 3], "as messages come, up to the consumer's room");
    disk.commit(&mut h);
    assert_eq!(h.bodies(), ["m1", "m2", "m3"], "the commit with the messages and the horizon lets them go");
    let want = flags(&[("m1", true), ("m2", true), ("m3", true), ("m4", false), ("m5", false), ("m6", false)]);
    assert_eq!(crash_copy(&disk, "q"), want, "their marks are not stored yet, the horizon is");
}

/// With priorities, delivery order is not `seq` order: a head beyond the horizon raises
/// it past itself, so every lower position counts as possibly delivered.
#[test]
fn with_priorities_the_horizon_covers_the_head_and_everything_below_it() {
    let mut disk = Disk::new();
    let mut h = horizon_broker();
    let ch = h.channel();
    durable_queue(&mut h, ch, "p", &[("x-max-priority", int(5))]);
    for (b, p) in [("low1", 0), ("low2", 0), ("high", 5), ("low3", 0)] {
        let mut m = persistent("p", b);
        m.properties.priority = Some(p);
        h.publish_msg(ch, m, false).unwrap();
    }
    disk.commit(&mut h);
    assert_eq!(h.run(|b, now| b.get_wait("p", now)), Some(GetWait::Horizon));
    assert_eq!(horizons_asked(&mut h), [3], "the head is 'high', at position 3");
    disk.commit(&mut h);
    let g = h.get(ch, "p", false).unwrap().unwrap();
    assert_eq!(body(&g.delivery.message), "high");
    let want = flags(&[("high", true), ("low1", true), ("low2", true), ("low3", false)]);
    assert_eq!(crash_copy(&disk, "p"), want, "low1 and low2 may have gone out as far as the store knows");
}

/// A reopened broker takes the stored horizon back, and numbers new messages above it:
/// they were never handed out, and a crash brings them back unflagged.
#[test]
fn the_horizon_survives_recovery_and_new_messages_start_above_it() {
    let (mut disk, mut h, _) = horizon_queue(Some(5), 2);
    disk.commit(&mut h);
    assert_eq!(h.bodies(), ["m1", "m2"]);
    assert_eq!(h.b.horizon("q"), Some((2, 2)), "two messages were there for five places");
    drop(h);
    let (mut h, problems) = disk.reopen_with(2_000_000, true);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(h.b.horizon("q"), Some((2, 2)));
    let ch = h.channel();
    h.publish_msg(ch, persistent("q", "new"), false).unwrap();
    let seqs: Vec<u64> = h
        .effects
        .iter()
        .filter_map(|e| if let Effect::Store(op) = e { Some(op) } else { None })
        .filter_map(|op| if let StoreOp::PutMessage { seq, .. } = op { Some(*seq) } else { None })
        .collect();
    assert_eq!(seqs, [3]);
    disk.commit(&mut h);
    let want = flags(&[("m1", true), ("m2", true), ("new", false)]);
    assert_eq!(crash_copy(&disk, "q"), want);
}

/// A horizon written for a queue that was deleted and declared again before the write
/// committed is not the new queue's: the log does not hand it to the broker.
#[test]
fn a_horizon_of_a_deleted_queue_is_not_given_to_the_queue_declared_again() {
    let mut disk = Disk::new();
    let mut h = horizon_broker();
    let ch = h.channel();
    durable_queue(&mut h, ch, "q", &[]);
    h.publish_msg(ch, persistent("q", "old"), false).unwrap();
    assert_eq!(h.run(|b, now| b.get_wait("q", now)), Some(GetWait::Horizon));
    for op in h.store_ops() {
        disk.log.apply(&op);
    }
    let batch = disk.log.take_batch(h.now).expect("a batch");
    assert_eq!(disk.log.horizons(&batch).len(), 1);
    h.run(|b, now| b.delete_queue(ch, "q", false, false, now)).unwrap();
    durable_queue(&mut h, ch, "q", &[]);
    h.publish_msg(ch, persistent("q", "new"), false).unwrap();
    for op in h.store_ops() {
        disk.log.apply(&op);
    }
    disk.store.apply(&batch);
    disk.log.batch_committed(&batch);
    assert_eq!(disk.log.horizons(&batch), [], "the queue's store id changed");
    assert_eq!(h.b.horizon("q"), Some((0, 0)));
    assert_eq!(h.run(|b, now| b.get_wait("q", now)), Some(GetWait::Horizon), "'new' still waits");
}

/// `flush()` lowers the horizon to what was handed out: after it, a crash flags exactly
/// the messages delivered, not the lookahead beyond them.
#[test]
fn a_retracted_horizon_flags_exactly_what_went_out() {
    let (mut disk, mut h, ch) = stored_queue(20);
    for _ in 0..5 {
        while h.run(|b, now| b.get_wait("q", now)).is_some() {
            disk.commit(&mut h);
        }
        h.get(ch, "q", false).unwrap().unwrap();
        disk.commit(&mut h);
    }
    let (stored, asked) = h.b.horizon("q").unwrap();
    assert!(asked > 5 && stored >= 5, "a lookahead beyond the five delivered: {stored}, {asked}");
    h.run(|b, now| b.retract_horizons(now));
    assert_eq!(h.b.horizon("q"), Some((5, 5)));
    // A write of the old horizon still in flight would not raise it again.
    h.run(|b, now| b.horizon_stored("q", asked, now));
    assert_eq!(h.b.horizon("q"), Some((5, 5)));
    disk.commit(&mut h);
    let want: Vec<(String, bool)> = (1..=20).map(|i| (format!("m{i}"), i <= 5)).collect();
    assert_eq!(crash_copy(&disk, "q"), want);
    // The next get asks again, the lookahead starting over (at 1, as no second passed).
    assert_eq!(h.run(|b, now| b.get_wait("q", now)), Some(GetWait::Horizon));
    assert_eq!(h.b.horizon("q"), Some((5, 7)));
}

/// Bug 4 of the README's fault schedules: storage refuses a write while a first delivery
/// waits for its horizon. The delivery keeps waiting unless the fence's deletion commits
/// (full storage refuses puts but takes deletes); once it has, deliveries go on, and a
/// crash brings every stored message back flagged. The next write that commits puts the
/// fence back with the horizons of what went out meanwhile.
#[test]
fn a_refused_write_frees_deliveries_only_once_the_fence_is_gone() {
    let (mut disk, mut h, ch) = stored_queue(6);
    h.run(|b, now| b.prefetch(ch, 2, false, now)).unwrap();
    h.consume(ch, "q");
    assert_eq!(h.bodies(), Vec::<String>::new(), "waiting for a horizon");
    let unfence = disk.fail(&mut h).expect("a delivery waits: the fence's deletion is next");
    assert_eq!(h.bodies(), Vec::<String>::new(), "the horizon was not stored: still waiting");
    // The deletion fails too (storage refuses everything): still waiting, asking again.
    let unfence = disk.write(&mut h, unfence, false).expect("asked again");
    assert_eq!(h.bodies(), Vec::<String>::new());
    let none: Vec<(String, bool)> = (1..=6).map(|i| (format!("m{i}"), false)).collect();
    assert_eq!(crash_copy(&disk, "q"), none, "the fence stands: nothing flagged");
    // The deletion commits: deliveries go on, and a crash would flag them all.
    assert!(disk.write(&mut h, unfence, true).is_none());
    assert!(!disk.log.is_fenced());
    assert_eq!(h.bodies(), ["m1", "m2"]);
    let all: Vec<(String, bool)> = (1..=6).map(|i| (format!("m{i}"), true)).collect();
    assert_eq!(crash_copy(&disk, "q"), all, "no fence: everything may have gone out");
    // More writes fail meanwhile (the ack of m1 is not stored): deliveries still go on.
    h.ack(ch, 1, false).unwrap();
    assert!(disk.fail(&mut h).is_none(), "no fence to delete");
    assert_eq!(h.bodies(), ["m3"]);
    assert_eq!(crash_copy(&disk, "q"), all, "m1's ack is not stored: it comes back too, flagged");
    // Storage takes writes again: the fence goes back with the horizon over m3.
    disk.commit(&mut h);
    assert!(disk.log.is_fenced());
    let want = flags(&[("m2", true), ("m3", true), ("m4", false), ("m5", false), ("m6", false)]);
    assert_eq!(crash_copy(&disk, "q"), want);
    // And first deliveries wait for stored horizons again.
    h.ack(ch, 2, false).unwrap();
    assert_eq!(h.bodies(), Vec::<String>::new(), "m4 waits for its horizon");
    disk.commit(&mut h);
    assert_eq!(h.bodies(), ["m4"]);
}

/// A store without the fence (one that an older tabbit wrote, or one whose fence was
/// deleted before a crash) brings every stored message back flagged, and keeps them
/// flagged after the next crash too: the first write stores horizons over them with the
/// fence. New messages go above, unflagged.
#[test]
fn a_store_without_fence_flags_every_message_and_stores_that() {
    let (mut disk, h, _) = stored_queue(4);
    drop(h);
    disk.store.apply(&disk.log.unfence_batch());
    let (mut h, problems) = disk.reopen_with(2_000_000, true);
    assert!(problems.is_empty(), "{problems:?}");
    assert!(disk.log.is_fenced(), "the recovery's write put the fence back");
    assert_eq!(h.b.horizon("q"), Some((4, 4)));
    let all: Vec<(String, bool)> = (1..=4).map(|i| (format!("m{i}"), true)).collect();
    assert_eq!(crash_copy(&disk, "q"), all);
    let ch = h.channel();
    h.publish_msg(ch, persistent("q", "new"), false).unwrap();
    disk.commit(&mut h);
    let mut want = all.clone();
    want.push(("new".into(), false));
    assert_eq!(crash_copy(&disk, "q"), want);
}
