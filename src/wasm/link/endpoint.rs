//! The hosting context serves Web-STOMP: each socket the app hands over (`Deno.serve`'s
//! WebSocket, or any `{send, close}`) is a [`StompSession`], one more context of the host
//! state, with an id of its own ([`SESSION_BIT`] set). What the session asks for is done
//! here, in order: its bytes go to the socket, its frames to the host state as that
//! context's, the host's posts to that id back to it (`serve.rs`'s `carry_out`), its
//! credentials to the app's `authenticate`, its timer to `setTimeout`.

use super::*;
use crate::bridge::server::{Config, Output as SessionOutput, StompSession};

/// Set in the context id of every STOMP session: mesh contexts are numbered below 2^53
/// (`Link::new`), so a post to a session that has ended is dropped, never broadcast.
pub(crate) const SESSION_BIT: u64 = 1 << 62;

/// What one endpoint (`conn.stompEndpoint(options)`) serves its sockets with.
pub(crate) struct EndpointConfig {
    /// `(login, passcode, host, request) => boolean | Promise<boolean>`.
    pub authenticate: Option<Function>,
    /// A CONNECT without `login` is let in (without asking `authenticate`).
    pub allow_anonymous: bool,
    /// Each session's limits (its `session_id` is made per session).
    pub session: Config,
    pub max_connections: usize,
    /// Sessions open now.
    pub open: Cell<usize>,
}

/// One socket's session, and how to reach the socket.
pub(super) struct Session {
    session: StompSession,
    io: Rc<(Function, Function)>,
    /// Called with the session's state as it changes (a hibernatable endpoint's).
    save: Option<Function>,
    request: JsValue,
    endpoint: Rc<EndpointConfig>,
    /// Counted in `endpoint.open` (a socket refused for the limit is not).
    counted: bool,
    /// The timer set: when it fires and its id; the callback it runs.
    timer: Option<(u64, JsValue)>,
    on_timer: Closure<dyn FnMut()>,
}

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_name = clearTimeout)]
    fn clear_timeout(id: &JsValue);
}

impl Link {
    /// A new socket of `endpoint`, served from now on (or, with `restore`, a socket whose
    /// session is made again from the state it saved): its context id.
    pub(crate) fn open_session(
        self: &Rc<Self>,
        endpoint: &Rc<EndpointConfig>,
        (send, close, save): (Function, Function, Option<Function>),
        request: JsValue,
        restore: Option<String>,
    ) -> Result<u64, JsValue> {
        if !self.hosting() || self.closed.get() {
            return Err(to_js(not_hosting()));
        }
        // Numbered from 1 (the JS side knows a socket by its number, a u32), skipping any
        // still open once the numbers wrap.
        let mut n = self.next_session.get();
        loop {
            n = n % u64::from(u32::MAX) + 1;
            if !self.sessions.borrow().contains_key(&(SESSION_BIT | n)) {
                break;
            }
        }
        self.next_session.set(n);
        let ctx = SESSION_BIT | n;
        let at = now();
        let cfg = Config { session_id: format!("{:x}-{n}", self.me), ..endpoint.session.clone() };
        let mut session = match restore {
            None => StompSession::new(cfg, at),
            Some(state) => StompSession::restore(cfg.clone(), state.as_bytes(), at).unwrap_or_else(|why| {
                let mut s = StompSession::new(cfg, at);
                s.refuse("Cannot restore session", why, at);
                s
            }),
        };
        let counted = endpoint.open.get() < endpoint.max_connections;
        if counted {
            endpoint.open.set(endpoint.open.get() + 1);
        } else {
            let detail = format!(
                "this endpoint serves at most {} connections at once (its limits.maxConnections): try again later",
                endpoint.max_connections
            );
            session.refuse("Too many connections", detail, at);
        }
        let weak = Rc::downgrade(self);
        let on_timer = Closure::<dyn FnMut()>::new(move || {
            if let Some(link) = weak.upgrade() {
                link.session_timer(ctx);
            }
        });
        let s = Session {
            session,
            io: Rc::new((send, close)),
            save,
            request,
            endpoint: endpoint.clone(),
            counted,
            timer: None,
            on_timer,
        };
        self.sessions.borrow_mut().insert(ctx, s);
        self.drive(ctx);
        Ok(ctx)
    }

    /// Bytes (or text) from socket `ctx`.
    pub(crate) fn session_input(self: &Rc<Self>, ctx: u64, data: &JsValue) -> Result<(), AmqpError> {
        let bytes = match data.as_string() {
            Some(text) => text.into_bytes(),
            None if data.is_instance_of::<Uint8Array>() || data.is_instance_of::<js_sys::ArrayBuffer>() => {
                Uint8Array::new(data).to_vec()
            }
            None => {
                return Err(AmqpError::precondition(
                    "receive(data): data must be a Uint8Array, an ArrayBuffer or a string, as a WebSocket's message event has it",
                ))
            }
        };
        let at = now();
        self.with_session(ctx, |s| s.receive(&bytes, at));
        Ok(())
    }

    /// Socket `ctx` closed (the client left, the network failed).
    pub(crate) fn session_closed(self: &Rc<Self>, ctx: u64) {
        let at = now();
        self.with_session(ctx, |s| s.socket_closed(at));
    }

    /// A post of the host state to session `ctx` (dropped if it has ended).
    pub(super) fn to_session(self: &Rc<Self>, ctx: u64, frame: Frame, at: u64) {
        self.with_session(ctx, |s| s.host_frame(frame, at));
    }

    /// This context stops hosting: every session ends, with an ERROR saying why.
    pub(super) fn end_sessions(self: &Rc<Self>, why: &str) {
        let ctxs: Vec<u64> = self.sessions.borrow().keys().copied().collect();
        let at = now();
        for ctx in ctxs {
            self.with_session(ctx, |s| s.refuse("Server shutdown", format!("{why}: connect again later"), at));
        }
    }

    fn with_session(self: &Rc<Self>, ctx: u64, f: impl FnOnce(&mut StompSession)) {
        match self.sessions.borrow_mut().get_mut(&ctx) {
            Some(s) => f(&mut s.session),
            None => return,
        }
        self.drive(ctx);
    }

    fn session_timer(self: &Rc<Self>, ctx: u64) {
        if let Some(s) = self.sessions.borrow_mut().get_mut(&ctx) {
            s.timer = None;
        }
        let at = now();
        self.with_session(ctx, |s| {
            if s.next_wakeup().is_some_and(|t| t <= at) {
                s.wake(at);
            }
        });
    }

    /// Carries out what session `ctx` said, one output at a time (a nested call, from the
    /// host state's posts to it, takes the next ones in the same order).
    fn drive(self: &Rc<Self>, ctx: u64) {
        loop {
            let next = match self.sessions.borrow_mut().get_mut(&ctx) {
                Some(s) => s.session.poll_output().map(|o| (o, s.io.clone(), s.save.clone())),
                None => return,
            };
            let Some((out, io, save)) = next else { break };
            match out {
                SessionOutput::Send(bytes) => {
                    if let Err(e) = io.0.call1(&JsValue::NULL, &Uint8Array::from(&bytes[..])) {
                        convert::report_uncaught(&e);
                    }
                }
                SessionOutput::Host(f) => {
                    self.hosted(|s, e, at| s.receive(e, ctx, f, at));
                }
                SessionOutput::Authenticate { login, passcode, host } => self.authenticate(ctx, login, passcode, host),
                SessionOutput::Close => {
                    if let Err(e) = io.1.call0(&JsValue::NULL) {
                        convert::report_uncaught(&e);
                    }
                }
                SessionOutput::Saved(state) => {
                    let state = JsValue::from_str(&String::from_utf8_lossy(&state));
                    if let Err(e) = save.map_or(Ok(JsValue::UNDEFINED), |f| f.call1(&JsValue::NULL, &state)) {
                        convert::report_uncaught(&e);
                    }
                }
            }
        }
        self.schedule(ctx);
    }

    /// Sets session `ctx`'s timer for its next wake-up (a timer due no later is kept), or
    /// forgets an ended session.
    fn schedule(self: &Rc<Self>, ctx: u64) {
        let mut sessions = self.sessions.borrow_mut();
        let Some(s) = sessions.get_mut(&ctx) else { return };
        if s.session.is_closed() {
            let s = sessions.remove(&ctx);
            drop(sessions);
            if let Some(s) = s {
                if let Some((_, id)) = &s.timer {
                    clear_timeout(id);
                }
                if s.counted {
                    s.endpoint.open.set(s.endpoint.open.get() - 1);
                }
            }
            // Its connection is closed already; anything else the host keeps for it goes.
            self.hosted(|h, e, at| h.client_gone(e, ctx, at));
            return;
        }
        let next = s.session.next_wakeup();
        if let (Some(at), Some((t, _))) = (next, &s.timer) {
            if *t <= at {
                return;
            }
        }
        // Replaced by an earlier one, or cleared when there is nothing to wake up for (the
        // CONNECT came, no heart-beats): a timer left pending would keep a Durable Object from
        // hibernating until it fires.
        if let Some((_, id)) = s.timer.take() {
            clear_timeout(&id);
        }
        let Some(at) = next else { return };
        let delay = at.saturating_sub(now()).min(i32::MAX as u64) as i32;
        let id = set_timeout(s.on_timer.as_ref(), delay);
        s.timer = Some((at, id));
    }

    /// Asks the app whether the credentials of session `ctx`'s CONNECT are good, after the
    /// current call (the app's function may call into the broker).
    fn authenticate(self: &Rc<Self>, ctx: u64, login: Option<String>, passcode: Option<String>, host: String) {
        let Some((endpoint, request)) =
            self.sessions.borrow().get(&ctx).map(|s| (s.endpoint.clone(), s.request.clone()))
        else {
            return;
        };
        let link = self.clone();
        spawn_local(async move {
            let verdict = match (&login, &endpoint.authenticate) {
                (None, _) if endpoint.allow_anonymous => Ok(()),
                (None, _) => Err("this endpoint takes no anonymous connections: send login and passcode".to_owned()),
                (Some(_), None) => Ok(()),
                (Some(l), Some(f)) => {
                    let args = Array::of4(
                        &JsValue::from_str(l),
                        &passcode.as_deref().map_or(JsValue::NULL, JsValue::from_str),
                        &JsValue::from_str(&host),
                        &request,
                    );
                    let answer = match f.apply(&JsValue::NULL, &args) {
                        Ok(v) => JsFuture::from(Promise::resolve(&v)).await,
                        Err(e) => Err(e),
                    };
                    match answer {
                        Ok(v) if v.is_truthy() => Ok(()),
                        Ok(_) => Err("wrong login or passcode".to_owned()),
                        Err(e) => {
                            convert::report_uncaught(&e);
                            Err("the server's credential check failed".to_owned())
                        }
                    }
                }
            };
            let at = now();
            link.with_session(ctx, |s| s.authenticated(verdict, at));
        });
    }
}

/// The error of serving STOMP from a context that does not host the broker.
pub(crate) fn not_hosting() -> AmqpError {
    AmqpError::precondition(
        "stompEndpoint(): this context does not host the broker (another tab or worker does, or it closed): \
         only the hosting context can serve STOMP; serve from a process that hosts it (in Deno, Node or \
         workerd a broker is always hosted by the process that connects), or connect with mesh: false",
    )
}
