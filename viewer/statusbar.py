"""The status bar: zoom, visible region, render times, metrics against a reference, encoding
progress, device and model (with why it was chosen). It shows the session's state and
measures the view against a reference in the background when there is one."""
from __future__ import annotations

from typing import Dict

from PySide6 import QtCore, QtWidgets

from core.render.methods import Method
from viewer.background import Background
from viewer.groundtruth import renderers_for, visible_metrics
from viewer.session import Session


class StatusBar(QtCore.QObject):
    """Fills ``bar`` (the window's QStatusBar) from ``session``; ``last_times`` holds the
    latest preview / coarse / full pass times, ``last_metrics`` the latest measurement."""

    def __init__(self, bar: QtWidgets.QStatusBar, session: Session, background: Background) -> None:
        super().__init__(bar)
        self.bar, self.session, self.background = bar, session, background
        self.last_times: Dict[str, float] = {}
        self.last_metrics: dict = {}
        self.zoom, self.region, self.time, self.device, self.model, self.metrics = (
            QtWidgets.QLabel() for _ in range(6))
        self.metrics.hide()
        self.progress = QtWidgets.QProgressBar()
        # narrow, so that every label still fits a 1024-px window while it shows
        self.progress.setMaximumWidth(80)
        self.progress.setFormat("enc. %p%")
        self.progress.setToolTip("encoding the latent in the background (to its memory budget)")
        self.progress.hide()
        for w in (self.zoom, self.region, self.metrics, self.time, self.progress, self.device,
                  self.model):
            bar.addPermanentWidget(w)
        self._metrics_gen = 0
        self._task = None  # the measurement running, if any
        self._metrics_timer = QtCore.QTimer(self)
        self._metrics_timer.setSingleShot(True)
        self._metrics_timer.setInterval(300)  # after the view settles
        self._metrics_timer.timeout.connect(self._measure)
        self._encode_timer = QtCore.QTimer(self)
        self._encode_timer.timeout.connect(self.show_encoding)
        self._encode_timer.start(200)
        self.refresh()

    def pass_done(self, kind: str, seconds: float) -> None:
        self.last_times[kind] = seconds
        self.refresh()

    def refresh(self) -> None:
        ses, st = self.session, self.session.state
        # short texts (a 1024-px window shows them all), the long form in each tooltip
        if st is None:
            self.zoom.setText("no image")
            self.region.setText("")
        else:
            r = st.visible_region()
            self.zoom.setText(f"{st.zoom:.3g}×")
            self.zoom.setToolTip("zoom: screen pixels per source pixel")
            self.region.setText(f"{r.x:.0f}, {r.y:.0f}  {r.w:.0f}×{r.h:.0f}")
            self.region.setToolTip(f"the view: x {r.x:.1f}, y {r.y:.1f}, {r.w:.1f} × {r.h:.1f} "
                                   "source pixels")
        t = self.last_times
        keys = [k for k in ("preview", "coarse", "full") if k in t]
        self.time.setText(("render " + "/".join(f"{t[k] * 1000:.0f}" for k in keys) + " ms")
                          if keys else "–")
        self.time.setToolTip("the last render's " + " / ".join(keys or ["preview", "coarse",
                                                                         "full"])
                             + " passes, in milliseconds")
        self.device.setText(ses.profile.short)
        self.device.setToolTip(f"the device the model runs on: {ses.profile.describe()} "
                               "(the encoder in bfloat16 where this CPU multiplies it natively)")
        family = type(ses.model).__name__ if ses.model is not None else ""
        why = f" · {ses.model_reason}" if ses.model_reason else ""
        self.model.setText(f"{ses.model_name or 'no model'}{why}")  # the family in the tooltip
        slow = ses.device.type == "cpu" and family == "LIIF"
        self.model.setToolTip((f"{ses.model_name} is a {family} model" if family else "") + (
            "; the paper model takes seconds a view on a CPU, the CPU model (Model menu) "
            "renders about 50× faster" if slow else ""))
        if slow:
            self.model.setText(self.model.text() + " · slow on a CPU")

    def show_encoding(self) -> None:
        lat = self.session.latent
        done = 0.0 if lat is None else lat.encoded_fraction
        if lat is None or done >= 1.0:
            self.progress.hide()
            return
        self.progress.show()
        self.progress.setMaximum(1000)
        self.progress.setValue(int(1000 * done))
        if lat.at_budget:  # it stops here: say why, rather than look stuck
            pct = int(100 * done)
            self.progress.setFormat(f"{pct}% (budget)")
            self.progress.setToolTip(
                f"encoded {pct} % of the image ahead, up to the latent's memory budget "
                f"({lat.budget / 2**20:,.0f} MiB; LIIF_ZOOM_LATENT_MB sets it): the rest is "
                "encoded where you look, as you look")
        else:
            self.progress.setFormat("enc. %p%")
            self.progress.setToolTip("encoding the latent in the background (to its memory "
                                     "budget)")

    # ---- against a reference ------------------------------------------------------------------
    def schedule_metrics(self) -> None:
        if self.session.reference is not None:
            self._metrics_timer.start()
        else:
            self.metrics.hide()

    def _measure(self) -> None:
        """Measure the view in the background; a newer view makes the measurement stale."""
        ses = self.session
        if ses.reference is None or ses.state is None:
            return
        self._metrics_gen += 1
        gen = self._metrics_gen
        shown = ses.shown_methods()
        if self._task is not None:
            self._task.cancel()  # a newer view: the last measurement is stale
        image, reference, latents = ses.image, ses.reference, ses.latents()
        region = ses.state.visible_region()

        def work(task):
            fns = {m: f for m, f in renderers_for(image, latents, task.cancelled).items()
                   if m in shown}
            return visible_metrics(image, reference, region, fns, cancelled=task.cancelled)

        self.metrics.setText("vs reference: measuring…")
        self.metrics.show()
        self._task = self.background.run(work, lambda res, err: self._measured(gen, res, err),
                                         name="metrics")

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop measuring (the render in progress is cancelled) and wait for it: no thread may
        be inside torch when the interpreter exits (that aborts the process)."""
        self._metrics_gen += 1
        self._metrics_timer.stop()
        self._encode_timer.stop()
        if self._task is not None:
            self._task.cancel()
            self._task.join(timeout)

    def _measured(self, gen: int, res, err) -> None:
        if gen != self._metrics_gen:
            return
        res = {"error": str(err)} if err is not None else res
        self.last_metrics = res
        if "error" in res:
            self.metrics.setText(f"vs reference: {res['error']}")
        elif not res:
            self.metrics.setText("vs reference: view too small")
        else:
            self.metrics.setText("vs ref: " + " · ".join(
                f"{self.session.name_of(m)} {_db(p, short=True)}"
                f"/{q:.3f}" for m, (p, q) in res.items()))
            below = below_one_to_one(self.session)
            if below:
                self.metrics.setText(self.metrics.text() + " (" + below + ")")
            self.metrics.setToolTip(
                "PSNR (dB) / SSIM against the reference, over the view: " + "; ".join(
                    f"{self.session.label(m)}: PSNR {_db(p)}, SSIM {q:.4f}"
                    for m, (p, q) in res.items())
                + (". Below 1:1 the model panes show the filtered source (bicubic), so "
                   "they are not measured apart" if below else ""))


def below_one_to_one(session) -> str:
    """A short note when a model pane shows the filtered source (the zoom is below 1:1, so
    it is not measured or profiled apart), else ''."""
    st = session.state
    if st is None or st.zoom >= 1.0:
        return ""
    shown = {m for ms in session.pane_methods() for m in ms}
    return "LIIF below 1:1 = bicubic" if shown & {Method.LIIF, Method.COMPARE} else ""


def _db(psnr: float, short: bool = False) -> str:
    """PSNR for the status bar; identical pixels (the image as its own reference) say so."""
    if psnr == float("inf"):
        return "∞" if short else "identical (∞ dB)"
    return f"{psnr:.2f}" if short else f"{psnr:.2f} dB"

