"""Upscale (or render any region of) one image or many with LIIF or bicubic.

    python -m core.upscale INPUT (--scale S | --size WxH) [--region X,Y,W,H]
        [--checkpoint C] [--device D] [--method liif|bicubic|nearest] [--quality Q] -o OUTPUT
    python -m core.upscale INPUT... | FOLDER | 'GLOB' (--scale S | --size WxH) -o OUTDIR
        [--name PATTERN] [--overwrite]

One input file writes the file ``-o`` names, which must have an image extension (an unknown
one, or none, is an error: a folder is written ``OUTDIR/`` or exists already), must not exist
unless ``--overwrite``, and whose folder must exist: all checked before any work. Several inputs, a
folder (its images, recursively) or a glob write into the folder ``OUTDIR`` (created), named
by ``--name`` (default ``{stem}-{method}-x{scale}.png``, or ``{stem}-{method}-{w}x{h}.png``
with ``--size``; fields ``stem``, ``ext``, ``parent`` (the input's folder), ``method``,
``scale``, ``w``, ``h``); existing
outputs are skipped unless ``--overwrite``; a bad input is reported and the rest go on; one
progress bar covers all the work (encoding included) and appears for any run longer than a
second; a summary line ends the run, and the exit status is 1 if any input failed.

The region is in source pixels (fractional allowed; default the whole image); ``--scale``
multiplies its size, ``--size`` sets the output size exactly. Output format by extension:
PNG, JPEG, TIFF, WebP, BMP, AVIF. The default checkpoint follows :func:`core.zoo.choose`
for each input: the photo model for a lossy one (JPEG, lossy WebP, HEIC), else the clean
bundled model for the device; one line on stderr names each model as it is first used and
why (``JPEG q≈72 → photo model``). ``--checkpoint`` takes a file or a bundled model's key
(``paper``, ``cpu``, ``photo``) and then holds for every input. Every number is checked (finite, in
range); the region must overlap
the image and may reach at most the image's own size beyond it, that part rendered with the
image's border continued outwards. On bad input the command prints one line ``error: ...`` and
exits with status 2; Ctrl+C, SIGTERM and SIGHUP stop it with one line and status 130/143/129.
No partial output file is ever left; a new file gets the umask's permissions, an overwritten
one keeps its own.
"""
from __future__ import annotations

if __name__ == "__main__":  # Ctrl+C while torch loads (seconds): one line, not a traceback
    import os as _os
    import signal as _signal
    import sys as _sys

    def _interrupted(*_):
        # (nothing is written yet; exiting at once, since an exception raised inside the
        # imports can surface as another module's traceback)
        print("error: interrupted", file=_sys.stderr, flush=True)
        _os._exit(130)

    _signal.signal(_signal.SIGINT, _interrupted)

import glob
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

from core import zoo
from core.atomic import Terminated, check_replaceable, remove_stale, terminate_on_signals
from core.checkpoints import CheckpointError
from core.cli import ArgumentParser
from core.defaults import duration
from core.device import is_out_of_memory, pick_device
from core.export import (
    CONFIRM_OUTPUT,
    MAX_OUTPUT_PIXELS,
    MAX_OUTPUT_SIDE,
    METHODS,
    check_output,
    check_request,
    export,
)
from core.geometry import Region
from core.io.formats import KNOWN_EXTS, WRITE_FORMATS
from core.io.imageio import ImageError, image_size, load_image
from core.profile import profile_for
from core.rates import BLOCK, export_seconds
from core.render.methods import Method


def parse_size(text: str):
    try:
        w, h = text.lower().split("x")
        w, h = int(w), int(h)
    except ValueError:
        raise ValueError(f"--size must be WxH (integers), got {text!r}") from None
    if w < 1 or h < 1:
        raise ValueError(f"--size must be positive, got {text!r}")
    return w, h


def check_scale(scale: float) -> None:
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"--scale must be a finite positive number, got {scale}")


def output_size(region: Region, scale: float) -> tuple:
    """``(out_w, out_h)`` = the region's size times ``scale`` (finite, positive, and within
    :data:`core.export.MAX_OUTPUT_PIXELS`), at least 1 x 1."""
    check_scale(scale)
    w, h = region.w * scale, region.h * scale
    if not (w * h <= MAX_OUTPUT_PIXELS and max(w, h) <= MAX_OUTPUT_SIDE):
        raise ValueError(f"--scale {scale:g} makes a {w:.0f}x{h:.0f} output, above the limit of "
                         f"{MAX_OUTPUT_SIDE} px a side and {MAX_OUTPUT_PIXELS / 1e9:.1f} Gpx")
    return max(1, round(w)), max(1, round(h))


#: progress-bar weight of one encoded source pixel against one rendered output pixel (the
#: encoder costs about 25 times the renderer's per-pixel work for the bundled CPU model)
ENCODE_WEIGHT = 25
#: the CLI renders in bands from the top: a band's latent rows are all it needs at once, so
#: it keeps at most this much (the viewer keeps more: it goes back and forth) ...
CLI_LATENT_BUDGET = 1 << 30
#: ... and over a band's needs by this factor (the next band's rows arrive before the last
#: band's leave); a band is this many output pixels
BAND_MARGIN = 1.5
CLI_BAND_PIXELS = 1 << 20
#: the side of the CLI's latent tiles
LATENT_TILE = 64
#: code features kept: one band's worth at most a few hundred MB, so the CLI keeps little
#: and computes a tile's features again when a later band needs them
CLI_FEATURE_CACHE = 64 << 20
#: outputs of at least this many pixels are announced with their size and time first
LARGE_OUTPUT = 100_000_000


@dataclass
class Job:
    """One input and where its output goes."""

    src: str
    dst: str
    work: int = 0  #: its share of the progress bar: encoded pixels (weighted) + output pixels


def expand_inputs(items: List[str]) -> List[str]:
    """Files as given; a folder's images (recursively, sorted); a glob's matches (sorted).
    Raises ValueError for an item that names nothing."""
    out: List[str] = []
    for it in items:
        if os.path.isdir(it):
            found = sorted(str(p) for p in Path(it).rglob("*")
                           if p.is_file() and p.suffix.lower() in KNOWN_EXTS)
            if not found:
                raise ValueError(f"no images in folder {it}")
            out += found
        elif glob.has_magic(it) and not os.path.exists(it):
            found = sorted(p for p in glob.glob(it, recursive=True) if os.path.isfile(p))
            if not found:
                raise ValueError(f"no files match {it!r}")
            out += found
        else:
            out.append(it)
    return list(dict.fromkeys(out))


def output_name(pattern: str, src: str, method: str, scale: Optional[float],
                size: Optional[tuple]) -> str:
    """The output file name for ``src`` from ``pattern`` (see the module docstring)."""
    stem, ext = os.path.splitext(os.path.basename(src))
    try:
        name = pattern.format(stem=stem, ext=ext.lstrip("."), method=method,
                              parent=os.path.basename(os.path.dirname(os.path.abspath(src))),
                              scale=f"{scale:g}" if scale else "", w=size[0] if size else "",
                              h=size[1] if size else "")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"--name {pattern!r}: {exc}") from None
    if os.sep in name or os.path.splitext(name)[1].lower() not in WRITE_FORMATS:
        raise ValueError(f"--name {pattern!r} must give a file name with an image extension "
                         f"({', '.join(sorted(WRITE_FORMATS))}), got {name!r}")
    return name


def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m core.upscale",
                       description="Render a region of one image or many at any resolution "
                                   "with LIIF (or bicubic).")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="image file(s), a folder of images (recursive) or a quoted glob")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--scale", type=float, help="output size = region size x SCALE")
    g.add_argument("--size", help="output size WxH in pixels")
    p.add_argument("--region", help="X,Y,W,H in source pixels, fractional allowed (default: "
                   "the whole image); may reach up to the image's own size beyond an edge, "
                   "where the border is continued (every method: points beyond it are moved "
                   "onto it)")
    p.add_argument("--checkpoint", default=None,
                   help="model file, or a bundled model: paper, cpu or photo (default: per "
                        "input, the photo model for a lossy one such as JPEG, else the CPU "
                        "model on a CPU and the paper model on a GPU)")
    p.add_argument("--device", default=None, help="cpu, cuda or mps (default: best available)")
    p.add_argument("--method", choices=[str(m) for m in METHODS], default=str(Method.LIIF),
                   help="liif (the model), bicubic or nearest (default: liif)")
    p.add_argument("--quality", type=int, default=95,
                   help="quality of the lossy formats (JPEG, WebP, AVIF, HEIC; JPEG XL: 100 is "
                   "lossless), 1-100 (default 95)")
    p.add_argument("--precision", choices=("auto", "float32"), default="auto",
                   help="arithmetic of the encoder and the code features' first layer: auto = "
                   "bfloat16 where the CPU multiplies it natively (faster, within the tests' "
                   "tolerance of float32), else float32 (default auto)")
    p.add_argument("--fp16-latent", action="store_true", help="store the latent in float16 "
                   "on a CPU too (half the memory; PSNR unchanged at 4 decimals on Set5; on a "
                   "GPU it always is)")
    p.add_argument("-o", "--output", required=True,
                   help="output file (one input), or output folder (several inputs)")
    p.add_argument("--name", help="output file name pattern in a folder (default "
                   "{stem}-{method}-x{scale}.png or {stem}-{method}-{w}x{h}.png)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace existing outputs (default: skip them in a folder, refuse an "
                   "existing single output file)")
    p.add_argument("--strip-metadata", action="store_true",
                   help="leave the source's EXIF (camera, date, GPS) out of the outputs; its "
                   "colour profile is always kept")
    p.add_argument("--yes", action="store_true",
                   help=f"run outputs above {CONFIRM_OUTPUT // 10**6:,} Mpx (refused without it)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(_joined_region(sys.argv[1:] if argv is None else list(argv)))
    state = {"written": []}
    try:
        with terminate_on_signals():
            return run(args, state)
    except (ImageError, CheckpointError, ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as exc:
        if not is_out_of_memory(exc):
            raise
        gpu = "cuda" in str(exc).lower() or "mps" in str(exc).lower()
        print("error: out of memory (the output in progress was not written; try "
              + ("--device cpu, " if gpu else "") + "a smaller --region or --scale, "
              "--fp16-latent, or a lower LIIF_ZOOM_LATENT_MB)", file=sys.stderr)
        return 1
    except (KeyboardInterrupt, Terminated) as exc:
        what = "interrupted" if isinstance(exc, KeyboardInterrupt) else f"{exc} received"
        done = state["written"]
        kept = f"; {len(done)} finished file(s) kept" if done else ""
        print(f"error: {what}; the output in progress was not written{kept}", file=sys.stderr)
        return 130 if isinstance(exc, KeyboardInterrupt) else 128 + exc.signum


def _joined_region(argv: List[str]) -> List[str]:
    """``--region -100,-100,50,50`` as ``--region=-100,...``: argparse takes a value that
    starts with a minus sign for an option and says "expected one argument"."""
    out, i = [], 0
    while i < len(argv):
        if argv[i] == "--region" and i + 1 < len(argv) and argv[i + 1].startswith("-"):
            out.append(f"--region={argv[i + 1]}")
            i += 2
        else:
            out.append(argv[i])
            i += 1
    return out


def plan(args) -> tuple:
    """``(jobs, single)``: what to render where; raises ValueError for a bad request."""
    out = args.output
    one = args.inputs[0]
    single = (len(args.inputs) == 1 and not os.path.isdir(one)
              and not (glob.has_magic(one) and not os.path.exists(one))
              and not os.path.isdir(out) and not out.endswith(os.sep))
    if single:
        ext = os.path.splitext(out)[1].lower()
        if ext not in WRITE_FORMATS:
            raise ValueError(
                f"-o {out}: " + (f"cannot write {ext} files" if ext else "no image extension")
                + f" (use one of {', '.join(sorted(WRITE_FORMATS))}; for a folder, end it "
                f"with {os.sep} or create it first)")
        if not os.path.exists(one):  # before any model is loaded
            raise ValueError(f"cannot read image {one}: no such file")
        if os.path.exists(out) and not args.overwrite:
            raise ValueError(f"-o {out} exists; --overwrite replaces it")
        check_replaceable(out)  # before any work: a missing folder is found now
        return [Job(one, out)], True
    files = expand_inputs(args.inputs)
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"-o {out}: several inputs need an output folder, and this is a file")
    size = parse_size(args.size) if args.size else None
    pattern = args.name or ("{stem}-{method}-{w}x{h}.png" if size else
                            "{stem}-{method}-x{scale}.png")
    jobs, seen = [], {}
    for f in files:
        name = output_name(pattern, f, args.method, args.scale, size)
        if name in seen:
            raise ValueError(f"{f} and {seen[name]} would both write {name}; use --name with "
                             "the {parent} field (the input's folder), e.g. "
                             "--name '{parent}-{stem}-x{scale}.png'")
        seen[name] = f
        jobs.append(Job(f, os.path.join(out, name)))
    return jobs, False


def run(args, state: Optional[dict] = None) -> int:
    """Do what ``args`` ask: check them, plan the jobs, size them, then run them in order
    (in a batch a failed input is reported and the rest go on). ``state["written"]`` lists
    the outputs written so far (for the caller's Ctrl+C message)."""
    state = state if state is not None else {"written": []}
    _check_args(args)
    region_arg = Region.parse(args.region) if args.region else None
    jobs, single = plan(args)
    # a folder (or anything but a file) in an output's place fails that job now, and with
    # --overwrite every target is checked before any work, as for a single output
    blocked = [j for j in jobs if os.path.lexists(j.dst) and not os.path.isfile(j.dst)]
    todo = [j for j in jobs if j not in blocked
            and (args.overwrite or single or not os.path.exists(j.dst))]
    if args.overwrite:
        for j in todo:
            check_replaceable(j.dst)
    skipped = len(jobs) - len(todo) - len(blocked)
    for folder in {os.path.dirname(os.path.abspath(j.dst)) for j in jobs}:
        remove_stale(folder)  # what a killed earlier run left (.part files)
    models = Models(args) if args.method == Method.LIIF else None
    if models is not None and args.checkpoint:
        models.get(todo[0].src if todo else None)  # a bad file is an error before any work
    if not single:
        os.makedirs(args.output, exist_ok=True)
    _announce(args, _size_jobs(args, todo, region_arg, models, single), region_arg, models)
    failed: List[str] = [j.src for j in blocked]
    for j in blocked:
        _say(None, f"error: cannot write {j.dst}: something other than a file is there")
    t0 = time.perf_counter()
    failed += _run_jobs(args, todo, region_arg, models, single, state)
    dt = time.perf_counter() - t0
    if single:
        if dt > 1.0:
            print(f"wrote {jobs[0].dst} in {dt:.1f} s", file=sys.stderr)
        return 0
    print(f"{len(state['written'])} written, {skipped} skipped (exist; --overwrite replaces "
          f"them), {len(failed)} failed, in {dt:.1f} s -> {args.output}"
          + (f"; failed: {', '.join(failed)}" if failed else ""), file=sys.stderr)
    return 1 if failed else 0


def _check_args(args) -> None:
    if not 1 <= args.quality <= 100:
        raise ValueError(f"--quality must be 1-100, got {args.quality}")
    if args.size:
        parse_size(args.size)
    else:
        check_scale(args.scale)


def _size_jobs(args, todo: List[Job], region_arg: Optional[Region], models,
               single: bool) -> List[Tuple[Job, int, int, int, int]]:
    """Each job's size from its header (``job.work``, for the progress bar; a bad file counts
    0), its request and format limits checked before any work; returns the large ones."""
    large = []  # (job, output w, h, image w, h) of outputs over LARGE_OUTPUT
    for j in todo:
        try:
            w, h = image_size(j.src)
            region = region_arg or Region.full(w, h)
            ow, oh = _output_size(args, region)
            check_request(region, ow, oh, w, h)  # before any work (export checks it again)
            check_output(j.dst, ow, oh)  # and what the format can hold
        except (ImageError, ValueError):
            if single:
                raise
            continue
        j.work = ow * oh + (ENCODE_WEIGHT * w * h if models is not None else 0)
        if LARGE_OUTPUT <= ow * oh <= MAX_OUTPUT_PIXELS and max(ow, oh) <= MAX_OUTPUT_SIDE:
            large.append((j, ow, oh, w, h))
    return large


def _announce(args, large: List[Tuple[Job, int, int, int, int]], region_arg: Optional[Region],
              models) -> None:
    """Say each large output's size and time; above :data:`CONFIRM_OUTPUT` refuse without
    ``--yes``. (The format's limits were checked with the request.)"""
    for j, ow, oh, w, h in large:
        secs = None
        if models is not None:
            r = region_arg or Region.full(w, h)
            secs = job_seconds(models.get(j.src)[0], models.profile, w, h, r, ow, oh)
        eta = f", about {duration(secs)} here" if secs else ""
        if ow * oh > CONFIRM_OUTPUT and not args.yes:
            raise ValueError(f"{j.dst}: output {ow}x{oh} ({ow * oh / 1e6:,.0f} Mpx{eta}) is "
                             f"above {CONFIRM_OUTPUT / 1e6:,.0f} Mpx; add --yes to run it")
        print(f"{j.dst}: output {ow}x{oh} ({ow * oh / 1e6:,.0f} Mpx{eta}); a large job (Ctrl+C "
              "stops it without leaving a file)", file=sys.stderr)


def _run_jobs(args, todo: List[Job], region_arg: Optional[Region], models, single: bool,
              state: dict) -> List[str]:
    """Run the jobs under one progress bar; returns the inputs that failed (a single job's
    error is raised instead)."""
    from tqdm import tqdm
    # the total is work units (output pixels plus weighted source pixels to encode): shown
    # as a percentage and a time, never as a count that reads like pixels
    bar = tqdm(total=sum(j.work for j in todo), delay=1.0, desc="upscaling", file=sys.stderr,
               disable=args.no_progress, dynamic_ncols=True,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}")
    failed: List[str] = []
    try:
        for j in todo:
            start = bar.n
            try:
                if models is not None:
                    model, profile = models.get(j.src, bar)
                else:
                    model = profile = None
                _one(args, j, region_arg, model, profile, bar)
                state["written"].append(j.dst)
            except (ImageError, CheckpointError, ValueError, OSError) as exc:
                if single:
                    raise
                failed.append(j.src)
                _say(bar, f"error: {exc}")
            bar.update(start + j.work - bar.n)
    finally:
        bar.close()
    return failed


def _say(bar, line: str) -> None:
    """One line on stderr: above the progress bar once it shows (tqdm's delay), else plain."""
    if bar is not None and not bar.disable and time.time() - bar.start_t >= bar.delay:
        bar.write(line, file=sys.stderr)
    else:
        print(line, file=sys.stderr)


class Models:
    """The models of a run, loaded once each: ``--checkpoint`` for every input, else the one
    :func:`core.zoo.choose` picks for each input; the first use of each is named
    on stderr with the reason."""

    def __init__(self, args) -> None:
        self.profile = profile_for(pick_device(args.device), args.precision)
        self.fixed = zoo.resolve(args.checkpoint) if args.checkpoint else None
        self.loaded: dict = {}

    def get(self, src: Optional[str], bar=None) -> tuple:
        if self.fixed is not None:
            path, why = self.fixed, ""
        else:
            choice = zoo.choose(self.profile.device, src)
            path, why = choice.path, f" ({choice.reason})"
        if path not in self.loaded:
            model = zoo.load(path, self.profile.device)
            self.loaded[path] = model
            _say(bar, zoo.describe(path, model, self.profile) + why)
        return self.loaded[path], self.profile


def _output_size(args, region: Region) -> tuple:
    return parse_size(args.size) if args.size else output_size(region, args.scale)


def _one(args, job: Job, region_arg: Optional[Region], model, profile, bar) -> None:
    """Render one job; advances ``bar`` by its encoding and rendering work."""
    import torch

    end = bar.n + job.work  # where the bar stands when this job is done
    image = load_image(job.src)
    for note in image.notes(WRITE_FORMATS.get(os.path.splitext(job.dst)[1].lower())):
        _say(bar, f"note: {job.src}: {note}")
    region = region_arg or Region.full(image.width, image.height)
    out_w, out_h = _output_size(args, region)  # (export checks the request)
    if args.size and abs(out_w / out_h - region.w / region.h) > 0.01 * region.w / region.h:
        _say(bar, f"note: {job.src}: --size {out_w}x{out_h} has another aspect ratio than the "
                  f"{region.w:g}x{region.h:g} region: the picture is stretched")
    latent = None
    if model is not None:
        latent = profile.encode(model, image.pixels,
                                latent_dtype=torch.float16 if args.fp16_latent else None,
                                budget_bytes=cli_budget(profile),
                                tile=LATENT_TILE,
                                feature_cache_bytes=CLI_FEATURE_CACHE)
        whole = image.width * image.height * latent.code_bytes
        if latent.budget is not None and whole > latent.budget:
            # the bands encode what they need as they go: keep about one band's worth
            latent.budget = band_budget(latent.budget, region, out_w, out_h, latent.tile,
                                        image.width * latent.code_bytes)
        elif region_arg is None:
            # the whole image, and its latent fits the budget: encode it up front, with
            # progress (beyond the budget the bands encode what they need as they go)
            px = ENCODE_WEIGHT * image.width * image.height
            base = bar.n
            latent.encode_all(progress=lambda d, t: bar.update(base + px * d // max(t, 1) - bar.n))
    base = bar.n

    def progress(done: int, total: int) -> None:
        # the rest of the job's work (rendering, and the encoding the bands do as they go)
        # spread over the rows: the bar moves steadily instead of jumping at the end
        bar.update(base + (end - base) * done // max(1, total) - bar.n)

    export(image, region, out_w, out_h, job.dst, args.method, latent,
           quality=args.quality, progress=progress, keep_exif=not args.strip_metadata,
           band_pixels=CLI_BAND_PIXELS)


def cli_budget(profile) -> int:
    """The bytes a CLI job's latent may keep: the device's budget, at most
    :data:`CLI_LATENT_BUDGET` (beyond it the job renders in bands, :func:`band_budget`)."""
    return min(profile.latent_budget, CLI_LATENT_BUDGET)


def job_seconds(model, profile, w: int, h: int, region: Region, out_w: int, out_h: int
                ) -> Optional[float]:
    """About how long the CLI takes to render ``region`` of a ``w x h`` image at
    ``out_w x out_h`` (:func:`core.rates.export_seconds`): every source pixel the region
    covers is encoded, in bands of latent tiles where the whole latent is over the budget."""
    inside = region.inside(w, h)
    covered = 0.0 if inside is None else inside.w * inside.h
    banded = w * h * getattr(model, "latent_dim", 0) * 4 > cli_budget(profile)
    return export_seconds(model, profile, out_w * out_h, covered, covered,
                          block_rows=LATENT_TILE if banded else BLOCK)


def band_budget(budget: Optional[int], region: Region, out_w: int, out_h: int, tile: int,
                row_bytes: int) -> Optional[int]:
    """The latent budget for rendering ``region`` at ``out_w x out_h`` in bands of
    :data:`CLI_BAND_PIXELS`: :data:`BAND_MARGIN` times the latent tile rows one band spans
    (its source rows, the 3x3 neighbourhood and the ensemble's codes beyond them, rounded out
    to whole tiles of ``tile`` rows of ``row_bytes`` each), never more than ``budget``."""
    rows_out = max(1, min(out_h, CLI_BAND_PIXELS // max(1, out_w)))
    rows_src = math.ceil(rows_out * region.h / out_h) + 4
    need = (math.ceil(rows_src / tile) + 1) * tile * row_bytes
    want = int(BAND_MARGIN * need)
    return want if budget is None else min(budget, want)


if __name__ == "__main__":
    import signal
    signal.signal(signal.SIGINT, signal.default_int_handler)  # (main's own handling from here)
    sys.exit(main())
