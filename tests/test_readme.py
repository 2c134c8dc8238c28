"""README's two commands exist and .ci/run calls the test one verbatim."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands():
    readme = (ROOT / "README.md").read_text()
    blocks = readme.split("```bash")[1:]
    return [b.split("```")[0].strip() for b in blocks]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    test_cmd = [c for c in _commands() if "pytest" in c]
    assert test_cmd, "README has no test command"
    assert test_cmd[0] in ci


def test_readme_has_demo_command():
    demo = [c for c in _commands() if "mmbench eval" in c and "demo" in c]
    assert demo and "pip install" in demo[0]
