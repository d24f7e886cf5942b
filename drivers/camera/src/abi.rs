//! The slice of the V4L2 kernel ABI (`<linux/videodev2.h>`) this driver
//! uses: `#[repr(C)]` mirrors of the structs, the flags, and the ioctl
//! request numbers.
//!
//! Written by hand rather than generated (bindgen needs libclang at build
//! time). [`layout`] lists every number and every struct size and field
//! offset the driver relies on, under the C expression that yields it; the
//! crate's tests compile a C program against the installed kernel header
//! that prints the same expressions and compare (tests/camera.rs, `abi_*`).
//!
//! Targets: Linux on 64-bit architectures with the generic ioctl encoding
//! (x86_64, aarch64); other targets fail to compile this module rather
//! than issue wrong requests.

#![allow(missing_docs)] // the names are the kernel's; its header documents them

#[cfg(not(all(
    target_os = "linux",
    target_pointer_width = "64",
    any(target_arch = "x86_64", target_arch = "aarch64")
)))]
compile_error!(
    "ganglion-camera's V4L2 ABI is written for 64-bit Linux with the generic ioctl encoding (x86_64, aarch64)"
);

use std::mem::{offset_of, size_of};

// Capabilities (v4l2_capability.capabilities / device_caps).
pub const V4L2_CAP_VIDEO_CAPTURE: u32 = 0x0000_0001;
pub const V4L2_CAP_STREAMING: u32 = 0x0400_0000;
pub const V4L2_CAP_DEVICE_CAPS: u32 = 0x8000_0000;
// Capture parameters.
pub const V4L2_CAP_TIMEPERFRAME: u32 = 0x1000;

pub const V4L2_BUF_TYPE_VIDEO_CAPTURE: u32 = 1;
pub const V4L2_MEMORY_MMAP: u32 = 1;
pub const V4L2_FIELD_ANY: u32 = 0;
pub const V4L2_FIELD_NONE: u32 = 1;

pub const V4L2_FMT_FLAG_COMPRESSED: u32 = 0x0001;
pub const V4L2_FMT_FLAG_EMULATED: u32 = 0x0002;

pub const V4L2_FRMSIZE_TYPE_DISCRETE: u32 = 1;
pub const V4L2_FRMSIZE_TYPE_CONTINUOUS: u32 = 2;
pub const V4L2_FRMSIZE_TYPE_STEPWISE: u32 = 3;
pub const V4L2_FRMIVAL_TYPE_DISCRETE: u32 = 1;
pub const V4L2_FRMIVAL_TYPE_CONTINUOUS: u32 = 2;
pub const V4L2_FRMIVAL_TYPE_STEPWISE: u32 = 3;

pub const V4L2_BUF_FLAG_ERROR: u32 = 0x0000_0040;
pub const V4L2_BUF_FLAG_TIMESTAMP_MASK: u32 = 0x0000_e000;
pub const V4L2_BUF_FLAG_TIMESTAMP_UNKNOWN: u32 = 0x0000_0000;
pub const V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC: u32 = 0x0000_2000;
pub const V4L2_BUF_FLAG_TIMESTAMP_COPY: u32 = 0x0000_4000;
pub const V4L2_BUF_FLAG_TSTAMP_SRC_MASK: u32 = 0x0007_0000;
pub const V4L2_BUF_FLAG_TSTAMP_SRC_EOF: u32 = 0x0000_0000;
pub const V4L2_BUF_FLAG_TSTAMP_SRC_SOE: u32 = 0x0001_0000;

/// `v4l2_fourcc(a, b, c, d)`.
pub const fn fourcc(code: &[u8; 4]) -> u32 {
    code[0] as u32 | (code[1] as u32) << 8 | (code[2] as u32) << 16 | (code[3] as u32) << 24
}

pub const V4L2_PIX_FMT_MJPEG: u32 = fourcc(b"MJPG");
pub const V4L2_PIX_FMT_JPEG: u32 = fourcc(b"JPEG");
pub const V4L2_PIX_FMT_YUYV: u32 = fourcc(b"YUYV");

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct v4l2_capability {
    pub driver: [u8; 16],
    pub card: [u8; 32],
    pub bus_info: [u8; 32],
    pub version: u32,
    pub capabilities: u32,
    pub device_caps: u32,
    pub reserved: [u32; 3],
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct v4l2_fmtdesc {
    pub index: u32,
    pub type_: u32,
    pub flags: u32,
    pub description: [u8; 32],
    pub pixelformat: u32,
    pub mbus_code: u32,
    pub reserved: [u32; 3],
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct v4l2_frmsize_discrete {
    pub width: u32,
    pub height: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct v4l2_frmsize_stepwise {
    pub min_width: u32,
    pub max_width: u32,
    pub step_width: u32,
    pub min_height: u32,
    pub max_height: u32,
    pub step_height: u32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub union v4l2_frmsize_union {
    pub discrete: v4l2_frmsize_discrete,
    pub stepwise: v4l2_frmsize_stepwise,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_frmsizeenum {
    pub index: u32,
    pub pixel_format: u32,
    pub type_: u32,
    pub u: v4l2_frmsize_union,
    pub reserved: [u32; 2],
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct v4l2_fract {
    pub numerator: u32,
    pub denominator: u32,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct v4l2_frmival_stepwise {
    pub min: v4l2_fract,
    pub max: v4l2_fract,
    pub step: v4l2_fract,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub union v4l2_frmival_union {
    pub discrete: v4l2_fract,
    pub stepwise: v4l2_frmival_stepwise,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_frmivalenum {
    pub index: u32,
    pub pixel_format: u32,
    pub width: u32,
    pub height: u32,
    pub type_: u32,
    pub u: v4l2_frmival_union,
    pub reserved: [u32; 2],
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct v4l2_pix_format {
    pub width: u32,
    pub height: u32,
    pub pixelformat: u32,
    pub field: u32,
    pub bytesperline: u32,
    pub sizeimage: u32,
    pub colorspace: u32,
    pub priv_: u32,
    pub flags: u32,
    pub ycbcr_enc: u32,
    pub quantization: u32,
    pub xfer_func: u32,
}

/// `v4l2_format.fmt`: 200 bytes, 8-byte aligned (its `v4l2_window` member
/// holds pointers), so `fmt` sits at offset 8.
#[repr(C)]
#[derive(Clone, Copy)]
pub union v4l2_format_union {
    pub pix: v4l2_pix_format,
    pub raw_data: [u8; 200],
    _align: [u64; 25],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_format {
    pub type_: u32,
    pub fmt: v4l2_format_union,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct v4l2_captureparm {
    pub capability: u32,
    pub capturemode: u32,
    pub timeperframe: v4l2_fract,
    pub extendedmode: u32,
    pub readbuffers: u32,
    pub reserved: [u32; 4],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub union v4l2_streamparm_union {
    pub capture: v4l2_captureparm,
    pub raw_data: [u8; 200],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_streamparm {
    pub type_: u32,
    pub parm: v4l2_streamparm_union,
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct v4l2_requestbuffers {
    pub count: u32,
    pub type_: u32,
    pub memory: u32,
    pub capabilities: u32,
    pub flags: u8,
    pub reserved: [u8; 3],
}

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct v4l2_timecode {
    pub type_: u32,
    pub flags: u32,
    pub frames: u8,
    pub seconds: u8,
    pub minutes: u8,
    pub hours: u8,
    pub userbits: [u8; 4],
}

/// `struct timeval` as the 64-bit kernel ABI has it.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct timeval {
    pub tv_sec: i64,
    pub tv_usec: i64,
}

/// `v4l2_buffer.m`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union v4l2_buffer_m {
    pub offset: u32,
    pub userptr: u64,
    pub fd: i32,
}

#[repr(C)]
#[derive(Clone, Copy)]
pub struct v4l2_buffer {
    pub index: u32,
    pub type_: u32,
    pub bytesused: u32,
    pub flags: u32,
    pub field: u32,
    pub timestamp: timeval,
    pub timecode: v4l2_timecode,
    pub sequence: u32,
    pub memory: u32,
    pub m: v4l2_buffer_m,
    pub length: u32,
    pub reserved2: u32,
    pub request_fd: i32,
}

/// A zeroed struct, as the kernel expects unused fields.
pub fn zeroed<T: Copy>() -> T {
    // SAFETY: every type this module defines is plain old data (integers,
    // arrays and unions of them), for which all-zero bytes are valid.
    unsafe { std::mem::zeroed() }
}

// The generic `_IOC` encoding (include/uapi/asm-generic/ioctl.h), used by
// x86_64 and aarch64: dir << 30 | size << 16 | type << 8 | nr.
const IOC_WRITE: u64 = 1;
const IOC_READ: u64 = 2;

const fn ioc(dir: u64, nr: u64, size: usize) -> u64 {
    (dir << 30) | ((size as u64) << 16) | ((b'V' as u64) << 8) | nr
}
const fn ior<T>(nr: u64) -> u64 {
    ioc(IOC_READ, nr, size_of::<T>())
}
const fn iow<T>(nr: u64) -> u64 {
    ioc(IOC_WRITE, nr, size_of::<T>())
}
const fn iowr<T>(nr: u64) -> u64 {
    ioc(IOC_READ | IOC_WRITE, nr, size_of::<T>())
}

pub const VIDIOC_QUERYCAP: u64 = ior::<v4l2_capability>(0);
pub const VIDIOC_ENUM_FMT: u64 = iowr::<v4l2_fmtdesc>(2);
pub const VIDIOC_G_FMT: u64 = iowr::<v4l2_format>(4);
pub const VIDIOC_S_FMT: u64 = iowr::<v4l2_format>(5);
pub const VIDIOC_REQBUFS: u64 = iowr::<v4l2_requestbuffers>(8);
pub const VIDIOC_QUERYBUF: u64 = iowr::<v4l2_buffer>(9);
pub const VIDIOC_QBUF: u64 = iowr::<v4l2_buffer>(15);
pub const VIDIOC_DQBUF: u64 = iowr::<v4l2_buffer>(17);
pub const VIDIOC_STREAMON: u64 = iow::<i32>(18);
pub const VIDIOC_STREAMOFF: u64 = iow::<i32>(19);
pub const VIDIOC_G_PARM: u64 = iowr::<v4l2_streamparm>(21);
pub const VIDIOC_S_PARM: u64 = iowr::<v4l2_streamparm>(22);
pub const VIDIOC_ENUM_FRAMESIZES: u64 = iowr::<v4l2_frmsizeenum>(74);
pub const VIDIOC_ENUM_FRAMEINTERVALS: u64 = iowr::<v4l2_frmivalenum>(75);

/// Every ioctl number, flag, struct size and field offset this driver
/// relies on, as `(C expression, value)`: the tests evaluate each
/// expression in C against `<linux/videodev2.h>` and compare.
pub fn layout() -> Vec<(&'static str, u64)> {
    macro_rules! off {
        ($c:literal, $t:ty, $($f:tt)+) => {
            ($c, offset_of!($t, $($f)+) as u64)
        };
    }
    vec![
        ("VIDIOC_QUERYCAP", VIDIOC_QUERYCAP),
        ("VIDIOC_ENUM_FMT", VIDIOC_ENUM_FMT),
        ("VIDIOC_G_FMT", VIDIOC_G_FMT),
        ("VIDIOC_S_FMT", VIDIOC_S_FMT),
        ("VIDIOC_REQBUFS", VIDIOC_REQBUFS),
        ("VIDIOC_QUERYBUF", VIDIOC_QUERYBUF),
        ("VIDIOC_QBUF", VIDIOC_QBUF),
        ("VIDIOC_DQBUF", VIDIOC_DQBUF),
        ("VIDIOC_STREAMON", VIDIOC_STREAMON),
        ("VIDIOC_STREAMOFF", VIDIOC_STREAMOFF),
        ("VIDIOC_G_PARM", VIDIOC_G_PARM),
        ("VIDIOC_S_PARM", VIDIOC_S_PARM),
        ("VIDIOC_ENUM_FRAMESIZES", VIDIOC_ENUM_FRAMESIZES),
        ("VIDIOC_ENUM_FRAMEINTERVALS", VIDIOC_ENUM_FRAMEINTERVALS),
        ("V4L2_CAP_VIDEO_CAPTURE", V4L2_CAP_VIDEO_CAPTURE.into()),
        ("V4L2_CAP_STREAMING", V4L2_CAP_STREAMING.into()),
        ("V4L2_CAP_DEVICE_CAPS", V4L2_CAP_DEVICE_CAPS.into()),
        ("V4L2_CAP_TIMEPERFRAME", V4L2_CAP_TIMEPERFRAME.into()),
        ("V4L2_BUF_TYPE_VIDEO_CAPTURE", V4L2_BUF_TYPE_VIDEO_CAPTURE.into()),
        ("V4L2_MEMORY_MMAP", V4L2_MEMORY_MMAP.into()),
        ("V4L2_FIELD_ANY", V4L2_FIELD_ANY.into()),
        ("V4L2_FIELD_NONE", V4L2_FIELD_NONE.into()),
        ("V4L2_FMT_FLAG_COMPRESSED", V4L2_FMT_FLAG_COMPRESSED.into()),
        ("V4L2_FMT_FLAG_EMULATED", V4L2_FMT_FLAG_EMULATED.into()),
        ("V4L2_FRMSIZE_TYPE_DISCRETE", V4L2_FRMSIZE_TYPE_DISCRETE.into()),
        ("V4L2_FRMSIZE_TYPE_CONTINUOUS", V4L2_FRMSIZE_TYPE_CONTINUOUS.into()),
        ("V4L2_FRMSIZE_TYPE_STEPWISE", V4L2_FRMSIZE_TYPE_STEPWISE.into()),
        ("V4L2_FRMIVAL_TYPE_DISCRETE", V4L2_FRMIVAL_TYPE_DISCRETE.into()),
        ("V4L2_FRMIVAL_TYPE_CONTINUOUS", V4L2_FRMIVAL_TYPE_CONTINUOUS.into()),
        ("V4L2_FRMIVAL_TYPE_STEPWISE", V4L2_FRMIVAL_TYPE_STEPWISE.into()),
        ("V4L2_BUF_FLAG_ERROR", V4L2_BUF_FLAG_ERROR.into()),
        ("V4L2_BUF_FLAG_TIMESTAMP_MASK", V4L2_BUF_FLAG_TIMESTAMP_MASK.into()),
        ("V4L2_BUF_FLAG_TIMESTAMP_UNKNOWN", V4L2_BUF_FLAG_TIMESTAMP_UNKNOWN.into()),
        ("V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC", V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC.into()),
        ("V4L2_BUF_FLAG_TIMESTAMP_COPY", V4L2_BUF_FLAG_TIMESTAMP_COPY.into()),
        ("V4L2_BUF_FLAG_TSTAMP_SRC_MASK", V4L2_BUF_FLAG_TSTAMP_SRC_MASK.into()),
        ("V4L2_BUF_FLAG_TSTAMP_SRC_EOF", V4L2_BUF_FLAG_TSTAMP_SRC_EOF.into()),
        ("V4L2_BUF_FLAG_TSTAMP_SRC_SOE", V4L2_BUF_FLAG_TSTAMP_SRC_SOE.into()),
        ("V4L2_PIX_FMT_MJPEG", V4L2_PIX_FMT_MJPEG.into()),
        ("V4L2_PIX_FMT_JPEG", V4L2_PIX_FMT_JPEG.into()),
        ("V4L2_PIX_FMT_YUYV", V4L2_PIX_FMT_YUYV.into()),
        ("sizeof(struct v4l2_capability)", size_of::<v4l2_capability>() as u64),
        off!("offsetof(struct v4l2_capability, card)", v4l2_capability, card),
        off!("offsetof(struct v4l2_capability, bus_info)", v4l2_capability, bus_info),
        off!("offsetof(struct v4l2_capability, capabilities)", v4l2_capability, capabilities),
        off!("offsetof(struct v4l2_capability, device_caps)", v4l2_capability, device_caps),
        ("sizeof(struct v4l2_fmtdesc)", size_of::<v4l2_fmtdesc>() as u64),
        off!("offsetof(struct v4l2_fmtdesc, flags)", v4l2_fmtdesc, flags),
        off!("offsetof(struct v4l2_fmtdesc, description)", v4l2_fmtdesc, description),
        off!("offsetof(struct v4l2_fmtdesc, pixelformat)", v4l2_fmtdesc, pixelformat),
        ("sizeof(struct v4l2_frmsizeenum)", size_of::<v4l2_frmsizeenum>() as u64),
        off!("offsetof(struct v4l2_frmsizeenum, type)", v4l2_frmsizeenum, type_),
        off!("offsetof(struct v4l2_frmsizeenum, discrete)", v4l2_frmsizeenum, u),
        off!("offsetof(struct v4l2_frmsizeenum, reserved)", v4l2_frmsizeenum, reserved),
        ("sizeof(struct v4l2_frmivalenum)", size_of::<v4l2_frmivalenum>() as u64),
        off!("offsetof(struct v4l2_frmivalenum, type)", v4l2_frmivalenum, type_),
        off!("offsetof(struct v4l2_frmivalenum, discrete)", v4l2_frmivalenum, u),
        off!("offsetof(struct v4l2_frmivalenum, reserved)", v4l2_frmivalenum, reserved),
        ("sizeof(struct v4l2_frmival_stepwise)", size_of::<v4l2_frmival_stepwise>() as u64),
        ("sizeof(struct v4l2_pix_format)", size_of::<v4l2_pix_format>() as u64),
        off!("offsetof(struct v4l2_pix_format, bytesperline)", v4l2_pix_format, bytesperline),
        off!("offsetof(struct v4l2_pix_format, sizeimage)", v4l2_pix_format, sizeimage),
        off!("offsetof(struct v4l2_pix_format, quantization)", v4l2_pix_format, quantization),
        ("sizeof(struct v4l2_format)", size_of::<v4l2_format>() as u64),
        off!("offsetof(struct v4l2_format, fmt)", v4l2_format, fmt),
        ("sizeof(struct v4l2_captureparm)", size_of::<v4l2_captureparm>() as u64),
        off!("offsetof(struct v4l2_captureparm, timeperframe)", v4l2_captureparm, timeperframe),
        ("sizeof(struct v4l2_streamparm)", size_of::<v4l2_streamparm>() as u64),
        off!("offsetof(struct v4l2_streamparm, parm)", v4l2_streamparm, parm),
        ("sizeof(struct v4l2_requestbuffers)", size_of::<v4l2_requestbuffers>() as u64),
        off!("offsetof(struct v4l2_requestbuffers, capabilities)", v4l2_requestbuffers, capabilities),
        ("sizeof(struct v4l2_buffer)", size_of::<v4l2_buffer>() as u64),
        off!("offsetof(struct v4l2_buffer, bytesused)", v4l2_buffer, bytesused),
        off!("offsetof(struct v4l2_buffer, flags)", v4l2_buffer, flags),
        off!("offsetof(struct v4l2_buffer, timestamp)", v4l2_buffer, timestamp),
        off!("offsetof(struct v4l2_buffer, timecode)", v4l2_buffer, timecode),
        off!("offsetof(struct v4l2_buffer, sequence)", v4l2_buffer, sequence),
        off!("offsetof(struct v4l2_buffer, memory)", v4l2_buffer, memory),
        off!("offsetof(struct v4l2_buffer, m)", v4l2_buffer, m),
        off!("offsetof(struct v4l2_buffer, length)", v4l2_buffer, length),
        off!("offsetof(struct v4l2_buffer, request_fd)", v4l2_buffer, request_fd),
        ("sizeof(struct timeval)", size_of::<timeval>() as u64),
        off!("offsetof(struct timeval, tv_usec)", timeval, tv_usec),
    ]
}
