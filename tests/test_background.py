"""viewer.background: work off the GUI thread with cancel, join and progress; results and
progress on the GUI thread; shutdown joins whatever still runs."""
import threading
import time

from viewer.background import Background


def test_progress_and_result_arrive_on_the_gui_thread(qtbot):
    bg = Background()
    gui = threading.get_ident()
    seen, done = [], []

    def work(task):
        for k in range(3):
            task.progress(k + 1, 3)
        return threading.get_ident()

    bg.run(work, lambda r, e: done.append((r, e, threading.get_ident())), "t",
           on_progress=lambda d, t: seen.append((d, t, threading.get_ident())))
    qtbot.waitUntil(lambda: bool(done), timeout=5000)
    worker, error, where = done[0]
    assert error is None and worker != gui and where == gui
    assert [(d, t) for d, t, _ in seen] == [(1, 3), (2, 3), (3, 3)]
    assert all(w == gui for _, _, w in seen)


def test_cancel_join_and_shutdown(qtbot):
    bg = Background()
    started = threading.Event()

    def work(task):
        started.set()
        while not task.cancelled():
            time.sleep(0.01)
        return "stopped"

    task = bg.run(work, lambda r, e: None, "loop")
    assert started.wait(5) and task.running
    assert not task.join(0.05)  # still running: join times out
    task.cancel()
    assert task.join(5) and not task.running
    again = bg.run(work, lambda r, e: None, "loop2")
    bg.shutdown(timeout=5)  # cancels and joins
    assert not again.running


def test_wait_returns_the_result_or_raises_and_joins(qtbot):
    bg = Background()
    assert bg.wait(lambda task: 42) == 42
    try:
        bg.wait(lambda task: 1 / 0)
    except ZeroDivisionError:
        pass
    else:
        raise AssertionError("the work's error is raised")
    assert not any(t.running for t in bg._tasks)
