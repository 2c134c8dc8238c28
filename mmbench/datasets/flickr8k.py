"""The original Flickr8k text layout: ``Flickr8k.token.txt`` + ``Flickr_8k.{train,dev,test}Images.txt``.

The same 6000 / 1000 / 1000 split as Karpathy's ``dataset_flickr8k.json`` (the ``val``
split is the ``dev`` list). Token lines are ``<image>.jpg#<k>\\t<caption>``; the file
also names one image that is in no split list (``2258277193_586949ec62.jpg.1``), kept
as-is and simply never selected.
"""

from __future__ import annotations

from pathlib import Path

from mmbench.datasets import common as C
from mmbench.errors import DataError
from mmbench.tasks.base import ImageItem

SPLIT_FILES = {"train": "Flickr_8k.trainImages.txt", "val": "Flickr_8k.devImages.txt",
               "test": "Flickr_8k.testImages.txt"}

LAYOUT = f"""DATA_ROOT/ (either layout, auto-detected)
  dataset_flickr8k.json      Karpathy splits ({C.KARPATHY_SOURCE})
  -- or the original Flickr8k_text layout --
  Flickr8k.token.txt         '<image>.jpg#<k>\\t<caption>' lines
  Flickr_8k.trainImages.txt, Flickr_8k.devImages.txt, Flickr_8k.testImages.txt
  Flicker8k_Dataset/*.jpg    the 8091 images (also: Flickr8k_Dataset/, images/, Images/;
                             or --dataset-option images=DIR)
  (Flickr8k: Hodosh et al. 2013, research-use terms)"""

IMAGE_DIRS = ("Flicker8k_Dataset", "Flickr8k_Dataset/Flicker8k_Dataset", "Flickr8k_Dataset", "images", "Images", ".")


def parse_tokens(path: Path, *, layout: str = "") -> dict[str, list[str]]:
    """image name -> captions in file order (the ``#k`` numbers order them)."""
    caps: dict[str, list[tuple[int, str]]] = {}
    for n, line in enumerate(C.read_lines(path, layout=layout), 1):
        if not line.strip():
            continue
        key, tab, text = line.partition("\t")
        name, hash_, k = key.rpartition("#")
        if not tab or not hash_ or not name or not k.strip().isdigit():
            raise DataError(path, f"line {n} is {C._short(line)}", field=f"line {n}",
                            expected="'<image>.jpg#<k><TAB><caption>'", layout=layout or None)
        if len(k.strip()) > 6:
            raise DataError(path, f"line {n}: caption number {C._short(k)}", field=f"line {n}",
                            expected="'<image>.jpg#<k>' with a small k")
        if int(k) in {j for j, _ in caps.get(name, [])}:
            raise DataError(path, f"line {n}: duplicate caption id {name}#{int(k)}", field=f"line {n}",
                            expected="each '<image>#<k>' once")
        caps.setdefault(name, []).append((int(k), C.text_value(text, source=path, where=f"line {n}",
                                                                 key=f"line {n}", what="caption")))
    return {name: [t for _, t in sorted(v, key=lambda x: x[0])] for name, v in caps.items()}


def parse_split_list(path: Path, *, layout: str = "") -> list[str]:
    names = [ln.strip() for ln in C.read_lines(path, layout=layout) if ln.strip()]
    for n, name in enumerate(names, 1):
        if "\t" in name or " " in name:
            raise DataError(path, f"entry {n} is {C._short(name)}", field=f"line {n}", expected="one image name per line")
    seen = C.Unique(path, "image name", "image")
    for n, name in enumerate(names, 1):
        seen(name, f"line {n}", detail="; it would be evaluated twice")
    return names


def load_original(task: str, split: str, root: Path, *, captions: str, protocol: str, missing: str,
                  images: str | None):
    layout = LAYOUT
    tok = C.require_file(root / "Flickr8k.token.txt", what="Flickr8k.token.txt", layout=layout)
    lst = C.require_file(root / SPLIT_FILES[split], what=f"split list {SPLIT_FILES[split]}", layout=layout)
    caps = parse_tokens(tok, layout=layout)
    names = parse_split_list(lst, layout=layout)
    no_caps = [n for n in names if n not in caps]
    if no_caps:
        raise DataError(lst, f"{len(no_caps)} listed image(s) have no caption in {tok.name} "
                             f"(first: {', '.join(no_caps[:C.FIRST_N])})", expected="names that appear in the token file")
    img_dir = C.find_dir(root, IMAGE_DIRS, option=images, dataset="flickr8k", what="image",
                         layout=layout)
    entries = [(ImageItem(id=n, path=C.inside(img_dir, n, source=lst, field=f"line {i + 1}")), caps[n])
               for i, n in enumerate(names)]
    return C.build_image_text(task, "flickr8k", split, entries, captions=captions, protocol=protocol,
                              files=[tok, lst], root=root, missing=missing, image_dir=img_dir, notes=[],
                              source=lst)
