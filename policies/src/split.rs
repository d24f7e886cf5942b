//! A split world model: the encoder on a policy server, the dynamics and
//! the action head on the robot.
//!
//! Why the head runs on the robot: latency compensation rolls the
//! observation's latent over the actions the robot commits while the
//! request is out, and the head must read the rolled latent. On the server
//! the roll can only cover the round trip the robot *expected* (the
//! committed actions it sent); on the robot, when the reply arrives, it
//! covers the round trip as it *was* (jitter, a slow hop, a server queue),
//! and the surprise monitor's history stays on the robot too. Keeping the
//! head on the server would need a second round trip after the roll. A
//! world model's dynamics and head are the small graphs (the reference
//! bundle's: a few µs on the robot's CPU); the encoder is the heavy one.
//!
//! [`SplitPolicy`] is a [`Policy`] like any other: the inference worker
//! calls it, it asks its encoder ([`Policy::infer_latent`]: a remote
//! policy, or in simulated runs the bundle itself behind a modelled link)
//! for the observation's [`Latent`], reads the clock when the latent is
//! back, and runs the [`WorldModelTail`] over as many committed actions as
//! whole policy steps have passed since the observation. Its spec says
//! [`PolicySpec::rolls_at_reply`], so the loop hands it the plan for
//! [`ganglion_core::MAX_COMMITTED_STEPS`] steps.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use ganglion_core::{steps_nearest, ActionChunk, Clock, Latent, Observation, Policy, PolicyError, PolicySpec};

use crate::bundle::{open_verified, VerifyOptions};
use crate::error::BundleError;
use crate::policy::LoadOptions;
use crate::world_model::WorldModelTail;

/// Loads the dynamics and action head of the format-1 bundle at `dir`
/// (verified as [`crate::load_policy`] verifies; the encoder is not
/// loaded): the robot's half of a split world model.
pub fn load_tail(dir: &Path, opts: &LoadOptions) -> Result<WorldModelTail, BundleError> {
    let verify = VerifyOptions { trusted_keys: opts.trusted_keys.clone(), allow_unsigned: opts.allow_unsigned };
    let bundle = open_verified(dir, &verify)?;
    if bundle.manifest.format != crate::manifest::FORMAT_VERSION {
        return Err(BundleError::Backend(format!(
            "{}: a split runs a format-1 world model (encoder, dynamics, action_head); this bundle is format {}",
            dir.display(),
            bundle.manifest.format
        )));
    }
    let (choice, _) = crate::policy::resolve_backend(opts, &bundle.manifest);
    WorldModelTail::from_bundle(&bundle, &choice, &opts.joint_ranges)
}

/// A world model whose encoder runs elsewhere (see the module docs).
pub struct SplitPolicy {
    encoder: Box<dyn Policy>,
    tail: WorldModelTail,
    latent: Latent,
    clock: Arc<dyn Clock>,
    spec: PolicySpec,
    last_roll: usize,
    tail_ns: u64,
}

impl std::fmt::Debug for SplitPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SplitPolicy").field("spec", &self.spec).finish_non_exhaustive()
    }
}

impl SplitPolicy {
    /// `encoder` computes the latents (its [`Policy::infer_latent`]),
    /// `tail` the chunks; `clock` is the one the observations are stamped
    /// by (the loop's). The encoder's spec must be the tail's: the same
    /// bundle on both sides.
    pub fn new(encoder: Box<dyn Policy>, tail: WorldModelTail, clock: Arc<dyn Clock>) -> Result<Self, BundleError> {
        let mut spec = tail.spec().clone();
        if encoder.spec() != &spec {
            return Err(BundleError::Backend(format!(
                "the encoder serves {:?}, the robot's bundle is {:?}: a split needs the same bundle on both sides",
                encoder.spec(),
                spec
            )));
        }
        spec.rolls_at_reply = tail.has_dynamics();
        let latent = tail.latent_buffer();
        Ok(SplitPolicy { encoder, tail, latent, clock, spec, last_roll: 0, tail_ns: 0 })
    }

    /// Reads time from `clock` from now on (a simulated run's next
    /// episode).
    pub fn set_clock(&mut self, clock: Arc<dyn Clock>) {
        self.clock = clock;
    }

    /// Forgets the surprise monitor's reference (see
    /// `BundlePolicy::reset_history`).
    pub fn reset_history(&mut self) {
        self.tail.reset_history();
    }

    /// Committed actions the last chunk's latent was rolled over.
    pub fn last_roll(&self) -> usize {
        self.last_roll
    }

    /// The encoder.
    pub fn encoder(&self) -> &dyn Policy {
        self.encoder.as_ref()
    }
}

impl Policy for SplitPolicy {
    fn spec(&self) -> &PolicySpec {
        &self.spec
    }

    fn infer(&mut self, obs: &Observation, out: &mut ActionChunk) -> Result<(), PolicyError> {
        let start = Instant::now();
        self.encoder.infer_latent(obs, &mut self.latent)?;
        let tail_start = Instant::now();
        let elapsed = self.clock.now().saturating_since(obs.stamp);
        self.last_roll = steps_nearest(elapsed, self.spec.step_ns).min(obs.committed.len());
        self.tail.finish(obs, &self.latent, self.last_roll, out)?;
        self.tail_ns = tail_start.elapsed().as_nanos() as u64;
        out.compute_ns = start.elapsed().as_nanos() as u64;
        Ok(())
    }

    /// The encoder's stages (a remote one: `server queue`, `server
    /// compute`), then `tail` (dynamics and head, on the robot).
    fn stage_times(&self, record: &mut dyn FnMut(&str, u64)) {
        self.encoder.stage_times(record);
        record("tail", self.tail_ns);
    }
}
