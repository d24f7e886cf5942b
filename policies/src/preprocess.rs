//! Observation → tensors and tensors → actions, into preallocated buffers.
//!
//! Images: any size of rgb8 / bgr8 / mono8 / yuyv → crop → bilinear resize
//! (half-pixel centres, edge clamped: OpenCV `INTER_LINEAR` without
//! anti-aliasing) → channels (RGB for 3, BT.601 luma for 1) → NCHW, either
//! `(v / 255 - mean) / std` as f32 or the rounded value as u8. YUYV is
//! converted with BT.601 limited-range coefficients. Nothing here allocates
//! after construction.

use ganglion_core::{Frame, PixelFormat};

use crate::manifest::{CameraConfig, Crop, DType, TensorSpec};

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
    /// The manifest crops the declared camera size but the frame has another.
    #[error("crop is defined for {expected_w}x{expected_h} frames, got {width}x{height}")]
    CropSizeMismatch {
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

#[derive(Debug, Clone, Copy, Default)]
struct Tap {
    i0: u32,
    i1: u32,
    w: f32,
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
    // Interpolation taps for the last source geometry; recomputed in place
    // when the frame size changes.
    xs: Vec<Tap>,
    ys: Vec<Tap>,
    cached: Option<(u32, u32, u32, u32)>,
}

impl ImagePreprocessor {
    /// For `camera` feeding the image input `tensor` (`[1, C, H, W]`,
    /// validated by the manifest).
    pub fn new(camera: &CameraConfig, tensor: &TensorSpec) -> Self {
        let channels = tensor.shape.get(1).copied().unwrap_or(3);
        let out_h = tensor.shape.get(2).copied().unwrap_or(1);
        let out_w = tensor.shape.get(3).copied().unwrap_or(1);
        let mut scale = [1.0; 3];
        let mut bias = [0.0; 3];
        for c in 0..channels.min(3) {
            let (m, s) = (camera.mean.get(c).copied().unwrap_or(0.0), camera.std.get(c).copied().unwrap_or(1.0));
            scale[c] = 1.0 / (255.0 * s);
            bias[c] = -m / s;
        }
        ImagePreprocessor {
            out_w,
            out_h,
            channels,
            dtype: tensor.dtype,
            scale,
            bias,
            crop: camera.crop,
            declared: (camera.width, camera.height),
            xs: vec![Tap::default(); out_w],
            ys: vec![Tap::default(); out_h],
            cached: None,
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
        let rect = match self.crop {
            Some(_) if (w, h) != self.declared => {
                return Err(PreprocessError::CropSizeMismatch {
                    expected_w: self.declared.0,
                    expected_h: self.declared.1,
                    width: w,
                    height: h,
                })
            }
            Some(c) => (c.x, c.y, c.width, c.height),
            None => (0, 0, w, h),
        };
        if self.cached != Some(rect) {
            fill_taps(&mut self.xs, rect.0, rect.2);
            fill_taps(&mut self.ys, rect.1, rect.3);
            self.cached = Some(rect);
        }
        let plane = self.out_h * self.out_w;
        match out {
            ImageOut::F32(dst) if dst.len() == self.output_len() && self.dtype == DType::F32 => {
                let (scale, bias) = (self.scale, self.bias);
                self.each_pixel(frame, |idx, px, ch| {
                    for c in 0..ch {
                        dst[c * plane + idx] = px[c] * scale[c] + bias[c];
                    }
                });
                Ok(())
            }
            ImageOut::U8(dst) if dst.len() == self.output_len() && self.dtype == DType::U8 => {
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
    /// for every output pixel.
    fn each_pixel(&self, frame: &Frame, mut f: impl FnMut(usize, [f32; 3], usize)) {
        let data = frame.data();
        let (w, fmt) = (frame.width as usize, frame.format);
        let ch = self.channels;
        for (oy, ty) in self.ys.iter().enumerate() {
            for (ox, tx) in self.xs.iter().enumerate() {
                let p00 = sample(data, w, fmt, tx.i0, ty.i0);
                let p01 = sample(data, w, fmt, tx.i1, ty.i0);
                let p10 = sample(data, w, fmt, tx.i0, ty.i1);
                let p11 = sample(data, w, fmt, tx.i1, ty.i1);
                let mut rgb = [0.0f32; 3];
                for c in 0..3 {
                    let top = p00[c] + (p01[c] - p00[c]) * tx.w;
                    let bot = p10[c] + (p11[c] - p10[c]) * tx.w;
                    rgb[c] = top + (bot - top) * ty.w;
                }
                let px = if ch == 1 { [luma(rgb), 0.0, 0.0] } else { rgb };
                f(oy * self.out_w + ox, px, ch);
            }
        }
    }
}

/// BT.601 luma of an RGB triple.
pub fn luma(rgb: [f32; 3]) -> f32 {
    0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
}

/// Half-pixel-centre taps for resizing `len` source pixels starting at
/// `origin` onto `taps.len()` outputs.
fn fill_taps(taps: &mut [Tap], origin: u32, len: u32) {
    let n = taps.len().max(1) as f32;
    let scale = len as f32 / n;
    let max = (len - 1) as f32;
    for (o, t) in taps.iter_mut().enumerate() {
        let s = ((o as f32 + 0.5) * scale - 0.5).clamp(0.0, max);
        let i0 = s.floor();
        t.i0 = origin + i0 as u32;
        t.i1 = origin + (i0 as u32 + 1).min(len - 1);
        t.w = s - i0;
    }
}

/// Pixel (x, y) as RGB in 0..255.
fn sample(data: &[u8], w: usize, fmt: PixelFormat, x: u32, y: u32) -> [f32; 3] {
    let (x, y) = (x as usize, y as usize);
    match fmt {
        PixelFormat::Rgb8 => {
            let i = (y * w + x) * 3;
            [f32::from(data[i]), f32::from(data[i + 1]), f32::from(data[i + 2])]
        }
        PixelFormat::Bgr8 => {
            let i = (y * w + x) * 3;
            [f32::from(data[i + 2]), f32::from(data[i + 1]), f32::from(data[i])]
        }
        PixelFormat::Mono8 => {
            let v = f32::from(data[y * w + x]);
            [v, v, v]
        }
        PixelFormat::Yuyv => {
            let pair = (y * w + (x & !1)) * 2;
            let luma = f32::from(data[pair + (x & 1) * 2]);
            yuv_to_rgb(luma, f32::from(data[pair + 1]), f32::from(data[pair + 3]))
        }
    }
}

/// BT.601 limited-range YUV → RGB, clamped to 0..255.
pub fn yuv_to_rgb(y: f32, u: f32, v: f32) -> [f32; 3] {
    let c = 1.164 * (y - 16.0);
    let (d, e) = (u - 128.0, v - 128.0);
    [
        (c + 1.596 * e).clamp(0.0, 255.0),
        (c - 0.392 * d - 0.813 * e).clamp(0.0, 255.0),
        (c + 2.017 * d).clamp(0.0, 255.0),
    ]
}

/// `out[i] = (values[i] - mean[i]) / std[i]`.
pub fn normalize(values: &[f64], mean: &[f32], std: &[f32], out: &mut [f32]) {
    for (((o, v), m), s) in out.iter_mut().zip(values).zip(mean).zip(std) {
        *o = ((*v - f64::from(*m)) / f64::from(*s)) as f32;
    }
}

/// `out[i] = norm[i] · std[i] + mean[i]`.
pub fn denormalize(norm: &[f32], mean: &[f32], std: &[f32], out: &mut [f64]) {
    for (((o, v), m), s) in out.iter_mut().zip(norm).zip(mean).zip(std) {
        *o = f64::from(*v) * f64::from(*s) + f64::from(*m);
    }
}
