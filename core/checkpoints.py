"""Model files: the project's safetensors format and the official LIIF release's ``.pth``.

Project format (``*.safetensors``)
    The model's ``state_dict`` as safetensors tensors; the metadata holds
    ``format = "liif-zoom/1"`` and ``spec`` = the JSON model spec ``{"name", "args"}``, plus
    optional free-form ``info`` (JSON). The file alone rebuilds the model.

Official LIIF release (``edsr-baseline-liif.pth``, ``rdn-liif.pth``)
    A ``torch.save`` dict ``{"model": {"name", "args", "sd"}}``; it is opened with
    ``torch.load(weights_only=True)``, which unpickles only tensors and plain containers.

Opening a file never executes code from it. Every failure is a :class:`CheckpointError`
whose message names the file and what is wrong with it.
"""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch
import torch.nn as nn

from core.registry import ModelSpec, make

__all__ = ["CheckpointError", "load_model", "load_checkpoint", "save_model", "FORMAT"]

FORMAT = "liif-zoom/1"
PathLike = Union[str, os.PathLike]


class CheckpointError(ValueError):
    """A model file that cannot be used, with a message naming the file."""


def _fail(path: PathLike, why: str) -> CheckpointError:
    return CheckpointError(f"cannot load checkpoint {os.fspath(path)}: {why}")


def save_model(model: nn.Module, spec: ModelSpec, path: PathLike,
               info: Optional[Dict[str, Any]] = None) -> None:
    """Write ``model`` in the project format, atomically (temp file, then rename)."""
    from safetensors.torch import save_file

    sd = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "spec": json.dumps(spec)}
    if info:
        meta["info"] = json.dumps(info)
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        save_file(sd, tmp, metadata=meta)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_checkpoint(path: PathLike) -> Tuple[ModelSpec, Dict[str, torch.Tensor], Dict[str, Any]]:
    """Read ``(spec, state_dict, info)`` from a project or official file, safely."""
    path = Path(path)
    if not path.is_file():
        raise _fail(path, "no such file")
    with open(path, "rb") as f:
        head = f.read(16)
    if len(head) < 8:
        raise _fail(path, "file is empty or truncated")
    n = int.from_bytes(head[:8], "little")
    if 2 <= n < 100_000_000 and head[8:9] == b"{":
        return _load_safetensors(path)
    if head[:2] == b"PK" or head[:1] == b"\x80":  # torch zip archive or legacy pickle
        return _load_official(path)
    raise _fail(path, "not a LIIF Zoom (.safetensors) or official LIIF (.pth) model file")


def _load_safetensors(path: Path):
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            sd = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:  # safetensors raises several types for corrupt files
        raise _fail(path, f"corrupt or truncated safetensors file ({exc})") from None
    if meta.get("format") != FORMAT or "spec" not in meta:
        raise _fail(path, "safetensors file without a LIIF Zoom model spec in its metadata")
    try:
        spec = json.loads(meta["spec"])
        info = json.loads(meta.get("info", "{}"))
    except json.JSONDecodeError as exc:
        raise _fail(path, f"model spec is not valid JSON ({exc})") from None
    return spec, sd, info


def _load_official(path: Path):
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise _fail(path, f"not a loadable PyTorch file, or one that would need to run code "
                          f"to open ({msg})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("model"), dict):
        raise _fail(path, "PyTorch file without a 'model' entry (expected the official LIIF "
                          "layout {'model': {'name', 'args', 'sd'}})")
    m = obj["model"]
    if not {"name", "args", "sd"} <= set(m):
        raise _fail(path, "the 'model' entry lacks 'name', 'args' or 'sd'")
    return {"name": m["name"], "args": m["args"]}, m["sd"], {"source": "official LIIF release"}


def load_model(path: PathLike, device: Union[str, torch.device] = "cpu"
               ) -> Tuple[nn.Module, ModelSpec, Dict[str, Any]]:
    """Front door: ``(model in eval mode on device, spec, info)`` from any supported file,
    ready for inference."""
    spec, sd, info = load_checkpoint(path)
    try:
        model = make(spec)
    except Exception as exc:
        raise _fail(path, f"its model spec cannot be built ({exc})") from None
    try:
        model.load_state_dict(sd, strict=True)
    except Exception as exc:
        first = str(exc).strip().splitlines()
        raise _fail(path, "weights do not match the model spec ("
                    + (first[0] if first else type(exc).__name__) + ")") from None
    # channels-last weights: the layout the encoder's convolutions run fastest in (save_model
    # writes them back in the default layout)
    return model.to(device).to(memory_format=torch.channels_last).eval(), spec, info


def file_sha256(path: PathLike) -> str:
    """Hex SHA-256 of a file (read in 1 MiB pieces)."""
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def convert(src: PathLike, dst: PathLike, info: Optional[Dict[str, Any]] = None) -> ModelSpec:
    """Convert any loadable model file (an official LIIF ``.pth`` above all) into the project
    format at ``dst``: the same weights (checked to build the model and to load strictly), the
    model spec in the metadata, and ``info`` recording the source file's name and SHA-256 plus
    whatever ``info`` adds (licence, copyright). Returns the spec."""
    model, spec, src_info = load_model(src)
    meta = dict(src_info)
    meta.update({"converted_from": Path(src).name, "source_sha256": file_sha256(src)})
    meta.update(info or {})
    save_model(model.to(memory_format=torch.contiguous_format), spec, dst, meta)
    return spec


def main(argv=None) -> int:
    """``python -m core.checkpoints convert IN OUT [--licence TEXT] [--copyright TEXT]``
    and ``python -m core.checkpoints info FILE``."""
    import argparse
    import sys

    p = argparse.ArgumentParser(prog="python -m core.checkpoints",
                                description="Convert or inspect LIIF Zoom model files.")
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("convert", help="write a model file (e.g. an official LIIF .pth) in the "
                       "project's safetensors format")
    c.add_argument("input", help="model file: official LIIF .pth or project .safetensors")
    c.add_argument("output", help="the .safetensors file to write (atomically)")
    c.add_argument("--licence", help="licence of the weights, recorded in the file's info")
    c.add_argument("--copyright", help="copyright line, recorded in the file's info")
    c.add_argument("--name", help="a short model name, recorded in the file's info")
    i = sub.add_parser("info", help="print a model file's spec, parameter count and info")
    i.add_argument("file")
    args = p.parse_args(argv)
    try:
        if args.cmd == "convert":
            extra = {k: v for k, v in (("licence", args.licence), ("copyright", args.copyright),
                                       ("name", args.name)) if v}
            spec = convert(args.input, args.output, extra)
            print(f"wrote {args.output} ({spec['name']}, from {Path(args.input).name})",
                  file=sys.stderr)
        else:
            model, spec, info = load_model(args.file)
            n = sum(t.numel() for t in model.parameters())
            print(json.dumps({"spec": spec, "parameters": n, "info": info}, indent=1))
    except (CheckpointError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(main())
