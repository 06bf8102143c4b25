#![cfg(not(target_arch = "wasm32"))]
//! The host's engine, natively: group commit, confirms held until their batch commits,
//! failed writes (nacks that say what to do, retries after a backoff), the fence's
//! deletion after a failure and its abandonment on a newer version, `flush()`, paging and
//! wake-ups, driven as the browser driver drives it, with a memory store for storage.

mod common;

use common::{body, int};
use tabbit::core::*;
use tabbit::host::engine::*;
use tabbit::store::{Collection, Key, Log, MemoryStore};

/// An engine and what its driver sees: the store, and the events so far.
struct T {
    e: Engine,
    now: u64,
    store: MemoryStore,
    events: Vec<Event>,
    done: Vec<Done>,
}

fn quota() -> WriteOutcome {
    WriteOutcome::QuotaExceeded("QuotaExceededError: the quota has been exceeded".into())
}

fn upgraded() -> WriteOutcome {
    WriteOutcome::Upgraded("VersionError: the database was upgraded".into())
}

impl T {
    /// With storage (a log and delivery horizons, as the host has them) or without.
    fn new(storage: bool, paging: Option<Paging>) -> T {
        let core = Broker::new(BrokerConfig { seed: 1, delivery_horizon: storage, ..Default::default() });
        let log = storage.then(Log::new);
        T {
            e: Engine::new(core, log, paging),
            now: 1_000_000,
            store: MemoryStore::new(),
            events: Vec::new(),
            done: Vec::new(),
        }
    }

    fn stored() -> T {
        T::new(true, None)
    }

    /// Runs a command and collects what came out.
    fn cmd<R>(&mut self, f: impl FnOnce(&mut Broker, u64) -> R) -> R {
        let now = self.now;
        let r = self.e.with(now, |b| f(b, now));
        self.collect();
        r
    }

    fn collect(&mut self) {
        while let Some(e) = self.e.poll_event() {
            self.events.push(e);
        }
        while let Some(d) = self.e.poll_done() {
            self.done.push(d);
        }
    }

    /// A channel in confirm mode.
    fn channel(&mut self) -> ChannelRef {
        self.cmd(|b, _| {
            let c = b.connect();
            let ch = b.open_channel(c).unwrap();
            b.confirm_select(ch).unwrap();
            ch
        })
    }

    fn queue(&mut self, ch: ChannelRef, name: &str, durable: bool, exclusive: bool) {
        let d = QueueDeclare { name: name.into(), durable, exclusive, ..Default::default() };
        self.cmd(|b, now| b.declare_queue(ch, d, now)).unwrap();
    }

    fn publish(&mut self, ch: ChannelRef, queue: &str, text: &str, persistent: bool) {
        let mut m = Message::new("", queue, text.as_bytes().to_vec());
        m.properties.persistent = persistent;
        self.cmd(|b, now| b.publish(ch, m, false, now)).unwrap();
    }

    fn consume(&mut self, ch: ChannelRef, queue: &str, prefetch: u32) {
        self.cmd(|b, now| b.prefetch(ch, prefetch, false, now)).unwrap();
        let c = Consume { queue: queue.into(), ..Default::default() };
        self.cmd(|b, now| b.consume(ch, c, now)).unwrap();
    }

    /// The transaction the driver would run now.
    fn poll(&mut self) -> Option<Transaction> {
        let t = self.e.poll_write(self.now);
        self.collect();
        t
    }

    /// Ends transaction `t` as `outcome` says (committed: the store takes its writes,
    /// after emptying itself if the transaction says so).
    fn end(&mut self, t: Transaction, outcome: WriteOutcome) {
        if outcome == WriteOutcome::Committed {
            if t.clear {
                self.store = MemoryStore::new();
            }
            self.store.write(&t.writes);
        }
        self.e.write_done(t.id, outcome, self.now);
        self.collect();
    }

    /// Runs the next transaction, which must be there, to the end.
    fn write(&mut self, outcome: WriteOutcome) {
        assert!(self.e.wants_write(self.now), "something to write");
        let t = self.poll().expect("a transaction");
        self.end(t, outcome);
    }

    fn commit(&mut self) {
        self.write(WriteOutcome::Committed);
    }

    /// The confirms given since the last call: (seq, Ok or the error's message).
    fn confirms(&mut self) -> Vec<(u64, Result<(), String>)> {
        let mut out = Vec::new();
        self.events.retain(|e| match e {
            Event::Confirm { seq, result, .. } => {
                out.push((*seq, result.clone().map_err(|e| e.message)));
                false
            }
            _ => true,
        });
        out
    }

    fn acks(&mut self) -> Vec<u64> {
        self.confirms().into_iter().map(|(seq, r)| r.map(|()| seq).expect("an ack")).collect()
    }

    /// The bodies delivered since the last call.
    fn bodies(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        self.events.retain(|e| match e {
            Event::Deliver(d) => {
                out.push(body(&d.message));
                false
            }
            _ => true,
        });
        out
    }

    /// The waits over since the last call: (id, Ok or the error's message).
    fn waits(&mut self) -> Vec<(u64, Result<(), String>)> {
        self.done.drain(..).map(|d| (d.id, d.result.map_err(|e| e.message))).collect()
    }

    /// Waits as the driver does until the time of the next wake-up, and wakes.
    fn sleep(&mut self) {
        self.now = self.e.next_wakeup().expect("a wake-up");
        self.e.wake(self.now);
        self.collect();
    }

    /// Whether the fence stands in the store.
    fn fence_stored(&self) -> bool {
        self.store.records().iter().any(|r| r.collection == Collection::Meta && r.key == Key::Str("fence".into()))
    }
}

/// An engine with storage, a channel in confirm mode and durable queue "q" (not committed).
fn durable_queue() -> (T, ChannelRef) {
    let mut t = T::stored();
    let ch = t.channel();
    t.queue(ch, "q", true, false);
    (t, ch)
}

/// A stored durable queue "q" holding m1..=mn, committed, and a channel in confirm mode.
fn stored_queue(n: usize) -> (T, ChannelRef) {
    let (mut t, ch) = durable_queue();
    for i in 1..=n {
        t.publish(ch, "q", &format!("m{i}"), true);
    }
    t.commit();
    assert_eq!(t.acks(), (1..=n as u64).collect::<Vec<_>>());
    (t, ch)
}

#[test]
fn transient_confirms_are_immediate() {
    let mut t = T::stored();
    let ch = t.channel();
    t.queue(ch, "tmp", false, false);
    t.queue(ch, "q", true, false);
    t.publish(ch, "tmp", "a", true);
    t.publish(ch, "q", "b", false);
    t.publish(ch, "nowhere", "c", true);
    assert_eq!(t.acks(), [1, 2, 3], "not stored: nothing to wait for");
    // Without storage, a persistent message to a durable queue is not stored either.
    let mut t = T::new(false, None);
    let ch = t.channel();
    t.queue(ch, "q", true, false);
    t.publish(ch, "q", "a", true);
    assert_eq!(t.acks(), [1]);
    assert!(!t.e.wants_write(t.now) && t.poll().is_none());
}

#[test]
fn a_durable_confirm_waits_for_its_batch_to_commit() {
    let (mut t, ch) = durable_queue();
    t.publish(ch, "q", "a", true);
    assert_eq!(t.confirms(), [], "held until the write commits");
    assert!(t.e.wants_write(t.now));
    let w = t.poll().expect("a batch");
    assert_eq!(t.confirms(), [], "in flight: still held");
    t.end(w, WriteOutcome::Committed);
    assert_eq!(t.acks(), [1]);
    assert!(!t.e.wants_write(t.now), "nothing more to write");
}

/// One transaction in flight at a time; the confirms of publishes made meanwhile settle
/// with the next batch, all together.
#[test]
fn publishes_during_a_write_gather_into_the_next_batch() {
    let (mut t, ch) = durable_queue();
    t.publish(ch, "q", "m1", true);
    let first = t.poll().expect("a batch");
    for i in 2..=4 {
        t.publish(ch, "q", &format!("m{i}"), true);
    }
    assert!(!t.e.wants_write(t.now), "one write in flight at a time");
    assert!(t.poll().is_none());
    t.end(first, WriteOutcome::Committed);
    assert_eq!(t.acks(), [1], "the first batch held m1 only");
    assert!(t.e.wants_write(t.now));
    let second = t.poll().expect("the next batch");
    let segments = second.writes.iter().filter(|w| w.collection == Collection::Segments).count();
    assert_eq!(segments, 1, "the three messages in one segment of one transaction");
    t.end(second, WriteOutcome::Committed);
    assert_eq!(t.acks(), [2, 3, 4]);
}

/// A failed write nacks the confirms it held with a storage error that says what to do;
/// the next attempt waits 20 ms, the wait doubling with each failure up to a second, and
/// starting over once a write commits.
#[test]
fn a_failed_write_nacks_its_confirms_and_the_next_waits_a_backoff() {
    let (mut t, ch) = durable_queue();
    t.commit();
    let mut seq = 0;
    // A publish, and the write of it ending as `outcome` says: its confirm.
    fn attempt(t: &mut T, ch: ChannelRef, seq: &mut u64, outcome: WriteOutcome) -> Vec<(u64, Result<(), String>)> {
        *seq += 1;
        t.publish(ch, "q", &format!("m{seq}"), true);
        t.write(outcome);
        t.confirms()
    }
    let nacked = attempt(&mut t, ch, &mut seq, quota());
    let [(1, Err(e))] = &nacked[..] else { panic!("{nacked:?}") };
    assert!(e.contains("storage is full") && e.contains("navigator.storage.persist()"), "{e}");
    assert!(e.contains("QuotaExceededError"), "what the storage said: {e}");
    let mut waits = Vec::new();
    let start = t.now;
    waits.push(t.e.next_wakeup().unwrap() - start);
    // No write before the wait is over.
    t.publish(ch, "q", "meanwhile", true);
    seq += 1;
    t.now += 19;
    assert!(!t.e.wants_write(t.now) && t.poll().is_none(), "still waiting");
    t.now += 1;
    assert!(t.e.wants_write(t.now));
    let w = t.poll().expect("the retry");
    t.end(w, WriteOutcome::Failed("UnknownError: disk error".into()));
    let nacked = t.confirms();
    let [(2, Err(e))] = &nacked[..] else { panic!("{nacked:?}") };
    assert!(e.starts_with("the store refused the write (UnknownError: disk error)"), "{e}");
    for _ in 0..6 {
        waits.push(t.e.next_wakeup().unwrap() - t.now);
        t.sleep();
        attempt(&mut t, ch, &mut seq, quota());
    }
    waits.push(t.e.next_wakeup().unwrap() - t.now);
    assert_eq!(waits, [20, 40, 80, 160, 320, 640, 1000, 1000]);
    t.sleep();
    assert_eq!(attempt(&mut t, ch, &mut seq, WriteOutcome::Committed), [(seq, Ok(()))]);
    assert_eq!(t.e.next_wakeup(), None, "no wait after a commit");
    attempt(&mut t, ch, &mut seq, quota());
    assert_eq!(t.e.next_wakeup(), Some(t.now + 20), "the backoff starts over");
    // A newer version's upgrade says to reload.
    t.sleep();
    let nacked = attempt(&mut t, ch, &mut seq, upgraded());
    let [(_, Err(e))] = &nacked[..] else { panic!("{nacked:?}") };
    assert!(e.contains("upgraded this broker's database") && e.contains("reload this context"), "{e}");
}

/// The clock going back during the wait after a failure does not stretch the wait.
#[test]
fn the_backoff_ends_if_the_clock_goes_back() {
    let (mut t, ch) = durable_queue();
    t.write(quota());
    t.publish(ch, "q", "a", true);
    t.now -= 5_000;
    assert!(t.e.wants_write(t.now));
    t.commit();
    assert_eq!(t.acks(), [1]);
}

/// Bug 4 of the README: a write fails while a first delivery waits for its horizon. The
/// next transaction, at once, deletes the fence; once that commits, deliveries go on, and
/// the next batch that commits puts the fence back.
#[test]
fn a_failed_write_while_a_delivery_waits_deletes_the_fence_and_deliveries_go_on() {
    let (mut t, ch) = stored_queue(6);
    assert!(t.fence_stored());
    t.consume(ch, "q", 2);
    assert_eq!(t.bodies(), Vec::<String>::new(), "waiting for a horizon");
    t.write(quota());
    assert_eq!(t.bodies(), Vec::<String>::new(), "the horizon was not stored");
    // The fence's deletion goes next, without waiting.
    assert!(t.e.wants_write(t.now));
    let unfence = t.poll().expect("the fence's deletion");
    assert_eq!(unfence.writes.len(), 1);
    assert_eq!((unfence.writes[0].collection, unfence.writes[0].value.is_none()), (Collection::Meta, true));
    assert!(t.poll().is_none(), "in flight");
    t.end(unfence, WriteOutcome::Committed);
    assert!(!t.fence_stored());
    assert_eq!(t.bodies(), ["m1", "m2"], "deliveries go on");
    // Then the wait after the failure, and deliveries keep going meanwhile.
    assert_eq!(t.e.next_wakeup(), Some(t.now + 20));
    t.cmd(|b, now| b.ack(ch, 1, false, now)).unwrap();
    assert_eq!(t.bodies(), ["m3"]);
    t.sleep();
    t.commit();
    assert!(t.fence_stored(), "the next commit puts the fence back");
    assert!(t.e.log().unwrap().is_fenced());
    // And first deliveries wait for stored horizons again.
    t.cmd(|b, now| b.ack(ch, 2, false, now)).unwrap();
    t.cmd(|b, now| b.ack(ch, 3, false, now)).unwrap();
    assert_eq!(t.bodies(), Vec::<String>::new(), "m4 waits for its horizon");
    t.commit();
    assert_eq!(t.bodies(), ["m4", "m5"]);
}

/// The fence's deletion fails too: deliveries keep waiting, and the next attempt (a
/// batch again) comes after the backoff.
#[test]
fn a_refused_deletion_of_the_fence_keeps_deliveries_waiting() {
    let (mut t, ch) = stored_queue(3);
    t.consume(ch, "q", 1);
    t.write(quota());
    t.write(WriteOutcome::Failed("UnknownError: disk error".into()));
    assert_eq!(t.bodies(), Vec::<String>::new());
    assert!(t.fence_stored());
    assert!(t.poll().is_none(), "waiting");
    t.sleep();
    t.commit();
    assert_eq!(t.bodies(), ["m1"], "the horizon committed with the retry");
}

/// A newer tabbit upgraded the database: the fence's deletion is refused with a
/// VersionError, and no write will ever commit. The fence is abandoned: deliveries go on
/// from memory.
#[test]
fn an_upgrade_by_a_newer_version_abandons_the_fence() {
    let (mut t, ch) = stored_queue(4);
    t.consume(ch, "q", 1);
    t.write(upgraded());
    assert_eq!(t.bodies(), Vec::<String>::new());
    t.write(upgraded());
    assert!(!t.e.log().unwrap().is_fenced(), "counted as gone");
    assert!(t.fence_stored(), "though it stands");
    assert_eq!(t.bodies(), ["m1"]);
    for i in 1..=3 {
        t.cmd(|b, now| b.ack(ch, i, false, now)).unwrap();
    }
    assert_eq!(t.bodies(), ["m2", "m3", "m4"], "with no write committing");
    // Writes are still tried (and fail), but wait for nothing.
    t.sleep();
    t.write(upgraded());
    assert!(!t.e.wants_write(t.now));
}

/// The horizon asked for a durable queue the log does not store (an exclusive one) would
/// never come back from a commit: the engine gives it to the core at once.
#[test]
fn a_horizon_of_a_queue_the_log_does_not_store_is_given_at_once() {
    let mut t = T::stored();
    let ch = t.channel();
    t.queue(ch, "mine", true, true);
    t.consume(ch, "mine", 10);
    t.publish(ch, "mine", "a", true);
    assert_eq!(t.bodies(), ["a"], "no commit waited for");
    assert_eq!(t.acks(), [1], "not stored either");
}

#[test]
fn flush_resolves_after_the_commit_and_rejects_when_it_fails() {
    let (mut t, ch) = durable_queue();
    t.commit();
    // Nothing pending: over at once.
    let id = t.e.flush(t.now);
    t.collect();
    assert_eq!(t.waits(), [(id, Ok(()))]);
    // Pending: over when it commits.
    t.publish(ch, "q", "a", true);
    let id = t.e.flush(t.now);
    t.collect();
    assert_eq!(t.waits(), []);
    let w = t.poll().unwrap();
    // Called while that batch is in flight with nothing new: it waits for that batch.
    let late = t.e.flush(t.now);
    t.collect();
    assert_eq!(t.waits(), []);
    t.end(w, WriteOutcome::Committed);
    assert_eq!(t.waits(), [(id, Ok(())), (late, Ok(()))]);
    // A failed write rejects it, with the storage error.
    t.publish(ch, "q", "b", true);
    let id = t.e.flush(t.now);
    t.write(quota());
    let waits = t.waits();
    let [(got, Err(e))] = &waits[..] else { panic!("{waits:?}") };
    assert!(*got == id && e.contains("storage is full"), "{e}");
    // During the wait after it, with nothing new: settled by the next attempt.
    let id = t.e.flush(t.now);
    t.collect();
    assert_eq!(t.waits(), []);
    t.sleep();
    assert!(t.e.wants_write(t.now));
    if let Some(w) = t.poll() {
        t.end(w, WriteOutcome::Committed);
    }
    assert_eq!(t.waits(), [(id, Ok(()))]);
}

/// `flush()` retracts the horizons to what was handed out before it waits.
#[test]
fn flush_retracts_the_horizons_first() {
    let (mut t, ch) = stored_queue(20);
    t.consume(ch, "q", 3);
    t.commit();
    assert_eq!(t.bodies(), ["m1", "m2", "m3"]);
    let (stored, _) = t.e.core().horizon("q").unwrap();
    let id = t.e.flush(t.now);
    assert_eq!(t.e.core().horizon("q"), Some((3, 3)), "down from {stored} to what went out");
    t.commit();
    assert_eq!(t.waits(), [(id, Ok(()))]);
}

/// A get whose head waits for a horizon gets a wait for the next commit.
#[test]
fn get_wait_waits_for_the_commit_of_the_horizon() {
    let (mut t, ch) = stored_queue(2);
    let id = t.e.get_wait("q", t.now).expect("beyond the horizon");
    t.collect();
    assert_eq!(t.waits(), []);
    t.commit();
    assert_eq!(t.waits(), [(id, Ok(()))]);
    assert_eq!(t.e.get_wait("q", t.now), None);
    let g = t.cmd(|b, now| b.get(ch, "q", true, now)).unwrap().unwrap();
    assert_eq!(body(&g.delivery.message), "m1");
}

/// Committed bodies deep in a queue page out after the commit; page-ins are asked for
/// once per queue at a time, a failed read is asked for again, and a get waiting for a
/// paged head is told when it is in.
#[test]
fn bodies_page_out_after_a_commit_and_back_in() {
    let mut t = T::new(true, Some(Paging { keep_loaded: 2, window: 2 }));
    let ch = t.channel();
    t.queue(ch, "q", true, false);
    for i in 1..=6 {
        t.publish(ch, "q", &format!("m{i}"), true);
    }
    assert!(t.e.page_ins_wanted().is_empty(), "nothing committed, nothing paged");
    t.commit();
    assert!(!t.e.core().head_paged("q") && t.e.page_ins_wanted().is_empty(), "beyond the window");
    let mut got = Vec::new();
    for _ in 0..2 {
        while let Some(id) = t.e.get_wait("q", t.now) {
            t.commit();
            assert_eq!(t.waits().last().map(|w| w.0), Some(id));
        }
        got.push(body(&t.cmd(|b, now| b.get(ch, "q", true, now)).unwrap().unwrap().delivery.message));
    }
    let wait = t.e.get_wait("q", t.now).expect("the head is paged out");
    let wanted = t.e.page_ins_wanted();
    assert_eq!(wanted.len(), 1);
    assert_eq!((&*wanted[0].queue, &wanted[0].seqs[..]), ("q", &[3, 4][..]));
    assert!(t.e.page_ins_wanted().is_empty(), "under way");
    let page = wanted.into_iter().next().unwrap();
    t.e.page_in_done(page, None, t.now);
    t.collect();
    assert_eq!(t.waits(), [], "the read failed");
    let page = t.e.page_ins_wanted().pop().expect("asked again");
    let read = t.store.segments(&page.segments);
    t.e.page_in_done(page, Some(read), t.now);
    t.collect();
    assert_eq!(t.waits(), [(wait, Ok(()))]);
    loop {
        for page in t.e.page_ins_wanted() {
            let read = t.store.segments(&page.segments);
            t.e.page_in_done(page, Some(read), t.now);
        }
        match t.e.get_wait("q", t.now) {
            Some(_) => t.commit(),
            None => match t.cmd(|b, now| b.get(ch, "q", true, now)).unwrap() {
                Some(g) => got.push(body(&g.delivery.message)),
                None => break,
            },
        }
    }
    assert_eq!(got, ["m1", "m2", "m3", "m4", "m5", "m6"]);
    // A head wait that is over at once.
    t.waits();
    let id = t.e.head_loaded("q");
    t.collect();
    assert_eq!(t.waits(), [(id, Ok(()))]);
}

/// The core's deadlines are wake-ups too; `wake` runs its clock.
#[test]
fn the_cores_next_deadline_is_a_wakeup() {
    let mut t = T::stored();
    let ch = t.channel();
    let d = QueueDeclare {
        name: "ttl".into(),
        arguments: common::table(&[("x-message-ttl", int(500))]),
        ..Default::default()
    };
    t.cmd(|b, now| b.declare_queue(ch, d, now)).unwrap();
    t.publish(ch, "ttl", "a", false);
    assert_eq!(t.e.next_wakeup(), Some(t.now + 500));
    t.sleep();
    assert_eq!(t.e.core().queue_info("ttl").unwrap().ready, 0, "expired");
    assert_eq!(t.e.next_wakeup(), None);
}

#[test]
fn a_closed_engine_writes_nothing_and_confirms_at_once() {
    let (mut t, ch) = durable_queue();
    t.commit();
    t.e.close();
    t.publish(ch, "q", "a", true);
    assert_eq!(t.acks(), [1]);
    assert!(!t.e.wants_write(t.now) && t.poll().is_none());
    assert_eq!(t.e.next_wakeup(), None);
}

/// A message handed out before the transaction that stores it fails (its queue's horizon
/// was stored already) cannot be taken back from its consumer: its publisher is nacked,
/// and it stays with the consumer as the transient message it now is. Returned to its
/// queue or acked, it writes nothing (the store never had it), and deeper messages still
/// page out past it.
#[test]
fn a_message_handed_out_before_its_transaction_failed_is_transient_from_then_on() {
    let (mut t, ch) = stored_queue(1);
    t.consume(ch, "q", 10);
    t.commit();
    assert_eq!(t.bodies(), ["m1"]);
    t.acks();
    // As deliveries keep coming the horizon looks further ahead: soon a message goes out
    // before the transaction that stores it.
    let mut n = 1;
    let early = loop {
        n += 1;
        assert!(n < 50, "the horizon never got ahead");
        t.publish(ch, "q", &format!("m{n}"), true);
        let at_once = t.bodies();
        if !at_once.is_empty() {
            break at_once;
        }
        t.commit();
        assert_eq!(t.bodies(), [format!("m{n}")]);
        t.cmd(|b, now| b.ack(ch, 0, true, now)).unwrap();
        t.acks();
    };
    assert_eq!(early, [format!("m{n}")]);
    t.write(quota());
    assert!(matches!(&t.confirms()[..], [(s, Err(_))] if *s == n as u64), "its publisher is nacked");
    t.e.keep_effects();
    t.cmd(|b, now| b.nack(ch, 0, true, true, now)).unwrap();
    assert_eq!(t.bodies(), [format!("m{n}")], "back to the consumer, redelivered");
    t.cmd(|b, now| b.ack(ch, 0, true, now)).unwrap();
    let stored_ops: Vec<Effect> = t.e.take_effects().into_iter().filter(|e| matches!(e, Effect::Store(_))).collect();
    assert!(stored_ops.is_empty(), "the store never had it: its return and ack write nothing: {stored_ops:?}");
}

fn emptied() -> WriteOutcome {
    WriteOutcome::Emptied("TabbitStoreEmptied: the database was deleted while the broker ran".into())
}

/// Gets every ready message of `queue` from a broker recovered from `store`, with ack:
/// (body, redelivered, delivery count).
fn recovered(store: &MemoryStore, queue: &str) -> (Broker, Vec<(String, bool, u32)>) {
    let (_log, recovered) = Log::recover(store.records());
    if std::env::var("DEBUG_REC").is_ok() {
        eprintln!(
            "records {:?}",
            store.records().iter().map(|r| (r.collection, r.key.clone(), r.value.len())).collect::<Vec<_>>()
        );
        eprintln!(
            "recovered {:?}",
            recovered.queues.iter().map(|q| (q.name.clone(), q.messages.len())).collect::<Vec<_>>()
        );
    }
    let mut b = Broker::new(BrokerConfig { seed: 2, ..Default::default() });
    let problems = tabbit::store::restore(&mut b, recovered, 2_000_000);
    assert_eq!(problems, Vec::<String>::new());
    let conn = b.connect();
    let ch = b.open_channel(conn).unwrap();
    let mut out = Vec::new();
    while let Some(g) = b.get(ch, queue, true, 2_000_000).unwrap() {
        out.push((body(&g.delivery.message), g.delivery.redelivered, g.delivery.delivery_count));
    }
    (b, out)
}

/// The browser deleted the database under the broker (the site's data cleared): the
/// engine writes everything durable it holds again, in one transaction that empties the
/// store first. A confirm that waited for the write the emptied store refused comes with
/// that transaction; what was confirmed before survives a restart, with its handed-out
/// marks and delivery counts; transient things are not written.
#[test]
fn a_store_emptied_under_the_broker_is_written_again_from_memory() {
    let (mut t, ch) = stored_queue(5);
    t.queue(ch, "tmp", false, false);
    let x = ExchangeDeclare { name: "x".into(), kind: "fanout".into(), durable: true, ..Default::default() };
    t.cmd(|b, now| b.declare_exchange(ch, x, now)).unwrap();
    t.cmd(|b, now| b.bind_queue(ch, "q", "x", "", Table::new(), now)).unwrap();
    t.cmd(|b, now| b.bind_queue(ch, "tmp", "x", "", Table::new(), now)).unwrap();
    t.publish(ch, "q", "t1", false);
    // m1 unacked on a channel; m2 handed out and returned (delivery count 1).
    let get = |t: &mut T| {
        while t.e.get_wait("q", t.now).is_some() {
            t.commit();
        }
        t.cmd(|b, now| b.get(ch, "q", false, now)).unwrap().unwrap()
    };
    let g1 = get(&mut t);
    let g2 = get(&mut t);
    t.cmd(|b, now| b.nack(ch, g2.delivery.delivery_tag, false, true, now)).unwrap();
    t.commit();
    assert_eq!(body(&g1.delivery.message), "m1");
    t.confirms();
    t.waits();

    // The store is gone; a publish's write finds it so.
    t.store = MemoryStore::new();
    t.publish(ch, "q", "m6", true);
    let w = t.e.flush(t.now);
    t.write(emptied());
    assert_eq!(t.confirms(), [], "the confirm waits for the rewrite");
    assert_eq!(t.waits(), [], "so does flush()");
    assert_eq!(t.e.emptied(), Some(Emptied { at: t.now, lost: Some(0) }));
    let rewrite = t.poll().expect("the rewrite");
    assert!(rewrite.clear, "it empties the store first");
    t.end(rewrite, WriteOutcome::Committed);
    assert_eq!(t.acks(), [7], "m6, the 7th publish of the channel (t1 was the 6th)");
    assert_eq!(t.waits(), [(w, Ok(()))]);
    assert!(t.fence_stored());

    let (b, got) = recovered(&t.store, "q");
    let want =
        [("m1", true, 0), ("m2", true, 1), ("m3", false, 0), ("m4", false, 0), ("m5", false, 0), ("m6", false, 0)];
    assert_eq!(got, want.map(|(m, r, n)| (m.to_string(), r, n)));
    assert!(b.queue_info("tmp").is_none(), "a transient queue is not stored");
    let bound: Vec<_> =
        b.binding_infos().into_iter().map(|i| (i.source.to_string(), i.destination.to_string())).collect();
    assert_eq!(bound, [("x".to_string(), "q".to_string())]);

    // From then on, writes go on as before.
    t.cmd(|b, now| b.ack(ch, g1.delivery.delivery_tag, false, now)).unwrap();
    t.commit();
    assert!(!t.poll().is_some_and(|w| w.clear));
    let (_, got) = recovered(&t.store, "q");
    assert_eq!(got.first().map(|g| g.0.as_str()), Some("m2"));
}

/// Found emptied by a read (a page-in) while a batch is in flight: the rebuild waits for
/// that batch, whose writes went to the emptied store; the messages whose bodies were paged
/// out to the store are gone, counted, and leave their queue.
#[test]
fn a_store_found_emptied_by_a_read_loses_only_what_was_paged_out() {
    let mut t = T::new(true, Some(Paging { keep_loaded: 2, window: 2 }));
    let ch = t.channel();
    t.queue(ch, "q", true, false);
    for i in 1..=6 {
        t.publish(ch, "q", &format!("m{i}"), true);
    }
    t.commit();
    assert_eq!(t.acks().len(), 6);
    t.publish(ch, "q", "m7", true);
    let in_flight = t.poll().expect("a batch");
    t.store = MemoryStore::new();
    t.e.store_emptied(t.now);
    assert_eq!(t.e.emptied(), None, "not before the batch in flight ends");
    t.end(in_flight, WriteOutcome::Committed);
    assert_eq!(t.confirms(), [], "its confirm waits for the rewrite");
    let lost = t.e.emptied().expect("rebuilt").lost;
    assert_eq!(lost, Some(4), "m3..m6 were paged out");
    assert_eq!(t.e.core().queue_info("q").unwrap().ready, 3);
    let rewrite = t.poll().expect("the rewrite");
    assert!(rewrite.clear);
    t.end(rewrite, WriteOutcome::Committed);
    assert_eq!(t.acks(), [7]);
    let (_, got) = recovered(&t.store, "q");
    assert_eq!(got.into_iter().map(|g| g.0).collect::<Vec<_>>(), ["m1", "m2", "m7"]);
}

/// First deliveries wait for a delivery horizon whose write finds the store emptied: the
/// rewrite carries the horizon asked for, and they go out once it commits.
#[test]
fn deliveries_waiting_for_a_horizon_go_on_after_the_rewrite() {
    let (mut t, _) = stored_queue(2);
    let c = t.channel();
    t.consume(c, "q", 10);
    assert_eq!(t.bodies(), Vec::<String>::new(), "they wait for the horizon");
    t.store = MemoryStore::new();
    t.write(emptied());
    assert_eq!(t.bodies(), Vec::<String>::new());
    let rewrite = t.poll().expect("the rewrite");
    assert!(rewrite.clear);
    t.end(rewrite, WriteOutcome::Committed);
    assert_eq!(t.bodies(), ["m1", "m2"]);
}
