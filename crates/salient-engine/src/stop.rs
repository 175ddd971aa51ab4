//! Cooperative stopping: SIGINT/SIGTERM (Ctrl-C, or Slurm's preemption notice) set a flag that
//! `salient run` installs for its thread with [`install`]; the long loops deep inside
//! evaluation and training (each step of an iterative attack, each restart and target, each
//! query of Square) poll [`requested`] and return early, and the loop over batches turns that
//! into [`crate::EngineError::Interrupted`], so a stop takes effect within one step or one
//! attack batch whatever the attack's step count. What a loop returns after stopping early is
//! never used: the batch is discarded.
//!
//! The flag is per thread (a thread-local holding the installed `Arc<AtomicBool>`), so tests
//! running in parallel threads of one process never stop each other, and code that never
//! installs one (a library user calling an attack directly) never stops early.
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

thread_local! {
    static FLAG: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
}

/// Whether a stop was requested on this thread's installed flag (false when none is installed).
pub fn requested() -> bool {
    FLAG.with(|f| {
        f.borrow()
            .as_ref()
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
    })
}

/// Install `flag` as this thread's stop flag until the returned guard is dropped (the previous
/// one, if any, is put back then).
#[must_use = "the flag is uninstalled when the guard is dropped"]
pub fn install(flag: Arc<AtomicBool>) -> Installed {
    let previous = FLAG.with(|f| f.borrow_mut().replace(flag));
    Installed { previous }
}

/// Guard of [`install`].
pub struct Installed {
    previous: Option<Arc<AtomicBool>>,
}

impl Drop for Installed {
    fn drop(&mut self) {
        let previous = self.previous.take();
        FLAG.with(|f| *f.borrow_mut() = previous);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_is_per_thread_and_scoped() {
        assert!(!requested());
        let flag = Arc::new(AtomicBool::new(false));
        {
            let _g = install(flag.clone());
            assert!(!requested());
            flag.store(true, Ordering::Relaxed);
            assert!(requested());
            let other = std::thread::spawn(requested).join().unwrap();
            assert!(!other, "another thread does not see this thread's flag");
        }
        assert!(!requested(), "uninstalled with its guard");
    }
}
