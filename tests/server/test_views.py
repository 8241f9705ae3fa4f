"""The server's map PNGs use the one diverging colour map of the inspection views."""
import io

import numpy as np
from PIL import Image

from viscnn.inspection import draw
from viscnn.server.views import upscale


def test_activation_and_kernel_pngs_are_drawn_with_the_inspection_map(client, state):
    params = {"image": "i3", "layer": "features.3", "channel": 4}
    values = np.array(client.get("/api/activation", params=params).json()["values"])
    picture = np.asarray(Image.open(io.BytesIO(client.get("/api/activation.png", params=params).content)).convert("RGB"))
    assert np.array_equal(picture, draw.colours(values))  # diverging when signed, else sequential
    kernel = np.array(client.get("/api/edges/features.3/5/2").json()["kernel"])
    kernel_png = Image.open(io.BytesIO(client.get("/api/edges/features.3/5/2/kernel.png").content)).convert("RGB")
    assert np.array_equal(np.asarray(kernel_png), upscale(draw.diverging(kernel)))
    assert tuple(draw.diverging(np.array([0.0, 2.0]))[0]) == tuple(draw.diverging(np.zeros(1), 1.0)[0])  # 0 is white


def test_the_map_scales_by_the_largest_magnitude_and_draws_nan_as_zero():
    values = np.array([[-2.0, 0.0], [1.0, np.nan]])
    colours = draw.diverging(values)
    assert np.array_equal(colours, draw.diverging(np.array([[-2.0, 0.0], [1.0, 0.0]]), 2.0))
    assert np.array_equal(draw.diverging(np.zeros((2, 2))), draw.diverging(np.zeros((2, 2)), 1.0))  # all white
