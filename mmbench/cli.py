"""The `mmbench` command line: thin — it parses, calls library functions, renders."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import List, Optional

import typer

from mmbench.commands.common import DEBUG, EXIT_FAIL, console, err_console, parse_options, print_json, user_errors

app = typer.Typer(
    name="mmbench", no_args_is_help=True, rich_markup_mode="rich", add_completion=False,
    help="Evaluate image-text models (retrieval, captioning, grounding, classification) through plugins.\n\n"
         "Quick start: [bold]mmbench eval --plugin cca --dataset demo[/]",
)
list_app = typer.Typer(help="List installed plugins (models) or datasets.", no_args_is_help=True)
app.add_typer(list_app, name="list")


@app.callback()
def _root(debug: bool = typer.Option(False, "--debug", help="Show tracebacks for errors.")):
    DEBUG["on"] = debug


def _registry():
    from mmbench.plugins import get_registry

    return get_registry()


@app.command("eval")
def eval_cmd(
    plugin: List[str] = typer.Option(..., "--plugin", "-p", help="Model plugin name (repeatable)."),
    dataset: List[str] = typer.Option(..., "--dataset", "-d", help="Dataset name (repeatable)."),
    split: Optional[str] = typer.Option(None, "--split", help="Split to evaluate (default: the dataset's)."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Folder holding the dataset files."),
    option: Optional[List[str]] = typer.Option(None, "--option", "-o", help="Model option key=value (repeatable)."),
    dataset_option: Optional[List[str]] = typer.Option(None, "--dataset-option", "-D",
                                                       help="Dataset option key=value (repeatable)."),
    task_option: Optional[List[str]] = typer.Option(
        None, "--task-option", "-T",
        help="Task option key=value (repeatable), declared by the plugin's task kind, e.g. ties=optimistic "
             "(retrieval), tokenizer=ptb (captioning), threshold=0.7 (grounding). `mmbench tasks` lists every "
             "kind's options with their defaults."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", help="Batch size (default: the plugin's)."),
    seed: int = typer.Option(0, "--seed", help="Seed for numpy/torch and the bootstrap."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Bootstrap resamples for CIs (0 disables)."),
    out: Path = typer.Option(Path("runs"), "--out", help="Folder for the run records (JSON)."),
    as_json: bool = typer.Option(False, "--json", help="Print the records as JSON instead of a table."),
    no_progress: bool = typer.Option(False, "--no-progress", help="Hide progress bars."),
    allow_overlap: bool = typer.Option(
        False, "--allow-overlap",
        help="Fit a model (one with fit()) even when its train/val data overlaps the evaluated split "
             "(same image files, features or ids). Refused by default; recorded in the run record."),
    isolate: bool = typer.Option(
        True, "--isolate/--no-isolate",
        help="Run each (plugin, dataset) pair in a child process, so a plugin that calls os._exit(), crashes "
             "the interpreter or hangs ends as a failed run and the other runs go on (default on)."),
    timeout: Optional[float] = typer.Option(
        None, "--timeout", help="Stop a run after this many seconds: a failed run, recorded (default: no limit)."),
    executor: str = typer.Option(
        "local", "--executor",
        help="Who computes the shards: local (this process), torch (every rank of a torchrun job; gloo on CPU, "
             "nccl on GPUs) or ray (Ray actors, --workers of them). Same record either way (docs/scale.md)."),
    workers: int = typer.Option(2, "--workers", help="Ray workers (--executor ray)."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address",
                                              help="An existing Ray cluster (default: start a local instance)."),
    gpus_per_worker: float = typer.Option(0.0, "--gpus-per-worker",
                                          help="GPUs each Ray worker reserves (--executor ray; e.g. 1)."),
    dist_backend: str = typer.Option("auto", "--dist-backend", help="torch executor backend: auto, gloo or nccl."),
    cache: Optional[Path] = typer.Option(
        None, "--cache", envvar="MMBENCH_CACHE",
        help="Content-addressed cache of finished shards (embeddings, scores, outputs): a repeated or killed "
             "run started again with the same command redoes only what is missing. `mmbench cache ls|prune`."),
    shard_size: Optional[int] = typer.Option(
        None, "--shard-size", help="Items per shard, rounded up to whole batches (default: about 16 shards)."),
    limit: Optional[int] = typer.Option(
        None, "--limit", help="Only the first N units (images or samples) of every split: a quick smoke run "
                              "(recorded; its fingerprint differs from the full split's)."),
):
    """Evaluate plugin(s) on dataset(s); write one run record per run and print a leaderboard.

    Examples:

      mmbench eval --plugin cca --dataset demo

      mmbench eval -p sgraf -d f30k_precomp --data-root ~/data --option checkpoint=model_best.pth.tar

      mmbench eval -p cca -p nn-caption -d demo --split val --json

    A failing run is recorded (status "failed", with its traceback) and the other runs go on; the exit
    code is 1 when any run failed. Usage mistakes (unknown split, option or data root, a task mismatch)
    are found before any run starts: exit code 2 and no record. Dataset options may be given per split
    (-D annotations.val=FILE); a model with fit() is never fitted on data that overlaps the evaluated
    split unless --allow-overlap is given.
    """
    from mmbench import records
    from mmbench.errors import UsageError
    from mmbench.runner import EvalConfig, run_many

    with user_errors():
        cfg = EvalConfig(split=split, data_root=str(data_root) if data_root else None,
                         options=parse_options(option), dataset_options=parse_options(dataset_option, "--dataset-option"),
                         task_options=parse_options(task_option, "--task-option"),
                         batch_size=batch_size, seed=seed, bootstrap=bootstrap, show_progress=not no_progress,
                         allow_overlap=allow_overlap, isolate=isolate, timeout=timeout,
                         executor=executor, workers=workers, ray_address=ray_address, dist_backend=dist_backend,
                         gpus_per_worker=gpus_per_worker,
                         cache=str(cache) if cache else None, shard_size=shard_size, limit=limit)
        if limit is not None and limit < 1:
            raise UsageError(f"--limit {limit}: expected at least 1 unit")
        if timeout is not None and not timeout > 0:
            raise UsageError(f"--timeout {timeout:g}: a run needs more than 0 seconds")
        from mmbench.execution.executors import EXECUTORS

        if executor not in EXECUTORS:
            raise UsageError(f"--executor {executor!r}: expected one of {', '.join(EXECUTORS)}")
        if shard_size is not None and shard_size < 1:
            raise UsageError(f"--shard-size {shard_size}: a shard needs at least 1 item")
        if workers < 1:
            raise UsageError(f"--workers {workers}: need at least 1")
        main_rank = True
        if executor == "torch":
            if timeout is not None:
                raise UsageError("--timeout needs isolated runs, which --executor torch does not use (every rank "
                                 "runs in the process torchrun started); drop --timeout")
            cfg.isolate = False  # the ranks' process group lives in this process
            import os

            main_rank = os.environ.get("RANK", "0") == "0"
        if cache:
            from mmbench.execution.cache import Cache

            Cache(cache)  # a --cache that is a file is refused before any run
        records.check_writable(out)  # an --out that is a file or read-only is found before any run
        reg = _registry()
        for p in plugin:  # unknown names fail before any run starts
            reg.model(p)
        for d in dataset:
            reg.dataset(d)
        saved = []

        def on_record(rec):
            path = records.save(rec, out)
            saved.append(path)
            if rec.status != "ok":
                from rich.text import Text

                err_console.print(Text("run failed ", style="red") +
                                  Text(f"{rec.plugin['name']} on {rec.dataset['name']}: {rec.error}"),
                                  highlight=False)
                if DEBUG["on"] and rec.details.get("traceback"):
                    err_console.print(Text(rec.details["traceback"]), highlight=False)
            elif not as_json:
                for pub in rec.published:
                    mark = "✓" if pub["within"] else "✗"
                    err_console.print(f"{mark} {rec.plugin['name']} {pub['metric']}: measured {pub['measured']:.2f}, "
                                      f"published {pub['published']:.2f} (Δ {pub['delta']:+.2f}, {pub['source']})",
                                      highlight=False)

        recs = run_many(plugin, dataset, cfg, registry=reg, on_record=on_record)
        if not main_rank:  # rank 0 writes and prints the records of a torch.distributed run
            return
        if as_json:
            print_json([dict(r.to_dict(), path=str(p)) for r, p in zip(recs, saved)])
        else:
            _print_tables(recs)
            for p in saved:
                err_console.print(f"record: {p}", highlight=False)
    if any(r.status != "ok" for r in recs):
        raise typer.Exit(EXIT_FAIL)


def _print_tables(recs) -> None:
    from mmbench.reports.leaderboard import build_tables, print_rich

    # failures were already reported one paragraph each; a table of failed rows only adds noise
    tables = [t for t in build_tables(recs) if any(r["status"] == "ok" for r in t.rows)]
    print_rich(tables, console)


@list_app.command("plugins")
def list_plugins(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """List model plugins (name, task, input forms, package) and plugins that failed to load.

    Example: mmbench list plugins --json
    """
    with user_errors():
        reg = _registry()
        models = [{"name": m.name, "task": m.task, "accepts": list(m.accepts), "package": m.plugin,
                   "version": m.version, "description": m.description, "options": m.options}
                  for m in sorted(reg.models.values(), key=lambda m: (m.task, m.name))]
        failures = [{"name": p.name, "package": p.package, "module": p.module, "error": p.error}
                    for p in reg.failures()]
        if as_json:
            print_json({"models": models, "failed_plugins": failures, "spec_errors": reg.spec_errors})
            return
        from rich.table import Table
        from rich.text import Text

        from mmbench.reports.console import print_whole

        t = Table(title="model plugins", title_justify="left")
        for c in ("name", "task", "accepts", "package", "description"):
            t.add_column(c, overflow="fold")  # never "…": names are what users type
        for m in models:
            t.add_row(Text(m["name"]), m["task"], ", ".join(m["accepts"]), Text(m["package"]),
                      Text(m["description"]))
        print_whole(console, t)  # off a terminal (CI log, pipe, file) as wide as the table needs
        _print_failures(failures, reg.spec_errors)


def _print_failures(failures, spec_errors):
    for f in failures:
        err_console.print(f"[yellow]plugin failed to load:[/] {f['name']} (package {f['package']}, {f['module']}): "
                          f"{f['error']}", highlight=False, soft_wrap=True)
    for e in spec_errors:
        err_console.print(f"[yellow]plugin problem:[/] {e}", highlight=False, soft_wrap=True)


@list_app.command("datasets")
def list_datasets(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """List datasets (name, tasks, splits, input forms, package).

    Example: mmbench list datasets
    """
    with user_errors():
        reg = _registry()
        ds = [{"name": d.name, "tasks": list(d.tasks), "splits": list(d.splits), "forms": list(d.forms),
               "package": d.plugin, "needs_data_root": d.needs_data_root, "description": d.description,
               "protocols": list(d.protocols), "options": d.options}
              for d in sorted(reg.datasets.values(), key=lambda d: d.name)]
        if as_json:
            print_json({"datasets": ds, "failed_plugins": [p.__dict__ for p in reg.failures()],
                        "spec_errors": reg.spec_errors})
            return
        from rich.table import Table
        from rich.text import Text

        from mmbench.reports.console import print_whole

        t = Table(title="datasets", title_justify="left")
        for c in ("name", "tasks", "splits", "forms", "package", "description"):
            t.add_column(c, overflow="fold")  # never "…": names are what users type
        for d in ds:
            t.add_row(Text(d["name"]), ", ".join(d["tasks"]), ", ".join(d["splits"]), ", ".join(d["forms"]),
                      Text(d["package"]), Text(d["description"]))
        print_whole(console, t)  # off a terminal (CI log, pipe, file) as wide as the table needs
        _print_failures([p.__dict__ for p in reg.failures()], reg.spec_errors)


@app.command("leaderboard")
def leaderboard_cmd(
    records_: List[Path] = typer.Argument(..., metavar="RECORDS...", help="Record files or folders of them."),
    fmt: str = typer.Option("table", "--format", "-f", help="table | markdown | csv | json | html"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file instead of stdout."),
    as_json: bool = typer.Option(False, "--json", help="Same as --format json."),
    all_runs: bool = typer.Option(False, "--all-runs",
                                  help="Show every record; by default re-runs of the same plugin, options, dataset, "
                                       "split and protocol show once (the newest by 'created', ties by run id)."),
):
    """Render leaderboards from run records.

    Failed runs are rows of their table; notes a record carries (e.g. a non-standard dataset size) are shown
    under the table; re-runs show once (the newest) unless --all-runs. A record whose stored metrics disagree
    with its own per-sample outcomes, re-runs that disagree, and a 'created' time in the future get a warning.

    Examples:

      mmbench leaderboard runs/

      mmbench leaderboard runs/ --format markdown -o LEADERBOARD.md

      mmbench leaderboard runs/ --format html -o leaderboard.html
    """
    from mmbench import records
    from mmbench.reports import leaderboard as lb
    from mmbench.reports.console import sanitised_errors

    with user_errors(), sanitised_errors():
        if as_json:
            fmt = "json"
        recs = records.load_many(records_)
        tables = lb.build_tables(recs, all_runs=all_runs)
        if fmt == "table":
            text = None
            if output is None:
                lb.print_rich(tables, console)  # whole cells off a terminal (CI logs, pipes)
                return
            text = lb.to_markdown(tables)
        elif fmt == "markdown":
            text = lb.to_markdown(tables)
        elif fmt == "csv":
            text = lb.to_csv(tables)
        elif fmt == "json":
            text = json.dumps(lb.to_json(tables), indent=2)
        elif fmt == "html":
            try:
                from mmbench.reports.html import render_html
            except ImportError:
                from mmbench.errors import MMBenchError

                raise MMBenchError("the html format is not available in this version") from None
            text = render_html(recs, all_runs=all_runs)
        else:
            from mmbench.errors import MMBenchError

            raise MMBenchError(f"unknown --format {fmt!r}; choose table, markdown, csv, json or html")
        if output is not None:
            from mmbench.records import atomic_write_text

            atomic_write_text(output, text)
            err_console.print(f"wrote {output}", highlight=False, markup=False, soft_wrap=True)
        else:
            typer.echo(text, nl=not text.endswith("\n"))


@app.command("doctor")
def doctor(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
    """Check the environment: Java (METEOR / PTB tokenizer), GPU, and which plugins import.

    Example: mmbench doctor
    """
    import shutil
    import subprocess
    import sys

    from mmbench import __version__

    checks = []
    java = shutil.which("java")
    if java:
        try:
            v = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=30).stderr.splitlines()[0]
        except Exception as exc:  # noqa: BLE001
            v = f"found but failed to run: {exc}"
        checks.append({"check": "java", "ok": True, "detail": f"{java}: {v}"})
    else:
        checks.append({"check": "java", "ok": False,
                       "detail": "not found: METEOR and the Java PTB tokenizer are unavailable "
                                 "(the Python tokenizer still works)"})
    try:
        import torch

        gpu = torch.cuda.is_available()
        checks.append({"check": "torch", "ok": True, "detail": f"torch {torch.__version__}"})
        checks.append({"check": "gpu", "ok": gpu,
                       "detail": torch.cuda.get_device_name(0) if gpu else "no CUDA device: models run on CPU"})
    except Exception as exc:  # noqa: BLE001
        checks.append({"check": "torch", "ok": False, "detail": f"{type(exc).__name__}: {exc}"})
    reg = _registry()
    for p in reg.plugins:
        checks.append({"check": f"plugin {p.name}", "ok": p.ok,
                       "detail": f"{p.package} {p.version}" + (f": {p.error}" if p.error else "")})
    for e in reg.spec_errors:
        checks.append({"check": "plugin specs", "ok": False, "detail": e})
    checks.append({"check": "python", "ok": True, "detail": sys.version.split()[0] + f", mmbench {__version__}"})
    if as_json:
        print_json({"checks": checks})
        return
    from rich.table import Table
    from rich.text import Text

    t = Table(title="mmbench doctor", title_justify="left")
    t.add_column("check")
    t.add_column("ok")
    t.add_column("detail")
    for c in checks:
        t.add_row(Text(c["check"]), "[green]yes[/]" if c["ok"] else "[yellow]no[/]", Text(c["detail"]))
    console.print(t)


def _register_command_modules() -> None:
    from mmbench.commands import MODULES

    for name in MODULES:
        importlib.import_module(f"mmbench.commands.{name}").register(app)


_register_command_modules()


def main() -> None:  # console-script entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
