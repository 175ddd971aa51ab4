//! Looking up a parameter's gradient without panicking when it has none.
//!
//! dfdx 0.13's only public read of a [`Gradients`] entry is `Gradients::get`, which
//! `unwrap()`s the lookup and so panics for a tensor that took no part in the graph (the
//! checked lookup `get_ref_checked` is `pub(crate)`). torch skips such a parameter (its
//! `.grad` is `None`), and so do we: the lookup runs under `catch_unwind`, and that one
//! panic (the `Option::unwrap()` on `None` inside `get`) is turned into `None`. While the
//! lookup runs, a panic hook (installed once, chaining to the previous hook) keeps that
//! expected panic quiet on this thread only; any other panic is still printed and becomes a
//! [`NnError::Device`] rather than a skipped parameter.
//!
//! (A tensor's id is not public in dfdx 0.13 either, so the set of ids present in a
//! `Gradients` cannot be listed; the lookup above is the only non-panicking test.)

use std::any::Any;
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Once;

use dfdx::prelude::*;

use super::Flat;
use crate::NnError;

/// The message of `Option::unwrap()` on `None`: the panic `Gradients::get` raises for a
/// tensor without a gradient.
const MISSING: &str = "called `Option::unwrap()` on a `None` value";

thread_local! {
    /// True while this thread runs a gradient lookup whose "missing" panic is expected.
    static QUIET: Cell<bool> = const { Cell::new(false) };
}

static HOOK: Once = Once::new();

fn payload_text(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "non-string panic payload"
    }
}

fn install_quiet_hook() {
    HOOK.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let expected = QUIET.with(Cell::get) && payload_text(info.payload()) == MISSING;
            if !expected {
                previous(info);
            }
        }));
    });
}

/// The gradient of `value` in `grads` (a copy on the same device), or `None` if `value` took
/// no part in the graph that produced `grads`.
pub(crate) fn gradient_of<D: Device<f32>>(
    grads: &Gradients<f32, D>,
    value: &Flat<D>,
) -> Result<Option<Flat<D>>, NnError> {
    install_quiet_hook();
    QUIET.with(|q| q.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(|| grads.get(value)));
    QUIET.with(|q| q.set(false));
    match result {
        Ok(g) => Ok(Some(g)),
        Err(payload) if payload_text(payload.as_ref()) == MISSING => Ok(None),
        Err(payload) => Err(NnError::Device(format!(
            "reading a gradient failed: {}",
            payload_text(payload.as_ref())
        ))),
    }
}
