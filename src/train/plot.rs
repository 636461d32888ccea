//! The training curves of a run as a small PNG (`stats.png` beside
//! `stats.jsonl`): the mean G and D losses of each snapshot interval and,
//! when `--metrics swd` is on, the SWD of every pyramid level and their
//! mean, against kimg. Drawn with `plotters` into an RGB buffer; the labels
//! use the DejaVu Sans Mono font embedded from `assets/fonts` (no system
//! font is read, so it works on any machine).

use crate::error::{Error, Result};
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// The plot's file name in the run directory.
pub const FILE: &str = "stats.png";

/// Width and height of the plot in pixels.
pub const SIZE: (u32, u32) = (800, 300);

/// Loss keys of `stats.jsonl` drawn in the left panel.
const LOSSES: [&str; 2] = ["G_loss", "D_loss"];

/// Prefix of the SWD keys (`SWDx1e3_32`, …, `SWDx1e3_avg`), right panel.
const SWD_PREFIX: &str = "SWDx1e3_";

/// One named curve: `(kimg, value)` points in file order.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

/// The curves of a `stats.jsonl` text: `(losses, swd)`, each series in the
/// order its key first appears (SWD levels by resolution, then `avg`).
/// Non-finite values are left out. A line that is not a JSON object with a
/// numeric `kimg` is an error naming its line number.
pub fn read_series(jsonl: &str) -> Result<(Vec<Series>, Vec<Series>)> {
    let mut losses: Vec<Series> = LOSSES
        .iter()
        .map(|n| Series {
            name: n.to_string(),
            points: Vec::new(),
        })
        .collect();
    let mut swd: Vec<Series> = Vec::new();
    for (i, line) in jsonl.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let bad = |why: &str| Error::Io(format!("stats.jsonl line {}: {why}", i + 1));
        let v: Value = serde_json::from_str(line).map_err(|e| bad(&e.to_string()))?;
        let obj = v.as_object().ok_or_else(|| bad("not a JSON object"))?;
        let kimg = obj
            .get("kimg")
            .and_then(Value::as_f64)
            .ok_or_else(|| bad("no numeric 'kimg'"))?;
        for (key, value) in obj {
            let Some(y) = value.as_f64().filter(|y| y.is_finite()) else {
                continue;
            };
            if let Some(s) = losses.iter_mut().find(|s| s.name == *key) {
                s.points.push((kimg, y));
            } else if let Some(level) = key.strip_prefix(SWD_PREFIX) {
                match swd.iter_mut().find(|s| s.name == level) {
                    Some(s) => s.points.push((kimg, y)),
                    None => swd.push(Series {
                        name: level.to_string(),
                        points: vec![(kimg, y)],
                    }),
                }
            }
        }
    }
    losses.retain(|s| !s.points.is_empty());
    // Levels by resolution (numeric), the mean last.
    swd.sort_by_key(|s| s.name.parse::<u64>().unwrap_or(u64::MAX));
    Ok((losses, swd))
}

fn font() -> Result<()> {
    static FONT: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    let ok = *FONT.get_or_init(|| {
        register_font(
            "sans-serif",
            FontStyle::Normal,
            include_bytes!("../../assets/fonts/DejaVuSansMono.ttf"),
        )
        .is_ok()
    });
    if ok {
        Ok(())
    } else {
        Err(Error::Internal(
            "the embedded font assets/fonts/DejaVuSansMono.ttf does not parse".into(),
        ))
    }
}

fn draw_err<E: std::fmt::Debug>(e: E) -> Error {
    Error::Internal(format!("drawing the training plot: {e:?}"))
}

/// `[lo, hi]` around the values, with a margin (`top` of the span above
/// them, room for the legend); never empty.
fn range(series: &[Series], pick: impl Fn(&(f64, f64)) -> f64, top: f64) -> std::ops::Range<f64> {
    let vals = series.iter().flat_map(|s| s.points.iter().map(&pick));
    let (lo, hi) = vals.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !(lo.is_finite() && hi.is_finite()) {
        return 0.0..1.0;
    }
    let span = if hi > lo { hi - lo } else { 1.0 };
    (lo - 0.05 * span)..(hi + top * span)
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    series: &[Series],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 15))
        .margin(8)
        .x_label_area_size(32)
        .y_label_area_size(48)
        .build_cartesian_2d(range(series, |p| p.0, 0.05), range(series, |p| p.1, 0.4))
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("kimg")
        .label_style(("sans-serif", 11))
        .axis_desc_style(("sans-serif", 12))
        .x_labels(6)
        .y_labels(6)
        .draw()
        .map_err(draw_err)?;
    for (i, s) in series.iter().enumerate() {
        let color = if s.name == "avg" {
            BLACK.to_rgba()
        } else {
            Palette99::pick(i).to_rgba()
        };
        let width = if s.name == "avg" { 2 } else { 1 };
        chart
            .draw_series(LineSeries::new(
                s.points.iter().copied(),
                color.stroke_width(width),
            ))
            .map_err(draw_err)?
            .label(s.name.as_str())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(width))
            });
        // Markers, so a single snapshot shows too.
        chart
            .draw_series(s.points.iter().map(|&p| Circle::new(p, 2, color.filled())))
            .map_err(draw_err)?;
    }
    chart
        .configure_series_labels()
        .label_font(("sans-serif", 11))
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(draw_err)?;
    Ok(())
}

/// The plot of `stats.jsonl`'s text: the losses on the left and, when the
/// file has SWD values, `SWD ×1e3` per level on the right (else the losses
/// take the whole width). `SIZE` pixels, RGB.
pub fn render(jsonl: &str) -> Result<image::RgbImage> {
    font()?;
    let (losses, swd) = read_series(jsonl)?;
    let (w, h) = SIZE;
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(draw_err)?;
        if swd.is_empty() {
            panel(&root, "mean loss per interval", &losses)?;
        } else {
            let (left, right) = root.split_horizontally(w / 2);
            panel(&left, "mean loss per interval", &losses)?;
            panel(&right, "SWD x1e3 per level (lower is better)", &swd)?;
        }
        root.present().map_err(draw_err)?;
    }
    image::RgbImage::from_raw(w, h, buf)
        .ok_or_else(|| Error::Internal("plot buffer size mismatch".into()))
}

/// Reads `<run_dir>/stats.jsonl` and writes its plot to `<run_dir>/stats.png`;
/// returns the PNG's path. Errors name the file that could not be read or
/// written.
pub fn write(run_dir: &Path) -> Result<PathBuf> {
    let stats = run_dir.join("stats.jsonl");
    let text = std::fs::read_to_string(&stats)
        .map_err(|e| Error::Io(format!("reading {}: {e}", stats.display())))?;
    let img = render(&text).map_err(|e| match e {
        Error::Io(msg) => Error::Io(format!("{}: {msg}", stats.display())),
        e => e,
    })?;
    let path = run_dir.join(FILE);
    crate::model::cli::save_png(&image::DynamicImage::ImageRgb8(img), &path)?;
    Ok(path)
}
