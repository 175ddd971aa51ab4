//! An optimizer's state as plain numbers ([`OptimizerState`]), so that a checkpoint taken at the
//! end of an epoch resumes training exactly where it stopped: the same moments, momentum
//! buffers and step counts, to the bit.

use std::collections::BTreeMap;

use dfdx::prelude::*;

use super::{device_error, Flat};
use crate::{NnError, Param};

/// An optimizer's per-parameter state. Keys are `<parameter index>.<buffer>` (`3.m`, `3.v`,
/// `0.momentum_buffer`) for tensors and `<parameter index>.<counter>` (`3.step`) for counts;
/// parameters that were never updated have no entry (their state is created on their first
/// update, as before).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OptimizerState {
    /// The optimizer's name (`adam`, `sgd`, `adadelta`): a state is only loaded into its own
    /// kind.
    pub optimizer: String,
    pub tensors: BTreeMap<String, Vec<f32>>,
    pub counters: BTreeMap<String, u64>,
}

impl OptimizerState {
    pub(crate) fn new(optimizer: &str) -> Self {
        OptimizerState {
            optimizer: optimizer.to_string(),
            ..Default::default()
        }
    }

    /// The parameter indices that have any entry, ascending.
    pub(crate) fn indices(&self) -> Vec<usize> {
        let mut out: Vec<usize> = self
            .tensors
            .keys()
            .chain(self.counters.keys())
            .filter_map(|k| k.split_once('.').and_then(|(i, _)| i.parse().ok()))
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }

    pub(crate) fn put<D: Device<f32>>(&mut self, index: usize, buffer: &str, t: &Flat<D>) {
        self.tensors.insert(format!("{index}.{buffer}"), t.as_vec());
    }

    /// The tensor `buffer` of parameter `index`, as a tensor on the parameter's device, checked
    /// against the parameter's length.
    pub(crate) fn take<D: Device<f32>>(
        &self,
        params: &[Param<D>],
        index: usize,
        buffer: &str,
    ) -> Result<Flat<D>, NnError> {
        let p = self.param(params, index)?;
        let key = format!("{index}.{buffer}");
        let values = self.tensors.get(&key).ok_or_else(|| {
            self.bad(format!(
                "the state of parameter #{index} `{}` has no `{buffer}`",
                p.name
            ))
        })?;
        let numel = p.value.shape().0;
        if values.len() != numel {
            return Err(NnError::Shape {
                what: format!("saved optimizer state `{key}` of parameter `{}`", p.name),
                expected: format!("{numel} elements"),
                found: format!("{} elements", values.len()),
            });
        }
        p.value
            .device()
            .try_tensor_from_vec(values.clone(), (numel,))
            .map_err(device_error)
    }

    pub(crate) fn counter(&self, index: usize, name: &str) -> Result<u64, NnError> {
        self.counters
            .get(&format!("{index}.{name}"))
            .copied()
            .ok_or_else(|| self.bad(format!("parameter #{index} has no `{name}` count")))
    }

    pub(crate) fn param<'p, D: Device<f32>>(
        &self,
        params: &'p [Param<D>],
        index: usize,
    ) -> Result<&'p Param<D>, NnError> {
        params.get(index).ok_or_else(|| {
            self.bad(format!(
                "it has a state for parameter #{index} but the network has {} parameters",
                params.len()
            ))
        })
    }

    /// Checks that this is a state of optimizer `name`.
    pub(crate) fn expect(&self, name: &str) -> Result<(), NnError> {
        if self.optimizer == name {
            Ok(())
        } else {
            Err(self.bad(format!(
                "it is the state of `{}`, not of `{name}`",
                self.optimizer
            )))
        }
    }

    fn bad(&self, reason: String) -> NnError {
        NnError::Optimizer {
            optimizer: self.optimizer.clone(),
            reason: format!("cannot load the saved optimizer state: {reason}"),
        }
    }
}
