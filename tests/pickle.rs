//! NVIDIA's network pickles (tests/data/make_pickles.py writes the fixtures
//! with the official code): each loads, gives the official images and D
//! logits on the CPU and on Sim, and broken files fail naming the problem.

mod common;

use std::path::{Path, PathBuf};
use stylegan2::model::{load_discriminator, load_generator, SynthesisOptions, Truncation};
use stylegan2::nn::{Ctx, NoiseMode};
use stylegan2::pickle::{self, Dtype, PickleKind};
use stylegan2::{Device, Tensor};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

/// Oracle tensors of a fixture.
fn oracle(name: &str) -> std::collections::HashMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(data(&format!("{name}.oracle.safetensors"))).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(k, v)| {
            let vals = v
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
                .collect();
            (k, (v.shape().to_vec(), vals))
        })
        .collect()
}

fn max_abs(v: &[f32]) -> f64 {
    v.iter().fold(0.0f64, |m, &x| m.max(x.abs() as f64))
}

/// `G_ema(z, c)` for ψ 1 and 0.7 with const noise, and `D(img, c)`, against
/// the official ones: within 1e-5·max|ref| (float32 evaluation order only).
fn check_images(name: &str, device: Device, psis: &[(f32, &str)]) {
    check_images_of(name, name, device, psis)
}

/// [`check_images`] of `{pkl}.pkl` against the oracle of `name`.
fn check_images_of(pkl: &str, name: &str, device: Device, psis: &[(f32, &str)]) {
    let o = oracle(name);
    let path = data(&format!("{pkl}.pkl"));
    let (_, g) = load_generator(&path, device).unwrap();
    let (zs, z) = &o["z"];
    let z = Tensor::from_vec(z.clone(), zs.clone(), device).unwrap();
    let c = (g.config.c_dim > 0).then(|| {
        let (cs, c) = &o["c"];
        Tensor::from_vec(c.clone(), cs.clone(), device).unwrap()
    });
    let _guard = stylegan2::no_grad();
    for &(psi, key) in psis {
        let img = g
            .forward(
                &z,
                c.as_ref(),
                Truncation::psi(psi),
                SynthesisOptions::noise(NoiseMode::Const),
                &mut Ctx::new(),
            )
            .unwrap();
        let (shape, want) = &o[key];
        assert_eq!(img.dims(), &shape[..], "{name} {key}");
        let tol = 1e-5 * max_abs(want);
        common::assert_close(
            &format!("{name} {key} on {device}"),
            &img.to_vec(),
            want,
            tol,
            0.0,
        );
    }
    let (_, d) = load_discriminator(&path, device).unwrap();
    let (shape, img) = &o["img_psi1"];
    let img = Tensor::from_vec(img.clone(), shape.clone(), device).unwrap();
    let logits = d.forward(&img, c.as_ref(), &mut Ctx::new()).unwrap();
    let want = &o["d_logits"].1;
    common::assert_close(
        &format!("{name} D logits on {device}"),
        &logits.to_vec(),
        want,
        1e-5 * max_abs(want),
        0.0,
    );
}

const BOTH: &[(f32, &str)] = &[(1.0, "img_psi1"), (0.7, "img_psi0.7")];

#[test]
fn snapshot_pickle_reads_with_config_and_augment_p() {
    let p = pickle::read_file(data("sg2_uncond.pkl")).unwrap();
    assert_eq!(p.kind, PickleKind::PyTorch);
    let g = &p.config.generator;
    assert_eq!(
        (
            g.z_dim,
            g.w_dim,
            g.c_dim,
            g.img_resolution,
            g.mapping_layers
        ),
        (8, 8, 0, 16, 2)
    );
    assert_eq!(
        (g.channel_base, g.channel_max, g.conv_clamp),
        (128, 8, None)
    );
    let d = &p.config.discriminator;
    assert_eq!((d.mbstd_group_size, d.freeze_layers), (Some(2), 0));
    assert_eq!(p.augment_p, Some(0.25));
    assert!(p.notes.is_empty(), "{:?}", p.notes);
    for prefix in ["G.", "D.", "G_ema."] {
        assert!(p.tensors.iter().any(|(n, _)| n.starts_with(prefix)));
    }
    assert!(p.tensors.iter().all(|(_, t)| t.dtype == Dtype::F32));
}

#[test]
fn conditional_and_fp16_pickles_give_their_configs() {
    let p = pickle::read_file(data("sg2_cond.pkl")).unwrap();
    assert_eq!(p.config.generator.c_dim, 3);
    assert_eq!(p.config.discriminator.c_dim, 3);
    // Freeze-D: the first two layers' weights are buffers in the pickle.
    assert_eq!(p.config.discriminator.freeze_layers, 2);
    assert_eq!(p.augment_p, None);
    let p = pickle::read_file(data("sg2_fp16.pkl")).unwrap();
    assert_eq!(p.config.generator.conv_clamp, Some(256.0));
    assert_eq!(p.config.discriminator.conv_clamp, Some(256.0));
    assert_eq!(p.config.generator.num_fp16_res, 2);
    assert_eq!(p.config.discriminator.num_fp16_res, 2);
    assert!(
        p.notes.iter().any(|n| n.contains("num_fp16_res = 2")),
        "{:?}",
        p.notes
    );
}

#[test]
fn pickles_give_the_official_images_on_cpu() {
    for name in [
        "sg2_uncond",
        "sg2_cond",
        "sg2_fp16",
        "sg2_proto3",
        "tf_legacy",
    ] {
        check_images(name, Device::Cpu, BOTH);
    }
    // What legacy.py writes from the TF pickle (with D's unused
    // label-mapping settings).
    check_images_of("tf_converted", "tf_legacy", Device::Cpu, BOTH);
}

#[test]
fn pickles_give_the_official_images_on_sim() {
    check_images("sg2_uncond", Device::Sim, BOTH);
    check_images("sg2_cond", Device::Sim, &[(0.7, "img_psi0.7")]);
}

#[test]
fn tf_pickle_maps_as_legacy_py() {
    let tf = pickle::read_file(data("tf_legacy.pkl")).unwrap();
    assert_eq!(tf.kind, PickleKind::TensorFlow);
    // The TF layout was made from sg2_uncond's networks: the mapping gives
    // them back (mod_bias + 1 rounds, hence the tolerance).
    let pt = pickle::read_file(data("sg2_uncond.pkl")).unwrap();
    assert_eq!(tf.config.generator, pt.config.generator);
    for (name, t) in &pt.tensors {
        if name.starts_with("augment_pipe") {
            continue;
        }
        let (_, u) = tf
            .tensors
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("{name} missing from the TF conversion"));
        assert_eq!(t.shape, u.shape, "{name}");
        common::assert_close(name, &u.data, &t.data, 1e-6, 0.0);
    }
}

#[test]
fn tensor_forms_decode() {
    let bytes = std::fs::read(data("tensors.pkl")).unwrap();
    let got = pickle::read_tensor_dict(&bytes, "tensors.pkl").unwrap();
    let want = std::fs::read(data("tensors.safetensors")).unwrap();
    let want = safetensors::SafeTensors::deserialize(&want).unwrap();
    assert_eq!(got.len(), want.len());
    for (name, t) in &got {
        let w = want.tensor(name).unwrap();
        assert_eq!(t.shape, w.shape(), "{name}");
        let w: Vec<f32> = w
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        // Exact: the reference is the same values converted by torch.
        assert_eq!(t.data, w, "{name}");
    }
    let dtype = |n: &str| got.iter().find(|(k, _)| k == n).unwrap().1.dtype;
    assert_eq!(dtype("f16"), Dtype::F16);
    assert_eq!(dtype("f64"), Dtype::F64);
}

fn err_of(r: stylegan2::Result<impl std::fmt::Debug>) -> String {
    r.expect_err("must fail").to_string()
}

#[test]
fn truncated_pickle_fails_saying_so() {
    let bytes = std::fs::read(data("sg2_uncond.pkl")).unwrap();
    for cut in [10, bytes.len() / 2, bytes.len() - 1] {
        let e = err_of(pickle::read_bytes(&bytes[..cut], "cut.pkl"));
        assert!(
            e.contains("cut.pkl") && e.contains("truncated"),
            "{cut}: {e}"
        );
    }
}

#[test]
fn unexpected_global_is_refused_by_name() {
    // The classic: os.system('echo pwned') on load (protocol 2).
    let evil = b"\x80\x02cos\nsystem\nq\x00X\n\x00\x00\x00echo pwnedq\x01\x85q\x02Rq\x03.";
    let e = err_of(pickle::read_bytes(evil, "evil.pkl"));
    assert!(e.contains("os.system") && e.contains("evil.pkl"), "{e}");
    // Written to a file, every network reader refuses it.
    let dir = std::env::temp_dir().join(format!("stylegan2-pickle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("evil.pkl");
    std::fs::write(&path, evil).unwrap();
    let e = err_of(load_generator(&path, Device::Cpu).map(|_| ()));
    assert!(e.contains("os.system"), "{e}");
}

#[test]
fn missing_tensor_is_named() {
    let e = err_of(load_generator(data("bad_missing.pkl"), Device::Cpu).map(|_| ()));
    assert!(
        e.contains("missing") && e.contains("synthesis.b16.torgb.bias"),
        "{e}"
    );
    let e = err_of(pickle::convert(
        &data("bad_missing.pkl"),
        &std::env::temp_dir().join("never-written.safetensors"),
    ));
    assert!(
        e.contains("G_ema") && e.contains("synthesis.b16.torgb.bias"),
        "{e}"
    );
}

#[test]
fn shape_mismatch_is_named() {
    let e = err_of(pickle::convert(
        &data("bad_shape.pkl"),
        &std::env::temp_dir().join("never-written.safetensors"),
    ));
    assert!(
        e.contains("wrong shape") && e.contains("mapping.fc1.weight"),
        "{e}"
    );
}

#[test]
fn convert_writes_a_network_file_that_loads_the_same() {
    let dir = std::env::temp_dir().join(format!("stylegan2-convert-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("cond.safetensors");
    pickle::convert(&data("sg2_cond.pkl"), &out).unwrap();
    let (cfg, sd) = stylegan2::model::read_networks(&out, Device::Cpu).unwrap();
    let p = pickle::read_file(data("sg2_cond.pkl")).unwrap();
    assert_eq!(cfg.unwrap(), p.config);
    for (name, t) in &p.tensors {
        assert_eq!(sd.get(name).unwrap().to_vec(), t.data, "{name}");
    }
}

#[test]
fn numpy_latents_are_generate_py_latents() {
    use stylegan2::model::cli::Latents;
    let o = oracle("sg2_uncond");
    let (shape, z) = &o["z"];
    for (i, seed) in (0..shape[0] as u64).enumerate() {
        let got = Latents::Numpy.latent(seed, shape[1], Device::Cpu).unwrap();
        // Exact: both are numpy's float64 values rounded to float32.
        assert_eq!(
            got.to_vec(),
            z[i * shape[1]..(i + 1) * shape[1]],
            "seed {seed}"
        );
    }
}

#[test]
fn damaged_pickles_fail_without_panicking() {
    // Every prefix and many single-byte corruptions of a small pickle:
    // the reader returns an error (or, for harmless bytes, a value), never
    // panics or runs away.
    let bytes = std::fs::read(data("tensors.pkl")).unwrap();
    for cut in 0..bytes.len() {
        assert!(
            pickle::read_tensor_dict(&bytes[..cut], "cut").is_err(),
            "{cut}"
        );
    }
    let mut x = 0x2545_f491_u64;
    for _ in 0..3000 {
        x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        let mut b = bytes.clone();
        let at = (x >> 33) as usize % b.len();
        b[at] = (x >> 13) as u8;
        let _ = pickle::read_tensor_dict(&b, "flipped");
        let _ = pickle::read_bytes(&b, "flipped");
    }
}
