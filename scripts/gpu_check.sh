#!/usr/bin/env bash
# The CUDA check, in one bounded run on a machine with an NVIDIA GPU:
#   1. providers ONNX Runtime obtains;
#   2. raw ORT throughput of the image model at batch 1..128 (with and without
#      IOBinding) and throughput through the Batcher at batch limits 1..128; then one
#      session vs a session per batch size, with exhaustive vs heuristic cuDNN search;
#   3. the real server on CUDA (its defaults), image model over REST at concurrency
#      1, 16, 64, with its startup time.
# Usage: scripts/gpu_check.sh MODEL_REPOSITORY [OUT_DIR]
# Optional: WHEELS=dir of wheels to install first (e.g. onnxruntime-gpu and the
# server's pure-Python dependencies) into a private target, for machines where they
# are not installed.
set -uo pipefail
repo=${1:?model repository}
out=${2:-reports/gpu}
mkdir -p "$out"
py=${PYTHON:-python3}
if [ -n "${WHEELS:-}" ]; then
  site=$(mktemp -d)
  "$py" -m pip install -q --no-index --no-deps --no-compile --target "$site" "$WHEELS"/*.whl || exit 1
  export PYTHONPATH="$site:${PYTHONPATH:-}"
fi
export PYTHONPATH="$PWD:${PYTHONPATH:-}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$out/gpu.txt"
"$py" -c "import onnxruntime as o; print('onnxruntime', o.__version__, o.get_available_providers())" \
  2>&1 | tee -a "$out/gpu.txt"

echo "== raw ORT and Batcher, image model, CUDA" | tee "$out/gpu_check.txt"
timeout 300 "$py" -m loadtest.gpu_check --model-repository "$repo" --model image \
  --providers cuda --seconds 2 --budget-s 120 --concurrent-batches 1 \
  --strategies one-session:EXHAUSTIVE,one-session:HEURISTIC,per-size:EXHAUSTIVE,per-size:HEURISTIC \
  --json "$out/gpu_check.json" 2>&1 | tee -a "$out/gpu_check.txt"

echo "== served over REST, image model, CUDA" | tee "$out/served.txt"
port=18000
MODELSERVE_WARMUP_BATCH_SIZES='[1,2,4,8,16,32,64]' MODELSERVE_MAX_BATCH_SIZE=64 \
MODELSERVE_INFERENCE_THREADS=2 timeout 150 "$py" -m serving --model-repository "$repo" \
  --providers cuda --http-port $port --grpc-port -1 --host 127.0.0.1 >"$out/server.log" 2>&1 &
server=$!
started=$("$py" -c 'import time; print(time.time())')
for _ in $(seq 1 240); do
  curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null 2>&1 && break
  "$py" -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$port/v2/health/ready')" \
    >/dev/null 2>&1 && break
  sleep 0.25
done
"$py" -c "import time; print(f'ready after {time.time() - $started:.1f} s')" | tee -a "$out/served.txt"
"$py" -c "import json,urllib.request as u; print(json.dumps(json.load(u.urlopen('http://127.0.0.1:$port/v2/models/image')), indent=1))" \
  2>&1 | tee -a "$out/served.txt"
timeout 100 "$py" -m loadtest.http_probe --url "http://127.0.0.1:$port" --concurrency 1,16,64 \
  --seconds 5 --json "$out/served.json" 2>&1 | tee -a "$out/served.txt"
kill -TERM $server; wait $server
tail -5 "$out/server.log"
