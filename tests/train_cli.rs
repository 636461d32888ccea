//! `stylegan2 train` end to end: a two-step run whose snapshot `generate`
//! and `info` read, with the default metrics (SWD from 16×16 up, none
//! below) and the plot of its stats, and clear errors (non-zero exit,
//! reason on stderr) for bad flags and data.

use std::path::Path;
use std::process::{Command, Output};

fn run(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stylegan2"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn train_then_generate_and_refuse_bad_flags() {
    let dir = std::env::temp_dir().join(format!("stylegan2-train-cli-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let o = run(
        &[
            "train",
            "--resolution",
            "16",
            "--batch",
            "4",
            "--kimg",
            "0.008",
            "--grid",
            "4",
            "--device",
            "cpu",
            "--modconv",
            "grouped",
            "--quiet",
            "--outdir",
            "runs",
            // The default --metrics (auto: swd at 16×16), on few images.
            "--metrics-num",
            "16",
        ],
        &dir,
    );
    let out = String::from_utf8_lossy(&o.stdout).to_string();
    assert!(
        o.status.success(),
        "{out}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(out.contains("trained 2 steps"), "{out}");
    // The sample command it prints runs as printed: the binary by the path
    // it was run by (`cargo run` leaves it off PATH), one class.
    let sample = out
        .lines()
        .find_map(|l| l.strip_prefix("sample: "))
        .unwrap_or_else(|| panic!("no sample line: {out}"));
    let words: Vec<&str> = sample.split_whitespace().collect();
    assert_eq!(words[0], env!("CARGO_BIN_EXE_stylegan2"), "{sample}");
    assert!(sample.contains("--class 0"), "{sample}");
    let o = Command::new(words[0])
        .args(&words[1..])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let samples = dir.join("runs/00000-synthetic-cond-tiny-16-batch4/samples");
    assert!(samples.join("grid.png").exists() && samples.join("seed0015.png").exists());
    // Synthetic data trains conditionally by default (the demo's grid
    // shows each shape kind in its rows).
    let run_dir = dir.join("runs").join("00000-synthetic-cond-tiny-16-batch4");
    let snap = run_dir.join("network-snapshot-00000008.safetensors");
    assert!(snap.exists(), "{out}");
    assert!(run_dir.join("fakes00000008.png").exists());
    let options = std::fs::read_to_string(run_dir.join("training_options.json")).unwrap();
    assert!(options.contains("\"modconv\": \"grouped\""), "{options}");
    // Precision recorded (tiny is FP32: num_fp16_res 0, no clamp).
    let opts: serde_json::Value = serde_json::from_str(&options).unwrap();
    assert_eq!(opts["fp32"], false, "{options}");
    assert_eq!(opts["num_fp16_res"]["G"], 0, "{options}");
    assert_eq!(opts["precision"], "fp32", "{options}");
    assert_eq!(opts["cond"], true, "{options}");
    // One kimg (the preset's default is not repeated), learning rates as
    // typed (tiny: G 0.0025, D 0.0015), not f32 noise such as
    // 0.0024999999441206455.
    assert_eq!(options.matches("\"kimg\"").count(), 1, "{options}");
    assert!(options.contains("\"glr\": 0.0025,"), "{options}");
    assert!(options.contains("\"dlr\": 0.0015,"), "{options}");
    assert!(
        options.contains("\"mapping_lr_multiplier\": 0.01,"),
        "{options}"
    );
    let stats = std::fs::read_to_string(run_dir.join("stats.jsonl")).unwrap();
    let line: serde_json::Value = serde_json::from_str(stats.lines().last().unwrap()).unwrap();
    assert!(line["SWDx1e3_16"].as_f64().unwrap() > 0.0, "{line}");
    let plot = image::open(run_dir.join(stylegan2::train::plot::FILE)).unwrap();
    assert_eq!((plot.width(), plot.height()), stylegan2::train::plot::SIZE);
    // Below 16×16 the default measures nothing (and does not refuse).
    let o = run(
        &[
            "train",
            "--resolution",
            "8",
            "--batch",
            "4",
            "--kimg",
            "0.004",
            "--grid",
            "1",
            "--device",
            "cpu",
            "--fp32",
            "--cond",
            "false",
            "--quiet",
            "--outdir",
            "runs8",
        ],
        &dir,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let run8 = dir.join("runs8").join("00000-synthetic-tiny-8-batch4");
    let stats = std::fs::read_to_string(run8.join("stats.jsonl")).unwrap();
    assert!(!stats.contains("SWD"), "{stats}");
    assert!(run8.join(stylegan2::train::plot::FILE).exists());
    // Official --fp32: recorded, both networks without FP16 blocks or clamp.
    let opts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run8.join("training_options.json")).unwrap())
            .unwrap();
    assert_eq!(opts["fp32"], true, "{opts}");
    assert_eq!(opts["num_fp16_res"]["D"], 0, "{opts}");
    assert!(opts["conv_clamp"]["G"].is_null(), "{opts}");
    // --cond false: unconditional on synthetic data too.
    assert_eq!(opts["cond"], false, "{opts}");
    let snap = snap.to_str().unwrap();
    let o = run(
        &[
            "generate",
            "--weights",
            snap,
            "--seeds",
            "0-1",
            "--class",
            "2",
            "--device",
            "cpu",
            "--out",
            "imgs",
        ],
        &dir,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(dir.join("imgs").join("grid.png").exists());
    let o = run(&["info", snap], &dir);
    let info = String::from_utf8_lossy(&o.stdout);
    assert!(info.contains("G_ema"), "{info}");
    assert!(
        info.contains("training progress: 0.008 kimg (8 images shown), step 2, pl_mean "),
        "{info}"
    );

    // The demo's defaults, as --help states them: 16 kimg, conditional
    // on synthetic data.
    let o = run(&["train", "--help"], &dir);
    let help = String::from_utf8_lossy(&o.stdout).replace('\n', " ");
    assert!(o.status.success(), "{help}");
    let flag = |name: &str| {
        let at = help.find(name).unwrap_or_else(|| panic!("{name}: {help}"));
        let end = help[at + 2..]
            .find("  --")
            .map_or(help.len(), |e| at + 2 + e);
        help[at..end].to_string()
    };
    assert!(flag("--kimg <KIMG>").contains("[default: 16]"), "{help}");
    assert!(
        flag("--cond [<COND>]").contains("[default: true for synthetic data"),
        "{help}"
    );

    let fails = |args: &[&str], needle: &str| {
        let o = run(args, &dir);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(needle),
            "{args:?}: {err}"
        );
    };
    fails(&["train", "--kimg", "0", "--device", "cpu"], "--kimg");
    fails(&["train", "--kimg", "x"], "--kimg");
    fails(&["train", "--batch", "0", "--device", "cpu"], "--batch");
    fails(
        &["train", "--batch", "6", "--device", "cpu"],
        "group size 4",
    );
    fails(&["train", "--grid", "0"], "--grid");
    fails(
        &["train", "--metrics", "auto,swd", "--device", "cpu"],
        "--metrics auto",
    );
    fails(
        &["train", "--modconv", "fast", "--device", "cpu"],
        "unknown path 'fast'",
    );
    fails(&["train", "--device", "tpu"], "unknown device");
    fails(
        &["train", "--cfg", "huge", "--device", "cpu"],
        "unknown preset",
    );
    fails(
        &["train", "--resolution", "20", "--device", "cpu"],
        "power of two",
    );
    fails(
        &["train", "--data", "no-such-dir", "--device", "cpu"],
        "no-such-dir",
    );
    std::fs::create_dir_all(dir.join("empty")).unwrap();
    fails(
        &["train", "--data", "empty", "--device", "cpu"],
        "no PNG or JPEG",
    );
    fails(
        &[
            "train",
            "--resume",
            "nothing.safetensors",
            "--device",
            "cpu",
        ],
        "nothing.safetensors",
    );
    fails(&["train", "--lr=-0.1", "--device", "cpu"], "--lr");
    std::fs::remove_dir_all(&dir).ok();
}

/// A run that would take hours says so after its first step, with the
/// estimated time per kimg (here: tiny, but a million kimg).
#[test]
fn a_long_run_prints_its_estimated_duration() {
    use std::io::BufRead;
    let dir = std::env::temp_dir().join(format!("stylegan2-train-eta-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_stylegan2"))
        .args([
            "train",
            "--resolution",
            "16",
            "--kimg",
            "1000000",
            "--grid",
            "1",
            "--device",
            "cpu",
            "--outdir",
            "runs",
        ])
        .current_dir(&dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let done = line.starts_with("estimated ");
        seen.push(line);
        if done || seen.len() > 5 {
            break;
        }
    }
    child.kill().ok();
    child.wait().ok();
    std::fs::remove_dir_all(&dir).ok();
    let last = seen.last().cloned().unwrap_or_default();
    assert!(
        last.starts_with("estimated ") && last.contains(" s/kimg on cpu") && last.contains("days"),
        "{seen:?}"
    );
    // It says what would shorten it: a GPU; not the preset it already has.
    assert!(
        last.contains("Ctrl-C stops it")
            && last.contains("--device cuda")
            && !last.contains("--cfg tiny"),
        "{last}"
    );
}

/// A snapshot records the batch, learning rates, γ and EMA the run trained
/// with (not the preset's defaults), so `info` shows them and a resumed
/// run keeps them unless told otherwise. Before, a `--batch 4` run resumed
/// at the preset's batch 16, and `info` showed the preset's kimg 1000.
#[test]
fn a_resumed_run_keeps_its_batch_and_learning_rates() {
    let dir = std::env::temp_dir().join(format!("stylegan2-train-keep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let common = [
        "--data",
        "synthetic:16",
        "--resolution",
        "16",
        "--grid",
        "1",
        "--metrics",
        "none",
        "--device",
        "cpu",
        "--quiet",
        "--outdir",
        "runs",
    ];
    let mut first = vec![
        "train",
        "--batch",
        "4",
        "--glr",
        "0.002",
        "--dlr",
        "0.001",
        "--gamma",
        "0.5",
        "--ema-kimg",
        "0.5",
        "--kimg",
        "0.008",
        // Unconditional, so the run directories are named as below (the
        // resumed run takes its conditioning from the snapshot).
        "--cond",
        "false",
    ];
    first.extend(common);
    let o = run(&first, &dir);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let snap =
        dir.join("runs/00000-synthetic-tiny-16-batch4/network-snapshot-00000008.safetensors");
    let o = run(&["info", snap.to_str().unwrap()], &dir);
    let info = String::from_utf8_lossy(&o.stdout).to_string();
    for want in [
        "\"batch\": 4,",
        "\"lr\": 0.002,",
        "\"dlr\": 0.001,",
        "\"r1_gamma\": 0.5,",
        "\"ema_kimg\": 0.5,",
        // The run's --kimg, not the preset's 1000.
        "\"kimg\": 0.008,",
    ] {
        assert!(info.contains(want), "{want} not in {info}");
    }

    let mut resume = vec![
        "train",
        "--resume",
        snap.to_str().unwrap(),
        "--kimg",
        "0.016",
    ];
    resume.extend(common);
    let o = run(&resume, &dir);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Its own 2 steps, not the 4 of the counter.
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("trained 2 steps (0.008 → 0.016 kimg, step 4)"),
        "{out}"
    );
    let run_dir = dir.join("runs/00001-synthetic-tiny-16-batch4");
    let opts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("training_options.json")).unwrap())
            .unwrap();
    assert_eq!(opts["batch"], 4, "{opts}");
    assert_eq!(opts["glr"], 0.002, "{opts}");
    assert_eq!(opts["dlr"], 0.001, "{opts}");
    assert_eq!(opts["r1_gamma"], 0.5, "{opts}");
    assert_eq!(opts["ema_kimg"], 0.5, "{opts}");
    // 8 more images at batch 4: steps 2 and 3.
    let o = run(
        &[
            "info",
            run_dir
                .join("network-snapshot-00000016.safetensors")
                .to_str()
                .unwrap(),
        ],
        &dir,
    );
    let info = String::from_utf8_lossy(&o.stdout);
    assert!(
        info.contains("training progress: 0.016 kimg (16 images shown), step 4,"),
        "{info}"
    );
    // The resumed run's own --kimg, the total.
    assert!(info.contains("\"kimg\": 0.016,"), "{info}");
    std::fs::remove_dir_all(&dir).ok();
}

/// `--freezed` beyond D's layers: accepted, as the official `--freezed`
/// (which only compares each layer's index with it), with a note that
/// names D's layer count and says every block is frozen.
#[test]
fn freezed_beyond_the_layers_of_d_says_so() {
    let dir = std::env::temp_dir().join(format!("stylegan2-train-freezed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let args = |n: &'static str| {
        vec![
            "train",
            "--data",
            "synthetic:8",
            "--resolution",
            "16",
            "--batch",
            "4",
            "--kimg",
            "0.004",
            "--grid",
            "1",
            "--metrics",
            "none",
            "--device",
            "cpu",
            "--quiet",
            "--outdir",
            "runs",
            "--freezed",
            n,
        ]
    };
    // tiny at 16×16, 'resnet': blocks 16 and 8, fromrgb + 2 × (conv0,
    // conv1, skip) = 7 layers.
    let o = run(&args("999999"), &dir);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("--freezed 999999 freezes all 7 layers"),
        "{err}"
    );
    let o = run(&args("3"), &dir);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("the first 3 of D's 7 block layers"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A dataset smaller than `--metrics-num` gives an SWD of fewer images
/// (noisier, not comparable with a full run's): train says so, as
/// `stylegan2 metric` does; without the metric it says nothing of it.
#[test]
fn an_swd_on_fewer_images_than_asked_says_so() {
    let dir = std::env::temp_dir().join(format!("stylegan2-train-swdnum-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let args = |metrics: &'static str| {
        [
            "train",
            "--data",
            "synthetic:8",
            "--resolution",
            "16",
            "--batch",
            "4",
            "--kimg",
            "0.004",
            "--grid",
            "1",
            "--metrics",
            metrics,
            "--metrics-num",
            "16",
            "--device",
            "cpu",
            "--quiet",
            "--outdir",
            "runs",
        ]
    };
    let note = "synthetic has 8 images; the SWD compares 8 reals with 8 fakes, not 16";
    let o = run(&args("swd"), &dir);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains(note), "{err}");
    let o = run(&args("none"), &dir);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(!err.contains("the SWD compares"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}
