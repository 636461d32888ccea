//! `Tensor`: an immutable, reference-counted array on a device (f32, or
//! 2-byte F16/BF16 storage, see `dtype`), and the node of the autograd graph
//! that made it (see `autograd`).

use crate::autograd::{self, Backward};
use crate::device::Device;
pub use crate::dtype::DType;
use crate::error::{Error, Result};
use crate::shape::Shape;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal, Uniform};
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

/// A device buffer. Contiguous, row-major.
///
/// `Cpu` is host memory: the storage of `Device::Cpu` and `Device::Sim`
/// tensors (the simulator runs kernels on host pointers), and of `Device::Cuda`
/// tensors computed on the host (uploaded when a kernel reads them). `Cuda` is
/// GPU memory.
pub(crate) enum Storage {
    Cpu(Vec<f32>),
    Cuda(crate::backend::cuda::CudaBuffer),
    /// 2-byte elements (F16/BF16). Read as f32 (`cpu`, `host`, kernels'
    /// inputs) they are widened exactly, so an op that declares the dtype
    /// computes in FP32 on its values.
    Half(HalfStorage),
}

/// Where the bits of 2-byte storage live.
pub(crate) enum HalfData {
    /// Host memory (`Cpu`, `Sim`, or a `Cuda` result computed on the host).
    Host(Vec<u16>),
    Cuda(crate::backend::cuda::CudaHalfBuffer),
}

/// 2-byte storage and its widened values, made on first read as f32.
pub(crate) struct HalfStorage {
    pub(crate) dtype: DType,
    pub(crate) data: HalfData,
    values: OnceLock<Vec<f32>>,
}

impl HalfStorage {
    pub(crate) fn new(dtype: DType, data: HalfData) -> HalfStorage {
        debug_assert!(dtype.is_half(), "HalfStorage of {dtype}");
        HalfStorage {
            dtype,
            data,
            values: OnceLock::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match &self.data {
            HalfData::Host(v) => v.len(),
            HalfData::Cuda(b) => b.len(),
        }
    }

    /// The bits on the host (copied from a GPU).
    pub(crate) fn host_bits(&self) -> Result<std::borrow::Cow<'_, [u16]>> {
        Ok(match &self.data {
            HalfData::Host(v) => std::borrow::Cow::Borrowed(v),
            HalfData::Cuda(b) => std::borrow::Cow::Owned(b.download()?),
        })
    }

    /// The values widened to f32 (exact), computed once.
    pub(crate) fn values(&self) -> Result<&[f32]> {
        if self.values.get().is_none() {
            let v = crate::dtype::decode(&self.host_bits()?, self.dtype);
            let _ = self.values.set(v);
        }
        Ok(self.values.get().map(|v| v.as_slice()).unwrap_or(&[]))
    }
}

impl Storage {
    /// The data as a host slice. For GPU memory this copies the buffer to the
    /// host once and keeps the copy.
    ///
    /// # Panics
    /// When the copy from a GPU fails (a device fault): use `host()` to get
    /// the error instead.
    pub(crate) fn cpu(&self) -> &[f32] {
        self.host()
            .unwrap_or_else(|e| panic!("reading a GPU buffer from the host: {e}"))
    }

    /// The data as a host slice, copying GPU memory to the host once.
    pub(crate) fn host(&self) -> Result<&[f32]> {
        match self {
            Storage::Cpu(v) => Ok(v),
            Storage::Cuda(b) => b.host(),
            Storage::Half(h) => h.values(),
        }
    }

    /// A fresh host copy of the data (2-byte elements widened to f32).
    pub(crate) fn to_host_vec(&self) -> Result<Vec<f32>> {
        match self {
            Storage::Cpu(v) => Ok(v.clone()),
            Storage::Cuda(b) => b.download(),
            Storage::Half(h) => Ok(h.values()?.to_vec()),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            Storage::Cpu(v) => v.len(),
            Storage::Cuda(b) => b.len(),
            Storage::Half(h) => h.len(),
        }
    }

    /// The element type.
    pub(crate) fn dtype(&self) -> DType {
        match self {
            Storage::Cpu(_) | Storage::Cuda(_) => DType::F32,
            Storage::Half(h) => h.dtype,
        }
    }

    /// Host data as the storage of a tensor on `device`; a failed upload to a
    /// GPU is an error.
    pub(crate) fn try_from_host(data: Vec<f32>, device: Device) -> Result<Storage> {
        Ok(match device {
            Device::Cuda(n) => Storage::Cuda(crate::backend::cuda::upload(n, &data)?),
            Device::Cpu | Device::Sim => Storage::Cpu(data),
        })
    }

    /// Host data as the storage of a tensor on `device`: uploaded for a GPU
    /// (kept on the host, to be uploaded at first use, if the upload fails).
    pub(crate) fn from_host(data: Vec<f32>, device: Device) -> Storage {
        match device {
            Device::Cuda(n) => match crate::backend::cuda::upload(n, &data) {
                Ok(b) => Storage::Cuda(b),
                Err(_) => Storage::Cpu(data),
            },
            Device::Cpu | Device::Sim => Storage::Cpu(data),
        }
    }
}

/// The op that made a tensor and the tensors it read.
pub(crate) struct GradFn {
    pub(crate) op: Box<dyn Backward>,
    pub(crate) inputs: Vec<Tensor>,
}

pub(crate) struct Node {
    pub(crate) id: u64,
    pub(crate) shape: Shape,
    pub(crate) device: Device,
    /// Swapped whole by `assign` (optimizer updates), never mutated in place,
    /// so readers hold an `Arc` snapshot without keeping the lock.
    storage: RwLock<Arc<Storage>>,
    requires_grad: AtomicBool,
    pub(crate) grad_fn: Option<GradFn>,
    /// Gradient accumulated by `backward()` on a leaf.
    grad: Mutex<Option<Tensor>>,
}

impl Drop for Node {
    /// Frees a long chain iteratively: a node whose last owner is this one is
    /// unwrapped and its inputs pushed on a stack instead of recursing.
    fn drop(&mut self) {
        let Some(gf) = self.grad_fn.take() else {
            return;
        };
        let mut stack = gf.inputs;
        drop(gf.op);
        while let Some(t) = stack.pop() {
            if let Ok(mut node) = Arc::try_unwrap(t.0) {
                if let Some(gf) = node.grad_fn.take() {
                    stack.extend(gf.inputs);
                }
            }
        }
    }
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// An n-dimensional f32 array. Cloning is cheap (shares the node).
#[derive(Clone)]
pub struct Tensor(pub(crate) Arc<Node>);

impl Tensor {
    fn from_storage(
        storage: Storage,
        shape: Shape,
        device: Device,
        grad_fn: Option<GradFn>,
    ) -> Tensor {
        Tensor(Arc::new(Node {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            shape,
            device,
            storage: RwLock::new(Arc::new(storage)),
            requires_grad: AtomicBool::new(false),
            grad_fn,
            grad: Mutex::new(None),
        }))
    }

    /// The result of an op (on the host or in a device buffer): records `op`
    /// and `inputs` in the graph when grad mode is on and any input needs a
    /// gradient.
    ///
    /// This is where every op's dtypes are checked, once for all ops: an
    /// input whose dtype the op does not declare (`Backward::supports`) is
    /// an error naming the op, the input and the dtype.
    pub(crate) fn from_op_storage(
        storage: Storage,
        shape: impl Into<Shape>,
        device: Device,
        op: impl Backward + 'static,
        inputs: Vec<Tensor>,
    ) -> Result<Tensor> {
        let shape = shape.into();
        check_dtypes(&op, &inputs)?;
        debug_assert_eq!(storage.len(), shape.numel(), "{}: output size", op.name());
        let track = autograd::is_grad_enabled() && inputs.iter().any(|t| t.needs_grad());
        let grad_fn = track.then(|| GradFn {
            op: Box::new(op),
            inputs,
        });
        Ok(Tensor::from_storage(storage, shape, device, grad_fn))
    }

    /// Like `from_op_storage`, sharing a buffer (reshape).
    pub(crate) fn from_op_shared(
        storage: Arc<Storage>,
        shape: impl Into<Shape>,
        device: Device,
        op: impl Backward + 'static,
        inputs: Vec<Tensor>,
    ) -> Result<Tensor> {
        let shape = shape.into();
        check_dtypes(&op, &inputs)?;
        let track = autograd::is_grad_enabled() && inputs.iter().any(|t| t.needs_grad());
        let grad_fn = track.then(|| GradFn {
            op: Box::new(op),
            inputs,
        });
        Ok(Tensor(Arc::new(Node {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            shape,
            device,
            storage: RwLock::new(storage),
            requires_grad: AtomicBool::new(false),
            grad_fn,
            grad: Mutex::new(None),
        })))
    }

    /// A constant (no graph) with a device-computed buffer.
    pub(crate) fn from_device_storage(
        storage: Storage,
        shape: impl Into<Shape>,
        device: Device,
    ) -> Tensor {
        Tensor::from_storage(storage, shape.into(), device, None)
    }

    /// A tensor from host data; fails when `data.len()` does not match the shape.
    pub fn from_vec(data: Vec<f32>, shape: impl Into<Shape>, device: Device) -> Result<Tensor> {
        let shape = shape.into();
        if data.len() != shape.numel() {
            return Err(Error::Shape {
                op: "from_vec",
                msg: format!(
                    "{} values do not fill shape {shape} ({} elements)",
                    data.len(),
                    shape.numel()
                ),
            });
        }
        Ok(Tensor::from_storage(
            Storage::try_from_host(data, device)?,
            shape,
            device,
            None,
        ))
    }

    pub fn full(value: f32, shape: impl Into<Shape>, device: Device) -> Tensor {
        let shape = shape.into();
        Tensor::from_storage(
            Storage::from_host(vec![value; shape.numel()], device),
            shape,
            device,
            None,
        )
    }

    pub fn zeros(shape: impl Into<Shape>, device: Device) -> Tensor {
        Tensor::full(0.0, shape, device)
    }

    pub fn ones(shape: impl Into<Shape>, device: Device) -> Tensor {
        Tensor::full(1.0, shape, device)
    }

    /// A rank-0 tensor holding `value`.
    pub fn scalar(value: f32, device: Device) -> Tensor {
        Tensor::full(value, Shape::new(vec![]), device)
    }

    /// Standard-normal samples, drawn on the host so a seed gives the same
    /// values on every device.
    pub fn randn(shape: impl Into<Shape>, rng: &mut impl Rng, device: Device) -> Tensor {
        let shape = shape.into();
        let data = (0..shape.numel())
            .map(|_| StandardNormal.sample(rng))
            .collect();
        Tensor::from_storage(Storage::from_host(data, device), shape, device, None)
    }

    /// Uniform samples in `[lo, hi)`; fails unless `lo < hi` and both are finite.
    pub fn uniform(
        shape: impl Into<Shape>,
        lo: f32,
        hi: f32,
        rng: &mut impl Rng,
        device: Device,
    ) -> Result<Tensor> {
        let dist = Uniform::new(lo, hi).map_err(|e| Error::Invalid {
            op: "uniform",
            msg: format!("range [{lo}, {hi}): {e}"),
        })?;
        let shape = shape.into();
        let data = (0..shape.numel()).map(|_| dist.sample(rng)).collect();
        Ok(Tensor::from_storage(
            Storage::try_from_host(data, device)?,
            shape,
            device,
            None,
        ))
    }

    pub fn shape(&self) -> &Shape {
        &self.0.shape
    }

    pub fn dims(&self) -> &[usize] {
        self.0.shape.dims()
    }

    pub fn rank(&self) -> usize {
        self.0.shape.rank()
    }

    pub fn numel(&self) -> usize {
        self.0.shape.numel()
    }

    pub fn device(&self) -> Device {
        self.0.device
    }

    /// The element type of the storage (`F32` unless made by `to_dtype`).
    pub fn dtype(&self) -> DType {
        self.storage().dtype()
    }

    /// A process-unique id of this node.
    pub fn id(&self) -> u64 {
        self.0.id
    }

    /// A snapshot of the buffer (cheap: shares it).
    pub(crate) fn storage(&self) -> Arc<Storage> {
        self.0
            .storage
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Copies the data to the host.
    ///
    /// # Panics
    /// When the copy from a GPU fails (a device fault); `try_to_vec` returns
    /// the error instead.
    pub fn to_vec(&self) -> Vec<f32> {
        self.try_to_vec()
            .unwrap_or_else(|e| panic!("Tensor::to_vec on {}: {e}", self.device()))
    }

    /// Copies the data to the host.
    pub fn try_to_vec(&self) -> Result<Vec<f32>> {
        self.storage().to_host_vec()
    }

    /// The value of a one-element tensor.
    pub fn to_scalar(&self) -> Result<f32> {
        if self.numel() != 1 {
            return Err(Error::Shape {
                op: "to_scalar",
                msg: format!("tensor of shape {} is not a scalar", self.shape()),
            });
        }
        Ok(self.storage().host()?[0])
    }

    /// True for tensors made by no tracked op.
    pub fn is_leaf(&self) -> bool {
        self.0.grad_fn.is_none()
    }

    /// The leaf flag set by `set_requires_grad`.
    pub fn requires_grad(&self) -> bool {
        self.0.requires_grad.load(Ordering::Relaxed)
    }

    /// Whether gradients flow to or through this tensor.
    pub(crate) fn needs_grad(&self) -> bool {
        self.requires_grad() || self.0.grad_fn.is_some()
    }

    /// Marks a leaf (a parameter or an input) as one whose gradient is wanted.
    pub fn set_requires_grad(&self, on: bool) -> Result<&Tensor> {
        if !self.is_leaf() {
            return Err(Error::Invalid {
                op: "set_requires_grad",
                msg: "only leaf tensors take requires_grad; use detach() first".into(),
            });
        }
        self.0.requires_grad.store(on, Ordering::Relaxed);
        Ok(self)
    }

    /// The gradient `backward()` accumulated on this leaf.
    pub fn grad(&self) -> Option<Tensor> {
        self.0
            .grad
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn zero_grad(&self) {
        *self.0.grad.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub(crate) fn set_grad(&self, g: Option<Tensor>) {
        *self.0.grad.lock().unwrap_or_else(|e| e.into_inner()) = g;
    }

    /// The same data as a new leaf outside the graph.
    pub fn detach(&self) -> Tensor {
        Tensor(Arc::new(Node {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            shape: self.0.shape.clone(),
            device: self.0.device,
            storage: RwLock::new(self.storage()),
            requires_grad: AtomicBool::new(false),
            grad_fn: None,
            grad: Mutex::new(None),
        }))
    }

    /// Replaces the data of this tensor with that of `src` (same shape and
    /// device). Meant for optimizer updates of leaves; tensors computed from
    /// the old data keep it.
    pub fn assign(&self, src: &Tensor) -> Result<()> {
        if src.shape() != self.shape() {
            return Err(Error::Shape {
                op: "assign",
                msg: format!("{} into {}", src.shape(), self.shape()),
            });
        }
        if src.device() != self.device() {
            return Err(Error::Device {
                op: "assign",
                msg: format!("{} into {}", src.device(), self.device()),
            });
        }
        if src.dtype() != self.dtype() {
            return Err(Error::Invalid {
                op: "assign",
                msg: format!("{} data into a {} tensor", src.dtype(), self.dtype()),
            });
        }
        *self.0.storage.write().unwrap_or_else(|e| e.into_inner()) = src.storage();
        Ok(())
    }

    /// Fails unless all tensors live on one device.
    pub(crate) fn same_device(op: &'static str, ts: &[&Tensor]) -> Result<Device> {
        let d = ts[0].device();
        match ts.iter().find(|t| t.device() != d) {
            Some(t) => Err(Error::Device {
                op,
                msg: format!("{} and {}", d, t.device()),
            }),
            None => Ok(d),
        }
    }
}

/// The dtype check of every op (see `from_op_storage`).
fn check_dtypes(op: &dyn Backward, inputs: &[Tensor]) -> Result<()> {
    for (k, t) in inputs.iter().enumerate() {
        let dtype = t.dtype();
        if !op.supports(dtype) {
            return Err(Error::Invalid {
                op: op.name(),
                msg: format!(
                    "input {k} (shape {}) is {dtype}, which {} does not support: cast it with \
                     to_dtype(DType::F32) first",
                    t.shape(),
                    op.name()
                ),
            });
        }
    }
    Ok(())
}

impl fmt::Debug for Tensor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let data = self.storage();
        let v = match data.host() {
            Ok(v) => v,
            Err(e) => return write!(f, "Tensor{}@{} <{e}>", self.shape(), self.device()),
        };
        let head: Vec<f32> = v.iter().take(8).copied().collect();
        write!(
            f,
            "Tensor{}@{} {:?}{}",
            self.shape(),
            self.device(),
            head,
            if v.len() > 8 { "…" } else { "" }
        )
    }
}
