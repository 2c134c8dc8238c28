"""``colour-box``: ground an expression by matching its colour/shape/size/position words to colour regions.

No detector and no training: the image is cut into connected regions of saturated
colour (``features.colour_components``), each region gets attributes read off its
pixels (named colour, shape guessed from the fill ratio of its box, size from its box
side, position from its centre), and regions are ranked by how many of the
expression's words they match. Shape from fill ratio cannot tell a triangle from a
diamond (both fill half their box): that is this baseline's known blind spot.
"""

from __future__ import annotations

import numpy as np

from mmbench.baselines.features import BASIC_COLOURS, colour_components, tokenize

SHAPE_LEXICON = {
    "circle": "circle", "ball": "circle", "disc": "circle", "disk": "circle", "round": "circle",
    "square": "square", "box": "square", "block": "square", "rectangle": "square",
    "triangle": "triangle", "triangular": "triangle", "wedge": "triangle",
    "diamond": "diamond", "rhombus": "diamond", "lozenge": "diamond",
}
SIZE_LEXICON = {"small": "small", "little": "small", "tiny": "small",
                "big": "big", "large": "big", "huge": "big"}
POSITION_LEXICON = {"left": "left", "right": "right", "middle": "middle", "centre": "middle",
                    "center": "middle", "central": "middle"}


def parse_expression(text: str) -> dict[str, str]:
    """The colour, shape, size and position words of an expression, canonicalised."""
    out: dict[str, str] = {}
    for tok in tokenize(text):
        if tok in BASIC_COLOURS:
            out.setdefault("colour", tok)
        elif tok in SHAPE_LEXICON:
            out.setdefault("shape", SHAPE_LEXICON[tok])
        elif tok in SIZE_LEXICON:
            out.setdefault("size", SIZE_LEXICON[tok])
        elif tok in POSITION_LEXICON:
            out.setdefault("position", POSITION_LEXICON[tok])
    return out


def shape_scores(fill: float) -> dict[str, float]:
    """How well a fill ratio fits each shape (1 = typical): square ~1, circle ~0.79, others ~0.5."""
    typical = {"square": 1.0, "circle": np.pi / 4, "triangle": 0.5, "diamond": 0.5}
    return {k: float(np.exp(-((fill - v) / 0.08) ** 2)) for k, v in typical.items()}


class ColourBoxGrounder:
    box_format = "xyxy"
    box_normalized = False

    def __init__(self, big_fraction: float = 0.19, min_area: int = 12):
        self.big_fraction = float(big_fraction)
        self.min_area = int(min_area)
        self.batch_size = 64

    def rank(self, image, expression: str) -> np.ndarray:
        arr = np.asarray(image.load())
        h, w = arr.shape[:2]
        comps = colour_components(arr, min_area=self.min_area)
        if not comps:
            return np.array([[0.0, 0.0, float(w), float(h)]])
        want = parse_expression(expression)
        scored = []
        for c in comps:
            x0, y0, x1, y1 = c.box
            s = 0.0
            if "colour" in want:
                s += 2.0 * (c.colour == want["colour"])
            if "shape" in want:
                s += 1.5 * shape_scores(c.fill)[want["shape"]]
            if "size" in want:
                big = max(x1 - x0, y1 - y0) >= self.big_fraction * min(w, h)
                s += 1.0 * (big == (want["size"] == "big"))
            if "position" in want:
                third = int(3 * ((x0 + x1) / 2) / w)
                s += 2.0 * (("left", "middle", "right")[min(third, 2)] == want["position"])
            scored.append((-s, -c.area, c.box))
        scored.sort()
        return np.array([b for _, _, b in scored], dtype=np.float64)

    def predict(self, samples):
        return [self.rank(s.image, s.expression) for s in samples]


def build(big_fraction: str | float = 0.19, min_area: str | int = 12) -> ColourBoxGrounder:
    from mmbench.errors import MMBenchError

    try:
        return ColourBoxGrounder(big_fraction=float(big_fraction), min_area=int(min_area))
    except ValueError:
        raise MMBenchError(f"colour-box: options big_fraction={big_fraction!r}, min_area={min_area!r}: "
                           f"expected a number and an integer") from None
