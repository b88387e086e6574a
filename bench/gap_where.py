"""Where a model loses to a reference model: the PSNR gap split by what the pixels show.

    python bench/gap_where.py STUDENT REFERENCE --set Set5 --scales 2,4 [--bench DIR]
        [--bins 50,80,95,99] [--limit N]

For every image of the set and scale (the evaluation protocol's pairs,
:func:`training.evaluate.test_pair`) both models render the LR at the HR's size and the
per-pixel squared errors are taken as the protocol takes them (Y channel with ``s`` shaved on
Set5/Set14/Kodak24, RGB with ``s + 6`` shaved on the DIV2K crops). Pixels are then binned by
how much detail the HR has there: the gradient magnitude of the HR's luma (Sobel,
:func:`training.data.detail_weights`, the training sampler's measure), cut at
the set's pooled percentiles ``--bins``. For each bin the table gives its share of the pixels,
both models' PSNR over the bin (pooled mean squared error), and the bin's share of the total
gap ``sum(err_student^2 - err_reference^2)``. A last column per scale gives the PSNR of the
student's output against the reference's: how closely it reproduces the model it learns from.

A bin that holds 5 % of the pixels and 60 % of the gap says the loss is at edges, where a
decoder must place a sharp transition between latent codes; a gap spread like the pixels says
the decoder is uniformly less accurate.
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


def errors(pred: np.ndarray, gt: np.ndarray, shave: int, y_channel: bool) -> np.ndarray:
    """Per-pixel squared error (0-1 range) as core.metrics.psnr pools it."""
    from core.metrics import rgb_to_y
    d = (np.clip(pred, 0, 1) - gt).astype(np.float64)
    d = d[shave:-shave or None, shave:-shave or None]
    if y_channel:
        return rgb_to_y(d) ** 2
    return (d ** 2).mean(-1)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("student")
    p.add_argument("reference")
    p.add_argument("--set", default="Set5")
    p.add_argument("--scales", default="2,4")
    p.add_argument("--bench", default=BENCH)
    p.add_argument("--bins", default="50,80,95,99", help="percentiles cutting the detail bins")
    p.add_argument("--limit", type=int)
    args = p.parse_args()

    import torch

    from core.checkpoints import load_model
    from core.geometry import Region
    from core.profile import profile_for
    from core.render.renderer import render
    from training.data import PairedFolder, detail_weights
    from training.evaluate import parse_scales, test_pair

    torch.set_grad_enabled(False)
    folder = PairedFolder(Path(args.bench) / args.set)
    benchmark = not args.set.startswith("DIV2K")
    prof = profile_for("cpu", "float32")
    models = [load_model(args.student, torch.device("cpu"))[0],
              load_model(args.reference, torch.device("cpu"))[0]]
    cuts = [float(c) for c in args.bins.split(",")]
    files = folder.hr_files[:args.limit] if args.limit else folder.hr_files
    print(f"{args.set}: {Path(args.student).name} against {Path(args.reference).name}, "
          f"detail bins at percentiles {args.bins} of the HR's Y gradient\n")
    print("| scale | detail bin | pixels | reference dB | student dB | share of the gap |")
    print("|---|---|---|---|---|---|")
    for s in parse_scales(args.scales):
        shave = s if benchmark else s + 6
        err_s, err_r, det, fid = [], [], [], []
        for f in files:
            hr, lr = test_pair(folder, f, s)
            h, w = hr.shape[:2]
            gt = hr.astype(np.float32) / 255
            full = Region.full(lr.shape[1], lr.shape[0])
            outs = [render(prof.encode(m, lr.astype(np.float32) / 255), full, w, h)
                    for m in models]
            err_s.append(errors(outs[0], gt, shave, benchmark).ravel())
            err_r.append(errors(outs[1], gt, shave, benchmark).ravel())
            crop = gt[shave:-shave or None, shave:-shave or None]
            g = detail_weights(torch.from_numpy(crop).permute(2, 0, 1), floor=0.0).numpy()
            det.append(g.ravel())
            fid.append(errors(outs[0], np.clip(outs[1], 0, 1), shave, benchmark).mean())
        es, er, d = (np.concatenate(a) for a in (err_s, err_r, det))
        edges = [-np.inf] + list(np.percentile(d, cuts)) + [np.inf]
        total = (es - er).sum()
        names = [f"{a:g}-{b:g} %" for a, b in zip([0] + cuts, cuts + [100])]
        for i, name in enumerate(names):
            m = (d > edges[i]) & (d <= edges[i + 1])
            db = [10 * np.log10(1 / max(e[m].mean(), 1e-12)) for e in (er, es)]
            print(f"| x{s} | {name} | {m.mean():.1%} | {db[0]:.2f} | {db[1]:.2f} | "
                  f"{(es[m] - er[m]).sum() / total:.0%} |")
        db = [10 * np.log10(1 / e.mean()) for e in (er, es)]
        fid_db = float(np.mean([10 * np.log10(1 / max(x, 1e-12)) for x in fid]))
        print(f"| x{s} | all (student against reference: {fid_db:.2f} dB) | 100% | {db[0]:.2f} | "
              f"{db[1]:.2f} | 100% |")


if __name__ == "__main__":
    main()
