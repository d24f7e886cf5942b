//! ed25519 keys and signatures for bundles.
//!
//! Key files are one line of lower-case hex: 32 bytes of secret seed in
//! `<name>.key` (mode 0600), 32 bytes of public key in `<name>.pub`. The
//! signature file `signature.ed25519` is one line of hex of the 64-byte
//! signature over the exact bytes of `policy.toml`, which list every file's
//! SHA-256, so one signature covers the whole bundle.

use std::io::Read;
use std::path::{Path, PathBuf};

use ed25519_dalek::{Signature, Signer, Verifier};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::error::BundleError;

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Short identifier of a public key for logs: the first 16 hex digits of its
/// SHA-256.
pub fn key_id(key: &VerifyingKey) -> String {
    sha256_hex(key.as_bytes())[..16].to_string()
}

fn read_hex<const N: usize>(file: &Path) -> Result<[u8; N], BundleError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| BundleError::Key { file: file.to_path_buf(), reason: format!("cannot read: {e}") })?;
    let bytes = hex::decode(text.trim()).map_err(|e| BundleError::Key {
        file: file.to_path_buf(),
        reason: format!("expected {} hex digits: {e}", N * 2),
    })?;
    bytes.try_into().map_err(|b: Vec<u8>| BundleError::Key {
        file: file.to_path_buf(),
        reason: format!("expected {N} bytes ({} hex digits), found {}", N * 2, b.len()),
    })
}

/// Reads a secret key file.
pub fn read_signing_key(file: &Path) -> Result<SigningKey, BundleError> {
    Ok(SigningKey::from_bytes(&read_hex::<32>(file)?))
}

/// Reads a public key file.
pub fn read_verifying_key(file: &Path) -> Result<VerifyingKey, BundleError> {
    let bytes = read_hex::<32>(file)?;
    VerifyingKey::from_bytes(&bytes)
        .map_err(|e| BundleError::Key { file: file.to_path_buf(), reason: format!("not an ed25519 public key: {e}") })
}

/// Trusted keys from a `.pub` file or from every `*.pub` in a directory.
pub fn load_trusted_keys(path: &Path) -> Result<Vec<VerifyingKey>, BundleError> {
    if !path.is_dir() {
        return Ok(vec![read_verifying_key(path)?]);
    }
    let entries = std::fs::read_dir(path)
        .map_err(|e| BundleError::Key { file: path.to_path_buf(), reason: format!("cannot list keys: {e}") })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pub"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(BundleError::Key {
            file: path.to_path_buf(),
            reason: "no *.pub key files in this directory".into(),
        });
    }
    files.iter().map(|f| read_verifying_key(f)).collect()
}

/// Generates a key pair from the OS random source and writes
/// `<prefix>.key` (mode 0600) and `<prefix>.pub`; refuses to overwrite.
/// Returns the two paths.
pub fn keygen(prefix: &Path) -> Result<(PathBuf, PathBuf), BundleError> {
    let secret_path = prefix.with_extension("key");
    let public_path = prefix.with_extension("pub");
    let mut seed = [0u8; 32];
    // /dev/urandom is the kernel CSPRNG; it never blocks once the system
    // has booted, which is all a key-generation command needs.
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut seed)).map_err(|e| BundleError::Key {
        file: "/dev/urandom".into(),
        reason: format!("cannot read randomness: {e}"),
    })?;
    let key = SigningKey::from_bytes(&seed);
    write_new(&secret_path, &hex::encode(key.to_bytes()), 0o600)?;
    write_new(&public_path, &hex::encode(key.verifying_key().as_bytes()), 0o644)?;
    Ok((secret_path, public_path))
}

fn write_new(path: &Path, hex_text: &str, mode: u32) -> Result<(), BundleError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e: std::io::Error| BundleError::Key { file: path.to_path_buf(), reason: format!("cannot write: {e}") };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let mut f = std::fs::OpenOptions::new().write(true).create_new(true).mode(mode).open(path).map_err(err)?;
    f.write_all(format!("{hex_text}\n").as_bytes()).map_err(err)
}

/// Signs `message`, returning the signature file's text.
pub fn sign_bytes(key: &SigningKey, message: &[u8]) -> String {
    format!("{}\n", hex::encode(key.sign(message).to_bytes()))
}

/// Checks `signature_text` (the signature file) over `message` against the
/// trusted keys; returns the id of the key that verified.
///
/// `sig_file` and `manifest_file` only name the files in errors.
pub fn verify_bytes(
    trusted: &[VerifyingKey],
    message: &[u8],
    signature_text: &[u8],
    sig_file: &Path,
    manifest_file: &Path,
) -> Result<String, BundleError> {
    let reject = |reason: String| BundleError::Signature { file: sig_file.to_path_buf(), reason };
    let text = std::str::from_utf8(signature_text).map_err(|_| reject("not text (expected 128 hex digits)".into()))?;
    let raw = hex::decode(text.trim()).map_err(|e| reject(format!("expected 128 hex digits: {e}")))?;
    let raw: [u8; 64] = raw.try_into().map_err(|b: Vec<u8>| reject(format!("expected 64 bytes, found {}", b.len())))?;
    let sig = Signature::from_bytes(&raw);
    if trusted.is_empty() {
        return Err(reject("no trusted public key configured (profile keys, keys dir or --key)".into()));
    }
    for key in trusted {
        if key.verify(message, &sig).is_ok() {
            return Ok(key_id(key));
        }
    }
    Err(reject(format!(
        "does not verify over {} with any of {} trusted key(s): the manifest or the signature was altered, or an untrusted key signed it",
        manifest_file.display(),
        trusted.len()
    )))
}
