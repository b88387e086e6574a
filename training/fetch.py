"""Download the training and benchmark data from their official locations.

    python -m training.fetch NAME DEST [--url URL] [--sha256 HEX | --md5 HEX] [--keep-archive]
    python -m training.fetch --list

Each dataset is downloaded (with a progress bar, resumable within one run), its size and
checksum verified against the catalogue below, and unpacked into ``DEST`` in the layout the
project reads:

=================  =========================================  =================================
NAME               what                                       lands in
=================  =========================================  =================================
div2k-train        DIV2K training HR, 800 PNG (3.5 GB)        ``DEST/DIV2K_train_HR/``
div2k-valid        DIV2K validation HR, 100 PNG (449 MB)      ``DEST/DIV2K_valid_HR/``
benchmark          Set5, Set14, B100, Urban100 with MATLAB    ``DEST/benchmark/{Set5,...}/HR``
                   LR images (EDSR authors' package, 250 MB)  and ``LR_bicubic/X{2,3,4}``
=================  =========================================  =================================

Then, e.g. ``python -m training.train --config training/configs/edsr-baseline-liif.yaml
--data DEST/DIV2K_train_HR --val-data DEST/DIV2K_valid_HR`` and ``python -m
training.evaluate --data DEST/benchmark/Set5``. ``--url`` takes a mirror (the checksum still
applies; ``--sha256``/``--md5`` replace it for an archive of your own). Archives are unpacked
safely: no absolute paths, no ``..``, no links, and at most the catalogue's unpacked size.
Nothing is left in ``DEST`` on failure but what was there before.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, Optional

from core.cli import ArgumentParser


@dataclass(frozen=True)
class Dataset:
    """One downloadable archive: where it is, how to check it, where it unpacks."""

    url: str
    size: Optional[int]          #: bytes of the archive (None: unknown)
    algo: str                    #: 'sha256' or 'md5'
    digest: str
    folder: str                  #: what the archive unpacks to (checked)
    max_unpacked: int            #: refuse archives that unpack to more bytes than this
    what: str


#: Sizes and SHA-256 of the DIV2K archives as TensorFlow Datasets records them; the MD5 of
#: the EDSR benchmark package as torchsr records it.
CATALOGUE: Dict[str, Dataset] = {
    "div2k-train": Dataset(
        "https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip", 3530603713, "sha256",
        "9d0b9c463f6e35b6c62cc6a930ee2224f670b34c1df841a57670f9acf0f6c335", "DIV2K_train_HR",
        8 << 30, "DIV2K training HR images (800 PNG)"),
    "div2k-valid": Dataset(
        "https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_valid_HR.zip", 448993893, "sha256",
        "20dd31fd84d777bc1cf5d6b7654a3f569c0aec74458ae094122ad1d0489900fc", "DIV2K_valid_HR",
        2 << 30, "DIV2K validation HR images (100 PNG)"),
    "benchmark": Dataset(
        "https://cv.snu.ac.kr/research/EDSR/benchmark.tar", None, "md5",
        "4ace41d33c2384b97e6b320cd0afd6ba", "benchmark", 2 << 30,
        "Set5, Set14, B100, Urban100 (HR and MATLAB-bicubic LR x2-x4)"),
}


class FetchError(RuntimeError):
    """A download or unpacking that failed; the message says what and where."""


def download(url: str, dest: Path, expect_size: Optional[int], algo: str, digest: str,
             progress: bool = True) -> None:
    """Stream ``url`` into ``dest``, hashing as it goes; raise :class:`FetchError` on a
    network error or a size or checksum mismatch (``dest`` is then removed)."""
    h = hashlib.new(algo)
    n = 0
    bar = None
    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(dest, "wb") as f:
            total = expect_size or int(r.headers.get("Content-Length") or 0) or None
            if progress:
                from tqdm import tqdm
                bar = tqdm(total=total, unit="B", unit_scale=True, desc=dest.name,
                           file=sys.stderr)
            while True:
                block = r.read(1 << 20)
                if not block:
                    break
                if expect_size is not None and n + len(block) > expect_size:
                    raise FetchError(f"{url} is larger than the {expect_size} bytes expected")
                f.write(block)
                h.update(block)
                n += len(block)
                if bar is not None:
                    bar.update(len(block))
    except FetchError:
        dest.unlink(missing_ok=True)
        raise
    except (OSError, ValueError) as exc:  # URLError, HTTPError, timeouts are OSErrors
        dest.unlink(missing_ok=True)
        raise FetchError(f"cannot download {url}: {getattr(exc, 'reason', None) or exc}") from None
    finally:
        if bar is not None:
            bar.close()
    if expect_size is not None and n != expect_size:
        dest.unlink(missing_ok=True)
        raise FetchError(f"{url}: got {n} bytes, expected {expect_size} (truncated download?)")
    if h.hexdigest() != digest.lower():
        dest.unlink(missing_ok=True)
        raise FetchError(f"{url}: {algo} {h.hexdigest()} does not match the expected {digest}")


def _safe_name(name: str) -> str:
    p = Path(name)
    if p.is_absolute() or ".." in p.parts or name.startswith(("/", "\\")):
        raise FetchError(f"archive member {name!r} would land outside the destination")
    return name


def unpack(archive: Path, into: Path, max_bytes: int) -> None:
    """Unpack a zip or tar archive into ``into``, refusing unsafe members (absolute paths,
    ``..``, links, devices) and archives that unpack to more than ``max_bytes``."""
    total = 0
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            for m in z.infolist():
                _safe_name(m.filename)
                if (m.external_attr >> 16) & 0o170000 == 0o120000:
                    raise FetchError(f"archive member {m.filename!r} is a link")
                total += m.file_size
                if total > max_bytes:
                    raise FetchError(f"{archive.name} unpacks to more than {max_bytes} bytes")
            z.extractall(into)
        return
    try:
        with tarfile.open(archive) as t:
            members = t.getmembers()
            for m in members:
                _safe_name(m.name)
                if not (m.isfile() or m.isdir()):
                    raise FetchError(f"archive member {m.name!r} is a link or device")
                total += m.size
                if total > max_bytes:
                    raise FetchError(f"{archive.name} unpacks to more than {max_bytes} bytes")
            t.extractall(into, members=members)
    except tarfile.TarError as exc:
        raise FetchError(f"{archive.name} is not a zip or tar archive ({exc})") from None


def fetch(name: str, dest: str | os.PathLike, catalogue: Optional[Dict[str, Dataset]] = None,
          url: Optional[str] = None, progress: bool = True, keep_archive: bool = False) -> Path:
    """Download, verify and unpack dataset ``name`` into ``dest``; returns the unpacked
    folder. Already there: nothing is downloaded. Raises :class:`FetchError`."""
    cat = catalogue or CATALOGUE
    if name not in cat:
        raise FetchError(f"unknown dataset {name!r}; known: {', '.join(sorted(cat))}")
    ds = cat[name]
    if url:
        ds = replace(ds, url=url)
    dest = Path(dest)
    target = dest / ds.folder
    if target.is_dir() and any(target.iterdir()):
        print(f"{target} exists; nothing to do", file=sys.stderr)
        return target
    dest.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".fetch-{name}-", dir=dest))
    try:
        archive = work / Path(ds.url.split("?")[0]).name
        download(ds.url, archive, ds.size, ds.algo, ds.digest, progress)
        unpacked = work / "unpacked"
        unpack(archive, unpacked, ds.max_unpacked)
        src = unpacked / ds.folder
        if not src.is_dir():
            raise FetchError(f"{archive.name} does not hold the folder {ds.folder}/")
        os.replace(src, target)
        if keep_archive:
            os.replace(archive, dest / archive.name)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def main(argv=None) -> int:
    p = ArgumentParser(prog="python -m training.fetch",
                       description="Download DIV2K or the SR benchmark sets, verified, into "
                                   "the layout the project reads.")
    p.add_argument("name", nargs="?", help="dataset: " + ", ".join(CATALOGUE))
    p.add_argument("dest", nargs="?", help="folder to unpack into (created if needed)")
    p.add_argument("--url", help="download from this mirror instead of the official URL")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--sha256", help="expected SHA-256 of the archive (replaces the catalogue's)")
    g.add_argument("--md5", help="expected MD5 of the archive (replaces the catalogue's)")
    p.add_argument("--keep-archive", action="store_true", help="keep the downloaded archive")
    p.add_argument("--list", action="store_true", help="list the datasets and exit")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    if args.list:
        for k, d in CATALOGUE.items():
            size = f"{d.size / 1e6:.0f} MB" if d.size else "size unknown"
            print(f"{k:<12} {d.what}; {size}; {d.url}")
        return 0
    if not args.name or not args.dest:
        p.error("give NAME and DEST (or --list)")
    cat = dict(CATALOGUE)
    if args.name in cat and (args.sha256 or args.md5):
        algo, digest = ("sha256", args.sha256) if args.sha256 else ("md5", args.md5)
        cat[args.name] = replace(cat[args.name], algo=algo, digest=digest, size=None)
    try:
        out = fetch(args.name, args.dest, cat, args.url, not args.no_progress, args.keep_archive)
    except FetchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted; nothing was added to the destination", file=sys.stderr)
        return 130
    n = sum(1 for _ in out.rglob("*") if _.is_file())
    print(f"{args.name}: {n} files in {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
