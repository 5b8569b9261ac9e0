//! Stopping a run cleanly on Ctrl-C (SIGINT) or SIGTERM.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Ctrl-C (SIGINT) or SIGTERM cancels: the rounds in flight finish (or
/// pretraining stops at its next step), what completed is written, the
/// manifest says `partial`. A second signal exits
/// at once; every file is still whole, since each is written atomically and
/// rows are appended a line at a time.
pub(super) fn cancel_on_ctrl_c(cancel: Arc<AtomicBool>) {
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let mut signalled = 0;
        loop {
            let terminated = async {
                match term.as_mut() {
                    Some(t) => t.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = tokio::signal::ctrl_c() => if r.is_err() { return },
                _ = terminated => {}
            }
            signalled += 1;
            if signalled > 1 {
                std::process::exit(130);
            }
            cancel.store(true, Ordering::SeqCst);
            crate::warn_line!(
                "redqueen: interrupted; finishing the rounds in flight, or the training step under way, then writing what completed (a second Ctrl-C or SIGTERM stops at once)"
            );
        }
    });
}
