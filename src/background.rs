//! An HTTP server on its own OS thread with its own tokio runtime, stopped gracefully when dropped: the
//! embedded mock gateway and the live `/metrics` endpoint run this way, so that neither shares (or measures)
//! the load generator's threads. A leaf: imports nothing of the crate, so the mock stays independent of it.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::thread::JoinHandle;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::Shared;
use tokio::sync::oneshot;

/// Resolves when the server is asked to stop; hand it to `axum::serve(..).with_graceful_shutdown`.
pub type Stop = Shared<Pin<Box<dyn Future<Output = ()> + Send>>>;

/// The thread and runtime a server gets.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The OS thread's name, e.g. `mock-gateway`.
    pub thread: &'static str,
    /// Worker threads of a multi-thread runtime, named `<thread>-worker`; `None` for a current-thread runtime.
    pub workers: Option<usize>,
    /// After a stop request, how long in-flight responses (a long stream, say) may run before being cut, so
    /// that dropping the server cannot hang its owner.
    pub grace: Duration,
    /// What the server is, for the error when its thread ends before serving (`mock gateway`).
    pub what: &'static str,
}

/// A server running on its own thread; dropping it (or `shutdown`) stops it and joins the thread.
pub struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// The bound address (with the real port when `spawn` was given port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stop serving and join the thread; in-flight responses get up to the grace period to finish.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            // An error only means the server already stopped on its own.
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A panicked server thread has nothing left to clean up; the owner goes on regardless.
            let _ = thread.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("addr", &self.addr).finish_non_exhaustive()
    }
}

/// Binds `addr` (port 0 picks a free one) before returning, so the address is usable at once and a bind
/// failure is this call's error; then `serve(listener, stop)` runs on the server's thread until it returns
/// or the grace period after a stop request is over.
pub fn spawn<S, F>(addr: SocketAddr, options: Options, serve: S) -> io::Result<Server>
where
    S: FnOnce(tokio::net::TcpListener, Stop) -> F + Send + 'static,
    F: Future + Send,
{
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel::<io::Result<()>>(1);
    // The runtime is built on the server thread, never here: dropping a runtime (say, after a failed start)
    // panics inside an async context, and the caller is usually one.
    let thread = std::thread::Builder::new().name(options.thread.into()).spawn(move || {
        let runtime = match options.workers {
            Some(n) => tokio::runtime::Builder::new_multi_thread()
                .worker_threads(n)
                .thread_name(format!("{}-worker", options.thread))
                .enable_all()
                .build(),
            None => tokio::runtime::Builder::new_current_thread().enable_all().build(),
        };
        let runtime = match runtime {
            Ok(runtime) => runtime,
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                return;
            }
        };
        runtime.block_on(async move {
            let listener = match tokio::net::TcpListener::from_std(listener) {
                Ok(listener) => listener,
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            let stop: Stop = async move {
                let _ = stop_rx.await;
            }
            .boxed()
            .shared();
            let grace_over = {
                let stop = stop.clone();
                async move {
                    stop.await;
                    tokio::time::sleep(options.grace).await;
                }
            };
            // Either outcome ends the thread; an accept-loop error has no one to report to.
            tokio::select! {
                _ = serve(listener, stop) => {}
                () = grace_over => {}
            }
        });
    })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(Server { addr, stop: Some(stop_tx), thread: Some(thread) }),
        Ok(Err(e)) => {
            let _ = thread.join();
            Err(e)
        }
        Err(_) => {
            let _ = thread.join();
            Err(io::Error::other(format!("{} thread ended before it started serving", options.what)))
        }
    }
}

/// How long a hiccup probe asks to sleep. jHiccup's 1 ms: short enough that a stall of the thread (a busy
/// CPU, a descheduled runtime, steal) of a few ms delays a wake-up and is seen, and tokio's timer wheel has a
/// 1 ms resolution, so a shorter sleep would only measure its rounding.
pub const HICCUP_INTERVAL: Duration = Duration::from_millis(1);

/// jHiccup's probe on the calling runtime: sleeps `interval` again and again and hands `record` how late each
/// wake-up was (actual − requested). Whatever kept this runtime's thread from running (CPU contention, the
/// runtime itself busy, a stopped VM) shows up as lateness, whatever its cause. Runs until dropped.
pub async fn hiccup_probe(interval: Duration, mut record: impl FnMut(Duration)) {
    let mut due = tokio::time::Instant::now() + interval;
    loop {
        tokio::time::sleep_until(due).await;
        let woke = tokio::time::Instant::now();
        record(woke.saturating_duration_since(due));
        // From the wake-up, not the missed deadline: one stall is one late sample, not a burst of catch-ups.
        due = woke + interval;
    }
}

#[cfg(test)]
mod hiccup_tests {
    use std::cell::RefCell;
    use std::rc::Rc;

    use super::*;

    /// On a paused clock every sleep ends on time, and a jump of the clock while the probe sleeps is exactly
    /// the lateness it reports: the recorder sees what the clock did, not timing luck.
    #[tokio::test(start_paused = true)]
    async fn the_probe_records_how_late_it_woke() {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let local = tokio::task::LocalSet::new();
        let s = seen.clone();
        local.spawn_local(hiccup_probe(Duration::from_millis(1), move |d| s.borrow_mut().push(d)));
        local
            .run_until(async {
                tokio::time::sleep(Duration::from_micros(10_500)).await;
                let on_time = seen.borrow().len();
                assert!(on_time >= 9, "{on_time} samples in 10.5 ms of 1 ms sleeps");
                assert!(seen.borrow().iter().all(|d| d.is_zero()), "{:?}", seen.borrow());
                // The probe is asleep until 1 ms after its last wake-up; the clock jumps 50 ms past now.
                tokio::time::advance(Duration::from_millis(50)).await;
                tokio::task::yield_now().await;
            })
            .await;
        let late: Vec<_> = seen.borrow().iter().copied().filter(|d| !d.is_zero()).collect();
        assert_eq!(late.len(), 1, "{late:?}");
        assert!(late[0] >= Duration::from_millis(49) && late[0] <= Duration::from_millis(50), "{late:?}");
    }
}
