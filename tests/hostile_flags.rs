//! Every subcommand with hostile values for each of its flags (huge,
//! negative, zero, NaN/inf, empty, non-existent or unwritable paths): the
//! binary exits 0 (the value was valid), 1 or 2, never by a panic (101) or
//! an abort (134); a refusal names the flag (or, for a path, the path);
//! values that can never be valid (NaN, inf, empty, beyond every bound)
//! are always refused.

use std::path::Path;
use std::process::Command;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Int,
    Float,
    /// A keyword (device, preset, path choice, ...) or a `--data` value.
    Word,
    /// Seed or index lists such as "0-4,7".
    List,
    /// An existing file or directory to read.
    Input,
    /// A file or directory to write.
    Output,
}

/// `(value, must be refused)` for a kind of flag.
fn hostile(kind: Kind, tmp: &Path) -> Vec<(String, bool)> {
    let afile = tmp.join("afile").display().to_string();
    let v = |s: &str, refuse: bool| (s.to_string(), refuse);
    match kind {
        Kind::Int => vec![
            v("18446744073709551616", true),
            // Beyond u32: refused by every bounded flag, a valid seed.
            v("4294967296", false),
            v("1e30", true),
            v("-1", true),
            v("0", false),
            v("nan", true),
            v("inf", true),
            v("", true),
        ],
        Kind::Float => vec![
            v("1e30", true),
            v("1e300", true),
            v("-1", false),
            v("0", false),
            v("nan", true),
            v("NaN", true),
            v("inf", true),
            v("-inf", true),
            v("", true),
        ],
        Kind::Word => vec![
            v("", true),
            v("nan", true),
            v("-1", true),
            v("0", true),
            ("x".repeat(300), true),
        ],
        Kind::List => vec![
            v("", true),
            v("-1", true),
            v("5-2", true),
            v("0-18446744073709551615", true),
            v("0-4294967295", true),
            v("nan", true),
            v("1-", true),
        ],
        Kind::Input => vec![
            v("", true),
            v("/nonexistent/stylegan2/x.safetensors", true),
            (tmp.join("emptydir").display().to_string(), true),
            v("/dev/null", true),
        ],
        Kind::Output => vec![
            v("", true),
            v("/proc/stylegan2-denied/x/out.png", true),
            (format!("{afile}/sub/out.png"), true),
        ],
    }
}

struct Sub {
    name: &'static str,
    base: Vec<String>,
    flags: Vec<(&'static str, Kind)>,
}

fn subcommands(tmp: &Path) -> Vec<Sub> {
    let t = |p: &str| tmp.join(p).display().to_string();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let net = t("w.safetensors");
    use Kind::*;
    vec![
        Sub {
            name: "train",
            base: s(&[
                "--data=synthetic:8",
                "--resolution=16",
                "--kimg=0.008",
                "--snap-kimg=0",
                "--grid=1",
                "--device=cpu",
                "--quiet",
                &format!("--outdir={}", t("runs")),
            ]),
            flags: vec![
                ("--data", Word),
                ("--cfg", Word),
                ("--resolution", Int),
                ("--batch", Int),
                ("--kimg", Float),
                ("--lr", Float),
                ("--glr", Float),
                ("--dlr", Float),
                ("--gamma", Float),
                ("--ema-kimg", Float),
                ("--snap-kimg", Float),
                ("--grid", Int),
                ("--seed", Int),
                ("--device", Word),
                ("--outdir", Output),
                ("--resume", Input),
                ("--metrics", Word),
                ("--metrics-num", Int),
                ("--modconv", Word),
                ("--freezed", Int),
                ("--aug", Word),
                ("--p", Float),
                ("--target", Float),
                ("--augpipe", Word),
                ("--ada-kimg", Float),
            ],
        },
        Sub {
            name: "augment",
            base: s(&[
                "--data=synthetic:4",
                "--num=2",
                "--draws=1",
                &format!("--out={}", t("aug.png")),
            ]),
            flags: vec![
                ("--data", Word),
                ("--p", Float),
                ("--augpipe", Word),
                ("--num", Int),
                ("--draws", Int),
                ("--seed", Int),
                ("--device", Word),
                ("--out", Output),
            ],
        },
        Sub {
            name: "dataset",
            base: s(&[&format!("--source={}", t("src")), "--quiet"]),
            flags: vec![
                ("--source", Input),
                ("--dest", Output),
                ("--resolution", Int),
                ("--transform", Word),
            ],
        },
        Sub {
            name: "bench",
            base: s(&[
                "--device=cpu",
                "--quick",
                "--only=modconv",
                "--iters=1",
                &format!("--out={}", t("bench.json")),
            ]),
            flags: vec![
                ("--device", Word),
                ("--iters", Int),
                ("--only", Word),
                ("--cfg", Word),
                ("--resolution", Int),
                ("--batch", Int),
                ("--peak-tflops", Float),
                ("--out", Output),
            ],
        },
        Sub {
            name: "init",
            base: s(&[
                "--cfg=tiny",
                "--resolution=16",
                &format!("--out={}", t("init.safetensors")),
            ]),
            flags: vec![
                ("--cfg", Word),
                ("--resolution", Int),
                ("--channels", Int),
                ("--c-dim", Int),
                ("--seed", Int),
                ("--out", Output),
            ],
        },
        Sub {
            name: "generate",
            base: s(&[
                &format!("--network={net}"),
                "--seeds=0",
                "--device=cpu",
                &format!("--outdir={}", t("gen")),
            ]),
            flags: vec![
                ("--network", Input),
                ("--seeds", List),
                ("--trunc", Float),
                ("--trunc-cutoff", Int),
                ("--noise-mode", Word),
                ("--latents", Word),
                ("--class", Int),
                ("--device", Word),
                ("--outdir", Output),
            ],
        },
        Sub {
            name: "style-mix",
            base: s(&[
                &format!("--network={net}"),
                "--rows=0",
                "--cols=1",
                "--styles=0",
                "--device=cpu",
                &format!("--out={}", t("mix.png")),
            ]),
            flags: vec![
                ("--network", Input),
                ("--rows", List),
                ("--cols", List),
                ("--styles", List),
                ("--trunc", Float),
                ("--noise-mode", Word),
                ("--class", Int),
                ("--device", Word),
                ("--out", Output),
            ],
        },
        Sub {
            name: "metric",
            base: s(&[
                &format!("--network={net}"),
                "--data=synthetic:8",
                "--num=8",
                "--device=cpu",
            ]),
            flags: vec![
                ("--network", Input),
                ("--data", Word),
                ("--num", Int),
                ("--seed", Int),
                ("--trunc", Float),
                ("--batch", Int),
                ("--device", Word),
                ("--out", Output),
            ],
        },
        Sub {
            name: "info",
            base: vec![],
            flags: vec![("FILE", Input)],
        },
        Sub {
            name: "convert",
            base: s(&[
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/sg2_uncond.pkl"),
                &t("converted.safetensors"),
            ]),
            flags: vec![("INPUT", Input), ("OUTPUT", Output)],
        },
    ]
}

#[test]
fn every_flag_of_every_subcommand_refuses_hostile_values() {
    let tmp = std::env::temp_dir().join(format!("stylegan2-hostile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(tmp.join("src")).unwrap();
    std::fs::create_dir_all(tmp.join("emptydir")).unwrap();
    std::fs::write(tmp.join("afile"), b"a regular file").unwrap();
    for i in 0..4u8 {
        image::RgbImage::from_pixel(16, 16, image::Rgb([i * 60, 9, 200]))
            .save(tmp.join("src").join(format!("{i}.png")))
            .unwrap();
    }
    let exe = env!("CARGO_BIN_EXE_stylegan2");
    let o = Command::new(exe)
        .args(["init", "--cfg=tiny", "--resolution=16", "--out"])
        .arg(tmp.join("w.safetensors"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    let mut failures = Vec::new();
    let mut runs = 0;
    for sub in subcommands(&tmp) {
        for &(flag, kind) in &sub.flags {
            for (k, (value, must_refuse)) in hostile(kind, &tmp).into_iter().enumerate() {
                let mut args = vec![sub.name.to_string()];
                args.extend(
                    sub.base
                        .iter()
                        .filter(|a| !a.starts_with(&format!("{flag}=")))
                        .cloned(),
                );
                // An upper-case name is a positional argument: the n-th of
                // the subcommand's, replacing the valid base value there.
                let positional = sub
                    .flags
                    .iter()
                    .filter(|(f, _)| f.chars().all(|c| c.is_ascii_uppercase()))
                    .position(|(f, _)| *f == flag);
                match positional {
                    Some(i) if i + 1 < args.len() => args[i + 1] = value.clone(),
                    Some(_) => args.push(value.clone()),
                    None => args.push(format!("{flag}={value}")),
                }
                if sub.name == "dataset" && flag != "--dest" {
                    args.push(format!(
                        "--dest={}",
                        tmp.join(format!("ds-{flag}-{k}.zip")).display()
                    ));
                }
                let o = Command::new(exe)
                    .args(&args)
                    .current_dir(&tmp)
                    .output()
                    .unwrap();
                runs += 1;
                let err = String::from_utf8_lossy(&o.stderr);
                let code = o.status.code();
                let named = err.contains(flag)
                    || (matches!(kind, Kind::Input | Kind::Output)
                        && !value.is_empty()
                        && err.contains(value.trim_end_matches("/sub/out.png")));
                let ok = match code {
                    Some(0) => !must_refuse,
                    Some(1) | Some(2) => named && !err.contains("panicked"),
                    _ => false,
                };
                if !ok {
                    failures.push(format!("{args:?}: exit {code:?}: {}", err.trim()));
                }
            }
        }
    }
    std::fs::remove_dir_all(&tmp).ok();
    assert!(
        failures.is_empty(),
        "{} of {runs} runs misbehaved:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
