//! The Gaussian noise of iterative heads, drawn by the runtime from a seed so
//! that a replay re-creates a chunk bit for bit.
//!
//! The stream: ChaCha8 (`rand_chacha::ChaCha8Rng`) keyed by the seed (its 8
//! bytes little-endian in the first 8 bytes of the 32-byte key, the rest
//! zero), on stream number `stream` (the inference's request id), from word
//! 0. Normals come in pairs by Box–Muller from two consecutive `u64`s `a`,
//! `b`: `u1 = ((a >> 11) + 1) · 2⁻⁵³` in (0, 1], `u2 = (b >> 11) · 2⁻⁵³` in
//! [0, 1), `r = √(-2 ln u1)`, `z0 = r cos 2πu2`, `z1 = r sin 2πu2`, computed
//! in f64 and rounded to f32. A fill of `n` values uses `⌈n/2⌉` pairs (the
//! last `z1` of an odd fill is dropped), so what each fill consumes depends
//! only on its length. `ln`, `cos`, `sin` are the platform's f64 functions:
//! bit-identical on the same build and libm, which is what replay needs.

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What a chunk's noise was drawn from: enough to draw it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct NoiseRecord {
    /// The policy's noise seed.
    pub seed: u64,
    /// The stream within it (the observation's request id).
    pub stream: u64,
    /// Whether noise was injected rather than drawn from (seed, stream):
    /// the initial sample ([`crate::BundlePolicy::set_initial_noise`]) or
    /// all of it ([`crate::BundlePolicy::set_noise_source`]).
    pub injected: bool,
}

/// Where an iterative head's noise comes from: x_T first, then each noisy
/// step's noise, in step order, one [`NoiseSource::fill`] per tensor.
///
/// The pipeline draws from a [`NoiseStream`] (seed, request id) unless a
/// source is installed with [`crate::BundlePolicy::set_noise_source`]: a
/// [`RecordedNoise`] replays tensors recorded elsewhere (a PyTorch reference
/// loop's `torch.randn` draws, a log), so a chunk can be compared with, or
/// re-created from, a run whose noise did not come from Ganglion's stream.
pub trait NoiseSource: Send {
    /// Fills `out` with the next noise tensor.
    fn fill(&mut self, out: &mut [f32]) -> Result<(), NoiseError>;
}

/// Why a [`NoiseSource`] could not deliver.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoiseError {
    /// Every recorded tensor has been used.
    #[error("recorded noise exhausted: all {recorded} tensors used")]
    Exhausted {
        /// Tensors the recording held.
        recorded: usize,
    },
    /// The next recorded tensor is not the size asked for.
    #[error("recorded noise tensor {index} has {found} values, the head asks for {expected}")]
    Length {
        /// Its position in the recording.
        index: usize,
        /// Values it holds.
        found: usize,
        /// Values the head's sample holds.
        expected: usize,
    },
}

impl NoiseSource for NoiseStream {
    fn fill(&mut self, out: &mut [f32]) -> Result<(), NoiseError> {
        NoiseStream::fill(self, out);
        Ok(())
    }
}

/// Noise tensors recorded elsewhere, handed out in order (across
/// inferences: the draws of one chunk, then the next chunk's).
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedNoise {
    tensors: Vec<Vec<f32>>,
    next: usize,
}

impl RecordedNoise {
    /// The tensors in the order the pipeline draws them (per chunk: x_T,
    /// then each noisy step's noise).
    pub fn new(tensors: Vec<Vec<f32>>) -> Self {
        RecordedNoise { tensors, next: 0 }
    }

    /// Tensors not used yet.
    pub fn remaining(&self) -> usize {
        self.tensors.len() - self.next
    }
}

impl NoiseSource for RecordedNoise {
    fn fill(&mut self, out: &mut [f32]) -> Result<(), NoiseError> {
        let t = self.tensors.get(self.next).ok_or(NoiseError::Exhausted { recorded: self.tensors.len() })?;
        if t.len() != out.len() {
            return Err(NoiseError::Length { index: self.next, found: t.len(), expected: out.len() });
        }
        out.copy_from_slice(t);
        self.next += 1;
        Ok(())
    }
}

/// A seeded stream of standard normal f32 values.
#[derive(Debug, Clone)]
pub struct NoiseStream {
    rng: ChaCha8Rng,
}

impl NoiseStream {
    /// The stream `stream` of seed `seed` (see the module docs).
    pub fn new(seed: u64, stream: u64) -> Self {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        let mut rng = ChaCha8Rng::from_seed(key);
        rng.set_stream(stream);
        NoiseStream { rng }
    }

    /// Fills `out` with standard normal values.
    pub fn fill(&mut self, out: &mut [f32]) {
        const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
        for pair in out.chunks_mut(2) {
            let u1 = ((self.rng.next_u64() >> 11) + 1) as f64 * SCALE;
            let u2 = (self.rng.next_u64() >> 11) as f64 * SCALE;
            let r = (-2.0 * u1.ln()).sqrt();
            let (s, c) = (std::f64::consts::TAU * u2).sin_cos();
            pair[0] = (r * c) as f32;
            if let Some(z1) = pair.get_mut(1) {
                *z1 = (r * s) as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{NoiseError, NoiseSource, NoiseStream, RecordedNoise};

    #[test]
    fn recorded_noise_replays_in_order_and_refuses_what_it_lacks() {
        let mut r = RecordedNoise::new(vec![vec![1.0, 2.0], vec![3.0, 4.0, 5.0]]);
        let mut two = [0.0f32; 2];
        r.fill(&mut two).expect("first");
        assert_eq!(two, [1.0, 2.0]);
        assert_eq!(r.fill(&mut two), Err(NoiseError::Length { index: 1, found: 3, expected: 2 }));
        let mut three = [0.0f32; 3];
        r.fill(&mut three).expect("second");
        assert_eq!((three, r.remaining()), ([3.0, 4.0, 5.0], 0));
        assert_eq!(r.fill(&mut three), Err(NoiseError::Exhausted { recorded: 2 }));
    }

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let draw = |seed, stream| {
            let mut v = vec![0.0f32; 4001];
            NoiseStream::new(seed, stream).fill(&mut v);
            v
        };
        let a = draw(7, 3);
        assert_eq!(a, draw(7, 3));
        assert_ne!(a, draw(8, 3));
        assert_ne!(a, draw(7, 4));
        let n = a.len() as f64;
        let mean = a.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = a.iter().map(|&x| (f64::from(x) - mean).powi(2)).sum::<f64>() / n;
        assert!(mean.abs() < 0.1 && (var - 1.0).abs() < 0.1, "mean {mean} var {var}");
    }

    /// Recorded chunks are replayed from (seed, stream): the stream and the
    /// normal transform must never change silently. These are the bits this
    /// implementation draws (rand_chacha 0.9's ChaCha8); a change here
    /// breaks every recorded replay and needs a new transform version.
    #[test]
    fn the_stream_is_pinned() {
        let mut v = [0.0f32; 5];
        NoiseStream::new(0, 0).fill(&mut v);
        assert_eq!(v.map(f32::to_bits), [3201245875, 3202388553, 1067558496, 1066615385, 1068226449]);
        let mut v = [0.0f32; 3];
        NoiseStream::new(16, 7).fill(&mut v);
        assert_eq!(v.map(f32::to_bits), [1066567673, 3192379337, 1033500564]);
    }
}
