"""mmbench CLI: ``mmbench cache ls|prune`` — the content-addressed cache of finished shards
(``mmbench eval --cache DIR``; see ``mmbench.execution.cache``)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mmbench.commands.common import console, print_json, user_errors

cache_app = typer.Typer(help="The shard cache of `mmbench eval --cache DIR`: list or prune its entries.",
                        no_args_is_help=True)

_DIR = typer.Option(..., "--cache", envvar="MMBENCH_CACHE", help="The cache folder (as given to eval --cache).")


def _open(path: Path):
    from mmbench.errors import UsageError
    from mmbench.execution.cache import Cache

    if not path.is_dir():
        raise UsageError(f"--cache {str(path)!r} is not a folder")
    return Cache(path)


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def register(app: typer.Typer) -> None:
    app.add_typer(cache_app, name="cache")


@cache_app.command("ls")
def ls_cmd(cache: Path = _DIR, as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """List the cache's entries grouped by plugin, dataset, split and stage (entries, size).

    Example: mmbench cache ls --cache ~/.cache/mmbench/shards
    """
    import time

    with user_errors():
        c = _open(cache)
        groups: dict[tuple, list] = {}
        for e in c.entries():
            k = (str(e.get("plugin", "?")), str(e.get("plugin_version", "?")), str(e.get("dataset", "?")),
                 str(e.get("split", "?")), str(e.get("stage", "?")))
            groups.setdefault(k, []).append(e)
        rows = [{"plugin": k[0], "version": k[1], "dataset": k[2], "split": k[3], "stage": k[4],
                 "entries": len(v), "bytes": sum(int(x.get("bytes", 0)) for x in v),
                 "newest": max(float(x.get("created", 0)) for x in v)} for k, v in sorted(groups.items())]
        orphans = len(c.orphans())
        if as_json:
            print_json({"cache": str(c.root), "groups": rows, "orphans": orphans})
            return
        from rich.table import Table
        from rich.text import Text

        t = Table(title=f"mmbench cache {c.root}", title_justify="left")
        for col in ("plugin", "version", "dataset", "split", "stage", "entries", "size", "newest"):
            t.add_column(col, justify="right" if col in ("entries", "size") else "left")
        for r in rows:
            t.add_row(Text(r["plugin"]), Text(r["version"]), Text(r["dataset"]), Text(r["split"]), Text(r["stage"]),
                      str(r["entries"]), _size(r["bytes"]),
                      time.strftime("%Y-%m-%d %H:%M", time.localtime(r["newest"])))
        from mmbench.reports.console import print_whole

        print_whole(console, t)  # off a terminal no cell is cut
        if orphans:
            console.print(f"{orphans} orphaned file(s) from interrupted writes (removed by `mmbench cache prune`)")


@cache_app.command("prune")
def prune_cmd(cache: Path = _DIR,
              older_than: Optional[float] = typer.Option(None, "--older-than", help="Remove entries older than "
                                                                                   "this many days."),
              plugin: Optional[str] = typer.Option(None, "--plugin", help="Remove the entries of this plugin."),
              everything: bool = typer.Option(False, "--all", help="Remove every entry."),
              as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Remove entries (by age, plugin, or all) and always the orphans of interrupted writes.

    Examples: mmbench cache prune --cache DIR --older-than 30 ; mmbench cache prune --cache DIR --plugin sgraf
    """
    from mmbench.errors import UsageError

    with user_errors():
        if older_than is not None and older_than < 0:
            raise UsageError(f"--older-than {older_than:g}: expected a number of days >= 0")
        c = _open(cache)
        n, freed = c.prune(older_than_s=None if older_than is None else older_than * 86400, plugin=plugin,
                           everything=everything)
        if as_json:
            print_json({"removed": n, "bytes_freed": freed})
        else:
            console.print(f"removed {n} entr{'y' if n == 1 else 'ies'}, freed {_size(freed)}")
