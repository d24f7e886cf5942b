//! Shared test helpers: fixture paths, the test key, bundle copies.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use ganglion_policies::signing::VerifyingKey;
use ganglion_policies::{BackendKind, LoadOptions, Provider};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

pub fn test_public_key() -> VerifyingKey {
    ganglion_policies::read_verifying_key(&fixtures().join("TEST-ONLY-signing.pub")).expect("test public key")
}

pub fn test_secret_key() -> ganglion_policies::signing::SigningKey {
    ganglion_policies::read_signing_key(&fixtures().join("TEST-ONLY-signing.key")).expect("test secret key")
}

pub fn opts(backend: BackendKind) -> LoadOptions {
    LoadOptions { backend, provider: ort_provider(), trusted_keys: vec![test_public_key()], ..LoadOptions::default() }
}

/// The execution provider the ONNX Runtime tests load on: the CPU, unless
/// `GANGLION_TEST_ORT_PROVIDER` names another (`cuda`): how the parity tests
/// are repeated on a GPU machine (policies/gpu/run.sh). A name that is not a
/// provider fails the test rather than falling back to the CPU.
pub fn ort_provider() -> Provider {
    match std::env::var("GANGLION_TEST_ORT_PROVIDER").as_deref() {
        Err(_) | Ok("" | "cpu") => Provider::Cpu,
        Ok("cuda") => Provider::Cuda,
        Ok("tensorrt") => Provider::Tensorrt,
        Ok(other) => panic!("GANGLION_TEST_ORT_PROVIDER={other}: expected cpu, cuda or tensorrt"),
    }
}

/// Copies a fixture bundle into a fresh temporary directory.
pub fn copy_bundle(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dst = tmp.path().join(name);
    std::fs::create_dir_all(&dst).expect("mkdir");
    for e in std::fs::read_dir(fixtures().join(name)).expect("fixture dir") {
        let e = e.expect("entry");
        std::fs::copy(e.path(), dst.join(e.file_name())).expect("copy");
    }
    (tmp, dst)
}

/// Flips one bit of byte `at` (from the end when negative) of `file`.
pub fn flip_byte(file: &Path, at: isize) {
    let mut b = std::fs::read(file).expect("read");
    let i = if at < 0 { (b.len() as isize + at) as usize } else { at as usize };
    b[i] ^= 0x01;
    std::fs::write(file, b).expect("write");
}

/// Whether ONNX Runtime can be loaded. On a developer's machine without it
/// this prints why and the caller skips; in CI (`CI` set), which installs it
/// (`.ci/setup`), a missing ONNX Runtime fails the test instead of passing
/// silently.
pub fn ort_or_skip(test: &str) -> bool {
    match ganglion_policies::backend::ort_available() {
        Ok(_) => true,
        Err(e) if std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false")) => {
            panic!("{test}: ONNX Runtime unavailable in CI, where .ci/setup installs it: {e}")
        }
        Err(e) => {
            eprintln!("SKIP {test}: ONNX Runtime unavailable: {e}");
            false
        }
    }
}

/// Deterministic pseudo-random values in [-1, 1).
pub fn pseudo_random(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

/// ONNX Runtime on the CPU, one thread, fp32.
pub fn ort_cpu() -> ganglion_policies::backend::BackendChoice {
    ganglion_policies::backend::BackendChoice::Ort {
        provider: ganglion_policies::Provider::Cpu,
        threads: 1,
        tensorrt: ganglion_policies::TensorRtOptions::default(),
        precision: ganglion_policies::manifest::Precision::Fp32,
        build_engines: false,
    }
}

/// Runs `g` on fixed inputs (pseudo-random f32, a u8 ramp, i64 ones, all true) and
/// returns its first output.
pub fn run_on_fixed_inputs(mut g: ganglion_policies::backend::Graph) -> Vec<f32> {
    use ganglion_policies::backend::TensorBuf;
    for (i, input) in g.io_mut().inputs.iter_mut().enumerate() {
        match input {
            TensorBuf::F32(x) => {
                let r = pseudo_random(x.len(), i as u64);
                x.copy_from_slice(&r)
            }
            TensorBuf::U8(x) => x.iter_mut().enumerate().for_each(|(j, v)| *v = (j * 37 % 251) as u8),
            TensorBuf::I64(x) => x.fill(1),
            TensorBuf::Bool(x) => x.fill(true),
        }
    }
    g.run().expect("run");
    g.output(0).to_vec()
}
