//! Ctrl+C (SIGINT) and SIGTERM during a run: caught, so the runner can kill the kernel and the
//! temporary folder is removed before the process exits with 130 (or 143).

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// The signal that asked the run to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGINT (Ctrl+C).
    Interrupt,
    /// SIGTERM.
    Terminate,
}

impl StopSignal {
    /// The conventional exit code: 128 + the signal number.
    pub fn exit_code(self) -> i32 {
        match self {
            StopSignal::Interrupt => 130,
            StopSignal::Terminate => 143,
        }
    }

    /// What the terminal is told.
    pub fn message(self) -> &'static str {
        match self {
            StopSignal::Interrupt => {
                "interrupted (Ctrl+C): the run was stopped and nothing was written"
            }
            StopSignal::Terminate => {
                "terminated (SIGTERM): the run was stopped and nothing was written"
            }
        }
    }
}

/// Watches for SIGINT and SIGTERM for the rest of the run.
pub struct Stop {
    rx: watch::Receiver<Option<StopSignal>>,
}

impl Stop {
    /// Installs the handlers now (so a signal from this moment on is seen) and watches them.
    pub fn listen() -> Stop {
        let (tx, rx) = watch::channel(None);
        // Registering can only fail when the process may not handle signals at all; then the
        // default action (ending the process) stays, and the kernel dies with it anyway.
        let interrupt = signal(SignalKind::interrupt())
            .map_err(|e| log::warn!("cannot catch SIGINT: {e}"))
            .ok();
        let terminate = signal(SignalKind::terminate())
            .map_err(|e| log::warn!("cannot catch SIGTERM: {e}"))
            .ok();
        tokio::spawn(async move {
            let got = tokio::select! {
                Some(()) = recv(interrupt) => StopSignal::Interrupt,
                Some(()) = recv(terminate) => StopSignal::Terminate,
                else => return,
            };
            let _ = tx.send(Some(got));
            // Keep the sender, so waiters never see the channel close.
            std::future::pending::<()>().await;
        });
        Stop { rx }
    }

    /// A stop fed by `rx` rather than by process signals: the server ends its recorded runs
    /// this way when it shuts down.
    pub fn watching(rx: watch::Receiver<Option<StopSignal>>) -> Stop {
        Stop { rx }
    }

    /// The signal received so far, if any.
    pub fn received(&self) -> Option<StopSignal> {
        *self.rx.borrow()
    }

    /// Waits for a signal.
    pub async fn wait(&mut self) -> StopSignal {
        match self.rx.wait_for(Option::is_some).await {
            Ok(got) => got.unwrap_or(StopSignal::Interrupt),
            // The watcher gave up (no handler could be installed): no signal will come.
            Err(_) => std::future::pending().await,
        }
    }
}

async fn recv(stream: Option<tokio::signal::unix::Signal>) -> Option<()> {
    match stream {
        Some(mut s) => s.recv().await,
        None => std::future::pending().await,
    }
}
