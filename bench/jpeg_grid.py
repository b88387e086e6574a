"""Where a model's error sits relative to the JPEG block grid of its input.

    python bench/jpeg_grid.py [--checkpoint photo16] [--data ../shared/data/bench/Set14]
        [--scale 4] [--degrade jpeg75]

The evaluation's LR (:func:`training.evaluate.test_pair`, JPEG with its grid at the image
origin) is upscaled by the model and by bicubic; each HR pixel's squared error in Y (the
benchmark protocol's, :func:`core.metrics.rgb_to_y`; ``scale`` pixels shaved) is binned by the
position of its LR pixel ``(r // scale, c // scale)`` within the 8x8 luma block (``% 8``).
Printed: the PSNR of the pooled error per block row, and of the pixels on the block's rim
(first and last row or column) against the inner 6x6. If the model's loss were in the blocks'
seams (where a grid-aware model would win), the rim would lose more than the inner pixels;
``--degrade clean`` is the control (the same bins with no grid).
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main() -> None:
    from core import zoo
    from core.checkpoints import load_model
    from core.geometry import Region
    from core.metrics import rgb_to_y
    from core.profile import profile_for
    from core.render.renderer import render
    from core.render.resample import render_bicubic
    from training.data import PairedFolder
    from training.degrade import parse_eval
    from training.evaluate import test_pair

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default="photo16")
    p.add_argument("--data", default=os.path.join(ROOT, "..", "shared", "data", "bench", "Set14"))
    p.add_argument("--scale", type=int, default=4)
    p.add_argument("--degrade", default="jpeg75")
    args = p.parse_args()
    s = args.scale
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    folder = PairedFolder(args.data)
    model = load_model(str(zoo.resolve(args.checkpoint)), "cpu")[0]
    profile = profile_for(torch.device("cpu"), "float32")
    degrade = parse_eval(args.degrade)
    err = {"model": np.zeros((8, 8)), "bicubic": np.zeros((8, 8))}
    count = np.zeros((8, 8))
    for f in folder.hr_files:
        hr, lr = test_pair(folder, f, s, degrade if degrade.steps else None)
        h, w = hr.shape[:2]
        gt = rgb_to_y(hr.astype(np.float32) / 255)
        lrf = lr.astype(np.float32) / 255
        full = Region.full(lr.shape[1], lr.shape[0])
        preds = {"bicubic": render_bicubic(lrf, full, w, h),
                 "model": render(profile.encode(model, lrf, latent_dtype=torch.float32),
                                 full, w, h)}
        rows, cols = np.mgrid[s:h - s, s:w - s]
        by, bx = (rows // s) % 8, (cols // s) % 8
        for k, pred in preds.items():
            q = np.round(np.clip(pred, 0, 1) * 255) / 255  # what the protocol scores
            e = (rgb_to_y(q) - gt)[s:h - s, s:w - s] ** 2
            np.add.at(err[k], (by.ravel(), bx.ravel()), e.ravel())
        np.add.at(count, (by.ravel(), bx.ravel()), 1)

    def db(mse: float) -> float:
        return float(10 * np.log10(1 / mse))

    rim = np.zeros((8, 8), bool)
    rim[[0, 7], :] = rim[:, [0, 7]] = True
    print(f"{folder.name} x{s}, LR {args.degrade}, {args.checkpoint}: pooled Y PSNR by the LR "
          "pixel's place in its 8x8 block")
    for k in ("model", "bicubic"):
        mse = err[k] / count
        print(f"{k:8s} all {db(mse.mean()):.2f} | rows 0-7 "
              + " ".join(f"{db(v):.2f}" for v in mse.mean(axis=1))
              + f" | rim {db(mse[rim].mean()):.2f}, inner {db(mse[~rim].mean()):.2f}")


if __name__ == "__main__":
    main()
