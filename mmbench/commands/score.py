"""`mmbench score`: run records from saved model outputs, without running a model.

    mmbench score retrieval --sims S.npy --captions-per-image 5 --protocol coco-5k
    mmbench score retrieval --image-emb I.npy --text-emb T.npy --protocol coco-1k-5fold
    mmbench score captions --refs captions_val2017.json --preds results.json
    mmbench score grounding --gts gts.json --preds preds.json --box-format xywh
    mmbench score classification --preds preds.csv

Every subcommand builds the task kind's :class:`~mmbench.tasks.base.TaskResult` with the
metric functions the evaluate loops use, turns it into a :class:`~mmbench.records.RunRecord`
(:func:`_record`) and writes it atomically into ``--out`` (default ``runs``), so
``mmbench leaderboard`` and ``mmbench compare`` read scored outputs like evaluated ones.
A record's ``dataset.fingerprint`` / ``data_fingerprint`` cover the reference data only
(references, ground truth, labels, caption layout), never the scored outputs, so two models'
outputs on the same references pair (``compare --pair-by samples``) and two versions of one
model's outputs pair (``compare``); the outputs' sha256 is kept in ``config.inputs``.

Reference files are read by the dataset parsers ``mmbench eval`` uses
(:func:`mmbench.datasets.karpathy.parse_karpathy`, :func:`mmbench.datasets.coco_captions.parse_captions`),
so image ids follow the same rules. File formats are documented in docs/metrics.md. numpy
files are read with ``allow_pickle=False``; object arrays are refused. Heavy imports happen
inside the commands.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any, Optional

import typer

from mmbench.commands.common import console, err_console, print_json, user_errors

score_app = typer.Typer(help="Score saved outputs (similarities, embeddings, captions, boxes, labels) into run "
                             "records.", no_args_is_help=True)

#: shared option texts
_OUT_HELP = "Folder for the run record (JSON), as mmbench eval."
_NAME_HELP = "Plugin name in the record (default: the outputs file's stem)."
_JSON_HELP = "Print the run record as JSON (it is written to --out either way)."


def register(app: typer.Typer) -> None:
    app.add_typer(score_app, name="score")


# ---------------------------------------------------------------------------------------------
# file readers
# ---------------------------------------------------------------------------------------------

def load_npy(path: Path, what: str):
    import numpy as np

    from mmbench.errors import DataError, UnsafeFileError

    if not Path(path).is_file():
        raise DataError(path, f"{what} file not found")
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "pickle" in str(exc):
            raise UnsafeFileError(f"{path}: {what} is an object array, which needs unrestricted unpickling; "
                                  "save a plain numeric array (np.save(path, array.astype('float32')))") from None
        raise DataError(path, f"cannot read {what}: {exc}", expected="a .npy numeric array") from None
    except Exception as exc:  # noqa: BLE001 - any parse failure is bad input
        raise DataError(path, f"cannot read {what}: {exc}", expected="a .npy numeric array") from None
    if isinstance(arr, np.lib.npyio.NpzFile):
        raise DataError(path, f"{what} is an .npz archive", expected="a single .npy array")
    if arr.dtype.kind not in "fiu":
        raise DataError(path, f"{what} has dtype {arr.dtype}", expected="a numeric array")
    return arr


def load_json(path: Path, what: str) -> Any:
    from mmbench.errors import DataError

    if not Path(path).is_file():
        raise DataError(path, f"{what} file not found")
    try:
        return json.loads(Path(path).read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(path, f"{what} is not valid JSON: {exc}") from None


def load_caption_index(path: Path, n_texts: int):
    """caption -> image index: a .npy integer array or a text file with one integer per line."""
    import numpy as np

    from mmbench.errors import DataError

    if str(path).endswith(".npy"):
        arr = load_npy(path, "caption index")
    else:
        if not Path(path).is_file():
            raise DataError(path, "caption index file not found")
        lines = [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip()]
        try:
            arr = np.array([int(x) for x in lines], dtype=np.int64)
        except ValueError as exc:
            raise DataError(path, f"caption index line is not an integer ({exc})",
                            expected="one image index per line, one line per caption") from None
    if arr.dtype.kind not in "iu" or arr.ndim != 1:
        raise DataError(path, f"caption index has dtype {arr.dtype} and shape {arr.shape}",
                        expected="a 1-D integer array, one image index per caption")
    if arr.shape[0] != n_texts:
        raise DataError(path, f"caption index has {arr.shape[0]} entries for {n_texts} captions")
    return arr


def _digest(x: Any) -> str:
    """sha256 of a file's content (a path) or of an array's bytes (arrays given to the library functions)."""
    import hashlib

    if isinstance(x, (str, Path)):
        from mmbench.datasets.common import file_digest

        return file_digest(Path(x))
    import numpy as np

    a = np.ascontiguousarray(np.asarray(x))
    return hashlib.sha256(f"{a.dtype.str}{a.shape}".encode() + a.tobytes()).hexdigest()


def _input(x: Any) -> dict:
    return {"path": str(x) if isinstance(x, (str, Path)) else "<array>", "sha256": _digest(x)}


def _stem(x: Any, default: str) -> str:
    return Path(x).stem if isinstance(x, (str, Path)) else default


# ---------------------------------------------------------------------------------------------
# the run record: one builder for every subcommand
# ---------------------------------------------------------------------------------------------

def _record(kind, result, *, name: str, dataset: str, split: str, protocol: str, data_fingerprint: str,
            files=(), inputs: dict | None = None, n_samples: int, task_options: dict | None = None,
            bootstrap: int = 0, seed: int = 0, confidence: float = 0.95, notes=(), t_start: float | None = None,
            command: str = ""):
    """A :class:`RunRecord` of ``result`` (the kind's TaskResult), as ``runner.score_model`` makes one.

    ``data_fingerprint``: of the reference data alone (what ``compare --pair-by samples`` checks);
    ``dataset.fingerprint`` adds split and protocol (what ``compare`` checks). The outputs scored are
    named by ``inputs`` (role -> path and sha256) in ``config``, never in a fingerprint.
    """
    from mmbench import records
    from mmbench.tasks.base import DatasetMeta

    timings = {f"score.{k}": v for k, v in result.timings.items()}
    ci: dict = {}
    if bootstrap:
        from mmbench.metrics.bootstrap import task_cis

        t0 = time.perf_counter()
        ci = task_cis(kind, result, n_resamples=bootstrap, seed=seed, confidence=confidence)
        timings["bootstrap"] = time.perf_counter() - t0
    if t_start is not None:
        timings["total"] = time.perf_counter() - t_start
    meta = DatasetMeta(name=dataset, split=split, task=kind.name, protocol=protocol,
                       fingerprint=records.fingerprint("mmbench.score-data/1", data_fingerprint, split, protocol),
                       files=[str(f) for f in files], notes=list(notes)).to_dict()
    meta.update({"data_fingerprint": data_fingerprint, "n_samples": int(n_samples), "options": {}})
    return records.RunRecord(
        task=kind.name, plugin={"name": name, "package": "", "version": "", "options": {}}, dataset=meta,
        metrics=dict(result.metrics), ci=ci, details=dict(result.details), per_sample=dict(result.per_sample),
        sample_ids={u: [str(i) for i in ids] for u, ids in result.sample_ids.items()},
        per_sample_units={k: kind.per_sample_units.get(k, kind.unit) for k in result.per_sample},
        timings=timings, environment=records.environment(),
        config={"command": command or f"mmbench score {kind.name}", "seed": seed, "bootstrap": bootstrap,
                "confidence": confidence, "dataset_options": {}, "task_options": dict(task_options or {}),
                "inputs": dict(inputs or {})},
    )


def _kind(name: str):
    from mmbench.tasks import get_kind

    return get_kind(name)


def _emit(rec, out: Path, as_json: bool, table) -> None:
    """Write the record atomically into ``out``; print it (``--json``) or its table."""
    from mmbench import records

    path = records.save(rec, out)
    if as_json:
        print_json(dict(rec.to_dict(), path=str(path)))
        return
    table(rec)
    err_console.print(f"record: {path}", highlight=False, markup=False, soft_wrap=True)


def _print_table(title: str, rows: list[tuple[str, Any]], ci: dict | None = None) -> None:
    from rich.table import Table
    from rich.text import Text

    t = Table(title=Text(title), title_justify="left")
    t.add_column("metric")
    t.add_column("value", justify="right")
    if ci:
        t.add_column("CI", justify="right")
    for name, val in rows:
        shown = "unavailable" if val is None else (f"{val:.4f}" if isinstance(val, float) else str(val))
        cells = [name, shown]
        if ci:
            c = ci.get(name)
            cells.append(f"[{c[0]:.4f}, {c[1]:.4f}]" if c else "")
        t.add_row(*cells)
    console.print(t)


# ---------------------------------------------------------------------------------------------
# retrieval
# ---------------------------------------------------------------------------------------------

_RETRIEVAL_ROWS = tuple(f"{d}.{k}" for d in ("i2t", "t2i") for k in ("R@1", "R@5", "R@10", "medr", "meanr")) + \
    ("rsum",)


def _protocol_dataset(protocol: str | None) -> str:
    """The dataset a published retrieval protocol is defined on (its name up to the first '-')."""
    return protocol.split("-")[0] if protocol else "custom"


def score_retrieval(*, sims=None, image_emb=None, text_emb=None, captions_per_image: int | None = 5,
                    caption_index=None, protocol: str | None = None, ties: str = "pessimistic",
                    memory_budget_mb: float = 512, bootstrap: int = 0, seed: int = 0,
                    confidence: float = 0.95, name: str | None = None, dataset: str | None = None,
                    split: str = "test"):
    """The library function behind ``mmbench score retrieval`` (paths or arrays accepted): a RunRecord."""
    import numpy as np

    from mmbench.errors import MMBenchError, UsageError
    from mmbench.metrics.retrieval import retrieval_metrics, retrieval_metrics_from_embeddings
    from mmbench.tasks.base import TaskResult
    from mmbench.tasks.retrieval import PROTOCOLS, _captions_per_image

    t_start = time.perf_counter()
    kind = _kind("retrieval")
    opts = kind.parse_options({"ties": ties, "memory_budget_mb": memory_budget_mb})
    if protocol is not None and protocol not in PROTOCOLS:
        raise UsageError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
    if (sims is None) == (image_emb is None and text_emb is None):
        raise UsageError("give either --sims, or both --image-emb and --text-emb")
    inputs: dict = {}
    if sims is not None:
        S = load_npy(sims, "similarity matrix") if isinstance(sims, (str, Path)) else np.asarray(sims)
        if S.ndim != 2:
            raise MMBenchError(f"similarity matrix {sims if isinstance(sims, (str, Path)) else ''} has shape "
                               f"{S.shape}, expected (images, captions)")
        n_img, n_txt = S.shape
        inputs["sims"] = _input(sims)
    else:
        if image_emb is None or text_emb is None:
            raise UsageError("--image-emb and --text-emb go together")
        img = load_npy(image_emb, "image embeddings") if isinstance(image_emb, (str, Path)) else np.asarray(image_emb)
        txt = load_npy(text_emb, "text embeddings") if isinstance(text_emb, (str, Path)) else np.asarray(text_emb)
        if img.ndim != 2 or txt.ndim != 2 or img.shape[1] != txt.shape[1]:
            raise MMBenchError(f"embeddings must be (images, D) and (captions, D); got {img.shape} and {txt.shape}")
        n_img, n_txt = img.shape[0], txt.shape[0]
        inputs["image_emb"], inputs["text_emb"] = _input(image_emb), _input(text_emb)
    files = []
    if caption_index is not None:
        ti = load_caption_index(caption_index, n_txt) if isinstance(caption_index, (str, Path)) \
            else np.asarray(caption_index)
        layout = "caption index file"
        if isinstance(caption_index, (str, Path)):
            files.append(caption_index)
    else:
        k = int(captions_per_image or 5)
        if n_txt != k * n_img:
            raise MMBenchError(f"{n_txt} captions for {n_img} images is not {k} captions per image; pass "
                               "--captions-per-image K or --caption-index FILE")
        ti = np.arange(n_txt) // k
        layout = f"{k} consecutive captions per image"
    folds = 1
    notes: list[str] = []
    if protocol is not None:
        p = PROTOCOLS[protocol]
        folds = p.folds
        if n_img != p.images:
            raise MMBenchError(f"protocol {protocol} needs {p.images} images, the input has {n_img} "
                               "(the 1000-image COCO test split is not the 1K protocol: use coco-1k-5fold on the "
                               "5000-image set)")
        if n_txt != p.captions_per_image * n_img:
            notes.append(f"{n_txt} captions for {n_img} images: protocol {protocol} is defined on "
                         f"{p.captions_per_image} captions per image")
    if sims is not None:
        res = retrieval_metrics(S, ti, folds=folds, ties=opts["ties"])
    else:
        res = retrieval_metrics_from_embeddings(img, txt, ti, folds=folds, ties=opts["ties"],
                                                memory_budget_mb=opts["memory_budget_mb"])
    ti = np.asarray(ti, dtype=np.int64)
    per_sample = {"i2t_rank": np.asarray(res["i2t_ranks"]).tolist(), "t2i_rank": np.asarray(res["t2i_ranks"]).tolist(),
                  "t2i_image": ti.tolist()}
    if folds > 1:
        per_sample["image_fold"] = np.asarray(res["image_fold"]).tolist()
    details = {
        "n_images": int(n_img), "n_texts": int(n_txt), "folds": folds, "ties": opts["ties"],
        "i2t_tied_queries": res["i2t_tied"], "t2i_tied_queries": res["t2i_tied"],
        "scored_from": "similarity matrix" if sims is not None else "embeddings",
        "caption_layout": layout, "captions_per_image": _captions_per_image(ti),
        "bootstrap_unit": "image with all its captions",
    }
    result = TaskResult(metrics=res["metrics"], per_sample=per_sample, details=details,
                        sample_ids={"image": [str(i) for i in range(n_img)],
                                    "caption": [f"t{j}" for j in range(n_txt)]})
    protocol_name = protocol or "custom"
    # the reference data of retrieval outputs is their caption -> image layout
    data_fp = _digest(np.concatenate([[n_img, n_txt], ti]).astype(np.int64))
    first = next(iter(inputs.values()))["path"]
    return _record(kind, result, name=name or _stem(first, "scored-outputs"),
                   dataset=dataset or _protocol_dataset(protocol), split=split, protocol=protocol_name,
                   data_fingerprint=data_fp, files=files, inputs=inputs, n_samples=n_img,
                   task_options=opts, bootstrap=bootstrap, seed=seed, confidence=confidence, notes=notes,
                   t_start=t_start)


def _retrieval_table(rec) -> None:
    d = rec.details
    _print_table(f"retrieval ({rec.dataset['protocol']}, {d['n_images']} images, {d['n_texts']} captions, "
                 f"ties {d['ties']})", [(k, rec.metrics.get(k)) for k in _RETRIEVAL_ROWS], rec.ci)


@score_app.command("retrieval")
def retrieval_cmd(
    sims: Optional[Path] = typer.Option(None, "--sims", help="(images, captions) similarity matrix, .npy."),
    image_emb: Optional[Path] = typer.Option(None, "--image-emb", help="(images, D) embeddings, .npy."),
    text_emb: Optional[Path] = typer.Option(None, "--text-emb", help="(captions, D) embeddings, .npy."),
    captions_per_image: int = typer.Option(5, "--captions-per-image", help="Caption j belongs to image j // K."),
    caption_index: Optional[Path] = typer.Option(None, "--caption-index",
                                                 help="Caption->image index: .npy ints or one int per line."),
    protocol: Optional[str] = typer.Option(None, "--protocol", help="flickr30k-1k | coco-5k | coco-1k-5fold"),
    ties: str = typer.Option("pessimistic", "--ties", help="pessimistic (default) | optimistic"),
    memory_budget_mb: float = typer.Option(512, "--memory-budget-mb", help="Working memory for embeddings."),
    bootstrap: int = typer.Option(0, "--bootstrap", help="Bootstrap resamples for CIs (0: none)."),
    seed: int = typer.Option(0, "--seed"),
    name: Optional[str] = typer.Option(None, "--name", help=_NAME_HELP),
    dataset: Optional[str] = typer.Option(None, "--dataset",
                                          help="Dataset name in the record (default: the protocol's, e.g. coco; "
                                               "else custom)."),
    split: str = typer.Option("test", "--split", help="Split name in the record."),
    out: Path = typer.Option(Path("runs"), "--out", help=_OUT_HELP),
    as_json: bool = typer.Option(False, "--json", help=_JSON_HELP),
):
    """R@1/5/10, medr, meanr (i2t and t2i) and rsum, in percent, from similarities or embeddings.

    Example: mmbench score retrieval --sims sims.npy --protocol coco-5k --name my-model --json
    """
    with user_errors():
        rec = score_retrieval(sims=sims, image_emb=image_emb, text_emb=text_emb,
                              captions_per_image=captions_per_image, caption_index=caption_index,
                              protocol=protocol, ties=ties, memory_budget_mb=memory_budget_mb,
                              bootstrap=bootstrap, seed=seed, name=name, dataset=dataset, split=split)
        _emit(rec, out, as_json, _retrieval_table)


# ---------------------------------------------------------------------------------------------
# captions
# ---------------------------------------------------------------------------------------------

_CAPTION_ROWS = ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "SPICE")
_KARPATHY = "a Karpathy dataset json (dataset_coco.json: {\"images\": [{\"filename\", \"split\", \"sentences\"}]})"


class References:
    """Reference captions of a COCO captions json or a Karpathy json, read by the dataset parsers of
    ``mmbench eval`` (so image ids follow its rules: the COCO image id; the Karpathy ``cocoid``, else the
    file name). ``aliases``: other names results files use for an image (Flickr: the file name's stem
    and the Karpathy ``imgid``), each naming one image."""

    def __init__(self, path: Path, refs: dict[str, list[str]], *, dataset: str, split: str, fmt: str,
                 aliases: dict[str, set[str]] | None = None):
        self.path, self.refs, self.dataset, self.split, self.format = Path(path), refs, dataset, split, fmt
        self.aliases = aliases or {}

    def resolve(self, key: str) -> str | None:
        """The image id a results file's ``image_id`` names (None: no such image)."""
        from mmbench.errors import DataError

        if key in self.refs:
            return key
        names = self.aliases.get(key)
        if not names:
            return None
        if len(names) > 1:
            raise DataError(self.path, f"image_id {key!r} is ambiguous: it names images {sorted(names)}",
                            field="image_id", expected="an image id (cocoid or file name)")
        return next(iter(names))


def _coco_split(path: Path, split: str | None) -> str:
    if split:
        return split
    m = re.search(r"captions_(train|val|test)\d{4}", Path(path).name)
    return m.group(1) if m else "all"


def read_references(path: Path, split: str | None = None) -> References:
    """References from a COCO captions json (``captions_val2017.json``, parsed by
    :func:`mmbench.datasets.coco_captions.parse_captions`) or a Karpathy dataset json (``dataset_coco.json``,
    parsed by :func:`mmbench.datasets.karpathy.parse_karpathy`; ``split`` default test, or every image when
    the file has no test split)."""
    from mmbench.datasets import coco_captions, common, karpathy
    from mmbench.errors import DataError

    path = Path(path)
    if not path.is_file():
        raise DataError(path, "references file not found")
    # the parsers read the file themselves; this read only tells the two formats apart (and gives the
    # Karpathy 'dataset' and 'imgid' fields, which parse_karpathy does not return)
    data = common.read_json(path)
    if isinstance(data, dict) and "annotations" in data:
        images, caps = coco_captions.parse_captions(path)
        refs = {str(iid): caps[iid] for iid in images if iid in caps}
        return References(path, refs, dataset="coco_captions", split=_coco_split(path, split), fmt="coco-captions")
    if isinstance(data, dict) and "images" in data:
        name = data.get("dataset") if isinstance(data.get("dataset"), str) and data.get("dataset") else None
        if name is None:
            m = re.fullmatch(r"dataset_(\w+)\.json", path.name)
            name = m.group(1) if m else "karpathy"
        entries = karpathy.parse_karpathy(path, dataset=name, layout=_KARPATHY)
        splits = {e["split"] for e in entries}
        if split is None:
            split = "test" if "test" in splits else None
        if split is not None and split not in splits:
            raise DataError(path, f"no images in split {split!r}", field="split",
                            expected=f"one of {sorted(splits)}")
        raw = data["images"]
        refs: dict[str, list[str]] = {}
        aliases: dict[str, set[str]] = {}
        for i, e in enumerate(entries):
            if split is not None and e["split"] != split:
                continue
            if e["id"] in refs:
                raise DataError(path, f"images[{i}]: image id {e['id']!r} occurs twice in split {split!r}",
                                field="cocoid/filename", expected="one entry per image")
            refs[e["id"]] = e["captions"]
            if e["id"] == e["filename"]:  # no cocoid (Flickr): results may name the file's stem or the imgid
                names = [Path(e["filename"]).stem]
                imgid = raw[i].get("imgid")
                if isinstance(imgid, int) and not isinstance(imgid, bool):
                    names.append(str(imgid))
                for a in names:
                    if a != e["id"]:
                        aliases.setdefault(a, set()).add(e["id"])
        aliases = {a: ids for a, ids in aliases.items() if a not in refs}
        return References(path, refs, dataset=name, split=split or "all", fmt="karpathy", aliases=aliases)
    raise DataError(path, "unrecognised references file", expected='a COCO captions json ({"images": [...], '
                                                                    '"annotations": [...]}) or ' + _KARPATHY)


def read_predictions(path: Path, refs: References | None = None) -> dict[str, str]:
    """{image id: caption} from a COCO results list; with ``refs``, ids are resolved to the references' ids
    (an id no reference image has is kept as given, and reported by ``check_inputs``)."""
    from mmbench.errors import DataError

    data = load_json(path, "predictions")
    if not isinstance(data, list):
        raise DataError(path, f"predictions are a {type(data).__name__}",
                        expected='a COCO results list [{"image_id": ..., "caption": "..."}]')
    preds: dict[str, str] = {}
    given: dict[str, Any] = {}
    for k, r in enumerate(data):
        if not isinstance(r, dict) or "image_id" not in r or not isinstance(r.get("caption"), str):
            raise DataError(path, f"entry {k} lacks image_id or a string caption", field=f"[{k}]",
                            expected='{"image_id": ..., "caption": "..."}')
        key = str(r["image_id"])
        if refs is not None:
            key = refs.resolve(key) or key
        if key in preds:
            also = f" (as {given[key]!r})" if given[key] != r["image_id"] else ""
            raise DataError(path, f"image_id {r['image_id']!r} has more than one caption{also}",
                            field=f"[{k}].image_id", expected="one caption per image")
        preds[key] = r["caption"]
        given[key] = r["image_id"]
    return preds


def score_captions(refs: Path, preds: Path, *, split: str | None = None, tokenizer: str = "python",
                   metrics=("bleu", "meteor", "rouge", "cider", "spice"), metrics_impl: str = "fast",
                   meteor_jobs: int = 0, bootstrap: int = 0, seed: int = 0, confidence: float = 0.95,
                   name: str | None = None, dataset: str | None = None):
    """The library function behind ``mmbench score captions``: a RunRecord of the images in ``preds``
    (as COCOEvalCap scores them), against every reference caption of each."""
    from mmbench.metrics.captioning import caption_scores, check_inputs
    from mmbench.tasks.base import TaskResult

    t_start = time.perf_counter()
    kind = _kind("captioning")
    opts = kind.parse_options({"tokenizer": tokenizer, "metrics_impl": metrics_impl, "meteor_jobs": meteor_jobs})
    references = read_references(refs, split)
    candidates = read_predictions(preds, references)
    check_inputs(references.refs, candidates, source=str(preds))
    t0 = time.perf_counter()
    sc = caption_scores(references.refs, candidates, tokenizer=opts["tokenizer"], metrics=metrics,
                        metrics_impl=opts["metrics_impl"], meteor_jobs=int(opts["meteor_jobs"]) or None)
    details = {"unavailable": sc["unavailable"], "tokenizer": opts["tokenizer"], "metrics_impl": opts["metrics_impl"],
               "meteor_jobs": int(opts["meteor_jobs"]), "metrics_computed": sorted(metrics),
               "n_images": len(candidates), "n_reference_images": len(references.refs),
               "references_format": references.format,
               "bootstrap_unit": "image (BLEU from per-image sufficient statistics; CIDEr document "
                                 "frequencies fixed to the full evaluated reference set)"}
    result = TaskResult(metrics=sc["metrics"], per_sample=sc["per_image"], sample_ids={"image": sc["ids"]},
                        details=details, timings={"metrics": time.perf_counter() - t0})
    return _record(kind, result, name=name or _stem(preds, "scored-outputs"), dataset=dataset or references.dataset,
                   split=references.split, protocol="all-captions", data_fingerprint=_digest(refs), files=[refs],
                   inputs={"preds": _input(preds)}, n_samples=len(candidates), task_options=opts,
                   bootstrap=bootstrap, seed=seed, confidence=confidence, t_start=t_start,
                   command="mmbench score captions")


def _captions_table(rec) -> None:
    d = rec.details
    unavailable = d.get("unavailable", {})
    rows = [(k, rec.metrics[k] if k in rec.metrics else None) for k in _CAPTION_ROWS
            if k in rec.metrics or k in unavailable]
    _print_table(f"captions ({d['n_images']} images, tokenizer {d['tokenizer']}, {d['metrics_impl']} metrics)",
                 rows, rec.ci)
    for k, why in unavailable.items():
        console.print(f"{k} unavailable: {why}", highlight=False, markup=False)


@score_app.command("captions")
def captions_cmd(
    refs: Path = typer.Option(..., "--refs", help="COCO captions json, or Karpathy dataset json (+ --split)."),
    preds: Path = typer.Option(..., "--preds", help='COCO results json: [{"image_id", "caption"}].'),
    split: Optional[str] = typer.Option(None, "--split",
                                        help="Karpathy split (default: test). A COCO captions file: the split "
                                             "name in the record (default from the file name, e.g. val)."),
    tokenizer: str = typer.Option("python", "--tokenizer", help="python (Java-free PTB) | ptb (Java) | whitespace"),
    metrics_impl: str = typer.Option("fast", "--metrics-impl",
                                     help="fast (mmbench's vectorised scorers, identical numbers; default) | "
                                          "reference (pycocoevalcap's own scorers)."),
    meteor_jobs: int = typer.Option(0, "--meteor-jobs",
                                    help="METEOR JVMs in parallel (0: one per idle core with >= 1000 images each; "
                                         "fast only)."),
    no_meteor: bool = typer.Option(False, "--no-meteor", help="Skip METEOR (its JVM takes seconds to start)."),
    bootstrap: int = typer.Option(0, "--bootstrap", help="Bootstrap resamples for CIs (0: none)."),
    seed: int = typer.Option(0, "--seed"),
    name: Optional[str] = typer.Option(None, "--name", help=_NAME_HELP),
    dataset: Optional[str] = typer.Option(None, "--dataset",
                                          help="Dataset name in the record (default: coco_captions for a COCO "
                                               "captions file, the Karpathy json's 'dataset', e.g. coco)."),
    out: Path = typer.Option(Path("runs"), "--out", help=_OUT_HELP),
    as_json: bool = typer.Option(False, "--json", help=_JSON_HELP),
):
    """BLEU-1..4, METEOR, ROUGE-L, CIDEr(-D) as pycocoevalcap computes them; SPICE reported unavailable.

    The images scored are those in --preds (as COCOEvalCap does).

    Example: mmbench score captions --refs captions_val2017.json --preds results.json --json
    """
    with user_errors():
        metrics = ("bleu", "rouge", "cider", "spice") + (() if no_meteor else ("meteor",))
        rec = score_captions(refs, preds, split=split, tokenizer=tokenizer, metrics=metrics,
                             metrics_impl=metrics_impl, meteor_jobs=meteor_jobs, bootstrap=bootstrap, seed=seed,
                             name=name, dataset=dataset)
        _emit(rec, out, as_json, _captions_table)


# ---------------------------------------------------------------------------------------------
# grounding
# ---------------------------------------------------------------------------------------------

def _entries(path: Path, what: str) -> list[dict]:
    from mmbench.errors import DataError

    data = load_json(path, what)
    if isinstance(data, dict) and "samples" in data:
        data = data["samples"]
    if not isinstance(data, list) or not all(isinstance(e, dict) and "id" in e for e in data):
        raise DataError(path, f"{what} must be a list of objects with an 'id'",
                        expected='[{"id": ..., "boxes": [[x1, y1, x2, y2], ...]}, ...]')
    seen: dict[str, int] = {}
    for k, e in enumerate(data):
        key = str(e["id"])
        if key in seen:
            raise DataError(path, f"{what}: id {e['id']!r} occurs twice (entries {seen[key]} and {k})",
                            field=f"[{k}].id", expected="one entry per sample")
        seen[key] = k
    return data


def score_grounding(gts: Path, preds: Path, *, box_format: str = "xyxy", normalized: bool = False,
                    threshold: float = 0.5, convention: str = "continuous", bootstrap: int = 0, seed: int = 0,
                    confidence: float = 0.95, name: str | None = None, dataset: str | None = None,
                    split: str = "test", strict: bool = False, outside: str = "auto"):
    """The library function behind ``mmbench score grounding``: a RunRecord."""
    import numpy as np

    from mmbench.errors import DataError
    from mmbench.metrics.grounding import BOX_FORMATS, grounding_metrics, scores_outside, to_xyxy
    from mmbench.tasks.base import TaskResult

    t_start = time.perf_counter()
    kind = _kind("grounding")
    opts = kind.parse_options({"threshold": threshold, "convention": convention, "strict": strict,
                               "outside": outside})
    score_outside = scores_outside(opts["outside"], opts["convention"])
    if box_format not in BOX_FORMATS:
        from mmbench.errors import UsageError

        raise UsageError(f"--box-format {box_format!r} is not one of {', '.join(BOX_FORMATS)}")
    g = _entries(gts, "ground truth")
    p = {str(e["id"]): e for e in _entries(preds, "predictions")}
    boxes_pred, boxes_gt, sizes = [], [], []
    for k, e in enumerate(g):
        key = str(e["id"])
        if key not in p:
            raise DataError(preds, f"no prediction for sample {e['id']!r}", field="id")
        size = None
        if "width" in e and "height" in e:
            size = (float(e["width"]), float(e["height"]))
        elif "size" in e:
            size = tuple(float(x) for x in e["size"])
        try:
            gt = np.asarray(e["boxes"], dtype=np.float64).reshape(-1, 4)
        except (KeyError, ValueError, TypeError):
            raise DataError(gts, f"sample {e['id']!r}: ground-truth boxes are not a list of 4 numbers",
                            field=f"[{k}].boxes", expected="[[x1, y1, x2, y2], ...] in pixels") from None
        try:
            pb = np.asarray(p[key].get("boxes", []), dtype=np.float64).reshape(-1, 4)
        except (ValueError, TypeError):
            raise DataError(preds, f"sample {e['id']!r}: predicted boxes are not lists of 4 numbers",
                            field="boxes", expected=f"[[...4 numbers in {box_format}...], ...] best first") from None
        if normalized and size is None:
            raise DataError(gts, f"sample {e['id']!r} has no image size; normalised boxes need it",
                            field=f"[{k}].width/height")
        boxes_pred.append(to_xyxy(pb, box_format, normalized=normalized, size=size))
        boxes_gt.append(gt)
        sizes.append(size)
    t0 = time.perf_counter()
    res = grounding_metrics(boxes_pred, boxes_gt, threshold=opts["threshold"], convention=opts["convention"],
                            strict=bool(opts.get("strict", False)), sizes=sizes, score_outside=score_outside)
    ids = [str(e["id"]) for e in g]
    result = TaskResult(
        metrics=res["metrics"], per_sample={"hit": res["hit"], "hit_rank": res["hit_rank"]},
        sample_ids={"sample": ids},
        details={"box_format": box_format, "box_normalized": normalized, "iou_convention": opts["convention"],
                 "strict": bool(opts.get("strict", False)), "outside": "score" if score_outside else "miss",
                 "threshold": opts["threshold"], "invalid_boxes": res["invalid"],
                 "invalid_reasons": res["invalid_reasons"], "n_samples": len(g),
                 "predictions_unused": len(set(p) - set(ids))},
        timings={"metrics": time.perf_counter() - t0})
    return _record(kind, result, name=name or _stem(preds, "scored-outputs"), dataset=dataset or _stem(gts, "custom"),
                   split=split, protocol="", data_fingerprint=_digest(gts), files=[gts],
                   inputs={"preds": _input(preds)}, n_samples=len(g), task_options=opts, bootstrap=bootstrap,
                   seed=seed, confidence=confidence, t_start=t_start)


def _grounding_table(rec) -> None:
    d = rec.details
    rows = [(k, v) for k, v in rec.metrics.items() if k.startswith(("acc@", "P@"))]
    rows.append(("invalid boxes", d["invalid_boxes"]))
    _print_table(f"grounding ({d['n_samples']} samples, {d['iou_convention']} IoU)", rows, rec.ci)


@score_app.command("grounding")
def grounding_cmd(
    gts: Path = typer.Option(..., "--gts", help='Ground truth json: [{"id", "boxes": [[x1,y1,x2,y2]], "width", "height"}].'),
    preds: Path = typer.Option(..., "--preds", help='Predictions json: [{"id", "boxes": [[...], ...]}], best first.'),
    box_format: str = typer.Option("xyxy", "--box-format", help="Predicted box format: xyxy | xywh | cxcywh."),
    normalized: bool = typer.Option(False, "--normalized", help="Predicted boxes are in [0, 1] (needs sizes)."),
    threshold: float = typer.Option(0.5, "--threshold", help="IoU threshold."),
    convention: str = typer.Option("continuous", "--convention", help="continuous | inclusive | giou | plus1"),
    strict: bool = typer.Option(False, "--strict", help="A hit needs IoU > threshold (ViLBERT), not >=."),
    outside: str = typer.Option("auto", "--outside", help="A box >5% outside the image: miss | score (as MDETR's "
                                                          "evaluators) | auto (score under giou, else miss)."),
    bootstrap: int = typer.Option(0, "--bootstrap", help="Bootstrap resamples for CIs (0: none)."),
    seed: int = typer.Option(0, "--seed"),
    name: Optional[str] = typer.Option(None, "--name", help=_NAME_HELP),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="Dataset name in the record (default: the "
                                                                  "ground-truth file's stem)."),
    split: str = typer.Option("test", "--split", help="Split name in the record."),
    out: Path = typer.Option(Path("runs"), "--out", help=_OUT_HELP),
    as_json: bool = typer.Option(False, "--json", help=_JSON_HELP),
):
    """Accuracy at IoU >= threshold (top-1) and Precision@1/5/10; impossible boxes are counted as failures.

    Example: mmbench score grounding --gts gts.json --preds preds.json --box-format xywh --json
    """
    with user_errors():
        rec = score_grounding(gts, preds, box_format=box_format, normalized=normalized, threshold=threshold,
                              convention=convention, bootstrap=bootstrap, seed=seed, name=name, dataset=dataset,
                              split=split, strict=strict, outside=outside)
        _emit(rec, out, as_json, _grounding_table)


# ---------------------------------------------------------------------------------------------
# classification
# ---------------------------------------------------------------------------------------------

def read_labels(path: Path) -> tuple[list[str], list[str], list[str]]:
    """(ids, labels, preds) from a CSV with columns id,label,pred or a JSON list of such objects."""
    import csv

    from mmbench.errors import DataError

    if str(path).endswith(".json"):
        rows = load_json(path, "predictions")
        if not isinstance(rows, list):
            raise DataError(path, "predictions json is not a list", expected='[{"id", "label", "pred"}, ...]')
    else:
        if not Path(path).is_file():
            raise DataError(path, "predictions file not found")
        with open(path, newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    ids, labels, preds = [], [], []
    seen: dict[str, int] = {}
    for k, r in enumerate(rows):
        if not isinstance(r, dict) or r.get("label") in (None, "") or r.get("pred") in (None, ""):
            raise DataError(path, f"row {k + 1} lacks a label or a pred", field="label/pred",
                            expected="columns id,label,pred (class names or integer indices)")
        sid = str(r.get("id", k))
        if sid in seen:
            raise DataError(path, f"row {k + 1}: id {sid!r} already on row {seen[sid] + 1}", field="id",
                            expected="one row per sample")
        seen[sid] = k
        ids.append(sid)
        labels.append(str(r["label"]))
        preds.append(str(r["pred"]))
    return ids, labels, preds


def score_classification(preds: Path, *, classes: list[str] | None = None, bootstrap: int = 0, seed: int = 0,
                         confidence: float = 0.95, name: str | None = None, dataset: str | None = None,
                         split: str = "test"):
    """The library function behind ``mmbench score classification``: a RunRecord. The reference data
    (``data_fingerprint``) is the ids, labels and classes; the predictions are the outputs."""
    import numpy as np

    from mmbench import records
    from mmbench.errors import DataError
    from mmbench.metrics.classification import classification_metrics
    from mmbench.tasks.base import TaskResult

    t_start = time.perf_counter()
    kind = _kind("classification")
    ids, labels, predicted = read_labels(preds)
    if classes is None:
        if all(x.lstrip("-").isdigit() for x in labels + predicted):
            n = max(int(x) for x in labels + predicted) + 1
            classes = [str(i) for i in range(n)]
        else:
            classes = sorted(set(labels) | set(predicted))
    index = {c: i for i, c in enumerate(classes)}
    for i, c in enumerate(classes):
        index.setdefault(str(i), i)

    def to_idx(values, field):
        out = []
        for k, v in enumerate(values):
            if v not in index:
                raise DataError(preds, f"row {k + 1}: {field} {v!r} is not a known class", field=field,
                                expected=f"one of {classes} or an index below {len(classes)}")
            out.append(index[v])
        return np.array(out, dtype=np.int64)

    y, p = to_idx(labels, "label"), to_idx(predicted, "pred")
    t0 = time.perf_counter()
    res = classification_metrics(y, p, len(classes), classes)
    result = TaskResult(
        metrics=res["metrics"], per_sample={"correct": (p == y).astype(int).tolist(), "pred": p.tolist(),
                                            "label": y.tolist(), "n_classes": [len(classes)] * len(y)},
        sample_ids={"sample": ids},
        details={"classes": list(classes), "per_class": res["per_class"], "confusion_matrix": res["confusion_matrix"],
                 "n_samples": len(y)},
        timings={"metrics": time.perf_counter() - t0})
    data_fp = records.fingerprint("mmbench.score-labels/1", ids, y.tolist(), list(classes))
    return _record(kind, result, name=name or _stem(preds, "scored-outputs"), dataset=dataset or "custom",
                   split=split, protocol="", data_fingerprint=data_fp, inputs={"preds": _input(preds)},
                   n_samples=len(y), bootstrap=bootstrap, seed=seed, confidence=confidence, t_start=t_start)


def _classification_table(rec) -> None:
    _print_table(f"classification ({rec.details['n_samples']} samples)",
                 [(k, rec.metrics[k]) for k in ("accuracy", "f1_macro", "f1_weighted")], rec.ci)


@score_app.command("classification")
def classification_cmd(
    preds: Path = typer.Option(..., "--preds", help="CSV with columns id,label,pred (or a JSON list of them)."),
    classes: Optional[str] = typer.Option(None, "--classes", help="Comma-separated class names, in index order."),
    bootstrap: int = typer.Option(0, "--bootstrap", help="Bootstrap resamples for CIs (0: none)."),
    seed: int = typer.Option(0, "--seed"),
    name: Optional[str] = typer.Option(None, "--name", help=_NAME_HELP),
    dataset: str = typer.Option("custom", "--dataset", help="Dataset name in the record."),
    split: str = typer.Option("test", "--split", help="Split name in the record."),
    out: Path = typer.Option(Path("runs"), "--out", help=_OUT_HELP),
    as_json: bool = typer.Option(False, "--json", help=_JSON_HELP),
):
    """Accuracy, macro and weighted F1 (percent), per-class precision/recall/F1 and the confusion matrix.

    Example: mmbench score classification --preds preds.csv --classes positive,neutral,negative --json
    """
    with user_errors():
        rec = score_classification(preds, classes=classes.split(",") if classes else None, bootstrap=bootstrap,
                                   seed=seed, name=name, dataset=dataset, split=split)
        _emit(rec, out, as_json, _classification_table)
