"""Work off the GUI thread, results on it: the one helper every background job of the viewer
uses (decoding an image, measuring against a reference, estimating a file's size, exporting).

Qt widgets may only be touched from the GUI thread, and a slow file or a long render must
never freeze the window. :meth:`Background.run` runs ``work(task)`` in a thread and returns its
:class:`Task`: the work polls ``task.cancelled`` and calls ``task.progress(done, total)``; the
GUI side may ``cancel()`` and ``join()`` it. ``on_progress(done, total)`` and, when the work
ends, ``on_done(result, error)`` are called on the GUI thread (through queued signals).
:meth:`Background.wait` runs a task and returns its result to its caller while the event loop
keeps running (the window repaints and stays responsive), then joins its thread.
:meth:`Background.shutdown` cancels and joins every task still running: no thread may be inside
torch when the interpreter exits (that aborts the process). The pattern is napari's
``thread_worker``, without the generator protocol.
"""
from __future__ import annotations

import threading
from typing import Any, Callable, List, Optional

from PySide6 import QtCore

Done = Callable[[Any, Optional[BaseException]], None]
Progress = Callable[[int, int], None]


class Task:
    """One piece of background work (see the module docstring)."""

    def __init__(self, name: str, report: Callable[["Task", int, int], None]) -> None:
        self.name = name
        self._cancel = threading.Event()
        self._report = report
        self.thread: Optional[threading.Thread] = None

    def cancel(self) -> None:
        """Ask the work to stop (it polls :meth:`cancelled`)."""
        self._cancel.set()

    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def progress(self, done: int, total: int) -> None:
        """From the work: ``done`` of ``total``, shown on the GUI thread."""
        self._report(self, done, total)

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def join(self, timeout: Optional[float] = None) -> bool:
        """Wait for the work to end; True when it has."""
        if self.thread is not None:
            self.thread.join(timeout)
        return not self.running


class Background(QtCore.QObject):
    _finished = QtCore.Signal(object, object, object)  # (on_done, result, error)
    # (on_progress, done, total): Python ints, which pixel counts outgrow Qt's 32-bit int
    _progressed = QtCore.Signal(object, object, object)

    def __init__(self, parent: Optional[QtCore.QObject] = None) -> None:
        super().__init__(parent)
        self._finished.connect(self._deliver, QtCore.Qt.ConnectionType.QueuedConnection)
        self._progressed.connect(self._deliver_progress,
                                 QtCore.Qt.ConnectionType.QueuedConnection)
        self._tasks: List[Task] = []

    def run(self, work: Callable[[Task], Any], on_done: Done, name: str = "background",
            on_progress: Optional[Progress] = None) -> Task:
        """Start ``work(task)`` in a thread; ``on_done(result, None)`` or
        ``on_done(None, error)`` follows on the GUI thread, and ``on_progress(done, total)``
        for each ``task.progress``."""
        def report(task: Task, done: int, total: int) -> None:
            if on_progress is not None:
                self._emit(self._progressed, on_progress, done, total)

        task = Task(name, report)

        def target() -> None:
            try:
                result, error = work(task), None
            except BaseException as exc:  # handed to the GUI thread
                result, error = None, exc
            self._emit(self._finished, on_done, result, error)

        self._tasks = [t for t in self._tasks if t.running] + [task]
        task.thread = threading.Thread(target=target, name=name, daemon=True)
        task.thread.start()
        return task

    def wait(self, work: Callable[[Task], Any], name: str = "background") -> Any:
        """Run ``work(task)`` in a thread and return its result (or raise its error),
        processing the GUI's events meanwhile; the thread is joined before returning."""
        box: dict = {}
        loop = QtCore.QEventLoop()

        def done(result, error) -> None:
            box.update(result=result, error=error)
            loop.quit()

        task = self.run(work, done, name)
        if not box:
            loop.exec()
        task.join()
        if box["error"] is not None:
            raise box["error"]
        return box["result"]

    def shutdown(self, timeout: float = 30.0) -> None:
        """Cancel every task still running and join them (at most ``timeout`` s each)."""
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            t.join(timeout)
        self._tasks = [t for t in self._tasks if t.running]

    @staticmethod
    def _emit(signal, *args) -> None:
        try:
            signal.emit(*args)
        except RuntimeError:  # the owner (a closed dialog) is gone: nobody to tell
            pass

    @staticmethod
    def _deliver(on_done: Done, result: Any, error: Optional[BaseException]) -> None:
        on_done(result, error)

    @staticmethod
    def _deliver_progress(on_progress: Progress, done: int, total: int) -> None:
        on_progress(done, total)
