"""Evaluate a model with the LIIF paper's PSNR protocol.

    python -m training.evaluate [--checkpoint C] --data DIR [--scales 2,3,4,6,8,12]
        [--protocol benchmark|div2k] [--degrade jpeg75] [--json OUT] [--device D] [--limit N]

``DIR`` is a benchmark folder (``HR/`` and optionally ``LR_bicubic/X{s}/NAMEx{s}.png``) or a
plain folder of HR images. For each scale ``s`` and image: the HR is cropped to a multiple of
``s``; the LR is ``LR_bicubic/X{s}`` when the folder has it, otherwise the MATLAB-compatible
bicubic of the cropped HR (:func:`core.render.resample.imresize`); LIIF renders the LR's full region
at ``s`` times its size (and bicubic does the same); PSNR is taken against the cropped HR:

* ``benchmark``: Y channel (BT.601), ``s`` pixels shaved from each border;
* ``div2k``: RGB, ``s + 6`` pixels shaved.

With ``--degrade`` (``jpeg90``, ``jpeg75``, ``jpeg50``, ``noise5``, ``noise5+jpeg75``, ...;
:func:`training.degrade.parse_eval`) the LR is degraded after it is made, the same way on every
run (JPEG with its grid at the image origin, noise seeded by the image's name), as a photo
reaches the app; both LIIF and bicubic start from that LR.

Scores are averaged over images. A table (rows liif, bicubic; columns scales) goes to stdout,
and with ``--json`` a file ``{"dataset", "protocol", "checkpoint", "results": [{"scale",
"method", "psnr"}, ...]}``.
"""
from __future__ import annotations

import json
import sys
import time
from typing import Dict, List, Tuple

import numpy as np
import torch

from core import zoo
from core.checkpoints import CheckpointError, load_model
from core.cli import ArgumentParser
from core.device import is_out_of_memory, pick_device
from core.geometry import Region
from core.io.formats import InputKind
from core.io.imageio import ImageError, atomic_write, load_image
from core.io.pixels import to_u8
from core.metrics import psnr
from core.profile import DeviceProfile, profile_for
from core.render.methods import Method
from core.render.renderer import render
from core.render.resample import imresize, render_bicubic
from training.data import PairedFolder
from training.degrade import EvalDegradation, parse_eval


def parse_scales(text: str) -> List[int]:
    try:
        scales = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise ValueError(f"--scales must be integers separated by commas, got {text!r}") from None
    if not scales or min(scales) < 1:
        raise ValueError(f"--scales must be positive integers, got {text!r}")
    return scales


def test_pair(folder: PairedFolder, f, s: int, degrade: EvalDegradation | None = None
              ) -> Tuple[np.ndarray, np.ndarray]:
    """The protocol's ``(HR, LR)`` uint8 pair of HR file ``f`` at scale ``s``: the HR cropped to
    a multiple of ``s``; the set's ``LR_bicubic`` image at x2-x4 where it has one, else the
    MATLAB-compatible bicubic of the cropped HR; then ``degrade`` (keyed by name and scale)."""
    hr = to_u8(load_image(f).pixels)
    h, w = hr.shape[0] // s * s, hr.shape[1] // s * s
    hr = hr[:h, :w]
    lr_file = folder.lr_path(f, s) if s in (2, 3, 4) else None
    lr = to_u8(load_image(lr_file).pixels) if lr_file else imresize(hr, 1 / s)
    if lr.shape[:2] != (h // s, w // s):
        raise ValueError(f"{lr_file}: LR size {lr.shape[1]}x{lr.shape[0]} does not match "
                         f"HR {w}x{h} at x{s}")
    if degrade is not None:
        lr = degrade(lr, f"{f.name}|x{s}")
    return hr, lr


def evaluate(model, folder: PairedFolder, scales: List[int], protocol: str,
             profile: DeviceProfile, limit: int | None = None, log=None, latent_dtype=None,
             degrade: EvalDegradation | None = None) -> Dict[tuple, float]:
    """Mean PSNR per ``(scale, method)``: latents encoded with ``profile`` (the protocol:
    ``profile_for(device, "float32")``), stored as ``latent_dtype`` (float32 unless given);
    ``degrade`` is applied to every LR, keyed by the file's name."""
    sums: Dict[tuple, List[float]] = {}
    files = folder.hr_files[:limit] if limit else folder.hr_files
    for s in scales:
        for f in files:
            hr, lr = test_pair(folder, f, s, degrade)
            h, w = hr.shape[:2]
            gt = hr.astype(np.float32) / 255
            lrf = lr.astype(np.float32) / 255
            full = Region.full(lr.shape[1], lr.shape[0])
            preds = {Method.BICUBIC: np.clip(render_bicubic(lrf, full, w, h), 0, 1)}
            if model is not None:
                lat = profile.encode(model, lrf, latent_dtype=latent_dtype or torch.float32)
                preds[Method.LIIF] = render(lat, full, w, h)
            for method, pred in preds.items():
                v = psnr(pred, gt, shave=s if protocol == "benchmark" else s + 6,
                         y_channel=protocol == "benchmark")
                sums.setdefault((s, method), []).append(v)
        if log:
            log(f"x{s}: " + ", ".join(f"{m} {np.mean(sums[(s, m)]):.2f}"
                                      for m in (Method.LIIF, Method.BICUBIC) if (s, m) in sums))
    return {k: float(np.mean(v)) for k, v in sums.items()}


def format_table(results: Dict[tuple, float], scales: List[int]) -> str:
    head = "method   " + "".join(f"{'x' + str(s):>8}" for s in scales)
    rows = [head]
    for m in (Method.LIIF, Method.BICUBIC):
        if any((s, m) in results for s in scales):
            rows.append(f"{m:<9}" + "".join(f"{results[(s, m)]:8.2f}" for s in scales))
    return "\n".join(rows)


def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default=None,
                   help="model file, or a bundled model: paper, cpu or photo (default: the "
                   "viewer's rule applied to the LR: the photo model when --degrade has JPEG, "
                   "else the CPU model on a CPU and the paper model on a GPU)")
    p.add_argument(
        "--data", required=True, help="benchmark folder (HR/ [+ LR_bicubic/]) or HR folder"
    )
    p.add_argument("--scales", default="2,3,4,6,8,12",
                   help="integer scales, comma-separated (default %(default)s); x2-x4 use the "
                        "folder's LR_bicubic images when it has them, the others MATLAB-style "
                        "bicubic of the HR")
    p.add_argument("--protocol", choices=("benchmark", "div2k"), default="benchmark",
                   help="benchmark: PSNR on the Y channel, scale pixels shaved (Set5, Set14, "
                        "...); div2k: on RGB, scale + 6 shaved (default %(default)s)")
    p.add_argument("--json", help="write results as JSON here")
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: the best available)")
    p.add_argument("--degrade", default="clean",
                   help="degrade the LR before upscaling, the same way every run: jpegQ, noiseS "
                   "or a chain such as noise5+jpeg75 (default: clean)")
    p.add_argument("--limit", type=int, default=None, help="only the first N images")
    p.add_argument("--bicubic-only", action="store_true", help="skip the model")
    p.add_argument("--fp16-latent", action="store_true", help="store the latent in float16")
    p.add_argument("--precision", choices=("float32", "bfloat16"), default="float32",
                   help="arithmetic of the encoder and the code features' first layer: float32 "
                   "(default; the protocol) or bfloat16 (what the viewer and the upscale CLI "
                   "use where the CPU multiplies it natively), to measure its effect")
    args = p.parse_args(argv)
    try:
        scales = parse_scales(args.scales)
        degrade = parse_eval(args.degrade)
        folder = PairedFolder(args.data)
        profile = profile_for(pick_device(args.device), args.precision)
        device = profile.device
        if args.checkpoint:
            ckpt, why = str(zoo.resolve(args.checkpoint)), ""
        else:  # the viewer's rule, applied to the LR the model sees
            jpeg_q = [v for k, v in degrade.steps if k == "jpeg"]
            kind = (InputKind("JPEG", True, jpeg_q[-1]) if jpeg_q
                    else InputKind(degrade.spec, False))
            choice = zoo.choose(device, kind=kind)
            ckpt, why = str(choice.path), f" ({choice.reason})"
        model = None if args.bicubic_only else load_model(ckpt, device)[0]
        if model is not None:
            print(zoo.describe(ckpt, model, profile) + why, file=sys.stderr)
        t0 = time.time()
        res = evaluate(model, folder, scales, args.protocol, profile, args.limit,
                       log=lambda m: print(m, file=sys.stderr),
                       latent_dtype=torch.float16 if args.fp16_latent else None,
                       degrade=degrade if degrade.steps else None)
        n = len(folder.hr_files[:args.limit] if args.limit else folder.hr_files)
        print(f"{folder.name} ({args.protocol} protocol, LR {degrade.spec}, {n} images, "
              f"{time.time() - t0:.0f} s)")
        print(format_table(res, scales))
        if args.json:
            out = {"dataset": folder.name, "protocol": args.protocol,
                   "checkpoint": None if model is None else ckpt,
                   "precision": args.precision,
                   "degrade": degrade.spec,
                   "degrade_steps": degrade.describe() if degrade.steps else "none",
                   "results": [{"scale": s, "method": str(m), "psnr": round(res[(s, m)], 4)}
                               for s in scales for m in (Method.LIIF, Method.BICUBIC)
                               if (s, m) in res]}

            def write(tmp):
                with open(tmp, "w") as f:
                    json.dump(out, f, indent=1)
            atomic_write(args.json, write)
    except (ImageError, CheckpointError, ValueError, FileNotFoundError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as exc:
        if not is_out_of_memory(exc):
            raise
        print("error: out of memory while evaluating (try --fp16-latent or --device cpu)",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
