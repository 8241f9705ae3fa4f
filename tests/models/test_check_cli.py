"""`viscnn check`: what the model is fed and why, its graph, and every op the trace cannot follow."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import torch

MLP_NET = """
import torch
from torch import nn

PREPROCESS = dict(size=16, resize=None, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))

class Block(nn.Module):  # a ConvNeXt-like block: a linear layer over channels-last maps
    def __init__(self, c):
        super().__init__()
        self.dw = nn.Conv2d(c, c, 3, padding=1, groups=c)
        self.mlp = nn.Linear(c, c)

    def forward(self, x):
        return x + self.mlp(self.dw(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

def make():
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), Block(8), Block(8), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 3))
"""


def check(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "viscnn", "check", *args], capture_output=True, text=True,
                          timeout=300, check=False)


def test_fmnist_says_its_input_its_images_and_its_graph():
    done = check("--model", "fmnist-convnet")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "1x28x28" in out and "mean (0.286), std (0.353)" in out and "viscnn's zoo entry" in out
    assert "fashion-mnist:test:100 (the model's default)" in out
    assert "every op followed; 5 conv layers, 352 filter nodes" in out


def test_a_model_file_without_preprocess_is_said_to_take_its_input_from_the_images(tmp_path):
    (tmp_path / "net.py").write_text("from torch import nn\n\ndef make():\n    return nn.Conv2d(3, 4, 3)\n")
    torch.save(torch.rand(3, 3, 20, 20), tmp_path / "t.pt")
    done = check("--model", f"{tmp_path / 'net.py'}:make", "--images", str(tmp_path / "t.pt"))
    assert done.returncode == 0, done.stderr
    assert "RANDOM weights" in done.stdout
    assert "has no PREPROCESS" in done.stdout and done.stderr.count("has no PREPROCESS") == 1


def test_every_op_it_cannot_follow_is_listed_and_the_exit_is_2(tmp_path):
    (tmp_path / "net.py").write_text(textwrap.dedent(MLP_NET))
    torch.save(torch.rand(2, 3, 16, 16), tmp_path / "t.pt")
    done = check("--model", f"{tmp_path / 'net.py'}:make", "--images", str(tmp_path / "t.pt"))
    assert done.returncode == 2
    listed = [line for line in done.stdout.splitlines() if line.startswith("  - unsupported op")]
    assert len(listed) == 2 and "'1.mlp'" in listed[0] and "'2.mlp'" in listed[1]
    assert done.stderr.strip().splitlines() == ["viscnn check: error: "
                                                f"{tmp_path / 'net.py'}:make uses 2 op(s) viscnn cannot follow (listed above)"]


def test_tensor_images_of_another_size_are_refused_unless_resized(tmp_path):
    torch.save(torch.rand(2, 1, 32, 32), tmp_path / "t.pt")
    refused = check("--model", "fmnist-convnet", "--images", str(tmp_path / "t.pt"))
    assert refused.returncode == 2 and "holds 32x32 tensor images but the model takes 28x28" in refused.stderr
    resized = check("--model", "fmnist-convnet", "--images", str(tmp_path / "t.pt"), "--resize")
    assert resized.returncode == 0 and "goes in as [2, 1, 28, 28]" in resized.stdout
