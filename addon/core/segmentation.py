"""ADE20K-coloured segmentation images: what ControlNet's segmentation models were trained on.

ControlNet's seg models (lllyasviel/sd-controlnet-seg, control_v11p_sd15_seg) read images coloured
with the ADE20K 150-class palette used by mmsegmentation's ``ADE20KDataset`` (and by the UniFormer /
OneFormer annotators). Each object gets a class from the user ("wall", "tree", ...); its pixels get
that class's colour. Background (no object) is black, which is not an ADE20K class colour, so the
model sees "unlabelled" there — like the sky being absent rather than painted as sky.

Colours are plain 8-bit RGB (no colour management); arrays are row 0 = top.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

import numpy as np

from .conventions import BACKGROUND_ID, BACKGROUND_RGB

#: The 150 ADE20K class names in index order (mmsegmentation's ADE20KDataset.CLASSES; "bed " without
#: its trailing space).
ADE20K_CLASSES: tuple[str, ...] = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair",
    "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field",
    "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion",
    "base", "box", "column", "signboard", "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace",
    "refrigerator", "grandstand", "path", "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway",
    "river", "bridge", "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel",
    "bus", "towel", "light", "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver",
    "airplane", "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet",
    "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool",
    "stool", "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball",
    "food", "step", "tank", "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher",
    "screen", "blanket", "sculpture", "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan",
    "pier", "crt screen", "plate", "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)  # fmt: skip

#: RGB of each class, same order (mmsegmentation's ADE20KDataset.PALETTE, as ControlNet's annotator
#: uses it). Quirk of the original, kept on purpose: "road" (6) and "skyscraper" (48) share
#: (140, 140, 140), so a model reads both the same way.
ADE20K_PALETTE: tuple[tuple[int, int, int], ...] = (
    (120, 120, 120), (180, 120, 120), (6, 230, 230), (80, 50, 50), (4, 200, 3),
    (120, 120, 80), (140, 140, 140), (204, 5, 255), (230, 230, 230), (4, 250, 7),
    (224, 5, 255), (235, 255, 7), (150, 5, 61), (120, 120, 70), (8, 255, 51),
    (255, 6, 82), (143, 255, 140), (204, 255, 4), (255, 51, 7), (204, 70, 3),
    (0, 102, 200), (61, 230, 250), (255, 6, 51), (11, 102, 255), (255, 7, 71),
    (255, 9, 224), (9, 7, 230), (220, 220, 220), (255, 9, 92), (112, 9, 255),
    (8, 255, 214), (7, 255, 224), (255, 184, 6), (10, 255, 71), (255, 41, 10),
    (7, 255, 255), (224, 255, 8), (102, 8, 255), (255, 61, 6), (255, 194, 7),
    (255, 122, 8), (0, 255, 20), (255, 8, 41), (255, 5, 153), (6, 51, 255),
    (235, 12, 255), (160, 150, 20), (0, 163, 255), (140, 140, 140), (250, 10, 15),
    (20, 255, 0), (31, 255, 0), (255, 31, 0), (255, 224, 0), (153, 255, 0),
    (0, 0, 255), (255, 71, 0), (0, 235, 255), (0, 173, 255), (31, 0, 255),
    (11, 200, 200), (255, 82, 0), (0, 255, 245), (0, 61, 255), (0, 255, 112),
    (0, 255, 133), (255, 0, 0), (255, 163, 0), (255, 102, 0), (194, 255, 0),
    (0, 143, 255), (51, 255, 0), (0, 82, 255), (0, 255, 41), (0, 255, 173),
    (10, 0, 255), (173, 255, 0), (0, 255, 153), (255, 92, 0), (255, 0, 255),
    (255, 0, 245), (255, 0, 102), (255, 173, 0), (255, 0, 20), (255, 184, 184),
    (0, 31, 255), (0, 255, 61), (0, 71, 255), (255, 0, 204), (0, 255, 194),
    (0, 255, 82), (0, 10, 255), (0, 112, 255), (51, 0, 255), (0, 194, 255),
    (0, 122, 255), (0, 255, 163), (255, 153, 0), (0, 255, 10), (255, 112, 0),
    (143, 255, 0), (82, 0, 255), (163, 255, 0), (255, 235, 0), (8, 184, 170),
    (133, 0, 255), (0, 255, 92), (184, 0, 255), (255, 0, 31), (0, 184, 255),
    (0, 214, 255), (255, 0, 112), (92, 255, 0), (0, 224, 255), (112, 224, 255),
    (70, 184, 160), (163, 0, 255), (153, 0, 255), (71, 255, 0), (255, 0, 163),
    (255, 204, 0), (255, 0, 143), (0, 255, 235), (133, 255, 0), (255, 0, 235),
    (245, 0, 255), (255, 0, 122), (255, 245, 0), (10, 190, 212), (214, 255, 0),
    (0, 204, 255), (20, 0, 255), (255, 255, 0), (0, 153, 255), (0, 41, 255),
    (0, 255, 204), (41, 0, 255), (41, 255, 0), (173, 0, 255), (0, 245, 255),
    (71, 0, 255), (122, 0, 255), (0, 255, 184), (0, 92, 255), (184, 255, 0),
    (0, 133, 255), (255, 214, 0), (25, 194, 194), (102, 255, 0), (92, 0, 255),
)

#: Everyday names for classes whose ADE20K name is unusual (ADE20K's objectInfo150 synonyms).
ALIASES: Mapping[str, str] = {
    "window": "windowpane",
    "television": "television receiver",
    "tv": "television receiver",
    "trash can": "ashcan",
    "bin": "ashcan",
    "ground": "earth",
    "picture": "painting",
    "couch": "sofa",
    "carpet": "rug",
    "stone": "rock",
    "fridge": "refrigerator",
    "street lamp": "streetlight",
    "toy": "plaything",
    "palm tree": "palm",
    "sign": "signboard",
    "bike": "bicycle",
    "plane": "airplane",
    "cupboard": "cabinet",
}

_INDEX = {name: i for i, name in enumerate(ADE20K_CLASSES)}


def _canonical(name: str) -> str:
    key = " ".join(str(name).strip().lower().replace("_", " ").split())
    return ALIASES.get(key, key)


def ade20k_index(name: str) -> int:
    """The ADE20K class index (0..149) of a class name or alias; ValueError with close matches."""
    key = _canonical(name)
    if key in _INDEX:
        return _INDEX[key]
    close = difflib.get_close_matches(key, list(_INDEX) + list(ALIASES), n=5, cutoff=0.6)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(f"{name!r} is not an ADE20K class{hint} (the 150 names are in ADE20K_CLASSES)")


def ade20k_color(name: str) -> tuple[int, int, int]:
    """The 8-bit RGB colour of an ADE20K class (or alias), e.g. ``ade20k_color("sky") == (6, 230, 230)``."""
    return ADE20K_PALETTE[ade20k_index(name)]


def segmentation_to_control(object_id: np.ndarray, classes: Mapping[int, str]) -> np.ndarray:
    """An ADE20K segmentation image: (H, W) int object ids → (H, W, 3) uint8.

    ``object_id``: ``BACKGROUND_ID`` (−1) where no object was hit (see ``conventions``).
    ``classes``: object id → class name. Pixels of ids missing from ``classes``, and background,
    are black. Unknown class names raise ``ValueError`` before anything is drawn.
    """
    ids = np.asarray(object_id)
    if ids.ndim != 2:
        raise ValueError(f"object_id must be (H, W), got shape {ids.shape}")
    colors = {int(k): ade20k_color(v) for k, v in classes.items()}  # validates every name first
    out = np.full(ids.shape + (3,), BACKGROUND_RGB, dtype=np.uint8)
    if not colors:
        return out
    present = np.unique(ids)
    for oid in present:
        if int(oid) != BACKGROUND_ID and int(oid) in colors:
            out[ids == oid] = colors[int(oid)]
    return out
