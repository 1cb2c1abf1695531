//! The `kernels{state}` gauge: each live kernel counted once, under its current state.
//!
//! A kernel owns a [`KernelGauge`]; dropping it (whatever path the kernel ends on: shutdown,
//! crash, a failed start, a dropped task) takes the kernel out of the gauge, so the gauge
//! cannot drift. The state is one atomic, so moves between states need no lock.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// What a live kernel is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelState {
    /// Spawned, not yet ready.
    Starting,
    /// Ready, no cell running.
    Idle,
    /// Running cells.
    Busy,
    /// A pool spare waiting for a notebook.
    Spare,
}

/// No state: the kernel is gone (or died) and is not counted.
const NONE: u8 = 0;

impl KernelState {
    /// Every state, for presetting the series.
    pub(super) const ALL: [KernelState; 4] = [
        KernelState::Starting,
        KernelState::Idle,
        KernelState::Busy,
        KernelState::Spare,
    ];

    pub(super) fn label(self) -> &'static str {
        match self {
            KernelState::Starting => "starting",
            KernelState::Idle => "idle",
            KernelState::Busy => "busy",
            KernelState::Spare => "spare",
        }
    }

    fn code(state: Option<KernelState>) -> u8 {
        match state {
            None => NONE,
            Some(KernelState::Starting) => 1,
            Some(KernelState::Idle) => 2,
            Some(KernelState::Busy) => 3,
            Some(KernelState::Spare) => 4,
        }
    }

    fn from_code(code: u8) -> Option<KernelState> {
        match code {
            1 => Some(KernelState::Starting),
            2 => Some(KernelState::Idle),
            3 => Some(KernelState::Busy),
            4 => Some(KernelState::Spare),
            _ => None,
        }
    }
}

/// One kernel's place in the `kernels{state}` gauge.
#[derive(Debug)]
pub struct KernelGauge {
    state: AtomicU8,
}

impl KernelGauge {
    /// A kernel counted under `state` from now on.
    pub fn new(state: KernelState) -> Arc<KernelGauge> {
        add(Some(state), 1);
        Arc::new(KernelGauge {
            state: AtomicU8::new(KernelState::code(Some(state))),
        })
    }

    /// Moves the kernel to `state` (None: no longer counted); returns the state it had.
    pub fn set(&self, state: Option<KernelState>) -> Option<KernelState> {
        let old =
            KernelState::from_code(self.state.swap(KernelState::code(state), Ordering::AcqRel));
        if old != state {
            add(old, -1);
            add(state, 1);
        }
        old
    }

    /// Moves the kernel from `from` to `to` only if it is in `from` now (so a kernel that died
    /// meanwhile is not counted again).
    pub fn shift(&self, from: KernelState, to: KernelState) {
        let (from_code, to_code) = (KernelState::code(Some(from)), KernelState::code(Some(to)));
        if self
            .state
            .compare_exchange(from_code, to_code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            add(Some(from), -1);
            add(Some(to), 1);
        }
    }
}

impl Drop for KernelGauge {
    fn drop(&mut self) {
        self.set(None);
    }
}

/// Marks a kernel busy while it lives; idle again when dropped, also when the future running
/// the cell is dropped half-way.
#[derive(Debug)]
#[must_use = "the kernel is idle again as soon as this is dropped"]
pub struct KernelBusy(Arc<KernelGauge>);

impl KernelBusy {
    /// The kernel of `gauge` runs cells until this is dropped.
    pub fn new(gauge: &Arc<KernelGauge>) -> KernelBusy {
        gauge.shift(KernelState::Idle, KernelState::Busy);
        KernelBusy(gauge.clone())
    }
}

impl Drop for KernelBusy {
    fn drop(&mut self) {
        self.0.shift(KernelState::Busy, KernelState::Idle);
    }
}

fn add(state: Option<KernelState>, delta: i64) {
    if let Some(gauge) = state.and_then(super::kernel_state_gauge) {
        gauge.add(delta);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_codes() {
        for state in KernelState::ALL {
            assert_eq!(
                KernelState::from_code(KernelState::code(Some(state))),
                Some(state)
            );
        }
        assert_eq!(KernelState::from_code(NONE), None);
    }

    #[test]
    fn a_dead_kernel_is_not_made_idle_again() {
        let gauge = KernelGauge::new(KernelState::Idle);
        let busy = KernelBusy::new(&gauge);
        assert_eq!(gauge.set(None), Some(KernelState::Busy));
        drop(busy);
        assert_eq!(gauge.set(None), None);
    }
}
