//! Camera frames in buffers allocated once.

/// Pixel layouts the runtime accepts (ROS `sensor_msgs/Image` encodings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelFormat {
    /// 8-bit red, green, blue; 3 bytes a pixel.
    Rgb8,
    /// 8-bit blue, green, red; 3 bytes a pixel.
    Bgr8,
    /// 8-bit grey; 1 byte a pixel.
    Mono8,
    /// YUV 4:2:2 packed as Y0 U Y1 V; 2 bytes a pixel, even width.
    Yuyv,
}

impl PixelFormat {
    /// Bytes per pixel.
    pub const fn bytes_per_pixel(self) -> usize {
        match self {
            PixelFormat::Rgb8 | PixelFormat::Bgr8 => 3,
            PixelFormat::Mono8 => 1,
            PixelFormat::Yuyv => 2,
        }
    }

    /// The ROS encoding string (`sensor_msgs/image_encodings`).
    pub const fn ros_encoding(self) -> &'static str {
        match self {
            PixelFormat::Rgb8 => "rgb8",
            PixelFormat::Bgr8 => "bgr8",
            PixelFormat::Mono8 => "mono8",
            PixelFormat::Yuyv => "yuv422_yuy2",
        }
    }

    /// Parses a ROS encoding string; `yuyv` and `yuv422_yuy2` both name YUYV.
    pub fn from_ros_encoding(s: &str) -> Option<Self> {
        match s {
            "rgb8" => Some(PixelFormat::Rgb8),
            "bgr8" => Some(PixelFormat::Bgr8),
            "mono8" => Some(PixelFormat::Mono8),
            "yuv422_yuy2" | "yuyv" => Some(PixelFormat::Yuyv),
            _ => None,
        }
    }
}

/// Why a frame could not be stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The pixels do not fit the buffer allocated at start-up.
    #[error("frame of {needed} bytes exceeds the {capacity}-byte buffer allocated for this camera")]
    TooLarge {
        /// Bytes the frame needs.
        needed: usize,
        /// Bytes the buffer holds.
        capacity: usize,
    },
    /// Width × height × bytes-per-pixel does not match the data length, or
    /// the width is odd for YUYV.
    #[error("frame geometry {width}x{height} does not match its {len} data bytes")]
    BadGeometry {
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// Data length.
        len: usize,
    },
}

/// One camera image, tightly packed (no row padding), row-major.
///
/// The buffer is allocated once with the largest accepted size; storing a
/// frame copies into it and never reallocates. Cloning keeps the capacity,
/// so every buffer of a latest-value slot is allocated up front.
#[derive(Debug, PartialEq)]
pub struct Frame {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Pixel layout.
    pub format: PixelFormat,
    data: Vec<u8>,
    capacity: usize,
}

impl Clone for Frame {
    fn clone(&self) -> Self {
        // `Vec::clone` would allocate only `len` bytes; a slot's spare
        // buffers must hold the largest frame without reallocating later.
        let mut data = Vec::with_capacity(self.capacity);
        data.extend_from_slice(&self.data);
        Frame { width: self.width, height: self.height, format: self.format, data, capacity: self.capacity }
    }
}

impl Frame {
    /// An empty frame able to hold `max_width × max_height` pixels of the
    /// widest format (3 bytes a pixel).
    pub fn with_capacity(max_width: u32, max_height: u32) -> Self {
        let capacity = max_width as usize * max_height as usize * 3;
        Frame { width: 0, height: 0, format: PixelFormat::Rgb8, data: Vec::with_capacity(capacity), capacity }
    }

    /// The pixel bytes.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// Bytes this frame can hold without reallocating.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Copies `pixels` in; fails without touching the frame when they do not
    /// fit or do not match the geometry.
    pub fn set(&mut self, width: u32, height: u32, format: PixelFormat, pixels: &[u8]) -> Result<(), FrameError> {
        let needed = width as usize * height as usize * format.bytes_per_pixel();
        if pixels.len() != needed {
            return Err(FrameError::BadGeometry { width, height, len: pixels.len() });
        }
        self.set_with(width, height, format, |buf| buf.copy_from_slice(pixels))
    }

    /// Resizes the frame to `width × height` of `format` (within capacity)
    /// and lets `fill` write the pixels in place, e.g. a decoder or renderer.
    pub fn set_with(
        &mut self,
        width: u32,
        height: u32,
        format: PixelFormat,
        fill: impl FnOnce(&mut [u8]),
    ) -> Result<(), FrameError> {
        let needed = width as usize * height as usize * format.bytes_per_pixel();
        if needed > self.capacity {
            return Err(FrameError::TooLarge { needed, capacity: self.capacity });
        }
        if format == PixelFormat::Yuyv && width % 2 != 0 {
            return Err(FrameError::BadGeometry { width, height, len: needed });
        }
        // Within capacity: resize never reallocates.
        self.data.resize(needed, 0);
        self.width = width;
        self.height = height;
        self.format = format;
        fill(&mut self.data);
        Ok(())
    }

    /// Whether the frame has pixels.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_copies_in_place_and_refuses_oversize() {
        let mut f = Frame::with_capacity(4, 4);
        let ptr = f.data.as_ptr();
        f.set(2, 2, PixelFormat::Rgb8, &[7; 12]).expect("fits");
        assert_eq!(f.data(), &[7; 12]);
        assert_eq!(f.data.as_ptr(), ptr, "no reallocation");
        assert_eq!(f.set(8, 8, PixelFormat::Rgb8, &[0; 192]), Err(FrameError::TooLarge { needed: 192, capacity: 48 }));
        assert!(matches!(f.set(2, 2, PixelFormat::Rgb8, &[0; 11]), Err(FrameError::BadGeometry { .. })));
        assert!(matches!(f.set(3, 2, PixelFormat::Yuyv, &[0; 12]), Err(FrameError::BadGeometry { .. })));
    }

    #[test]
    fn clone_keeps_capacity() {
        let f = Frame::with_capacity(8, 8);
        let mut g = f.clone();
        assert!(g.data.capacity() >= 192);
        let ptr = g.data.as_ptr();
        g.set(8, 8, PixelFormat::Rgb8, &[1; 192]).expect("fits");
        assert_eq!(g.data.as_ptr(), ptr, "no reallocation after clone");
    }
}
