"""The error types mmbench raises on purpose.

Every error a user can cause (bad data, unknown names, a plugin misbehaving) is an
``MMBenchError``: the CLI prints its message as one paragraph, without a traceback
unless ``--debug`` is given. Anything else escaping is a bug in mmbench.
"""

from __future__ import annotations

from pathlib import Path


class MMBenchError(Exception):
    """Base class of every error mmbench raises for bad input or a failing plugin."""


class DataError(MMBenchError):
    """A data file is missing or malformed.

    The message always names the file, the field and what was expected.
    """

    def __init__(self, path: str | Path | None, message: str, *, field: str | None = None,
                 expected: str | None = None, layout: str | None = None):
        self.path = None if path is None else str(path)
        self.field = field
        self.expected = expected
        self.layout = layout
        parts = []
        if self.path:
            parts.append(f"{self.path}:")
        if field:
            parts.append(f"field {field!r}:")
        parts.append(message)
        if expected:
            parts.append(f"(expected {expected})")
        text = " ".join(parts)
        if layout:
            text += f"\nExpected layout: {layout}"
        super().__init__(text)


class UsageError(MMBenchError):
    """A mistake in how mmbench was called (unknown split or option, missing data root, ...).

    Found before any run starts: the CLI exits 2 and writes no run record.
    """


class UnknownNameError(UsageError):
    """An unknown plugin, dataset, split or option; lists what exists and the closest match.

    ``kind`` may name its owner after " of " ("split of dataset 'demo'"): the message then reads
    "Unknown split 'x' of dataset 'demo'. ... Known splits: ...".
    """

    def __init__(self, kind: str, name: str, known: list[str]):
        import difflib

        self.kind, self.name, self.known = kind, name, sorted(known)
        noun, sep, owner = kind.partition(" of ")
        close = difflib.get_close_matches(name, self.known, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        listing = ", ".join(self.known) if self.known else "(none installed)"
        where = f" of {owner}" if sep else ""
        super().__init__(f"Unknown {noun} {name!r}{where}.{hint} Known {noun}s: {listing}.")


class MismatchError(UsageError):
    """A plugin and a dataset do not fit together (task kind or input form)."""


class PluginError(MMBenchError):
    """A plugin failed to load, raised, or returned outputs that break the contract."""


class UnsafeFileError(MMBenchError):
    """A file would need unrestricted unpickling (code execution) to load."""
