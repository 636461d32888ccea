//! The reference training loop of StyleGAN2 (official
//! `training/training_loop.py` without augmentation and multi-GPU):
//! per step `Gmain`, `Greg` every 4 steps, `Dmain`, `Dreg` every 16, each
//! with its own latents and Adam update; `w_avg` tracking in the mapping
//! network; the G EMA; snapshots of a fixed-seed image grid and of the
//! networks and optimizer state for `stylegan2 generate` and for resuming.
//!
//! Randomness is a function of the seed and the step, and the data order a
//! function of the seed and the images shown, so a resumed run continues
//! as the uninterrupted one would.

pub mod adam;
pub mod checkpoint;
pub mod ema;
pub mod loss;
pub mod plot;

pub use adam::{Adam, AdamConfig};
pub use checkpoint::{TrainState, STATE_KEY};
pub use ema::{ema_beta, update_ema};
pub use loss::{LossOptions, Phase, PhaseOutput, StyleGAN2Loss};

use crate::augment::{AdaController, AugMode, AugmentPipe};
use crate::data::{self, Loader};
use crate::device::Device;
use crate::error::{invalid, Error, Result};
use crate::metrics::swd;
use crate::model::cli::{grid, latent, save_png, to_images};
use crate::model::{Discriminator, Generator, ModelConfig, SynthesisOptions, Truncation};
use crate::nn::{Ctx, Module, NoiseMode};
use crate::ops::modconv::ModConvPath;
use crate::tensor::Tensor;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Options of a training run. `None` fields come from the preset's
/// training defaults (or, when resuming, from the snapshot's config).
#[derive(Clone, Debug)]
pub struct TrainOptions {
    /// Network preset (see `model::PRESETS`); default `tiny`.
    pub preset: Option<String>,
    /// Image resolution; default: the dataset's (32 for synthetic data).
    pub resolution: Option<usize>,
    /// `synthetic`, `synthetic:N`, or a directory / `.zip` of PNG/JPEG images.
    pub data: String,
    /// Also train on x-flipped images.
    pub mirror: bool,
    pub batch: Option<usize>,
    /// Length of training in thousands of real images shown (total, counting
    /// those before a resume).
    pub kimg: f64,
    /// Adam learning rates of G and D.
    pub glr: Option<f32>,
    pub dlr: Option<f32>,
    /// R1 weight.
    pub gamma: Option<f32>,
    /// G EMA half-life in kimg.
    pub ema_kimg: Option<f32>,
    /// Snapshot (image grid + network file) every this many kimg; 0: only
    /// at the start (images) and the end.
    pub snap_kimg: f64,
    /// Number of images in the snapshot grid (fixed seeds 0..grid).
    pub grid: usize,
    pub seed: u64,
    pub device: Device,
    /// Runs go to `<outdir>/<NNNNN>-<description>` (numbered as the official
    /// `train.py` does), unless `run_dir` names the directory itself.
    pub outdir: PathBuf,
    pub run_dir: Option<PathBuf>,
    /// A snapshot to continue (or any network file to start from). A
    /// network pickle starts a transfer run: its networks, fresh optimizer
    /// state, kimg 0, training defaults from `preset` (default `auto`).
    pub resume: Option<PathBuf>,
    /// Freeze-D (official `--freezed`): the first N layers of D are not
    /// trained (`DiscriminatorConfig::freeze_layers`).
    pub freezed: Option<usize>,
    /// Draw a progress bar and print status lines.
    pub progress: bool,
    /// Metrics computed with G_ema at each snapshot; `None`: `swd` when the
    /// images are at least `swd::MIN_RESOLUTION` pixels wide, else none
    /// (the CLI's default). `TrainOptions::default()` has none.
    pub metrics: Option<Vec<crate::metrics::Metric>>,
    /// Images per set for the metrics [default: `metrics::default_train_num`].
    pub metrics_num: Option<usize>,
    /// Conditional training (official `--cond`): the networks take the
    /// dataset's labels (`c_dim` = their size). Implied when resuming a
    /// conditional snapshot.
    pub cond: bool,
    /// How G's modulated convolutions run while training (`Auto`: the fused
    /// kernel on Cuda and Sim, the unfused composition on the CPU).
    pub modconv: ModConvPath,
    /// Skip dataset images that cannot be decoded (counted and reported)
    /// instead of refusing the dataset.
    pub skip_bad: bool,
    /// Discriminator augmentation (`--aug`); `None`: `ada` for image
    /// folders and zips, `noaug` for synthetic data.
    pub aug: Option<AugMode>,
    /// Augmentation probability (`--p`): fixed (`--aug fixed`, required) or
    /// initial (`--aug ada`, default 0).
    pub augment_p: Option<f32>,
    /// ADA target of `r_t = E[sign(D(real))]` (`--target`, default 0.6).
    pub ada_target: Option<f64>,
    /// Augment pipeline preset (`--augpipe`, default `bgc`).
    pub augpipe: Option<String>,
    /// ADA speed: kimg for p to move by 1 at most (`--ada-kimg`, official
    /// `ada_kimg`, default 500).
    pub ada_kimg: Option<f64>,
    /// Official `--fp32`: no mixed precision (`num_fp16_res = 0` and no
    /// `conv_clamp` in both networks), on any device.
    pub fp32: bool,
    /// Overrides the networks' `num_fp16_res` (both G and D); with a value
    /// above 0 a network without `conv_clamp` gets the official 256, which
    /// `train.py` pairs with it. `None`: the preset's (or the snapshot's).
    /// The FP16 blocks compute in FP16 on `Sim`/`Cuda`, in FP32 on the CPU.
    pub num_fp16_res: Option<usize>,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            preset: None,
            resolution: None,
            data: "synthetic".into(),
            mirror: false,
            batch: None,
            kimg: 16.0,
            glr: None,
            dlr: None,
            gamma: None,
            ema_kimg: None,
            snap_kimg: 1.0,
            grid: 32,
            seed: 0,
            device: Device::Cpu,
            outdir: PathBuf::from("training-runs"),
            run_dir: None,
            resume: None,
            freezed: None,
            progress: false,
            metrics: Some(Vec::new()),
            metrics_num: None,
            cond: false,
            modconv: ModConvPath::Auto,
            skip_bad: false,
            aug: None,
            augment_p: None,
            ada_target: None,
            augpipe: None,
            ada_kimg: None,
            fp32: false,
            num_fp16_res: None,
        }
    }
}

/// The augmentation of a run from its options: the pipeline and the ADA
/// controller (`None` for `noaug`). Checks that the flags fit together and
/// the images (`channels`, `res`) fit the pipeline.
fn augmentation(
    opts: &TrainOptions,
    channels: usize,
    res: usize,
) -> Result<Option<(AugmentPipe, AdaController)>> {
    let synthetic = crate::data::is_synthetic(&opts.data);
    let mode = opts.aug.unwrap_or(if synthetic {
        AugMode::NoAug
    } else {
        AugMode::Ada
    });
    let flag_needs = |flag: &str, modes: &str| {
        invalid(
            "train",
            format!(
                "{flag} applies to --aug {modes}; this run uses --aug {}",
                mode.name()
            ),
        )
    };
    if mode == AugMode::NoAug {
        if opts.augment_p.is_some() {
            return flag_needs("--p", "ada or fixed");
        }
        if opts.augpipe.is_some() {
            return flag_needs("--augpipe", "ada or fixed");
        }
    }
    if mode != AugMode::Ada && opts.ada_target.is_some() {
        return flag_needs("--target", "ada");
    }
    if mode != AugMode::Ada && opts.ada_kimg.is_some() {
        return flag_needs("--ada-kimg", "ada");
    }
    if mode == AugMode::NoAug {
        return Ok(None);
    }
    let p = match (mode, opts.augment_p) {
        (AugMode::Fixed, None) => {
            return invalid("train", "--aug fixed needs the probability --p");
        }
        (_, p) => p.unwrap_or(0.0),
    };
    let name = opts.augpipe.as_deref().unwrap_or("bgc");
    let pipe = AugmentPipe::preset(name)?;
    if pipe.color_on(channels) && channels != 1 && channels != 3 {
        return invalid(
            "train",
            format!("--augpipe {name} transforms colours, which needs 1 or 3 channels; the data has {channels}"),
        );
    }
    if pipe.imgfilter > 0.0 && res < 22 {
        return invalid(
            "train",
            format!("--augpipe {name} filters images with 43 taps, which needs at least 22×22 images; the data is {res}×{res}"),
        );
    }
    let mut ada = AdaController::new(mode == AugMode::Ada, p, opts.ada_target.unwrap_or(0.6))?;
    if let Some(k) = opts.ada_kimg {
        if !(k.is_finite() && k > 0.0) {
            return invalid("train", format!("--ada-kimg {k} must be a positive number"));
        }
        ada.ada_kimg = k;
    }
    Ok(Some((pipe, ada)))
}

/// Lazy regularization intervals (official `G_reg_interval`, `D_reg_interval`).
pub const G_REG_INTERVAL: usize = 4;
pub const D_REG_INTERVAL: usize = 16;

/// Running means of the phase statistics since the last report.
#[derive(Default, Clone, Debug)]
pub struct Stats {
    sums: Vec<(&'static str, f64, u64)>,
}

impl Stats {
    fn add(&mut self, name: &'static str, v: f64) {
        match self.sums.iter_mut().find(|(n, _, _)| *n == name) {
            Some(e) => {
                e.1 += v;
                e.2 += 1;
            }
            None => self.sums.push((name, v, 1)),
        }
    }

    /// The mean of `name` since the last reset.
    pub fn mean(&self, name: &str) -> Option<f64> {
        self.sums
            .iter()
            .find(|(n, _, _)| *n == name)
            .map(|&(_, s, c)| s / c as f64)
    }

    /// `(name, mean)` in first-seen order.
    pub fn means(&self) -> Vec<(&'static str, f64)> {
        self.sums
            .iter()
            .map(|&(n, s, c)| (n, s / c as f64))
            .collect()
    }
}

/// What a run did.
#[derive(Clone, Debug)]
pub struct TrainSummary {
    pub run_dir: PathBuf,
    /// The step counter at the end, a resumed snapshot's steps included.
    pub steps: u64,
    /// Images shown at the end, a resumed snapshot's included.
    pub cur_nimg: u64,
    /// The step counter and images shown when this run started (0 unless
    /// resumed).
    pub start_step: u64,
    pub start_nimg: u64,
    /// The last network snapshot written.
    pub last_snapshot: Option<PathBuf>,
    /// Means of the losses over the last report interval.
    pub last_stats: Vec<(&'static str, f64)>,
    /// Label size of the networks (0: unconditional).
    pub c_dim: usize,
}

/// A training run in progress.
pub struct Trainer {
    pub opts: TrainOptions,
    pub config: ModelConfig,
    pub g: Generator,
    pub d: Discriminator,
    pub g_ema: Generator,
    pub opt_g: Adam,
    pub opt_d: Adam,
    pub loss: StyleGAN2Loss,
    pub loader: Loader,
    pub batch: usize,
    pub ema_kimg: f32,
    pub ema_rampup: Option<f32>,
    /// Steps done.
    pub step: u64,
    /// Real images shown.
    pub cur_nimg: u64,
    pub run_dir: PathBuf,
    pub stats: Stats,
    /// Whether G and D take labels.
    pub cond: bool,
    /// ADA's state (`None`: no augmentation); the pipeline sits in `loss`.
    pub ada: Option<AdaController>,
    /// The snapshot grid: columns, the dataset image of each cell (reals)
    /// and, when conditional, each cell's label (one class per row).
    pub grid_plan: GridPlan,
    /// The metrics of each snapshot (`opts.metrics` resolved).
    pub metrics: Vec<crate::metrics::Metric>,
    /// Wall-clock seconds of the last step, whole and per phase.
    pub last_step: StepTiming,
}

/// Wall-clock seconds of one training step: the whole step and each of its
/// phases with the phase's interval (1, `G_REG_INTERVAL` or
/// `D_REG_INTERVAL`).
#[derive(Clone, Debug, Default)]
pub struct StepTiming {
    pub total: f64,
    pub phases: Vec<(Phase, usize, f64)>,
}

impl StepTiming {
    /// Seconds per step averaged over the lazy-regularization schedule: a
    /// phase of interval `i` runs on one step in `i` (official
    /// `G_reg_interval` 4, `D_reg_interval` 16), so it counts `1/i` of its
    /// time; the rest of the step (data, EMA, counters) counts whole. From
    /// the first step, which runs every phase, this avoids an estimate
    /// that counts both regularizations on every step.
    pub fn amortized(&self) -> f64 {
        let in_phases: f64 = self.phases.iter().map(|p| p.2).sum();
        let rest = (self.total - in_phases).max(0.0);
        rest + self
            .phases
            .iter()
            .map(|&(_, i, t)| t / i.max(1) as f64)
            .sum::<f64>()
    }
}

/// The layout of the reals and fakes grids.
#[derive(Clone, Debug)]
pub struct GridPlan {
    pub cols: usize,
    pub reals: Vec<usize>,
    pub labels: Option<Vec<Vec<f32>>>,
}

impl GridPlan {
    /// Unconditional: the first `n` images (fewer if the data has fewer).
    /// Conditional (official `setup_snapshot_image_grid`, simplified):
    /// each row one label, the distinct labels in descending order (class
    /// 0 first for one-hot), cycled if there are fewer than rows; a row's
    /// reals are images with its label, the next ones each time the label
    /// comes round again (as the official rotation of its label groups).
    fn new(dataset: &dyn data::Dataset, n: usize, cond: bool) -> Result<GridPlan> {
        let n = n.max(1);
        if !cond {
            let m = n.min(dataset.len());
            return Ok(GridPlan {
                cols: grid_cols(m),
                reals: (0..m).collect(),
                labels: None,
            });
        }
        let cols = grid_cols(n);
        // A label's rows take distinct images while it has enough.
        let per_label = cols * n.div_ceil(cols);
        let mut by_label: Vec<(Vec<f32>, Vec<usize>)> = Vec::new();
        let mut seen = std::collections::HashMap::new();
        for i in 0..dataset.len() {
            let l = dataset.label(i)?;
            let key: Vec<u32> = l.iter().map(|v| v.to_bits()).collect();
            let k = *seen.entry(key).or_insert_with(|| {
                by_label.push((l, Vec::new()));
                by_label.len() - 1
            });
            // Only the first images of a label can appear.
            if by_label[k].1.len() < per_label {
                by_label[k].1.push(i);
            }
        }
        by_label.sort_by(|a, b| {
            b.0.iter()
                .zip(&a.0)
                .map(|(x, y)| x.total_cmp(y))
                .find(|o| o.is_ne())
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let (mut reals, mut labels) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for k in 0..n {
            let (row, col) = (k / cols, k % cols);
            let (label, idx) = &by_label[row % by_label.len()];
            // The label's how-many-th row this is.
            let turn = row / by_label.len();
            reals.push(idx[(turn * cols + col) % idx.len()]);
            labels.push(label.clone());
        }
        Ok(GridPlan {
            cols,
            reals,
            labels: Some(labels),
        })
    }
}

/// A 64-bit mix of `(seed, step)` for the per-step generator.
fn step_seed(seed: u64, step: u64) -> u64 {
    let mut x = seed ^ step.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^ (x >> 29)
}

fn set_requires_grad(m: &dyn Module, on: bool) -> Result<()> {
    for (_, p) in m.parameters() {
        p.set_requires_grad(on)?;
    }
    Ok(())
}

fn positive(name: &str, v: Option<f32>) -> Result<()> {
    match v {
        Some(x) if !(x.is_finite() && x > 0.0) => {
            invalid("train", format!("{name} {x} must be a positive number"))
        }
        _ => Ok(()),
    }
}

/// The next `<outdir>/<NNNNN>-<desc>` (official run numbering).
fn next_run_dir(outdir: &Path, desc: &str) -> Result<PathBuf> {
    let mut next = 0u64;
    if let Ok(entries) = std::fs::read_dir(outdir) {
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(n) = digits.parse::<u64>() {
                next = next.max(n + 1);
            }
        }
    }
    Ok(outdir.join(format!("{next:05}-{desc}")))
}

impl Trainer {
    /// Builds the networks (fresh from the seed, or from `opts.resume`), the
    /// optimizers and the data, checks the options, and creates the run
    /// directory.
    pub fn new(opts: TrainOptions) -> Result<Trainer> {
        if !(opts.kimg.is_finite() && opts.kimg > 0.0) {
            return invalid(
                "train",
                format!("--kimg {} must be a positive number", opts.kimg),
            );
        }
        if !(opts.snap_kimg.is_finite() && opts.snap_kimg >= 0.0) {
            return invalid(
                "train",
                format!("--snap-kimg {} must be ≥ 0", opts.snap_kimg),
            );
        }
        if opts.batch == Some(0) {
            return invalid("train", "--batch must be ≥ 1");
        }
        if opts.metrics_num == Some(0) {
            return invalid("train", "--metrics-num must be ≥ 1");
        }
        positive("G learning rate (--glr/--lr)", opts.glr)?;
        positive("D learning rate (--dlr/--lr)", opts.dlr)?;
        positive("--ema-kimg", opts.ema_kimg)?;
        if let Some(g) = opts.gamma {
            if !(g.is_finite() && g >= 0.0) {
                return invalid("train", format!("--gamma {g} must be ≥ 0"));
            }
        }
        let device = opts.device;
        let resumed = opts
            .resume
            .as_ref()
            .map(|p| checkpoint::load(p, device).map(|l| (p.clone(), l)))
            .transpose()?;

        // Data first: its resolution and channels shape the networks.
        // Synthetic data is drawn at the snapshot's resolution; a folder
        // has its own, checked against --resolution only if it was given
        // (the snapshot's is compared below, naming both sides).
        let synthetic = crate::data::is_synthetic(&opts.data);
        let want_res = if synthetic {
            opts.resolution.or(resumed
                .as_ref()
                .map(|(_, l)| l.config.generator.img_resolution))
        } else {
            opts.resolution
        };
        let resumed_c_dim = resumed
            .as_ref()
            .map_or(0, |(_, l)| l.config.generator.c_dim);
        let cond = opts.cond || resumed_c_dim > 0;
        let dataset = data::open_opts(
            &opts.data,
            &data::OpenOptions {
                resolution: want_res,
                seed: opts.seed,
                labels: cond,
                skip_bad: opts.skip_bad,
                progress: opts.progress,
            },
        )?;
        let (res, channels) = (dataset.resolution(), dataset.channels());
        let metrics = match &opts.metrics {
            Some(m) => m.clone(),
            None if res >= swd::MIN_RESOLUTION => vec![crate::metrics::Metric::Swd],
            None => Vec::new(),
        };
        if metrics.contains(&crate::metrics::Metric::Swd) && res < swd::MIN_RESOLUTION {
            return invalid(
                "train",
                format!(
                    "--metrics swd needs images of at least {0}×{0}; the data is {res}×{res}",
                    swd::MIN_RESOLUTION
                ),
            );
        }
        if cond && dataset.label_dim() == 0 {
            return invalid(
                "train",
                format!(
                    "{}{} has no labels: conditional training needs a dataset.json with labels at the root of the folder or zip (see `stylegan2 dataset`), or synthetic data",
                    if opts.cond { "--cond: " } else { "the snapshot is conditional, but " },
                    opts.data
                ),
            );
        }
        let c_dim = if cond { dataset.label_dim() } else { 0 };

        let transfer = opts
            .resume
            .as_deref()
            .is_some_and(crate::model::is_pickle_file);
        let mut config = match &resumed {
            Some((path, l)) => {
                let cfg = if transfer {
                    transfer_config(path, &l.config, opts.preset.as_deref())?
                } else {
                    l.config.clone()
                };
                if let Some(p) = opts.preset.as_ref().filter(|_| !transfer) {
                    if *p != cfg.preset {
                        return invalid(
                            "train",
                            format!(
                                "--cfg {p} differs from the preset '{}' of {}",
                                cfg.preset,
                                path.display()
                            ),
                        );
                    }
                }
                if cfg.generator.img_resolution != res || cfg.generator.img_channels != channels {
                    let r = cfg.generator.img_resolution;
                    return invalid(
                        "train",
                        format!(
                            "--resume {}: the snapshot's networks are {r}×{r} with {} channels; the data (--data {}) is {res}×{res} with {channels}",
                            path.display(),
                            cfg.generator.img_channels,
                            opts.data
                        ),
                    );
                }
                if cfg.generator.c_dim != c_dim {
                    return invalid(
                        "train",
                        if cfg.generator.c_dim == 0 {
                            format!("--cond given, but {} is unconditional", path.display())
                        } else {
                            format!(
                                "{} is conditional with {} label dimensions, the data's labels have {c_dim}",
                                path.display(),
                                cfg.generator.c_dim
                            )
                        },
                    );
                }
                cfg
            }
            None => ModelConfig::preset(
                opts.preset.as_deref().unwrap_or("tiny"),
                res,
                channels,
                c_dim,
            )?,
        };
        match (opts.fp32, opts.num_fp16_res) {
            (true, Some(n)) if n > 0 => {
                return invalid(
                    "train",
                    format!("--fp32 turns mixed precision off; it cannot be combined with num_fp16_res = {n}"),
                )
            }
            (true, _) => config.set_fp32(),
            (false, Some(n)) => {
                config.generator.num_fp16_res = n;
                config.discriminator.num_fp16_res = n;
                if n > 0 {
                    config.generator.conv_clamp.get_or_insert(256.0);
                    config.discriminator.conv_clamp.get_or_insert(256.0);
                }
            }
            (false, None) => {}
        }
        if let Some(n) = opts.freezed {
            let layers = config.discriminator.freezable_layers();
            if n != config.discriminator.freeze_layers {
                // As the official --freezed, any count is accepted (it
                // only compares each layer's index with it); one beyond
                // D's layers is said plainly.
                if n >= layers {
                    eprintln!(
                        "stylegan2: note: Freeze-D: --freezed {n} freezes all {layers} layers of D's blocks (0-{layers} are distinct); only the 4×4 epilogue trains"
                    );
                } else {
                    eprintln!(
                        "stylegan2: note: Freeze-D: the first {n} of D's {layers} block layers are not trained (--freezed)"
                    );
                }
            }
            config.discriminator.freeze_layers = n;
        }
        let t = &config.training;
        let batch = opts.batch.unwrap_or(t.batch);
        if let Some(group) = config.discriminator.mbstd_group_size {
            if config.discriminator.mbstd_num_channels > 0
                && !batch.is_multiple_of(group.min(batch))
            {
                return invalid(
                    "train",
                    format!(
                        "--batch {batch} must be a multiple of D's minibatch-stddev group size {group} (or smaller than it)"
                    ),
                );
            }
        }
        let gamma = opts.gamma.unwrap_or(t.r1_gamma);
        let ema_kimg = opts.ema_kimg.unwrap_or(t.ema_kimg);
        let ema_rampup = t.ema_rampup;
        let glr = opts.glr.unwrap_or(t.lr);
        let dlr = opts.dlr.or(t.dlr).unwrap_or(t.lr);
        // The snapshots record what this run trains with, not the preset's
        // defaults, so that `info` shows it (kimg included) and a resumed
        // run continues with the same batch, learning rates, γ and EMA
        // unless told otherwise.
        {
            let t = &mut config.training;
            (t.batch, t.r1_gamma, t.ema_kimg, t.lr) = (batch, gamma, ema_kimg, glr);
            t.kimg = opts.kimg;
            t.dlr = (dlr != glr).then_some(dlr);
        }
        let t = &config.training;

        let mut rng = crate::rng(opts.seed);
        let g = Generator::new(&config.generator, &mut rng, device)?;
        let d = Discriminator::new(&config.discriminator, &mut rng, device)?;
        let g_ema = Generator::new(&config.generator, &mut rng, device)?;
        update_ema(&g_ema, &g, 0.0)?;

        let opt_g = Adam::new(
            g.parameters(),
            AdamConfig::stylegan2(glr).lazy(G_REG_INTERVAL),
        )?;
        let opt_d = Adam::new(
            d.parameters(),
            AdamConfig::stylegan2(dlr).lazy(D_REG_INTERVAL),
        )?;
        let augment = augmentation(&opts, channels, res)?;
        let mut loss = StyleGAN2Loss::new(
            LossOptions {
                style_mixing_prob: t.style_mixing_prob,
                r1_gamma: gamma,
                pl_weight: t.pl_weight,
                noise_mode: if t.noise {
                    NoiseMode::Random
                } else {
                    NoiseMode::None
                },
                modconv: opts.modconv,
                ..LossOptions::default()
            },
            device,
        )?;
        let ada = augment.map(|(pipe, ada)| {
            loss.augment = Some(pipe);
            ada
        });
        let grid_plan = GridPlan::new(dataset.as_ref(), opts.grid, cond)?;
        let loader = Loader::new(dataset, opts.mirror, opts.seed)?;

        let mut trainer = Trainer {
            run_dir: PathBuf::new(),
            opts,
            config,
            g,
            d,
            g_ema,
            opt_g,
            opt_d,
            loss,
            loader,
            batch,
            ema_kimg,
            ema_rampup,
            step: 0,
            cur_nimg: 0,
            stats: Stats::default(),
            cond,
            ada,
            grid_plan,
            metrics,
            last_step: StepTiming::default(),
        };
        if let Some((path, l)) = &resumed {
            trainer.restore(path, l)?;
        }
        if trainer.cur_nimg as f64 >= trainer.opts.kimg * 1000.0 {
            return invalid(
                "train",
                format!(
                    "the snapshot has already seen {} images, which reaches --kimg {}; raise --kimg to continue",
                    trainer.cur_nimg, trainer.opts.kimg
                ),
            );
        }
        trainer.run_dir = match &trainer.opts.run_dir {
            Some(d) => d.clone(),
            None => {
                let desc = format!(
                    "{}{}-{}-{res}-batch{batch}",
                    sanitize(&trainer.loader.dataset().name()),
                    if cond { "-cond" } else { "" },
                    trainer.config.preset
                );
                next_run_dir(&trainer.opts.outdir, &desc)?
            }
        };
        crate::fsio::create_dir_all(&trainer.run_dir)?;
        Ok(trainer)
    }

    /// Trains with the official loss (`LossOptions::default()`:
    /// path-length regularization, style mixing, random noise) whatever
    /// the preset's training defaults say, and records it in the config
    /// that snapshots store. The benchmark (timed against the official
    /// code) and the tests of every phase use it on `tiny`, whose demo
    /// defaults leave these out.
    pub fn official_loss(&mut self) {
        let o = LossOptions::default();
        let (l, t) = (&mut self.loss.opts, &mut self.config.training);
        (l.pl_weight, t.pl_weight) = (o.pl_weight, o.pl_weight);
        (l.style_mixing_prob, t.style_mixing_prob) = (o.style_mixing_prob, o.style_mixing_prob);
        (l.noise_mode, t.noise) = (o.noise_mode, o.noise_mode == NoiseMode::Random);
    }

    fn restore(&mut self, path: &Path, l: &checkpoint::Loaded) -> Result<()> {
        let sd = &l.tensors;
        checkpoint::load_net(path, sd, "G", &self.g)?;
        checkpoint::load_net(path, sd, "D", &self.d)?;
        if sd.names().any(|n| n.starts_with("G_ema.")) {
            checkpoint::load_net(path, sd, "G_ema", &self.g_ema)?;
        } else {
            update_ema(&self.g_ema, &self.g, 0.0)?;
        }
        let Some(state) = &l.state else {
            eprintln!(
                "stylegan2: {} has no training state; starting at step 0 (kimg 0) from its weights with fresh optimizer state",
                path.display()
            );
            return Ok(());
        };
        let ctx = |e: Error| Error::Io(format!("{}: {e}", path.display()));
        self.opt_g
            .load_state(&sd.sub("opt_G"), &state.opt_g_steps)
            .map_err(ctx)?;
        self.opt_d
            .load_state(&sd.sub("opt_D"), &state.opt_d_steps)
            .map_err(ctx)?;
        self.loss.set_pl_mean(state.pl_mean).map_err(ctx)?;
        self.step = state.step;
        self.cur_nimg = state.cur_nimg;
        // ADA continues from the saved p and signs (a fixed p stays --p).
        if let (Some(ada), Some(saved)) = (&mut self.ada, &state.augment) {
            if ada.adaptive {
                ada.state = saved.clone();
            }
        }
        if state.seed != self.opts.seed {
            eprintln!(
                "stylegan2: note: resuming a run of seed {} with --seed {}; data order and latents follow the new seed",
                state.seed, self.opts.seed
            );
        }
        Ok(())
    }

    /// The phases of step `step`: `Gmain`, `Greg` (every 4), `Dmain`, `Dreg`
    /// (every 16), each with its interval (the gain of its loss).
    pub fn phases_of(&self, step: u64) -> Vec<(Phase, usize)> {
        [
            (Phase::Gmain, 1),
            (Phase::Greg, G_REG_INTERVAL),
            (Phase::Dmain, 1),
            (Phase::Dreg, D_REG_INTERVAL),
        ]
        .into_iter()
        .filter(|&(p, i)| step.is_multiple_of(i as u64) && self.loss.phase_enabled(p))
        .collect()
    }

    /// One training step on the next batch of reals.
    pub fn step(&mut self) -> Result<()> {
        let t_step = Instant::now();
        let mut phase_secs = Vec::new();
        let device = self.opts.device;
        let (real, real_c) = if self.cond {
            let (img, c) = self
                .loader
                .batch_with_labels(self.cur_nimg, self.batch, device)?;
            (img, Some(c))
        } else {
            (self.loader.batch(self.cur_nimg, self.batch, device)?, None)
        };
        let mut rng = crate::rng(step_seed(self.opts.seed, self.step));
        if let Some(ada) = &self.ada {
            self.loss.augment_p = ada.state.p;
        }
        let z_dim = self.config.generator.z_dim;
        for (phase, interval) in self.phases_of(self.step) {
            let t_phase = Instant::now();
            let gen_z = Tensor::randn(vec![self.batch, z_dim], &mut rng, device);
            // Official: the labels of random training images.
            let gen_c = if self.cond {
                use rand::Rng as _;
                let n = self.loader.dataset().len();
                let idx: Vec<usize> = (0..self.batch).map(|_| rng.random_range(0..n)).collect();
                Some(self.loader.labels(&idx, device)?)
            } else {
                None
            };
            // As the official loop, only the trained network requires
            // gradients: backward then skips the other's weight gradients.
            let other: &dyn Module = if phase.is_generator() {
                &self.d
            } else {
                &self.g
            };
            set_requires_grad(other, false)?;
            let out = self.loss.phase_loss(
                phase,
                &self.g,
                &self.d,
                &real,
                real_c.as_ref(),
                &gen_z,
                gen_c.as_ref(),
                interval as f32,
                &mut rng,
            );
            set_requires_grad(other, true)?;
            let out = out?;
            let opt = if phase.is_generator() {
                &mut self.opt_g
            } else {
                &mut self.opt_d
            };
            let grads = crate::grad(std::slice::from_ref(&out.loss), &opt.tensors(), None, false)?;
            drop(out.loss);
            opt.step(&grads)?;
            for (name, v) in out.stats {
                let v = v.to_scalar()? as f64;
                if !v.is_finite() {
                    return Err(Error::Invalid {
                        op: "train",
                        msg: format!(
                            "{name} became {v} at step {} ({}); lower the learning rate or check the data",
                            self.step,
                            phase.name()
                        ),
                    });
                }
                if name == "signs_real" {
                    if let Some(ada) = &mut self.ada {
                        ada.observe(v);
                    }
                }
                self.stats.add(name, v);
            }
            // The stats' `to_scalar` waited for the device: the phase is done.
            phase_secs.push((phase, interval, t_phase.elapsed().as_secs_f64()));
        }
        let beta = ema_beta(self.batch, self.ema_kimg, self.ema_rampup, self.cur_nimg);
        update_ema(&self.g_ema, &self.g, beta)?;
        self.cur_nimg += self.batch as u64;
        self.step += 1;
        // Official order: the ADA heuristic after the step's counters advance.
        if let Some(ada) = &mut self.ada {
            ada.after_step(self.step, self.batch);
        }
        self.last_step = StepTiming {
            total: t_step.elapsed().as_secs_f64(),
            phases: phase_secs,
        };
        Ok(())
    }

    /// The grid of G_ema images for seeds `0..grid` (constant noise; when
    /// conditional, one label per row).
    pub fn fakes(&self) -> Result<image::DynamicImage> {
        let _g = crate::no_grad();
        let n = self.opts.grid.max(1);
        let plan = &self.grid_plan;
        let device = self.opts.device;
        let z_dim = self.config.generator.z_dim;
        let mut images = Vec::with_capacity(n);
        // Chunks keep memory flat for large grids.
        for chunk in (0..n as u64).collect::<Vec<_>>().chunks(16) {
            let zs: Vec<Tensor> = chunk.iter().map(|&s| latent(s, z_dim, device)).collect();
            let z = Tensor::concat(&zs, 0)?;
            let c = match &plan.labels {
                Some(labels) => {
                    let v: Vec<f32> = chunk
                        .iter()
                        .flat_map(|&s| labels[s as usize].iter().copied())
                        .collect();
                    let dim = v.len() / chunk.len();
                    Some(Tensor::from_vec(v, vec![chunk.len(), dim], device)?)
                }
                None => None,
            };
            let img = self.g_ema.forward(
                &z,
                c.as_ref(),
                Truncation::default(),
                SynthesisOptions::noise(NoiseMode::Const),
                &mut Ctx::new(),
            )?;
            images.extend(to_images(&img)?);
        }
        // Unconditional reals may be fewer than the fakes: own layout.
        let cols = if plan.labels.is_some() {
            plan.cols
        } else {
            grid_cols(n)
        };
        grid(&images, cols)
    }

    /// The dataset images of the grid (the first `grid`, or per row one
    /// label when conditional).
    pub fn reals(&self) -> Result<image::DynamicImage> {
        let idx = &self.grid_plan.reals;
        let img = self
            .loader
            .images(idx, &vec![false; idx.len()], Device::Cpu)?;
        grid(&to_images(&img)?, self.grid_plan.cols)
    }

    /// The training counters for a snapshot.
    pub fn state(&self) -> Result<TrainState> {
        Ok(TrainState {
            step: self.step,
            cur_nimg: self.cur_nimg,
            pl_mean: self.loss.pl_mean_value()?,
            opt_g_steps: self.opt_g.steps().to_vec(),
            opt_d_steps: self.opt_d.steps().to_vec(),
            seed: self.opts.seed,
            augment: self.ada.as_ref().map(|a| a.state.clone()),
        })
    }

    /// Writes `fakesNNNNNNNN.png` and `network-snapshot-NNNNNNNN.safetensors`
    /// (NNNNNNNN: images shown) into the run directory; returns the network
    /// file.
    pub fn snapshot(&self) -> Result<PathBuf> {
        save_png(
            &self.fakes()?,
            &self.run_dir.join(format!("fakes{:08}.png", self.cur_nimg)),
        )?;
        let path = self
            .run_dir
            .join(format!("network-snapshot-{:08}.safetensors", self.cur_nimg));
        checkpoint::save(
            &path,
            &checkpoint::Checkpoint {
                config: &self.config,
                g: &self.g,
                d: &self.d,
                g_ema: &self.g_ema,
                opt_g: &self.opt_g,
                opt_d: &self.opt_d,
                state: self.state()?,
            },
        )?;
        Ok(path)
    }

    /// Trains until `kimg` thousand images have been shown, writing the
    /// reals and initial fakes, periodic snapshots and a final one, and a
    /// line of statistics per snapshot to `stats.jsonl` and its plot to
    /// `stats.png` ([`plot`]).
    pub fn run(&mut self) -> Result<TrainSummary> {
        let total = (self.opts.kimg * 1000.0).ceil() as u64;
        let snap = (self.opts.snap_kimg * 1000.0).round() as u64;
        crate::fsio::write(
            &self.run_dir.join("training_options.json"),
            self.options_json()?.as_bytes(),
        )?;
        save_png(&self.reals()?, &self.run_dir.join("reals.png"))?;
        save_png(
            &self.fakes()?,
            &self
                .run_dir
                .join(format!("fakes_init{:08}.png", self.cur_nimg)),
        )?;

        let bar = if self.opts.progress {
            indicatif::ProgressBar::new(total)
        } else {
            indicatif::ProgressBar::hidden()
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{elapsed_precise} [{bar:30}] {msg}  eta {eta}",
            )
            .map_err(|e| Error::Internal(format!("progress template: {e}")))?
            .progress_chars("=> "),
        );
        bar.set_position(self.cur_nimg.min(total));
        // The clock and spinner move on their own, so a first step of
        // minutes (paper256 on a CPU) does not look like a hang.
        if !bar.is_hidden() {
            bar.enable_steady_tick(std::time::Duration::from_millis(500));
        }
        let progress = self.opts.progress;
        // Status lines go above the bar, or to stdout when there is no
        // terminal to draw it on (indicatif then hides the bar and its lines).
        let say = |bar: &indicatif::ProgressBar, line: String| {
            if !progress {
            } else if bar.is_hidden() {
                println!("{line}");
            } else {
                bar.println(line);
            }
        };
        say(
            &bar,
            format!(
                "training {}{} at {}×{} on {} ({}), batch {}, to {} kimg; run directory {}",
                self.config.preset,
                if self.cond {
                    format!(
                        " conditional on {} label dimensions",
                        self.config.generator.c_dim
                    )
                } else {
                    String::new()
                },
                self.config.generator.img_resolution,
                self.config.generator.img_resolution,
                self.loader.dataset().name(),
                self.opts.device,
                self.batch,
                self.opts.kimg,
                self.run_dir.display()
            ),
        );
        let (images, num) = (self.loader.dataset().len(), self.metrics_num());
        if self.metrics.contains(&crate::metrics::Metric::Swd) && images < num {
            // As `stylegan2 metric` says: fewer images, a noisier SWD that
            // does not compare with a run of `num`.
            eprintln!(
                "stylegan2: note: {} has {images} images; the SWD compares {images} reals with {images} fakes, not {num}",
                self.loader.dataset().name()
            );
        }

        let (start_step, start_nimg) = (self.step, self.cur_nimg);
        let mut last_snapshot = None;
        let mut last_stats = Vec::new();
        // The reals' SWD descriptors, computed at the first snapshot.
        let mut swd = None;
        let mut interval_start = (Instant::now(), self.cur_nimg);
        let mut next_snap = self
            .cur_nimg
            .checked_div(snap)
            .map_or(u64::MAX, |k| (k + 1) * snap);
        let mut first_step = true;
        if self.cur_nimg < total {
            let phases: Vec<&str> = self
                .phases_of(self.step)
                .iter()
                .map(|p| p.0.name())
                .collect();
            say(
                &bar,
                format!(
                    "first step ({}: every phase due, so the slowest step; it also warms up) …",
                    phases.join(", ")
                ),
            );
            bar.set_message("first step …");
        }
        while self.cur_nimg < total {
            self.step()?;
            if std::mem::take(&mut first_step) {
                self.announce_duration(self.last_step.amortized(), total, &say, &bar);
            }
            let (t0, n0) = interval_start;
            let sec_per_kimg =
                t0.elapsed().as_secs_f64() / ((self.cur_nimg - n0) as f64 / 1000.0).max(1e-9);
            bar.set_position(self.cur_nimg.min(total));
            bar.set_message(format!(
                "kimg {:.3}/{}  G {:.3}  D {:.3}{}  {:.1} s/kimg",
                self.cur_nimg as f64 / 1000.0,
                self.opts.kimg,
                self.stats.mean("G_loss").unwrap_or(f64::NAN),
                self.stats.mean("D_loss").unwrap_or(f64::NAN),
                self.ada_status(),
                sec_per_kimg
            ));
            let done = self.cur_nimg >= total;
            if done || self.cur_nimg >= next_snap {
                while next_snap <= self.cur_nimg {
                    next_snap = next_snap.saturating_add(snap.max(1));
                }
                let path = self.snapshot()?;
                last_stats = self.stats.means();
                let metrics = self.metrics(&mut swd)?;
                self.append_stats(sec_per_kimg, &metrics)?;
                plot::write(&self.run_dir)?;
                say(
                    &bar,
                    format!(
                        "kimg {:>8.3}  step {:>6}  {}  sec/kimg {:.1}  → {}",
                        self.cur_nimg as f64 / 1000.0,
                        self.step,
                        last_stats
                            .iter()
                            .map(|&(n, v)| (n.to_string(), v))
                            .chain(self.ada_stats())
                            .chain(metrics.iter().cloned())
                            .map(|(n, v)| format!("{n} {v:.4}"))
                            .collect::<Vec<_>>()
                            .join("  "),
                        sec_per_kimg,
                        path.display()
                    ),
                );
                last_snapshot = Some(path);
                self.stats = Stats::default();
                interval_start = (Instant::now(), self.cur_nimg);
            }
        }
        bar.finish_and_clear();
        Ok(TrainSummary {
            run_dir: self.run_dir.clone(),
            steps: self.step,
            cur_nimg: self.cur_nimg,
            start_step,
            start_nimg,
            last_snapshot,
            last_stats,
            c_dim: self.config.generator.c_dim,
        })
    }

    /// After the first step: when the run would take over an hour at that
    /// pace, says so with the estimated time per kimg. `secs` is the first
    /// step's time with its regularization phases amortized over their
    /// intervals ([`StepTiming::amortized`]); the first step also warms
    /// up, so this still errs long.
    fn announce_duration(
        &self,
        secs: f64,
        total: u64,
        say: &dyn Fn(&indicatif::ProgressBar, String),
        bar: &indicatif::ProgressBar,
    ) {
        let per_kimg = secs / self.batch as f64 * 1000.0;
        let left = per_kimg * total.saturating_sub(self.cur_nimg) as f64 / 1000.0;
        if left < 3600.0 {
            return;
        }
        let (amount, unit) = if left >= 2.0 * 86400.0 {
            (left / 86400.0, "days")
        } else {
            (left / 3600.0, "hours")
        };
        // What would make it shorter: a GPU, the preset made for CPUs.
        let mut faster = Vec::new();
        if !matches!(self.opts.device, Device::Cuda(_)) {
            faster.push("a GPU (--device cuda)");
        }
        if self.config.preset != "tiny" {
            faster.push("--cfg tiny (minutes on a CPU)");
        }
        faster.push("a smaller --kimg");
        say(
            bar,
            format!(
                "estimated {per_kimg:.0} s/kimg on {} from the first step (regularization amortized over its intervals; an upper bound, the first step also warms up): the {:.3} kimg left would take about {amount:.1} {unit}; Ctrl-C stops it (shorter: {})",
                self.opts.device,
                total.saturating_sub(self.cur_nimg) as f64 / 1000.0,
                faster.join(", ")
            ),
        );
    }

    /// Images per set of the SWD asked for (`--metrics-num`, else the
    /// preset's default); fewer when the dataset has fewer.
    fn metrics_num(&self) -> usize {
        self.opts
            .metrics_num
            .unwrap_or_else(|| crate::metrics::default_train_num(&self.config.preset))
    }

    /// The `--metrics` of G_ema as `(name, value)`; the reals' part of the
    /// SWD is computed once into `swd` (from the training data, seed
    /// `opts.seed`) and reused.
    fn metrics(&self, swd: &mut Option<crate::metrics::Swd>) -> Result<Vec<(String, f64)>> {
        use crate::metrics::{Metric, Swd};
        let mut out = Vec::new();
        for m in &self.metrics {
            match m {
                Metric::Swd => {
                    if swd.is_none() {
                        *swd = Some(Swd::new(
                            &self.loader,
                            self.metrics_num(),
                            self.opts.seed,
                            crate::metrics::DEFAULT_BATCH,
                            &mut |_| {},
                        )?);
                    }
                    let s = swd.as_ref().expect("set above");
                    out.extend(s.evaluate(&self.g_ema, 1.0, &mut |_| {})?.named());
                }
            }
        }
        Ok(out)
    }

    /// `aug_p` and `ada_rt` (the last r_t ADA used) when augmenting.
    fn ada_stats(&self) -> Vec<(String, f64)> {
        let Some(ada) = &self.ada else {
            return Vec::new();
        };
        let mut v = vec![("aug_p".to_string(), ada.state.p as f64)];
        if let Some(rt) = ada.state.last_rt {
            v.push(("ada_rt".to_string(), rt));
        }
        v
    }

    /// `  p 0.012  r_t 0.71` for the progress line, empty without augmentation.
    fn ada_status(&self) -> String {
        match &self.ada {
            Some(a) => format!(
                "  p {:.3}{}",
                a.state.p,
                a.state
                    .last_rt
                    .map_or(String::new(), |rt| format!("  r_t {rt:.2}"))
            ),
            None => String::new(),
        }
    }

    fn append_stats(&self, sec_per_kimg: f64, metrics: &[(String, f64)]) -> Result<()> {
        let mut line = serde_json::Map::new();
        line.insert("kimg".into(), (self.cur_nimg as f64 / 1000.0).into());
        line.insert("step".into(), self.step.into());
        line.insert("sec_per_kimg".into(), sec_per_kimg.into());
        for (n, v) in self.stats.means() {
            line.insert(n.into(), v.into());
        }
        for (n, v) in self.ada_stats().into_iter().chain(metrics.iter().cloned()) {
            line.insert(n, v.into());
        }
        crate::fsio::append(
            &self.run_dir.join("stats.jsonl"),
            format!("{}\n", serde_json::Value::Object(line)).as_bytes(),
        )
    }

    /// What the networks compute in on this run's device: `fp32`, or the
    /// FP16 blocks of each network (official `num_fp16_res`).
    pub fn precision_summary(&self) -> String {
        let (g, d) = (&self.config.generator, &self.config.discriminator);
        let fp16 = |n: usize| (n > 0).then(|| crate::model::fp16_resolution(g.img_resolution, n));
        match (fp16(g.num_fp16_res), fp16(d.num_fp16_res)) {
            (None, None) => "fp32".into(),
            _ if !self.opts.device.runs_kernels() => {
                "fp32 (the FP16 blocks compute in FP32 on the CPU, as the official code off CUDA)"
                    .into()
            }
            (gr, dr) => {
                let side = |r: Option<usize>| {
                    r.map_or("fp32".to_string(), |r| format!("fp16 from {r}x{r}"))
                };
                format!("mixed: G {}, D {}", side(gr), side(dr))
            }
        }
    }

    /// `({G, D} num_fp16_res, {G, D} conv_clamp)` for training_options.json.
    fn precision_json(&self) -> (serde_json::Value, serde_json::Value) {
        let (g, d) = (&self.config.generator, &self.config.discriminator);
        (
            serde_json::json!({ "G": g.num_fp16_res, "D": d.num_fp16_res }),
            serde_json::json!({ "G": g.conv_clamp.map(decimal), "D": d.conv_clamp.map(decimal) }),
        )
    }

    fn options_json(&self) -> Result<String> {
        let o = &self.opts;
        let v = serde_json::json!({
            "preset": self.config.preset,
            "resolution": self.config.generator.img_resolution,
            "channels": self.config.generator.img_channels,
            "data": o.data,
            "dataset_images": self.loader.dataset().len(),
            "mirror": o.mirror,
            "cond": self.cond,
            "c_dim": self.config.generator.c_dim,
            "batch": self.batch,
            "kimg": o.kimg,
            // As given (before the lazy-regularization adjustment), in
            // shortest decimal form: 0.0025, not 0.0024999999441206455.
            "glr": decimal(o.glr.unwrap_or(self.config.training.lr)),
            "dlr": decimal(
                o.dlr
                    .or(self.config.training.dlr)
                    .unwrap_or(self.config.training.lr),
            ),
            "r1_gamma": decimal(self.loss.opts.r1_gamma),
            "pl_weight": decimal(self.loss.opts.pl_weight),
            "style_mixing_prob": decimal(self.loss.opts.style_mixing_prob),
            "noise": format!("{:?}", self.loss.opts.noise_mode).to_lowercase(),
            "ema_kimg": decimal(self.ema_kimg),
            "ema_rampup": self.ema_rampup.map(decimal),
            "dataset_skipped": self.loader.dataset().skipped(),
            "G_reg_interval": G_REG_INTERVAL,
            "D_reg_interval": D_REG_INTERVAL,
            "snap_kimg": o.snap_kimg,
            "metrics": self.metrics.iter().map(|m| m.name()).collect::<Vec<_>>(),
            "seed": o.seed,
            "device": o.device.to_string(),
            "modconv": format!("{:?}", o.modconv.resolve(o.device)).to_lowercase(),
            "aug": match &self.ada {
                None => "noaug",
                Some(a) if a.adaptive => "ada",
                Some(_) => "fixed",
            },
            "augpipe": self.ada.as_ref().map(|_| o.augpipe.as_deref().unwrap_or("bgc")),
            "augment_p": self.ada.as_ref().map(|a| a.state.p),
            "ada_target": self.ada.as_ref().filter(|a| a.adaptive).map(|a| a.target),
            "ada_interval": self.ada.as_ref().map(|a| a.interval),
            "ada_kimg": self.ada.as_ref().map(|a| a.ada_kimg),
            "resume": o.resume.as_ref().map(|p| p.display().to_string()),
            "resume_step": self.step,
            "resume_nimg": self.cur_nimg,
            // The networks; the preset's training defaults are left out:
            // the values used are above (one kimg, one batch, ...).
            "config": {
                "preset": self.config.preset,
                "generator": decimal_json(&self.config.generator)?,
                "discriminator": decimal_json(&self.config.discriminator)?,
            },
        });
        let mut v = v;
        if let Some(m) = v.as_object_mut() {
            // Mixed precision (official --fp32, num_fp16_res, conv_clamp)
            // and what this device makes of it.
            let (fp16_res, clamp) = self.precision_json();
            m.insert("fp32".into(), o.fp32.into());
            m.insert("num_fp16_res".into(), fp16_res);
            m.insert("conv_clamp".into(), clamp);
            m.insert("precision".into(), self.precision_summary().into());
        }
        serde_json::to_string_pretty(&v)
            .map_err(|e| Error::Internal(format!("options to JSON: {e}")))
    }
}

/// The configuration of a transfer run from a network pickle: the
/// networks as the pickle builds them (so its weights load), the training
/// defaults of `preset` (default `auto`, the official `train.py` default),
/// and, as the official `train.py` does when resuming, no EMA ramp-up.
/// Prints a note of what came from where and where the pickle's networks
/// differ from the preset's.
fn transfer_config(
    path: &Path,
    pickled: &ModelConfig,
    preset: Option<&str>,
) -> Result<ModelConfig> {
    let name = preset.unwrap_or("auto");
    // The preset at the pickle's own shape, so only architecture differences show.
    let base = ModelConfig::preset(
        name,
        pickled.generator.img_resolution,
        pickled.generator.img_channels,
        pickled.generator.c_dim,
    )?;
    let mut cfg = pickled.clone();
    cfg.preset = name.to_string();
    cfg.training = base.training.clone();
    cfg.training.ema_rampup = None;
    let mut differ = Vec::new();
    for (what, ours, theirs) in [
        (
            "G",
            decimal_json(&pickled.generator),
            decimal_json(&base.generator),
        ),
        (
            "D",
            decimal_json(&pickled.discriminator),
            decimal_json(&base.discriminator),
        ),
    ] {
        let (Ok(serde_json::Value::Object(a)), Ok(serde_json::Value::Object(b))) = (ours, theirs)
        else {
            continue;
        };
        for (k, v) in &a {
            if b.get(k) != Some(v) {
                differ.push(format!(
                    "{what}.{k} = {v} (preset {name}: {})",
                    b.get(k).cloned().unwrap_or_default()
                ));
            }
        }
    }
    eprintln!(
        "stylegan2: transfer learning from {}: G, D and G_ema from the pickle, fresh optimizer state, kimg 0; training defaults (batch {}, lr {}, gamma {}, ema_kimg {}) from preset '{name}', EMA ramp-up off (official train.py with --resume)",
        path.display(),
        cfg.training.batch,
        cfg.training.lr,
        cfg.training.r1_gamma,
        cfg.training.ema_kimg
    );
    if !differ.is_empty() {
        eprintln!(
            "stylegan2: note: the pickle's networks override preset '{name}' in: {}",
            differ.join(", ")
        );
    }
    Ok(cfg)
}

/// An f32 as the f64 of its shortest decimal form, so JSON shows the number
/// as it was typed.
fn decimal(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(v as f64)
}

/// `v` as JSON with its f32 fields in shortest decimal form (0.01, where
/// `serde_json::to_value` widens to 0.009999999776482582).
fn decimal_json<T: serde::Serialize>(v: &T) -> Result<serde_json::Value> {
    serde_json::to_string(v)
        .and_then(|s| serde_json::from_str(&s))
        .map_err(|e| Error::Internal(format!("options to JSON: {e}")))
}

/// Columns of an n-image grid: the smallest divisor of n from √n up to 2√n
/// (a full rectangle, 32 → 8×4), else ⌈√n⌉.
fn grid_cols(n: usize) -> usize {
    let root = (n as f64).sqrt().ceil() as usize;
    (root..=2 * root)
        .find(|c| n.is_multiple_of(*c))
        .unwrap_or(root)
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Builds a [`Trainer`] and runs it.
pub fn train(opts: TrainOptions) -> Result<TrainSummary> {
    Trainer::new(opts)?.run()
}
