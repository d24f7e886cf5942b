//! tract: pure-Rust CPU inference, the default that needs nothing installed.
//!
//! The graph is typed and optimized once at load with the manifest's fixed
//! input shapes, then run through one long-lived state.

use std::path::Path;

use tract_onnx::prelude::*;

use super::{copy_output, Engine, GraphIo, TensorBuf};
use crate::error::BundleError;
use crate::manifest::{DType, GraphSpec};

/// A graph loaded in tract.
pub struct TractEngine {
    state: TypedSimpleState,
    shapes: Vec<Vec<usize>>,
}

fn datum(d: DType) -> DatumType {
    match d {
        DType::F32 => f32::datum_type(),
        DType::U8 => u8::datum_type(),
        DType::I64 => i64::datum_type(),
    }
}

impl TractEngine {
    /// Parses, types and optimizes `model` with the shapes of `spec`.
    pub fn load(spec: &GraphSpec, model: &[u8], file: &Path) -> Result<Self, BundleError> {
        let err = |reason: String| BundleError::Model { file: file.to_path_buf(), reason };
        let mut m = tract_onnx::onnx()
            .model_for_read(&mut &model[..])
            .map_err(|e| err(format!("tract cannot parse the ONNX graph: {e:#}")))?;
        let names: Vec<String> =
            m.input_outlets().map_err(|e| err(format!("{e}")))?.iter().map(|o| m.node(o.node).name.clone()).collect();
        check_names(&names, spec.inputs.iter().map(|t| t.name.as_str()), "inputs").map_err(err)?;
        for (i, t) in spec.inputs.iter().enumerate() {
            let fact = InferenceFact::dt_shape(datum(t.dtype), t.shape.iter().copied().collect::<TVec<usize>>());
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
            let shape = fact.shape.as_concrete().map(|s| s.to_vec());
            if shape.as_deref() != Some(&t.shape[..]) {
                return Err(err(format!(
                    "output `{}` has shape {:?} in the graph, manifest declares {:?}",
                    t.name, fact.shape, t.shape
                )));
            }
            if fact.datum_type != f32::datum_type() {
                return Err(err(format!(
                    "output `{}` is {:?} in the graph, manifest declares f32",
                    t.name, fact.datum_type
                )));
            }
        }
        let plan = typed.into_runnable().map_err(|e| err(format!("tract cannot plan the graph: {e:#}")))?;
        let state = TypedSimpleState::new(&plan).map_err(|e| err(format!("{e:#}")))?;
        Ok(TractEngine { state, shapes: spec.inputs.iter().map(|t| t.shape.clone()).collect() })
    }
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
        for (buf, shape) in io.inputs.iter().zip(&self.shapes) {
            let t = match buf {
                TensorBuf::F32(v) => Tensor::from_shape(shape, v),
                TensorBuf::U8(v) => Tensor::from_shape(shape, v),
                TensorBuf::I64(v) => Tensor::from_shape(shape, v),
            }
            .map_err(|e| format!("{e:#}"))?;
            inputs.push(t.into_tvalue());
        }
        let outputs = self.state.run(inputs).map_err(|e| format!("{e:#}"))?;
        for (i, (dst, out)) in io.outputs.iter_mut().zip(outputs.iter()).enumerate() {
            let view = out.try_as_plain_ram().map_err(|e| format!("output {i}: {e:#}"))?;
            let src = view.as_slice::<f32>().map_err(|e| format!("output {i}: {e:#}"))?;
            copy_output(dst, src, i)?;
        }
        Ok(())
    }

    fn execution_provider(&self) -> &str {
        "tract-cpu"
    }
}
