"""mmbench hooks for ViLBERT. Cheap: no torch import, no weights read until a run builds a model."""

from __future__ import annotations

from mmbench import hookimpl
from mmbench.specs import ModelSpec, PublishedNumber

from mmbench_vilbert import __version__

#: Where the declared numbers are written. The 12-in-1 paper's own tables (Lu et al., CVPR 2020) could not be
#: read through the sources available, so none of its numbers is declared; these are the single-task ViLBERT
#: results (Lu et al., NeurIPS 2019) as the official repository's README listed them. They are compared only with
#: runs of single-task checkpoints (variant "single-task": no task tokens), never with multi_task_model.bin.
_SRC = ("facebookresearch/vilbert-multi-task README.md, table 'Benchmark Vision-Lanugage Tasks' (commits 7dd5a05 "
        "of 2019-08-04 to 4a91f26 of 2019-11-25; removed in 6929ccd, 2020-01-15): single-task fine-tuned ViLBERT "
        "(Lu et al., NeurIPS 2019), not the 12-in-1 multi-task model")
#: README row 'Ref Expression | RefCOCO+ | ViLBERT | 4e-5 | 72.34 (val) - 78.52 (testA) - 62.61 (testB)'
_REFCOCO_PLUS = {"val": 72.34, "testA": 78.52, "testB": 62.61}
#: README row 'Image Caption Ranking | Image Retrieval | ViLBERT | 2e-5 | 58.20 (R1) - 84.90 (R5) - 91.52 (R10)'
#: (Flickr30k: the row below it, SCAN 48.60 / 77.70 / 85.20, is SCAN's Flickr30K text-to-image result)
_FLICKR_IR = {"t2i.R@1": 58.20, "t2i.R@5": 84.90, "t2i.R@10": 91.52}


def _published_retrieval() -> tuple[PublishedNumber, ...]:
    return tuple(PublishedNumber(dataset="vilbert_flickr30k", metric=m, value=v, protocol="flickr30k-1k",
                                 split="test", variant="single-task",
                                 source=f"{_SRC}; row 'Image Caption Ranking / Image Retrieval'")
                 for m, v in _FLICKR_IR.items())


def _published_refer() -> tuple[PublishedNumber, ...]:
    # the official hit rule is IoU > 0.5 with +1 pixel sides: compare runs made with
    # --task-option convention=plus1 --task-option strict=true (README, "Referring expressions protocol")
    return tuple(PublishedNumber(dataset="vilbert_refer", metric=m, value=v, protocol="refcoco+-unc", split=split,
                                 variant="single-task", source=f"{_SRC}; row 'Ref Expression / RefCOCO+' ({split})")
                 for split, v in _REFCOCO_PLUS.items() for m in ("acc@0.5", "P@1"))

_FILES = {
    "checkpoint": "official state_dict file (train_tasks.py pytorch_model_<epoch>.bin, the released "
                  "multi_task_model.bin or pretrained_model.bin); default: the shipped demo model",
    "config": "its BERT-style config json (e.g. config/bert_base_6layer_6conect.json)",
    "vocab": "the BERT WordPiece vocab.txt (bert-base-uncased) or its folder; read locally, lower-cased",
    "device": "cpu | cuda | cuda:N (default: cuda when available)",
    "task_id": "the task token of a multi-task checkpoint (vilbert_tasks.yml: 7 RetrievalCOCO, 8 RetrievalFlickr30k, "
               "9 refcoco, 10 refcoco+, 11 refcocog)",
    "task_specific_tokens": "auto (default: on when the checkpoint has bert.embeddings.task_embeddings) | true | false "
                            "(the --task_specific_tokens flag)",
    "max_seq_length": "tokens per text incl. [CLS]/[SEP] (vilbert_tasks.yml: 30 retrieval, 20 referring expressions)",
    "max_region_num": "regions per image incl. the global one (vilbert_tasks.yml: 101)",
    "allow_unsafe_pickle": "true: load a checkpoint that needs unrestricted unpickling (only files you trust)",
    "batch_size": "items per block (default: the task kind's)",
}


@hookimpl
def mmbench_models():
    return [
        ModelSpec(
            name="vilbert", task="retrieval", factory="mmbench_vilbert.retrieval:build", accepts=("regions",),
            description=("ViLBERT two-stream cross-encoder (vilbert-multi-task): every caption scored against every "
                         "image with the vil_logit head (or the pre-training alignment head, head=alignment, for "
                         "zero-shot) as eval_retrieval.py does; official protocol text->image only. Region features "
                         "with their boxes (5-d locations, global region first). Without options, a small model "
                         "trained on the demo dataset."),
            version=__version__,
            options={**_FILES,
                     "head": "vil_logit (default; fine-tuned / multi-task checkpoints) | alignment (eval_retrieval.py "
                             "--zero_shot: softmax of cls.bi_seq_relationship, column 0)",
                     "boxes": "auto (default: required, except whole_image for the shipped demo model) | required | "
                              "whole_image (regions without boxes get the location [0, 0, 1, 1, 1])",
                     "pair_batch": "(caption, image) pairs per forward pass (default 500, eval_retrieval.py's half)"},
            published=_published_retrieval(),
        ),
        ModelSpec(
            name="vilbert-refcoco+", task="grounding", factory="mmbench_vilbert.grounding:build", accepts=("proposals",),
            description=("ViLBERT referring expressions (task_utils.py V-logit): every region proposal (and the "
                         "global region) scored with vision_logit, the proposals' boxes returned best first; "
                         "needs the proposals form (region features + their boxes: -d vilbert_refer, or the demo's "
                         "grounding data). Without options, a small model trained on the demo's proposals."),
            version=__version__,
            options={k: v for k, v in _FILES.items() if k != "checkpoint"} | {
                "checkpoint": "official VILBertForVLTasks state_dict (multi_task_model.bin or a refcoco+ fine-tune); "
                              "default: the shipped demo model (trained on the demo grounding data's proposals)"},
            published=_published_refer(),
        ),
    ]
