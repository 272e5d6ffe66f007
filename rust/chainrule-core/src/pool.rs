//! chainrule's own thread pool (never rayon's global one, which the host program may own).
//! Its size comes from `set_num_threads`, else `CHAINRULE_NUM_THREADS`, else the number of
//! cores. The pool remembers the process that built it: after `fork()` the child's copy has no
//! worker threads, so it is rebuilt on first use instead of deadlocking. The lock around it is
//! held across `fork()` (see `guard_against_fork`) so the child never inherits it half-taken.
//!
//! A thread can also choose its own count ([`set_thread_override`]): its evaluations then run
//! on a pool of that size, and other threads keep the process's setting. Dask tasks use it to
//! run on one thread each without touching the process-wide count.
//!
//! Bounds: a count is at most [`max_threads`], and besides the process's pool at most
//! [`SIZED_POOLS`] pools of other sizes are kept (the oldest is dropped for a new one; its
//! threads exit once calls still running on it finish). Without them, a loop over
//! `using_threads(k)` for k up to 100 kept 5,051 OS threads alive, and a count of 100,000 was
//! spawned in full. Results do not depend on the count, so capping it changes only speed.

use rayon::{ThreadPool, ThreadPoolBuilder};
use std::cell::Cell;
use std::sync::{Arc, Once, OnceLock, RwLock, RwLockWriteGuard};

struct Pool {
    threads: usize,
    pid: u32,
    pool: Option<Arc<ThreadPool>>,
    /// Pools for threads that override the count, by size; all built by process `pid`.
    sized: Vec<(usize, Arc<ThreadPool>)>,
}

thread_local! {
    static OVERRIDE: Cell<Option<usize>> = const { Cell::new(None) };
}

/// How many pools of sizes other than the process's are kept. Two cover the usual mix (Dask
/// tasks at one thread, and one other count a program chooses) without rebuilding a pool per
/// call; rebuilding a dropped one costs what spawning its threads costs (~30 µs per thread).
pub const SIZED_POOLS: usize = 2;

/// The largest thread count accepted: 256, or the number of cores if that is larger. Counts
/// above it are capped to it here; the Python API refuses them with a ValueError instead.
pub fn max_threads() -> usize {
    cores().max(256)
}

/// The number of cores, asked once: on Linux `available_parallelism` reads the cgroup files
/// each time, ~58 µs here, which every call paid while no pool was built (W1 on 32 samples
/// 69 -> 11 µs a call).
fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Sets the number of threads the calling thread's evaluations use (`None`: the process's
/// setting; capped to [`max_threads`]) and returns the previous override.
pub fn set_thread_override(n: Option<usize>) -> Option<usize> {
    OVERRIDE.replace(n.map(|n| n.clamp(1, max_threads())))
}

/// The calling thread's override, if any.
pub fn thread_override() -> Option<usize> {
    OVERRIDE.get()
}

static POOL: RwLock<Option<Pool>> = RwLock::new(None);
static FORK_GUARD: Once = Once::new();

fn write() -> RwLockWriteGuard<'static, Option<Pool>> {
    POOL.write().unwrap_or_else(|e| e.into_inner())
}

/// A reader still inside `POOL` when another thread forks would leave the child's lock
/// counted as taken forever, and the child's pool rebuild (a write) would hang. So fork
/// takes the write lock first, and parent and child release it after.
#[cfg(unix)]
fn guard_against_fork() {
    use std::cell::RefCell;
    thread_local! {
        static HELD: RefCell<Option<RwLockWriteGuard<'static, Option<Pool>>>> = const { RefCell::new(None) };
    }
    extern "C" fn prepare() {
        HELD.with(|held| *held.borrow_mut() = Some(write()));
    }
    extern "C" fn release() {
        HELD.with(|held| held.borrow_mut().take());
    }
    FORK_GUARD.call_once(|| {
        // SAFETY: registering handlers has no preconditions; they only touch `POOL`.
        unsafe {
            libc::pthread_atfork(Some(prepare), Some(release), Some(release));
        }
    });
}

#[cfg(not(unix))]
fn guard_against_fork() {}

/// Read once, at the first call that needs it, like the core count.
fn default_threads() -> usize {
    static DEFAULT: OnceLock<usize> = OnceLock::new();
    *DEFAULT.get_or_init(|| {
        std::env::var("CHAINRULE_NUM_THREADS")
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|n| *n > 0)
            .unwrap_or_else(cores)
            .min(max_threads())
    })
}

/// Sets the number of threads evaluation uses (at least 1, at most [`max_threads`]).
pub fn set_num_threads(n: usize) {
    guard_against_fork();
    let mut guard = write();
    let sized = forget_if_inherited(guard.take());
    *guard = Some(Pool { threads: n.clamp(1, max_threads()), pid: std::process::id(), pool: None, sized });
}

/// What of an old pool record is still usable: its sized pools if this process built them.
/// Pools inherited through `fork()` have no live threads here; they are leaked rather than
/// dropped, as their destructors would wait on threads that do not exist.
fn forget_if_inherited(old: Option<Pool>) -> Vec<(usize, Arc<ThreadPool>)> {
    let Some(old) = old else { return Vec::new() };
    if old.pid == std::process::id() {
        return old.sized;
    }
    std::mem::forget(old);
    Vec::new()
}

/// The number of threads the calling thread's evaluations use.
pub fn current_num_threads() -> usize {
    if let Some(n) = thread_override() {
        return n;
    }
    guard_against_fork();
    if let Some(p) = POOL.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        return p.threads;
    }
    default_threads()
}

fn pool() -> Arc<ThreadPool> {
    let pid = std::process::id();
    let wanted = thread_override();
    if let Some(record) = POOL.read().unwrap_or_else(|e| e.into_inner()).as_ref().filter(|p| p.pid == pid) {
        if let Some(p) = record.find(wanted) {
            return p;
        }
    }
    let mut guard = write();
    if guard.as_ref().is_some_and(|p| p.pid != pid) {
        let threads = guard.as_ref().map_or_else(default_threads, |p| p.threads);
        forget_if_inherited(guard.take());
        *guard = Some(Pool { threads, pid, pool: None, sized: Vec::new() });
    }
    let record = guard.get_or_insert_with(|| Pool { threads: default_threads(), pid, pool: None, sized: Vec::new() });
    if let Some(p) = record.find(wanted) {
        return p;
    }
    let n = wanted.unwrap_or(record.threads);
    let built = ThreadPoolBuilder::new().num_threads(n).thread_name(|i| format!("chainrule-{i}")).build().map(Arc::new).ok();
    let pool = built.unwrap_or_else(|| Arc::new(ThreadPoolBuilder::new().num_threads(1).build().expect("a one-thread pool")));
    if n == record.threads {
        record.pool = Some(pool.clone());
    } else {
        if record.sized.len() >= SIZED_POOLS {
            // Calls still running on it hold their own Arc; the last drop tells its threads
            // to exit and does not wait for them.
            record.sized.remove(0);
        }
        record.sized.push((n, pool.clone()));
    }
    pool
}

impl Pool {
    /// The built pool for a thread wanting `wanted` threads (`None`: the process's count).
    fn find(&self, wanted: Option<usize>) -> Option<Arc<ThreadPool>> {
        match wanted {
            Some(n) if n != self.threads => self.sized.iter().find(|(k, _)| *k == n).map(|(_, p)| p.clone()),
            _ => self.pool.clone(),
        }
    }
}

/// Runs `f` on one of chainrule's pool threads, without waiting for it.
pub fn spawn(f: impl FnOnce() + Send + 'static) {
    pool().spawn(f);
}

/// Runs `f` on the calling thread with a scope whose spawned work runs on chainrule's pool;
/// returns once all of it has finished.
pub fn in_place_scope<'scope, R>(f: impl FnOnce(&rayon::Scope<'scope>) -> R) -> R {
    pool().in_place_scope(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_capped_and_few_pools_are_kept() {
        assert_eq!(set_thread_override(Some(1 << 40)), None);
        assert_eq!(thread_override(), Some(max_threads()));
        for k in 3..12 {
            set_thread_override(Some(k));
            in_place_scope(|_| ());
        }
        set_thread_override(None);
        let kept: Vec<usize> = POOL.read().unwrap().as_ref().unwrap().sized.iter().map(|(k, _)| *k).collect();
        assert!(kept.len() <= SIZED_POOLS, "{kept:?}");
    }
}
