"""Captioning benchmarks (one run, this machine). Prints JSON.

    python benchmarks/bench_captioning.py [path/to/captions_val2017.json]

Tokenising all 25,014 COCO val2017 captions with the Java PTB tokenizer (the pycocoevalcap
reference, JVM start included) and with mmbench's Java-free tokenizer, and checking that
they agree token for token.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, ".")

from mmbench.metrics.captioning import tokenize  # noqa: E402

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "coco_captions_val2017" / "captions_val2017.json"

if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    anns = json.loads(path.read_text())["annotations"]
    caps: dict = {}
    for a in anns:
        caps.setdefault(str(a["image_id"]), []).append(a["caption"])
    t0 = time.perf_counter()
    java = tokenize(caps, "ptb")
    t_java = time.perf_counter() - t0
    t0 = time.perf_counter()
    py = tokenize(caps, "python")
    t_py = time.perf_counter() - t0
    print(json.dumps({"benchmark": f"PTB-tokenise {len(anns)} COCO val2017 captions", "java_ptb_s": t_java,
                      "python_s": t_py, "speedup": t_java / t_py, "identical": java == py}, indent=2))
