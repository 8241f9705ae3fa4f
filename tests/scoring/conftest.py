"""A small model file and image tensor shared by the query, CLI and distributed tests."""
import textwrap

import pytest
import torch

NET = """
import torch
from torch import nn

PREPROCESS = dict(size=16, resize=None, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))

def make():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, groups=2), nn.ReLU(), nn.Conv2d(8, 6, 1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 4))
"""


@pytest.fixture(scope="session")
def small_model(tmp_path_factory):
    folder = tmp_path_factory.mktemp("small")
    (folder / "net.py").write_text(textwrap.dedent(NET))
    generator = torch.Generator().manual_seed(1)
    torch.save({"images": torch.rand(10, 3, 16, 16, generator=generator),
                "labels": torch.randint(0, 4, (10,), generator=generator)}, folder / "imgs.pt")
    for name, seed in (("cats", 2), ("dogs", 3)):
        sub = folder / "sets" / name
        sub.mkdir(parents=True)
        images = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(seed))
        from PIL import Image

        for k, image in enumerate(images):
            Image.fromarray((image.permute(1, 2, 0).numpy() * 255).astype("uint8")).save(sub / f"{k}.png")
    return folder
