"""mmbench CLI: ``mmbench datasets check`` (verify a local copy) and ``mmbench datasets layout``."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from mmbench.commands.common import EXIT_FAIL, console, parse_options, print_json, user_errors

datasets_app = typer.Typer(help="Check a local copy of a dataset, or show the layout it expects.",
                           no_args_is_help=True)


@datasets_app.command("check")
def check_cmd(
    name: str = typer.Argument(..., help="Dataset name (see `mmbench list datasets`)."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Folder holding the dataset files."),
    split: Optional[str] = typer.Option(None, "--split", help="One split (default: every split)."),
    task: Optional[str] = typer.Option(None, "--task", help="Task kind to load it as (default: its first)."),
    dataset_option: Optional[List[str]] = typer.Option(None, "--dataset-option", help="key=value (repeatable)."),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
):
    """Verify a local copy: counts per split, missing files, image headers (size, format, decompression-bomb
    limit), feature arrays (shape, finiteness), fingerprint, differences from the standard.

    Exit code 0 when every split loads with no missing file, 1 otherwise, 2 on bad usage.

    Example: mmbench datasets check flickr8k --data-root ~/data/Flickr8k_text
    """
    with user_errors():
        from mmbench.datasets.check import check_dataset

        rep = check_dataset(name, data_root, split=split, task=task,
                            options=parse_options(dataset_option, "--dataset-option"))
    if as_json:
        print_json(rep)
    else:
        _print_report(rep)
    if not rep["ok"]:
        raise typer.Exit(EXIT_FAIL)


def _print_report(rep: dict) -> None:
    from rich.table import Table
    from rich.text import Text

    t = Table(title=f"{rep['dataset']} ({rep['task']}) at {rep['data_root']}", title_justify="left")
    for c in ("split", "status", "counts", "missing images", "protocol", "fingerprint"):
        t.add_column(c)
    for r in rep["splits"]:
        if "error" in r:
            t.add_row(r["split"], Text("error", style="red"), "", "", "", "")
            continue
        counts = ", ".join(f"{v} {k}" for k, v in r["counts"].items())
        if r["ok"]:
            status = Text("ok", style="green")
        else:
            why = (["missing files"] if r.get("missing_images") else []) + [
                f"{n} {kind}" for kind, n in (r.get("problems") or {}).items()]
            status = Text(", ".join(why) or "problems", style="red")
        t.add_row(r["split"], status, counts, str(r["missing_images"]), r["protocol"], r["fingerprint"])
    console.print(t)
    for r in rep["splits"]:
        if "error" in r:
            console.print(Text(f"{r['split']}: {r['error']}", style="red"))
            continue
        if r["missing_images"]:
            console.print(Text(f"{r['split']}: {r['missing_images']} missing image file(s), first: "
                               f"{', '.join(r['missing_first'])}", style="yellow"))
        for n in r["size_differences"] + r["notes"]:
            console.print(Text(f"{r['split']}: {n}", style="yellow"))


@datasets_app.command("layout")
def layout_cmd(name: str = typer.Argument(..., help="Dataset name (see `mmbench list datasets`)."),
               as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Print the directory layout a dataset expects and where the official files come from.

    Example: mmbench datasets layout refcoco
    """
    with user_errors():
        from mmbench.plugins import get_registry

        spec = get_registry().dataset(name)
    info = {"name": spec.name, "tasks": list(spec.tasks), "splits": list(spec.splits),
            "default_split": spec.default_split, "layout": spec.layout or "(the plugin gives no layout)",
            "protocols": list(spec.protocols), "options": dict(spec.options), "needs_data_root": spec.needs_data_root}
    if as_json:
        print_json(info)
        return
    from rich.text import Text

    console.print(Text(f"{spec.name}: {spec.description}", style="bold"))
    console.print(Text(f"tasks: {', '.join(spec.tasks)}; splits: {', '.join(spec.splits)} "
                       f"(default {spec.default_split})"))
    console.print(Text(info["layout"]))
    if spec.protocols:
        console.print(Text(f"protocols: {', '.join(spec.protocols)}"))
    if spec.options:
        console.print(Text("dataset options (--dataset-option key=value):"))
        for k, v in spec.options.items():
            console.print(Text(f"  {k}: {v}"))


def register(app: typer.Typer) -> None:
    app.add_typer(datasets_app, name="datasets")
