"""Loading models for the viewer: the rule that picks one per opened image
(:func:`core.zoo.choose`; :func:`core.zoo.load` loads each file once) and loading a file with
a dialog that says why it failed. Qt-free but for the error callback the window passes."""
from __future__ import annotations

from typing import Callable, Optional

from core import zoo
from core.checkpoints import CheckpointError


class ModelLoader:
    """Loads models onto ``session``'s device; ``error(title, message)`` shows a failure."""

    def __init__(self, session, error: Callable[[str, str], None]) -> None:
        self.session, self.error = session, error

    def load(self, path: str, keeps: str):
        """The model in ``path``, or None after a dialog that says why and what ``keeps``."""
        try:
            return zoo.load(path, self.session.device)
        except CheckpointError as exc:
            self.error("Cannot load checkpoint", f"{exc}\n\n{keeps}")
        except (Exception, RecursionError) as exc:  # never lose the window to a bad file
            self.error("Cannot load checkpoint", f"cannot load checkpoint {path}: "
                       f"{type(exc).__name__}: {exc}\n\n{keeps}")
        return None

    def apply_rule(self, path: Optional[str]) -> None:
        """Use the model :func:`core.zoo.choose` picks for the image in ``path``; on a load
        failure, a dialog and the current model stays."""
        ses = self.session
        choice = zoo.choose(ses.device, path)
        if ses.model is not None and ses.model_name == choice.path.stem:
            ses.model_reason = choice.reason
            return
        model = self.load(str(choice.path), "The current model stays in use.")
        if model is None:
            return
        ses.set_model(model, choice.path.stem, choice.reason)
