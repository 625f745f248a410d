import numpy as np
import pytest

from addon.core.conventions import BACKGROUND_ID
from addon.core.segmentation import (
    ADE20K_CLASSES,
    ADE20K_PALETTE,
    ade20k_color,
    ade20k_index,
    segmentation_to_control,
)

# Entries checked by hand against mmsegmentation's ADE20KDataset (index, name, RGB).
KNOWN = [
    (0, "wall", (120, 120, 120)),
    (1, "building", (180, 120, 120)),
    (2, "sky", (6, 230, 230)),
    (3, "floor", (80, 50, 50)),
    (4, "tree", (4, 200, 3)),
    (5, "ceiling", (120, 120, 80)),
    (6, "road", (140, 140, 140)),
    (7, "bed", (204, 5, 255)),
    (8, "windowpane", (230, 230, 230)),
    (9, "grass", (4, 250, 7)),
    (12, "person", (150, 5, 61)),
    (14, "door", (8, 255, 51)),
    (15, "table", (255, 6, 82)),
    (19, "chair", (204, 70, 3)),
    (20, "car", (0, 102, 200)),
    (21, "water", (61, 230, 250)),
    (48, "skyscraper", (140, 140, 140)),
    (88, "booth", (255, 0, 204)),
    (89, "television receiver", (0, 255, 194)),
    (149, "flag", (92, 0, 255)),
]


def test_palette_has_150_distinct_names_and_rgb_triples():
    assert len(ADE20K_CLASSES) == len(ADE20K_PALETTE) == 150
    assert len(set(ADE20K_CLASSES)) == 150
    assert all(len(c) == 3 and all(0 <= v <= 255 for v in c) for c in ADE20K_PALETTE)
    assert (0, 0, 0) not in ADE20K_PALETTE  # black stays free for "no object"


@pytest.mark.parametrize("index, name, rgb", KNOWN)
def test_known_entries(index, name, rgb):
    assert ADE20K_CLASSES[index] == name
    assert ade20k_index(name) == index
    assert ade20k_color(name) == rgb


def test_names_are_forgiving_about_case_spaces_and_aliases():
    assert ade20k_color("  Sky ") == (6, 230, 230)
    assert ade20k_color("chest_of_drawers") == ade20k_color("chest of drawers")
    assert ade20k_color("window") == ade20k_color("windowpane")
    assert ade20k_color("TV") == ade20k_color("television receiver")


def test_unknown_class_lists_close_matches():
    with pytest.raises(ValueError, match="'buildings' is not an ADE20K class; did you mean 'building'"):
        ade20k_color("buildings")
    with pytest.raises(ValueError, match="not an ADE20K class \\(the 150"):
        ade20k_color("xyzzy")


def test_segmentation_image_colours_objects_and_leaves_background_black():
    ids = np.array([[BACKGROUND_ID, 0, 0], [1, 1, 2], [2, 7, BACKGROUND_ID]], dtype=np.int32)
    img = segmentation_to_control(ids, {0: "sky", 1: "tree", 2: "road"})
    assert img.dtype == np.uint8 and img.shape == (3, 3, 3)
    assert img[0, 0].tolist() == [0, 0, 0]
    assert img[0, 1].tolist() == [6, 230, 230] and img[0, 2].tolist() == [6, 230, 230]
    assert img[1, 0].tolist() == [4, 200, 3]
    assert img[1, 2].tolist() == [140, 140, 140]
    assert img[2, 1].tolist() == [0, 0, 0]  # id 7 has no class: unlabelled
    assert img[2, 2].tolist() == [0, 0, 0]


def test_segmentation_rejects_bad_class_before_drawing():
    with pytest.raises(ValueError, match="did you mean"):
        segmentation_to_control(np.zeros((2, 2), np.int32), {0: "tre"})
    with pytest.raises(ValueError, match="shape"):
        segmentation_to_control(np.zeros(4, np.int32), {})
