"""Fuzz every adapter with truncated / corrupted / restructured annotation files (hypothesis).

Whatever the damage, only an mmbench error may escape, and its message must name the
damaged file.
"""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mmbench.datasets import (coco_captions, flickr30k_entities, hf, jsonl, karpathy, mdetr, mvsa, precomp, refer)
from mmbench.errors import MMBenchError

pytestmark = pytest.mark.filterwarnings("ignore::mmbench.datasets.common.DatasetSizeWarning")

_spec = importlib.util.spec_from_file_location("dataset_builders",
                                               Path(__file__).parent / "fixtures" / "dataset_builders.py")
B = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(B)


def _hf_parquet(root: Path) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    p = root / "test.parquet"
    pq.write_table(pa.table({"image": ["img.png", "img2.png"], "caption": ["a", "b"], "label": [0, 1]}), p)
    B.png(root / "img.png")
    B.png(root / "img2.png")
    return p


# name -> (build(root) -> damaged file, load(root))
CASES = {
    "karpathy": (lambda r: B.karpathy(r, "coco"),
                 lambda r: karpathy.load_coco("retrieval", "test", r, missing="keep")),
    "flickr8k": (lambda r: (_f8k(r)), lambda r: karpathy.load_flickr8k("captioning", "test", r, missing="keep")),
    "coco_captions": (lambda r: B.coco_captions(r),
                      lambda r: coco_captions.load("retrieval", "val", r, captions="all", missing="keep")),
    "coco_instances": (lambda r: (B.coco_captions(r), r / "annotations" / "instances_val2017.json")[1],
                       lambda r: coco_captions.load_instances("grounding", "val", r, missing="keep")),
    "precomp": (lambda r: B.precomp(r), lambda r: precomp.load_f30k("retrieval", "test", r)),
    "refer_pickle": (lambda r: B.refer(r)[1], lambda r: refer.load_refcoco("grounding", "testA", r, missing="keep")),
    "refer_instances": (lambda r: B.refer(r)[0],
                        lambda r: refer.load_refcoco("grounding", "testA", r, missing="keep")),
    "mdetr": (lambda r: B.mdetr(r), lambda r: mdetr.load("grounding", "testA", r, missing="keep")),
    "f30k_entities_xml": (lambda r: (B.flickr30k_entities(r), r / "Annotations" / "100.xml")[1],
                          lambda r: flickr30k_entities.load("grounding", "test", r, missing="keep")),
    "f30k_entities_sent": (lambda r: (B.flickr30k_entities(r), r / "Sentences" / "100.txt")[1],
                           lambda r: flickr30k_entities.load("grounding", "test", r, missing="keep")),
    "mvsa_raw": (lambda r: B.mvsa_raw(r, multiple=True, n=12),
                 lambda r: mvsa.load_raw("mvsa_multiple", "classification", "train", r, missing="keep")),
    "mvsa_clmlf": (lambda r: B.mvsa_clmlf(r, images=False),
                   lambda r: mvsa.load_clmlf("mvsa_single_clmlf", "classification", "test", r, text_only="true")),
    "jsonl_grounding": (lambda r: B.jsonl(r)["grounding"],
                        lambda r: jsonl.load("grounding", "test", r / "grounding", missing="keep")),
    "jsonl_classification": (lambda r: B.jsonl(r)["classification"],
                             lambda r: jsonl.load("classification", "test", r / "classification", missing="keep")),
    "hf_parquet": (_hf_parquet, lambda r: hf.load("retrieval", "test", r)),
}


def _f8k(root: Path) -> Path:
    tok = root / "Flickr8k.token.txt"
    tok.write_text("".join(f"{n}.jpg#{k}\tcap {k}\n" for n in ("a", "b") for k in range(5)))
    for s in ("train", "dev", "test"):
        (root / f"Flickr_8k.{s}Images.txt").write_text("a.jpg\nb.jpg\n")
    (root / "images").mkdir()
    return tok


json_values = st.recursive(st.none() | st.booleans() | st.integers(-3, 10**6) | st.floats(allow_nan=True)
                           | st.text(max_size=6),
                           lambda ch: st.lists(ch, max_size=3) | st.dictionaries(st.text(max_size=8), ch, max_size=3),
                           max_leaves=6)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj[:3]):
            yield from _paths(v, prefix + (i,))


def _set(obj, path, value):
    if not path:
        return value
    cur = obj
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return obj


mutation = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(st.just("splice"), st.floats(0, 1), st.binary(min_size=0, max_size=6), st.integers(0, 6)),
    st.tuples(st.just("json"), st.integers(0, 10**6), json_values),
)


def _mutate(raw: bytes, m) -> bytes:
    if m[0] == "truncate":
        return raw[:int(m[1] * len(raw))]
    if m[0] == "splice":
        pos = int(m[1] * len(raw))
        return raw[:pos] + m[2] + raw[pos + m[3]:]
    try:
        obj = json.loads(raw)
    except ValueError:  # not a JSON file: fall back to truncation
        return raw[: m[1] % (len(raw) + 1)]
    paths = list(_paths(obj))
    return json.dumps(_set(obj, paths[m[1] % len(paths)], m[2])).encode()


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = {}
    for name, (build, _) in CASES.items():
        root = tmp_path_factory.mktemp(name.replace("+", "p"))
        target = build(root)
        out[name] = (root, Path(target), Path(target).read_bytes())
    return out


@pytest.mark.parametrize("name", sorted(CASES))
def test_fuzz_adapter(built, name):
    root, target, original = built[name]
    load = CASES[name][1]
    load(root)  # the undamaged copy loads

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(m=mutation)
    def run(m):
        target.write_bytes(_mutate(original, m))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                load(root)
        except MMBenchError as exc:
            assert target.name in str(exc), f"error does not name {target.name}: {exc}"
        finally:
            target.write_bytes(original)

    run()
