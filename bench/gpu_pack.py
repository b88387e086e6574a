"""Pack a training subset for a lent GPU machine (``bench/gpu_session.sh``).

    python bench/gpu_pack.py [--src ../shared/data/train] [--dest .gpudata/train]
        [--budget-mb 40] [--holdout 9]

The device machine receives only the repository (at most 64 MiB in all, the carried paths
included); ``../shared`` stays behind. This copies whole training images into ``--dest``
(git-ignored; name ``.gpudata`` in the run's ``carry``) until ``--budget-mb`` is reached: first
the BSDS500 JPEGs (small and many: the variety), then the PNG photos (clean and large) that
still fit, each set in name order, skipping the last ``--holdout`` images of the full sorted
list (the held-out validation images of the CPU configs, so that validation here stays
unseen). Prints what it packed: 406 of 440 images, 39.9 MB, with the defaults.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main() -> int:
    from training.data import list_images

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--src", default=os.path.join(ROOT, "..", "shared", "data", "train"))
    p.add_argument("--dest", default=os.path.join(ROOT, ".gpudata", "train"))
    p.add_argument("--budget-mb", type=float, default=40.0)
    p.add_argument("--holdout", type=int, default=9)
    a = p.parse_args()
    if not os.path.isdir(a.src):
        print(f"error: no training folder at {a.src}", file=sys.stderr)
        return 2
    files = list_images(a.src)  # the order the training configs' holdout counts in
    usable = files[:len(files) - a.holdout] if a.holdout else files
    order = ([f for f in usable if f.suffix.lower() != ".png"]
             + [f for f in usable if f.suffix.lower() == ".png"])
    if os.path.isdir(a.dest):
        shutil.rmtree(a.dest)
    os.makedirs(a.dest)
    budget, used, n = a.budget_mb * 1e6, 0, 0
    for f in order:
        size = os.path.getsize(f)
        if used + size > budget:
            continue
        rel = str(f.relative_to(a.src)).replace(os.sep, "__")
        shutil.copyfile(f, os.path.join(a.dest, rel))
        used, n = used + size, n + 1
    print(f"packed {n} of {len(usable)} training images ({used / 1e6:.1f} MB) into {a.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
