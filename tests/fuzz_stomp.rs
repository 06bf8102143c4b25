#![cfg(not(target_arch = "wasm32"))]
//! Fuzz target: the bridge's STOMP decoder (`tabbit::bridge::stomp`), which reads whatever the
//! server at the other end of the WebSocket sends. Each input is one of:
//!
//! - random bytes, cut into random chunks;
//! - a stream of valid frames (random commands, headers with every character STOMP escapes,
//!   bodies with NUL bytes, with or without heart-beat newlines between them), cut into random
//!   chunks;
//! - such a stream with a few bytes mutated (set, inserted or deleted).
//!
//! For every input: `push` never panics; once it fails, it fails for good (`Poisoned`); no
//! frame it returns is over the limit. A valid stream decodes, whatever the chunking, to exactly
//! the frames encoded (with the `content-length` the encoder adds), and leaves nothing buffered.
//! The property mapping (`bridge::properties`, `bridge::routing_key`) never panics on any
//! decoded MESSAGE.
//!
//! A second target drives the server side (`tabbit::bridge::server`): two STOMP sessions of
//! an edge broker (`tests/common/stomp.rs`) take random steps: plausible client frames
//! (every command, the headers the server reads, valid and invalid destinations, ack ids,
//! receipts), such frames with bytes mutated, random bytes, commits, time passing, a socket
//! dropped. For every input: nothing panics; what a session sends always decodes; a session
//! that closed says nothing more, and closed after an ERROR or a DISCONNECT; the core's
//! invariants hold; once every session is gone, no message is left unacked.
//!
//! Inputs: `FUZZ_CASES` (default 10,000 for the decoder, a tenth for sessions);
//! `scripts/fuzz stomp` runs 1,000,000.

#[path = "common/stomp.rs"]
mod edge;
#[path = "common/fuzz.rs"]
mod fuzz;

use std::sync::atomic::{AtomicU64, Ordering};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tabbit::bridge::{self, stomp};

const LIMIT: usize = 4096;

#[derive(Debug, Clone)]
enum Input {
    Random { bytes: Vec<u8>, cuts: Vec<usize> },
    Valid { frames: Vec<stomp::Frame>, beats: Vec<u8>, cuts: Vec<usize> },
    Mutated { frames: Vec<stomp::Frame>, edits: Vec<(usize, u8, u8)>, cuts: Vec<usize> },
}

fn text() -> impl Strategy<Value = String> {
    // Every character the escapes cover, some UTF-8, and plain ones.
    let special = prop_oneof![Just('\\'), Just(':'), Just('\n'), Just('\r'), Just('é'), Just('字')];
    let plain = "[a-z0-9-]".prop_map(|s: String| s.chars().next().unwrap_or('a'));
    vec(prop_oneof![special, any::<char>(), plain], 0..12)
        .prop_map(|cs| cs.into_iter().filter(|&c| c != '\0').collect())
}

fn frame() -> impl Strategy<Value = stomp::Frame> {
    (
        prop_oneof![
            Just("MESSAGE".to_string()),
            Just("RECEIPT".to_string()),
            Just("ERROR".to_string()),
            Just("CONNECTED".to_string()),
            "[A-Z]{1,10}".prop_map(|s| s)
        ],
        vec((text(), text()), 0..6),
        vec(any::<u8>(), 0..64),
    )
        .prop_map(|(command, headers, body)| {
            // CONNECTED's headers are not escaped: keep them free of what would need it.
            let raw = command == "CONNECT" || command == "CONNECTED";
            let headers = headers
                .into_iter()
                .map(|(k, v)| {
                    if raw {
                        let clean = |s: String| s.chars().filter(|c| !matches!(c, '\n' | '\r' | ':')).collect();
                        (clean(k), clean(v))
                    } else {
                        (k, v)
                    }
                })
                .filter(|(k, _)| k != "content-length")
                .collect();
            stomp::Frame { command, headers, body }
        })
}

fn input() -> impl Strategy<Value = Input> {
    prop_oneof![
        (vec(any::<u8>(), 0..512), vec(0usize..600, 0..8)).prop_map(|(bytes, cuts)| Input::Random { bytes, cuts }),
        (vec(frame(), 1..5), vec(0u8..3, 5), vec(0usize..2000, 0..8)).prop_map(|(frames, beats, cuts)| Input::Valid {
            frames,
            beats,
            cuts
        }),
        (vec(frame(), 1..4), vec((0usize..2000, 0u8..3, any::<u8>()), 1..4), vec(0usize..2000, 0..8))
            .prop_map(|(frames, edits, cuts)| Input::Mutated { frames, edits, cuts }),
    ]
}

fn encode(frames: &[stomp::Frame], beats: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, f) in frames.iter().enumerate() {
        for _ in 0..beats.get(i).copied().unwrap_or(0) {
            out.extend_from_slice(if i % 2 == 0 { b"\n" } else { b"\r\n" });
        }
        out.extend_from_slice(&f.encode());
    }
    out
}

/// Feeds `bytes` in chunks cut at `cuts`: the frames, or the first error and what came after it.
fn feed(bytes: &[u8], cuts: &[usize]) -> Result<(Vec<stomp::Frame>, Option<stomp::StompError>, usize), TestCaseError> {
    let mut d = stomp::Decoder::new(LIMIT);
    let mut cuts: Vec<usize> = cuts.iter().map(|&c| c.min(bytes.len())).collect();
    cuts.push(bytes.len());
    cuts.sort_unstable();
    let (mut at, mut frames) = (0, Vec::new());
    for c in cuts {
        match d.push(&bytes[at..c]) {
            Ok(fs) => frames.extend(fs),
            Err(e) => {
                prop_assert_eq!(d.push(b"RECEIPT\n\n\0"), Err(stomp::StompError::Poisoned));
                return Ok((frames, Some(e), d.buffered()));
            }
        }
        at = c;
    }
    for f in &frames {
        prop_assert!(f.encode().len() <= LIMIT + 32, "a frame of {} bytes passed the limit", f.encode().len());
        if f.command == "MESSAGE" {
            let _ = bridge::properties(f);
            let _ = bridge::routing_key(f.get("destination").unwrap_or(""));
        }
    }
    Ok((frames, None, d.buffered()))
}

fn run(input: Input) -> Result<(), TestCaseError> {
    match input {
        Input::Random { bytes, cuts } => {
            feed(&bytes, &cuts)?;
        }
        Input::Valid { frames, beats, cuts } => {
            let bytes = encode(&frames, &beats);
            let (got, err, left) = feed(&bytes, &cuts)?;
            prop_assert!(err.is_none(), "valid stream failed: {:?}", err);
            prop_assert_eq!(left, 0);
            prop_assert_eq!(got.len(), frames.len());
            for (g, f) in got.iter().zip(&frames) {
                let mut want = f.headers.clone();
                if !f.body.is_empty() {
                    want.push(("content-length".into(), f.body.len().to_string()));
                }
                prop_assert_eq!(&g.command, &f.command);
                prop_assert_eq!(&g.headers, &want);
                prop_assert_eq!(&g.body, &f.body);
            }
        }
        Input::Mutated { frames, edits, cuts } => {
            let mut bytes = encode(&frames, &[]);
            for (at, op, b) in edits {
                let at = at % (bytes.len() + 1);
                match op {
                    0 if at < bytes.len() => bytes[at] = b,
                    1 => bytes.insert(at, b),
                    _ if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => {}
                }
            }
            feed(&bytes, &cuts)?;
        }
    }
    Ok(())
}

#[test]
fn stomp_decoder_survives_any_stream() {
    let report = fuzz::run("stomp", 10_000, input, run);
    eprintln!("fuzz stomp: {} inputs in {:.1} s", report.inputs, report.seconds);
}

/// One step of the session fuzz target. A closed session's client connects anew.
#[derive(Debug, Clone)]
enum Step {
    /// A well-formed frame from client 0 or 1 (which may still be refused).
    Frame {
        client: u8,
        frame: stomp::Frame,
    },
    /// An ACK (or NACK) of one of the MESSAGEs the client got, possibly twice.
    Settle {
        client: u8,
        pick: usize,
        nack: Option<bool>,
        receipt: bool,
    },
    /// Anything: a frame of random headers, its bytes mutated, or random bytes.
    Junk {
        client: u8,
        frame: stomp::Frame,
        edits: Vec<(usize, u8)>,
        bytes: Vec<u8>,
    },
    Commit,
    Advance(u16),
    Drop {
        client: u8,
    },
}

fn destination() -> impl Strategy<Value = &'static str> {
    prop_oneof![
        4 => Just("/queue/q"),
        2 => Just("/queue/d"),
        2 => Just("/amq/queue/q"),
        2 => Just("/topic/a.b"),
        2 => Just("/topic/a.*"),
        1 => Just("/exchange/amq.direct/k"),
        1 => Just("/amq/queue/none"),
        1 => Just("/exchange/none/k"),
        1 => Just("/temp-queue/t"),
        1 => Just("/nowhere"),
    ]
}

fn receipt() -> impl Strategy<Value = Option<String>> {
    proptest::option::of((0u8..4).prop_map(|r| format!("r{r}")))
}

fn client_frame() -> impl Strategy<Value = stomp::Frame> {
    let send = (destination(), any::<bool>(), receipt(), any::<bool>(), vec(any::<u8>(), 0..16)).prop_map(
        |(d, persistent, receipt, reply, body)| {
            let mut f = stomp::Frame::new("SEND").header("destination", d).body(body);
            if persistent {
                f = f.header("persistent", "true");
            }
            if reply {
                f = f.header("reply-to", "/temp-queue/t");
            }
            if let Some(r) = receipt {
                f = f.header("receipt", r);
            }
            f
        },
    );
    let subscribe = (
        prop_oneof![Just("s1"), Just("s2"), Just("s3"), Just("s4")],
        destination(),
        prop_oneof![Just("auto"), Just("client"), Just("client-individual")],
        0u16..3,
        any::<bool>(),
        receipt(),
    )
        .prop_map(|(id, d, ack, prefetch, durable, receipt)| {
            let mut f = stomp::Frame::new("SUBSCRIBE")
                .header("id", id)
                .header("destination", d)
                .header("ack", ack)
                .header("prefetch-count", prefetch.to_string());
            if durable && d.starts_with("/topic/") {
                f = f.header("durable", "true").header("auto-delete", "false");
            }
            if let Some(r) = receipt {
                f = f.header("receipt", r);
            }
            f
        });
    let unsubscribe = (prop_oneof![Just("s1"), Just("s2"), Just("s3")], any::<bool>(), receipt()).prop_map(
        |(id, durable, receipt)| {
            let mut f = stomp::Frame::new("UNSUBSCRIBE").header("id", id);
            if durable {
                f = f.header("durable", "true");
            }
            if let Some(r) = receipt {
                f = f.header("receipt", r);
            }
            f
        },
    );
    let disconnect = receipt().prop_map(|r| match r {
        Some(r) => stomp::Frame::new("DISCONNECT").header("receipt", r),
        None => stomp::Frame::new("DISCONNECT"),
    });
    prop_oneof![6 => send, 3 => subscribe, 1 => unsubscribe, 1 => disconnect]
}

fn junk_frame() -> impl Strategy<Value = stomp::Frame> {
    let command =
        prop_oneof![Just("SEND"), Just("SUBSCRIBE"), Just("ACK"), Just("CONNECT"), Just("BEGIN"), Just("FROB")];
    (command, vec((text(), text()), 0..4), vec(any::<u8>(), 0..16)).prop_map(|(command, headers, body)| stomp::Frame {
        command: command.to_string(),
        headers,
        body,
    })
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        12 => (0u8..2, client_frame()).prop_map(|(client, frame)| Step::Frame { client, frame }),
        6 => (0u8..2, any::<usize>(), proptest::option::of(any::<bool>()), any::<bool>())
            .prop_map(|(client, pick, nack, receipt)| Step::Settle { client, pick, nack, receipt }),
        1 => (0u8..2, junk_frame(), vec((0usize..200, any::<u8>()), 0..3), vec(any::<u8>(), 0..32))
            .prop_map(|(client, frame, edits, bytes)| Step::Junk { client, frame, edits, bytes }),
        4 => Just(Step::Commit),
        1 => (0u16..3000).prop_map(Step::Advance),
        1 => (0u8..2).prop_map(|client| Step::Drop { client }),
    ]
}

/// Frames the sessions sent over the run, by kind: MESSAGE, RECEIPT, ERROR (to see that
/// the inputs reach past the errors).
static SEEN: [AtomicU64; 3] = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(0)];

fn run_session(steps: Vec<Step>) -> Result<(), TestCaseError> {
    let mut m = edge::Edge::new();
    m.auto_commit = false;
    m.cfg.max_frame_bytes = 512;
    m.cfg.max_subscriptions = 3;
    let mut clients = [m.connect(), m.connect()];
    let mut all = Vec::new();
    // The MESSAGEs with an ack header each client got, and how many of its frames were seen.
    let mut held: [Vec<stomp::Frame>; 2] = [Vec::new(), Vec::new()];
    let mut seen = [0usize; 2];
    for s in steps {
        match s {
            Step::Frame { client, frame } => m.frame(clients[client as usize], frame),
            Step::Settle { client, pick, nack, receipt } => {
                let held = &held[client as usize];
                if held.is_empty() {
                    continue;
                }
                let msg = &held[pick % held.len()];
                let mut f = match nack {
                    None => edge::ack(msg),
                    Some(requeue) => edge::nack(msg).header("requeue", requeue.to_string()),
                };
                if receipt {
                    f = f.header("receipt", "s");
                }
                m.frame(clients[client as usize], f);
            }
            Step::Junk { client, frame, edits, bytes } => {
                let mut b = frame.encode();
                for (at, x) in edits {
                    let at = at % b.len();
                    b[at] = x;
                }
                b.extend(bytes);
                m.bytes(clients[client as usize], &b);
            }
            Step::Commit => m.commit(),
            Step::Advance(ms) => m.advance(ms as u64),
            Step::Drop { client } => m.drop_socket(clients[client as usize]),
        }
        if let Err(e) = m.e.core().check_invariants() {
            return Err(TestCaseError::fail(format!("invariant broken: {e}")));
        }
        for i in 0..2 {
            let c = m.client(clients[i]);
            let new = &c.got[seen[i]..];
            seen[i] = c.got.len();
            for f in new {
                if let Some(k) = ["MESSAGE", "RECEIPT", "ERROR"].iter().position(|c| *c == f.command) {
                    SEEN[k].fetch_add(1, Ordering::Relaxed);
                }
                if f.command == "MESSAGE" && f.get("ack").is_some() {
                    held[i].push(f.clone());
                }
            }
            if c.closed || c.s.is_closed() {
                // The last frame before the close is its reason, if the session said one.
                let last = new.last().map(|f| f.command.as_str());
                prop_assert!(matches!(last, None | Some("ERROR") | Some("RECEIPT")), "closed after {:?}", last);
                all.push((clients[i], c.got.len()));
                clients[i] = m.connect();
                held[i].clear();
                seen[i] = 0;
            }
        }
    }
    // A closed session says nothing more.
    for (ctx, len) in &all {
        prop_assert_eq!(m.client(*ctx).got.len(), *len, "a closed session sent more");
    }
    for ctx in clients {
        m.drop_socket(ctx);
    }
    m.commit();
    for q in m.e.core().queue_names() {
        let info = m.e.core().queue_info(&q).unwrap();
        prop_assert_eq!(info.unacked, 0, "queue {} keeps unacked messages of sessions that are gone", q);
    }
    Ok(())
}

#[test]
fn stomp_sessions_survive_any_client() {
    let report = fuzz::run("stomp-session", 300, || vec(step(), 1..40), run_session);
    let [m, r, e] = SEEN.each_ref().map(|n| n.load(Ordering::Relaxed));
    eprintln!(
        "fuzz stomp sessions: {} inputs in {:.1} s: {m} MESSAGE, {r} RECEIPT, {e} ERROR frames",
        report.inputs, report.seconds
    );
}
