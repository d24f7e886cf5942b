//! How `ganglion run` maps the profile's `[policy] backend` and
//! `execution_provider` onto the policy backend that loads the bundle.
//!
//! | `backend` | `execution_provider` | runs on |
//! |-----------|----------------------|---------|
//! | `tract`   | `cpu` (others are ignored with a warning: tract is CPU-only) | tract |
//! | `ort`     | `cpu`                | ONNX Runtime, CPU provider |
//! | `ort`     | `cuda` / `tensorrt`  | ONNX Runtime with that provider, registered so that failure is an error (ONNX Runtime would otherwise fall back to CPU silently) |
//! | `auto`    | ignored              | ONNX Runtime + CUDA when the library has CUDA and an NVIDIA GPU exists, else tract |
//!
//! When `cuda` / `tensorrt` is unavailable (no ONNX Runtime library, a
//! CPU-only build such as the PyPI wheel, no NVIDIA GPU, TensorRT without
//! prebuilt engines, or registration failing), `ganglion run --strict`
//! refuses to start and names the reason; without `--strict` it logs a
//! warning with the reason and runs ONNX Runtime on the CPU provider. Either
//! way the provider actually in use is logged (`policy backend in use`).

use std::path::Path;

use anyhow::Context;
use ganglion_policies::backend::ort_available;
use ganglion_policies::backend::ort_backend::{gpu_name, provider_compiled_in};
use ganglion_policies::signing::VerifyingKey;
use ganglion_policies::{BackendKind, BundleError, BundlePolicy, LoadOptions, Provider};

use crate::profile::PolicyConfig;

/// Why `provider` cannot run on this machine, checked before loading;
/// `None` when it may (registration can still fail, see [`load_bundle`]).
pub fn provider_unavailable(provider: Provider) -> Option<String> {
    if provider == Provider::Cpu {
        return None;
    }
    let lib = match ort_available() {
        Ok(lib) => lib,
        Err(e) => return Some(format!("ONNX Runtime cannot be loaded ({e})")),
    };
    if !provider_compiled_in(provider) {
        return Some(format!(
            "the ONNX Runtime library {} has no {} (a CPU-only build)",
            lib.path.display(),
            provider.ort_name()
        ));
    }
    if gpu_name().is_none() {
        return Some("no NVIDIA GPU found (/proc/driver/nvidia, Jetson device tree)".into());
    }
    None
}

/// The signers `run` trusts: `--key` when given, else `[policy]
/// trusted_keys` of the profile at `profile_path`, else none (then only an
/// unsigned bundle with `allow_unsigned` loads). Never the development key:
/// its secret is published. A key that cannot be read is an error naming
/// where it was configured.
pub fn trusted_keys(
    profile_path: &Path,
    cfg: &PolicyConfig,
    cli_key: Option<&Path>,
) -> anyhow::Result<Vec<VerifyingKey>> {
    match (cli_key, &cfg.trusted_keys) {
        (Some(k), _) => ganglion_policies::load_trusted_keys(k)
            .with_context(|| format!("--key: reading trusted key {}", k.display())),
        (None, Some(k)) => ganglion_policies::load_trusted_keys(k).with_context(|| {
            format!("{}: `policy.trusted_keys`: reading trusted key {}", profile_path.display(), k.display())
        }),
        (None, None) => Ok(Vec::new()),
    }
}

/// Loads `bundle` with the backend `[policy]` names; `base` carries the
/// trust settings. See the module docs for the provider fallback and what
/// `strict` changes.
pub fn load_bundle(bundle: &Path, cfg: &PolicyConfig, base: LoadOptions, strict: bool) -> anyhow::Result<BundlePolicy> {
    let (backend, provider) = (cfg.backend, cfg.execution_provider);
    let load = |provider: Provider| {
        let opts = LoadOptions { backend, provider, ..base.clone() };
        ganglion_policies::load_policy(bundle, &opts)
    };
    let fall_back = |reason: String| -> anyhow::Result<BundlePolicy> {
        let name = provider.as_str();
        if strict {
            anyhow::bail!(
                "[policy] execution_provider = \"{name}\" is unavailable: {reason}; --strict refuses to fall back to CPU"
            );
        }
        tracing::warn!(
            requested = name,
            reason = %reason,
            "[policy] execution_provider unavailable: running ONNX Runtime on the CPU provider instead"
        );
        load(Provider::Cpu).with_context(|| format!("loading bundle {} (ort, cpu fallback)", bundle.display()))
    };
    let policy = match backend {
        BackendKind::Tract if provider != Provider::Cpu => {
            tracing::warn!(
                requested = provider.as_str(),
                "[policy] backend = \"tract\" runs on the CPU; execution_provider is ignored"
            );
            load(Provider::Cpu).with_context(|| format!("loading bundle {}", bundle.display()))?
        }
        BackendKind::Ort if provider != Provider::Cpu => match provider_unavailable(provider) {
            Some(reason) => fall_back(reason)?,
            None => match load(provider) {
                Ok(p) => p,
                // A provider that registers but fails (driver, CUDA libraries,
                // missing TensorRT engines) surfaces as a backend error.
                Err(BundleError::Backend(reason)) => fall_back(reason)?,
                Err(e) => return Err(e).with_context(|| format!("loading bundle {}", bundle.display())),
            },
        },
        _ => load(provider).with_context(|| format!("loading bundle {}", bundle.display()))?,
    };
    let r = policy.load_report();
    tracing::info!(
        backend = r.backend.as_str(),
        execution_provider = %r.execution_provider,
        reason = %r.backend_reason,
        "policy backend in use"
    );
    Ok(policy)
}

/// Seeds `policy`'s noise for this run: `configured` (`[policy]
/// noise_seed`), else 8 bytes from the OS (the clock's nanoseconds if the OS
/// has none to give). Returns the seed, which the caller records; bundles
/// without an iterative head ignore it.
pub fn seed_noise(policy: &mut BundlePolicy, configured: Option<u64>) -> u64 {
    let seed = configured.unwrap_or_else(os_seed);
    policy.set_noise_seed(seed);
    tracing::info!(seed, configured = configured.is_some(), "policy noise seed");
    seed
}

/// A seed from the OS (8 bytes of /dev/urandom; the clock's nanoseconds if
/// the OS has none to give).
pub fn os_seed() -> u64 {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    match std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64),
    }
}

/// The recording's `noise_seed` metadata, if the run had one.
pub fn recorded_seed(info: &std::collections::BTreeMap<String, String>) -> anyhow::Result<Option<u64>> {
    match info.get("noise_seed").filter(|s| !s.is_empty()) {
        None => Ok(None),
        Some(s) => s.parse().map(Some).with_context(|| format!("metadata `noise_seed` = {s:?}: expected an integer")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(backend: BackendKind, ep: Provider) -> PolicyConfig {
        PolicyConfig { backend, execution_provider: ep, ..PolicyConfig::default() }
    }

    #[test]
    fn cpu_is_always_available() {
        assert_eq!(provider_unavailable(Provider::Cpu), None);
    }

    fn reach_v1() -> (std::path::PathBuf, LoadOptions) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/reference");
        let key = ganglion_policies::load_trusted_keys(&root.join("dev-key.pub")).expect("dev key");
        (root.join("reach-v1"), LoadOptions { trusted_keys: key, ..LoadOptions::default() })
    }

    /// The committed bundle on ONNX Runtime with a GPU provider: where the
    /// provider is unavailable (CI, this machine: CPU-only wheel, no GPU),
    /// strict refuses naming the provider and the reason, and the default
    /// runs on the CPU provider; where it is available, both use it.
    #[test]
    fn gpu_providers_refuse_under_strict_or_fall_back_to_cpu() {
        let (bundle, base) = reach_v1();
        for provider in [Provider::Cuda, Provider::Tensorrt] {
            let ort_name = provider.ort_name();
            let cfg = cfg(BackendKind::Ort, provider);
            let strict = load_bundle(&bundle, &cfg, base.clone(), true);
            let relaxed = load_bundle(&bundle, &cfg, base.clone(), false).expect("loads, on the GPU or on CPU");
            assert_eq!(relaxed.load_report().backend, BackendKind::Ort);
            match provider_unavailable(provider) {
                Some(reason) => {
                    let e = format!("{:#}", strict.expect_err("strict refuses"));
                    let name = provider.as_str();
                    assert!(e.contains(&format!("execution_provider = \"{name}\" is unavailable")), "{e}");
                    assert!(e.contains(&reason) && e.contains("--strict"), "{e}");
                    assert_eq!(relaxed.load_report().execution_provider, "CPUExecutionProvider");
                }
                None if provider == Provider::Tensorrt => {
                    // No engine cache is configured: registration fails, so
                    // the same refusal / fallback applies.
                    assert!(strict.is_err());
                    assert_eq!(relaxed.load_report().execution_provider, "CPUExecutionProvider");
                }
                None => {
                    assert_eq!(strict.expect("strict loads").load_report().execution_provider, ort_name);
                    assert_eq!(relaxed.load_report().execution_provider, ort_name);
                }
            }
        }
    }

    /// `[policy] trusted_keys` decides what a signed bundle needs; `--key`
    /// overrides it; a bad path names the profile and the key.
    #[test]
    fn trusted_keys_come_from_the_flag_or_the_profile() {
        let (bundle, _) = reach_v1();
        let dev_key = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies/reference/dev-key.pub");
        let keys_dir = tempfile::tempdir().expect("tempdir");
        std::fs::copy(&dev_key, keys_dir.path().join("signer.pub")).expect("copy key");
        let profile = Path::new("/etc/ganglion/robot.toml");
        let tract = |trusted_keys: Option<std::path::PathBuf>| PolicyConfig {
            trusted_keys,
            ..cfg(BackendKind::Tract, Provider::Cpu)
        };
        let load = |cfg: &PolicyConfig, cli: Option<&Path>| -> anyhow::Result<BundlePolicy> {
            let keys = trusted_keys(profile, cfg, cli)?;
            load_bundle(&bundle, cfg, LoadOptions { trusted_keys: keys, ..LoadOptions::default() }, true)
        };

        load(&tract(Some(keys_dir.path().to_path_buf())), None).expect("a directory of *.pub trusted by the profile");
        let e = format!("{:#}", load(&tract(None), None).expect_err("no trusted key: a signed bundle is refused"));
        assert!(e.contains("reach-v1"), "{e}");

        let missing = keys_dir.path().join("absent");
        let e = format!("{:#}", trusted_keys(profile, &tract(Some(missing.clone())), None).expect_err("missing"));
        assert!(e.contains("/etc/ganglion/robot.toml: `policy.trusted_keys`"), "{e}");
        assert!(e.contains(&missing.display().to_string()), "{e}");
        load(&tract(Some(missing)), Some(&dev_key)).expect("--key overrides the profile's keys");

        let empty = tempfile::tempdir().expect("tempdir");
        let e = format!("{:#}", trusted_keys(profile, &tract(Some(empty.path().into())), None).expect_err("empty"));
        assert!(e.contains("no *.pub key files"), "{e}");
    }

    #[test]
    fn cpu_and_tract_choices_load_what_they_name() {
        let (bundle, base) = reach_v1();
        let ort = load_bundle(&bundle, &cfg(BackendKind::Ort, Provider::Cpu), base.clone(), true).expect("ort");
        assert_eq!(ort.load_report().backend, BackendKind::Ort);
        assert_eq!(ort.load_report().execution_provider, "CPUExecutionProvider");
        // tract ignores a GPU provider (with a warning), even under --strict.
        let tract = load_bundle(&bundle, &cfg(BackendKind::Tract, Provider::Cuda), base, true).expect("tract");
        assert_eq!(tract.load_report().backend, BackendKind::Tract);
    }
}
