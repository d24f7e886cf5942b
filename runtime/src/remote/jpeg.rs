//! JPEG frames in remote requests (`[policy.remote] frames = "jpeg"`).
//!
//! A 640×480 RGB frame is 900 KiB raw; over a robot's Wi-Fi that is the
//! round trip. The robot compresses each frame on its inference worker
//! ([`FrameCompressor`], the `jpeg-encoder` crate, baseline 4:2:0) and the
//! server decodes it into the observation's frame buffer
//! ([`FrameDecompressor`], the camera driver's `zune-jpeg` decoder, the one
//! that decodes MJPEG cameras). Both keep their buffers between requests;
//! the control thread never sees either.

use ganglion_camera::{CaptureFormat, CaptureGeometry, Decoder};
use ganglion_core::{CameraSpec, Frame, Observation, PixelFormat};
use jpeg_encoder::{ColorType, Encoder};

/// Compresses a robot's frames, one JPEG per camera and observation (the
/// newest, then the earlier ones a policy history reads).
pub struct FrameCompressor {
    quality: u8,
    jpeg: Vec<Vec<u8>>,
    /// YUYV frames are converted to RGB first.
    rgb: Vec<u8>,
}

impl FrameCompressor {
    /// For `cameras`, at `quality` (1..=100, clamped), for observations of
    /// `history` frames per camera (the newest and the earlier ones,
    /// `PolicySpec::history`).
    pub fn new(quality: u8, cameras: &[CameraSpec], history: usize) -> Self {
        let largest = cameras.iter().map(|c| c.width as usize * c.height as usize * 3).max().unwrap_or(0);
        let buffers = cameras.iter().map(|c| Vec::with_capacity(c.width as usize * c.height as usize / 2));
        FrameCompressor {
            quality: quality.clamp(1, 100),
            jpeg: std::iter::repeat_n(buffers, history.max(1)).flatten().collect(),
            rgb: vec![0; largest],
        }
    }

    /// Compresses `obs`'s frames and those of its earlier observations
    /// (`past`), in that order, and returns the JPEGs.
    pub fn compress_observation(&mut self, obs: &Observation) -> Result<&[Vec<u8>], String> {
        let frames = obs.frames.iter().chain(obs.past.iter().flat_map(|p| p.frames.iter()));
        let n = frames.clone().count();
        if n > self.jpeg.len() {
            return Err(format!("{n} frames for {} JPEG buffers", self.jpeg.len()));
        }
        for (i, f) in frames.enumerate() {
            self.encode(i, f)?;
        }
        Ok(&self.jpeg[..n])
    }

    /// Compresses `frames` (one per camera) and returns the JPEGs.
    pub fn compress(&mut self, frames: &[Frame]) -> Result<&[Vec<u8>], String> {
        if frames.len() > self.jpeg.len() {
            return Err(format!("{} frames for {} JPEG buffers", frames.len(), self.jpeg.len()));
        }
        for (i, f) in frames.iter().enumerate() {
            self.encode(i, f)?;
        }
        Ok(&self.jpeg[..frames.len()])
    }

    /// Frame `f` into JPEG buffer `i`.
    fn encode(&mut self, i: usize, f: &Frame) -> Result<(), String> {
        let Some(out) = self.jpeg.get_mut(i) else {
            return Err(format!("no JPEG buffer {i}"));
        };
        let (w, h) = (f.width, f.height);
        let (Ok(w16), Ok(h16)) = (u16::try_from(w), u16::try_from(h)) else {
            return Err(format!("frame {i}: {w}x{h} is beyond JPEG's 65535 pixels"));
        };
        let (data, color): (&[u8], ColorType) = match f.format {
            PixelFormat::Rgb8 => (f.data(), ColorType::Rgb),
            PixelFormat::Bgr8 => (f.data(), ColorType::Bgr),
            PixelFormat::Mono8 => (f.data(), ColorType::Luma),
            PixelFormat::Yuyv => {
                let len = w as usize * h as usize * 3;
                if self.rgb.len() < len {
                    self.rgb.resize(len, 0);
                }
                ganglion_camera::decode::yuyv_to_rgb8(f.data(), w, h, 2 * w as usize, &mut self.rgb[..len]);
                (&self.rgb[..len], ColorType::Rgb)
            }
        };
        out.clear();
        Encoder::new(&mut *out, self.quality)
            .encode(data, w16, h16, color)
            .map_err(|e| format!("frame {i}: JPEG encoding failed: {e}"))
    }
}

/// Decodes the JPEG frames of requests into the served policy's frame
/// buffers, one decoder per camera of its spec.
pub struct FrameDecompressor {
    decoders: Vec<Decoder>,
}

impl FrameDecompressor {
    /// For the served policy's `cameras`.
    pub fn new(cameras: &[CameraSpec]) -> Self {
        let decoders = cameras
            .iter()
            .map(|c| {
                let capture = CaptureGeometry {
                    format: CaptureFormat::Mjpeg,
                    width: c.width,
                    height: c.height,
                    bytes_per_line: 0,
                    max_bytes: c.width as usize * c.height as usize * 3,
                };
                Decoder::new(capture, c.width, c.height)
            })
            .collect();
        FrameDecompressor { decoders }
    }

    /// Decodes camera `i`'s JPEG into `out` (RGB8 of the camera's size; a
    /// JPEG of another size is an error and `out` must not be used).
    pub fn decode(&mut self, i: usize, jpeg: &[u8], out: &mut Frame) -> Result<(), String> {
        let d = self.decoders.get_mut(i).ok_or_else(|| format!("no camera {i}"))?;
        d.decode(jpeg, out).map_err(|e| format!("camera {i}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn camera(w: u32, h: u32, format: PixelFormat) -> CameraSpec {
        CameraSpec { name: "front".into(), width: w, height: h, format }
    }

    /// A smooth scene with edges, like a camera's (JPEG's worst case is noise).
    fn scene(w: u32, h: u32) -> Frame {
        let mut f = Frame::with_capacity(w, h);
        f.set_with(w, h, PixelFormat::Rgb8, |b| {
            for (i, px) in b.chunks_exact_mut(3).enumerate() {
                let (x, y) = ((i as u32 % w) as f32, (i as u32 / w) as f32);
                let disc = ((x - 40.0).powi(2) + (y - 30.0).powi(2)) < 400.0;
                px[0] = if disc { 220 } else { (x * 255.0 / w as f32) as u8 };
                px[1] = (y * 255.0 / h as f32) as u8;
                px[2] = if disc { 30 } else { 128 };
            }
        })
        .expect("frame");
        f
    }

    #[test]
    fn frames_survive_the_round_trip_within_jpeg_loss() {
        let (w, h) = (96, 64);
        let cams = [camera(w, h, PixelFormat::Rgb8)];
        let frame = scene(w, h);
        let mut comp = FrameCompressor::new(90, &cams, 1);
        let jpeg = comp.compress(std::slice::from_ref(&frame)).expect("compress")[0].clone();
        assert!(jpeg.len() * 4 < frame.data().len(), "{} bytes of JPEG for {} raw", jpeg.len(), frame.data().len());
        let mut dec = FrameDecompressor::new(&cams);
        let mut out = Frame::with_capacity(w, h);
        dec.decode(0, &jpeg, &mut out).expect("decode");
        assert_eq!((out.width, out.height, out.format), (w, h, PixelFormat::Rgb8));
        let mse =
            out.data().iter().zip(frame.data()).map(|(a, b)| (f64::from(*a) - f64::from(*b)).powi(2)).sum::<f64>()
                / out.data().len() as f64;
        let psnr = 10.0 * (255.0f64 * 255.0 / mse).log10();
        assert!(psnr > 32.0, "PSNR {psnr:.1} dB");
        // Garbage and a JPEG of another size are errors, not panics.
        assert!(dec.decode(0, &[0xff, 0xd8, 0, 1, 2], &mut out).is_err());
        let small = scene(32, 32);
        let mut other = FrameCompressor::new(90, &[camera(32, 32, PixelFormat::Rgb8)], 1);
        let jpeg = other.compress(std::slice::from_ref(&small)).expect("compress")[0].clone();
        assert!(dec.decode(0, &jpeg, &mut out).is_err(), "32x32 into a 96x64 camera");
        assert!(dec.decode(1, &jpeg, &mut out).is_err(), "no camera 1");
    }

    #[test]
    fn every_pixel_format_compresses() {
        for format in [PixelFormat::Rgb8, PixelFormat::Bgr8, PixelFormat::Mono8, PixelFormat::Yuyv] {
            let (w, h) = (16, 8);
            let mut f = Frame::with_capacity(w, h);
            f.set_with(w, h, format, |b| b.iter_mut().enumerate().for_each(|(i, v)| *v = (i * 7) as u8))
                .expect("frame");
            let cams = [camera(w, h, format)];
            let jpeg =
                FrameCompressor::new(80, &cams, 1).compress(std::slice::from_ref(&f)).expect("compress")[0].clone();
            let mut out = Frame::with_capacity(w, h);
            FrameDecompressor::new(&cams).decode(0, &jpeg, &mut out).expect("decodes");
            assert_eq!((out.width, out.height), (w, h), "{format:?}");
        }
    }
}
