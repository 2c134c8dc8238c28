"""mmbench CLI: ``mmbench tasks`` lists the installed task kinds — their model protocol, task options,
metrics (direction and unit), headline and main metric — as each kind declares them."""

from __future__ import annotations

import typer

from mmbench.commands.common import console, print_json, user_errors


def describe(kind) -> dict:
    """One task kind as plain data (what ``mmbench tasks --json`` prints)."""
    return {
        "name": kind.name, "description": kind.description, "protocol": kind.protocol_summary,
        "data_type": getattr(kind.data_type, "__name__", str(kind.data_type)),
        "options": [{"name": o.name, "type": o.type.__name__, "default": o.default, "help": o.help,
                     **({"choices": list(o.choices)} if o.choices else {})} for o in kind.options],
        "metrics": [{"name": m.name, "higher_is_better": m.higher_is_better, "unit": m.unit, "help": m.help}
                    for m in kind.metrics],
        "headline": list(kind.headline), "main": kind.main, "unit": kind.unit,
        "conventions": list(kind.conventions), "extra_forms": list(kind.extra_forms),
    }


def register(app: typer.Typer) -> None:
    @app.command("tasks")
    def tasks_cmd(as_json: bool = typer.Option(False, "--json", help="Machine-readable output.")):
        """List the installed task kinds: model protocol, task options (-T), metrics with direction and unit.

        Examples:

          mmbench tasks

          mmbench tasks --json
        """
        from rich.table import Table
        from rich.text import Text

        from mmbench.reports.console import print_whole

        with user_errors():
            from mmbench.tasks import task_kinds

            kinds = [describe(k) for k in task_kinds().values()]
        if as_json:
            print_json({"tasks": kinds})
            return
        out = []
        for k in kinds:
            t = Table(title=Text(f"{k['name']}: {k['description']}"), title_justify="left", show_header=False)
            t.add_column("", style="bold")
            t.add_column("", overflow="fold")
            t.add_row("model", Text(k["protocol"]))
            for o in k["options"]:
                choices = f" ({' | '.join(map(str, o['choices']))})" if o.get("choices") else ""
                t.add_row(Text(f"-T {o['name']}="), Text(f"{o['help']}{choices}; default {o['default']!r}"))
            t.add_row("metrics", Text(", ".join(
                f"{m['name']}{'' if m['higher_is_better'] else ' (lower is better)'} [{m['unit']}]"
                for m in k["metrics"])))
            t.add_row("headline", Text(", ".join(k["headline"]) + f"; sorted by {k['main']}"))
            t.add_row("resampled by", Text(k["unit"]))
            out.append(t)
        print_whole(console, *out)
