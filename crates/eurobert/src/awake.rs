//! Keeps a pool's other workers awake while one forward pass runs on it, and every worker
//! awake for a millisecond after its last work (the next call of a server starts at once).
//!
//! A forward pass is a chain of parallel steps with short serial stretches between them
//! (norms, RoPE, small heads). A rayon worker that finds no work for ~30 µs goes to sleep, and
//! waking it costs 20–40 µs on a virtual machine (the idle vCPU has halted): a 17-token pass
//! through the compact model paid that at most of its ~40 steps. While a pass runs, every other
//! worker of the pool runs a keeper instead, which takes any work there is and otherwise
//! yields its CPU (so other processes still get it) without sleeping. ONNX Runtime's intra-op
//! threads spin the same way.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a keeper may find no work before it leaves anyway. It bounds the stall of the one
/// order in which a keeper could sit above a stolen part of the pass (it cannot be seen from
/// inside the keeper), so the pass never waits on a keeper for longer than this.
const IDLE_LIMIT: Duration = Duration::from_millis(2);

/// Runs `f` on the current pool's thread with the pool's other workers kept awake until it
/// returns (or unwinds). Outside a pool, or with one thread, it just runs `f`.
pub(crate) fn run<R>(f: impl FnOnce() -> R) -> R {
    let (Some(here), threads) = (rayon::current_thread_index(), rayon::current_num_threads()) else {
        return f();
    };
    if threads < 2 {
        return f();
    }
    let _busy = Busy::enter();
    let running = Arc::new(AtomicBool::new(true));
    // Not scoped: a keeper may be inside another call's job when this pass ends, and this
    // pass must not wait for that job.
    for _ in 1..threads {
        let running = running.clone();
        rayon::spawn(move || keep(&running, here));
    }
    // Ends the keepers however `f` leaves.
    let _stop = Stop(running);
    f()
}

/// Takes the pool's work until the pass ends (then lingers), yielding the CPU while there is none.
fn keep(running: &AtomicBool, pass_thread: usize) {
    // The pass's own thread may pop a keeper while it waits for a stolen step: it must go back.
    if rayon::current_thread_index() == Some(pass_thread) {
        return;
    }
    let stopped = {
        #[cfg(test)]
        let _count = tests::Counted::new();
        let _busy = Busy::enter();
        take_work(|| !running.load(Ordering::Acquire), IDLE_LIMIT)
    };
    if stopped {
        linger();
    }
}

/// Runs the pool's work on this thread, yielding its CPU while there is none, until `done()`
/// (true) or until no work has come for `idle` (false).
fn take_work(done: impl Fn() -> bool, idle: Duration) -> bool {
    let mut since = Instant::now();
    while !done() {
        match rayon::yield_now() {
            Some(rayon::Yield::Executed) => since = Instant::now(),
            _ if since.elapsed() > idle => return false,
            _ => std::thread::yield_now(),
        }
    }
    true
}

thread_local! {
    /// Calls, passes and keepers running on this thread: a thread lingers only at the bottom
    /// of its stack, where no part of a pass can be waiting beneath it.
    static BUSY: Cell<usize> = const { Cell::new(0) };
}

struct Busy;

impl Busy {
    fn enter() -> Self {
        BUSY.set(BUSY.get() + 1);
        Busy
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        BUSY.set(BUSY.get() - 1);
    }
}

/// How long a pool thread stays awake after its last work: a call that comes within it starts
/// at once instead of waking a thread that went to sleep (20–40 µs on a virtual machine, twice
/// for a pass on two threads); back-to-back one-sentence calls are what it serves. ONNX Runtime's
/// threads spin after a run the same way. `EUROBERT_LINGER_US` sets it (0: sleep at once).
fn linger_for() -> Duration {
    static US: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let us = US.get_or_init(|| std::env::var("EUROBERT_LINGER_US").ok().and_then(|v| v.parse().ok()).unwrap_or(1_000));
    Duration::from_micros(*us)
}

/// Runs one call's job on a pool thread; afterwards the thread stays awake for the next call
/// ([`linger_for`]).
pub(crate) fn job(f: impl FnOnce()) {
    {
        let _busy = Busy::enter();
        f();
    }
    linger();
}

/// Keeps this pool thread taking work, yielding its CPU between looks, until none has come for
/// [`linger_for`]. Only at the bottom of a thread's stack: a keeper lingering above a stolen
/// part of a pass would hold that pass back.
fn linger() {
    let limit = linger_for();
    if limit.is_zero() || BUSY.get() > 0 || rayon::current_thread_index().is_none() {
        return;
    }
    let _busy = Busy::enter();
    take_work(|| false, limit);
}

struct Stop(Arc<AtomicBool>);

impl Drop for Stop {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    /// Keepers running now, in every test's pools.
    static KEEPERS: AtomicUsize = AtomicUsize::new(0);

    pub(super) struct Counted;

    impl Counted {
        pub(super) fn new() -> Self {
            KEEPERS.fetch_add(1, Ordering::SeqCst);
            Counted
        }
    }

    impl Drop for Counted {
        fn drop(&mut self) {
            KEEPERS.fetch_sub(1, Ordering::SeqCst);
        }
    }

    fn keepers_leave() -> bool {
        let t = Instant::now();
        while KEEPERS.load(Ordering::SeqCst) > 0 {
            if t.elapsed() > Duration::from_secs(30) {
                return false;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        true
    }

    #[test]
    fn a_pass_runs_its_parallel_steps_and_the_keepers_leave_when_it_ends() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        let sum = AtomicUsize::new(0);
        let out = pool.install(|| {
            run(|| {
                for step in 0..200 {
                    rayon::join(|| sum.fetch_add(step, Ordering::Relaxed), || sum.fetch_add(1, Ordering::Relaxed));
                }
                7
            })
        });
        assert_eq!(out, 7);
        assert_eq!(sum.load(Ordering::Relaxed), (0..200).sum::<usize>() + 200);
        assert!(keepers_leave());
        // The pool is free again: a plain job runs on it.
        assert_eq!(pool.install(|| rayon::join(|| 1, || 2)), (1, 2));
    }

    #[test]
    fn a_pass_does_not_wait_for_another_calls_job_that_a_keeper_took() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let started = AtomicBool::new(false);
        let (pass, other) = std::thread::scope(|s| {
            let pass = s.spawn(|| {
                pool.install(|| {
                    run(|| {
                        started.store(true, Ordering::SeqCst);
                        // Long enough for the other call's job to arrive and be taken by the
                        // keeper (serial: the pass's thread never waits, so never takes it).
                        let t = Instant::now();
                        while t.elapsed() < Duration::from_millis(200) {
                            std::hint::spin_loop();
                        }
                    })
                });
                Instant::now()
            });
            let other = s.spawn(|| {
                while !started.load(Ordering::SeqCst) {
                    std::hint::spin_loop();
                }
                pool.install(|| std::thread::sleep(Duration::from_secs(3)));
                Instant::now()
            });
            (pass.join().unwrap(), other.join().unwrap())
        });
        // The pass ended on its own time, not when the other call's 3 s job did.
        assert!(pass + Duration::from_secs(1) < other);
        assert!(keepers_leave());
    }

    // WebAssembly builds abort on a panic: there is no unwinding for the keepers to see.
    #[cfg(not(target_family = "wasm"))]
    #[test]
    fn a_pass_that_panics_still_ends_its_keepers() {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
        let caught = pool.install(|| std::panic::catch_unwind(|| run(|| -> i32 { panic!("in the pass") })));
        assert!(caught.is_err());
        assert!(keepers_leave());
        assert_eq!(pool.install(|| run(|| 5)), 5);
    }

    #[test]
    fn outside_a_pool_it_just_runs() {
        assert_eq!(run(|| 3), 3);
    }
}
