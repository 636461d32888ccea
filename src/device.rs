//! Where a tensor's data lives and where its ops run.

use crate::backend::cuda;
use crate::error::{Error, Result};
use std::fmt;

/// A compute device.
///
/// - `Cpu`: the multi-threaded f32 reference; the default.
/// - `Cuda(n)`: GPU `n`, running the kernels of `kernels/` compiled by NVRTC.
///   Make one with [`Device::cuda`], which checks that the driver, NVRTC and
///   the device are there.
/// - `Sim`: the same kernel sources compiled for the host and run by the CUDA
///   simulator of `kernels/sim/` (slow; for testing kernels without a GPU).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Device {
    #[default]
    Cpu,
    Cuda(usize),
    Sim,
}

impl Device {
    /// GPU `ordinal`, or `Error::Unavailable` naming what is missing (the
    /// driver, NVRTC, or the device) and how to get it. Never panics.
    pub fn cuda(ordinal: usize) -> Result<Device> {
        cuda::probe(ordinal)?;
        Ok(Device::Cuda(ordinal))
    }

    /// Parses a `--device` flag: `cpu`, `sim`, `cuda` (GPU 0), `cuda:N`, or
    /// `auto` (GPU 0 when there is one, else the CPU; the fallback and its
    /// reason are announced on stderr).
    pub fn parse(s: &str) -> Result<Device> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "sim" => Ok(Device::Sim),
            "cuda" => Device::cuda(0),
            "auto" => {
                match Device::cuda(0) {
                    Ok(d) => Ok(d),
                    Err(_) => {
                        // One short line, once per process; `--device cuda`
                        // gives the whole reason.
                        static NOTE: std::sync::Once = std::sync::Once::new();
                        NOTE.call_once(|| {
                        eprintln!("stylegan2: no GPU found; running on the CPU (--device cuda says why)")
                    });
                        Ok(Device::Cpu)
                    }
                }
            }
            other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
                Some(Ok(n)) => Device::cuda(n),
                _ => Err(Error::Invalid {
                    op: "--device",
                    msg: format!(
                        "unknown device '{other}': expected auto, cpu, sim, cuda or cuda:N"
                    ),
                }),
            },
        }
    }

    /// Whether the ops of this device run the kernels of `kernels/` (on a GPU
    /// or in the simulator).
    pub fn runs_kernels(self) -> bool {
        matches!(self, Device::Cuda(_) | Device::Sim)
    }

    /// Waits until every kernel queued on this device has finished. GPU
    /// launches are asynchronous, so timing a GPU op needs this; the CPU and
    /// the simulator finish each op before it returns.
    pub fn synchronize(self) -> Result<()> {
        match self {
            Device::Cuda(n) => cuda::synchronize(n),
            Device::Cpu | Device::Sim => Ok(()),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
            Device::Cuda(n) => write!(f, "cuda:{n}"),
            Device::Sim => write!(f, "sim"),
        }
    }
}
