//! The `stylegan2` binary end to end: init → info → generate → style-mix,
//! and clear errors (non-zero exit, message on stderr) for bad input.

mod common;
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
fn init_info_generate_style_mix() {
    let dir = std::env::temp_dir().join(format!("stylegan2-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ok = |args: &[&str]| {
        let o = run(args, &dir);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    ok(&[
        "init",
        "--preset",
        "tiny",
        "--resolution",
        "16",
        "--out",
        "w.safetensors",
    ]);
    let info = ok(&["info", "w.safetensors"]);
    assert!(info.contains("tiny") && info.contains("G_ema"), "{info}");
    ok(&[
        "generate",
        "--weights",
        "w.safetensors",
        "--seeds",
        "0-3",
        "--trunc",
        "0.7",
        "--device",
        "cpu",
        "--out",
        "imgs",
    ]);
    for f in ["seed0000.png", "seed0003.png", "grid.png"] {
        let bytes = std::fs::read(dir.join("imgs").join(f)).unwrap();
        assert_eq!(&bytes[1..4], b"PNG", "{f}");
    }
    ok(&[
        "style-mix",
        "--weights",
        "w.safetensors",
        "--rows",
        "0-1",
        "--cols",
        "2-3",
        "--styles",
        "0-1",
        "--out",
        "mix.png",
    ]);
    assert!(dir.join("mix.png").exists());
    // The official style_mixing.py's --outdir: the figure as grid.png there,
    // the same figure as --out's.
    ok(&[
        "style-mix",
        "--network",
        "w.safetensors",
        "--rows",
        "0-1",
        "--cols",
        "2-3",
        "--styles",
        "0-1",
        "--outdir",
        "mixdir",
    ]);
    assert_eq!(
        std::fs::read(dir.join("mixdir/grid.png")).unwrap(),
        std::fs::read(dir.join("mix.png")).unwrap()
    );
    let o = run(&["style-mix", "--network", "w.safetensors"], &dir);
    assert!(
        !o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--outdir"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );

    let fails = |args: &[&str], needle: &str| {
        let o = run(args, &dir);
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(needle),
            "{args:?}: {err}"
        );
    };
    fails(
        &["generate", "--weights", "missing.safetensors", "--out", "x"],
        "missing.safetensors",
    );
    std::fs::write(dir.join("bad.safetensors"), b"not a safetensors file").unwrap();
    fails(&["info", "bad.safetensors"], "bad.safetensors");
    fails(
        &[
            "generate",
            "--weights",
            "w.safetensors",
            "--noise-mode",
            "loud",
            "--out",
            "x",
        ],
        "noise mode",
    );
    fails(
        &[
            "generate",
            "--weights",
            "w.safetensors",
            "--device",
            "tpu",
            "--out",
            "x",
        ],
        "unknown device",
    );
    fails(&["bench", "--iters", "0"], "--iters");
    std::fs::remove_dir_all(&dir).ok();
}

/// The official flag names (`--network`, `--outdir`, `--cfg`) and the old
/// spellings, kept as aliases, do the same.
#[test]
fn official_flag_names_and_their_old_aliases() {
    let dir = std::env::temp_dir().join(format!("stylegan2-cli-names-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ok = |args: &[&str]| {
        let o = run(args, &dir);
        assert!(
            o.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    };
    for (flag, file) in [("--cfg", "a.safetensors"), ("--preset", "b.safetensors")] {
        ok(&["init", flag, "tiny", "--resolution", "16", "--out", file]);
    }
    // The same preset and seed: the same bytes.
    assert_eq!(
        std::fs::read(dir.join("a.safetensors")).unwrap(),
        std::fs::read(dir.join("b.safetensors")).unwrap()
    );
    for (net, out, d) in [
        ("--network", "--outdir", "new"),
        ("--weights", "--out", "old"),
    ] {
        ok(&[
            "generate",
            net,
            "a.safetensors",
            "--seeds",
            "3",
            "--device",
            "cpu",
            out,
            d,
        ]);
        ok(&[
            "style-mix",
            net,
            "a.safetensors",
            "--rows",
            "0",
            "--cols",
            "1",
            "--styles",
            "0",
            "--device",
            "cpu",
            "--out",
            &format!("{d}/mix.png"),
        ]);
        ok(&[
            "metric",
            net,
            "a.safetensors",
            "--data",
            "synthetic:8",
            "--num",
            "8",
            "--device",
            "cpu",
        ]);
    }
    for f in ["seed0003.png", "grid.png", "mix.png"] {
        assert_eq!(
            std::fs::read(dir.join("new").join(f)).unwrap(),
            std::fs::read(dir.join("old").join(f)).unwrap(),
            "{f}"
        );
    }
    for sub in ["bench", "train"] {
        for flag in ["--cfg", "--preset"] {
            let o = run(&[sub, flag, "nope", "--device", "cpu"], &dir);
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(
                o.status.code() == Some(1) && err.contains("unknown preset"),
                "{sub} {flag}: {err}"
            );
        }
    }
    // The no-GPU note: one line, only for --device auto falling back.
    let o = run(&["info", "a.safetensors"], &dir);
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let o = run(
        &[
            "generate",
            "--network",
            "a.safetensors",
            "--seeds",
            "0",
            "--outdir",
            "auto",
        ],
        &dir,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    if stylegan2::Device::cuda(0).is_err() {
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("no GPU found; running on the CPU"), "{err}");
    } else {
        common::skip::skip(
            common::skip::Need::NoGpu,
            "a GPU is present: the no-GPU note of --device auto is not checked",
        );
    }
    let o = run(
        &[
            "generate",
            "--network",
            "a.safetensors",
            "--seeds",
            "0",
            "--device",
            "cpu",
            "--outdir",
            "cpu",
        ],
        &dir,
    );
    assert!(
        o.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn augment_writes_a_grid_of_draws_and_names_bad_flags() {
    let dir = std::env::temp_dir().join(format!("stylegan2-cli-aug-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let o = run(
        &[
            "augment",
            "--data",
            "synthetic:8",
            "--p",
            "0.5",
            "--num",
            "4",
            "--draws",
            "2",
            "--out",
            "grid.png",
        ],
        &dir,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // Synthetic images are 32×32: 4 columns, the originals and 2 draws.
    let img = image::open(dir.join("grid.png")).unwrap();
    assert_eq!((img.width(), img.height()), (4 * 32, 3 * 32));
    let o = run(
        &[
            "augment",
            "--data",
            "synthetic:8",
            "--augpipe",
            "bgz",
            "--out",
            "x.png",
        ],
        &dir,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("bgz"), "{err}");
    let o = run(&["train", "--aug", "sometimes", "--kimg", "0.004"], &dir);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("sometimes"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Every option and argument of every subcommand says in `--help` what it
/// is (a bare `[default: auto]` tells a newcomer nothing).
#[test]
fn every_flag_has_a_description_in_help() {
    let dir = std::env::temp_dir();
    let subs = [
        "train",
        "augment",
        "dataset",
        "bench",
        "init",
        "generate",
        "style-mix",
        "info",
        "convert",
        "metric",
    ];
    let mut bare = Vec::new();
    for sub in subs {
        let o = run(&[sub, "--help"], &dir);
        assert!(o.status.success(), "{sub} --help");
        let help = String::from_utf8_lossy(&o.stdout).to_string();
        let mut entries = 0;
        for line in help.lines().map(str::trim_start) {
            if !(line.starts_with('-') || line.starts_with('<')) || line.starts_with("-h, --help") {
                continue;
            }
            entries += 1;
            // `--flag <VALUE>` (or `<ARG>`), then two or more spaces and the text.
            let text = line.split_once("  ").map_or("", |(_, t)| t.trim());
            let mut words = text.to_string();
            // Strip the `[default: …]` and `[alias: …]` clap appends.
            while let (Some(a), Some(b)) = (words.rfind('['), words.rfind(']')) {
                if a > b || !words[a..].starts_with("[default") && !words[a..].starts_with("[alias")
                {
                    break;
                }
                words.replace_range(a..=b, "");
                words = words.trim().to_string();
            }
            if words.is_empty() {
                bare.push(format!("{sub}: {line}"));
            }
        }
        assert!(entries > 0, "{sub}: no options found in {help}");
    }
    assert!(
        bare.is_empty(),
        "without a description:\n{}",
        bare.join("\n")
    );
}

/// A value that starts with `-` reaches the flag's own parser, which takes
/// it (`--trunc -0.5`: ψ is within [-10, 10]) or says why not, instead of
/// clap's "unexpected argument '-1' found"; `--class` errors name the flag.
#[test]
fn negative_values_reach_their_parser_and_class_errors_name_the_flag() {
    let dir = std::env::temp_dir().join(format!("stylegan2-cli-neg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let o = run(
        &["init", "--resolution", "16", "--out", "w.safetensors"],
        &dir,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = run(
        &[
            "generate",
            "--network",
            "w.safetensors",
            "--seeds",
            "0",
            "--trunc",
            "-0.5",
            "--device",
            "cpu",
            "--outdir",
            "neg",
        ],
        &dir,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(dir.join("neg").join("seed0000.png").exists());
    let refused = |args: &[&str], code: i32, needles: &[&str]| {
        let o = run(args, &dir);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(code), "{args:?}: {err}");
        assert!(!err.contains("unexpected argument"), "{args:?}: {err}");
        for n in needles {
            assert!(err.contains(n), "{args:?}: '{n}' not in {err}");
        }
    };
    refused(
        &["train", "--kimg", "-1", "--device", "cpu"],
        2,
        &["--kimg", "must be positive"],
    );
    refused(
        &["train", "--snap-kimg", "-1", "--device", "cpu"],
        2,
        &["--snap-kimg", "outside"],
    );
    refused(
        &[
            "generate",
            "--network",
            "w.safetensors",
            "--seeds",
            "-3",
            "--outdir",
            "x",
        ],
        1,
        &["--seeds", "'-3'"],
    );
    refused(
        &[
            "generate",
            "--network",
            "w.safetensors",
            "--seeds",
            "0",
            "--class",
            "2",
            "--device",
            "cpu",
            "--outdir",
            "x",
        ],
        1,
        &["error: --class:", "unconditional", "leave --class out"],
    );
    // An unknown flag is still refused as one.
    let o = run(&["train", "--frobnicate"], &dir);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        o.status.code() == Some(2) && err.contains("unexpected argument '--frobnicate'"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Output into a pipe that the reader closed (`stylegan2 info x | head -1`)
/// ends the process quietly, as other command-line tools do, instead of a
/// "failed printing to stdout" panic with a backtrace.
#[test]
fn a_closed_stdout_pipe_ends_quietly() {
    let dir = std::env::temp_dir().join(format!("stylegan2-cli-pipe-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let o = run(
        &["init", "--resolution", "16", "--out", "w.safetensors"],
        &dir,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let mut child = Command::new(env!("CARGO_BIN_EXE_stylegan2"))
        .args(["info", "w.safetensors"])
        .current_dir(&dir)
        .env("RUST_BACKTRACE", "1")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end before `info` has read the file and printed.
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !err.contains("panicked") && o.status.code() != Some(101),
        "{:?}: {err}",
        o.status
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// `train` and `init` make a discriminator, which needs at least one block
/// above its 4×4 epilogue: `--resolution 4` is refused by the flag's parser
/// (exit 2, naming the flag and the range), not later by the config check
/// (exit 1, naming `discriminator.img_resolution`). 8 is a valid network;
/// `dataset` still writes 4×4 images.
#[test]
fn network_resolution_flags_start_at_8_and_name_the_flag() {
    let dir = std::env::temp_dir().join(format!("stylegan2-cli-res-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for args in [
        &["train", "--resolution", "4", "--kimg", "0.001"][..],
        &["init", "--resolution", "4", "--out", "w4.safetensors"],
    ] {
        let o = run(args, &dir);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("--resolution") && err.contains("8..=1024"),
            "{args:?}: {err}"
        );
    }
    assert!(!dir.join("training-runs").exists() && !dir.join("w4.safetensors").exists());
    let o = run(
        &["init", "--resolution", "8", "--out", "w8.safetensors"],
        &dir,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // The dataset tool's own parser still takes 4: the refusal is the
    // missing source, not the resolution.
    let o = run(
        &[
            "dataset",
            "--source",
            "missing",
            "--dest",
            "out4",
            "--resolution",
            "4",
        ],
        &dir,
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("--source missing"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
