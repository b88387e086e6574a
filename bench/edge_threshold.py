"""The edges model's threshold against its quality and cost, and against an oracle.

    python bench/edge_threshold.py [--sets Set5,DIV2K-val-crop256] [--scales 2,4]
        [--thresholds 0.5,0.4,0.3,0.2,0.1] [--oracle 5,10] [--bench DIR]

For every image of each set and scale (the evaluation protocol's pairs) it renders the
edges model's two halves whole: its LMF decoder alone (the bundled ``edges`` model with an
infinite threshold) and the paper model. For each threshold it then takes the paper model's
pixel wherever :mod:`core.models.edges`' rule (computed here from the LR picture, mid-grey
outside it) says so, and prints the PSNR gap to the paper model (mean over images, the
protocol's PSNR) and the share of pixels given to the paper's decoder. The oracle rows give
the same gap when the paper's decoder goes to the given percentage of each image's pixels
where the two outputs differ most: the best any rule could do with that many.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

BENCH = os.path.join(ROOT, "..", "shared", "data", "bench")


def edge_mask(lr: np.ndarray, out_h: int, out_w: int, threshold: float) -> np.ndarray:
    """The rule of core.models.edges for a whole render of ``lr`` (uint8) at ``out_w x out_h``."""
    import torch

    from core.geometry import Region
    from core.models.implicit import neighbour_index
    y = (lr.astype(np.float64) / 255) @ np.array([0.299, 0.587, 0.114])  # as the model reads it
    p = np.pad(y, 1, constant_values=0.5)
    score = np.zeros_like(y)
    for dy in range(3):
        for dx in range(3):
            score = np.maximum(score, np.abs(p[dy:dy + y.shape[0], dx:dx + y.shape[1]] - y))
    ys, xs = Region.full(lr.shape[1], lr.shape[0]).sample_points(out_w, out_h)
    best = np.zeros((out_h, out_w))
    for o in (-1.0, 1.0):
        iy = neighbour_index(torch.as_tensor(ys), y.shape[0], o, True).numpy()
        for q in (-1.0, 1.0):
            ix = neighbour_index(torch.as_tensor(xs), y.shape[1], q, True).numpy()
            best = np.maximum(best, score[iy][:, ix])
    return best > threshold


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sets", default="Set5,DIV2K-val-crop256")
    p.add_argument("--scales", default="2,4")
    p.add_argument("--thresholds", default="0.5,0.4,0.3,0.2,0.1")
    p.add_argument("--oracle", default="5,10", help="percentages of pixels for the oracle rows")
    p.add_argument("--bench", default=BENCH)
    args = p.parse_args()

    import torch

    from core import zoo
    from core.checkpoints import load_checkpoint
    from core.geometry import Region
    from core.metrics import psnr, rgb_to_y
    from core.models.registry import make
    from core.profile import profile_for
    from core.render.renderer import render
    from training.data import PairedFolder
    from training.evaluate import parse_scales, test_pair

    torch.set_grad_enabled(False)
    prof = profile_for("cpu", "float32")
    spec, state, _ = load_checkpoint(zoo.resolve("edges"))
    spec["args"]["threshold"] = float("inf")  # the LMF half alone
    lmf = make(spec).eval()
    lmf.load_state_dict(state)
    paper = zoo.load("paper")
    taus = [float(t) for t in args.thresholds.split(",")]
    shares = [float(s) / 100 for s in args.oracle.split(",")]
    print("| set | scale | rule | gap to the paper model (dB) | pixels on its decoder |")
    print("|---|---|---|---|---|")
    for name in args.sets.split(","):
        folder = PairedFolder(Path(args.bench) / name)
        bench = not name.startswith("DIV2K")
        for s in parse_scales(args.scales):
            shave = s if bench else s + 6
            rows = {}
            for f in folder.hr_files:
                hr, lr = test_pair(folder, f, s)
                h, w = hr.shape[:2]
                gt = hr.astype(np.float32) / 255
                a, b = (render(prof.encode(m, lr.astype(np.float32) / 255),
                               Region.full(lr.shape[1], lr.shape[0]), w, h) for m in (lmf, paper))
                ref = psnr(b, gt, shave, bench)
                rows.setdefault("none", []).append((psnr(a, gt, shave, bench) - ref, 0.0))
                for t in taus:
                    hard = edge_mask(lr, h, w, t)
                    mix = np.where(hard[..., None], b, a)
                    rows.setdefault(f"threshold {t:g}", []).append(
                        (psnr(mix, gt, shave, bench) - ref, float(hard.mean())))
                diff = np.abs(rgb_to_y(a - b))
                for q in shares:
                    hard = diff >= np.quantile(diff, 1 - q)
                    mix = np.where(hard[..., None], b, a)
                    rows.setdefault(f"oracle {q:.0%}", []).append(
                        (psnr(mix, gt, shave, bench) - ref, float(hard.mean())))
            for rule, vals in rows.items():
                gap, share = np.mean(vals, 0)
                print(f"| {name} | x{s} | {rule} | {gap:+.3f} | {share:.1%} |", flush=True)


if __name__ == "__main__":
    main()
