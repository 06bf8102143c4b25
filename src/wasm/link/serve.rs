//! The hosting side of a [`Link`]: the browser's driver of [`HostState`]. It takes over
//! as host (recovery, the resume window's timer, the live clients from Web Locks),
//! feeds the state the other contexts' frames and deaths and the engine's notices, and
//! carries out what the state says (posts, frames for this context, locks to watch).

use super::*;
use crate::host::Notice as HostNotice;
use crate::mesh::host::Output;

impl Link {
    /// Runs `f` on the host's state and engine (when this context hosts), then lets the
    /// driver go on and carries out what the state said.
    pub(super) fn hosted<T>(self: &Rc<Self>, f: impl FnOnce(&mut HostState, &mut Engine, u64) -> T) -> Option<T> {
        let host = self.host()?;
        let at = now();
        let out = {
            let mut server = self.server.borrow_mut();
            let s = server.as_mut()?;
            host.engine(|e| f(&mut s.state, e, at))
        };
        // Its notices come back here (hosted() again): this borrow is over.
        host.after();
        self.carry_out(at);
        Some(out)
    }

    /// Does what the host's state said at `now`, in order.
    fn carry_out(self: &Rc<Self>, now: u64) {
        loop {
            let next = self.server.borrow_mut().as_mut().and_then(|s| s.state.poll_output());
            match next {
                Some(Output::Post { to, frame }) if to == self.me => {
                    // An answer settles a promise, which runs nothing now (a re-announcement's
                    // ends the take-over this task runs): with nothing handed over before it
                    // still waiting, it goes at once. Events wait for the end of the task: a
                    // callback never runs inside the call that caused it.
                    if matches!(frame, Frame::Reply { .. }) && self.local.borrow().is_empty() {
                        self.client.borrow_mut().receive(self.me, frame, now);
                        self.pump();
                    } else {
                        self.push_local(frame);
                    }
                }
                Some(Output::Post { to, frame }) if to & endpoint::SESSION_BIT != 0 => self.to_session(to, frame, now),
                Some(Output::Post { to, frame }) => self.send(to, frame),
                Some(Output::Watch(ctx)) => {
                    if let Some(port) = &*self.port.borrow() {
                        port.watch(ctx as f64);
                    }
                }
                Some(Output::StartBridge(c)) => self.run_bridge(&c.name, &convert::table_to_js(&c.table).into()),
                Some(Output::StopBridge(name)) => self.run_bridge(&name, &JsValue::NULL),
                None => return,
            }
        }
    }

    /// The driver's notice: events to take, or a wait of the state's that ended.
    fn on_notice(self: &Rc<Self>, notice: HostNotice) {
        match notice {
            HostNotice::Events => self.hosted(|s, e, _| s.take_events(e)),
            HostNotice::Done(d) => self.hosted(|s, e, now| {
                s.wait_done(e, d, now);
            }),
        };
    }

    /// Hosts `host`: installs its notice sink and the host state (with a resume window
    /// when `take_over`).
    /// Returns the host's term ([`HostState::since`]).
    pub(super) fn install(self: &Rc<Self>, host: Host, take_over: bool) -> u64 {
        let weak: Weak<Link> = Rc::downgrade(self);
        host.on_event(Box::new(move |notice| {
            if let Some(link) = weak.upgrade() {
                link.on_notice(notice);
            }
        }));
        let storage = host.storage();
        let previous = self.client.borrow().since();
        let mut state = host.engine(|e| {
            let mut state = HostState::new(self.me, self.label.clone(), storage, e, take_over, now());
            state.follow(e, previous, clock_micros() as u64);
            state
        });
        state.dropped_posts = self.net.borrow().dropped;
        let since = state.since();
        *self.server.borrow_mut() = Some(Server { host, state });
        since
    }

    /// The host lock is ours: recover the broker from storage, then take over from the
    /// previous host (if any) and serve.
    pub(super) async fn become_host(self: Rc<Self>) {
        if self.closed.get() {
            return;
        }
        let opened = match Storage::from_js(&self.storage) {
            Ok(kind) => Host::open(&self.prefix, kind, self.limits.clone()).await,
            Err(e) => Err(e),
        };
        let host = match opened {
            Ok(h) => h,
            Err(e) => {
                // Cannot host (storage will not open): say so, and let another context try.
                if let Some((_, reject)) = self.ready.borrow_mut().take() {
                    let _ = reject.call1(&JsValue::NULL, &to_js(e));
                } else {
                    convert::report_uncaught(&to_js(e));
                }
                if let Some(port) = self.port.borrow_mut().take() {
                    port.close();
                }
                return;
            }
        };
        if self.closed.get() {
            host.close().await;
            return;
        }
        // Other contexts may hold what an earlier host handed out: deliveries wait until
        // the live ones have re-announced.
        let since = self.install(host, true);
        // This context's own channels and topology are re-announced to it, as a client's
        // would be (the failover event follows their answers).
        self.client.borrow_mut().hosting_now(since, now());
        self.pump();
        self.send(frame::EVERYONE, Frame::Host { since });
        // Who else is alive: wait for each to re-announce, up to RESUME_WINDOW_MS.
        let live = self.port.borrow().as_ref().map(Port::live_clients);
        let live: Vec<u64> = match live {
            Some(p) => JsFuture::from(p)
                .await
                .map(|v| Array::from(&v).iter().filter_map(|x| x.as_f64()).map(|x| x as u64).collect())
                .unwrap_or_default(),
            None => Vec::new(),
        };
        let wakeup = self.hosted(|s, e, now| {
            s.live_clients(e, live, now);
            s.next_wakeup().map(|at| at.saturating_sub(now))
        });
        if let Some(Some(delay)) = wakeup {
            let link = self.clone();
            let timer = Closure::once_into_js(move || {
                link.hosted(|s, e, now| s.wake(e, now));
            });
            set_timeout(&timer, delay.min(i32::MAX as u64) as i32);
        }
    }

    /// A watched context died or left.
    pub(super) fn client_gone(self: &Rc<Self>, ctx: u64) {
        self.hosted(|s, e, now| s.client_gone(e, ctx, now));
    }
}
