"""What every command-line front door shares: an argument parser whose errors are one line."""
from __future__ import annotations

import argparse
import difflib
import sys
from typing import NoReturn


def version() -> str:
    """The installed package's version (the checkout's, from pyproject, when not installed)."""
    try:
        from importlib.metadata import version as v
        return v("liif-zoom")
    except Exception:
        return "0.1.0"


def _long_options(parser: argparse.ArgumentParser) -> set:
    """Every ``--option`` of ``parser`` and of its subcommands' parsers."""
    out = set()
    for a in parser._actions:
        out.update(s for s in a.option_strings if s.startswith("--"))
        if isinstance(a, argparse._SubParsersAction):
            for sub in a.choices.values():
                out |= _long_options(sub)
    return out


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose usage errors are one line, ``error: ...`` (with a
    pointer to ``--help``), and exit status 2, like every other error of the project's CLIs;
    an unknown option is reported as such (with a "did you mean") before any other complaint,
    such as a required option that is missing because of the typo; ``--version`` prints the
    package's version."""

    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.add_argument("--version", action="version", version=f"%(prog)s {version()}")

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)

    def parse_args(self, args=None, namespace=None):
        argv = sys.argv[1:] if args is None else [str(a) for a in args]
        known = sorted(_long_options(self))
        for tok in argv:
            if tok == "--":
                break
            name = tok.split("=", 1)[0]
            if name.startswith("--") and name not in known \
                    and not any(k.startswith(name) for k in known):
                hint = difflib.get_close_matches(name, known, n=1)
                self.error(f"unrecognized option {name}"
                           + (f" (did you mean {hint[0]}?)" if hint else ""))
        return super().parse_args(argv, namespace)
