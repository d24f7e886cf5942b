//! Latest-value slots: one writer, one reader, neither ever blocks.
//!
//! A slot is a triple buffer. The writer fills its private buffer in place
//! (so a camera frame is copied once, into memory allocated at start-up) and
//! publishes it with one atomic swap; the reader takes the newest published
//! buffer with one atomic swap. No locks, no allocation after construction,
//! and the reader always sees a complete sample, never a torn one.

use std::cell::UnsafeCell;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use crate::time::Stamp;

/// A sample with the stamps the loop judges it by.
#[derive(Debug, Clone, PartialEq)]
pub struct Stamped<T> {
    /// When the source captured it (sensor time, from the message header),
    /// already mapped onto the loop clock's time line by the driver.
    pub capture: Stamp,
    /// When the driver received it, on the loop clock.
    pub receive: Stamp,
    /// Per-slot sequence number assigned at ingress, starting at 1; 0 means
    /// nothing was ever written.
    pub seq: u64,
    /// The payload.
    pub value: T,
}

impl<T> Stamped<T> {
    /// An empty sample (sequence 0) around a preallocated `value`.
    pub fn empty(value: T) -> Self {
        Stamped { capture: Stamp::ZERO, receive: Stamp::ZERO, seq: 0, value }
    }

    /// Whether anything was ever written.
    pub fn is_present(&self) -> bool {
        self.seq != 0
    }
}

const INDEX_MASK: u8 = 0b011;
const FRESH: u8 = 0b100;

struct Shared<T> {
    buffers: [UnsafeCell<T>; 3],
    /// Index of the buffer in the middle, plus `FRESH` when the writer
    /// published it and the reader has not taken it yet.
    middle: AtomicU8,
}

// SAFETY: each buffer is accessed by exactly one side at a time: the writer
// owns `SlotWriter::index`, the reader owns `SlotReader::index`, and the
// middle buffer changes hands only through the atomic swap of `middle`
// (AcqRel orders the buffer contents with the hand-over).
unsafe impl<T: Send> Sync for Shared<T> {}

/// The writing side of a latest-value slot (one per I/O source).
pub struct SlotWriter<T> {
    shared: Arc<Shared<T>>,
    index: u8,
}

/// The reading side of a latest-value slot (held by the control thread).
pub struct SlotReader<T> {
    shared: Arc<Shared<T>>,
    index: u8,
}

/// Makes a slot whose three buffers start as clones of `initial`.
///
/// Allocate everything the value will ever need here (e.g. a frame buffer of
/// the largest accepted size): later writes happen in place.
pub fn latest_slot<T: Clone + Send>(initial: T) -> (SlotWriter<T>, SlotReader<T>) {
    let shared = Arc::new(Shared {
        buffers: [UnsafeCell::new(initial.clone()), UnsafeCell::new(initial.clone()), UnsafeCell::new(initial)],
        middle: AtomicU8::new(1),
    });
    (SlotWriter { shared: shared.clone(), index: 0 }, SlotReader { shared, index: 2 })
}

impl<T: Send> SlotWriter<T> {
    /// The writer's private buffer. It holds an older sample: overwrite every
    /// field that matters before [`publish`](Self::publish).
    pub fn buffer_mut(&mut self) -> &mut T {
        // SAFETY: `index` is owned by this writer alone (see `Shared`).
        unsafe { &mut *self.shared.buffers[self.index as usize].get() }
    }

    /// Makes the private buffer the newest sample; never blocks.
    pub fn publish(&mut self) {
        let previous = self.shared.middle.swap(self.index | FRESH, Ordering::AcqRel);
        self.index = previous & INDEX_MASK;
    }

    /// Fills the private buffer with `fill` and publishes it.
    pub fn write_with(&mut self, fill: impl FnOnce(&mut T)) {
        fill(self.buffer_mut());
        self.publish();
    }
}

impl<T: Send> SlotReader<T> {
    /// Takes the newest published sample if there is one the reader has not
    /// seen; returns whether it did. Never blocks, never allocates.
    pub fn update(&mut self) -> bool {
        if self.shared.middle.load(Ordering::Relaxed) & FRESH == 0 {
            return false;
        }
        let previous = self.shared.middle.swap(self.index, Ordering::AcqRel);
        self.index = previous & INDEX_MASK;
        true
    }

    /// The newest sample taken by [`update`](Self::update).
    pub fn latest(&self) -> &T {
        // SAFETY: `index` is owned by this reader alone (see `Shared`).
        unsafe { &*self.shared.buffers[self.index as usize].get() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_sees_newest_complete_value() {
        let (mut w, mut r) = latest_slot(Stamped::empty([0u64; 4]));
        assert!(!r.update());
        assert!(!r.latest().is_present());
        for seq in 1..=3u64 {
            w.write_with(|s| {
                s.seq = seq;
                s.value = [seq; 4];
            });
        }
        assert!(r.update());
        assert_eq!(r.latest().seq, 3);
        assert!(!r.update(), "no new sample since the last update");
        assert_eq!(r.latest().value, [3; 4]);
    }

    #[test]
    fn concurrent_writer_never_tears_a_sample() {
        let (mut w, mut r) = latest_slot(Stamped::empty([0u64; 64]));
        let writer = std::thread::spawn(move || {
            for seq in 1..=200_000u64 {
                w.write_with(|s| {
                    s.seq = seq;
                    s.value = [seq; 64];
                });
            }
        });
        let mut last = 0;
        while last < 200_000 {
            if r.update() {
                let s = r.latest();
                assert!(s.value.iter().all(|&v| v == s.seq), "torn sample at seq {}", s.seq);
                assert!(s.seq > last, "sequence went backwards: {} after {}", s.seq, last);
                last = s.seq;
            }
        }
        writer.join().expect("writer thread panicked");
    }
}
