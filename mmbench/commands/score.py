"""`mmbench score`: metrics from saved model outputs, without running a model.

    mmbench score retrieval --sims S.npy --captions-per-image 5 --protocol coco-5k
    mmbench score retrieval --image-emb I.npy --text-emb T.npy --protocol coco-1k-5fold
    mmbench score captions --refs captions_val2017.json --preds results.json
    mmbench score grounding --gts gts.json --preds preds.json --box-format xywh
    mmbench score classification --preds preds.csv

File formats are documented in docs/metrics.md. numpy files are read with
``allow_pickle=False``; object arrays are refused. Heavy imports happen inside the commands.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer

from mmbench.commands.common import console, print_json, user_errors

PROTOCOLS = {  # name -> (number of images, folds)
    "flickr30k-1k": (1000, 1),
    "coco-5k": (5000, 1),
    "coco-1k-5fold": (5000, 5),
}

score_app = typer.Typer(help="Score saved outputs (similarities, embeddings, captions, boxes, labels).",
                        no_args_is_help=True)


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
        return json.loads(Path(path).read_text(encoding="utf-8"))
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


def _with_cis(task: str, per_sample: dict, bootstrap: int, seed: int, confidence: float) -> dict:
    if not bootstrap:
        return {}
    from mmbench.metrics.bootstrap import bootstrap_cis

    return bootstrap_cis(task, per_sample, n_resamples=bootstrap, seed=seed, confidence=confidence)


def _print_table(title: str, rows: list[tuple[str, Any]], ci: dict | None = None) -> None:
    from rich.table import Table

    t = Table(title=title, title_justify="left")
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

def score_retrieval(*, sims=None, image_emb=None, text_emb=None, captions_per_image: int | None = 5,
                    caption_index=None, protocol: str | None = None, ties: str = "pessimistic",
                    memory_budget_mb: float = 512, bootstrap: int = 0, seed: int = 0,
                    confidence: float = 0.95) -> dict:
    """The library function behind ``mmbench score retrieval`` (paths or arrays accepted)."""
    import numpy as np

    from mmbench.errors import MMBenchError
    from mmbench.metrics.retrieval import retrieval_metrics, retrieval_metrics_from_embeddings

    if (sims is None) == (image_emb is None and text_emb is None):
        raise MMBenchError("give either --sims, or both --image-emb and --text-emb")
    if sims is not None:
        S = load_npy(sims, "similarity matrix") if isinstance(sims, (str, Path)) else np.asarray(sims)
        if S.ndim != 2:
            raise MMBenchError(f"similarity matrix {sims if isinstance(sims, (str, Path)) else ''} has shape "
                               f"{S.shape}, expected (images, captions)")
        n_img, n_txt = S.shape
    else:
        if image_emb is None or text_emb is None:
            raise MMBenchError("--image-emb and --text-emb go together")
        img = load_npy(image_emb, "image embeddings") if isinstance(image_emb, (str, Path)) else np.asarray(image_emb)
        txt = load_npy(text_emb, "text embeddings") if isinstance(text_emb, (str, Path)) else np.asarray(text_emb)
        if img.ndim != 2 or txt.ndim != 2 or img.shape[1] != txt.shape[1]:
            raise MMBenchError(f"embeddings must be (images, D) and (captions, D); got {img.shape} and {txt.shape}")
        n_img, n_txt = img.shape[0], txt.shape[0]
    if caption_index is not None:
        ti = load_caption_index(caption_index, n_txt) if isinstance(caption_index, (str, Path)) \
            else np.asarray(caption_index)
        layout = "caption index file"
    else:
        k = int(captions_per_image or 5)
        if n_txt != k * n_img:
            raise MMBenchError(f"{n_txt} captions for {n_img} images is not {k} captions per image; pass "
                               "--captions-per-image K or --caption-index FILE")
        ti = np.arange(n_txt) // k
        layout = f"{k} consecutive captions per image"
    folds = 1
    if protocol is not None:
        if protocol not in PROTOCOLS:
            raise MMBenchError(f"unknown protocol {protocol!r}; known: {', '.join(PROTOCOLS)}")
        want, folds = PROTOCOLS[protocol]
        if n_img != want:
            raise MMBenchError(f"protocol {protocol} needs {want} images, the input has {n_img} "
                               "(the 1000-image COCO test split is not the 1K protocol: use coco-1k-5fold on the "
                               "5000-image set)")
    if sims is not None:
        res = retrieval_metrics(S, ti, folds=folds, ties=ties)
    else:
        res = retrieval_metrics_from_embeddings(img, txt, ti, folds=folds, ties=ties,
                                                memory_budget_mb=memory_budget_mb)
    m = res["metrics"]
    out: dict = {d: {key: m[f"{d}.{key}"] for key in ("R@1", "R@5", "R@10", "medr", "meanr")}
                 for d in ("i2t", "t2i")}
    out["rsum"] = m["rsum"]
    out["protocol"] = protocol or "custom"
    out["folds"] = folds
    out["n_images"], out["n_captions"] = int(n_img), int(n_txt)
    out["caption_layout"] = layout
    out["ties"] = ties
    out["tied_queries"] = {"i2t": res["i2t_tied"], "t2i": res["t2i_tied"]}
    per_sample = {"i2t_rank": res["i2t_ranks"], "t2i_rank": res["t2i_ranks"], "t2i_image": ti,
                  "image_fold": res["image_fold"]}
    ci = _with_cis("retrieval", per_sample, bootstrap, seed, confidence)
    if ci:
        out["ci"] = ci
    return out


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
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
):
    """R@1/5/10, medr, meanr (i2t and t2i) and rsum, in percent, from similarities or embeddings.

    Example: mmbench score retrieval --sims sims.npy --protocol coco-5k --json
    """
    with user_errors():
        out = score_retrieval(sims=sims, image_emb=image_emb, text_emb=text_emb,
                              captions_per_image=captions_per_image, caption_index=caption_index,
                              protocol=protocol, ties=ties, memory_budget_mb=memory_budget_mb,
                              bootstrap=bootstrap, seed=seed)
        if as_json:
            print_json(out)
            return
        rows = [(f"{d}.{k}", out[d][k]) for d in ("i2t", "t2i") for k in ("R@1", "R@5", "R@10", "medr", "meanr")]
        rows.append(("rsum", out["rsum"]))
        _print_table(f"retrieval ({out['protocol']}, {out['n_images']} images, {out['n_captions']} captions, "
                     f"ties {out['ties']})", rows, out.get("ci"))


# ---------------------------------------------------------------------------------------------
# captions
# ---------------------------------------------------------------------------------------------

def read_references(path: Path, split: str | None = None) -> dict[str, list[str]]:
    """{image id: [captions]} from a COCO captions json or a Karpathy dataset json."""
    from mmbench.errors import DataError

    data = load_json(path, "references")
    if isinstance(data, dict) and "annotations" in data:
        refs: dict[str, list[str]] = {}
        for k, a in enumerate(data["annotations"]):
            if not isinstance(a, dict) or "image_id" not in a or not isinstance(a.get("caption"), str):
                raise DataError(path, f"annotation {k} lacks image_id or a string caption",
                                field=f"annotations[{k}]", expected='{"image_id": ..., "caption": "..."}')
            refs.setdefault(str(a["image_id"]), []).append(a["caption"])
        return refs
    if isinstance(data, dict) and "images" in data:
        refs = {}
        splits = {im.get("split") for im in data["images"] if isinstance(im, dict)}
        if split is None:
            split = "test" if "test" in splits else None
        if split is not None and split not in splits:
            raise DataError(path, f"no images in split {split!r}", field="split",
                            expected=f"one of {sorted(s for s in splits if s)}")
        for k, im in enumerate(data["images"]):
            if split is not None and im.get("split") != split:
                continue
            try:
                caps = [s["raw"] for s in im["sentences"]]
            except (KeyError, TypeError):
                raise DataError(path, f"image {k} lacks sentences[].raw", field=f"images[{k}].sentences",
                                expected="Karpathy format") from None
            key = im.get("cocoid", im.get("imgid"))
            refs[str(key)] = caps
            if "cocoid" not in im and "filename" in im:  # Flickr: results may name the file
                refs.setdefault(str(im["filename"]), caps)
                refs.setdefault(str(Path(im["filename"]).stem), caps)
        return refs
    raise DataError(path, "unrecognised references file", expected='a COCO captions json ({"annotations": [...]}) '
                                                                    'or a Karpathy json ({"images": [...]})')


def read_predictions(path: Path) -> dict[str, str]:
    from mmbench.errors import DataError

    data = load_json(path, "predictions")
    if not isinstance(data, list):
        raise DataError(path, f"predictions are a {type(data).__name__}",
                        expected='a COCO results list [{"image_id": ..., "caption": "..."}]')
    preds: dict[str, str] = {}
    for k, r in enumerate(data):
        if not isinstance(r, dict) or "image_id" not in r or not isinstance(r.get("caption"), str):
            raise DataError(path, f"entry {k} lacks image_id or a string caption", field=f"[{k}]",
                            expected='{"image_id": ..., "caption": "..."}')
        key = str(r["image_id"])
        if key in preds:
            raise DataError(path, f"image_id {r['image_id']!r} has more than one caption", field=f"[{k}].image_id",
                            expected="one caption per image")
        preds[key] = r["caption"]
    return preds


def score_captions(refs: Path, preds: Path, *, split: str | None = None, tokenizer: str = "python",
                   metrics=("bleu", "meteor", "rouge", "cider", "spice"), bootstrap: int = 0, seed: int = 0,
                   confidence: float = 0.95) -> dict:
    from mmbench.metrics.captioning import caption_scores, check_inputs

    references = read_references(refs, split)
    candidates = read_predictions(preds)
    check_inputs(references, candidates, source=str(preds))
    sc = caption_scores(references, candidates, tokenizer=tokenizer, metrics=metrics)
    out: dict = {}
    for name in ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "SPICE"):
        if name in sc["metrics"]:
            out[name] = sc["metrics"][name]
        elif name in sc["unavailable"]:
            out[name] = None  # never 0: see "unavailable"
    out["unavailable"] = sc["unavailable"]
    out["tokenizer"] = tokenizer
    out["n_images"] = len(candidates)
    out["n_reference_images"] = len({id(v) for v in references.values()})
    ci = _with_cis("captioning", sc["per_image"], bootstrap, seed, confidence)
    if ci:
        out["ci"] = ci
    return out


@score_app.command("captions")
def captions_cmd(
    refs: Path = typer.Option(..., "--refs", help="COCO captions json, or Karpathy dataset json (+ --split)."),
    preds: Path = typer.Option(..., "--preds", help='COCO results json: [{"image_id", "caption"}].'),
    split: Optional[str] = typer.Option(None, "--split", help="Karpathy split (default: test)."),
    tokenizer: str = typer.Option("python", "--tokenizer", help="python (Java-free PTB) | ptb (Java) | whitespace"),
    no_meteor: bool = typer.Option(False, "--no-meteor", help="Skip METEOR (its JVM takes seconds to start)."),
    bootstrap: int = typer.Option(0, "--bootstrap", help="Bootstrap resamples for CIs (0: none)."),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
):
    """BLEU-1..4, METEOR, ROUGE-L, CIDEr(-D) as pycocoevalcap computes them; SPICE reported unavailable.

    The images scored are those in --preds (as COCOEvalCap does).

    Example: mmbench score captions --refs captions_val2017.json --preds results.json --json
    """
    with user_errors():
        metrics = ("bleu", "rouge", "cider", "spice") + (() if no_meteor else ("meteor",))
        out = score_captions(refs, preds, split=split, tokenizer=tokenizer, metrics=metrics,
                             bootstrap=bootstrap, seed=seed)
        if as_json:
            print_json(out)
            return
        rows = [(k, out[k]) for k in ("Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "METEOR", "ROUGE_L", "CIDEr", "SPICE")
                if k in out]
        _print_table(f"captions ({out['n_images']} images, tokenizer {tokenizer})", rows, out.get("ci"))
        for k, why in out["unavailable"].items():
            console.print(f"{k} unavailable: {why}", highlight=False)


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
    return data


def score_grounding(gts: Path, preds: Path, *, box_format: str = "xyxy", normalized: bool = False,
                    threshold: float = 0.5, convention: str = "continuous", bootstrap: int = 0, seed: int = 0,
                    confidence: float = 0.95) -> dict:
    import numpy as np

    from mmbench.errors import DataError
    from mmbench.metrics.grounding import grounding_metrics, to_xyxy

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
    res = grounding_metrics(boxes_pred, boxes_gt, threshold=threshold, convention=convention, sizes=sizes)
    out = dict(res["metrics"])
    out.update({"n_samples": len(g), "invalid_boxes": res["invalid"], "invalid_reasons": res["invalid_reasons"],
                "iou_convention": convention, "threshold": threshold, "box_format": box_format,
                "box_normalized": normalized})
    ci = _with_cis("grounding", {"hit": res["hit"], "hit_rank": res["hit_rank"]}, bootstrap, seed, confidence)
    if ci:
        acc_key = next(k for k in res["metrics"] if k.startswith("acc@"))
        out["ci"] = {(acc_key if k == "acc" else k): v for k, v in ci.items()}
    return out


@score_app.command("grounding")
def grounding_cmd(
    gts: Path = typer.Option(..., "--gts", help='Ground truth json: [{"id", "boxes": [[x1,y1,x2,y2]], "width", "height"}].'),
    preds: Path = typer.Option(..., "--preds", help='Predictions json: [{"id", "boxes": [[...], ...]}], best first.'),
    box_format: str = typer.Option("xyxy", "--box-format", help="Predicted box format: xyxy | xywh | cxcywh."),
    normalized: bool = typer.Option(False, "--normalized", help="Predicted boxes are in [0, 1] (needs sizes)."),
    threshold: float = typer.Option(0.5, "--threshold", help="IoU threshold."),
    convention: str = typer.Option("continuous", "--convention", help="continuous | inclusive | giou"),
    bootstrap: int = typer.Option(0, "--bootstrap", help="Bootstrap resamples for CIs (0: none)."),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
):
    """Accuracy at IoU >= threshold (top-1) and Precision@1/5/10; impossible boxes are counted as failures.

    Example: mmbench score grounding --gts gts.json --preds preds.json --box-format xywh --json
    """
    with user_errors():
        out = score_grounding(gts, preds, box_format=box_format, normalized=normalized, threshold=threshold,
                              convention=convention, bootstrap=bootstrap, seed=seed)
        if as_json:
            print_json(out)
            return
        rows = [(k, v) for k, v in out.items() if k.startswith(("acc@", "P@"))]
        rows.append(("invalid boxes", out["invalid_boxes"]))
        _print_table(f"grounding ({out['n_samples']} samples, {convention} IoU)", rows, out.get("ci"))


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
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    ids, labels, preds = [], [], []
    for k, r in enumerate(rows):
        if not isinstance(r, dict) or r.get("label") in (None, "") or r.get("pred") in (None, ""):
            raise DataError(path, f"row {k + 1} lacks a label or a pred", field="label/pred",
                            expected="columns id,label,pred (class names or integer indices)")
        ids.append(str(r.get("id", k)))
        labels.append(str(r["label"]))
        preds.append(str(r["pred"]))
    return ids, labels, preds


def score_classification(preds: Path, *, classes: list[str] | None = None, bootstrap: int = 0, seed: int = 0,
                         confidence: float = 0.95) -> dict:
    import numpy as np

    from mmbench.errors import DataError
    from mmbench.metrics.classification import classification_metrics

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
    res = classification_metrics(y, p, len(classes), classes)
    out = dict(res["metrics"])
    out.update({"n_samples": len(y), "classes": classes, "per_class": res["per_class"],
                "confusion_matrix": res["confusion_matrix"]})
    ci = _with_cis("classification", {"label": y, "pred": p, "n_classes": [len(classes)] * len(y)}, bootstrap,
                   seed, confidence)
    if ci:
        out["ci"] = ci
    return out


@score_app.command("classification")
def classification_cmd(
    preds: Path = typer.Option(..., "--preds", help="CSV with columns id,label,pred (or a JSON list of them)."),
    classes: Optional[str] = typer.Option(None, "--classes", help="Comma-separated class names, in index order."),
    bootstrap: int = typer.Option(0, "--bootstrap", help="Bootstrap resamples for CIs (0: none)."),
    seed: int = typer.Option(0, "--seed"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
):
    """Accuracy, macro and weighted F1 (percent), per-class precision/recall/F1 and the confusion matrix.

    Example: mmbench score classification --preds preds.csv --classes positive,neutral,negative --json
    """
    with user_errors():
        out = score_classification(preds, classes=classes.split(",") if classes else None, bootstrap=bootstrap,
                                   seed=seed)
        if as_json:
            print_json(out)
            return
        _print_table(f"classification ({out['n_samples']} samples)",
                     [(k, out[k]) for k in ("accuracy", "f1_macro", "f1_weighted")], out.get("ci"))
