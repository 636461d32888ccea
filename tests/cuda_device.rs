//! Probing for a GPU never panics, and names what is missing.

mod common;
use common::skip::{skip, Need};
use stylegan2::{Device, Error, Tensor};

#[test]
fn cuda_probe_returns_an_error_naming_the_missing_piece() {
    match Device::cuda(0) {
        Ok(d) => assert_eq!(d, Device::Cuda(0)),
        Err(Error::Unavailable(msg)) => assert!(
            msg.contains("libcuda") || msg.contains("libnvrtc") || msg.contains("CUDA device"),
            "the message names neither the driver, NVRTC nor the device: {msg}"
        ),
        Err(e) => panic!("expected Error::Unavailable, got {e:?}"),
    }
    // No machine has a thousand GPUs.
    let err = Device::cuda(1000).unwrap_err();
    assert!(matches!(err, Error::Unavailable(_)), "{err:?}");
}

#[test]
fn device_flags_parse() {
    assert_eq!(Device::parse("cpu").unwrap(), Device::Cpu);
    assert_eq!(Device::parse("sim").unwrap(), Device::Sim);
    let auto = Device::parse("auto").unwrap();
    assert_eq!(auto == Device::Cpu, Device::cuda(0).is_err());
    assert_eq!(Device::parse("cuda").is_ok(), Device::cuda(0).is_ok());
    assert_eq!(Device::parse("cuda:0").is_ok(), Device::cuda(0).is_ok());
    assert!(matches!(
        Device::parse("cuda:x"),
        Err(Error::Invalid { .. })
    ));
    assert!(matches!(Device::parse("tpu"), Err(Error::Invalid { .. })));
    assert_eq!(Device::Cuda(1).to_string(), "cuda:1");
    assert_eq!(Device::Sim.to_string(), "sim");
}

#[test]
fn ops_on_an_absent_gpu_fail_with_errors() {
    if Device::cuda(0).is_ok() {
        skip(
            Need::NoGpu,
            "a GPU is present (kernels_elementwise runs on it instead)",
        );
        return;
    }
    // An infallible constructor may name the device (its data stays on the host)...
    let x = Tensor::ones(vec![2, 3], Device::Cuda(0));
    assert_eq!(x.to_vec(), vec![1.0; 6]);
    // ...but running a kernel, or moving data there, is an error.
    assert!(matches!(x.exp(), Err(Error::Unavailable(_))));
    assert!(matches!(x.sum_all(), Err(Error::Unavailable(_))));
    let from_vec = Tensor::from_vec(vec![1.0, 2.0], vec![2], Device::Cuda(0));
    assert!(matches!(from_vec, Err(Error::Unavailable(_))));
    let c = Tensor::ones(vec![2], Device::Cpu);
    assert!(matches!(
        c.to_device(Device::Cuda(0)),
        Err(Error::Unavailable(_))
    ));
}
