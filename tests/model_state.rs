//! Configurations, official parameter names/shapes/counts, state dicts and
//! safetensors files of the generator and discriminator.

use std::collections::BTreeSet;
use stylegan2::model::{
    load_generator, read_networks, save_networks, Architecture, Discriminator, Generator,
    ModelConfig,
};
use stylegan2::nn::{Kind, Module, StateDict};
use stylegan2::{Device, Error, Tensor};

mod common;

fn golden_json() -> serde_json::Value {
    let path = format!("{}/sg2_small_a.json", common::golden::dir());
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!("golden file {path} is missing ({e}); it is required by this test")
    });
    serde_json::from_str(&text).unwrap()
}

fn golden_tensors() -> StateDict {
    let path = format!("{}/sg2_small_a.safetensors", common::golden::dir());
    assert!(
        std::path::Path::new(&path).exists(),
        "golden file {path} is missing; it is required by this test"
    );
    StateDict::load_safetensors(&path, Device::Cpu).unwrap().0
}

fn names(v: &serde_json::Value, key: &str) -> BTreeSet<String> {
    v[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} missing from the golden JSON"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

fn of_kind(m: &dyn Module, kind: Kind) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    m.visit("", &mut |n, _, k| {
        if k == kind {
            out.insert(n);
        }
    });
    out
}

fn tiny() -> ModelConfig {
    ModelConfig::preset("tiny", 32, 3, 0).unwrap()
}

#[test]
fn official_parameter_counts_config_f_1024() {
    let cfg = ModelConfig::preset("stylegan2", 1024, 3, 0).unwrap();
    let mut rng = stylegan2::rng(1);
    let g = Generator::new(&cfg.generator, &mut rng, Device::Cpu).unwrap();
    let d = Discriminator::new(&cfg.discriminator, &mut rng, Device::Cpu).unwrap();
    assert_eq!(g.num_ws(), 18);
    // The official counts are of trainable parameters; buffers
    // (resample filters, noise_const, w_avg) are excluded.
    assert_eq!(g.num_params(), 30_370_060);
    assert_eq!(d.num_params(), 29_012_513);
    let buffers: usize = g.buffers().iter().map(|(_, t)| t.numel()).sum();
    assert!(buffers > 0);
}

#[test]
fn names_and_kinds_match_the_official_state_dict() {
    let j = golden_json();
    let cfg = tiny();
    let mut rng = stylegan2::rng(2);
    let g = Generator::new(&cfg.generator, &mut rng, Device::Cpu).unwrap();
    let d = Discriminator::new(&cfg.discriminator, &mut rng, Device::Cpu).unwrap();
    assert_eq!(of_kind(&g, Kind::Param), names(&j, "G_parameter_names"));
    assert_eq!(of_kind(&g, Kind::Buffer), names(&j, "G_buffer_names"));
    assert_eq!(of_kind(&d, Kind::Param), names(&j, "D_parameter_names"));
    assert_eq!(of_kind(&d, Kind::Buffer), names(&j, "D_buffer_names"));
    // The official state_dict order (parameters of a module, its buffers, children).
    let order: Vec<String> = g.state_dict().names().map(String::from).collect();
    assert_eq!(order[0], "synthesis.b4.const");
    assert_eq!(order[1], "synthesis.b4.resample_filter");
    assert_eq!(order[2], "synthesis.b4.conv1.weight");
    assert_eq!(order.last().unwrap(), "mapping.fc1.bias");
}

#[test]
fn official_initialization() {
    let cfg = tiny();
    let g = Generator::new(&cfg.generator, &mut stylegan2::rng(3), Device::Cpu).unwrap();
    let sd = g.state_dict();
    let get = |n: &str| sd.get(n).unwrap().to_vec();
    let std = |v: &[f32]| {
        let m = v.iter().sum::<f32>() / v.len() as f32;
        (v.iter().map(|x| (x - m) * (x - m)).sum::<f32>() / v.len() as f32).sqrt()
    };
    // Mapping FC weights are N(0,1)/lr_mul = N(0, 100²).
    let s = std(&get("mapping.fc0.weight"));
    assert!((s - 100.0).abs() < 5.0, "mapping weight std {s}");
    let s = std(&get("synthesis.b8.conv0.weight"));
    assert!((s - 1.0).abs() < 0.05, "conv weight std {s}");
    assert!(get("synthesis.b8.conv0.affine.bias")
        .iter()
        .all(|&v| v == 1.0));
    assert!(get("synthesis.b8.conv0.bias").iter().all(|&v| v == 0.0));
    assert!(get("mapping.fc0.bias").iter().all(|&v| v == 0.0));
    assert_eq!(get("synthesis.b8.conv0.noise_strength"), vec![0.0]);
    assert!(get("mapping.w_avg").iter().all(|&v| v == 0.0));
    let f = get("synthesis.b8.conv0.resample_filter");
    let want: Vec<f32> = (0..16)
        .map(|i| [1.0, 3.0, 3.0, 1.0][i / 4] * [1.0, 3.0, 3.0, 1.0][i % 4] / 64.0)
        .collect();
    assert_eq!(f, want);
    assert_eq!(
        sd.get("synthesis.b16.conv1.noise_const").unwrap().dims(),
        &[16, 16]
    );
    assert_eq!(sd.get("synthesis.b4.const").unwrap().dims(), &[64, 4, 4]);
    assert!(g.synthesis.blocks[0]
        .const_input
        .as_ref()
        .unwrap()
        .requires_grad());
    assert!(!sd.get("mapping.w_avg").unwrap().requires_grad());
}

#[test]
fn golden_weights_load_into_the_model() {
    let all = golden_tensors();
    let cfg = tiny();
    let mut rng = stylegan2::rng(4);
    let g = Generator::new(&cfg.generator, &mut rng, Device::Cpu).unwrap();
    let d = Discriminator::new(&cfg.discriminator, &mut rng, Device::Cpu).unwrap();
    let (gs, ds) = (all.sub("G"), all.sub("D"));
    assert_eq!(gs.len(), 75);
    assert_eq!(ds.len(), 37);
    g.load_state_dict(&gs).unwrap();
    d.load_state_dict(&ds).unwrap();
    for (n, t) in g.state_dict().iter() {
        assert_eq!(t.to_vec(), gs.get(n).unwrap().to_vec(), "G.{n}");
    }
    for (n, t) in d.state_dict().iter() {
        assert_eq!(t.to_vec(), ds.get(n).unwrap().to_vec(), "D.{n}");
    }
    // Loading keeps the leaves: parameters still require grad.
    assert!(g.mapping.layers[0].weight.requires_grad());
}

#[test]
fn strict_loading_lists_every_problem() {
    let cfg = tiny();
    let g = Generator::new(&cfg.generator, &mut stylegan2::rng(5), Device::Cpu).unwrap();
    let before = g.mapping.layers[0].weight.to_vec();
    let mut sd = g.state_dict();
    let mut bad = StateDict::new();
    for (n, t) in sd.iter() {
        if n == "mapping.fc1.bias" || n == "synthesis.b4.const" {
            continue; // missing
        }
        if n == "synthesis.b8.conv0.weight" {
            bad.insert(n, Tensor::zeros(vec![1, 2, 3], Device::Cpu));
            continue;
        }
        bad.insert(n, t.scale(2.0).unwrap());
    }
    bad.insert("synthesis.b8.extra", Tensor::zeros(vec![1], Device::Cpu));
    let err = g.load_state_dict(&bad).unwrap_err();
    let msg = err.to_string();
    for needle in [
        "missing (2)",
        "mapping.fc1.bias",
        "synthesis.b4.const",
        "unexpected (1): synthesis.b8.extra",
        "wrong shape (1)",
        "synthesis.b8.conv0.weight",
    ] {
        assert!(msg.contains(needle), "{needle:?} not in: {msg}");
    }
    // Nothing was changed by the failed load.
    assert_eq!(g.mapping.layers[0].weight.to_vec(), before);
    sd.insert(
        "mapping.fc0.weight",
        Tensor::zeros(vec![64, 64], Device::Cpu),
    );
    g.load_state_dict(&sd).unwrap();
    assert!(g.mapping.layers[0]
        .weight
        .to_vec()
        .iter()
        .all(|&v| v == 0.0));
}

#[test]
fn safetensors_round_trip_with_config() {
    let cfg = tiny();
    let mut rng = stylegan2::rng(6);
    let g = Generator::new(&cfg.generator, &mut rng, Device::Cpu).unwrap();
    let d = Discriminator::new(&cfg.discriminator, &mut rng, Device::Cpu).unwrap();
    let dir = std::env::temp_dir().join(format!("sg2_model_state_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("nets.safetensors");
    save_networks(&path, &cfg, &[("G", &g), ("D", &d), ("G_ema", &g)]).unwrap();
    let (read_cfg, sd) = read_networks(&path, Device::Cpu).unwrap();
    assert_eq!(read_cfg.as_ref(), Some(&cfg));
    assert_eq!(sd.len(), 2 * 75 + 37);
    let (cfg2, g2) = load_generator(&path, Device::Cpu).unwrap();
    assert_eq!(cfg2, cfg);
    for ((n, a), (_, b)) in g.state_dict().iter().zip(g2.state_dict().iter()) {
        assert_eq!(a.to_vec(), b.to_vec(), "{n}");
        assert_eq!(a.dims(), b.dims(), "{n}");
    }
    // A corrupt file is an error naming the file, not a panic.
    let broken = dir.join("broken.safetensors");
    std::fs::write(&broken, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}").unwrap();
    let err = read_networks(&broken, Device::Cpu).unwrap_err();
    assert!(matches!(err, Error::Io(_)), "{err}");
    assert!(err.to_string().contains("broken.safetensors"), "{err}");
    // A file without config metadata cannot name its generator.
    let plain = dir.join("plain.safetensors");
    g.state_dict().save_safetensors(&plain, None).unwrap();
    let err = load_generator(&plain, Device::Cpu).unwrap_err().to_string();
    assert!(err.contains("stylegan2.config"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn presets_follow_the_official_cfg_specs() {
    let f = ModelConfig::preset("stylegan2", 1024, 3, 0).unwrap();
    assert_eq!(f.generator.channel_base, 32768);
    assert_eq!(f.generator.mapping_layers, 8);
    assert_eq!(f.discriminator.mbstd_group_size, Some(4));
    assert_eq!(f.generator.conv_clamp, Some(256.0));
    assert_eq!(f.training.batch, 32);
    let p256 = ModelConfig::preset("paper256", 256, 3, 0).unwrap();
    assert_eq!(p256.generator.channel_base, 16384);
    assert_eq!(p256.discriminator.mbstd_group_size, Some(8));
    assert_eq!(p256.training.r1_gamma, 1.0);
    let cifar = ModelConfig::preset("cifar", 32, 3, 10).unwrap();
    assert_eq!(cifar.discriminator.architecture, Architecture::Orig);
    assert_eq!(cifar.training.pl_weight, 0.0);
    assert_eq!(cifar.discriminator.mbstd_group_size, Some(32));
    assert_eq!(cifar.generator.mapping_layers, 2);
    // auto at 256² on one GPU: batch min(4096/256, 32) = 16, mbstd 4,
    // half feature maps, γ = 0.0002·256²/16.
    let auto = ModelConfig::preset("auto", 256, 3, 0).unwrap();
    assert_eq!(auto.training.batch, 16);
    assert_eq!(auto.discriminator.mbstd_group_size, Some(4));
    assert_eq!(auto.generator.channel_base, 16384);
    assert!((auto.training.r1_gamma - 0.8192).abs() < 1e-6);
    assert_eq!(auto.training.ema_kimg, 5.0);
    let auto8 = ModelConfig::auto(1024, 3, 0, 8).unwrap();
    assert_eq!(auto8.training.batch, 32);
    assert_eq!(auto8.training.lr, 0.002);
    assert_eq!(auto8.generator.channel_base, 32768);
    // tiny is the golden sg2_small_a configuration.
    let j = golden_json();
    let c = &j["config"];
    let t = tiny();
    assert_eq!(t.generator.z_dim as u64, c["z_dim"].as_u64().unwrap());
    assert_eq!(t.generator.w_dim as u64, c["w_dim"].as_u64().unwrap());
    assert_eq!(
        t.generator.channel_base as u64,
        c["channel_base"].as_u64().unwrap()
    );
    assert_eq!(
        t.generator.channel_max as u64,
        c["channel_max"].as_u64().unwrap()
    );
    assert_eq!(
        t.generator.mapping_layers as u64,
        c["mapping_num_layers"].as_u64().unwrap()
    );
    assert!(c["conv_clamp"].is_null() && t.generator.conv_clamp.is_none());
    // JSON round trip and validation.
    for name in stylegan2::model::PRESETS {
        let cfg = ModelConfig::preset(name, 64, 3, 0).unwrap();
        assert_eq!(
            ModelConfig::from_json(&cfg.to_json().unwrap()).unwrap(),
            cfg,
            "{name}"
        );
    }
    // Mixed precision: official train.py sets num_fp16_res = 4 and
    // conv_clamp = 256 for every --cfg; tiny (the golden model) is FP32.
    for name in stylegan2::model::PRESETS {
        let cfg = ModelConfig::preset(name, 64, 3, 0).unwrap();
        let want = if *name == "tiny" { 0 } else { 4 };
        assert_eq!(cfg.generator.num_fp16_res, want, "{name}");
        assert_eq!(cfg.discriminator.num_fp16_res, want, "{name}");
    }
    // fp16_resolution = max(2^(log2 R + 1 − n), 8): at 1024² the blocks
    // 128…1024 are FP16; at 32² every block from 8 (the floor) on.
    assert!(!f.generator.use_fp16(64) && f.generator.use_fp16(128));
    assert!(f.discriminator.use_fp16(1024) && !f.discriminator.use_fp16(64));
    let c32 = ModelConfig::preset("stylegan2", 32, 3, 0).unwrap();
    assert!(!c32.generator.use_fp16(4) && c32.generator.use_fp16(8));
    assert!(!t.generator.use_fp16(32) && !t.discriminator.use_fp16(32));
    // Official --fp32: no FP16 blocks and no clamp.
    let mut f32cfg = f.clone();
    f32cfg.set_fp32();
    assert_eq!(f32cfg.generator.num_fp16_res, 0);
    assert_eq!(f32cfg.discriminator.conv_clamp, None);
    // A file written before num_fp16_res existed reads as 0 (FP32 numerics).
    let mut old: serde_json::Value = serde_json::from_str(&f.to_json().unwrap()).unwrap();
    old["generator"]
        .as_object_mut()
        .unwrap()
        .remove("num_fp16_res");
    old["discriminator"]
        .as_object_mut()
        .unwrap()
        .remove("num_fp16_res");
    let old = ModelConfig::from_json(&old.to_string()).unwrap();
    assert_eq!(old.generator.num_fp16_res, 0);
    assert_eq!(old.discriminator.num_fp16_res, 0);
    assert!(ModelConfig::preset("nope", 64, 3, 0)
        .unwrap_err()
        .to_string()
        .contains("unknown preset"));
    assert!(ModelConfig::preset("tiny", 48, 3, 0).is_err());
    assert!(ModelConfig::from_json("{").is_err());
    let mut broken = tiny();
    broken.discriminator.img_resolution = 64;
    assert!(ModelConfig::from_json(&broken.to_json().unwrap()).is_err());
}

#[test]
fn conditional_and_other_architectures_build() {
    let mut cfg = ModelConfig::preset("tiny", 32, 3, 5).unwrap();
    cfg.generator.architecture = Architecture::Resnet;
    cfg.discriminator.architecture = Architecture::Skip;
    let mut rng = stylegan2::rng(7);
    let g = Generator::new(&cfg.generator, &mut rng, Device::Cpu).unwrap();
    let d = Discriminator::new(&cfg.discriminator, &mut rng, Device::Cpu).unwrap();
    let gs = g.state_dict();
    assert_eq!(gs.get("mapping.embed.weight").unwrap().dims(), &[64, 5]);
    assert_eq!(gs.get("mapping.fc0.weight").unwrap().dims(), &[64, 128]);
    assert_eq!(
        gs.get("synthesis.b8.skip.weight").unwrap().dims(),
        &[64, 64, 1, 1]
    );
    assert!(gs.get("synthesis.b8.torgb.weight").is_none());
    assert!(gs.get("synthesis.b32.torgb.weight").is_some());
    let ds = d.state_dict();
    assert_eq!(ds.get("mapping.fc7.weight").unwrap().dims(), &[64, 64]);
    assert!(ds.get("mapping.w_avg").is_none());
    assert_eq!(ds.get("b4.out.weight").unwrap().dims(), &[64, 64]);
    assert!(ds.get("b16.fromrgb.weight").is_some());
    assert!(ds.get("b4.fromrgb.weight").is_some());
    // Freeze-D turns the first layers into buffers.
    cfg.discriminator.freeze_layers = 2;
    let d = Discriminator::new(&cfg.discriminator, &mut rng, Device::Cpu).unwrap();
    let bufs: Vec<String> = d.buffers().into_iter().map(|(n, _)| n).collect();
    assert!(bufs.contains(&"b32.fromrgb.weight".to_string()));
    assert!(bufs.contains(&"b32.conv0.bias".to_string()));
    assert!(!bufs.contains(&"b32.conv1.weight".to_string()));
}
