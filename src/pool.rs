//! Sharing the model among requests: a `Pool` of interchangeable sessions (a caller takes one,
//! waiting while all are in use; it goes back when the lease drops), and a `Gate` that lets one
//! model run per core in, interactive runs first. With one single-threaded session per core,
//! concurrent requests run in parallel instead of queueing behind one session's lock.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub struct Pool<T> {
    idle: Mutex<Vec<T>>,
    returned: Condvar,
    size: usize,
}

impl<T> Pool<T> {
    pub fn new(items: Vec<T>) -> Pool<T> {
        let size = items.len();
        debug_assert!(size > 0, "a pool needs at least one item");
        Pool { idle: Mutex::new(items), returned: Condvar::new(), size }
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// Takes an idle item, waiting for one to come back when all are leased.
    pub fn take(&self) -> Lease<'_, T> {
        let mut idle = self.lock();
        loop {
            if let Some(item) = idle.pop() {
                return Lease { pool: self, item: Some(item) };
            }
            idle = self.returned.wait(idle).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<T>> {
        // A panic while holding the lock cannot leave the list half-changed (push and pop only).
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

pub struct Lease<'a, T> {
    pool: &'a Pool<T>,
    item: Option<T>,
}

impl<T> Deref for Lease<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.item.as_ref().expect("a lease holds its item until dropped")
    }
}

impl<T> DerefMut for Lease<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        self.item.as_mut().expect("a lease holds its item until dropped")
    }
}

impl<T> Drop for Lease<'_, T> {
    fn drop(&mut self) {
        if let Some(item) = self.item.take() {
            self.pool.lock().push(item);
            self.pool.returned.notify_one();
        }
    }
}

/// Who is waiting: a search waits for the model with a user staring at the screen; a review's
/// sentences or an index build can wait a batch longer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    Interactive,
    Batch,
}

/// At most one model run per core at a time, across every model: a run enters the gate first,
/// and a free place goes to a waiting interactive run before any batch run. While searches are
/// coming in (one entered within `INTERACTIVE_RESERVE`), batch runs leave one place free for
/// the next search, so a search does not wait for a batch run to finish; the place goes back to
/// batch work once searches stop.
pub struct Gate {
    state: Mutex<GateState>,
    opened: Condvar,
}

/// How long after an interactive run entered the gate one place stays kept for interactive runs.
pub const INTERACTIVE_RESERVE: Duration = Duration::from_millis(250);

struct GateState {
    places: usize,
    free: usize,
    interactive_waiting: usize,
    last_interactive: Option<Instant>,
}

impl GateState {
    /// Places batch runs may not take now.
    fn reserved(&self) -> usize {
        let searching = self.last_interactive.is_some_and(|at| at.elapsed() < INTERACTIVE_RESERVE);
        usize::from(searching && self.places > 1)
    }
}

impl Gate {
    pub fn new(places: usize) -> Gate {
        let places = places.max(1);
        Gate {
            state: Mutex::new(GateState { places, free: places, interactive_waiting: 0, last_interactive: None }),
            opened: Condvar::new(),
        }
    }

    /// Places free right now: how many threads one request may usefully spread its runs over
    /// (none when the machine is busy, so load does not pay for threads it cannot use).
    pub fn free(&self) -> usize {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).free
    }

    pub fn enter(&self, priority: Priority) -> Pass<'_> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if priority == Priority::Interactive {
            state.interactive_waiting += 1;
        }
        loop {
            let may_enter = match priority {
                Priority::Interactive => state.free > 0,
                Priority::Batch => state.free > state.reserved() && state.interactive_waiting == 0,
            };
            if may_enter {
                break;
            }
            // A batch run kept out by the reserve re-checks when the reserve lapses, even if no
            // run leaves the gate before then.
            state = self.opened.wait_timeout(state, INTERACTIVE_RESERVE).unwrap_or_else(|poisoned| poisoned.into_inner()).0;
        }
        if priority == Priority::Interactive {
            state.interactive_waiting -= 1;
            state.last_interactive = Some(Instant::now());
        }
        state.free -= 1;
        Pass { gate: self }
    }
}

pub struct Pass<'a> {
    gate: &'a Gate,
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        self.gate.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).free += 1;
        // Every waiter re-checks: an interactive one may enter where a batch one may not.
        self.gate.opened.notify_all();
    }
}

/// `run` on every input, spread over up to `workers` threads (each takes the next input not yet
/// taken, so a long input does not leave the other threads idle behind a fixed share), results
/// in input order; the first error is returned. A review's many model runs then use
/// every core of an idle machine instead of one; each run still passes the gate, so searches
/// still go first.
pub fn spread<I: Sync, R: Send, E: Send>(
    inputs: &[I],
    workers: usize,
    run: impl Fn(&I) -> Result<R, E> + Sync,
) -> Result<Vec<R>, E> {
    let workers = workers.clamp(1, inputs.len().max(1));
    if workers == 1 {
        return inputs.iter().map(&run).collect();
    }
    let run = &run;
    let next = &AtomicUsize::new(0);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(move || {
                    std::iter::from_fn(|| {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        inputs.get(i).map(|input| run(input).map(|r| (i, r)))
                    })
                    .collect::<Result<Vec<_>, E>>()
                })
            })
            .collect();
        let mut indexed = Vec::with_capacity(inputs.len());
        for thread in threads {
            indexed.extend(thread.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))?);
        }
        indexed.sort_by_key(|(i, _)| *i);
        Ok(indexed.into_iter().map(|(_, r)| r).collect())
    })
}
