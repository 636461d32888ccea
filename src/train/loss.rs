//! The StyleGAN2 training loss, as the official `training/loss.py`
//! (`StyleGAN2Loss`): non-saturating logistic loss, R1 regularization of D on
//! real images and path-length regularization of G, run in four phases
//! (`Gmain`, `Greg`, `Dmain`, `Dreg`) with lazy regularization.
//!
//! The per-sample pieces ([`g_main_loss`], [`d_gen_loss`], [`d_real_loss`],
//! [`r1_penalty`], [`path_lengths`], [`StyleGAN2Loss::pl_penalty`]) are public
//! so they can be checked one by one against the official outputs;
//! [`StyleGAN2Loss::phase_loss`] composes them into the scalar loss of a phase.

use crate::augment::AugmentPipe;
use crate::autograd;
use crate::error::{invalid, Error, Result};
use crate::model::{mapping_with_mixing, Discriminator, Generator, SynthesisOptions};
use crate::nn::{Ctx, NoiseMode};
use crate::ops::modconv::ModConvPath;
use crate::tensor::Tensor;

/// A training phase (official names). Each step runs `Gmain` and `Dmain`;
/// `Greg` every `G_reg_interval` steps and `Dreg` every `D_reg_interval`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Phase {
    /// G: maximize D's logits of generated images.
    Gmain,
    /// G: path-length regularization.
    Greg,
    /// D: minimize logits of generated images, maximize those of reals.
    Dmain,
    /// D: R1 regularization on reals.
    Dreg,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Gmain => "Gmain",
            Phase::Greg => "Greg",
            Phase::Dmain => "Dmain",
            Phase::Dreg => "Dreg",
        }
    }

    /// Whether the phase trains G (else D).
    pub fn is_generator(self) -> bool {
        matches!(self, Phase::Gmain | Phase::Greg)
    }
}

/// Hyperparameters of [`StyleGAN2Loss`] (official defaults by `Default`,
/// except `r1_gamma`, which every preset sets).
#[derive(Clone, Debug, PartialEq)]
pub struct LossOptions {
    /// Probability of mixing two latents' styles in a generated image.
    pub style_mixing_prob: f32,
    /// R1 weight γ: the penalty is `γ/2 · ‖∇_x D(x)‖²`.
    pub r1_gamma: f32,
    /// Path-length batch = batch / `pl_batch_shrink`.
    pub pl_batch_shrink: usize,
    /// Decay of the running mean path length.
    pub pl_decay: f32,
    /// Path-length weight (0 disables the `Greg` phase).
    pub pl_weight: f32,
    /// Synthesis noise while training (official: random).
    pub noise_mode: NoiseMode,
    /// How G's modulated convolutions run (`Auto`: fused where kernels run).
    pub modconv: ModConvPath,
}

impl Default for LossOptions {
    fn default() -> Self {
        LossOptions {
            style_mixing_prob: 0.9,
            r1_gamma: 10.0,
            pl_batch_shrink: 2,
            pl_decay: 0.01,
            pl_weight: 2.0,
            noise_mode: NoiseMode::Random,
            modconv: ModConvPath::Auto,
        }
    }
}

/// The scalar a phase backpropagates (already `mean · gain`) and the
/// statistics it reports, as `(name, scalar tensor)` without graph.
pub struct PhaseOutput {
    pub loss: Tensor,
    pub stats: Vec<(&'static str, Tensor)>,
}

/// Official `StyleGAN2Loss`, holding the running mean path length and the
/// augment pipeline D's inputs go through.
pub struct StyleGAN2Loss {
    pub opts: LossOptions,
    /// Running mean of the path lengths (a scalar, no graph).
    pub pl_mean: Tensor,
    /// ADA: every image D sees (reals and fakes, every phase) is augmented
    /// with this pipeline at probability `augment_p`, as the official
    /// `run_D`; `None`: no augmentation.
    pub augment: Option<AugmentPipe>,
    pub augment_p: f32,
}

/// `softplus(−D(G(z)))` per sample: the non-saturating G loss
/// (`−log sigmoid(logits)`).
pub fn g_main_loss(gen_logits: &Tensor) -> Result<Tensor> {
    gen_logits.neg()?.softplus()
}

/// `softplus(D(G(z)))` per sample: D's loss on generated images
/// (`−log(1 − sigmoid(logits))`).
pub fn d_gen_loss(gen_logits: &Tensor) -> Result<Tensor> {
    gen_logits.softplus()
}

/// `softplus(−D(x))` per sample: D's loss on real images.
pub fn d_real_loss(real_logits: &Tensor) -> Result<Tensor> {
    real_logits.neg()?.softplus()
}

/// R1 penalty per sample, `‖∇_x Σ D(x)‖²` over `[C, H, W]` → `[N]`, with a
/// graph (double backprop): `real_img` must be a leaf with `requires_grad`
/// from which `real_logits` were computed.
pub fn r1_penalty(real_logits: &Tensor, real_img: &Tensor) -> Result<Tensor> {
    let grads = autograd::grad(
        &[real_logits.sum_all()?],
        std::slice::from_ref(real_img),
        None,
        true,
    )?;
    let Some(g) = grads.into_iter().next().flatten() else {
        return invalid(
            "r1_penalty",
            "the logits do not depend on the images (the images must be a leaf with requires_grad)",
        );
    };
    g.square()?.sum(&[1, 2, 3], false)
}

/// Path lengths per sample, `sqrt(mean_ws Σ_w (∂ Σ(img · noise) / ∂ws)²)` →
/// `[N]`, with a graph; `pl_noise` is `randn(img) / sqrt(H·W)`.
pub fn path_lengths(gen_img: &Tensor, gen_ws: &Tensor, pl_noise: &Tensor) -> Result<Tensor> {
    let out = gen_img.mul(pl_noise)?.sum_all()?;
    let grads = autograd::grad(&[out], std::slice::from_ref(gen_ws), None, true)?;
    let Some(g) = grads.into_iter().next().flatten() else {
        return invalid("path_lengths", "the images do not depend on ws");
    };
    g.square()?.sum(&[2], false)?.mean(&[1], false)?.sqrt()
}

/// Official `pl_noise`: standard normal like `img`, divided by `sqrt(H·W)`.
pub fn pl_noise(img: &Tensor, rng: &mut crate::Rng) -> Result<Tensor> {
    let d = img.dims();
    let hw = (d[2] * d[3]) as f32;
    Tensor::randn(d.to_vec(), rng, img.device()).scale(1.0 / hw.sqrt())
}

fn mean_of(x: &Tensor) -> Result<Tensor> {
    let _g = autograd::no_grad();
    x.detach().mean_all()
}

impl StyleGAN2Loss {
    pub fn new(opts: LossOptions, device: crate::Device) -> Result<StyleGAN2Loss> {
        if !(opts.r1_gamma.is_finite() && opts.r1_gamma >= 0.0) {
            return invalid("loss", format!("r1_gamma {} must be ≥ 0", opts.r1_gamma));
        }
        if !(opts.pl_weight.is_finite() && opts.pl_weight >= 0.0) {
            return invalid("loss", format!("pl_weight {} must be ≥ 0", opts.pl_weight));
        }
        if !(0.0..=1.0).contains(&opts.style_mixing_prob) {
            return invalid(
                "loss",
                format!(
                    "style_mixing_prob {} must lie in [0, 1]",
                    opts.style_mixing_prob
                ),
            );
        }
        if !(0.0..=1.0).contains(&opts.pl_decay) || opts.pl_batch_shrink == 0 {
            return invalid(
                "loss",
                format!(
                    "pl_decay {} must lie in [0, 1] and pl_batch_shrink {} be ≥ 1",
                    opts.pl_decay, opts.pl_batch_shrink
                ),
            );
        }
        Ok(StyleGAN2Loss {
            opts,
            pl_mean: Tensor::scalar(0.0, device),
            augment: None,
            augment_p: 0.0,
        })
    }

    /// Whether `phase` does anything (a zero weight disables a regularizer).
    pub fn phase_enabled(&self, phase: Phase) -> bool {
        match phase {
            Phase::Greg => self.opts.pl_weight != 0.0,
            Phase::Dreg => self.opts.r1_gamma != 0.0,
            Phase::Gmain | Phase::Dmain => true,
        }
    }

    /// Official `run_G`: mapping in training mode (updates `w_avg`), style
    /// mixing with probability `style_mixing_prob`, synthesis with the
    /// training noise. Returns `(images, ws)`.
    pub fn run_g(
        &self,
        g: &Generator,
        z: &Tensor,
        c: Option<&Tensor>,
        rng: &mut crate::Rng,
    ) -> Result<(Tensor, Tensor)> {
        let ws = mapping_with_mixing(g, z, c, self.opts.style_mixing_prob, true, rng)?;
        let opts = SynthesisOptions {
            noise_mode: self.opts.noise_mode,
            path: self.opts.modconv,
            ..Default::default()
        };
        let img = g.synthesis(&ws, opts, &mut Ctx::with_rng(rng))?;
        Ok((img, ws))
    }

    /// Official `run_D`: the augment pipeline (when on, with parameters
    /// drawn from `rng`), then D. Differentiable w.r.t. `img` to any order.
    pub fn run_d(
        &self,
        d: &Discriminator,
        img: &Tensor,
        c: Option<&Tensor>,
        rng: &mut crate::Rng,
    ) -> Result<Tensor> {
        match &self.augment {
            Some(pipe) => {
                let img = pipe.augment(img, self.augment_p, rng)?;
                d.forward(&img, c, &mut Ctx::new())
            }
            None => d.forward(img, c, &mut Ctx::new()),
        }
    }

    /// Path-length penalty `(lengths − pl_mean')²` per sample, where
    /// `pl_mean' = lerp(pl_mean, mean(lengths), pl_decay)` keeps its graph
    /// (as the official code) and becomes the new running mean.
    pub fn pl_penalty(&mut self, lengths: &Tensor) -> Result<Tensor> {
        let mean = self
            .pl_mean
            .lerp_scalar(&lengths.mean_all()?, self.opts.pl_decay)?;
        self.pl_mean = mean.detach();
        lengths.sub(&mean)?.square()
    }

    /// The loss of one phase for one batch, `mean · gain` (the official
    /// `accumulate_gradients` backpropagates exactly this), with its
    /// statistics. `gen_z [N, z_dim]` are the phase's latents, `real_img`
    /// the reals in [-1, 1]; `gain` is the phase interval. Differentiate
    /// `loss` w.r.t. the trained network's parameters only.
    #[allow(clippy::too_many_arguments)]
    pub fn phase_loss(
        &mut self,
        phase: Phase,
        g: &Generator,
        d: &Discriminator,
        real_img: &Tensor,
        real_c: Option<&Tensor>,
        gen_z: &Tensor,
        gen_c: Option<&Tensor>,
        gain: f32,
        rng: &mut crate::Rng,
    ) -> Result<PhaseOutput> {
        match phase {
            Phase::Gmain => {
                let (img, _) = self.run_g(g, gen_z, gen_c, rng)?;
                let logits = self.run_d(d, &img, gen_c, rng)?;
                let loss = g_main_loss(&logits)?.mean_all()?;
                Ok(PhaseOutput {
                    stats: vec![
                        ("G_loss", mean_of(&loss)?),
                        ("scores_fake", mean_of(&logits)?),
                    ],
                    loss: loss.scale(gain)?,
                })
            }
            Phase::Greg => {
                let n = (gen_z.dims()[0] / self.opts.pl_batch_shrink).max(1);
                let z = gen_z.narrow(0, 0, n)?;
                let c = gen_c.map(|c| c.narrow(0, 0, n)).transpose()?;
                let (img, ws) = self.run_g(g, &z, c.as_ref(), rng)?;
                let noise = pl_noise(&img, rng)?;
                let lengths = path_lengths(&img, &ws, &noise)?;
                let penalty = self.pl_penalty(&lengths)?;
                let loss = penalty.scale(self.opts.pl_weight)?.mean_all()?;
                Ok(PhaseOutput {
                    stats: vec![("pl_penalty", mean_of(&penalty)?)],
                    loss: loss.scale(gain)?,
                })
            }
            Phase::Dmain => {
                let img = {
                    // G is not trained here: no graph through it.
                    let _g = autograd::no_grad();
                    self.run_g(g, gen_z, gen_c, rng)?.0
                };
                let gen_logits = self.run_d(d, &img, gen_c, rng)?;
                let real_logits = self.run_d(d, &real_img.detach(), real_c, rng)?;
                let loss = d_gen_loss(&gen_logits)?
                    .mean_all()?
                    .add(&d_real_loss(&real_logits)?.mean_all()?)?;
                Ok(PhaseOutput {
                    stats: vec![
                        ("D_loss", mean_of(&loss)?),
                        ("scores_fake", mean_of(&gen_logits)?),
                        ("scores_real", mean_of(&real_logits)?),
                        // Official `Loss/signs/real`: ADA's overfitting measure r_t.
                        ("signs_real", mean_of(&real_logits.detach().sign()?)?),
                    ],
                    loss: loss.scale(gain)?,
                })
            }
            Phase::Dreg => {
                let x = real_img.detach();
                x.set_requires_grad(true)?;
                let logits = self.run_d(d, &x, real_c, rng)?;
                let penalty = r1_penalty(&logits, &x)?;
                let loss = penalty.scale(self.opts.r1_gamma / 2.0)?.mean_all()?;
                Ok(PhaseOutput {
                    stats: vec![
                        ("r1_penalty", mean_of(&penalty)?),
                        // The official loss reports these signs in Dr1 too.
                        ("signs_real", mean_of(&logits.detach().sign()?)?),
                    ],
                    loss: loss.scale(gain)?,
                })
            }
        }
    }

    /// The running mean path length as a number.
    pub fn pl_mean_value(&self) -> Result<f32> {
        self.pl_mean.to_scalar()
    }

    /// Sets the running mean path length (resuming).
    pub fn set_pl_mean(&mut self, value: f32) -> Result<()> {
        if !value.is_finite() {
            return Err(Error::Invalid {
                op: "pl_mean",
                msg: format!("{value} is not finite"),
            });
        }
        self.pl_mean = Tensor::scalar(value, self.pl_mean.device());
        Ok(())
    }
}
