//! The `stylegan2` command line.

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use stylegan2::augment::preview::augment_grid;
use stylegan2::augment::{AugMode, AugmentPipe};
use stylegan2::data::tool::{convert, ConvertOptions, Transform};
use stylegan2::flags::RangeList;
use stylegan2::model::cli::{self as mcli, GenerateOptions};
use stylegan2::model::{
    load_generator, save_networks, Discriminator, Generator, ModelConfig, Truncation,
};
use stylegan2::nn::synthesis::NoiseMode;
use stylegan2::ops::modconv::ModConvPath;
use stylegan2::train::{self, TrainOptions};
use stylegan2::{bench, flags, fsio, Device};

#[derive(Parser)]
#[command(
    name = "stylegan2",
    version,
    about = "StyleGAN2 on hand-written CUDA kernels"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train StyleGAN2 (the official loss, lazy regularization, G EMA).
    /// With no flags: the tiny network on built-in synthetic 32×32 images
    /// (discs, rectangles, rings), conditional on the shape kind, for 16
    /// kimg with the SWD and a plot at each snapshot, a demo of about 4
    /// minutes on a 2-core CPU.
    Train {
        /// Data: `synthetic` (built in, procedural shapes; `synthetic:N` for
        /// N images) or a directory / .zip of PNG or JPEG images (square,
        /// one power-of-two size; labels for --cond in a dataset.json at
        /// its root, see `stylegan2 dataset`). Every image is decoded once
        /// when the run starts.
        #[arg(long, default_value = "synthetic")]
        data: String,
        /// Network preset: tiny, stylegan2, paper256, paper512, paper1024,
        /// cifar or auto [default: tiny, or the resumed snapshot's].
        #[arg(long = "cfg", visible_alias = "preset")]
        cfg: Option<String>,
        /// Resolution of the synthetic data, a power of two from 8 to 1024
        /// (a folder's images set their own, which this must match)
        /// [default: 32].
        #[arg(long, value_parser = flags::network_resolution)]
        resolution: Option<usize>,
        /// Total batch size [default: the preset's; tiny: 16].
        #[arg(long, value_parser = flags::usize_in(1, flags::MAX_BATCH))]
        batch: Option<usize>,
        /// Train until this many thousand real images have been shown (the
        /// default: the demo's length; the README's demo section has its
        /// runs).
        #[arg(long, default_value_t = 16.0, value_parser = flags::positive_f64(flags::MAX_KIMG))]
        kimg: f64,
        /// Learning rate of G and D [default: the preset's; tiny: G 0.0025,
        /// D 0.0015].
        #[arg(long, value_parser = flags::positive_f32(1.0))]
        lr: Option<f32>,
        /// Learning rate of G alone (overrides --lr).
        #[arg(long, value_parser = flags::positive_f32(1.0))]
        glr: Option<f32>,
        /// Learning rate of D alone (overrides --lr).
        #[arg(long, value_parser = flags::positive_f32(1.0))]
        dlr: Option<f32>,
        /// R1 regularization weight γ [default: the preset's].
        #[arg(long, value_parser = flags::f32_in(0.0, 1e6))]
        gamma: Option<f32>,
        /// Half-life of the G EMA in kimg [default: the preset's].
        #[arg(long, value_parser = flags::positive_f32(flags::MAX_KIMG as f32))]
        ema_kimg: Option<f32>,
        /// Write an image grid and a network snapshot every this many kimg
        /// (0: only at the end).
        #[arg(long, default_value_t = 1.0, value_parser = flags::f64_in(0.0, flags::MAX_KIMG))]
        snap_kimg: f64,
        /// Images in the snapshot grid (fixed seeds 0..N).
        #[arg(long, default_value_t = 32, value_parser = flags::usize_in(1, 1024))]
        grid: usize,
        /// Also train on x-flipped images.
        #[arg(long)]
        mirror: bool,
        /// Seed of the initial weights, the data order and the latents.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// auto (the GPU if one is found, else the CPU), cpu, cuda, cuda:N or sim.
        #[arg(long, default_value = "auto")]
        device: String,
        /// Parent directory of the numbered run directories.
        #[arg(long, default_value = "training-runs", value_parser = flags::path)]
        outdir: PathBuf,
        /// Continue from a network snapshot (optimizer state and counters
        /// included); --kimg is the total, counting the images already shown.
        /// An NVIDIA network pickle (.pkl) starts a transfer run: its
        /// networks, fresh optimizer state, kimg 0, training defaults from
        /// --cfg [default: auto].
        #[arg(long, value_parser = flags::path)]
        resume: Option<PathBuf>,
        /// Freeze-D: do not train the first N layers of D (official
        /// --freezed; layers count fromrgb, conv0, conv1, skip per block from
        /// the highest resolution) [default: 0, or the snapshot's].
        #[arg(long)]
        freezed: Option<usize>,
        /// Disable mixed precision (official --fp32): every block computes
        /// in FP32 and conv_clamp is off, on any device. Without it the
        /// preset's num_fp16_res highest resolutions compute in FP16 on a
        /// GPU or the simulator (the CPU always computes in FP32).
        #[arg(long)]
        fp32: bool,
        /// No progress bar or status lines.
        #[arg(long)]
        quiet: bool,
        /// Metrics of G_ema at each snapshot, added to stats.jsonl and
        /// plotted in stats.png: swd, none, or auto (swd for images of at
        /// least 16×16, else none).
        #[arg(long, default_value = "auto", value_delimiter = ',')]
        metrics: Vec<String>,
        /// Images per set for --metrics [default: 256 for tiny, else 1024].
        #[arg(long, value_parser = flags::usize_in(1, MAX_METRIC_IMAGES))]
        metrics_num: Option<usize>,
        /// Conditional training on the dataset's labels (dataset.json; with
        /// synthetic data the shape kind, 3 classes, and the snapshot grid
        /// one kind per row). `--cond false` trains unconditionally
        /// [default: true for synthetic data (the demo: unconditional, the
        /// tiny G drew blobs after 14 kimg, conditional it draws each kind),
        /// false for folders, zips and --resume (the snapshot decides)].
        #[arg(long, num_args = 0..=1, default_missing_value = "true", value_parser = clap::value_parser!(bool))]
        cond: Option<bool>,
        /// How G's modulated convolutions run: auto (fused on a GPU or the
        /// simulator, unfused on the CPU), unfused, grouped or fused.
        #[arg(long, default_value = "auto")]
        modconv: String,
        /// Discriminator augmentation: ada (adaptive p), noaug or fixed (p
        /// = --p) [default: ada for image folders and zips, noaug for
        /// synthetic data].
        #[arg(long)]
        aug: Option<String>,
        /// Augmentation probability: fixed (--aug fixed, required) or
        /// initial (--aug ada) [default: 0].
        #[arg(long = "p", value_parser = flags::f32_in(0.0, 1.0))]
        augment_p: Option<f32>,
        /// ADA target of r_t = E[sign(D(real))] [default: 0.6].
        #[arg(long, value_parser = flags::f64_in(0.0, 1.0))]
        target: Option<f64>,
        /// Augment pipeline: blit, geom, color, filter, noise, cutout, bg,
        /// bgc, bgcf, bgcfn or bgcfnc [default: bgc].
        #[arg(long)]
        augpipe: Option<String>,
        /// ADA speed: p moves by at most 1 per this many kimg [default: 500].
        #[arg(long, value_parser = flags::positive_f64(flags::MAX_KIMG))]
        ada_kimg: Option<f64>,
        /// Skip images that cannot be decoded (corrupt, truncated,
        /// unsupported, transparent), counting and listing them, instead of
        /// refusing the dataset.
        #[arg(long)]
        skip_bad: bool,
    },
    /// Write a grid of augmented reals (top row: the images; below: several
    /// draws of the augment pipeline at probability --p) to see what D sees.
    Augment {
        /// `synthetic`, `synthetic:N`, or a directory / .zip of images.
        #[arg(long)]
        data: String,
        /// Augmentation probability.
        #[arg(long, default_value_t = 0.5, value_parser = flags::f32_in(0.0, 1.0))]
        p: f32,
        /// Augment pipeline preset (see `train --augpipe`).
        #[arg(long, default_value = "bgc")]
        augpipe: String,
        /// Images per row (the first N of the dataset).
        #[arg(long, default_value_t = 8, value_parser = flags::usize_in(1, 256))]
        num: usize,
        /// Rows of augmented copies.
        #[arg(long, default_value_t = 7, value_parser = flags::usize_in(1, 64))]
        draws: usize,
        /// Seed of synthetic data and of the augmentation draws.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// cpu, auto (the GPU if one is found, else the CPU), cuda, cuda:N or sim.
        #[arg(long, default_value = "cpu")]
        device: String,
        /// The grid PNG to write.
        #[arg(long, value_parser = flags::path)]
        out: PathBuf,
    },
    /// Make a training dataset (a simplified official dataset_tool.py):
    /// numbered PNGs 00000/img00000000.png and a dataset.json (labels
    /// carried over from the source's dataset.json).
    Dataset {
        /// A directory (searched recursively) or .zip of PNG/JPEG images,
        /// or `synthetic` / `synthetic:N`: the built-in set as `train`
        /// draws it (seed 0, --resolution or 32), its shape kinds as class
        /// labels.
        #[arg(long, value_parser = flags::path)]
        source: PathBuf,
        /// Output: a .zip file or a directory (must not exist or be empty).
        #[arg(long, value_parser = flags::path)]
        dest: PathBuf,
        /// Output resolution, a power of two (required by the crops)
        /// [default: the images' own, which must then be square].
        #[arg(long, value_parser = flags::resolution)]
        resolution: Option<usize>,
        /// none (stretch to --resolution if given), center-crop or
        /// center-crop-wide (full width, letterboxed).
        #[arg(long, default_value = "none")]
        transform: String,
        /// No progress bar.
        #[arg(long)]
        quiet: bool,
        /// Skip source images that cannot be decoded, counting and listing
        /// them, instead of stopping.
        #[arg(long)]
        skip_bad: bool,
    },
    /// Benchmark the modulated convolution paths (forward and backward),
    /// the generator forward and a training step; prints tables and writes
    /// JSON (format: the doc of src/bench.rs).
    Bench {
        /// auto (the GPU if one is found, else the CPU), cpu, cuda, cuda:N or sim.
        #[arg(long, default_value = "auto")]
        device: String,
        /// Timed iterations per row (the median is reported).
        #[arg(long, default_value_t = 5, value_parser = flags::usize_in(1, 100_000))]
        iters: usize,
        /// A fast smoke run: modconv channels ÷ 8; generator and training
        /// step with the tiny preset at 32×32, batch 8. Without it: config-f
        /// layers, and for generator/train the stylegan2 preset (config-f)
        /// at 256×256 batch 8 on a GPU, tiny at 64×64 batch 8 on the CPU.
        #[arg(long)]
        quick: bool,
        /// Sections to run: modconv, generator, train (comma-separated or
        /// repeated) [default: all].
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Network preset of the generator and train sections.
        #[arg(long = "cfg", visible_alias = "preset")]
        cfg: Option<String>,
        /// Image resolution of the generator and train sections.
        #[arg(long, value_parser = flags::resolution)]
        resolution: Option<usize>,
        /// Batch of the generator and train sections.
        #[arg(long, value_parser = flags::usize_in(1, flags::MAX_BATCH))]
        batch: Option<usize>,
        /// The device's peak in TFLOP/s: adds a "% peak" column [default:
        /// the FP32 datasheet peak for H100/H200/A100, else none].
        #[arg(long, value_parser = flags::positive_f64(1e6))]
        peak_tflops: Option<f64>,
        /// Where to write the results as JSON.
        #[arg(long, default_value = "bench.json", value_parser = flags::path)]
        out: PathBuf,
    },
    /// Write a freshly initialized network file (G, D, G_ema) for a preset.
    Init {
        /// stylegan2, paper256, paper512, paper1024, cifar, auto or tiny.
        #[arg(long = "cfg", visible_alias = "preset", default_value = "tiny")]
        cfg: String,
        /// Image resolution, a power of two from 8 to 1024.
        #[arg(long, default_value_t = 32, value_parser = flags::network_resolution)]
        resolution: usize,
        /// Image channels: 1 (gray) or 3 (RGB).
        #[arg(long, default_value_t = 3, value_parser = flags::usize_in(1, 3))]
        channels: usize,
        /// Label dimensions (0: unconditional).
        #[arg(long, default_value_t = 0, value_parser = flags::usize_in(0, 65536))]
        c_dim: usize,
        /// Seed of the initial weights.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// The network file to write (.safetensors).
        #[arg(long, value_parser = flags::path)]
        out: PathBuf,
    },
    /// Write one PNG per seed and a grid PNG into --outdir.
    Generate {
        /// A network file or training snapshot (G_ema is used).
        #[arg(long, visible_alias = "weights", value_parser = flags::path)]
        network: PathBuf,
        /// Seeds: "0-15", "1,5,9" or a mix (at most 100000).
        #[arg(long, default_value = "0-15")]
        seeds: String,
        /// Truncation ψ (1: none), within [-10, 10].
        #[arg(long, default_value_t = 1.0, value_parser = flags::f32_in(-10.0, 10.0))]
        trunc: f32,
        /// Truncate only the first N ws.
        #[arg(long, value_parser = flags::usize_in(0, 1024))]
        trunc_cutoff: Option<usize>,
        /// const, random or none.
        #[arg(long, default_value = "const")]
        noise_mode: String,
        /// Class of a conditional generator.
        #[arg(long, value_parser = flags::usize_in(0, 1 << 20))]
        class: Option<usize>,
        /// Latent of a seed: crate (the crate's generator) or numpy (the
        /// official generate.py's RandomState(seed).randn, which gives its
        /// images of an official network with --noise-mode const).
        #[arg(long, default_value = "crate")]
        latents: String,
        /// auto (the GPU if one is found, else the CPU), cpu, cuda, cuda:N or sim.
        #[arg(long, default_value = "auto")]
        device: String,
        /// Directory of the PNGs (created).
        #[arg(long, visible_alias = "out", value_parser = flags::path)]
        outdir: PathBuf,
    },
    /// The style-mixing figure: row seeds × column seeds, with the column
    /// seeds' styles at the chosen layers.
    StyleMix {
        /// A network file or training snapshot (G_ema is used).
        #[arg(long, visible_alias = "weights", value_parser = flags::path)]
        network: PathBuf,
        /// Row seeds (at most 256).
        #[arg(long, default_value = "0-4")]
        rows: String,
        /// Column seeds (at most 256).
        #[arg(long, default_value = "5-9")]
        cols: String,
        /// Indices of the ws taken from the column seeds, e.g. "0-6".
        #[arg(long, default_value = "0-6")]
        styles: String,
        /// Truncation ψ (1: none), within [-10, 10].
        #[arg(long, default_value_t = 1.0, value_parser = flags::f32_in(-10.0, 10.0))]
        trunc: f32,
        /// const, random or none.
        #[arg(long, default_value = "const")]
        noise_mode: String,
        /// Class of a conditional generator.
        #[arg(long, value_parser = flags::usize_in(0, 1 << 20))]
        class: Option<usize>,
        /// Latent of a seed: crate or numpy (the official style_mixing.py's).
        #[arg(long, default_value = "crate")]
        latents: String,
        /// auto (the GPU if one is found, else the CPU), cpu, cuda, cuda:N or sim.
        #[arg(long, default_value = "auto")]
        device: String,
        /// Directory of the figure, written as grid.png (created), as the
        /// official style_mixing.py --outdir (which also writes each cell).
        #[arg(long, value_parser = flags::path, required_unless_present = "out", conflicts_with = "out")]
        outdir: Option<PathBuf>,
        /// The figure's PNG file (instead of --outdir).
        #[arg(long, value_parser = flags::path)]
        out: Option<PathBuf>,
    },
    /// Print a network file's configuration, parameter counts and, for a
    /// training snapshot, its progress.
    Info {
        /// A network file, training snapshot or NVIDIA .pkl.
        #[arg(value_parser = flags::path)]
        file: PathBuf,
    },
    /// Convert an NVIDIA network pickle (stylegan2-ada-pytorch .pkl, or an
    /// original TF StyleGAN2 .pkl as the official legacy.py reads it) to
    /// the crate's safetensors network file (G, D, G_ema).
    Convert {
        /// The .pkl to read (never executed: read as data).
        #[arg(value_parser = flags::path)]
        input: PathBuf,
        /// The .safetensors to write.
        #[arg(value_parser = flags::path)]
        output: PathBuf,
    },
    /// Score a network's G_ema against a dataset with the sliced
    /// Wasserstein distance (×10³ per pyramid level and the mean, as the
    /// official SWD; lower is better).
    Metric {
        /// A network file or training snapshot (G_ema is used).
        #[arg(long, visible_alias = "weights", value_parser = flags::path)]
        network: PathBuf,
        /// `synthetic`, `synthetic:N`, or a directory / .zip of images at the
        /// network's resolution.
        #[arg(long)]
        data: String,
        /// Images per set (reals and fakes); fewer if the dataset is smaller.
        #[arg(long, default_value_t = 1024, value_parser = flags::usize_in(1, MAX_METRIC_IMAGES))]
        num: usize,
        /// Seed of the real subset, the latents, the patches and directions.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Truncation ψ of the fakes (1: none), within [-10, 10].
        #[arg(long, default_value_t = 1.0, value_parser = flags::f32_in(-10.0, 10.0))]
        trunc: f32,
        /// Images per generator call.
        #[arg(long, default_value_t = stylegan2::metrics::DEFAULT_BATCH, value_parser = flags::usize_in(1, flags::MAX_BATCH))]
        batch: usize,
        /// auto (the GPU if one is found, else the CPU), cpu, cuda, cuda:N or sim.
        #[arg(long, default_value = "auto")]
        device: String,
        /// Skip images of --data that cannot be decoded (counted) instead of
        /// refusing the dataset.
        #[arg(long)]
        skip_bad: bool,
        /// Also write the results as JSON here.
        #[arg(long, value_parser = flags::path)]
        out: Option<PathBuf>,
    },
}

/// Restores the default action of SIGPIPE (end the process quietly), which
/// the Rust runtime sets to "ignore": otherwise `stylegan2 info x | head`
/// panics with "failed printing to stdout: Broken pipe" and a backtrace
/// when `head` closes the pipe, where other command-line tools just stop.
fn default_sigpipe() {
    #[cfg(unix)]
    {
        const SIGPIPE: i32 = 13; // Linux and macOS alike.
        const SIG_DFL: usize = 0;
        extern "C" {
            fn signal(signum: i32, handler: usize) -> usize;
        }
        // SAFETY: `signal` from the C library, with a valid signal number
        // and SIG_DFL, before any other thread exists.
        unsafe {
            signal(SIGPIPE, SIG_DFL);
        }
    }
}

/// The command line, where a value that looks like a negative number
/// (`--trunc -0.5`, `--kimg -1`) is taken as the flag's value, so its
/// parser accepts it or says why not, instead of clap reporting an
/// "unexpected argument '-1'".
fn command() -> clap::Command {
    let mut cmd = Cli::command();
    let subs: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for name in subs {
        cmd = cmd.mut_subcommand(name, |sub| {
            let ids: Vec<clap::Id> = sub
                .get_arguments()
                .filter(|a| a.get_action().takes_values())
                .map(|a| a.get_id().clone())
                .collect();
            ids.into_iter().fold(sub, |sub, id| {
                sub.mut_arg(id, |a| a.allow_negative_numbers(true))
            })
        });
    }
    cmd
}

/// The most images per set of a metric.
const MAX_METRIC_IMAGES: usize = 1 << 20;

fn main() -> ExitCode {
    default_sigpipe();
    let cli = Cli::from_arg_matches(&command().get_matches()).unwrap_or_else(|e| e.exit());
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("stylegan2: error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `r`, its error prefixed with the flag the value came from (unless the
/// message already starts with it).
fn at<T, E: std::fmt::Display>(flag: &str, r: Result<T, E>) -> Result<T, String> {
    r.map_err(|e| {
        let m = e.to_string();
        if m.starts_with(flag) {
            m
        } else {
            format!("{flag}: {m}")
        }
    })
}

/// A known preset name.
fn preset(flag: &str, name: &str) -> Result<(), String> {
    if stylegan2::model::PRESETS.contains(&name) {
        return Ok(());
    }
    Err(format!(
        "{flag}: unknown preset '{name}'; expected one of {}",
        stylegan2::model::PRESETS.join(", ")
    ))
}

/// An existing file, before anything costly is done.
fn input_file(flag: &str, path: &Path) -> Result<(), String> {
    if !path.is_file() {
        return Err(format!(
            "{flag} {}: {}",
            path.display(),
            if path.exists() {
                "not a file"
            } else {
                "no such file"
            }
        ));
    }
    Ok(())
}

/// An output directory that could be created, checked before anything
/// costly is done but not created: the writers create it with the first
/// file, so a command that fails (no GPU, a bad network file) leaves no
/// empty folder behind. Refuses a path whose nearest existing ancestor is
/// not a directory or cannot be written into.
fn out_dir(flag: &str, path: &Path) -> Result<(), String> {
    // `Path::ancestors` of a relative path ends with "", the current directory.
    let existing = path
        .ancestors()
        .map(|a| {
            if a.as_os_str().is_empty() {
                Path::new(".")
            } else {
                a
            }
        })
        .find(|a| a.exists());
    match existing {
        Some(a) if !a.is_dir() => Err(format!(
            "{flag} {}: {} is not a directory",
            path.display(),
            a.display()
        )),
        // A directory we cannot write into (read-only, /proc): an unnamed
        // temporary file probes it, and is gone as soon as it is dropped.
        Some(a) => tempfile::tempfile_in(a).map(drop).map_err(|e| {
            format!(
                "{flag} {}: cannot create it in {}: {e}",
                path.display(),
                a.display()
            )
        }),
        None => Ok(()),
    }
}

/// An output file whose directory can be created.
fn out_file(flag: &str, path: &Path) -> Result<(), String> {
    if path.is_dir() {
        return Err(format!("{flag} {}: is a directory", path.display()));
    }
    match path.parent().filter(|d| !d.as_os_str().is_empty()) {
        Some(dir) => out_dir(flag, dir),
        None => Ok(()),
    }
}

fn run(cli: Cli) -> Result<(), Box<dyn std::error::Error>> {
    match cli.command {
        Command::Bench {
            device,
            iters,
            quick,
            only,
            cfg,
            resolution,
            batch,
            peak_tflops,
            out,
        } => {
            // Flags first: a typo should not cost a GPU probe.
            let only = only
                .iter()
                .map(|s| at("--only", bench::Section::parse(s.trim())))
                .collect::<Result<Vec<_>, _>>()?;
            if let Some(p) = &cfg {
                preset("--cfg", p)?;
            }
            out_file("--out", &out)?;
            let device = at("--device", Device::parse(&device))?;
            let opts = bench::Options::new(
                device,
                iters,
                quick,
                &only,
                cfg,
                resolution,
                batch,
                peak_tflops,
            )?;
            let peak = opts.peak.is_some();
            let report = bench::run(&opts, &mut |s| println!("{s}"), &mut |r| {
                println!("{}", bench::format_row(r, peak))
            })?;
            if let Some(p) = &report.peak {
                println!("\npeak {} TFLOP/s ({})", p.tflops, p.source);
            }
            let json = serde_json::to_string_pretty(&report.to_json())?;
            fsio::write(&out, json.as_bytes())?;
            println!("wrote {}", out.display());
            Ok(())
        }
        Command::Train {
            data,
            cfg,
            resolution,
            batch,
            kimg,
            lr,
            glr,
            dlr,
            gamma,
            ema_kimg,
            snap_kimg,
            grid,
            mirror,
            seed,
            device,
            outdir,
            resume,
            freezed,
            fp32,
            quiet,
            metrics,
            metrics_num,
            cond,
            modconv,
            aug,
            augment_p,
            target,
            augpipe,
            ada_kimg,
            skip_bad,
        } => {
            if metrics.iter().any(|m| m.trim().is_empty()) {
                return Err("--metrics: an empty name; give swd, none or auto".into());
            }
            let metrics = if metrics.iter().any(|m| m.trim() == "auto") {
                if metrics.len() > 1 {
                    return Err(format!(
                        "--metrics auto cannot be combined with other metrics (got {})",
                        metrics.join(",")
                    )
                    .into());
                }
                None
            } else {
                Some(at(
                    "--metrics",
                    stylegan2::metrics::Metric::parse_list(&metrics),
                )?)
            };
            let modconv = at("--modconv", ModConvPath::parse(&modconv))?;
            if let Some(p) = &cfg {
                preset("--cfg", p)?;
            }
            if let Some(r) = &resume {
                input_file("--resume", r)?;
            }
            out_dir("--outdir", &outdir)?;
            let device = at("--device", Device::parse(&device))?;
            let cond = cond.unwrap_or(resume.is_none() && stylegan2::data::is_synthetic(&data));
            let opts = TrainOptions {
                preset: cfg,
                resolution,
                data,
                mirror,
                batch,
                kimg,
                glr: glr.or(lr),
                dlr: dlr.or(lr),
                gamma,
                ema_kimg,
                snap_kimg,
                grid,
                seed,
                device,
                outdir,
                run_dir: None,
                resume,
                freezed,
                progress: !quiet,
                metrics,
                metrics_num,
                cond,
                modconv,
                skip_bad,
                aug: aug
                    .as_deref()
                    .map(|a| at("--aug", AugMode::parse(a)))
                    .transpose()?,
                augment_p,
                ada_target: target,
                augpipe,
                ada_kimg,
                fp32,
                num_fp16_res: None,
            };
            let summary = train::train(opts)?;
            if let Some(p) = &summary.last_snapshot {
                let kimg = |n: u64| n as f64 / 1000.0;
                // A resumed run counts its own steps, and says where it began.
                let span = if summary.start_step > 0 {
                    format!(
                        "{:.3} → {:.3} kimg, step {}",
                        kimg(summary.start_nimg),
                        kimg(summary.cur_nimg),
                        summary.steps
                    )
                } else {
                    format!("{:.3} kimg", kimg(summary.cur_nimg))
                };
                println!(
                    "trained {} steps ({span}); networks: {}",
                    summary.steps - summary.start_step,
                    p.display()
                );
                println!(
                    "sample: {} generate --network {} --seeds 0-15{} --outdir {}",
                    invoked_as(),
                    p.display(),
                    if summary.c_dim > 0 { " --class 0" } else { "" },
                    summary.run_dir.join("samples").display()
                );
            }
            Ok(())
        }
        Command::Augment {
            data,
            p,
            augpipe,
            num,
            draws,
            seed,
            device,
            out,
        } => {
            out_file("--out", &out)?;
            let pipe = at("--augpipe", AugmentPipe::preset(&augpipe))?;
            let device = at("--device", Device::parse(&device))?;
            let ds = at("--data", stylegan2::data::open(&data, None, seed))?;
            let loader = at("--data", stylegan2::data::Loader::new(ds, false, seed))?;
            let img = augment_grid(&loader, &pipe, p, num, draws, seed, device)?;
            at("--out", mcli::save_png(&img, &out))?;
            println!(
                "wrote {} (top row: {data}; {draws} rows of --augpipe {augpipe} at p {p})",
                out.display()
            );
            Ok(())
        }
        Command::Dataset {
            source,
            dest,
            resolution,
            transform,
            quiet,
            skip_bad,
        } => {
            let transform = at("--transform", Transform::parse(&transform))?;
            let builtin = source.to_str().is_some_and(stylegan2::data::is_synthetic);
            if !builtin && !source.exists() {
                return Err(
                    format!("--source {}: no such file or directory", source.display()).into(),
                );
            }
            if let Some(dir) = dest.parent().filter(|d| !d.as_os_str().is_empty()) {
                out_dir("--dest", dir)?;
            }
            let opts = ConvertOptions {
                transform,
                source,
                dest,
                resolution,
                progress: !quiet,
                skip_bad,
            };
            let s = convert(&opts)?;
            println!(
                "wrote {} images ({}×{}, {}{}) to {}{}",
                s.images,
                s.resolution,
                s.resolution,
                if s.channels == 1 { "gray" } else { "RGB" },
                if s.label_dim > 0 {
                    format!(", labels of {} dimensions", s.label_dim)
                } else {
                    ", no labels".into()
                },
                opts.dest.display(),
                if s.skipped > 0 {
                    format!("; skipped {} unreadable (--skip-bad)", s.skipped)
                } else {
                    String::new()
                }
            );
            Ok(())
        }
        Command::Init {
            cfg,
            resolution,
            channels,
            c_dim,
            seed,
            out,
        } => {
            preset("--cfg", &cfg)?;
            if channels == 2 {
                return Err("--channels 2: expected 1 (gray) or 3 (RGB)".into());
            }
            out_file("--out", &out)?;
            let config = ModelConfig::preset(&cfg, resolution, channels, c_dim)?;
            let mut rng = stylegan2::rng(seed);
            let g = Generator::new(&config.generator, &mut rng, Device::Cpu)?;
            let d = Discriminator::new(&config.discriminator, &mut rng, Device::Cpu)?;
            save_networks(&out, &config, &[("G", &g), ("D", &d), ("G_ema", &g)])?;
            println!("wrote {} ({cfg}, {resolution}x{resolution})", out.display());
            Ok(())
        }
        Command::Generate {
            network,
            seeds,
            trunc,
            trunc_cutoff,
            noise_mode,
            class,
            latents,
            device,
            outdir,
        } => {
            let latents = at("--latents", mcli::Latents::parse(&latents))?;
            let seeds = RangeList::parse(&seeds, "--seeds", flags::MAX_SEEDS)?.values();
            let noise_mode = at("--noise-mode", NoiseMode::parse(&noise_mode))?;
            input_file("--network", &network)?;
            out_dir("--outdir", &outdir)?;
            let device = at("--device", Device::parse(&device))?;
            let opts = GenerateOptions {
                seeds,
                truncation: Truncation {
                    psi: trunc,
                    cutoff: trunc_cutoff,
                },
                noise_mode,
                class,
                outdir,
                grid: true,
            };
            let (_, g) = at("--network", load_generator(&network, device))?;
            let written = mcli::generate_with(&g, &opts, latents)?;
            println!(
                "wrote {} PNGs to {} (seedNNNN.png, grid.png)",
                written.len(),
                opts.outdir.display()
            );
            Ok(())
        }
        Command::StyleMix {
            network,
            rows,
            cols,
            styles,
            trunc,
            noise_mode,
            class,
            latents,
            device,
            outdir,
            out,
        } => {
            let (flag, out) = match (outdir, out) {
                (Some(d), _) => ("--outdir", d.join("grid.png")),
                (None, Some(f)) => ("--out", f),
                (None, None) => return Err("give --outdir DIR (or --out FILE.png)".into()),
            };
            let latents = at("--latents", mcli::Latents::parse(&latents))?;
            let rows = RangeList::parse(&rows, "--rows", flags::MAX_FIGURE_SEEDS)?.values();
            let cols = RangeList::parse(&cols, "--cols", flags::MAX_FIGURE_SEEDS)?.values();
            let styles = RangeList::parse(&styles, "--styles", 1024)?;
            let noise_mode = at("--noise-mode", NoiseMode::parse(&noise_mode))?;
            input_file("--network", &network)?;
            out_file(flag, &out)?;
            let device = at("--device", Device::parse(&device))?;
            let (_, g) = at("--network", load_generator(&network, device))?;
            let num_ws = g.num_ws() as u64;
            if styles.max() >= num_ws {
                return Err(format!(
                    "--styles: style {} out of range: {} has {num_ws} ws (0-{})",
                    styles.max(),
                    network.display(),
                    num_ws - 1
                )
                .into());
            }
            let styles: Vec<usize> = styles.values().into_iter().map(|s| s as usize).collect();
            let fig = mcli::style_mix_with(
                &g,
                &rows,
                &cols,
                &styles,
                Truncation::psi(trunc),
                noise_mode,
                class,
                latents,
            )?;
            mcli::save_png(&fig, &out)?;
            println!("wrote {}", out.display());
            Ok(())
        }
        Command::Metric {
            network,
            data,
            num,
            seed,
            trunc,
            batch,
            device,
            skip_bad,
            out,
        } => metric(
            &network,
            &data,
            num,
            seed,
            trunc,
            batch,
            &device,
            skip_bad,
            out.as_deref(),
        ),
        Command::Convert { input, output } => {
            input_file("convert INPUT", &input)?;
            out_file("convert OUTPUT", &output)?;
            let pkl = stylegan2::pickle::convert(&input, &output)?;
            for n in &pkl.notes {
                eprintln!("stylegan2: note: {n}");
            }
            let g = &pkl.config.generator;
            println!(
                "wrote {} ({:?} pickle: G, D, G_ema at {}×{}, {} channels{}{})",
                output.display(),
                pkl.kind,
                g.img_resolution,
                g.img_resolution,
                g.img_channels,
                if g.c_dim > 0 {
                    format!(", {} label dimensions", g.c_dim)
                } else {
                    String::new()
                },
                pkl.augment_p
                    .map(|p| format!(", augment_pipe.p {p}"))
                    .unwrap_or_default()
            );
            Ok(())
        }
        Command::Info { file } => {
            input_file("FILE", &file)?;
            print!("{}", mcli::info(&file)?);
            Ok(())
        }
    }
}

/// This binary as the user ran it, for commands it prints: the path when
/// run by one (`cargo run` runs `target/release/stylegan2`, which is not
/// on `PATH`), else `stylegan2`; also `stylegan2` for a path a shell
/// would split (whitespace) or that is not UTF-8.
fn invoked_as() -> String {
    std::env::args_os()
        .next()
        .and_then(|a| a.into_string().ok())
        .filter(|a| a.contains(std::path::MAIN_SEPARATOR) && !a.contains(char::is_whitespace))
        .unwrap_or_else(|| "stylegan2".into())
}

/// `stylegan2 metric`: SWD of a snapshot's G_ema against a dataset.
#[allow(clippy::too_many_arguments)]
fn metric(
    weights: &Path,
    data: &str,
    num: usize,
    seed: u64,
    trunc: f32,
    batch: usize,
    device: &str,
    skip_bad: bool,
    out: Option<&Path>,
) -> Result<(), Box<dyn std::error::Error>> {
    use stylegan2::data::{self, Loader};
    use stylegan2::metrics::Swd;
    // Flags first (numbers are checked by their parsers): a typo should
    // not cost loading the network.
    input_file("--network", weights)?;
    if let Some(out) = out {
        out_file("--out", out)?;
    }
    let device = at("--device", Device::parse(device))?;
    let (_, g) = at("--network", load_generator(weights, device))?;
    let (res, ch) = (g.config.img_resolution, g.config.img_channels);
    // Synthetic data is drawn at the network's resolution; a folder has its own.
    let synthetic = stylegan2::data::is_synthetic(data);
    // A conditional generator gets the reals' labels.
    let ds = data::open_opts(
        data,
        &data::OpenOptions {
            resolution: synthetic.then_some(res),
            seed,
            labels: g.config.c_dim > 0,
            skip_bad,
            progress: true,
        },
    )?;
    if ds.resolution() != res || ds.channels() != ch {
        return Err(format!(
            "{data} holds {0}×{0} images with {1} channels, but {2} generates {res}×{res} with {ch}",
            ds.resolution(),
            ds.channels(),
            weights.display()
        )
        .into());
    }
    let loader = Loader::new(ds, false, seed)?;
    let used = num.min(loader.dataset().len());
    if used < num {
        eprintln!(
            "stylegan2: note: {} has {used} images; comparing {used} reals with {used} fakes",
            loader.dataset().name()
        );
    }
    let bar = indicatif::ProgressBar::new(2 * used as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{elapsed_precise} [{bar:30}] {pos}/{len} {msg}")?
            .progress_chars("=> "),
    );
    bar.set_message("reals");
    let t0 = std::time::Instant::now();
    let swd = Swd::new(&loader, used, seed, batch, &mut |n| bar.inc(n as u64))?;
    bar.set_message("fakes");
    let result = swd.evaluate(&g, trunc, &mut |n| bar.inc(n as u64))?;
    bar.finish_and_clear();
    println!(
        "SWD of {} ({res}×{res}) vs {}, {used} images each, seed {seed}, ψ {trunc}, {:.1} s:",
        weights.display(),
        loader.dataset().name(),
        t0.elapsed().as_secs_f64()
    );
    print!("{}", result.table());
    if let Some(out) = out {
        let mut m = serde_json::Map::new();
        m.insert("weights".into(), weights.display().to_string().into());
        m.insert("data".into(), data.into());
        m.insert("num".into(), used.into());
        m.insert("seed".into(), seed.into());
        m.insert("trunc".into(), (trunc as f64).into());
        m.insert("resolution".into(), res.into());
        for (k, v) in result.named() {
            m.insert(k, v.into());
        }
        fsio::write(
            out,
            serde_json::to_string_pretty(&serde_json::Value::Object(m))?.as_bytes(),
        )?;
        println!("wrote {}", out.display());
    }
    Ok(())
}
