//! LeRobot's SmolVLA fixture (policies/fixtures/lerobot-smolvla: prompt
//! tokenizer, VLM prefix with its KV cache, 10 flow-matching steps; random
//! weights) made into a bundle for the 3-joint simulated arm. SmolVLA pads
//! the state to 32 values and slices its 32-wide actions back to the robot's
//! joints, so the same graphs serve it: only the manifest's joints and
//! statistics change, and the copy is re-signed with the TEST key.

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The TEST public key the bundle is signed for.
pub fn public_key() -> PathBuf {
    root().join("policies/fixtures/TEST-ONLY-signing.pub")
}

/// Writes the signed sim-arm SmolVLA bundle under `dir`; returns its path.
pub fn bundle(dir: &Path) -> PathBuf {
    bundle_of(dir, "lerobot-smolvla", false)
}

/// [`bundle`] from the SmolVLA fixture `fixture` (`lerobot-smolvla`, or
/// `lerobot-smolvla-longest`: the prompt at its own length); `guided`:
/// LeRobot's guided real-time chunking (`committed = "guided"`) instead of
/// inpainting.
pub fn bundle_of(dir: &Path, fixture: &str, guided: bool) -> PathBuf {
    let bundle = dir.join(format!("{fixture}{}-sim", if guided { "-guided" } else { "" }));
    std::fs::create_dir_all(&bundle).expect("mkdir");
    let src = root().join("policies/fixtures").join(fixture).join("bundle");
    for f in ["prefix.onnx", "step.onnx", "tokenizer.json"] {
        std::fs::copy(src.join(f), bundle.join(f)).expect("copy");
    }
    let manifest = std::fs::read_to_string(src.join("policy.toml")).expect("manifest");
    let joints = manifest.find("[joints]").expect("[joints]");
    let cameras = manifest.find("[[cameras]]").expect("[[cameras]]");
    let sim_stats = "[joints]\nnames = [\"base_yaw\", \"shoulder_pitch\", \"elbow_pitch\"]\nmean = [0.0, -0.9, 1.1]\n\
                     std = [1.0, 1.0, 1.0]\n\n[action]\nkind = \"absolute\"\nchunk_len = 50\nrate_hz = 30.0\n\
                     mean = [0.0, -0.9, 1.1]\nstd = [0.3, 0.3, 0.3]\n\n";
    let mut manifest = format!("{}{sim_stats}{}", &manifest[..joints], &manifest[cameras..]);
    if guided {
        manifest = manifest.replacen("[dataflow.head]\n", "[dataflow.head]\ncommitted = \"guided\"\n", 1);
        assert!(manifest.contains("committed = \"guided\""), "the manifest has a [dataflow.head]");
    }
    std::fs::write(bundle.join("policy.toml"), manifest).expect("write");
    let key = ganglion_policies::signing::read_signing_key(&root().join("policies/fixtures/TEST-ONLY-signing.key"))
        .expect("test key");
    ganglion_policies::sign_bundle(&bundle, &key).expect("sign");
    bundle
}
