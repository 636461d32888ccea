//! A procedural dataset that needs no download: each image is one shape
//! (a disc, a lying rectangle of sides 1.5–2:1, or a ring), each kind with
//! probability 1/3, in a bright colour from its kind's third of the hue
//! circle ([`hue_range`]: discs red to yellow-green, rectangles green to
//! azure, rings blue to rose) on a fixed dark gray background
//! ([`BACKGROUND`]), centred up to ±2 % of the width ([`JITTER`]); a pure
//! function of `(seed, index)`, drawn at any resolution with 2×2
//! supersampled edges. Kept this simple so the tiny network of the demo
//! can learn it in minutes on a CPU. With labels
//! ([`Synthetic::with_labels`]) image `i` has class `i % 3` and its shape
//! is of that kind (0 disc, 1 rectangle, 2 ring): the default demo
//! (`stylegan2 train` trains conditionally on it).

use super::{check_resolution, Dataset};
use crate::error::{invalid, Result};
use rand::Rng;

/// Images in the default synthetic dataset.
pub const DEFAULT_COUNT: usize = 4096;

/// The background of every synthetic image (RGB in [0, 1]): dark gray.
pub const BACKGROUND: [f32; 3] = [0.1, 0.1, 0.1];

/// The largest offset of a shape's centre from the image centre, as a
/// fraction of the width.
pub const JITTER: f32 = 0.02;

/// The procedural dataset.
pub struct Synthetic {
    resolution: usize,
    channels: usize,
    count: usize,
    seed: u64,
    labeled: bool,
}

/// Classes of the labeled synthetic dataset (the shape kinds).
pub const CLASSES: usize = 3;

#[derive(Clone, Copy)]
enum Shape {
    Disc { cx: f32, cy: f32, r: f32 },
    Rect { x0: f32, y0: f32, x1: f32, y1: f32 },
    Ring { cx: f32, cy: f32, r: f32, w: f32 },
}

impl Shape {
    fn contains(self, x: f32, y: f32) -> bool {
        match self {
            Shape::Disc { cx, cy, r } => (x - cx).powi(2) + (y - cy).powi(2) <= r * r,
            Shape::Rect { x0, y0, x1, y1 } => (x0..=x1).contains(&x) && (y0..=y1).contains(&y),
            Shape::Ring { cx, cy, r, w } => {
                let d = ((x - cx).powi(2) + (y - cy).powi(2)).sqrt();
                (d - r).abs() <= w
            }
        }
    }
}

/// The hues of shape `kind` (0 disc, 1 rectangle, 2 ring), in degrees:
/// its third of the circle, `[120·kind, 120·(kind + 1))`.
///
/// Why a third each: with every hue for every kind, the demo's tiny G
/// collapsed each kind to one or two hues that changed from kimg to kimg,
/// and the 16 px SWD (mostly colour at that level) swung by 20–60 and
/// ended a 16 kimg run at its worst; with a third each it fell in every
/// run (the README's demo section has the runs).
pub fn hue_range(kind: usize) -> std::ops::Range<f32> {
    let k = (kind % CLASSES) as f32;
    120.0 * k..120.0 * (k + 1.0)
}

/// A saturated bright colour for shape `kind`: a hue drawn uniformly from
/// [`hue_range`], full value, saturation in [0.6, 1] (HSV to RGB).
fn bright(rng: &mut impl Rng, kind: usize) -> [f32; 3] {
    let hues = hue_range(kind);
    // One draw as before, mapped into the kind's range, so every other
    // draw of the image stays where it was. `h` is in sixths of the circle;
    // rounding can reach 360°, which is 0°.
    let u: f32 = rng.random_range(0.0..1.0);
    let h = ((hues.start + u * (hues.end - hues.start)) / 60.0).rem_euclid(6.0);
    let s: f32 = rng.random_range(0.6..1.0);
    let f = h - h.floor();
    let (p, q, t) = (1.0 - s, 1.0 - s * f, 1.0 - s * (1.0 - f));
    match h as u32 {
        0 => [1.0, t, p],
        1 => [q, 1.0, p],
        2 => [p, 1.0, t],
        3 => [p, q, 1.0],
        4 => [t, p, 1.0],
        _ => [1.0, p, q],
    }
}

impl Synthetic {
    /// `count` images of `channels` (1 or 3) × `resolution`² for `seed`.
    pub fn new(resolution: usize, channels: usize, count: usize, seed: u64) -> Result<Synthetic> {
        check_resolution(resolution, "synthetic dataset")?;
        if channels != 1 && channels != 3 {
            return invalid(
                "data",
                format!("synthetic dataset: {channels} channels (1 or 3 supported)"),
            );
        }
        if count == 0 {
            return invalid("data", "synthetic dataset: count must be ≥ 1");
        }
        Ok(Synthetic {
            resolution,
            channels,
            count,
            seed,
            labeled: false,
        })
    }

    /// The same images with a class each: image `i` is of class `i % 3`
    /// and draws only shapes of that kind.
    pub fn with_labels(self) -> Synthetic {
        Synthetic {
            labeled: true,
            ..self
        }
    }

    fn class(&self, index: usize) -> usize {
        index % CLASSES
    }

    /// Image `index` as `[3, R, R]` floats in [0, 1].
    fn render(&self, index: usize) -> Vec<f32> {
        let mut rng = crate::rng(
            self.seed
                .wrapping_mul(0x2545_F491_4F6C_DD1D)
                .wrapping_add(index as u64),
        );
        // One large bright shape on a fixed dark background: the contrast
        // and the few degrees of freedom (kind, size, colour) let a tiny
        // network draw recognisable shapes within minutes. (A random
        // background colour and ±5 % jitter left the demo's G drawing
        // blobs at 14 kimg; see the README's demo section.)
        let background = BACKGROUND;
        // Drawn even when the class decides, so the other draws (and the
        // unlabeled images) stay the same.
        let kind: usize = rng.random_range(0..3);
        let kind = if self.labeled {
            self.class(index)
        } else {
            kind
        };
        // Centred up to a small jitter: as faces in FFHQ, aligned data lets
        // a small generator spend its capacity on the shapes rather than
        // on moving them around its fixed 4×4 input.
        let (cx, cy) = (
            0.5 + rng.random_range(-JITTER..JITTER),
            0.5 + rng.random_range(-JITTER..JITTER),
        );
        let shape = match kind {
            0 => Shape::Disc {
                cx,
                cy,
                r: rng.random_range(0.22..0.3),
            },
            1 => {
                // A lying rectangle of sides 1.5–2:1: its corners, straight
                // edges and aspect tell it from a disc even at 16×16, and
                // one orientation is one mode less to learn than lying or
                // standing bars.
                let (w, h) = (rng.random_range(0.6..0.7), rng.random_range(0.34..0.4));
                Shape::Rect {
                    x0: cx - w / 2.0,
                    y0: cy - h / 2.0,
                    x1: cx + w / 2.0,
                    y1: cy + h / 2.0,
                }
            }
            // A wide hole (diameter ≥ 0.3 of the width, ≥ 4 px at 16×16)
            // tells a ring from a disc.
            _ => Shape::Ring {
                cx,
                cy,
                r: rng.random_range(0.25..0.32),
                w: rng.random_range(0.08..0.1),
            },
        };
        let shapes = [(shape, bright(&mut rng, kind))];
        let r = self.resolution;
        let mut out = vec![0f32; 3 * r * r];
        // 2×2 samples per pixel, at quarter offsets.
        const SUB: [f32; 2] = [0.25, 0.75];
        for y in 0..r {
            for x in 0..r {
                let mut acc = [0f32; 3];
                for sy in SUB {
                    for sx in SUB {
                        let (u, v) = ((x as f32 + sx) / r as f32, (y as f32 + sy) / r as f32);
                        let mut px = background;
                        for (shape, col) in &shapes {
                            if shape.contains(u, v) {
                                px = *col;
                            }
                        }
                        for ch in 0..3 {
                            acc[ch] += px[ch] / 4.0;
                        }
                    }
                }
                for (ch, a) in acc.iter().enumerate() {
                    out[(ch * r + y) * r + x] = *a;
                }
            }
        }
        out
    }
}

impl Dataset for Synthetic {
    fn name(&self) -> String {
        "synthetic".into()
    }

    fn len(&self) -> usize {
        self.count
    }

    fn resolution(&self) -> usize {
        self.resolution
    }

    fn channels(&self) -> usize {
        self.channels
    }

    fn label_dim(&self) -> usize {
        if self.labeled {
            CLASSES
        } else {
            0
        }
    }

    fn label(&self, index: usize) -> Result<Vec<f32>> {
        if !self.labeled {
            return Ok(Vec::new());
        }
        let mut v = vec![0.0; CLASSES];
        v[self.class(index)] = 1.0;
        Ok(v)
    }

    fn image(&self, index: usize) -> Result<Vec<u8>> {
        if index >= self.count {
            return invalid(
                "data",
                format!("synthetic image {index} out of range (0..{})", self.count),
            );
        }
        let rgb = self.render(index);
        let n = self.resolution * self.resolution;
        let to_u8 = |v: f32| (v * 255.0 + 0.5).clamp(0.0, 255.0) as u8;
        Ok(if self.channels == 3 {
            rgb.iter().map(|&v| to_u8(v)).collect()
        } else {
            (0..n)
                .map(|p| to_u8(0.299 * rgb[p] + 0.587 * rgb[n + p] + 0.114 * rgb[2 * n + p]))
                .collect()
        })
    }
}
