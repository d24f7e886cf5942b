//! The Ganglion runtime.
