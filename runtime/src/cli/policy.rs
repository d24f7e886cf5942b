//! `ganglion policy`: policy bundle tools. A thin wrapper: every piece of
//! logic lives in `ganglion_policies`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use ganglion_policies::manifest::Precision;
use ganglion_policies::{BackendKind, LoadOptions, Provider, TensorRtOptions};

/// Subcommands of `ganglion policy`.
#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Show graphs, tensors, sizes, digests and signature status.
    Inspect {
        /// Bundle directory or zip archive.
        bundle: PathBuf,
        /// Public key file or directory of `*.pub` to check the signature with.
        #[arg(long)]
        key: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Verify signature and digests; exit 0 only when the bundle is intact.
    Verify {
        /// Bundle directory or zip archive.
        bundle: PathBuf,
        /// Public key file or directory of `*.pub`.
        #[arg(long)]
        key: PathBuf,
    },
    /// Fill file digests, rewrite policy.toml canonically and sign it.
    Sign {
        /// Bundle directory.
        bundle: PathBuf,
        /// Secret key file (from `keygen`).
        #[arg(long)]
        key: PathBuf,
    },
    /// Generate a key pair: OUT.key (secret, mode 0600) and OUT.pub.
    Keygen {
        /// Path prefix of the two files.
        #[arg(long)]
        out: PathBuf,
    },
    /// Verify, then load every graph on the chosen backend and run one
    /// inference: the graphs' real input/output names, dtypes and shapes
    /// must match the manifest (extra graph outputs are ignored). Exit 0 only
    /// when the bundle would run.
    Check {
        /// Bundle directory or zip archive.
        bundle: PathBuf,
        /// How to load the bundle.
        #[command(flatten)]
        load: LoadArgs,
    },
    /// Calibrate a world model's `surprise_threshold` from recordings of
    /// nominal runs (`[recording] continuous = true`): `margin` times the
    /// `percentile`-th percentile (nearest rank) of the surprise (RMS latent
    /// difference) of every chunk computed while the policy drove.
    CalibrateSurprise {
        /// MCAP recordings of runs without faults.
        #[arg(required = true)]
        recordings: Vec<PathBuf>,
        /// Percentile of the nominal surprise, (0, 100].
        #[arg(long, default_value_t = 99.9)]
        percentile: f64,
        /// Factor over that percentile, >= 1.
        #[arg(long, default_value_t = 1.25)]
        margin: f64,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Measure load time, first inference and inference latency.
    Bench {
        /// Bundle directory or zip archive.
        bundle: PathBuf,
        /// How to load the bundle.
        #[command(flatten)]
        load: LoadArgs,
        /// Timed inferences.
        #[arg(long, default_value_t = 200)]
        iterations: usize,
        /// The task of the timed observation (a bundle with `[text]`
        /// tokenizes it; its length matters with `padding = "longest"`).
        #[arg(long, default_value = "")]
        instruction: String,
        /// Write the JSON report here.
        #[arg(long)]
        report: Option<PathBuf>,
    },
    /// Import a LeRobot checkpoint (`pretrained_model/`: config.json,
    /// model.safetensors, processor files) as a signed bundle. Runs the export
    /// script in a LeRobot environment (`--python`), then the new bundle on
    /// tract against the PyTorch policy on the same observations: refused,
    /// with nothing written, when they differ by more than `--tolerance`
    /// (Diffusion: with the noise LeRobot's sampling loop drew replayed).
    /// Supported: ACT, Diffusion Policy. docs/POLICIES.md, "Importing a
    /// LeRobot checkpoint".
    Import {
        /// The checkpoint's `pretrained_model/` folder.
        checkpoint: PathBuf,
        /// Bundle folder to create (must not exist).
        #[arg(long)]
        out: PathBuf,
        /// Secret key file that signs the bundle.
        #[arg(long)]
        key: PathBuf,
        /// Robot profile: its joints (in order) are the state and action,
        /// `observation.images.<name>` its camera `<name>`.
        #[arg(long)]
        profile: PathBuf,
        /// Python interpreter of a LeRobot environment (Python >= 3.12).
        #[arg(long, default_value = "python3")]
        python: PathBuf,
        /// Largest |bundle action - PyTorch action| accepted, in the action's
        /// units (rad).
        #[arg(long, default_value_t = 1e-4)]
        tolerance: f64,
        /// Policy rate, Hz (the training dataset's fps); default: the
        /// checkpoint's train_config.json `env.fps`.
        #[arg(long)]
        fps: Option<f64>,
        /// Feed `observation.environment_state` from the joints (only when it
        /// is the joint state, with the same normalization).
        #[arg(long)]
        environment_state_from_joints: bool,
        /// The unit of the checkpoint's joint data, one for every joint or
        /// one per joint (comma-separated): `rad`, `deg`, `range_m100_100`,
        /// `range_0_100`. LeRobot's SO-101: `deg,deg,deg,deg,deg,range_0_100`
        /// with `use_degrees`, else `range_m100_100` for the body joints. The
        /// range units take the arm's calibration from the profile's servo
        /// transport. Default: radians.
        #[arg(long, value_delimiter = ',', value_parser = parse_unit)]
        units: Vec<ganglion_policies::manifest::JointUnit>,
        /// Reference observations for the parity gate (Diffusion: chunks,
        /// over two episodes).
        #[arg(long, default_value_t = 8)]
        samples: usize,
        /// Seed of the reference observations.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// ONNX opset of the export.
        #[arg(long, default_value_t = 17)]
        opset: u32,
        /// Weight storage of the graph: `int8` keeps large weights as int8
        /// with a per-channel scale (a quarter of the size, fp32
        /// arithmetic); the parity gate measures the difference, so pass a
        /// `--tolerance` that admits it.
        #[arg(long, value_enum, default_value_t = ganglion_policies::manifest::WeightStorage::Fp32)]
        weights: ganglion_policies::manifest::WeightStorage,
        /// Bundle name (default: the checkpoint's run folder).
        #[arg(long)]
        name: Option<String>,
        /// Diffusion with a camera: the LeRobotDataset root whose frames are
        /// the parity gate's observations (default: the dataset of the
        /// checkpoint's train_config.json).
        #[arg(long)]
        dataset: Option<PathBuf>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Build TensorRT engines for this machine ahead of time.
    BuildEngine {
        /// Bundle directory or zip archive.
        bundle: PathBuf,
        /// Engine cache directory.
        #[arg(long)]
        engine_cache: PathBuf,
        /// Engine precision (default: the manifest's).
        #[arg(long, value_enum)]
        precision: Option<Precision>,
        /// Public key file or directory of `*.pub`.
        #[arg(long)]
        key: Option<PathBuf>,
        /// Accept a bundle without a verified signature.
        #[arg(long)]
        allow_unsigned: bool,
    },
}

/// How to load a bundle for `bench`.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// Inference backend.
    #[arg(long, value_enum, default_value_t = BackendKind::Tract)]
    backend: BackendKind,
    /// ONNX Runtime execution provider.
    #[arg(long, value_enum, default_value_t = Provider::Cpu)]
    provider: Provider,
    /// ONNX Runtime intra-op threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Public key file or directory of `*.pub`.
    #[arg(long)]
    key: Option<PathBuf>,
    /// Accept a bundle without a verified signature.
    #[arg(long)]
    allow_unsigned: bool,
    /// TensorRT engine cache directory.
    #[arg(long)]
    engine_cache: Option<PathBuf>,
    /// Robot profile whose arm the bundle runs on: a bundle in LeRobot's
    /// range units takes the arm's calibration from its servo transport.
    #[arg(long)]
    profile: Option<PathBuf>,
}

impl LoadArgs {
    fn options(self) -> anyhow::Result<LoadOptions> {
        Ok(LoadOptions {
            backend: self.backend,
            provider: self.provider,
            threads: self.threads,
            trusted_keys: keys(self.key.as_deref())?,
            allow_unsigned: self.allow_unsigned,
            tensorrt: TensorRtOptions { engine_cache_dir: self.engine_cache, precision: None },
            build_engines: false,
            batch: None,
            // Without an arm, a bundle in LeRobot's range units is refused,
            // naming `joints.units`.
            joint_ranges: match &self.profile {
                Some(path) => {
                    let p = ganglion::profile::Profile::load(path)?;
                    ganglion::deploy::arm_joint_ranges(path, &p)
                }
                None => Vec::new(),
            },
            ranges_per_robot: false,
        })
    }
}

/// A joint unit as the manifest spells it.
fn parse_unit(s: &str) -> Result<ganglion_policies::manifest::JointUnit, String> {
    use ganglion_policies::manifest::JointUnit;
    JointUnit::parse(s).ok_or_else(|| {
        let all: Vec<&str> = JointUnit::ALL.iter().map(|u| u.as_str()).collect();
        format!("expected one of {}", all.join(", "))
    })
}

fn keys(path: Option<&Path>) -> anyhow::Result<Vec<ganglion_policies::signing::VerifyingKey>> {
    match path {
        Some(p) => Ok(ganglion_policies::load_trusted_keys(p)?),
        None => Ok(Vec::new()),
    }
}

/// Runs `ganglion policy`.
pub fn run(cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        PolicyCommand::Inspect { bundle, key, json } => {
            let report = ganglion_policies::inspect(&bundle, &keys(key.as_deref())?)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{report}");
            }
            Ok(if report.intact { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        PolicyCommand::Verify { bundle, key } => {
            let opts = ganglion_policies::VerifyOptions { trusted_keys: keys(Some(&key))?, allow_unsigned: false };
            let b = ganglion_policies::open_verified(&bundle, &opts)?;
            println!(
                "{}: OK ({} {}, signature {:?}, {} files verified)",
                bundle.display(),
                b.manifest.name,
                b.manifest.version,
                b.signature,
                b.manifest.files.len()
            );
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Sign { bundle, key } => {
            let sk = ganglion_policies::read_signing_key(&key)?;
            let m = ganglion_policies::sign_bundle(&bundle, &sk)?;
            println!("signed {} ({} {}, {} files)", bundle.display(), m.name, m.version, m.files.len());
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Keygen { out } => {
            let (secret, public) = ganglion_policies::keygen(&out)?;
            println!(
                "secret key {} (keep it off the robot and the repository)\npublic key {}",
                secret.display(),
                public.display()
            );
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Check { bundle, load } => {
            let mut p = ganglion_policies::load_policy(&bundle, &load.options()?)
                .with_context(|| format!("checking {}", bundle.display()))?;
            // An imported bundle runs its signed PyTorch reference again.
            let parity = ganglion_policies::import::parity::recheck(&mut p, &bundle)?;
            if let (Some(r), Some(prov)) = (&parity, &p.manifest().provenance) {
                let line = format!(
                    "parity vs the PyTorch reference: max abs error {:.3e} over {} observations (tolerance {:.1e})",
                    r.max_abs_error, r.samples, prov.parity.tolerance
                );
                if r.max_abs_error.is_nan() || r.max_abs_error > prov.parity.tolerance {
                    anyhow::bail!("{}: {line}: beyond the tolerance", bundle.display());
                }
                println!("{line}");
            }
            let r = p.load_report();
            println!(
                "{}: OK, runs on {} ({}): every graph's inputs and outputs match the manifest; signature {}; load {:.1} ms, first inference {:.1} ms",
                bundle.display(),
                r.backend.as_str(),
                r.execution_provider,
                r.signature,
                r.load_ms,
                r.first_inference_ms
            );
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::CalibrateSurprise { recordings, percentile, margin, json } => {
            let read: Vec<ganglion::recorder::read::Recording> =
                recordings.iter().map(|p| ganglion::recorder::read::Recording::open(p)).collect::<Result<_, _>>()?;
            let c = ganglion::recorder::calibrate::calibrate_surprise(&read, percentile, margin)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&c)?);
            } else {
                println!(
                    "{} chunks from {} recordings while the policy drove: p{} surprise {:.4}, max {:.4}\n\
                     surprise_threshold = {:.4}   ({} x p{}; put it in policy.toml and sign the bundle again)",
                    c.chunks,
                    c.recordings,
                    c.percentile,
                    c.percentile_value,
                    c.max,
                    c.threshold,
                    c.margin,
                    c.percentile
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Bench { bundle, load, iterations, instruction, report } => {
            let opts = load.options()?;
            let r = ganglion_policies::bench_policy(&bundle, &opts, iterations, &instruction)
                .with_context(|| format!("benchmarking {}", bundle.display()))?;
            println!("{}", serde_json::to_string_pretty(&r)?);
            if let Some(path) = report {
                ganglion::report::write_report(&path, &r)?;
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Import {
            checkpoint,
            out,
            key,
            profile,
            python,
            tolerance,
            fps,
            environment_state_from_joints,
            units,
            samples,
            seed,
            opset,
            weights,
            name,
            dataset,
            json,
        } => {
            use ganglion_policies::import::{import_lerobot, ImportOptions, MapOptions, Target};
            let p = ganglion::profile::Profile::load(&profile)?;
            let joints: Vec<String> = p.robot.joints.iter().map(|j| j.name.clone()).collect();
            // One unit stands for every joint.
            let units = match units.as_slice() {
                [one] => vec![*one; joints.len()],
                _ => units,
            };
            let target = Target {
                joint_ranges: ganglion::deploy::arm_joint_ranges(&profile, &p),
                joints,
                cameras: p.robot.cameras,
                loop_rate_hz: Some(p.control.rate_hz),
                units,
            };
            let opts = ImportOptions {
                checkpoint,
                out,
                key: ganglion_policies::read_signing_key(&key)?,
                target,
                map: MapOptions { fps, environment_state_from_joints },
                python,
                tolerance,
                samples,
                seed,
                opset,
                weights,
                name,
                dataset,
            };
            let r = import_lerobot(&opts)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "imported {} into {}\nexport: {}\nparity: max abs error {:.3e} over {} observations on tract (tolerance {:.1e}); slowest inference {:.2} ms\nLeRobot executes {} actions of each chunk; Ganglion's executor replans as the profile's [executor] says",
                    r.policy,
                    r.out.display(),
                    r.export_log,
                    r.parity.max_abs_error,
                    r.parity.samples,
                    r.tolerance,
                    r.parity.max_inference_ms,
                    r.n_action_steps
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::BuildEngine { bundle, engine_cache, precision, key, allow_unsigned } => {
            let opts = LoadOptions {
                backend: BackendKind::Ort,
                provider: Provider::Tensorrt,
                trusted_keys: keys(key.as_deref())?,
                allow_unsigned,
                tensorrt: TensorRtOptions { engine_cache_dir: Some(engine_cache.clone()), precision },
                build_engines: true,
                ..LoadOptions::default()
            };
            let p = ganglion_policies::load_policy(&bundle, &opts)
                .with_context(|| format!("building TensorRT engines for {}", bundle.display()))?;
            println!(
                "engines built in {} (load {:.1} ms, first inference {:.1} ms, provider {})",
                engine_cache.display(),
                p.load_report().load_ms,
                p.load_report().first_inference_ms,
                p.load_report().execution_provider
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}
