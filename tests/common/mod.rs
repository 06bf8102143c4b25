//! A small harness over the core for the native tests: one broker, helpers that
//! build commands with defaults, and effect collection by kind.
#![allow(dead_code)]

use std::rc::Rc;

use tabbit::core::*;

pub struct H {
    pub b: Broker,
    pub now: u64,
    /// Effects collected so far, in order.
    pub effects: Vec<Effect>,
}

pub fn table(pairs: &[(&str, FieldValue)]) -> Table {
    pairs.iter().map(|(k, v)| (k.to_string(), v.clone())).collect()
}

pub fn int(i: i64) -> FieldValue {
    FieldValue::Int(i)
}

pub fn s(v: &str) -> FieldValue {
    FieldValue::Str(v.to_owned())
}

impl Default for H {
    fn default() -> Self {
        Self::new()
    }
}

impl H {
    pub fn new() -> Self {
        H { b: Broker::new(BrokerConfig { seed: 1, ..Default::default() }), now: 1_000_000, effects: Vec::new() }
    }

    pub fn with_limits(limits: Limits) -> Self {
        H {
            b: Broker::new(BrokerConfig { seed: 1, limits, ..Default::default() }),
            now: 1_000_000,
            effects: Vec::new(),
        }
    }

    /// A new connection with one open channel.
    pub fn channel(&mut self) -> ChannelRef {
        let c = self.b.connect();
        self.b.open_channel(c).unwrap()
    }

    /// Another channel on the same connection.
    pub fn channel_on(&mut self, conn: ConnId) -> ChannelRef {
        self.b.open_channel(conn).unwrap()
    }

    fn collect(&mut self) {
        self.effects.extend(self.b.drain_effects());
        if let Err(e) = self.b.check_invariants() {
            panic!("invariant broken: {e}");
        }
    }

    pub fn advance(&mut self, ms: u64) {
        self.now += ms;
        self.b.tick(self.now);
        self.collect();
    }

    pub fn exchange(&mut self, ch: ChannelRef, name: &str, kind: &str) -> Result<()> {
        self.exchange_with(ch, ExchangeDeclare { name: name.into(), kind: kind.into(), ..Default::default() })
    }

    pub fn exchange_with(&mut self, ch: ChannelRef, d: ExchangeDeclare) -> Result<()> {
        let r = self.b.declare_exchange(ch, d, self.now);
        self.collect();
        r
    }

    pub fn queue(&mut self, ch: ChannelRef, name: &str) -> Result<QueueDeclareOk> {
        self.queue_with(ch, QueueDeclare { name: name.into(), ..Default::default() })
    }

    pub fn queue_args(&mut self, ch: ChannelRef, name: &str, args: &[(&str, FieldValue)]) -> Result<QueueDeclareOk> {
        self.queue_with(ch, QueueDeclare { name: name.into(), arguments: table(args), ..Default::default() })
    }

    pub fn queue_with(&mut self, ch: ChannelRef, d: QueueDeclare) -> Result<QueueDeclareOk> {
        let r = self.b.declare_queue(ch, d, self.now);
        self.collect();
        r
    }

    pub fn bind(&mut self, ch: ChannelRef, queue: &str, exchange: &str, key: &str) -> Result<()> {
        self.bind_args(ch, queue, exchange, key, &[])
    }

    pub fn bind_args(
        &mut self,
        ch: ChannelRef,
        queue: &str,
        exchange: &str,
        key: &str,
        args: &[(&str, FieldValue)],
    ) -> Result<()> {
        let r = self.b.bind_queue(ch, queue, exchange, key, table(args), self.now);
        self.collect();
        r
    }

    pub fn publish(&mut self, ch: ChannelRef, exchange: &str, key: &str, body: &str) -> Result<()> {
        self.publish_msg(ch, Message::new(exchange, key, body.as_bytes().to_vec()), false)
    }

    pub fn publish_msg(&mut self, ch: ChannelRef, m: Message, mandatory: bool) -> Result<()> {
        let r = self.b.publish(ch, m, mandatory, self.now);
        self.collect();
        r
    }

    pub fn send(&mut self, ch: ChannelRef, queue: &str, body: &str) {
        self.publish(ch, "", queue, body).unwrap();
    }

    pub fn consume(&mut self, ch: ChannelRef, queue: &str) -> Rc<str> {
        self.consume_with(ch, Consume { queue: queue.into(), ..Default::default() }).unwrap()
    }

    pub fn consume_with(&mut self, ch: ChannelRef, c: Consume) -> Result<Rc<str>> {
        let r = self.b.consume(ch, c, self.now);
        self.collect();
        r
    }

    pub fn get(&mut self, ch: ChannelRef, queue: &str, no_ack: bool) -> Result<Option<GetOk>> {
        let r = self.b.get(ch, queue, no_ack, self.now);
        self.collect();
        r
    }

    pub fn ack(&mut self, ch: ChannelRef, tag: u64, multiple: bool) -> Result<()> {
        let r = self.b.ack(ch, tag, multiple, self.now);
        self.collect();
        r
    }

    pub fn nack(&mut self, ch: ChannelRef, tag: u64, multiple: bool, requeue: bool) -> Result<()> {
        let r = self.b.nack(ch, tag, multiple, requeue, self.now);
        self.collect();
        r
    }

    pub fn close(&mut self, ch: ChannelRef) {
        self.b.close_channel(ch, self.now).unwrap();
        self.collect();
    }

    pub fn disconnect(&mut self, conn: ConnId) {
        self.b.disconnect(conn, self.now);
        self.collect();
    }

    /// Runs any broker call and collects its effects.
    pub fn run<T>(&mut self, f: impl FnOnce(&mut Broker, u64) -> T) -> T {
        let r = f(&mut self.b, self.now);
        self.collect();
        r
    }

    /// Removes the collected effects that `pick` selects and returns what it made of them.
    pub fn take<T>(&mut self, pick: impl Fn(&Effect) -> Option<T>) -> Vec<T> {
        let mut out = Vec::new();
        self.effects.retain(|e| match pick(e) {
            Some(t) => {
                out.push(t);
                false
            }
            None => true,
        });
        out
    }

    /// Deliveries collected since the last call, and forgets them (other effects stay).
    pub fn take_deliveries(&mut self) -> Vec<Delivery> {
        self.take(|e| if let Effect::Deliver(d) = e { Some(d.clone()) } else { None })
    }

    /// Bodies of the deliveries collected since the last call, as strings.
    pub fn bodies(&mut self) -> Vec<String> {
        self.take_deliveries().iter().map(|d| body(&d.message)).collect()
    }

    pub fn confirms(&mut self) -> Vec<Confirm> {
        self.take(|e| if let Effect::Confirm(c) = e { Some(c.clone()) } else { None })
    }

    pub fn returns(&mut self) -> Vec<Returned> {
        self.take(|e| if let Effect::Return(r) = e { Some(r.clone()) } else { None })
    }

    pub fn store_ops(&mut self) -> Vec<StoreOp> {
        self.take(|e| if let Effect::Store(op) = e { Some(op.clone()) } else { None })
    }

    pub fn info(&self, queue: &str) -> QueueInfo {
        self.b.queue_info(queue).unwrap_or_else(|| panic!("no queue {queue}"))
    }

    /// Drains the ready messages of a queue with `get` + ack, returning their bodies.
    pub fn drain(&mut self, ch: ChannelRef, queue: &str) -> Vec<String> {
        let mut out = Vec::new();
        while let Some(g) = self.get(ch, queue, true).unwrap() {
            out.push(body(&g.delivery.message));
        }
        out
    }
}

pub fn body(m: &Message) -> String {
    String::from_utf8(m.body.clone()).unwrap()
}

pub fn code(r: Result<impl std::fmt::Debug>) -> u16 {
    r.expect_err("expected an error").code.code()
}
