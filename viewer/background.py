"""Work off the GUI thread, results on it: the one helper the viewer's background jobs use
(decoding an image, measuring against a reference, exporting).

Qt widgets may only be touched from the GUI thread, and a slow file or a long render must
never freeze the window. :meth:`Background.run` runs ``work()`` in a daemon thread and calls
``on_done(result, error)`` on the GUI thread (through a queued signal) when it ends;
:meth:`Background.wait` does the same but returns the result to its caller while the event
loop keeps running (the window repaints and stays responsive meanwhile).
"""
from __future__ import annotations

import threading
from typing import Any, Callable, Optional

from PySide6 import QtCore

Done = Callable[[Any, Optional[BaseException]], None]


class Background(QtCore.QObject):
    _finished = QtCore.Signal(object, object, object)  # (on_done, result, error)

    def __init__(self, parent: Optional[QtCore.QObject] = None) -> None:
        super().__init__(parent)
        self._finished.connect(self._deliver, QtCore.Qt.ConnectionType.QueuedConnection)

    def run(self, work: Callable[[], Any], on_done: Done, name: str = "background"
            ) -> threading.Thread:
        """Start ``work`` in a thread; ``on_done(result, None)`` or ``on_done(None, error)``
        follows on the GUI thread. Returns the thread (for joining at shutdown)."""
        def target() -> None:
            try:
                result, error = work(), None
            except BaseException as exc:  # handed to the GUI thread
                result, error = None, exc
            try:
                self._finished.emit(on_done, result, error)
            except RuntimeError:  # the owner (a closed dialog) is gone: nobody to tell
                pass

        t = threading.Thread(target=target, name=name, daemon=True)
        t.start()
        return t

    def wait(self, work: Callable[[], Any], name: str = "background") -> Any:
        """Run ``work`` in a thread and return its result (or raise its error), processing
        the GUI's events meanwhile."""
        box: dict = {}
        loop = QtCore.QEventLoop()

        def done(result, error) -> None:
            box.update(result=result, error=error)
            loop.quit()

        self.run(work, done, name)
        if not box:
            loop.exec()
        if box["error"] is not None:
            raise box["error"]
        return box["result"]

    @staticmethod
    def _deliver(on_done: Done, result: Any, error: Optional[BaseException]) -> None:
        on_done(result, error)
