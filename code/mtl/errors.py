"""Errors a user can fix, and how the CLIs report them: one line, the program's name, a non-zero exit.

Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import logging
import sys
from typing import Any, Callable


class UsageError(ValueError):
    """Bad input or arguments: the message names the file (and line) or the flag, and says what to do."""


def run_cli(main: Callable[[], Any], prog: str) -> None:
    """Run a CLI's main(); a UsageError becomes `prog: error: message` on stderr and exit status 1."""
    try:
        main()
    except UsageError as err:
        logging.shutdown()  # flush what was logged before the error, so the error line comes last
        sys.exit(f"{prog}: error: {err}")
