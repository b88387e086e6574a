"""Installed dependencies: the versions the project's bounds allow, and none of the releases
known to break the app (each bound in pyproject.toml says why it is there)."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from importlib import metadata

import pytest

_VOID_CALLS = textwrap.dedent("""
    import os, sys
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
    from PySide6 import QtCore, QtWidgets
    app = QtWidgets.QApplication([])
    label, bar = QtWidgets.QLabel(), QtWidgets.QProgressBar()
    timer = QtCore.QTimer()
    before = sys.getrefcount(None)
    for _ in range(300):  # few enough never to reach zero, enough to see a leak
        label.setText("x"); label.update(); label.hide(); bar.setValue(1); timer.stop()
    print(sys.getrefcount(None) - before)
    sys.stdout.flush()
    os._exit(0)  # skip interpreter teardown, which is where a broken binding aborts
""")


@pytest.mark.skipif(sys.version_info >= (3, 12),
                    reason="None is immortal from Python 3.12 on: its reference count is fixed")
def test_qt_void_calls_keep_none_alive():
    """PySide6/shiboken6 6.12.0 drops a reference to None on every void Qt call, which
    aborts Python 3.11 ('none_dealloc') after a few hundred zoom steps. 1500 void calls must
    not change None's reference count by more than noise."""
    out = subprocess.run([sys.executable, "-c", _VOID_CALLS], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    delta = int(out.stdout.strip().splitlines()[-1])
    assert abs(delta) < 50, (f"None lost {-delta} references over 1500 void Qt calls with "
                             f"PySide6 {metadata.version('PySide6-Essentials')}: this binding "
                             "release aborts the viewer; exclude it in pyproject.toml")


def test_installed_versions_satisfy_the_project_bounds():
    """What ``pip install`` put here satisfies every requirement the project declares (a
    stale environment, or a bound that pip could not honour, fails here, not in the app)."""
    from packaging.requirements import Requirement

    reqs = [Requirement(r) for r in metadata.requires("liif-zoom") or []]
    bad = []
    for r in reqs:
        if r.marker is not None and not r.marker.evaluate({"extra": ""}):
            continue
        try:
            v = metadata.version(r.name)
        except metadata.PackageNotFoundError:
            bad.append(f"{r.name} is not installed")
            continue
        if not r.specifier.contains(v, prereleases=True):
            bad.append(f"{r.name} {v} is outside {r.specifier}")
    assert not bad, "; ".join(bad)
