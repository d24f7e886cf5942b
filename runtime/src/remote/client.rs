//! The robot's side: a [`Policy`] whose `infer` is a request to a server.

use std::time::{Duration, Instant};

use ganglion_codec::remote::{
    decode_latent_reply_into, decode_reply_into, decode_spec, encode_request_with, FramePayload, ReplyHead, ReplyStatus,
};
use ganglion_codec::DecodeLimits;
use ganglion_core::{ActionChunk, JointRange, Latent, Observation, Policy, PolicyError, PolicySpec};
use ganglion_zenoh::{NoReply, Requester, ZenohConfig};

/// Why the remote policy could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    /// The zenoh session failed.
    #[error(transparent)]
    Zenoh(#[from] ganglion_zenoh::ZenohError),
    /// No server answered the spec query in time.
    #[error("no policy server answered on {key} within {waited_ms} ms")]
    NoServer {
        /// The spec key asked.
        key: String,
        /// How long it waited.
        waited_ms: u64,
    },
    /// The server's spec reply was malformed or out of bounds.
    #[error("the policy server's spec on {key} is malformed: {reason}")]
    BadSpec {
        /// The spec key asked.
        key: String,
        /// What was wrong.
        reason: String,
    },
}

/// A policy computed by a server (`ganglion serve`): the spec comes from
/// the server at connect; each `infer` sends the observation and waits at
/// most `timeout` for the chunk. Runs on the inference worker, never on
/// the control thread (it blocks on the network).
pub struct RemotePolicy {
    requester: Requester,
    infer_key: String,
    encode_key: String,
    robot: String,
    spec: PolicySpec,
    timeout: Duration,
    limits: DecodeLimits,
    request: Vec<u8>,
    reply: Vec<u8>,
    last_server_ns: (u64, u64),
    /// `Some`: frames go as JPEG.
    compressor: Option<super::jpeg::FrameCompressor>,
    /// The arm's calibrated joint ranges, sent with every request.
    ranges: Vec<JointRange>,
    /// The server's noise seed, from its spec reply.
    noise_seed: Option<u64>,
}

impl RemotePolicy {
    /// Opens a session from `cfg` and asks policy `name` under `prefix` for
    /// its spec, retrying for up to `wait` (a server starting alongside).
    pub fn connect(
        cfg: &ZenohConfig,
        prefix: &str,
        name: &str,
        robot: &str,
        timeout: Duration,
        wait: Duration,
    ) -> Result<RemotePolicy, RemoteError> {
        let requester = cfg.requester()?;
        let key = super::spec_key(prefix, name);
        let limits = DecodeLimits::default();
        let start = Instant::now();
        let mut reply = Vec::new();
        loop {
            let left = wait.saturating_sub(start.elapsed());
            match requester.request(&key, &[], timeout.min(left).max(Duration::from_millis(50)), &mut reply)? {
                Ok(()) => break,
                Err(_) if start.elapsed() < wait => std::thread::sleep(Duration::from_millis(50)),
                Err(_) => return Err(RemoteError::NoServer { key, waited_ms: wait.as_millis() as u64 }),
            }
        }
        let announced =
            decode_spec(&reply, &limits).map_err(|e| RemoteError::BadSpec { key, reason: e.to_string() })?;
        let spec = announced.spec;
        Ok(RemotePolicy {
            requester,
            infer_key: super::infer_key(prefix, name),
            encode_key: super::encode_key(prefix, name),
            robot: robot.to_owned(),
            spec,
            timeout,
            limits,
            request: Vec::new(),
            reply: Vec::new(),
            last_server_ns: (0, 0),
            compressor: None,
            ranges: Vec::new(),
            noise_seed: announced.noise_seed,
        })
    }

    /// The seed the server's policy draws its noise from (its spec reply),
    /// `None` when the server did not say: what the robot's recording keeps
    /// as `noise_seed`.
    pub fn noise_seed(&self) -> Option<u64> {
        self.noise_seed
    }

    /// Sends the frames JPEG-compressed at `quality` (1..=100) from now on;
    /// `None`: raw.
    pub fn with_jpeg(mut self, quality: Option<u8>) -> Self {
        self.compressor = quality.map(|q| super::jpeg::FrameCompressor::new(q, &self.spec.cameras, self.spec.history));
        self
    }

    /// Sends the arm's calibrated joint ranges (profile order) with every
    /// request: a served bundle in LeRobot's range units converts with them
    /// (the robot's own arm, as a local bundle would).
    pub fn with_joint_ranges(mut self, ranges: Vec<JointRange>) -> Self {
        self.ranges = ranges;
        self
    }

    /// Size of the last request sent, bytes.
    pub fn last_request_bytes(&self) -> usize {
        self.request.len()
    }

    /// The server's queue and compute time of the last chunk, ns.
    pub fn last_server_ns(&self) -> (u64, u64) {
        self.last_server_ns
    }
}

impl Policy for RemotePolicy {
    fn spec(&self) -> &PolicySpec {
        &self.spec
    }

    fn stage_times(&self, record: &mut dyn FnMut(&str, u64)) {
        record("server queue", self.last_server_ns.0);
        record("server compute", self.last_server_ns.1);
    }

    fn infer(&mut self, obs: &Observation, out: &mut ActionChunk) -> Result<(), PolicyError> {
        self.exchange(obs, false)?;
        let head = decode_reply_into(&self.reply, &self.limits, out)
            .map_err(|e| PolicyError::Backend(format!("malformed reply from the policy server: {e}")))?;
        self.last_server_ns = (head.queue_ns, head.infer_ns);
        check_reply(obs, &head)?;
        out.request_id = obs.request_id;
        out.obs_stamp = obs.stamp;
        out.step_ns = self.spec.step_ns;
        out.kind = self.spec.action_kind;
        Ok(())
    }

    /// The server's encoder (`<prefix>/<name>/encode`): `out` must have the
    /// sizes the robot's half of the split expects, a reply of others is
    /// refused.
    fn infer_latent(&mut self, obs: &Observation, out: &mut Latent) -> Result<(), PolicyError> {
        self.exchange(obs, true)?;
        let head = decode_latent_reply_into(&self.reply, &self.limits, out)
            .map_err(|e| PolicyError::Backend(format!("malformed encode reply from the policy server: {e}")))?;
        self.last_server_ns = (head.queue_ns, head.infer_ns);
        check_reply(obs, &head)
    }
}

impl RemotePolicy {
    /// Sends `obs` to the infer key, or with `encode` to the encode key,
    /// and waits for the reply in `self.reply`.
    fn exchange(&mut self, obs: &Observation, encode: bool) -> Result<(), PolicyError> {
        let frames = match self.compressor.as_mut() {
            Some(c) => FramePayload::Jpeg(c.compress_observation(obs).map_err(PolicyError::BadObservation)?),
            None => FramePayload::Raw,
        };
        encode_request_with(&self.robot, obs, frames, &self.ranges, &mut self.request);
        let key = if encode { &self.encode_key } else { &self.infer_key };
        let outcome = self
            .requester
            .request(key, &self.request, self.timeout, &mut self.reply)
            .map_err(|e| PolicyError::Unreachable(e.to_string()))?;
        match outcome {
            Ok(()) => Ok(()),
            Err(NoReply::NoServer) => Err(PolicyError::Unreachable(format!("no policy server answers on {key}"))),
            Err(NoReply::Timeout) => Err(PolicyError::NoReply(format!(
                "no reply from the policy server within {} ms",
                self.timeout.as_millis()
            ))),
        }
    }
}

/// The reply answers `obs` and says Ok.
fn check_reply(obs: &Observation, head: &ReplyHead<'_>) -> Result<(), PolicyError> {
    if head.request_id != obs.request_id {
        return Err(PolicyError::Backend(format!(
            "the policy server answered request {} to request {}",
            head.request_id, obs.request_id
        )));
    }
    match head.status {
        ReplyStatus::Ok => Ok(()),
        ReplyStatus::BadObservation => Err(PolicyError::BadObservation(head.message.to_owned())),
        ReplyStatus::Backend | ReplyStatus::Refused => {
            Err(PolicyError::Backend(format!("policy server: {}", head.message)))
        }
    }
}
