//! Policy bundles (manifest, digests, ed25519 signatures), preprocessing, and inference backends (tract, ONNX Runtime).
