//! A context's side of the mesh as the app's channels see it, sans-IO: [`ClientState`]
//! turns the app's calls into frames for whoever hosts, and the host's frames into what
//! the app is told ([`Notice`]s: answers, confirms, deliveries, channel events,
//! failover). It is the same in every context, the hosting one included: there its
//! frames go to the context's own [`super::host::HostState`] and come back as frames
//! (after the current task), so that the app sees one behaviour whoever hosts.
//!
//! What it keeps is what a new host needs after failover, and what the app waits for:
//! each channel's prefetch, confirm numbering and outstanding confirms, consumers,
//! deliveries in flight and those settled lately; the topology each connection declared;
//! the calls not answered yet; frames for a host not known yet; and, after failover,
//! the re-announcements not answered yet.

use std::collections::VecDeque;

use super::bridge::{BridgeConfig, BridgeStatus, Declared};
use super::frame::{Answer, ChannelState, Command, Frame, InFlight, WireDelivery, WireEvent, EVERYONE};
use super::host::closed_channel;
use super::topology::Recorded;
use crate::core::fxhash::{FxMap, FxSet};
use crate::core::sort;
use crate::core::{AmqpError, Consume, Message, ReplyCode};

/// How long a client remembers a settled delivery, and how many per channel at most: a
/// host stores a settlement within a turn or so of receiving it.
pub const SETTLED_KEEP_MS: u64 = 2000;
pub const SETTLED_KEEP_MAX: usize = 65_536;

/// What the app is told, in order.
#[allow(clippy::large_enum_variant)] // as Frame: moved once, boxing would cost an allocation per message
#[derive(Debug)]
pub enum Notice {
    /// A frame for context `to` ([`EVERYONE`] to ask who hosts).
    Post { to: u64, frame: Frame },
    /// A host is known: the broker can be used.
    Ready,
    /// Call `id` is answered.
    Answer { id: u32, result: Result<Answer, AmqpError> },
    /// Publish `seq` of channel `chan` is confirmed (`error`: refused, or unknown).
    /// `broker`: the host acked or nacked it (amqplib's 'ack' and 'nack' events); else it
    /// failed here, as the channel closed or the host went away.
    Confirm { chan: u32, seq: u64, error: Option<AmqpError>, broker: bool },
    /// `waitForConfirms()` call `wait` of channel `chan` is over.
    Waited { chan: u32, wait: u64, result: Result<(), AmqpError> },
    /// A message for consumer `delivery.consumer_tag` of channel `chan`.
    Deliver { chan: u32, delivery: WireDelivery },
    /// A mandatory message no queue took.
    Return { chan: u32, code: u16, text: String, message: std::rc::Rc<Message> },
    /// Consumer `tag` of channel `chan` is gone: cancelled by the broker, or lost in a
    /// failover (`notify`: its callback gets `null`), or its cancel was answered, or its
    /// consume failed (it gets nothing more).
    ConsumerGone { chan: u32, tag: String, notify: bool },
    /// Channel `chan` closed: by the broker (`error`), or by the app.
    Closed { chan: u32, error: Option<AmqpError> },
    /// Another context took over as host; what it could not restore.
    Failover { cancelled: Vec<String>, not_restored: Vec<(String, AmqpError)> },
}

/// What an answer does to the client's state besides reaching the app.
#[derive(Clone, Debug)]
pub enum Track {
    Nothing,
    /// A consume: the consumer stays registered only if it succeeds (`fresh`: this call
    /// registered the tag).
    Consume {
        chan: u32,
        tag: String,
        fresh: bool,
    },
    /// A cancel: the consumer's callback goes once the host answered, after the
    /// deliveries sent before it, as in amqplib.
    Cancel {
        chan: u32,
        tag: String,
    },
    /// A `get`: its message is tracked while unacked.
    Get {
        chan: u32,
        no_ack: bool,
    },
    /// A bridge's declaration: it stays this context's only if the host takes it.
    Bridge(String),
}

#[derive(Debug)]
enum Pending {
    /// An app's call.
    App {
        track: Track,
        record: Option<Box<(u32, Command)>>,
    },
    /// A re-announcement after failover.
    Resume,
    Restore,
}

/// `waitForConfirms()` calls: every publish up to `upto` settles first.
#[derive(Debug)]
struct Waiter {
    id: u64,
    upto: u64,
    nacked: bool,
}

/// Deliveries in flight on a channel, by delivery tag. Tags only grow on a channel, so an
/// insert is a push at the back and acks come mostly from the front: a sorted `VecDeque`,
/// not a `BTreeMap` (one B-tree type fewer in the wasm).
#[derive(Debug, Default)]
struct InFlights(VecDeque<InFlight>);

impl InFlights {
    fn position(&self, tag: u64) -> usize {
        self.0.partition_point(|f| f.delivery_tag < tag)
    }

    fn insert(&mut self, f: InFlight) {
        if self.0.back().is_none_or(|b| b.delivery_tag < f.delivery_tag) {
            return self.0.push_back(f);
        }
        let at = self.position(f.delivery_tag);
        match self.0.get_mut(at) {
            Some(old) if old.delivery_tag == f.delivery_tag => *old = f,
            _ => self.0.insert(at, f),
        }
    }

    fn remove(&mut self, tag: u64) -> Option<InFlight> {
        let at = self.position(tag);
        if self.0.get(at)?.delivery_tag == tag {
            self.0.remove(at)
        } else {
            None
        }
    }

    /// Takes out every delivery up to `tag`, included.
    fn take_upto(&mut self, tag: u64) -> Vec<InFlight> {
        let end = self.0.partition_point(|f| f.delivery_tag <= tag);
        self.0.drain(..end).collect()
    }
}

/// One channel as its context knows it.
#[derive(Debug)]
struct Chan {
    conn: u32,
    confirm: bool,
    /// Consumers whose callbacks are registered (until the host answered their cancel).
    consumers: FxSet<String>,
    /// The live consumers' options, re-announced after failover.
    specs: Vec<Consume>,
    /// Unconfirmed publishes, in publish order (so sorted: numbers only grow).
    outstanding: VecDeque<u64>,
    waiters: Vec<Waiter>,
    /// The confirm sequence number of the next publish.
    next_seq: u64,
    prefetch: (u32, u32),
    /// Deliveries not yet acked, by tag, and the highest tag seen (not kept by the
    /// hosting context: it is never re-announced).
    in_flight: InFlights,
    last_tag: u64,
    /// Deliveries settled lately (when, what, ack or reject), re-announced after
    /// failover in case the dead host never stored their settlement.
    settled: VecDeque<(u64, InFlight, bool)>,
}

impl Chan {
    /// The channel as a new host takes it; settlements older than `SETTLED_KEEP_MS` at
    /// `now` are left out (the list is pruned only as the app settles more).
    fn state(&self, now: u64) -> ChannelState {
        ChannelState {
            next_delivery_tag: self.last_tag + 1,
            confirm_seq: self.confirm.then_some(self.next_seq),
            consumer_prefetch: self.prefetch.0,
            channel_prefetch: self.prefetch.1,
            consumers: self.specs.clone(),
            in_flight: self.in_flight.0.iter().cloned().collect(),
            settled: self
                .settled
                .iter()
                .filter(|(at, _, _)| now.saturating_sub(*at) <= SETTLED_KEEP_MS)
                .map(|(_, f, ack)| (f.clone(), *ack))
                .collect(),
        }
    }
}

/// After failover: consumers the new host could not restore, and topology (what, why).
#[derive(Debug, Default)]
struct Lost {
    cancelled: Vec<String>,
    topology: Vec<(String, AmqpError)>,
}

/// A context's side of the mesh (see the module's doc).
#[derive(Debug)]
pub struct ClientState {
    me: u64,
    label: String,
    /// Who hosts (`me` when this context does), once known.
    host: Option<u64>,
    /// The host's term (`Frame::Host`): a `Host` frame of another context with a lower
    /// one is a late post of a host that is gone, read after its successor's.
    since: u64,
    closed: bool,
    chans: FxMap<u32, Chan>,
    pending: FxMap<u32, Pending>,
    next_call: u32,
    next_wait: u64,
    /// Connection and channel ids.
    next_local: u32,
    /// Frames for a host not known yet.
    waiting: Vec<Frame>,
    /// After failover: re-announcements not answered yet, and what could not be restored.
    resuming: Option<(usize, Lost)>,
    /// Per connection: the topology it declared that dies with the host (see
    /// [`super::topology`]).
    topology: FxMap<u32, Recorded>,
    /// The bridges this context declared (declared again to a new host), and their statuses.
    bridges: Declared,
    out: VecDeque<Notice>,
}

fn host_gone() -> AmqpError {
    AmqpError::new(
        ReplyCode::ConnectionForced,
        "the context hosting the broker went away before answering: the call may or may not have taken effect; \
         another context hosts now, so try again",
    )
}

fn nacked_before_wait() -> AmqpError {
    AmqpError::new(
        ReplyCode::ResourceError,
        "a message published before waitForConfirms was nacked: its publish callback has the reason",
    )
}

impl ClientState {
    /// Context `me`, named `label` in the stats. It asks who hosts at once.
    pub fn new(me: u64, label: String) -> ClientState {
        let mut c = ClientState {
            me,
            label: label.clone(),
            host: None,
            since: 0,
            closed: false,
            chans: FxMap::default(),
            pending: FxMap::default(),
            next_call: 0,
            next_wait: 0,
            next_local: 1,
            waiting: Vec::new(),
            resuming: None,
            topology: FxMap::default(),
            bridges: Declared::default(),
            out: VecDeque::new(),
        };
        c.out.push_back(Notice::Post { to: EVERYONE, frame: Frame::Hello { label } });
        c
    }

    /// Who hosts, once known.
    pub fn host(&self) -> Option<u64> {
        self.host
    }

    /// The term of the host this context knows (0 before it knows one): a host this
    /// context becomes takes a later one ([`crate::mesh::host::HostState::follow`]).
    pub fn since(&self) -> u64 {
        self.since
    }

    /// What to do next, in order.
    pub fn poll_notice(&mut self) -> Option<Notice> {
        self.out.pop_front()
    }

    /// A new connection or channel id.
    pub fn next_id(&mut self) -> u32 {
        let id = self.next_local;
        self.next_local += 1;
        id
    }

    /// Whether `chan` has the consumer `tag` registered.
    pub fn has_consumer(&self, chan: u32, tag: &str) -> bool {
        self.chans.get(&chan).is_some_and(|c| c.consumers.contains(tag))
    }

    fn for_host(&mut self, frame: Frame) {
        if self.closed {
            return;
        }
        match self.host {
            Some(to) => self.out.push_back(Notice::Post { to, frame }),
            None => self.waiting.push(frame),
        }
    }

    fn hosting(&self) -> bool {
        self.host == Some(self.me)
    }

    fn request(&mut self, pending: Pending, frame: impl FnOnce(u32) -> Frame) -> u32 {
        self.next_call = self.next_call.wrapping_add(1).max(1);
        let id = self.next_call;
        self.pending.insert(id, pending);
        self.for_host(frame(id));
        id
    }

    // ------------------------------------------------------------ the app's calls

    /// Opens channel `chan` (from [`ClientState::next_id`]) on connection `conn`.
    pub fn open_channel(&mut self, conn: u32, chan: u32, confirm: bool) {
        self.for_host(Frame::OpenChannel { conn, chan, confirm });
        let c = Chan {
            conn,
            confirm,
            consumers: FxSet::default(),
            specs: Vec::new(),
            outstanding: VecDeque::new(),
            waiters: Vec::new(),
            next_seq: 1,
            prefetch: (0, 0),
            in_flight: InFlights::default(),
            last_tag: 0,
            settled: VecDeque::new(),
        };
        self.chans.insert(chan, c);
    }

    /// A channel command that answers: the call's id ([`Notice::Answer`]).
    pub fn call(&mut self, chan: u32, cmd: Command, track: Track) -> Result<u32, AmqpError> {
        let conn = self.chans.get(&chan).ok_or_else(closed_channel)?.conn;
        let record = Recorded::concerns(&cmd).then(|| Box::new((conn, cmd.clone())));
        Ok(self.request(Pending::App { track, record }, |id| Frame::Call { id, chan, cmd }))
    }

    /// A call that is not about a channel (stats, peek, flush).
    pub fn ask(&mut self, frame: impl FnOnce(u32) -> Frame) -> u32 {
        self.request(Pending::App { track: Track::Nothing, record: None }, frame)
    }

    /// A channel command that answers nothing (publish, ack, nack, reject, close): an
    /// error closes the channel and reaches the app as its events. A publish on a
    /// confirm channel answers its sequence number.
    pub fn cast(&mut self, chan: u32, cmd: Command, now: u64) -> Result<Option<u64>, AmqpError> {
        let hosting = self.hosting();
        let c = self.chans.get_mut(&chan).ok_or_else(closed_channel)?;
        let mut seq = None;
        match &cmd {
            Command::Publish { .. } if c.confirm => {
                seq = Some(c.next_seq);
                c.outstanding.push_back(c.next_seq);
                c.next_seq += 1;
            }
            Command::Ack { tag, multiple } if !hosting => settle(c, *tag, *multiple, Some(true), now),
            Command::Nack { tag, multiple, requeue } if !hosting => {
                settle(c, *tag, *multiple, (!requeue).then_some(false), now)
            }
            Command::Reject { tag, requeue } if !hosting => settle(c, *tag, false, (!requeue).then_some(false), now),
            _ => {}
        }
        self.for_host(Frame::Call { id: 0, chan, cmd });
        Ok(seq)
    }

    /// Registers consumer `c` (its tag set) and starts it: the call's id.
    pub fn consume(&mut self, chan: u32, c: Consume) -> Result<u32, AmqpError> {
        let ch = self.chans.get_mut(&chan).ok_or_else(closed_channel)?;
        let tag = c.consumer_tag.clone();
        let fresh = ch.consumers.insert(tag.clone());
        ch.specs.push(c.clone());
        self.call(chan, Command::Consume(c), Track::Consume { chan, tag, fresh })
    }

    pub fn cancel(&mut self, chan: u32, tag: &str) -> Result<u32, AmqpError> {
        if let Some(c) = self.chans.get_mut(&chan) {
            // Not re-announced to a new host from now on.
            c.specs.retain(|s| s.consumer_tag != tag);
        }
        self.call(chan, Command::Cancel(tag.into()), Track::Cancel { chan, tag: tag.into() })
    }

    pub fn prefetch(&mut self, chan: u32, count: u32, global: bool) -> Result<u32, AmqpError> {
        let id = self.call(chan, Command::Prefetch { count, global }, Track::Nothing)?;
        if let Some(c) = self.chans.get_mut(&chan) {
            match global {
                false => c.prefetch.0 = count,
                true => c.prefetch.1 = count,
            }
        }
        Ok(id)
    }

    pub fn recover(&mut self, chan: u32) -> Result<u32, AmqpError> {
        let id = self.call(chan, Command::Recover, Track::Nothing)?;
        if let Some(c) = self.chans.get_mut(&chan) {
            c.in_flight.0.clear();
        }
        Ok(id)
    }

    pub fn get(&mut self, chan: u32, queue: String, no_ack: bool) -> Result<u32, AmqpError> {
        self.call(chan, Command::Get { queue, no_ack }, Track::Get { chan, no_ack })
    }

    /// `bridge()`: the call's id ([`Notice::Answer`]) if the host must take it, `None` if
    /// this context declared it already (alike); a 406 if with other options.
    pub fn declare_bridge(&mut self, config: BridgeConfig) -> Result<Option<u32>, AmqpError> {
        // A handle more, while the first waits for the host: it waits for its answer too.
        if !self.bridges.declare(&config)? && self.declaring(&config.name).is_empty() {
            return Ok(None);
        }
        let track = Track::Bridge(config.name.clone());
        Ok(Some(self.request(Pending::App { track, record: None }, |id| Frame::DeclareBridge { id, config })))
    }

    /// A `bridge()` handle closed: the host is told once this context holds none of `name`.
    pub fn undeclare_bridge(&mut self, name: &str) {
        if self.bridges.undeclare(name) {
            self.for_host(Frame::UndeclareBridge { name: name.into() });
        }
    }

    /// Every bridge's latest status as the host told it, with its configuration (no passcode).
    pub fn bridges(&self) -> impl Iterator<Item = (&BridgeConfig, &BridgeStatus)> {
        self.bridges.statuses()
    }

    /// `waitForConfirms()`: the wait's id ([`Notice::Waited`]), or `None` if the channel
    /// is closed.
    pub fn wait_for_confirms(&mut self, chan: u32) -> Option<u64> {
        self.next_wait += 1;
        let id = self.next_wait;
        let c = self.chans.get_mut(&chan)?;
        c.waiters.push(Waiter { id, upto: c.next_seq - 1, nacked: false });
        settle_waiters(chan, c, &mut self.out);
        Some(id)
    }

    /// `close()` of a channel: unacked messages go back; pending confirms fail. Says
    /// whether confirms were outstanding.
    pub fn close_channel(&mut self, chan: u32) -> bool {
        if self.chans.contains_key(&chan) {
            self.for_host(Frame::Call { id: 0, chan, cmd: Command::Close });
        }
        self.channel_closed(chan)
    }

    /// A connection closed by the app: its channels close, its exclusive queues go.
    /// Answers the channels that had confirms outstanding.
    pub fn close_connection(&mut self, conn: u32) -> Vec<u32> {
        self.topology.remove(&conn);
        self.for_host(Frame::CloseConnection { conn });
        let mut gone: Vec<u32> = self.chans.iter().filter(|(_, c)| c.conn == conn).map(|(k, _)| *k).collect();
        sort::sort(&mut gone);
        gone.into_iter().filter(|chan| self.channel_closed(*chan)).collect()
    }

    /// The app closed channel `chan`: its pending confirms fail, and it says `close`.
    fn channel_closed(&mut self, chan: u32) -> bool {
        let Some(mut c) = self.chans.remove(&chan) else { return false };
        let err = AmqpError::new(ReplyCode::ChannelError, "channel closed before the broker confirmed");
        let had = fail_all(chan, &mut c, &err, &mut self.out);
        self.out.push_back(Notice::Closed { chan, error: None });
        had
    }

    /// The context leaves (the app closed the connection, or the page was put away):
    /// calls waiting for an answer fail with `error`; with `close_channels`, every
    /// channel closes with it too.
    pub fn leave(&mut self, error: AmqpError, close_channels: bool) {
        self.closed = true;
        self.fail_pending(&error, false);
        if close_channels {
            let mut chans: Vec<u32> = self.chans.keys().copied().collect();
            sort::sort(&mut chans);
            for chan in chans {
                self.event(chan, WireEvent::Closed(error.clone()), 0);
            }
        }
    }

    /// Calls waiting for an answer fail with `error`, but for declarations of bridges this
    /// context holds when `failover`: those go to the new host, which answers them.
    fn fail_pending(&mut self, error: &AmqpError, failover: bool) {
        let mut ids: Vec<u32> = self.pending.keys().copied().collect();
        sort::sort(&mut ids);
        for id in ids {
            if let Pending::App { track: Track::Bridge(name), .. } = &self.pending[&id] {
                if failover && self.bridges.holds(name) {
                    continue;
                }
            }
            // A re-announcement has no one waiting on it: the next host asks anew.
            if let Some(Pending::App { track, .. }) = self.pending.remove(&id) {
                if let Track::Bridge(name) = track {
                    self.bridges.refused(&name);
                }
                self.out.push_back(Notice::Answer { id, result: Err(error.clone()) });
            }
        }
    }

    /// The declarations of bridge `name` waiting for the host's answer, in call order.
    fn declaring(&self, name: &str) -> Vec<u32> {
        let mut ids: Vec<u32> = self
            .pending
            .iter()
            .filter(|(_, p)| matches!(p, Pending::App { track: Track::Bridge(n), .. } if n == name))
            .map(|(id, _)| *id)
            .collect();
        sort::sort(&mut ids);
        ids
    }

    // ------------------------------------------------------------ the host's frames

    /// A frame from context `from`.
    pub fn receive(&mut self, from: u64, f: Frame, now: u64) {
        if self.closed {
            return;
        }
        if let Frame::Host { since } = f {
            match self.host {
                Some(h) if h == from => self.since = self.since.max(since),
                None => {
                    self.host = Some(from);
                    self.since = since;
                    for f in std::mem::take(&mut self.waiting) {
                        self.for_host(f);
                    }
                    // Nothing to re-announce: a host taking over need not wait for this
                    // context (it holds its lock, so the host counts it among the live).
                    self.for_host(Frame::Resumed);
                    self.out.push_back(Notice::Ready);
                }
                // A host that is gone, read late (see `since`).
                Some(_) if since < self.since => {}
                Some(_) => {
                    self.since = since;
                    self.take_new_host(from, now);
                }
            }
            return;
        }
        if self.host != Some(from) {
            return;
        }
        match f {
            Frame::Reply { id, result } => self.answered(id, result),
            Frame::Event { chan, event } => self.event(chan, event, now),
            f @ (Frame::BridgeStatus { .. } | Frame::BridgeGone { .. }) => self.bridges.told(f),
            _ => {}
        }
    }

    /// This context hosts now (it won the host lock), with term `since` (its host
    /// state's: see [`ClientState::since`]): its own channels are re-announced to it as
    /// to any new host.
    pub fn hosting_now(&mut self, since: u64, now: u64) {
        self.since = since;
        match self.host {
            None => {
                self.host = Some(self.me);
                for f in std::mem::take(&mut self.waiting) {
                    self.for_host(f);
                }
                self.out.push_back(Notice::Ready);
            }
            Some(h) if h == self.me => {}
            Some(_) => self.take_new_host(self.me, now),
        }
    }

    fn answered(&mut self, id: u32, result: Result<Answer, AmqpError>) {
        let Some(p) = self.pending.remove(&id) else { return };
        let (how, record) = match p {
            Pending::Resume | Pending::Restore => {
                let lost = match result {
                    Ok(Answer::Resumed(lost)) => lost,
                    Ok(_) => Vec::new(),
                    Err(e) if matches!(p, Pending::Restore) => vec![("the connection's topology".into(), e)],
                    Err(_) => Vec::new(),
                };
                self.resume_answered(matches!(p, Pending::Restore), lost);
                return;
            }
            Pending::App { track, record } => (track, record),
        };
        match (&how, &result) {
            (_, Ok(a)) => {
                if let Some((conn, cmd)) = record.map(|r| *r) {
                    let queue = match a {
                        Answer::Queue(ok) => Some(&*ok.queue),
                        _ => None,
                    };
                    self.topology.entry(conn).or_default().record(cmd, queue);
                }
            }
            (Track::Bridge(name), Err(_)) => self.bridges.refused(name),
            (Track::Consume { chan, tag, fresh: true }, Err(_)) => {
                if let Some(c) = self.chans.get_mut(chan) {
                    if let Some(i) = c.specs.iter().rposition(|s| s.consumer_tag == *tag) {
                        c.specs.remove(i);
                    }
                    c.consumers.remove(tag);
                }
                self.out.push_back(Notice::ConsumerGone { chan: *chan, tag: tag.clone(), notify: false });
            }
            _ => {}
        }
        match (how, &result) {
            (Track::Cancel { chan, tag }, Ok(_)) => {
                if let Some(c) = self.chans.get_mut(&chan) {
                    c.consumers.remove(&tag);
                }
                self.out.push_back(Notice::ConsumerGone { chan, tag, notify: false });
            }
            // Let go (or refused) meanwhile: the host need not run it for this context.
            (Track::Bridge(name), Ok(_)) if !self.bridges.holds(&name) => {
                self.for_host(Frame::UndeclareBridge { name })
            }
            (Track::Get { chan, no_ack: false }, Ok(Answer::Got(Some((d, _))))) if !self.hosting() => {
                if let Some(c) = self.chans.get_mut(&chan) {
                    track(c, d);
                }
            }
            _ => {}
        }
        self.out.push_back(Notice::Answer { id, result });
    }

    /// An event for channel `chan`.
    fn event(&mut self, chan: u32, event: WireEvent, _now: u64) {
        let hosting = self.hosting();
        let Some(c) = self.chans.get_mut(&chan) else { return };
        match event {
            WireEvent::Confirm { seq, error } => {
                // Confirms come mostly in order: the first, found at once.
                if let Ok(i) = c.outstanding.binary_search(&seq) {
                    c.outstanding.remove(i);
                }
                if error.is_some() {
                    for w in c.waiters.iter_mut().filter(|w| w.upto >= seq) {
                        w.nacked = true;
                    }
                }
                settle_waiters(chan, c, &mut self.out);
                self.out.push_back(Notice::Confirm { chan, seq, error, broker: true });
            }
            WireEvent::Deliver(d) => {
                // A cancelled consumer is known until the host answers the cancel, after
                // which the host sends it nothing more.
                let tag = d.consumer_tag.as_deref().unwrap_or("");
                if !c.consumers.contains(tag) {
                    return;
                }
                if !hosting {
                    track(c, &d);
                }
                self.out.push_back(Notice::Deliver { chan, delivery: d });
            }
            WireEvent::Return { code, text, message } => {
                self.out.push_back(Notice::Return { chan, code, text, message })
            }
            WireEvent::Cancelled(tag) => {
                c.specs.retain(|s| *s.consumer_tag != *tag);
                if c.consumers.remove(&*tag) {
                    self.out.push_back(Notice::ConsumerGone { chan, tag: tag.to_string(), notify: true });
                }
            }
            WireEvent::Closed(error) => {
                let Some(mut c) = self.chans.remove(&chan) else { return };
                fail_all(chan, &mut c, &error, &mut self.out);
                self.out.push_back(Notice::Closed { chan, error: Some(error) });
            }
        }
    }

    // ------------------------------------------------------------ failover

    /// Another context hosts now: calls in flight fail, then every connection's topology
    /// and every channel is re-announced to it.
    fn take_new_host(&mut self, host: u64, now: u64) {
        self.host = Some(host);
        self.fail_in_flight();
        if host != self.me {
            self.for_host(Frame::Hello { label: self.label.clone() });
        }
        let topology = self.topology_to_restore();
        let mut chans: Vec<u32> = self.chans.keys().copied().collect();
        sort::sort(&mut chans);
        self.resuming = Some((topology.len() + chans.len(), Lost::default()));
        // Before the channels: their consumers need the queues.
        for (conn, commands) in topology {
            self.request(Pending::Restore, |id| Frame::Restore { id, conn, commands });
        }
        for chan in chans {
            let (conn, state) = {
                let c = &self.chans[&chan];
                (c.conn, c.state(now))
            };
            self.request(Pending::Resume, |id| Frame::Resume { id, conn, chan, state });
        }
        // Its bridges run on the new host: answered with nothing, but for a declaration
        // the old host never answered, whose call waits for the new host's answer.
        for config in self.bridges.for_new_host() {
            let ids = self.declaring(&config.name);
            for id in if ids.is_empty() { vec![0] } else { ids } {
                self.for_host(Frame::DeclareBridge { id, config: config.clone() });
            }
        }
        self.for_host(Frame::Resumed);
        if self.resuming.as_ref().is_some_and(|(n, _)| *n == 0) {
            self.resuming = None;
            self.out.push_back(Notice::Failover { cancelled: Vec::new(), not_restored: Vec::new() });
        }
    }

    /// The previous host is gone: calls it never answered fail, and so do confirms it
    /// never gave (the message may or may not be stored).
    fn fail_in_flight(&mut self) {
        let err = host_gone();
        self.fail_pending(&err, true);
        let mut chans: Vec<u32> = self.chans.keys().copied().collect();
        sort::sort(&mut chans);
        for chan in chans {
            let c = self.chans.get_mut(&chan).expect("listed");
            let failed: Vec<u64> = std::mem::take(&mut c.outstanding).into_iter().collect();
            for w in c.waiters.iter_mut() {
                w.nacked = true;
            }
            settle_waiters(chan, c, &mut self.out);
            for seq in failed {
                self.out.push_back(Notice::Confirm { chan, seq, error: Some(err.clone()), broker: false });
            }
        }
    }

    /// Per connection, the commands that build again what it declared.
    fn topology_to_restore(&self) -> Vec<(u32, Vec<Command>)> {
        let consumed = |conn: u32, queue: &str| {
            self.chans.values().any(|c| c.conn == conn && c.specs.iter().any(|s| s.queue == queue))
        };
        let mut out: Vec<(u32, Vec<Command>)> = self
            .topology
            .iter()
            .filter(|(_, r)| !r.is_empty())
            .map(|(conn, r)| (*conn, r.commands(|q| consumed(*conn, q))))
            .collect();
        sort::sort_by_key(&mut out, |(conn, _)| *conn);
        out
    }

    /// A re-announcement was answered: `lost` is what the new host could not restore.
    fn resume_answered(&mut self, restore: bool, lost: Vec<(String, AmqpError)>) {
        let mut gone = Lost::default();
        if restore {
            gone.topology = lost;
        } else {
            for (tag, _) in lost {
                // The channel of each lost consumer: the one whose consumers have its tag.
                let Some((chan, c)) = self.chans.iter_mut().find(|(_, c)| c.consumers.contains(&tag)) else {
                    gone.cancelled.push(tag);
                    continue;
                };
                c.specs.retain(|s| s.consumer_tag != tag);
                c.consumers.remove(&tag);
                self.out.push_back(Notice::ConsumerGone { chan: *chan, tag: tag.clone(), notify: true });
                gone.cancelled.push(tag);
            }
        }
        let Some((n, all)) = &mut self.resuming else { return };
        *n = n.saturating_sub(1);
        all.cancelled.extend(gone.cancelled);
        all.topology.extend(gone.topology);
        if *n == 0 {
            let (_, all) = self.resuming.take().expect("resuming");
            self.out.push_back(Notice::Failover { cancelled: all.cancelled, not_restored: all.topology });
        }
    }

    /// The delivery tags in flight on `chan` (client role), for tests.
    pub fn in_flight(&self, chan: u32) -> Vec<u64> {
        self.chans.get(&chan).map(|c| c.in_flight.0.iter().map(|f| f.delivery_tag).collect()).unwrap_or_default()
    }
}

/// A delivery to ack later, re-announced if the host changes.
fn track(c: &mut Chan, d: &WireDelivery) {
    c.last_tag = c.last_tag.max(d.delivery_tag);
    let tag = d.consumer_tag.as_deref();
    let no_ack = tag.is_some_and(|t| c.specs.iter().any(|s| s.consumer_tag == t && s.no_ack));
    if !no_ack && !d.queue.is_empty() {
        let f = InFlight {
            queue: d.queue.to_string(),
            seq: d.seq,
            delivery_tag: d.delivery_tag,
            consumer_tag: tag.map(str::to_owned),
        };
        c.in_flight.insert(f);
    }
}

/// An ack, nack or reject settles deliveries in flight. Acks and rejects without
/// requeue are kept a while (see `settled`); a requeued message is back in its queue
/// either way.
fn settle(c: &mut Chan, tag: u64, multiple: bool, keep: Option<bool>, now: u64) {
    let done: Vec<InFlight> = match (tag, multiple) {
        (0, true) => c.in_flight.0.drain(..).collect(),
        (t, true) => c.in_flight.take_upto(t),
        (t, false) => c.in_flight.remove(t).into_iter().collect(),
    };
    while c.settled.front().is_some_and(|(at, _, _)| now.saturating_sub(*at) > SETTLED_KEEP_MS)
        || c.settled.len() > SETTLED_KEEP_MAX
    {
        c.settled.pop_front();
    }
    if let Some(ack) = keep {
        c.settled.extend(done.into_iter().map(|f| (now, f, ack)));
    }
}

/// The `waitForConfirms` calls whose publishes have all settled are over.
fn settle_waiters(chan: u32, c: &mut Chan, out: &mut VecDeque<Notice>) {
    let first_open = c.outstanding.front().copied().unwrap_or(u64::MAX);
    c.waiters.retain(|w| {
        if w.upto >= first_open {
            return true;
        }
        let result = match w.nacked {
            false => Ok(()),
            true => Err(nacked_before_wait()),
        };
        out.push_back(Notice::Waited { chan, wait: w.id, result });
        false
    });
}

/// Every pending confirm fails with `error`, in publish order, then every wait; says
/// whether any confirm was pending.
fn fail_all(chan: u32, c: &mut Chan, error: &AmqpError, out: &mut VecDeque<Notice>) -> bool {
    let had = !c.outstanding.is_empty();
    for seq in std::mem::take(&mut c.outstanding) {
        out.push_back(Notice::Confirm { chan, seq, error: Some(error.clone()), broker: false });
    }
    for w in c.waiters.drain(..) {
        out.push_back(Notice::Waited { chan, wait: w.id, result: Err(error.clone()) });
    }
    had
}
