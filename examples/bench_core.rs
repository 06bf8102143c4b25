//! Native benchmark of the broker core on one thread.
//!
//!     cargo run --profile bench-native --example bench_core
//!
//! Prints the median of several runs of each scenario, in messages (or routes) per second.

use std::hint::black_box;
use std::time::Instant;

use tabbit::core::exchange::{Routing, TopicRouter};
use tabbit::core::*;

const RUNS: usize = 7;

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.partial_cmp(b).unwrap());
    xs[xs.len() / 2]
}

/// Runs `f` RUNS times after a warm-up; `f` returns how many operations it timed and
/// for how long (so that it can leave its set-up out). Median ops/s.
fn measure(mut f: impl FnMut() -> (usize, f64)) -> f64 {
    f();
    median((0..RUNS).map(|_| f()).map(|(n, secs)| n as f64 / secs).collect())
}

/// Times a closure that returns how many operations it did.
fn timed(f: impl FnOnce() -> usize) -> (usize, f64) {
    let t = Instant::now();
    let n = f();
    (n, t.elapsed().as_secs_f64())
}

fn setup(prefetch: u32) -> (Broker, ChannelRef) {
    let mut b = Broker::new(BrokerConfig { seed: 1, ..Default::default() });
    let conn = b.connect();
    let ch = b.open_channel(conn).unwrap();
    b.declare_queue(ch, QueueDeclare { name: "q".into(), ..Default::default() }, 0).unwrap();
    b.prefetch(ch, prefetch, false, 0).unwrap();
    b.consume(ch, Consume { queue: "q".into(), ..Default::default() }, 0).unwrap();
    (b, ch)
}

/// publish → deliver → ack, one message at a time, each acked singly.
fn publish_deliver_ack_single(n: usize) -> usize {
    let (mut b, ch) = setup(0);
    let body = vec![7u8; 16];
    for _ in 0..n {
        b.publish(ch, Message::new("", "q", body.clone()), false, 0).unwrap();
        let mut tag = 0;
        for e in b.drain_effects() {
            if let Effect::Deliver(d) = e {
                tag = d.delivery_tag;
            }
        }
        b.ack(ch, tag, false, 0).unwrap();
    }
    n
}

/// publish → deliver → ack in batches of 100 with one `multiple` ack, prefetch 1000.
fn publish_deliver_ack_batched(n: usize) -> usize {
    let (mut b, ch) = setup(1000);
    let body = vec![7u8; 16];
    let mut delivered = 0;
    for _ in 0..n / 100 {
        for _ in 0..100 {
            b.publish(ch, Message::new("", "q", body.clone()), false, 0).unwrap();
        }
        let mut last = 0;
        for e in b.drain_effects() {
            if let Effect::Deliver(d) = e {
                last = d.delivery_tag;
                delivered += 1;
            }
        }
        b.ack(ch, last, true, 0).unwrap();
    }
    assert_eq!(delivered, n / 100 * 100);
    delivered
}

/// Topic patterns over a 50-word vocabulary, 3 words deep, some with wildcards.
fn topic_patterns(n: usize) -> Vec<String> {
    let word = |i: usize| format!("w{}", i % 50);
    (0..n)
        .map(|i| {
            let (a, b, c) = (word(i), word(i / 50), word(i / 2500 + i * 7));
            match i % 10 {
                0 => format!("{a}.*.{c}"),
                1 => format!("{a}.#"),
                2 => format!("*.{b}.{c}"),
                _ => format!("{a}.{b}.{c}"),
            }
        })
        .collect()
}

fn topic_keys(n: usize) -> Vec<String> {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    (0..n)
        .map(|_| {
            let mut w = || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                format!("w{}", x % 50)
            };
            format!("{}.{}.{}", w(), w(), w())
        })
        .collect()
}

/// Topic routing alone: 10,000 bindings, routes per second.
fn topic_route_only(r: &TopicRouter, keys: &[String]) -> (usize, f64) {
    let headers = Table::new();
    let mut out = Vec::new();
    timed(|| {
        let mut matched = 0;
        for k in keys {
            out.clear();
            r.route(k, &headers, &mut out);
            matched += out.len();
        }
        black_box(matched);
        keys.len()
    })
}

/// Publishing through the broker to a topic exchange with 10,000 bindings to 1,000
/// queues (routing, then enqueue; queues purged between runs).
fn topic_broker(patterns: &[String]) -> (Broker, ChannelRef) {
    let mut b = Broker::new(BrokerConfig { seed: 1, ..Default::default() });
    let conn = b.connect();
    let ch = b.open_channel(conn).unwrap();
    b.declare_exchange(ch, ExchangeDeclare { name: "t".into(), kind: "topic".into(), ..Default::default() }, 0)
        .unwrap();
    for q in 0..1000 {
        let name = format!("q{q}");
        b.declare_queue(ch, QueueDeclare { name: name.clone(), ..Default::default() }, 0).unwrap();
    }
    for (i, p) in patterns.iter().enumerate() {
        b.bind_queue(ch, &format!("q{}", i % 1000), "t", p, Table::new(), 0).unwrap();
    }
    (b, ch)
}

fn topic_publish(b: &mut Broker, ch: ChannelRef, keys: &[String]) -> (usize, f64) {
    let r = timed(|| {
        for k in keys {
            b.publish(ch, Message::new("t", k.as_str(), vec![1u8; 16]), false, 0).unwrap();
        }
        keys.len()
    });
    for q in 0..1000 {
        b.purge_queue(ch, &format!("q{q}"), 0).unwrap();
    }
    r
}

fn main() {
    let n = 1_000_000;
    println!("tabbit core benchmark: median of {RUNS} runs, one thread, 16-byte bodies");
    let single = measure(|| timed(|| publish_deliver_ack_single(n)));
    println!("{:<58} {:>12.0} msg/s", "publish -> deliver -> ack (single acks, one queue)", single);
    let batched = measure(|| timed(|| publish_deliver_ack_batched(n)));
    println!("{:<58} {:>12.0} msg/s", "publish -> deliver -> ack (multiple ack per 100)", batched);
    let patterns = topic_patterns(10_000);
    let keys = topic_keys(200_000);
    let mut router = TopicRouter::default();
    for (i, p) in patterns.iter().enumerate() {
        router.add_binding(Destination::Queue(QueueId(i as u32 % 1000)), p, &Table::new());
    }
    let routes = measure(|| topic_route_only(&router, &keys));
    println!("{:<58} {:>12.0} routes/s", "topic routing, 10,000 bindings (router only)", routes);
    let (mut broker, ch) = topic_broker(&patterns);
    let published = measure(|| topic_publish(&mut broker, ch, &keys));
    println!("{:<58} {:>12.0} msg/s", "topic publish via broker, 10,000 bindings, 1,000 queues", published);
}
