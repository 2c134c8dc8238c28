"""mmbench's own dataset adapters, registered through the same hook as any third-party plugin."""

from __future__ import annotations

from mmbench.hookspecs import hookimpl
from mmbench.specs import DatasetSpec


@hookimpl
def mmbench_datasets():
    return [
        DatasetSpec(
            name="demo", tasks=("retrieval", "captioning", "grounding", "classification"),
            factory="mmbench.datasets.demo:load", splits=("train", "val", "test"), default_split="test",
            forms=("image", "regions"), needs_data_root=False,
            description="Embedded synthetic scenes (shapes, colours, positions), generated in code: "
                        "images, region features, 5 captions, referring expressions, 3-class labels.",
            layout="Generated in memory; nothing on disk.",
            protocols=("5-per-image",),
            options={"size": "images per split multiplier (default 1)", "seed": "generation seed (default 0)",
                     "text_only": "classification without images (true/false)"},
        ),
    ]
