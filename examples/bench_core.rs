//! Native benchmark of the broker core on one thread.
//!
//!     cargo run --profile bench-native --example bench_core
//!
//! Prints the median of several runs of each scenario, in messages (or routes) per second.

use std::hint::black_box;
use std::time::Instant;

use tabbit::core::exchange::{Routing, TopicRouter};
use tabbit::core::*;
use tabbit::host::engine::Engine;
use tabbit::mesh::frame::{self, Command, Frame, PostWriter, WireEvent};
use tabbit::mesh::host::{HostState, Output};

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

/// The frames of a post for context `me`.
fn read(post: &[u8], me: u64) -> Vec<Frame> {
    frame::decode(post, me).expect("a post the bench wrote").1
}

/// The mesh's part of a transient message across tabs, natively: publisher context P posts
/// `window` publishes at a time to the hosting context H, which decodes them, runs them on
/// its engine and posts the deliveries to consumer context C, which decodes them and posts
/// one ack per message back (what rows (h) of `scripts/bench` does between three tabs, less
/// the platform: BroadcastChannel, the JS API, wasm).
fn mesh_transient(n: usize, window: usize, size: usize) -> usize {
    const H: u64 = 1;
    const P: u64 = 100;
    const C: u64 = 200;
    let core = Broker::new(BrokerConfig { seed: 1, ..Default::default() });
    let mut e = Engine::new(core, None, None);
    let mut s = HostState::new(H, "host".into(), "memory", &mut e, false, 0);
    let mut to_c = PostWriter::default();
    let run = |s: &mut HostState, e: &mut Engine, from: u64, post: &[u8], to_c: &mut PostWriter| {
        s.heard_from(from);
        for f in read(post, H) {
            s.receive(e, from, f, 0);
        }
        s.take_events(e);
        while let Some(o) = s.poll_output() {
            if let Output::Post { to, frame } = o {
                to_c.push(to, &frame);
            }
        }
        to_c.finish(H)
    };
    let post = |from: u64, frames: Vec<Frame>| {
        let mut w = PostWriter::default();
        for f in &frames {
            w.push(H, f);
        }
        w.finish(from)
    };
    let open = |chan| Frame::OpenChannel { conn: 1, chan, confirm: false };
    let declare = Command::DeclareQueue(QueueDeclare { name: "q".into(), ..Default::default() });
    let p0 = post(P, vec![open(1), Frame::Call { id: 1, chan: 1, cmd: declare }]);
    run(&mut s, &mut e, P, &p0, &mut to_c);
    let consume = Command::Consume(Consume { queue: "q".into(), ..Default::default() });
    let c0 = post(C, vec![open(1), Frame::Call { id: 1, chan: 1, cmd: consume }]);
    run(&mut s, &mut e, C, &c0, &mut to_c);
    let body = vec![7u8; size];
    let mut got = 0;
    while got < n {
        let k = window.min(n - got);
        let publishes = (0..k)
            .map(|_| {
                let cmd = Command::Publish { message: Box::new(Message::new("", "q", body.clone())), mandatory: false };
                Frame::Call { id: 0, chan: 1, cmd }
            })
            .collect();
        let to_host = post(P, publishes);
        let deliveries = run(&mut s, &mut e, P, &to_host, &mut to_c);
        let acks: Vec<Frame> = read(&deliveries, C)
            .into_iter()
            .filter_map(|f| match f {
                Frame::Event { event: WireEvent::Deliver(d), .. } => {
                    got += 1;
                    black_box(&d.message.body);
                    Some(Frame::Call { id: 0, chan: 1, cmd: Command::Ack { tag: d.delivery_tag, multiple: false } })
                }
                _ => None,
            })
            .collect();
        let acked = post(C, acks);
        run(&mut s, &mut e, C, &acked, &mut to_c);
    }
    got
}

fn main() {
    // BENCH_N: fewer messages, e.g. under `valgrind --tool=callgrind`.
    let n = std::env::var("BENCH_N").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000_000);
    println!("tabbit core benchmark: median of {RUNS} runs, one thread, 16-byte bodies");
    let single = measure(|| timed(|| publish_deliver_ack_single(n)));
    println!("{:<58} {:>12.0} msg/s", "publish -> deliver -> ack (single acks, one queue)", single);
    let batched = measure(|| timed(|| publish_deliver_ack_batched(n)));
    println!("{:<58} {:>12.0} msg/s", "publish -> deliver -> ack (multiple ack per 100)", batched);
    let mesh = measure(|| timed(|| mesh_transient(n / 4, 1000, 100)));
    println!("{:<58} {:>12.0} msg/s", "mesh P -> H -> C transient, posts encoded, window 1000", mesh);
    let mesh_kb = measure(|| timed(|| mesh_transient(n / 4, 1000, 1024)));
    println!("{:<58} {:>12.0} msg/s", "the same, 1 KB bodies", mesh_kb);
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
