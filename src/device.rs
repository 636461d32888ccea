//! Where a tensor's data lives and where its ops run.

use crate::error::{Error, Result};
use std::fmt;

/// A compute device. `Cpu` is the multi-threaded f32 reference; the CUDA
/// backend and its CPU simulator add `Cuda(n)` and `Sim`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Device {
    #[default]
    Cpu,
}

impl Device {
    /// Parses a `--device` flag: `cpu`, or `auto` (the best device found,
    /// the CPU when there is no GPU; the fallback is announced on stderr).
    pub fn parse(s: &str) -> Result<Device> {
        match s {
            "cpu" => Ok(Device::Cpu),
            "auto" => {
                eprintln!("stylegan2: no CUDA backend in this build yet; running on the CPU");
                Ok(Device::Cpu)
            }
            "cuda" | "sim" => Err(Error::Unavailable(format!(
                "device '{s}' is not part of this build yet (only 'cpu' and 'auto')"
            ))),
            other => Err(Error::Invalid {
                op: "device",
                msg: format!("unknown device '{other}': expected auto, cpu, cuda or sim"),
            }),
        }
    }
}

impl fmt::Display for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Device::Cpu => write!(f, "cpu"),
        }
    }
}
