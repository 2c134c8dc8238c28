"""Issue 11 item 8: options are declared typed on the spec and validated once, by one parser."""

from __future__ import annotations

import inspect
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from mmbench.checkpoints import parse_bool as checkpoint_bool
from mmbench.cli import app
from mmbench.datasets import builtin, demo, karpathy
from mmbench.errors import DataError, PluginError, UsageError
from mmbench.options import Option, OptionError, OptionSet, parse_bool, parse_options
from mmbench.plugins import Registry
from mmbench.runner import EvalConfig, preflight, run_eval
from mmbench.specs import DatasetSpec, resolve
from mmbench.tasks.base import TaskOption, parse_task_options

cli = CliRunner()


@pytest.fixture(scope="module")
def reg():
    return Registry(entry_points=False)


# --------------------------------------------------------------------------- one boolean parser

@pytest.mark.parametrize("text, want", [(w, True) for w in ("true", "TRUE", " True ", "1", "yes", "Yes", "on", "ON")]
                         + [(w, False) for w in ("false", "False", "0", "no", "NO", "off", " Off")]
                         + [(True, True), (False, False)])
def test_parse_bool_words(text, want):
    assert parse_bool(text) is want and checkpoint_bool(text, option="x") is want


@pytest.mark.parametrize("text", ["maybe", "2", "", "tru", None])
def test_parse_bool_refuses_other_words_naming_the_option(text):
    with pytest.raises(UsageError, match=r"option allow=.*expected true or false"):
        parse_bool(text, option="allow")
    with pytest.raises(PluginError, match="allow_unsafe_pickle"):  # the plugins' helper: the same parser
        checkpoint_bool(text, option="allow_unsafe_pickle")


def test_one_bool_parser_in_the_code_base():
    import mmbench.checkpoints
    import mmbench.datasets.common as common

    assert "parse_bool as _parse_bool" in inspect.getsource(mmbench.checkpoints.parse_bool)
    assert not hasattr(common, "opt_bool") and not hasattr(demo, "_as_bool")


# --------------------------------------------------------------------------- Option.parse

def test_option_parse_types_bounds_choices():
    size = Option("size", int, 1, "images per split", low=0)
    assert size.parse("3") == 3 and size.parse(" 3 ") == 3 and size.parse(3) == 3 and size.parse(None) == 1
    for bad in ("0", "-2", "abc", "1.5", True, 1.5):
        with pytest.raises(OptionError) as exc:
            size.parse(bad, where="dataset option 'size' (dataset 'demo')")
        msg = str(exc.value)
        assert msg.startswith("dataset option 'size' (dataset 'demo'): ") and repr(bad) in msg
        assert "an integer >= 1" in msg and "images per split" in msg
        assert isinstance(exc.value, UsageError) and exc.value.field == "size"
    thr = Option("threshold", float, 0.5, "IoU", low=0.0, high=1.0)
    assert thr.parse("1") == 1.0 and thr.parse(0.25) == 0.25
    for bad in ("0", "1.5", "nan", "x"):
        with pytest.raises(OptionError, match=r"is not a number > 0 and <= 1"):
            thr.parse(bad)
    mode = Option("captions", str, None, "caption protocol", choices=("first5", "all"))
    assert mode.parse(" all") == "all" and mode.parse(None) is None
    with pytest.raises(OptionError, match=r"'five' is not one of first5, all; caption protocol"):
        mode.parse("five")
    flag = Option("restval", bool, True, "")
    assert flag.parse("off") is False and flag.parse(True) is True
    with pytest.raises(OptionError, match="'perhaps' is not true or false"):
        flag.parse("perhaps")


def test_parsing_is_idempotent_on_typed_values():
    opts = demo.OPTIONS
    once = parse_options({"size": "2", "text_only": "yes"}, opts, "dataset 'demo'", "-D", defaults=True)
    assert once == {"size": 2, "seed": 0, "text_only": True}
    assert parse_options(once, opts, "dataset 'demo'", "-D", defaults=True) == once


def test_unknown_key_did_you_mean_and_listing():
    with pytest.raises(UsageError) as exc:
        parse_options({"sise": "2", "colour": "x"}, demo.OPTIONS, "dataset 'demo'", "--dataset-option / -D",
                      noun="dataset option")
    msg = str(exc.value)
    assert msg.startswith("unknown dataset option 'sise' for dataset 'demo' (also unknown: 'colour').")
    assert "Did you mean 'size'?" in msg and "size (int, default 1): images per split multiplier" in msg
    assert "text_only (bool, default False)" in msg and "--dataset-option / -D" in msg


def test_task_option_is_an_option():
    ties = TaskOption("ties", str, "pessimistic", "how tied scores rank", choices=("pessimistic", "optimistic"))
    assert isinstance(ties, Option) and ties.parse("optimistic", task="retrieval") == "optimistic"
    with pytest.raises(UsageError, match=r"task option 'ties' \(retrieval\): 'best' is not one of"):
        ties.parse("best", task="retrieval")
    with pytest.raises(UsageError, match="unknown task option 'tie' for task retrieval. Did you mean 'ties'?"):
        parse_task_options({"tie": "pessimistic"}, (ties,), "retrieval")


# --------------------------------------------------------------------------- specs

def test_spec_options_typed_or_legacy_dict():
    typed = DatasetSpec(name="t", tasks=("retrieval",), factory=dict, options=(Option("n", int, 1, "count"),))
    # listings read name -> help; a typed option's help says its default
    assert typed.options == {"n": "count (default 1)"} and typed.options.typed and typed.options.option("n").type is int
    legacy = DatasetSpec(name="l", tasks=("retrieval",), factory=dict, options={"n": "count"})
    assert legacy.options == {"n": "count"} and not legacy.options.typed
    assert legacy.parse_options({"n": "x", "other": "y"}) == {"n": "x", "other": "y"}  # the factory validates
    assert isinstance(DatasetSpec(name="e", tasks=("retrieval",), factory=dict).options, OptionSet)
    with pytest.raises(PluginError, match=r"option\(s\) \['n'\] declared twice"):
        DatasetSpec(name="d", tasks=("retrieval",), factory=dict, options=(Option("n"), Option("n")))
    with pytest.raises(PluginError, match="tuple of mmbench.options.Option"):
        DatasetSpec(name="b", tasks=("retrieval",), factory=dict, options=("n",))


def test_every_builtin_dataset_declares_typed_options(reg):
    for spec in builtin.mmbench_datasets():
        assert spec.options.typed, spec.name
        for o in spec.options.declared:
            assert o.help and o.type in (str, int, bool), (spec.name, o.name)
            if o.default is not None and o.choices:
                assert o.default in o.choices, (spec.name, o.name)
        # the factory is the adapter's unchecked loader, which takes exactly the declared options
        # (keyword-only) or forwards them all to one that does
        assert reg.dataset(spec.name).factory.endswith(".unchecked")
        params = inspect.signature(resolve(spec.factory, what=spec.name)).parameters.values()
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            assert {p.name for p in params if p.kind is p.KEYWORD_ONLY} == set(spec.options), spec.name


def test_spec_load_checks_task_split_options_and_types(reg, tmp_path):
    spec = reg.dataset("demo")
    d = spec.load("classification", "test", None, size="1", text_only="on")
    assert d.meta.forms == ("text_only",)
    with pytest.raises(UsageError, match="Unknown split 'dev' of dataset 'demo'"):
        spec.load("retrieval", "dev")
    with pytest.raises(UsageError, match="dataset option 'size' \\(dataset 'demo'\\): 'abc' is not an integer"):
        spec.load("retrieval", "test", size="abc")


def test_direct_adapter_calls_go_through_the_spec(tmp_path):
    with pytest.raises(UsageError, match="unknown dataset option 'caption' for dataset 'coco'. Did you mean 'captions'"):
        karpathy.load_coco("retrieval", "test", tmp_path, caption="all")
    with pytest.raises(UsageError, match="dataset option 'restval' \\(dataset 'coco'\\): 'maybe' is not true or false"):
        karpathy.load_coco("retrieval", "train", tmp_path, restval="maybe")
    with pytest.raises(UsageError, match="dataset option 'protocol' .*'coco-2k' is not one of coco-5k, coco-1k-5fold"):
        karpathy.load("coco", "retrieval", "test", tmp_path, protocol="coco-2k")
    with pytest.raises(UsageError, match="Unknown task 'grounding' of dataset 'flickr30k'"):
        karpathy.load_flickr30k("grounding", "test", tmp_path)
    with pytest.raises(DataError, match="dataset_coco.json"):  # valid options: the adapter's data checks run
        karpathy.load_coco("retrieval", "test", tmp_path, restval="off")


def test_flickr8k_and_karpathy_import_without_a_cycle():
    code = ("import sys; import mmbench.datasets.flickr8k as f; "
            "assert 'mmbench.datasets.karpathy' not in sys.modules; "
            "import mmbench.datasets.karpathy as k; assert k.LAYOUTS['flickr8k'] is f.LAYOUT; "
            "assert k.IMAGE_DIRS['flickr8k'] is f.IMAGE_DIRS")
    subprocess.run([sys.executable, "-c", code], check=True)
    import mmbench.datasets.flickr8k as f8k

    assert "mmbench.datasets.karpathy" not in inspect.getsource(f8k)


# --------------------------------------------------------------------------- the runner validates once, up front

def _cfg(**kw):
    return EvalConfig(bootstrap=0, show_progress=False, **kw)


def test_preflight_parses_dataset_option_values(reg):
    cca, demo_spec = reg.model("cca"), reg.dataset("demo")
    for opts, needle in [({"size": "abc"}, "dataset option 'size' (dataset 'demo'): 'abc' is not an integer >= 1"),
                         ({"size.train": "0"}, "dataset option 'size' (dataset 'demo'): '0' is not an integer >= 1"),
                         ({"text_only": "maybe"}, "'maybe' is not true or false"),
                         ({"sise": "2"}, "unknown dataset option 'sise' for dataset 'demo'. Did you mean 'size'?")]:
        with pytest.raises(UsageError) as exc:
            preflight(cca, demo_spec, _cfg(dataset_options=opts), reg)
        assert needle in str(exc.value)
    assert preflight(cca, demo_spec, _cfg(dataset_options={"size.test": "1", "seed": "3"}), reg) == {}


def test_a_task_option_typo_is_a_usage_error_not_a_plugin_type_error(reg):
    with pytest.raises(UsageError, match="unknown task option 'tie' for task retrieval. Did you mean 'ties'?"):
        run_eval("cca", "demo", _cfg(task_options={"tie": "pessimistic"}), registry=reg)


@pytest.mark.parametrize("args, needle", [
    (["-D", "size=abc"], "dataset option 'size' (dataset 'demo'): 'abc' is not an integer >= 1"),
    (["-D", "text_only=maybe"], "dataset option 'text_only' (dataset 'demo'): 'maybe' is not true or false"),
    (["-D", "sise=2"], "unknown dataset option 'sise' for dataset 'demo'. Did you mean 'size'?"),
    (["-D", "size.tset=2"], "Unknown split 'tset' of dataset 'demo'"),
    (["-T", "tie=pessimistic"], "unknown task option 'tie' for task retrieval. Did you mean 'ties'?"),
])
def test_cli_option_mistakes_exit_2_without_a_record(tmp_path, args, needle):
    res = cli.invoke(app, ["eval", "-p", "cca", "-d", "demo", *args, "--out", str(tmp_path / "runs"),
                           "--bootstrap", "0", "--no-progress"])
    out = " ".join(res.output.split())
    assert res.exit_code == 2, res.output
    assert needle in out and "Traceback" not in out and "raised TypeError" not in out
    assert not list(tmp_path.rglob("*.json"))


def test_model_options_typed_are_checked_before_the_factory_runs():
    from mmbench.errors import UsageError
    from mmbench.specs import ModelSpec

    calls = []
    spec = ModelSpec(name="m", task="retrieval", factory=lambda **kw: calls.append(kw),
                     options=(Option("dim", int, 16, "directions", low=0), Option("fast", bool, False, "go fast")))
    assert spec.options == {"dim": "directions (default 16)", "fast": "go fast (default False)"}
    assert spec.parse_options({"dim": "8", "fast": "yes", "other": "x"}) == {"dim": 8, "fast": True, "other": "x"}
    with pytest.raises(UsageError, match=r"option 'dim' of plugin 'm': 'abc' is not an integer >= 1"):
        spec.parse_options({"dim": "abc"})
    legacy = ModelSpec(name="l", task="retrieval", factory=dict, options={"dim": "directions"})
    assert legacy.parse_options({"dim": "abc"}) == {"dim": "abc"}  # the factory converts a legacy option
    assert not calls
