//! The one checked way this crate writes a file (PNGs, grids, JSON,
//! `stats.jsonl`, network snapshots, dataset output).
//!
//! Bytes go to a temporary file beside the destination (`.NAME.XXXXXX.tmp`
//! in the same directory, so the final rename stays on one file system);
//! every write, the flush and the rename are checked; on any failure the
//! temporary is removed and the error names the destination. A reader thus
//! sees either the old file or the complete new one, never a truncated or
//! empty one, and a full disk is not left fuller by a half-written file.
//!
//! Not fsync'ed: a crash of the machine (not of the process) may still lose
//! the last files; the writes of a full disk or a quota fail here.

use crate::error::{Error, Result};
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

fn io_err(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Io(format!("{what} {}: {e}", path.display()))
}

/// Creates `dir` and its parents, naming the directory on failure.
pub fn create_dir_all(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| io_err(dir, "creating", e))
}

/// A file being written: a temporary beside `path` that becomes `path` on
/// [`CheckedFile::commit`] and is removed when dropped uncommitted.
/// Implements `Write` and `Seek` (a zip archive can be written into it).
pub struct CheckedFile {
    path: PathBuf,
    file: BufWriter<tempfile::NamedTempFile>,
}

impl CheckedFile {
    /// Starts writing `path`, creating its parent directory.
    pub fn create(path: &Path) -> Result<CheckedFile> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        create_dir_all(dir)?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Error::Io(format!("{}: not a file name to write", path.display())))?;
        let prefix = format!(".{name}.");
        let mut builder = tempfile::Builder::new();
        builder.prefix(&prefix).suffix(".tmp");
        // The mode a plain `File::create` gives (0666 less the umask), not
        // tempfile's private 0600: the result is an ordinary output file.
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
        let tmp = builder
            .tempfile_in(dir)
            .map_err(|e| io_err(path, "cannot write", e))?;
        Ok(CheckedFile {
            path: path.to_path_buf(),
            file: BufWriter::with_capacity(1 << 16, tmp),
        })
    }

    /// The destination.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes and renames the temporary onto the destination (replacing
    /// it). On failure the temporary is removed and nothing else changes.
    pub fn commit(self) -> Result<()> {
        let path = self.path;
        let tmp = self
            .file
            .into_inner()
            .map_err(|e| io_err(&path, "writing", e.error()))?;
        tmp.as_file()
            .flush()
            .map_err(|e| io_err(&path, "writing", e))?;
        tmp.persist(&path)
            .map(drop)
            .map_err(|e| io_err(&path, "writing", e.error))
    }
}

impl Write for CheckedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Seek for CheckedFile {
    fn seek(&mut self, pos: SeekFrom) -> std::io::Result<u64> {
        self.file.seek(pos)
    }
}

/// Writes `path` through `f` (see [`CheckedFile`]); an error of `f`
/// removes the temporary and is returned naming `path`.
pub fn write_with(
    path: &Path,
    f: impl FnOnce(&mut CheckedFile) -> std::io::Result<()>,
) -> Result<()> {
    let mut file = CheckedFile::create(path)?;
    f(&mut file).map_err(|e| io_err(path, "writing", e))?;
    file.commit()
}

/// Writes `bytes` to `path` (see [`CheckedFile`]).
pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |f| f.write_all(bytes))
}

/// For a library that writes by path (safetensors): `f` writes the
/// temporary path it is given, which then replaces `path` as in
/// [`CheckedFile::commit`].
pub fn write_via_path<E: std::fmt::Display>(
    path: &Path,
    f: impl FnOnce(&Path) -> std::result::Result<(), E>,
) -> Result<()> {
    let file = CheckedFile::create(path)?;
    let tmp = file.file.get_ref().path().to_path_buf();
    f(&tmp).map_err(|e| io_err(path, "writing", e))?;
    file.commit()
}

/// Appends `bytes` to `path` (created if absent) by writing the whole new
/// content through [`write`]: a failed append leaves the file as it was
/// (meant for small logs such as `stats.jsonl`).
pub fn append(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut content = match std::fs::read(path) {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io_err(path, "reading", e)),
    };
    content.extend_from_slice(bytes);
    write(path, &content)
}
