//! Per-parameter optimizer state, indexed like the parameter list and created lazily.

use dfdx::prelude::{Device, HasShape};

use super::OptimizerState;
use crate::{NnError, Param};

/// The state of each parameter (by its index in the parameter list), created on the
/// parameter's first update. Remembers the parameter's length so that a different parameter
/// list given to a later step is reported instead of silently mixing states.
pub(crate) struct States<S> {
    slots: Vec<Option<Slot<S>>>,
}

struct Slot<S> {
    numel: usize,
    state: S,
}

impl<S> Default for States<S> {
    fn default() -> Self {
        Self { slots: Vec::new() }
    }
}

impl<S> States<S> {
    /// The state of parameter `index` (named `name`, `numel` elements), created by `init` if
    /// this is the parameter's first update. Errors if the stored state has another length.
    pub(crate) fn get_or_try_init(
        &mut self,
        index: usize,
        name: &str,
        numel: usize,
        init: impl FnOnce() -> Result<S, NnError>,
    ) -> Result<&mut S, NnError> {
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, || None);
        }
        let slot = &mut self.slots[index];
        match slot {
            Some(s) if s.numel != numel => Err(NnError::Shape {
                what: format!("optimizer state of parameter #{index} `{name}`"),
                expected: format!("{} elements", s.numel),
                found: format!("{numel} elements (was the parameter list changed?)"),
            }),
            Some(s) => Ok(&mut s.state),
            None => {
                let state = init()?;
                Ok(&mut slot.insert(Slot { numel, state }).state)
            }
        }
    }
}

impl<S> States<S> {
    /// Every created state with its parameter index, in index order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (usize, &S)> {
        self.slots
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.as_ref().map(|s| (i, &s.state)))
    }

    /// Replace every state by those of `saved` ([`OptimizerState`], over the parameter list
    /// `params`), each built by `read(index)`; unchanged when any fails.
    pub(crate) fn replace_with<D: Device<f32>>(
        &mut self,
        saved: &OptimizerState,
        params: &[Param<D>],
        mut read: impl FnMut(usize) -> Result<S, NnError>,
    ) -> Result<(), NnError> {
        let mut loaded = Vec::new();
        for i in saved.indices() {
            let numel = saved.param(params, i)?.value.shape().0;
            loaded.push((i, numel, read(i)?));
        }
        self.slots.clear();
        for (i, numel, state) in loaded {
            self.insert(i, numel, state);
        }
        Ok(())
    }

    /// Set the state of parameter `index` (`numel` elements).
    fn insert(&mut self, index: usize, numel: usize, state: S) {
        if self.slots.len() <= index {
            self.slots.resize_with(index + 1, || None);
        }
        self.slots[index] = Some(Slot { numel, state });
    }
}
