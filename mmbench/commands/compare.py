"""mmbench CLI: ``mmbench compare BASELINE NEW`` — regression reports and CI gates over run records."""

from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import typer

from mmbench.commands.common import EXIT_FAIL, console, err_console, user_errors

FORMATS = ("table", "markdown", "json", "junit")


def register(app: typer.Typer) -> None:
    app.command("compare")(compare_cmd)


def compare_cmd(
    baseline: Path = typer.Argument(..., metavar="BASELINE", help="Baseline record file or folder of records."),
    new: Path = typer.Argument(..., metavar="NEW", help="New record file or folder of records."),
    gate: Optional[List[str]] = typer.Option(
        None, "--gate", "-g",
        help="Gate rule (repeatable), e.g. 't2i.R@1 drop<=0.5', 'CIDEr no-sig-drop p<0.05', 'acc@0.5 >= 80', "
             "'published'. See docs/ci.md."),
    gates_file: Optional[Path] = typer.Option(None, "--gates", help="File with one gate rule per line (# comments)."),
    fmt: str = typer.Option("table", "--format", "-f", help="Report on stdout: table | markdown | json | junit."),
    markdown_out: Optional[Path] = typer.Option(None, "--markdown-out", help="Also write the markdown report here."),
    junit_out: Optional[Path] = typer.Option(None, "--junit-out", help="Also write JUnit XML (one case per gate check)."),
    json_out: Optional[Path] = typer.Option(None, "--json-out", help="Also write the JSON report here."),
    as_json: bool = typer.Option(False, "--json", help="Same as --format json."),
    bootstrap: int = typer.Option(1000, "--bootstrap", help="Paired-bootstrap resamples (0: no CIs or p-values)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the paired bootstrap."),
    confidence: float = typer.Option(0.95, "--confidence", help="Confidence level of the delta intervals."),
    pair_by: str = typer.Option(
        "plugin", "--pair-by",
        help="plugin: pair runs by (plugin, dataset, split, protocol), a regression check of one model. samples: "
             "pair by (dataset, split, protocol) whatever the plugin, to compare two models on the same samples "
             "(refused unless both runs have the same data fingerprint and sample ids)."),
    allow_missing_fingerprint: bool = typer.Option(
        False, "--allow-missing-fingerprint",
        help="Compare runs whose record has no data fingerprint (refused by default: nothing shows both runs saw "
             "the same data). Recorded in the report's settings and shown in every format."),
    newest: bool = typer.Option(
        False, "--newest",
        help="Of several records of the same run with different results, use the newest by 'created' (refused as "
             "ambiguous by default; a 'created' in the future is refused as untrusted)."),
):
    """Compare NEW run records against BASELINE ones and check regression gates.

    Runs are aligned by (plugin, dataset, split, protocol), or with --pair-by samples by (dataset, split, protocol) whatever the plugin; runs made under another protocol or on other data (fingerprint), or without a data fingerprint, are refused. Every record's stored metrics are recomputed from its per-sample outcomes: a record that disagrees is refused. Several records of one run with different results are refused as ambiguous (--newest picks the newest). For every metric: baseline, new, delta, and a paired bootstrap CI and p-value over the shared samples. When $GITHUB_STEP_SUMMARY is set the markdown report is appended to it.

    Exit code: 0 every gate holds, 1 a gate fails (or a baseline run is missing or failed in NEW), 2 bad input.

    Examples:

      mmbench compare baseline/ runs/ --gate "t2i.R@1 drop<=0.5" --gate "rsum no-sig-drop p<0.05"

      mmbench compare base.json new.json --gates .mmbench-gates --format markdown --junit-out gates.xml

      mmbench compare runs/vsepp.json runs/sgraf.json --pair-by samples --gate "rsum no-sig-drop"
    """
    from mmbench.errors import MMBenchError
    from mmbench.records import atomic_write_text
    from mmbench.reports import compare as cmp
    from mmbench.reports import compare_render as render
    from mmbench.reports.console import sanitised_errors
    from mmbench.reports.format import safe_text
    from mmbench.reports.gates import load_rules, parse_rules

    with user_errors(), sanitised_errors():
        if as_json:
            fmt = "json"
        if fmt not in FORMATS:
            raise MMBenchError(f"unknown --format {fmt!r}; choose {', '.join(FORMATS)}")
        if bootstrap < 0:
            raise MMBenchError(f"--bootstrap must be >= 0, got {bootstrap}")
        if not 0 < confidence < 1:
            raise MMBenchError(f"--confidence must be in (0, 1), got {confidence}")
        if pair_by not in cmp.PAIR_BY:
            raise MMBenchError(f"unknown --pair-by {pair_by!r}; choose {' or '.join(cmp.PAIR_BY)}")
        rules = parse_rules(gate)
        if gates_file is not None:
            rules += load_rules(gates_file)
        result = cmp.compare(cmp.load_runs([baseline], "baseline"), cmp.load_runs([new], "new"), rules,
                             n_resamples=bootstrap, seed=seed, confidence=confidence, pair_by=pair_by,
                             newest=newest, allow_missing_fingerprint=allow_missing_fingerprint)
        markdown = render.to_markdown(result)
        payload = render.to_json(result)
        if markdown_out is not None:
            atomic_write_text(markdown_out, markdown)
        if junit_out is not None:
            atomic_write_text(junit_out, render.to_junit(result))
        if json_out is not None:
            atomic_write_text(json_out, payload + "\n")
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            try:
                with open(summary, "a", encoding="utf-8") as fh:
                    fh.write(markdown + "\n")
            except OSError as exc:
                err_console.print(f"[yellow]warning:[/] cannot append to $GITHUB_STEP_SUMMARY ({summary}): {exc}",
                                  highlight=False, soft_wrap=True)
        if fmt == "table":
            from mmbench.reports.console import print_whole

            print_whole(console, *render.to_rich(result))  # off a terminal: as wide as needed, nothing cut
            for note in result.notes:
                err_console.print(f"note: {safe_text(note)}", highlight=False, markup=False, soft_wrap=True)
            verdict = ("[bold green]PASS[/]: all gate checks hold" if result.passed else
                       f"[bold red]FAIL[/]: {len(result.failures)} of {len(result.checks)} gate check(s) failed")
            if not result.checks:
                verdict = "no gates given (use --gate or --gates); nothing to fail"
            console.print(verdict, highlight=False, soft_wrap=True)
        elif fmt == "markdown":
            typer.echo(markdown, nl=False)
        elif fmt == "json":
            typer.echo(payload)
        else:
            typer.echo(render.to_junit(result), nl=False)
    if not result.passed:
        raise typer.Exit(EXIT_FAIL)
