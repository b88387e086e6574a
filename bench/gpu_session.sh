#!/usr/bin/env bash
# One script for a session that is lent a CUDA GPU (see docs/BENCHMARKS.md).
# Usage on the device machine:  bash bench/gpu_session.sh MINUTES_OF_TRAINING
# 1. CUDA correctness (the renderer on CUDA equals the CPU within 1e-5)
# 2. GPU render timings, 1920x1080, fp32 / bf16 / fp16
# 3. The paper recipe (EDSR-baseline-LIIF) on ../shared/data/train for the given minutes,
#    then the benchmark table of the result.
# Everything it writes goes to $OUT (or ./gpu-out).
set -u
minutes=${1:-6}
out=${OUT:-gpu-out}
mkdir -p "$out"
python3 -m venv /tmp/venv >/dev/null && . /tmp/venv/bin/activate
pip install -q -e ".[test]" 2>&1 | tail -2
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$out/gpu.txt"
QT_QPA_PLATFORM=offscreen python -m pytest -q tests/test_render.py -k cuda 2>&1 | tail -3 | tee "$out/cuda-tests.txt"
for dt in fp32 bf16 fp16; do
  python bench/gpu_render.py --dtype $dt 2>&1 | tail -1 | tee -a "$out/gpu-render.txt"
done
timeout $((minutes * 60)) python -m training.train --config training/configs/edsr-baseline-liif.yaml \
  --data ../shared/data/train --val-data none --out "$out/run" \
  --no-progress > "$out/train.log" 2>&1   # last.safetensors is saved every 1000 steps
python bench/eval_tables.py --checkpoint "$out/run/last.safetensors" --scales 2,3,4,6,8,12 \
  --json "$out/eval.json" > "$out/eval.md" 2>&1
cat "$out/eval.md"
