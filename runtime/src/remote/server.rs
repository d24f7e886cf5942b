//! The server's side: requests in, chunks out, one policy per robot.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ganglion_codec::remote::{decode_request_into, encode_latent_reply, encode_reply, encode_spec, ReplyStatus};
use ganglion_codec::DecodeLimits;
use ganglion_core::{ActionChunk, JointRange, Latent, Observation, Policy, PolicyError, PolicySpec, MAX_JOINTS};
use ganglion_policies::backend::batch::BatchPool;
use ganglion_zenoh::{Batching, IncomingQuery};

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
    /// Batches of more than one robot's request started together.
    pub batches: AtomicU64,
    /// Robots whose slot went to a new robot after they fell silent
    /// ([`PolicyServer::evict_idle_after`]).
    pub evicted: AtomicU64,
}

struct Robot {
    id: String,
    policy: Box<dyn Policy>,
    chunk: ActionChunk,
    /// The last latent (encode requests).
    latent: Latent,
    /// The calibrated joint ranges its policy converts with (as the robot
    /// last sent them).
    ranges: heapless::Vec<JointRange, MAX_JOINTS>,
    /// The robot's last request, decoded (swapped in from the server's
    /// decode buffer, no copy).
    obs: Observation,
    /// When that request arrived.
    received: Instant,
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
    /// Dynamic batching: the engines the robots' policies share
    /// ([`PolicyServer::batched`]).
    pool: Option<Arc<BatchPool>>,
    /// A robot silent this long gives its slot to a new one when the server
    /// is full.
    idle_after: Duration,
    /// The seed the factory's policies draw their noise from, announced in
    /// the spec reply ([`PolicyServer::with_noise_seed`]).
    noise_seed: Option<u64>,
}

/// How long a robot may stay silent before a new robot may take its slot
/// on a full server, by default: far beyond any inference or reconnect
/// pause, short enough that robots which went away do not lock others out.
pub const DEFAULT_IDLE_AFTER: Duration = Duration::from_secs(60);

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
            // Frames (the newest observation's and the earlier ones a
            // history reads) plus joints, instruction and committed actions.
            max_message_bytes: spec
                .cameras
                .iter()
                .map(|c| c.width as usize * c.height as usize * 3 + 64)
                .sum::<usize>()
                * spec.history.max(1)
                + 64 * 1024,
            ..limits
        };
        let server = PolicyServer {
            obs: Observation::with_history(&spec),
            jpeg: super::jpeg::FrameDecompressor::new(&spec.cameras),
            spec,
            factory,
            robots: Vec::new(),
            max_robots: max_robots.max(1),
            limits,
            stats: Arc::new(ServeStats::default()),
            spare: Some(first),
            pool: None,
            idle_after: DEFAULT_IDLE_AFTER,
            noise_seed: None,
        };
        Ok(server)
    }

    /// Announces `seed` in the spec reply as the seed every policy the
    /// factory builds draws its noise from (the factory seeds them: `ganglion
    /// serve` draws one seed at start, or takes `--noise-seed`). The robot
    /// records it, so a replay re-creates the server's chunks (the noise
    /// stream of a chunk is its request id).
    pub fn with_noise_seed(mut self, seed: u64) -> PolicyServer {
        self.noise_seed = Some(seed);
        self
    }

    /// When the server is full, a robot silent for `idle` gives its slot
    /// (and a fresh policy instance: nothing of the old robot's instruction
    /// or history carries over) to a new robot; the longest silent first.
    pub fn evict_idle_after(mut self, idle: Duration) -> PolicyServer {
        self.idle_after = idle;
        self
    }

    /// Runs the requests of a batch ([`ServerHandle::start`]'s `batching`)
    /// together: each robot's inference on its own thread, their graph
    /// calls through `pool`, which the factory's policies must be loaded
    /// into (`LoadOptions::batch`).
    pub fn batched(mut self, pool: Arc<BatchPool>) -> PolicyServer {
        self.pool = Some(pool);
        self
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
        encode_spec(&self.spec, self.noise_seed, out);
    }

    fn robot_index(&mut self, id: &str) -> Result<usize, String> {
        if let Some(i) = self.robots.iter().position(|r| r.id == id) {
            return Ok(i);
        }
        if self.robots.len() >= self.max_robots {
            // Reused in place: the other robots' indices (a batch being
            // decoded holds them) stay valid.
            let idle = self
                .robots
                .iter()
                .enumerate()
                .map(|(i, r)| (i, r.received.elapsed()))
                .filter(|&(_, silent)| silent >= self.idle_after)
                .max_by_key(|&(_, silent)| silent);
            let Some((i, silent)) = idle else {
                return Err(format!(
                    "server full: {} robots already served, none silent for {:.0} s",
                    self.max_robots,
                    self.idle_after.as_secs_f64()
                ));
            };
            let policy = (self.factory)().map_err(|e| format!("loading a policy for robot {id}: {e:#}"))?;
            let r = &mut self.robots[i];
            tracing::info!(old = %r.id, new = id, silent_s = silent.as_secs_f64(), "a silent robot's slot goes to a new robot");
            r.id = id.to_owned();
            r.policy = policy;
            r.ranges.clear();
            r.received = Instant::now();
            self.stats.evicted.fetch_add(1, Ordering::Relaxed);
            return Ok(i);
        }
        let policy = match self.spare.take() {
            Some(p) => p,
            None => (self.factory)().map_err(|e| format!("loading a policy for robot {id}: {e:#}"))?,
        };
        let chunk = ActionChunk::for_spec(&self.spec);
        let obs = Observation::with_history(&self.spec);
        self.robots.push(Robot {
            id: id.to_owned(),
            policy,
            chunk,
            latent: Latent::default(),
            ranges: heapless::Vec::new(),
            obs,
            received: Instant::now(),
        });
        self.stats.robots.store(self.robots.len() as u64, Ordering::Relaxed);
        Ok(self.robots.len() - 1)
    }

    /// Answers one infer request (`received`: when it arrived, for the
    /// queue time).
    pub fn handle(&mut self, request: &[u8], received: Instant, reply: &mut Vec<u8>) {
        if let Some(index) = self.decode(request, reply) {
            self.commit(index, received);
            answer(&mut self.robots[index], &self.stats, false, reply);
        }
    }

    /// Answers one encode request: the latent of a split world model
    /// ([`Policy::infer_latent`]), one by one (never batched).
    pub fn handle_encode(&mut self, request: &[u8], received: Instant, reply: &mut Vec<u8>) {
        if let Some(index) = self.decode(request, reply) {
            self.commit(index, received);
            answer(&mut self.robots[index], &self.stats, true, reply);
        }
    }

    /// Answers several infer requests (`requests[i]` into `replies[i]`):
    /// with a batching pool, one request per robot runs together, each
    /// robot on its own thread; a robot's second request in the same batch
    /// runs after them.
    pub fn handle_batch(&mut self, requests: &[(&[u8], Instant)], replies: &mut [Vec<u8>]) {
        let Some(pool) = self.pool.clone().filter(|_| requests.len() > 1) else {
            for ((request, received), reply) in requests.iter().zip(replies.iter_mut()) {
                self.handle(request, *received, reply);
            }
            return;
        };
        // (robot, request) for the robots in this batch; later ones alone.
        let mut batch: Vec<(usize, usize)> = Vec::with_capacity(requests.len());
        let mut again: Vec<usize> = Vec::new();
        for (k, ((request, received), reply)) in requests.iter().zip(replies.iter_mut()).enumerate() {
            match self.decode(request, reply) {
                Some(robot) if batch.iter().any(|&(r, _)| r == robot) => again.push(k),
                Some(robot) => {
                    self.commit(robot, *received);
                    batch.push((robot, k));
                }
                None => {}
            }
        }
        if batch.len() > 1 {
            self.stats.batches.fetch_add(1, Ordering::Relaxed);
        }
        let mut slots: Vec<Option<&mut Vec<u8>>> = replies.iter_mut().map(Some).collect();
        let mut work: Vec<(&mut Robot, &mut Vec<u8>)> = Vec::with_capacity(batch.len());
        for (r, robot) in self.robots.iter_mut().enumerate() {
            if let Some(&(_, k)) = batch.iter().find(|&&(b, _)| b == r) {
                if let Some(reply) = slots.get_mut(k).and_then(Option::take) {
                    work.push((robot, reply));
                }
            }
        }
        // Every robot counts as inside its inference before any starts, so
        // the first to reach a graph waits for the others.
        let stats = &self.stats;
        let entered: Vec<_> = work.iter().map(|_| pool.enter()).collect();
        std::thread::scope(|s| {
            for ((robot, reply), inside) in work.into_iter().zip(entered) {
                s.spawn(move || {
                    answer(robot, stats, false, reply);
                    drop(inside);
                });
            }
        });
        for k in again {
            if let (Some((request, received)), Some(reply)) = (requests.get(k), replies.get_mut(k)) {
                self.handle(request, *received, reply);
            }
        }
    }

    /// Decodes `request` into the server's buffer and returns its robot
    /// (a new one gets its policy), or writes the refusal into `reply`.
    fn decode(&mut self, request: &[u8], reply: &mut Vec<u8>) -> Option<usize> {
        let empty = ActionChunk::with_capacity(0, self.spec.n_joints);
        let refuse = |stats: &ServeStats, id: u64, why: &str, reply: &mut Vec<u8>| {
            stats.refused.fetch_add(1, Ordering::Relaxed);
            encode_reply(id, ReplyStatus::Refused, why, &empty, 0, 0, reply);
        };
        let (robot, jpeg, past_jpeg, ranges) = match decode_request_into(request, &self.limits, &mut self.obs) {
            Ok(head) => (head.robot.to_owned(), head.jpeg, head.past_jpeg, head.ranges),
            Err(e) => {
                refuse(&self.stats, 0, &format!("malformed request: {e}"), reply);
                return None;
            }
        };
        let request_id = self.obs.request_id;
        for (i, (_, _, bytes)) in jpeg.iter().enumerate().filter_map(|(i, j)| j.map(|j| (i, j))) {
            let Some(frame) = self.obs.frames.get_mut(i) else { continue };
            if let Err(e) = self.jpeg.decode(i, bytes, frame) {
                refuse(&self.stats, request_id, &format!("malformed request: {e}"), reply);
                return None;
            }
        }
        // The earlier observations' frames: entry p · cameras + i.
        let cams = self.obs.frames.len().max(1);
        for (k, (_, _, bytes)) in past_jpeg.iter().enumerate().filter_map(|(k, j)| j.map(|j| (k, j))) {
            let (p, i) = (k / cams, k % cams);
            let Some(frame) = self.obs.past.get_mut(p).and_then(|p| p.frames.get_mut(i)) else { continue };
            if let Err(e) = self.jpeg.decode(i, bytes, frame) {
                refuse(&self.stats, request_id, &format!("malformed request: {e}"), reply);
                return None;
            }
        }
        let index = match self.robot_index(&robot) {
            Ok(i) => i,
            Err(why) => {
                refuse(&self.stats, request_id, &why, reply);
                return None;
            }
        };
        // A robot's calibration (a bundle in LeRobot's range units converts
        // with it): handed to its policy when it changes.
        let r = &mut self.robots[index];
        if r.ranges != ranges {
            if let Err(e) = r.policy.set_joint_ranges(&ranges) {
                self.stats.failed.fetch_add(1, Ordering::Relaxed);
                encode_reply(request_id, status_of(&e), &e.to_string(), &empty, 0, 0, reply);
                return None;
            }
            r.ranges = ranges;
        }
        Some(index)
    }

    /// Hands the decoded request to robot `index` (a swap, no copy).
    fn commit(&mut self, index: usize, received: Instant) {
        if let Some(r) = self.robots.get_mut(index) {
            std::mem::swap(&mut r.obs, &mut self.obs);
            r.received = received;
        }
    }
}

/// Runs robot `r`'s policy on its decoded request, for its chunk or
/// (`latent`) its encoder's latent, and encodes the reply.
fn answer(r: &mut Robot, stats: &ServeStats, latent: bool, reply: &mut Vec<u8>) {
    let queue_ns = duration_ns(r.received.elapsed());
    let start = Instant::now();
    let outcome =
        if latent { r.policy.infer_latent(&r.obs, &mut r.latent) } else { r.policy.infer(&r.obs, &mut r.chunk) };
    let infer_ns = duration_ns(start.elapsed());
    let (status, message) = match outcome {
        Ok(()) => {
            stats.served.fetch_add(1, Ordering::Relaxed);
            (ReplyStatus::Ok, String::new())
        }
        Err(e) => {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            (status_of(&e), e.to_string())
        }
    };
    let id = r.obs.request_id;
    if latent {
        encode_latent_reply(id, status, &message, &r.latent, queue_ns, infer_ns, reply);
    } else {
        encode_reply(id, status, &message, &r.chunk, queue_ns, infer_ns, reply);
    }
}

fn status_of(e: &PolicyError) -> ReplyStatus {
    match e {
        PolicyError::BadObservation(_) => ReplyStatus::BadObservation,
        _ => ReplyStatus::Backend,
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
    /// from `cfg`; at most `queue` requests wait. `batching` groups the
    /// requests that arrive together ([`PolicyServer::handle_batch`]);
    /// [`Batching::ONE`] answers them one by one.
    pub fn start(
        mut server: PolicyServer,
        cfg: &ganglion_zenoh::ZenohConfig,
        prefix: &str,
        name: &str,
        queue: usize,
        batching: Batching,
    ) -> anyhow::Result<ServerHandle> {
        let mut spec_bytes = Vec::new();
        server.spec_reply(&mut spec_bytes);
        let stats = server.stats();
        let keys = [super::spec_key(prefix, name), super::infer_key(prefix, name), super::encode_key(prefix, name)];
        // A batch holding as many requests as there are robots is complete:
        // nobody else is coming, the window need not run out (a lone robot
        // waits for no one).
        let robots = stats.clone();
        let complete = move |n: usize| n as u64 >= robots.robots.load(Ordering::Relaxed);
        let queries =
            cfg.serve_query_batches(&keys, queue, batching, complete, move |queries: &[IncomingQuery], replies| {
                let mut infer = Vec::with_capacity(queries.len());
                for (i, (q, reply)) in queries.iter().zip(replies.iter_mut()).enumerate() {
                    match q.key {
                        0 => {
                            reply.clear();
                            reply.extend_from_slice(&spec_bytes);
                        }
                        2 => server.handle_encode(&q.payload, q.arrived, reply),
                        _ => infer.push(i),
                    }
                }
                let requests: Vec<(&[u8], Instant)> =
                    infer.iter().map(|&i| (queries[i].payload.as_slice(), queries[i].arrived)).collect();
                let mut out: Vec<Vec<u8>> = infer.iter().map(|&i| std::mem::take(&mut replies[i])).collect();
                server.handle_batch(&requests, &mut out);
                for (&i, reply) in infer.iter().zip(out) {
                    replies[i] = reply;
                }
            })?;
        Ok(ServerHandle { _queries: queries, stats })
    }

    /// The counters.
    pub fn stats(&self) -> &ServeStats {
        &self.stats
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ganglion_codec::remote::{decode_reply_into, encode_request, FramePayload};
    use ganglion_core::{ActionKind, CameraSpec, PixelFormat};

    /// Holds the observed position for the whole chunk.
    struct Hold(PolicySpec);

    impl Policy for Hold {
        fn spec(&self) -> &PolicySpec {
            &self.0
        }
        fn infer(&mut self, obs: &Observation, out: &mut ActionChunk) -> Result<(), PolicyError> {
            for i in 0..out.set_steps(self.0.chunk_len) {
                out.step_mut(i).copy_from_slice(&obs.joints.position);
            }
            Ok(())
        }
    }

    fn spec() -> PolicySpec {
        spec_of(8, 6)
    }

    /// Two joints, one `w`×`h` RGB camera, a history of 2.
    fn spec_of(width: u32, height: u32) -> PolicySpec {
        PolicySpec {
            name: "hold".into(),
            n_joints: 2,
            chunk_len: 4,
            step_ns: 100_000_000,
            action_kind: ActionKind::AbsolutePosition,
            cameras: vec![CameraSpec { name: "front".into(), width, height, format: PixelFormat::Rgb8 }],
            expected_latency_ns: 0,
            surprise_threshold: None,
            history: 2,
            rolls_at_reply: false,
        }
    }

    fn ask(server: &mut PolicyServer, robot: &str) -> ReplyStatus {
        let mut obs = Observation::with_history(&spec());
        for f in obs.frames.iter_mut().chain(obs.past.iter_mut().flat_map(|p| p.frames.iter_mut())) {
            f.set(8, 6, PixelFormat::Rgb8, &[7; 8 * 6 * 3]).expect("frame");
        }
        let (mut request, mut reply) = (Vec::new(), Vec::new());
        encode_request(robot, &obs, FramePayload::Raw, &mut request);
        server.handle(&request, Instant::now(), &mut reply);
        let mut chunk = ActionChunk::for_spec(&spec());
        decode_reply_into(&reply, &DecodeLimits::default(), &mut chunk).expect("reply").status
    }

    /// Reports the mean pixel of the newest frame and of the earlier one.
    struct Means(PolicySpec);

    impl Policy for Means {
        fn spec(&self) -> &PolicySpec {
            &self.0
        }
        fn infer(&mut self, obs: &Observation, out: &mut ActionChunk) -> Result<(), PolicyError> {
            let mean =
                |f: &ganglion_core::Frame| f.data().iter().map(|&b| f64::from(b)).sum::<f64>() / f.data().len() as f64;
            for i in 0..out.set_steps(self.0.chunk_len) {
                out.step_mut(i).copy_from_slice(&[mean(&obs.frames[0]), mean(&obs.past[0].frames[0])]);
            }
            Ok(())
        }
    }

    /// With JPEG frames, the earlier observation's frame goes as JPEG too and
    /// reaches the policy decoded (means within JPEG's error of the raw).
    #[test]
    fn a_history_policys_earlier_frames_go_as_jpeg_too() {
        use crate::remote::jpeg::FrameCompressor;
        let factory: PolicyFactory = Box::new(|| Ok(Box::new(Means(spec_of(64, 48))) as Box<dyn Policy>));
        let mut server = PolicyServer::new(factory, 1).expect("server");
        let mut obs = Observation::with_history(&spec_of(64, 48));
        obs.frames[0].set(64, 48, PixelFormat::Rgb8, &[200; 64 * 48 * 3]).expect("frame");
        obs.past[0].frames[0].set(64, 48, PixelFormat::Rgb8, &[40; 64 * 48 * 3]).expect("frame");
        let mut comp = FrameCompressor::new(90, &spec_of(64, 48).cameras, 2);
        let jpeg = comp.compress_observation(&obs).expect("compress");
        assert_eq!(jpeg.len(), 2, "the newest frame and the earlier one");
        let (mut request, mut reply) = (Vec::new(), Vec::new());
        encode_request("a", &obs, FramePayload::Jpeg(jpeg), &mut request);
        let earlier = &jpeg[1];
        assert!(request.windows(earlier.len()).any(|w| w == &earlier[..]), "the earlier frame went raw");
        server.handle(&request, Instant::now(), &mut reply);
        let mut chunk = ActionChunk::for_spec(&spec_of(64, 48));
        let head = decode_reply_into(&reply, &DecodeLimits::default(), &mut chunk).expect("reply");
        assert_eq!(head.status, ReplyStatus::Ok, "{}", head.message);
        let (now, before) = (chunk.step(0)[0], chunk.step(0)[1]);
        assert!((now - 200.0).abs() < 3.0 && (before - 40.0).abs() < 3.0, "means {now} and {before}");
    }

    /// A full server refuses a new robot while its robots are active; once
    /// one has been silent for the idle time, the newcomer gets its slot
    /// (and the silent robot, back, is a newcomer itself).
    #[test]
    fn a_silent_robots_slot_goes_to_a_new_robot() {
        let factory: PolicyFactory = Box::new(|| Ok(Box::new(Hold(spec())) as Box<dyn Policy>));
        // Long against a stall between two calls on a loaded CI machine.
        let idle = Duration::from_millis(500);
        let mut server = PolicyServer::new(factory, 2).expect("server").evict_idle_after(idle);
        assert_eq!(ask(&mut server, "a"), ReplyStatus::Ok, "a request with its earlier observation fits");
        assert_eq!(ask(&mut server, "b"), ReplyStatus::Ok);
        assert_eq!(ask(&mut server, "c"), ReplyStatus::Refused, "full, nobody silent");
        std::thread::sleep(idle + Duration::from_millis(100));
        assert_eq!(ask(&mut server, "b"), ReplyStatus::Ok, "b speaks again");
        assert_eq!(ask(&mut server, "c"), ReplyStatus::Ok, "c takes silent a's slot");
        assert_eq!(server.stats().evicted.load(Ordering::Relaxed), 1);
        assert_eq!(server.stats().robots.load(Ordering::Relaxed), 2);
        assert_eq!(ask(&mut server, "a"), ReplyStatus::Refused, "a is a newcomer now, and nobody is silent");
    }
}
