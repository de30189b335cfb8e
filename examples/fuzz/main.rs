//! Mutation fuzzing of every reader of outside data, on the stable toolchain:
//!
//! ```text
//! cargo run --release --example fuzz -- [--inputs N] [--seed S] [--target NAME] [--start I]
//! ```
//!
//! Each target (see `targets.rs`) makes `--inputs` inputs by mutating valid files and runs the
//! reader on each. An input that is refused with an error is fine; one that panics is a crash
//! (reported with the command that replays it, and counted: the run exits 1); one that aborts
//! (an allocation beyond the 8 GiB address-space limit set here) or runs over 20 s stops the
//! run with the same replay line. Input `I` of a target depends only on (seed, target, I).

mod mutate;
mod targets;

use std::panic::AssertUnwindSafe;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use mutate::Rng;
use targets::{Corpus, Outcome, TARGETS};

/// The input in flight, for the watchdog and the abort handler.
static CURRENT_TARGET: AtomicUsize = AtomicUsize::new(0);
static CURRENT_INPUT: AtomicU64 = AtomicU64::new(0);
static STARTED_MS: AtomicU64 = AtomicU64::new(0);
static SEED: AtomicU64 = AtomicU64::new(0);
static LAST_PANIC: Mutex<String> = Mutex::new(String::new());

const HANG: Duration = Duration::from_secs(20);
const ADDRESS_SPACE: u64 = 8 << 30;

struct Args {
    inputs: u64,
    seed: u64,
    start: u64,
    only: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        inputs: 10_000,
        seed: 1,
        start: 0,
        only: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {v}"))
        };
        match flag.as_str() {
            "--inputs" => args.inputs = number(value()?)?,
            "--seed" => args.seed = number(value()?)?,
            "--start" => args.start = number(value()?)?,
            "--target" => args.only = Some(value()?),
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if let Some(name) = &args.only
        && !TARGETS.iter().any(|(t, _)| t == name)
    {
        let names: Vec<&str> = TARGETS.iter().map(|(t, _)| *t).collect();
        return Err(format!(
            "--target: no target '{name}' (targets: {})",
            names.join(", ")
        ));
    }
    Ok(args)
}

fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    SEED.store(args.seed, Ordering::Relaxed);
    limit_address_space();
    install_abort_report();
    // Replaying one input with RUST_BACKTRACE=1 shows where it panicked.
    let backtrace = std::env::var_os("RUST_BACKTRACE").is_some_and(|v| v != "0");
    std::panic::set_hook(Box::new(move |info| {
        if backtrace {
            eprintln!("{info}\n{}", std::backtrace::Backtrace::force_capture());
        }
        if let Ok(mut last) = LAST_PANIC.lock() {
            *last = info.to_string().replace('\n', " ");
        }
    }));
    spawn_watchdog();
    let corpus = match Corpus::new() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot build the corpus: {e}");
            std::process::exit(2);
        }
    };
    println!(
        "{:<18} {:>10} {:>10} {:>10} {:>8} {:>9}",
        "target", "inputs", "accepted", "refused", "crashes", "seconds"
    );
    let mut crashes = 0u64;
    let (mut total_inputs, mut total_seconds) = (0u64, 0f64);
    for (t, (name, run)) in TARGETS.iter().enumerate() {
        if args.only.as_deref().is_some_and(|o| o != *name) {
            continue;
        }
        let started = Instant::now();
        let (mut accepted, mut refused, mut crashed) = (0u64, 0u64, 0u64);
        for i in args.start..args.start + args.inputs {
            CURRENT_TARGET.store(t, Ordering::Relaxed);
            CURRENT_INPUT.store(i, Ordering::Relaxed);
            STARTED_MS.store(now_ms(), Ordering::Relaxed);
            let mut rng = input_rng(args.seed, t, i);
            match std::panic::catch_unwind(AssertUnwindSafe(|| run(&corpus, &mut rng))) {
                Ok(Outcome::Accepted) => accepted += 1,
                Ok(Outcome::Refused) => refused += 1,
                Err(_) => {
                    crashed += 1;
                    let message = LAST_PANIC.lock().map(|m| m.clone()).unwrap_or_default();
                    eprintln!("CRASH {} ({message})", replay(t, i));
                }
            }
        }
        STARTED_MS.store(0, Ordering::Relaxed);
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "{name:<18} {:>10} {accepted:>10} {refused:>10} {crashed:>8} {seconds:>9.1}",
            args.inputs
        );
        crashes += crashed;
        total_inputs += args.inputs;
        total_seconds += seconds;
    }
    println!(
        "{:<18} {total_inputs:>10} {:>10} {:>10} {crashes:>8} {total_seconds:>9.1}",
        "total", "", ""
    );
    if crashes > 0 {
        std::process::exit(1);
    }
}

/// The generator of input `i` of target `t`: independent of every other input.
fn input_rng(seed: u64, t: usize, i: u64) -> Rng {
    let mut rng = Rng::new(seed ^ ((t as u64) << 56) ^ i.wrapping_mul(0x2545_f491_4f6c_dd1d));
    rng.next();
    rng
}

fn replay(t: usize, i: u64) -> String {
    format!(
        "target {} input {i}: replay with `cargo run --release --example fuzz -- --target {} --seed {} --start {i} --inputs 1`",
        TARGETS[t].0,
        TARGETS[t].0,
        SEED.load(Ordering::Relaxed)
    )
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_millis() as u64)
}

/// A reader stuck on one input past [`HANG`] is a finding too: say which and stop.
fn spawn_watchdog() {
    std::thread::spawn(|| {
        loop {
            std::thread::sleep(Duration::from_millis(500));
            let started = STARTED_MS.load(Ordering::Relaxed);
            if started != 0 && now_ms().saturating_sub(started) > HANG.as_millis() as u64 {
                let (t, i) = (
                    CURRENT_TARGET.load(Ordering::Relaxed),
                    CURRENT_INPUT.load(Ordering::Relaxed),
                );
                eprintln!("HANG {} (over {} s)", replay(t, i), HANG.as_secs());
                std::process::exit(3);
            }
        }
    });
}

/// Allocations past this fail (and abort) instead of taking the machine.
fn limit_address_space() {
    let limit = libc::rlimit {
        rlim_cur: ADDRESS_SPACE,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct it is given and changes only this process's limit.
    unsafe {
        libc::setrlimit(libc::RLIMIT_AS, &limit);
    }
}

/// On SIGABRT (a failed allocation), print the replay line of the input in flight. The text
/// is made now, for every target, so the handler only writes bytes it already has.
fn install_abort_report() {
    static LINES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    let lines = (0..TARGETS.len())
        .map(|t| format!("ABORT target {} input ", TARGETS[t].0).into_bytes())
        .collect();
    let _ = LINES.set(lines);
    extern "C" fn on_abort(_: libc::c_int) {
        let t = CURRENT_TARGET.load(Ordering::Relaxed);
        let mut digits = [0u8; 20];
        let mut n = CURRENT_INPUT.load(Ordering::Relaxed);
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        if let Some(line) = LINES.get().and_then(|l| l.get(t)) {
            // SAFETY: write(2) is async-signal-safe; the buffers outlive the calls.
            unsafe {
                libc::write(2, line.as_ptr().cast(), line.len());
                libc::write(2, digits[at..].as_ptr().cast(), digits.len() - at);
                libc::write(2, b"\n".as_ptr().cast(), 1);
            }
        }
    }
    // SAFETY: installs a handler that only reads atomics and a fully built OnceLock and calls
    // write(2); the default action (abort) follows when it returns, as SA_RESETHAND restores it.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_abort as *const () as usize;
        action.sa_flags = libc::SA_RESETHAND;
        libc::sigaction(libc::SIGABRT, &action, std::ptr::null_mut());
    }
}
