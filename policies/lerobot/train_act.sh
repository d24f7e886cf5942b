#!/usr/bin/env bash
# Trains the LeRobot ACT committed as policies/fixtures/lerobot-act/reach/
# (issue 17: LeRobot-trained policies closing the loop). By hand, on CPU;
# CI only evaluates the committed bundle (runtime/tests/eval_bundles.rs).
#
#   policies/lerobot/train_act.sh [WORKDIR]   # default /tmp/act-reach
#
# Needs: a release `ganglion` binary (cargo build --release -p ganglion
# --bin ganglion) and a LeRobot 0.6.1 environment with training extras
# (docs/POLICIES.md, "The environment"; here /work/lerobot-venv; override
# with LEROBOT_VENV). Writes WORKDIR/data (the LeRobotDataset) and
# WORKDIR/train (lerobot-train's output; the checkpoint to import is
# WORKDIR/train/checkpoints/last/pretrained_model).
#
# Choices (policies/fixtures/lerobot-act/reach/README.md says why):
# - the scene has ONE target (sim-one-target.toml): ACT has no language
#   input, and with 2-3 targets only the instruction says which to reach;
# - 400 scripted-expert episodes (half with DART noise), 10 Hz, 3 s;
# - ACT at a CPU size: ResNet-18 from scratch (no Hub, so no ImageNet
#   weights), 128-wide transformer, 2 encoder / 1 decoder layers, chunk 10
#   (1 s at 10 Hz), lr 3e-4 for everything (LeRobot's 1e-5 default assumes
#   a pretrained backbone), batch 8.
#
# The committed bundle: this script as it is (10 000 steps) with
# OMP_NUM_THREADS=1, one run of 33.2 min on the shared 2-core machine (the
# README beside the bundle has the loss curve and the import command).
# 4000 steps, the first committed bundle, reached 86 % on 100 episodes.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
WORK="${1:-/tmp/act-reach}"
VENV="${LEROBOT_VENV:-/work/lerobot-venv}"
GANGLION="${GANGLION:-$ROOT/target/release/ganglion}"
STEPS="${STEPS:-10000}"
export HF_HUB_OFFLINE=1 OMP_NUM_THREADS="${OMP_NUM_THREADS:-2}"

mkdir -p "$WORK"
if [ ! -d "$WORK/data" ]; then
    "$GANGLION" sim record --format lerobot --episodes 400 --seed 0 \
        --sim-config "$ROOT/policies/fixtures/lerobot-act/reach/sim-one-target.toml" --out "$WORK/data"
fi

nice -n 19 "$VENV/bin/lerobot-train" \
    --dataset.repo_id=ganglion/sim-reach-one-target --dataset.root="$WORK/data" \
    --policy.type=act --policy.device=cpu --policy.push_to_hub=false \
    --policy.pretrained_backbone_weights=null --policy.vision_backbone=resnet18 \
    --policy.chunk_size=10 --policy.n_action_steps=10 \
    --policy.dim_model=128 --policy.n_heads=4 --policy.dim_feedforward=512 \
    --policy.n_encoder_layers=2 --policy.n_decoder_layers=1 \
    --policy.n_vae_encoder_layers=1 --policy.latent_dim=16 \
    --policy.optimizer_lr=3e-4 --policy.optimizer_lr_backbone=3e-4 \
    --steps="$STEPS" --batch_size=8 --num_workers=0 --seed=1000 \
    --log_freq=50 --save_checkpoint=true --save_freq=500 \
    --wandb.enable=false --output_dir="$WORK/train"
