//! The reach scene: coloured targets, which one the instruction names, and
//! the initial pose, all drawn from a seeded ChaCha stream per episode.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use crate::config::SimConfig;

/// Most targets in a scene.
pub const MAX_TARGETS: usize = 3;

/// Target colours; each scene uses distinct ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TargetColor {
    /// Red.
    Red,
    /// Green.
    Green,
    /// Blue.
    Blue,
}

impl TargetColor {
    /// Every colour, in index order.
    pub const ALL: [TargetColor; MAX_TARGETS] = [TargetColor::Red, TargetColor::Green, TargetColor::Blue];

    /// The word the instruction uses.
    pub const fn name(self) -> &'static str {
        match self {
            TargetColor::Red => "red",
            TargetColor::Green => "green",
            TargetColor::Blue => "blue",
        }
    }

    /// Stable index (0 red, 1 green, 2 blue).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// Rendered colour (fully lit).
    pub const fn rgb(self) -> [u8; 3] {
        match self {
            TargetColor::Red => [220, 40, 40],
            TargetColor::Green => [40, 190, 60],
            TargetColor::Blue => [50, 90, 230],
        }
    }

    /// The colour a rendered pixel shows, if it is clearly one of the
    /// target colours: one channel bright and well above the other two.
    /// Floor, sky, links, joints and the yellow tip never qualify.
    pub fn classify(px: [u8; 3]) -> Option<TargetColor> {
        let [r, g, b] = px.map(u32::from);
        let dominant = |c: u32, o1: u32, o2: u32| c > 90 && 10 * c > 18 * o1 && 10 * c > 18 * o2;
        if dominant(r, g, b) {
            Some(TargetColor::Red)
        } else if dominant(g, r, b) {
            Some(TargetColor::Green)
        } else if dominant(b, r, g) {
            Some(TargetColor::Blue)
        } else {
            None
        }
    }

    /// The colour an instruction names: the first word that is a colour
    /// name. `None` when no word is.
    pub fn from_instruction(text: &str) -> Option<TargetColor> {
        text.split(|c: char| !c.is_alphanumeric())
            .find_map(|w| TargetColor::ALL.into_iter().find(|c| w.eq_ignore_ascii_case(c.name())))
    }

    /// The instruction that names this colour.
    pub fn instruction(self) -> &'static str {
        match self {
            TargetColor::Red => "reach the red target",
            TargetColor::Green => "reach the green target",
            TargetColor::Blue => "reach the blue target",
        }
    }
}

/// One target sphere.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Target {
    /// Centre in the base frame (m).
    pub position: [f64; 3],
    /// Its colour (unique within the scene).
    pub color: TargetColor,
}

/// One episode's scene.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scene {
    targets: [Target; MAX_TARGETS],
    n_targets: usize,
    instructed: usize,
}

impl Scene {
    /// Draws a scene for `cfg` (validated) from `rng`. Targets are placed
    /// uniformly in the configured annulus sector at the configured height,
    /// rejecting placements closer than the configured separation (after
    /// 1000 rejections the last draw is kept, so generation always ends).
    pub fn generate(cfg: &SimConfig, rng: &mut ChaCha8Rng) -> Scene {
        let mut colors = TargetColor::ALL;
        // Fisher-Yates, so every subset and order of colours occurs.
        for i in (1..colors.len()).rev() {
            let j = rng.random_range(0..=i);
            colors.swap(i, j);
        }
        let n = cfg.n_targets.clamp(1, MAX_TARGETS);
        let mut targets = [Target { position: [0.0; 3], color: TargetColor::Red }; MAX_TARGETS];
        for k in 0..n {
            let mut p = [0.0; 3];
            for _ in 0..1000 {
                let d = rng.random_range(cfg.target_distance_m[0]..=cfg.target_distance_m[1]);
                let b = rng.random_range(cfg.target_bearing_rad[0]..=cfg.target_bearing_rad[1]);
                p = [d * b.cos(), d * b.sin(), cfg.target_height_m];
                let clear = targets[..k].iter().all(|t| {
                    let (dx, dy, dz) = (t.position[0] - p[0], t.position[1] - p[1], t.position[2] - p[2]);
                    (dx * dx + dy * dy + dz * dz).sqrt() >= cfg.target_separation_m
                });
                if clear {
                    break;
                }
            }
            targets[k] = Target { position: p, color: colors[k] };
        }
        let instructed = rng.random_range(0..n);
        Scene { targets, n_targets: n, instructed }
    }

    /// The targets.
    pub fn targets(&self) -> &[Target] {
        &self.targets[..self.n_targets]
    }

    /// Index (into [`targets`](Self::targets)) of the instructed target.
    pub fn instructed_index(&self) -> usize {
        self.instructed
    }

    /// The instructed target.
    pub fn instructed(&self) -> Target {
        self.targets[self.instructed]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn scenes_have_distinct_colours_and_separated_reachable_targets() {
        let cfg = SimConfig::default();
        for seed in 0..200 {
            let s = Scene::generate(&cfg, &mut ChaCha8Rng::seed_from_u64(seed));
            assert_eq!(s.targets().len(), 3);
            assert!(s.instructed_index() < 3);
            for (i, a) in s.targets().iter().enumerate() {
                let r = a.position[0].hypot(a.position[1]);
                assert!((0.25..=0.45).contains(&r));
                for b in &s.targets()[i + 1..] {
                    assert_ne!(a.color, b.color);
                    let d = (a.position[0] - b.position[0]).hypot(a.position[1] - b.position[1]);
                    assert!(d >= 0.12 - 1e-12, "seed {seed}: targets {d} m apart");
                }
            }
        }
    }

    #[test]
    fn colours_classify_and_parse() {
        for c in TargetColor::ALL {
            assert_eq!(TargetColor::classify(c.rgb()), Some(c));
            let dim = c.rgb().map(|v| (f64::from(v) * 0.6) as u8);
            assert_eq!(TargetColor::classify(dim), Some(c), "shaded {c:?}");
            assert_eq!(TargetColor::from_instruction(c.instruction()), Some(c));
        }
        assert_eq!(TargetColor::classify([235, 205, 40]), None, "the yellow tip is no target");
        assert_eq!(TargetColor::classify([150, 150, 145]), None);
        assert_eq!(TargetColor::from_instruction("Reach the RED one!"), Some(TargetColor::Red));
        assert_eq!(TargetColor::from_instruction("reach the purple target"), None);
    }
}
