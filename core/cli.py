"""What every command-line front door shares: an argument parser whose errors are one line."""
from __future__ import annotations

import argparse
import sys
from typing import NoReturn


class ArgumentParser(argparse.ArgumentParser):
    """``argparse.ArgumentParser`` whose usage errors are one line, ``error: ...`` (with a
    pointer to ``--help``), and exit status 2, like every other error of the project's CLIs."""

    def error(self, message: str) -> NoReturn:
        print(f"error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)
