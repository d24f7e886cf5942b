//! Signatures and digests: tampered, unsigned and untrusted bundles are
//! refused before any model file is parsed, with errors naming the file.

mod common;

use std::io::Write;
use std::os::unix::fs::PermissionsExt;

use common::*;
use ganglion_policies::{open_verified, BundleError, SignatureStatus, VerifyOptions};

fn trusted() -> VerifyOptions {
    VerifyOptions { trusted_keys: vec![test_public_key()], allow_unsigned: false }
}

#[test]
fn committed_fixture_bundles_verify_with_the_test_key() {
    for name in ["wm", "single"] {
        let b = open_verified(&fixtures().join(name), &trusted()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(matches!(b.signature, SignatureStatus::Valid { .. }), "{name}: {:?}", b.signature);
    }
}

#[test]
fn flipped_model_byte_is_refused_naming_the_file() {
    let (_t, dir) = copy_bundle("wm");
    // Flip a byte in the middle of the weights: still plausible protobuf for
    // a parser, so only the digest check can catch it.
    flip_byte(&dir.join("encoder.onnx"), 5000);
    let err = open_verified(&dir, &trusted()).expect_err("tampered model accepted");
    assert!(matches!(err, BundleError::Digest { .. }), "{err:?}");
    assert!(err.to_string().contains("encoder.onnx"), "{err}");
}

#[test]
fn flipped_model_byte_fails_load_before_parsing() {
    let (_t, dir) = copy_bundle("wm");
    // Truncate the graph to garbage: a parser would fail with a Model error;
    // verification must fail first with a Digest error.
    std::fs::write(dir.join("dynamics.onnx"), b"not an onnx file").expect("write");
    let err = ganglion_policies::load_policy(&dir, &opts(ganglion_policies::BackendKind::Tract)).expect_err("accepted");
    assert!(matches!(err, BundleError::Digest { .. }), "parsed before verifying: {err:?}");
    assert!(err.to_string().contains("dynamics.onnx"), "{err}");
}

#[test]
fn flipped_manifest_byte_is_refused_naming_the_manifest() {
    let (_t, dir) = copy_bundle("wm");
    let text = std::fs::read_to_string(dir.join("policy.toml")).expect("read");
    // A semantically relevant, still-valid edit: a different latency.
    let edited = text.replacen("expected_latency_ms = 5.0", "expected_latency_ms = 4.0", 1);
    assert_ne!(text, edited, "fixture manifest changed; update the test");
    std::fs::write(dir.join("policy.toml"), edited).expect("write");
    let err = open_verified(&dir, &trusted()).expect_err("tampered manifest accepted");
    assert!(matches!(err, BundleError::Signature { .. }), "{err:?}");
    assert!(err.to_string().contains("policy.toml"), "{err}");
}

#[test]
fn flipped_signature_byte_is_refused_naming_the_signature() {
    let (_t, dir) = copy_bundle("wm");
    let sig = std::fs::read_to_string(dir.join("signature.ed25519")).expect("read");
    // Change one hex digit to another hex digit: well-formed, wrong.
    let mut chars: Vec<char> = sig.chars().collect();
    chars[10] = if chars[10] == '0' { '1' } else { '0' };
    std::fs::write(dir.join("signature.ed25519"), chars.into_iter().collect::<String>()).expect("write");
    let err = open_verified(&dir, &trusted()).expect_err("tampered signature accepted");
    assert!(matches!(err, BundleError::Signature { .. }), "{err:?}");
    assert!(err.to_string().contains("signature.ed25519"), "{err}");
    // A flipped raw byte (not hex any more) is refused too.
    let (_t2, dir2) = copy_bundle("wm");
    flip_byte(&dir2.join("signature.ed25519"), 3);
    flip_byte(&dir2.join("signature.ed25519"), 3);
    let mut f = std::fs::OpenOptions::new().append(true).open(dir2.join("signature.ed25519")).expect("open");
    f.write_all(b"zz").expect("append");
    let err = open_verified(&dir2, &trusted()).expect_err("garbled signature accepted");
    assert!(err.to_string().contains("signature.ed25519"), "{err}");
}

#[test]
fn unsigned_bundle_needs_explicit_permission() {
    let (_t, dir) = copy_bundle("wm");
    std::fs::remove_file(dir.join("signature.ed25519")).expect("rm");
    let err = open_verified(&dir, &trusted()).expect_err("unsigned accepted");
    assert!(err.to_string().contains("signature.ed25519") && err.to_string().contains("unsigned"), "{err}");
    let allowed = VerifyOptions { trusted_keys: vec![], allow_unsigned: true };
    let b = open_verified(&dir, &allowed).expect("allowed");
    assert_eq!(b.signature, SignatureStatus::Unsigned);
    // Digests are still enforced when unsigned bundles are allowed.
    flip_byte(&dir.join("vocab.txt"), 0);
    let err = open_verified(&dir, &allowed).expect_err("tampered file accepted");
    assert!(err.to_string().contains("vocab.txt"), "{err}");
}

#[test]
fn untrusted_key_is_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (_, public) = ganglion_policies::keygen(&tmp.path().join("other")).expect("keygen");
    let other = ganglion_policies::read_verifying_key(&public).expect("pub");
    let err =
        open_verified(&fixtures().join("wm"), &VerifyOptions { trusted_keys: vec![other], allow_unsigned: false })
            .expect_err("untrusted key accepted");
    assert!(matches!(err, BundleError::Signature { .. }), "{err:?}");
}

#[test]
fn keygen_sign_verify_round_trip_and_key_permissions() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (secret, public) = ganglion_policies::keygen(&tmp.path().join("keys/robot")).expect("keygen");
    let mode = std::fs::metadata(&secret).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "secret key must be private");
    assert!(ganglion_policies::keygen(&tmp.path().join("keys/robot")).is_err(), "keygen overwrote a key");
    let (_t, dir) = copy_bundle("single");
    std::fs::remove_file(dir.join("signature.ed25519")).expect("rm");
    let sk = ganglion_policies::read_signing_key(&secret).expect("sk");
    ganglion_policies::sign_bundle(&dir, &sk).expect("sign");
    let keys = ganglion_policies::load_trusted_keys(&tmp.path().join("keys")).expect("keys dir");
    assert_eq!(keys, vec![ganglion_policies::read_verifying_key(&public).expect("pk")]);
    let b = open_verified(&dir, &VerifyOptions { trusted_keys: keys, allow_unsigned: false }).expect("verify");
    assert!(b.manifest.files.iter().all(|f| f.sha256.len() == 64));
    // The test key does not verify a bundle signed by another key.
    assert!(open_verified(&dir, &trusted()).is_err());
}

#[test]
fn zip_archive_form_verifies_and_detects_tampering() {
    let tmp = tempfile::tempdir().expect("tmp");
    let zip_path = tmp.path().join("wm.zip");
    let write_zip = |tamper: bool| {
        let f = std::fs::File::create(&zip_path).expect("create");
        let mut z = zip::ZipWriter::new(f);
        for e in std::fs::read_dir(fixtures().join("wm")).expect("dir") {
            let e = e.expect("entry");
            let name = e.file_name().to_string_lossy().to_string();
            let mut bytes = std::fs::read(e.path()).expect("read");
            if tamper && name == "action_head.onnx" {
                let i = bytes.len() / 2;
                bytes[i] ^= 1;
            }
            z.start_file(name, zip::write::SimpleFileOptions::default()).expect("start");
            z.write_all(&bytes).expect("write");
        }
        z.finish().expect("finish");
    };
    write_zip(false);
    let b = open_verified(&zip_path, &trusted()).expect("zip verifies");
    assert_eq!(b.manifest.name, "wm-fixture");
    write_zip(true);
    let err = open_verified(&zip_path, &trusted()).expect_err("tampered zip accepted");
    assert!(err.to_string().contains("action_head.onnx"), "{err}");
}

#[test]
fn missing_listed_file_is_named() {
    let (_t, dir) = copy_bundle("wm");
    std::fs::remove_file(dir.join("text_encoder.onnx")).expect("rm");
    let err = open_verified(&dir, &trusted()).expect_err("missing file accepted");
    assert!(matches!(err, BundleError::MissingFile { .. }), "{err:?}");
    assert!(err.to_string().contains("text_encoder.onnx"), "{err}");
}

#[test]
fn malformed_key_files_are_clear_errors() {
    let tmp = tempfile::tempdir().expect("tmp");
    let p = tmp.path().join("bad.pub");
    std::fs::write(&p, "abcd\n").expect("write");
    let err = ganglion_policies::read_verifying_key(&p).expect_err("short key accepted");
    assert!(err.to_string().contains("bad.pub") && err.to_string().contains("32 bytes"), "{err}");
    std::fs::write(&p, "zz".repeat(32)).expect("write");
    assert!(ganglion_policies::read_verifying_key(&p).is_err());
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).expect("mkdir");
    assert!(ganglion_policies::load_trusted_keys(&empty).expect_err("no keys").to_string().contains("no *.pub"));
}
