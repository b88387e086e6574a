#!/usr/bin/env bash
# Every CPU benchmark of docs/BENCHMARKS.md (rendering, encoding, viewer latency, CLI,
# training steps, memory, soak, quality tables), one after the other, outputs in ${1:-bench-out}/.
# Run on an otherwise idle machine: the figures are wall-clock times.
set -u
out=${1:-bench-out}
mkdir -p "$out"
export QT_QPA_PLATFORM=offscreen
run() { name=$1; shift; echo "== $name: $*"; /usr/bin/time -v "$@" > "$out/$name.txt" 2> "$out/$name.err"; tail -n 12 "$out/$name.txt"; }
run throughput python bench/render_throughput.py --input 128 --scale 4 --repeat 3
run memory python bench/render_memory.py --sizes 256,1024,4096,8192 --out 512
run encode24 python bench/encode_large.py --mpx 24 --tile 256
run encode24-fp16 python bench/encode_large.py --mpx 24 --tile 256 --fp16
run encode-paper python bench/encode_large.py --mpx 3.4 --tile 256 --paper
run latency python bench/viewer_latency.py --window 1280x800 --mode single --zooms 2,4,8
run latency-side python bench/viewer_latency.py --window 1280x800 --mode side --zooms 2,4,8
run targets python bench/cpu_targets.py --repeat 3
run targets-warm python bench/cpu_targets.py --repeat 3 --warm --skip-cli
run fp16-set5 python -m training.evaluate --data ../shared/data/bench/Set5 --scales 2,4,8 --fp16-latent
run fp32-set5 python -m training.evaluate --data ../shared/data/bench/Set5 --scales 2,4,8
run model-cost python bench/model_cost.py
run decoder-rate python bench/decoder_rate.py
run cli python bench/cli_targets.py --repeat 3 --skip-official
run targets-edges python bench/cpu_targets.py --checkpoint edges --repeat 3 --skip-cli
run cli-edges python bench/cli_targets.py --checkpoint edges --repeat 3 --skip-official
run region python bench/render_region.py
run estimates python bench/export_estimate.py --skip-big --models cpu,paper,edges
run soak python bench/soak.py --events 8000 --json "$out/soak.json"
run train-step python bench/train_step.py
# the quality tables (they read the project's copies of the sets in ../shared/data/bench)
run eval-cpu python bench/eval_tables.py --json "$out/lmf-edsr6-cpu.json"
run eval-edges python bench/eval_tables.py --checkpoint edges --json "$out/lmf-edsr16-edges.json"
run edge-threshold python bench/edge_threshold.py
run photo python bench/photo_tables.py --models cpu,photo --json "$out/photo-eval.json"
