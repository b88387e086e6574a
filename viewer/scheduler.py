"""Background rendering for the viewer: tile jobs, cancellation of stale work, a tile cache.

The scheduler knows nothing of Qt. :meth:`RenderScheduler.request` takes the tiles a view
needs (from :class:`viewer.view_state.ViewState`) and queues, for tiles not cached yet:

1. *preview* jobs (bicubic, nearest) on a fast worker thread - milliseconds per tile;
2. *LIIF* jobs on a second worker thread: the encoding of the latent tiles under the whole
   view that are not encoded yet (in a few large encoder passes), a coarse pass of every
   visible tile (1/4 of the resolution in each direction), then the full-resolution pass,
   centre first.

A new request replaces the queues. A job already running is cancelled if its tile is no
longer wanted (the renderer polls ``cancelled()`` between chunks), so the workers always
work for the latest view. When the LIIF queue is empty, the worker encodes the rest of the
image's latent tiles in the background, one block at a time, yielding to any new request,
nearest first to where the view is heading (its centre plus its last step).

Finished tiles go into an :class:`core.lru.LRUCache` (bounded in bytes) and ``on_tile(key)`` is
called from the worker thread; the Qt side turns that into a repaint on the UI thread.
Tile keys are ``(method, zoom, level, i, j)`` with ``level`` 'full' or 'coarse'.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np
import torch

from core.device import empty_device_cache, is_out_of_memory
from core.geometry import Box, Region
from core.io.imageio import LoadedImage
from core.lru import LRUCache
from core.render.encoding import Cancelled, LatentImage
from core.render.methods import render_by
from viewer.session import PUBLISHED, Event, ViewSnapshot
from viewer.tiles import ENCODE_FOR, ENCODED_BY, PASSES, Level, Method, TileKey

COARSE = 4  # coarse pass: 1/COARSE of the resolution per axis
PREVIEW_FIRST_S = 0.5  # the LIIF worker waits at most this long for the preview to finish

Window = Box  # the part of a screen tile to render: columns [c0, c1), rows [r0, r1)


def _to_uint8(rgb: np.ndarray) -> np.ndarray:
    """float RGB in [0, 1] (values outside are clamped) -> uint8, rounded half to even as
    ``np.round``; in torch (which frees the GIL for the other workers meanwhile), leaving
    ``rgb`` as it is."""
    t = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).mul(255)
    return t.round_().clamp_(0, 255).to(torch.uint8).numpy()


@dataclass(frozen=True)
class ViewPlan:
    """One view's work, planned once from a :class:`viewer.session.ViewSnapshot`: the visible
    screen tiles (centre first), each one's source region and on-screen window. The scheduler
    renders from it and the panes draw from it (:attr:`RenderScheduler.plan`)."""

    snapshot: ViewSnapshot
    tile: int
    tiles: Tuple[Tuple[int, int], ...]
    regions: Dict[Tuple[int, int], Region]
    windows: Dict[Tuple[int, int], Window]

    @classmethod
    def of(cls, snapshot: ViewSnapshot, tile: int) -> "ViewPlan":
        view = snapshot.view
        tiles = tuple(view.visible_tiles(tile)) if view is not None else ()
        return cls(snapshot, tile, tiles, {t: view.tile_region(*t, tile) for t in tiles},
                   {t: view.tile_window(*t, tile) for t in tiles})


def _union(regions) -> Region:
    regions = list(regions)
    x0 = min(r.x for r in regions)
    y0 = min(r.y for r in regions)
    x1 = max(r.x + r.w for r in regions)
    y1 = max(r.y + r.h for r in regions)
    return Region(x0, y0, x1 - x0, y1 - y0)


@dataclass
class Job:
    key: TileKey
    region: Region
    size: int
    window: Optional[Window] = None  # render only these pixels of the tile (None: all)

    def source(self) -> Region:
        """The source region the job renders."""
        if self.window is None:
            return self.region
        c0, r0, c1, r1 = self.window
        s = self.region.w / self.size
        return Region(self.region.x + c0 * s, self.region.y + r0 * s, (c1 - c0) * s,
                      (r1 - r0) * s)


def missing_window(tile: Optional[np.ndarray], want: Window) -> Optional[Window]:
    """The part of ``want`` a cached tile lacks, as a rectangle, or None if it has it all.

    Complete tiles are RGB; tiles rendered in part are RGBA with alpha 0 where nothing was
    rendered yet (so that they can be drawn over a coarser layer as they are)."""
    c0, r0, c1, r1 = want
    if c1 <= c0 or r1 <= r0:
        return None
    if tile is None:
        return want
    if tile.shape[2] == 3:
        return None
    hole = tile[r0:r1, c0:c1, 3] == 0
    if not hole.any():
        return None
    rows, cols = np.nonzero(hole.any(1))[0], np.nonzero(hole.any(0))[0]
    return c0 + int(cols[0]), r0 + int(rows[0]), c0 + int(cols[-1]) + 1, r0 + int(rows[-1]) + 1


def merge_tile(old: Optional[np.ndarray], part: np.ndarray, window: Optional[Window],
               size: int) -> np.ndarray:
    """Paste ``part`` (uint8 RGB of ``window``) into the cached tile ``old``; returns an RGB
    tile once every pixel is rendered, else RGBA (see :func:`missing_window`)."""
    if window is None or window == (0, 0, size, size):
        return part
    if old is not None and old.shape[2] == 3:
        return old  # already complete
    out = old.copy() if old is not None else np.zeros((size, size, 4), np.uint8)
    c0, r0, c1, r1 = window
    out[r0:r1, c0:c1, :3] = part
    out[r0:r1, c0:c1, 3] = 255
    if out[..., 3].all():
        return np.ascontiguousarray(out[..., :3])
    return out


@dataclass
class PassTimer:
    """Times of the passes of one request (seconds after the request)."""

    start: float
    preview: Optional[float] = None
    coarse: Optional[float] = None
    full: Optional[float] = None
    pending: Dict[str, set] = field(default_factory=dict)


class _JobQueue:
    """Jobs shared by one or more workers; ``replace`` swaps in the latest request's jobs."""

    def __init__(self) -> None:
        self.jobs: List[Job] = []
        self.running: Dict[str, Job] = {}  # worker name -> its job
        self.cond = threading.Condition()
        self.stopping = False

    def replace(self, jobs: List[Job]) -> None:
        with self.cond:
            self.jobs = list(jobs)
            self.cond.notify_all()

    def running_jobs(self) -> Dict[TileKey, Job]:
        with self.cond:
            return {j.key: j for j in self.running.values()}

    def idle(self) -> bool:
        with self.cond:
            return not self.jobs and not self.running

    def wait_idle(self, timeout: float) -> bool:
        """Block until nothing is queued or running, at most ``timeout`` seconds."""
        end = time.monotonic() + timeout
        with self.cond:
            while self.jobs or self.running:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
        return True


class _Worker(threading.Thread):
    def __init__(self, sched: "RenderScheduler", name: str, queue: _JobQueue,
                 liif: bool) -> None:
        super().__init__(name=name, daemon=True)
        self.sched, self.queue, self.liif = sched, queue, liif

    def run(self) -> None:
        q = self.queue
        while True:
            if self.liif:
                # the preview goes first: it takes milliseconds and the LIIF work would
                # otherwise compete with it for the cores
                self.sched._preview.wait_idle(PREVIEW_FIRST_S)
            with q.cond:
                if q.stopping:
                    return
                job = q.jobs.pop(0) if q.jobs else None
                if job is None:
                    if not (self.liif and self.sched._has_idle_work()):
                        q.cond.wait()
                        continue
                else:
                    q.running[self.name] = job
            if job is None:  # nothing asked for: encode more of the latent, lock released
                try:
                    if not self.sched._idle_encode_step():
                        with q.cond:  # another worker has it (or it is done): wait
                            if not q.jobs and not q.stopping:
                                q.cond.wait(0.2)
                except Exception as exc:  # out of memory: stop; anything else: once, then wait
                    self.sched._idle_failed(exc)
                    with q.cond:
                        if not q.stopping:
                            q.cond.wait(0.2)
                continue
            try:
                self.sched._run_job(job)
            except Cancelled:
                pass
            except Exception as exc:  # report, never kill the worker
                self.sched._report_error(exc)
            finally:
                with q.cond:
                    q.running.pop(self.name, None)
                    q.cond.notify_all()


class RenderScheduler:
    """Renders the tiles views ask for, in the background.

    Args:
        tile: tile side in device pixels.
        on_tile: ``on_tile(key)`` after a tile is cached (called on a worker thread).
        on_pass: ``on_pass(kind, seconds)`` when all tiles of a pass of the latest request are
            done; kind is 'preview', 'coarse' or 'full'.
        on_error: ``on_error(message)`` if a job fails.
        cache_bytes: bound of the tile cache.
        liif_workers: threads rendering LIIF tiles (and encoding) in parallel, and as many
            for the previews. On a CPU, several workers each running single-threaded torch
            ops use the cores better than one worker whose small ops are split across them
            (see ``viewer.app``).
    """

    def __init__(self, tile: int = 256,
                 on_tile: Optional[Callable[[TileKey], None]] = None,
                 on_pass: Optional[Callable[[str, float], None]] = None,
                 on_error: Optional[Callable[[str], None]] = None,
                 cache_bytes: int = 512 << 20, liif_workers: int = 1) -> None:
        self.tile = tile
        self.cache = LRUCache(cache_bytes)
        self.on_tile = on_tile or (lambda key: None)
        self.on_pass = on_pass or (lambda kind, s: None)
        self.on_error = on_error or (lambda msg: None)
        self.image: Optional[LoadedImage] = None
        #: the model methods' latents (viewer.session.Session.latents, via its snapshot)
        self.latents: Dict[str, Optional[LatentImage]] = {}
        self.wanted: set = set()
        self.timer: Optional[PassTimer] = None
        self.background_encoding = True
        self._held = 0  # pause_background's count
        #: background encoding ran out of memory for the open image (a new image resets it)
        self.idle_stopped = False
        self.focus: Optional[Tuple[float, float]] = None  # (y, x) where encoding goes on
        #: the latest view's plan (what the panes draw), from the followed session
        self.plan: Optional[ViewPlan] = None
        self._centre: Optional[Tuple[float, float]] = None  # centre of the last view
        self.cancelled_jobs = 0
        self._lock = threading.Lock()
        self._idle_lock = threading.Lock()
        self.liif_workers = max(1, int(liif_workers))
        self._preview = _JobQueue()
        self._liif = _JobQueue()
        self._workers = [_Worker(self, f"preview-{k}", self._preview, False)
                         for k in range(self.liif_workers)]
        self._workers += [_Worker(self, f"liif-{k}", self._liif, True)
                          for k in range(self.liif_workers)]
        for w in self._workers:
            w.start()

    # ---- configuration -----------------------------------------------------------------------
    @property
    def latent(self) -> Optional[LatentImage]:
        """The model in use's latent."""
        return self.latents.get(Method.LIIF)

    @latent.setter
    def latent(self, lat: Optional[LatentImage]) -> None:
        self.latents[Method.LIIF] = lat

    def set_source(self, image: Optional[LoadedImage],
                   latents: Mapping[str, Optional[LatentImage]]) -> None:
        """A new image and/or model (and/or compare model), with the model methods' latents
        (:meth:`viewer.session.Session.latents`): drop queued work and cached tiles of what
        changed."""
        with self._lock:
            self.wanted = set()
            if image is not self.image:
                self.cache.clear()
                self.idle_stopped = False
            else:  # drop only the tiles of a model whose latent changed
                stale = {m for m in (Method.LIIF, Method.COMPARE)
                         if self.latents.get(m) is not latents.get(m)}
                if stale:
                    self.cache.drop(lambda k: k[0] in stale)
            self.image, self.latents = image, dict(latents)
        self._preview.replace([])
        self._liif.replace([])
        # a job still running for the old source sees itself stale and stops; its result,
        # if any, is dropped (see _run_job), so there is nothing to wait for

    def follow(self, session) -> None:
        """Render what ``session`` (:class:`viewer.session.Session`) shows: its changes of
        source, view and mode are events this scheduler subscribes to."""
        self.session = session
        session.subscribe(self._on_session)

    def _on_session(self, event: str) -> None:
        """A new view, mode or source: plan it from the session's published snapshot and ask
        for its tiles; nothing is asked of the session."""
        if event not in PUBLISHED:
            return
        snap = self.session.snapshot
        if event == Event.SOURCE:
            self.set_source(snap.image, snap.latents)
        self.plan = ViewPlan.of(snap, self.tile)
        if snap.view is not None:
            p = self.plan
            self.request(snap.view.zoom, list(p.tiles), list(snap.render),
                         lambda i, j: p.regions[(i, j)], lambda i, j: p.windows[(i, j)])

    def request_view(self, view, methods: List[str]) -> None:
        """Ask for every tile ``view`` (a :class:`viewer.view_state.ViewState`) shows, for each
        of ``methods`` (previews first), with the on-screen part of each (see
        :meth:`request`)."""
        if view is None:
            return
        T = self.tile
        self.request(view.zoom, view.visible_tiles(T), methods,
                     lambda i, j: view.tile_region(i, j, T), lambda i, j: view.tile_window(i, j, T))

    @property
    def held(self) -> bool:
        """Background encoding is held (:meth:`pause_background`)."""
        return self._held > 0

    def pause_background(self, paused: bool) -> None:
        """Hold background encoding (an export runs: it needs both cores) or let it go on;
        what the view asks for still renders. Counted, so that nested holds nest."""
        self._held = max(0, self._held + (1 if paused else -1))
        with self._liif.cond:
            self._liif.cond.notify_all()

    def shutdown(self) -> None:
        for q in (self._preview, self._liif):
            with q.cond:
                q.stopping = True
                q.jobs = []
                q.cond.notify_all()
        with self._lock:
            self.wanted = set()  # the running jobs, if any, see themselves stale and stop
        for w in self._workers:
            if w.is_alive() and w is not threading.current_thread():
                w.join(timeout=30)

    # ---- requests ----------------------------------------------------------------------------
    def request(self, zoom: float, tiles: List[Tuple[int, int]], methods: List[str],
                tile_region: Callable[[int, int], Region],
                tile_window: Optional[Callable[[int, int], Window]] = None) -> None:
        """Ask for ``tiles`` (centre first) at ``zoom`` for each of ``methods`` ('liif',
        'bicubic', 'nearest'). Jobs for tiles no longer wanted are dropped or cancelled.

        ``tile_window(i, j)`` is the part of a tile that is on screen: LIIF renders only that
        (tiles at the edge of the view are completed when a later view shows more of them);
        previews render whole tiles, so that there is always something under a partial tile.
        """
        running = self._liif.running_jobs()
        if tiles:  # the background encoder works outward from here
            view = _union(tile_region(i, j) for (i, j) in tiles)
            self.focus = self._ahead(view)
        with self._lock:
            fast, coarse, full = [], [], []
            wanted = set()
            whole = Box.whole(self.tile, self.tile)
            for m in map(Method, methods):
                if m.is_model and self.latent_for(m) is None:
                    continue
                for (i, j) in tiles:
                    reg = tile_region(i, j)
                    if m.is_model:
                        want = tile_window(i, j) if tile_window else whole
                        kf = TileKey(m, zoom, Level.FULL, i, j)
                        kc = TileKey(m, zoom, Level.COARSE, i, j)
                        wanted.update((kf, kc))
                        wf = self._need(kf, want, self.tile, running)
                        if wf is not None:
                            full.append(Job(kf, reg, self.tile, wf))
                            size = self.tile // COARSE
                            wc = self._need(kc, Box(*want).shrunk(COARSE, self.tile), size,
                                            running)
                            if wc is not None:
                                coarse.append(Job(kc, reg, size, wc))
                    else:
                        k = TileKey(m, zoom, Level.FULL, i, j)
                        wanted.add(k)
                        if k not in self.cache:
                            fast.append(Job(k, reg, self.tile))
            enc = []
            for m, e in ENCODE_FOR.items():
                mine = [j for j in full + coarse if j.key.method == m]
                if mine:
                    # encode the latent under the whole view first, in pieces shared by the
                    # workers (see _encode_jobs)
                    enc += self._encode_jobs(self.latent_for(m), e, zoom,
                                             _union(j.source() for j in mine))
            wanted.update(j.key for j in enc)
            coarse = enc + coarse
            self.wanted = wanted
            queued = {j.key for j in full + coarse}
            extra = {k for k in running
                     if k in wanted and k.method not in ENCODED_BY and k not in queued}
            self.timer = PassTimer(time.perf_counter(), pending={
                "preview": {j.key for j in fast},
                "coarse": {j.key for j in coarse if j.key.method not in ENCODED_BY}
                | {k for k in extra if k.level == Level.COARSE},
                "full": {j.key for j in full} | {k for k in extra if k.level == Level.FULL}})
            for kind in PASSES:
                if not self.timer.pending[kind]:
                    setattr(self.timer, kind, 0.0)
        self._preview.replace(fast)
        self._liif.replace(coarse + full)

    def _ahead(self, view: Region) -> Tuple[float, float]:
        """Where the background encoder starts: the centre of ``view`` moved on by the step
        since the last view (at most one view size per axis), so that a pan or a zoom towards
        a corner finds the codes it goes on to show encoded first; the centre itself when the
        view did not move."""
        cy, cx = view.y + view.h / 2, view.x + view.w / 2
        prev, self._centre = self._centre, (cy, cx)
        if prev is None:
            return cy, cx
        dy = max(-view.h, min(view.h, cy - prev[0]))
        dx = max(-view.w, min(view.w, cx - prev[1]))
        return cy + dy, cx + dx

    def _need(self, key: TileKey, want: Window, size: int, running: Dict[TileKey, Job]
              ) -> Optional[Window]:
        """The window of tile ``key`` still to render for ``want`` (None: nothing), given
        the cache and the jobs running (a running job goes on and delivers its part)."""
        miss = missing_window(self.cache.get(key), want)
        job = running.get(key)
        if miss is not None and job is not None:
            rc0, rr0, rc1, rr1 = job.window or (0, 0, size, size)
            c0, r0, c1, r1 = miss
            if rc0 <= c0 and rr0 <= r0 and c1 <= rc1 and r1 <= rr1:
                return None
        return miss

    def latent_for(self, method: str) -> Optional[LatentImage]:
        """The latent a model method (or its encoding jobs) renders from."""
        m = ENCODED_BY.get(Method(method), Method(method))
        return self.latents.get(m)

    def _encode_jobs(self, lat: LatentImage, method: Method, zoom: float,
                     view: Region) -> List[Job]:
        """Jobs that encode the latent under ``view`` (neighbours and their unfolding reach
        2 codes out): pieces of whole latent tiles, each at most one block (see
        :class:`core.render.encoding.LatentImage`), and at least as many as there are LIIF workers,
        of about equal size, so that every worker (and core) encodes. A piece pays the
        encoder's halo once: two halves of a 4x view cost about 10% more pixels than one
        block, in half the time on two cores."""
        tx0, ty0, tx1, ty1 = lat.tile_span(Box(int(view.x) - 2, int(view.y) - 2,
                                                int(view.x + view.w) + 3,
                                                int(view.y + view.h) + 3))
        if ty1 <= ty0 or tx1 <= tx0:
            return []
        ny, nx = ty1 - ty0, tx1 - tx0
        g = lat.group
        py, px = -(-ny // g), -(-nx // g)  # pieces per axis for the block bound
        while py * px < self.liif_workers:  # then split the longer side further
            if nx / px >= ny / py and px < nx:
                px += 1
            elif py < ny:
                py += 1
            else:
                break
        t = lat.tile
        jobs = []
        for a in range(py):
            ry0, ry1 = ty0 + ny * a // py, ty0 + ny * (a + 1) // py
            for b in range(px):
                rx0, rx1 = tx0 + nx * b // px, tx0 + nx * (b + 1) // px
                y0, y1 = ry0 * t, min(lat.height, ry1 * t)
                x0, x1 = rx0 * t, min(lat.width, rx1 * t)
                if not lat.is_encoded(Box(x0, y0, x1, y1)):
                    jobs.append(Job(TileKey(method, zoom, Level.FULL, ry0, rx0),
                                    Region(x0, y0, x1 - x0, y1 - y0), 0))
        return jobs

    def wanted_key(self, key: TileKey) -> bool:
        with self._lock:
            return key in self.wanted

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Block until both workers have nothing queued or running (for tests and scripts)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self._preview.idle() and self._liif.idle():
                return True
            time.sleep(0.005)
        return False

    # ---- workers -----------------------------------------------------------------------------
    def _run_job(self, job: Job) -> None:
        key = job.key
        method = key.method

        def cancelled() -> bool:
            stale = not self.wanted_key(key)
            if stale:
                self.cancelled_jobs += 1
            return stale

        if cancelled():
            return
        image, latent = self.image, self.latent_for(method)
        if image is None:
            return
        if method in ENCODED_BY:
            latent.ensure_region(job.region, cancelled)
            return
        rgb = render_by(method.value, image, job.region, job.size, job.size,
                        {method.value: latent}, window=job.window if method.is_model else None,
                        cancelled=cancelled, clip=False)
        tile = _to_uint8(rgb)
        with self._lock:
            if image is not self.image or latent is not self.latent_for(method):
                return  # the source changed meanwhile
            self.cache.put(key, merge_tile(self.cache.get(key), tile, job.window, job.size))
        self._mark_done(key)
        self.on_tile(key)

    def _mark_done(self, key: TileKey) -> None:
        with self._lock:
            t = self.timer
            if t is None:
                return
            for kind in PASSES:
                pend = t.pending[kind]
                if key in pend:
                    pend.discard(key)
                    if not pend and getattr(t, kind) is None:
                        dt = time.perf_counter() - t.start
                        setattr(t, kind, dt)
                        done = (kind, dt)
                        break
            else:
                return
        self.on_pass(*done)

    def _report_error(self, exc: Exception) -> None:
        if is_out_of_memory(exc):
            self.cache.clear()  # rendered tiles are the first thing to give back
            empty_device_cache()
            self.on_error("out of memory: cached tiles freed; zoom in or close other programs")
            return
        self.on_error(f"{type(exc).__name__}: {exc}")

    def _idle_failed(self, exc: Exception) -> None:
        """Background encoding failed: out of memory stops it for this image (said once, the
        tile cache freed); any other error is reported and retried after a pause, never in a
        tight loop."""
        if is_out_of_memory(exc):
            if not self.idle_stopped:
                self.idle_stopped = True
                self.cache.clear()
                empty_device_cache()
                self.on_error("out of memory: background encoding stopped for this image "
                              "(the view still renders what it shows)")
            return
        self._report_error(exc)

    def _has_idle_work(self) -> bool:
        lat = self.latent
        return (lat is not None and self.background_encoding and not self.idle_stopped
                and not self.held and lat.n_encoded < lat.n_tiles)

    def _idle_encode_step(self) -> bool:
        """Encode one more latent block of the open image (background, one worker at a
        time). False if there was nothing to do or another worker is doing it."""
        if not self._idle_lock.acquire(blocking=False):
            return False
        try:
            lat = self.latent
            return self._has_idle_work() and lat.encode_next(self.focus)
        finally:
            self._idle_lock.release()
