//! The control loop and its parts: supervisor, fallback controllers,
//! safety shield, chunk executor, inference worker.
