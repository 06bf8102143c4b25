//! The server side of Web-STOMP, sans-IO: a [`StompSession`] is one STOMP connection (one
//! WebSocket) to the broker, with the semantics of RabbitMQ's STOMP plugin
//! (<https://www.rabbitmq.com/docs/stomp>, quoted below as "RabbitMQ's docs"; where they
//! say nothing, its `rabbit_stomp_processor.erl`, quoted as "RabbitMQ's processor").
//!
//! A session is one more context of the mesh host ([`crate::mesh::host::HostState`]): it
//! turns the client's frames into mesh [`Frame`]s (an `OpenChannel` in confirm mode once
//! the client is authenticated, then `Call`s: declare, bind, publish, consume, ack, nack,
//! cancel) for the driver to hand to `HostState::receive` with the session's context id,
//! and turns what the host posts to that id (replies, deliveries, confirms, channel
//! errors) into STOMP frames. So it shares the host's bookkeeping: confirms come once the
//! store committed, and a session that ends (`CloseConnection`) gives its unacked messages
//! back to their queues, flagged redelivered, and loses its exclusive queues.
//!
//! The driver (a Durable Object's WebSocket, `Deno.serve`'s, or the native tests) feeds it
//! bytes from the socket ([`StompSession::receive`]), the host's posts to its context
//! ([`StompSession::host_frame`]), the verdict on its credentials
//! ([`StompSession::authenticated`]) and the time ([`StompSession::wake`] at
//! [`StompSession::next_wakeup`]), and carries out its [`Output`]s in order.
//!
//! Every error the session sends is an ERROR frame that says what to change, after which
//! it closes, as STOMP 1.2 says a server does ("the server MUST then close the connection
//! just after sending the ERROR frame", stomp-specification-1.2, ERROR). RabbitMQ keeps
//! some sessions open after an ERROR (a bad ack id, an unknown subscription); a client
//! cannot rely on that, since the spec lets any server close.
//!
//! Other differences from RabbitMQ (3.10.8, checked with a raw socket where noted):
//! - transactions (`BEGIN`, `COMMIT`, `ABORT`, a `transaction` header) are refused with an
//!   ERROR that says so;
//! - there is no default user or implicit connect: absent `login`/`passcode` go to the
//!   app's check as `None`, which decides;
//! - the queues made for `/temp-queue/` are named `stomp.gen-<session>-<n>` (RabbitMQ's
//!   current processor says `stomp.gen-…`, 3.10.8 made `amq.gen-…`, a prefix a client may
//!   not declare here), and durable subscriptions' queues
//!   `stomp-subscription-<exchange>-<key>-<id>` (RabbitMQ: a hash); both are opaque names;
//! - a MESSAGE does not carry the `receipt` header of the SEND that published it (3.10.8
//!   does); STOMP 1.0 header values are not trimmed.

use std::collections::VecDeque;

use super::stomp::{Decoder, Frame as Stomp, StompError};
use super::{properties, put_properties};
use crate::core::fxhash::{FxMap, FxSet};
use crate::core::{AmqpError, Consume, FieldValue, Message, QueueDeclare, Table};
use crate::mesh::frame::{Command, Frame, WireDelivery, WireEvent};

/// The session's connection and channel ids, as the host knows them (one of each per
/// context: RabbitMQ's STOMP plugin runs one channel per session too).
const CONN: u32 = 1;
const CHAN: u32 = 1;

/// How many earlier session ids a restored session recognises in ACK and NACK frames.
const FORMER_IDS: usize = 4;

/// The STOMP versions served, as RabbitMQ's processor lists them (`?SUPPORTED_VERSIONS`).
const VERSIONS: &str = "1.0,1.1,1.2";

/// A session's limits and what it says of itself.
#[derive(Clone, Debug)]
pub struct Config {
    /// Names the session in `CONNECTED` (`session`), in message ids and in the names of
    /// the queues it makes: unique among the sessions of one broker.
    pub session_id: String,
    /// The largest frame accepted, headers and body. RabbitMQ's default is 4 MiB
    /// ("By default frame size limit is 4Mb", RabbitMQ's docs, Frame Size Limit).
    pub max_frame_bytes: usize,
    /// Subscriptions one session may hold at once (temporary reply queues count).
    pub max_subscriptions: usize,
    /// The server's heart-beat (`sx,sy` of STOMP 1.2: the smallest interval it sends at,
    /// the smallest it wants to receive at, in ms; 0: never). RabbitMQ takes the client's
    /// wish, rounded to whole seconds (its `ensure_heartbeats`): (1000, 1000) is close.
    pub heart_beat: (u64, u64),
    /// How long a socket may go without a `CONNECT` (and its verdict), in ms.
    pub connect_timeout_ms: u64,
    /// The `server` header of `CONNECTED`.
    pub server: String,
    /// For a socket that outlives the session's memory (a Durable Object's hibernatable
    /// WebSocket): the session says its state ([`Output::Saved`]) so that
    /// [`StompSession::restore`] can make it again, refuses subscriptions whose state would be
    /// over this many bytes, and runs no timer once connected: heart-beats are answered by the
    /// transport (an end-of-line for each one the client sends) and a dead client is left for
    /// the transport to notice. 0: an ordinary session.
    pub saved_state_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            session_id: "session-1".into(),
            max_frame_bytes: 4 << 20,
            max_subscriptions: 128,
            heart_beat: (1000, 1000),
            connect_timeout_ms: 10_000,
            server: concat!("tabbit/", env!("CARGO_PKG_VERSION")).into(),
            saved_state_bytes: 0,
        }
    }
}

/// What the driver does for the session, in order.
#[allow(clippy::large_enum_variant)] // as mesh::Frame: moved once
#[derive(Debug)]
pub enum Output {
    /// Send these bytes to the client: one STOMP frame, or an end-of-line heart-beat (one
    /// WebSocket message each, as RabbitMQ's Web-STOMP sends them).
    Send(Vec<u8>),
    /// Hand this frame to the host: `HostState::receive(engine, ctx, frame, now)`, `ctx`
    /// being the session's context id; what the host posts to `ctx` comes back through
    /// [`StompSession::host_frame`].
    Host(Frame),
    /// Check these credentials (the app's check; absent headers are `None`; `host` is the
    /// virtual host asked for, `/` if none), then call [`StompSession::authenticated`].
    Authenticate { login: Option<String>, passcode: Option<String>, host: String },
    /// Close the socket. Nothing more comes out of the session.
    Close,
    /// Keep this beside the socket: the session's state (version, login, virtual host,
    /// heart-beats, subscriptions), for [`StompSession::restore`]. Only with
    /// [`Config::saved_state_bytes`]; each replaces the one before.
    Saved(Vec<u8>),
}

/// `ack` of a SUBSCRIBE (RabbitMQ's docs, ACK and NACK).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AckMode {
    Auto,
    /// Cumulative: an ACK settles the message and every older unacked one of the session,
    /// as a `basic.ack` with `multiple` does (RabbitMQ's processor, `collect_acks`).
    Client,
    ClientIndividual,
}

#[derive(Debug)]
struct Subscription {
    ack: AckMode,
    /// The SUBSCRIBE's headers but `receipt`, to make it again on restore (none for a
    /// temporary queue's, which does not outlive the broker's memory).
    saved: Option<Vec<(String, String)>>,
    /// A durable topic subscription's queue, deleted by an UNSUBSCRIBE that says `durable:true`.
    durable_queue: Option<String>,
}

#[derive(Debug)]
enum Phase {
    /// Waiting for `CONNECT`.
    Connect,
    /// `CONNECT` came; waiting for the verdict on its credentials. Frames that come
    /// meanwhile wait too (up to [`Config::max_frame_bytes`] of them).
    Auth {
        login: Option<String>,
        heart_beat: (u64, u64),
        held: Vec<Stomp>,
        held_bytes: usize,
    },
    Open,
    /// `DISCONNECT` with a receipt: sent once every frame before it is done.
    Disconnecting {
        receipt: String,
    },
    Closed,
}

/// One STOMP connection (see the module's doc).
#[derive(Debug)]
pub struct StompSession {
    cfg: Config,
    decoder: Decoder,
    phase: Phase,
    /// The negotiated version: "1.0", "1.1" or "1.2".
    version: &'static str,
    login: Option<String>,
    /// The virtual host the CONNECT asked for (`/` if none).
    host: String,
    /// The ids this socket's session had before it was restored, the latest last: the ack
    /// ids of their MESSAGEs name messages that went back to their queues.
    former: Vec<String>,
    now: u64,
    /// Heart-beats: intervals (0: none) and when bytes last went out and came in.
    send_every: u64,
    recv_every: u64,
    last_sent: u64,
    last_heard: u64,
    connect_deadline: u64,
    /// Calls in flight by id, and the RECEIPT to send when each is answered.
    calls: FxMap<u32, Option<String>>,
    next_call: u32,
    /// Publishes so far on the confirm channel, and the receipts waiting for their confirms.
    published: u64,
    receipts: FxMap<u64, String>,
    subs: FxMap<String, Subscription>,
    /// Deliveries not settled yet: delivery tag → (subscription id, cumulative ack).
    unacked: FxMap<u64, (String, bool)>,
    /// `/queue/` destinations this session declared already (RabbitMQ declares on the
    /// first SEND of a session only: RabbitMQ's docs, Queue Destinations).
    declared: FxSet<String>,
    /// `/temp-queue/<name>` → the queue made for it.
    temp_queues: FxMap<String, String>,
    /// Counter for the names of the queues the session makes.
    made: u64,
    out: VecDeque<Output>,
}

/// A destination, names unescaped (RabbitMQ's docs, Destinations).
#[derive(Debug, PartialEq, Eq)]
enum Dest {
    Exchange(String, String),
    Queue(String),
    AmqQueue(String),
    Topic(String),
    TempQueue(String),
    ReplyQueue(String),
}

const KINDS: &str = "/exchange/, /topic/, /queue/, /amq/queue/, /temp-queue/ (in reply-to only), /reply-queue/";

/// Reads a destination: `%dd` sequences in its names are bytes, as RabbitMQ writes
/// `/`, `%` and non-ASCII bytes in the destinations of its MESSAGE frames (RabbitMQ's docs,
/// Destinations, AMQP 0-9-1 Semantics).
fn parse_destination(d: &str) -> Result<Dest, Refusal> {
    let why = |why: &str| ("Invalid destination", format!("'{d}' is not a valid destination: {why}"));
    let bad = |w: &str| Err(why(w));
    let name = |s: &str| unescape(s).map_err(|e| why(&e));
    type Make = fn(String) -> Dest;
    let kinds: [(&str, Make); 5] = [
        ("/queue/", Dest::Queue),
        ("/amq/queue/", Dest::AmqQueue),
        ("/topic/", Dest::Topic),
        ("/temp-queue/", Dest::TempQueue),
        ("/reply-queue/", Dest::ReplyQueue),
    ];
    if let Some(rest) = d.strip_prefix("/exchange/") {
        let (x, key) = rest.split_once('/').unwrap_or((rest, ""));
        if x.is_empty() {
            return bad("write /exchange/<exchange>[/<routing key>]");
        }
        return Ok(Dest::Exchange(name(x)?, name(key)?));
    }
    for (prefix, make) in kinds {
        if let Some(rest) = d.strip_prefix(prefix) {
            if rest.is_empty() || rest.contains('/') {
                return bad(&format!("write {prefix}<name>, with a '/' in the name written %2F"));
            }
            return Ok(make(name(rest)?));
        }
    }
    // RabbitMQ says "Unknown destination" for no known kind, "Invalid destination" for a
    // known kind written wrong (RabbitMQ 3.10.8, checked).
    Err(("Unknown destination", format!("'{d}' is not a valid destination. Valid destination types are: {KINDS}")))
}

fn unescape(s: &str) -> Result<String, String> {
    if !s.contains('%') {
        return Ok(s.to_owned());
    }
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = s.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(h, 16).ok());
            let Some(byte) = hex else { return Err(format!("'%' must start a %dd escape in '{s}'")) };
            out.push(byte);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("the escapes in '{s}' are not UTF-8"))
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b == b'/' || b == b'%' || !b.is_ascii() {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

/// The `destination` of a MESSAGE, "as though the message originated from a SEND frame"
/// (RabbitMQ's docs, Destinations, AMQP 0-9-1 Semantics).
fn message_destination(m: &Message) -> String {
    match m.exchange.as_str() {
        "" => format!("/queue/{}", escape(&m.routing_key)),
        "amq.topic" => format!("/topic/{}", escape(&m.routing_key)),
        x if m.routing_key.is_empty() => format!("/exchange/{}", escape(x)),
        x => format!("/exchange/{}/{}", escape(x), escape(&m.routing_key)),
    }
}

/// What a codec error tells the client.
fn decode_error(e: &StompError) -> (&'static str, String) {
    match e {
        StompError::TooLarge(n) => (
            "Frame too large",
            format!("a frame is over this server's limit of {n} bytes (headers and body): send smaller frames"),
        ),
        StompError::BadCommand(c) => ("Malformed frame", format!("the command line \"{c}\" is not a STOMP command")),
        StompError::BadHeader(h) => ("Malformed frame", format!("the header line \"{h}\" is not name:value in UTF-8")),
        StompError::BadEscape(h) => {
            ("Malformed frame", format!("the header \"{h}\" has an escape other than \\\\, \\r, \\n or \\c"))
        }
        StompError::BadContentLength(v) => {
            ("Malformed frame", format!("content-length \"{v}\" is not a whole number of bytes"))
        }
        StompError::MissingNul => {
            ("Malformed frame", "the byte after a body of content-length bytes must be NUL".to_owned())
        }
        StompError::Poisoned => ("Malformed frame", "the stream failed before".to_owned()),
    }
}

/// Queue arguments RabbitMQ reads from SEND and SUBSCRIBE headers (RabbitMQ's docs,
/// Optional Queue Properties), with whether each is a number.
const QUEUE_ARGS: [(&str, bool); 8] = [
    ("x-message-ttl", true),
    ("x-expires", true),
    ("x-max-length", true),
    ("x-max-length-bytes", true),
    ("x-max-priority", true),
    ("x-dead-letter-exchange", false),
    ("x-dead-letter-routing-key", false),
    ("x-overflow", false),
];

/// An error of a frame: (ERROR `message`, detail).
type Refusal = (&'static str, String);

fn missing(command: &str, header: &str) -> Refusal {
    ("Missing header", format!("{command} must include a '{header}' header"))
}

fn boolean(f: &Stomp, name: &str, default: bool) -> Result<bool, Refusal> {
    match f.get(name) {
        None => Ok(default),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(v) => Err(("Invalid header", format!("'{name}:{v}' must be true or false"))),
    }
}

fn queue_arguments(f: &Stomp) -> Result<Table, Refusal> {
    let mut t = Table::new();
    for (name, number) in QUEUE_ARGS {
        let Some(v) = f.get(name) else { continue };
        let value = match number {
            true => FieldValue::Int(
                v.trim().parse().map_err(|_| ("Invalid header", format!("'{name}:{v}' must be a whole number")))?,
            ),
            false => FieldValue::Str(v.to_owned()),
        };
        t.insert(name.to_owned(), value);
    }
    Ok(t)
}

/// The heart-beat header `x,y`.
fn heart_beat(v: &str) -> Option<(u64, u64)> {
    let (x, y) = v.split_once(',')?;
    Some((x.trim().parse().ok()?, y.trim().parse().ok()?))
}

impl StompSession {
    /// A session on a socket that opened at `now`.
    pub fn new(cfg: Config, now: u64) -> StompSession {
        StompSession {
            decoder: Decoder::new(cfg.max_frame_bytes),
            connect_deadline: now.saturating_add(cfg.connect_timeout_ms),
            cfg,
            phase: Phase::Connect,
            version: "1.2",
            login: None,
            host: String::new(),
            former: Vec::new(),
            now,
            send_every: 0,
            recv_every: 0,
            last_sent: now,
            last_heard: now,
            calls: FxMap::default(),
            next_call: 1,
            published: 0,
            receipts: FxMap::default(),
            subs: FxMap::default(),
            unacked: FxMap::default(),
            declared: FxSet::default(),
            temp_queues: FxMap::default(),
            made: 0,
            out: VecDeque::new(),
        }
    }

    /// A session made again from the last [`Output::Saved`] of one whose memory is gone (a
    /// Durable Object evicted while its hibernatable WebSocket stayed open), on the same
    /// socket: connected, as the same login to the same virtual host, with the same
    /// heart-beats, and its subscriptions (ack mode, prefetch, every header) made again.
    /// Nothing is sent to the client for it. Messages the old session had not settled went
    /// back to their queues when the broker restarted, as when a connection goes, so they
    /// come again with `redelivered:true` and new ack ids; an ACK or NACK of an old id gets
    /// an ERROR that says so. Temporary queues, which do not outlive the broker, are not made
    /// again until used.
    pub fn restore(cfg: Config, saved: &[u8], now: u64) -> Result<StompSession, String> {
        let bad = |why: &str| format!("this socket's saved session cannot be read ({why}): connect again");
        let mut frames = Decoder::new(saved.len() + 1).push(saved).map_err(|e| bad(&e.to_string()))?.into_iter();
        let head = frames.next().filter(|f| f.command == "SESSION").ok_or_else(|| bad("no SESSION frame"))?;
        let mut s = StompSession::new(cfg, now);
        s.version = match head.get("version") {
            Some("1.0") => "1.0",
            Some("1.1") => "1.1",
            Some("1.2") => "1.2",
            _ => return Err(bad("no version")),
        };
        s.login = head.get("login").map(str::to_owned);
        s.host = head.get("host").unwrap_or("/").to_owned();
        (s.send_every, s.recv_every) =
            head.get("heart-beat").and_then(heart_beat).ok_or_else(|| bad("no heart-beat"))?;
        let mut former: Vec<String> =
            head.get("former").unwrap_or_default().split(',').filter(|x| !x.is_empty()).map(str::to_owned).collect();
        former.extend(head.get("session").map(str::to_owned));
        s.former = former.split_off(former.len().saturating_sub(FORMER_IDS));
        s.phase = Phase::Open;
        s.out.push_back(Output::Host(Frame::OpenChannel { conn: CONN, chan: CHAN, confirm: true }));
        for f in frames {
            s.frame(f);
        }
        s.save();
        Ok(s)
    }

    fn hibernatable(&self) -> bool {
        self.cfg.saved_state_bytes > 0
    }

    /// The state [`StompSession::restore`] reads: a SESSION frame, then the SUBSCRIBE frames.
    fn snapshot(&self) -> Vec<u8> {
        let mut head = Stomp::new("SESSION")
            .header("version", self.version)
            .header("session", self.cfg.session_id.clone())
            .header("host", self.host.clone())
            .header("heart-beat", format!("{},{}", self.send_every, self.recv_every));
        if let Some(l) = &self.login {
            head = head.header("login", l.clone());
        }
        if !self.former.is_empty() {
            head = head.header("former", self.former.join(","));
        }
        let mut out = head.encode();
        for h in self.subs.values().filter_map(|s| s.saved.as_ref()) {
            out.extend(Stomp { command: "SUBSCRIBE".into(), headers: h.clone(), body: Vec::new() }.encode());
        }
        out
    }

    fn save(&mut self) {
        if self.hibernatable() && matches!(self.phase, Phase::Open) {
            let state = self.snapshot();
            self.out.push_back(Output::Saved(state));
        }
    }

    /// What to do next, in order.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Whether the session has ended (closed by either side).
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// The negotiated STOMP version.
    pub fn version(&self) -> &'static str {
        self.version
    }

    /// Subscriptions held now.
    pub fn subscriptions(&self) -> usize {
        self.subs.len()
    }

    /// When to call [`StompSession::wake`]: a heart-beat to send, one overdue, or the
    /// connect timeout.
    pub fn next_wakeup(&self) -> Option<u64> {
        match self.phase {
            Phase::Closed => None,
            Phase::Connect | Phase::Auth { .. } => Some(self.connect_deadline),
            Phase::Open | Phase::Disconnecting { .. } if self.hibernatable() => None,
            Phase::Open | Phase::Disconnecting { .. } => {
                let send = (self.send_every > 0).then(|| self.last_sent.saturating_add(self.send_every));
                let recv = (self.recv_every > 0).then(|| self.last_heard.saturating_add(2 * self.recv_every));
                send.into_iter().chain(recv).min()
            }
        }
    }

    /// The time has come: sends a heart-beat that is due, and ends a session whose client
    /// has been silent for twice its heart-beat interval (STOMP 1.2 leaves the margin to
    /// the server: "take into account an error margin"), or that sent no CONNECT in time.
    pub fn wake(&mut self, now: u64) {
        self.now = now;
        match self.phase {
            Phase::Closed => {}
            Phase::Connect | Phase::Auth { .. } => {
                if now >= self.connect_deadline {
                    let ms = self.cfg.connect_timeout_ms;
                    self.fail(("Connect timeout", format!("no CONNECT (and login) within {ms} ms")), None);
                }
            }
            Phase::Open | Phase::Disconnecting { .. } if self.hibernatable() => {}
            Phase::Open | Phase::Disconnecting { .. } => {
                if self.recv_every > 0 && now >= self.last_heard.saturating_add(2 * self.recv_every) {
                    let detail = format!(
                        "nothing came from the client for {} ms, over twice the heart-beat interval of {} ms \
                         negotiated in CONNECTED",
                        now - self.last_heard,
                        self.recv_every
                    );
                    self.fail(("Heart-beat timeout", detail), None);
                    return;
                }
                if self.send_every > 0 && now >= self.last_sent.saturating_add(self.send_every) {
                    self.send_bytes(b"\n".to_vec());
                }
            }
        }
    }

    /// Bytes from the socket (one WebSocket message: a frame, several, part of one, or
    /// heart-beats).
    pub fn receive(&mut self, bytes: &[u8], now: u64) {
        self.now = now;
        if matches!(self.phase, Phase::Closed) {
            return;
        }
        self.last_heard = now;
        match self.decoder.push(bytes) {
            Ok(frames) => {
                for f in frames {
                    if matches!(self.phase, Phase::Closed) {
                        return;
                    }
                    self.frame(f);
                }
            }
            Err(e) => self.fail(decode_error(&e), None),
        }
    }

    /// The socket closed (the client left, or the network failed): the host closes the
    /// session's connection (its unacked messages go back to their queues).
    pub fn socket_closed(&mut self, now: u64) {
        self.now = now;
        self.end(false);
    }

    /// The driver refuses the socket before its CONNECT (a limit of the endpoint, the
    /// broker gone): an ERROR frame saying `message` and `detail`, then `Close`.
    pub fn refuse(&mut self, message: &'static str, detail: String, now: u64) {
        self.now = now;
        self.fail((message, detail), None);
    }

    /// The verdict on the credentials of `CONNECT`: `Err` says why they were refused.
    pub fn authenticated(&mut self, verdict: Result<(), String>, now: u64) {
        self.now = now;
        let Phase::Auth { .. } = self.phase else { return };
        let Phase::Auth { login, heart_beat: (cx, cy), held, .. } = std::mem::replace(&mut self.phase, Phase::Open)
        else {
            return;
        };
        if let Err(why) = verdict {
            let who = login.as_deref().unwrap_or("(no login)");
            self.phase = Phase::Connect;
            self.fail(("Bad CONNECT", format!("Access refused for user '{who}': {why}")), None);
            return;
        }
        self.login = login;
        // STOMP 1.2, Heart-beating: each side sends at the larger of what it can do and what
        // the other wants, 0 on either side meaning none. CONNECTED carries the result, as
        // RabbitMQ's does (its `ensure_heartbeats`), so a client reads the intervals as they are.
        let (sx, sy) = self.cfg.heart_beat;
        if self.hibernatable() {
            // The transport answers each heart-beat of the client with one (a Durable Object's
            // WebSocket auto-response): the server sends as often as the client does.
            (self.send_every, self.recv_every) = (cx, cx);
        } else {
            self.send_every = if sx == 0 || cy == 0 { 0 } else { sx.max(cy) };
            self.recv_every = if sy == 0 || cx == 0 { 0 } else { sy.max(cx) };
        }
        self.last_heard = now;
        self.out.push_back(Output::Host(Frame::OpenChannel { conn: CONN, chan: CHAN, confirm: true }));
        let connected = Stomp::new("CONNECTED")
            .header("version", self.version)
            .header("session", self.cfg.session_id.clone())
            .header("heart-beat", format!("{},{}", self.send_every, self.recv_every))
            .header("server", self.cfg.server.clone());
        self.send(connected);
        self.save();
        for f in held {
            if !matches!(self.phase, Phase::Open) {
                return;
            }
            self.frame(f);
        }
    }

    /// A frame the host posted to the session's context.
    pub fn host_frame(&mut self, f: Frame, now: u64) {
        self.now = now;
        if !matches!(self.phase, Phase::Open | Phase::Disconnecting { .. }) {
            return;
        }
        match f {
            Frame::Reply { id, result } => {
                let receipt = self.calls.remove(&id).flatten();
                match result {
                    Ok(_) => {
                        if let Some(r) = receipt {
                            self.send(Stomp::new("RECEIPT").header("receipt-id", r));
                        }
                    }
                    Err(e) => return self.amqp_error(&e, receipt),
                }
            }
            Frame::Event { chan: CHAN, event } => match event {
                WireEvent::Deliver(d) => self.deliver(d),
                WireEvent::Confirm { seq, error } => {
                    let receipt = self.receipts.remove(&seq);
                    if let Some(e) = error {
                        let detail = format!("the broker refused a message: {}", e.message);
                        return self.fail(("Message rejected", detail), receipt);
                    }
                    if let Some(r) = receipt {
                        self.send(Stomp::new("RECEIPT").header("receipt-id", r));
                    }
                }
                WireEvent::Cancelled(tag) => {
                    let id = tag.strip_prefix("T_").unwrap_or(&tag).to_owned();
                    self.subs.remove(&id);
                    let detail = format!("the server cancelled subscription '{id}' (its queue was deleted)");
                    let error = self.error_frame("Server cancelled subscription", &detail, None);
                    self.send(error.header("subscription", id));
                    self.end(true);
                    return;
                }
                WireEvent::Closed(e) => return self.amqp_error(&e, None),
                WireEvent::Return { .. } => {}
            },
            _ => {}
        }
        self.maybe_disconnected();
    }

    fn amqp_error(&mut self, e: &AmqpError, receipt: Option<String>) {
        // RabbitMQ names the AMQP error in `message` (its `amqp_death`): "not_found", ...
        // and its body reads as AMQP's reply text: "NOT_FOUND - no queue 'q' in vhost '/'".
        let name = e.code.name().to_ascii_lowercase();
        let error = self.error_frame(&name, &e.to_string(), receipt);
        self.send(error);
        self.end(true);
    }

    fn deliver(&mut self, d: WireDelivery) {
        let Some(id) = d.consumer_tag.as_deref().and_then(|t| t.strip_prefix("T_")) else { return };
        let Some(sub) = self.subs.get(id) else { return };
        let ack = sub.ack;
        let m = &d.message;
        let message_id = format!("T_{id}@@{}@@{}", self.cfg.session_id, d.delivery_tag);
        // RabbitMQ's MESSAGE headers (its `rabbit_stomp_util:headers`): the subscription, the
        // destination, a message id, redelivered, and in 1.2 for client acks the `ack` id.
        let mut f = Stomp::new("MESSAGE")
            .header("subscription", id)
            .header("destination", message_destination(m))
            .header("message-id", message_id.clone())
            .header("redelivered", if d.redelivered { "true" } else { "false" });
        if ack != AckMode::Auto {
            if self.version == "1.2" {
                f.headers.push(("ack".into(), message_id));
            }
            self.unacked.insert(d.delivery_tag, (id.to_owned(), ack == AckMode::Client));
        }
        put_properties(&mut f, &m.properties);
        for (k, v) in &mut f.headers {
            // A plain queue name in reply-to reads `/reply-queue/<name>`, a destination to
            // SEND to (RabbitMQ's docs, Temp Queue Destinations).
            if k == "reply-to" && !v.starts_with('/') {
                *v = format!("/reply-queue/{}", escape(v));
            }
        }
        let p = &m.properties;
        if let Some(u) = &p.user_id {
            f.headers.push(("user-id".into(), u.clone()));
        }
        if let Some(mid) = &p.message_id {
            f.headers.push(("amqp-message-id".into(), mid.clone()));
        }
        f.body = m.body.clone();
        self.send(f);
    }

    // ---- frames from the client -----------------------------------------------------------

    fn frame(&mut self, f: Stomp) {
        match &mut self.phase {
            Phase::Closed => {}
            Phase::Connect => match f.command.as_str() {
                "CONNECT" | "STOMP" => self.connect(f),
                c => {
                    let detail = format!("You must log in using CONNECT first (got {c})");
                    self.fail(("Illegal command", detail), f.get("receipt").map(str::to_owned))
                }
            },
            Phase::Auth { held, held_bytes, .. } => {
                *held_bytes += f.body.len() + f.headers.iter().map(|(k, v)| k.len() + v.len() + 2).sum::<usize>();
                if *held_bytes > self.cfg.max_frame_bytes {
                    let detail = "too many frames before the login was checked: wait for CONNECTED".to_owned();
                    return self.fail(("Too many frames", detail), None);
                }
                held.push(f);
            }
            Phase::Open => {
                let receipt = f.get("receipt").map(str::to_owned);
                if let Err(refusal) = self.command(f) {
                    self.fail(refusal, receipt);
                }
            }
            // After DISCONNECT a client sends nothing more (STOMP 1.2, DISCONNECT).
            Phase::Disconnecting { .. } => {}
        }
    }

    fn connect(&mut self, f: Stomp) {
        // RabbitMQ: no accept-version means 1.0; the highest version both speak wins
        // (its `negotiate_version`).
        let accepted = f.get("accept-version").unwrap_or("1.0");
        let Some(version) = ["1.2", "1.1", "1.0"].into_iter().find(|v| accepted.split(',').any(|a| a.trim() == *v))
        else {
            let detail = format!("Supported versions are {VERSIONS}; the client accepts '{accepted}'");
            return self.fail(("Version mismatch", detail), None);
        };
        self.version = version;
        let Some(hb) = heart_beat(f.get("heart-beat").unwrap_or("0,0")) else {
            let v = f.get("heart-beat").unwrap_or_default();
            let detail = format!("heart-beat '{v}' must be two whole numbers of ms, as 10000,10000 (or 0,0 for none)");
            return self.fail(("Invalid header", detail), None);
        };
        let login = f.get("login").map(str::to_owned);
        let passcode = f.get("passcode").map(str::to_owned);
        // RabbitMQ: `host` is optional, the default virtual host `/` when absent (its docs,
        // Connection and Virtual Hosts).
        let host = f.get("host").unwrap_or("/").to_owned();
        self.host = host.clone();
        self.phase = Phase::Auth { login: login.clone(), heart_beat: hb, held: Vec::new(), held_bytes: 0 };
        self.out.push_back(Output::Authenticate { login, passcode, host });
    }

    fn command(&mut self, f: Stomp) -> Result<(), Refusal> {
        let command = f.command.clone();
        if f.get("transaction").is_some() || matches!(command.as_str(), "BEGIN" | "COMMIT" | "ABORT") {
            let detail =
                format!("{command}: transactions are not supported by this broker; send without 'transaction'");
            return Err(("Transactions not supported", detail));
        }
        match command.as_str() {
            "SEND" => self.send_frame(f),
            "SUBSCRIBE" => self.subscribe(f),
            "UNSUBSCRIBE" => self.unsubscribe(f),
            "ACK" | "NACK" => self.settle(f),
            "DISCONNECT" => {
                match f.get("receipt") {
                    Some(r) => {
                        self.phase = Phase::Disconnecting { receipt: r.to_owned() };
                        self.maybe_disconnected();
                    }
                    None => self.end(true),
                }
                Ok(())
            }
            "CONNECT" | "STOMP" => Err(("Already connected", "this session is connected already".into())),
            c => Err(("Bad command", format!("Could not interpret command \"{c}\""))),
        }
    }

    /// A call to the host, answered with a reply (`receipt`: the RECEIPT to send then).
    fn call(&mut self, cmd: Command, receipt: Option<String>) {
        let id = self.next_call;
        self.next_call = self.next_call.wrapping_add(1).max(1);
        self.calls.insert(id, receipt);
        self.out.push_back(Output::Host(Frame::Call { id, chan: CHAN, cmd }));
    }

    /// A call with no reply: an error comes as the channel's closing.
    fn cast(&mut self, cmd: Command) {
        self.out.push_back(Output::Host(Frame::Call { id: 0, chan: CHAN, cmd }));
    }

    fn destination(&self, f: &Stomp) -> Result<Dest, Refusal> {
        let d = f.get("destination").ok_or_else(|| missing(&f.command, "destination"))?;
        parse_destination(d)
    }

    fn send_frame(&mut self, f: Stomp) -> Result<(), Refusal> {
        // RabbitMQ's docs, Header prohibited on SEND.
        if f.get("message-id").is_some() {
            return Err(("Invalid header", "'message-id' is not allowed on 'SEND': the server sets it".into()));
        }
        let (exchange, key) = match self.destination(&f)? {
            Dest::Exchange(x, key) => (x, key),
            Dest::Topic(key) => ("amq.topic".to_owned(), key),
            Dest::AmqQueue(q) | Dest::ReplyQueue(q) => (String::new(), q),
            Dest::Queue(q) => {
                if !self.declared.contains(&q) {
                    let d = QueueDeclare {
                        name: q.clone(),
                        durable: boolean(&f, "durable", true)?,
                        auto_delete: boolean(&f, "auto-delete", false)?,
                        exclusive: boolean(&f, "exclusive", false)?,
                        arguments: queue_arguments(&f)?,
                        passive: false,
                    };
                    self.call(Command::DeclareQueue(d), None);
                    self.declared.insert(q.clone());
                }
                (String::new(), q)
            }
            Dest::TempQueue(_) => {
                return Err((
                    "Invalid destination",
                    "a /temp-queue/ destination belongs in reply-to only: SEND to the queue a MESSAGE's \
                     reply-to names (/reply-queue/...)"
                        .into(),
                ))
            }
        };
        let mut p = properties(&f);
        if let Some(u) = &p.user_id {
            // RabbitMQ refuses a user-id that is not the login (its `check_user_id`).
            if Some(u) != self.login.as_ref() {
                let who = self.login.as_deref().unwrap_or("");
                let detail = format!("user_id property set to '{u}' but authenticated user was '{who}'");
                return Err(("precondition_failed", detail));
            }
        }
        if let Some(temp) = f.get("reply-to").and_then(|r| r.strip_prefix("/temp-queue/")) {
            p.reply_to = Some(self.temp_queue(temp)?);
        }
        let message = Message { exchange, routing_key: key, properties: p, body: f.body };
        self.cast(Command::Publish { message: Box::new(message), mandatory: false });
        // Every SEND with a receipt is confirmed before its RECEIPT: a persistent message
        // to a durable queue once stored (RabbitMQ's docs, Message Persistence; its
        // processor confirms every SEND that has a receipt).
        self.published += 1;
        if let Some(r) = f.headers.iter().find(|(k, _)| k == "receipt") {
            self.receipts.insert(self.published, r.1.clone());
        }
        Ok(())
    }

    /// The queue for `reply-to:/temp-queue/<name>`, made (exclusive, auto-delete) and
    /// subscribed to with auto acks on its first use; its subscription id is
    /// `/temp-queue/<name>` (RabbitMQ's docs, Temp Queue Destinations; its processor names
    /// such queues `stomp.gen-…`).
    fn temp_queue(&mut self, name: &str) -> Result<String, Refusal> {
        if let Some(q) = self.temp_queues.get(name) {
            return Ok(q.clone());
        }
        self.check_room()?;
        self.made += 1;
        let queue = format!("stomp.gen-{}-{}", self.cfg.session_id, self.made);
        let d = QueueDeclare { name: queue.clone(), exclusive: true, auto_delete: true, ..Default::default() };
        self.call(Command::DeclareQueue(d), None);
        let id = format!("/temp-queue/{name}");
        let consume =
            Consume { queue: queue.clone(), consumer_tag: format!("T_{id}"), no_ack: true, ..Default::default() };
        self.call(Command::Consume(consume), None);
        let sub = Subscription { ack: AckMode::Auto, saved: None, durable_queue: None };
        self.subs.insert(id, sub);
        self.temp_queues.insert(name.to_owned(), queue.clone());
        Ok(queue)
    }

    fn check_room(&self) -> Result<(), Refusal> {
        let max = self.cfg.max_subscriptions;
        if self.subs.len() >= max {
            let detail = format!("this session holds {max} subscriptions, the most allowed: UNSUBSCRIBE some first");
            return Err(("Too many subscriptions", detail));
        }
        Ok(())
    }

    fn subscribe(&mut self, f: Stomp) -> Result<(), Refusal> {
        let dest = self.destination(&f)?;
        // RabbitMQ: the subscription's id is its `id` header, or its destination (STOMP 1.0).
        let id = f.get("id").or(f.get("destination")).unwrap_or_default().to_owned();
        if id.starts_with("/temp-queue/") {
            return Err(("Invalid id", "a SUBSCRIBE 'id' may not start with /temp-queue/".into()));
        }
        if self.subs.contains_key(&id) {
            return Err((
                "Duplicated subscription identifier",
                format!("A subscription identified by '{id}' already exists."),
            ));
        }
        self.check_room()?;
        let ack = match f.get("ack").unwrap_or("auto") {
            "auto" => AckMode::Auto,
            "client" => AckMode::Client,
            "client-individual" => AckMode::ClientIndividual,
            a => return Err(("Invalid header", format!("ack '{a}' must be auto, client or client-individual"))),
        };
        // RabbitMQ's docs, Prefetch: unlimited unless `prefetch-count` says.
        let prefetch = match f.get("prefetch-count") {
            None => 0,
            Some(v) => v.trim().parse::<u16>().map_err(|_| {
                ("Invalid header", format!("prefetch-count '{v}' must be a whole number from 0 (unlimited) to 65535"))
            })?,
        };
        // `durable` (alias `persistent`) makes a durable topic subscription, which needs an
        // id (RabbitMQ's docs, Durable Topic Subscriptions).
        let durable = boolean(&f, "durable", false)? || boolean(&f, "persistent", false)?;
        if durable && f.get("id").is_none() {
            return Err(("Missing Header", "Header 'id' is required for durable subscriptions".into()));
        }
        let arguments = queue_arguments(&f)?;
        let saved: Vec<(String, String)> = f.headers.iter().filter(|(k, _)| k != "receipt").cloned().collect();
        let limit = self.cfg.saved_state_bytes;
        if limit > 0 {
            let bytes = self.snapshot().len()
                + Stomp { command: "SUBSCRIBE".into(), headers: saved.clone(), body: Vec::new() }.encode().len();
            if bytes > limit {
                let detail = format!(
                    "this session's subscriptions would take {bytes} bytes to keep beside its socket, over the {limit} bytes \
                     it has (so that they outlive the broker's memory): UNSUBSCRIBE some, or subscribe with fewer headers"
                );
                return Err(("Too many subscriptions", detail));
            }
        }
        let mut sub = Subscription { ack, saved: Some(saved), durable_queue: None };
        let queue =
            match dest {
                Dest::Queue(q) => {
                    // RabbitMQ's docs, Queue Destinations: durable, non-exclusive, not auto-deleted
                    // unless the headers say otherwise.
                    let d = QueueDeclare {
                        name: q.clone(),
                        durable: boolean(&f, "durable", true)?,
                        auto_delete: boolean(&f, "auto-delete", false)?,
                        exclusive: boolean(&f, "exclusive", false)?,
                        arguments,
                        passive: false,
                    };
                    self.call(Command::DeclareQueue(d), None);
                    self.declared.insert(q.clone());
                    q
                }
                Dest::AmqQueue(q) => q,
                Dest::Topic(key) => self.subscription_queue(&f, &id, durable, arguments, "amq.topic", key, &mut sub)?,
                Dest::Exchange(x, key) => self.subscription_queue(&f, &id, durable, arguments, &x, key, &mut sub)?,
                Dest::TempQueue(_) | Dest::ReplyQueue(_) => return Err((
                    "Invalid destination",
                    "temporary queues are subscribed to by a SEND with reply-to:/temp-queue/<name>, not by SUBSCRIBE"
                        .into(),
                )),
            };
        self.call(Command::Prefetch { count: prefetch as u32, global: false }, None);
        let consume =
            Consume { queue, consumer_tag: format!("T_{id}"), no_ack: ack == AckMode::Auto, ..Default::default() };
        self.call(Command::Consume(consume), f.get("receipt").map(str::to_owned));
        self.subs.insert(id, sub);
        self.save();
        Ok(())
    }

    /// The queue of a `/topic/` or `/exchange/` subscription, declared and bound: an
    /// exclusive auto-delete queue named `stomp-subscription-…`, or for a durable one a
    /// shared durable queue named after the destination and id (RabbitMQ's docs, Exchange
    /// Destinations, Topic Destinations, Durable Topic Subscriptions; `x-queue-name` names
    /// it, User generated queue names).
    #[allow(clippy::too_many_arguments)]
    fn subscription_queue(
        &mut self,
        f: &Stomp,
        id: &str,
        durable: bool,
        arguments: Table,
        exchange: &str,
        key: String,
        sub: &mut Subscription,
    ) -> Result<String, Refusal> {
        let name = match (f.get("x-queue-name"), durable) {
            (Some(n), _) => n.to_owned(),
            (None, true) => format!("stomp-subscription-{}-{}-{}", escape(exchange), escape(&key), escape(id)),
            (None, false) => {
                self.made += 1;
                format!("stomp-subscription-{}-{}", self.cfg.session_id, self.made)
            }
        };
        let d = QueueDeclare {
            name: name.clone(),
            durable,
            auto_delete: boolean(f, "auto-delete", !durable)?,
            exclusive: boolean(f, "exclusive", !durable)?,
            arguments,
            passive: false,
        };
        sub.durable_queue = durable.then(|| name.clone());
        self.call(Command::DeclareQueue(d), None);
        let bind =
            Command::BindQueue { queue: name.clone(), source: exchange.to_owned(), pattern: key, args: Table::new() };
        self.call(bind, None);
        Ok(name)
    }

    fn unsubscribe(&mut self, f: Stomp) -> Result<(), Refusal> {
        let Some(id) = f.get("id").or(f.get("destination")).map(str::to_owned) else {
            return Err((
                "Missing destination or id",
                "UNSUBSCRIBE must include a 'destination' or 'id' header".into(),
            ));
        };
        if id.starts_with("/temp-queue/") {
            return Err(("Invalid id", "UNSUBSCRIBE 'id' may not start with /temp-queue/".into()));
        }
        let Some(sub) = self.subs.remove(&id) else {
            let detail = format!("UNSUBSCRIBE must refer to an existing subscription: no subscription '{id}'");
            return Err(("No subscription found", detail));
        };
        // Its unacked messages stay the session's to settle, as in RabbitMQ (its
        // processor settles from the session's unacked list, whatever became of the
        // subscription), and so on the core's channel: a queue deleted with its consumer
        // leaves them settleable.
        let receipt = f.get("receipt").map(str::to_owned);
        match (sub.durable_queue, boolean(&f, "durable", false)? || boolean(&f, "persistent", false)?) {
            (Some(queue), true) => {
                self.call(Command::Cancel(format!("T_{id}")), None);
                self.call(Command::DeleteQueue { name: queue, if_unused: false, if_empty: false }, receipt);
            }
            _ => self.call(Command::Cancel(format!("T_{id}")), receipt),
        }
        self.save();
        Ok(())
    }

    fn settle(&mut self, f: Stomp) -> Result<(), Refusal> {
        // The header naming the message: `id` in 1.2 (the MESSAGE's `ack`), `message-id` before.
        let header = if self.version == "1.2" { "id" } else { "message-id" };
        let command = f.command.as_str();
        let value = f.get(header).ok_or_else(|| missing(command, header))?;
        let receipt = f.get("receipt").map(str::to_owned);
        let requeue = boolean(&f, "requeue", true)?;
        // `T_<subscription>@@<session>@@<delivery tag>`, as RabbitMQ writes message ids.
        // (Read with prefixes and suffixes: a search for "@@" would cost the wasm a substring
        // searcher.)
        // (`split_at_checked`: ASCII digits end at a character boundary, and it cannot panic.)
        let digits = value.bytes().rev().take_while(u8::is_ascii_digit).count();
        let (head, tag) = value.split_at_checked(value.len() - digits).unwrap_or((value, ""));
        let of = |id: &str| {
            head.strip_suffix("@@")
                .and_then(|h| h.strip_suffix(id))
                .and_then(|h| h.strip_suffix("@@"))?
                .strip_prefix("T_")
        };
        if self.former.iter().any(|id| of(id).is_some()) {
            let detail = format!(
                "{command} {header}:{value} names a message delivered before the broker restarted (it was evicted \
                 from memory): that message went back to its queue and comes again, with redelivered:true and a \
                 new '{header}': settle that one"
            );
            return Err(("Message not found", detail));
        }
        let sub = of(&self.cfg.session_id);
        let tag = match (tag.parse::<u64>().ok(), sub) {
            (Some(tag), Some(sub)) => match self.unacked.get(&tag) {
                Some((s, _)) if s == sub => tag,
                _ => {
                    let detail = format!(
                        "{command} {header}:{value} names no message this session holds unacknowledged \
                             (acknowledged already, or delivered with ack:auto)"
                    );
                    return Err(("Message not found", detail));
                }
            },
            _ => {
                let detail = format!(
                    "{command} must include a valid '{header}' header: the '{}' header of a MESSAGE of this session, \
                     not '{value}'",
                    if self.version == "1.2" { "ack" } else { "message-id" }
                );
                return Err(("Invalid header", detail));
            }
        };
        let multiple = self.unacked[&tag].1;
        if multiple {
            self.unacked.retain(|t, _| *t > tag);
        } else {
            self.unacked.remove(&tag);
        }
        let cmd = match command {
            "ACK" => Command::Ack { tag, multiple },
            _ => Command::Nack { tag, multiple, requeue },
        };
        match receipt {
            Some(r) => self.call(cmd, Some(r)),
            None => self.cast(cmd),
        }
        Ok(())
    }

    // ---- frames to the client -------------------------------------------------------------

    fn send_bytes(&mut self, bytes: Vec<u8>) {
        self.last_sent = self.now;
        self.out.push_back(Output::Send(bytes));
    }

    fn send(&mut self, f: Stomp) {
        self.send_bytes(f.encode());
    }

    fn error_frame(&self, message: &str, detail: &str, receipt: Option<String>) -> Stomp {
        // As RabbitMQ's (its `send_error_frame`): `message`, a text body with the detail,
        // and the versions it speaks; `receipt-id` for the frame that failed (STOMP 1.2, ERROR).
        let mut f = Stomp::new("ERROR")
            .header("message", message)
            .header("content-type", "text/plain")
            .header("version", VERSIONS);
        if let Some(r) = receipt {
            f.headers.push(("receipt-id".into(), r));
        }
        f.body(detail.as_bytes().to_vec())
    }

    /// Sends an ERROR and closes.
    fn fail(&mut self, (message, detail): Refusal, receipt: Option<String>) {
        if matches!(self.phase, Phase::Closed) {
            return;
        }
        let error = self.error_frame(message, &detail, receipt);
        self.send(error);
        self.end(true);
    }

    /// A DISCONNECT with a receipt is answered once every call and receipt before it is.
    fn maybe_disconnected(&mut self) {
        if let Phase::Disconnecting { receipt } = &self.phase {
            if self.calls.is_empty() && self.receipts.is_empty() {
                let f = Stomp::new("RECEIPT").header("receipt-id", receipt.clone());
                self.send(f);
                self.end(true);
            }
        }
    }

    /// The session ends: the host closes its connection, and the socket closes if `close`.
    fn end(&mut self, close: bool) {
        let was = std::mem::replace(&mut self.phase, Phase::Closed);
        if matches!(was, Phase::Closed) {
            return;
        }
        if matches!(was, Phase::Open | Phase::Disconnecting { .. }) {
            self.out.push_back(Output::Host(Frame::CloseConnection { conn: CONN }));
        }
        if close {
            self.out.push_back(Output::Close);
        }
        self.calls.clear();
        self.receipts.clear();
        self.subs.clear();
        self.unacked.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse_and_refuse_with_what_to_write() {
        assert_eq!(parse_destination("/exchange/x/a.b"), Ok(Dest::Exchange("x".into(), "a.b".into())));
        assert_eq!(parse_destination("/exchange/x"), Ok(Dest::Exchange("x".into(), "".into())));
        assert_eq!(parse_destination("/queue/a%2Fb"), Ok(Dest::Queue("a/b".into())));
        assert_eq!(parse_destination("/amq/queue/q"), Ok(Dest::AmqQueue("q".into())));
        assert_eq!(parse_destination("/topic/t.#"), Ok(Dest::Topic("t.#".into())));
        assert_eq!(parse_destination("/temp-queue/r"), Ok(Dest::TempQueue("r".into())));
        for bad in ["/queue/", "/queue/a/b", "/exchange/", "/exchange//k", "/queue/%zz", "queue/a", "/foo/bar"] {
            let (message, e) = parse_destination(bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
            assert_eq!(
                message,
                if bad.starts_with("/foo") || bad == "queue/a" { "Unknown destination" } else { "Invalid destination" }
            );
        }
        assert!(parse_destination("/foo").unwrap_err().1.contains("/amq/queue/"));
    }

    #[test]
    fn message_destinations_escape_slash_percent_and_non_ascii() {
        let m = |x: &str, k: &str| Message::new(x, k, Vec::new());
        assert_eq!(message_destination(&m("", "a/b%é")), "/queue/a%2Fb%25%C3%A9");
        assert_eq!(message_destination(&m("amq.topic", "t.x")), "/topic/t.x");
        assert_eq!(message_destination(&m("logs", "")), "/exchange/logs");
        assert_eq!(message_destination(&m("logs", "k")), "/exchange/logs/k");
        assert_eq!(parse_destination(&message_destination(&m("", "a/b%é"))), Ok(Dest::Queue("a/b%é".into())));
    }
}
