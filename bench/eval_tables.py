"""Evaluate a checkpoint on the four benchmark sets and print docs/RESULTS.md's Markdown table.

    python bench/eval_tables.py [--checkpoint C] [--scales 2,3,4,6,8,12] [--json OUT]
        [--fp16-latent] [--sets Set5,Set14,Kodak24,DIV2K-val-crop256] [--bench DIR]

``DIR`` holds the sets as folders (default ``../shared/data/bench``, the project's copies; from
a clone, ``python -m training.fetch benchmark data`` and ``--bench data/benchmark --sets
Set5,Set14,B100,Urban100``). A set whose name starts with DIV2K uses the div2k protocol.

Set5, Set14 and Kodak24 use the benchmark protocol (Y channel, shave = scale); the DIV2K crops
the div2k protocol (RGB, shave = scale + 6); see ``python -m training.evaluate``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

BENCH = os.path.join(ROOT, "..", "shared", "data", "bench")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint", help="a bundled model's key or a file (default: the CPU "
                   "model)")
    p.add_argument("--scales", default="2,3,4,6,8,12")
    p.add_argument("--sets", default="Set5,Set14,Kodak24,DIV2K-val-crop256")
    p.add_argument("--json")
    p.add_argument("--fp16-latent", action="store_true")
    p.add_argument("--bench", default=BENCH, help="folder holding the sets (default: %(default)s)")
    args = p.parse_args()
    missing = [n for n in args.sets.split(",") if not os.path.isdir(os.path.join(args.bench, n))]
    if missing:
        sys.exit(f"error: no set {', '.join(missing)} in {args.bench} (these tables read the "
                 "project's copies in ../shared/data/bench; from a clone, python -m "
                 "training.fetch benchmark data, then --bench data/benchmark --sets Set5,Set14)")
    import torch

    from core.checkpoints import load_model
    from core.profile import profile_for
    from core.zoo import clean_default, resolve
    from training.data import PairedFolder
    from training.evaluate import evaluate, parse_scales

    ckpt = str(resolve(args.checkpoint)) if args.checkpoint else str(clean_default("cpu"))
    model, _, _ = load_model(ckpt)
    scales = parse_scales(args.scales)
    out = {"checkpoint": os.path.relpath(ckpt, ROOT), "fp16_latent": args.fp16_latent, "sets": {}}
    rows = []
    for name in args.sets.split(","):
        proto = "div2k" if name.startswith("DIV2K") else "benchmark"
        t = time.time()
        res = evaluate(model, PairedFolder(os.path.join(args.bench, name)), scales, proto,
                       profile_for("cpu", "float32"),
                       latent_dtype=torch.float16 if args.fp16_latent else None)
        print(f"{name}: {time.time() - t:.0f} s", file=sys.stderr)
        out["sets"][name] = {"protocol": proto, "results": [
            {"scale": s, "method": m, "psnr": round(res[(s, m)], 4)}
            for s in scales for m in ("liif", "bicubic")]}
        for m in ("liif", "bicubic"):
            rows.append(
                f"| {name} | {m} | " + " | ".join(f"{res[(s, m)]:.2f}" for s in scales) + " |"
            )
        rows.append(f"| {name} | *gain* | " + " | ".join(
            f"{res[(s, 'liif')] - res[(s, 'bicubic')]:+.2f}" for s in scales) + " |")
    print("| set | method | " + " | ".join(f"×{s}" for s in scales) + " |")
    print("|---|---|" + "---|" * len(scales))
    print("\n".join(rows))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
