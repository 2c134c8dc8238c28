"""mmbench's own dataset adapters, registered through the same hook as any third-party plugin."""

from __future__ import annotations

from functools import lru_cache

from mmbench.hookspecs import hookimpl
from mmbench.specs import DatasetSpec
from mmbench.tasks import BUILTIN_KINDS


def spec(name: str) -> DatasetSpec:
    """The built-in dataset ``name``'s spec (what its adapter's library entry point validates with)."""
    return _by_name()[name]


@lru_cache(maxsize=1)
def _by_name() -> dict[str, DatasetSpec]:
    return {s.name: s for s in mmbench_datasets()}


def _loader(module: str, fn: str) -> str:
    """The factory of a built-in spec: the adapter's loader, ``.unchecked``. DatasetSpec.load checks the task,
    split and options (declared, typed, on the spec) and calls it; the adapter module's own name for it
    (e.g. ``karpathy.load_coco``) is the library entry point, which goes through the spec too."""
    return f"mmbench.datasets.{module}:{fn}.unchecked"


@hookimpl
def mmbench_datasets():
    from mmbench.datasets import demo

    return [
        DatasetSpec(
            name="demo", tasks=BUILTIN_KINDS,
            factory=_loader("demo", "load"), splits=("train", "val", "test"), default_split="test",
            forms=demo.FORMS, needs_data_root=False,
            description="Embedded synthetic scenes (shapes, colours, positions), generated in code: "
                        "images, region features, 5 captions, referring expressions, 3-class labels.",
            layout="Generated in memory; nothing on disk.",
            protocols=("5-per-image",),
            options=demo.OPTIONS,
        ),
    ] + _real_datasets()


def _real_datasets():
    # Imports here stay cheap: the adapter modules import numpy/PIL/pyarrow only inside functions.
    from mmbench.datasets import coco_captions, flickr30k_entities, hf, jsonl, karpathy, mdetr, mvsa, precomp, refer

    img = ("image_file", "image")
    k_protos = ("5-per-image", "all-captions")
    out = [
        DatasetSpec(name="flickr30k", tasks=karpathy.TASKS, factory=_loader("karpathy", "load_flickr30k"),
                    splits=karpathy.SPLITS, default_split="test", forms=img, layout=karpathy.LAYOUTS["flickr30k"],
                    description="Flickr30k, Karpathy splits (dataset_flickr30k.json); test = 1000 images / 5000 captions.",
                    protocols=("flickr30k-1k",) + k_protos, options=karpathy.OPTIONS,
                    variants={"regions": "f30k_precomp"}),
        DatasetSpec(name="flickr8k", tasks=karpathy.TASKS, factory=_loader("karpathy", "load_flickr8k"),
                    splits=karpathy.SPLITS, default_split="test", forms=img, layout=karpathy.LAYOUTS["flickr8k"],
                    description="Flickr8k: Karpathy json or the original Flickr8k.token.txt layout (auto-detected).",
                    protocols=k_protos, options=karpathy.OPTIONS),
        DatasetSpec(name="coco", tasks=karpathy.TASKS, factory=_loader("karpathy", "load_coco"),
                    splits=karpathy.SPLITS, default_split="test", forms=img, layout=karpathy.LAYOUTS["coco"],
                    description="MS-COCO, Karpathy splits (dataset_coco.json); test = 5000 images, 5K or 1K-5-fold.",
                    protocols=("coco-5k", "coco-1k-5fold") + k_protos, options=karpathy.OPTIONS,
                    variants={"regions": "coco_precomp"}),
        DatasetSpec(name="coco_captions", tasks=("retrieval", "captioning"),
                    factory=_loader("coco_captions", "load"), splits=coco_captions.SPLITS, default_split="val",
                    forms=img, layout=coco_captions.LAYOUT, protocols=k_protos, options=coco_captions.OPTIONS,
                    split_files=("annotations", "images"),
                    description="Official COCO captions json (captions_{train,val}{2014,2017}.json) + images."),
        DatasetSpec(name="coco_instances", tasks=("grounding",), factory=_loader("coco_captions", "load_instances"),
                    splits=coco_captions.SPLITS, default_split="val", forms=img, layout=coco_captions.LAYOUT,
                    protocols=("category-name",), options=coco_captions.INSTANCE_OPTIONS,
                    split_files=("annotations", "images"),
                    description="COCO instances as grounding: expression = category name, any box of it is a hit "
                                "(a smoke test on real images, not a published benchmark)."),
    ]
    for name, fn, var in (("f30k_precomp", "load_f30k", "flickr30k"), ("coco_precomp", "load_coco", "coco")):
        out.append(DatasetSpec(
            name=name, tasks=("retrieval",), factory=_loader("precomp", fn), splits=precomp.SPLITS[name],
            default_split="testall" if name == "coco_precomp" else "test", forms=("regions",),
            layout=precomp.layout(name), options=precomp.COCO_OPTIONS if name == "coco_precomp" else precomp.OPTIONS,
            split_files=("features",),
            protocols=("coco-5k", "coco-1k-5fold", "5-per-image") if name == "coco_precomp" else (
                "flickr30k-1k", "5-per-image"),
            description=f"SCAN/SGRAF/VSE++ precomputed region features ({name}: *_ims.npy memory-mapped + *_caps.txt).",
            variants={"image": var, "image_file": var}))
    for name, fn in (("refcoco", "load_refcoco"), ("refcoco+", "load_refcoco_plus"), ("refcocog", "load_refcocog")):
        splits = tuple(s for s in refer.ALL_SPLITS if any(s in v for v in refer.SPLITS_BY[name].values()))
        out.append(DatasetSpec(
            name=name, tasks=("grounding",), factory=_loader("refer", fn), splits=splits,
            default_split="val", forms=img, layout=refer.layout(name), options=refer.options_of(name),
            protocols=tuple(f"{name}-{b}" for b in refer.SPLITS_BY[name]),
            description=f"{name} referring expressions, refer layout (instances.json + refs(*).p, read safely)."))
    out += [
        DatasetSpec(name="mdetr_refexp", tasks=("grounding",), factory=_loader("mdetr", "load"),
                    splits=refer.ALL_SPLITS, default_split="val", forms=img, layout=mdetr.LAYOUT, options=mdetr.OPTIONS,
                    protocols=("refcoco-unc", "refcoco+-unc", "refcocog-umd"),
                    description="RefCOCO/+/g from MDETR's finetune_*.json (option dataset=refcoco|refcoco+|refcocog)."),
        DatasetSpec(name="flickr30k_entities", tasks=("grounding",), factory=_loader("flickr30k_entities", "load"),
                    splits=flickr30k_entities.SPLITS, default_split="test", forms=img,
                    layout=flickr30k_entities.LAYOUT, options=flickr30k_entities.OPTIONS,
                    protocols=("any-box", "merged-box"),
                    description="Flickr30k Entities phrase grounding (one sample per phrase; ANY-/MERGED-box)."),
    ]
    for name, fn in (("mvsa_single", "load_single"), ("mvsa_multiple", "load_multiple")):
        out.append(DatasetSpec(
            name=name, tasks=("classification",), factory=_loader("mvsa", fn), splits=mvsa.SPLITS,
            default_split="test", forms=img + ("text_only",), layout=mvsa.layout(name), options=mvsa.RAW_OPTIONS,
            protocols=("stratified-8:1:1",),
            description=f"{name.replace('_', '-').upper()} raw release: literature label rule, stratified 8:1:1 split."))
    for name, fn in (("mvsa_single_clmlf", "load_single_clmlf"), ("mvsa_multiple_clmlf", "load_multiple_clmlf")):
        out.append(DatasetSpec(
            name=name, tasks=("classification",), factory=_loader("mvsa", fn), splits=mvsa.SPLITS,
            default_split="test", forms=img + ("text_only",), layout=mvsa.layout(name), options=mvsa.CLMLF_OPTIONS,
            protocols=("clmlf-fixed-split",),
            description="MVSA with CLMLF's fixed split files (text_only=true when images are absent)."))
    out += [
        DatasetSpec(name="jsonl", tasks=jsonl.TASKS, factory=_loader("jsonl", "load"), splits=jsonl.SPLITS,
                    default_split="test", forms=img + ("text_only",), layout=jsonl.LAYOUT, options=jsonl.OPTIONS,
                    split_files=("file",),
                    description="Custom data as JSON lines, one documented schema per task kind."),
        DatasetSpec(name="hf", tasks=("retrieval", "captioning", "classification"), factory=_loader("hf", "load"),
                    splits=hf.SPLITS, default_split="test", forms=img + ("text_only",), layout=hf.LAYOUT,
                    options=hf.OPTIONS,
                    description="Hugging Face datasets saved to disk, or parquet files (read with pyarrow)."),
    ]
    from mmbench.datasets import cocobu

    out.append(DatasetSpec(name="cocobu", tasks=("captioning",), factory=_loader("cocobu", "load"),
                           splits=cocobu.SPLITS, default_split="test", forms=("regions",), layout=cocobu.LAYOUT,
                           options=cocobu.OPTIONS, protocols=("all-captions",),
                           description="Bottom-up region features in the AoANet/self-critical layout (cocotalk.json + "
                                       "cocobu_att/<id>.npz, read lazily); references from the Karpathy or COCO json.",
                           variants={"image": "coco", "image_file": "coco"}))
    from mmbench.datasets import vilbert_lmdb as vl

    out += [
        DatasetSpec(name="vilbert_refer", tasks=("grounding",), factory=_loader("vilbert_lmdb", "load_refer"),
                    splits=("train", "val", "testA", "testB", "test"), default_split="val",
                    forms=("proposals", "regions"), layout=vl.REFER_LAYOUT.format(name="refcoco+", by="unc"),
                    options=vl.REFER_OPTIONS, protocols=("refcoco+-unc", "refcoco-unc", "refcocog-umd"),
                    description="RefCOCO(+/g) with ViLBERT's proposal features (official LMDB, read safely): "
                                "the proposals form (region features + their boxes)."),
        DatasetSpec(name="vilbert_flickr30k", tasks=("retrieval",), factory=_loader("vilbert_lmdb", "load_flickr30k"),
                    splits=("test",), default_split="test", forms=("regions",),
                    layout=vl.FLICKR_LAYOUT, options=vl.FLICKR_OPTIONS, protocols=("flickr30k-1k",),
                    description="Flickr30k retrieval in ViLBERT's files (jsonline + region-feature LMDB with boxes)."),
    ]
    return out

