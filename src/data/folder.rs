//! A directory (searched recursively) or a `.zip` archive of PNG and JPEG
//! images, as the official `ImageFolderDataset`: every image square, of one
//! power-of-two resolution. Opening reads every image's header and refuses
//! the set with an error naming the first bad file; pixels are decoded when
//! a batch asks for them.

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

/// PNG/JPEG images from a directory or a zip archive.
pub struct ImageFolder {
    path: PathBuf,
    source: Source,
    resolution: usize,
    channels: usize,
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
fn header(bytes: &[u8], what: &str) -> Result<(u32, u32, bool)> {
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

impl ImageFolder {
    /// Opens `path` (a directory or a `.zip` file) and checks every image's
    /// header: readable, square, a power of two ≥ 4, all of one size.
    pub fn open(path: &Path) -> Result<ImageFolder> {
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
        let mut ds = ImageFolder {
            path: path.to_path_buf(),
            source,
            resolution: 0,
            channels: 3,
        };
        if ds.len() == 0 {
            return Err(Error::Io(format!(
                "dataset {}: no PNG or JPEG images found",
                path.display()
            )));
        }
        let mut all_gray = true;
        let mut first: Option<(u32, String)> = None;
        for i in 0..ds.len() {
            let what = ds.file_name(i);
            let (w, h, gray) = header(&ds.read(i)?, &what)?;
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
        ds.resolution = first.map_or(0, |(r, _)| r as usize);
        ds.channels = if all_gray { 1 } else { 3 };
        Ok(ds)
    }

    /// The path of image `i` for messages (`archive.zip:inner/name.png` in a zip).
    pub fn file_name(&self, i: usize) -> String {
        match &self.source {
            Source::Dir(files) => files[i].display().to_string(),
            Source::Zip { names, .. } => format!("{}:{}", self.path.display(), names[i]),
        }
    }

    fn read(&self, i: usize) -> Result<Vec<u8>> {
        let what = || self.file_name(i);
        match &self.source {
            Source::Dir(files) => {
                std::fs::read(&files[i]).map_err(|e| Error::Io(format!("reading {}: {e}", what())))
            }
            Source::Zip { archive, names } => {
                let mut archive = archive.lock().unwrap_or_else(|e| e.into_inner());
                let mut entry = archive
                    .by_name(&names[i])
                    .map_err(|e| Error::Io(format!("reading {}: {e}", what())))?;
                let mut bytes = Vec::with_capacity(entry.size() as usize);
                entry
                    .read_to_end(&mut bytes)
                    .map_err(|e| Error::Io(format!("reading {}: {e}", what())))?;
                Ok(bytes)
            }
        }
    }
}

impl Dataset for ImageFolder {
    fn name(&self) -> String {
        let stem = self
            .path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("data");
        stem.to_string()
    }

    fn len(&self) -> usize {
        match &self.source {
            Source::Dir(files) => files.len(),
            Source::Zip { names, .. } => names.len(),
        }
    }

    fn resolution(&self) -> usize {
        self.resolution
    }

    fn channels(&self) -> usize {
        self.channels
    }

    fn image(&self, index: usize) -> Result<Vec<u8>> {
        let what = self.file_name(index);
        let img = image::load_from_memory(&self.read(index)?)
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
}
