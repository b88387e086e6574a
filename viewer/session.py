"""The viewer's state that is not Qt: what is open, how it is compared, what is selected.

A :class:`Session` holds the image, the model and its latent, a second model to compare
with and its latent, the camera (:class:`~viewer.view_state.ViewState`), the compare mode and
what the second pane shows (bicubic, nearest neighbour or the compare model),
the export selection and the inspector's line, with the rules that tie them together (a new
image or model re-encodes the latent; pressing the current compare mode's key returns to
LIIF only; a selection is clamped to the image). The main window observes it: every change
calls the subscribers with one of :data:`EVENTS`, and the window turns that into Qt work
(new panes, repaint, a render request). Everything here is tested without a window.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import torch

from core.geometry import Region
from core.io.imageio import LoadedImage
from core.profile import DeviceProfile, profile_for
from core.rates import export_seconds
from core.render.encoding import LatentImage
from viewer.tiles import Method, methods_needed
from viewer.view_state import ViewState


class Event(str, Enum):
    """What a subscriber is told changed."""

    SOURCE = "source"        #: the image, a model or their latents
    MODE = "mode"            #: the compare mode, or what the second pane shows
    SELECTION = "selection"  #: the export selection
    LINE = "line"            #: the inspector's line
    VIEW = "view"            #: zoom, pan or pane size
    REFERENCE = "reference"  #: the ground truth

    __hash__ = str.__hash__


class Mode(str, Enum):
    """How the panes compare: side by side, a split (swipe) pane, or one pane."""

    SIDE = "side"
    SPLIT = "split"
    SINGLE = "single"

    __hash__ = str.__hash__


EVENTS = tuple(Event)
#: the events that publish a new :class:`ViewSnapshot` (before the subscribers hear of them)
PUBLISHED = (Event.SOURCE, Event.MODE, Event.VIEW)
MODES = tuple(Mode)
Point = Tuple[float, float]


def effective_method(method: str, zoom: float) -> str:
    """Below 1 device pixel per source pixel, model panes show the filtered source."""
    if method in (Method.LIIF, Method.COMPARE) and zoom < 1.0:
        return Method.BICUBIC
    return method


@dataclass(frozen=True)
class ViewSnapshot:
    """What the session shows, published with every view, mode and source event
    (:attr:`Session.snapshot`): the render scheduler plans from it and the panes draw it,
    neither calling back into the session (docs/ARCHITECTURE.md, "A wheel event")."""

    #: a copy of the camera (None: no image)
    view: Optional[ViewState]
    image: Optional[LoadedImage]
    #: :meth:`Session.latents`
    latents: Mapping[str, Optional[LatentImage]]
    #: each pane's methods, left to right (two in one pane: the split view)
    panes: Tuple[Tuple[str, ...], ...]
    #: each pane method -> what it draws at this zoom (LIIF below 1:1: the filtered source)
    shown: Mapping[str, str]
    #: what the scheduler renders for the panes, previews first
    render: Tuple[str, ...]


class Session:
    """See the module docstring. ``profile`` says how latents are encoded and kept
    (:mod:`core.profile`; the CPU's by default)."""

    @property
    def device(self) -> torch.device:
        return self.profile.device

    def __init__(self, profile: Optional[DeviceProfile] = None) -> None:
        self.profile = profile or profile_for("cpu")
        self.model: Optional[torch.nn.Module] = None
        self.model_name = ""
        #: why the model in use was chosen (core.zoo.choose's reason, or the menu)
        self.model_reason = ""
        self.image: Optional[LoadedImage] = None
        self.latent: Optional[LatentImage] = None
        self.state: Optional[ViewState] = None
        self.mode = Mode.SIDE
        #: what the second pane (or the right of the divider) shows: bicubic, nearest or
        #: the compare model's LIIF (a Method)
        self.other = Method.BICUBIC
        self._before_nearest = Method.BICUBIC  # what N returns to
        self.compare_model: Optional[torch.nn.Module] = None
        self.compare_name = ""
        self.compare_latent: Optional[LatentImage] = None
        self.selection: Optional[Region] = None
        #: a higher-resolution version of the image (ground truth), or None
        self.reference: Optional[LoadedImage] = None
        #: the inspector's line, source pixels ``((x0, y0), (x1, y1))``
        self.profile_line: Optional[Tuple[Point, Point]] = None
        self._subscribers: List[Callable[[str], None]] = []
        #: what is shown, as of the last view, mode or source event (see :class:`ViewSnapshot`)
        self.snapshot = self._snapshot()

    # ---- observers ---------------------------------------------------------------------------
    def subscribe(self, fn: Callable[[str], None]) -> None:
        self._subscribers.append(fn)

    def _notify(self, event: str) -> None:
        if event in PUBLISHED:
            self.snapshot = self._snapshot()
        for fn in list(self._subscribers):
            fn(event)

    def latents(self) -> Dict[str, Optional[LatentImage]]:
        """The one pairing of the model methods with their latents (None: no model)."""
        return {Method.LIIF: self.latent, Method.COMPARE: self.compare_latent}

    def _snapshot(self) -> "ViewSnapshot":
        view = None if self.state is None else replace(self.state)
        zoom = 1.0 if view is None else view.zoom
        panes = tuple(tuple(ms) for ms in self.pane_methods())
        return ViewSnapshot(view=view, image=self.image, latents=self.latents(), panes=panes,
                            shown={m: effective_method(m, zoom) for ms in panes for m in ms},
                            render=tuple(self.render_methods()))

    # ---- source: image, model, latent --------------------------------------------------------
    def set_image(self, image: LoadedImage, view_w: int, view_h: int) -> None:
        """Open ``image`` in a view of ``view_w x view_h`` device pixels, fitted; clears the
        selection and the line; re-encodes (lazily)."""
        self.image = image
        self.selection = None
        self.profile_line = None
        self.reference = None  # it was the previous image's
        self.state = ViewState(image.width, image.height, view_w, view_h)
        self.state.fit()
        self._reencode()

    def set_reference(self, reference: Optional[LoadedImage]) -> None:
        """A higher-resolution version of the open image to measure the panes against
        (ValueError if it is not the image at a larger size); None removes it."""
        if reference is not None:
            if self.image is None:
                raise ValueError("open an image first, then its reference")
            from viewer.groundtruth import reference_scale
            reference_scale(self.image, reference)
        self.reference = reference
        self._notify(Event.REFERENCE)

    def set_model(self, model: Optional[torch.nn.Module], name: str, reason: str = "") -> None:
        """Use ``model`` (named ``name``) for the LIIF pane; ``reason`` says why it was chosen
        (``JPEG q≈72 → photo model``, ``chosen in the Model menu``), for the status bar."""
        self.model, self.model_name, self.model_reason = model, name, reason
        self._reencode()

    def set_compare_model(self, model: Optional[torch.nn.Module], name: str = "") -> None:
        """Show ``model`` beside the model in use (side by side, or right of the divider);
        None goes back to bicubic."""
        self.compare_model, self.compare_name = model, name if model is not None else ""
        self.other = Method.COMPARE if model is not None else Method.BICUBIC
        self._reencode(main=False)
        self._notify(Event.MODE)

    def export_seconds(self, region: Region, out_px: int,
                       measure: bool = True) -> Optional[float]:
        """About how long exporting ``region`` at ``out_px`` output pixels with the model in
        use takes (:func:`core.rates.export_seconds`): rendering, plus encoding the part of
        ``region`` the latent does not hold yet (its share not encoded, as a fraction). None
        where it is not measured (a GPU; the first time without ``measure``) or without an
        image."""
        if self.image is None:
            return None
        inside = region.inside(self.image.width, self.image.height)
        covered = 0.0 if inside is None else inside.w * inside.h
        lat = self.latent
        left = 0.0 if lat is None else covered * (1 - lat.encoded_fraction)
        return export_seconds(self.model, self.profile, out_px, covered, left, measure=measure)

    def _encode(self, model) -> Optional[LatentImage]:
        # lazy: nothing is encoded here; the render workers encode the tiles they need
        if self.image is None or model is None:
            return None
        # the model and a compared model share the memory budget (core.render.encoding): each keeps
        # at most half of it, beyond which tiles far from the view are dropped and re-encoded
        return self.profile.encode(model, self.image.pixels, budget_share=0.5,
                                   tile=self.profile.latent_tile)

    def _reencode(self, main: bool = True) -> None:
        if main:
            self.latent = self._encode(self.model)
            self.compare_latent = self._encode(self.compare_model)
        else:
            self.compare_latent = self._encode(self.compare_model)
        self._notify(Event.SOURCE)

    # ---- comparison --------------------------------------------------------------------------
    def set_mode(self, mode: str) -> None:
        """Side by side, split or LIIF only; the current compare mode's key returns to LIIF
        only."""
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.mode = Mode.SINGLE if (mode == self.mode and mode != Mode.SINGLE) else Mode(mode)
        if self.mode == Mode.SINGLE and self.nearest:
            # LIIF only means LIIF: nearest neighbour gives way to what was there before
            self._leave_nearest()
        self._notify(Event.MODE)

    def _leave_nearest(self) -> None:
        self.other = self._before_nearest if (
            self._before_nearest != Method.COMPARE or self.compare_model is not None) \
            else Method.BICUBIC

    @property
    def nearest(self) -> bool:
        """Nearest neighbour is the comparison (and, in single mode, what is shown)."""
        return self.other == Method.NEAREST

    def toggle_nearest(self) -> None:
        """Nearest neighbour instead of bicubic or the compare model (in single mode: instead
        of LIIF); again: back to what was there (the compare model if one is loaded)."""
        if self.other == Method.NEAREST:
            self._leave_nearest()
        else:
            self._before_nearest, self.other = self.other, Method.NEAREST
        self._notify(Event.MODE)

    def set_other(self, other: str) -> None:
        """What the second pane shows: 'bicubic', 'nearest' or 'compare' (needs a compare
        model)."""
        if other not in (Method.BICUBIC, Method.NEAREST, Method.COMPARE):
            raise ValueError(f"compare with bicubic, nearest or compare, got {other!r}")
        if other == Method.COMPARE and self.compare_model is None:
            raise ValueError("no compare model is loaded")
        self.other = other
        self._notify(Event.MODE)

    def label(self, method: str) -> str:
        """A pane's label for ``method``: the model's name for the two model methods."""
        name = self.name_of(method)
        return f"LIIF: {name}" if Method(method).is_model and name != "LIIF" else name

    def name_of(self, method: str) -> str:
        """What ``method`` is called: the model's name for the two model methods (``LIIF``
        without one), else the method's label."""
        if method == Method.LIIF:
            return self.model_name or "LIIF"
        if method == Method.COMPARE:
            return self.compare_name or Method.COMPARE.label
        return Method(method).label

    def pane_methods(self) -> List[List[str]]:
        """The methods of each pane, left to right (two in one pane: the split view)."""
        other = self.other
        if self.mode == Mode.SIDE:
            return [[Method.LIIF], [other]]
        if self.mode == Mode.SPLIT:
            return [[Method.LIIF, other]]
        return [[Method.NEAREST] if self.nearest else [Method.LIIF]]

    def shown_methods(self) -> List[str]:
        """What is on screen, in pane order: LIIF only with a model, the filtered source
        (bicubic) for LIIF below 1:1."""
        zoom = self.state.zoom if self.state is not None else 1.0
        latents = self.latents()
        out = [effective_method(m, zoom) for ms in self.pane_methods() for m in ms
               if not (m in latents and latents[m] is None)]
        return list(dict.fromkeys(out))

    def render_methods(self) -> List[str]:
        """What the scheduler must render for the panes (their layers), previews first."""
        return [m.value for m in methods_needed(self.shown_methods())]

    # ---- selection and line ------------------------------------------------------------------
    def set_selection(self, a: Point, b: Point) -> None:
        """The rectangle spanned by ``a`` and ``b`` (source pixels), clamped to the image;
        none if it is thinner than half a pixel."""
        if self.image is None:
            return
        x0, x1 = sorted((a[0], b[0]))
        y0, y1 = sorted((a[1], b[1]))
        x0, y0 = max(0.0, x0), max(0.0, y0)
        x1, y1 = min(float(self.image.width), x1), min(float(self.image.height), y1)
        self.selection = (Region(x0, y0, x1 - x0, y1 - y0)
                          if (x1 - x0 > 0.5 and y1 - y0 > 0.5) else None)
        self._notify(Event.SELECTION)

    def set_profile_line(self, a: Point, b: Point) -> None:
        self.profile_line = ((float(a[0]), float(a[1])), (float(b[0]), float(b[1])))
        self._notify(Event.LINE)

    def clear_selection(self) -> None:
        """Clear the selection and the inspector's line."""
        self.selection = None
        self.profile_line = None
        self._notify(Event.SELECTION)
        self._notify(Event.LINE)

    # ---- camera ------------------------------------------------------------------------------
    def resize(self, view_w: int, view_h: int) -> None:
        if self.state is not None:
            self.state.resize(view_w, view_h)
            self._notify(Event.VIEW)

    def zoom_at(self, factor: float, px: Optional[float] = None,
                py: Optional[float] = None) -> None:
        if self.state is not None:
            self.state.zoom_at(factor, px, py)
            self._notify(Event.VIEW)

    def pan(self, dx: float, dy: float) -> None:
        if self.state is not None:
            self.state.pan(dx, dy)
            self._notify(Event.VIEW)

    def fit(self) -> None:
        if self.state is not None:
            self.state.fit()
            self._notify(Event.VIEW)

    def one_to_one(self) -> None:
        if self.state is not None:
            self.state.one_to_one()
            self._notify(Event.VIEW)

    def view_changed(self) -> None:
        """Tell the subscribers that :attr:`state` was changed directly (benchmarks, tests)."""
        self._notify(Event.VIEW)
