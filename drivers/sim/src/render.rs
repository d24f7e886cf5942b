//! A small software rasterizer for the simulated camera.
//!
//! Pinhole camera at a fixed pose; the static part of the image (floor,
//! base, targets) is rendered once per episode with its depth, and every
//! frame copies it and z-buffers the moving links on top: capsules (thick
//! segments whose screen radius follows depth) and spheres (discs), shaded by
//! how squarely they face the camera. No allocation per frame.

use ganglion_core::MAX_JOINTS;

use crate::config::SimConfig;
use crate::scene::Target;

type Vec3 = [f64; 3];

fn sub(a: Vec3, b: Vec3) -> Vec3 {
    [a[0] - b[0], a[1] - b[1], a[2] - b[2]]
}

fn dot(a: Vec3, b: Vec3) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

fn cross(a: Vec3, b: Vec3) -> Vec3 {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

fn normalize(a: Vec3) -> Vec3 {
    let n = dot(a, a).sqrt();
    [a[0] / n, a[1] / n, a[2] / n]
}

/// Objects closer to the camera than this are not drawn (m).
const NEAR: f64 = 0.05;

/// Sky colour (rays that never meet the floor).
const SKY: [u8; 3] = [40, 44, 52];
/// The two floor tiles of the checkerboard.
const FLOOR: [[u8; 3]; 2] = [[150, 150, 145], [122, 122, 118]];
/// Floor tile edge (m) and the floor's half extent (m).
const TILE_M: f64 = 0.1;
const FLOOR_HALF_M: f64 = 1.2;
const BASE_RGB: [u8; 3] = [90, 90, 100];
const BASE_RADIUS_M: f64 = 0.03;
const LINK_RGB: [u8; 3] = [210, 210, 215];
const LINK_RADIUS_M: f64 = 0.018;
const JOINT_RGB: [u8; 3] = [70, 70, 80];
const JOINT_RADIUS_M: f64 = 0.024;
/// The tool point is yellow: neither red, green nor blue dominates, so it is
/// never mistaken for a target.
const TIP_RGB: [u8; 3] = [235, 205, 40];
/// Larger than the link radius so the tip wins the depth test at the link's end.
const TIP_RADIUS_M: f64 = 0.022;

/// A pinhole camera: x right, y down, z forward (the viewing direction).
#[derive(Debug, Clone, PartialEq)]
pub struct PinholeCamera {
    position: Vec3,
    /// Rows: the camera's right, down and forward axes in the world frame.
    rot: [Vec3; 3],
    focal_px: f64,
    cx: f64,
    cy: f64,
    width: u32,
    height: u32,
}

impl PinholeCamera {
    /// The camera of `cfg` (validated: the viewing direction is not vertical).
    pub fn new(cfg: &SimConfig) -> Self {
        let forward = normalize(sub(cfg.camera_look_at, cfg.camera_position));
        let right = normalize(cross(forward, [0.0, 0.0, 1.0]));
        let down = cross(forward, right);
        let focal_px = 0.5 * f64::from(cfg.camera_height) / (0.5 * cfg.camera_fov_deg.to_radians()).tan();
        PinholeCamera {
            position: cfg.camera_position,
            rot: [right, down, forward],
            focal_px,
            cx: 0.5 * f64::from(cfg.camera_width),
            cy: 0.5 * f64::from(cfg.camera_height),
            width: cfg.camera_width,
            height: cfg.camera_height,
        }
    }

    /// Image width and height in pixels.
    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// Focal length in pixels.
    pub fn focal_px(&self) -> f64 {
        self.focal_px
    }

    /// `p` (world) in camera coordinates.
    fn to_camera(&self, p: Vec3) -> Vec3 {
        let d = sub(p, self.position);
        [dot(self.rot[0], d), dot(self.rot[1], d), dot(self.rot[2], d)]
    }

    /// Image coordinates `(u, v)` (pixels; pixel `(i, j)` spans
    /// `[i, i+1) × [j, j+1)`) and depth (m) of the world point `p`; `None`
    /// behind or too close to the camera.
    pub fn project(&self, p: Vec3) -> Option<(f64, f64, f64)> {
        let c = self.to_camera(p);
        if c[2] < NEAR {
            return None;
        }
        Some((self.cx + self.focal_px * c[0] / c[2], self.cy + self.focal_px * c[1] / c[2], c[2]))
    }

    /// World direction of the ray through image point `(u, v)`, scaled so its
    /// forward (depth) component is 1.
    pub fn ray(&self, u: f64, v: f64) -> Vec3 {
        let x = (u - self.cx) / self.focal_px;
        let y = (v - self.cy) / self.focal_px;
        let r = &self.rot;
        [r[0][0] * x + r[1][0] * y + r[2][0], r[0][1] * x + r[1][1] * y + r[2][1], r[0][2] * x + r[1][2] * y + r[2][2]]
    }

    /// Where the ray through `(u, v)` meets the horizontal plane at height
    /// `z`, and the depth there; `None` when it never does in front of the
    /// camera.
    pub fn back_project_to_height(&self, u: f64, v: f64, z: f64) -> Option<(Vec3, f64)> {
        let d = self.ray(u, v);
        if d[2].abs() < 1e-12 {
            return None;
        }
        let t = (z - self.position[2]) / d[2];
        if t < NEAR {
            return None;
        }
        Some(([self.position[0] + t * d[0], self.position[1] + t * d[1], z], t))
    }
}

/// Color of a pixel covering a round object at normalized distance² `q` from
/// its silhouette's centre line: brightest where it faces the camera.
fn shaded(rgb: [u8; 3], q: f64) -> [u8; 3] {
    let shade = 0.6 + 0.4 * (1.0 - q).max(0.0).sqrt();
    [(f64::from(rgb[0]) * shade) as u8, (f64::from(rgb[1]) * shade) as u8, (f64::from(rgb[2]) * shade) as u8]
}

/// Pixels and depths of one image being drawn.
struct Canvas<'a> {
    width: usize,
    height: usize,
    rgb: &'a mut [u8],
    depth: &'a mut [f32],
}

impl Canvas<'_> {
    fn put(&mut self, i: usize, j: usize, depth: f64, rgb: [u8; 3]) {
        let k = j * self.width + i;
        if (depth as f32) < self.depth[k] {
            self.depth[k] = depth as f32;
            self.rgb[3 * k..3 * k + 3].copy_from_slice(&rgb);
        }
    }

    /// Pixel index range covering `[lo, hi)` in image coordinates, clipped.
    fn span(lo: f64, hi: f64, n: usize) -> (usize, usize) {
        let a = lo.floor().max(0.0).min(n as f64) as usize;
        let b = hi.ceil().max(0.0).min(n as f64) as usize;
        (a, b)
    }

    fn sphere(&mut self, cam: &PinholeCamera, center: Vec3, radius: f64, rgb: [u8; 3]) {
        let Some((u, v, z)) = cam.project(center) else { return };
        let r = radius * cam.focal_px / z;
        let (i0, i1) = Self::span(u - r, u + r, self.width);
        let (j0, j1) = Self::span(v - r, v + r, self.height);
        let r2 = r * r;
        for j in j0..j1 {
            let dv = j as f64 + 0.5 - v;
            for i in i0..i1 {
                let du = i as f64 + 0.5 - u;
                let q = (du * du + dv * dv) / r2;
                if q <= 1.0 {
                    self.put(i, j, z - radius * (1.0 - q).sqrt(), shaded(rgb, q));
                }
            }
        }
    }

    fn capsule(&mut self, cam: &PinholeCamera, a: Vec3, b: Vec3, radius: f64, rgb: [u8; 3]) {
        let (Some((ua, va, za)), Some((ub, vb, zb))) = (cam.project(a), cam.project(b)) else { return };
        let ra = radius * cam.focal_px / za;
        let rb = radius * cam.focal_px / zb;
        let (i0, i1) = Self::span((ua - ra).min(ub - rb), (ua + ra).max(ub + rb), self.width);
        let (j0, j1) = Self::span((va - ra).min(vb - rb), (va + ra).max(vb + rb), self.height);
        let (eu, ev) = (ub - ua, vb - va);
        let len2 = eu * eu + ev * ev;
        for j in j0..j1 {
            let pv = j as f64 + 0.5;
            for i in i0..i1 {
                let pu = i as f64 + 0.5;
                let t = if len2 > 1e-12 { (((pu - ua) * eu + (pv - va) * ev) / len2).clamp(0.0, 1.0) } else { 0.0 };
                let (du, dv) = (pu - (ua + t * eu), pv - (va + t * ev));
                let r = ra + t * (rb - ra);
                let q = (du * du + dv * dv) / (r * r);
                if q <= 1.0 {
                    let z = za + t * (zb - za);
                    self.put(i, j, z - radius * (1.0 - q).sqrt(), shaded(rgb, q));
                }
            }
        }
    }
}

/// Renders the scene of one simulated arm.
#[derive(Clone)]
pub struct Renderer {
    cam: PinholeCamera,
    /// Floor and sky, rendered once.
    floor_rgb: Vec<u8>,
    floor_depth: Vec<f32>,
    /// Floor, base and this episode's targets.
    static_rgb: Vec<u8>,
    static_depth: Vec<f32>,
    /// Z-buffer of the frame being drawn.
    depth: Vec<f32>,
}

impl std::fmt::Debug for Renderer {
    // The pixel and depth layers are noise in a debug print.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer").field("cam", &self.cam).finish_non_exhaustive()
    }
}

impl Renderer {
    /// A renderer for `cfg`'s camera with the floor pre-rendered.
    pub fn new(cfg: &SimConfig) -> Self {
        let cam = PinholeCamera::new(cfg);
        let (w, h) = (cfg.camera_width as usize, cfg.camera_height as usize);
        let mut floor_rgb = vec![0u8; w * h * 3];
        let mut floor_depth = vec![f32::INFINITY; w * h];
        for j in 0..h {
            for i in 0..w {
                let k = j * w + i;
                let (rgb, depth) = match cam.back_project_to_height(i as f64 + 0.5, j as f64 + 0.5, 0.0) {
                    Some((p, t)) if p[0].abs() <= FLOOR_HALF_M && p[1].abs() <= FLOOR_HALF_M => {
                        let tile = ((p[0] / TILE_M).floor() as i64 + (p[1] / TILE_M).floor() as i64).rem_euclid(2);
                        (FLOOR[tile as usize], t as f32)
                    }
                    _ => (SKY, f32::INFINITY),
                };
                floor_rgb[3 * k..3 * k + 3].copy_from_slice(&rgb);
                floor_depth[k] = depth;
            }
        }
        Renderer {
            cam,
            static_rgb: floor_rgb.clone(),
            static_depth: floor_depth.clone(),
            depth: floor_depth.clone(),
            floor_rgb,
            floor_depth,
        }
    }

    /// The camera model.
    pub fn camera(&self) -> &PinholeCamera {
        &self.cam
    }

    /// Redraws the static layer: floor, the base column up to `base_top`,
    /// and `targets` (called once per episode).
    pub fn set_scene(&mut self, base_top: Vec3, targets: &[Target], target_radius: f64) {
        self.static_rgb.copy_from_slice(&self.floor_rgb);
        self.static_depth.copy_from_slice(&self.floor_depth);
        let (w, h) = self.cam.size();
        let mut canvas =
            Canvas { width: w as usize, height: h as usize, rgb: &mut self.static_rgb, depth: &mut self.static_depth };
        canvas.capsule(&self.cam, [0.0, 0.0, 0.0], base_top, BASE_RADIUS_M, BASE_RGB);
        for t in targets {
            canvas.sphere(&self.cam, t.position, target_radius, t.color.rgb());
        }
    }

    /// Draws the arm whose joint origins and tool point are `chain` (as
    /// [`ganglion_core::ArmModel::chain_points`] gives them) over the static
    /// layer into `out` (`width × height × 3` rgb8 bytes).
    pub fn render(&mut self, chain: &[Vec3], out: &mut [u8]) {
        out.copy_from_slice(&self.static_rgb);
        self.depth.copy_from_slice(&self.static_depth);
        let (w, h) = self.cam.size();
        let mut canvas = Canvas { width: w as usize, height: h as usize, rgb: out, depth: &mut self.depth };
        let chain = &chain[..chain.len().min(MAX_JOINTS + 1)];
        for pair in chain.windows(2) {
            if dot(sub(pair[1], pair[0]), sub(pair[1], pair[0])) > 1e-12 {
                canvas.capsule(&self.cam, pair[0], pair[1], LINK_RADIUS_M, LINK_RGB);
            }
        }
        if let Some((tip, joints)) = chain.split_last() {
            for p in joints {
                canvas.sphere(&self.cam, *p, JOINT_RADIUS_M, JOINT_RGB);
            }
            canvas.sphere(&self.cam, *tip, TIP_RADIUS_M, TIP_RGB);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projection_and_back_projection_agree() {
        let cam = PinholeCamera::new(&SimConfig::default());
        let p = [0.35, -0.12, 0.05];
        let (u, v, z) = cam.project(p).expect("in front");
        let (q, t) = cam.back_project_to_height(u, v, 0.05).expect("meets plane");
        assert!(sub(p, q).iter().all(|d| d.abs() < 1e-9), "{p:?} vs {q:?}");
        assert!((t - z).abs() < 1e-9);
        // The look-at point projects to the image centre.
        let (u, v, _) = cam.project(SimConfig::default().camera_look_at).expect("in front");
        assert!((u - 32.0).abs() < 1e-9 && (v - 32.0).abs() < 1e-9);
        // The camera looks back at the arm along -x: world +y is on the right.
        let (ul, _, _) = cam.project([0.3, 0.2, 0.05]).expect("in front");
        assert!(ul > 32.0);
    }
}
