"""The small conv net of the circuit tests (a pooled branch, a grouped conv, a skip add); also a model file
for the CLI (`small.py:make`, with its PREPROCESS)."""
import torch
from torch import nn

PREPROCESS = {"size": 16, "resize": None, "mean": (0.0,), "std": (1.0,), "channels": 1}


class Small(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.c1 = nn.Conv2d(1, 8, 3, padding=1)
        self.c2 = nn.Conv2d(8, 12, 3, padding=1)
        self.c3 = nn.Conv2d(12, 12, 3, padding=1, groups=3)
        self.c4 = nn.Conv2d(12, 8, 3, padding=1)

    def forward(self, x):
        x = torch.relu(self.c1(x))
        y = torch.relu(self.c2(nn.functional.max_pool2d(x, 2)))
        return self.c4(torch.relu(self.c3(y)) + y)


def make():
    return Small()
