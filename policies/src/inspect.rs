//! `ganglion policy inspect` and `verify`: what a bundle holds and whether
//! it is intact. Model files are parsed only once their digest checked out,
//! and only for the files they name themselves (external data).

use std::path::Path;

use ed25519_dalek::VerifyingKey;

use crate::bundle::BundleSource;
use crate::error::BundleError;
use crate::external_data;
use crate::manifest::{Manifest, TensorSpec, MANIFEST_FILE, SIGNATURE_FILE};
use crate::signing::{sha256_hex, verify_bytes};

/// One file of the bundle.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileReport {
    /// Path in the bundle.
    pub path: String,
    /// Size in bytes (0 when missing).
    pub size_bytes: u64,
    /// Digest the manifest lists.
    pub sha256: String,
    /// `ok`, `mismatch (file has …)`, `missing` or `no digest`.
    pub status: String,
}

/// One graph of the bundle.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GraphReport {
    /// `encoder`, `dynamics`, `action_head`, `text_encoder` or `policy`.
    pub role: String,
    /// ONNX file.
    pub file: String,
    /// Inputs from the manifest.
    pub inputs: Vec<TensorSpec>,
    /// Outputs from the manifest.
    pub outputs: Vec<TensorSpec>,
    /// The graph's own inputs as its ONNX file declares them (initializers
    /// excluded): `name dtype [dims]`, symbolic dimensions by name; empty
    /// when the file was not intact. Compare with `inputs`; `policy check`
    /// loads the graph and decides.
    pub graph_inputs: Vec<String>,
    /// The graph's own outputs as its ONNX file declares them.
    pub graph_outputs: Vec<String>,
    /// Bundle paths of the external-data files the graph names.
    pub external_data: Vec<String>,
    /// `ok`, `not checked (graph file not intact)`, or why the graph's
    /// external data is refused.
    pub external_data_status: String,
}

/// Everything `inspect` prints.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct InspectReport {
    /// Policy name.
    pub name: String,
    /// Policy version.
    pub version: String,
    /// Precision.
    pub precision: String,
    /// Joints.
    pub joints: Vec<String>,
    /// Chunk length × policy rate.
    pub chunk_len: usize,
    /// Policy rate, Hz.
    pub rate_hz: f64,
    /// Signature status (`valid (key …)`, `missing`, `INVALID: …`, `not checked`).
    pub signature: String,
    /// Graphs.
    pub graphs: Vec<GraphReport>,
    /// Files with digest status.
    pub files: Vec<FileReport>,
    /// Whether signature (when keys were given) and every digest check out.
    pub intact: bool,
    /// Where an imported bundle came from and its parity gate
    /// (`[provenance]`); absent for bundles made by hand.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provenance: Option<crate::manifest::Provenance>,
}

/// Inspects the bundle at `path`; checks the signature when `keys` is not
/// empty. Only an unreadable or invalid manifest is an error.
pub fn inspect(path: &Path, keys: &[VerifyingKey]) -> Result<InspectReport, BundleError> {
    let source = BundleSource::open(path)?;
    let manifest_path = source.display_path(MANIFEST_FILE);
    let bytes = source.read(MANIFEST_FILE)?;
    let mut intact = true;
    let signature = match source.read_opt(SIGNATURE_FILE)? {
        None => {
            intact = false;
            "missing".to_string()
        }
        Some(_) if keys.is_empty() => "present, not checked (no --key given)".to_string(),
        Some(sig) => match verify_bytes(keys, &bytes, &sig, &source.display_path(SIGNATURE_FILE), &manifest_path) {
            Ok(id) => format!("valid (key {id})"),
            Err(e) => {
                intact = false;
                format!("INVALID: {e}")
            }
        },
    };
    let m = Manifest::parse(&bytes, &manifest_path)?;
    let mut files = Vec::new();
    for f in &m.files {
        let (size, status) = match source.read_opt(&f.path)? {
            None => (0, "missing".to_string()),
            Some(b) => {
                let actual = sha256_hex(&b);
                let s = if f.sha256.is_empty() {
                    "no digest".to_string()
                } else if actual == f.sha256 {
                    "ok".to_string()
                } else {
                    format!("mismatch (file has {actual})")
                };
                (b.len() as u64, s)
            }
        };
        intact &= status == "ok";
        files.push(FileReport { path: f.path.clone(), size_bytes: size, sha256: f.sha256.clone(), status });
    }
    let intact_size = |path: &str| files.iter().find(|f| f.path == path && f.status == "ok").map(|f| f.size_bytes);
    let mut graphs = Vec::new();
    for (key, g) in m.all_graphs() {
        let (mut graph_inputs, mut graph_outputs) = (Vec::new(), Vec::new());
        let (external_data, status) = match intact_size(&g.file) {
            None => (Vec::new(), "not checked (graph file not intact)".to_string()),
            Some(_) => {
                let bytes = source.read(&g.file)?;
                match external_data::decode(&bytes) {
                    Err(reason) => (Vec::new(), format!("REFUSED: {reason}")),
                    Ok(model) => {
                        if let Some(graph) = &model.graph {
                            let inits: Vec<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
                            graph_inputs = graph
                                .input
                                .iter()
                                .filter(|v| !inits.contains(&v.name.as_str()))
                                .map(describe)
                                .collect();
                            graph_outputs = graph.output.iter().map(describe).collect();
                        }
                        match external_data::check_graph(&g.file, &model, intact_size) {
                            Ok(list) => (list.into_iter().map(|f| f.bundle_path).collect(), "ok".to_string()),
                            Err(reason) => (Vec::new(), format!("REFUSED: {reason}")),
                        }
                    }
                }
            }
        };
        intact &= status == "ok";
        graphs.push(GraphReport {
            // `encoder`, `policy` (format 1) or the graph's name (format 2).
            role: key.rsplit('.').next().unwrap_or(&key).to_string(),
            file: g.file.clone(),
            inputs: g.inputs.clone(),
            outputs: g.outputs.clone(),
            graph_inputs,
            graph_outputs,
            external_data,
            external_data_status: status,
        });
    }
    Ok(InspectReport {
        name: m.name.clone(),
        version: m.version.clone(),
        precision: m.precision.as_str().to_string(),
        joints: m.joints.names.clone(),
        chunk_len: m.action.chunk_len,
        rate_hz: m.action.rate_hz,
        signature,
        graphs,
        files,
        intact,
        provenance: m.provenance.clone(),
    })
}

/// `name dtype [dims]` of a graph input or output as its ONNX file declares it.
fn describe(v: &tract_onnx::pb::ValueInfoProto) -> String {
    use tract_onnx::pb::tensor_shape_proto::dimension::Value;
    use tract_onnx::pb::{tensor_proto::DataType, type_proto};
    match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => {
            let dtype = DataType::try_from(t.elem_type)
                .map_or_else(|_| format!("type {}", t.elem_type), |d| format!("{d:?}").to_lowercase());
            let dims: Vec<String> = t.shape.as_ref().map_or_else(Vec::new, |s| {
                s.dim
                    .iter()
                    .map(|d| match &d.value {
                        Some(Value::DimValue(n)) => n.to_string(),
                        Some(Value::DimParam(p)) => p.clone(),
                        None => "?".into(),
                    })
                    .collect()
            });
            format!("{} {dtype} [{}]", v.name, dims.join(", "))
        }
        _ => format!("{} (not a tensor)", v.name),
    }
}

impl std::fmt::Display for InspectReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "policy     {} {} ({})", self.name, self.version, self.precision)?;
        writeln!(f, "joints     {}", self.joints.join(", "))?;
        writeln!(f, "actions    {} per chunk at {} Hz", self.chunk_len, self.rate_hz)?;
        writeln!(f, "signature  {}", self.signature)?;
        for g in &self.graphs {
            writeln!(f, "graph      {} ({})", g.role, g.file)?;
            for (dir, list) in [("in ", &g.graph_inputs), ("out", &g.graph_outputs)] {
                for t in list {
                    writeln!(f, "  onnx {dir} {t}")?;
                }
            }
            if !g.external_data.is_empty() {
                writeln!(f, "  external data {}", g.external_data.join(", "))?;
            }
            if g.external_data_status != "ok" {
                writeln!(f, "  external data {}", g.external_data_status)?;
            }
            for (dir, list) in [("in ", &g.inputs), ("out", &g.outputs)] {
                for t in list {
                    writeln!(f, "  {dir} {:<20} {:?} {} ({} values)", t.name, t.shape, t.dtype.as_str(), t.len())?;
                }
            }
        }
        if let Some(p) = &self.provenance {
            writeln!(
                f,
                "imported   {} {} (lerobot {}, torch {}, onnx opset {}, {} weights), weights sha256 {}",
                p.source,
                p.policy_type,
                p.lerobot_version,
                p.torch_version,
                p.onnx_opset,
                p.weights.as_str(),
                p.checkpoint_sha256
            )?;
            let r = &p.parity;
            writeln!(
                f,
                "parity     max abs error {:.3e} vs PyTorch over {} observations on {} (tolerance {:.1e}; reference {})",
                r.max_abs_error, r.samples, r.backend, r.tolerance, r.reference
            )?;
        }
        for file in &self.files {
            writeln!(f, "file       {:<24} {:>10} B  {}  {}", file.path, file.size_bytes, file.sha256, file.status)?;
        }
        write!(f, "intact     {}", if self.intact { "yes" } else { "NO" })
    }
}
