"""The page and the server colour maps with one table each: web/src/palettes.ts is matplotlib's, as draw.py uses it."""
import re
from pathlib import Path

import numpy as np
import pytest

from viscnn.inspection import draw

PALETTES = Path(__file__).resolve().parents[2] / "web" / "src" / "palettes.ts"


def _table(name: str) -> np.ndarray:
    text = PALETTES.read_text()
    body = re.search(rf"export const {name} =\s*((?:\"[0-9a-f]+\"(?:\s*\+\s*)?)+);", text)
    assert body, f"{name} not found in {PALETTES}"
    hexes = "".join(re.findall(r'"([0-9a-f]+)"', body.group(1)))
    return np.array([[int(hexes[i + k:i + k + 2], 16) for k in (0, 2, 4)] for i in range(0, len(hexes), 6)], np.uint8)


@pytest.mark.parametrize("name, colormap", [("DIVERGING_HEX", draw.DIVERGING), ("SEQUENTIAL_HEX", draw.SEQUENTIAL)])
def test_the_page_palettes_are_the_servers(name, colormap):
    table = _table(name)
    assert table.shape == (256, 3)
    assert np.array_equal(table, draw.palette(colormap)), "run scripts/make_palettes.py"


def test_signed_maps_diverge_and_one_signed_maps_are_sequential():
    signed = draw.choose_scale(np.array([[-1.0, 3.0], [0.0, 2.0]]))
    assert (signed.kind, signed.low, signed.high) == ("diverging", -3.0, 3.0)
    positive = draw.choose_scale(np.array([0.0, 2.0, np.nan, 5.0]))
    assert (positive.kind, positive.low, positive.high, positive.flat) == ("sequential", 0.0, 5.0, False)
    negative = draw.choose_scale(np.array([-4.0, -1.0]))
    assert (negative.kind, negative.low, negative.high) == ("sequential", -4.0, -1.0)
    assert draw.choose_scale(np.full((3, 3), 0.7)).flat
    assert draw.choose_scale(np.array([np.nan])).flat


def test_colours_follow_the_chosen_scale():
    values = np.array([0.0, 1.0, 2.0])
    rgb = draw.colours(values)
    lut = draw.palette(draw.SEQUENTIAL)
    assert np.array_equal(rgb, lut[[0, 128, 255]])  # 0.5 of the way rounds to 128 (as the page does)
    signed = draw.colours(np.array([-2.0, 0.0, 2.0]))
    assert np.array_equal(signed, draw.palette(draw.DIVERGING)[[0, 128, 255]])
    flat = draw.colours(np.full(4, 3.0))
    assert (flat == lut[0]).all()


def test_a_colour_bar_shows_a_sequential_scale_from_its_low_to_its_high_end():
    bar = np.asarray(draw.colorbar(draw.ColourScale("sequential", 1.0, 4.0), width=100))
    lut = draw.palette(draw.SEQUENTIAL)
    assert tuple(bar[0, 1]) == tuple(lut[0]) and tuple(bar[0, 100]) == tuple(lut[255])
