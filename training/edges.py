"""Join an LMF model and a LIIF model on one encoder into an LMF-with-LIIF-at-edges model.

    python -m training.edges LMF.safetensors LIIF.safetensors OUT.safetensors [--threshold 0.3]

The LMF model's decoder (trained on the LIIF model's frozen encoder, e.g. by
``training/configs/cpu-lmf-paperenc.yaml``) renders the smooth pixels, the LIIF model's decoder
the pixels near strong input edges (:mod:`core.models.edges`); the encoder is the LIIF
model's. The bundled ``resources/lmf-edsr16-edges.safetensors`` was made this way from that
run's averaged weights and ``resources/edsr-baseline-liif.safetensors``.
"""
from __future__ import annotations

import sys

from core.checkpoints import CheckpointError, load_checkpoint, save_model
from core.cli import ArgumentParser
from core.models.edges import compose
from core.models.registry import make


def edges_spec(lmf_spec: dict, liif_spec: dict, threshold: float) -> dict:
    """The model spec of the joined model (refuses models of other families; whether the
    encoders are one is :func:`core.models.edges.compose`'s check, on the weights)."""
    if lmf_spec.get("name") != "lmf" or not lmf_spec["args"].get("skip"):
        raise ValueError("the first model must be an LMF model with skip (its colour channels)")
    if liif_spec.get("name") != "liif":
        raise ValueError("the second model must be a LIIF model")
    a = lmf_spec["args"]
    return {"name": "lmf-liif", "args": {
        "encoder_spec": liif_spec["args"]["encoder_spec"],
        "imnet_spec": liif_spec["args"]["imnet_spec"],
        "hyper_hidden": list(a.get("hyper_hidden", [256])),
        "render_width": int(a.get("render_width", 16)),
        "render_layers": int(a.get("render_layers", 4)),
        "threshold": float(threshold)}}


def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m training.edges", description=__doc__.split("\n")[0])
    p.add_argument("lmf")
    p.add_argument("liif")
    p.add_argument("out")
    p.add_argument("--threshold", type=float, default=0.3,
                   help="luma contrast (0-1) above which a code counts as an edge")
    args = p.parse_args(argv)
    try:
        lspec, lsd, _ = load_checkpoint(args.lmf)
        pspec, psd, _ = load_checkpoint(args.liif)
        spec = edges_spec(lspec, pspec, args.threshold)
        model = make(spec)
        model.load_state_dict(compose(lsd, psd))
        save_model(model, spec, args.out)
    except (CheckpointError, ValueError, KeyError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} (threshold {args.threshold:g})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
