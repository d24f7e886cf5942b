//! Schedules of iterative heads: the coefficients a step graph is run with,
//! computed here from the manifest's parameters (never baked into a graph).
//!
//! - [`FlowEuler`]: flow matching, Euler steps in the π0 / SmolVLA
//!   convention: `t` from 1 towards 0 in `N` steps, `dt = -1/N`,
//!   `x ← x + dt·v(x, t)`. `t_k = 1 + k·dt` in f64, rounded to f32, as
//!   LeRobot 0.6's `euler_integrate` (openpi's loop) computes it, so the
//!   graph sees the same `t` values (accumulating in f32 drifts by an ulp
//!   from the third step on).
//! - [`Diffusion`]: DDPM and DDIM as diffusers' `DDPMScheduler` /
//!   `DDIMScheduler` define them (beta schedules `linear` and
//!   `squaredcos_cap_v2`, `epsilon` or `sample` prediction, `clip_sample`
//!   with its range, `leading` timestep spacing, DDPM's `fixed_small`
//!   variance, DDIM's `eta` and `set_alpha_to_one`). The betas and
//!   `alphas_cumprod` are diffusers' float32 values (betas rounded to f32,
//!   the cumulative product taken in f32, as `torch.cumprod` does): a model
//!   was trained, and is noised, with exactly those. Everything derived from
//!   them, and the per-element update, runs in f64 and stores f32.
//!
//! A [`Scheduler`] is built once at load; [`Scheduler::step`] updates the
//! sample in place and allocates nothing.

use serde::{Deserialize, Serialize};

/// Why a schedule cannot be built from its parameters.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    /// `steps` is 0.
    #[error("the step count must be at least 1")]
    NoSteps,
    /// More inference steps than training timesteps (diffusers refuses too).
    #[error("{steps} inference steps exceed num_train_timesteps = {train}")]
    TooManySteps {
        /// Inference steps asked for.
        steps: usize,
        /// Training timesteps.
        train: usize,
    },
    /// A parameter is out of its range.
    #[error("`{key}`: {problem}")]
    Parameter {
        /// Parameter name as in the manifest.
        key: &'static str,
        /// What was expected.
        problem: String,
    },
}

/// diffusers' `beta_schedule`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BetaSchedule {
    /// `linspace(beta_start, beta_end, T)`.
    #[default]
    Linear,
    /// The cosine schedule of Nichol & Dhariwal: `alpha_bar(t) = cos²((t + 0.008) / 1.008 · π/2)`,
    /// betas capped at 0.999.
    SquaredcosCapV2,
}

/// diffusers' `prediction_type`: what the step graph outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Prediction {
    /// The noise ε.
    #[default]
    Epsilon,
    /// The clean sample x₀.
    Sample,
}

/// DDPM or DDIM.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffusionKind {
    /// diffusers' `DDPMScheduler` (fresh noise at every step with `t > 0`).
    Ddpm,
    /// diffusers' `DDIMScheduler` (noise only with `eta > 0`).
    Ddim,
}

/// Parameters of a DDPM/DDIM schedule, named and defaulted as diffusers'
/// scheduler configs (so a `scheduler_config.json` translates key by key).
#[derive(Debug, Clone, PartialEq)]
pub struct DiffusionConfig {
    /// DDPM or DDIM.
    pub kind: DiffusionKind,
    /// `num_train_timesteps` (T), default 1000.
    pub num_train_timesteps: usize,
    /// `beta_start`, default 0.0001 (linear only).
    pub beta_start: f64,
    /// `beta_end`, default 0.02 (linear only).
    pub beta_end: f64,
    /// `beta_schedule`, default linear.
    pub beta_schedule: BetaSchedule,
    /// `prediction_type`, default epsilon.
    pub prediction: Prediction,
    /// `clip_sample`, default true: x₀ clamped to ±`clip_sample_range`.
    pub clip_sample: bool,
    /// `clip_sample_range`, default 1.0.
    pub clip_sample_range: f64,
    /// `steps_offset`, default 0.
    pub steps_offset: usize,
    /// DDIM's `set_alpha_to_one`, default true.
    pub set_alpha_to_one: bool,
    /// DDIM's `eta`, default 0 (deterministic).
    pub eta: f64,
}

impl DiffusionConfig {
    /// diffusers' defaults for `kind`.
    pub fn diffusers_default(kind: DiffusionKind) -> Self {
        DiffusionConfig {
            kind,
            num_train_timesteps: 1000,
            beta_start: 0.0001,
            beta_end: 0.02,
            beta_schedule: BetaSchedule::Linear,
            prediction: Prediction::Epsilon,
            clip_sample: true,
            clip_sample_range: 1.0,
            steps_offset: 0,
            set_alpha_to_one: true,
            eta: 0.0,
        }
    }
}

/// The betas of the training schedule (length T): computed in f64, rounded
/// to f32 as diffusers stores them.
pub fn betas(cfg: &DiffusionConfig) -> Vec<f64> {
    let t = cfg.num_train_timesteps;
    let exact: Vec<f64> = match cfg.beta_schedule {
        BetaSchedule::Linear => {
            // torch.linspace in float32 (diffusers' call): the first half
            // counts up from start, the second down from end, in f32.
            let (s, e) = (cfg.beta_start as f32, cfg.beta_end as f32);
            let step = if t > 1 { (e - s) / (t - 1) as f32 } else { 0.0 };
            (0..t)
                .map(|i| f64::from(if i < t / 2 { s + step * i as f32 } else { e - step * (t - i - 1) as f32 }))
                .collect()
        }
        BetaSchedule::SquaredcosCapV2 => {
            // diffusers' betas_for_alpha_bar with its cosine alpha_bar and max_beta 0.999.
            let alpha_bar = |x: f64| ((x + 0.008) / 1.008 * std::f64::consts::FRAC_PI_2).cos().powi(2);
            (0..t)
                .map(|i| {
                    let (t1, t2) = (i as f64 / t as f64, (i + 1) as f64 / t as f64);
                    (1.0 - alpha_bar(t2) / alpha_bar(t1)).min(0.999)
                })
                .collect()
        }
    };
    exact.into_iter().map(|b| f64::from(b as f32)).collect()
}

/// Cumulative products of `1 - beta` (diffusers' `alphas_cumprod`) as
/// diffusers' tensors hold them: `1 - beta` in f32, the product accumulated
/// in f64 (PyTorch's CPU `cumprod` accumulates float in double), each value
/// rounded to f32.
pub fn alphas_cumprod(betas: &[f64]) -> Vec<f64> {
    let mut acc = 1.0f64;
    betas
        .iter()
        .map(|&b| {
            acc *= f64::from(1.0 - b as f32);
            f64::from(acc as f32)
        })
        .collect()
}

/// diffusers' `leading` timestep spacing: `arange(N) · (T // N)`, reversed,
/// plus `steps_offset`.
pub fn leading_timesteps(train: usize, steps: usize, offset: usize) -> Result<Vec<i64>, ScheduleError> {
    if steps == 0 {
        return Err(ScheduleError::NoSteps);
    }
    if steps > train {
        return Err(ScheduleError::TooManySteps { steps, train });
    }
    let ratio = train / steps;
    Ok((0..steps).rev().map(|k| (k * ratio + offset) as i64).collect())
}

/// The coefficients of one DDPM/DDIM step, precomputed at load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DiffusionStep {
    /// The timestep handed to the step graph.
    pub timestep: i64,
    /// The timestep this step goes to (-1 past the end).
    pub prev_timestep: i64,
    /// `alphas_cumprod[t]`.
    pub alpha_prod_t: f64,
    /// `alphas_cumprod[prev]` (1, or DDIM's final alpha, past the end).
    pub alpha_prod_t_prev: f64,
    /// Weight of x₀ in the new sample (DDPM: `√ᾱ_prev·β_t / (1-ᾱ_t)`;
    /// DDIM: `√ᾱ_prev`).
    pub x0_coeff: f64,
    /// DDPM: weight of the current sample (`√α_t·(1-ᾱ_prev)/(1-ᾱ_t)`);
    /// DDIM: weight of ε (`√(1-ᾱ_prev-σ²)`).
    pub second_coeff: f64,
    /// Standard deviation of the noise added (0 when none is drawn).
    pub noise_std: f64,
}

/// A DDPM or DDIM schedule with its per-step coefficients.
#[derive(Debug, Clone, PartialEq)]
pub struct Diffusion {
    cfg: DiffusionConfig,
    alphas_cumprod: Vec<f64>,
    steps: Vec<DiffusionStep>,
}

impl Diffusion {
    /// Builds the tables for `steps` inference steps.
    pub fn new(cfg: &DiffusionConfig, steps: usize) -> Result<Self, ScheduleError> {
        let param = |key: &'static str, problem: &str| ScheduleError::Parameter { key, problem: problem.to_string() };
        if cfg.num_train_timesteps == 0 {
            return Err(param("num_train_timesteps", "expected >= 1"));
        }
        if cfg.beta_schedule == BetaSchedule::Linear
            && !(cfg.beta_start.is_finite()
                && cfg.beta_end.is_finite()
                && cfg.beta_start > 0.0
                && cfg.beta_end < 1.0
                && cfg.beta_start <= cfg.beta_end)
        {
            return Err(param("beta_start", "expected 0 < beta_start <= beta_end < 1"));
        }
        if !(cfg.clip_sample_range.is_finite() && cfg.clip_sample_range > 0.0) {
            return Err(param("clip_sample_range", "expected a finite number > 0"));
        }
        if !(cfg.eta.is_finite() && cfg.eta >= 0.0) {
            return Err(param("eta", "expected a finite number >= 0"));
        }
        let acp = alphas_cumprod(&betas(cfg));
        let timesteps = leading_timesteps(cfg.num_train_timesteps, steps, cfg.steps_offset)?;
        if let Some(&t) = timesteps.first().filter(|&&t| t as usize >= cfg.num_train_timesteps) {
            return Err(param("steps_offset", &format!("timestep {t} is beyond num_train_timesteps")));
        }
        let ratio = (cfg.num_train_timesteps / steps) as i64;
        let final_ddim = if cfg.set_alpha_to_one { 1.0 } else { acp[0] };
        let table = timesteps
            .iter()
            .enumerate()
            .map(|(k, &t)| {
                let a_t = acp[t as usize];
                let b_t = 1.0 - a_t;
                match cfg.kind {
                    DiffusionKind::Ddpm => {
                        // diffusers' previous_timestep with inference steps set: the next
                        // timestep of the list, -1 after the last.
                        let prev = timesteps.get(k + 1).copied().unwrap_or(-1);
                        let a_prev = if prev >= 0 { acp[prev as usize] } else { 1.0 };
                        let b_prev = 1.0 - a_prev;
                        let cur_alpha = a_t / a_prev;
                        let cur_beta = 1.0 - cur_alpha;
                        // fixed_small, clamped at 1e-20 as diffusers does.
                        let variance = (b_prev / b_t * cur_beta).max(1e-20);
                        DiffusionStep {
                            timestep: t,
                            prev_timestep: prev,
                            alpha_prod_t: a_t,
                            alpha_prod_t_prev: a_prev,
                            x0_coeff: a_prev.sqrt() * cur_beta / b_t,
                            second_coeff: cur_alpha.sqrt() * b_prev / b_t,
                            noise_std: if t > 0 { variance.sqrt() } else { 0.0 },
                        }
                    }
                    DiffusionKind::Ddim => {
                        let prev = t - ratio;
                        let a_prev = if prev >= 0 { acp[prev as usize] } else { final_ddim };
                        let b_prev = 1.0 - a_prev;
                        let variance = (b_prev / b_t) * (1.0 - a_t / a_prev);
                        let std = cfg.eta * variance.sqrt();
                        DiffusionStep {
                            timestep: t,
                            prev_timestep: prev,
                            alpha_prod_t: a_t,
                            alpha_prod_t_prev: a_prev,
                            x0_coeff: a_prev.sqrt(),
                            second_coeff: (1.0 - a_prev - std * std).sqrt(),
                            noise_std: if cfg.eta > 0.0 { std } else { 0.0 },
                        }
                    }
                }
            })
            .collect();
        Ok(Diffusion { cfg: cfg.clone(), alphas_cumprod: acp, steps: table })
    }

    /// The training schedule's `alphas_cumprod`.
    pub fn alphas_cumprod(&self) -> &[f64] {
        &self.alphas_cumprod
    }

    /// Per inference step, in order.
    pub fn steps(&self) -> &[DiffusionStep] {
        &self.steps
    }

    /// The configuration.
    pub fn config(&self) -> &DiffusionConfig {
        &self.cfg
    }

    /// One step: `sample ← step(model_output, sample)`, adding
    /// `noise_std · noise` when the step draws noise (`noise` must then be
    /// as long as the sample).
    pub fn step(&self, k: usize, model_output: &[f32], sample: &mut [f32], noise: Option<&[f32]>) {
        let Some(s) = self.steps.get(k) else { return };
        let (sa, sb) = (s.alpha_prod_t.sqrt(), (1.0 - s.alpha_prod_t).sqrt());
        let range = self.cfg.clip_sample_range;
        let noise = noise.filter(|_| s.noise_std > 0.0);
        for (i, (x, &m)) in sample.iter_mut().zip(model_output).enumerate() {
            let (xv, mv) = (f64::from(*x), f64::from(m));
            let (mut x0, eps) = match self.cfg.prediction {
                Prediction::Epsilon => ((xv - sb * mv) / sa, mv),
                // DDIM derives ε from the unclipped x₀, as diffusers does.
                Prediction::Sample => (mv, (xv - sa * mv) / sb),
            };
            if self.cfg.clip_sample {
                x0 = x0.clamp(-range, range);
            }
            let mut next = match self.cfg.kind {
                DiffusionKind::Ddpm => s.x0_coeff * x0 + s.second_coeff * xv,
                DiffusionKind::Ddim => s.x0_coeff * x0 + s.second_coeff * eps,
            };
            if let Some(n) = noise {
                next += s.noise_std * f64::from(n.get(i).copied().unwrap_or(0.0));
            }
            *x = next as f32;
        }
    }
}

/// Flow matching with Euler steps (π0 / SmolVLA).
#[derive(Debug, Clone, PartialEq)]
pub struct FlowEuler {
    dt: f32,
    times: Vec<f32>,
}

impl FlowEuler {
    /// `steps` Euler steps from t = 1.
    pub fn new(steps: usize) -> Result<Self, ScheduleError> {
        if steps == 0 {
            return Err(ScheduleError::NoSteps);
        }
        // As LeRobot/openpi: dt = -1/N, t_k = 1 + k·dt in f64, each sent
        // to the graph as f32; the update multiplies by dt in f32.
        let dt64 = -1.0 / steps as f64;
        let dt = dt64 as f32;
        let times = (0..steps).map(|k| (1.0 + k as f64 * dt64) as f32).collect();
        Ok(FlowEuler { dt, times })
    }

    /// `dt` (negative).
    pub fn dt(&self) -> f32 {
        self.dt
    }

    /// The time of each step, in order.
    pub fn times(&self) -> &[f32] {
        &self.times
    }

    /// One step: `x ← x + dt·v`, in f32 like the reference loops.
    pub fn step(&self, velocity: &[f32], sample: &mut [f32]) {
        for (x, v) in sample.iter_mut().zip(velocity) {
            *x += self.dt * v;
        }
    }
}

/// The timestep handed to the step graph at one step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Timestep {
    /// A continuous time (flow matching).
    Continuous(f32),
    /// A discrete training timestep (DDPM/DDIM).
    Discrete(i64),
}

impl Timestep {
    /// As f32 (a discrete timestep converted exactly below 2²⁴).
    pub fn as_f32(self) -> f32 {
        match self {
            Timestep::Continuous(t) => t,
            Timestep::Discrete(t) => t as f32,
        }
    }
}

/// A schedule ready to run: flow matching or DDPM/DDIM.
#[derive(Debug, Clone, PartialEq)]
pub enum Scheduler {
    /// Flow matching, Euler.
    FlowEuler(FlowEuler),
    /// DDPM or DDIM.
    Diffusion(Diffusion),
}

impl Scheduler {
    /// Number of step-graph runs.
    pub fn steps(&self) -> usize {
        match self {
            Scheduler::FlowEuler(f) => f.times.len(),
            Scheduler::Diffusion(d) => d.steps.len(),
        }
    }

    /// The timestep of step `k`.
    pub fn timestep(&self, k: usize) -> Timestep {
        match self {
            Scheduler::FlowEuler(f) => Timestep::Continuous(f.times.get(k).copied().unwrap_or(0.0)),
            Scheduler::Diffusion(d) => Timestep::Discrete(d.steps.get(k).map_or(0, |s| s.timestep)),
        }
    }

    /// Whether step `k` adds fresh noise (DDPM with t > 0, DDIM with eta > 0).
    pub fn draws_noise(&self, k: usize) -> bool {
        match self {
            Scheduler::FlowEuler(_) => false,
            Scheduler::Diffusion(d) => d.steps.get(k).is_some_and(|s| s.noise_std > 0.0),
        }
    }

    /// How much signal and noise the sample entering step `k` holds:
    /// `(a, b)` with `x = a·x₀ + b·ε` — flow matching `(1 - t_k, t_k)`
    /// (π0's `x_t = t·ε + (1 - t)·x₀`), diffusion `(√ᾱ_t, √(1 - ᾱ_t))`.
    /// What inpainting noises a known row to; `(1, 0)` past the last step.
    pub fn noise_level(&self, k: usize) -> (f64, f64) {
        match self {
            Scheduler::FlowEuler(f) => f.times.get(k).map_or((1.0, 0.0), |&t| (1.0 - f64::from(t), f64::from(t))),
            Scheduler::Diffusion(d) => {
                d.steps.get(k).map_or((1.0, 0.0), |s| (s.alpha_prod_t.sqrt(), (1.0 - s.alpha_prod_t).sqrt()))
            }
        }
    }

    /// Step `k`: updates `sample` in place from the graph's `model_output`.
    pub fn step(&self, k: usize, model_output: &[f32], sample: &mut [f32], noise: Option<&[f32]>) {
        match self {
            Scheduler::FlowEuler(f) => f.step(model_output, sample),
            Scheduler::Diffusion(d) => d.step(k, model_output, sample, noise),
        }
    }
}
