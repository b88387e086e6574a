"""The photo issue's tables: bicubic and each model on clean and degraded LR
(``training.evaluate --degrade``), and the quality bounds of the photo model.

    python bench/photo_tables.py [--models cpu,photo,paper] [--sets Set14,Kodak24,DIV2K-val-crop256]
        [--degrade clean,jpeg90,jpeg75,jpeg50,noise5] [--scales 2,4] [--paper-sets Set14]
        [--json docs/results/photo-eval.json]

Models are bundled keys (``cpu``, ``photo``, ``photo16``, ``paper``) or files. The paper model
is slow on a CPU: it runs only on ``--paper-sets``. Prints docs/RESULTS.md's Markdown table
(first set) and the bounds at x4 for each photo model (a key starting with ``photo``): its
margin over bicubic on JPEG q75 and q90 LR must win back at least half of what JPEG takes
from the CPU model's clean-LR margin, and on clean LR it may be at most 0.4 dB below the CPU
model.
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
    p.add_argument("--models", default="cpu,photo,paper")
    p.add_argument("--sets", default="Set14,Kodak24,DIV2K-val-crop256")
    p.add_argument("--paper-sets", default="Set14")
    p.add_argument("--degrade", default="clean,jpeg90,jpeg75,jpeg50,noise5")
    p.add_argument("--scales", default="2,4")
    p.add_argument("--json")
    p.add_argument("--bench", default=BENCH)
    args = p.parse_args()
    sets = args.sets.split(",")
    missing = [n for n in sets if not os.path.isdir(os.path.join(args.bench, n))]
    if missing:
        sys.exit(f"error: no set {', '.join(missing)} in {args.bench}")
    import torch

    from core.checkpoints import load_model
    from core.profile import profile_for
    from core.zoo import resolve
    from training.data import PairedFolder
    from training.degrade import parse_eval
    from training.evaluate import evaluate, parse_scales

    torch.set_num_threads(os.cpu_count() or 1)
    scales = parse_scales(args.scales)
    res = {}  # (set, degrade, model, scale) -> psnr; model "bicubic" too
    for key in args.models.split(","):
        path = resolve(key)
        model = load_model(path)[0]
        for name in sets:
            if key == "paper" and name not in args.paper_sets.split(","):
                continue
            proto = "div2k" if name.startswith("DIV2K") else "benchmark"
            for spec in args.degrade.split(","):
                t = time.time()
                d = parse_eval(spec)
                r = evaluate(model, PairedFolder(os.path.join(args.bench, name)), scales, proto,
                             profile_for("cpu", "float32"), degrade=d if d.steps else None)
                for s in scales:
                    res[(name, spec, key, s)] = r[(s, "liif")]
                    res[(name, spec, "bicubic", s)] = r[(s, "bicubic")]
                print(f"{key} {name} {spec}: " + ", ".join(
                    f"x{s} {r[(s, 'liif')]:.2f} (bicubic {r[(s, 'bicubic')]:.2f})" for s in scales)
                    + f"  [{time.time() - t:.0f} s]", file=sys.stderr)
    models = ["bicubic"] + args.models.split(",")
    for name in sets:
        print(f"\n{name}, PSNR (dB) at " + " / ".join(f"×{s}" for s in scales))
        print("| LR | " + " | ".join(models) + " |")
        print("|---|" + "---|" * len(models))
        for spec in args.degrade.split(","):
            cells = []
            for m in models:
                v = [res.get((name, spec, m, s)) for s in scales]
                cells.append(" / ".join(f"{x:.2f}" for x in v) if None not in v else "–")
            print(f"| {spec} | " + " | ".join(cells) + " |")
    photos = [k for k in models if k.startswith("photo")]
    if "cpu" in models and photos and 4 in scales:
        print("\nBounds at ×4 (margins over bicubic, dB):")
        for name in sets:
            for ph in photos:
                m = {(sp, k): res[(name, sp, k, 4)] - res[(name, sp, "bicubic", 4)]
                     for sp in args.degrade.split(",") for k in ("cpu", ph)
                     if (name, sp, k, 4) in res}
                line = [f"{name} {ph}"]
                for q in ("jpeg75", "jpeg90"):
                    if (q, "cpu") in m and ("clean", "cpu") in m and (q, ph) in m:
                        need = (m[("clean", "cpu")] + m[(q, "cpu")]) / 2
                        ok = m[(q, ph)] >= need
                        line.append(f"{q}: {m[(q, ph)]:+.2f} vs needed {need:+.2f} "
                                    f"(CPU model {m[(q, 'cpu')]:+.2f}) {'MET' if ok else 'MISSED'}")
                if ("clean", ph) in m and ("clean", "cpu") in m:
                    drop = res[(name, "clean", ph, 4)] - res[(name, "clean", "cpu", 4)]
                    line.append(f"clean: {drop:+.2f} dB vs the CPU model (bound -0.40) "
                                f"{'MET' if drop >= -0.4 else 'MISSED'}")
                print(" · ".join(line))
    if args.json:
        out = [{"set": n, "degrade": sp, "model": k, "scale": s, "psnr": round(v, 4)}
               for (n, sp, k, s), v in sorted(res.items(), key=str)]
        with open(args.json, "w") as f:
            json.dump({"results": out}, f, indent=1)


if __name__ == "__main__":
    main()
