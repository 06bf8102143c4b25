//! Topology: declaring and deleting exchanges, binding and unbinding, and declaring,
//! deleting and purging queues, with the store ops of the durable ones.

use std::rc::Rc;

use super::{limit_error, Broker, Exchange};
use crate::core::args::QueueArgs;
use crate::core::effect::{Effect, StoreDestination, StoreOp};
use crate::core::error::{AmqpError, Result};
use crate::core::exchange::{ExchangeKind, Routing};
use crate::core::fxhash::FxMap;
use crate::core::ids::{ChannelRef, ConnId, Destination, ExchangeId, QueueId};
use crate::core::names;
use crate::core::queue::{Entry, Queue, QueueCounters, ReadyList};
use crate::core::sort;
use crate::core::value::{same_table, FieldValue, Table};

/// `assertExchange` / `checkExchange`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExchangeDeclare {
    pub name: String,
    pub kind: String,
    /// Only check that it exists (`checkExchange`).
    pub passive: bool,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    /// `alternate-exchange` and other arguments.
    pub arguments: Table,
}

/// `assertQueue` / `checkQueue`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueueDeclare {
    /// `""` asks for a server-named queue.
    pub name: String,
    pub passive: bool,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: Table,
}

/// What `assertQueue` answers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueDeclareOk {
    pub queue: Rc<str>,
    /// Ready messages (not unacked ones), as RabbitMQ counts.
    pub message_count: u32,
    pub consumer_count: u32,
}

/// The names of server-named queues.
const GENERATED_QUEUE_PREFIX: &str = "amq.gen-";

impl Broker {
    // ---- exchanges ---------------------------------------------------------------------------

    #[allow(clippy::too_many_arguments)]
    pub(super) fn insert_exchange(
        &mut self,
        name: &str,
        kind: ExchangeKind,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        builtin: bool,
        arguments: Table,
    ) -> ExchangeId {
        let id = ExchangeId(self.next_exchange);
        self.next_exchange += 1;
        let name: Rc<str> = name.into();
        let alternate = arguments.get("alternate-exchange").and_then(FieldValue::as_str).map(str::to_owned);
        self.exchanges.insert(
            id,
            Exchange {
                name: name.clone(),
                kind,
                durable,
                auto_delete,
                internal,
                builtin,
                arguments,
                alternate,
                router: kind.new_router(),
                bindings: FxMap::default(),
                binding_count: 0,
            },
        );
        self.exchange_ids.insert(name, id);
        id
    }

    pub(super) fn exchange_id(&self, name: &str) -> Result<ExchangeId> {
        self.exchange_ids
            .get(name)
            .copied()
            .ok_or_else(|| AmqpError::not_found(format!("no exchange '{name}': declare it first with assertExchange")))
    }

    /// `assertExchange` (or `checkExchange` when `passive`).
    pub fn declare_exchange(&mut self, ch: ChannelRef, d: ExchangeDeclare, now: u64) -> Result<()> {
        self.on_channel(ch, now, |b| b.declare_exchange_inner(d))
    }

    fn declare_exchange_inner(&mut self, d: ExchangeDeclare) -> Result<()> {
        names::check("exchange name", &d.name)?;
        if d.passive {
            return self.exchange_id(&d.name).map(|_| ());
        }
        if d.name.is_empty() {
            return Err(default_exchange_refused());
        }
        names::check_not_reserved("exchange", &d.name)?;
        let kind = ExchangeKind::parse(&d.kind)?;
        let alternate = match d.arguments.get("alternate-exchange") {
            None => None,
            Some(FieldValue::Str(s)) => Some(s.clone()),
            Some(v) => {
                return Err(AmqpError::precondition(format!(
                    "invalid arg 'alternate-exchange' for exchange '{}': expected an exchange name (string), got {}",
                    d.name,
                    v.type_name()
                )))
            }
        };
        if let Some(&id) = self.exchange_ids.get(d.name.as_str()) {
            let ex = &self.exchanges[&id];
            let mismatch = |what: &str, got: &str, cur: &str| {
                AmqpError::precondition(format!(
                    "inequivalent arg '{what}' for exchange '{}': received '{got}' but current is '{cur}'; \
                     declare it as it is, or delete it first",
                    d.name
                ))
            };
            if ex.kind != kind {
                return Err(mismatch("type", kind.as_str(), ex.kind.as_str()));
            }
            for (what, got, cur) in [
                ("durable", d.durable, ex.durable),
                ("auto_delete", d.auto_delete, ex.auto_delete),
                ("internal", d.internal, ex.internal),
            ] {
                if got != cur {
                    return Err(mismatch(what, bool_word(got), bool_word(cur)));
                }
            }
            if ex.alternate != alternate {
                return Err(mismatch(
                    "alternate-exchange",
                    alternate.as_deref().unwrap_or("none"),
                    ex.alternate.as_deref().unwrap_or("none"),
                ));
            }
            return Ok(());
        }
        if self.exchanges.len() >= self.limits.max_exchanges + 6 {
            return Err(limit_error("exchanges", self.limits.max_exchanges, "maxExchanges"));
        }
        let id = self.insert_exchange(&d.name, kind, d.durable, d.auto_delete, d.internal, false, d.arguments);
        if d.durable {
            let ex = &self.exchanges[&id];
            let op = StoreOp::PutExchange {
                name: ex.name.clone(),
                kind: kind.as_str(),
                auto_delete: ex.auto_delete,
                internal: ex.internal,
                arguments: ex.arguments.clone(),
            };
            self.store(op);
        }
        Ok(())
    }

    /// `deleteExchange`. Deleting one that does not exist succeeds, as in RabbitMQ 3.x.
    pub fn delete_exchange(&mut self, ch: ChannelRef, name: &str, if_unused: bool, now: u64) -> Result<()> {
        self.on_channel(ch, now, |b| {
            names::check("exchange name", name)?;
            if name.is_empty() {
                return Err(default_exchange_refused());
            }
            let Some(&id) = b.exchange_ids.get(name) else { return Ok(()) };
            let ex = &b.exchanges[&id];
            if ex.builtin {
                return Err(AmqpError::access_refused(format!("exchange '{name}' is built in and cannot be deleted")));
            }
            if if_unused && ex.binding_count > 0 {
                return Err(AmqpError::precondition(format!(
                    "exchange '{name}' in use: it has {} bindings; unbind them first or delete without ifUnused",
                    ex.binding_count
                )));
            }
            b.delete_exchange_inner(id);
            Ok(())
        })
    }

    fn delete_exchange_inner(&mut self, id: ExchangeId) {
        if !self.exchanges.contains_key(&id) {
            return;
        }
        // Bindings to it first, while its durability still decides their store ops. This
        // may delete it already (an auto-delete exchange bound to itself).
        self.remove_bindings_to(Destination::Exchange(id));
        let Some(ex) = self.exchanges.remove(&id) else { return };
        self.exchange_ids.remove(&ex.name);
        self.binding_total -= ex.binding_count;
        if ex.durable {
            for ((dest, key), tables) in &ex.bindings {
                if let Some(destination) = self.durable_destination(*dest) {
                    for args in tables {
                        self.effects.push_back(Effect::Store(StoreOp::DeleteBinding {
                            source: ex.name.clone(),
                            destination: destination.clone(),
                            routing_key: key.clone(),
                            arguments: args.clone(),
                        }));
                    }
                }
            }
            self.store(StoreOp::DeleteExchange { name: ex.name.clone() });
        }
    }

    // ---- bindings --------------------------------------------------------------------------

    /// The stored name of a destination when it is durable (a binding is durable when
    /// both ends are).
    fn durable_destination(&self, dest: Destination) -> Option<StoreDestination> {
        match dest {
            Destination::Queue(q) => {
                let q = self.queues.get(&q)?;
                q.durable.then(|| StoreDestination::Queue(q.name.clone()))
            }
            Destination::Exchange(e) => {
                let e = self.exchanges.get(&e)?;
                e.durable.then(|| StoreDestination::Exchange(e.name.clone()))
            }
        }
    }

    pub(super) fn binding_op(
        &self,
        source: ExchangeId,
        dest: Destination,
        key: &str,
        args: &Table,
        put: bool,
    ) -> Option<StoreOp> {
        let ex = self.exchanges.get(&source)?;
        if !ex.durable {
            return None;
        }
        let destination = self.durable_destination(dest)?;
        let (source, routing_key, arguments) = (ex.name.clone(), key.to_owned(), args.clone());
        Some(if put {
            StoreOp::PutBinding { source, destination, routing_key, arguments }
        } else {
            StoreOp::DeleteBinding { source, destination, routing_key, arguments }
        })
    }

    fn add_binding(&mut self, source: ExchangeId, dest: Destination, key: &str, args: Table) -> Result<()> {
        names::check("routing key", key)?;
        if self.binding_total >= self.limits.max_bindings {
            return Err(limit_error("bindings", self.limits.max_bindings, "maxBindings"));
        }
        let ex = self.exchanges.get_mut(&source).expect("checked by caller");
        ex.router.validate_binding(key, &args)?;
        let tables = ex.bindings.entry((dest, key.to_owned())).or_default();
        if tables.iter().any(|t| same_table(t, &args)) {
            return Ok(()); // binding twice is a no-op, as in AMQP
        }
        ex.router.add_binding(dest, key, &args);
        tables.push(args.clone());
        ex.binding_count += 1;
        self.binding_total += 1;
        if let Some(op) = self.binding_op(source, dest, key, &args, true) {
            self.store(op);
        }
        Ok(())
    }

    fn remove_binding(&mut self, source: ExchangeId, dest: Destination, key: &str, args: &Table) {
        let Some(ex) = self.exchanges.get_mut(&source) else { return };
        let k = (dest, key.to_owned());
        let Some(tables) = ex.bindings.get_mut(&k) else { return };
        let Some(i) = tables.iter().position(|t| same_table(t, args)) else { return };
        tables.swap_remove(i);
        if tables.is_empty() {
            ex.bindings.remove(&k);
        }
        ex.router.remove_binding(dest, key, args);
        ex.binding_count -= 1;
        self.binding_total -= 1;
        if let Some(op) = self.binding_op(source, dest, key, args, false) {
            self.store(op);
        }
        self.auto_delete_exchange(source);
    }

    /// An auto-delete exchange goes when its last binding does.
    fn auto_delete_exchange(&mut self, id: ExchangeId) {
        if self.exchanges.get(&id).is_some_and(|e| e.auto_delete && e.binding_count == 0) {
            self.delete_exchange_inner(id);
        }
    }

    /// Removes every binding leading to `dest` (its queue or exchange is going away).
    fn remove_bindings_to(&mut self, dest: Destination) {
        let mut found: Vec<(ExchangeId, String, Table)> = Vec::new();
        for (&id, ex) in &self.exchanges {
            for ((d, key), tables) in &ex.bindings {
                if *d == dest {
                    found.extend(tables.iter().map(|t| (id, key.clone(), t.clone())));
                }
            }
        }
        // Sorted so that the store ops come out in the same order on every run.
        sort::sort_by(&mut found, |a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
        for (source, key, args) in found {
            self.remove_binding(source, dest, &key, &args);
        }
    }

    /// `bindQueue(queue, exchange, pattern, args)`.
    pub fn bind_queue(
        &mut self,
        ch: ChannelRef,
        queue: &str,
        exchange: &str,
        key: &str,
        args: Table,
        now: u64,
    ) -> Result<()> {
        self.on_channel(ch, now, |b| {
            let (source, q) = b.binding_ends_queue(ch, queue, exchange)?;
            b.add_binding(source, Destination::Queue(q), key, args)
        })
    }

    /// `unbindQueue(queue, exchange, pattern, args)`. Removing a binding that does not
    /// exist succeeds.
    pub fn unbind_queue(
        &mut self,
        ch: ChannelRef,
        queue: &str,
        exchange: &str,
        key: &str,
        args: Table,
        now: u64,
    ) -> Result<()> {
        self.on_channel(ch, now, |b| {
            let (source, q) = b.binding_ends_queue(ch, queue, exchange)?;
            b.remove_binding(source, Destination::Queue(q), key, &args);
            Ok(())
        })
    }

    fn binding_ends_queue(&self, ch: ChannelRef, queue: &str, exchange: &str) -> Result<(ExchangeId, QueueId)> {
        names::check("queue name", queue)?;
        names::check("exchange name", exchange)?;
        if exchange.is_empty() {
            return Err(default_exchange_refused());
        }
        let q = self.queue_id(queue)?;
        self.check_exclusive(q, ch.conn)?;
        Ok((self.exchange_id(exchange)?, q))
    }

    /// `bindExchange(destination, source, pattern, args)`: messages routed by `source`
    /// also go through `destination`.
    pub fn bind_exchange(
        &mut self,
        ch: ChannelRef,
        destination: &str,
        source: &str,
        key: &str,
        args: Table,
        now: u64,
    ) -> Result<()> {
        self.on_channel(ch, now, |b| {
            let (s, d) = b.binding_ends_exchange(destination, source)?;
            b.add_binding(s, Destination::Exchange(d), key, args)
        })
    }

    /// `unbindExchange(destination, source, pattern, args)`.
    pub fn unbind_exchange(
        &mut self,
        ch: ChannelRef,
        destination: &str,
        source: &str,
        key: &str,
        args: Table,
        now: u64,
    ) -> Result<()> {
        self.on_channel(ch, now, |b| {
            let (s, d) = b.binding_ends_exchange(destination, source)?;
            b.remove_binding(s, Destination::Exchange(d), key, &args);
            Ok(())
        })
    }

    fn binding_ends_exchange(&self, destination: &str, source: &str) -> Result<(ExchangeId, ExchangeId)> {
        names::check("exchange name", destination)?;
        names::check("exchange name", source)?;
        if destination.is_empty() || source.is_empty() {
            return Err(default_exchange_refused());
        }
        Ok((self.exchange_id(source)?, self.exchange_id(destination)?))
    }

    // ---- queues ------------------------------------------------------------------------------

    pub(super) fn queue_id(&self, name: &str) -> Result<QueueId> {
        self.queue_ids
            .get(name)
            .copied()
            .ok_or_else(|| AmqpError::not_found(format!("no queue '{name}': declare it first with assertQueue")))
    }

    pub(super) fn check_exclusive(&self, q: QueueId, conn: ConnId) -> Result<()> {
        let q = &self.queues[&q];
        match q.exclusive_owner {
            Some(owner) if owner != conn => Err(AmqpError::locked(format!(
                "cannot obtain exclusive access to locked queue '{}': it is exclusive to another connection; \
                 use a queue of your own, or declare it without exclusive",
                q.name
            ))),
            _ => Ok(()),
        }
    }

    fn declare_ok(&self, q: QueueId) -> QueueDeclareOk {
        let q = &self.queues[&q];
        QueueDeclareOk {
            queue: q.name.clone(),
            message_count: q.ready.len() as u32,
            consumer_count: q.consumers.len() as u32,
        }
    }

    /// `assertQueue` (or `checkQueue` when `passive`).
    pub fn declare_queue(&mut self, ch: ChannelRef, d: QueueDeclare, now: u64) -> Result<QueueDeclareOk> {
        self.on_channel(ch, now, |b| b.declare_queue_inner(ch, d, false, now))
    }

    /// A queue declared again by its owner after failover (topology recovery, see
    /// `crate::mesh::topology`): as [`Broker::declare_queue`], but a server-generated name
    /// (`amq.gen-…`) is taken as it is, so that a server-named queue keeps its name.
    pub fn redeclare_queue(&mut self, ch: ChannelRef, d: QueueDeclare, now: u64) -> Result<QueueDeclareOk> {
        self.on_channel(ch, now, |b| b.declare_queue_inner(ch, d, true, now))
    }

    fn declare_queue_inner(
        &mut self,
        ch: ChannelRef,
        d: QueueDeclare,
        generated_name: bool,
        now: u64,
    ) -> Result<QueueDeclareOk> {
        names::check("queue name", &d.name)?;
        if d.passive {
            let q = self.queue_id(&d.name)?;
            self.check_exclusive(q, ch.conn)?;
            // A passive declare renews the `x-expires` lease too, as in RabbitMQ.
            self.queues.get_mut(&q).expect("exists").last_used = now;
            return Ok(self.declare_ok(q));
        }
        if let Some(&id) = self.queue_ids.get(d.name.as_str()) {
            self.check_exclusive(id, ch.conn)?;
            let q = &self.queues[&id];
            if d.exclusive && q.exclusive_owner.is_none() {
                return Err(AmqpError::locked(format!(
                    "cannot obtain exclusive access to queue '{}': it exists and is not exclusive; \
                     declare it without exclusive, or use another name",
                    d.name
                )));
            }
            for (what, got, cur) in [("durable", d.durable, q.durable), ("auto_delete", d.auto_delete, q.auto_delete)] {
                if got != cur {
                    return Err(AmqpError::precondition(format!(
                        "inequivalent arg '{what}' for queue '{}': received '{}' but current is '{}'; \
                         declare it as it is, or delete it first",
                        d.name,
                        bool_word(got),
                        bool_word(cur)
                    )));
                }
            }
            QueueArgs::check_equivalent(&d.name, &q.raw_args, &d.arguments)?;
            self.queues.get_mut(&id).expect("exists").last_used = now;
            return Ok(self.declare_ok(id));
        }
        let name = if d.name.is_empty() {
            self.names.next(GENERATED_QUEUE_PREFIX)
        } else {
            if !(generated_name && d.name.starts_with(GENERATED_QUEUE_PREFIX)) {
                names::check_not_reserved("queue", &d.name)?;
            }
            d.name
        };
        let args = QueueArgs::parse(&name, &d.arguments)?;
        if self.queues.len() >= self.limits.max_queues {
            return Err(limit_error("queues", self.limits.max_queues, "maxQueues"));
        }
        let id = QueueId(self.next_queue);
        self.next_queue += 1;
        let name: Rc<str> = name.into();
        let owner = d.exclusive.then_some(ch.conn);
        if let Some(conn) = owner {
            self.connections.get_mut(&conn).expect("channel's connection").exclusive_queues.push(id);
        }
        let queue = Queue {
            name: name.clone(),
            durable: d.durable,
            exclusive_owner: owner,
            auto_delete: d.auto_delete,
            ready: ReadyList::new(args.max_priority),
            raw_args: d.arguments,
            args,
            delayed: Default::default(),
            unacked: 0,
            consumers: Vec::new(),
            cursor: 0,
            had_consumer: false,
            mixed_priorities: false,
            paged: 0,
            paged_through: 0,
            paged_from: u64::MAX,
            horizon: 0,
            horizon_asked: 0,
            horizon_blocked: false,
            lookahead: 0,
            handed_through: 0,
            first_delivered_at: None,
            last_used: now,
            next_seq: self.seq_floor,
            stored_below: 1,
            counters: QueueCounters::default(),
        };
        if queue.durable && owner.is_none() {
            self.store(StoreOp::PutQueue {
                name: name.clone(),
                auto_delete: queue.auto_delete,
                arguments: queue.raw_args.clone(),
            });
        }
        self.queues.insert(id, queue);
        self.queue_ids.insert(name, id);
        Ok(self.declare_ok(id))
    }

    /// `deleteQueue(queue, {ifUnused, ifEmpty})` → the number of ready messages deleted.
    /// Deleting a queue that does not exist succeeds with 0, as in RabbitMQ 3.x.
    pub fn delete_queue(
        &mut self,
        ch: ChannelRef,
        name: &str,
        if_unused: bool,
        if_empty: bool,
        now: u64,
    ) -> Result<u32> {
        self.on_channel(ch, now, |b| {
            names::check("queue name", name)?;
            let Some(&id) = b.queue_ids.get(name) else { return Ok(0) };
            b.check_exclusive(id, ch.conn)?;
            let q = &b.queues[&id];
            if if_unused && !q.consumers.is_empty() {
                return Err(AmqpError::precondition(format!(
                    "queue '{name}' in use: it has {} consumers; cancel them first or delete without ifUnused",
                    q.consumers.len()
                )));
            }
            if if_empty && !q.ready.is_empty() {
                return Err(AmqpError::precondition(format!(
                    "queue '{name}' not empty: it has {} messages; purge it first or delete without ifEmpty",
                    q.ready.len()
                )));
            }
            Ok(b.delete_queue_inner(id))
        })
    }

    /// Deletes a queue: its consumers are cancelled (with a notification), its bindings
    /// removed, its ready messages dropped (not dead-lettered, as in RabbitMQ). Unacked
    /// deliveries stay with their channels; acking them later is accepted.
    pub(super) fn delete_queue_inner(&mut self, id: QueueId) -> u32 {
        if !self.queues.contains_key(&id) {
            return 0;
        }
        // Bindings first, while the queue's durability still decides their store ops.
        self.remove_bindings_to(Destination::Queue(id));
        let Some(q) = self.queues.remove(&id) else { return 0 };
        self.queue_ids.remove(&q.name);
        self.paged_queues.remove(&id);
        for cid in &q.consumers {
            if let Some(c) = self.consumers.remove(cid) {
                if let Some(channel) = self.channels.get_mut(&c.channel) {
                    channel.consumers.retain(|(_, i)| i != cid);
                }
                self.effects.push_back(Effect::ConsumerCancelled { channel: c.channel, consumer_tag: c.tag });
            }
        }
        if let Some(owner) = q.exclusive_owner {
            if let Some(c) = self.connections.get_mut(&owner) {
                c.exclusive_queues.retain(|x| *x != id);
            }
        }
        if q.durable && q.exclusive_owner.is_none() {
            self.store(StoreOp::DeleteQueue { name: q.name.clone() });
        }
        q.ready.len() as u32
    }

    /// `purgeQueue` → the number of messages removed. Unacked deliveries stay.
    pub fn purge_queue(&mut self, ch: ChannelRef, name: &str, now: u64) -> Result<u32> {
        self.on_channel(ch, now, |b| {
            names::check("queue name", name)?;
            let id = b.queue_id(name)?;
            b.check_exclusive(id, ch.conn)?;
            let q = b.queues.get_mut(&id).expect("exists");
            q.paged = 0;
            q.paged_from = u64::MAX;
            b.paged_queues.remove(&id);
            let mut removed: Vec<Entry> = q.ready.drain().collect();
            removed.extend(q.delayed.drain_sorted());
            q.counters.purged += removed.len() as u64;
            let qname = q.name.clone();
            for e in &removed {
                if e.durable {
                    b.effects.push_back(Effect::Store(StoreOp::RemoveMessage { queue: qname.clone(), seq: e.seq }));
                }
            }
            Ok(removed.len() as u32)
        })
    }
}

fn bool_word(b: bool) -> &'static str {
    if b {
        "true"
    } else {
        "false"
    }
}

fn default_exchange_refused() -> AmqpError {
    AmqpError::access_refused(
        "operation not permitted on the default exchange: it routes to every queue by name and cannot be declared, bound or deleted",
    )
}
