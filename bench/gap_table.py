"""The PSNR gap between two evaluations (bench/eval_tables.py JSONs), per set and scale: how
far a model is from another (the paper model, say), with the issue's bounds marked.

    python bench/gap_table.py NEW.json REFERENCE.json [--old OLD.json] [--bound 0.25]
        [--bound-x4 0.15]

Prints a Markdown table of ``NEW - REFERENCE`` (dB) and, with ``--old``, ``OLD - REFERENCE``
beside it; a gap below minus the bound (``--bound-x4`` at x4 on Set14 and the DIV2K crops,
``--bound`` elsewhere) is marked with an asterisk.
"""
from __future__ import annotations

import argparse
import json


def psnrs(path: str) -> dict:
    with open(path) as f:
        d = json.load(f)
    return {(name, r["scale"]): r["psnr"] for name, s in d["sets"].items()
            for r in s["results"] if r["method"] == "liif"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("new")
    p.add_argument("reference")
    p.add_argument("--old")
    p.add_argument("--bound", type=float, default=0.25)
    p.add_argument("--bound-x4", type=float, default=0.15)
    args = p.parse_args()
    new, ref = psnrs(args.new), psnrs(args.reference)
    old = psnrs(args.old) if args.old else {}
    sets = list(dict.fromkeys(k[0] for k in new))
    scales = sorted({k[1] for k in new})
    print("| set | " + " | ".join(f"x{s}" for s in scales) + " |")
    print("|---|" + "---|" * len(scales))
    worst = 0.0
    for name in sets:
        cells, olds = [], []
        for s in scales:
            if (name, s) not in ref or (name, s) not in new:
                cells.append("-")
                olds.append("-")
                continue
            gap = new[(name, s)] - ref[(name, s)]
            bound = args.bound_x4 if s == 4 and (name == "Set14" or name.startswith("DIV2K")) \
                else args.bound
            worst = min(worst, gap + bound)
            cells.append(f"{gap:+.2f}{'*' if gap < -bound else ''}")
            if (name, s) in old:
                olds.append(f"{old[(name, s)] - ref[(name, s)]:+.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
        if old:
            print(f"| {name} (old) | " + " | ".join(olds) + " |")
    print(f"\n{'all within the bounds' if worst >= 0 else 'a bound is missed (*)'}")


if __name__ == "__main__":
    main()
