"""Model files: the project's safetensors format and the official LIIF release's ``.pth``.

Project format (``*.safetensors``)
    The model's ``state_dict`` as safetensors tensors; the metadata holds
    ``format = "liif-zoom/1"`` and ``spec`` = the JSON model spec ``{"name", "args"}``, plus
    optional free-form ``info`` (JSON). The file alone rebuilds the model.

Official LIIF release (``edsr-baseline-liif.pth``, ``rdn-liif.pth``)
    A ``torch.save`` dict ``{"model": {"name", "args", "sd"}}``; it is opened with
    ``torch.load(weights_only=True)``, which unpickles only tensors and plain containers.

Opening a file never executes code from it, and a small hostile file cannot make the loader
allocate much: the spec (JSON, at most :data:`MAX_SPEC_BYTES`, nested at most
:data:`MAX_SPEC_DEPTH` deep, no integer above :data:`MAX_SPEC_INT`) is first built on the
``meta`` device, which allocates no storage; every tensor name and shape it wants is compared
with the file's; only then is the model built for real, so its size is bounded by the file's.
Non-finite weights are refused. Every failure is a :class:`CheckpointError` whose message
names the file and what is wrong with it.
"""
from __future__ import annotations

import json
import math
import os
import threading
import warnings
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch
import torch.nn as nn

from core.atomic import atomic_write
from core.models.registry import ModelSpec, make

__all__ = ["CheckpointError", "load_model", "load_checkpoint", "save_model", "FORMAT"]

FORMAT = "liif-zoom/1"
#: bounds on a model spec (and the free-form info): far above any real model's
MAX_SPEC_BYTES = 64 * 1024
MAX_SPEC_DEPTH = 16
MAX_SPEC_INT = 65536
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
    atomic_write(path, lambda tmp: save_file(sd, tmp, metadata=meta))


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


def _json_depth(text: str) -> int:
    """Deepest nesting of ``[``/``{`` in a JSON text (brackets inside strings ignored)."""
    depth = best = 0
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            best = max(best, depth)
        elif ch in "]}":
            depth -= 1
    return best


def _parse_bounded_json(path: Path, text: str, what: str) -> Any:
    if len(text) > MAX_SPEC_BYTES:
        raise _fail(path, f"its {what} is {len(text)} bytes, more than the {MAX_SPEC_BYTES} "
                          "any model needs")
    if _json_depth(text) > MAX_SPEC_DEPTH:
        raise _fail(path, f"its {what} is nested more than {MAX_SPEC_DEPTH} levels deep")
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise _fail(path, f"its {what} is not valid JSON ({exc})") from None


def _check_spec(path: Path, spec: Any, depth: int = 0) -> None:
    """Plain data only, bounded depth, no absurd integers (the spec's sizes and counts)."""
    if depth > MAX_SPEC_DEPTH:
        raise _fail(path, f"its model spec is nested more than {MAX_SPEC_DEPTH} levels deep")
    if isinstance(spec, dict):
        for k, v in spec.items():
            if not isinstance(k, str):
                raise _fail(path, "its model spec has a key that is not a string")
            _check_spec(path, v, depth + 1)
    elif isinstance(spec, (list, tuple)):
        if len(spec) > 4096:
            raise _fail(path, "its model spec has a list of more than 4096 entries")
        for v in spec:
            _check_spec(path, v, depth + 1)
    elif isinstance(spec, bool) or spec is None or isinstance(spec, str):
        pass
    elif isinstance(spec, int):
        if abs(spec) > MAX_SPEC_INT:
            raise _fail(path, f"its model spec asks for {spec}, above the {MAX_SPEC_INT} that "
                              "bounds any layer count or width")
    elif isinstance(spec, float):
        if not math.isfinite(spec):
            raise _fail(path, "its model spec holds a non-finite number")
    else:
        raise _fail(path, f"its model spec holds a {type(spec).__name__}, not plain data")


def _load_safetensors(path: Path):
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != FORMAT or "spec" not in meta:
                raise _fail(path, "safetensors file without a LIIF Zoom model spec in its "
                                  "metadata")
            spec = _parse_bounded_json(path, meta["spec"], "model spec")
            info = _parse_bounded_json(path, meta.get("info", "{}"), "info")
            _check_spec(path, spec)
            shapes = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
            kinds = {k: f.get_slice(k).get_dtype() for k in f.keys()}
            dtypes = {k: _SAFETENSORS_DTYPES.get(v, v) for k, v in kinds.items()}
            _check_against_spec(path, spec, shapes, dtypes)
            sd = _as_float32({k: f.get_tensor(k) for k in f.keys()})
    except CheckpointError:
        raise
    except Exception as exc:  # safetensors raises several types for corrupt files
        raise _fail(path, f"corrupt or truncated safetensors file ({_first_line(exc)})") from None
    return spec, sd, info if isinstance(info, dict) else {"info": info}


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class _TooManyTensors(Exception):
    pass


#: safetensors' dtype names of the floating types a model file may hold (anything else,
#: integers above all, would be cast to float silently and give wrong pixels)
_SAFETENSORS_DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
                       "F64": torch.float64}
_FLOATS = tuple(_SAFETENSORS_DTYPES.values())


def _as_float32(sd: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """Weights of another floating type (half precision, say) in float32, the model's."""
    return {k: v.float() if v.dtype != torch.float32 else v for k, v in sd.items()}


def _check_against_spec(path: Path, spec: ModelSpec, shapes: Dict[str, Tuple[int, ...]],
                        dtypes: Optional[Dict[str, Any]] = None) -> None:
    """Build ``spec`` on the meta device (no storage) and compare every tensor name and shape
    with ``shapes``, the file's, and that every tensor is floating point (``dtypes``);
    raise on the first difference."""
    for k, dt in (dtypes or {}).items():
        if dt not in _FLOATS:
            raise _fail(path, f"its tensor {k} is {str(dt).replace('torch.', '')}, not "
                              "floating point: not model weights")
    limit = len(shapes) + 8
    count = [0]
    me = threading.get_ident()

    def counted(module, name, tensor):
        # a spec cannot ask for (many) more tensors than the file holds: stop building early
        if threading.get_ident() == me:
            count[0] += 1
            if count[0] > limit:
                raise _TooManyTensors()

    from torch.nn.modules import module as nn_module
    hooks = [nn_module.register_module_parameter_registration_hook(counted),
             nn_module.register_module_buffer_registration_hook(counted)]
    try:
        with torch.device("meta"):
            model = make(spec)
    except _TooManyTensors:
        raise _fail(path, f"its model spec asks for more than the {len(shapes)} tensors the "
                          "file holds") from None
    except (Exception, RecursionError) as exc:
        raise _fail(path, f"its model spec cannot be built ({_first_line(exc)})") from None
    finally:
        for h in hooks:
            h.remove()
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    missing = sorted(set(want) - set(shapes))
    extra = sorted(set(shapes) - set(want))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"{len(missing)} tensor(s) missing, e.g. {missing[0]}")
        if extra:
            parts.append(f"{len(extra)} unexpected, e.g. {extra[0]}")
        raise _fail(path, "weights do not match the model spec (" + "; ".join(parts) + ")")
    for k, shape in want.items():
        if shapes[k] != shape:
            raise _fail(path, f"weights do not match the model spec ({k} is "
                              f"{list(shapes[k])} in the file, the spec needs {list(shape)})")


def _check_zip(path: Path) -> None:
    """A torch zip archive holds its tensors' bytes uncompressed (``torch.save`` stores
    them): refuse an archive whose entries are compressed or add up to more than the file
    (a 1 MB deflated entry can unpack to gigabytes before any check could see a shape)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _fail(path, f"corrupt PyTorch archive ({_first_line(exc)})") from None
    size = path.stat().st_size
    total = 0
    for i in infos:
        if i.compress_type != zipfile.ZIP_STORED and i.file_size > (1 << 20):
            raise _fail(path, f"its entry {i.filename} is compressed ({i.compress_size} bytes "
                              f"unpacking to {i.file_size}): torch.save never writes that")
        total += i.file_size
    if total > 2 * size + (1 << 20):
        raise _fail(path, f"its entries unpack to {total} bytes, more than the file's {size}")


def _load_official(path: Path):
    with open(path, "rb") as f:
        is_zip = f.read(2) == b"PK"
    if is_zip:
        _check_zip(path)
    try:
        with warnings.catch_warnings():  # (torch's remarks on a foreign pickle protocol)
            warnings.simplefilter("ignore")
            obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except (Exception, RecursionError) as exc:
        raise _fail(path, f"not a loadable PyTorch file, or one that would need to run code "
                          f"to open ({_first_line(exc)})") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("model"), dict):
        raise _fail(path, "PyTorch file without a 'model' entry (expected the official LIIF "
                          "layout {'model': {'name', 'args', 'sd'}})")
    m = obj["model"]
    if not {"name", "args", "sd"} <= set(m):
        raise _fail(path, "the 'model' entry lacks 'name', 'args' or 'sd'")
    spec = {"name": m["name"], "args": m["args"]}
    _check_spec(path, spec)
    sd = m["sd"]
    if not isinstance(sd, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                           for k, v in sd.items()):
        raise _fail(path, "its 'sd' entry is not a dict of named tensors")
    _check_against_spec(path, spec, {k: tuple(v.shape) for k, v in sd.items()},
                        {k: v.dtype for k, v in sd.items()})
    return spec, _as_float32(sd), {"source": "official LIIF release"}


def load_model(path: PathLike, device: Union[str, torch.device] = "cpu"
               ) -> Tuple[nn.Module, ModelSpec, Dict[str, Any]]:
    """Front door: ``(model in eval mode on device, spec, info)`` from any supported file,
    ready for inference. The spec and the tensors' names and shapes are checked against each
    other before the model is allocated (see the module docstring)."""
    spec, sd, info = load_checkpoint(path)
    for k, v in sd.items():
        if v.is_floating_point() and not bool(torch.isfinite(v).all()):
            raise _fail(path, f"its weights hold NaN or infinite values ({k})")
    try:
        model = make(spec)
    except Exception as exc:
        raise _fail(path, f"its model spec cannot be built ({_first_line(exc)})") from None
    try:
        model.load_state_dict(sd, strict=True)
    except Exception as exc:
        raise _fail(
            path, "weights do not match the model spec (" + _first_line(exc) + ")"
        ) from None
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
    import sys

    from core.cli import ArgumentParser

    p = ArgumentParser(prog="python -m core.checkpoints",
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
