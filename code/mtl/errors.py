"""Errors a user can fix, and how the CLIs report them: one line, the program's name, a non-zero exit.

Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, Callable


class UsageError(ValueError):
    """Bad input or arguments: the message names the file (and line) or the flag, and says what to do."""


class OneLineArgumentErrors:
    """Mixin for an argparse parser: its mistakes (a bad value, an option without its value, an invalid choice)
    raise UsageError, so run_cli reports them as every other mistake (one line, exit status 1) instead of argparse's
    usage text and exit status 2. `--help` still prints the help and exits 0."""

    prog: str

    def error(self, message: str):
        raise UsageError(f"{message} ({self.prog} --help lists the flags)")


class ArgumentParser(OneLineArgumentErrors, argparse.ArgumentParser):
    """argparse.ArgumentParser whose mistakes are one-line UsageErrors (for a CLI run through run_cli)."""


def run_cli(main: Callable[[], Any], prog: str) -> None:
    """Run a CLI's main(); a UsageError becomes `prog: error: message` on stderr and exit status 1."""
    try:
        main()
    except UsageError as err:
        logging.shutdown()  # flush what was logged before the error, so the error line comes last
        sys.exit(f"{prog}: error: {err}")
