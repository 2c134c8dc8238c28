"""mmbench CLI: ``mmbench new-plugin NAME --task TASK`` scaffolds a pip-installable plugin package.

The package it writes (from the templates in ``mmbench/templates``) has a pyproject with an
entry point in group ``mmbench``, a hook module, a trivial-but-valid model for the task,
a test that runs the conformance kit (``mmbench.testing.check_plugin``) and a README.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

import typer

from mmbench.commands.common import err_console, print_json, user_errors

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"

NAME_RE = re.compile(r"^[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*$")


def names_for(name: str) -> tuple[str, str]:
    """(distribution name, Python module name) for plugin ``name``."""
    dist = name if name.startswith("mmbench-") else f"mmbench-{name}"
    return dist, dist.replace("-", "_")


def scaffold(name: str, task: str, dest: Path | None = None) -> list[Path]:
    """Write the plugin package for model ``name`` doing ``task`` into ``dest``; return the files written."""
    from mmbench import __version__
    from mmbench.errors import MMBenchError
    from mmbench.tasks import task_kinds

    if not NAME_RE.match(name):
        raise MMBenchError(f"plugin name {name!r} is not valid: use lower-case letters and digits, words joined "
                           f"by '-' or '_', starting with a letter (example: my-clip)")
    kinds = task_kinds()
    if task not in kinds:
        raise MMBenchError(f"--task {task!r} is not one of {', '.join(kinds)}")
    kind = kinds[task]
    model_tmpl = _model_template(kind)
    dist, module = names_for(name)
    dest = Path(dest) if dest is not None else Path.cwd() / dist
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise MMBenchError(f"{dest} already exists and is not an empty folder; choose another --dir")
    values = {"name": name, "task": task, "dist": dist, "module": module, "mmbench_version": __version__,
              "protocol": kind.protocol_summary, "description": kind.scaffold_description or f"Scaffolded {task} model."}
    files = {
        "pyproject.toml": "pyproject.toml.tmpl",
        "README.md": "README.md.tmpl",
        f"{module}/__init__.py": None,
        f"{module}/plugin.py": "plugin.py.tmpl",
        f"{module}/colours.py": "colours.py.tmpl",
        f"{module}/model.py": model_tmpl,
        f"tests/test_{module}.py": "test_plugin.py.tmpl",
    }
    written = []
    for rel, tmpl in files.items():
        text = f'"""{dist}: the mmbench plugin providing {name!r}."""\n' if tmpl is None else _render(tmpl, values)
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _model_template(kind) -> Path:
    """The kind's model template: ``scaffold_template`` names one of mmbench's (``model_<name>.py.tmpl``)
    or is a path to the plugin's own template file."""
    from mmbench.errors import MMBenchError

    ref = kind.scaffold_template
    if not ref:
        raise MMBenchError(f"task kind {kind.name!r} has no scaffold template (TaskKind.scaffold_template)")
    path = Path(ref) if Path(ref).is_absolute() else TEMPLATES / f"model_{ref}.py.tmpl"
    if not path.is_file():
        raise MMBenchError(f"task kind {kind.name!r}: scaffold template {path} not found")
    return path


def _render(template, values: dict[str, str]) -> str:
    text = (TEMPLATES / template).read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", value)
    leftover = re.findall(r"\{\{\w+\}\}", text)
    assert not leftover, f"template {template} has unfilled placeholders {leftover}"
    return text


def register(app: typer.Typer) -> None:
    @app.command("new-plugin")
    def new_plugin(
        name: str = typer.Argument(..., help="Model name users will pass to --plugin (e.g. my-clip)."),
        task: str = typer.Option(..., "--task", "-t", help="The task kind (retrieval, captioning, grounding, classification, or one a plugin adds)."),
        dir_: Optional[Path] = typer.Option(None, "--dir", help="Folder to create (default: ./mmbench-NAME)."),
        as_json: bool = typer.Option(False, "--json", help="Print the files written as JSON."),
    ):
        """Scaffold a pip-installable plugin package that passes the conformance kit.

        Examples:

          mmbench new-plugin my-clip --task retrieval

          mmbench new-plugin my-captioner --task captioning --dir ~/src/my-captioner

        Then: cd into the folder, pip install -e ., mmbench list plugins, mmbench eval -p NAME -d demo, pytest.
        """
        with user_errors():
            files = scaffold(name, task, dir_)
        root = files[0].parent
        if as_json:
            print_json({"name": name, "task": task, "dir": str(root), "files": [str(f) for f in files]})
            return
        for f in files:
            typer.echo(str(f))
        err_console.print(f"\nNext:\n  cd {root}\n  pip install -e .\n  mmbench list plugins\n"
                          f"  mmbench eval -p {name} -d demo\n  pytest -q", highlight=False)
