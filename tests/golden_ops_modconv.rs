//! Modulated convolution and minibatch std against the official
//! implementation (`tests/data/golden/sg2_ops_a.safetensors`).

mod common;
use common::{assert_close, golden};
use stylegan2::grad;
use stylegan2::ops::mbstd::minibatch_std;
use stylegan2::ops::modconv::{modulated_conv2d, ModConv, ModConvPath};

/// README advice: forward ≈ 1e-5, gradients ≈ 1e-4 relative to max|ref|.
const FWD: (f64, f64) = (1e-5, 1e-5);
const GRAD: (f64, f64) = (1e-5, 1e-4);

fn check_modconv(case: &str, p: ModConv) {
    let g = golden::load("sg2_ops_a");
    let key = |k: &str| format!("{case}.{k}");
    let f = g.tensor("filter");
    for (path, y_key) in [
        (ModConvPath::Unfused, "y_nonfused"),
        (ModConvPath::Grouped, "y_fused"),
    ] {
        let (x, w, s) = (
            g.input(&key("x")),
            g.input(&key("weight")),
            g.input(&key("styles")),
        );
        let y = modulated_conv2d(&x, &w, &s, Some(&f), p, path)
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(
            y.dims(),
            g.shape(&key(y_key)),
            "{case} {path:?}: output shape"
        );
        assert_close(
            &format!("{case} {path:?} y"),
            &y.to_vec(),
            g.data(&key(y_key)),
            FWD.0,
            FWD.1,
        );
        let grads = grad(&[y], &[x, w, s], Some(&[g.tensor(&key("dy"))]), false).unwrap();
        for (gr, name) in grads.iter().zip(["dx", "dweight", "dstyles"]) {
            let gr = gr.as_ref().unwrap_or_else(|| panic!("{case}: no {name}"));
            assert_close(
                &format!("{case} {path:?} {name}"),
                &gr.to_vec(),
                g.data(&key(name)),
                GRAD.0,
                GRAD.1,
            );
        }
    }
}

#[test]
fn modconv_3x3_up1_demod() {
    check_modconv("modconv_3x3_up1_demod", ModConv::conv3x3());
}

#[test]
fn modconv_3x3_up2_demod() {
    check_modconv("modconv_3x3_up2_demod", ModConv::conv3x3_up2());
}

#[test]
fn modconv_1x1_nodemod() {
    check_modconv("modconv_1x1_nodemod", ModConv::torgb());
}

#[test]
fn minibatch_std_groups_of_4_and_2() {
    let g = golden::load("sg2_ops_a");
    for (case, group) in [("mbstd_g4", 4), ("mbstd_g2", 2)] {
        let x = g.input(&format!("{case}.x"));
        let y = minibatch_std(&x, group, 1).unwrap();
        assert_close(
            &format!("{case}.y"),
            &y.to_vec(),
            g.data(&format!("{case}.y")),
            FWD.0,
            FWD.1,
        );
        let dx = grad(&[y], &[x], Some(&[g.tensor(&format!("{case}.dy"))]), false).unwrap()[0]
            .clone()
            .unwrap();
        assert_close(
            &format!("{case}.dx"),
            &dx.to_vec(),
            g.data(&format!("{case}.dx")),
            GRAD.0,
            GRAD.1,
        );
    }
}
