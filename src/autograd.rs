//! Reverse-mode autograd with higher-order gradients.
//!
//! Every backward rule is written with differentiable ops of this crate, so
//! with `create_graph` the backward pass records a graph of its own and can be
//! differentiated again (R1 and path-length regularization need that).

use crate::error::{Error, Result};
use crate::tensor::Tensor;
use std::cell::Cell;
use std::collections::{HashMap, HashSet};

/// The backward rule of an op that produced one tensor.
pub(crate) trait Backward: Send + Sync {
    fn name(&self) -> &'static str;
    /// Whether the op takes inputs of `dtype`: F32 by default. Checked once
    /// for every op where its result is made (`Tensor::from_op_storage`);
    /// an op that takes a 2-byte dtype reads its values widened to f32.
    fn supports(&self, dtype: crate::tensor::DType) -> bool {
        dtype == crate::tensor::DType::F32
    }
    /// Gradients w.r.t. each of `inputs` given the gradient `grad` of `output`
    /// (`None` where an input gets none). Written with differentiable ops.
    fn backward(
        &self,
        inputs: &[Tensor],
        output: &Tensor,
        grad: &Tensor,
    ) -> Result<Vec<Option<Tensor>>>;
}

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Restores the previous grad mode when dropped.
pub struct GradModeGuard {
    prev: bool,
}

impl Drop for GradModeGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.prev));
    }
}

fn set_grad_enabled(on: bool) -> GradModeGuard {
    let prev = GRAD_ENABLED.with(|g| g.replace(on));
    GradModeGuard { prev }
}

/// Ops run while the guard lives record no graph (on this thread).
pub fn no_grad() -> GradModeGuard {
    set_grad_enabled(false)
}

/// Gradients of `outputs` w.r.t. `inputs`, like `torch.autograd.grad`.
///
/// `grad_outputs` gives the upstream gradient of each output; `None` means
/// ones (for scalar losses). An input that no output depends on gets `None`.
/// With `create_graph` the returned gradients are themselves differentiable.
pub fn grad(
    outputs: &[Tensor],
    inputs: &[Tensor],
    grad_outputs: Option<&[Tensor]>,
    create_graph: bool,
) -> Result<Vec<Option<Tensor>>> {
    let seeds: Vec<Tensor> = match grad_outputs {
        Some(g) => {
            if g.len() != outputs.len() {
                return Err(Error::Invalid {
                    op: "grad",
                    msg: format!("{} grad_outputs for {} outputs", g.len(), outputs.len()),
                });
            }
            for (o, g) in outputs.iter().zip(g) {
                if o.shape() != g.shape() {
                    return Err(Error::Shape {
                        op: "grad",
                        msg: format!("grad_output {} for output {}", g.shape(), o.shape()),
                    });
                }
            }
            g.to_vec()
        }
        None => outputs
            .iter()
            .map(|o| Tensor::ones(o.shape(), o.device()))
            .collect(),
    };

    let input_ids: HashSet<u64> = inputs.iter().map(Tensor::id).collect();
    let (order, relevant) = topo_order(outputs, &input_ids);

    let _mode = set_grad_enabled(create_graph);
    let mut grads: HashMap<u64, Tensor> = HashMap::new();
    for (o, g) in outputs.iter().zip(seeds) {
        if relevant.contains(&o.id()) {
            accumulate(&mut grads, o.id(), g)?;
        }
    }
    let mut found: HashMap<u64, Tensor> = HashMap::new();
    // Reverse post-order: a node's gradient is complete before it is used.
    for t in order.iter().rev() {
        if !relevant.contains(&t.id()) {
            continue;
        }
        let Some(g) = grads.remove(&t.id()) else {
            continue;
        };
        if input_ids.contains(&t.id()) {
            found.insert(t.id(), g.clone());
        }
        let Some(gf) = &t.0.grad_fn else { continue };
        let in_grads = gf.op.backward(&gf.inputs, t, &g)?;
        if in_grads.len() != gf.inputs.len() {
            return Err(Error::Internal(format!(
                "{}: backward returned {} gradients for {} inputs",
                gf.op.name(),
                in_grads.len(),
                gf.inputs.len()
            )));
        }
        for (inp, ig) in gf.inputs.iter().zip(in_grads) {
            let Some(ig) = ig else { continue };
            if !relevant.contains(&inp.id()) {
                continue;
            }
            if ig.shape() != inp.shape() {
                return Err(Error::Internal(format!(
                    "{}: gradient of shape {} for input of shape {}",
                    gf.op.name(),
                    ig.shape(),
                    inp.shape()
                )));
            }
            accumulate(&mut grads, inp.id(), ig)?;
        }
    }
    Ok(inputs.iter().map(|i| found.get(&i.id()).cloned()).collect())
}

fn accumulate(grads: &mut HashMap<u64, Tensor>, id: u64, g: Tensor) -> Result<()> {
    let sum = match grads.remove(&id) {
        Some(prev) => sum_grads(&prev, &g)?,
        None => g,
    };
    grads.insert(id, sum);
    Ok(())
}

/// `a + b` of two gradients of one tensor. Gradients of a 2-byte tensor
/// (an FP16 block's activation read by two layers) are of its dtype: summed
/// in FP32 and rounded once, as torch accumulates FP16 gradients.
fn sum_grads(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    use crate::tensor::DType;
    let dtype = a.dtype();
    if dtype == DType::F32 && b.dtype() == DType::F32 {
        return a.add(b);
    }
    a.to_dtype(DType::F32)?
        .add(&b.to_dtype(DType::F32)?)?
        .to_dtype(dtype)
}

/// Post-order of the nodes reachable from `outputs` through tensors that need
/// gradients, and the set of those from which some input is reachable (only
/// they are visited by the backward pass). Iterative: graphs can be deep.
fn topo_order(outputs: &[Tensor], input_ids: &HashSet<u64>) -> (Vec<Tensor>, HashSet<u64>) {
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    let mut stack: Vec<(Tensor, bool)> = outputs
        .iter()
        .filter(|o| o.needs_grad())
        .map(|o| (o.clone(), false))
        .collect();
    while let Some((t, expanded)) = stack.pop() {
        if expanded {
            order.push(t);
            continue;
        }
        if !seen.insert(t.id()) {
            continue;
        }
        stack.push((t.clone(), true));
        if let Some(gf) = &t.0.grad_fn {
            for i in &gf.inputs {
                if i.needs_grad() && !seen.contains(&i.id()) {
                    stack.push((i.clone(), false));
                }
            }
        }
    }
    // Parents come before children in `order`, so one forward sweep settles relevance.
    let mut relevant = HashSet::new();
    for t in &order {
        let reaches = input_ids.contains(&t.id())
            || t.0
                .grad_fn
                .as_ref()
                .is_some_and(|gf| gf.inputs.iter().any(|i| relevant.contains(&i.id())));
        if reaches {
            relevant.insert(t.id());
        }
    }
    (order, relevant)
}

impl Tensor {
    /// Backpropagates a scalar loss and accumulates the gradient into every
    /// leaf that requires it (read with `Tensor::grad`). Records no graph.
    pub fn backward(&self) -> Result<()> {
        if self.numel() != 1 {
            return Err(Error::Shape {
                op: "backward",
                msg: format!("backward() needs a scalar loss, got shape {}; use autograd::grad with grad_outputs", self.shape()),
            });
        }
        let leaves = self.leaves();
        let grads = grad(std::slice::from_ref(self), &leaves, None, false)?;
        let _g = no_grad();
        for (leaf, g) in leaves.iter().zip(grads) {
            let Some(g) = g else { continue };
            let total = match leaf.grad() {
                Some(prev) => sum_grads(&prev, &g)?,
                None => g,
            };
            leaf.set_grad(Some(total));
        }
        Ok(())
    }

    /// The leaves with `requires_grad` that this tensor depends on.
    fn leaves(&self) -> Vec<Tensor> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut stack = vec![self.clone()];
        while let Some(t) = stack.pop() {
            if !seen.insert(t.id()) {
                continue;
            }
            match &t.0.grad_fn {
                Some(gf) => stack.extend(gf.inputs.iter().filter(|i| i.needs_grad()).cloned()),
                None if t.requires_grad() => out.push(t.clone()),
                None => {}
            }
        }
        out
    }
}
