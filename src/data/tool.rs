//! `stylegan2 dataset`: a simplified official `dataset_tool.py`. Reads the
//! PNG/JPEG images of a directory (recursively) or a zip, optionally crops
//! them to a square and resizes them (Lanczos3) to a power-of-two
//! resolution, and writes numbered PNGs `00000/img00000000.png` (a new
//! folder per 1000 images) with a `dataset.json`, into a directory or a
//! `.zip` archive (stored, as the official tool writes it). Labels of the
//! source's `dataset.json` are carried over, keyed by the new names. The
//! built-in synthetic set exports the same way ([`export_synthetic`]).

use super::check_resolution;
use super::decode::decode;
use super::folder::Files;
use super::labels::LABEL_FILE;
use crate::error::{invalid, Error, Result};
use crate::fsio::{self, CheckedFile};
use image::imageops::FilterType;
use image::DynamicImage;
use std::io::Write;
use std::path::{Path, PathBuf};

/// How images become squares (official `--transform`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transform {
    /// Kept as they are, or stretched to `resolution × resolution` when one
    /// is given.
    None,
    /// The central square of side min(w, h), resized.
    CenterCrop,
    /// Resized to the full width, the central rows kept, and letterboxed
    /// on a black square.
    CenterCropWide,
}

impl Transform {
    pub fn parse(s: &str) -> Result<Transform> {
        match s {
            "none" => Ok(Transform::None),
            "center-crop" => Ok(Transform::CenterCrop),
            "center-crop-wide" => Ok(Transform::CenterCropWide),
            _ => invalid(
                "dataset",
                format!("--transform {s}: expected none, center-crop or center-crop-wide"),
            ),
        }
    }
}

/// Options of a conversion.
#[derive(Clone, Debug)]
pub struct ConvertOptions {
    pub source: PathBuf,
    /// A `.zip` file or a directory.
    pub dest: PathBuf,
    /// Output resolution (a power of two ≥ 4); required by the crops.
    pub resolution: Option<usize>,
    pub transform: Transform,
    /// Draw a progress bar.
    pub progress: bool,
    /// Skip source images that cannot be decoded (counted in
    /// [`ConvertSummary::skipped`] and listed on stderr) instead of
    /// stopping.
    pub skip_bad: bool,
}

/// What a conversion wrote.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvertSummary {
    pub images: usize,
    pub resolution: usize,
    pub channels: usize,
    /// Label size (0: no labels).
    pub label_dim: usize,
    /// Source images skipped as unreadable (`skip_bad`).
    pub skipped: usize,
}

/// The official archive name of image `idx`: `00001/img00001234.png`.
pub fn image_name(idx: usize) -> String {
    let s = format!("{idx:08}");
    format!("{}/img{s}.png", &s[..5])
}

enum Sink {
    Dir(PathBuf),
    Zip {
        writer: Box<zip::ZipWriter<CheckedFile>>,
        dest: PathBuf,
    },
}

impl Sink {
    fn create(dest: &Path) -> Result<Sink> {
        let is_zip = dest
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("zip"));
        let refuse = || {
            Err(Error::Io(format!(
                "{} already exists and is not empty; refusing to overwrite it",
                dest.display()
            )))
        };
        if is_zip {
            if dest.is_dir() || std::fs::metadata(dest).is_ok_and(|m| m.len() > 0) {
                return refuse();
            }
            // Written aside and renamed at the end (fsio): a failed run
            // leaves no half archive under the destination's name.
            Ok(Sink::Zip {
                writer: Box::new(zip::ZipWriter::new(CheckedFile::create(dest)?)),
                dest: dest.to_path_buf(),
            })
        } else {
            if dest.is_file() {
                return refuse();
            }
            if dest.is_dir()
                && std::fs::read_dir(dest)
                    .map_err(|e| Error::Io(format!("reading {}: {e}", dest.display())))?
                    .next()
                    .is_some()
            {
                return refuse();
            }
            fsio::create_dir_all(dest)?;
            Ok(Sink::Dir(dest.to_path_buf()))
        }
    }

    fn add(&mut self, name: &str, bytes: &[u8]) -> Result<()> {
        match self {
            Sink::Dir(root) => fsio::write(&root.join(name), bytes),
            Sink::Zip { writer, dest } => {
                let err =
                    |e: String| Error::Io(format!("writing {name} to {}: {e}", dest.display()));
                let opts = zip::write::SimpleFileOptions::default()
                    .compression_method(zip::CompressionMethod::Stored);
                writer
                    .start_file(name, opts)
                    .map_err(|e| err(e.to_string()))?;
                writer.write_all(bytes).map_err(|e| err(e.to_string()))
            }
        }
    }

    fn finish(self) -> Result<()> {
        match self {
            Sink::Dir(_) => Ok(()),
            Sink::Zip { writer, dest } => writer
                .finish()
                .map_err(|e| Error::Io(format!("writing {}: {e}", dest.display())))?
                .commit(),
        }
    }

    /// Writes the whole output with `write`, then finishes the sink, or
    /// removes what was written when `write` fails; `bar` is cleared
    /// either way.
    fn write_all(
        mut self,
        bar: &indicatif::ProgressBar,
        write: impl FnOnce(&mut Sink) -> Result<()>,
    ) -> Result<()> {
        let result = write(&mut self);
        bar.finish_and_clear();
        match result {
            Ok(()) => self.finish(),
            Err(e) => {
                self.abandon();
                Err(e)
            }
        }
    }

    /// Removes what a failed conversion wrote.
    fn abandon(self) {
        match self {
            Sink::Dir(root) => {
                let _ = std::fs::remove_dir_all(root);
            }
            // Dropping the uncommitted file removes its temporary.
            Sink::Zip { writer, .. } => drop(writer),
        }
    }
}

/// `img` as a `res × res` square per `transform` (`res` `None`: as is).
fn transform(img: DynamicImage, t: Transform, res: Option<usize>) -> DynamicImage {
    let (w, h) = (img.width(), img.height());
    match (t, res) {
        (Transform::None, None) => img,
        (Transform::None, Some(r)) => {
            let r = r as u32;
            if (w, h) == (r, r) {
                img
            } else {
                img.resize_exact(r, r, FilterType::Lanczos3)
            }
        }
        (Transform::CenterCrop, r) => {
            let side = w.min(h);
            let sq = img.crop_imm((w - side) / 2, (h - side) / 2, side, side);
            let r = r.map_or(side, |r| r as u32);
            if r == side {
                sq
            } else {
                sq.resize_exact(r, r, FilterType::Lanczos3)
            }
        }
        (Transform::CenterCropWide, r) => {
            let r = r.map_or(w, |r| r as u32);
            // Full width at r, height in proportion; the central r rows if taller.
            let hh = ((r as f64 * h as f64 / w as f64).round() as u32).max(1);
            let scaled = img.resize_exact(r, hh, FilterType::Lanczos3);
            let band = if hh > r {
                scaled.crop_imm(0, (hh - r) / 2, r, r)
            } else {
                scaled
            };
            let mut canvas = match band {
                DynamicImage::ImageLuma8(_) => DynamicImage::new_luma8(r, r),
                _ => DynamicImage::new_rgb8(r, r),
            };
            let top = (r - band.height()) / 2;
            image::imageops::overlay(&mut canvas, &band, 0, top as i64);
            canvas
        }
    }
}

/// Converts `opts.source` into `opts.dest`; prints nothing but the
/// progress bar (when asked). Errors name the bad file, and remove the
/// partial output. A source of `synthetic` or `synthetic:N` exports the
/// built-in set (see [`export_synthetic`]).
pub fn convert(opts: &ConvertOptions) -> Result<ConvertSummary> {
    if let Some(r) = opts.resolution {
        check_resolution(r, "--resolution")?;
    }
    if let Some(spec) = opts.source.to_str().filter(|s| super::is_synthetic(s)) {
        return export_synthetic(spec, opts);
    }
    if opts.transform != Transform::None && opts.resolution.is_none() {
        return invalid(
            "dataset",
            "--transform center-crop and center-crop-wide need --resolution",
        );
    }
    let mut files = Files::open(&opts.source)?;
    // Every image decoded once before anything is written: a bad file stops
    // the run (or is skipped with --skip-bad), and the output is gray only
    // if every input is.
    let (keep, sizes, skipped) = files.check(opts.skip_bad, opts.progress)?;
    let labels = files.labels()?.map(|p| p.select(&keep));
    if !skipped.is_empty() {
        files.retain(&keep);
    }
    let mut all_gray = true;
    let mut first: Option<(u32, u32, String)> = None;
    for (i, &(w, h, c)) in sizes.iter().enumerate() {
        let what = files.file_name(i);
        all_gray &= c == 1;
        if opts.transform == Transform::None && opts.resolution.is_none() {
            // Kept as they are: must already be training images.
            if w != h {
                return Err(Error::Io(format!(
                    "{what}: image is {w}×{h}; give --transform center-crop (and --resolution) to make squares"
                )));
            }
            match &first {
                None => {
                    check_resolution(w as usize, &what)?;
                    first = Some((w, h, what));
                }
                Some((fw, fh, f)) if (*fw, *fh) != (w, h) => {
                    return Err(Error::Io(format!(
                        "{what}: image is {w}×{h}, but {f} is {fw}×{fh}; give --resolution to resize them all"
                    )))
                }
                Some(_) => {}
            }
        } else if first.is_none() {
            first = Some((w, h, what));
        }
    }
    let resolution = opts
        .resolution
        .unwrap_or_else(|| first.as_ref().map_or(0, |f| f.0 as usize));
    let channels = if all_gray { 1 } else { 3 };

    let bar = if opts.progress {
        indicatif::ProgressBar::new(files.len() as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30}] {pos}/{len} images  eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    let sink = Sink::create(&opts.dest)?;
    let write_all = |sink: &mut Sink| -> Result<()> {
        let mut out_labels = Vec::new();
        for i in 0..files.len() {
            let what = files.file_name(i);
            let img = decode(&files.read(i)?, &what)?.into_dynamic();
            // Gray only if all are; never RGB to gray.
            let img = if all_gray {
                img
            } else {
                DynamicImage::ImageRgb8(img.to_rgb8())
            };
            let img = transform(img, opts.transform, opts.resolution);
            let mut png = Vec::new();
            img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .map_err(|e| Error::Io(format!("{what}: encoding PNG: {e}")))?;
            let name = image_name(i);
            sink.add(&name, &png)?;
            if let Some(p) = &labels {
                out_labels.push(serde_json::json!([name, p.raw[i]]));
            }
            bar.inc(1);
        }
        let meta = serde_json::json!({
            "labels": labels.as_ref().map(|_| out_labels),
        });
        let json =
            serde_json::to_vec(&meta).map_err(|e| Error::Internal(format!("dataset.json: {e}")))?;
        sink.add(LABEL_FILE, &json)
    };
    sink.write_all(&bar, write_all)?;
    Ok(ConvertSummary {
        images: files.len(),
        resolution,
        channels,
        label_dim: labels.as_ref().map_or(0, |p| p.labels.dim()),
        skipped: skipped.len(),
    })
}

/// Writes the built-in synthetic set `spec` (`synthetic` or `synthetic:N`)
/// as `train --data synthetic` draws it by default (seed 0, at
/// `opts.resolution`, default 32), RGB, with each image's shape kind as
/// its class in `dataset.json` (0 disc, 1 rectangle, 2 ring): so
/// `train --data DEST --cond true --aug noaug` trains as `train --data
/// synthetic` does (a folder's defaults are unconditional with ADA). A
/// `--transform` other than none is refused (the images are squares).
pub fn export_synthetic(spec: &str, opts: &ConvertOptions) -> Result<ConvertSummary> {
    if opts.transform != Transform::None {
        return invalid(
            "dataset",
            "--transform crops the images of a folder or zip; synthetic images are squares already",
        );
    }
    let ds = super::open_opts(
        spec,
        &super::OpenOptions {
            resolution: opts.resolution,
            seed: 0,
            labels: true,
            ..super::OpenOptions::default()
        },
    )
    .map_err(|e| match e {
        // The spec came as --source here.
        Error::Invalid { op: "--data", msg } => Error::Invalid {
            op: "--source",
            msg,
        },
        e => e,
    })?;
    let (n, r) = (ds.len(), ds.resolution());
    let bar = if opts.progress {
        indicatif::ProgressBar::new(n as u64)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let sink = Sink::create(&opts.dest)?;
    let write_all = |sink: &mut Sink| -> Result<()> {
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            // [3, R, R] planes to interleaved RGB.
            let chw = ds.image(i)?;
            let hwc: Vec<u8> = (0..r * r)
                .flat_map(|p| [chw[p], chw[r * r + p], chw[2 * r * r + p]])
                .collect();
            let img = image::RgbImage::from_raw(r as u32, r as u32, hwc)
                .ok_or_else(|| Error::Internal(format!("synthetic image {i}: size")))?;
            let mut png = Vec::new();
            img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .map_err(|e| Error::Io(format!("synthetic image {i}: encoding PNG: {e}")))?;
            let name = image_name(i);
            sink.add(&name, &png)?;
            // One-hot: the class is where the 1 is.
            let class = ds.label(i)?.iter().position(|&v| v == 1.0);
            labels.push(serde_json::json!([name, class]));
            bar.inc(1);
        }
        let json = serde_json::to_vec(&serde_json::json!({ "labels": labels }))
            .map_err(|e| Error::Internal(format!("dataset.json: {e}")))?;
        sink.add(LABEL_FILE, &json)
    };
    sink.write_all(&bar, write_all)?;
    Ok(ConvertSummary {
        images: n,
        resolution: r,
        channels: 3,
        label_dim: ds.label_dim(),
        skipped: 0,
    })
}
