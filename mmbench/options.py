"""Typed ``key=value`` options, declared once on a spec and parsed by one parser.

An :class:`Option` names an option, its type, default, help and valid values; :func:`parse_options`
checks given options against a tuple of them (an unknown key is a usage error with a "did you mean"
and the listing; a bad value names the option, the value and what is expected) and returns typed
values. Dataset options (``DatasetSpec.options``) and task options (``TaskKind.options``, whose
``TaskOption`` is an ``Option``) go through it; every boolean is read by :func:`parse_bool`.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from mmbench.errors import DataError, MMBenchError, UsageError

TRUE_WORDS = ("true", "1", "yes", "on")
FALSE_WORDS = ("false", "0", "no", "off")


def parse_bool(value: Any, *, option: str = "value", error: type[MMBenchError] = UsageError) -> bool:
    """``true/false``, ``1/0``, ``yes/no``, ``on/off`` (any case, surrounding spaces ignored) or a bool.

    Anything else raises ``error`` naming ``option`` and the value.
    """
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in TRUE_WORDS:
        return True
    if text in FALSE_WORDS:
        return False
    raise error(f"option {option}={value!r}: expected true or false (or 1/0, yes/no, on/off)")


class OptionError(UsageError, DataError):
    """An option value of the wrong type or outside its valid values.

    A :class:`UsageError` (found before any run: exit 2, no record). It is also a ``DataError``
    whose ``field`` is the option name, as the adapters' own option checks were.
    """

    def __init__(self, message: str, *, option: str, value: Any, expected: str):
        self.option, self.value = option, value
        self.path, self.field, self.expected, self.layout = None, option, expected, None
        Exception.__init__(self, message)


@dataclass(frozen=True)
class Option:
    """One ``key=value`` option: its type, default, help and valid values.

    ``type``: ``str``, ``int``, ``float``, ``bool`` (read by :func:`parse_bool`) or any callable
    converting a string. ``default``: the value when the option is not given; ``None`` means "the
    consumer decides" (e.g. a dataset default that depends on the task). ``choices``: the valid
    values (after conversion). ``low`` is an exclusive lower bound, ``high`` an inclusive upper one.
    """

    name: str
    type: Any = str
    default: Any = None
    help: str = ""
    choices: tuple = ()
    low: float | None = None
    high: float | None = None

    def expected(self) -> str:
        """What a valid value looks like, in words."""
        if self.type is bool:
            return "true or false"
        if self.choices:
            return "one of " + ", ".join(map(str, self.choices))
        noun = {int: "an integer", float: "a number", str: "a string"}.get(self.type, f"a {_type_name(self.type)}")
        bounds = []
        if self.low is not None:
            if self.type is int and float(self.low).is_integer():
                bounds.append(f">= {int(self.low) + 1}")
            else:
                bounds.append(f"> {self.low:g}")
        if self.high is not None:
            bounds.append(f"<= {self.high:g}")
        return noun + (" " + " and ".join(bounds) if bounds else "")

    def describe(self) -> str:
        """``name (type, default ...): help`` for listings."""
        default = "" if self.default is None else f", default {self.default!r}"
        return f"{self.name} ({_type_name(self.type)}{default}): {self.help}".rstrip(": ")

    def parse(self, value: Any, *, where: str | None = None) -> Any:
        """The typed value of ``value`` (a string from the command line, or already typed).

        ``None`` is the default. Raises :class:`OptionError` naming the option (``where``), the value
        and what is expected.
        """
        if value is None:
            return self.default
        where = where or f"option {self.name!r}"

        def bad(why: str = "") -> OptionError:
            text = f"{where}: {value!r} is not {self.expected()}" + (f" ({why})" if why else "")
            if self.help:
                text += f"; {self.help}"
            return OptionError(text, option=self.name, value=value, expected=self.expected())

        if self.type is bool:
            try:
                v = parse_bool(value, option=self.name)
            except UsageError:
                raise bad() from None
        elif self.type is str:
            v = value if isinstance(value, str) else str(value)
            if self.choices:
                v = v.strip()
        elif self.type in (int, float):
            if isinstance(value, bool):
                raise bad()
            try:
                if self.type is int:
                    if isinstance(value, float) and not value.is_integer():
                        raise ValueError(value)
                    v = int(value.strip() if isinstance(value, str) else value)
                else:
                    v = float(value.strip() if isinstance(value, str) else value)
            except (TypeError, ValueError):
                raise bad() from None
            if v != v:
                raise bad("NaN")
        else:
            try:
                v = self.type(value)
            except (TypeError, ValueError) as exc:
                raise bad(str(exc)) from None
        if self.choices and v not in self.choices:
            raise bad()
        if self.low is not None and not v > self.low:
            raise bad()
        if self.high is not None and not v <= self.high:
            raise bad()
        return v


def _type_name(t: Any) -> str:
    return getattr(t, "__name__", str(t))


def parse_options(given: Mapping[str, Any], declared: Iterable[Option], what: str, flag: str, *,
                  noun: str = "option", defaults: bool = False) -> dict[str, Any]:
    """Check ``given`` against ``declared`` and return the typed values.

    ``what`` names the owner (``"dataset 'demo'"``, ``"task retrieval"``), ``flag`` the command-line
    flag (``"--dataset-option (-D)"``), ``noun`` what an option is called (``"dataset option"``).
    An unknown key raises :class:`UsageError` with the closest declared name and the listing; a bad
    value raises :class:`OptionError`. With ``defaults``, every declared option is in the result
    (its default when not given).
    """
    declared = tuple(declared)
    by_name = {o.name: o for o in declared}
    unknown = [k for k in given if k not in by_name]
    if unknown:
        k = unknown[0]
        close = difflib.get_close_matches(k, list(by_name), n=1)
        listing = "; ".join(o.describe() for o in declared) or "(none)"
        also = f" (also unknown: {', '.join(map(repr, unknown[1:]))})" if unknown[1:] else ""
        raise UsageError(f"unknown {noun} {k!r} for {what}{also}." + (f" Did you mean {close[0]!r}?" if close else "")
                         + f" Known {noun}s ({flag}): {listing}")
    out = {o.name: o.default for o in declared} if defaults else {}
    for k, v in given.items():
        out[k] = by_name[k].parse(v, where=f"{noun} {k!r} ({what})")
    return out


class OptionSet(dict):
    """What ``DatasetSpec.options`` holds: option name -> help text (as the legacy dict form read),
    with the declared :class:`Option` objects in ``declared``.

    ``typed`` is False for a plugin's legacy ``{name: help}`` dict: its values reach the factory as
    given (strings), and unknown keys are left to the runner's factory-signature check.
    """

    def __init__(self, declared: Iterable[Option] = (), *, typed: bool = True):
        declared = tuple(declared)
        # listings read name -> help; a typed option's help says its type's default too
        super().__init__((o.name, o.help if not typed or o.default is None or "default" in o.help
                          else f"{o.help} (default {o.default!r})") for o in declared)
        self.declared = declared
        self.typed = typed

    @classmethod
    def of(cls, options: Any, *, what: str) -> "OptionSet":
        """From a tuple of Options (typed) or a legacy dict name -> help (str options, values unchecked)."""
        from mmbench.errors import PluginError

        if isinstance(options, OptionSet):
            return options
        if isinstance(options, dict):
            return cls((Option(str(k), str, None, str(v)) for k, v in options.items()), typed=False)
        if isinstance(options, (tuple, list)) and all(isinstance(o, Option) for o in options):
            names = [o.name for o in options]
            dup = sorted({n for n in names if names.count(n) > 1})
            if dup:
                raise PluginError(f"{what}: option(s) {dup} declared twice")
            return cls(options)
        raise PluginError(f"{what}: options must be a tuple of mmbench.options.Option (or a dict name -> help), "
                          f"got {type(options).__name__}")

    def option(self, name: str) -> Option | None:
        return next((o for o in self.declared if o.name == name), None)
