"""The embedded ``demo`` dataset: synthetic scenes generated in code, for every task kind.

Each scene is a 96x96 RGB image with 1-3 shapes (circle, square, triangle, diamond in six
colours, small or big), one per horizontal third (left / middle / right; big neighbours may
overlap), each lit from a random direction (its dark side may look like another colour),
over 0-2 unmentioned scribbles, on a background whose colour carries a "mood" (bright
warm, mid grey, dark blue-grey) with a gradient and pixel noise. From one scene the
generator derives:

- ``image``: the in-memory PIL image (``ImageItem.pil``, ``size=(96, 96)``);
- ``regions``: float32 (36, 64) bottom-up-attention-like features: 2-4 noisy rows per
  object and 2-3 background rows, each a ReLU of a fixed random projection of the
  object's (or background's) attributes plus noise, the other rows low-energy noise,
  rows shuffled. 36 rows because SGRAF hard-codes BatchNorm1d(36); D = 64;
- ``region_boxes`` (grounding only, the ``proposals`` form): float32 (36, 4) pixel xyxy, one
  detector-like box per row of ``regions``: an object row's box is its object's box jittered
  (IoU >= 0.5 with it), a background row's a near-whole-image box, a noise row's a random box.
  They come from a stream of their own (``_proposal_boxes``), so every other form's content is
  what it was before the boxes existed;
- 5 varied captions (templates, synonyms, word order, optional attributes);
- one referring expression per object with its pixel xyxy box, unique within the image;
- a tweet-like text and a positive / neutral / negative label that needs both the
  text's sentiment cue and the image's background mood (see ``_label``), with 8 % label
  noise, plus unlabelled extra samples for the classification train split.

Everything is a pure function of (split, size, seed) and ``GENERATOR_VERSION`` (the boxes:
and ``PROPOSALS_VERSION``); scene i of a split has its own random stream, so ``size=2``
extends ``size=1``. Generation is cached per (split, size, seed) in-process.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mmbench.datasets.common import adapter
from mmbench.errors import DataError
from mmbench.options import Option

#: Bump when the generated content changes: it is part of every fingerprint (and seeds every
#: scene's stream, so a bump redraws everything).
GENERATOR_VERSION = "1"
#: Bump when the proposal boxes (``region_boxes``, grounding's ``proposals`` form) change. They have
#: their own stream, so the other forms do not move with them. Version "1" is the first set of boxes
#: and leaves the fingerprint as it was before boxes existed: the forms every earlier record read are
#: bit-identical, so those records stay comparable (nothing could read demo proposals before). Any
#: later version joins the grounding fingerprint (see ``_meta``).
PROPOSALS_VERSION = "1"

#: The input forms the demo offers: every kind has ``image`` and ``regions``; grounding also ``proposals``
#: (``region_boxes``). The dataset spec (mmbench/datasets/builtin.py) declares them.
FORMS = ("image", "regions", "proposals")

IMAGE_SIZE = 96
NUM_REGIONS = 36
REGION_DIM = 64
SPLITS = ("train", "val", "test")
#: Scenes per split at size=1 (classification train also gets UNLABELLED_PER_SIZE extra).
SPLIT_SIZES = {"train": 400, "val": 100, "test": 200}
UNLABELLED_PER_SIZE = 200
CLASSES = ["positive", "neutral", "negative"]  # 0 / 1 / 2, as the CLMLF MVSA files
LABEL_NOISE = 0.08
from mmbench.tasks import BUILTIN_KINDS as TASKS  # noqa: E402 - the adapter offers every built-in kind

SHAPES = ("circle", "square", "triangle", "diamond")
COLOURS = {
    "red": (220, 40, 40), "green": (40, 170, 60), "blue": (40, 80, 220),
    "yellow": (240, 210, 40), "purple": (140, 60, 180), "orange": (245, 140, 30),
}
COLOUR_NAMES = tuple(COLOURS)
SIZES = ("small", "big")
SLOTS = ("left", "middle", "right")
#: Background mood: +1 bright warm, 0 mid grey, -1 dark blue-grey.
MOODS = {1: (232, 212, 168), 0: (150, 150, 150), -1: (58, 64, 86)}

SHAPE_WORDS = {
    "circle": ("circle", "ball", "disc", "round shape"),
    "square": ("square", "box", "block"),
    "triangle": ("triangle", "triangular shape", "wedge"),
    "diamond": ("diamond", "rhombus", "lozenge"),
}
SIZE_WORDS = {"small": ("small", "little", "tiny"), "big": ("big", "large", "huge")}
POSITION_WORDS = {
    "left": ("on the left", "at the left", "to the left"),
    "middle": ("in the middle", "in the centre", "at the center"),
    "right": ("on the right", "at the right", "to the right"),
}
MOOD_WORDS = {1: ("bright", "sunny", "light"), 0: ("grey", "plain", "dull"), -1: ("dark", "gloomy", "black")}

_TWEET_POS = ("love this", "so happy", "what a great day", "amazing", "best thing ever", "beautiful",
              "feeling wonderful", "awesome")
_TWEET_NEG = ("hate this", "so sad", "what an awful day", "terrible", "worst thing ever", "ugly",
              "feeling horrible", "disgusting")
_TWEET_NEU = ("just posted a photo", "here it is", "another day", "photo of the day", "new upload",
              "at the office", "look at this", "taken earlier")
_TWEET_TAGS = ("#art", "#shapes", "#daily", "#pic", "#mood", "#today", "", "")


@dataclass
class DemoObject:
    shape: str
    colour: str
    size: str
    slot: str
    box: tuple[int, int, int, int]  # pixel xyxy, continuous convention (x2 = x1 + width)


@dataclass
class DemoScene:
    id: str
    pil: object
    regions: np.ndarray
    objects: list[DemoObject]
    mood: int
    captions: list[str]
    expressions: list[str]  # one per object, same order as objects
    tweet: str
    text_cue: int
    label: int
    #: which row of ``regions`` shows what: the object's index (>= 0), BACKGROUND_ROW or NOISE_ROW
    region_source: np.ndarray | None = None
    region_boxes: np.ndarray | None = None  # (36, 4) float32 pixel xyxy, one per row of ``regions``


# ---------------------------------------------------------------------------------------------
# options

OPTIONS = (
    Option("size", int, 1, "images per split multiplier (default 1)", low=0),
    Option("seed", int, 0, "generation seed (default 0)", low=-1),
    Option("text_only", bool, False, "classification without images (true/false)"),
)


# ---------------------------------------------------------------------------------------------
# generation


@lru_cache(maxsize=1)
def _projection() -> np.ndarray:
    """The fixed random projection of region attributes (independent of the data seed)."""
    return np.random.default_rng(20240611).normal(0.0, 1.0, size=(_ATTR_DIM, REGION_DIM)).astype(np.float32)


# object attributes: shape(4) colour(6) size(2) slot(3) cx cy r; background: mood(3) rgb(3); bias
_ATTR_DIM = 4 + 6 + 2 + 3 + 3 + 3 + 3 + 1


def _object_attr(o: DemoObject) -> np.ndarray:
    a = np.zeros(_ATTR_DIM, np.float32)
    a[SHAPES.index(o.shape)] = 1
    a[4 + COLOUR_NAMES.index(o.colour)] = 1
    a[10 + SIZES.index(o.size)] = 1
    a[12 + SLOTS.index(o.slot)] = 1
    x1, y1, x2, y2 = o.box
    a[15:18] = ((x1 + x2) / 2 / IMAGE_SIZE, (y1 + y2) / 2 / IMAGE_SIZE, (x2 - x1) / IMAGE_SIZE)
    a[-1] = 1
    return a


def _background_attr(mood: int, rgb) -> np.ndarray:
    a = np.zeros(_ATTR_DIM, np.float32)
    a[18 + (1 - mood)] = 1
    a[21:24] = np.asarray(rgb, np.float32) / 255.0
    a[-1] = 1
    return a


#: ``DemoScene.region_source`` of a background row and of a low-energy noise row
BACKGROUND_ROW, NOISE_ROW = -1, -2


def _regions(rng: np.random.Generator, objects: list[DemoObject], mood: int, bg_rgb) -> tuple[np.ndarray, np.ndarray]:
    """(features (36, 64) float32, the source of each row: object index, BACKGROUND_ROW or NOISE_ROW)."""
    w = _projection()
    rows, source = [], []
    for k, o in enumerate(objects):
        a = _object_attr(o)
        for _ in range(int(rng.integers(2, 5))):  # overlapping proposals of one object
            rows.append(np.maximum(a @ w + rng.normal(0, 0.6, REGION_DIM), 0.0))
            source.append(k)
    b = _background_attr(mood, bg_rgb)
    for _ in range(int(rng.integers(2, 4))):
        rows.append(np.maximum(b @ w * 0.5 + rng.normal(0, 0.6, REGION_DIM), 0.0))
        source.append(BACKGROUND_ROW)
    while len(rows) < NUM_REGIONS:
        rows.append(np.abs(rng.normal(0, 0.05, REGION_DIM)))
        source.append(NOISE_ROW)
    feats = np.stack(rows[:NUM_REGIONS]).astype(np.float32)
    perm = rng.permutation(NUM_REGIONS)
    return feats[perm], np.asarray(source[:NUM_REGIONS], np.int64)[perm]


#: mixed into the proposal boxes' seed: their stream is not the scene's (whose draws stay as they were)
_PROPOSAL_STREAM = 0x70B0C5


def _box_iou(a, b) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _proposal_boxes(seed: int, split_index: int, i: int, objects: list[DemoObject], source: np.ndarray) -> np.ndarray:
    """Detector-like pixel xyxy boxes (continuous convention), one per feature row, in the rows' (shuffled)
    order: object rows a jittered box of their object (shift up to 15 % and scale 0.8-1.25 of its size per
    side, redrawn until IoU >= 0.55 with the object's box), background rows a box covering most of the
    image, noise rows a random 8-48 px box. From a stream of their own: the scene's draws are untouched."""
    rng = np.random.default_rng([seed, split_index, i, int(GENERATOR_VERSION), _PROPOSAL_STREAM,
                                 int(PROPOSALS_VERSION)])
    s = float(IMAGE_SIZE)
    out = np.zeros((len(source), 4), np.float64)
    for r, src in enumerate(source.tolist()):
        if src >= 0:
            x1, y1, x2, y2 = (float(v) for v in objects[src].box)
            w, h = x2 - x1, y2 - y1
            box = (x1, y1, x2, y2)
            for _ in range(20):
                cx = (x1 + x2) / 2 + rng.uniform(-0.15, 0.15) * w
                cy = (y1 + y2) / 2 + rng.uniform(-0.15, 0.15) * h
                bw, bh = w * rng.uniform(0.8, 1.25), h * rng.uniform(0.8, 1.25)
                cand = (max(0.0, cx - bw / 2), max(0.0, cy - bh / 2), min(s, cx + bw / 2), min(s, cy + bh / 2))
                if _box_iou(cand, objects[src].box) >= 0.55:
                    box = cand
                    break
        elif src == BACKGROUND_ROW:
            box = (rng.uniform(0, 8), rng.uniform(0, 8), rng.uniform(s - 8, s), rng.uniform(s - 8, s))
        else:
            bw, bh = rng.uniform(8, 48, 2)
            x1, y1 = rng.uniform(0, s - bw), rng.uniform(0, s - bh)
            box = (x1, y1, x1 + bw, y1 + bh)
        out[r] = box
    # float32, like detector outputs; rounding cannot leave the image or flip a side (0 <= x1 < x2 <= 96)
    return out.astype(np.float32)


def _render(rng: np.random.Generator, objects: list[DemoObject], bg_rgb) -> object:
    from PIL import Image, ImageDraw

    s = IMAGE_SIZE
    base = np.empty((s, s, 3), np.float32)
    base[:] = bg_rgb
    # a soft vertical gradient and pixel noise, so backgrounds are not one flat colour
    base += np.linspace(-12, 12, s, dtype=np.float32)[:, None, None]
    base += rng.normal(0, 6, size=(s, s, 3)).astype(np.float32)
    im = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(im)
    # unmentioned clutter, like the background stuff of real photos: thin scribbles in
    # object colours, behind the objects
    for _ in range(int(rng.choice(3, p=[0.4, 0.4, 0.2]))):
        pts = [tuple(rng.uniform(4, s - 4, 2))]
        for _ in range(2):
            ang, length = rng.uniform(0, 2 * np.pi), rng.uniform(8, 22)
            x, y = pts[-1]
            pts.append((float(np.clip(x + length * np.cos(ang), 1, s - 2)),
                        float(np.clip(y + length * np.sin(ang), 1, s - 2))))
        draw.line(pts, fill=COLOURS[_pick(rng, COLOUR_NAMES)], width=3)
    for k in rng.permutation(len(objects)):  # random drawing order decides who hides whom
        o = objects[int(k)]
        x1, y1, x2, y2 = o.box
        fill = np.clip(np.asarray(COLOURS[o.colour], np.float32) + rng.integers(-12, 13, 3), 0, 255)
        w, h = x2 - x1, y2 - y1
        cx, cy = w / 2, h / 2  # in box coordinates
        mask = Image.new("L", (w, h), 0)
        mdraw = ImageDraw.Draw(mask)
        # PIL draws inclusive pixel coordinates: the shape covers pixels x1..x2-1
        if o.shape == "circle":
            mdraw.ellipse([0, 0, w - 1, h - 1], fill=255)
        elif o.shape == "square":
            mdraw.rectangle([0, 0, w - 1, h - 1], fill=255)
        elif o.shape == "triangle":
            mdraw.polygon([(cx - 0.5, 0), (w - 1, h - 1), (0, h - 1)], fill=255)
        else:
            mdraw.polygon([(cx - 0.5, 0), (w - 1, cy - 0.5), (cx - 0.5, h - 1), (0, cy - 0.5)], fill=255)
        # lighting: brightness falls off across the shape in a random direction, by up to 40 %,
        # so a shaded red's dark side looks brown (pixel colour is not the object's name)
        ang, strength = rng.uniform(0, 2 * np.pi), rng.uniform(0.0, 0.4)
        yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
        t = ((xx + 0.5 - cx) * np.cos(ang) + (yy + 0.5 - cy) * np.sin(ang)) / max(1.0, w / 2)
        shade = 1.0 + 0.1 * strength - strength * np.clip((t + 1) / 2, 0, 1)
        layer = np.clip(fill[None, None, :] * shade[:, :, None], 0, 255).astype(np.uint8)
        im.paste(Image.fromarray(layer, "RGB"), (x1, y1), mask=mask)
    return im


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _phrase(rng, o: DemoObject, *, colour=True, size=None, position=False) -> str:
    words = []
    if size is None:
        size = rng.random() < 0.5
    if size:
        words.append(_pick(rng, SIZE_WORDS[o.size]))
    if colour:
        words.append(o.colour)
    words.append(_pick(rng, SHAPE_WORDS[o.shape]))
    text = " ".join(words)
    if position:
        text += " " + _pick(rng, POSITION_WORDS[o.slot])
    return text


def _a(phrase: str) -> str:
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def _caption(rng, objects: list[DemoObject], mood: int, style: int) -> str:
    objs = list(objects)
    if rng.random() < 0.5:
        objs = [objs[i] for i in rng.permutation(len(objs))]
    n = len(objs)
    mood_txt = f" on a {_pick(rng, MOOD_WORDS[mood])} background"
    if style == 0:
        parts = [_a(_phrase(rng, o)) for o in objs]
        text = parts[0] if n == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    elif style == 1:
        parts = [_a(_phrase(rng, o, position=True)) for o in objs]
        text = "there is " + " and ".join(parts)
    elif style == 2:
        number = ("one shape", "two shapes", "three shapes")[n - 1]
        text = f"{number}: " + ", ".join(_phrase(rng, o, size=False) for o in objs)
    elif style == 3:
        if n == 1:
            text = "a picture of " + _a(_phrase(rng, objs[0], position=True))
        else:
            ordered = sorted(objs, key=lambda o: SLOTS.index(o.slot))
            text = _a(_phrase(rng, ordered[0])) + " to the left of " + _a(_phrase(rng, ordered[1]))
            if n == 3:
                text += " and " + _a(_phrase(rng, ordered[2]))
    else:
        text = "a drawing with " + " and ".join(_a(_phrase(rng, o, colour=rng.random() < 0.7)) for o in objs)
    if rng.random() < 0.3:
        text += mood_txt
    return text


#: referring-expression attribute sets, from least to most specific
_REF_ATTRS = (("colour", "shape"), ("shape",), ("colour",), ("size",), ("size", "shape"),
              ("size", "colour", "shape"),
              ("shape", "slot"), ("colour", "slot"), ("slot",), ("colour", "shape", "slot"))


def _matches(o: DemoObject, other: DemoObject, attrs) -> bool:
    return all(getattr(o, a) == getattr(other, a) for a in attrs)


def _expression(rng, o: DemoObject, objects: list[DemoObject]) -> str:
    unique = [attrs for attrs in _REF_ATTRS
              if not any(_matches(o, p, attrs) for p in objects if p is not o)]
    attrs = unique[int(rng.integers(len(unique)))]  # "slot" alone is always unique
    words = ["the"]
    if "size" in attrs:
        words.append(_pick(rng, SIZE_WORDS[o.size]))
    if "colour" in attrs:
        words.append(o.colour)
    if "shape" in attrs:
        words.append(_pick(rng, SHAPE_WORDS[o.shape]))
    elif "slot" in attrs and "colour" not in attrs:
        words.append(_pick(rng, ("shape", "object", "thing")))
    else:
        words.append("one")
    if "slot" in attrs:
        words.append(_pick(rng, POSITION_WORDS[o.slot]))
    return " ".join(words)


def _label(text_cue: int, mood: int) -> int:
    """The label rule: the sign of text cue + image mood (each in {-1, 0, +1}).

    Either cue alone leaves the label ambiguous (text +1 with mood -1 is neutral), so a
    unimodal model tops out near 55 % while a fused one can reach ~92 % (label noise).
    """
    total = text_cue + mood
    return 0 if total > 0 else (2 if total < 0 else 1)


def _tweet(rng, cue: int, objects: list[DemoObject]) -> str:
    phrase = _pick(rng, {1: _TWEET_POS, 0: _TWEET_NEU, -1: _TWEET_NEG}[cue])
    thing = _phrase(rng, _pick(rng, objects), size=False)
    forms = (f"{phrase}! my {thing}", f"{thing} {phrase}", f"{phrase}, look at the {thing}",
             f"@friend {phrase} {thing}")
    text = forms[int(rng.integers(len(forms)))]
    tag = _pick(rng, _TWEET_TAGS)
    return f"{text} {tag}".strip()


def _scene(seed: int, split_index: int, i: int, prefix: str) -> DemoScene:
    rng = np.random.default_rng([seed, split_index, i, int(GENERATOR_VERSION)])
    n_obj = int(rng.choice([1, 2, 3], p=[0.25, 0.4, 0.35]))
    slots = sorted(rng.choice(3, size=n_obj, replace=False).tolist())
    third = IMAGE_SIZE // 3
    objects = []
    for slot in slots:
        size = SIZES[int(rng.integers(2))]
        half = int(rng.integers(5, 8)) if size == "small" else int(rng.integers(11, 15))
        # the centre stays inside its third, so big neighbours may overlap (the later one drawn
        # hides part of the earlier; boxes stay the full shape extent)
        lo = max(slot * third + 4, half + 1)
        hi = min((slot + 1) * third - 4, IMAGE_SIZE - half - 1)
        cx = int(rng.integers(lo, hi + 1))
        cy = int(rng.integers(half + 2, IMAGE_SIZE - half - 2))
        objects.append(DemoObject(shape=SHAPES[int(rng.integers(4))], colour=COLOUR_NAMES[int(rng.integers(6))],
                                  size=size, slot=SLOTS[slot], box=(cx - half, cy - half, cx + half, cy + half)))
    mood = int(rng.integers(3)) - 1
    bg = tuple(int(np.clip(c + rng.integers(-15, 16), 0, 255)) for c in MOODS[mood])
    pil = _render(rng, objects, bg)
    regions, source = _regions(rng, objects, mood, bg)
    captions: list[str] = []
    styles = rng.permutation(5).tolist()  # five different sentence shapes, then random ones
    while len(captions) < 5:
        style = styles.pop() if styles else int(rng.integers(5))
        c = _caption(rng, objects, mood, style)
        if c not in captions:
            captions.append(c)
    expressions = [_expression(rng, o, objects) for o in objects]
    text_cue = int(rng.integers(3)) - 1
    tweet = _tweet(rng, text_cue, objects)
    label = _label(text_cue, mood)
    if rng.random() < LABEL_NOISE:
        label = int((label + rng.integers(1, 3)) % 3)
    return DemoScene(id=f"{prefix}{i:05d}", pil=pil, regions=regions, objects=objects, mood=mood,
                     captions=captions, expressions=expressions, tweet=tweet, text_cue=text_cue, label=label,
                     region_source=source, region_boxes=_proposal_boxes(seed, split_index, i, objects, source))


@lru_cache(maxsize=16)
def scenes(split: str, size: int = 1, seed: int = 0) -> tuple[DemoScene, ...]:
    """The scenes of one split (cached). ``split`` may also be ``"unlabelled"`` (train extras)."""
    if split == "unlabelled":
        n, index = UNLABELLED_PER_SIZE * size, 3
    else:
        n, index = SPLIT_SIZES[split] * size, SPLITS.index(split)
    return tuple(_scene(seed, index, i, f"demo-{split}-") for i in range(n))


# ---------------------------------------------------------------------------------------------
# task views


def _meta(task: str, split: str, size: int, seed: int, text_only: bool, protocol: str, forms, notes=()):
    from mmbench.records import fingerprint
    from mmbench.tasks import DatasetMeta

    parts = ("demo", GENERATOR_VERSION, seed, size, split, task, text_only)
    if "proposals" in forms and PROPOSALS_VERSION != "1":
        # the first boxes ("1") keep the fingerprint of the data before them (see PROPOSALS_VERSION)
        parts += ("proposals", PROPOSALS_VERSION)
    fp = fingerprint(*parts)
    return DatasetMeta(name="demo", split=split, task=task, protocol=protocol, fingerprint=fp, data_root=None,
                       files=[], forms=tuple(forms), notes=list(notes))


def _item(s: DemoScene, proposals: bool = False):
    """The scene's image item; ``proposals``: with the region boxes (grounding's ``proposals`` form)."""
    from mmbench.tasks import ImageItem

    return ImageItem(id=s.id, pil=s.pil, regions=s.regions, size=(IMAGE_SIZE, IMAGE_SIZE),
                     region_boxes=s.region_boxes if proposals else None)


@adapter("demo")
def load(task: str, split: str, data_root=None, *, size: int, seed: int, text_only: bool):
    """The demo data of ``task`` and ``split``; option values may be strings (``OPTIONS``)."""
    if text_only and task != "classification":
        raise DataError(None, f"demo dataset option text_only=true does not apply to task {task}",
                        field="text_only", expected="text_only only with classification")
    sc = scenes(split, size, seed)
    forms = ("image", "regions")
    if task == "retrieval":
        from mmbench.tasks import RetrievalData

        texts = [c for s in sc for c in s.captions]
        return RetrievalData(images=[_item(s) for s in sc], texts=texts,
                             text_image=np.repeat(np.arange(len(sc)), 5),
                             meta=_meta(task, split, size, seed, False, "5-per-image", forms))
    if task == "captioning":
        from mmbench.tasks import CaptioningData

        return CaptioningData(images=[_item(s) for s in sc], references=[list(s.captions) for s in sc],
                              meta=_meta(task, split, size, seed, False, "5-per-image", forms))
    if task == "grounding":
        from mmbench.tasks import GroundingData, GroundingSample

        # only grounding has the proposals form: the other kinds' items stay as they were (a model that
        # reads boxes when present, e.g. ViLBERT retrieval's whole-image demo, would otherwise change)
        samples = []
        for s in sc:
            item = _item(s, proposals=True)
            for k, (o, e) in enumerate(zip(s.objects, s.expressions)):
                samples.append(GroundingSample(id=f"{s.id}-{k}", image=item, expression=e,
                                               boxes=np.array([o.box], dtype=np.float64)))
        return GroundingData(samples=samples, meta=_meta(task, split, size, seed, False, "", forms + ("proposals",)))
    from mmbench.tasks import ClassificationData, ClassificationSample

    def sample(s: DemoScene, labelled: bool):
        return ClassificationSample(id=s.id, text=s.tweet, image=None if text_only else _item(s),
                                    label=s.label if labelled else None)

    unlabelled = [sample(s, False) for s in scenes("unlabelled", size, seed)] if split == "train" else []
    return ClassificationData(samples=[sample(s, True) for s in sc], classes=list(CLASSES),
                              meta=_meta(task, split, size, seed, text_only, "",
                                         ("text_only",) if text_only else forms),
                              unlabelled=unlabelled)
