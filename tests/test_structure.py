"""The codebase keeps the shape the design card and the structure issue ask for: the layers'
dependency direction, short functions, a thin main window, a short README."""
import ast
import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGES = ("core", "viewer", "training")


def _modules(package):
    return sorted((ROOT / package).rglob("*.py"))


def _imports(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module


@pytest.mark.parametrize("package, forbidden", [
    ("core", ("PySide6", "pyqtgraph", "viewer", "training")),
    ("training", ("PySide6", "pyqtgraph", "viewer")),
    ("viewer", ("training",)),
])
def test_the_layers_depend_one_way(package, forbidden):
    """core imports no Qt and nothing above it; training and viewer depend on core only."""
    bad = [(str(p.relative_to(ROOT)), m) for p in _modules(package) for m in _imports(p)
           if m.split(".")[0] in forbidden]
    assert bad == []


def test_no_function_is_over_80_lines():
    long = []
    for package in PACKAGES:
        for p in _modules(package):
            for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    n = node.end_lineno - node.lineno + 1
                    if n > 80:
                        long.append((str(p.relative_to(ROOT)), node.name, n))
    assert long == []


def test_the_main_window_is_thin_and_the_readme_short():
    def lines(*parts):
        with open(os.path.join(ROOT, *parts), encoding="utf-8") as f:
            return len(f.read().splitlines())
    assert lines("viewer", "main_window.py") < 400
    assert lines("README.md") <= 150


CARD_SECTIONS = ["What it is", "Intended use", "Data", "Recipe", "Metrics", "Limits", "Licence"]


def test_every_bundled_model_has_a_card_in_the_template():
    """docs/model-card-template.md: the same sections, in order, for every bundled model."""
    from core.zoo import REGISTRY
    for entry in REGISTRY:
        card = (ROOT / "resources" / entry.file).with_suffix(".md")
        heads = [line[3:].strip() for line in card.read_text(encoding="utf-8").splitlines()
                 if line.startswith("## ")]
        assert heads == CARD_SECTIONS, card.name
