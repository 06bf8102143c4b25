//! A native edge broker for the STOMP server's tests: one [`Engine`] over a
//! [`MemoryStore`], a [`HostState`] serving it, and [`StompSession`]s as contexts of the
//! host, glued as a runtime's driver glues them: a session's host frames go to
//! `HostState::receive` with its context id, the host's posts to that id come back to the
//! session, the engine's transactions commit (at once, or when the test says), and what a
//! session sends is decoded as its client reads it.
#![allow(dead_code)]

use std::collections::BTreeMap;

use tabbit::bridge::server::{Config, Output as SessionOutput, StompSession};
use tabbit::bridge::stomp::{Decoder, Frame as Stomp};
use tabbit::core::{Broker, BrokerConfig};
use tabbit::host::engine::{Engine, WriteOutcome};
use tabbit::mesh::frame::{Answer, Command, Frame};
use tabbit::mesh::host::{HostState, Output};
use tabbit::store::{Log, MemoryStore};

/// The hosting context's id (no session has it).
pub const HOST: u64 = 1;
/// The context of an AMQP-side app, for setting state up through the host.
pub const APP: u64 = 2;

/// A session's client end.
pub struct Client {
    pub s: StompSession,
    decoder: Decoder,
    /// Frames the session sent, not taken yet.
    pub got: Vec<Stomp>,
    /// Heart-beats (end-of-line messages) the session sent.
    pub heartbeats: usize,
    /// The session closed the socket.
    pub closed: bool,
    /// Credentials it asked to check, and not answered yet (`auto_auth` off).
    pub asked: Option<(Option<String>, Option<String>, String)>,
    /// The state it last said to keep (`Output::Saved`).
    pub saved: Option<Vec<u8>>,
}

pub struct Edge {
    pub e: Engine,
    pub h: HostState,
    pub store: MemoryStore,
    pub now: u64,
    pub clients: BTreeMap<u64, Client>,
    next_ctx: u64,
    /// Transactions commit as soon as the engine has them; off, they wait for `commit()`.
    pub auto_commit: bool,
    /// Answer `Authenticate` at once from `users`; off, `asked` keeps it.
    pub auto_auth: bool,
    pub users: Vec<(String, String)>,
    pub cfg: Config,
    /// The APP context's calls' replies.
    pub app_replies: Vec<Frame>,
    /// Every frame the sessions handed to the host, in order (for checks on what they
    /// asked), while `record` is on.
    pub to_host: Vec<(u64, Frame)>,
    pub record: bool,
}

impl Edge {
    /// An edge broker with storage (a log over a memory store), one user guest/guest.
    pub fn new() -> Edge {
        let core = Broker::new(BrokerConfig { seed: 1, delivery_horizon: true, ..Default::default() });
        let mut e = Engine::new(core, Some(Log::new()), None);
        let now = 1_000_000;
        let h = HostState::new(HOST, "edge".into(), "memory", &mut e, false, now);
        Edge {
            e,
            h,
            store: MemoryStore::new(),
            now,
            clients: BTreeMap::new(),
            next_ctx: 100,
            auto_commit: true,
            auto_auth: true,
            users: vec![("guest".into(), "guest".into())],
            cfg: Config::default(),
            app_replies: Vec::new(),
            to_host: Vec::new(),
            record: true,
        }
    }

    /// A new socket: its context id.
    pub fn open(&mut self) -> u64 {
        let now = self.now;
        self.add(|cfg| Ok(StompSession::new(cfg, now))).unwrap()
    }

    /// A session made again from `saved` (`StompSession::restore`) on a new context: its id,
    /// or why the state was refused.
    pub fn restore(&mut self, saved: &[u8]) -> Result<u64, String> {
        let now = self.now;
        let ctx = self.add(|cfg| StompSession::restore(cfg, saved, now))?;
        self.pump();
        Ok(ctx)
    }

    /// A client on a new context, its session made by `make` with the context's config.
    fn add(&mut self, make: impl FnOnce(Config) -> Result<StompSession, String>) -> Result<u64, String> {
        let ctx = self.next_ctx;
        self.next_ctx += 1;
        let s = make(Config { session_id: format!("session-{ctx}"), ..self.cfg.clone() })?;
        let client = Client {
            s,
            decoder: Decoder::new(64 << 20),
            got: Vec::new(),
            heartbeats: 0,
            closed: false,
            asked: None,
            saved: None,
        };
        self.clients.insert(ctx, client);
        Ok(ctx)
    }

    /// A new session, connected as guest with STOMP 1.2: its context id.
    pub fn connect(&mut self) -> u64 {
        let ctx = self.open();
        self.frame(
            ctx,
            Stomp::new("CONNECT").header("accept-version", "1.2").header("login", "guest").header("passcode", "guest"),
        );
        let got = self.take(ctx);
        assert_eq!(commands(&got), ["CONNECTED"], "{got:?}");
        ctx
    }

    pub fn client(&mut self, ctx: u64) -> &mut Client {
        self.clients.get_mut(&ctx).expect("no such session")
    }

    /// Bytes from the client of `ctx`.
    pub fn bytes(&mut self, ctx: u64, bytes: &[u8]) {
        let now = self.now;
        self.client(ctx).s.receive(bytes, now);
        self.pump();
    }

    pub fn frame(&mut self, ctx: u64, f: Stomp) {
        self.bytes(ctx, &f.encode());
    }

    /// The frames the session of `ctx` sent since the last call.
    pub fn take(&mut self, ctx: u64) -> Vec<Stomp> {
        std::mem::take(&mut self.client(ctx).got)
    }

    /// The client of `ctx` goes away (its socket closed).
    pub fn drop_socket(&mut self, ctx: u64) {
        let now = self.now;
        self.client(ctx).s.socket_closed(now);
        self.pump();
    }

    /// Answers the pending credential check of `ctx`.
    pub fn verdict(&mut self, ctx: u64, v: Result<(), String>) {
        let now = self.now;
        let c = self.client(ctx);
        c.asked = None;
        c.s.authenticated(v, now);
        self.pump();
    }

    /// Time passes: timers that are due fire.
    pub fn advance(&mut self, ms: u64) {
        self.now += ms;
        let now = self.now;
        for c in self.clients.values_mut() {
            if c.s.next_wakeup().is_some_and(|t| t <= now) {
                c.s.wake(now);
            }
        }
        if self.e.next_wakeup().is_some_and(|t| t <= now) {
            self.e.wake(now);
        }
        self.h.wake(&mut self.e, now);
        self.pump();
    }

    /// Runs every transaction the engine has, committed.
    pub fn commit(&mut self) {
        loop {
            let mut progressed = false;
            while self.e.wants_write(self.now) {
                let Some(t) = self.e.poll_write(self.now) else { break };
                self.store.write(&t.writes);
                self.e.write_done(t.id, WriteOutcome::Committed, self.now);
                progressed = true;
            }
            if !self.step() && !progressed {
                return;
            }
        }
    }

    /// The engine's next transaction fails (storage is full): nothing of it is stored.
    pub fn fail_write(&mut self) {
        let t = self.e.poll_write(self.now).expect("a transaction to fail");
        self.e.write_done(t.id, WriteOutcome::QuotaExceeded("quota".into()), self.now);
        self.pump();
    }

    /// A call from the APP context (opened on first use), answered at once.
    pub fn app(&mut self, cmd: Command) -> Answer {
        if self.h.channel(APP, 1).is_none() {
            self.h.open_channel(&mut self.e, APP, 1, 1, false, self.now).unwrap();
        }
        let a = self.h.call(&mut self.e, APP, 1, cmd, self.now).unwrap_or_else(|e| panic!("app call failed: {e}"));
        self.pump();
        a
    }

    /// Carries out what every party said until nothing moves.
    pub fn pump(&mut self) {
        loop {
            let mut moved = self.step();
            if self.auto_commit {
                while self.e.wants_write(self.now) {
                    let Some(t) = self.e.poll_write(self.now) else { break };
                    self.store.write(&t.writes);
                    self.e.write_done(t.id, WriteOutcome::Committed, self.now);
                    moved = true;
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// One round of outputs; whether anything happened.
    fn step(&mut self) -> bool {
        let mut moved = false;
        let now = self.now;
        let ctxs: Vec<u64> = self.clients.keys().copied().collect();
        for ctx in ctxs {
            while let Some(o) = self.client(ctx).s.poll_output() {
                moved = true;
                match o {
                    SessionOutput::Send(bytes) => {
                        let c = self.client(ctx);
                        if bytes == b"\n" {
                            c.heartbeats += 1;
                        } else {
                            let frames = c.decoder.push(&bytes).expect("the session sent a bad frame");
                            assert_eq!(frames.len(), 1, "one frame per message");
                            c.got.extend(frames);
                        }
                    }
                    SessionOutput::Host(f) => {
                        if self.record {
                            self.to_host.push((ctx, f.clone()));
                        }
                        self.h.receive(&mut self.e, ctx, f, now);
                    }
                    SessionOutput::Authenticate { login, passcode, host } => {
                        if self.auto_auth {
                            let ok = self
                                .users
                                .iter()
                                .any(|(l, p)| Some(l) == login.as_ref() && Some(p) == passcode.as_ref());
                            let v = if ok { Ok(()) } else { Err("wrong login or passcode".to_owned()) };
                            self.client(ctx).s.authenticated(v, now);
                        } else {
                            self.client(ctx).asked = Some((login, passcode, host));
                        }
                    }
                    SessionOutput::Close => self.client(ctx).closed = true,
                    SessionOutput::Saved(state) => self.client(ctx).saved = Some(state),
                }
            }
        }
        self.h.take_events(&mut self.e);
        while let Some(d) = self.e.poll_done() {
            moved = true;
            assert!(self.h.wait_done(&mut self.e, d, now).is_none());
        }
        while let Some(o) = self.h.poll_output() {
            moved = true;
            if let Output::Post { to, frame } = o {
                if to == APP {
                    self.app_replies.push(frame);
                } else if let Some(c) = self.clients.get_mut(&to) {
                    c.s.host_frame(frame, now);
                }
            }
        }
        moved
    }
}

impl Default for Edge {
    fn default() -> Self {
        Edge::new()
    }
}

pub fn commands(frames: &[Stomp]) -> Vec<&str> {
    frames.iter().map(|f| f.command.as_str()).collect()
}

pub fn bodies(frames: &[Stomp]) -> Vec<String> {
    frames.iter().filter(|f| f.command == "MESSAGE").map(|f| String::from_utf8_lossy(&f.body).into_owned()).collect()
}

pub fn send(destination: &str, body: &str) -> Stomp {
    Stomp::new("SEND").header("destination", destination).body(body.as_bytes().to_vec())
}

pub fn subscribe(id: &str, destination: &str, ack: &str) -> Stomp {
    Stomp::new("SUBSCRIBE").header("id", id).header("destination", destination).header("ack", ack)
}

pub fn ack(of: &Stomp) -> Stomp {
    Stomp::new("ACK").header("id", of.get("ack").expect("a MESSAGE with an ack header"))
}

pub fn nack(of: &Stomp) -> Stomp {
    Stomp::new("NACK").header("id", of.get("ack").expect("a MESSAGE with an ack header"))
}
