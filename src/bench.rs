//! `stylegan2 bench`: throughput of the modulated convolution at StyleGAN2
//! layer shapes (each execution path beside its peers on the same device,
//! forward and backward), of the generator forward, and of a training step.
//!
//! # Sections
//!
//! - `modconv`: every [`Case`] with each [`ModConvPath`] (and the plain
//!   `conv2d` of the same shape where there is no up-sampling), pass `fwd`
//!   (no graph) and pass `bwd` (the first-order gradients of x, weight and
//!   styles for a random upstream gradient, on a graph built once; the fused
//!   path runs its dedicated backward kernels). On devices that run kernels
//!   the fused path and `conv2d` run again at each tensor-core precision,
//!   passes `fwd tf32`, `bwd tf32`, `fwd bf16`, ... ([`Precision`]).
//! - `generator`: `G(z)` (mapping + synthesis, constant noise, no graph) of
//!   a preset at a resolution and batch, once per [`ModConvPath`].
//! - `train`: [`Trainer::step`] of the training loop: each distinct set of
//!   phases the loop schedules (`Gmain+Dmain`, `+Greg` every 4 steps, all
//!   four every 16) timed on its own, plus their mean over the 16-step
//!   schedule (`amortized`, computed from those medians, not timed). The
//!   step is the loop's own: data loading, the four losses, Adam and the
//!   G EMA included, with the path the loop uses ([`SynthesisOptions`]'s
//!   default).
//!
//! # Defaults (by device)
//!
//! | setting            | `--quick`     | CPU (no `--quick`) | GPU (no `--quick`)      | Sim          |
//! |--------------------|---------------|--------------------|-------------------------|--------------|
//! | modconv cases      | channels ÷ 8  | config-f           | config-f                | [`Scale::Tiny`] |
//! | generator / train  | tiny 32², b 8 | tiny 64², b 8      | stylegan2 (config-f) 256², b 8 | tiny 8², b 4 |
//!
//! `--preset`, `--resolution` and `--batch` override the generator/train
//! setting. The simulator runs every GPU thread as a fiber: there the suite
//! only checks that every launch path runs; its times mean nothing.
//!
//! # Figures
//!
//! Medians of `iters` runs after one warm-up run, each ended by
//! [`Device::synchronize`] (GPU launches are asynchronous). FLOPs are a
//! nominal count, multiply-add = 2, the same for every path of a row group
//! so that GFLOP/s ratios are time ratios: a modconv layer counts its
//! convolution at the output resolution (`2·N·Cout·Cin·k²·H·W`; an up-2
//! layer thus counts the 3×3 on the up-sampled grid, which is what the
//! fused kernel computes); `bwd` counts twice the forward (the input and
//! the weight gradient each cost one forward; the styles and demodulation
//! terms are negligible); the generator counts its synthesis
//! convolutions per image ([`synthesis_flops_per_image`]). Training rows
//! report images/s only. `fraction_of_peak` is GFLOP/s over the peak of
//! [`Peak`]: `--peak-tflops`, or for a few known GPUs their FP32
//! (non-tensor-core) datasheet peak, since the kernels run FP32 FMAs; the
//! rows at a tensor-core precision (`fwd tf32`, `bwd bf16`, ..., on devices
//! that run kernels) use the matching dense tensor-core peak
//! ([`tensor_core_peak`]) instead.
//!
//! Roofline floors of the modconv rows: `floor_compute_ms` = FLOPs / that
//! peak, `floor_memory_ms` = minimum bytes ([`Case::min_bytes`]: every FP32
//! tensor read or written once) / the memory bandwidth of the GPU by name
//! ([`memory_bandwidth`]); the table's `floor ms` is the larger, the
//! fastest the row could run. Null where the GPU is not known.
//!
//! # JSON (`"format": "stylegan2-bench/2"`)
//!
//! ```text
//! {
//!   "format": "stylegan2-bench/2",
//!   "implementation": "stylegan2",          // bench/torch_modconv.py: "torch"
//!   "device": "cuda:0",                     // --device as resolved
//!   "device_name": "NVIDIA H200",           // GPU name, CPU model, or "simulator"
//!   "iterations": 5,
//!   "peak_tflops": 67.0 | null,
//!   "peak_source": "--peak-tflops" | "FP32 datasheet peak of ..." | null,
//!   "modconv": null | {"cases": [{"name", "batch", "cin", "cout", "res",
//!       "up", "kernel", "padding", "demodulate", "flip_weight", "flops_fwd"}]},
//!   "generator": null | {"preset", "resolution", "batch", "flops_per_image"},
//!   "train": null | {"preset", "resolution", "batch", "modconv_path",
//!       "schedule": [[phase names of step s] for s in 0..16]},
//!   "rows": [{
//!       "section": "modconv" | "generator" | "train",
//!       "case": "conv 32x32" | "tiny 32x32 batch 8",
//!       "path": "unfused" | "grouped" | "fused" | "conv2d" (modconv, generator)
//!               | the training loop's path (train),
//!       "pass": "fwd" | "bwd" (modconv, generator: "fwd")
//!               | "fwd tf32" | "bwd tf32" | "fwd bf16" | ... | "bwd f16"
//!                 (modconv, paths "fused" and "conv2d")
//!               | "Gmain+Dmain" | "Gmain+Greg+Dmain" | "Gmain+Greg+Dmain+Dreg"
//!               | "amortized" (train),
//!       "median_ms": f64,
//!       "gflops": f64 | null,
//!       "images_per_s": f64 | null,              // generator, train
//!       "speedup_vs_unfused": f64 | null,        // unfused time / this time, same case and pass
//!       "fraction_of_peak": f64 | null,          // gflops / peak
//!       "floor_compute_ms": f64 | null,          // modconv: FLOPs / peak
//!       "floor_memory_ms": f64 | null            // modconv: min bytes / bandwidth
//!   }]
//! }
//! ```
//!
//! A section not run is `null` and has no rows. New keys may be added;
//! existing ones keep their meaning.

use crate::autograd;
use crate::error::{invalid, Error, Result};
use crate::model::{
    Architecture, Generator, GeneratorConfig, ModelConfig, SynthesisOptions, Truncation,
};
use crate::nn::{Ctx, NoiseMode};
use crate::ops::conv::{conv2d, Conv2d};
use crate::ops::modconv::{modulated_conv2d, ModConv, ModConvPath};
use crate::ops::precision::Precision;
use crate::ops::upfirdn::setup_filter;
use crate::train::{TrainOptions, Trainer, D_REG_INTERVAL, G_REG_INTERVAL};
use crate::{no_grad, Device, Tensor};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One benchmarked layer: a synthesis-layer shape of config-f.
#[derive(Clone, Debug)]
pub struct Case {
    pub name: &'static str,
    pub batch: usize,
    pub cin: usize,
    pub cout: usize,
    /// Input resolution (the output is twice that for `up2`).
    pub res: usize,
    pub p: ModConv,
}

impl Case {
    pub fn kernel(&self) -> usize {
        if self.p.padding == 0 {
            1
        } else {
            3
        }
    }

    /// Multiply-adds of the convolution counted as 2 FLOPs, at the output resolution.
    pub fn flops(&self) -> f64 {
        let out = self.res * self.p.up;
        2.0 * (self.batch * self.cout * self.cin * self.kernel() * self.kernel() * out * out) as f64
    }

    /// Minimum memory traffic in bytes of the forward and of the backward:
    /// every FP32 tensor the op reads or writes, once (forward: x, w, y;
    /// backward: gy, x, w read, gx, gw written), the styles left out.
    pub fn min_bytes(&self) -> [f64; 2] {
        let k = self.kernel();
        let out = self.res * self.p.up;
        let x = (self.batch * self.cin * self.res * self.res) as f64;
        let w = (self.cout * self.cin * k * k) as f64;
        let y = (self.batch * self.cout * out * out) as f64;
        [4.0 * (x + w + y), 4.0 * (y + 2.0 * x + 2.0 * w)]
    }

    /// The case as in the JSON's `modconv.cases`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "batch": self.batch,
            "cin": self.cin,
            "cout": self.cout,
            "res": self.res,
            "up": self.p.up,
            "kernel": self.kernel(),
            "padding": self.p.padding,
            "demodulate": self.p.demodulate,
            "flip_weight": self.p.flip_weight,
            "flops_fwd": self.flops(),
        })
    }
}

/// Size of the modconv suite.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scale {
    /// Config-f channels.
    Full,
    /// Channels ÷ 8: a fast smoke run.
    Quick,
    /// Channels ÷ 64, resolutions ÷ 4, batch 2: for the simulator.
    Tiny,
}

/// The default suite: config-f layers at 8, 32 and 64 pixels, an up-sampling
/// layer and ToRGB. `quick` shrinks channels for a fast smoke run.
pub fn default_cases(quick: bool) -> Vec<Case> {
    cases(if quick { Scale::Quick } else { Scale::Full })
}

/// The suite of [`default_cases`] at a [`Scale`].
pub fn cases(scale: Scale) -> Vec<Case> {
    let c = |full: usize| match scale {
        Scale::Full => full,
        Scale::Quick => full / 8,
        Scale::Tiny => full / 64,
    };
    let r = |full: usize| if scale == Scale::Tiny { full / 4 } else { full };
    let batch = if scale == Scale::Tiny { 2 } else { 4 };
    vec![
        Case {
            name: "conv 8x8",
            batch,
            cin: c(512),
            cout: c(512),
            res: r(8),
            p: ModConv::conv3x3(),
        },
        Case {
            name: "conv 32x32",
            batch,
            cin: c(512),
            cout: c(512),
            res: r(32),
            p: ModConv::conv3x3(),
        },
        Case {
            name: "conv 64x64",
            batch,
            cin: c(256),
            cout: c(256),
            res: r(64),
            p: ModConv::conv3x3(),
        },
        Case {
            name: "conv up2 32->64",
            batch,
            cin: c(512),
            cout: c(256),
            res: r(32),
            p: ModConv::conv3x3_up2(),
        },
        Case {
            name: "torgb 64x64",
            batch,
            cin: c(256),
            cout: 3,
            res: r(64),
            p: ModConv::torgb(),
        },
    ]
}

/// What to benchmark.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Section {
    Modconv,
    Generator,
    Train,
}

impl Section {
    pub const ALL: [Section; 3] = [Section::Modconv, Section::Generator, Section::Train];

    pub fn name(self) -> &'static str {
        match self {
            Section::Modconv => "modconv",
            Section::Generator => "generator",
            Section::Train => "train",
        }
    }

    /// Parses an `--only` value.
    pub fn parse(s: &str) -> Result<Section> {
        Section::ALL
            .into_iter()
            .find(|x| x.name() == s)
            .ok_or_else(|| Error::Invalid {
                op: "bench",
                msg: format!(
                    "unknown section '{s}' for --only: expected modconv, generator or train"
                ),
            })
    }
}

/// The device's peak arithmetic rate, for the `fraction_of_peak` column.
#[derive(Clone, Debug, PartialEq)]
pub struct Peak {
    pub tflops: f64,
    /// Where the number comes from.
    pub source: String,
}

impl Peak {
    /// A peak given on the command line.
    pub fn given(tflops: f64) -> Result<Peak> {
        if !(tflops.is_finite() && tflops > 0.0) {
            return invalid(
                "bench",
                format!("--peak-tflops {tflops} must be a positive number"),
            );
        }
        Ok(Peak {
            tflops,
            source: "--peak-tflops".into(),
        })
    }

    /// The FP32 (non-tensor-core, boost clock) datasheet peak of a few GPUs
    /// by their driver name; `None` for the rest, which need `--peak-tflops`.
    pub fn known(device_name: &str) -> Option<Peak> {
        let n = device_name.to_ascii_uppercase();
        // Most specific first: the NVL and PCIe boards clock lower than SXM.
        let table: &[(&[&str], f64)] = &[
            (&["H200", "NVL"], 60.0),
            (&["H200"], 67.0),
            (&["H100", "PCIE"], 51.0),
            (&["H100", "NVL"], 60.0),
            (&["H100"], 67.0),
            (&["A100"], 19.5),
        ];
        by_name(&n, table).map(|tflops| Peak {
            tflops,
            source: format!("FP32 datasheet peak of '{device_name}'"),
        })
    }
}

/// Dense tensor-core datasheet peaks (TFLOP/s, boost clock, no sparsity) of
/// a few GPUs by their driver name, for the rows at `precision`
/// (TF32, BF16/FP16); `None` for F32 and for other GPUs (the NVL boards
/// included: their clocks differ from the SXM parts').
pub fn tensor_core_peak(device_name: &str, precision: Precision) -> Option<f64> {
    let n = device_name.to_ascii_uppercase();
    if n.contains("NVL") {
        return None;
    }
    // (name keys, (TF32, BF16/FP16)); most specific first.
    let table: &[(&[&str], (f64, f64))] = &[
        (&["H200"], (494.7, 989.4)),
        (&["H100", "PCIE"], (378.0, 756.0)),
        (&["H100"], (494.7, 989.4)),
        (&["A100"], (156.0, 312.0)),
    ];
    let (tf32, half) = by_name(&n, table)?;
    match precision {
        Precision::F32 => None,
        Precision::TF32 => Some(tf32),
        Precision::BF16 | Precision::F16 => Some(half),
    }
}

/// Datasheet memory bandwidth (TB/s) of a few GPUs by their driver name,
/// for the rows' memory floor; `None` for the others.
pub fn memory_bandwidth(device_name: &str) -> Option<f64> {
    let n = device_name.to_ascii_uppercase();
    // Most specific first.
    let table: &[(&[&str], f64)] = &[
        (&["H200", "NVL"], 4.8),
        (&["H200"], 4.8),
        (&["H100", "PCIE"], 2.0),
        (&["H100", "NVL"], 3.9),
        (&["H100"], 3.35),
        (&["A100", "80GB"], 2.039),
        (&["A100"], 1.555),
    ];
    by_name(&n, table)
}

/// The value of the first row of `table` whose name keys all occur in the
/// upper-case device name `n`.
fn by_name<T: Copy>(n: &str, table: &[(&[&str], T)]) -> Option<T> {
    table
        .iter()
        .find(|(keys, _)| keys.iter().all(|k| n.contains(k)))
        .map(|&(_, v)| v)
}

/// The generator/train network setting.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSetting {
    pub preset: String,
    pub resolution: usize,
    pub batch: usize,
}

impl ModelSetting {
    /// The default for `device` (see the module doc), with overrides.
    pub fn for_device(
        device: Device,
        quick: bool,
        preset: Option<String>,
        resolution: Option<usize>,
        batch: Option<usize>,
    ) -> Result<ModelSetting> {
        let (p, r, b) = match device {
            Device::Sim => ("tiny", 8, 4),
            _ if quick => ("tiny", 32, 8),
            Device::Cuda(_) => ("stylegan2", 256, 8),
            _ => ("tiny", 64, 8),
        };
        let s = ModelSetting {
            preset: preset.unwrap_or_else(|| p.into()),
            resolution: resolution.unwrap_or(r),
            batch: batch.unwrap_or(b),
        };
        if s.batch == 0 {
            return invalid("bench", "--batch must be at least 1");
        }
        // Checks the preset name and the resolution before anything runs.
        s.config()?;
        Ok(s)
    }

    pub fn config(&self) -> Result<ModelConfig> {
        ModelConfig::preset(&self.preset, self.resolution, 3, 0)
    }

    fn label(&self) -> String {
        format!(
            "{} {}x{} batch {}",
            self.preset, self.resolution, self.resolution, self.batch
        )
    }
}

/// Everything `stylegan2 bench` does.
#[derive(Clone, Debug)]
pub struct Options {
    pub device: Device,
    /// Timed runs per row (the median is reported); ≥ 1.
    pub iters: usize,
    pub sections: Vec<Section>,
    pub cases: Vec<Case>,
    pub model: ModelSetting,
    pub peak: Option<Peak>,
}

impl Options {
    /// The defaults of the module doc for `device`; `peak` from
    /// `peak_tflops`, else from the GPU's name when it is known.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        device: Device,
        iters: usize,
        quick: bool,
        only: &[Section],
        preset: Option<String>,
        resolution: Option<usize>,
        batch: Option<usize>,
        peak_tflops: Option<f64>,
    ) -> Result<Options> {
        if iters == 0 {
            return invalid("bench", "--iters must be at least 1");
        }
        let scale = match device {
            Device::Sim => Scale::Tiny,
            _ if quick => Scale::Quick,
            _ => Scale::Full,
        };
        let peak = match peak_tflops {
            Some(t) => Some(Peak::given(t)?),
            None => Peak::known(&device_name(device)),
        };
        let mut sections: Vec<Section> = if only.is_empty() {
            Section::ALL.to_vec()
        } else {
            only.to_vec()
        };
        sections.dedup();
        Ok(Options {
            device,
            iters,
            sections,
            cases: cases(scale),
            model: ModelSetting::for_device(device, quick, preset, resolution, batch)?,
            peak,
        })
    }
}

/// The GPU's name, the CPU's model, or "simulator".
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cuda(n) => crate::backend::cuda::device_name(n).unwrap_or_else(|_| "cuda".into()),
        Device::Sim => "simulator".into(),
        _ => std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split(':').nth(1))
                    .map(|m| m.trim().to_string())
            })
            .unwrap_or_else(|| "cpu".into()),
    }
}

/// A measured row of a table.
#[derive(Clone, Debug)]
pub struct Row {
    pub section: Section,
    pub case: String,
    pub path: String,
    pub pass: String,
    pub median: Duration,
    pub gflops: Option<f64>,
    pub images_per_s: Option<f64>,
    /// Time of the unfused path over this one (> 1: faster than unfused).
    pub speedup_vs_unfused: Option<f64>,
    pub fraction_of_peak: Option<f64>,
    /// Roofline floors of the row: its FLOPs at the peak it is compared
    /// with, and its minimum memory traffic at the device's bandwidth
    /// ([`memory_bandwidth`]); the larger one is the fastest the row can be.
    pub floor_compute_ms: Option<f64>,
    pub floor_memory_ms: Option<f64>,
}

impl Row {
    fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "section": self.section.name(),
            "case": self.case,
            "path": self.path,
            "pass": self.pass,
            "median_ms": self.median.as_secs_f64() * 1e3,
            "gflops": self.gflops,
            "images_per_s": self.images_per_s,
            "speedup_vs_unfused": self.speedup_vs_unfused,
            "fraction_of_peak": self.fraction_of_peak,
            "floor_compute_ms": self.floor_compute_ms,
            "floor_memory_ms": self.floor_memory_ms,
        })
    }
}

/// The column header of the tables (with `% peak` when a peak is known).
pub fn header(peak: bool) -> String {
    let mut s = format!(
        "{:<24} {:<8} {:<22} {:>10} {:>9} {:>9} {:>10}",
        "case", "path", "pass", "ms", "GFLOP/s", "img/s", "vs unfused"
    );
    if peak {
        s.push_str(&format!(" {:>7}", "% peak"));
    }
    s.push_str(&format!(" {:>9}", "floor ms"));
    s
}

/// One table line; `-` where a figure does not apply.
pub fn format_row(r: &Row, peak: bool) -> String {
    let opt = |v: Option<f64>, w: usize, prec: usize, suffix: &str| match v {
        Some(v) => format!("{:>w$}", format!("{v:.prec$}{suffix}")),
        None => format!("{:>w$}", "-"),
    };
    let mut s = format!(
        "{:<24} {:<8} {:<22} {:>10.2} {} {} {}",
        r.case,
        r.path,
        r.pass,
        r.median.as_secs_f64() * 1e3,
        opt(r.gflops, 9, 1, ""),
        opt(r.images_per_s, 9, 2, ""),
        opt(r.speedup_vs_unfused, 10, 2, "x"),
    );
    if peak {
        s.push(' ');
        s.push_str(&opt(r.fraction_of_peak.map(|f| f * 100.0), 7, 1, "%"));
    }
    s.push(' ');
    let floor = match (r.floor_compute_ms, r.floor_memory_ms) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    s.push_str(&opt(floor, 9, 3, ""));
    s
}

/// Median wall time of `f` over `iters` runs after one warm-up run.
fn time(device: Device, iters: usize, mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    f()?;
    device.synchronize()?;
    let mut ts = Vec::with_capacity(iters.max(1));
    for _ in 0..iters.max(1) {
        let t0 = Instant::now();
        f()?;
        // GPU launches return before the kernels finish.
        device.synchronize()?;
        ts.push(t0.elapsed());
    }
    ts.sort();
    Ok(ts[ts.len() / 2])
}

const PATHS: [ModConvPath; 3] = [
    ModConvPath::Unfused,
    ModConvPath::Grouped,
    ModConvPath::Fused,
];

/// The tensor-core precisions of the fused and conv2d rows.
const TC_PRECISIONS: [Precision; 3] = [Precision::TF32, Precision::BF16, Precision::F16];

fn path_name(p: ModConvPath) -> String {
    format!("{p:?}").to_lowercase()
}

/// Builds rows, filling in the ratios and the fraction of peak.
struct Rows<'a> {
    rows: Vec<Row>,
    peak: Option<f64>,
    /// The device's name, for the tensor-core peaks of the precision rows.
    device_name: String,
    /// TB/s, for the memory floor.
    bandwidth: Option<f64>,
    report: &'a mut dyn FnMut(&Row),
}

impl Rows<'_> {
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        section: Section,
        case: &str,
        path: &str,
        pass: &str,
        median: Duration,
        flops: Option<f64>,
        images: Option<usize>,
    ) {
        let peak = self.peak;
        self.push_with_peak(section, case, path, pass, median, flops, images, peak, None);
    }

    /// A modconv-section row (a convolution) at `precision`: its pass is
    /// `pass`, or `pass <precision>` for the tensor-core precisions, whose
    /// fraction of peak and compute floor use the matching tensor-core
    /// peak (when the GPU is known); `bytes` is its minimum memory traffic.
    #[allow(clippy::too_many_arguments)]
    fn push_conv(
        &mut self,
        case: &str,
        path: &str,
        pass: &str,
        median: Duration,
        flops: f64,
        bytes: f64,
        precision: Precision,
    ) {
        let (pass, peak) = match precision {
            Precision::F32 => (pass.to_string(), self.peak),
            p => (
                format!("{pass} {p}"),
                tensor_core_peak(&self.device_name, p),
            ),
        };
        self.push_with_peak(
            Section::Modconv,
            case,
            path,
            &pass,
            median,
            Some(flops),
            None,
            peak,
            Some(bytes),
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn push_with_peak(
        &mut self,
        section: Section,
        case: &str,
        path: &str,
        pass: &str,
        median: Duration,
        flops: Option<f64>,
        images: Option<usize>,
        peak: Option<f64>,
        bytes: Option<f64>,
    ) {
        let secs = median.as_secs_f64().max(1e-12);
        let gflops = flops.map(|f| f / secs / 1e9);
        // The unfused row of the same case and pass is always pushed first;
        // training has a single path.
        let unfused = match (section, path) {
            (Section::Train, _) => None,
            (_, "unfused") => Some(secs),
            _ => self
                .rows
                .iter()
                .find(|r| {
                    r.section == section && r.case == case && r.pass == pass && r.path == "unfused"
                })
                .map(|r| r.median.as_secs_f64()),
        };
        let row = Row {
            section,
            case: case.into(),
            path: path.into(),
            pass: pass.into(),
            median,
            gflops,
            images_per_s: images.map(|n| n as f64 / secs),
            speedup_vs_unfused: unfused.map(|u| u / secs),
            fraction_of_peak: gflops.zip(peak).map(|(g, p)| g / (p * 1e3)),
            // TFLOP/s → ms: FLOPs / (p · 1e12) · 1e3; TB/s likewise.
            floor_compute_ms: flops.zip(peak).map(|(f, p)| f / (p * 1e9)),
            floor_memory_ms: bytes.zip(self.bandwidth).map(|(b, bw)| b / (bw * 1e9)),
        };
        (self.report)(&row);
        self.rows.push(row);
    }
}

/// Forward and backward of every case on each path, and the plain conv2d
/// of the same shape (what modulation costs on top) where there is no
/// up-sampling.
fn modconv_section(opts: &Options, out: &mut Rows) -> Result<()> {
    let (device, iters) = (opts.device, opts.iters);
    let mut rng = crate::rng(0);
    let filter = setup_filter(&[1.0, 3.0, 3.0, 1.0], device)?;
    for case in &opts.cases {
        let k = case.kernel();
        let leaf = |t: Tensor| -> Result<Tensor> {
            t.set_requires_grad(true)?;
            Ok(t)
        };
        let x = leaf(Tensor::randn(
            vec![case.batch, case.cin, case.res, case.res],
            &mut rng,
            device,
        ))?;
        let w = leaf(Tensor::randn(
            vec![case.cout, case.cin, k, k],
            &mut rng,
            device,
        ))?;
        let s = leaf(
            Tensor::randn(vec![case.batch, case.cin], &mut rng, device)
                .add_scalar(1.0)?
                .detach(),
        )?;
        let conv = Conv2d {
            padding: [case.p.padding; 2],
            ..Default::default()
        };
        let plain = case.p.up == 1;
        let flops = case.flops();
        let [bytes_fwd, bytes_bwd] = case.min_bytes();
        // On the CPU every precision computes in FP32: only the FP32 rows.
        let tc: &[Precision] = if device.runs_kernels() {
            &TC_PRECISIONS
        } else {
            &[]
        };
        {
            let _g = no_grad();
            for path in PATHS {
                let t = time(device, iters, || {
                    modulated_conv2d(&x, &w, &s, Some(&filter), case.p, path).map(drop)
                })?;
                let p = path_name(path);
                out.push_conv(case.name, &p, "fwd", t, flops, bytes_fwd, Precision::F32);
            }
            for &prec in tc {
                let p = case.p.with_precision(prec);
                let t = time(device, iters, || {
                    modulated_conv2d(&x, &w, &s, Some(&filter), p, ModConvPath::Fused).map(drop)
                })?;
                out.push_conv(case.name, "fused", "fwd", t, flops, bytes_fwd, prec);
            }
            if plain {
                for &prec in [Precision::F32].iter().chain(tc) {
                    let c = Conv2d {
                        precision: prec,
                        ..conv
                    };
                    let t = time(device, iters, || conv2d(&x, &w, c).map(drop))?;
                    out.push_conv(case.name, "conv2d", "fwd", t, flops, bytes_fwd, prec);
                }
            }
        }
        // The graph is built once; grad() leaves it intact for the next run.
        let inputs = [x.clone(), w.clone(), s.clone()];
        let fused_at = tc.iter().map(|&p| (ModConvPath::Fused, p));
        for (path, prec) in PATHS
            .map(|p| (p, Precision::F32))
            .into_iter()
            .chain(fused_at)
        {
            let y = modulated_conv2d(&x, &w, &s, Some(&filter), case.p.with_precision(prec), path)?;
            let gy = Tensor::randn(y.dims().to_vec(), &mut rng, device);
            let t = time(device, iters, || {
                autograd::grad(
                    std::slice::from_ref(&y),
                    &inputs,
                    Some(std::slice::from_ref(&gy)),
                    false,
                )
                .map(drop)
            })?;
            let p = path_name(path);
            out.push_conv(case.name, &p, "bwd", t, 2.0 * flops, bytes_bwd, prec);
        }
        if plain {
            for &prec in [Precision::F32].iter().chain(tc) {
                let c = Conv2d {
                    precision: prec,
                    ..conv
                };
                let y = conv2d(&x, &w, c)?;
                let gy = Tensor::randn(y.dims().to_vec(), &mut rng, device);
                let t = time(device, iters, || {
                    autograd::grad(
                        std::slice::from_ref(&y),
                        &inputs[..2],
                        Some(std::slice::from_ref(&gy)),
                        false,
                    )
                    .map(drop)
                })?;
                out.push_conv(case.name, "conv2d", "bwd", t, 2.0 * flops, bytes_bwd, prec);
            }
        }
    }
    Ok(())
}

/// FLOPs (multiply-add = 2) of the synthesis network's convolutions for one
/// image, counted as [`Case::flops`] counts them; the mapping network, FIR
/// filters and bias/activation are left out (a few percent at most).
pub fn synthesis_flops_per_image(g: &GeneratorConfig) -> f64 {
    let mut macs = 0usize;
    for r in g.block_resolutions() {
        let out = g.channels(r);
        let inp = if r == 4 { 0 } else { g.channels(r / 2) };
        let px = r * r;
        if inp != 0 {
            macs += inp * out * 9 * px; // conv0, up 2
            if g.architecture == Architecture::Resnet {
                macs += inp * out * px; // 1×1 skip, up 2
            }
        }
        macs += out * out * 9 * px; // conv1
        if g.architecture == Architecture::Skip || r == g.img_resolution {
            macs += out * g.img_channels * px; // ToRGB
        }
    }
    2.0 * macs as f64
}

fn generator_section(opts: &Options, out: &mut Rows) -> Result<serde_json::Value> {
    let device = opts.device;
    let m = &opts.model;
    let cfg = m.config()?;
    let mut rng = crate::rng(0);
    let g = Generator::new(&cfg.generator, &mut rng, device)?;
    let z = Tensor::randn(vec![m.batch, cfg.generator.z_dim], &mut rng, device);
    let per_image = synthesis_flops_per_image(&cfg.generator);
    let _g = no_grad();
    let case = m.label();
    for path in PATHS {
        let so = SynthesisOptions {
            noise_mode: NoiseMode::Const,
            path,
            ..Default::default()
        };
        let t = time(device, opts.iters, || {
            g.forward(&z, None, Truncation::default(), so, &mut Ctx::new())
                .map(drop)
        })?;
        let flops = per_image * m.batch as f64;
        out.push(
            Section::Generator,
            &case,
            &path_name(path),
            "fwd",
            t,
            Some(flops),
            Some(m.batch),
        );
    }
    Ok(serde_json::json!({
        "preset": m.preset,
        "resolution": m.resolution,
        "batch": m.batch,
        "flops_per_image": per_image,
    }))
}

/// Removes the trainer's scratch run directory however the section ends.
struct ScratchDir(PathBuf);

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn train_section(opts: &Options, out: &mut Rows) -> Result<serde_json::Value> {
    let device = opts.device;
    let m = &opts.model;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let scratch = ScratchDir(
        std::env::temp_dir().join(format!("stylegan2-bench-{}-{nanos}", std::process::id())),
    );
    let mut trainer = Trainer::new(TrainOptions {
        preset: Some(m.preset.clone()),
        resolution: Some(m.resolution),
        batch: Some(m.batch),
        kimg: 1.0,
        snap_kimg: 0.0,
        grid: 1,
        device,
        run_dir: Some(scratch.0.clone()),
        progress: false,
        ..TrainOptions::default()
    })?;
    // The official phases whatever the preset's demo defaults: the step is
    // timed against the official code.
    trainer.official_loss();
    let period = G_REG_INTERVAL * D_REG_INTERVAL / gcd(G_REG_INTERVAL, D_REG_INTERVAL);
    let name = |phases: &[(crate::train::Phase, usize)]| {
        phases
            .iter()
            .map(|(p, _)| p.name())
            .collect::<Vec<_>>()
            .join("+")
    };
    let schedule: Vec<String> = (0..period as u64)
        .map(|s| name(&trainer.phases_of(s)))
        .collect();
    // Each distinct phase set once, in order of the number of phases.
    let mut kinds: Vec<(String, u64)> = Vec::new();
    for (s, n) in schedule.iter().enumerate() {
        if !kinds.iter().any(|(k, _)| k == n) {
            kinds.push((n.clone(), s as u64));
        }
    }
    kinds.sort_by_key(|(k, _)| k.matches('+').count());
    let case = m.label();
    // The loop uses the default path, which depends on the device.
    let path = path_name(SynthesisOptions::default().path.resolve(device));
    let mut medians = Vec::new();
    for (kind, step) in &kinds {
        let t = time(device, opts.iters, || {
            trainer.step = *step;
            trainer.step()
        })?;
        out.push(Section::Train, &case, &path, kind, t, None, Some(m.batch));
        medians.push((kind.clone(), t));
    }
    let total: Duration = schedule
        .iter()
        .map(|n| {
            medians
                .iter()
                .find(|(k, _)| k == n)
                .map_or(Duration::ZERO, |m| m.1)
        })
        .sum();
    out.push(
        Section::Train,
        &case,
        &path,
        "amortized",
        total / period as u32,
        None,
        Some(m.batch),
    );
    drop(trainer);
    drop(scratch);
    Ok(serde_json::json!({
        "preset": m.preset,
        "resolution": m.resolution,
        "batch": m.batch,
        "modconv_path": path,
        "schedule": schedule.iter().map(|s| s.split('+').collect::<Vec<_>>()).collect::<Vec<_>>(),
    }))
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The results of a run.
#[derive(Clone, Debug)]
pub struct Report {
    pub device: Device,
    pub device_name: String,
    pub iters: usize,
    pub peak: Option<Peak>,
    pub cases: Option<Vec<Case>>,
    pub generator: Option<serde_json::Value>,
    pub train: Option<serde_json::Value>,
    pub rows: Vec<Row>,
}

impl Report {
    /// The JSON of the module doc.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "format": "stylegan2-bench/2",
            "implementation": "stylegan2",
            "device": self.device.to_string(),
            "device_name": self.device_name,
            "iterations": self.iters,
            "peak_tflops": self.peak.as_ref().map(|p| p.tflops),
            "peak_source": self.peak.as_ref().map(|p| p.source.clone()),
            "modconv": self.cases.as_ref().map(|c| serde_json::json!({
                "cases": c.iter().map(Case::to_json).collect::<Vec<_>>(),
            })),
            "generator": self.generator,
            "train": self.train,
            "rows": self.rows.iter().map(Row::to_json).collect::<Vec<_>>(),
        })
    }
}

/// Runs the chosen sections in order. `say` gets each section's title and
/// table header; `report` each row as it is measured.
pub fn run(
    opts: &Options,
    say: &mut dyn FnMut(&str),
    report: &mut dyn FnMut(&Row),
) -> Result<Report> {
    let mut rows = Rows {
        rows: Vec::new(),
        peak: opts.peak.as_ref().map(|p| p.tflops),
        device_name: device_name(opts.device),
        bandwidth: memory_bandwidth(&device_name(opts.device)),
        report,
    };
    let mut rep = Report {
        device: opts.device,
        device_name: device_name(opts.device),
        iters: opts.iters,
        peak: opts.peak.clone(),
        cases: None,
        generator: None,
        train: None,
        rows: Vec::new(),
    };
    let head = header(opts.peak.is_some());
    let on = format!(
        "on {} ({}), median of {} runs",
        opts.device, rep.device_name, opts.iters
    );
    for &section in &opts.sections {
        match section {
            Section::Modconv => {
                say(&format!("\nmodulated convolution {on}"));
                say(&head);
                modconv_section(opts, &mut rows)?;
                rep.cases = Some(opts.cases.clone());
            }
            Section::Generator => {
                say(&format!("\ngenerator forward {on}"));
                say(&head);
                rep.generator = Some(generator_section(opts, &mut rows)?);
            }
            Section::Train => {
                say(&format!("\ntraining step {on}"));
                say(&head);
                rep.train = Some(train_section(opts, &mut rows)?);
            }
        }
    }
    rep.rows = rows.rows;
    Ok(rep)
}
