//! Issue 10, one test per reported case: bad input is refused naming the
//! problem (or, with `--skip-bad`, skipped and counted), never silently
//! used, and no failed write leaves a partial or empty file behind.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use stylegan2::data::decode::decode;
use stylegan2::data::{Dataset, ImageFolder, Loader};
use stylegan2::flags::RangeList;
use stylegan2::{fsio, Device};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("stylegan2-bad-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn bin(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_stylegan2"))
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A fresh tiny network of `resolution`² written to `dir/file` by `init`.
fn init_tiny(dir: &Path, resolution: usize, file: &str) {
    let res = resolution.to_string();
    let o = bin(
        &["init", "--cfg", "tiny", "--resolution", &res, "--out", file],
        dir,
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Exit status 1 (or 2 for a flag clap refused), never a panic or abort.
fn assert_refused(o: &Output, needles: &[&str], what: &str) {
    let err = stderr(o);
    let code = o.status.code();
    assert!(
        matches!(code, Some(1) | Some(2)) && !err.contains("panicked"),
        "{what}: exit {code:?}: {err}"
    );
    for n in needles {
        assert!(err.contains(n), "{what}: '{n}' not in: {err}");
    }
}

fn png_bytes(img: &image::DynamicImage) -> Vec<u8> {
    let mut v = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut v), image::ImageFormat::Png)
        .unwrap();
    v
}

/// A 32×32 RGB image with noise (so PNG and JPEG files have some size).
fn noisy(seed: u32) -> image::DynamicImage {
    image::RgbImage::from_fn(32, 32, |x, y| {
        let v = (x * 7 + y * 13 + seed * 31).wrapping_mul(2_654_435_761) >> 24;
        image::Rgb([v as u8, (v as u8).wrapping_mul(3), x as u8 * 8])
    })
    .into()
}

/// Case 1: RGBA whose alpha hides colours. Refused naming the file (as the
/// official dataset tool refuses non-RGB images); an opaque alpha channel
/// carries nothing and is dropped losslessly.
#[test]
fn transparent_images_are_refused_naming_the_file() {
    let dir = tmpdir("alpha");
    let src = dir.join("rgba");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..8 {
        let img = image::RgbaImage::from_fn(32, 32, |x, y| {
            let inside = (8..24).contains(&x) && (8..24).contains(&y);
            // Hidden green under transparent pixels, a red square on top.
            if inside {
                image::Rgba([255, 0, 0, 255])
            } else {
                image::Rgba([0, 255, 0, 0])
            }
        });
        std::fs::write(src.join(format!("{i}.png")), png_bytes(&img.into())).unwrap();
    }
    let o = bin(
        &[
            "train", "--data", "rgba", "--device", "cpu", "--kimg", "0.008",
        ],
        &dir,
    );
    assert_refused(&o, &["0.png", "transparent"], "train on RGBA");
    assert!(!dir.join("training-runs").exists());
    let o = bin(&["dataset", "--source", "rgba", "--dest", "out.zip"], &dir);
    assert_refused(&o, &["0.png", "transparent"], "dataset of RGBA");
    assert!(!dir.join("out.zip").exists());

    // Fully opaque alpha: the RGB pixels, exactly.
    let rgb = noisy(1);
    let rgba: image::DynamicImage = rgb.to_rgba8().into();
    let d = decode(&png_bytes(&rgba), "opaque.png").unwrap();
    assert_eq!(d.channels, 3);
    assert_eq!(d.pixels, rgb.to_rgb8().into_raw());
    // Gray + alpha with one transparent pixel names where.
    let mut la = image::GrayAlphaImage::from_pixel(4, 4, image::LumaA([9, 255]));
    la.put_pixel(2, 1, image::LumaA([9, 17]));
    let e = decode(&png_bytes(&la.into()), "la.png")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("la.png") && e.contains("alpha 17 at x 2, y 1"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Case 2: a JPEG cut to half its length is named as corrupt; no output.
#[test]
fn a_truncated_jpeg_stops_the_dataset_tool_with_no_output() {
    let dir = tmpdir("jpeg");
    let src = dir.join("jpegs");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..8 {
        noisy(i)
            .save_with_format(src.join(format!("{i}.jpg")), image::ImageFormat::Jpeg)
            .unwrap();
    }
    let cut = src.join("5.jpg");
    let bytes = std::fs::read(&cut).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    // The lenient decoder would have filled the rest with gray.
    assert!(image::load_from_memory(&bytes[..bytes.len() / 2]).is_ok());
    for dest in ["out.zip", "outdir"] {
        let o = bin(&["dataset", "--source", "jpegs", "--dest", dest], &dir);
        assert_refused(&o, &["5.jpg", "corrupt or truncated"], dest);
        assert!(!dir.join(dest).exists(), "{dest} written");
    }
    // Nothing else left beside them (no temporaries).
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("jpegs")]);
    // The intact files decode.
    decode(&bytes, "whole.jpg").unwrap();
    // --skip-bad: the other 7 are written, the skipped one counted.
    let o = bin(
        &[
            "dataset",
            "--source",
            "jpegs",
            "--dest",
            "out.zip",
            "--skip-bad",
        ],
        &dir,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("wrote 7 images") && out.contains("skipped 1 unreadable"),
        "{out}"
    );
    assert!(stderr(&o).contains("5.jpg"), "{}", stderr(&o));
    assert_eq!(ImageFolder::open(&dir.join("out.zip")).unwrap().len(), 7);
    std::fs::remove_dir_all(&dir).ok();
}

/// Files left out on purpose are counted and reported: macOS metadata
/// (named like images) and images of formats not read here.
#[test]
fn files_left_out_are_reported() {
    let dir = tmpdir("leftout");
    let src = dir.join("mixed");
    std::fs::create_dir_all(src.join("__MACOSX")).unwrap();
    for i in 0..3 {
        std::fs::write(src.join(format!("{i}.png")), png_bytes(&noisy(i))).unwrap();
    }
    std::fs::write(src.join("._0.png"), b"\x00\x05\x16\x07 AppleDouble").unwrap();
    std::fs::write(src.join("__MACOSX").join("1.png"), b"junk").unwrap();
    std::fs::write(src.join("3.webp"), b"RIFF....WEBP").unwrap();
    std::fs::write(src.join("notes.txt"), b"not data").unwrap();
    assert_eq!(ImageFolder::open(&src).unwrap().len(), 3);
    let o = bin(&["dataset", "--source", "mixed", "--dest", "out"], &dir);
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains("left out 1 image file(s)")
            && err.contains("3.webp")
            && err.contains("left out 2 macOS metadata"),
        "{err}"
    );
    assert!(!err.contains("notes.txt"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Case 3: one truncated PNG among 256 stops `train` when the dataset is
/// opened, before any step or file of the run; `--skip-bad` skips and
/// counts it.
#[test]
fn a_truncated_png_is_found_when_the_dataset_opens() {
    let dir = tmpdir("png256");
    let src = dir.join("pngs");
    std::fs::create_dir_all(&src).unwrap();
    for i in 0..256 {
        std::fs::write(src.join(format!("{i}.png")), png_bytes(&noisy(i))).unwrap();
    }
    let bad = src.join("200.png");
    let bytes = std::fs::read(&bad).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() - 200]).unwrap();
    let base = [
        "train",
        "--data",
        "pngs",
        "--device",
        "cpu",
        "--kimg",
        "0.008",
        "--snap-kimg",
        "0",
        "--grid",
        "1",
        "--quiet",
    ];
    let o = bin(&base, &dir);
    assert_refused(&o, &["200.png", "--skip-bad"], "train");
    assert!(!dir.join("training-runs").exists());

    let o = bin(&[&base[..], &["--skip-bad"]].concat(), &dir);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("skipped 1 of 256 images") && stderr(&o).contains("200.png"),
        "{}",
        stderr(&o)
    );
    let run = dir
        .join("training-runs")
        .read_dir()
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let opts: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("training_options.json")).unwrap()).unwrap();
    assert_eq!(opts["dataset_images"], 255);
    assert_eq!(opts["dataset_skipped"], 1);

    // A PNG missing only its IEND chunk is truncated too.
    let whole = png_bytes(&noisy(0));
    let e = decode(&whole[..whole.len() - 12], "iend.png")
        .unwrap_err()
        .to_string();
    assert!(e.contains("iend.png") && e.contains("truncated"), "{e}");
    // Not an image at all: unsupported, by content, not by name.
    let e = decode(b"GIF89a....", "x.png").unwrap_err().to_string();
    assert!(e.contains("x.png") && e.contains("unsupported"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

/// Case 4: zip entries named with backslashes match `dataset.json`'s
/// `a/0.png`, as the official loader normalises them.
#[test]
fn zip_entry_names_with_backslashes_match_the_labels() {
    let dir = tmpdir("zipslash");
    let zpath = dir.join("data.zip");
    let mut zw = zip::ZipWriter::new(std::fs::File::create(&zpath).unwrap());
    let opts = zip::write::SimpleFileOptions::default();
    let mut labels = Vec::new();
    for i in 0..4u32 {
        zw.start_file(format!("a\\{i}.png"), opts).unwrap();
        zw.write_all(&png_bytes(&noisy(i))).unwrap();
        labels.push(serde_json::json!([format!("a/{i}.png"), i % 2]));
    }
    zw.start_file("dataset.json", opts).unwrap();
    zw.write_all(
        serde_json::json!({ "labels": labels })
            .to_string()
            .as_bytes(),
    )
    .unwrap();
    zw.finish().unwrap();
    // The archive keeps the Windows names (the case to handle).
    let raw = zip::ZipArchive::new(std::fs::File::open(&zpath).unwrap()).unwrap();
    assert!(raw.file_names().any(|n| n == "a\\0.png"));
    let ds = ImageFolder::open(&zpath).unwrap();
    assert_eq!(ds.len(), 4);
    assert_eq!(ds.label_dim(), 2);
    assert_eq!(ds.label(3).unwrap(), vec![0.0, 1.0]);
    assert!(ds.file_name(0).ends_with("a/0.png"), "{}", ds.file_name(0));
    let loader = Loader::new(Box::new(ds), false, 0).unwrap();
    let x = loader.images(&[1], &[false], Device::Cpu).unwrap();
    assert_eq!(x.dims(), &[1, 3, 32, 32]);
    std::fs::remove_dir_all(&dir).ok();
}

/// Case 5: a resume mismatch names both sides and blames only what was typed.
#[test]
fn resume_mismatch_names_both_sides() {
    let dir = tmpdir("resume");
    for (name, res, gray) in [("gray32", 32u32, true), ("rgb64", 64, false)] {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        for i in 0..8 {
            let img = noisy(i).resize_exact(res, res, image::imageops::FilterType::Nearest);
            let img = if gray { img.to_luma8().into() } else { img };
            std::fs::write(d.join(format!("{i}.png")), png_bytes(&img)).unwrap();
        }
    }
    init_tiny(&dir, 32, "snap.safetensors");
    let resume = |data: &str| {
        bin(
            &[
                "train",
                "--data",
                data,
                "--resume",
                "snap.safetensors",
                "--device",
                "cpu",
            ],
            &dir,
        )
    };
    let o = resume("gray32");
    assert_refused(
        &o,
        &[
            "snapshot's networks are 32×32 with 3 channels",
            "the data (--data gray32) is 32×32 with 1",
        ],
        "gray data",
    );
    let o = resume("rgb64");
    assert_refused(
        &o,
        &["networks are 32×32 with 3", "is 64×64 with 3"],
        "64 px data",
    );
    assert!(!stderr(&o).contains("--resolution"), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).ok();
}

/// Cases 6 and 7: non-finite floats and huge ranges are refused naming the
/// flag, before the network is loaded or anything is allocated.
#[test]
fn non_finite_floats_and_huge_ranges_are_refused() {
    let dir = tmpdir("floats");
    init_tiny(&dir, 16, "w.safetensors");
    for cmd in ["generate", "style-mix", "metric"] {
        for v in ["inf", "nan", "1e30", "-inf"] {
            let mut args = vec![cmd, "--network", "w.safetensors", "--device", "cpu"];
            args.extend(match cmd {
                "generate" => ["--outdir", "g"],
                "style-mix" => ["--out", "m.png"],
                _ => ["--data", "synthetic:8"],
            });
            let t = format!("--trunc={v}");
            args.push(&t);
            assert_refused(&bin(&args, &dir), &["--trunc"], &format!("{cmd} {t}"));
        }
    }
    assert!(!dir.join("g").exists() && !dir.join("m.png").exists());
    for (cmd, flag, v) in [
        ("generate", "--seeds", "0-18446744073709551615"),
        ("generate", "--seeds", "0-4294967295"),
        ("generate", "--seeds", "5-2"),
        ("style-mix", "--styles", "0-18446744073709551615"),
        ("style-mix", "--styles", "0-99"),
        ("style-mix", "--rows", "0-4294967295"),
    ] {
        let mut args = vec![cmd, "--network", "w.safetensors", "--device", "cpu"];
        args.extend(if cmd == "generate" {
            ["--outdir", "g"]
        } else {
            ["--out", "m.png"]
        });
        args.extend([flag, v]);
        assert_refused(&bin(&args, &dir), &[flag], &format!("{cmd} {flag} {v}"));
    }
    let o = bin(
        &[
            "generate",
            "--network",
            "w.safetensors",
            "--seeds",
            "5-2",
            "--outdir",
            "g",
        ],
        &dir,
    );
    assert!(stderr(&o).contains("reversed"), "{}", stderr(&o));
    std::fs::remove_dir_all(&dir).ok();
}

/// The range parser itself: counts before it lists.
#[test]
fn range_lists_are_checked_before_they_are_expanded() {
    let r = RangeList::parse("0,5,10-12", "--seeds", 10).unwrap();
    assert_eq!(r.values(), vec![0, 5, 10, 11, 12]);
    assert_eq!((r.count(), r.max()), (5, 12));
    for bad in [
        "",
        ",",
        "a",
        "1-",
        "-1",
        "3-1",
        "0-18446744073709551615",
        "0-10",
    ] {
        assert!(RangeList::parse(bad, "--seeds", 10).is_err(), "{bad}");
    }
    let e = RangeList::parse("5-2", "--seeds", 10)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("--seeds") && e.contains("reversed") && e.contains("2-5"),
        "{e}"
    );
}

/// Runs `args` with the file-size limit at `kib` KiB (SIGXFSZ ignored, so
/// a write past it fails with EFBIG as on a full disk).
fn bin_with_file_limit(args: &[&str], dir: &Path, kib: u32) -> Output {
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -f {kib}; trap '' XFSZ; exec '{}' {}",
            env!("CARGO_BIN_EXE_stylegan2"),
            quoted.join(" ")
        ))
        .current_dir(dir)
        .output()
        .unwrap()
}

/// All files under `dir`, recursively, relative.
fn files_under(dir: &Path) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let len = p.metadata().unwrap().len();
                out.push((p.strip_prefix(dir).unwrap().display().to_string(), len));
            }
        }
    }
    out
}

/// Case 8: writes that fail (a full disk, simulated by the file-size
/// limit) exit 1 naming the file, and leave no empty, partial or
/// temporary file.
#[test]
fn failed_writes_leave_nothing_behind() {
    let dir = tmpdir("full");
    init_tiny(&dir, 32, "w.safetensors");
    // A 32×32 PNG of noise is a few KiB: the 1 KiB limit fails each one.
    let o = bin_with_file_limit(
        &[
            "generate",
            "--network",
            "w.safetensors",
            "--seeds",
            "0-3",
            "--noise-mode",
            "random",
            "--device",
            "cpu",
            "--outdir",
            "gen",
        ],
        &dir,
        1,
    );
    assert_refused(&o, &["seed0000.png"], "generate on a full disk");
    assert!(
        o.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    assert_eq!(files_under(&dir.join("gen")), vec![]);

    // Training: the grids fit, the snapshot (MBs) does not.
    let o = bin_with_file_limit(
        &[
            "train",
            "--data",
            "synthetic:8",
            "--device",
            "cpu",
            "--batch",
            "8",
            "--kimg",
            "0.008",
            "--grid",
            "1",
            "--metrics",
            "none",
            "--quiet",
            "--outdir",
            "runs",
        ],
        &dir,
        64,
    );
    assert_refused(&o, &["network-snapshot-00000008.safetensors"], "train");
    let left = files_under(&dir.join("runs"));
    assert!(
        left.iter()
            .all(|(n, len)| *len > 0 && !n.contains(".tmp") && !n.contains("snapshot")),
        "{left:?}"
    );

    // The dataset tool: 200 small PNGs fit under 4 KiB each, their
    // dataset.json (about 6 KiB) and a zip of them do not. What was
    // written goes, the folder or the archive's temporary included.
    for dest in ["exported", "exported.zip"] {
        let o = bin_with_file_limit(
            &["dataset", "--source", "synthetic:200", "--dest", dest],
            &dir,
            4,
        );
        assert!(!o.status.success(), "dataset into {dest} on a full disk");
        assert!(!dir.join(dest).exists(), "{dest} left behind");
        let left: Vec<_> = files_under(&dir)
            .into_iter()
            .filter(|(n, _)| n.contains("exported"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The writer replaces a file whole, keeps the usual permissions, removes
/// its temporary when the content fails, and appends without losing lines.
#[test]
fn the_checked_writer_commits_whole_files_only() {
    let dir = tmpdir("fsio");
    let p = dir.join("sub").join("a.txt");
    fsio::write(&p, b"one").unwrap();
    fsio::write(&p, b"two").unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"two");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = p.metadata().unwrap().permissions().mode() & 0o777;
        let plain = dir.join("plain");
        std::fs::write(&plain, b"").unwrap();
        assert_eq!(mode, plain.metadata().unwrap().permissions().mode() & 0o777);
        std::fs::remove_file(plain).unwrap();
    }
    let e = fsio::write_with(&p, |f| {
        f.write_all(b"partial")?;
        Err(std::io::Error::other("the source ran dry"))
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("a.txt") && e.contains("ran dry"), "{e}");
    assert_eq!(std::fs::read(&p).unwrap(), b"two");
    fsio::append(&p, b"\nthree").unwrap();
    assert_eq!(std::fs::read(&p).unwrap(), b"two\nthree");
    assert_eq!(files_under(&dir), vec![("sub/a.txt".into(), 9)]);
    // A path under a file cannot be written, and says which.
    let e = fsio::write(&p.join("x"), b"").unwrap_err().to_string();
    assert!(e.contains("a.txt"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

/// A folder of non-square images, or of two sizes, is refused naming both
/// the file and what makes a usable dataset (`stylegan2 dataset`).
#[test]
fn non_square_and_mixed_size_folders_say_how_to_fix_them() {
    let dir = tmpdir("shapes");
    for (name, w, h) in [("sq", 16, 16), ("wide", 32, 16), ("big", 32, 32)] {
        let sub = dir.join(name);
        std::fs::create_dir_all(&sub).unwrap();
        for i in 0..2u8 {
            image::RgbImage::from_pixel(16, 16, image::Rgb([i * 90, 20, 200]))
                .save(sub.join(format!("a{i}.png")))
                .unwrap();
        }
        if name != "sq" {
            image::RgbImage::from_pixel(w, h, image::Rgb([9, 9, 9]))
                .save(sub.join("odd.png"))
                .unwrap();
        }
    }
    let o = bin(&["train", "--data", "wide", "--device", "cpu"], &dir);
    assert_refused(
        &o,
        &[
            "odd.png",
            "32×16",
            "must be square",
            "stylegan2 dataset --transform center-crop",
        ],
        "non-square",
    );
    let o = bin(&["train", "--data", "big", "--device", "cpu"], &dir);
    assert_refused(
        &o,
        &[
            "odd.png",
            "32×32",
            "one size",
            "stylegan2 dataset --resolution",
        ],
        "mixed sizes",
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A command that fails on its device or its network file leaves no
/// output directory behind: the checks come before anything is created.
#[test]
fn failed_commands_leave_no_empty_folders() {
    let dir = tmpdir("nofolders");
    init_tiny(&dir, 16, "w.safetensors");
    let bytes = std::fs::read(dir.join("w.safetensors")).unwrap();
    std::fs::write(dir.join("trunc.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let o = bin(
        &[
            "generate",
            "--network",
            "trunc.safetensors",
            "--device",
            "cpu",
            "--outdir",
            "g5",
        ],
        &dir,
    );
    assert_refused(&o, &["trunc.safetensors"], "generate a truncated file");
    assert!(!dir.join("g5").exists(), "generate left g5/ behind");
    let o = bin(
        &[
            "style-mix",
            "--network",
            "trunc.safetensors",
            "--device",
            "cpu",
            "--out",
            "mix/m.png",
        ],
        &dir,
    );
    assert_refused(&o, &["trunc.safetensors"], "style-mix a truncated file");
    assert!(!dir.join("mix").exists(), "style-mix left mix/ behind");
    // No GPU here (the test machine's case): `--device cuda` fails; with a
    // GPU the run would train, so the check only applies without one.
    if Device::cuda(0).is_err() {
        let o = bin(&["train", "--device", "cuda", "--quiet"], &dir);
        assert_refused(&o, &["--device"], "train --device cuda without a GPU");
        assert!(
            !dir.join("training-runs").exists(),
            "train left training-runs/ behind"
        );
    }
    // A path through a file is still refused before anything runs.
    let o = bin(
        &[
            "generate",
            "--network",
            "w.safetensors",
            "--device",
            "cpu",
            "--outdir",
            "w.safetensors/g",
        ],
        &dir,
    );
    assert_refused(&o, &["--outdir", "not a directory"], "outdir under a file");
    std::fs::remove_dir_all(&dir).ok();
}
