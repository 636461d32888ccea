//! `stylegan2 bench` end to end: every section's table and JSON on the CPU,
//! the modconv and generator sections on the simulator (every launch path,
//! forward and backward), clear errors for bad flags, and the Python peer's
//! mirror of the layer shapes.

mod common;
use common::skip::{skip, Need};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use stylegan2::bench::{self, Peak, Scale};
use stylegan2::model::ModelConfig;
use stylegan2::ops::precision::Precision;

fn run(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stylegan2"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stylegan2-bench-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs `bench` with `args` and `--out bench.json`; returns stdout and the JSON.
fn bench_ok(args: &[&str], dir: &Path) -> (String, Value) {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--out", "bench.json"]);
    let o = run(&all, dir);
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{all:?}: {out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let json =
        serde_json::from_str(&std::fs::read_to_string(dir.join("bench.json")).unwrap()).unwrap();
    (out, json)
}

const ROW_KEYS: [&str; 11] = [
    "section",
    "case",
    "path",
    "pass",
    "median_ms",
    "gflops",
    "images_per_s",
    "speedup_vs_unfused",
    "fraction_of_peak",
    "floor_compute_ms",
    "floor_memory_ms",
];

fn keys(v: &Value) -> BTreeSet<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

fn rows<'a>(json: &'a Value, section: &str) -> Vec<&'a Value> {
    json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["section"] == section)
        .collect()
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"))
}

/// Top-level keys and the keys and sanity of every row.
fn check_common(json: &Value, device: &str) {
    assert_eq!(
        keys(json),
        BTreeSet::from([
            "format",
            "implementation",
            "device",
            "device_name",
            "iterations",
            "peak_tflops",
            "peak_source",
            "modconv",
            "generator",
            "train",
            "rows",
        ])
    );
    assert_eq!(json["format"], "stylegan2-bench/2");
    assert_eq!(json["implementation"], "stylegan2");
    assert_eq!(json["device"], device);
    assert_eq!(json["iterations"], 1);
    for r in json["rows"].as_array().unwrap() {
        assert_eq!(keys(r), BTreeSet::from(ROW_KEYS), "{r}");
        let ms = num(&r["median_ms"]);
        assert!(ms.is_finite() && ms > 0.0, "{r}");
    }
}

/// The modconv rows: each case × path × pass, ratios against unfused,
/// GFLOP/s from the case's FLOPs (bwd counts twice the forward).
fn check_modconv(json: &Value, out: &str, cases: &[bench::Case], tensor_core_rows: bool) {
    let mc = &json["modconv"];
    assert_eq!(
        mc["cases"],
        Value::Array(cases.iter().map(bench::Case::to_json).collect())
    );
    let rows = rows(json, "modconv");
    let plain = cases.iter().filter(|c| c.p.up == 1).count();
    // At each of the 3 tensor-core precisions: fused fwd and bwd, conv2d
    // fwd and bwd where there is no up-sampling.
    let tc = if tensor_core_rows { 3 } else { 0 };
    assert_eq!(
        rows.len(),
        2 * (3 * cases.len() + plain) + tc * 2 * (cases.len() + plain)
    );
    if tensor_core_rows {
        for case in cases {
            let mut paths = vec!["fused"];
            if case.p.up == 1 {
                paths.push("conv2d");
            }
            for path in paths {
                for pass in [
                    "fwd tf32", "fwd bf16", "fwd f16", "bwd tf32", "bwd bf16", "bwd f16",
                ] {
                    let r = rows
                        .iter()
                        .find(|r| r["case"] == case.name && r["path"] == path && r["pass"] == pass)
                        .unwrap_or_else(|| panic!("no {} {path} {pass} row", case.name));
                    let flops = case.flops() * if pass.starts_with("bwd") { 2.0 } else { 1.0 };
                    let want = flops / (num(&r["median_ms"]) / 1e3) / 1e9;
                    assert!((num(&r["gflops"]) - want).abs() <= 1e-9 * want, "{r}");
                    assert!(out.contains(pass), "table lacks {pass}: {out}");
                }
            }
        }
    }
    for case in cases {
        for pass in ["fwd", "bwd"] {
            let find = |path: &str| {
                rows.iter()
                    .find(|r| r["case"] == case.name && r["path"] == path && r["pass"] == pass)
                    .unwrap_or_else(|| panic!("no {} {path} {pass} row", case.name))
            };
            let unfused = num(&find("unfused")["median_ms"]);
            let mut paths = vec!["unfused", "grouped", "fused"];
            if case.p.up == 1 {
                paths.push("conv2d");
            }
            for path in paths {
                let r = find(path);
                let ms = num(&r["median_ms"]);
                let flops = case.flops() * if pass == "bwd" { 2.0 } else { 1.0 };
                let want = flops / (ms / 1e3) / 1e9;
                assert!((num(&r["gflops"]) - want).abs() <= 1e-9 * want, "{r}");
                let sp = num(&r["speedup_vs_unfused"]);
                assert!((sp - unfused / ms).abs() <= 1e-9 * sp, "{r}");
                assert!(r["images_per_s"].is_null(), "{r}");
                assert!(out.contains(case.name), "table lacks {}: {out}", case.name);
            }
        }
    }
}

#[test]
fn all_sections_on_the_cpu() {
    let dir = scratch("cpu");
    let (out, json) = bench_ok(&["--quick", "--iters", "1", "--device", "cpu"], &dir);
    check_common(&json, "cpu");
    for title in [
        "modulated convolution on cpu",
        "generator forward on cpu",
        "training step on cpu",
    ] {
        assert!(out.contains(title), "{out}");
    }
    assert!(
        out.contains("vs unfused") && !out.contains("% peak"),
        "{out}"
    );
    assert!(json["peak_tflops"].is_null() && json["peak_source"].is_null());
    assert!(json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["fraction_of_peak"].is_null()));

    check_modconv(&json, &out, &bench::cases(Scale::Quick), false);

    // Generator: tiny 32×32 batch 8 with --quick, one row per path.
    let g = &json["generator"];
    assert_eq!(
        keys(g),
        BTreeSet::from(["preset", "resolution", "batch", "flops_per_image"])
    );
    assert_eq!(
        (&g["preset"], &g["resolution"], &g["batch"]),
        (&"tiny".into(), &32.into(), &8.into())
    );
    let cfg = ModelConfig::preset("tiny", 32, 3, 0).unwrap();
    let per_image = bench::synthesis_flops_per_image(&cfg.generator);
    assert_eq!(num(&g["flops_per_image"]), per_image);
    let grows = rows(&json, "generator");
    let paths: Vec<_> = grows.iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert_eq!(paths, ["unfused", "grouped", "fused"]);
    for r in &grows {
        let s = num(&r["median_ms"]) / 1e3;
        assert_eq!(r["pass"], "fwd");
        assert!(
            (num(&r["images_per_s"]) - 8.0 / s).abs() <= 1e-9 * 8.0 / s,
            "{r}"
        );
        assert!(
            (num(&r["gflops"]) - per_image * 8.0 / s / 1e9).abs() < 1e-6,
            "{r}"
        );
        assert!(out.contains("tiny 32x32 batch 8"), "{out}");
    }

    // Train: the three phase sets of the schedule, and their mean over it.
    let t = &json["train"];
    assert_eq!(
        keys(t),
        BTreeSet::from(["preset", "resolution", "batch", "modconv_path", "schedule"])
    );
    let schedule = t["schedule"].as_array().unwrap();
    assert_eq!(schedule.len(), 16);
    assert_eq!(
        schedule[0],
        serde_json::json!(["Gmain", "Greg", "Dmain", "Dreg"])
    );
    assert_eq!(schedule[4], serde_json::json!(["Gmain", "Greg", "Dmain"]));
    assert_eq!(schedule[1], serde_json::json!(["Gmain", "Dmain"]));
    let trows = rows(&json, "train");
    let passes: Vec<_> = trows.iter().map(|r| r["pass"].as_str().unwrap()).collect();
    assert_eq!(
        passes,
        [
            "Gmain+Dmain",
            "Gmain+Greg+Dmain",
            "Gmain+Greg+Dmain+Dreg",
            "amortized"
        ]
    );
    let ms: Vec<f64> = trows.iter().map(|r| num(&r["median_ms"])).collect();
    // Steps 1–3, 5–7, 9–11, 13–15 main only; 4, 8, 12 with Greg; 0 all four.
    let mean = (12.0 * ms[0] + 3.0 * ms[1] + ms[2]) / 16.0;
    // Durations are kept in whole nanoseconds.
    assert!((ms[3] - mean).abs() < 1e-5, "{ms:?}");
    for r in &trows {
        assert_eq!(r["path"], t["modconv_path"]);
        assert!(
            r["gflops"].is_null() && r["speedup_vs_unfused"].is_null(),
            "{r}"
        );
        let ips = num(&r["images_per_s"]);
        assert!(
            (ips - 8.0e3 / num(&r["median_ms"])).abs() <= 1e-9 * ips,
            "{r}"
        );
        assert!(out.contains(r["pass"].as_str().unwrap()), "{out}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn only_and_peak_flags() {
    let dir = scratch("only");
    let (out, json) = bench_ok(
        &[
            "--quick",
            "--iters",
            "1",
            "--device",
            "cpu",
            "--only",
            "generator",
            "--resolution",
            "16",
            "--batch",
            "4",
            "--peak-tflops",
            "0.5",
        ],
        &dir,
    );
    check_common(&json, "cpu");
    assert!(json["modconv"].is_null() && json["train"].is_null());
    assert!(!out.contains("modulated convolution") && !out.contains("training step"));
    assert!(
        out.contains("% peak") && out.contains("tiny 16x16 batch 4"),
        "{out}"
    );
    assert!(out.contains("peak 0.5 TFLOP/s (--peak-tflops)"), "{out}");
    assert_eq!(num(&json["peak_tflops"]), 0.5);
    assert_eq!(json["peak_source"], "--peak-tflops");
    let rows = rows(&json, "generator");
    assert_eq!(rows.len(), json["rows"].as_array().unwrap().len());
    assert_eq!(rows.len(), 3);
    for r in rows {
        let f = num(&r["fraction_of_peak"]);
        assert!((f - num(&r["gflops"]) / 500.0).abs() <= 1e-12, "{r}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The simulator runs the same kernels as a GPU: every launch path of the
/// fused, grouped and unfused modconv (forward and backward) and the
/// generator on each path, at the tiny Sim shapes.
#[test]
fn modconv_and_generator_on_the_simulator() {
    let dir = scratch("sim");
    let (out, json) = bench_ok(
        &[
            "--iters",
            "1",
            "--device",
            "sim",
            "--only",
            "modconv,generator",
        ],
        &dir,
    );
    check_common(&json, "sim");
    assert_eq!(json["device_name"], "simulator");
    assert!(json["train"].is_null());
    check_modconv(&json, &out, &bench::cases(Scale::Tiny), true);
    let g = &json["generator"];
    assert_eq!(
        (&g["preset"], &g["resolution"], &g["batch"]),
        (&"tiny".into(), &8.into(), &4.into())
    );
    assert_eq!(rows(&json, "generator").len(), 3);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn bad_flags_fail_clearly() {
    let dir = scratch("bad");
    let fails = |args: &[&str], needle: &str| {
        let mut all = vec!["bench", "--device", "cpu", "--quick"];
        all.extend_from_slice(args);
        let o = run(&all, &dir);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(needle),
            "{all:?}: {err}"
        );
        assert!(!dir.join("bench.json").exists(), "{all:?} wrote results");
    };
    fails(&["--iters", "0"], "--iters");
    fails(&["--only", "decoder"], "unknown section 'decoder'");
    fails(
        &["--peak-tflops", "0"],
        "--peak-tflops <PEAK_TFLOPS>': 0 is not in (0,",
    );
    fails(&["--peak-tflops", "nan"], "--peak-tflops");
    fails(&["--preset", "huge"], "unknown preset 'huge'");
    fails(&["--resolution", "48"], "power of two");
    fails(&["--batch", "0"], "--batch <BATCH>': 0 is outside 1..=");
    fails(&["--cfg", "huge"], "unknown preset 'huge'");
    // D's minibatch-stddev groups of 4 cannot split a batch of 6.
    fails(&["--only", "train", "--batch", "6"], "multiple of");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn known_gpu_peaks() {
    let p = |n: &str| Peak::known(n).map(|p| p.tflops);
    assert_eq!(p("NVIDIA H200"), Some(67.0));
    assert_eq!(p("NVIDIA H200 NVL"), Some(60.0));
    assert_eq!(p("NVIDIA H100 PCIe"), Some(51.0));
    assert_eq!(p("NVIDIA H100 80GB HBM3"), Some(67.0));
    assert_eq!(p("NVIDIA A100-SXM4-80GB"), Some(19.5));
    assert_eq!(p("NVIDIA GeForce RTX 3090"), None);
    assert!(Peak::given(-1.0).is_err() && Peak::given(f64::INFINITY).is_err());
    // Dense tensor-core peaks of the precision rows.
    let tc = bench::tensor_core_peak;
    assert_eq!(tc("NVIDIA H200", Precision::BF16), Some(989.4));
    assert_eq!(tc("NVIDIA H100 80GB HBM3", Precision::TF32), Some(494.7));
    assert_eq!(tc("NVIDIA H100 PCIe", Precision::F16), Some(756.0));
    assert_eq!(tc("NVIDIA A100-SXM4-80GB", Precision::TF32), Some(156.0));
    assert_eq!(tc("NVIDIA H200", Precision::F32), None);
    assert_eq!(tc("NVIDIA H200 NVL", Precision::BF16), None);
    // Memory bandwidth (TB/s) of the roofline floors.
    let bw = bench::memory_bandwidth;
    assert_eq!(bw("NVIDIA H200"), Some(4.8));
    assert_eq!(bw("NVIDIA H100 80GB HBM3"), Some(3.35));
    assert_eq!(bw("NVIDIA H100 PCIe"), Some(2.0));
    assert_eq!(bw("NVIDIA A100-SXM4-80GB"), Some(2.039));
    assert_eq!(bw("NVIDIA GeForce RTX 3090"), None);
}

/// The memory floor's bytes by hand: config-f conv 32×32 (512 → 512, 3×3,
/// batch 4): x = y = 4·512·32² floats, w = 512·512·9 floats, 4 bytes each.
#[test]
fn min_bytes_by_hand() {
    let case = bench::cases(bench::Scale::Full)
        .into_iter()
        .find(|c| c.name == "conv 32x32")
        .unwrap();
    let (x, w) = (4.0 * 512.0 * 1024.0, 512.0 * 512.0 * 9.0);
    assert_eq!(
        case.min_bytes(),
        [4.0 * (x + w + x), 4.0 * (x + 2.0 * x + 2.0 * w)]
    );
}

#[test]
fn synthesis_flops_by_hand() {
    // tiny at 8×8: 64 channels at 4 and 8, skip architecture (ToRGB per block).
    // 4×4: conv1 64·64·9·16 + ToRGB 64·3·16; 8×8: conv0 and conv1 64·64·9·64
    // each + ToRGB 64·3·64; ×2 FLOPs per multiply-add.
    let cfg = ModelConfig::preset("tiny", 8, 3, 0).unwrap();
    assert_eq!(cfg.generator.channels(4), 64);
    assert_eq!(cfg.generator.channels(8), 64);
    let macs = 64 * 64 * 9 * 16 + 64 * 3 * 16 + 2 * 64 * 64 * 9 * 64 + 64 * 3 * 64;
    assert_eq!(
        bench::synthesis_flops_per_image(&cfg.generator),
        2.0 * macs as f64
    );
}

/// bench/torch_modconv.py mirrors `cases()` for when no bench JSON is at
/// hand, and reads a bench JSON's cases unchanged; both need no torch.
#[test]
fn torch_script_mirrors_the_cases() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("bench/torch_modconv.py");
    let py = |args: &[&str]| Command::new("python3").arg(&script).args(args).output();
    let help = match py(&["--help"]) {
        Ok(help) => help,
        Err(e) => {
            skip(Need::Python3, &format!("python3 could not be run ({e})"));
            return;
        }
    };
    assert!(
        help.status.success() && String::from_utf8_lossy(&help.stdout).contains("--cases"),
        "{}",
        String::from_utf8_lossy(&help.stderr)
    );
    for (flag, scale) in [
        ("full", Scale::Full),
        ("quick", Scale::Quick),
        ("tiny", Scale::Tiny),
    ] {
        let o = py(&["--scale", flag, "--list-cases"]).unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let got: Value = serde_json::from_slice(&o.stdout).unwrap();
        let want = Value::Array(
            bench::cases(scale)
                .iter()
                .map(bench::Case::to_json)
                .collect(),
        );
        assert_eq!(got, want, "--scale {flag}");
    }
    let dir = scratch("py");
    let file = dir.join("bench.json");
    let cases = Value::Array(
        bench::cases(Scale::Tiny)
            .iter()
            .map(bench::Case::to_json)
            .collect(),
    );
    std::fs::write(
        &file,
        serde_json::json!({"modconv": {"cases": cases}}).to_string(),
    )
    .unwrap();
    let o = py(&["--cases", file.to_str().unwrap(), "--list-cases"]).unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(serde_json::from_slice::<Value>(&o.stdout).unwrap(), cases);
    // A bench JSON without the modconv section is refused by name.
    std::fs::write(&file, r#"{"modconv": null}"#).unwrap();
    let o = py(&["--cases", file.to_str().unwrap(), "--list-cases"]).unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("no modconv cases"));
    std::fs::remove_dir_all(&dir).ok();
}
