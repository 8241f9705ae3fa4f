"""Ops the tracer cannot follow stop it with one line naming the op and the module."""
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from viscnn.errors import ViscnnError
from viscnn.graph import UnsupportedOp, build_graph


class ChannelAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.mix = nn.Parameter(torch.randn(8, 8))

    def forward(self, x):
        return torch.einsum("nchw,cd->ndhw", self.conv(x), self.mix)


class Blocks(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(3, 4, 3), ChannelAttention2())


class ChannelAttention2(nn.Module):
    def forward(self, x):
        return torch.nn.functional.conv3d(x.unsqueeze(2), torch.ones(2, 4, 1, 1, 1)).squeeze(2)


def test_einsum_names_op_and_module():
    with pytest.raises(UnsupportedOp) as error:
        build_graph(ChannelAttention(), (3, 8, 8))
    message = str(error.value)
    assert "einsum" in message and "'<model>'" in message and "[1, 8, 6, 6]" in message
    assert "\n" not in message


def test_conv3d_inside_a_submodule_is_named():
    model = Blocks()
    model.forward = lambda x: model.block(x)
    with pytest.raises(UnsupportedOp, match=r"conv3d in module 'block\.1'"):
        build_graph(model, (3, 8, 8))


def test_channels_last_linear_is_refused():
    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(3, 4, 1), nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(self.conv(x).permute(0, 2, 3, 1))

    with pytest.raises(UnsupportedOp, match="linear"):
        build_graph(MLP(), (3, 4, 4))


def test_linear_with_a_weight_from_the_image_is_refused():
    # the image reaches the linear only through its weight: once an AttributeError, not the one clear error
    class DynamicWeight(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 1)

        def forward(self, x):
            return torch.nn.functional.linear(torch.ones(1, 4), self.conv(x).mean((2, 3)))

    with pytest.raises(UnsupportedOp, match="linear layer whose input does not come from the image"):
        build_graph(DynamicWeight(), (3, 4, 4))


def test_model_without_convs_and_model_that_fails():
    with pytest.raises(ViscnnError, match="no 2D convolution"):
        build_graph(nn.Sequential(nn.Flatten(), nn.Linear(12, 2)), (3, 2, 2))
    with pytest.raises(ViscnnError, match=r"failed on an input of shape \[1, 1, 8, 8\]"):
        build_graph(nn.Conv2d(3, 4, 3), (1, 8, 8))


def test_cli_reports_unsupported_op_in_one_line(tmp_path):
    model_file = tmp_path / "attn.py"
    model_file.write_text(textwrap.dedent("""
        import torch
        from torch import nn

        PREPROCESS = dict(size=32, resize=None)

        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 8, 3)

            def forward(self, x):
                y = self.conv(x)
                return torch.einsum("nchw,ndhw->ncd", y, y)

        def make():
            return Net()
    """))
    done = subprocess.run([sys.executable, "-m", "viscnn", "graph", "--model", f"{model_file}:make"],
                          capture_output=True, text=True)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "einsum" in lines[0] and "Traceback" not in done.stderr
