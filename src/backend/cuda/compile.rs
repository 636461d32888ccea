//! NVRTC compilation of `kernels/<family>.cu` to a cubin for the device's own
//! compute capability, with an on-disk cache.
//!
//! - Sources are embedded at build time (`FAMILIES`, `HEADERS`); the shared
//!   headers (`common.cuh`, `modconv_common.cuh`, ...) are handed to NVRTC as
//!   in-memory headers.
//! - CUDA headers (`cuda_fp16.h`, ...) come from `nvrtcInstallBundledHeaders`
//!   (NVRTC 13.3+), written once into the cache directory, or from
//!   `$STYLEGAN2_CUDA_INCLUDE` / `$CUDA_PATH/include` with an older NVRTC.
//! - A cubin (never PTX: PTX newer than the driver does not load) is cached as
//!   `<cache>/<family>-sm_XY-<hash>.cubin`, the hash covering the source,
//!   every header, the options and the NVRTC version. The directory is
//!   `$STYLEGAN2_KERNEL_CACHE`, else `$XDG_CACHE_HOME/stylegan2/kernels`, else
//!   `~/.cache/stylegan2/kernels`. An entry that is truncated, corrupt or
//!   rejected by the driver is recompiled; a cache that cannot be written only
//!   costs the compile next time.

use super::{nvrtc_present, Gpu, NVRTC_HINT};
use crate::error::{Error, Result};
use cudarc::driver::CudaModule;
use cudarc::nvrtc::{result as nvrtc, sys as nvrtc_sys, Ptx};
use std::ffi::{c_char, CStr, CString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/kernels.rs"));
}

/// Names of the kernel families (`kernels/<name>.cu`) built into the crate.
pub fn families() -> Vec<&'static str> {
    embedded::FAMILIES.iter().map(|(f, _)| *f).collect()
}

/// The embedded source of `kernels/<family>.cu`.
pub fn source(family: &str) -> Result<&'static str> {
    embedded::FAMILIES
        .iter()
        .find(|(f, _)| *f == family)
        .map(|(_, s)| *s)
        .ok_or_else(|| Error::Internal(format!("no kernel file kernels/{family}.cu")))
}

/// The NVRTC version (major, minor).
pub fn nvrtc_version() -> Result<(i32, i32)> {
    if !nvrtc_present() {
        return Err(Error::Unavailable(NVRTC_HINT.into()));
    }
    let (mut major, mut minor) = (0, 0);
    // SAFETY: NVRTC is loadable; the call writes two ints.
    unsafe { nvrtc_sys::nvrtcVersion(&mut major, &mut minor) }
        .result()
        .map_err(|e| Error::Unavailable(format!("nvrtcVersion: {e:?}")))?;
    Ok((major, minor))
}

/// The kernel cache directory (see the module docs).
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("STYLEGAN2_KERNEL_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("stylegan2").join("kernels")
}

/// 128-bit FNV-1a: stable across Rust versions and platforms, which is all a
/// cache key needs.
fn hash128(parts: &[&[u8]]) -> u128 {
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    let mut h: u128 = 0x6c62272e07bb014262b821756295c58d;
    for p in parts {
        for &b in p.iter().chain(&(p.len() as u64).to_le_bytes()) {
            h ^= b as u128;
            h = h.wrapping_mul(PRIME);
        }
    }
    h
}

/// The directory holding NVRTC's own CUDA headers, installed on first use,
/// or a CUDA toolkit's include directory.
fn include_dir() -> Result<PathBuf> {
    static DIR: OnceLock<Mutex<Option<PathBuf>>> = OnceLock::new();
    let mut cached = DIR
        .get_or_init(|| Mutex::new(None))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(d) = cached.as_ref() {
        return Ok(d.clone());
    }
    let found = find_include_dir()?;
    *cached = Some(found.clone());
    Ok(found)
}

fn find_include_dir() -> Result<PathBuf> {
    let (major, minor) = nvrtc_version()?;
    // SAFETY: only looks the symbol up.
    let bundled = unsafe {
        nvrtc_sys::culib()
            .get::<unsafe extern "C" fn()>(b"nvrtcInstallBundledHeaders\0")
            .is_ok()
    };
    if bundled {
        let dir = cache_dir().join(format!("include-nvrtc-{major}.{minor}"));
        let marker = dir.join(".complete");
        if marker.exists() {
            return Ok(dir);
        }
        std::fs::create_dir_all(&dir).map_err(|e| {
            Error::Io(format!(
                "creating the CUDA header directory {}: {e}",
                dir.display()
            ))
        })?;
        let c_dir = CString::new(dir.to_string_lossy().as_bytes())
            .map_err(|_| Error::Io(format!("cache path {} holds a NUL", dir.display())))?;
        let mut log: *const c_char = std::ptr::null();
        // SAFETY: the symbol exists (checked above); the path is NUL-terminated.
        let rc = unsafe { nvrtc_sys::nvrtcInstallBundledHeaders(c_dir.as_ptr(), 0, &mut log) };
        if rc != nvrtc_sys::nvrtcResult::NVRTC_SUCCESS {
            let msg = if log.is_null() {
                String::new()
            } else {
                // SAFETY: NVRTC returns a NUL-terminated message.
                unsafe { CStr::from_ptr(log) }
                    .to_string_lossy()
                    .into_owned()
            };
            return Err(Error::Unavailable(format!(
                "nvrtcInstallBundledHeaders into {}: {rc:?} {msg}",
                dir.display()
            )));
        }
        let _ = std::fs::write(&marker, b"");
        return Ok(dir);
    }
    let candidates = ["STYLEGAN2_CUDA_INCLUDE", "CUDA_PATH", "CUDA_HOME"]
        .iter()
        .filter_map(|v| std::env::var_os(v).map(PathBuf::from))
        .flat_map(|p| [p.clone(), p.join("include")]);
    for dir in candidates {
        if dir.join("cuda_fp16.h").exists() {
            return Ok(dir);
        }
    }
    Err(Error::Unavailable(format!(
        "NVRTC {major}.{minor} has no bundled CUDA headers (needs 13.3 or newer: pip install -U \
         nvidia-cuda-nvrtc), and no cuda_fp16.h was found under $STYLEGAN2_CUDA_INCLUDE, \
         $CUDA_PATH or $CUDA_HOME"
    )))
}

/// The options of a compile for `arch` (e.g. "sm_90"), before `extra`.
fn options(arch: &str, include: &Path) -> Vec<String> {
    vec![
        format!("--gpu-architecture={arch}"),
        "--std=c++17".into(),
        format!("--include-path={}", include.display()),
    ]
}

/// A compiled cubin and NVRTC's log.
pub struct Compiled {
    pub cubin: Vec<u8>,
    pub log: String,
}

/// Compiles `kernels/<family>.cu` to a cubin for `arch` ("sm_80", "sm_90", ...)
/// with `extra` options (e.g. `--ptxas-options=-v`); needs NVRTC but no GPU.
/// A compile error names the kernel file and carries NVRTC's log.
pub fn compile_cubin(family: &str, arch: &str, extra: &[&str]) -> Result<Compiled> {
    if !nvrtc_present() {
        return Err(Error::Unavailable(NVRTC_HINT.into()));
    }
    let src = source(family)?;
    let include = include_dir()?;
    let mut opts = options(arch, &include);
    opts.extend(extra.iter().map(|s| s.to_string()));
    nvrtc_compile(family, src, &opts)
}

fn nvrtc_compile(family: &str, src: &str, opts: &[String]) -> Result<Compiled> {
    let file = format!("{family}.cu");
    let c_src = CString::new(src).map_err(|_| Error::Internal(format!("{file} holds a NUL")))?;
    let c_name = CString::new(file.clone()).unwrap_or_default();
    let mut c_headers = Vec::new();
    let mut c_header_names = Vec::new();
    for (name, text) in embedded::HEADERS {
        c_headers.push(
            CString::new(*text)
                .map_err(|_| Error::Internal(format!("kernels/{name} holds a NUL")))?,
        );
        c_header_names.push(CString::new(*name).unwrap_or_default());
    }
    let headers: Vec<*const c_char> = c_headers.iter().map(|h| h.as_ptr()).collect();
    let header_names: Vec<*const c_char> = c_header_names.iter().map(|h| h.as_ptr()).collect();
    let mut prog = std::mem::MaybeUninit::uninit();
    // SAFETY: all strings are NUL-terminated and outlive the program.
    unsafe {
        nvrtc_sys::nvrtcCreateProgram(
            prog.as_mut_ptr(),
            c_src.as_ptr(),
            c_name.as_ptr(),
            headers.len() as i32,
            headers.as_ptr(),
            header_names.as_ptr(),
        )
    }
    .result()
    .map_err(|e| Error::Unavailable(format!("nvrtcCreateProgram for {file}: {e:?}")))?;
    // SAFETY: created above.
    let prog = unsafe { prog.assume_init() };
    struct Destroy(nvrtc_sys::nvrtcProgram);
    impl Drop for Destroy {
        fn drop(&mut self) {
            // SAFETY: created by nvrtcCreateProgram, destroyed once.
            let _ = unsafe { nvrtc::destroy_program(self.0) };
        }
    }
    let _guard = Destroy(prog);
    // SAFETY: `prog` is a live program.
    let compiled = unsafe { nvrtc::compile_program(prog, opts) };
    let log = unsafe { nvrtc::get_program_log(prog) }
        .map(|l| {
            let bytes: Vec<u8> = l.iter().map(|&c| c as u8).take_while(|&b| b != 0).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        })
        .unwrap_or_default();
    if let Err(e) = compiled {
        return Err(Error::Internal(format!(
            "NVRTC failed to compile kernels/{file} ({e:?}) with options {opts:?}:\n{log}"
        )));
    }
    let mut size = 0usize;
    // SAFETY: compiled for a real architecture (sm_XY), so a cubin exists.
    unsafe { nvrtc_sys::nvrtcGetCUBINSize(prog, &mut size) }
        .result()
        .map_err(|e| Error::Internal(format!("nvrtcGetCUBINSize for {file}: {e:?}")))?;
    let mut cubin = vec![0u8; size];
    unsafe { nvrtc_sys::nvrtcGetCUBIN(prog, cubin.as_mut_ptr() as *mut c_char) }
        .result()
        .map_err(|e| Error::Internal(format!("nvrtcGetCUBIN for {file}: {e:?}")))?;
    Ok(Compiled { cubin, log })
}

/// Cache entries end with the 16-byte hash of the cubin before them.
fn read_entry(path: &Path) -> Option<Vec<u8>> {
    let mut bytes = std::fs::read(path).ok()?;
    if bytes.len() < 16 + 4 {
        return None;
    }
    let tail = bytes.split_off(bytes.len() - 16);
    let ok = tail == hash128(&[&bytes]).to_le_bytes() && bytes.starts_with(b"\x7fELF");
    ok.then_some(bytes)
}

/// Best effort: a cache that can't be written only costs a recompile. The
/// checked writer renames a finished temporary, so a concurrent reader never
/// sees half a file.
fn write_entry(path: &Path, cubin: &[u8]) {
    let _ = crate::fsio::write_with(path, |f| {
        f.write_all(cubin)?;
        f.write_all(&hash128(&[cubin]).to_le_bytes())
    });
}

/// Compiles (or takes from the cache) and loads `kernels/<family>.cu` on `gpu`.
pub(crate) fn load_module(gpu: &Gpu, family: &'static str) -> Result<Arc<CudaModule>> {
    let arch = format!("sm_{}{}", gpu.arch.0, gpu.arch.1);
    let src = source(family)?;
    let include = include_dir()?;
    let opts = options(&arch, &include);
    let (major, minor) = nvrtc_version()?;
    // The include path (a cache location) is left out of the key.
    let key_opts: Vec<&str> = opts
        .iter()
        .filter(|o| !o.starts_with("--include-path="))
        .map(|s| s.as_str())
        .collect();
    let version = format!("nvrtc {major}.{minor}");
    let mut parts: Vec<&[u8]> = vec![src.as_bytes()];
    for (name, text) in embedded::HEADERS {
        parts.extend([name.as_bytes(), text.as_bytes()]);
    }
    let joined = key_opts.join(" ");
    parts.extend([joined.as_bytes(), version.as_bytes()]);
    let key = hash128(&parts);
    let path = cache_dir().join(format!("{family}-{arch}-{key:032x}.cubin"));
    if let Some(cubin) = read_entry(&path) {
        match gpu.ctx.load_module(Ptx::from_binary(cubin)) {
            Ok(m) => return Ok(m),
            Err(e) => eprintln!(
                "stylegan2: cached kernel {} rejected by the driver ({e}); recompiling",
                path.display()
            ),
        }
    }
    let compiled = nvrtc_compile(family, src, &opts)?;
    let module = gpu
        .ctx
        .load_module(Ptx::from_binary(compiled.cubin.clone()))
        .map_err(|e| {
            gpu.err(
                &format!("loading the cubin of kernels/{family}.cu ({arch})"),
                e,
            )
        })?;
    write_entry(&path, &compiled.cubin);
    Ok(module)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_entries_round_trip_and_reject_corruption() {
        let dir = std::env::temp_dir().join(format!("stylegan2-cache-test-{}", std::process::id()));
        let path = dir.join("x.cubin");
        let cubin = b"\x7fELF and some bytes".to_vec();
        write_entry(&path, &cubin);
        assert_eq!(read_entry(&path).as_deref(), Some(&cubin[..]));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[6] ^= 1;
        std::fs::write(&path, &bytes).unwrap();
        assert_eq!(read_entry(&path), None, "a flipped byte is detected");
        std::fs::write(&path, &bytes[..10]).unwrap();
        assert_eq!(read_entry(&path), None, "a truncated entry is detected");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn every_family_is_embedded_with_kernels() {
        assert!(families().contains(&"elementwise"));
        assert!(source("elementwise").unwrap().contains("__global__"));
        assert!(source("nope").is_err());
    }
}
