"""mmbench hooks for ViLBERT. Cheap: no torch import, no weights read until a run builds a model."""

from __future__ import annotations

from mmbench import hookimpl
from mmbench.specs import ModelSpec

from mmbench_vilbert import __version__

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
        ),
        ModelSpec(
            name="vilbert-refcoco+", task="grounding", factory="mmbench_vilbert.grounding:build", accepts=("proposals",),
            description=("ViLBERT referring expressions (task_utils.py V-logit): every region proposal (and the "
                         "global region) scored with vision_logit, the proposals' boxes returned best first; "
                         "needs the proposals form (-d vilbert_refer) and an official VILBertForVLTasks checkpoint."),
            version=__version__,
            options={k: v for k, v in _FILES.items() if k != "checkpoint"} | {
                "checkpoint": "official VILBertForVLTasks state_dict (multi_task_model.bin or a refcoco+ fine-tune); "
                              "required (there is no demo model: the demo data has no proposal boxes)"},
        ),
    ]
