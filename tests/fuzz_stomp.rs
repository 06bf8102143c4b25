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
//! Inputs: `FUZZ_CASES` (default 10,000); `scripts/fuzz stomp` runs 1,000,000.

#[path = "common/fuzz.rs"]
mod fuzz;

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
