//! `ganglion serve`: a policy server for robots running `[policy.remote]`
//! ([`ganglion::remote`]). Parses, loads, serves until SIGINT/SIGTERM.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use ganglion::profile::PolicyConfig;
use ganglion::remote::{PolicyServer, ServerHandle, DEFAULT_PREFIX};
use ganglion_policies::{BackendKind, LoadOptions, Provider};

/// Arguments of `ganglion serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Bundle directory or archive to serve.
    #[arg(long)]
    pub bundle: PathBuf,
    /// Name robots ask for (`[policy.remote] name`); default: the bundle's
    /// directory name.
    #[arg(long)]
    pub name: Option<String>,
    /// Key prefix (`[policy.remote] prefix`).
    #[arg(long, default_value = DEFAULT_PREFIX)]
    pub prefix: String,
    /// Endpoints to listen on, e.g. `tcp/0.0.0.0:7460`; repeatable.
    #[arg(long)]
    pub listen: Vec<String>,
    /// Endpoints to connect to (a router); repeatable.
    #[arg(long)]
    pub connect: Vec<String>,
    /// A zenoh json5 config (mTLS, access control) instead of
    /// `--listen`/`--connect`.
    #[arg(long, conflicts_with_all = ["listen", "connect"])]
    pub zenoh_config: Option<PathBuf>,
    /// Inference backend.
    #[arg(long, value_enum, default_value_t = BackendKind::Auto)]
    pub backend: BackendKind,
    /// ONNX Runtime execution provider.
    #[arg(long, value_enum, default_value_t = Provider::Cpu)]
    pub execution_provider: Provider,
    /// Trusted public key file or directory of `*.pub`.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Serve an unsigned bundle (development only).
    #[arg(long)]
    pub allow_unsigned: bool,
    /// Most robots served at once (each gets its own policy instance).
    #[arg(long, default_value_t = 8)]
    pub max_robots: usize,
    /// On a full server, a robot silent this long gives its slot to a new
    /// robot, s.
    #[arg(long, default_value_t = ganglion::remote::DEFAULT_IDLE_AFTER.as_secs_f64())]
    pub robot_idle_s: f64,
    /// Most requests waiting while one is computed.
    #[arg(long, default_value_t = 64)]
    pub queue: usize,
    /// Run up to this many robots' requests as one batch (dynamic batching;
    /// the bundle's `max_batch` must allow it, and the backend be ONNX
    /// Runtime). 1: one request at a time.
    #[arg(long, default_value_t = 1)]
    pub max_batch: usize,
    /// How long to wait for more requests after a batch's first, ms.
    #[arg(long, default_value_t = 2.0)]
    pub batch_window_ms: f64,
    /// Stop after this many seconds (default: until SIGINT/SIGTERM).
    #[arg(long)]
    pub seconds: Option<f64>,
    /// Seed of the policies' noise (an iterative head's), 0..=2^64-1;
    /// default: drawn from the OS at start. Logged and sent to each robot
    /// with the spec, whose recording keeps it (`noise_seed`).
    #[arg(long)]
    pub noise_seed: Option<u64>,
}

/// Runs `ganglion serve`.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let trusted_keys = match &args.key {
        Some(k) => ganglion_policies::load_trusted_keys(k).with_context(|| format!("--key {}", k.display()))?,
        None => Vec::new(),
    };
    let cfg = PolicyConfig {
        bundle: Some(args.bundle.clone()),
        backend: args.backend,
        execution_provider: args.execution_provider,
        allow_unsigned: args.allow_unsigned,
        ..PolicyConfig::default()
    };
    let pool = match args.max_batch {
        0 | 1 => None,
        n => Some(ganglion_policies::backend::batch::BatchPool::new(n).context("--max-batch")?),
    };
    let base = LoadOptions {
        allow_unsigned: args.allow_unsigned,
        trusted_keys,
        batch: pool.clone(),
        // Each robot sends its arm's calibration (LeRobot's range units).
        ranges_per_robot: true,
        ..LoadOptions::default()
    };
    let bundle = args.bundle.clone();
    // One seed for every robot's policy (the noise stream is the request
    // id), announced in the spec reply so each robot records it.
    let noise_seed = args.noise_seed.unwrap_or_else(ganglion::deploy::policy::os_seed);
    tracing::info!(seed = noise_seed, configured = args.noise_seed.is_some(), "policy noise seed");
    let factory = Box::new(move || {
        let mut policy = ganglion::deploy::policy::load_bundle(&bundle, &cfg, base.clone(), false)?;
        policy.set_noise_seed(noise_seed);
        Ok(Box::new(policy) as Box<dyn ganglion_core::Policy>)
    });
    let idle = Duration::try_from_secs_f64(args.robot_idle_s)
        .map_err(|_| anyhow::anyhow!("--robot-idle-s {}: expected seconds >= 0", args.robot_idle_s))?;
    let mut server = PolicyServer::new(factory, args.max_robots)?.evict_idle_after(idle).with_noise_seed(noise_seed);
    if let Some(pool) = &pool {
        server = server.batched(pool.clone());
    }
    let window = Duration::from_secs_f64(args.batch_window_ms.max(0.0) / 1e3);
    let batching = ganglion_zenoh::Batching { max: args.max_batch.clamp(1, args.max_robots.max(1)), window };
    let name = match args.name {
        Some(n) => n,
        None => args
            .bundle
            .file_name()
            .map(|n| n.to_string_lossy().trim_end_matches(".zip").to_string())
            .context("--name: the bundle path has no name to default to")?,
    };
    let zenoh = ganglion_zenoh::ZenohConfig {
        prefix: args.prefix.clone(),
        listen: args.listen,
        connect: args.connect,
        config_file: args.zenoh_config,
        ..ganglion_zenoh::ZenohConfig::default()
    };
    let spec = server.spec().clone();
    let handle = ServerHandle::start(server, &zenoh, &args.prefix, &name, args.queue, batching)?;
    eprintln!(
        "ganglion serve: {} ({} joints, {} actions a chunk, {} camera(s)) on {}",
        spec.name,
        spec.n_joints,
        spec.chunk_len,
        spec.cameras.len(),
        ganglion::remote::infer_key(&args.prefix, &name)
    );
    super::run::install_signal_handlers();
    let start = Instant::now();
    while !super::run::signalled() && args.seconds.is_none_or(|s| start.elapsed().as_secs_f64() < s) {
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = handle.stats();
    let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
    println!(
        "{}",
        serde_json::json!({
            "served": load(&s.served),
            "failed": load(&s.failed),
            "refused": load(&s.refused),
            "robots": load(&s.robots),
            "batches": load(&s.batches),
            "engine_calls": pool.as_ref().map(|p| p.stats()),
            "mean_batch": pool.as_ref().map(|p| p.stats().mean_batch()),
        })
    );
    Ok(ExitCode::SUCCESS)
}
