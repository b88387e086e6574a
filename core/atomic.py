"""Atomic, permission-preserving file output.

Every file the project writes (images, exports, model files, JSON results) appears only when
complete: it is written to a temporary file in the target's folder, then renamed onto the
target. The result has the permissions a plain ``open(path, "w")`` would give it: the mode of
the file it replaces, or ``0o666`` less the process umask for a new file (``mkstemp`` alone
would leave ``0o600``). On any exception, including ``KeyboardInterrupt`` and the
:class:`Terminated` that :func:`terminate_on_signals` raises for SIGTERM/SIGHUP, the
temporary file is removed.
"""
from __future__ import annotations

import os
import re
import signal
import stat
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Tuple, Union

PathLike = Union[str, os.PathLike]

__all__ = ["atomic_write", "commit", "new_file_mode", "staged", "Terminated",
           "terminate_on_signals", "StopRequest", "deferred_signals"]


class Terminated(BaseException):
    """Raised in the main thread for SIGTERM or SIGHUP (see :func:`terminate_on_signals`),
    so that the same clean-up as for Ctrl+C runs."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextmanager
def _handling(signals, handler) -> Iterator[None]:
    """Within the block, ``handler`` handles each of ``signals`` that exists here (main
    thread only; elsewhere nothing changes); the previous handlers come back after it."""
    old = {}
    for name in signals:
        sig = getattr(signal, name, None)
        if sig is not None:
            try:
                old[sig] = signal.signal(sig, handler)
            except ValueError:  # not the main thread
                pass
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


@contextmanager
def terminate_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Terminated` (main thread only)."""
    def handler(signum, frame):
        raise Terminated(signum)

    with _handling(("SIGTERM", "SIGHUP"), handler):
        yield


class StopRequest:
    """What :func:`deferred_signals` yields: ``signum`` is the first stop signal received
    (None before any)."""

    def __init__(self) -> None:
        self.signum: Optional[int] = None

    def __bool__(self) -> bool:
        return self.signum is not None


@contextmanager
def deferred_signals() -> Iterator[StopRequest]:
    """Within the block, SIGINT, SIGTERM and SIGHUP are remembered rather than acted on, so
    that a long job (training) can finish its step and save before stopping; a second
    signal of the same kind stops at once (KeyboardInterrupt for SIGINT, else
    :class:`Terminated`)."""
    req = StopRequest()

    def handler(signum, frame):
        if req.signum is not None:
            raise KeyboardInterrupt if signum == signal.SIGINT else Terminated(signum)
        req.signum = signum

    with _handling(("SIGINT", "SIGTERM", "SIGHUP"), handler):
        yield req


def _umask() -> int:
    try:  # Linux: read it without changing it (os.umask is process-wide and racy)
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def new_file_mode(path: PathLike) -> int:
    """The permission bits ``path`` should get: those of the existing file, or
    ``0o666 & ~umask`` for a new one."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def commit(tmp: PathLike, path: PathLike) -> None:
    """Give ``tmp`` the mode ``path`` should have, then rename it onto ``path``."""
    os.chmod(tmp, new_file_mode(path))
    os.replace(tmp, path)


#: temporary files are named ``.NAME.liifzoom-PID.RANDOM.TAG.EXT``: hidden, recognisable,
#: and naming the process that writes them, so that :func:`remove_stale` can tell leftovers
#: of a killed process from files another running export is writing
_TEMP = re.compile(r"^\..+\.liifzoom-(\d+)\.[^.]+\.(part|staged|backup)(\.[^.]*)?$")


#: the longest file name most file systems take
NAME_MAX = 255


def _temp_beside(path: Path, tag: str = "part") -> str:
    # the temporary name adds about 40 characters: the target's own name is shortened in it
    # so that any name the file system takes as a target can be written
    room = NAME_MAX - len(f"..liifzoom-{os.getpid()}.XXXXXXXX.{tag}{path.suffix}") - 8
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name[:max(1, room)]}.liifzoom-{os.getpid()}.",
                               suffix=f".{tag}{path.suffix}",
                               dir=path.parent if str(path.parent) else ".")
    os.close(fd)
    return tmp


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # someone else's process: leave its files alone
    return True


def remove_stale(folder: PathLike) -> List[str]:
    """Remove the temporary files (``.part``, ``.staged``, ``.backup``) that a killed process
    left in ``folder``; files of running processes are kept. Returns the names removed."""
    gone = []
    try:
        names = os.listdir(folder or ".")
    except OSError:
        return gone
    for name in names:
        m = _TEMP.match(name)
        if m and not _alive(int(m.group(1))):
            try:
                os.unlink(os.path.join(folder or ".", name))
                gone.append(name)
            except OSError:
                pass
    return gone


def _remove(tmp: PathLike) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass


def atomic_write(path: PathLike, write: Callable[[str], None]) -> None:
    """Call ``write(tmp_path)`` then move the temporary file onto ``path`` (see the module
    docstring). The temporary name keeps ``path``'s extension, so a writer that picks the
    format from it works."""
    path = Path(path)
    tmp = _temp_beside(path)
    try:
        write(tmp)
        commit(tmp, path)
    except BaseException:
        _remove(tmp)
        raise


def check_replaceable(path: PathLike) -> None:
    """Raise OSError (naming ``path``) unless a file can be written there: its folder exists
    and is writable, and nothing but a regular file is in the way."""
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    if len(path.name.encode()) > NAME_MAX:
        raise OSError(f"cannot write {path}: the name is longer than {NAME_MAX} bytes")
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot write {path}: folder {folder} does not exist")
    if os.path.lexists(path) and not path.is_file():
        raise IsADirectoryError(f"cannot write {path}: something other than a file is there")
    if path.is_file() and not os.stat(path).st_mode & 0o222:
        # (checked by its mode: root may write anything, but a read-only file says "keep")
        raise PermissionError(f"cannot write {path}: the file is read-only")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"cannot write {path}: folder {folder} is not writable")



@contextmanager
def staged(paths: List[PathLike]) -> Iterator[List[str]]:
    """All or nothing for several files: every target is checked first
    (:func:`check_replaceable`); yields one temporary path per target (same folder, same
    extension); when the block ends normally they are committed together, and if it raises
    (cancel, error, signal) every one is removed and no target is touched. The commit itself
    is all or nothing too: existing targets are moved aside first and put back if any rename
    fails. Stale temporary files of killed processes in the targets' folders are removed."""
    for p in paths:
        check_replaceable(p)
    for folder in {str(Path(p).parent) for p in paths}:
        remove_stale(folder)
    pairs: List[Tuple[str, Path]] = []
    try:
        for p in paths:
            p = Path(p)
            pairs.append((_temp_beside(p, "staged"), p))
        yield [t for t, _ in pairs]
    except BaseException:
        for t, _ in pairs:
            _remove(t)
        raise
    _commit_all(pairs)


def _commit_all(pairs: List[Tuple[str, Path]]) -> None:
    backups: List[Tuple[Path, str]] = []  # (target, where its old file waits)
    done: List[Path] = []
    try:
        for t, p in pairs:
            os.chmod(t, new_file_mode(p))
        for _, p in pairs:
            if os.path.lexists(p):
                b = _temp_beside(p, "backup")
                os.replace(p, b)
                backups.append((p, b))
        for t, p in pairs:
            os.replace(t, p)
            done.append(p)
    except BaseException:
        for p in done:  # take the new files back out, then put the old ones back
            _remove(p)
        for p, b in backups:
            os.replace(b, p)
        for t, _ in pairs:
            _remove(t)
        raise
    for _, b in backups:
        _remove(b)
