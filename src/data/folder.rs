//! A directory (searched recursively) or a `.zip` archive of PNG and JPEG
//! images, as the official `ImageFolderDataset`: every image square, of one
//! power-of-two resolution. Opening reads every image's header and refuses
//! the set with an error naming the first bad file; pixels are decoded when
//! a batch asks for them. A `dataset.json` at the root carries labels
//! (see [`super::labels`]).

use super::labels::{self, Labels, LABEL_FILE};
use super::{check_resolution, Dataset};
use crate::error::{Error, Result};
use image::{ColorType, ImageDecoder, ImageReader};
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

enum Source {
    Dir(Vec<PathBuf>),
    Zip {
        archive: Mutex<zip::ZipArchive<std::fs::File>>,
        names: Vec<String>,
    },
}

/// The PNG/JPEG files of a directory (recursively, sorted) or a zip archive,
/// read by index; also the tool's input (`stylegan2 dataset`).
pub struct Files {
    path: PathBuf,
    source: Source,
}

fn is_image_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".png", ".jpg", ".jpeg"]
        .iter()
        .any(|ext| lower.ends_with(ext))
}

fn list_dir(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| Error::Io(format!("reading {}: {e}", dir.display())))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::Io(format!("reading {}: {e}", dir.display())))?;
        let p = entry.path();
        if p.is_dir() {
            list_dir(&p, out)?;
        } else if p
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(is_image_name)
        {
            out.push(p);
        }
    }
    Ok(())
}

/// Width, height and whether the image is gray, from the header.
pub(crate) fn header(bytes: &[u8], what: &str) -> Result<(u32, u32, bool)> {
    let bad = |e: String| Error::Io(format!("{what}: not a readable PNG/JPEG image ({e})"));
    let decoder = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| bad(e.to_string()))?
        .into_decoder()
        .map_err(|e| bad(e.to_string()))?;
    let (w, h) = decoder.dimensions();
    let gray = matches!(
        decoder.color_type(),
        ColorType::L8 | ColorType::L16 | ColorType::La8 | ColorType::La16
    );
    Ok((w, h, gray))
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
            let mut files = Vec::new();
            list_dir(path, &mut files)?;
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
            let mut names: Vec<String> = archive
                .file_names()
                .filter(|n| !n.ends_with('/') && is_image_name(n))
                .map(str::to_string)
                .collect();
            names.sort();
            Source::Zip {
                archive: Mutex::new(archive),
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
            Source::Dir(files) => {
                let rel = files[i].strip_prefix(&self.path).unwrap_or(&files[i]);
                rel.components()
                    .map(|c| c.as_os_str().to_string_lossy())
                    .collect::<Vec<_>>()
                    .join("/")
            }
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
            Source::Zip { archive, names } => read_entry(archive, &names[i], &what()),
        }
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
                let has = archive
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .index_for_name(LABEL_FILE)
                    .is_some();
                if !has {
                    return Ok(None);
                }
                let what = format!("{}:{LABEL_FILE}", self.path.display());
                read_entry(archive, LABEL_FILE, &what).map(|b| Some((b, what)))
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

/// PNG/JPEG images from a directory or a zip archive, with the labels of
/// its `dataset.json` when it has one.
pub struct ImageFolder {
    files: Files,
    resolution: usize,
    channels: usize,
    labels: Option<Labels>,
}

impl ImageFolder {
    /// Opens `path` (a directory or a `.zip` file) and checks every image's
    /// header: readable, square, a power of two ≥ 4, all of one size; and
    /// the labels of `dataset.json`, if present (see [`labels::parse`]).
    pub fn open(path: &Path) -> Result<ImageFolder> {
        Self::open_with(path, true)
    }

    /// [`ImageFolder::open`]; with `labels` false `dataset.json` is not
    /// read (as the official loader without `use_labels`), so a broken
    /// label file does not stop unconditional training.
    pub fn open_with(path: &Path, labels: bool) -> Result<ImageFolder> {
        let files = Files::open(path)?;
        let mut all_gray = true;
        let mut first: Option<(u32, String)> = None;
        for i in 0..files.len() {
            let what = files.file_name(i);
            let (w, h, gray) = header(&files.read(i)?, &what)?;
            if w != h {
                return Err(Error::Io(format!(
                    "{what}: image is {w}×{h}; training images must be square"
                )));
            }
            match &first {
                None => {
                    check_resolution(w as usize, &what)?;
                    first = Some((w, what));
                }
                Some((r, f)) if *r != w => {
                    return Err(Error::Io(format!(
                    "{what}: image is {w}×{w}, but {f} is {r}×{r}; all images must have one size"
                )))
                }
                Some(_) => {}
            }
            all_gray &= gray;
        }
        let labels = if labels {
            files.labels()?.map(|p| p.labels)
        } else {
            None
        };
        Ok(ImageFolder {
            files,
            resolution: first.map_or(0, |(r, _)| r as usize),
            channels: if all_gray { 1 } else { 3 },
            labels,
        })
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
        let img = image::load_from_memory(&self.files.read(index)?)
            .map_err(|e| Error::Io(format!("{what}: cannot decode the image ({e})")))?;
        let r = self.resolution as u32;
        if img.width() != r || img.height() != r {
            return Err(Error::Io(format!(
                "{what}: image is {}×{}, expected {r}×{r}",
                img.width(),
                img.height()
            )));
        }
        // HWC → CHW.
        let (hwc, c) = if self.channels == 1 {
            (img.to_luma8().into_raw(), 1)
        } else {
            (img.to_rgb8().into_raw(), 3)
        };
        let n = (r * r) as usize;
        let mut out = vec![0u8; c * n];
        for (p, px) in hwc.chunks_exact(c).enumerate() {
            for (ch, &v) in px.iter().enumerate() {
                out[ch * n + p] = v;
            }
        }
        Ok(out)
    }

    fn label_dim(&self) -> usize {
        self.labels.as_ref().map_or(0, Labels::dim)
    }

    fn label(&self, index: usize) -> Result<Vec<f32>> {
        Ok(self.labels.as_ref().map_or(Vec::new(), |l| l.get(index)))
    }
}
