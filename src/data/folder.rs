//! A directory (searched recursively) or a `.zip` archive of PNG and JPEG
//! images, as the official `ImageFolderDataset`: every image square, of one
//! power-of-two resolution. Opening checks the set completely: every image
//! is decoded once (in parallel, with a progress bar for large sets)
//! through [`super::decode`], so a run never starts on data it cannot
//! read; a bad file stops it with the file's name, or with
//! [`CheckOptions::skip_bad`] is skipped, counted and reported. Pixels are
//! decoded again when a batch asks for them. A `dataset.json` at the root
//! carries labels (see [`super::labels`]).

use super::decode::decode;
use super::labels::{self, Labels, LABEL_FILE};
use super::{check_resolution, Dataset};
use crate::error::{Error, Result};
use rayon::prelude::*;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

enum Source {
    Dir(Vec<PathBuf>),
    /// `entries`: the archive's own names; `names`: the same with `\\`
    /// replaced by `/` (as the official loader reads names that some
    /// Windows tools write), the names of images and labels.
    Zip {
        archive: Mutex<zip::ZipArchive<std::fs::File>>,
        entries: Vec<String>,
        names: Vec<String>,
    },
}

/// The PNG/JPEG files of a directory (recursively, sorted) or a zip archive,
/// read by index; also the tool's input (`stylegan2 dataset`).
pub struct Files {
    path: PathBuf,
    source: Source,
}

/// What a file of a dataset is, by its `/`-separated path.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// PNG or JPEG: read.
    Image,
    /// macOS metadata (`__MACOSX/`, `._*`, `.DS_Store`): never an image;
    /// left out and counted.
    MacMetadata,
    /// An image format this crate does not read (BMP, GIF, WebP, TIFF,
    /// ...): left out, counted and named, since it was probably meant as
    /// data.
    OtherImage,
    /// Anything else (`dataset.json`, notes): not data.
    Other,
}

fn classify(rel: &str) -> Entry {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    if rel.split('/').any(|c| c == "__MACOSX") || name.starts_with("._") || name == ".DS_Store" {
        return Entry::MacMetadata;
    }
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" | "jpg" | "jpeg" => Entry::Image,
        "bmp" | "gif" | "webp" | "tif" | "tiff" | "tga" | "ppm" | "pgm" | "pbm" | "heic"
        | "heif" | "avif" | "jxl" | "jp2" | "ico" => Entry::OtherImage,
        _ => Entry::Other,
    }
}

/// Keeps the images among `(relative name, item)`, and says on stderr
/// what was left out that might have been meant as data.
fn keep_images<T>(root: &Path, all: Vec<(String, T)>) -> Vec<(String, T)> {
    let mut mac = 0usize;
    let mut other: Vec<String> = Vec::new();
    let mut out = Vec::with_capacity(all.len());
    for (rel, item) in all {
        match classify(&rel) {
            Entry::Image => out.push((rel, item)),
            Entry::MacMetadata => mac += 1,
            Entry::OtherImage => other.push(rel),
            Entry::Other => {}
        }
    }
    if !other.is_empty() {
        eprintln!(
            "stylegan2: note: {}: left out {} image file(s) of formats not read here (only PNG and JPEG), e.g. {}",
            root.display(),
            other.len(),
            other[0]
        );
    }
    if mac > 0 {
        eprintln!(
            "stylegan2: note: {}: left out {mac} macOS metadata file(s) (__MACOSX/, ._*)",
            root.display()
        );
    }
    out
}

fn list_dir(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::Io(format!("reading {}: {e}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::Io(format!("reading {}: {e}", dir.display())))?;
        let p = entry.path();
        if p.is_dir() {
            list_dir(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// `file` relative to `root`, `/`-separated.
fn relative(root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(root).unwrap_or(file);
    rel.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

impl Files {
    /// Lists the images of `path` (a directory or a `.zip` file); an empty
    /// list is an error.
    pub fn open(path: &Path) -> Result<Files> {
        if !path.exists() {
            return Err(Error::Io(format!(
                "dataset {} does not exist (give a directory or .zip of PNG/JPEG images, or 'synthetic')",
                path.display()
            )));
        }
        let source = if path.is_dir() {
            let mut all = Vec::new();
            list_dir(path, &mut all)?;
            let named = all
                .into_iter()
                .map(|p| (relative(path, &p), p))
                .collect::<Vec<_>>();
            let mut files: Vec<PathBuf> = keep_images(path, named)
                .into_iter()
                .map(|(_, p)| p)
                .collect();
            files.sort();
            Source::Dir(files)
        } else {
            let file = std::fs::File::open(path)
                .map_err(|e| Error::Io(format!("opening {}: {e}", path.display())))?;
            let archive = zip::ZipArchive::new(file).map_err(|e| {
                Error::Io(format!(
                    "{}: not a directory or a readable zip archive ({e})",
                    path.display()
                ))
            })?;
            let all: Vec<(String, String)> = archive
                .file_names()
                .map(|n| (n.replace('\\', "/"), n.to_string()))
                .filter(|(n, _)| !n.ends_with('/'))
                .collect();
            let mut pairs = keep_images(path, all);
            pairs.sort();
            let (names, entries) = pairs.into_iter().unzip();
            Source::Zip {
                archive: Mutex::new(archive),
                entries,
                names,
            }
        };
        let files = Files {
            path: path.to_path_buf(),
            source,
        };
        if files.is_empty() {
            return Err(Error::Io(format!(
                "dataset {}: no PNG or JPEG images found",
                path.display()
            )));
        }
        Ok(files)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn len(&self) -> usize {
        match &self.source {
            Source::Dir(files) => files.len(),
            Source::Zip { names, .. } => names.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The path of image `i` for messages (`archive.zip:inner/name.png` in a zip).
    pub fn file_name(&self, i: usize) -> String {
        match &self.source {
            Source::Dir(files) => files[i].display().to_string(),
            Source::Zip { names, .. } => format!("{}:{}", self.path.display(), names[i]),
        }
    }

    /// The name of image `i` relative to the root, `/`-separated: its key
    /// in `dataset.json`.
    pub fn relative_name(&self, i: usize) -> String {
        match &self.source {
            Source::Dir(files) => relative(&self.path, &files[i]),
            Source::Zip { names, .. } => names[i].clone(),
        }
    }

    /// The bytes of image `i`.
    pub fn read(&self, i: usize) -> Result<Vec<u8>> {
        let what = || self.file_name(i);
        match &self.source {
            Source::Dir(files) => {
                std::fs::read(&files[i]).map_err(|e| Error::Io(format!("reading {}: {e}", what())))
            }
            Source::Zip {
                archive, entries, ..
            } => read_entry(archive, &entries[i], &what()),
        }
    }

    /// Keeps only the images `keep` (ascending indices), in that order.
    pub fn retain(&mut self, keep: &[usize]) {
        match &mut self.source {
            Source::Dir(files) => *files = keep.iter().map(|&i| files[i].clone()).collect(),
            Source::Zip { entries, names, .. } => {
                *entries = keep.iter().map(|&i| entries[i].clone()).collect();
                *names = keep.iter().map(|&i| names[i].clone()).collect();
            }
        }
    }

    /// Decodes every image once, in parallel (a progress bar on stderr
    /// when `progress` and the set is large), and returns each image's
    /// `(width, height, channels)` or the error naming its file, in image
    /// order.
    pub fn check_all(&self, progress: bool) -> Vec<Result<(u32, u32, usize)>> {
        let bar = if progress && self.len() >= PROGRESS_MIN {
            indicatif::ProgressBar::new(self.len() as u64)
        } else {
            indicatif::ProgressBar::hidden()
        };
        if let Ok(style) = indicatif::ProgressStyle::with_template(
            "checking {msg}: {elapsed_precise} [{bar:30}] {pos}/{len} images  eta {eta}",
        ) {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_message(self.path.display().to_string());
        let out = (0..self.len())
            .into_par_iter()
            .map(|i| {
                let d = decode(&self.read(i)?, &self.file_name(i))?;
                bar.inc(1);
                Ok((d.width, d.height, d.channels))
            })
            .collect();
        bar.finish_and_clear();
        out
    }

    /// [`Files::check_all`], then: with `skip_bad` the bad images are
    /// reported on stderr and left out of the returned `keep` (indices)
    /// and `sizes`, with their messages as the third part; without, the
    /// first bad image (in order) is the error. Either way at least one
    /// image must be readable.
    #[allow(clippy::type_complexity)]
    pub fn check(
        &self,
        skip_bad: bool,
        progress: bool,
    ) -> Result<(Vec<usize>, Vec<(u32, u32, usize)>, Vec<String>)> {
        let checked = self.check_all(progress);
        let mut keep = Vec::with_capacity(checked.len());
        let mut sizes = Vec::with_capacity(checked.len());
        let mut skipped = Vec::new();
        for (i, r) in checked.into_iter().enumerate() {
            match r {
                Ok(size) => {
                    keep.push(i);
                    sizes.push(size);
                }
                Err(e) if skip_bad => skipped.push(e.to_string()),
                Err(e) => {
                    return Err(Error::Io(format!(
                        "{e}\n(every image is checked when a dataset is opened; \
                         --skip-bad skips such files instead)"
                    )))
                }
            }
        }
        let n_all = self.len();
        if !skipped.is_empty() {
            if keep.is_empty() {
                return Err(Error::Io(format!(
                    "dataset {}: none of its {n_all} images is readable; the first: {}",
                    self.path.display(),
                    skipped[0]
                )));
            }
            eprintln!(
                "stylegan2: skipped {} of {n_all} images of {} (--skip-bad):",
                skipped.len(),
                self.path.display()
            );
            for s in skipped.iter().take(10) {
                eprintln!("  {s}");
            }
            if skipped.len() > 10 {
                eprintln!("  … and {} more", skipped.len() - 10);
            }
        }
        Ok((keep, sizes, skipped))
    }

    /// `dataset.json` at the root, if there is one, with its name for messages.
    pub fn label_file(&self) -> Result<Option<(Vec<u8>, String)>> {
        match &self.source {
            Source::Dir(_) => {
                let p = self.path.join(LABEL_FILE);
                if !p.is_file() {
                    return Ok(None);
                }
                let what = p.display().to_string();
                std::fs::read(&p)
                    .map(|b| Some((b, what.clone())))
                    .map_err(|e| Error::Io(format!("reading {what}: {e}")))
            }
            Source::Zip { archive, .. } => {
                let entry = archive
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .file_names()
                    .find(|n| n.replace('\\', "/") == LABEL_FILE)
                    .map(str::to_string);
                let Some(entry) = entry else {
                    return Ok(None);
                };
                let what = format!("{}:{LABEL_FILE}", self.path.display());
                read_entry(archive, &entry, &what).map(|b| Some((b, what)))
            }
        }
    }

    /// The labels of `dataset.json` in image order (`None`: no file, or
    /// `"labels": null`).
    pub fn labels(&self) -> Result<Option<labels::Parsed>> {
        let Some((json, what)) = self.label_file()? else {
            return Ok(None);
        };
        let names: Vec<String> = (0..self.len()).map(|i| self.relative_name(i)).collect();
        labels::parse(&json, &names, &what)
    }
}

fn read_entry(
    archive: &Mutex<zip::ZipArchive<std::fs::File>>,
    name: &str,
    what: &str,
) -> Result<Vec<u8>> {
    let mut archive = archive.lock().unwrap_or_else(|e| e.into_inner());
    let mut entry = archive
        .by_name(name)
        .map_err(|e| Error::Io(format!("reading {what}: {e}")))?;
    let mut bytes = Vec::with_capacity(entry.size() as usize);
    entry
        .read_to_end(&mut bytes)
        .map_err(|e| Error::Io(format!("reading {what}: {e}")))?;
    Ok(bytes)
}

/// Sets of at least this many images get a progress bar while checked.
pub const PROGRESS_MIN: usize = 1000;

/// How a folder is opened.
#[derive(Clone, Copy, Debug, Default)]
pub struct CheckOptions {
    /// Read the labels of `dataset.json` (else it is not read, as the
    /// official loader without `use_labels`, so a broken label file does
    /// not stop unconditional training).
    pub labels: bool,
    /// Skip images that cannot be decoded (corrupt, truncated, unsupported,
    /// transparent) instead of refusing the set; they are counted, listed
    /// on stderr and in [`ImageFolder::skipped`].
    pub skip_bad: bool,
    /// A progress bar on stderr while a large set is checked.
    pub progress: bool,
}

/// PNG/JPEG images from a directory or a zip archive, with the labels of
/// its `dataset.json` when it has one.
pub struct ImageFolder {
    files: Files,
    resolution: usize,
    channels: usize,
    labels: Option<Labels>,
    skipped: Vec<String>,
}

impl ImageFolder {
    /// Opens `path` (a directory or a `.zip` file) with its labels; see
    /// [`ImageFolder::open_checked`].
    pub fn open(path: &Path) -> Result<ImageFolder> {
        Self::open_with(path, true)
    }

    /// [`ImageFolder::open_checked`] with `labels` and nothing skipped.
    pub fn open_with(path: &Path, labels: bool) -> Result<ImageFolder> {
        Self::open_checked(
            path,
            CheckOptions {
                labels,
                ..CheckOptions::default()
            },
        )
    }

    /// Opens `path` and checks it completely: every image decoded (see
    /// [`super::decode`]), square, a power of two ≥ 4, all of one size;
    /// and the labels of `dataset.json` if asked for (see
    /// [`labels::parse`]). Errors name the first bad file in image order.
    pub fn open_checked(path: &Path, opts: CheckOptions) -> Result<ImageFolder> {
        let mut files = Files::open(path)?;
        let (keep, sizes, skipped) = files.check(opts.skip_bad, opts.progress)?;
        // Labels of the whole file first: a skipped image keeps its entry.
        let parsed = if opts.labels { files.labels()? } else { None };
        if !skipped.is_empty() {
            files.retain(&keep);
        }
        let labels = parsed.map(|p| p.select(&keep).labels);
        let mut all_gray = true;
        let mut first: Option<(u32, String)> = None;
        for (i, &(w, h, c)) in sizes.iter().enumerate() {
            let what = files.file_name(i);
            if w != h {
                return Err(Error::Io(format!(
                    "{what}: image is {w}×{h}; training images must be square \\
                     (`stylegan2 dataset --transform center-crop --resolution N` makes them so)"
                )));
            }
            match &first {
                None => {
                    check_resolution(w as usize, &what)?;
                    first = Some((w, what));
                }
                Some((r, f)) if *r != w => {
                    return Err(Error::Io(format!(
                    "{what}: image is {w}×{w}, but {f} is {r}×{r}; all images must have one size \\
                     (`stylegan2 dataset --resolution N` resizes them)"
                )))
                }
                Some(_) => {}
            }
            all_gray &= c == 1;
        }
        Ok(ImageFolder {
            files,
            resolution: first.map_or(0, |(r, _)| r as usize),
            channels: if all_gray { 1 } else { 3 },
            labels,
            skipped,
        })
    }

    /// The messages of the images skipped by [`CheckOptions::skip_bad`].
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// The path of image `i` for messages (`archive.zip:inner/name.png` in a zip).
    pub fn file_name(&self, i: usize) -> String {
        self.files.file_name(i)
    }

    /// The labels of `dataset.json`, if any.
    pub fn labels(&self) -> Option<&Labels> {
        self.labels.as_ref()
    }
}

impl Dataset for ImageFolder {
    fn name(&self) -> String {
        let stem = self
            .files
            .path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("data");
        stem.to_string()
    }

    fn len(&self) -> usize {
        self.files.len()
    }

    fn resolution(&self) -> usize {
        self.resolution
    }

    fn channels(&self) -> usize {
        self.channels
    }

    fn image(&self, index: usize) -> Result<Vec<u8>> {
        let what = self.file_name(index);
        let img = decode(&self.files.read(index)?, &what)?;
        let r = self.resolution as u32;
        if img.width != r || img.height != r {
            return Err(Error::Io(format!(
                "{what}: image is {}×{}, expected {r}×{r} (did it change since the dataset was opened?)",
                img.width, img.height
            )));
        }
        Ok(img.to_chw(self.channels))
    }

    fn skipped(&self) -> usize {
        self.skipped.len()
    }

    fn label_dim(&self) -> usize {
        self.labels.as_ref().map_or(0, Labels::dim)
    }

    fn label(&self, index: usize) -> Result<Vec<f32>> {
        Ok(self.labels.as_ref().map_or(Vec::new(), |l| l.get(index)))
    }
}
