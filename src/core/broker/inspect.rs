//! What the management view and the host read: a queue's state, exchanges, bindings, each
//! connection's load, names, and peeks at ready messages. Read-only; nothing here changes
//! the broker.

use std::rc::Rc;

use super::{Broker, ChannelRef, ConnId, Destination, QueueId};
use crate::core::message::Message;
use crate::core::queue::QueueCounters;
use crate::core::sort;
use crate::core::value::Table;

/// An exchange as the management view lists it (the default exchange `""` included).
#[derive(Clone, Debug, PartialEq)]
pub struct ExchangeInfo {
    pub name: Rc<str>,
    pub kind: &'static str,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: Table,
}

/// One binding: `source` routes to `destination` (a queue, or an exchange) by `routing_key`.
#[derive(Clone, Debug, PartialEq)]
pub struct BindingInfo {
    pub source: Rc<str>,
    pub destination: Rc<str>,
    pub to_exchange: bool,
    pub routing_key: String,
    pub arguments: Table,
}

/// A connection's load: open channels, consumers, unacked deliveries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectionInfo {
    pub channels: usize,
    pub consumers: usize,
    pub unacked: usize,
}

/// A queue's state, for stats and tests.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueInfo {
    pub name: Rc<str>,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: Table,
    /// The most ready messages it takes: its `x-max-length`, else `limits.maxQueueLength`.
    pub effective_max_length: Option<u64>,
    pub ready: usize,
    pub ready_bytes: usize,
    /// Ready messages whose bodies are paged out to the store.
    pub paged: usize,
    pub delayed: usize,
    pub unacked: usize,
    pub consumers: usize,
    pub counters: QueueCounters,
}

impl Broker {
    /// Every exchange, sorted by name.
    pub fn exchange_infos(&self) -> Vec<ExchangeInfo> {
        let mut v: Vec<ExchangeInfo> = self
            .exchanges
            .values()
            .map(|x| ExchangeInfo {
                name: x.name.clone(),
                kind: x.kind.as_str(),
                durable: x.durable,
                auto_delete: x.auto_delete,
                internal: x.internal,
                arguments: x.arguments.clone(),
            })
            .collect();
        sort::sort_by(&mut v, |a, b| a.name.cmp(&b.name));
        v
    }

    /// Every explicit binding (not the default exchange's implicit ones), sorted by
    /// source, destination and key.
    pub fn binding_infos(&self) -> Vec<BindingInfo> {
        let mut v = Vec::with_capacity(self.binding_total);
        for x in self.exchanges.values().filter(|x| !x.name.is_empty()) {
            for ((dest, key), tables) in &x.bindings {
                let (destination, to_exchange) = match dest {
                    Destination::Queue(q) => match self.queues.get(q) {
                        Some(q) => (q.name.clone(), false),
                        None => continue,
                    },
                    Destination::Exchange(e) => match self.exchanges.get(e) {
                        Some(e) => (e.name.clone(), true),
                        None => continue,
                    },
                };
                for arguments in tables {
                    v.push(BindingInfo {
                        source: x.name.clone(),
                        destination: destination.clone(),
                        to_exchange,
                        routing_key: key.clone(),
                        arguments: arguments.clone(),
                    });
                }
            }
        }
        sort::sort_by(&mut v, |a, b| {
            (&a.source, &a.destination, &a.routing_key).cmp(&(&b.source, &b.destination, &b.routing_key))
        });
        v
    }

    /// A connection's load, or `None` once it is closed.
    pub fn connection_info(&self, conn: ConnId) -> Option<ConnectionInfo> {
        let c = self.connections.get(&conn)?;
        let mut info = ConnectionInfo { channels: c.channels.len(), ..Default::default() };
        for n in &c.channels {
            if let Some(ch) = self.channels.get(&super::ChannelRef { conn, channel: *n }) {
                info.consumers += ch.consumers.len();
                info.unacked += ch.unacked.len();
            }
        }
        Some(info)
    }

    pub fn queue_info(&self, name: &str) -> Option<QueueInfo> {
        let q = &self.queues[self.queue_ids.get(name)?];
        Some(QueueInfo {
            name: q.name.clone(),
            durable: q.durable,
            exclusive: q.exclusive_owner.is_some(),
            auto_delete: q.auto_delete,
            arguments: q.raw_args.clone(),
            effective_max_length: q.effective_max_length(self.limits.max_queue_length),
            ready: q.ready.len(),
            ready_bytes: q.ready.bytes(),
            paged: q.paged,
            delayed: q.delayed.len(),
            unacked: q.unacked,
            consumers: q.consumers.len(),
            counters: q.counters,
        })
    }

    /// The name of a queue by id.
    pub fn queue_name(&self, id: QueueId) -> Option<Rc<str>> {
        self.queues.get(&id).map(|q| q.name.clone())
    }

    /// Names of every queue, sorted.
    pub fn queue_names(&self) -> Vec<Rc<str>> {
        let mut v: Vec<Rc<str>> = self.queue_ids.keys().cloned().collect();
        sort::sort(&mut v);
        v
    }

    pub fn has_exchange(&self, name: &str) -> bool {
        self.exchange_ids.contains_key(name)
    }

    pub fn has_channel(&self, ch: ChannelRef) -> bool {
        self.channels.contains_key(&ch)
    }

    /// Unacked deliveries of a channel, or `None` when it is closed.
    pub fn channel_unacked(&self, ch: ChannelRef) -> Option<usize> {
        self.channels.get(&ch).map(|c| c.unacked.len())
    }

    /// Ready messages of a queue, in delivery order, without consuming them (the
    /// console's peek).
    pub fn peek(&self, queue: &str, max: usize) -> Vec<Rc<Message>> {
        self.queue_ids
            .get(queue)
            .map(|id| self.queues[id].ready.iter().take(max).filter_map(|e| e.message.clone()).collect())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::{BrokerConfig, ExchangeDeclare, QueueDeclare};

    #[test]
    fn lists_exchanges_bindings_and_connection_load() {
        let mut b = Broker::new(BrokerConfig::default());
        let conn = b.connect();
        let ch = b.open_channel(conn).unwrap();
        let x = ExchangeDeclare { name: "logs".into(), kind: "topic".into(), durable: true, ..Default::default() };
        b.declare_exchange(ch, x, 0).unwrap();
        b.declare_queue(ch, QueueDeclare { name: "errors".into(), ..Default::default() }, 0).unwrap();
        b.bind_queue(ch, "errors", "logs", "*.error", Table::new(), 0).unwrap();
        b.bind_exchange(ch, "amq.fanout", "logs", "#", Table::new(), 0).unwrap();
        let names: Vec<String> = b.exchange_infos().iter().map(|x| x.name.to_string()).collect();
        assert!(names.contains(&"".to_string()) && names.contains(&"logs".to_string()));
        let logs = b.exchange_infos().into_iter().find(|x| &*x.name == "logs").unwrap();
        assert_eq!((logs.kind, logs.durable), ("topic", true));
        let bindings: Vec<(String, String, bool, String)> = b
            .binding_infos()
            .into_iter()
            .map(|x| (x.source.to_string(), x.destination.to_string(), x.to_exchange, x.routing_key))
            .collect();
        assert_eq!(
            bindings,
            [
                ("logs".into(), "amq.fanout".into(), true, "#".into()),
                ("logs".into(), "errors".into(), false, "*.error".into())
            ]
        );
        assert_eq!(b.connection_info(conn), Some(ConnectionInfo { channels: 1, consumers: 0, unacked: 0 }));
        b.disconnect(conn, 0);
        assert_eq!(b.connection_info(conn), None);
    }
}
