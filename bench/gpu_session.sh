#!/usr/bin/env bash
# One script for a session that is lent a CUDA GPU (the device tool; docs/BENCHMARKS.md).
#
# Here, first:   python bench/gpu_pack.py     # a training subset into .gpudata/ (git-ignored)
# On the device: run with carry [".gpudata"] and the command
#                bash bench/gpu_session.sh MINUTES_OF_TRAINING
#
# The device machine has no network and receives only the repository: it runs on the image's
# own python3 (PyTorch with CUDA, numpy, Pillow, safetensors, PyYAML, tqdm, pytest; the
# viewer's Qt is not needed here), with the project on PYTHONPATH, and trains on .gpudata.
# 1. CUDA correctness: the renderer on CUDA equals the CPU (tests/test_render.py -k cuda).
# 2. GPU render timings of the paper model, 1920x1080 at 4x, fp32 / bf16 / fp16.
# 3. The CPU model distilled from the paper model on the GPU for MINUTES, from the bundled CPU
#    model (training/configs/gpu-lmf-distill.yaml); timeout's SIGTERM saves the step reached.
#    Its weights come back in $OUT; evaluate them here with
#    python bench/eval_tables.py --checkpoint /work/.device/.../ema.safetensors --json ...
# Everything it writes goes to $OUT (or ./gpu-out).
set -u
minutes=${1:-6}
out=${OUT:-gpu-out}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ ! -d .gpudata/train ]; then
  echo "error: no .gpudata/train: run python bench/gpu_pack.py here and carry .gpudata" >&2
  exit 2
fi
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$out/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$out/gpu.txt"
python3 -m pytest -q -p no:cacheprovider tests/test_render.py -k cuda 2>&1 | tail -3 | tee "$out/cuda-tests.txt"
for dt in fp32 bf16 fp16; do
  python3 bench/gpu_render.py --checkpoint resources/edsr-baseline-liif.safetensors --dtype $dt \
    2>&1 | tail -1 | tee -a "$out/gpu-render.txt"
done
timeout -s TERM $((minutes * 60)) python3 -m training.train \
  --config training/configs/gpu-lmf-distill.yaml --data .gpudata/train --val-data none \
  --init resources/lmf-edsr6-cpu.safetensors --out /tmp/gpu-run --no-progress \
  > "$out/train.log" 2>&1
tail -3 "$out/train.log"
cp /tmp/gpu-run/last.safetensors /tmp/gpu-run/ema.safetensors "$out/" 2>/dev/null
gzip -c /tmp/gpu-run/log.jsonl > "$out/log.jsonl.gz" 2>/dev/null
ls -la "$out"
