#![cfg(not(target_arch = "wasm32"))]
//! The deterministic simulation of the whole mesh (`tests/common/sim.rs`): seeded random
//! schedules of contexts, posts, locks, store transactions, crashes, restarts and
//! starvation, with the invariants checked after every step.
//!
//! `cargo test` runs a short run (`SIM_SCHEDULES`, default 200, seed from the clock unless
//! `SIM_SEED`); `scripts/sim` runs many in release mode on every core. Environment:
//! - `SIM_SCHEDULES` schedules to run; `SIM_SEED` the run's seed; `SIM_THREADS` threads
//!   (default: the available cores);
//! - `SIM_ONE=<schedule seed>` runs one schedule (as a violation prints it), with its trace;
//! - `SIM_STEPS=lo-hi` steps per schedule before the drain (default 150-450);
//! - `SIM_NO_FAULTS=1` no crashes, restarts, starvation or failed transactions;
//! - `SIM_PLANT=no-horizon|no-window|no-watch|store-failed` plants a bug in the
//!   simulation's copy of the driver (see `Config::plant`), to see the invariants catch it;
//! - `SIM_DEBUG_Q=1` (or `=<queue>`), `SIM_DEBUG_SEGS=1` add `d0`'s (or that queue's) ready messages after every step, and the
//!   message ids of each stored segment, to the trace.

#[path = "common/sim.rs"]
mod sim;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use sim::{run_range, Config, Sim, Tally};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.trim().parse().unwrap_or_else(|_| panic!("{name}={v}: not a whole number")))
}

fn config() -> Config {
    let mut cfg = Config::default();
    if let Ok(v) = std::env::var("SIM_STEPS") {
        let (lo, hi) = v.split_once('-').unwrap_or((&v, &v));
        cfg.steps = (lo.parse().expect("SIM_STEPS lo-hi"), hi.parse().expect("SIM_STEPS lo-hi"));
    }
    if std::env::var("SIM_NO_FAULTS").is_ok_and(|v| v == "1") {
        cfg.faults = false;
    }
    cfg.plant = std::env::var("SIM_PLANT").ok().filter(|p| !p.is_empty());
    // SIM_DEBUG_Q=1 is d0; another value names the queue.
    cfg.debug_queue = std::env::var("SIM_DEBUG_Q").ok().map(|q| if q == "1" { "d0".into() } else { q });
    cfg.debug_segments = std::env::var("SIM_DEBUG_SEGS").is_ok();
    cfg
}

/// Runs `schedules` schedules on `threads` threads: totals, or the first violation found.
fn run(seed: u64, schedules: u64, threads: u64, cfg: &Config) -> (Tally, u64, Option<String>) {
    const CHUNK: u64 = 50;
    let next = AtomicU64::new(0);
    let done = AtomicU64::new(0);
    let stop = AtomicBool::new(false);
    let total = Mutex::new(Tally::default());
    let failure: Mutex<Option<(u64, String)>> = Mutex::new(None);
    let progress = std::env::var("SIM_PROGRESS").is_ok();
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let from = next.fetch_add(CHUNK, Ordering::Relaxed);
                if from >= schedules {
                    return;
                }
                let to = (from + CHUNK).min(schedules);
                match run_range(seed, from, to, cfg) {
                    Ok(t) => {
                        total.lock().unwrap().add(&t);
                        let d = done.fetch_add(to - from, Ordering::Relaxed) + to - from;
                        if progress && d % 10_000 < CHUNK {
                            eprintln!("sim: {d} schedules, {:.0}/s", d as f64 / start.elapsed().as_secs_f64());
                        }
                    }
                    Err(v) => {
                        stop.store(true, Ordering::Relaxed);
                        let mut f = failure.lock().unwrap();
                        // Keep the first schedule that failed (by number) among those found.
                        let n = v.schedule;
                        if f.as_ref().is_none_or(|(m, _)| n < *m) {
                            *f = Some((n, v.to_string()));
                        }
                        return;
                    }
                }
            });
        }
    });
    let t = total.into_inner().unwrap();
    let done = done.load(Ordering::Relaxed);
    (t, done, failure.into_inner().unwrap().map(|(_, s)| s))
}

#[test]
fn the_mesh_keeps_its_promises_under_random_schedules() {
    let cfg = config();
    if let Some(one) = env_u64("SIM_ONE") {
        let mut cfg = cfg;
        cfg.trace = 100_000;
        match Sim::new(one, cfg).run() {
            Ok(t) => println!("sim: schedule {one} passed: {t:?}"),
            Err(v) => panic!("{v}"),
        }
        return;
    }
    let schedules = env_u64("SIM_SCHEDULES").unwrap_or(200);
    let seed = env_u64("SIM_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 % 1_000_000_007
    });
    let threads = env_u64("SIM_THREADS")
        .unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get() as u64).unwrap_or(1));
    let start = Instant::now();
    let (t, done, failure) = run(seed, schedules, threads, &cfg);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "sim: {done} schedules, {} steps, {:.0} schedules/s, {} violations, seed {seed} ({secs:.1}s, {threads} threads)",
        t.steps,
        done as f64 / secs,
        failure.is_some() as u32
    );
    println!(
        "sim: {} posts, {} publishes ({} confirmed, {} nacked; {} must survive), {} deliveries ({} redelivered), \
         {} host crashes, {} client crashes, {} take-overs, {} commits, {} failed writes, {} resume windows timed \
         out, waitForConfirms {} hosting / {} client ({} rejected), {} live subscriptions probed, {} checks at quiescence, \
         {} bridges started",
        t.posts,
        t.publishes,
        t.confirms_ok,
        t.confirms_err,
        t.must_survive,
        t.deliveries,
        t.redeliveries,
        t.host_crashes,
        t.client_crashes,
        t.failovers,
        t.commits,
        t.failed_writes,
        t.window_timeouts,
        t.waits_hosting,
        t.waits_client,
        t.waits_rejected,
        t.probes_checked,
        t.quiet_checks,
        t.bridges_started
    );
    if let Some(f) = failure {
        panic!("{f}\nrun it again: SIM_ONE=<schedule seed above> cargo test --test sim -- --nocapture");
    }
}

/// Regression tests for the bugs the simulation found (A, B and E; D's is in
/// `tests/mesh_client.rs`, F's in `tests/host_engine.rs`), each the smallest form of its
/// schedule, driving the mesh's machines directly.
mod found {
    use tabbit::core::*;
    use tabbit::host::engine::{Engine, WriteOutcome};
    use tabbit::mesh::client::{ClientState, Notice};
    use tabbit::mesh::frame::{ChannelState, Command, Frame, InFlight, WireDelivery, WireEvent};
    use tabbit::mesh::host::{HostState, Output};
    use tabbit::store::{restore, Log, MemoryStore};

    const ME: u64 = 1;
    const A: u64 = 100;
    const B: u64 = 200;
    const NOW: u64 = 1_000_000;

    /// A host with storage, and what it posted.
    struct H {
        e: Engine,
        s: HostState,
        store: MemoryStore,
        posts: Vec<(u64, Frame)>,
        now: u64,
    }

    impl H {
        /// A host that recovers from `store` (a take-over when `take_over`).
        fn new(store: MemoryStore, take_over: bool, seed: u64) -> H {
            let (log, recovered) = Log::recover(store.records());
            let mut core = Broker::new(BrokerConfig { seed, delivery_horizon: true, ..Default::default() });
            assert!(restore(&mut core, recovered, NOW).is_empty());
            let mut e = Engine::new(core, Some(log), None);
            e.pump(NOW);
            let s = HostState::new(ME, "host".into(), "indexeddb", &mut e, take_over, NOW);
            let mut h = H { e, s, store, posts: Vec::new(), now: NOW };
            h.collect();
            h
        }

        fn collect(&mut self) {
            loop {
                self.s.take_events(&mut self.e);
                while let Some(d) = self.e.poll_done() {
                    self.s.wait_done(&mut self.e, d, self.now);
                }
                let mut any = false;
                while let Some(o) = self.s.poll_output() {
                    any = true;
                    if let Output::Post { to, frame } = o {
                        self.posts.push((to, frame));
                    }
                }
                if !any {
                    return;
                }
            }
        }

        fn post(&mut self, from: u64, frames: Vec<Frame>) {
            self.s.heard_from(from);
            for f in frames {
                self.s.receive(&mut self.e, from, f, self.now);
            }
            self.collect();
        }

        fn commit(&mut self) {
            while let Some(t) = self.e.poll_write(self.now) {
                self.store.write(&t.writes);
                self.e.write_done(t.id, WriteOutcome::Committed, self.now);
                self.collect();
            }
        }

        /// The first delivery posted to `to` since the last call.
        fn delivery(&mut self, to: u64) -> WireDelivery {
            self.to(to)
                .into_iter()
                .find_map(|f| match f {
                    Frame::Event { event: WireEvent::Deliver(d), .. } => Some(d),
                    _ => None,
                })
                .expect("a delivery")
        }

        fn to(&mut self, to: u64) -> Vec<Frame> {
            let (mine, rest) = std::mem::take(&mut self.posts).into_iter().partition(|(t, _)| *t == to);
            self.posts = rest;
            mine.into_iter().map(|(_, f)| f).collect()
        }
    }

    fn durable(name: &str) -> Command {
        Command::DeclareQueue(QueueDeclare { name: name.into(), durable: true, ..Default::default() })
    }

    fn publish(queue: &str, text: &str, persistent: bool) -> Command {
        let mut message = Message::new("", queue, text.as_bytes().to_vec());
        message.properties.persistent = persistent;
        Command::Publish { message: Box::new(message), mandatory: false }
    }

    fn call(id: u32, chan: u32, cmd: Command) -> Frame {
        Frame::Call { id, chan, cmd }
    }

    /// `ctx` (channel 1 open) consumes `d` as "b" and is handed `text`, published then:
    /// the delivery, and the claim a re-announcement of it makes.
    fn consumed(h: &mut H, ctx: u64, text: &str, persistent: bool) -> (WireDelivery, InFlight) {
        let consume = Consume { queue: "d".into(), consumer_tag: "b".into(), ..Default::default() };
        h.post(ctx, vec![call(2, 1, Command::Consume(consume)), call(0, 1, publish("d", text, persistent))]);
        h.commit();
        let d = h.delivery(ctx);
        let named =
            InFlight { queue: "d".into(), seq: d.seq, delivery_tag: d.delivery_tag, consumer_tag: Some("b".into()) };
        (d, named)
    }

    /// Bug A (sim: `SIM_UNMASK=stale-confirms SIM_ONE=4772878946158962457`): the confirm
    /// of a publish on a channel closed before its transaction committed goes to the next
    /// channel opened on the same connection (the core reuses the channel number, and the
    /// engine holds confirms by `ChannelRef`).
    #[test]
    fn a_closed_channels_confirm_does_not_reach_the_next_channel_of_its_connection() {
        let mut h = H::new(MemoryStore::new(), false, 1);
        h.post(A, vec![Frame::OpenChannel { conn: 1, chan: 1, confirm: true }, call(1, 1, durable("d"))]);
        h.commit();
        h.post(A, vec![call(0, 1, publish("d", "m1", true)), call(0, 1, Command::Close)]);
        h.post(A, vec![Frame::OpenChannel { conn: 1, chan: 2, confirm: true }]);
        h.commit();
        let confirms: Vec<(u32, u64)> = h
            .to(A)
            .into_iter()
            .filter_map(|f| match f {
                Frame::Event { chan, event: WireEvent::Confirm { seq, .. } } => Some((chan, seq)),
                _ => None,
            })
            .collect();
        assert!(confirms.iter().all(|(chan, _)| *chan != 2), "channel 2 published nothing: {confirms:?}");
    }

    /// Bug B, client side (sim: `SIM_UNMASK=stale-host SIM_ONE=4958866241143383897`): a
    /// `Host` frame of a host this client already left (it died; posts it sent before
    /// arrive late) makes the client take the dead context for the host again.
    #[test]
    fn a_late_host_frame_of_a_replaced_host_is_ignored() {
        let mut c = ClientState::new(7, "c".into());
        c.receive(10, Frame::Host { since: 1 }, NOW);
        let chan = c.next_id();
        c.open_channel(1, chan, false);
        c.receive(20, Frame::Host { since: 2 }, NOW);
        assert_eq!(c.host(), Some(20));
        while c.poll_notice().is_some() {}
        c.receive(10, Frame::Host { since: 1 }, NOW);
        assert_eq!(c.host(), Some(20), "went back to the host it left");
        let reannounced = std::iter::from_fn(|| c.poll_notice())
            .any(|n| matches!(n, Notice::Post { frame: Frame::Resume { .. }, .. }));
        assert!(!reannounced, "re-announced its channels to a dead host");
    }

    /// Bug B, host side: a client that re-announces a channel a second time (after the
    /// flip-flop above) gets a second core channel; the first stays with its consumer and
    /// its unacked deliveries, which the client can no longer ack.
    #[test]
    fn a_channel_resumed_twice_is_one_channel() {
        let mut h = H::new(MemoryStore::new(), false, 1);
        h.post(A, vec![Frame::OpenChannel { conn: 1, chan: 1, confirm: false }, call(1, 1, durable("d"))]);
        h.commit();
        let mut h = H::new(h.store, true, 2);
        let state = || ChannelState {
            next_delivery_tag: 1,
            consumers: vec![Consume { queue: "d".into(), consumer_tag: "c".into(), ..Default::default() }],
            ..Default::default()
        };
        h.post(A, vec![Frame::Resume { id: 1, conn: 1, chan: 1, state: state() }, Frame::Resumed]);
        h.s.live_clients(&mut h.e, [A], NOW);
        h.collect();
        assert!(!h.s.in_window());
        h.post(A, vec![Frame::Resume { id: 2, conn: 1, chan: 1, state: state() }, Frame::Resumed]);
        assert_eq!(h.e.core().queue_info("d").unwrap().consumers, 1, "the first resume's consumer is left behind");
    }

    /// Bug E (sim: `SIM_UNMASK=seq-reuse SIM_ONE=14127670164073668004`): a
    /// transient message in a durable queue is not stored, so after a crash the next host
    /// gives its seq to a new message; a client that still holds the old one re-announces
    /// it to a later host, which adopts the new message under its name, and the client's
    /// ack takes a persistent message (confirmed, in the schedule) it never saw.
    #[test]
    fn a_stale_in_flight_message_does_not_capture_a_newer_one() {
        // Host 1: A consumes d, gets transient m1.
        let mut h = H::new(MemoryStore::new(), false, 1);
        h.post(A, vec![Frame::OpenChannel { conn: 1, chan: 1, confirm: false }, call(1, 1, durable("d"))]);
        h.commit();
        let consume = Consume { queue: "d".into(), consumer_tag: "c".into(), ..Default::default() };
        h.post(A, vec![call(2, 1, Command::Consume(consume.clone()))]);
        h.post(B, vec![Frame::OpenChannel { conn: 1, chan: 1, confirm: false }, call(0, 1, publish("d", "m1", false))]);
        // Transient: handed out at once, with nothing to store; host 1 dies before its next commit.
        let d = h.delivery(A);
        let held =
            InFlight { queue: "d".into(), seq: d.seq, delivery_tag: d.delivery_tag, consumer_tag: Some("c".into()) };
        let resume = |id| Frame::Resume {
            id,
            conn: 1,
            chan: 1,
            state: ChannelState { next_delivery_tag: 2, in_flight: vec![held.clone()], ..Default::default() },
        };
        // Host 1 dies; host 2: A re-announces m1 (gone); B publishes persistent m2.
        let mut h = H::new(h.store, true, 2);
        h.post(A, vec![resume(3), Frame::Resumed]);
        h.s.live_clients(&mut h.e, [A], NOW);
        h.collect();
        h.post(B, vec![Frame::OpenChannel { conn: 1, chan: 1, confirm: false }, call(0, 1, publish("d", "m2", true))]);
        h.commit();
        // m2 (seq 1 again) goes to B, who gives it back (it is stored as delivered).
        let consume_b = Consume { queue: "d".into(), consumer_tag: "b".into(), ..Default::default() };
        h.post(B, vec![call(1, 1, Command::Consume(consume_b))]);
        h.commit();
        h.post(B, vec![call(0, 1, Command::Close)]);
        h.commit();
        assert_eq!(h.e.core().queue_info("d").unwrap().ready, 1);
        // Host 2 dies; host 3: A re-announces m1 again, and acks it.
        let mut h = H::new(h.store, true, 3);
        h.post(A, vec![resume(4), Frame::Resumed]);
        h.s.live_clients(&mut h.e, [A], NOW);
        h.collect();
        h.post(A, vec![call(0, 1, Command::Ack { tag: d.delivery_tag, multiple: false })]);
        h.commit();
        let q = h.e.core().queue_info("d").unwrap();
        assert_eq!(q.ready + q.unacked, 1, "m2, which A never got, was taken by A's ack of m1");
    }

    /// Bug G (sim: `SIM_ONE=12961299019204541235`): a context whose channel the old host
    /// closed (requeueing its deliveries, handed then to another context whose app acked
    /// them) takes over before it reads that; its own re-announcement takes the message
    /// back into the stale channel, and the other context's re-settlement, finding it
    /// taken, did nothing: the message went out again after its ack. In the resume window
    /// the app's settlement now wins over the stale claim.
    #[test]
    fn a_resettlement_wins_over_a_stale_claim_in_the_resume_window() {
        // Host 1: A and B consume d; m1 goes to B (after A's channel was closed, say).
        let mut h = H::new(MemoryStore::new(), false, 1);
        h.post(A, vec![Frame::OpenChannel { conn: 1, chan: 1, confirm: false }, call(1, 1, durable("d"))]);
        h.commit();
        h.post(B, vec![Frame::OpenChannel { conn: 1, chan: 1, confirm: false }]);
        let (d, named) = consumed(&mut h, B, "m1", true);
        // B's app acks m1; host 1 dies before storing it. A takes over, still holding a
        // stale claim on m1 (tag 7 of a channel host 1 had closed), and re-announces first.
        let mut h = H::new(h.store, true, 2);
        let stale = InFlight { delivery_tag: 7, consumer_tag: None, ..named.clone() };
        let claim = ChannelState { next_delivery_tag: 8, in_flight: vec![stale], ..Default::default() };
        h.post(A, vec![Frame::Resume { id: 1, conn: 1, chan: 1, state: claim }, Frame::Resumed]);
        h.s.live_clients(&mut h.e, [A, B], NOW);
        h.collect();
        assert!(h.s.in_window(), "B has not re-announced yet");
        let settled =
            ChannelState { next_delivery_tag: d.delivery_tag + 1, settled: vec![(named, true)], ..Default::default() };
        h.post(B, vec![Frame::Resume { id: 2, conn: 1, chan: 1, state: settled }, Frame::Resumed]);
        assert!(!h.s.in_window());
        let q = h.e.core().queue_info("d").unwrap();
        assert_eq!((q.ready, q.unacked), (0, 0), "B's app acked m1: it is settled, not held by A's stale channel");
        // A's app may still ack its stale tag: a no-op, not a channel error.
        h.post(A, vec![call(0, 1, Command::Ack { tag: 7, multiple: false })]);
        assert!(h.s.channel(A, 1).is_some(), "A's channel stays open");
    }

    /// Bug H (sim: `scripts/sim --seed 7`, `SIM_ONE=4148526642622829502`): a context that
    /// re-announces after the resume window ended by time, with an ack its app made of a
    /// message the new host meanwhile redelivered to another context. Its re-settlement
    /// found the message held there and did nothing (bug G's rule applied in the window
    /// only): when that other channel closed, the message went out a third time, after
    /// its ack. The app's settlement now wins after the window too.
    #[test]
    fn a_late_resettlement_wins_over_the_redelivery_it_missed() {
        // Host 1: B consumes d and gets m1; B's app acks it after host 1 died.
        let mut h = H::new(MemoryStore::new(), false, 1);
        h.post(B, vec![Frame::OpenChannel { conn: 1, chan: 1, confirm: false }, call(1, 1, durable("d"))]);
        let (d, named) = consumed(&mut h, B, "m1", true);
        // Host 2 takes over; A re-announces at once, B not before the window ends by time.
        let mut h = H::new(h.store, true, 2);
        h.post(A, vec![Frame::Resume { id: 1, conn: 1, chan: 1, state: ChannelState::default() }, Frame::Resumed]);
        h.s.live_clients(&mut h.e, [A, B], NOW);
        h.collect();
        assert!(h.s.in_window(), "B has not re-announced yet");
        h.now = NOW + tabbit::mesh::host::RESUME_WINDOW_MS + 1;
        h.s.wake(&mut h.e, h.now);
        h.collect();
        assert!(!h.s.in_window(), "the window ended by time");
        // A consumes d on a new channel and gets m1 again, flagged redelivered.
        let consume = Consume { queue: "d".into(), consumer_tag: "a".into(), ..Default::default() };
        h.post(A, vec![Frame::OpenChannel { conn: 1, chan: 2, confirm: false }, call(2, 2, Command::Consume(consume))]);
        h.commit();
        let again = h.delivery(A);
        assert!(again.redelivered && again.seq == d.seq, "m1 went to A, flagged redelivered");
        // B re-announces now, with its app's ack of m1.
        let settled =
            ChannelState { next_delivery_tag: d.delivery_tag + 1, settled: vec![(named, true)], ..Default::default() };
        h.post(B, vec![Frame::Resume { id: 2, conn: 1, chan: 1, state: settled }, Frame::Resumed]);
        let q = h.e.core().queue_info("d").unwrap();
        assert_eq!((q.ready, q.unacked), (0, 0), "B's app acked m1: settled, though A holds the redelivery");
        // A's app may still ack its tag (a no-op), and closing A's channel brings nothing back.
        h.post(A, vec![call(0, 2, Command::Ack { tag: again.delivery_tag, multiple: false })]);
        assert!(h.s.channel(A, 2).is_some(), "A's channel stays open");
        h.post(A, vec![call(3, 2, Command::Close)]);
        let q = h.e.core().queue_info("d").unwrap();
        assert_eq!((q.ready, q.unacked), (0, 0), "m1 does not come back when A's channel closes");
    }

    /// Bug I (sim: `scripts/sim --seed 8`, `SIM_ONE=17292196901330790268`): a client that
    /// missed a whole host (it never re-announced to it) re-announces to the next one a
    /// delivery of a transient message the host before had given. The host in between,
    /// which never stored that message, gave its position to a new persistent one; the
    /// next host recovered that one and let the stale claim take it, so the client's ack
    /// of the old message acked the new one, which no app had seen. Each host now gives
    /// positions from its term on (microseconds, above every earlier term).
    #[test]
    fn a_stale_claim_does_not_take_a_message_of_a_later_host() {
        // Host 1: B gets a transient message of durable queue d.
        let mut h = H::new(MemoryStore::new(), false, 1);
        h.post(B, vec![Frame::OpenChannel { conn: 1, chan: 1, confirm: false }, call(1, 1, durable("d"))]);
        h.commit();
        let (d, stale) = consumed(&mut h, B, "m0", false);
        // Host 2 takes over (its term one above host 1's); B never re-announces to it. A
        // publishes a persistent message, which host 2 stores.
        let since = h.s.since();
        let mut h = H::new(h.store, true, 2);
        h.s.follow(&mut h.e, since, NOW * 1000);
        h.s.live_clients(&mut h.e, [A], NOW);
        h.post(A, vec![Frame::Resume { id: 1, conn: 1, chan: 1, state: ChannelState::default() }, Frame::Resumed]);
        let consume = Consume { queue: "d".into(), consumer_tag: "a".into(), ..Default::default() };
        h.post(A, vec![Frame::OpenChannel { conn: 1, chan: 2, confirm: false }, call(0, 2, publish("d", "m1", true))]);
        h.commit();
        // A gets m1 and holds it; host 2 dies before A acks (so host 3 finds m1 flagged as
        // handed out, one a client may hold).
        h.post(A, vec![call(3, 2, Command::Consume(consume))]);
        h.commit();
        let _ = h.delivery(A);
        // Host 3: B re-announces the transient message host 1 gave it; A has gone.
        let since = h.s.since();
        let mut h = H::new(h.store, true, 3);
        h.s.follow(&mut h.e, since, NOW * 1000);
        let claim =
            ChannelState { next_delivery_tag: d.delivery_tag + 1, in_flight: vec![stale], ..Default::default() };
        h.post(B, vec![Frame::Resume { id: 1, conn: 1, chan: 1, state: claim }, Frame::Resumed]);
        let q = h.e.core().queue_info("d").unwrap();
        assert_eq!((q.ready, q.unacked), (1, 0), "m1 stays in the queue: B's claim names m0, which is gone");
        // B's app acks what it holds (m0): a no-op, and m1 is still there.
        h.post(B, vec![call(0, 1, Command::Ack { tag: d.delivery_tag, multiple: false })]);
        let q = h.e.core().queue_info("d").unwrap();
        assert_eq!(q.ready, 1, "m1 was not acked by B's ack of m0");
    }
}
