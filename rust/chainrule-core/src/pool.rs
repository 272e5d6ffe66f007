//! chainrule's own thread pool (never rayon's global one, which the host program may own).
//! Its size comes from `set_num_threads`, else `CHAINRULE_NUM_THREADS`, else the number of
//! cores. The pool remembers the process that built it: after `fork()` the child's copy has no
//! worker threads, so it is rebuilt on first use instead of deadlocking. The lock around it is
//! held across `fork()` (see [`guard_against_fork`]) so the child never inherits it half-taken.

use std::sync::{Arc, Once, RwLock, RwLockWriteGuard};
use rayon::{ThreadPool, ThreadPoolBuilder};

struct Pool {
    threads: usize,
    pid: u32,
    pool: Option<Arc<ThreadPool>>,
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

fn default_threads() -> usize {
    std::env::var("CHAINRULE_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Sets the number of threads evaluation uses (at least 1).
pub fn set_num_threads(n: usize) {
    guard_against_fork();
    let mut guard = write();
    *guard = Some(Pool { threads: n.max(1), pid: std::process::id(), pool: None });
}

/// The number of threads evaluation uses.
pub fn current_num_threads() -> usize {
    guard_against_fork();
    if let Some(p) = POOL.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        return p.threads;
    }
    default_threads()
}

fn pool() -> Arc<ThreadPool> {
    let pid = std::process::id();
    if let Some(Pool { pool: Some(p), pid: owner, .. }) = POOL.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
        if *owner == pid {
            return p.clone();
        }
    }
    let mut guard = write();
    let threads = guard.as_ref().map_or_else(default_threads, |p| p.threads);
    if let Some(Pool { pool: Some(p), pid: owner, .. }) = guard.as_ref() {
        if *owner == pid {
            return p.clone();
        }
    }
    let built = ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("chainrule-{i}"))
        .build()
        .map(Arc::new)
        .ok();
    let pool = built.unwrap_or_else(|| Arc::new(ThreadPoolBuilder::new().num_threads(1).build().expect("a one-thread pool")));
    // The previous pool (from a parent process after fork) has no live threads here; leak it
    // rather than run its destructor, which would wait on threads that do not exist.
    if let Some(old) = guard.take().and_then(|p| p.pool) {
        if guard.as_ref().is_none_or(|p| p.pid != pid) {
            std::mem::forget(old);
        }
    }
    *guard = Some(Pool { threads, pid, pool: Some(pool.clone()) });
    pool
}

/// Runs `f` inside chainrule's pool.
pub fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    pool().install(f)
}
