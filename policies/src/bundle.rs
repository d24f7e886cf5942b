//! Reading a bundle (directory or zip archive) and verifying it.
//!
//! Order of operations, which is the security argument: read the manifest
//! bytes → check the signature over those bytes → parse the manifest → read
//! every listed file and check its SHA-256 → hand the *verified bytes in
//! memory* to the backends. Nothing is re-read from disk after verification,
//! so a file swapped in between cannot be parsed. Graphs are then read for
//! the files they name themselves (ONNX external data): each must be listed,
//! and so verified, and reaches the backends from memory too
//! ([`crate::external_data`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::backend::GraphModel;
use crate::error::BundleError;
use crate::external_data::{self, ExternalFile};
use crate::manifest::{Manifest, MANIFEST_FILE, SIGNATURE_FILE};
use crate::signing::{sha256_hex, sign_bytes, verify_bytes};

/// Where a bundle's files come from.
#[derive(Debug)]
pub enum BundleSource {
    /// A directory holding `policy.toml` and the files.
    Dir(PathBuf),
    /// A zip archive with the same files at its root, read into memory.
    Zip {
        /// The archive.
        path: PathBuf,
        /// Entry name → bytes.
        entries: HashMap<String, Vec<u8>>,
    },
}

impl BundleSource {
    /// Opens a directory, or a zip archive when `path` is a file.
    pub fn open(path: &Path) -> Result<Self, BundleError> {
        let io = |reason: String| BundleError::Io { file: path.to_path_buf(), reason };
        let meta = std::fs::metadata(path).map_err(|e| io(format!("cannot open bundle: {e}")))?;
        if meta.is_dir() {
            return Ok(BundleSource::Dir(path.to_path_buf()));
        }
        let file = std::fs::File::open(path).map_err(|e| io(format!("cannot open archive: {e}")))?;
        let mut zip = zip::ZipArchive::new(file).map_err(|e| io(format!("not a directory or zip archive: {e}")))?;
        let mut entries = HashMap::new();
        for i in 0..zip.len() {
            let mut entry = zip.by_index(i).map_err(|e| io(format!("archive entry {i}: {e}")))?;
            if entry.is_dir() {
                continue;
            }
            let name = entry.name().to_string();
            let mut bytes = Vec::with_capacity(entry.size() as usize);
            entry.read_to_end(&mut bytes).map_err(|e| io(format!("archive entry {name}: {e}")))?;
            entries.insert(name, bytes);
        }
        Ok(BundleSource::Zip { path: path.to_path_buf(), entries })
    }

    /// Path naming `name` in errors and reports.
    pub fn display_path(&self, name: &str) -> PathBuf {
        match self {
            BundleSource::Dir(d) => d.join(name),
            BundleSource::Zip { path, .. } => PathBuf::from(format!("{}!{name}", path.display())),
        }
    }

    /// The bytes of `name`; `None` when absent.
    pub fn read_opt(&self, name: &str) -> Result<Option<Vec<u8>>, BundleError> {
        match self {
            BundleSource::Dir(d) => match std::fs::read(d.join(name)) {
                Ok(b) => Ok(Some(b)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(BundleError::Io { file: d.join(name), reason: e.to_string() }),
            },
            BundleSource::Zip { entries, .. } => Ok(entries.get(name).cloned()),
        }
    }

    /// The bytes of `name`; [`BundleError::MissingFile`] when absent.
    pub fn read(&self, name: &str) -> Result<Vec<u8>, BundleError> {
        self.read_opt(name)?.ok_or_else(|| BundleError::MissingFile { file: self.display_path(name) })
    }
}

/// What is known about a bundle's signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignatureStatus {
    /// Verified with the trusted key of this id.
    Valid {
        /// [`crate::signing::key_id`] of the key.
        key_id: String,
    },
    /// No signature file; accepted only because unsigned bundles are allowed.
    Unsigned,
    /// A signature exists but no trusted key was given; accepted only because
    /// unsigned bundles are allowed.
    NotChecked,
}

/// How to verify a bundle.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Keys whose signatures are trusted.
    pub trusted_keys: Vec<VerifyingKey>,
    /// Accept bundles without a valid signature check (a warning is logged
    /// on every load). Digests listed in the manifest are still checked.
    pub allow_unsigned: bool,
}

/// A bundle whose signature and digests were checked, with the verified
/// bytes of every listed file in memory.
#[derive(Debug)]
pub struct VerifiedBundle {
    /// Where it came from.
    pub source: BundleSource,
    /// The validated manifest.
    pub manifest: Manifest,
    /// Signature status.
    pub signature: SignatureStatus,
    files: HashMap<String, Vec<u8>>,
    /// Graph path → `(location as written, verified bytes)` of the external
    /// data it names; absent for self-contained graphs.
    external: HashMap<String, Vec<(String, Vec<u8>)>>,
}

impl VerifiedBundle {
    /// Verified bytes of a listed file.
    pub fn file(&self, path: &str) -> Result<&[u8], BundleError> {
        self.files
            .get(path)
            .map(Vec::as_slice)
            .ok_or_else(|| BundleError::MissingFile { file: self.source.display_path(path) })
    }

    /// Path naming `name` in errors.
    pub fn display_path(&self, name: &str) -> PathBuf {
        self.source.display_path(name)
    }

    /// The verified bytes of the graph at `path` and of every external-data
    /// file it names, ready for [`crate::backend::Graph::load`]. `scratch`
    /// holds the list of external files the returned value borrows.
    pub fn graph_model<'a>(
        &'a self,
        path: &str,
        scratch: &'a mut Vec<(&'a str, &'a [u8])>,
    ) -> Result<GraphModel<'a>, BundleError> {
        let graph = self.file(path)?;
        scratch.clear();
        if let Some(files) = self.external.get(path) {
            scratch.extend(files.iter().map(|(loc, bytes)| (loc.as_str(), bytes.as_slice())));
        }
        Ok(GraphModel { graph, external: scratch })
    }
}

/// The external-data files of every graph of `manifest`, checked against the
/// listed files (`size_of` gives a listed file's size). Only verified bytes
/// may be passed in `graph_bytes`: this parses them.
fn check_external_data<'m, 'b>(
    manifest: &'m Manifest,
    graph_bytes: impl Fn(&str) -> Result<Cow<'b, [u8]>, BundleError>,
    size_of: impl Fn(&str) -> Option<u64>,
    display: impl Fn(&str) -> PathBuf,
) -> Result<Vec<(&'m str, Vec<ExternalFile>)>, BundleError> {
    let mut out = Vec::new();
    for (_, spec) in manifest.all_graphs() {
        let bytes = graph_bytes(&spec.file)?;
        let refused = |reason: String| BundleError::ExternalData { file: display(&spec.file), reason };
        let model = external_data::decode(&bytes).map_err(refused)?;
        let files = external_data::check_graph(&spec.file, &model, &size_of).map_err(refused)?;
        if !files.is_empty() {
            out.push((spec.file.as_str(), files));
        }
    }
    Ok(out)
}

/// Opens and verifies the bundle at `path` (see the module docs for the
/// order of checks).
pub fn open_verified(path: &Path, opts: &VerifyOptions) -> Result<VerifiedBundle, BundleError> {
    let source = BundleSource::open(path)?;
    let manifest_path = source.display_path(MANIFEST_FILE);
    let sig_path = source.display_path(SIGNATURE_FILE);
    let manifest_bytes = source.read(MANIFEST_FILE)?;
    let signature = match source.read_opt(SIGNATURE_FILE)? {
        Some(sig) if !opts.trusted_keys.is_empty() || !opts.allow_unsigned => SignatureStatus::Valid {
            key_id: verify_bytes(&opts.trusted_keys, &manifest_bytes, &sig, &sig_path, &manifest_path)?,
        },
        Some(_) => SignatureStatus::NotChecked,
        None if opts.allow_unsigned => SignatureStatus::Unsigned,
        None => {
            return Err(BundleError::Signature {
                file: sig_path,
                reason: "missing: the bundle is unsigned (sign it with `ganglion policy sign`, or allow unsigned bundles in the profile)".into(),
            })
        }
    };
    if !matches!(signature, SignatureStatus::Valid { .. }) {
        tracing::warn!(bundle = %path.display(), status = ?signature, "loading a bundle whose signature was not verified (allow_unsigned)");
    }
    let manifest = Manifest::parse(&manifest_bytes, &manifest_path)?;
    let mut files = HashMap::with_capacity(manifest.files.len());
    for (i, entry) in manifest.files.iter().enumerate() {
        let bytes = source.read(&entry.path)?;
        let actual = sha256_hex(&bytes);
        if entry.sha256.is_empty() {
            if !opts.allow_unsigned {
                return Err(BundleError::Manifest {
                    file: manifest_path,
                    key: format!("files[{i}].sha256"),
                    problem: format!("no digest for `{}`: run `ganglion policy sign`", entry.path),
                });
            }
            tracing::warn!(file = %entry.path, "bundle file has no digest (allow_unsigned)");
        } else if entry.sha256 != actual {
            return Err(BundleError::Digest {
                file: source.display_path(&entry.path),
                expected: entry.sha256.clone(),
                actual,
            });
        }
        files.insert(entry.path.clone(), bytes);
    }
    let external = check_external_data(
        &manifest,
        |p| {
            files
                .get(p)
                .map(|b| Cow::Borrowed(b.as_slice()))
                .ok_or_else(|| BundleError::MissingFile { file: source.display_path(p) })
        },
        |p| files.get(p).map(|b| b.len() as u64),
        |p| source.display_path(p),
    )?
    .into_iter()
    .map(|(graph, refs)| {
        let data = refs.into_iter().filter_map(|f| Some((f.location, files.get(&f.bundle_path)?.clone()))).collect();
        (graph.to_string(), data)
    })
    .collect();
    Ok(VerifiedBundle { source, manifest, signature, files, external })
}

/// Fills every file digest of the bundle directory `dir`, rewrites
/// `policy.toml` in canonical form (comments are not kept) and writes
/// `signature.ed25519`. Returns the rewritten manifest.
pub fn sign_bundle(dir: &Path, key: &SigningKey) -> Result<Manifest, BundleError> {
    let source = BundleSource::open(dir)?;
    if !matches!(source, BundleSource::Dir(_)) {
        return Err(BundleError::Io {
            file: dir.to_path_buf(),
            reason: "sign a bundle directory, then archive it".into(),
        });
    }
    let manifest_path = source.display_path(MANIFEST_FILE);
    let mut manifest = Manifest::parse(&source.read(MANIFEST_FILE)?, &manifest_path)?;
    for entry in &mut manifest.files {
        entry.sha256 = sha256_hex(&source.read(&entry.path)?);
    }
    // Refuse to sign what `open_verified` would refuse: a graph whose
    // external data the manifest does not list.
    check_external_data(
        &manifest,
        |p| source.read(p).map(Cow::Owned),
        |p| manifest.files.iter().any(|f| f.path == p).then(|| source.read(p).ok().map(|b| b.len() as u64)).flatten(),
        |p| source.display_path(p),
    )?;
    let text = manifest.to_canonical_toml();
    // The canonical text must read back as the same manifest, or the
    // signature would cover something the loader interprets differently.
    let reparsed = Manifest::parse(text.as_bytes(), &manifest_path)?;
    if reparsed != manifest {
        return Err(BundleError::Manifest {
            file: manifest_path,
            key: "(document)".into(),
            problem: "canonical form does not read back identically".into(),
        });
    }
    let write = |name: &str, data: &str| {
        std::fs::write(dir.join(name), data)
            .map_err(|e| BundleError::Io { file: dir.join(name), reason: e.to_string() })
    };
    write(MANIFEST_FILE, &text)?;
    write(SIGNATURE_FILE, &sign_bytes(key, text.as_bytes()))?;
    Ok(manifest)
}
