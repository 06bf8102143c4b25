//! The hosting context's side of the mesh, sans-IO: [`HostState`] serves the frames of
//! the other contexts on a [`host::Engine`](crate::host::Engine) and says what to post
//! back. It knows no clock, channel or lock of its own: the driver (the browser's
//! `api/link`, or the native simulation) feeds it posts, deaths, the live clients, timer
//! expiries and the engine's waits that ended, with `now`, and carries out its
//! [`Output`]s.
//!
//! What it keeps: which core connection and channel each context's ids map to, the
//! contexts it watches and their labels, the resume window after a take-over (the live
//! clients not yet re-announced and the frames held meanwhile), the `get`s and `flush`es
//! waiting for the engine, and samples for the stats' rates.

use std::collections::VecDeque;

use super::bridge::{BridgeConfig, BridgeStatus, Registry};
use super::frame::EVERYONE;
use super::frame::{Answer, ChannelState, Command, ContextInfo, Frame, InFlight, Stats, WireDelivery, WireEvent};
use super::topology::describe;
use crate::core::fxhash::{FxMap, FxSet};
use crate::core::{AmqpError, Broker, ChannelRef, ConnId, Delivery, ReplyCode, Resume};
use crate::host::engine::Done;
use crate::host::{Engine, Event};

/// How long a new host waits at most for the live clients (those holding their client
/// lock) to re-announce their channels before it hands out messages again. It goes on as
/// soon as every one has, within a few ms when none is busy. A client starved of CPU
/// re-announces seconds late: until it has, the host cannot know which messages it still
/// holds, and would hand them to others too. A hung client must not stall the broker
/// forever, though.
pub const RESUME_WINDOW_MS: u64 = 10_000;

/// How far back rates look, and how often a sample is kept.
const RATE_WINDOW_MS: u64 = 5_000;
const RATE_SAMPLE_MS: u64 = 250;

/// What the driver does for the host.
#[allow(clippy::large_enum_variant)] // as Frame: moved once, boxing would cost an allocation per message
#[derive(Debug)]
pub enum Output {
    /// Post `frame` to context `to` ([`EVERYONE`]: to all; the hosting context's own id:
    /// to its [`super::client::ClientState`], after the current task).
    Post { to: u64, frame: Frame },
    /// Watch context `ctx`'s lock: call [`HostState::client_gone`] when it is released.
    Watch(u64),
    /// Run this bridge (see [`super::bridge`]); tell its status with [`HostState::bridge_status`].
    StartBridge(BridgeConfig),
    /// Stop bridge `name`: no live context declares it any more.
    StopBridge(String),
}

/// After taking over: the live clients not yet re-announced, and the frames that came
/// meanwhile. Messages are held back until it ends.
#[derive(Debug)]
struct Window {
    /// `None` until the driver says who is alive.
    waiting: Option<FxSet<u64>>,
    done: FxSet<u64>,
    backlog: Vec<(u64, Frame)>,
    /// It ends at this time whoever has not re-announced.
    until: u64,
}

/// A call answered once the engine's wait ends.
#[derive(Debug)]
enum Wait {
    /// A `get` whose queue's head is paged out or beyond its stored delivery horizon.
    Get { from: u64, id: u32, chan: u32, queue: String, no_ack: bool },
    /// A `flush`.
    Flush { from: u64, id: u32 },
    /// The context that waited died meanwhile.
    Dropped,
}

/// The host's side of the mesh (see the module's doc).
#[derive(Debug)]
pub struct HostState {
    me: u64,
    /// What the hosting context calls itself, and its storage's name, for the stats.
    label: String,
    storage: &'static str,
    /// This host's term (see [`HostState::since`]).
    since: u64,
    /// (context, its connection id) → core connection.
    conns: FxMap<(u64, u32), ConnId>,
    /// (context, its channel id) → core channel, and back.
    chans: FxMap<(u64, u32), ChannelRef>,
    owners: FxMap<ChannelRef, (u64, u32)>,
    watched: FxSet<u64>,
    /// What each context calls itself (`connect({label})`).
    labels: FxMap<u64, String>,
    /// (time, totals) of recent stats, for rates.
    samples: VecDeque<(u64, [u64; 6])>,
    window: Option<Window>,
    /// The engine's waits this state asked for, by wait id.
    waits: FxMap<u64, Wait>,
    /// The bridges this host runs for the contexts that declared them.
    bridges: Registry,
    out: VecDeque<Output>,
    /// Posts the driver could not read (undecodable, another version, too large), for
    /// the stats: the driver keeps it up to date.
    pub dropped_posts: u64,
    /// The AMQP method of the command being run: the channel errors it causes name it.
    method: (u16, u16),
}

/// A `Resume` for the core from a channel's re-announced state.
fn resume_of(s: ChannelState) -> Resume {
    // Settled ones are taken back with no consumer (so they do not count against its
    // prefetch), to be settled again at once.
    let settled = s.settled.into_iter().map(|(f, _)| InFlight { consumer_tag: None, ..f });
    let in_flight = s.in_flight.into_iter().chain(settled);
    Resume {
        next_delivery_tag: s.next_delivery_tag,
        confirm_seq: s.confirm_seq,
        consumer_prefetch: s.consumer_prefetch,
        channel_prefetch: s.channel_prefetch,
        consumers: s.consumers,
        in_flight: in_flight.collect(),
    }
}

/// The error for a call on a channel the host does not know (closed, by the app or by
/// an error).
pub fn closed_channel() -> AmqpError {
    AmqpError::new(ReplyCode::ChannelError, "channel is closed: open a new one")
}

/// basic.get, as errors name it.
const GET: (u16, u16) = (60, 70);

/// Runs one channel command on the core.
pub fn execute(core: &mut Broker, ch: ChannelRef, cmd: Command, now: u64) -> Result<Answer, AmqpError> {
    let done = |r: crate::core::Result<()>| r.map(|_| Answer::Done);
    match cmd {
        Command::DeclareQueue(d) => core.declare_queue(ch, d, now).map(Answer::Queue),
        Command::DeleteQueue { name, if_unused, if_empty } => {
            core.delete_queue(ch, &name, if_unused, if_empty, now).map(Answer::Count)
        }
        Command::PurgeQueue(name) => core.purge_queue(ch, &name, now).map(Answer::Count),
        Command::BindQueue { queue, source, pattern, args } => {
            done(core.bind_queue(ch, &queue, &source, &pattern, args, now))
        }
        Command::UnbindQueue { queue, source, pattern, args } => {
            done(core.unbind_queue(ch, &queue, &source, &pattern, args, now))
        }
        Command::DeclareExchange(d) => {
            // `checkExchange` (passive) answers `{}`, `assertExchange` `{exchange}`.
            let name = (!d.passive).then(|| d.name.clone());
            core.declare_exchange(ch, d, now).map(|()| name.map_or(Answer::Done, Answer::Exchange))
        }
        Command::DeleteExchange { name, if_unused } => done(core.delete_exchange(ch, &name, if_unused, now)),
        Command::BindExchange { destination, source, pattern, args } => {
            done(core.bind_exchange(ch, &destination, &source, &pattern, args, now))
        }
        Command::UnbindExchange { destination, source, pattern, args } => {
            done(core.unbind_exchange(ch, &destination, &source, &pattern, args, now))
        }
        Command::Publish { message, mandatory } => done(core.publish(ch, *message, mandatory, now)),
        Command::Consume(c) => core.consume(ch, c, now).map(|tag| Answer::Tag(tag.to_string())),
        Command::Cancel(tag) => core.cancel(ch, &tag, now).map(|()| Answer::Tag(tag)),
        Command::Get { queue, no_ack } => get(core, ch, &queue, no_ack, now),
        Command::Ack { tag, multiple } => done(core.ack(ch, tag, multiple, now)),
        Command::Nack { tag, multiple, requeue } => done(core.nack(ch, tag, multiple, requeue, now)),
        Command::Reject { tag, requeue } => done(core.reject(ch, tag, requeue, now)),
        Command::Prefetch { count, global } => done(core.prefetch(ch, count, global, now)),
        Command::Recover => done(core.recover(ch, now)),
        Command::Close => done(core.close_channel(ch, now)),
    }
}

/// A `get` on the core.
fn get(core: &mut Broker, ch: ChannelRef, queue: &str, no_ack: bool, now: u64) -> Result<Answer, AmqpError> {
    let got = core.get(ch, queue, no_ack, now)?;
    Ok(Answer::Got(got.map(|g| (wire(g.delivery), g.message_count))))
}

/// A delivery as a context receives it: with its queue's name, which a client keeps for
/// a new host after failover.
fn wire(d: Delivery) -> WireDelivery {
    WireDelivery {
        consumer_tag: d.consumer_tag,
        delivery_tag: d.delivery_tag,
        redelivered: d.redelivered,
        delivery_count: d.delivery_count,
        queue: d.queue_name,
        seq: d.seq,
        message: d.message,
    }
}

fn totals_of(queues: &[crate::core::QueueInfo]) -> [u64; 6] {
    let mut t = [0u64; 6];
    for q in queues {
        let c = q.counters;
        let v =
            [c.enqueued, c.delivered, c.redelivered, c.acked + c.auto_acked, c.dead_lettered, c.discarded + c.purged];
        for (a, b) in t.iter_mut().zip(v) {
            *a += b;
        }
    }
    t
}

impl HostState {
    /// Starts hosting as context `me`. After `take_over` (another context hosted before,
    /// or may have), deliveries wait for the resume window: until every live client has
    /// re-announced ([`HostState::live_clients`]), or until [`RESUME_WINDOW_MS`] from `now`.
    pub fn new(me: u64, label: String, storage: &'static str, engine: &mut Engine, take_over: bool, now: u64) -> Self {
        if take_over {
            engine.core_mut().hold_deliveries();
        }
        let window = take_over.then(|| Window {
            waiting: None,
            done: FxSet::default(),
            backlog: Vec::new(),
            until: now + RESUME_WINDOW_MS,
        });
        let since = now.saturating_mul(1000);
        engine.core_mut().raise_seq_floor(since);
        HostState {
            me,
            label,
            storage,
            since,
            conns: FxMap::default(),
            chans: FxMap::default(),
            owners: FxMap::default(),
            watched: FxSet::default(),
            labels: FxMap::default(),
            samples: VecDeque::new(),
            window,
            waits: FxMap::default(),
            bridges: Registry::default(),
            out: VecDeque::new(),
            dropped_posts: 0,
            method: (0, 0),
        }
    }

    /// This host's term, in its `Host` frames: the time it began hosting in
    /// microseconds, or if the host this context knew before ([`HostState::follow`]) had
    /// a term as late, one above that. A context hosts until it dies or leaves, and the
    /// next one is granted the host lock only after, so terms grow from each host to the
    /// next: a client takes a `Host` frame with a lower term than its host's for a late
    /// post of a host that is gone. (A context that takes over without having heard of
    /// its predecessor relies on its clock alone: a clock set back by more than the time
    /// between the two take-overs would give it the lower term.)
    pub fn since(&self) -> u64 {
        self.since
    }

    /// Sets the term from the clock (`clock_us`, microseconds) and the term of the host
    /// this context knew before (`previous`, from its client state; 0 if none): the
    /// later of the clock and one above `previous`. (Terms must stay with the clock: a
    /// context that takes over without having heard of its predecessor has only its
    /// clock.) Queues give new messages positions from the term on
    /// ([`Broker::raise_seq_floor`]): an earlier host's positions stay below it as long as
    /// it gave fewer per queue than the microseconds between the two terms.
    pub fn follow(&mut self, engine: &mut Engine, previous: u64, clock_us: u64) {
        self.since = clock_us.max(previous.saturating_add(1));
        engine.core_mut().raise_seq_floor(self.since);
    }

    /// Tells every context that this one hosts (after a take-over).
    pub fn announce(&mut self) {
        self.post(EVERYONE, Frame::Host { since: self.since });
    }

    /// What to do next, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    fn post(&mut self, to: u64, frame: Frame) {
        self.out.push_back(Output::Post { to, frame });
    }

    /// Whether the resume window after a take-over is still open (deliveries held).
    pub fn in_window(&self) -> bool {
        self.window.is_some()
    }

    /// When to call [`HostState::wake`]: the end of the resume window, if one is open.
    pub fn next_wakeup(&self) -> Option<u64> {
        self.window.as_ref().map(|w| w.until)
    }

    /// The time has come: a resume window past its end closes.
    pub fn wake(&mut self, engine: &mut Engine, now: u64) {
        if self.window.as_ref().is_some_and(|w| now >= w.until) {
            self.end_window(engine, now);
        }
    }

    /// The core channel of context `ctx`'s channel `chan`, if the host knows it.
    pub fn channel(&self, ctx: u64, chan: u32) -> Option<ChannelRef> {
        self.chans.get(&(ctx, chan)).copied()
    }

    /// The core connection of context `ctx`'s connection `conn`, if it has one.
    pub fn connection(&self, ctx: u64, conn: u32) -> Option<ConnId> {
        self.conns.get(&(ctx, conn)).copied()
    }

    /// A post came from `from`: a context heard from for the first time is watched, so
    /// that its death is known.
    pub fn heard_from(&mut self, from: u64) {
        if from != self.me && self.watched.insert(from) {
            self.out.push_back(Output::Watch(from));
        }
    }

    /// The contexts alive when the take-over began (those holding their client lock):
    /// the window ends once each has re-announced (or died).
    pub fn live_clients(&mut self, engine: &mut Engine, live: impl IntoIterator<Item = u64>, now: u64) {
        let Some(w) = &mut self.window else { return };
        let waiting: FxSet<u64> = live.into_iter().filter(|c| *c != self.me && !w.done.contains(c)).collect();
        let empty = waiting.is_empty();
        w.waiting = Some(waiting);
        if empty {
            self.end_window(engine, now);
        }
    }

    /// The take-over is complete (every live client re-announced, or time is up):
    /// messages flow again and the frames that waited run.
    fn end_window(&mut self, engine: &mut Engine, now: u64) {
        let Some(w) = self.window.take() else { return };
        self.run(engine, now, |core| core.release_deliveries(now));
        for (from, f) in w.backlog {
            self.receive(engine, from, f, now);
        }
    }

    /// Client `ctx` has re-announced everything (or is gone).
    fn resumed(&mut self, engine: &mut Engine, ctx: u64, now: u64) {
        let finished = match &mut self.window {
            Some(w) => {
                w.done.insert(ctx);
                w.waiting.as_mut().is_some_and(|set| {
                    set.remove(&ctx);
                    set.is_empty()
                })
            }
            None => false,
        };
        if finished {
            self.end_window(engine, now);
        }
    }

    fn conn(&mut self, engine: &mut Engine, ctx: u64, conn: u32) -> ConnId {
        match self.conns.get(&(ctx, conn)) {
            Some(id) => *id,
            None => {
                let id = engine.core_mut().connect();
                self.conns.insert((ctx, conn), id);
                id
            }
        }
    }

    fn own(&mut self, ctx: u64, chan: u32, ch: ChannelRef) {
        self.chans.insert((ctx, chan), ch);
        self.owners.insert(ch, (ctx, chan));
    }

    /// Context `ctx` no longer has channel `chan` (closed by it, or by an error).
    pub fn forget(&mut self, ctx: u64, chan: u32) {
        if let Some(ch) = self.chans.remove(&(ctx, chan)) {
            self.owners.remove(&ch);
        }
    }

    fn forget_conn(&mut self, ctx: u64, conn: u32) -> Option<ConnId> {
        let id = self.conns.remove(&(ctx, conn))?;
        let gone: Vec<ChannelRef> = self.owners.keys().filter(|c| c.conn == id).copied().collect();
        for ch in gone {
            if let Some(key) = self.owners.remove(&ch) {
                self.chans.remove(&key);
            }
        }
        Some(id)
    }

    /// Opens channel `chan` of connection `conn` of context `ctx` (the connection's first
    /// channel opens it).
    pub fn open_channel(
        &mut self,
        engine: &mut Engine,
        ctx: u64,
        conn: u32,
        chan: u32,
        confirm: bool,
        now: u64,
    ) -> Result<(), AmqpError> {
        let id = self.conn(engine, ctx, conn);
        let ch = self.run(engine, now, |core| {
            let ch = core.open_channel(id)?;
            if confirm {
                core.confirm_select(ch)?;
            }
            Ok::<_, AmqpError>(ch)
        })?;
        self.own(ctx, chan, ch);
        Ok(())
    }

    /// Connection `conn` of context `ctx` closed: its channels close, its exclusive
    /// queues go, its unacked messages go back to their queues.
    pub fn close_connection(&mut self, engine: &mut Engine, ctx: u64, conn: u32, now: u64) {
        if let Some(id) = self.forget_conn(ctx, conn) {
            self.run(engine, now, |core| core.disconnect(id, now));
        }
    }

    /// A command on channel `chan` of context `ctx`, answered at once, outside the frames
    /// and the resume window (for a driver or test that sets state up directly; a `get`
    /// here does not wait for its head, see [`Engine::get_wait`]).
    pub fn call(
        &mut self,
        engine: &mut Engine,
        ctx: u64,
        chan: u32,
        cmd: Command,
        now: u64,
    ) -> Result<Answer, AmqpError> {
        let ch = self.channel(ctx, chan).ok_or_else(closed_channel)?;
        if let Command::Close = cmd {
            self.forget(ctx, chan);
        }
        self.run_cmd(engine, ch, cmd, now)
    }

    /// Builds again what connection `conn` of context `ctx` declared that died with the
    /// previous host (see [`super::topology`]), on a channel of its own so that its
    /// exclusive queues are the connection's; answers what could not be restored, and why.
    pub fn restore(
        &mut self,
        engine: &mut Engine,
        ctx: u64,
        conn: u32,
        commands: Vec<Command>,
        now: u64,
    ) -> Vec<(String, AmqpError)> {
        let id = self.conn(engine, ctx, conn);
        self.run(engine, now, |core| {
            let mut lost = Vec::new();
            let mut ch = None;
            for cmd in commands {
                // A failed declaration has closed its channel, as any channel error does.
                let c = match ch {
                    Some(c) => c,
                    None => match core.open_channel(id) {
                        Ok(c) => *ch.insert(c),
                        Err(e) => {
                            lost.push((describe(&cmd), e));
                            continue;
                        }
                    },
                };
                let what = describe(&cmd);
                let done = match cmd {
                    Command::DeclareQueue(d) => core.redeclare_queue(c, d, now).map(|_| ()),
                    cmd @ (Command::DeclareExchange(_) | Command::BindQueue { .. } | Command::BindExchange { .. }) => {
                        execute(core, c, cmd, now).map(|_| ())
                    }
                    _ => Err(AmqpError::precondition("only declarations and bindings are restored")),
                };
                if let Err(e) = done {
                    lost.push((what, e));
                    ch = None;
                }
            }
            if let Some(c) = ch {
                let _ = core.close_channel(c, now);
            }
            lost
        })
    }

    /// Rebuilds a channel a context re-announced; answers the consumers it could not restore.
    pub fn resume(
        &mut self,
        engine: &mut Engine,
        ctx: u64,
        conn: u32,
        chan: u32,
        state: ChannelState,
        now: u64,
    ) -> Vec<(String, AmqpError)> {
        let id = self.conn(engine, ctx, conn);
        // Announced before: the client took another host meanwhile and came back. What
        // the earlier channel holds goes back to its queues (flagged redelivered) and
        // this announcement takes back what the client still has, so the client has
        // one channel here, not two.
        let before = self.chans.get(&(ctx, chan)).copied();
        if before.is_some() {
            self.forget(ctx, chan);
        }
        let tags: Vec<String> = state.consumers.iter().map(|c| c.consumer_tag.clone()).collect();
        let settled: Vec<(InFlight, bool)> = state.settled.clone();
        // Deliveries wait until the channel is known as this context's: one made before
        // would find no owner and stay unacked on a channel whose app never saw it.
        let resumed = self.run(engine, now, |core| {
            core.hold_deliveries();
            if let Some(ch) = before {
                let _ = core.close_channel(ch, now);
            }
            let r = core.resume_channel(id, resume_of(state), now)?;
            // Settle again what the client settled lately (a no-op where the store had it).
            for (f, ack) in settled {
                let tag = f.delivery_tag;
                if r.forgiven.binary_search(&tag).is_ok() {
                    // Not taken back here: another channel holds it. In the resume window, by
                    // a stale re-announcement (its old host had taken it from that channel
                    // and handed it to this one, whose app settled it); after the window, as
                    // a redelivery this host made because this context re-announced late.
                    // Either way the app's settlement wins: the other holder's tag is
                    // forgiven, and the message does not go out a third time.
                    core.settle_held_elsewhere(&f.queue, f.seq, ack, now);
                }
                let _ = match ack {
                    true => core.ack(r.channel, tag, false, now),
                    false => core.reject(r.channel, tag, false, now),
                };
            }
            Ok::<_, AmqpError>(r)
        });
        let lost = match resumed {
            Ok(r) => {
                self.own(ctx, chan, r.channel);
                r.cancelled
            }
            Err(e) => tags.into_iter().map(|t| (t, e.clone())).collect(),
        };
        if self.window.is_none() {
            self.run(engine, now, |core| core.release_deliveries(now));
        }
        lost
    }

    /// A watched context died or left: its connections close (their unacked messages go
    /// back to their queues, flagged redelivered; exclusive queues go).
    pub fn client_gone(&mut self, engine: &mut Engine, ctx: u64, now: u64) {
        self.watched.remove(&ctx);
        self.labels.remove(&ctx);
        let conns: Vec<u32> = self.conns.keys().filter(|(c, _)| *c == ctx).map(|(_, n)| *n).collect();
        for n in conns {
            self.close_connection(engine, ctx, n, now);
        }
        for w in self.waits.values_mut() {
            if matches!(w, Wait::Get { from, .. } | Wait::Flush { from, .. } if *from == ctx) {
                *w = Wait::Dropped;
            }
        }
        // What it sent during a resume window would open a connection for the dead.
        if let Some(w) = &mut self.window {
            w.backlog.retain(|(from, _)| *from != ctx);
        }
        for name in self.bridges.gone(ctx) {
            self.stop_bridge(name);
        }
        self.resumed(engine, ctx, now);
    }

    /// A frame from context `from`.
    pub fn receive(&mut self, engine: &mut Engine, from: u64, f: Frame, now: u64) {
        if let Some(w) = &mut self.window {
            if !matches!(f, Frame::Restore { .. } | Frame::Resume { .. } | Frame::Resumed | Frame::Hello { .. }) {
                w.backlog.push((from, f));
                return;
            }
        }
        match f {
            Frame::Hello { label } => {
                self.labels.insert(from, label);
                self.post(EVERYONE, Frame::Host { since: self.since });
                // After `Host` in the same section: the context knows its host by then.
                for f in self.bridges.statuses() {
                    self.post(EVERYONE, f);
                }
            }
            Frame::OpenChannel { conn, chan, confirm } => {
                if let Err(e) = self.open_channel(engine, from, conn, chan, confirm, now) {
                    let e = e.in_method(super::frame::CHANNEL_OPEN);
                    self.post(from, Frame::Event { chan, event: WireEvent::Closed(e) });
                }
            }
            Frame::CloseConnection { conn } => self.close_connection(engine, from, conn, now),
            Frame::Call { id, chan, cmd } => self.serve_call(engine, from, id, chan, cmd, now),
            Frame::Stats { id } => {
                let mut s = self.stats(engine.core(), now);
                s.storage_emptied = engine.emptied().map(|e| (e.at, e.lost.map(|n| n as u64)));
                self.post(from, Frame::Reply { id, result: Ok(Answer::Stats(Box::new(s))) });
            }
            Frame::Peek { id, queue, count } => {
                let messages = engine.core().peek(&queue, count.min(1000) as usize);
                self.post(from, Frame::Reply { id, result: Ok(Answer::Peeked(messages)) });
            }
            Frame::Flush { id } => {
                let wait = engine.flush(now);
                self.take_events(engine);
                self.waits.insert(wait, Wait::Flush { from, id });
            }
            Frame::Resume { id, conn, chan, state } => {
                let lost = self.resume(engine, from, conn, chan, state, now);
                self.post(from, Frame::Reply { id, result: Ok(Answer::Resumed(lost)) });
            }
            Frame::Restore { id, conn, commands } => {
                let lost = self.restore(engine, from, conn, commands, now);
                self.post(from, Frame::Reply { id, result: Ok(Answer::Resumed(lost)) });
            }
            Frame::Resumed => self.resumed(engine, from, now),
            Frame::QueueArguments { id, queue } => {
                let args = engine.core().queue_info(&queue).map(|q| q.arguments);
                self.post(from, Frame::Reply { id, result: Ok(Answer::Arguments(args)) });
            }
            Frame::DeclareBridge { id, config } => {
                let result = self.bridges.declare(from, config).map(|start| {
                    if let Some(config) = start {
                        self.out.push_back(Output::StartBridge(config));
                    }
                    Answer::Done
                });
                self.reply(from, id, result);
            }
            Frame::UndeclareBridge { name } => {
                if self.bridges.undeclare(from, &name) {
                    self.stop_bridge(name);
                }
            }
            Frame::Host { .. }
            | Frame::Reply { .. }
            | Frame::Event { .. }
            | Frame::BridgeStatus { .. }
            | Frame::BridgeGone { .. } => {}
        }
    }

    /// Bridge `name` stops: every context learns that it is gone.
    fn stop_bridge(&mut self, name: String) {
        self.tell_all(|_| Some(Frame::BridgeGone { name: name.clone() }));
        self.out.push_back(Output::StopBridge(name));
    }

    /// A frame about bridges for every context, this one's client included (a post to
    /// [`EVERYONE`] reaches only the others); made twice rather than cloned.
    fn tell_all(&mut self, frame: impl Fn(&Registry) -> Option<Frame>) {
        for to in [EVERYONE, self.me] {
            if let Some(f) = frame(&self.bridges) {
                self.post(to, f);
            }
        }
    }

    /// The driver's Runner tells what bridge `name` does: every context is told (nothing
    /// if it no longer runs).
    pub fn bridge_status(&mut self, name: &str, status: BridgeStatus) {
        if self.bridges.status(name, status) {
            self.tell_all(|r| r.status_of(name));
        }
    }

    /// The bridges this host runs: the driver stops them when it stops hosting.
    pub fn bridge_names(&self) -> Vec<String> {
        self.bridges.names()
    }

    /// Runs a channel command: its error, and the channel error event it causes, name its
    /// AMQP method.
    fn run_cmd(&mut self, engine: &mut Engine, ch: ChannelRef, cmd: Command, now: u64) -> Result<Answer, AmqpError> {
        self.run_method(engine, now, cmd.method(), |core| execute(core, ch, cmd, now))
    }

    /// Runs `f` as AMQP method `method` (class id, method id): its error, and the channel
    /// error event it causes, name the method.
    fn run_method<T>(
        &mut self,
        engine: &mut Engine,
        now: u64,
        method: (u16, u16),
        f: impl FnOnce(&mut Broker) -> Result<T, AmqpError>,
    ) -> Result<T, AmqpError> {
        self.method = method;
        let result = self.run(engine, now, f);
        self.method = (0, 0);
        result.map_err(|e| e.in_method(method))
    }

    /// Runs `f` on the core through the engine, then takes the events it caused, so that
    /// they go out before the answer to the frame that caused them.
    fn run<T>(&mut self, engine: &mut Engine, now: u64, f: impl FnOnce(&mut Broker) -> T) -> T {
        let out = engine.with(now, f);
        self.take_events(engine);
        out
    }

    /// Takes the engine's events (those of the driver's own work too: commits, timers,
    /// page-ins) and turns each into a post or a local event, in order.
    pub fn take_events(&mut self, engine: &mut Engine) {
        while let Some(e) = engine.poll_event() {
            self.event(e);
        }
    }

    fn reply(&mut self, to: u64, id: u32, result: Result<Answer, AmqpError>) {
        if id != 0 {
            self.post(to, Frame::Reply { id, result });
        }
    }

    fn serve_call(&mut self, engine: &mut Engine, from: u64, id: u32, chan: u32, cmd: Command, now: u64) {
        let Some(ch) = self.channel(from, chan) else {
            self.reply(from, id, Err(closed_channel()));
            return;
        };
        if let Command::Get { queue, no_ack } = cmd {
            self.try_get(engine, from, id, chan, queue, no_ack, now);
            return;
        }
        if let Command::Close = cmd {
            self.forget(from, chan);
        }
        let result = self.run_cmd(engine, ch, cmd, now);
        self.reply(from, id, result);
    }

    /// A `get`: deep in a long queue, the store gives the head back first; a first
    /// delivery beyond the queue's stored delivery horizon waits for a higher one. A get
    /// that fails because the head is not ready after all (an expired head went between
    /// the check and the get) waits and tries again.
    #[allow(clippy::too_many_arguments)]
    fn try_get(&mut self, engine: &mut Engine, from: u64, id: u32, chan: u32, queue: String, no_ack: bool, now: u64) {
        loop {
            let Some(ch) = self.channel(from, chan) else {
                self.reply(from, id, Err(closed_channel()));
                return;
            };
            let wait = engine.get_wait(&queue, now);
            self.take_events(engine);
            if let Some(wait) = wait {
                self.waits.insert(wait, Wait::Get { from, id, chan, queue, no_ack });
                return;
            }
            let result = self.run_method(engine, now, GET, |core| get(core, ch, &queue, no_ack, now));
            if result.is_ok() || engine.core().get_ready(&queue, now) {
                self.reply(from, id, result);
                return;
            }
        }
    }

    /// One of the engine's waits ended ([`Engine::poll_done`]): the call that waited for
    /// it goes on. Answers the `Done` back if it was not one of this state's waits (the
    /// driver may ask the engine for waits of its own).
    pub fn wait_done(&mut self, engine: &mut Engine, done: Done, now: u64) -> Option<Done> {
        let Some(wait) = self.waits.remove(&done.id) else { return Some(done) };
        match wait {
            Wait::Flush { from, id } => {
                let result = done
                    .result
                    .map(|_| Answer::Done)
                    .map_err(|e| AmqpError::new(ReplyCode::ResourceError, format!("flush failed: {}", e.message)));
                self.reply(from, id, result);
            }
            Wait::Get { from, id, chan, queue, no_ack } => self.try_get(engine, from, id, chan, queue, no_ack, now),
            Wait::Dropped => {}
        }
        None
    }

    /// An event of the engine, for the context that owns its channel.
    fn event(&mut self, event: Event) {
        let channel = match &event {
            Event::Confirm { channel, .. } => *channel,
            Event::Deliver(d) => d.channel,
            Event::Return(r) => r.channel,
            Event::ConsumerCancelled { channel, .. } => *channel,
            Event::ChannelClosed { channel, .. } => *channel,
        };
        let Some((ctx, chan)) = self.owners.get(&channel).copied() else { return };
        let wire = match event {
            Event::Confirm { seq, result, .. } => WireEvent::Confirm { seq, error: result.err() },
            Event::Deliver(d) => WireEvent::Deliver(wire(d)),
            Event::Return(r) => {
                WireEvent::Return { code: r.reply_code, text: r.reply_text.to_string(), message: r.message }
            }
            Event::ConsumerCancelled { consumer_tag, .. } => WireEvent::Cancelled(consumer_tag),
            Event::ChannelClosed { error, .. } => {
                self.forget(ctx, chan);
                WireEvent::Closed(error.in_method(self.method))
            }
        };
        self.post(ctx, Frame::Event { chan, event: wire });
    }

    /// The broker's state, with each context's load and the recent rates.
    pub fn stats(&mut self, core: &Broker, now: u64) -> Stats {
        let queues: Vec<_> = core.queue_names().iter().filter_map(|n| core.queue_info(n)).collect();
        // A few contexts: a vector, sorted by id once filled.
        let mut by_context: Vec<ContextInfo> = Vec::new();
        for ((ctx, _), id) in &self.conns {
            let Some(load) = core.connection_info(*id) else { continue };
            let i = match by_context.iter().position(|c| c.id == *ctx) {
                Some(i) => i,
                None => {
                    by_context.push(ContextInfo { id: *ctx, ..Default::default() });
                    by_context.len() - 1
                }
            };
            let c = &mut by_context[i];
            c.connections += 1;
            c.channels += load.channels as u32;
            c.consumers += load.consumers as u32;
            c.unacked += load.unacked as u32;
        }
        crate::core::sort::sort_by_key(&mut by_context, |c| c.id);
        let mut s = Stats {
            at: now,
            host: self.me,
            storage: self.storage.into(),
            totals: totals_of(&queues),
            queues,
            exchanges: core.exchange_infos(),
            bindings: core.binding_infos(),
            contexts: by_context,
            rates: [0.0; 6],
            dropped_posts: self.dropped_posts,
            storage_emptied: None,
        };
        for c in &mut s.contexts {
            c.label = match c.id == self.me {
                true => self.label.clone(),
                false => self.labels.get(&c.id).cloned().unwrap_or_default(),
            };
        }
        // Rates: against the oldest sample of the last RATE_WINDOW_MS.
        let samples = &mut self.samples;
        while samples.len() > 1 && samples[1].0 + RATE_WINDOW_MS <= now {
            samples.pop_front();
        }
        if let Some((t0, v0)) = samples.front() {
            let dt = (now.saturating_sub(*t0)) as f64 / 1000.0;
            if dt > 0.0 {
                for ((r, total), then) in s.rates.iter_mut().zip(&s.totals).zip(v0) {
                    *r = total.saturating_sub(*then) as f64 / dt;
                }
            }
        }
        if samples.back().is_none_or(|(t, _)| now >= t + RATE_SAMPLE_MS) {
            samples.push_back((now, s.totals));
        }
        s
    }
}
