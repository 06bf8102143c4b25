#![cfg(not(target_arch = "wasm32"))]
//! The mesh's host state machine, natively: what it posts back for other contexts'
//! frames (replies after the events they caused), the watch on a context heard from, a
//! dead context's messages going back, the resume window after a take-over (frames held,
//! ended by the last live client or by time), and calls that wait for the engine (`get`
//! behind a delivery horizon, `flush`) answered once the store committed.

mod common;

use common::{body, int, s, table};
use tabbit::core::*;
use tabbit::host::engine::{Engine, WriteOutcome};
use tabbit::mesh::bridge::{BridgeConfig, BridgeState, BridgeStatus};
use tabbit::mesh::frame::{Answer, ChannelState, Command, Frame, WireEvent, EVERYONE};
use tabbit::mesh::host::{HostState, Output, RESUME_WINDOW_MS};
use tabbit::store::{Log, MemoryStore};

const ME: u64 = 1;
const A: u64 = 100;
const B: u64 = 200;

struct M {
    e: Engine,
    s: HostState,
    now: u64,
    store: MemoryStore,
    /// What the state said so far.
    posts: Vec<(u64, Frame)>,
    watches: Vec<u64>,
    /// Bridges started and stopped ("start b", "stop b").
    bridges: Vec<String>,
}

impl M {
    fn new(storage: bool, take_over: bool) -> M {
        let core = Broker::new(BrokerConfig { seed: 1, delivery_horizon: storage, ..Default::default() });
        let mut e = Engine::new(core, storage.then(Log::new), None);
        let now = 1_000_000;
        let s =
            HostState::new(ME, "host tab".into(), if storage { "indexeddb" } else { "memory" }, &mut e, take_over, now);
        M { e, s, now, store: MemoryStore::new(), posts: Vec::new(), watches: Vec::new(), bridges: Vec::new() }
    }

    /// Takes what the state said, and hands it the engine's waits that ended.
    fn collect(&mut self) {
        loop {
            self.s.take_events(&mut self.e);
            let mut progressed = false;
            while let Some(d) = self.e.poll_done() {
                assert!(self.s.wait_done(&mut self.e, d, self.now).is_none(), "a wait the state did not ask for");
                progressed = true;
            }
            while let Some(o) = self.s.poll_output() {
                match o {
                    Output::Post { to, frame } => self.posts.push((to, frame)),
                    Output::Watch(ctx) => self.watches.push(ctx),
                    Output::StartBridge(c) => self.bridges.push(format!("start {}", c.name)),
                    Output::StopBridge(name) => self.bridges.push(format!("stop {name}")),
                }
                progressed = true;
            }
            if !progressed {
                return;
            }
        }
    }

    /// A post of `frames` from context `from`.
    fn post(&mut self, from: u64, frames: Vec<Frame>) {
        self.s.heard_from(from);
        for f in frames {
            self.s.receive(&mut self.e, from, f, self.now);
        }
        self.collect();
    }

    fn call(&mut self, from: u64, id: u32, chan: u32, cmd: Command) {
        self.post(from, vec![Frame::Call { id, chan, cmd }]);
    }

    fn open(&mut self, from: u64, chan: u32) {
        self.post(from, vec![Frame::OpenChannel { conn: 1, chan, confirm: false }]);
    }

    /// Runs every transaction the engine has, committed.
    fn commit(&mut self) {
        while self.e.wants_write(self.now) {
            let Some(t) = self.e.poll_write(self.now) else { break };
            self.store.write(&t.writes);
            self.e.write_done(t.id, WriteOutcome::Committed, self.now);
            self.collect();
        }
        self.collect();
    }

    /// The posts to `to` since the last call, in order.
    fn to(&mut self, to: u64) -> Vec<Frame> {
        let (mine, rest) = std::mem::take(&mut self.posts).into_iter().partition(|(t, _)| *t == to);
        self.posts = rest;
        mine.into_iter().map(|(_, f)| f).collect()
    }
}

fn declare(name: &str, durable: bool) -> Command {
    Command::DeclareQueue(QueueDeclare { name: name.into(), durable, ..Default::default() })
}

fn publish(queue: &str, text: &str, persistent: bool) -> Command {
    let mut message = Message::new("", queue, text.as_bytes().to_vec());
    message.properties.persistent = persistent;
    Command::Publish { message: Box::new(message), mandatory: false }
}

fn consume(queue: &str, tag: &str) -> Command {
    Command::Consume(Consume { queue: queue.into(), consumer_tag: tag.into(), ..Default::default() })
}

/// Short names of frames, for asserting their order.
fn names(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .map(|f| match f {
            Frame::Reply { id, result: Ok(_) } => format!("reply {id}"),
            Frame::Reply { id, result: Err(e) } => format!("error {id} {}", e.code.code()),
            Frame::Event { event: WireEvent::Deliver(d), .. } => format!("deliver {}", body(&d.message)),
            Frame::Event { event: WireEvent::Cancelled(t), .. } => format!("cancelled {t}"),
            Frame::Event { event: WireEvent::Closed(e), .. } => format!("closed {}", e.code.code()),
            Frame::Event { event: WireEvent::Confirm { seq, .. }, .. } => format!("confirm {seq}"),
            Frame::Host { .. } => "host".into(),
            Frame::BridgeStatus { config, status } => format!("bridge {} {}", config.name, status.state.name()),
            Frame::BridgeGone { name } => format!("bridge gone {name}"),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn a_context_heard_from_is_watched_once() {
    let mut m = M::new(false, false);
    m.post(A, vec![Frame::Hello { label: "tab a".into() }]);
    m.post(A, vec![Frame::Hello { label: "tab a".into() }]);
    m.post(B, vec![]);
    assert_eq!(m.watches, vec![A, B]);
    // Hello is answered to everyone: a context that asks who hosts learns it.
    assert_eq!(names(&m.to(EVERYONE)), ["host", "host"]);
    let stats = m.s.stats(m.e.core(), m.now);
    assert_eq!(stats.host, ME);
}

#[test]
fn deliveries_go_to_the_consumers_context_with_their_queue_and_before_the_reply() {
    let mut m = M::new(false, false);
    m.open(A, 1);
    m.open(B, 7);
    m.call(A, 1, 1, declare("q", false));
    m.call(A, 2, 1, consume("q", "c1"));
    assert_eq!(names(&m.to(A)), ["reply 1", "reply 2"]);
    m.call(B, 0, 7, publish("q", "m1", false));
    m.call(B, 0, 7, publish("q", "m2", false));
    let got = m.to(A);
    assert_eq!(names(&got), ["deliver m1", "deliver m2"]);
    let Frame::Event { chan: 1, event: WireEvent::Deliver(d) } = &got[0] else { panic!("{got:?}") };
    assert_eq!((&*d.queue, d.delivery_tag, d.consumer_tag.as_deref()), ("q", 1, Some("c1")));
    assert!(m.to(B).is_empty(), "a publish with id 0 is not answered");
    // A cancel's reply comes after the deliveries made before it: the client drops the
    // consumer's callback on the reply, and must have had every message by then.
    m.call(A, 3, 1, Command::Cancel("c1".into()));
    m.call(A, 4, 1, consume("q", "c2"));
    m.call(B, 0, 7, publish("q", "m3", false));
    m.call(A, 5, 1, Command::Cancel("c2".into()));
    assert_eq!(names(&m.to(A)), ["reply 3", "reply 4", "deliver m3", "reply 5"]);
}

#[test]
fn calls_on_unknown_channels_are_answered_504_and_casts_dropped() {
    let mut m = M::new(false, false);
    m.call(A, 9, 3, declare("q", false));
    m.call(A, 0, 3, publish("q", "x", false));
    assert_eq!(names(&m.to(A)), ["error 9 504"]);
    // A channel error closes the channel: the host forgets it and says why.
    m.open(A, 1);
    let message = Message::new("no-such-exchange", "x", b"x".to_vec());
    m.call(A, 0, 1, Command::Publish { message: Box::new(message), mandatory: false });
    m.call(A, 3, 1, declare("q", false));
    assert_eq!(names(&m.to(A)), ["closed 404", "error 3 504"]);
    assert!(m.s.channel(A, 1).is_none());
}

#[test]
fn a_dead_contexts_unacked_messages_go_to_the_others_flagged_redelivered() {
    let mut m = M::new(false, false);
    m.open(A, 1);
    m.open(B, 1);
    m.call(A, 1, 1, declare("q", false));
    m.call(A, 2, 1, consume("q", "a"));
    m.call(B, 0, 1, publish("q", "m1", false));
    assert_eq!(names(&m.to(A)), ["reply 1", "reply 2", "deliver m1"]);
    m.call(B, 3, 1, consume("q", "b"));
    assert_eq!(names(&m.to(B)), ["reply 3"]);
    m.s.client_gone(&mut m.e, A, m.now);
    m.collect();
    let got = m.to(B);
    assert_eq!(names(&got), ["deliver m1"]);
    let Frame::Event { event: WireEvent::Deliver(d), .. } = &got[0] else { unreachable!() };
    assert!(d.redelivered);
    assert!(m.s.connection(A, 1).is_none());
    // A frame from the dead context's ids is for a channel the host no longer knows.
    m.call(A, 4, 1, Command::Ack { tag: 1, multiple: false });
    assert_eq!(names(&m.to(A)), ["error 4 504"]);
}

#[test]
fn the_hosting_context_is_served_as_any_other() {
    let mut m = M::new(false, false);
    m.post(ME, vec![Frame::OpenChannel { conn: 1, chan: 5, confirm: false }]);
    m.open(A, 1);
    m.call(ME, 1, 5, declare("q", false));
    m.call(ME, 2, 5, consume("q", "mine"));
    m.call(A, 0, 1, publish("q", "hello", false));
    assert!(m.watches == vec![A], "a context does not watch itself: {:?}", m.watches);
    let mine = m.to(ME);
    assert_eq!(names(&mine), ["reply 1", "reply 2", "deliver hello"]);
    let Frame::Event { chan: 5, event: WireEvent::Deliver(d) } = &mine[2] else { panic!("{mine:?}") };
    assert_eq!(&*d.queue, "q");
    let e = m.s.call(&mut m.e, ME, 6, declare("q", false), m.now).unwrap_err();
    assert_eq!(e.code.code(), 504);
}

#[test]
fn after_a_take_over_frames_wait_until_every_live_client_re_announced() {
    let mut m = M::new(false, true);
    assert!(m.s.in_window());
    // The new host's own queue, with a message (say, restored from storage).
    m.s.open_channel(&mut m.e, ME, 1, 1, false, m.now).unwrap();
    m.s.call(&mut m.e, ME, 1, declare("q", false), m.now).unwrap();
    m.s.call(&mut m.e, ME, 1, publish("q", "kept", false), m.now).unwrap();
    // A re-announces its channel with a consumer; B sends a command meanwhile.
    let state = ChannelState {
        next_delivery_tag: 1,
        consumers: vec![Consume { queue: "q".into(), consumer_tag: "a".into(), ..Default::default() }],
        ..Default::default()
    };
    m.post(A, vec![Frame::Hello { label: "a".into() }, Frame::Resume { id: 1, conn: 1, chan: 1, state }]);
    m.open(B, 1);
    m.call(B, 2, 1, declare("other", false));
    let a = m.to(A);
    assert_eq!(names(&a), ["reply 1"]);
    assert!(matches!(&a[0], Frame::Reply { result: Ok(Answer::Resumed(lost)), .. } if lost.is_empty()));
    assert!(m.to(B).is_empty(), "held while the window is open");
    m.s.live_clients(&mut m.e, [A, B], m.now);
    m.collect();
    m.post(A, vec![Frame::Resumed]);
    assert!(m.s.in_window(), "B has not re-announced");
    assert!(m.to(A).is_empty(), "no delivery yet");
    // B dies: the window ends, the held frames run, deliveries flow.
    m.s.client_gone(&mut m.e, B, m.now);
    m.collect();
    assert!(!m.s.in_window());
    assert_eq!(names(&m.to(A)), ["deliver kept"]);
    // B's held frames went with it: nothing was opened for a dead context.
    assert!(m.to(B).is_empty());
    assert!(m.s.connection(B, 1).is_none());
}

#[test]
fn the_resume_window_ends_by_time_when_a_live_client_never_re_announces() {
    let mut m = M::new(false, true);
    m.s.live_clients(&mut m.e, [A], m.now);
    let until = m.s.next_wakeup().expect("a wake-up for the window");
    assert_eq!(until, m.now + RESUME_WINDOW_MS);
    m.open(B, 1);
    m.call(B, 1, 1, declare("q", false));
    m.now = until - 1;
    m.s.wake(&mut m.e, m.now);
    m.collect();
    assert!(m.to(B).is_empty());
    m.now = until;
    m.s.wake(&mut m.e, m.now);
    m.collect();
    assert_eq!(names(&m.to(B)), ["reply 1"]);
    assert_eq!(m.s.next_wakeup(), None);
}

#[test]
fn with_no_live_client_the_window_ends_at_once() {
    let mut m = M::new(false, true);
    m.s.live_clients(&mut m.e, [ME], m.now);
    assert!(!m.s.in_window());
}

#[test]
fn a_get_behind_the_delivery_horizon_is_answered_once_the_horizon_is_stored() {
    let mut m = M::new(true, false);
    m.open(A, 1);
    m.call(A, 1, 1, declare("d", true));
    m.call(A, 0, 1, publish("d", "stored", true));
    m.commit();
    assert_eq!(names(&m.to(A)), ["reply 1"]);
    m.call(A, 2, 1, Command::Get { queue: "d".into(), no_ack: false });
    assert!(m.to(A).is_empty(), "the first delivery waits for its horizon to be stored");
    m.commit();
    let got = m.to(A);
    assert_eq!(names(&got), ["reply 2"]);
    let Frame::Reply { result: Ok(Answer::Got(Some((d, left)))), .. } = &got[0] else { panic!("{got:?}") };
    assert_eq!((body(&d.message).as_str(), *left, &*d.queue), ("stored", 0, "d"));
    // The next get of an empty queue needs no wait.
    m.call(A, 3, 1, Command::Get { queue: "d".into(), no_ack: false });
    let got = m.to(A);
    assert!(matches!(&got[..], [Frame::Reply { id: 3, result: Ok(Answer::Got(None)) }]), "{got:?}");
}

#[test]
fn a_flush_is_answered_once_what_came_before_it_committed_and_a_failure_says_so() {
    let mut m = M::new(true, false);
    m.open(A, 1);
    m.call(A, 1, 1, declare("d", true));
    m.call(A, 0, 1, publish("d", "x", true));
    m.post(A, vec![Frame::Flush { id: 2 }]);
    assert_eq!(names(&m.to(A)), ["reply 1"]);
    m.commit();
    assert_eq!(names(&m.to(A)), ["reply 2"]);
    // A failed write fails the flush that waited for it, with the store's reason.
    m.call(A, 0, 1, publish("d", "y", true));
    m.post(A, vec![Frame::Flush { id: 3 }]);
    let t = m.e.poll_write(m.now).expect("a transaction");
    m.e.write_done(t.id, WriteOutcome::QuotaExceeded("QuotaExceededError".into()), m.now);
    m.collect();
    let got = m.to(A);
    let Some(Frame::Reply { id: 3, result: Err(e) }) = got.first() else { panic!("{got:?}") };
    assert!(e.message.starts_with("flush failed: storage is full"), "{}", e.message);
    // A flush from a context that died meanwhile is not answered (nobody to answer).
    m.call(A, 0, 1, publish("d", "z", true));
    m.post(A, vec![Frame::Flush { id: 4 }]);
    m.s.client_gone(&mut m.e, A, m.now);
    m.now += 5_000;
    m.e.wake(m.now);
    m.commit();
    assert!(m.to(A).iter().all(|f| !matches!(f, Frame::Reply { id: 4, .. })));
}

#[test]
fn restore_rebuilds_a_contexts_transient_topology_and_lists_what_failed() {
    let mut m = M::new(false, true);
    let commands = vec![
        declare("amq.gen-abc", false),
        Command::BindQueue {
            queue: "amq.gen-abc".into(),
            source: "gone-exchange".into(),
            pattern: "#".into(),
            args: Default::default(),
        },
        Command::BindQueue {
            queue: "amq.gen-abc".into(),
            source: "amq.topic".into(),
            pattern: "#".into(),
            args: Default::default(),
        },
    ];
    m.post(A, vec![Frame::Restore { id: 1, conn: 1, commands }]);
    let got = m.to(A);
    let Some(Frame::Reply { id: 1, result: Ok(Answer::Resumed(lost)) }) = got.first() else { panic!("{got:?}") };
    assert_eq!(lost.len(), 1, "{lost:?}");
    assert_eq!(lost[0].1.code.code(), 404);
    assert!(m.e.core().queue_info("amq.gen-abc").is_some());
    let stats = m.s.stats(m.e.core(), m.now);
    assert!(stats.bindings.iter().any(|b| &*b.source == "amq.topic" && &*b.destination == "amq.gen-abc"));
}

/// A refused call and the channel error it causes name the AMQP method that failed, as
/// RabbitMQ's channel.close does (amqplib's `classId` and `methodId`); errors of no
/// method (a call on a closed channel) name none.
#[test]
fn errors_name_the_amqp_method_that_failed() {
    let mut m = M::new(false, false);
    m.open(A, 1);
    let passive = QueueDeclare { name: "nope".into(), passive: true, ..Default::default() };
    m.call(A, 1, 1, Command::DeclareQueue(passive));
    let methods = |frames: Vec<Frame>| -> Vec<(String, (u16, u16))> {
        frames
            .into_iter()
            .filter_map(|f| match f {
                Frame::Reply { id, result: Err(e) } => Some((format!("error {id} {}", e.code.code()), e.method)),
                Frame::Event { event: WireEvent::Closed(e), .. } => {
                    Some((format!("closed {}", e.code.code()), e.method))
                }
                _ => None,
            })
            .collect()
    };
    assert_eq!(methods(m.to(A)), [("closed 404".into(), (50, 10)), ("error 1 404".into(), (50, 10))]);
    m.call(A, 2, 1, declare("q", false));
    assert_eq!(methods(m.to(A)), [("error 2 504".into(), (0, 0))]);
    m.open(A, 2);
    let message = Message::new("no-such-exchange", "x", b"x".to_vec());
    m.call(A, 0, 2, Command::Publish { message: Box::new(message), mandatory: false });
    assert_eq!(methods(m.to(A)), [("closed 404".into(), (60, 40))]);
    m.open(A, 3);
    m.call(A, 0, 3, Command::Ack { tag: 7, multiple: false });
    assert_eq!(methods(m.to(A)), [("closed 406".into(), (60, 80))]);
}

/// A declaration as bridgeConfig makes them (a few of its fields).
fn bridge(name: &str, url: &str) -> BridgeConfig {
    let outbox = table(&[("queue", s(&format!("bridge.{name}.out"))), ("to", s("/amq/queue/tasks"))]);
    let table = table(&[
        ("name", s(name)),
        ("url", s(url)),
        ("passcode", s("secret")),
        ("prefetch", int(100)),
        ("outbound", FieldValue::Array(vec![FieldValue::Table(outbox)])),
    ]);
    BridgeConfig { name: name.into(), table }
}

fn declare_bridge(id: u32, name: &str, url: &str) -> Frame {
    Frame::DeclareBridge { id, config: bridge(name, url) }
}

#[test]
fn a_bridge_runs_once_for_every_context_that_declares_it_alike_until_the_last_lets_go() {
    let mut m = M::new(false, false);
    m.post(A, vec![declare_bridge(1, "b", "ws://r/ws")]);
    assert_eq!(m.bridges, ["start b"], "started before the declaration is answered");
    assert_eq!(names(&m.to(A)), ["reply 1"]);
    m.post(B, vec![declare_bridge(2, "b", "ws://r/ws")]);
    m.post(ME, vec![declare_bridge(3, "b", "ws://r/ws")]);
    assert_eq!(names(&m.to(B)), ["reply 2"]);
    assert_eq!(names(&m.to(ME)), ["reply 3"]);
    // The same name with other options: refused, the running bridge untouched.
    m.post(B, vec![declare_bridge(4, "b", "ws://elsewhere/ws")]);
    let got = m.to(B);
    let [Frame::Reply { id: 4, result: Err(e) }] = &got[..] else { panic!("{got:?}") };
    assert_eq!(e.code.code(), 406);
    assert!(e.message.contains("bridge 'b' runs already with other options"), "{}", e.message);
    assert_eq!(m.bridges, ["start b"]);

    // The Runner's status goes to every context, with the options but not the passcode.
    let status =
        BridgeStatus { state: BridgeState::Connected, connects: 1, outbound: [3, 2, 1, 0], ..Default::default() };
    m.s.bridge_status("b", status.clone());
    m.collect();
    let told = m.to(EVERYONE);
    assert_eq!(names(&m.to(ME)), names(&told), "the hosting context's client is told too");
    let [Frame::BridgeStatus { config, status: s }] = &told[..] else { panic!("{told:?}") };
    let mut public = bridge("b", "ws://r/ws");
    public.table.remove("passcode");
    assert_eq!(*config, public);
    assert_eq!(*s, status);
    // A context that joins later is told the statuses after who hosts.
    m.post(B, vec![Frame::Hello { label: "b".into() }]);
    assert_eq!(names(&m.to(EVERYONE)), ["host", "bridge b connected"]);

    // Two let go: it runs on; the third (undeclaring twice changes nothing more): it stops.
    m.post(A, vec![Frame::UndeclareBridge { name: "b".into() }]);
    m.post(ME, vec![Frame::UndeclareBridge { name: "b".into() }, Frame::UndeclareBridge { name: "b".into() }]);
    assert_eq!(m.bridges, ["start b"]);
    assert!(m.to(EVERYONE).is_empty());
    m.post(B, vec![Frame::UndeclareBridge { name: "b".into() }]);
    assert_eq!(m.bridges, ["start b", "stop b"]);
    assert_eq!(names(&m.to(EVERYONE)), ["bridge gone b"]);
    assert_eq!(names(&m.to(ME)), ["bridge gone b"]);
    // A late status of a stopped bridge tells no one; it can be declared anew.
    m.s.bridge_status("b", status);
    m.collect();
    assert!(m.posts.is_empty(), "{:?}", m.posts);
    m.post(B, vec![declare_bridge(0, "b", "ws://elsewhere/ws")]);
    assert_eq!(m.bridges, ["start b", "stop b", "start b"]);
    assert!(m.to(B).is_empty(), "a declaration with id 0 is not answered");
}

#[test]
fn a_gone_contexts_bridges_stop_unless_another_live_context_declares_them() {
    let mut m = M::new(false, false);
    m.post(A, vec![declare_bridge(1, "shared", "ws://r/ws"), declare_bridge(2, "a-only", "ws://r/ws")]);
    m.post(B, vec![declare_bridge(1, "shared", "ws://r/ws")]);
    m.post(B, vec![Frame::UndeclareBridge { name: "a-only".into() }]);
    assert_eq!(m.bridges, ["start shared", "start a-only"]);
    assert_eq!(m.s.bridge_names(), ["shared", "a-only"]);
    m.posts.clear();
    m.s.client_gone(&mut m.e, A, m.now);
    m.collect();
    assert_eq!(m.bridges[2..], ["stop a-only"]);
    assert_eq!(names(&m.to(EVERYONE)), ["bridge gone a-only"]);
    m.s.client_gone(&mut m.e, B, m.now);
    m.collect();
    assert_eq!(m.bridges[3..], ["stop shared"]);
    assert!(m.s.bridge_names().is_empty());
}

#[test]
fn after_a_take_over_the_bridges_declared_again_start_once_the_window_ends() {
    let mut m = M::new(false, true);
    m.s.live_clients(&mut m.e, [A, B], m.now);
    m.collect();
    // As a client re-announces after failover: its bridges with id 0, then Resumed.
    m.post(A, vec![Frame::Hello { label: "a".into() }, declare_bridge(0, "b", "ws://r/ws"), Frame::Resumed]);
    m.post(B, vec![Frame::Hello { label: "b".into() }, declare_bridge(0, "b", "ws://r/ws")]);
    assert!(m.bridges.is_empty(), "held with the other frames while the window is open");
    m.post(B, vec![Frame::Resumed]);
    assert!(!m.s.in_window());
    assert_eq!(m.bridges, ["start b"]);
    // Both own it: one going does not stop it.
    m.s.client_gone(&mut m.e, A, m.now);
    m.collect();
    assert_eq!(m.bridges, ["start b"]);
}

#[test]
fn one_queues_arguments_are_answered_or_null_for_no_such_queue() {
    let mut m = M::new(false, false);
    m.open(A, 1);
    let mut args = Table::new();
    args.insert("x-tabbit-epoch".into(), FieldValue::Str("k3x".into()));
    let d = QueueDeclare { name: "outbox".into(), durable: true, arguments: args.clone(), ..Default::default() };
    m.call(A, 1, 1, Command::DeclareQueue(d));
    m.post(A, vec![Frame::QueueArguments { id: 2, queue: "outbox".into() }]);
    m.post(A, vec![Frame::QueueArguments { id: 3, queue: "nothing".into() }]);
    let got = m.to(A);
    assert!(matches!(&got[1], Frame::Reply { id: 2, result: Ok(Answer::Arguments(Some(t))) } if *t == args), "{got:?}");
    assert!(matches!(&got[2], Frame::Reply { id: 3, result: Ok(Answer::Arguments(None)) }), "{got:?}");
}
