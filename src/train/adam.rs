//! Adam as `torch.optim.Adam` (no weight decay, no amsgrad), updating
//! parameter leaves outside the graph with `Tensor::assign`. One fused pass
//! per parameter: `adam_step` of kernels/elementwise.cu on `Cuda`/`Sim`,
//! its twin [`adam_update_host`] on the CPU.
//!
//! Per parameter, at its own step `t` (a parameter without a gradient in a
//! step is skipped and its `t` does not advance, as in torch):
//! `m ← β1·m + (1−β1)·g`, `v ← β2·v + (1−β2)·g²`,
//! `p ← p − lr/(1−β1^t) · m / (sqrt(v)/sqrt(1−β2^t) + ε)`.

use crate::backend::cuda::elementwise::{self as cuda, AdamScalars};
use crate::device::Device;
use crate::error::{invalid, Error, Result};
use crate::nn::StateDict;
use crate::tensor::{Storage, Tensor};

/// Adam hyperparameters. StyleGAN2: betas (0, 0.99), eps 1e-8.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub lr: f32,
    pub betas: (f32, f32),
    pub eps: f32,
}

impl AdamConfig {
    /// The StyleGAN2 optimizer at learning rate `lr`.
    pub fn stylegan2(lr: f32) -> AdamConfig {
        AdamConfig {
            lr,
            betas: (0.0, 0.99),
            eps: 1e-8,
        }
    }

    /// Official lazy regularization: with a regularizer every `interval`
    /// steps, `mb_ratio = interval / (interval + 1)` scales the learning rate
    /// and is the exponent of the betas. `interval` 0 leaves them unchanged.
    pub fn lazy(self, interval: usize) -> AdamConfig {
        if interval == 0 {
            return self;
        }
        let r = interval as f32 / (interval as f32 + 1.0);
        AdamConfig {
            lr: self.lr * r,
            betas: (self.betas.0.powf(r), self.betas.1.powf(r)),
            eps: self.eps,
        }
    }

    fn validate(&self) -> Result<()> {
        let (b1, b2) = self.betas;
        if !(self.lr.is_finite() && self.lr >= 0.0) {
            return invalid("adam", format!("learning rate {} must be ≥ 0", self.lr));
        }
        if !((0.0..1.0).contains(&b1) && (0.0..1.0).contains(&b2)) {
            return invalid("adam", format!("betas ({b1}, {b2}) must lie in [0, 1)"));
        }
        if !(self.eps.is_finite() && self.eps > 0.0) {
            return invalid("adam", format!("eps {} must be positive", self.eps));
        }
        Ok(())
    }
}

/// Adam over named parameters; moments are created at a parameter's first step.
pub struct Adam {
    pub config: AdamConfig,
    params: Vec<(String, Tensor)>,
    m: Vec<Option<Tensor>>,
    v: Vec<Option<Tensor>>,
    steps: Vec<u64>,
}

impl Adam {
    pub fn new(params: Vec<(String, Tensor)>, config: AdamConfig) -> Result<Adam> {
        config.validate()?;
        let n = params.len();
        Ok(Adam {
            config,
            params,
            m: vec![None; n],
            v: vec![None; n],
            steps: vec![0; n],
        })
    }

    pub fn params(&self) -> &[(String, Tensor)] {
        &self.params
    }

    /// The parameter tensors (to pass to `grad`).
    pub fn tensors(&self) -> Vec<Tensor> {
        self.params.iter().map(|(_, t)| t.clone()).collect()
    }

    /// Steps taken by each parameter.
    pub fn steps(&self) -> &[u64] {
        &self.steps
    }

    /// One update with `grads[i]` for parameter `i` (`None`: skipped).
    /// Gradients are sanitized first as the official loop does
    /// (NaN → 0, ±inf → ±1e5).
    pub fn step(&mut self, grads: &[Option<Tensor>]) -> Result<()> {
        if grads.len() != self.params.len() {
            return invalid(
                "adam",
                format!(
                    "{} gradients for {} parameters",
                    grads.len(),
                    self.params.len()
                ),
            );
        }
        let _guard = crate::no_grad();
        let AdamConfig {
            lr,
            betas: (b1, b2),
            eps,
        } = self.config;
        for (i, g) in grads.iter().enumerate() {
            let Some(g) = g else { continue };
            let (name, p) = &self.params[i];
            if g.shape() != p.shape() {
                return Err(Error::Shape {
                    op: "adam",
                    msg: format!("gradient {} for parameter {name} {}", g.shape(), p.shape()),
                });
            }
            let device = Tensor::same_device("adam", &[p, g])?;
            self.steps[i] += 1;
            let t = self.steps[i] as f64;
            let k = AdamScalars {
                b1,
                b2,
                step_size: (lr as f64 / (1.0 - (b1 as f64).powf(t))) as f32,
                inv_sqrt_bc2: (1.0 / (1.0 - (b2 as f64).powf(t)).sqrt()) as f32,
                eps,
            };
            let (ps, gs) = (p.storage(), g.storage());
            let state = match (&self.m[i], &self.v[i]) {
                (Some(m), Some(v)) => Some((m.storage(), v.storage())),
                _ => None,
            };
            let (pn, mn, vn) = match device {
                Device::Cpu => {
                    let st = match &state {
                        Some((m, v)) => Some((m.host()?, v.host()?)),
                        None => None,
                    };
                    let (pn, mn, vn) = adam_update_host(ps.host()?, st, gs.host()?, k);
                    (Storage::Cpu(pn), Storage::Cpu(mn), Storage::Cpu(vn))
                }
                Device::Cuda(_) | Device::Sim => cuda::adam_step(
                    &ps,
                    state.as_ref().map(|(m, v)| (&**m, &**v)),
                    &gs,
                    p.numel(),
                    device,
                    k,
                )?,
            };
            let shape = p.shape().clone();
            p.assign(&Tensor::from_device_storage(pn, shape.clone(), device))?;
            self.m[i] = Some(Tensor::from_device_storage(mn, shape.clone(), device));
            self.v[i] = Some(Tensor::from_device_storage(vn, shape, device));
        }
        Ok(())
    }

    /// The moments as `m.<name>`, `v.<name>` (parameters that took a step).
    pub fn state_dict(&self) -> StateDict {
        let mut sd = StateDict::new();
        for (i, (name, _)) in self.params.iter().enumerate() {
            if let (Some(m), Some(v)) = (&self.m[i], &self.v[i]) {
                sd.insert(format!("m.{name}"), m.clone());
                sd.insert(format!("v.{name}"), v.clone());
            }
        }
        sd
    }

    /// Restores moments (from [`Adam::state_dict`]) and per-parameter steps
    /// (in parameter order). A parameter with a step count needs its moments.
    pub fn load_state(&mut self, sd: &StateDict, steps: &[u64]) -> Result<()> {
        if steps.len() != self.params.len() {
            return Err(Error::Io(format!(
                "optimizer state has {} step counts for {} parameters",
                steps.len(),
                self.params.len()
            )));
        }
        let mut m = vec![None; self.params.len()];
        let mut v = vec![None; self.params.len()];
        for (i, (name, p)) in self.params.iter().enumerate() {
            if steps[i] == 0 {
                continue;
            }
            for (slot, key) in [(&mut m[i], "m"), (&mut v[i], "v")] {
                let t = sd
                    .get(&format!("{key}.{name}"))
                    .ok_or_else(|| Error::Io(format!("optimizer state: no '{key}.{name}'")))?;
                if t.shape() != p.shape() {
                    return Err(Error::Io(format!(
                        "optimizer state: '{key}.{name}' is {}, the parameter {}",
                        t.shape(),
                        p.shape()
                    )));
                }
                *slot = Some(t.to_device(p.device())?.detach());
            }
        }
        self.m = m;
        self.v = v;
        self.steps = steps.to_vec();
        Ok(())
    }
}

/// The CPU twin of the `adam_step` kernel: `(p', m', v')` from `p`, the
/// moments (`None` on the first step) and the gradient, with the kernel's
/// operation order.
pub(crate) fn adam_update_host(
    p: &[f32],
    state: Option<(&[f32], &[f32])>,
    g: &[f32],
    k: AdamScalars,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let n = p.len();
    let (mut pn, mut mn, mut vn) = (vec![0f32; n], vec![0f32; n], vec![0f32; n]);
    for i in 0..n {
        // nan_to_num: NaN → 0, ±inf → ±1e5.
        let gi = if g[i].is_nan() {
            0.0
        } else {
            g[i].clamp(-1e5, 1e5)
        };
        let (m0, v0) = state.map_or((0.0, 0.0), |(m, v)| (k.b1 * m[i], k.b2 * v[i]));
        let mi = m0 + (1.0 - k.b1) * gi;
        let vi = v0 + (1.0 - k.b2) * (gi * gi);
        mn[i] = mi;
        vn[i] = vi;
        pn[i] = p[i] - (mi / (vi.sqrt() * k.inv_sqrt_bc2 + k.eps)) * k.step_size;
    }
    (pn, mn, vn)
}
