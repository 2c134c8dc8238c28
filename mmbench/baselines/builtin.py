"""mmbench's own baseline models, registered through the same hook as any third-party plugin.

None needs downloaded weights; each trains on the dataset's train split (``fit``). Factories
are ``"module:attr"`` strings, so listing them imports neither sklearn nor scipy.
"""

from __future__ import annotations

from mmbench.hookspecs import hookimpl
from mmbench.options import Option
from mmbench.specs import ModelSpec

_SK_OPTIONS = (Option("C", float, 10.0, "inverse L2 regularisation of the logistic regression", low=0.0),
               Option("max_iter", int, 2000, "solver iterations", low=0),
               Option("seed", int, 0, "random state", low=-1))


@hookimpl
def mmbench_models():
    return [
        ModelSpec(
            name="cca", task="retrieval", factory="mmbench.baselines.cca:build", accepts=("image",),
            version="1",
            description="Dual encoder: regularised CCA between image colour statistics (global + 3x3 grid "
                        "histograms) and caption TF-IDF words, fitted on the train split; cosine similarity.",
            options=(Option("dim", int, 16, "number of canonical directions", low=0),
                     Option("reg", float, 1.0, "ridge on each side's covariance, relative to its mean variance")),
        ),
        ModelSpec(
            name="nn-caption", task="captioning", factory="mmbench.baselines.nn_caption:build",
            accepts=("image",), version="1",
            description="Nearest train image in colour-statistics space; returns that image's consensus "
                        "caption (highest mean TF-IDF similarity to its other captions).",
            options=(Option("k", int, 1, "neighbours; k > 1 returns the consensus of their captions", low=0),),
        ),
        ModelSpec(
            name="colour-box", task="grounding", factory="mmbench.baselines.colour_box:build",
            accepts=("image",), version="1",
            description="Parses colour/shape/size/position words and ranks connected colour regions of "
                        "the image by how many they match; pixel xyxy boxes, no training.",
            options=(Option("big_fraction", float, 0.19, "box side, as a fraction of the image side, from which a "
                                                          "region is 'big'", low=0.0, high=1.0),
                     Option("min_area", int, 12, "smallest region in pixels", low=0)),
        ),
        ModelSpec(
            name="sk-early-fusion", task="classification", factory="mmbench.baselines.sk_classify:early_fusion",
            accepts=("image",), version="1", options=_SK_OPTIONS,
            description="Logistic regression over concatenated TF-IDF words and image colour statistics.",
        ),
        ModelSpec(
            name="sk-late-fusion", task="classification", factory="mmbench.baselines.sk_classify:late_fusion",
            accepts=("image",), version="1", options=_SK_OPTIONS,
            description="One logistic regression per modality (TF-IDF words, colour statistics); "
                        "class probabilities averaged.",
        ),
        ModelSpec(
            name="sk-text-only", task="classification", factory="mmbench.baselines.sk_classify:text_only",
            accepts=("text_only", "image", "image_file", "regions"), version="1",
            options=_SK_OPTIONS,
            description="Logistic regression over TF-IDF words; ignores images, so it runs on any input form "
                        "and on text-only data.",
        ),
        ModelSpec(
            name="sk-image-only", task="classification", factory="mmbench.baselines.sk_classify:image_only",
            accepts=("image",), version="1", options=_SK_OPTIONS,
            description="Logistic regression over image colour statistics; ignores the text.",
        ),
    ]
