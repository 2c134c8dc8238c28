"""The conformance kit's building blocks: check bookkeeping and output assertions.

:mod:`mmbench.testing` is the entry point (``check_plugin``, ``check_model``); each task kind's
own checks live with the kind (``TaskKind.conformance`` in ``mmbench/tasks/<kind>.py``) and are
written with the :class:`Kit` defined here.
"""

from __future__ import annotations

import math
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator

import numpy as np

@dataclass
class CheckResult:
    name: str
    ok: bool
    detail: str = ""
    skipped: bool = False


@dataclass
class ConformanceReport:
    """What the kit checked on one model, and what failed."""

    plugin: str
    task: str
    checks: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.ok]

    @property
    def passed(self) -> list[str]:
        return [c.name for c in self.checks if c.ok and not c.skipped]

    def check(self, name: str) -> CheckResult:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(name)

    def summary(self) -> str:
        lines = [f"conformance of plugin {self.plugin!r} ({self.task}): "
                 f"{'OK' if self.ok else f'{len(self.failures)} check(s) FAILED'}"]
        for c in self.checks:
            mark = "skip" if c.skipped else ("ok" if c.ok else "FAIL")
            lines.append(f"  [{mark}] {c.name}" + (f": {c.detail}" if c.detail else ""))
        return "\n".join(lines)

    __str__ = summary

    def raise_for_failures(self) -> "ConformanceReport":
        if not self.ok:
            first = self.failures[0]
            raise AssertionError(f"plugin {self.plugin!r} failed check {first.name!r}: {first.detail}\n"
                                 + self.summary())
        return self


class _Fatal(Exception):
    """A failed check after which the remaining checks cannot run."""


class _Checker:
    def __init__(self, report: ConformanceReport):
        self.report = report

    @contextmanager
    def check(self, name: str, *, fatal: bool = False) -> Iterator[None]:
        try:
            yield
        except _Skip as s:
            self.report.checks.append(CheckResult(name, True, str(s), skipped=True))
            return
        except AssertionError as exc:
            self.report.checks.append(CheckResult(name, False, str(exc)))
        except Exception as exc:  # a plugin raising where it should not is a failure of that check
            origin = exc.__cause__ if exc.__cause__ is not None and exc.__cause__.__traceback__ else exc
            tb = traceback.extract_tb(origin.__traceback__)
            where = f" (at {tb[-1].filename}:{tb[-1].lineno})" if tb else ""
            self.report.checks.append(CheckResult(name, False, f"raised {type(exc).__name__}: {exc}{where}"))
        else:
            self.report.checks.append(CheckResult(name, True))
            return
        if fatal:
            raise _Fatal(name)


class _Skip(Exception):
    pass


def _as_array(x: Any, what: str) -> np.ndarray:
    try:
        import torch

        if isinstance(x, torch.Tensor):
            x = x.detach().float().cpu().numpy()
    except ImportError:  # pragma: no cover
        pass
    assert x is not None, f"{what} is None"
    try:
        arr = np.asarray(x)
    except Exception as exc:  # noqa: BLE001
        raise AssertionError(f"{what} is not array-like ({type(x).__name__}): {exc}") from None
    assert arr.dtype != object and (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool), \
        f"{what} is not a numeric array (dtype {arr.dtype}, type {type(x).__name__})"
    return arr


def _numeric(x: Any, what: str, shape: tuple) -> np.ndarray:
    arr = _as_array(x, what)
    ok = arr.ndim == len(shape) and all(s is None or s == a for s, a in zip(shape, arr.shape))
    want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
    assert ok, f"{what} has shape {tuple(arr.shape)}, expected {want}"
    arr = arr.astype(np.float64)
    bad = int((~np.isfinite(arr)).sum())
    assert bad == 0, f"{what} contains {bad} NaN/inf value(s)"
    return arr


def _same(a: np.ndarray, b: np.ndarray, what: str, atol: float, rtol: float) -> None:
    assert a.shape == b.shape, f"{what}: shapes differ, {a.shape} vs {b.shape}"
    if atol == 0 and rtol == 0:
        diff = np.argwhere(a != b)
        assert diff.size == 0, (f"{what}: {len(diff)} value(s) differ, first at {tuple(diff[0])}: "
                                f"{a[tuple(diff[0])]!r} vs {b[tuple(diff[0])]!r}")
        return
    close = np.isclose(a, b, atol=atol, rtol=rtol)
    if not close.all():
        idx = tuple(np.argwhere(~close)[0])
        raise AssertionError(f"{what}: {int((~close).sum())} value(s) differ beyond atol={atol:g}, rtol={rtol:g}; "
                             f"max abs difference {float(np.abs(a - b).max()):.3g}, first at {idx}: "
                             f"{a[idx]!r} vs {b[idx]!r}")


def _wrong_form_image(item: Any, accepts: tuple[str, ...]) -> Any:
    """The same image in a form the model does not accept, or None when it accepts every form."""
    from mmbench.tasks import ImageItem

    pixel_forms = {"image", "image_file"}
    if "regions" not in accepts:
        return ImageItem(id=f"{item.id}-regions-only", regions=np.zeros((36, 2048), np.float32), size=item.size)
    if not pixel_forms & set(accepts):
        from PIL import Image

        return ImageItem(id=f"{item.id}-pixels-only", pil=Image.new("RGB", (32, 32), (128, 64, 32)),
                         size=(32, 32))
    return None


def _empty_array(width: str):
    """An empty-batch output check for array outputs: (0, width) or raising is fine."""
    def check(out, what):
        arr = _as_array(out, what)
        assert arr.size == 0 and arr.ndim >= 1 and arr.shape[0] == 0, \
            f"{what} on an empty batch returned shape {arr.shape} instead of raising or returning (0, {width})"
    return check


def _empty_list(out, what):
    assert isinstance(out, (list, tuple)) and len(out) == 0, \
        f"{what} returned {out!r:.80} instead of raising or returning []"


def _raises_or_empty(fn, arg, what: str, empty_ok) -> None:
    try:
        out = fn(arg)
    except Exception:  # noqa: BLE001 - raising is the preferred answer
        return
    empty_ok(out, what)


def _inputs_only(call, what: str) -> None:
    """Fail when the model reads a target from its inputs (models see inputs only)."""
    from mmbench.tasks.base import TargetAccessError

    try:
        call()
    except TargetAccessError as exc:
        raise AssertionError(f"{what} reads the ground truth: {exc}") from None
    except Exception:  # other failures are the "outputs" check's business
        pass


def _check_metrics(metrics: dict) -> None:
    assert metrics, "evaluate() produced no metrics"
    bad = {k: v for k, v in metrics.items() if not (isinstance(v, (int, float)) and math.isfinite(v))}
    assert not bad, f"evaluate() produced non-finite metrics {bad}"


def _check_wrong_form(c: _Checker, accepts, item, call, what: str):
    with c.check("wrong-input-form"):
        if item is None:
            raise _Skip("no image input")
        bad = _wrong_form_image(item, accepts)
        if bad is None:
            raise _Skip(f"the model accepts every input form ({', '.join(accepts)})")
        try:
            out = call(bad)
        except Exception:  # noqa: BLE001 - raising is the contract
            return
        raise AssertionError(f"{what} returned {type(out).__name__} for an input in form(s) "
                             f"{sorted(bad.forms)} that the model does not accept (accepts: {', '.join(accepts)}); "
                             f"it must raise instead of returning garbage")



class Kit:
    """What a task kind's ``conformance`` method checks a model with: named checks (``kit.check``),
    the tolerances, the batch size and the model's declared input forms."""

    Skip = _Skip

    def __init__(self, checker: "_Checker", *, name: str, accepts: tuple[str, ...], atol: float, rtol: float,
                 batch: int, evaluate: bool, task_options: dict | None = None):
        self._c = checker
        self.name, self.accepts, self.atol, self.rtol, self.batch = name, accepts, atol, rtol, batch
        self.evaluate = evaluate
        self.task_options = task_options or {}

    def check(self, name: str, *, fatal: bool = False):
        return self._c.check(name, fatal=fatal)

    as_array = staticmethod(_as_array)
    numeric = staticmethod(_numeric)
    raises_or_empty = staticmethod(_raises_or_empty)
    empty_array = staticmethod(_empty_array)
    empty_list = staticmethod(_empty_list)
    inputs_only = staticmethod(_inputs_only)

    def same(self, a, b, what: str, exact: bool = False) -> None:
        _same(a, b, what, 0 if exact else self.atol, 0 if exact else self.rtol)

    def wrong_form(self, item, call, what: str) -> None:
        _check_wrong_form(self._c, self.accepts, item, call, what)

    def check_evaluate(self, kind, model, data) -> None:
        """The kind's own evaluate loop on the model (``evaluate`` check)."""
        if not self.evaluate:
            return
        with self.check("evaluate"):
            res = kind.evaluate(model, data, batch_size=max(1, self.batch), show_progress=False, name=self.name,
                                **self.task_options)
            _check_metrics(res.metrics)
