"""The LIIF Zoom desktop viewer (PySide6 + pyqtgraph), a thin view over :mod:`core`.

* :mod:`viewer.view_state` - pure-Python camera: zoom, centre, the visible region, tiles.
* :mod:`viewer.scheduler` - background rendering: tile jobs, cancellation, cache.
* :mod:`viewer.canvas` - the Qt pane that draws tiles and forwards input.
* :mod:`viewer.export_dialog`, :mod:`viewer.main_window`, :mod:`viewer.app`.
"""
