"""Printing rich tables so that nothing a user must read or type is cut off.

A rich ``Console`` that does not write to a terminal (a CI log, a file, a pipe) assumes 80
columns and squeezes wider tables until cells wrap mid-word or end in "…" — a dataset name
like ``coco_captions`` or a metric like ``i2t.R@10`` would then be printed as something the
user cannot type. :func:`print_whole` measures what the renderables need and, off a terminal,
prints them through a console exactly that wide (never narrower than the original), so every
cell is printed whole on one line. In a terminal the user's width is respected.
"""

from __future__ import annotations

#: the widest a measured table may make the output (a guard, far above any real table)
MAX_WIDTH = 100_000


def needed_width(console, *renderables) -> int:
    """Columns the renderables need to print without wrapping or cutting any cell."""
    from rich.measure import Measurement

    opts = console.options.update_width(MAX_WIDTH)
    return max([Measurement.get(console, opts, r).maximum for r in renderables] or [0])


def print_whole(console, *renderables, **print_kw) -> None:
    """``console.print`` each renderable; off a terminal, wide enough that no cell is cut."""
    if not renderables:
        return
    if console.is_terminal:
        for r in renderables:
            console.print(r, **print_kw)
        return
    width = max(console.width, needed_width(console, *renderables))
    target = console
    if width > console.width:
        from rich.console import Console

        target = Console(file=console.file, width=width, color_system=console.color_system,
                         force_terminal=False, no_color=console.no_color, highlight=False,
                         legacy_windows=False)
    for r in renderables:
        target.print(r, **print_kw)


class _Sanitised:
    """Context manager: an MMBenchError leaving it has escape sequences and control characters removed
    from its message (which quotes record data: plugin names, metric names, paths), line breaks kept."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        from mmbench.errors import MMBenchError
        from mmbench.reports.format import safe_text

        if exc is not None and isinstance(exc, MMBenchError) and exc.args:
            exc.args = (safe_text(str(exc), newlines=True),) + tuple(exc.args[1:]) if len(exc.args) == 1 else \
                tuple(safe_text(a, newlines=True) if isinstance(a, str) else a for a in exc.args)
        return False


def sanitised_errors() -> _Sanitised:
    """``with user_errors(), sanitised_errors():`` — error messages printed safely (see :class:`_Sanitised`)."""
    return _Sanitised()
