//! The CUDA backend and its simulator: launch code for `kernels/<family>.cu`.
//!
//! `Device::Cuda(n)` runs the kernels on GPU `n` (compiled by NVRTC, see
//! `compile`); `Device::Sim` runs the same sources compiled for the host
//! against `kernels/sim/` (see `launch`). The launch code of each family is
//! written once for both: it allocates outputs with `alloc`, passes buffers
//! as `Buf` arguments and calls `launch::launch`.
//!
//! Nothing here panics when CUDA is missing: `cudarc` panics when it cannot
//! load `libcuda`/`libnvrtc`, so every entry point probes the libraries first
//! and returns `Error::Unavailable` naming the missing piece.

pub(crate) mod bias_act;
pub mod compile;
pub mod conv;
pub(crate) mod conv_tc;
pub mod elementwise;
pub(crate) mod grid_sample;
pub(crate) mod launch;
pub mod matmul;
pub mod modconv;
pub(crate) mod modconv_tc;
pub(crate) mod noise;
pub mod upfirdn;

use crate::device::Device;
use crate::error::{Error, Result};
use crate::tensor::Storage;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, DevicePtr, DeviceRepr,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// The hint printed when `libnvrtc` cannot be loaded.
pub const NVRTC_HINT: &str = "libnvrtc.so.13 not found: pip install nvidia-cuda-nvrtc \
     and add its nvidia/cu13/lib to LD_LIBRARY_PATH";

/// Whether `libcuda` (the driver) can be loaded.
pub fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the library's candidate names.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

/// Whether `libnvrtc` can be loaded.
pub fn nvrtc_present() -> bool {
    // SAFETY: only tries to dlopen the library's candidate names.
    unsafe { cudarc::nvrtc::sys::is_culib_present() }
}

/// One GPU: its context, the stream every launch and copy goes to, its
/// compute capability and the modules loaded so far.
pub(crate) struct Gpu {
    pub(crate) ordinal: usize,
    pub(crate) ctx: Arc<CudaContext>,
    pub(crate) stream: Arc<CudaStream>,
    /// (major, minor) compute capability: the kernels are compiled for `sm_{major}{minor}`.
    pub(crate) arch: (i32, i32),
    functions: Mutex<HashMap<(&'static str, &'static str), CudaFunction>>,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
}

fn cuda_err(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("{what}: {e}"))
}

impl Gpu {
    fn open(ordinal: usize) -> Result<Gpu> {
        let mut missing = Vec::new();
        if !driver_present() {
            missing.push(
                "libcuda.so not found: no NVIDIA driver on this machine (install the NVIDIA \
                 driver to use a GPU; Device::Cpu and Device::Sim need none)",
            );
        }
        if !nvrtc_present() {
            missing.push(NVRTC_HINT);
        }
        if !missing.is_empty() {
            return Err(Error::Unavailable(missing.join("; ")));
        }
        let count = CudaContext::device_count()
            .map_err(|e| cuda_err("no CUDA device found (cuDeviceGetCount)", e))?;
        if ordinal >= count.max(0) as usize {
            return Err(Error::Unavailable(format!(
                "CUDA device {ordinal} does not exist: this machine has {count} CUDA device(s)"
            )));
        }
        let ctx = CudaContext::new(ordinal)
            .map_err(|e| cuda_err(&format!("creating a context on CUDA device {ordinal}"), e))?;
        // One stream per device: event tracking only costs two events per allocation.
        // SAFETY: every launch and copy of this backend uses `stream`.
        unsafe { ctx.disable_event_tracking() };
        let arch = ctx
            .compute_capability()
            .map_err(|e| cuda_err("reading the compute capability", e))?;
        let stream = ctx.default_stream();
        Ok(Gpu {
            ordinal,
            ctx,
            stream,
            arch,
            functions: Mutex::new(HashMap::new()),
            modules: Mutex::new(HashMap::new()),
        })
    }

    /// The kernel `name` of `kernels/<family>.cu`, compiling and loading the
    /// family's module on first use.
    pub(crate) fn function(
        &self,
        family: &'static str,
        name: &'static str,
    ) -> Result<CudaFunction> {
        let mut fns = self.functions.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = fns.get(&(family, name)) {
            return Ok(f.clone());
        }
        let module = {
            let mut mods = self.modules.lock().unwrap_or_else(|e| e.into_inner());
            match mods.get(family) {
                Some(m) => m.clone(),
                None => {
                    let m = compile::load_module(self, family)?;
                    mods.insert(family, m.clone());
                    m
                }
            }
        };
        let f = module.load_function(name).map_err(|e| {
            Error::Internal(format!(
                "kernel `{name}` not found in kernels/{family}.cu: {e}"
            ))
        })?;
        fns.insert((family, name), f.clone());
        Ok(f)
    }

    pub(crate) fn err(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::Unavailable(format!("CUDA device {}: {what}: {e}", self.ordinal))
    }
}

/// The opened GPU `ordinal`, opening it on first use.
pub(crate) fn gpu(ordinal: usize) -> Result<Arc<Gpu>> {
    static GPUS: OnceLock<Mutex<HashMap<usize, Arc<Gpu>>>> = OnceLock::new();
    let mut map = GPUS
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(g) = map.get(&ordinal) {
        return Ok(g.clone());
    }
    let g = Arc::new(Gpu::open(ordinal)?);
    map.insert(ordinal, g.clone());
    Ok(g)
}

/// Blocks until GPU `ordinal`'s stream has drained.
pub(crate) fn synchronize(ordinal: usize) -> Result<()> {
    let gpu = gpu(ordinal)?;
    gpu.stream
        .synchronize()
        .map_err(|e| gpu.err("synchronizing the stream", e))
}

/// The driver's name of GPU `ordinal` (e.g. "NVIDIA H200").
pub fn device_name(ordinal: usize) -> Result<String> {
    let gpu = gpu(ordinal)?;
    gpu.ctx
        .name()
        .map_err(|e| gpu.err("reading the device name", e))
}

/// Probes GPU `ordinal`: `Ok` when its driver, NVRTC and the device are all there.
pub(crate) fn probe(ordinal: usize) -> Result<()> {
    gpu(ordinal).map(|_| ())
}

/// A GPU buffer of f32, and a host copy made on first read from the host.
pub(crate) struct CudaBuffer {
    pub(crate) gpu: Arc<Gpu>,
    pub(crate) slice: CudaSlice<f32>,
    host: OnceLock<Vec<f32>>,
}

impl CudaBuffer {
    pub(crate) fn len(&self) -> usize {
        self.slice.len()
    }

    /// The device address of the buffer.
    pub(crate) fn ptr(&self) -> u64 {
        let (p, _sync) = self.slice.device_ptr(&self.gpu.stream);
        p
    }

    /// Copies the buffer to the host (waits for the kernels writing it).
    pub(crate) fn download(&self) -> Result<Vec<f32>> {
        if let Some(h) = self.host.get() {
            return Ok(h.clone());
        }
        copy_to_host(&self.gpu, &self.slice)
    }

    /// A host copy kept with the buffer (the buffer never changes).
    pub(crate) fn host(&self) -> Result<&[f32]> {
        if self.host.get().is_none() {
            let v = self.download()?;
            let _ = self.host.set(v);
        }
        Ok(self.host.get().map(|v| v.as_slice()).unwrap_or(&[]))
    }
}

/// Copies a device slice to the host, waiting for the kernels writing it.
fn copy_to_host<T: DeviceRepr + Default + Clone>(
    gpu: &Gpu,
    slice: &CudaSlice<T>,
) -> Result<Vec<T>> {
    if slice.is_empty() {
        return Ok(Vec::new());
    }
    let v = gpu
        .stream
        .clone_dtoh(slice)
        .map_err(|e| gpu.err("copying to the host", e))?;
    gpu.stream
        .synchronize()
        .map_err(|e| gpu.err("synchronizing after a copy to the host", e))?;
    Ok(v)
}

/// Copies host data to a new slice on `gpu`; returns once the copy is done,
/// so the host data may be freed.
fn copy_to_device<T: DeviceRepr>(gpu: &Gpu, data: &[T]) -> Result<CudaSlice<T>> {
    let slice = if data.is_empty() {
        gpu.stream.null::<T>()
    } else {
        gpu.stream.clone_htod(data)
    }
    .map_err(|e| gpu.err("copying to the device", e))?;
    gpu.stream
        .synchronize()
        .map_err(|e| gpu.err("synchronizing after a copy to the device", e))?;
    Ok(slice)
}

/// Copies host data to GPU `ordinal`.
pub(crate) fn upload(ordinal: usize, data: &[f32]) -> Result<CudaBuffer> {
    let gpu = gpu(ordinal)?;
    let slice = copy_to_device(&gpu, data)?;
    Ok(CudaBuffer {
        gpu,
        slice,
        host: OnceLock::new(),
    })
}

/// A GPU buffer of 2-byte elements (the bits of F16/BF16 storage).
pub(crate) struct CudaHalfBuffer {
    pub(crate) gpu: Arc<Gpu>,
    pub(crate) slice: CudaSlice<u16>,
}

impl CudaHalfBuffer {
    pub(crate) fn len(&self) -> usize {
        self.slice.len()
    }

    /// The device address of the buffer.
    pub(crate) fn ptr(&self) -> u64 {
        let (p, _sync) = self.slice.device_ptr(&self.gpu.stream);
        p
    }

    /// Copies the bits to the host (waits for the kernels writing them).
    pub(crate) fn download(&self) -> Result<Vec<u16>> {
        copy_to_host(&self.gpu, &self.slice)
    }
}

/// Copies 2-byte elements to GPU `ordinal`.
pub(crate) fn upload_half(ordinal: usize, bits: &[u16]) -> Result<CudaHalfBuffer> {
    let gpu = gpu(ordinal)?;
    let slice = copy_to_device(&gpu, bits)?;
    Ok(CudaHalfBuffer { gpu, slice })
}

/// 2-byte storage made readable by kernels on `device` as it is (no
/// widening): its own buffer, or a copy where the kernel can read it (on
/// the GPU when the bits are on the host or another GPU; on the host for
/// the simulator).
pub(crate) enum HalfInBuf<'a> {
    Borrowed(&'a crate::tensor::HalfData),
    Uploaded(CudaHalfBuffer),
    Host(Vec<u16>),
}

impl<'a> HalfInBuf<'a> {
    pub(crate) fn new(x: &'a crate::tensor::HalfStorage, device: Device) -> Result<HalfInBuf<'a>> {
        use crate::tensor::HalfData;
        Ok(match (&x.data, device) {
            (HalfData::Host(v), Device::Cuda(o)) => HalfInBuf::Uploaded(upload_half(o, v)?),
            (HalfData::Cuda(b), Device::Cuda(o)) if b.gpu.ordinal != o => {
                HalfInBuf::Uploaded(upload_half(o, &b.download()?)?)
            }
            (HalfData::Cuda(b), Device::Sim | Device::Cpu) => HalfInBuf::Host(b.download()?),
            (data, _) => HalfInBuf::Borrowed(data),
        })
    }

    /// The address kernels read from.
    pub(crate) fn ptr(&self) -> u64 {
        use crate::tensor::HalfData;
        match self {
            HalfInBuf::Borrowed(HalfData::Host(v)) => v.as_ptr() as u64,
            HalfInBuf::Borrowed(HalfData::Cuda(b)) | HalfInBuf::Uploaded(b) => b.ptr(),
            HalfInBuf::Host(v) => v.as_ptr() as u64,
        }
    }
}

/// A kernel's input `x`: 2-byte storage as stored when the kernel reads it
/// so (`as_stored`, the `_xh` tensor-core kernels), else as floats
/// (2-byte storage widened, see [`InBuf`]).
pub(crate) enum SrcBuf<'a> {
    Floats(InBuf<'a>),
    AsStored(HalfInBuf<'a>),
}

impl<'a> SrcBuf<'a> {
    pub(crate) fn new(x: &'a Storage, as_stored: bool, device: Device) -> Result<SrcBuf<'a>> {
        Ok(match x {
            Storage::Half(h) if as_stored => SrcBuf::AsStored(HalfInBuf::new(h, device)?),
            _ => SrcBuf::Floats(InBuf::new(x, device)?),
        })
    }

    /// The address kernels read from.
    pub(crate) fn ptr(&self) -> u64 {
        match self {
            SrcBuf::Floats(b) => b.ptr(),
            SrcBuf::AsStored(b) => b.ptr(),
        }
    }
}

/// An output buffer of `n` 2-byte elements on `device` (Sim: host memory
/// filled with a NaN pattern of both formats' bits, 0xFFFF, so an element a
/// kernel leaves unwritten shows).
pub(crate) enum HalfOutBuf {
    Host(Vec<u16>),
    Cuda(CudaHalfBuffer),
}

pub(crate) fn alloc_half(device: Device, n: usize) -> Result<HalfOutBuf> {
    match device {
        Device::Sim => Ok(HalfOutBuf::Host(vec![0xffff; n])),
        Device::Cuda(ordinal) => {
            let gpu = gpu(ordinal)?;
            let slice = if n == 0 {
                gpu.stream.null::<u16>()
            } else {
                // SAFETY: every element is written by the kernel that fills the buffer.
                unsafe { gpu.stream.alloc::<u16>(n) }
            }
            .map_err(|e| gpu.err(&format!("allocating {n} 2-byte elements"), e))?;
            Ok(HalfOutBuf::Cuda(CudaHalfBuffer { gpu, slice }))
        }
        Device::Cpu => Err(Error::Internal(
            "backend::cuda::alloc_half called for the CPU".into(),
        )),
    }
}

impl HalfOutBuf {
    /// The address kernels write to.
    pub(crate) fn ptr(&mut self) -> u64 {
        match self {
            HalfOutBuf::Host(v) => v.as_mut_ptr() as u64,
            HalfOutBuf::Cuda(b) => b.ptr(),
        }
    }

    pub(crate) fn into_data(self) -> crate::tensor::HalfData {
        match self {
            HalfOutBuf::Host(v) => crate::tensor::HalfData::Host(v),
            HalfOutBuf::Cuda(b) => crate::tensor::HalfData::Cuda(b),
        }
    }
}

/// An output buffer of `n` floats on `device` (Cuda: uninitialized device
/// memory; Sim: host memory filled with NaN, so that a kernel which leaves an
/// element unwritten, or accumulates into one without zeroing it first, fails
/// its simulator test as it would misbehave on a GPU), to be filled by
/// kernels and turned into a `Storage` with `into_storage`.
pub(crate) enum OutBuf {
    Host(Vec<f32>),
    Cuda(CudaBuffer),
}

pub(crate) fn alloc(device: Device, n: usize) -> Result<OutBuf> {
    match device {
        Device::Sim => Ok(OutBuf::Host(vec![f32::NAN; n])),
        Device::Cuda(ordinal) => {
            let gpu = gpu(ordinal)?;
            let slice = if n == 0 {
                gpu.stream.null::<f32>()
            } else {
                // SAFETY: every element is written by the kernel that fills the buffer.
                unsafe { gpu.stream.alloc::<f32>(n) }
            }
            .map_err(|e| gpu.err(&format!("allocating {n} floats"), e))?;
            Ok(OutBuf::Cuda(CudaBuffer {
                gpu,
                slice,
                host: OnceLock::new(),
            }))
        }
        Device::Cpu => Err(Error::Internal(
            "backend::cuda::alloc called for the CPU".into(),
        )),
    }
}

impl OutBuf {
    /// The address kernels write to.
    pub(crate) fn ptr(&mut self) -> u64 {
        match self {
            OutBuf::Host(v) => v.as_mut_ptr() as u64,
            OutBuf::Cuda(b) => b.ptr(),
        }
    }

    pub(crate) fn into_storage(self) -> Storage {
        match self {
            OutBuf::Host(v) => Storage::Cpu(v),
            OutBuf::Cuda(b) => Storage::Cuda(b),
        }
    }
}

/// A storage made readable by kernels on `device`: host storage of a CUDA
/// tensor (a result computed on the host) is uploaded for the launch.
pub(crate) enum InBuf<'a> {
    Borrowed(&'a Storage),
    Uploaded(CudaBuffer),
    Host(Vec<f32>),
}

impl<'a> InBuf<'a> {
    pub(crate) fn new(storage: &'a Storage, device: Device) -> Result<InBuf<'a>> {
        Ok(match (storage, device) {
            (Storage::Cpu(v), Device::Cuda(ordinal)) => InBuf::Uploaded(upload(ordinal, v)?),
            (Storage::Cuda(b), Device::Cuda(ordinal)) if b.gpu.ordinal != ordinal => {
                InBuf::Uploaded(upload(ordinal, b.host()?)?)
            }
            (Storage::Cuda(b), _) if device != Device::Cuda(b.gpu.ordinal) => {
                InBuf::Host(b.download()?)
            }
            // 2-byte storage read by an FP32 kernel: its values, widened.
            // Only ops that declare the dtype get here with it (see
            // `autograd::Backward::supports`); they compute in FP32.
            // On a GPU the cast kernel widens it there (no host round trip).
            (Storage::Half(h), Device::Cuda(_)) => {
                match elementwise::cast_from_half(h, h.len(), device)? {
                    Storage::Cuda(b) => InBuf::Uploaded(b),
                    _ => unreachable!("cast_from_half on a GPU returns GPU storage"),
                }
            }
            (Storage::Half(h), _) => InBuf::Host(h.values()?.to_vec()),
            _ => InBuf::Borrowed(storage),
        })
    }

    /// The address kernels read from.
    pub(crate) fn ptr(&self) -> u64 {
        match self {
            InBuf::Borrowed(Storage::Cpu(v)) => v.as_ptr() as u64,
            InBuf::Borrowed(Storage::Cuda(b)) | InBuf::Uploaded(b) => b.ptr(),
            InBuf::Borrowed(Storage::Half(_)) => {
                unreachable!("InBuf::new widens 2-byte storage into Host/Uploaded")
            }
            InBuf::Host(v) => v.as_ptr() as u64,
        }
    }
}
