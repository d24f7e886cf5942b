//! Observation → tensors and tensors → actions, into preallocated buffers.
//!
//! Images: any size of rgb8 / bgr8 / mono8 / yuyv → crop → bilinear resize
//! (half-pixel centres, edge clamped: OpenCV `INTER_LINEAR` without
//! anti-aliasing; or anti-aliased with `[[cameras]] antialias`), stretched to the input or letterboxed into it
//! ([`Letterbox`]: LeRobot's resize-with-pad, black padding) → channels (RGB for 3, BT.601 luma for 1) → NCHW, either
//! `(v / 255 - mean) / std` as f32 or the rounded value as u8. YUYV is
//! converted with BT.601 limited-range coefficients. The sampling itself is
//! `ganglion_core::image` (the camera driver resizes with the same code).
//! Nothing here allocates after construction.

pub use ganglion_core::image::yuv_to_rgb;
use ganglion_core::image::Resampler;
use ganglion_core::{Frame, PixelFormat};

use crate::manifest::{CameraConfig, Crop, DType, FeatureStats, JointUnit, Letterbox, NormMode, TensorSpec};

/// Why a frame could not be preprocessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PreprocessError {
    /// The frame has no pixels.
    #[error("empty frame")]
    EmptyFrame,
    /// The data length does not match width × height × bytes per pixel.
    #[error("frame {width}x{height} has {len} bytes, inconsistent with its pixel format")]
    BadGeometry {
        /// Frame width.
        width: u32,
        /// Frame height.
        height: u32,
        /// Data length.
        len: usize,
    },
    /// The manifest crops or letterboxes the declared camera size but the
    /// frame has another.
    #[error("the camera's crop / letterbox / antialiasing is defined for {expected_w}x{expected_h} frames, got {width}x{height}")]
    SizeMismatch {
        /// Declared width.
        expected_w: u32,
        /// Declared height.
        expected_h: u32,
        /// Frame width.
        width: u32,
        /// Frame height.
        height: u32,
    },
    /// The destination buffer does not have the tensor's size or type.
    #[error("destination tensor has the wrong size or type")]
    BadDestination,
}

/// Destination of an image tensor.
pub enum ImageOut<'a> {
    /// Normalized floats.
    F32(&'a mut [f32]),
    /// Raw bytes (the graph normalizes).
    U8(&'a mut [u8]),
}

/// Turns frames of one camera into one NCHW tensor.
#[derive(Debug, Clone)]
pub struct ImagePreprocessor {
    out_w: usize,
    out_h: usize,
    channels: usize,
    dtype: DType,
    scale: [f32; 3],
    bias: [f32; 3],
    crop: Option<Crop>,
    declared: (u32, u32),
    /// Letterboxed: where the resized frame lands, `(x, y, width, height)`
    /// in the output (from the declared size, so frames must have it).
    inner: Option<(usize, usize, usize, usize)>,
    /// Anti-aliased taps are sized for the declared frame, so frames must
    /// have it.
    antialias: bool,
    // Interpolation taps for the last source rectangle; recomputed in place
    // when the frame size changes.
    resampler: Resampler,
}

/// The rectangle a `src_w × src_h` frame occupies when letterboxed into
/// `out_w × out_h`, as openpi / LeRobot compute it (f64 ratio, truncated
/// sizes).
pub fn letterbox_rect(
    src_w: u32,
    src_h: u32,
    out_w: usize,
    out_h: usize,
    mode: Letterbox,
) -> (usize, usize, usize, usize) {
    let ratio = (f64::from(src_w) / out_w as f64).max(f64::from(src_h) / out_h as f64);
    let w = ((f64::from(src_w) / ratio) as usize).clamp(1, out_w.max(1));
    let h = ((f64::from(src_h) / ratio) as usize).clamp(1, out_h.max(1));
    let (pad_w, pad_h) = (out_w.saturating_sub(w), out_h.saturating_sub(h));
    match mode {
        Letterbox::Centered => (pad_w / 2, pad_h / 2, w, h),
        Letterbox::BottomRight => (pad_w, pad_h, w, h),
    }
}

impl ImagePreprocessor {
    /// For `camera` feeding the image input `tensor` (`[1, C, H, W]`, or
    /// `[1, k, C, H, W]` with a history of `k` whose slots are filled one
    /// at a time; validated by the manifest).
    pub fn new(camera: &CameraConfig, tensor: &TensorSpec) -> Self {
        let dims = &tensor.shape[tensor.shape.len().saturating_sub(3)..];
        let dim = |i: usize, default: usize| dims.get(i).copied().unwrap_or(default);
        let (channels, out_h, out_w) = (dim(0, 3), dim(1, 1), dim(2, 1));
        let mut scale = [1.0; 3];
        let mut bias = [0.0; 3];
        for c in 0..channels.min(3) {
            let (m, s) = (camera.mean.get(c).copied().unwrap_or(0.0), camera.std.get(c).copied().unwrap_or(1.0));
            scale[c] = 1.0 / (255.0 * s);
            bias[c] = -m / s;
        }
        let (src_w, src_h) = camera.crop.map_or((camera.width, camera.height), |c| (c.width, c.height));
        let inner = camera.letterbox.map(|mode| letterbox_rect(src_w, src_h, out_w, out_h, mode));
        let (rw, rh) = inner.map_or((out_w, out_h), |r| (r.2, r.3));
        ImagePreprocessor {
            out_w,
            out_h,
            channels,
            dtype: tensor.dtype.host(),
            scale,
            bias,
            crop: camera.crop,
            declared: (camera.width, camera.height),
            antialias: camera.antialias,
            inner,
            resampler: if camera.antialias {
                Resampler::antialiased(rw, rh, src_w, src_h)
            } else {
                Resampler::new(rw, rh)
            },
        }
    }

    /// Fills `out` (one image or several history slots of it) with a black
    /// frame: pixel value 0 on every channel, normalized as a pixel is (an
    /// absent camera's input).
    pub fn fill_black(&self, out: ImageOut<'_>) {
        let plane = self.out_h * self.out_w;
        match out {
            ImageOut::F32(dst) => {
                for (i, v) in dst.iter_mut().enumerate() {
                    let c = (i / plane.max(1)) % self.channels.max(1);
                    *v = self.bias.get(c).copied().unwrap_or(0.0);
                }
            }
            ImageOut::U8(dst) => dst.fill(0),
        }
    }

    /// Elements of the output tensor.
    pub fn output_len(&self) -> usize {
        self.channels * self.out_h * self.out_w
    }

    /// Preprocesses `frame` into `out`.
    pub fn run(&mut self, frame: &Frame, out: ImageOut<'_>) -> Result<(), PreprocessError> {
        let (w, h) = (frame.width, frame.height);
        if w == 0 || h == 0 || frame.data().is_empty() {
            return Err(PreprocessError::EmptyFrame);
        }
        let len = frame.data().len();
        if len != w as usize * h as usize * frame.format.bytes_per_pixel()
            || (frame.format == PixelFormat::Yuyv && w % 2 != 0)
        {
            return Err(PreprocessError::BadGeometry { width: w, height: h, len });
        }
        if (self.crop.is_some() || self.inner.is_some() || self.antialias) && (w, h) != self.declared {
            return Err(PreprocessError::SizeMismatch {
                expected_w: self.declared.0,
                expected_h: self.declared.1,
                width: w,
                height: h,
            });
        }
        let rect = match self.crop {
            Some(c) => (c.x, c.y, c.width, c.height),
            None => (0, 0, w, h),
        };
        self.resampler.set_source(rect);
        let plane = self.out_h * self.out_w;
        match out {
            ImageOut::F32(dst) if dst.len() == self.output_len() && self.dtype == DType::F32 => {
                let (scale, bias) = (self.scale, self.bias);
                if self.inner.is_some() {
                    // Black padding, normalized like any pixel of value 0.
                    for (c, chan) in dst.chunks_exact_mut(plane).enumerate() {
                        chan.fill(bias.get(c).copied().unwrap_or(0.0));
                    }
                }
                self.each_pixel(frame, |idx, px, ch| {
                    for c in 0..ch {
                        dst[c * plane + idx] = px[c] * scale[c] + bias[c];
                    }
                });
                Ok(())
            }
            ImageOut::U8(dst) if dst.len() == self.output_len() && self.dtype == DType::U8 => {
                if self.inner.is_some() {
                    dst.fill(0);
                }
                self.each_pixel(frame, |idx, px, ch| {
                    for c in 0..ch {
                        dst[c * plane + idx] = px[c].round().clamp(0.0, 255.0) as u8;
                    }
                });
                Ok(())
            }
            _ => Err(PreprocessError::BadDestination),
        }
    }

    /// Calls `f(index in plane, interpolated channel values 0..255, channels)`
    /// for every output pixel the frame covers (all of them unless
    /// letterboxed).
    fn each_pixel(&self, frame: &Frame, mut f: impl FnMut(usize, [f32; 3], usize)) {
        let ch = self.channels;
        let (x0, y0, rw, out_w) = match self.inner {
            Some((x, y, w, _)) => (x, y, w.max(1), self.out_w),
            None => (0, 0, self.out_w.max(1), self.out_w),
        };
        self.resampler.each_pixel(frame.data(), frame.width as usize, frame.format, |idx, rgb| {
            let px = if ch == 1 { [luma(rgb), 0.0, 0.0] } else { rgb };
            f((y0 + idx / rw) * out_w + x0 + idx % rw, px, ch);
        });
    }
}

/// BT.601 luma of an RGB triple.
pub fn luma(rgb: [f32; 3]) -> f32 {
    0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
}

pub use ganglion_core::JointRange;

/// Radians → a policy's unit on one joint: `value = clamp(rad)·scale +
/// offset`, the radians clamped to the calibrated range for the range
/// units (as LeRobot clamps the raw ticks before normalizing, and the
/// value to ±100 / 0..100 before unnormalizing).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UnitMap {
    scale: f64,
    offset: f64,
    clamp: Option<(f64, f64)>,
}

impl UnitMap {
    /// The identity (radians).
    pub const RAD: UnitMap = UnitMap { scale: 1.0, offset: 0.0, clamp: None };

    /// `unit` on a joint of calibrated `range` (needed by the range units
    /// only); `linear`: the values are offsets (delta or relative actions),
    /// so only the scale applies, without offset or clamp.
    pub fn new(unit: JointUnit, range: Option<JointRange>, linear: bool) -> Result<UnitMap, String> {
        let full = |span: f64, low: f64| -> Result<UnitMap, String> {
            let r = range.ok_or_else(|| {
                format!(
                    "`{}` is relative to the arm's LeRobot calibration, and none was given (the servo \
                     transport reads it)",
                    unit.as_str()
                )
            })?;
            let width = r.max_rad - r.min_rad;
            if !(width.is_finite() && width > 0.0) {
                return Err(format!("calibrated range [{}, {}] rad is empty", r.min_rad, r.max_rad));
            }
            // value = (rad - min) / width · span + low, mirrored when inverted.
            let (mut scale, mut offset) = (span / width, low - r.min_rad * span / width);
            if r.inverted {
                // range_m100_100: -x; range_0_100: 100 - x.
                let flip = if low < 0.0 { 0.0 } else { span };
                scale = -scale;
                offset = flip - offset;
            }
            Ok(if linear {
                UnitMap { scale, offset: 0.0, clamp: None }
            } else {
                UnitMap { scale, offset, clamp: Some((r.min_rad, r.max_rad)) }
            })
        };
        match unit {
            JointUnit::Rad => Ok(UnitMap::RAD),
            JointUnit::Deg => Ok(UnitMap { scale: 180.0 / std::f64::consts::PI, offset: 0.0, clamp: None }),
            JointUnit::RangeM100To100 => full(200.0, -100.0),
            JointUnit::Range0To100 => full(100.0, 0.0),
        }
    }

    /// One map per joint of `units` (see [`UnitMap::new`]; `ranges` and
    /// `linear` by joint, missing entries: none and false); empty when every
    /// joint is in radians. An error names the joint's index.
    pub fn per_joint(units: &[JointUnit], ranges: &[JointRange], linear: &[bool]) -> Result<Vec<UnitMap>, String> {
        if units.iter().all(|u| *u == JointUnit::Rad) {
            return Ok(Vec::new());
        }
        units
            .iter()
            .enumerate()
            .map(|(k, u)| {
                UnitMap::new(*u, ranges.get(k).copied(), linear.get(k).copied().unwrap_or(false))
                    .map_err(|e| format!("joint {k}: {e}"))
            })
            .collect()
    }

    /// Radians → the unit.
    pub fn from_rad(&self, rad: f64) -> f64 {
        let rad = match self.clamp {
            Some((lo, hi)) => rad.clamp(lo, hi),
            None => rad,
        };
        rad * self.scale + self.offset
    }

    /// The unit → radians.
    pub fn to_rad(&self, value: f64) -> f64 {
        let rad = (value - self.offset) / self.scale;
        match self.clamp {
            Some((lo, hi)) => rad.clamp(lo, hi),
            None => rad,
        }
    }
}

/// LeRobot's normalization of one feature (`[joints]` or `[action]`),
/// per joint, computed in f64 from the manifest's f32 statistics. Values
/// on the robot's side are radians; with [`in_units`](Self::in_units) they
/// are converted to the policy's unit (degrees for LeRobot's SO-101, its
/// range units for a gripper) before normalizing and back after
/// de-normalizing.
#[derive(Debug, Clone, PartialEq)]
pub struct Normalizer {
    mode: NormMode,
    /// Radians → policy unit, per joint (empty: radians throughout).
    units: Vec<UnitMap>,
    /// `mean`, `min` or `q01` per joint (empty for identity).
    low: Vec<f64>,
    /// `std`, or the range `max − min` / `q99 − q01` (1e-8 where it is 0,
    /// LeRobot's `eps`) per joint.
    scale: Vec<f64>,
}

/// LeRobot's `eps` for a zero range.
const EPS: f64 = 1e-8;

impl Normalizer {
    /// From validated statistics (see `Manifest::validate`).
    pub fn new(stats: FeatureStats<'_>) -> Self {
        let keys = FeatureStats::keys(stats.mode);
        let (low, scale) = match keys {
            [a, b] => {
                let low: Vec<f64> = stats.get(a).iter().map(|&v| f64::from(v)).collect();
                let scale = match stats.mode {
                    NormMode::MeanStd => stats.get(b).iter().map(|&v| f64::from(v)).collect(),
                    _ => stats
                        .get(b)
                        .iter()
                        .zip(stats.get(a))
                        .map(|(&hi, &lo)| {
                            // As LeRobot: the range in f32, a zero one replaced by eps.
                            let d = f64::from(hi - lo);
                            if d == 0.0 {
                                EPS
                            } else {
                                d
                            }
                        })
                        .collect(),
                };
                (low, scale)
            }
            _ => (Vec::new(), Vec::new()),
        };
        Normalizer { mode: stats.mode, units: Vec::new(), low, scale }
    }

    /// The same, for a policy whose joints are in `units` (one per joint;
    /// empty: radians). `ranges`: the arm's calibrated range per joint (the
    /// range units need it; empty: none given). `linear[k]`: joint `k`'s
    /// values are offsets (delta or relative actions). An error names the
    /// joint's index and why.
    pub fn in_units(mut self, units: &[JointUnit], ranges: &[JointRange], linear: &[bool]) -> Result<Self, String> {
        self.units = UnitMap::per_joint(units, ranges, linear)?;
        Ok(self)
    }

    fn unit(&self, k: usize) -> &UnitMap {
        self.units.get(k).unwrap_or(&UnitMap::RAD)
    }

    /// The mode.
    pub fn mode(&self) -> NormMode {
        self.mode
    }

    /// Normalizes `values` (robot units) into `out` (as many as both hold).
    pub fn normalize(&self, values: &[f64], out: &mut [f32]) {
        let unit = |k: usize, v: &f64| self.unit(k).from_rad(*v);
        match self.mode {
            NormMode::Identity => out.iter_mut().zip(values).enumerate().for_each(|(k, (o, v))| *o = unit(k, v) as f32),
            NormMode::MeanStd => {
                for (k, (((o, v), m), s)) in out.iter_mut().zip(values).zip(&self.low).zip(&self.scale).enumerate() {
                    *o = ((unit(k, v) - m) / s) as f32;
                }
            }
            NormMode::MinMax | NormMode::Quantiles => {
                for (k, (((o, v), lo), d)) in out.iter_mut().zip(values).zip(&self.low).zip(&self.scale).enumerate() {
                    *o = (2.0 * (unit(k, v) - lo) / d - 1.0) as f32;
                }
            }
        }
    }

    /// De-normalizes `norm` into `out` (robot units; as many as both hold).
    pub fn denormalize(&self, norm: &[f32], out: &mut [f64]) {
        match self.mode {
            NormMode::Identity => out.iter_mut().zip(norm).for_each(|(o, v)| *o = f64::from(*v)),
            NormMode::MeanStd => {
                for (((o, v), m), s) in out.iter_mut().zip(norm).zip(&self.low).zip(&self.scale) {
                    *o = f64::from(*v) * s + m;
                }
            }
            NormMode::MinMax | NormMode::Quantiles => {
                for (((o, v), lo), d) in out.iter_mut().zip(norm).zip(&self.low).zip(&self.scale) {
                    *o = (f64::from(*v) + 1.0) * d / 2.0 + lo;
                }
            }
        }
        if !self.units.is_empty() {
            for (k, o) in out.iter_mut().enumerate() {
                *o = self.unit(k).to_rad(*o);
            }
        }
    }

    /// The value that normalizes to 0 (the mean, the middle of the range),
    /// per joint: a neutral observation for warm-ups and benches.
    pub fn center(&self, n: usize) -> Vec<f64> {
        let mut out = vec![0.0; n];
        self.denormalize(&vec![0.0; n], &mut out);
        out
    }
}
