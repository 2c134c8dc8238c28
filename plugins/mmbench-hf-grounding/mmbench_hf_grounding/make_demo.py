"""Write the tiny demo folders shipped in this package (random weights, seeded; run from the repo root):

    python -m mmbench_hf_grounding.make_demo            # rewrites demo_owlvit/, demo_owlv2/, demo_*grounding_dino/

Zero-shot detectors are not trained here: the folders exist so that ``mmbench eval -p owlvit -p owlv2
-p grounding-dino -p mm-grounding-dino -d demo`` runs out of the box and exercises the whole path
(processor, model, post-processing, ranking); their demo numbers are near chance by design.
Each folder is ``save_pretrained`` of the model and of its processor (tokenizer + image processor),
the layout ``--option model=PATH`` expects from a real checkpoint.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from mmbench_hf_grounding import tiny

HERE = Path(__file__).resolve().parent
SEEDS = {"owlvit": 11, "owlv2": 12, "grounding-dino": 13, "mm-grounding-dino": 14}
MAX_BYTES = 500_000


def build(kind: str, out: Path, seed: int | None = None) -> Path:
    """Write one tiny random ``kind`` folder (model + processor) to ``out``."""
    import torch
    import transformers

    seed = SEEDS[kind] if seed is None else seed
    torch.manual_seed(seed)
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    if kind in ("owlvit", "owlv2"):
        tok = tiny.clip_bpe_tokenizer()
        cls = transformers.OwlViTForObjectDetection if kind == "owlvit" else transformers.Owlv2ForObjectDetection
        model = cls(tiny.tiny_owl_config(kind, len(tok), image_size=96, patch=16))
        processor = tiny.owl_processor(kind, tok, image_size=96)
    else:
        with tempfile.TemporaryDirectory() as d:
            tok = tiny.bert_tokenizer(d)
            mm = kind == "mm-grounding-dino"
            cls = transformers.MMGroundingDinoForObjectDetection if mm else transformers.GroundingDinoForObjectDetection
            model = cls(tiny.tiny_grounding_dino_config(len(tok), mm=mm, d_model=32, text_layers=1, text_hidden=16))
            processor = tiny.grounding_dino_processor(tok, shortest_edge=64, longest_edge=128)
            processor.save_pretrained(out)
    if kind in ("owlvit", "owlv2"):
        processor.save_pretrained(out)
    tiny.randomize(model.eval(), seed)
    model.save_pretrained(out)
    for f in out.iterdir():
        f.chmod(0o644)  # package data: readable by everyone (save_pretrained writes weights 0600)
    (out / "demo.json").write_text(json.dumps({
        "what": f"tiny {kind} with random weights (seed {seed}), not trained: demo numbers are near chance",
        "made_by": "python -m mmbench_hf_grounding.make_demo", "seed": seed,
        "transformers": transformers.__version__}, indent=1) + "\n", encoding="utf-8")
    size = sum(f.stat().st_size for f in out.iterdir())
    if size > MAX_BYTES:
        raise SystemExit(f"{out}: {size} bytes, over the {MAX_BYTES} bytes a shipped demo folder may take")
    return out


def main() -> None:
    for kind in SEEDS:
        out = build(kind, HERE / ("demo_" + kind.replace("-", "_")))
        print(out.name, sum(f.stat().st_size for f in out.iterdir()), "bytes")


if __name__ == "__main__":
    main()
