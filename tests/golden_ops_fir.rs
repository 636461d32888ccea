//! upfirdn2d, upsample2d, downsample2d and bias_act against the official
//! implementation (`tests/data/golden/sg2_ops_a.safetensors`): outputs, and
//! input gradients of `sum(y · dy)`. Each check runs on the CPU, on the
//! simulator (the kernels of kernels/upfirdn.cu and bias_act.cu with their
//! launch code) and on GPU 0 when there is one.

mod common;
use common::{assert_close, golden, kernel_devices};
use stylegan2::ops::bias_act::{bias_act, BiasAct};
use stylegan2::ops::upfirdn::{downsample2d, setup_filter, upfirdn2d, upsample2d, UpFirDn};
use stylegan2::{grad, Device, Result, Tensor};

/// Forward: `|a − b| ≤ 1e-5 + 1e-5 · max|ref|`; gradients `1e-5 + 1e-4 · max|ref|`.
/// The same on every device: the kernels sum the same ≤ 16 taps per output
/// as the CPU, in the same order (FMA contraction aside, ~16·ε ≈ 1e-6).
const FWD: (f64, f64) = (1e-5, 1e-5);
const GRAD: (f64, f64) = (1e-5, 1e-4);

/// The CPU, then every kernel device (the simulator, GPU 0 if present).
fn devices() -> Vec<Device> {
    let mut d = vec![Device::Cpu];
    d.extend(kernel_devices());
    d
}

/// `key` of the golden file on `dev`, as a leaf that requires grad when `leaf`.
fn on(g: &golden::Golden, key: &str, dev: Device, leaf: bool) -> Tensor {
    let (shape, data) = g.raw(key);
    let t = Tensor::from_vec(data.to_vec(), shape.to_vec(), dev).unwrap();
    if leaf {
        t.set_requires_grad(true).unwrap();
    }
    t
}

fn check_case(g: &golden::Golden, case: &str, op: impl Fn(&Tensor, &Tensor) -> Result<Tensor>) {
    for dev in devices() {
        check_case_on(g, case, dev, &op);
    }
}

fn check_case_on(
    g: &golden::Golden,
    case: &str,
    dev: Device,
    op: impl Fn(&Tensor, &Tensor) -> Result<Tensor>,
) {
    let what = format!("{case} on {dev}");
    let x = on(g, "up.x", dev, true);
    let f = on(g, "filter", dev, false);
    let y = op(&x, &f).unwrap_or_else(|e| panic!("{what}: {e}"));
    assert_eq!(y.device(), dev, "{what}: device");
    assert_eq!(
        y.dims(),
        g.shape(&format!("{case}.y")),
        "{what}: output shape"
    );
    assert_close(
        &format!("{what}: y"),
        &y.to_vec(),
        g.data(&format!("{case}.y")),
        FWD.0,
        FWD.1,
    );
    let dy = on(g, &format!("{case}.dy"), dev, false);
    let dx = grad(&[y], &[x], Some(&[dy]), false).unwrap()[0]
        .clone()
        .unwrap_or_else(|| panic!("{what}: no gradient for x"));
    assert_close(
        &format!("{what}: dx"),
        &dx.to_vec(),
        g.data(&format!("{case}.dx")),
        GRAD.0,
        GRAD.1,
    );
}

#[test]
fn filter_matches_setup_filter() {
    let g = golden::load("sg2_ops_a");
    let f = setup_filter(&[1.0, 3.0, 3.0, 1.0], Device::Cpu).unwrap();
    assert_eq!(f.dims(), g.shape("filter"));
    assert_eq!(f.to_vec(), g.data("filter"), "setup_filter([1,3,3,1])");
}

#[test]
fn upfirdn2d_cases() {
    let g = golden::load("sg2_ops_a");
    let pad = |p: isize| [p; 4];
    check_case(&g, "upfirdn2d_up2", |x, f| {
        upfirdn2d(
            x,
            f,
            &UpFirDn {
                up: [2, 2],
                pad: [2, 1, 2, 1],
                gain: 4.0,
                ..Default::default()
            },
        )
    });
    check_case(&g, "upfirdn2d_down2", |x, f| {
        upfirdn2d(
            x,
            f,
            &UpFirDn {
                down: [2, 2],
                pad: pad(1),
                ..Default::default()
            },
        )
    });
    check_case(&g, "upfirdn2d_pad1_gain4", |x, f| {
        upfirdn2d(
            x,
            f,
            &UpFirDn {
                pad: pad(1),
                gain: 4.0,
                ..Default::default()
            },
        )
    });
    check_case(&g, "upfirdn2d_pad2", |x, f| {
        upfirdn2d(
            x,
            f,
            &UpFirDn {
                pad: pad(2),
                ..Default::default()
            },
        )
    });
}

#[test]
fn upsample2d_and_downsample2d() {
    let g = golden::load("sg2_ops_a");
    check_case(&g, "upsample2d", |x, f| upsample2d(x, f, 2, 1.0));
    check_case(&g, "downsample2d", |x, f| downsample2d(x, f, 2, 1.0));
}

#[test]
fn bias_act_lrelu_with_and_without_clamp() {
    let g = golden::load("sg2_ops_a");
    for (dev, (case, clamp)) in devices()
        .into_iter()
        .flat_map(|d| [("noclamp", None), ("clamp256", Some(256.0))].map(|c| (d, c)))
    {
        let x = on(&g, "bias_act.x", dev, true);
        let b = on(&g, "bias_act.b", dev, true);
        let p = BiasAct {
            clamp,
            ..BiasAct::lrelu()
        };
        let y = bias_act(&x, Some(&b), 1, &p).unwrap();
        assert_eq!(y.device(), dev);
        let key = |k: &str| format!("bias_act.{case}.{k}");
        let what = |k: &str| format!("{} on {dev}", key(k));
        assert_close(&what("y"), &y.to_vec(), g.data(&key("y")), FWD.0, FWD.1);
        if clamp.is_some() {
            let clamped = y.to_vec().iter().filter(|v| v.abs() >= 256.0).count();
            assert_eq!(
                clamped, 34,
                "{case}: number of clamped outputs (the JSON's check)"
            );
        }
        let dy = on(&g, &key("dy"), dev, false);
        let gr = grad(&[y], &[x, b], Some(&[dy]), false).unwrap();
        let (dx, db) = (gr[0].clone().unwrap(), gr[1].clone().unwrap());
        assert_close(
            &what("dx"),
            &dx.to_vec(),
            g.data(&key("dx")),
            GRAD.0,
            GRAD.1,
        );
        assert_eq!(db.dims(), g.shape(&key("db")));
        assert_close(
            &what("db"),
            &db.to_vec(),
            g.data(&key("db")),
            GRAD.0,
            GRAD.1,
        );
    }
}
