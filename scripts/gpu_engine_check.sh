#!/usr/bin/env bash
# Issue 17's device check, in one bounded run on a machine with an NVIDIA GPU:
#   1. the raw ONNX Runtime CUDA ceiling of the image model at batch 1..128;
#   2. the image model served over REST by the engine layout (one engine on the GPU,
#      N front ends) and by the per-worker layout with the same number of processes,
#      side by side in rounds: JPEG uploads (protocol rest) and tensors (v2) at
#      1..256 concurrent requests, from a multi-process client whose CPU is reported.
# Targets: engine at saturation >= 50 % of the ceiling at its best batch; p99 at 64
# concurrent < 50 ms. Write the figures into docs/benchmarks.md ("Engine layout").
# Usage: scripts/gpu_engine_check.sh MODEL_REPOSITORY [OUT_DIR] [PROCESSES]
set -uo pipefail
repo=${1:?model repository}
out=${2:-reports/gpu-engine}
procs=${3:-8}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$out/gpu.txt"
"$py" -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())" \
  2>&1 | tee -a "$out/gpu.txt"

echo "== raw ORT ceiling, image model, CUDA" | tee "$out/ceiling.txt"
timeout 150 "$py" -m loadtest.gpu_check --model-repository "$repo" --model image \
  --providers cuda --seconds 2 --budget-s 90 --json "$out/ceiling.json" 2>&1 | tee -a "$out/ceiling.txt"

echo "== engine vs per-worker, image over REST (JPEG) and v2 (tensors)" | tee "$out/served.txt"
MODELSERVE_WARMUP_BATCH_SIZES='[1,2,4,8,16,32,64,128]' MODELSERVE_MAX_BATCH_SIZE=128 \
timeout 420 "$py" scripts/engine_bench.py --model-repository "$repo" --model image \
  --providers cuda --protocols rest,v2 --concurrency 1,16,64,128,256 --workers "$procs" \
  --client-processes 4 --rounds 1 --duration 3 --out "$out" 2>&1 | tee -a "$out/served.txt"
