//! ONNX external data: tensors a graph keeps in side files it names by a
//! relative `location`.
//!
//! Left alone, ONNX Runtime and tract open those files themselves, by path,
//! after (and outside) the bundle's signature check: a signed graph could run
//! with weights nobody signed, or with a file swapped in after verification.
//! So this module is the one place that reads a graph's references, and the
//! rule is:
//!
//! - every reference must name, relative to the graph's own folder in the
//!   bundle, a plain relative path (no `.`/`..`, not absolute) that the
//!   signed manifest lists in `[[files]]`, with its byte range inside that
//!   file; anything else refuses the bundle at verification
//!   ([`crate::open_verified`], and so `verify`, `check`, `run`), in
//!   `inspect`, and at `sign`;
//! - only the main graph's initializers may be external (what `onnx`'s
//!   `convert_model_to_external_data` and the PyTorch exporters write);
//!   external tensors in subgraphs, functions, node attributes or sparse
//!   initializers are refused, because ONNX Runtime would resolve those on
//!   its own;
//! - the backends get the verified bytes in memory
//!   ([`crate::backend::GraphModel`]): tract gets them inlined into the parsed
//!   graph, ONNX Runtime as in-memory external-initializer files keyed by the
//!   location as written. No backend ever opens a file of the bundle.

use tract_onnx::pb::{AttributeProto, GraphProto, ModelProto, NodeProto, SparseTensorProto, TensorProto};

/// `TensorProto.DataLocation.EXTERNAL`.
const EXTERNAL: i32 = 1;

/// One tensor stored outside the graph file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalRef {
    /// The initializer's name.
    pub tensor: String,
    /// `location` as written in the graph (the key ONNX Runtime looks up).
    pub location: String,
    /// Byte offset in the file.
    pub offset: u64,
    /// Byte length; the rest of the file when absent.
    pub length: Option<u64>,
}

/// A graph file's external data, resolved against the bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExternalFile {
    /// `location` as written in the graph.
    pub location: String,
    /// The bundle path it resolves to (listed in the manifest).
    pub bundle_path: String,
}

/// Decodes an ONNX model.
pub(crate) fn decode(model: &[u8]) -> Result<ModelProto, String> {
    <ModelProto as prost::Message>::decode(model).map_err(|e| format!("not an ONNX model: {e}"))
}

fn is_external(t: &TensorProto) -> bool {
    t.data_location == Some(EXTERNAL) || !t.external_data.is_empty()
}

/// Every external tensor of `model`. `Err` when one sits anywhere but the
/// main graph's initializers, or when its description is malformed.
pub fn references(model: &ModelProto) -> Result<Vec<ExternalRef>, String> {
    let mut misplaced = Vec::new();
    let mut refs = Vec::new();
    if let Some(g) = &model.graph {
        for t in &g.initializer {
            if is_external(t) {
                refs.push(parse_ref(t)?);
            }
        }
        nested_in_graph(g, "graph", false, &mut misplaced);
    }
    for f in &model.functions {
        let name = format!("function `{}`", f.name.as_deref().unwrap_or(""));
        for n in &f.node {
            nested_in_node(n, &name, &mut misplaced);
        }
    }
    for (i, t) in model.training_info.iter().enumerate() {
        for g in t.initialization.iter().chain(&t.algorithm) {
            nested_in_graph(g, &format!("training_info[{i}]"), true, &mut misplaced);
        }
    }
    if let Some(place) = misplaced.first() {
        return Err(format!(
            "{place} keeps its data in an external file; only the main graph's initializers may \
             (ONNX Runtime would open the others itself): re-export with those tensors inline"
        ));
    }
    Ok(refs)
}

/// Collects external tensors other than the main graph's initializers
/// (`initializers_too` for graphs nested anywhere).
fn nested_in_graph(g: &GraphProto, place: &str, initializers_too: bool, out: &mut Vec<String>) {
    if initializers_too {
        out.extend(
            g.initializer.iter().filter(|t| is_external(t)).map(|t| format!("{place}: initializer `{}`", t.name)),
        );
    }
    for s in &g.sparse_initializer {
        sparse(s, &format!("{place}: sparse initializer"), out);
    }
    for n in &g.node {
        nested_in_node(n, place, out);
    }
}

fn nested_in_node(n: &NodeProto, place: &str, out: &mut Vec<String>) {
    for a in &n.attribute {
        attribute(a, &format!("{place}: node `{}` attribute `{}`", n.name, a.name), out);
    }
}

fn attribute(a: &AttributeProto, place: &str, out: &mut Vec<String>) {
    if a.t.iter().chain(&a.tensors).any(is_external) {
        out.push(place.to_string());
    }
    for s in a.sparse_tensor.iter().chain(&a.sparse_tensors) {
        sparse(s, place, out);
    }
    for g in a.g.iter().chain(&a.graphs) {
        nested_in_graph(g, &format!("{place} (subgraph)"), true, out);
    }
}

fn sparse(s: &SparseTensorProto, place: &str, out: &mut Vec<String>) {
    if s.values.iter().chain(&s.indices).any(is_external) {
        out.push(place.to_string());
    }
}

fn parse_ref(t: &TensorProto) -> Result<ExternalRef, String> {
    let bad = |what: String| format!("initializer `{}`: external data {what}", t.name);
    let (mut location, mut offset, mut length) = (None, 0u64, None);
    for e in &t.external_data {
        let int =
            || e.value.parse::<u64>().map_err(|_| bad(format!("`{}` = {:?} is not a byte count", e.key, e.value)));
        match e.key.as_str() {
            "location" => location = Some(e.value.clone()),
            "offset" => offset = int()?,
            "length" => length = Some(int()?),
            // Informational in the ONNX spec; the manifest's digest covers the file.
            "checksum" => {}
            other => return Err(bad(format!("has unknown key `{other}`"))),
        }
    }
    let location = location.ok_or_else(|| bad("names no `location`".into()))?;
    Ok(ExternalRef { tensor: t.name.clone(), location, offset, length })
}

/// The bundle path `location` names for the graph at `graph_path`, or why it
/// is refused: it must be a plain relative path (no empty, `.` or `..`
/// components, no backslash), resolved in the graph's folder.
pub fn resolve(graph_path: &str, location: &str) -> Result<String, String> {
    let plain = !location.is_empty()
        && !location.starts_with('/')
        && !location.contains(['\\', '\0'])
        && location.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
    if !plain {
        return Err(format!("external data location {location:?} is not a plain relative path inside the bundle"));
    }
    Ok(match graph_path.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/{location}"),
        None => location.to_string(),
    })
}

/// Checks every reference of the graph at `graph_path` against the bundle:
/// `size_of(bundle_path)` is `Some(len)` for a file the manifest lists.
/// Returns the distinct files, in first-use order.
pub fn check_graph(
    graph_path: &str,
    model: &ModelProto,
    size_of: impl Fn(&str) -> Option<u64>,
) -> Result<Vec<ExternalFile>, String> {
    let mut files: Vec<ExternalFile> = Vec::new();
    for r in references(model)? {
        let bundle_path = resolve(graph_path, &r.location).map_err(|e| format!("initializer `{}`: {e}", r.tensor))?;
        let size = size_of(&bundle_path).ok_or_else(|| {
            format!(
                "initializer `{}` keeps its data in `{bundle_path}`, which the signed manifest does not list \
                 (list it in [[files]] and sign again)",
                r.tensor
            )
        })?;
        let end = r.length.map_or(Some(size), |l| r.offset.checked_add(l));
        if r.offset > size || end.is_none_or(|e| e > size) {
            return Err(format!(
                "initializer `{}`: bytes {}..{} of `{bundle_path}` lie outside its {size} bytes",
                r.tensor,
                r.offset,
                end.map_or_else(|| "overflow".to_string(), |e| e.to_string()),
            ));
        }
        if !files.iter().any(|f| f.location == r.location) {
            files.push(ExternalFile { location: r.location, bundle_path });
        }
    }
    Ok(files)
}

/// Replaces every external initializer of `model` with its bytes from
/// `files` (location as written → verified bytes), so the model names no
/// file any more.
pub(crate) fn inline(model: &mut ModelProto, files: &[(&str, &[u8])]) -> Result<(), String> {
    let refs = references(model)?;
    let Some(g) = model.graph.as_mut() else { return Ok(()) };
    for (t, r) in g.initializer.iter_mut().filter(|t| is_external(t)).zip(refs) {
        let data = files
            .iter()
            .find(|(loc, _)| *loc == r.location)
            .map(|(_, d)| *d)
            .ok_or_else(|| format!("initializer `{}`: no verified bytes for `{}`", r.tensor, r.location))?;
        let start = usize::try_from(r.offset).map_err(|_| format!("initializer `{}`: offset too large", r.tensor))?;
        let end = match r.length {
            Some(l) => usize::try_from(l).ok().and_then(|l| start.checked_add(l)),
            None => Some(data.len()),
        };
        let bytes = end
            .and_then(|end| data.get(start..end))
            .ok_or_else(|| format!("initializer `{}`: range outside `{}`", r.tensor, r.location))?;
        t.raw_data = bytes.to_vec();
        t.external_data.clear();
        t.data_location = None;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::pb::StringStringEntryProto;

    fn ext(name: &str, location: &str, offset: u64, length: u64) -> TensorProto {
        let kv = |k: &str, v: String| StringStringEntryProto { key: k.into(), value: v };
        TensorProto {
            name: name.into(),
            dims: vec![2],
            data_type: 1,
            data_location: Some(EXTERNAL),
            external_data: vec![
                kv("location", location.into()),
                kv("offset", offset.to_string()),
                kv("length", length.to_string()),
            ],
            ..TensorProto::default()
        }
    }

    fn model(initializers: Vec<TensorProto>) -> ModelProto {
        ModelProto {
            graph: Some(GraphProto { initializer: initializers, ..GraphProto::default() }),
            ..ModelProto::default()
        }
    }

    #[test]
    fn locations_resolve_in_the_graphs_folder_and_only_plainly() {
        assert_eq!(resolve("policy.onnx", "policy.onnx.data"), Ok("policy.onnx.data".into()));
        assert_eq!(resolve("graphs/prefix.onnx", "w/prefix.bin"), Ok("graphs/w/prefix.bin".into()));
        for bad in ["", "/etc/passwd", "../outside.bin", "a/../../b", "./x", "a//b", "a\\b", "x/"] {
            assert!(resolve("graphs/p.onnx", bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn unlisted_and_out_of_range_references_are_refused() {
        let m = model(vec![ext("w", "policy.onnx.data", 0, 8)]);
        let listed = |p: &str| (p == "policy.onnx.data").then_some(8);
        let files = check_graph("policy.onnx", &m, listed).expect("listed");
        assert_eq!(
            files,
            vec![ExternalFile { location: "policy.onnx.data".into(), bundle_path: "policy.onnx.data".into() }]
        );

        let err = check_graph("policy.onnx", &m, |_| None).expect_err("unlisted accepted");
        assert!(err.contains("policy.onnx.data") && err.contains("does not list"), "{err}");

        let long = model(vec![ext("w", "policy.onnx.data", 4, 8)]);
        let err = check_graph("policy.onnx", &long, listed).expect_err("range past the end accepted");
        assert!(err.contains("4..12") && err.contains("8 bytes"), "{err}");

        let overflow = model(vec![ext("w", "policy.onnx.data", 1, u64::MAX)]);
        assert!(check_graph("policy.onnx", &overflow, listed).is_err());
    }

    #[test]
    fn external_tensors_outside_the_main_initializers_are_refused() {
        let mut node = NodeProto { name: "c".into(), op_type: "Constant".into(), ..NodeProto::default() };
        node.attribute.push(AttributeProto {
            name: "value".into(),
            t: Some(ext("v", "d.bin", 0, 8)),
            ..AttributeProto::default()
        });
        let m = ModelProto {
            graph: Some(GraphProto { node: vec![node.clone()], ..GraphProto::default() }),
            ..ModelProto::default()
        };
        let err = references(&m).expect_err("constant node with external data accepted");
        assert!(err.contains("node `c` attribute `value`"), "{err}");

        // A subgraph (If/Loop body) whose initializer is external.
        let body = GraphProto { initializer: vec![ext("w", "d.bin", 0, 8)], ..GraphProto::default() };
        let mut iff = NodeProto { name: "if".into(), op_type: "If".into(), ..NodeProto::default() };
        iff.attribute.push(AttributeProto { name: "then_branch".into(), g: Some(body), ..AttributeProto::default() });
        let m = ModelProto {
            graph: Some(GraphProto { node: vec![iff], ..GraphProto::default() }),
            ..ModelProto::default()
        };
        let err = references(&m).expect_err("subgraph initializer with external data accepted");
        assert!(err.contains("subgraph") && err.contains("initializer `w`"), "{err}");
    }

    #[test]
    fn malformed_descriptions_are_refused() {
        let mut t = ext("w", "d.bin", 0, 8);
        t.external_data[1].value = "-3".into();
        assert!(references(&model(vec![t])).expect_err("negative offset").contains("offset"));
        let mut t = ext("w", "d.bin", 0, 8);
        t.external_data.remove(0);
        assert!(references(&model(vec![t])).expect_err("no location").contains("location"));
    }

    #[test]
    fn inlining_leaves_no_reference() {
        let mut m = model(vec![ext("a", "d.bin", 0, 8), ext("b", "d.bin", 8, 8)]);
        let data: Vec<u8> = (0..16).collect();
        inline(&mut m, &[("d.bin", &data)]).expect("inline");
        assert!(references(&m).expect("refs").is_empty());
        let g = m.graph.as_ref().expect("graph");
        assert_eq!(g.initializer[0].raw_data, (0..8).collect::<Vec<u8>>());
        assert_eq!(g.initializer[1].raw_data, (8..16).collect::<Vec<u8>>());
        assert_eq!(g.initializer[1].data_location, None);
    }
}
