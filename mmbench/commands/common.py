"""Helpers every CLI command uses: error reporting, JSON output, key=value options."""

from __future__ import annotations

import json
import sys
import traceback
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console

from mmbench.errors import MMBenchError

console = Console()
err_console = Console(stderr=True)

#: exit codes: 0 ok, 1 a gate/regression/failed run, 2 bad input or usage
EXIT_FAIL = 1
EXIT_BAD_INPUT = 2

DEBUG = {"on": False}


@contextmanager
def user_errors():
    """Turn MMBenchError into a one-paragraph message and exit code 2 (traceback only with --debug)."""
    try:
        yield
    except MMBenchError as exc:
        if DEBUG["on"]:
            traceback.print_exc()
        from rich.text import Text

        # user and data text is printed literally: a "[/x]" in a path or an annotation is not markup
        err_console.print(Text("error: ", style="bold red") + Text(str(exc)), highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=_default) + "\n")
    sys.stdout.flush()


def _default(o):
    import numpy as np

    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def parse_options(items: list[str] | None, what: str = "--option") -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise MMBenchError(f"{what} {item!r} is not key=value (example: {what} batch_size=32)")
        out[key.strip()] = value
    return out
