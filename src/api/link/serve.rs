//! The hosting side of a [`Link`]: taking over as host (recovery, the resume window),
//! serving other contexts' frames, their deaths, and the stats of the whole mesh.

use super::*;

impl Link {
    /// Host role: the broker's state, with each context's load and the recent rates.
    pub(super) fn host_stats(&self) -> Option<Stats> {
        let dropped = self.net.borrow().dropped;
        let mut role = self.role.borrow_mut();
        let Role::Host(server) = &mut *role else { return None };
        let at = now();
        let mut s = server.host.read(|core| {
            let queues: Vec<_> = core.queue_names().iter().filter_map(|n| core.queue_info(n)).collect();
            let mut by_context: BTreeMap<u64, ContextInfo> = BTreeMap::new();
            for ((ctx, _), id) in &server.conns {
                let Some(load) = core.connection_info(*id) else { continue };
                let c = by_context.entry(*ctx).or_insert_with(|| ContextInfo { id: *ctx, ..Default::default() });
                c.connections += 1;
                c.channels += load.channels as u32;
                c.consumers += load.consumers as u32;
                c.unacked += load.unacked as u32;
            }
            Stats {
                at,
                host: self.me,
                storage: server.host.storage().into(),
                totals: totals_of(&queues),
                queues,
                exchanges: core.exchange_infos(),
                bindings: core.binding_infos(),
                contexts: by_context.into_values().collect(),
                rates: [0.0; 6],
                dropped_posts: dropped,
            }
        });
        for c in &mut s.contexts {
            c.label = match c.id == self.me {
                true => self.label.clone(),
                false => server.labels.get(&c.id).cloned().unwrap_or_default(),
            };
        }
        // Rates: against the oldest sample of the last RATE_WINDOW_MS.
        let samples = &mut server.samples;
        while samples.len() > 1 && samples[1].0 + RATE_WINDOW_MS <= at {
            samples.pop_front();
        }
        if let Some((t0, v0)) = samples.front() {
            let dt = (at.saturating_sub(*t0)) as f64 / 1000.0;
            if dt > 0.0 {
                for ((r, now), then) in s.rates.iter_mut().zip(&s.totals).zip(v0) {
                    *r = now.saturating_sub(*then) as f64 / dt;
                }
            }
        }
        if samples.back().is_none_or(|(t, _)| at >= t + RATE_SAMPLE_MS) {
            samples.push_back((at, s.totals));
        }
        Some(s)
    }

    /// Hosts `host`: installs its event sink and takes the host role.
    pub(super) fn install(self: &Rc<Self>, host: Host, window: bool) -> Role {
        let weak: Weak<Link> = Rc::downgrade(self);
        host.on_event(Box::new(move |event| {
            if let Some(link) = weak.upgrade() {
                link.on_host_event(event);
            }
        }));
        if window {
            host.with(|core| core.hold_deliveries());
        }
        let server = Server {
            host,
            conns: FxMap::default(),
            chans: FxMap::default(),
            owners: FxMap::default(),
            watched: FxSet::default(),
            labels: FxMap::default(),
            samples: VecDeque::new(),
            window: window.then(Window::default),
        };
        std::mem::replace(&mut *self.role.borrow_mut(), Role::Host(server))
    }

    /// The host lock is ours: recover the broker from storage, then take over from the
    /// previous host (if any) and serve.
    pub(super) async fn become_host(self: Rc<Self>) {
        if matches!(*self.role.borrow(), Role::Closed) {
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
        if matches!(*self.role.borrow(), Role::Closed) {
            host.close().await;
            return;
        }
        let previous = self.install(host, true);
        let took_over = matches!(previous, Role::Client(_));
        let mut lost = Lost::default();
        if took_over {
            self.fail_in_flight_calls();
            // Our own topology and channels are rebuilt here first, as a client's would be.
            for (conn, commands) in self.topology_to_restore() {
                lost.topology.extend(self.server_restore(self.me, conn, commands));
            }
            let states: Vec<(u32, u32, ChannelState)> =
                self.chans.borrow().iter().map(|(k, c)| (*k, c.conn, c.state())).collect();
            for (chan, conn, state) in states {
                let gone = self.server_resume(self.me, conn, chan, state);
                lost.cancelled.extend(self.cancel_lost(chan, gone));
            }
        }
        self.send(EVERYONE, Frame::Host);
        if let Some((resolve, _)) = self.ready.borrow_mut().take() {
            let _ = resolve.call0(&JsValue::NULL);
        }
        if took_over {
            self.emit_failover(lost);
        }
        // Who else is alive: wait for each to re-announce, up to RESUME_WINDOW_MS.
        let live = self.port.borrow().as_ref().map(Port::live_clients);
        let live: FxSet<u64> = match live {
            Some(p) => JsFuture::from(p)
                .await
                .map(|v| Array::from(&v).iter().filter_map(|x| x.as_f64()).map(|x| x as u64).collect())
                .unwrap_or_default(),
            None => FxSet::default(),
        };
        let finished = match &mut *self.role.borrow_mut() {
            Role::Host(s) => match &mut s.window {
                Some(w) => {
                    let waiting: FxSet<u64> = live.difference(&w.done).copied().collect();
                    let empty = waiting.is_empty();
                    w.waiting = Some(waiting);
                    empty
                }
                None => false,
            },
            _ => false,
        };
        if finished {
            self.end_window();
            return;
        }
        let link = self.clone();
        let timer = Closure::once_into_js(move || link.end_window());
        set_timeout(&timer, RESUME_WINDOW_MS);
    }

    /// The take-over is complete (every live client re-announced, or time is up):
    /// messages flow again and the frames that waited run.
    fn end_window(self: &Rc<Self>) {
        let (host, backlog) = match &mut *self.role.borrow_mut() {
            Role::Host(s) => match s.window.take() {
                Some(w) => (s.host.clone(), w.backlog),
                None => return,
            },
            _ => return,
        };
        host.with(|core| core.release_deliveries(now()));
        for (from, f) in backlog {
            self.serve(from, f);
        }
    }

    fn server_conn(self: &Rc<Self>, ctx: u64, conn: u32) -> Result<(Host, ConnId), AmqpError> {
        let (host, existing) = match &*self.role.borrow() {
            Role::Host(s) => (s.host.clone(), s.conns.get(&(ctx, conn)).copied()),
            _ => return Err(closed_channel()),
        };
        let id = match existing {
            Some(id) => id,
            None => {
                let id = host.with(|core| core.connect());
                if let Role::Host(s) = &mut *self.role.borrow_mut() {
                    s.conns.insert((ctx, conn), id);
                }
                id
            }
        };
        Ok((host, id))
    }

    fn own(&self, ctx: u64, chan: u32, ch: ChannelRef) {
        if let Role::Host(s) = &mut *self.role.borrow_mut() {
            s.chans.insert((ctx, chan), ch);
            s.owners.insert(ch, (ctx, chan));
        }
    }

    pub(super) fn forget(&self, ctx: u64, chan: u32) {
        if let Role::Host(s) = &mut *self.role.borrow_mut() {
            if let Some(ch) = s.chans.remove(&(ctx, chan)) {
                s.owners.remove(&ch);
            }
        }
    }

    pub(super) fn forget_conn(&self, ctx: u64, conn: u32) {
        if let Role::Host(s) = &mut *self.role.borrow_mut() {
            if let Some(id) = s.conns.remove(&(ctx, conn)) {
                let gone: Vec<ChannelRef> = s.owners.keys().filter(|c| c.conn == id).copied().collect();
                for ch in gone {
                    if let Some(key) = s.owners.remove(&ch) {
                        s.chans.remove(&key);
                    }
                }
            }
        }
    }

    pub(super) fn server_open(self: &Rc<Self>, ctx: u64, conn: u32, chan: u32, confirm: bool) -> Result<(), AmqpError> {
        let (host, id) = self.server_conn(ctx, conn)?;
        let ch = host.with(|core| {
            let ch = core.open_channel(id)?;
            if confirm {
                core.confirm_select(ch)?;
            }
            Ok(ch)
        })?;
        self.own(ctx, chan, ch);
        Ok(())
    }

    /// Builds again what connection `conn` of context `ctx` declared that died with the
    /// previous host (see [`crate::mesh::topology`]), on a channel of its own so that its
    /// exclusive queues are the connection's; answers what could not be restored, and why.
    fn server_restore(self: &Rc<Self>, ctx: u64, conn: u32, commands: Vec<Command>) -> Vec<(String, AmqpError)> {
        let describe = crate::mesh::topology::describe;
        let (host, id) = match self.server_conn(ctx, conn) {
            Ok(x) => x,
            Err(e) => return commands.iter().map(|c| (describe(c), e.clone())).collect(),
        };
        host.with(|core| {
            let at = now();
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
                    Command::DeclareQueue(d) => core.redeclare_queue(c, d, at).map(|_| ()),
                    cmd @ (Command::DeclareExchange(_) | Command::BindQueue { .. } | Command::BindExchange { .. }) => {
                        execute(core, c, cmd, at).map(|_| ())
                    }
                    _ => Err(AmqpError::precondition("only declarations and bindings are restored")),
                };
                if let Err(e) = done {
                    lost.push((what, e));
                    ch = None;
                }
            }
            if let Some(c) = ch {
                let _ = core.close_channel(c, at);
            }
            lost
        })
    }

    /// Rebuilds a channel a context re-announced; answers the consumers it could not restore.
    fn server_resume(self: &Rc<Self>, ctx: u64, conn: u32, chan: u32, state: ChannelState) -> Vec<(String, AmqpError)> {
        let (host, id) = match self.server_conn(ctx, conn) {
            Ok(x) => x,
            Err(e) => return state.consumers.iter().map(|c| (c.consumer_tag.clone(), e.clone())).collect(),
        };
        let tags: Vec<String> = state.consumers.iter().map(|c| c.consumer_tag.clone()).collect();
        let settled: Vec<(u64, bool)> = state.settled.iter().map(|(f, ack)| (f.delivery_tag, *ack)).collect();
        // Deliveries wait until the channel is known as this context's: one made before
        // would find no owner and stay unacked on a channel whose app never saw it.
        let in_window = matches!(&*self.role.borrow(), Role::Host(s) if s.window.is_some());
        let resumed = host.with(|core| {
            core.hold_deliveries();
            let r = core.resume_channel(id, resume_of(state), now())?;
            // Settle again what the client settled lately (a no-op where the store had it).
            for (tag, ack) in settled {
                let _ = match ack {
                    true => core.ack(r.channel, tag, false, now()),
                    false => core.reject(r.channel, tag, false, now()),
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
        if !in_window {
            host.with(|core| core.release_deliveries(now()));
        }
        lost
    }

    /// Consumers a new host could not restore: their callbacks get `null`.
    pub(super) fn cancel_lost(&self, chan: u32, lost: Vec<(String, AmqpError)>) -> Vec<String> {
        let mut out = Vec::new();
        for (tag, _) in lost {
            let f = self.chans.borrow_mut().get_mut(&chan).and_then(|h| {
                h.specs.retain(|s| s.consumer_tag != tag);
                h.consumers.remove(tag.as_str())
            });
            if let Some(f) = f {
                call(&f, &JsValue::NULL);
            }
            out.push(tag);
        }
        out
    }

    pub(super) fn emit_failover(&self, lost: Lost) {
        let Some(f) = self.on_failover.borrow().clone() else { return };
        let tags: Array = lost.cancelled.iter().map(|t| JsValue::from_str(t)).collect();
        let not_restored: Array =
            lost.topology.into_iter().map(|(what, e)| obj(&[("what", what.into()), ("error", to_js(e))])).collect();
        call(
            &f,
            &obj(&[
                ("hosting", self.hosting().into()),
                ("cancelled", tags.into()),
                ("notRestored", not_restored.into()),
            ]),
        );
    }

    /// The previous host is gone: calls it never answered fail, and so do confirms it
    /// never gave (the message may or may not be stored).
    pub(super) fn fail_in_flight_calls(&self) {
        let err = to_js(host_gone());
        let pending: Vec<Pending> = self.net.borrow_mut().pending.drain().map(|(_, p)| p).collect();
        // A re-announcement's promise has no one waiting on it: the next host asks anew.
        for p in pending.into_iter().filter(|p| !matches!(p.reply, Reply::Resume | Reply::Restore)) {
            let _ = p.reject.call1(&JsValue::NULL, &err);
        }
        let mut chans = self.chans.borrow_mut();
        for c in chans.values_mut() {
            let failed = c.take_callbacks();
            c.outstanding.clear();
            for w in c.waiters.iter_mut() {
                w.nacked = true;
            }
            c.settle_waiters();
            for cb in failed {
                let _ = cb.call1(&JsValue::NULL, &err);
            }
        }
    }

    /// A watched context died or left: its connections close (their unacked messages go
    /// back to their queues, flagged redelivered; exclusive queues go).
    pub(super) fn client_gone(self: &Rc<Self>, ctx: u64) {
        let (host, conns) = match &mut *self.role.borrow_mut() {
            Role::Host(s) => {
                s.watched.remove(&ctx);
                s.labels.remove(&ctx);
                let conns: Vec<(u32, ConnId)> =
                    s.conns.iter().filter(|((c, _), _)| *c == ctx).map(|((_, n), id)| (*n, *id)).collect();
                (s.host.clone(), conns)
            }
            _ => return,
        };
        for (n, id) in conns {
            self.forget_conn(ctx, n);
            host.with(|core| core.disconnect(id, now()));
        }
        self.resumed(ctx);
    }

    /// Client `ctx` has re-announced everything (or is gone).
    fn resumed(self: &Rc<Self>, ctx: u64) {
        let finished = match &mut *self.role.borrow_mut() {
            Role::Host(s) => match &mut s.window {
                Some(w) => {
                    w.done.insert(ctx);
                    w.waiting.as_mut().is_some_and(|set| {
                        set.remove(&ctx);
                        set.is_empty()
                    })
                }
                None => false,
            },
            _ => false,
        };
        if finished {
            self.end_window();
        }
    }

    /// Host role: runs a client's frame.
    pub(super) fn serve(self: &Rc<Self>, from: u64, f: Frame) {
        if from == self.me {
            return;
        }
        let in_window = match &*self.role.borrow() {
            Role::Host(s) => s.window.is_some(),
            _ => return,
        };
        if in_window
            && !matches!(f, Frame::Restore { .. } | Frame::Resume { .. } | Frame::Resumed | Frame::Hello { .. })
        {
            if let Role::Host(s) = &mut *self.role.borrow_mut() {
                if let Some(w) = &mut s.window {
                    w.backlog.push((from, f));
                    return;
                }
            }
        }
        match f {
            Frame::Hello { label } => {
                if let Role::Host(s) = &mut *self.role.borrow_mut() {
                    s.labels.insert(from, label);
                }
                self.send(EVERYONE, Frame::Host);
            }
            Frame::OpenChannel { conn, chan, confirm } => {
                if let Err(e) = self.server_open(from, conn, chan, confirm) {
                    self.send(from, Frame::Event { chan, event: WireEvent::Closed(e) });
                }
            }
            Frame::CloseConnection { conn } => {
                let id = match &*self.role.borrow() {
                    Role::Host(s) => s.conns.get(&(from, conn)).map(|id| (s.host.clone(), *id)),
                    _ => None,
                };
                self.forget_conn(from, conn);
                if let Some((host, id)) = id {
                    host.with(|core| core.disconnect(id, now()));
                }
            }
            Frame::Call { id, chan, cmd } => self.serve_call(from, id, chan, cmd),
            Frame::Stats { id } => {
                if let Some(s) = self.host_stats() {
                    self.send(from, Frame::Reply { id, result: Ok(Answer::Stats(Box::new(s))) });
                }
            }
            Frame::Peek { id, queue, count } => {
                if let Some(host) = self.host() {
                    let messages = host.read(|core| core.peek(&queue, count.min(1000) as usize));
                    self.send(from, Frame::Reply { id, result: Ok(Answer::Peeked(messages)) });
                }
            }
            Frame::Flush { id } => {
                if let Some(host) = self.host() {
                    let link = self.clone();
                    spawn_local(async move {
                        let result = match JsFuture::from(host.flush()).await {
                            Ok(_) => Ok(Answer::Done),
                            Err(e) => Err(AmqpError::new(
                                ReplyCode::ResourceError,
                                format!("flush failed: {}", js_sys::Error::from(e).message()),
                            )),
                        };
                        link.send(from, Frame::Reply { id, result });
                    });
                }
            }
            Frame::Resume { id, conn, chan, state } => {
                let lost = self.server_resume(from, conn, chan, state);
                self.send(from, Frame::Reply { id, result: Ok(Answer::Resumed(lost)) });
            }
            Frame::Restore { id, conn, commands } => {
                let lost = self.server_restore(from, conn, commands);
                self.send(from, Frame::Reply { id, result: Ok(Answer::Resumed(lost)) });
            }
            Frame::Resumed => self.resumed(from),
            Frame::Host | Frame::Reply { .. } | Frame::Event { .. } => {}
        }
    }

    fn serve_call(self: &Rc<Self>, from: u64, id: u32, chan: u32, cmd: Command) {
        let (host, ch) = match &*self.role.borrow() {
            Role::Host(s) => (s.host.clone(), s.chans.get(&(from, chan)).copied()),
            _ => return,
        };
        let Some(ch) = ch else {
            if id != 0 {
                self.send(from, Frame::Reply { id, result: Err(closed_channel()) });
            }
            return;
        };
        if let Command::Close = cmd {
            self.forget(from, chan);
        }
        if let Command::Get { queue, .. } = &cmd {
            // Deep in a long queue, the store gives the head back; a first delivery beyond
            // the queue's stored delivery horizon waits for a higher one. A get that fails
            // because the head is not ready after all (an expired head went between the
            // check and the get, a ms later) waits and tries again.
            let queue = queue.clone();
            let ready = host.can_get(&queue);
            let result = ready.then(|| host.with(|core| execute(core, ch, cmd.clone(), now())));
            match result {
                Some(result) if result.is_ok() || host.can_get(&queue) => {
                    if id != 0 {
                        self.send(from, Frame::Reply { id, result });
                    }
                }
                _ => {
                    let link = self.clone();
                    spawn_local(async move {
                        loop {
                            host.get_ready(&queue).await;
                            let result = host.with(|core| execute(core, ch, cmd.clone(), now()));
                            if result.is_ok() || host.can_get(&queue) {
                                link.send(from, Frame::Reply { id, result });
                                return;
                            }
                        }
                    });
                }
            }
            return;
        }
        let result = host.with(|core| execute(core, ch, cmd, now()));
        if id != 0 {
            self.send(from, Frame::Reply { id, result });
        }
    }
}
