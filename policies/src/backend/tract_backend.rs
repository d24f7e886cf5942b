//! tract: pure-Rust CPU inference, the default that needs nothing installed.
//!
//! The graph is typed and optimized once at load with the manifest's input
//! shapes, then run through one long-lived state. An axis that follows the
//! prompt's length is the symbol `L` in tract (`L + 17` where the manifest
//! says so): tract optimizes once for every length and resolves `L` from
//! each run's inputs.

use std::path::Path;

use tract_onnx::prelude::*;

use super::{copy_output, widen_output, Engine, GraphIo, GraphModel, Narrowed, TensorBuf};
use crate::error::BundleError;
use crate::manifest::{DType, GraphSpec, TensorSpec, PROMPT_LEN};

/// A graph loaded in tract.
pub struct TractEngine {
    state: TypedSimpleState,
    input_names: Vec<String>,
    /// Inputs narrower than their host buffers (f16, i32), refilled per run.
    narrowed: Vec<Narrowed>,
    /// The graph's element type of each output.
    outputs: Vec<DType>,
    /// Inputs taken once for every run ([`Engine::hold_inputs`]): tract
    /// tensors are reference-counted, so each run gets the same one.
    held: Vec<Option<TValue>>,
    /// Bytes copied into input tensors since load.
    copied: u64,
}

/// tract's element type for `d`; tract has no bfloat16.
fn datum(d: DType) -> Result<DatumType, String> {
    Ok(match d {
        DType::F32 => f32::datum_type(),
        DType::F16 => f16::datum_type(),
        DType::U8 => u8::datum_type(),
        DType::I32 => i32::datum_type(),
        DType::I64 => i64::datum_type(),
        DType::Bool => bool::datum_type(),
        DType::Bf16 => return Err("tract has no bf16: run this bundle with `--backend ort`".into()),
    })
}

impl TractEngine {
    /// Parses, types and optimizes `model` with the shapes of `spec`.
    pub fn load(spec: &GraphSpec, model: GraphModel<'_>, file: &Path) -> Result<Self, BundleError> {
        let err = |reason: String| BundleError::Model { file: file.to_path_buf(), reason };
        for t in spec.inputs.iter().chain(&spec.outputs) {
            datum(t.dtype).map_err(|e| err(format!("tensor `{}`: {e}", t.name)))?;
        }
        let onnx = tract_onnx::onnx();
        // External data is inlined from the verified bytes into the parsed
        // graph: tract, given no model path, never resolves a location itself.
        let mut proto = crate::external_data::decode(model.graph).map_err(err)?;
        if !model.external.is_empty() {
            crate::external_data::inline(&mut proto, model.external).map_err(err)?;
        }
        check_declared_inputs(&proto, spec).map_err(err)?;
        strip_symbolic_value_info(&mut proto);
        small_powers_as_products(&mut proto);
        let mut m =
            onnx.model_for_proto_model(&proto).map_err(|e| err(format!("tract cannot parse the ONNX graph: {e:#}")))?;
        let names: Vec<String> =
            m.input_outlets().map_err(|e| err(format!("{e}")))?.iter().map(|o| m.node(o.node).name.clone()).collect();
        check_names(&names, spec.inputs.iter().map(|t| t.name.as_str()), "inputs").map_err(err)?;
        // Outputs the manifest does not declare are pruned (never computed).
        let outlets = m.output_outlets().map_err(|e| err(format!("{e}")))?.to_vec();
        let label =
            |o: &OutletId| m.outlet_label(*o).map(str::to_string).unwrap_or_else(|| m.node(o.node).name.clone());
        let graph_outputs: Vec<String> = outlets.iter().map(label).collect();
        let selected = select_outputs(&graph_outputs, spec.outputs.iter().map(|t| t.name.as_str())).map_err(err)?;
        let selected: Vec<OutletId> = selected.into_iter().map(|i| outlets[i]).collect();
        m.select_output_outlets(&selected).map_err(|e| err(format!("{e}")))?;
        let prompt_len = m.symbols.sym(PROMPT_LEN);
        if spec.inputs.iter().chain(&spec.outputs).any(TensorSpec::follows_prompt) {
            m.symbols.add_assertion(format!("{PROMPT_LEN} >= 1")).map_err(|e| err(format!("{e:#}")))?;
        }
        let axis = |t: &TensorSpec, i: usize, n: usize| match t.prompt_axes.iter().find(|a| a.axis == i) {
            Some(a) => TDim::from(prompt_len.clone()) * a.scale as i64 + a.offset as i64,
            None => TDim::from(n),
        };
        for (i, t) in spec.inputs.iter().enumerate() {
            let shape: TVec<TDim> = t.shape.iter().enumerate().map(|(k, &n)| axis(t, k, n)).collect();
            let fact = InferenceFact::dt_shape(datum(t.dtype).map_err(err)?, shape);
            m.set_input_fact(i, fact).map_err(|e| err(format!("input `{}`: {e:#}", t.name)))?;
        }
        let typed = m
            .into_optimized()
            .map_err(|e| err(format!("graph does not type-check with the manifest's input shapes/dtypes: {e:#}")))?;
        let out_names: Vec<String> = typed
            .output_outlets()
            .map_err(|e| err(format!("{e}")))?
            .iter()
            .map(|o| typed.outlet_label(*o).map(str::to_string).unwrap_or_else(|| typed.node(o.node).name.clone()))
            .collect();
        check_names(&out_names, spec.outputs.iter().map(|t| t.name.as_str()), "outputs").map_err(err)?;
        for (i, t) in spec.outputs.iter().enumerate() {
            let fact = typed.output_fact(i).map_err(|e| err(format!("{e}")))?;
            // A shape that follows the prompt must agree for every length:
            // checked at the shortest and the longest prompt (the shapes are
            // affine in `L`, so two lengths decide).
            let max_len = t
                .prompt_axes
                .first()
                .map_or(1, |a| t.shape.get(a.axis).map_or(1, |&n| n.saturating_sub(a.offset) / a.scale));
            let mut expected = t.shape.clone();
            for tokens in [1, max_len] {
                t.shape_at(tokens, &mut expected);
                let at = SymbolValues::default().with(&prompt_len, tokens as i64);
                let shape = fact.shape.eval(&at).ok().and_then(|s| s.as_concrete().map(|s| s.to_vec()));
                if shape.as_deref() != Some(&expected[..]) {
                    return Err(err(format!(
                        "output `{}` has shape {:?} in the graph, manifest declares {}",
                        t.name,
                        fact.shape,
                        t.shape_text()
                    )));
                }
            }
            if fact.datum_type != datum(t.dtype).map_err(err)? {
                return Err(err(format!(
                    "output `{}` is {:?} in the graph, manifest declares {}",
                    t.name,
                    fact.datum_type,
                    t.dtype.as_str()
                )));
            }
        }
        let plan = typed.into_runnable().map_err(|e| err(format!("tract cannot plan the graph: {e:#}")))?;
        let state = TypedSimpleState::new(&plan).map_err(|e| err(format!("{e:#}")))?;
        Ok(TractEngine {
            state,
            input_names: spec.inputs.iter().map(|t| t.name.clone()).collect(),
            narrowed: spec.inputs.iter().map(Narrowed::for_tensor).collect(),
            outputs: spec.outputs.iter().map(|t| t.dtype).collect(),
            held: spec.inputs.iter().map(|_| None).collect(),
            copied: 0,
        })
    }

    /// Input `i` of `buf` as a tract tensor of the graph's type in the
    /// run's `shape`: a copy of its first values (narrowed first where the
    /// graph's type is narrower).
    fn tensor(&mut self, i: usize, buf: &TensorBuf, shape: &[usize]) -> Result<TValue, String> {
        let (Some(narrow), Some(name)) = (self.narrowed.get_mut(i), self.input_names.get(i)) else {
            return Err(format!("input {i} beyond the graph's"));
        };
        let n: usize = shape.iter().product();
        narrow.fill(buf, n, name)?;
        let short = || format!("input `{name}`: {n} values for shape {shape:?}, the buffer holds {}", buf.len());
        let t = match (narrow, buf) {
            (Narrowed::F16(v), _) => Tensor::from_shape(shape, v.get(..n).ok_or_else(short)?),
            (Narrowed::I32(v), _) => Tensor::from_shape(shape, v.get(..n).ok_or_else(short)?),
            (Narrowed::Bf16(_), _) => return Err("tract has no bf16".into()),
            (Narrowed::Same, TensorBuf::F32(v)) => Tensor::from_shape(shape, v.get(..n).ok_or_else(short)?),
            (Narrowed::Same, TensorBuf::U8(v)) => Tensor::from_shape(shape, v.get(..n).ok_or_else(short)?),
            (Narrowed::Same, TensorBuf::I64(v)) => Tensor::from_shape(shape, v.get(..n).ok_or_else(short)?),
            (Narrowed::Same, TensorBuf::Bool(v)) => Tensor::from_shape(shape, v.get(..n).ok_or_else(short)?),
        }
        .map_err(|e| format!("{e:#}"))?;
        self.copied += (t.len() * t.datum_type().size_of()) as u64;
        Ok(t.into_tvalue())
    }
}

/// Compares the element type and fixed dimensions the graph declares for
/// each manifest input with the manifest's (a symbolic dimension takes the
/// manifest's size), naming the tensor on a mismatch.
fn check_declared_inputs(proto: &tract_onnx::pb::ModelProto, spec: &GraphSpec) -> Result<(), String> {
    use tract_onnx::pb::tensor_shape_proto::dimension::Value;
    use tract_onnx::pb::type_proto;
    let Some(g) = proto.graph.as_ref() else { return Err("the ONNX file holds no graph".into()) };
    for t in &spec.inputs {
        let Some(Some(type_proto::Value::TensorType(tt))) =
            g.input.iter().find(|v| v.name == t.name).map(|v| v.r#type.as_ref().and_then(|ty| ty.value.as_ref()))
        else {
            continue; // the name check reports a missing input
        };
        if tt.elem_type != t.dtype.onnx_code() {
            return Err(format!(
                "input `{}` has ONNX element type {} in the graph, manifest declares {}",
                t.name,
                tt.elem_type,
                t.dtype.as_str()
            ));
        }
        if let Some(shape) = &tt.shape {
            // The graph's shape as ONNX writes it: `[1, L, 48]`.
            let text = || {
                let dims: Vec<String> = shape
                    .dim
                    .iter()
                    .map(|d| match &d.value {
                        Some(Value::DimValue(v)) => v.to_string(),
                        Some(Value::DimParam(p)) => p.clone(),
                        None => "?".into(),
                    })
                    .collect();
                format!("[{}]", dims.join(", "))
            };
            let fixed = |k: usize| matches!(shape.dim.get(k).and_then(|d| d.value.as_ref()), Some(Value::DimValue(_)));
            if let Some(a) = t.prompt_axes.iter().find(|a| fixed(a.axis)) {
                return Err(super::prompt_axis_fixed(&t.name, a, &text()));
            }
            let fits = shape.dim.len() == t.shape.len()
                && shape.dim.iter().zip(&t.shape).all(|(d, &m)| match d.value {
                    Some(Value::DimValue(v)) => usize::try_from(v).is_ok_and(|v| v == m),
                    _ => true,
                });
            if !fits {
                return Err(format!(
                    "input `{}` has shape {} in the graph, manifest declares {}",
                    t.name,
                    text(),
                    t.shape_text()
                ));
            }
        }
    }
    Ok(())
}

/// Drops the intermediate shape annotations (`value_info`) that carry a
/// symbolic dimension. ONNX Runtime's quantizer leaves the export's symbolic
/// batch `N` there while the inputs are fixed to the manifest's batch of 1,
/// and tract refuses to unify the two ("Impossible to unify Sym(N) with
/// Val(1)"); the annotations are hints, tract infers the shapes itself.
fn strip_symbolic_value_info(proto: &mut tract_onnx::pb::ModelProto) {
    use tract_onnx::pb::tensor_shape_proto::dimension::Value;
    use tract_onnx::pb::type_proto;
    let symbolic = |v: &tract_onnx::pb::ValueInfoProto| match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => {
            t.shape.as_ref().is_some_and(|s| s.dim.iter().any(|d| matches!(d.value, Some(Value::DimParam(_)) | None)))
        }
        _ => false,
    };
    if let Some(g) = proto.graph.as_mut() {
        g.value_info.retain(|v| !symbolic(v));
    }
}

/// Rewrites each `Pow(x, 2)` and `Pow(x, 3)` whose exponent is a constant
/// as `x·x` and `x·x·x`. tract runs `Pow` as a generic power even for a
/// small integer exponent, and the tanh-approximated GELU of the Gemma and
/// SigLIP MLPs (π0, π0.5, SmolVLA) cubes every activation this way: 10–24 %
/// of those graphs' time on tract (docs/BENCHMARKS.md). The products differ
/// from `powf` by at most a rounding step (2.4e-7 measured on π0's step).
/// Returns how many nodes were rewritten.
pub(crate) fn small_powers_as_products(proto: &mut tract_onnx::pb::ModelProto) -> usize {
    use tract_onnx::pb::{NodeProto, TensorProto};
    let Some(g) = proto.graph.as_mut() else { return 0 };
    // A float scalar constant's value (float or double data, or raw bytes).
    let scalar = |t: &TensorProto| -> Option<f64> {
        if t.dims.iter().product::<i64>() != 1 {
            return None;
        }
        match t.data_type {
            1 => t.float_data.first().map(|&v| f64::from(v)).or_else(|| {
                t.raw_data.get(..4).and_then(|b| b.try_into().ok()).map(|b| f64::from(f32::from_le_bytes(b)))
            }),
            11 => t
                .double_data
                .first()
                .copied()
                .or_else(|| t.raw_data.get(..8).and_then(|b| b.try_into().ok()).map(f64::from_le_bytes)),
            _ => None,
        }
    };
    let mut constants: std::collections::HashMap<String, f64> =
        g.initializer.iter().filter_map(|t| scalar(t).map(|v| (t.name.clone(), v))).collect();
    for n in g.node.iter().filter(|n| n.op_type == "Constant") {
        let value = n.attribute.iter().find(|a| a.name == "value").and_then(|a| a.t.as_ref()).and_then(scalar);
        if let (Some(v), Some(out)) = (value, n.output.first()) {
            constants.insert(out.clone(), v);
        }
    }
    let mut rewritten = 0;
    let mut nodes = Vec::with_capacity(g.node.len());
    for n in std::mem::take(&mut g.node) {
        let power = match (n.op_type.as_str(), n.input.as_slice(), n.output.as_slice()) {
            ("Pow", [x, e], [y]) if n.domain.is_empty() => match constants.get(e) {
                Some(&p) if p == 2.0 || p == 3.0 => Some((x.clone(), y.clone(), p)),
                _ => None,
            },
            _ => None,
        };
        let Some((x, y, p)) = power else {
            nodes.push(n);
            continue;
        };
        let mul = |inputs: [&str; 2], output: &str, name: String| NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.to_string()],
            name,
            op_type: "Mul".into(),
            ..NodeProto::default()
        };
        if p == 2.0 {
            nodes.push(mul([&x, &x], &y, format!("{}_as_square", n.name)));
        } else {
            let square = format!("{y}_ganglion_square");
            nodes.push(mul([&x, &x], &square, format!("{}_square", n.name)));
            nodes.push(mul([&square, &x], &y, format!("{}_as_cube", n.name)));
        }
        rewritten += 1;
    }
    g.node = nodes;
    rewritten
}

/// Indices into `graph` of the manifest's outputs, in manifest order. The
/// graph may have more outputs (an export's auxiliary heads); every declared
/// one must be there.
pub(crate) fn select_outputs<'a>(
    graph: &[String],
    manifest: impl Iterator<Item = &'a str>,
) -> Result<Vec<usize>, String> {
    manifest
        .map(|name| {
            graph.iter().position(|g| g == name).ok_or_else(|| {
                format!("output `{name}` declared by the manifest is not among the graph's outputs {graph:?}")
            })
        })
        .collect()
}

/// Checks that the graph declares exactly the manifest's tensor names in the
/// manifest's order.
pub(crate) fn check_names<'a>(
    graph: &[String],
    manifest: impl Iterator<Item = &'a str>,
    what: &str,
) -> Result<(), String> {
    let manifest: Vec<&str> = manifest.collect();
    if graph.len() != manifest.len() || graph.iter().zip(&manifest).any(|(g, m)| g != m) {
        return Err(format!("graph {what} are {graph:?}, manifest declares {manifest:?} (same names, same order)"));
    }
    Ok(())
}

impl Engine for TractEngine {
    fn run(&mut self, io: &mut GraphIo) -> Result<(), String> {
        let mut inputs: TVec<TValue> = TVec::with_capacity(io.inputs.len());
        for (i, (buf, shape)) in io.inputs.iter().zip(&io.input_shapes).enumerate() {
            let t = match self.held.get(i) {
                Some(Some(t)) => t.clone(),
                _ => self.tensor(i, buf, shape)?,
            };
            inputs.push(t);
        }
        let outputs = self.state.run(inputs).map_err(|e| format!("{e:#}"))?;
        for (i, ((dst, out), &dtype)) in io.outputs.iter_mut().zip(outputs.iter()).zip(&self.outputs).enumerate() {
            let view = out.try_as_plain_ram().map_err(|e| format!("output {i}: {e:#}"))?;
            let err = |e: tract_onnx::prelude::TractError| format!("output {i}: {e:#}");
            let n = io.output_shapes.get(i).map_or(0, |s| s.iter().product());
            match dtype {
                DType::F32 => copy_output(dst, view.as_slice::<f32>().map_err(err)?, i, n)?,
                DType::F16 => widen_output(dst, view.as_slice::<f16>().map_err(err)?, i, n, f16::to_f32)?,
                DType::U8 => copy_output(dst, view.as_slice::<u8>().map_err(err)?, i, n)?,
                DType::I32 => widen_output(dst, view.as_slice::<i32>().map_err(err)?, i, n, i64::from)?,
                DType::I64 => copy_output(dst, view.as_slice::<i64>().map_err(err)?, i, n)?,
                DType::Bool => copy_output(dst, view.as_slice::<bool>().map_err(err)?, i, n)?,
                DType::Bf16 => return Err("tract has no bf16".into()),
            }
        }
        Ok(())
    }

    fn execution_provider(&self) -> &str {
        "tract-cpu"
    }

    fn hold_inputs(&mut self, io: &GraphIo, held: &[bool]) -> Result<(), String> {
        for i in 0..self.held.len() {
            self.held[i] = match (held.get(i), io.inputs.get(i)) {
                (Some(true), Some(buf)) => Some(self.tensor(i, buf, io.input_shapes.get(i).map_or(&[], |s| s))?),
                _ => None,
            };
        }
        Ok(())
    }

    fn input_bytes_copied(&self) -> u64 {
        self.copied
    }
}

#[cfg(test)]
mod tests {
    use super::small_powers_as_products;

    /// π0's prefix (the committed fixture) cubes its GELU activations three
    /// times (two products each) and squares three times (RMSNorm's
    /// variance; one product each); no `Pow` is left.
    #[test]
    fn constant_cubes_become_products() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/lerobot-pi0/bundle/prefix.onnx");
        let bytes = std::fs::read(&path).expect("the π0 fixture");
        let mut proto = crate::external_data::decode(&bytes).expect("ONNX");
        let before = proto.graph.as_ref().map_or(0, |g| g.node.len());
        assert_eq!(small_powers_as_products(&mut proto), 6);
        let g = proto.graph.as_ref().expect("graph");
        assert!(!g.node.iter().any(|n| n.op_type == "Pow"), "a Pow is left");
        assert_eq!(g.node.len(), before + 3, "a square is one product, a cube two");
        assert_eq!(small_powers_as_products(&mut proto), 0, "nothing left to rewrite");
    }
}
