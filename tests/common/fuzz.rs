//! A bounded fuzz driver over proptest, shared by `tests/fuzz_frames.rs` and
//! `tests/fuzz_core.rs` (included with `#[path]`, not through `common/mod.rs`, so that the
//! other test crates, some built for wasm32, do not see proptest).
//!
//! Inputs run in chunks of [`CHUNK`] cases, each chunk with its own proptest runner seeded
//! from (`FUZZ_SEED`, chunk number), on `FUZZ_THREADS` threads, until `FUZZ_CASES` inputs
//! ran or `FUZZ_SECONDS` passed. A failure is shrunk by proptest and reported with its
//! seed and chunk; `FUZZ_SEED=s FUZZ_CHUNK=k` runs that chunk alone, the same inputs in
//! the same order. A case that runs for more than `FUZZ_STALL` seconds (default 120) is
//! taken for a hang: the process exits with the seed and chunk of every running chunk.
//!
//! Environment: `FUZZ_CASES` (default: the test's own, small), `FUZZ_SECONDS` (a time
//! bound; with it `FUZZ_CASES` defaults to unlimited), `FUZZ_SEED` (default: from the
//! clock, printed), `FUZZ_THREADS` (default: the available cores), `FUZZ_CHUNK`,
//! `FUZZ_STALL`.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::fmt::Debug;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use proptest::strategy::Strategy;
use proptest::test_runner::{Config, RngAlgorithm, RngSeed, TestCaseError, TestError, TestRunner};

/// Inputs per chunk (one proptest runner).
pub const CHUNK: u64 = 1_000;

/// What a run did.
#[derive(Debug)]
pub struct Report {
    pub inputs: u64,
    pub seconds: f64,
    pub seed: u64,
}

fn env<T: std::str::FromStr>(name: &str) -> Option<T> {
    let v = std::env::var(name).ok()?;
    match v.trim().parse() {
        Ok(x) => Some(x),
        Err(_) => panic!("{name}={v:?} is not a number"),
    }
}

/// splitmix64: the seed of chunk `k` of a run seeded `seed`.
fn mix(seed: u64, k: u64) -> u64 {
    let mut z = seed ^ k.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Runs `test` on inputs from `strategy()` (one strategy per thread) and panics with the
/// minimal failing input, if any. `default_cases` applies when neither `FUZZ_CASES` nor
/// `FUZZ_SECONDS` is set: keep it small, the default `cargo test` runs it.
pub fn run<S, F>(name: &str, default_cases: u64, strategy: impl Fn() -> S + Sync, test: F) -> Report
where
    S: Strategy,
    S::Value: Debug,
    F: Fn(S::Value) -> Result<(), TestCaseError> + Sync,
{
    let seconds: Option<f64> = env("FUZZ_SECONDS");
    let cases: u64 = env("FUZZ_CASES").unwrap_or(if seconds.is_some() { u64::MAX } else { default_cases });
    let seed: u64 = env("FUZZ_SEED").unwrap_or_else(|| {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        mix(t.as_nanos() as u64, std::process::id() as u64)
    });
    let only_chunk: Option<u64> = env("FUZZ_CHUNK");
    let threads: usize =
        env("FUZZ_THREADS").unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())).max(1);
    let stall = Duration::from_secs(env("FUZZ_STALL").unwrap_or(120));
    install_panic_hook();
    let deadline = seconds.map(|s| Instant::now() + Duration::from_secs_f64(s));
    if cases != default_cases || seconds.is_some() {
        // Up front, so that a run that dies (out of memory, a stack overflow) can be repeated.
        let until = match seconds {
            Some(s) => format!("for {s}s"),
            None => format!("until {cases} inputs"),
        };
        eprintln!("fuzz {name}: FUZZ_SEED={seed}, {threads} threads, {until}");
    }
    let start = Instant::now();

    let next_chunk = AtomicU64::new(only_chunk.unwrap_or(0));
    let inputs = AtomicU64::new(0);
    let workers_done = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    let failure: Mutex<Option<String>> = Mutex::new(None);
    // Per thread: the chunk it runs and when its current input started (for the watchdog).
    let running: Vec<Mutex<Option<(u64, Instant)>>> = (0..threads).map(|_| Mutex::new(None)).collect();

    std::thread::scope(|scope| {
        for slot in &running {
            let (strategy, test) = (&strategy, &test);
            let (next_chunk, inputs, stop, failure, done) = (&next_chunk, &inputs, &stop, &failure, &workers_done);
            scope.spawn(move || {
                let _done = Done(done);
                let strategy = strategy();
                loop {
                    if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
                        break;
                    }
                    let k = next_chunk.fetch_add(1, Ordering::Relaxed);
                    let first = (k - only_chunk.unwrap_or(0)).saturating_mul(CHUNK);
                    if first >= cases || only_chunk.is_some_and(|c| k != c) {
                        break;
                    }
                    let n = (cases - first).min(CHUNK);
                    if std::env::var_os("FUZZ_VERBOSE").is_some() {
                        eprintln!("fuzz {name}: chunk {k} (FUZZ_SEED={seed} FUZZ_CHUNK={k})");
                    }
                    let config = Config {
                        cases: n as u32,
                        rng_seed: RngSeed::Fixed(mix(seed, k)),
                        // Faster than the default ChaCha, and random enough to find bugs.
                        rng_algorithm: RngAlgorithm::XorShift,
                        failure_persistence: None,
                        max_shrink_time: 120_000,
                        max_global_rejects: u32::MAX,
                        max_local_rejects: u32::MAX,
                        ..Config::default()
                    };
                    let mut runner = TestRunner::new(config);
                    let result = runner.run(&strategy, |v| {
                        if stop.load(Ordering::Relaxed) && failure.lock().unwrap().is_some() {
                            return Ok(()); // another thread failed: finish quickly
                        }
                        *slot.lock().unwrap() = Some((k, Instant::now()));
                        inputs.fetch_add(1, Ordering::Relaxed);
                        quietly(|| test(v))
                    });
                    *slot.lock().unwrap() = None;
                    if let Err(e) = result {
                        let what = match e {
                            TestError::Fail(why, v) => format!("{why}\nminimal failing input: {v:#?}"),
                            TestError::Abort(why) => format!("aborted: {why}"),
                        };
                        let mut f = failure.lock().unwrap();
                        if f.is_none() {
                            *f = Some(format!(
                                "fuzz {name} failed (FUZZ_SEED={seed} FUZZ_CHUNK={k} to run that chunk again): {what}"
                            ));
                        }
                        stop.store(true, Ordering::Relaxed);
                        break;
                    }
                }
            });
        }
        // The watchdog: a case that runs for too long is a hang (or a runaway allocation).
        scope.spawn(|| {
            let mut last_report = Instant::now();
            while workers_done.load(Ordering::Relaxed) < threads {
                std::thread::sleep(Duration::from_millis(100));
                let busy: Vec<(u64, Instant)> = running.iter().filter_map(|s| *s.lock().unwrap()).collect();
                if let Some((k, _)) = busy.iter().find(|(_, t)| t.elapsed() > stall) {
                    eprintln!(
                        "fuzz {name}: an input of chunk {k} has run for over {}s, a hang: \
                         FUZZ_SEED={seed} FUZZ_CHUNK={k} runs it again",
                        stall.as_secs()
                    );
                    std::process::exit(3);
                }
                if std::env::var_os("FUZZ_PROGRESS").is_some() && last_report.elapsed() > Duration::from_secs(30) {
                    last_report = Instant::now();
                    eprintln!(
                        "fuzz {name}: {} inputs after {:.0}s",
                        inputs.load(Ordering::Relaxed),
                        start.elapsed().as_secs_f64()
                    );
                }
            }
        });
    });

    let report = Report { inputs: inputs.load(Ordering::Relaxed), seconds: start.elapsed().as_secs_f64(), seed };
    if let Some(f) = failure.into_inner().unwrap() {
        panic!("{f}\n({} inputs ran in {:.1}s)", report.inputs, report.seconds);
    }
    eprintln!(
        "fuzz {name}: {} inputs, 0 failures, in {:.1}s ({:.0}/s, {threads} threads, FUZZ_SEED={seed})",
        report.inputs,
        report.seconds,
        report.inputs as f64 / report.seconds.max(1e-9)
    );
    report
}

thread_local! {
    /// Set while a fuzz input runs on this thread: its panics are failures to shrink, not
    /// output (a shrink can panic thousands of times).
    static QUIET: Cell<bool> = const { Cell::new(false) };
    /// Where and why the last quiet panic on this thread happened.
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if QUIET.get() {
                LAST_PANIC.set(Some(info.to_string()));
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs one input; a panic becomes a failure that names where it happened.
fn quietly(f: impl FnOnce() -> Result<(), TestCaseError>) -> Result<(), TestCaseError> {
    QUIET.set(true);
    let r = catch_unwind(AssertUnwindSafe(f));
    QUIET.set(false);
    r.unwrap_or_else(|_| {
        let why = LAST_PANIC.take().unwrap_or_else(|| "a panic".to_owned());
        Err(TestCaseError::fail(format!("PANIC: {why}")))
    })
}

/// Counts a worker as done when it ends, panicking or not.
struct Done<'a>(&'a AtomicUsize);

impl Drop for Done<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}
