//! The GPU backends this binary was built with, and opening a device.

use candle_core::Device;

use crate::error::{Error, Result};
use crate::options::DeviceKind;

/// How many CUDA GPUs this binary can use: 0 without the `cuda` feature, or without a driver
/// or a GPU.
pub fn cuda_devices() -> usize {
    #[cfg(feature = "cuda")]
    {
        use candle_core::cuda_backend::cudarc::driver::result;
        if result::init().is_ok() {
            return result::device::get_count().map_or(0, |n| n.max(0) as usize);
        }
    }
    0
}

/// The backends this binary was built with: `cpu`, and `cuda` or `metal` where enabled.
pub fn backends() -> Vec<&'static str> {
    let mut b = vec!["cpu"];
    if cfg!(feature = "cuda") {
        b.push("cuda");
    }
    if cfg!(feature = "metal") {
        b.push("metal");
    }
    b
}

pub(crate) fn open(kind: DeviceKind) -> Result<Device> {
    let unavailable = |e: candle_core::Error| Error::InvalidArgument(format!("device {kind} is not available: {e}"));
    match kind {
        DeviceKind::Cpu => Ok(Device::Cpu),
        DeviceKind::Cuda(i) => Device::new_cuda(i).map_err(unavailable),
        DeviceKind::Metal(i) => Device::new_metal(i).map_err(unavailable),
    }
}
