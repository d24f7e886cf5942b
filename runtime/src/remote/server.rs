//! The server's side: requests in, chunks out, one policy per robot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ganglion_codec::remote::{decode_request_into, encode_reply, encode_spec, ReplyStatus};
use ganglion_codec::DecodeLimits;
use ganglion_core::{ActionChunk, Observation, Policy, PolicyError, PolicySpec};

/// Builds one more instance of the served policy (a new robot's).
pub type PolicyFactory = Box<dyn FnMut() -> anyhow::Result<Box<dyn Policy>> + Send>;

/// Counters of a server, shared with whoever reports them.
#[derive(Debug, Default)]
pub struct ServeStats {
    /// Requests answered with a chunk.
    pub served: AtomicU64,
    /// Requests whose policy failed (bad observation, backend error).
    pub failed: AtomicU64,
    /// Requests refused: malformed, or a robot beyond the limit.
    pub refused: AtomicU64,
    /// Robots with a policy instance.
    pub robots: AtomicU64,
}

struct Robot {
    id: String,
    policy: Box<dyn Policy>,
    chunk: ActionChunk,
}

/// Answers infer requests for one policy: decodes into a buffer made for
/// its spec, runs the robot's own instance, encodes the reply. Never
/// panics on a request; what cannot be served is answered `Refused` (the
/// robot learns at once instead of timing out) and counted.
pub struct PolicyServer {
    spec: PolicySpec,
    factory: PolicyFactory,
    robots: Vec<Robot>,
    max_robots: usize,
    limits: DecodeLimits,
    obs: Observation,
    stats: Arc<ServeStats>,
    /// The instance built at start, handed to the first robot.
    spare: Option<Box<dyn Policy>>,
    jpeg: super::jpeg::FrameDecompressor,
}

impl PolicyServer {
    /// A server of the policy `factory` builds, for at most `max_robots`
    /// robots; builds the first instance now (to learn the spec, and so a
    /// bundle that does not load fails at start).
    pub fn new(mut factory: PolicyFactory, max_robots: usize) -> anyhow::Result<PolicyServer> {
        let first = factory()?;
        let spec = first.spec().clone();
        let limits = DecodeLimits {
            max_width: spec.cameras.iter().map(|c| c.width).max().unwrap_or(1),
            max_height: spec.cameras.iter().map(|c| c.height).max().unwrap_or(1),
            ..DecodeLimits::default()
        };
        let limits = DecodeLimits {
            // Frames plus joints, instruction and committed actions.
            max_message_bytes: spec
                .cameras
                .iter()
                .map(|c| c.width as usize * c.height as usize * 3 + 64)
                .sum::<usize>()
                + 64 * 1024,
            ..limits
        };
        let server = PolicyServer {
            obs: Observation::for_spec(&spec),
            jpeg: super::jpeg::FrameDecompressor::new(&spec.cameras),
            spec,
            factory,
            robots: Vec::new(),
            max_robots: max_robots.max(1),
            limits,
            stats: Arc::new(ServeStats::default()),
            spare: Some(first),
        };
        Ok(server)
    }

    /// The served policy's spec.
    pub fn spec(&self) -> &PolicySpec {
        &self.spec
    }

    /// The counters.
    pub fn stats(&self) -> Arc<ServeStats> {
        self.stats.clone()
    }

    /// The spec reply.
    pub fn spec_reply(&self, out: &mut Vec<u8>) {
        encode_spec(&self.spec, out);
    }

    fn robot_index(&mut self, id: &str) -> Result<usize, String> {
        if let Some(i) = self.robots.iter().position(|r| r.id == id) {
            return Ok(i);
        }
        if self.robots.len() >= self.max_robots {
            return Err(format!("server full: {} robots already served", self.max_robots));
        }
        let policy = match self.spare.take() {
            Some(p) => p,
            None => (self.factory)().map_err(|e| format!("loading a policy for robot {id}: {e:#}"))?,
        };
        let chunk = ActionChunk::for_spec(&self.spec);
        self.robots.push(Robot { id: id.to_owned(), policy, chunk });
        self.stats.robots.store(self.robots.len() as u64, Ordering::Relaxed);
        Ok(self.robots.len() - 1)
    }

    /// Answers one infer request (`received`: when it arrived, for the
    /// queue time).
    pub fn handle(&mut self, request: &[u8], received: Instant, reply: &mut Vec<u8>) {
        let empty = ActionChunk::with_capacity(0, self.spec.n_joints);
        let refuse = |stats: &ServeStats, id: u64, why: &str, reply: &mut Vec<u8>| {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            encode_reply(id, ReplyStatus::Refused, why, &empty, 0, 0, reply);
        };
        let (robot, jpeg) = match decode_request_into(request, &self.limits, &mut self.obs) {
            Ok(head) => (head.robot.to_owned(), head.jpeg),
            Err(e) => return refuse(&self.stats, 0, &format!("malformed request: {e}"), reply),
        };
        let request_id = self.obs.request_id;
        for (i, (_, _, bytes)) in jpeg.iter().enumerate().filter_map(|(i, j)| j.map(|j| (i, j))) {
            let Some(frame) = self.obs.frames.get_mut(i) else { continue };
            if let Err(e) = self.jpeg.decode(i, bytes, frame) {
                return refuse(&self.stats, request_id, &format!("malformed request: {e}"), reply);
            }
        }
        let index = match self.robot_index(&robot) {
            Ok(i) => i,
            Err(why) => return refuse(&self.stats, request_id, &why, reply),
        };
        let queue_ns = duration_ns(received.elapsed());
        let start = Instant::now();
        let r = &mut self.robots[index];
        let outcome = r.policy.infer(&self.obs, &mut r.chunk);
        let infer_ns = duration_ns(start.elapsed());
        match outcome {
            Ok(()) => {
                self.stats.served.fetch_add(1, Ordering::Relaxed);
                encode_reply(request_id, ReplyStatus::Ok, "", &r.chunk, queue_ns, infer_ns, reply);
            }
            Err(e) => {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                let status = match e {
                    PolicyError::BadObservation(_) => ReplyStatus::BadObservation,
                    _ => ReplyStatus::Backend,
                };
                encode_reply(request_id, status, &e.to_string(), &r.chunk, queue_ns, infer_ns, reply);
            }
        }
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A server answering on zenoh: its spec and infer keys on one session.
/// Serving stops when this is dropped.
pub struct ServerHandle {
    _queries: ganglion_zenoh::QueryServer,
    stats: Arc<ServeStats>,
}

impl ServerHandle {
    /// Serves `server` as policy `name` under `prefix` on a session opened
    /// from `cfg`; at most `queue` requests wait.
    pub fn start(
        mut server: PolicyServer,
        cfg: &ganglion_zenoh::ZenohConfig,
        prefix: &str,
        name: &str,
        queue: usize,
    ) -> anyhow::Result<ServerHandle> {
        let mut spec_bytes = Vec::new();
        server.spec_reply(&mut spec_bytes);
        let stats = server.stats();
        let keys = [super::spec_key(prefix, name), super::infer_key(prefix, name)];
        let queries = cfg.serve_queries(&keys, queue, move |key, request, received, reply| {
            if key == 0 {
                reply.clear();
                reply.extend_from_slice(&spec_bytes);
            } else {
                server.handle(request, received, reply);
            }
        })?;
        Ok(ServerHandle { _queries: queries, stats })
    }

    /// The counters.
    pub fn stats(&self) -> &ServeStats {
        &self.stats
    }
}
