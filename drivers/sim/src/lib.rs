//! Deterministic simulated arm: actuator dynamics, software-rasterized camera, fault hooks, scripted expert.
