//! The training plot (`stats.png`): the curves read from `stats.jsonl`,
//! a PNG that decodes at the documented size with curves in both panels,
//! and errors that name the bad file and line.

use std::path::PathBuf;
use stylegan2::train::plot::{self, read_series, render, Series};
use stylegan2::Error;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("sg2_plot_{name}_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Three snapshots as `Trainer::run` writes them (other keys included).
const STATS: &str = r#"{"kimg":1.0,"step":125,"G_loss":0.93,"D_loss":1.27,"r1_penalty":0.01,"SWDx1e3_16":102.2,"SWDx1e3_32":259.0,"SWDx1e3_avg":180.6,"sec_per_kimg":86.7}
{"kimg":2.0,"step":250,"G_loss":0.88,"D_loss":1.32,"SWDx1e3_16":60.5,"SWDx1e3_32":268.6,"SWDx1e3_avg":164.5,"sec_per_kimg":105.1}

{"kimg":3.0,"step":375,"G_loss":0.84,"D_loss":1.31,"SWDx1e3_16":67.2,"SWDx1e3_32":265.4,"SWDx1e3_avg":166.3,"sec_per_kimg":95.8}
"#;

fn names(s: &[Series]) -> Vec<&str> {
    s.iter().map(|s| s.name.as_str()).collect()
}

#[test]
fn the_series_are_the_losses_and_the_swd_levels() {
    let (losses, swd) = read_series(STATS).unwrap();
    assert_eq!(names(&losses), ["G_loss", "D_loss"]);
    assert_eq!(names(&swd), ["16", "32", "avg"]);
    assert_eq!(
        losses[1].points,
        vec![(1.0, 1.27), (2.0, 1.32), (3.0, 1.31)]
    );
    assert_eq!(swd[2].points[1], (2.0, 164.5));
    // No metrics: no SWD series; a non-finite value is left out.
    let (losses, swd) = read_series("{\"kimg\":1,\"G_loss\":1.0,\"D_loss\":null}\n").unwrap();
    assert_eq!((names(&losses), swd.len()), (vec!["G_loss"], 0));
}

/// Fraction of pixels in columns `x0..x1` that are neither white nor gray
/// (curves are drawn in colour; text, axes and grid are gray or black).
fn coloured(img: &image::RgbImage, x0: u32, x1: u32) -> f64 {
    let mut n = 0;
    for y in 0..img.height() {
        for x in x0..x1 {
            let [r, g, b] = img.get_pixel(x, y).0;
            let spread = r.max(g).max(b) - r.min(g).min(b);
            n += usize::from(spread > 60);
        }
    }
    n as f64 / ((x1 - x0) * img.height()) as f64
}

#[test]
fn the_plot_has_curves_in_both_panels() {
    let img = render(STATS).unwrap();
    assert_eq!(img.dimensions(), plot::SIZE);
    let w = img.width();
    let (left, right) = (coloured(&img, 0, w / 2), coloured(&img, w / 2, w));
    // A curve of a few hundred pixels, 1–2 px wide, in a 400×300 panel:
    // ≥ 0.2% of its pixels; a blank or all-text panel has none.
    assert!(
        left > 0.002 && right > 0.002,
        "coloured fractions {left}, {right}"
    );
    // Text was drawn (dark pixels beyond the axes): the font loaded.
    let dark = img.pixels().filter(|p| p.0.iter().all(|&c| c < 80)).count();
    assert!(dark > 500, "{dark} dark pixels");
}

#[test]
fn write_makes_a_png_that_decodes_and_names_bad_input() {
    let dir = tmpdir("write");
    std::fs::write(dir.join("stats.jsonl"), STATS).unwrap();
    let path = plot::write(&dir).unwrap();
    assert_eq!(path, dir.join(plot::FILE));
    let back = image::open(&path).unwrap().to_rgb8();
    assert_eq!(back, render(STATS).unwrap());

    std::fs::write(dir.join("stats.jsonl"), "{\"kimg\":1}\n[1,2]\n").unwrap();
    let err = plot::write(&dir).unwrap_err();
    assert!(
        matches!(&err, Error::Io(m) if m.contains("stats.jsonl") && m.contains("line 2")),
        "{err}"
    );
    std::fs::remove_file(dir.join("stats.jsonl")).unwrap();
    let err = plot::write(&dir).unwrap_err().to_string();
    assert!(
        err.contains("reading") && err.contains("stats.jsonl"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
