//! Topology recovery: what a context declared that dies with the host, kept so that a new
//! host can build it again (as RabbitMQ's Java client re-declares a connection's topology
//! after it reconnects).
//!
//! A host keeps in memory only what is not durable: transient exchanges, transient and
//! exclusive queues (server-named ones included) and the bindings to them. When it dies,
//! the store brings back the durable part and nothing else, so every live context
//! re-declares, per connection, what it declared itself, before its channels resume. The
//! [`Recorded`] list follows the app's own calls: a declaration that succeeded is added, a
//! delete or unbind that succeeded takes it out again.
//!
//! What is recorded:
//! - exchanges declared `durable: false`;
//! - queues declared `durable: false` or `exclusive` (an exclusive queue is never stored),
//!   under the name the broker answered (so a server-named queue keeps its `amq.gen-` name);
//! - every binding the connection made (queue and exchange bindings). Binding again what
//!   the store brought back is a no-op, and a binding of a durable queue to a transient
//!   exchange needs it.
//!
//! An auto-delete queue is declared again only if one of the connection's consumers
//! consumes from it at the failover: without one it would have been deleted by now, or
//! would be once its last consumer went.

use crate::core::{ExchangeDeclare, QueueDeclare, Table};

use super::frame::Command;

/// One thing to declare again.
#[derive(Clone, Debug, PartialEq)]
enum Item {
    Exchange(ExchangeDeclare),
    Queue(QueueDeclare),
    /// A queue (`to_exchange` false) or exchange bound to `source`.
    Binding {
        destination: String,
        to_exchange: bool,
        source: String,
        pattern: String,
        args: Table,
    },
}

/// What one connection declared that a new host must build again, in the order declared.
#[derive(Clone, Debug, Default)]
pub struct Recorded {
    items: Vec<Item>,
}

impl Recorded {
    /// Whether a successful `cmd` may change what is recorded (checked before cloning it).
    pub fn concerns(cmd: &Command) -> bool {
        matches!(
            cmd,
            Command::DeclareQueue(_)
                | Command::DeleteQueue { .. }
                | Command::BindQueue { .. }
                | Command::UnbindQueue { .. }
                | Command::DeclareExchange(_)
                | Command::DeleteExchange { .. }
                | Command::BindExchange { .. }
                | Command::UnbindExchange { .. }
        )
    }

    /// `cmd` succeeded; `queue` is the name the broker answered for a queue declaration.
    pub fn record(&mut self, cmd: Command, queue: Option<&str>) {
        match cmd {
            Command::DeclareExchange(d) if !d.passive && !d.durable => {
                self.forget(|i| matches!(i, Item::Exchange(e) if e.name == d.name));
                self.items.push(Item::Exchange(ExchangeDeclare { passive: false, ..d }));
            }
            Command::DeclareQueue(d) if !d.passive && (!d.durable || d.exclusive) => {
                let name = queue.map_or(d.name.clone(), str::to_owned);
                self.forget(|i| matches!(i, Item::Queue(q) if q.name == name));
                self.items.push(Item::Queue(QueueDeclare { name, passive: false, ..d }));
            }
            Command::BindQueue { queue, source, pattern, args } => {
                self.bind(Item::Binding { destination: queue, to_exchange: false, source, pattern, args })
            }
            Command::BindExchange { destination, source, pattern, args } => {
                self.bind(Item::Binding { destination, to_exchange: true, source, pattern, args })
            }
            Command::UnbindQueue { queue, source, pattern, args } => {
                let gone = Item::Binding { destination: queue, to_exchange: false, source, pattern, args };
                self.forget(|i| *i == gone);
            }
            Command::UnbindExchange { destination, source, pattern, args } => {
                let gone = Item::Binding { destination, to_exchange: true, source, pattern, args };
                self.forget(|i| *i == gone);
            }
            Command::DeleteQueue { name, .. } => self.forget(|i| match i {
                Item::Queue(q) => q.name == name,
                Item::Binding { destination, to_exchange: false, .. } => *destination == name,
                _ => false,
            }),
            Command::DeleteExchange { name, .. } => self.forget(|i| match i {
                Item::Exchange(e) => e.name == name,
                Item::Binding { destination, to_exchange, source, .. } => {
                    *source == name || (*to_exchange && *destination == name)
                }
                _ => false,
            }),
            _ => {}
        }
    }

    fn bind(&mut self, b: Item) {
        if !self.items.contains(&b) {
            self.items.push(b);
        }
    }

    fn forget(&mut self, gone: impl Fn(&Item) -> bool) {
        self.items.retain(|i| !gone(i));
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// The commands that build it again: exchanges, then queues, then bindings (each in
    /// the order declared), leaving out auto-delete queues no consumer uses
    /// (`consumed(queue)`) and the bindings to them.
    pub fn commands(&self, consumed: impl Fn(&str) -> bool) -> Vec<Command> {
        let skipped = |name: &str| {
            self.items.iter().any(|i| matches!(i, Item::Queue(q) if q.name == name && q.auto_delete)) && !consumed(name)
        };
        let mut out = Vec::with_capacity(self.items.len());
        for pass in 0..3 {
            for item in &self.items {
                match (pass, item) {
                    (0, Item::Exchange(e)) => out.push(Command::DeclareExchange(e.clone())),
                    (1, Item::Queue(q)) if !skipped(&q.name) => out.push(Command::DeclareQueue(q.clone())),
                    (2, Item::Binding { destination, to_exchange: false, source, pattern, args })
                        if !skipped(destination) =>
                    {
                        out.push(Command::BindQueue {
                            queue: destination.clone(),
                            source: source.clone(),
                            pattern: pattern.clone(),
                            args: args.clone(),
                        })
                    }
                    (2, Item::Binding { destination, to_exchange: true, source, pattern, args }) => {
                        out.push(Command::BindExchange {
                            destination: destination.clone(),
                            source: source.clone(),
                            pattern: pattern.clone(),
                            args: args.clone(),
                        })
                    }
                    _ => {}
                }
            }
        }
        out
    }
}

/// Names a topology command in the `failover` event's list of what could not be restored.
pub fn describe(cmd: &Command) -> String {
    match cmd {
        Command::DeclareExchange(e) => format!("exchange '{}'", e.name),
        Command::DeclareQueue(q) => format!("queue '{}'", q.name),
        Command::BindQueue { queue, source, pattern, .. } => {
            format!("binding of queue '{queue}' to exchange '{source}' with pattern '{pattern}'")
        }
        Command::BindExchange { destination, source, pattern, .. } => {
            format!("binding of exchange '{destination}' to exchange '{source}' with pattern '{pattern}'")
        }
        _ => "a command that is not a declaration".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queue(name: &str, durable: bool, exclusive: bool, auto_delete: bool) -> Command {
        Command::DeclareQueue(QueueDeclare { name: name.into(), durable, exclusive, auto_delete, ..Default::default() })
    }

    fn exchange(name: &str, durable: bool) -> Command {
        Command::DeclareExchange(ExchangeDeclare {
            name: name.into(),
            kind: "topic".into(),
            passive: false,
            durable,
            auto_delete: false,
            internal: false,
            arguments: Table::new(),
        })
    }

    fn bind(queue: &str, source: &str, pattern: &str) -> Command {
        Command::BindQueue { queue: queue.into(), source: source.into(), pattern: pattern.into(), args: Table::new() }
    }

    fn names(cmds: &[Command]) -> Vec<String> {
        cmds.iter().map(describe).collect()
    }

    #[test]
    fn records_what_the_store_does_not_keep_under_the_answered_name() {
        let mut r = Recorded::default();
        r.record(exchange("feed", false), None);
        r.record(exchange("orders", true), None);
        r.record(queue("", false, true, false), Some("amq.gen-abc"));
        r.record(queue("work", true, false, false), Some("work"));
        r.record(queue("cache", false, false, false), Some("cache"));
        r.record(bind("amq.gen-abc", "feed", "news.#"), None);
        r.record(bind("work", "orders", "new"), None);
        assert_eq!(
            names(&r.commands(|_| false)),
            [
                "exchange 'feed'",
                "queue 'amq.gen-abc'",
                "queue 'cache'",
                "binding of queue 'amq.gen-abc' to exchange 'feed' with pattern 'news.#'",
                "binding of queue 'work' to exchange 'orders' with pattern 'new'",
            ]
        );
        let Command::DeclareQueue(q) = &r.commands(|_| false)[1] else { panic!() };
        assert!(q.exclusive && !q.passive);
    }

    #[test]
    fn passive_declarations_are_not_recorded() {
        let mut r = Recorded::default();
        let Command::DeclareQueue(mut q) = queue("x", false, false, false) else { panic!() };
        q.passive = true;
        r.record(Command::DeclareQueue(q), Some("x"));
        assert!(r.is_empty());
    }

    #[test]
    fn deletes_and_unbinds_take_records_out() {
        let mut r = Recorded::default();
        r.record(exchange("feed", false), None);
        r.record(queue("a", false, false, false), Some("a"));
        r.record(queue("b", false, false, false), Some("b"));
        r.record(bind("a", "feed", "x"), None);
        r.record(bind("a", "feed", "x"), None);
        r.record(bind("b", "feed", "y"), None);
        r.record(bind("b", "amq.topic", "z"), None);
        r.record(
            Command::UnbindQueue { queue: "b".into(), source: "feed".into(), pattern: "y".into(), args: Table::new() },
            None,
        );
        r.record(Command::DeleteQueue { name: "a".into(), if_unused: false, if_empty: false }, None);
        assert_eq!(
            names(&r.commands(|_| false)),
            ["exchange 'feed'", "queue 'b'", "binding of queue 'b' to exchange 'amq.topic' with pattern 'z'"]
        );
        r.record(Command::DeleteExchange { name: "amq.topic".into(), if_unused: false }, None);
        assert_eq!(names(&r.commands(|_| false)), ["exchange 'feed'", "queue 'b'"]);
        r.record(Command::DeleteExchange { name: "feed".into(), if_unused: false }, None);
        assert_eq!(names(&r.commands(|_| false)), ["queue 'b'"]);
    }

    #[test]
    fn declaring_again_replaces_and_binding_again_is_one_record() {
        let mut r = Recorded::default();
        r.record(queue("q", false, false, false), Some("q"));
        r.record(queue("q", false, false, false), Some("q"));
        r.record(bind("q", "amq.topic", "k"), None);
        r.record(bind("q", "amq.topic", "k"), None);
        assert_eq!(r.commands(|_| true).len(), 2);
    }

    #[test]
    fn auto_delete_queues_come_back_only_while_consumed() {
        let mut r = Recorded::default();
        r.record(queue("tmp", false, false, true), Some("tmp"));
        r.record(bind("tmp", "amq.topic", "k"), None);
        assert!(r.commands(|_| false).is_empty());
        assert_eq!(r.commands(|q| q == "tmp").len(), 2);
    }

    #[test]
    fn exchange_bindings_are_recorded_and_go_with_either_end() {
        let mut r = Recorded::default();
        let e2e = |d: &str, s: &str| Command::BindExchange {
            destination: d.into(),
            source: s.into(),
            pattern: "#".into(),
            args: Table::new(),
        };
        r.record(e2e("a", "b"), None);
        r.record(e2e("c", "d"), None);
        assert_eq!(r.commands(|_| false).len(), 2);
        r.record(Command::DeleteExchange { name: "a".into(), if_unused: false }, None);
        r.record(Command::DeleteExchange { name: "d".into(), if_unused: false }, None);
        assert!(r.is_empty());
    }
}
