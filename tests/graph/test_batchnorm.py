"""BN after a conv is recorded for folding; node ids stay the conv's."""
import torchvision
from torch import nn

from tests.graph.helpers import graph_and_replay


def test_resnet_convs_know_their_batchnorm():
    graph = graph_and_replay(torchvision.models.resnet18(weights=None), (3, 224, 224), size=32)
    assert graph["conv1"].batchnorm == "bn1"
    assert graph["layer2.0.downsample.0"].batchnorm == "layer2.0.downsample.1"
    assert all(name.endswith(("conv1", "conv2", "downsample.0")) for name in graph.layers if name != "input")


def test_bn_after_an_add_is_not_attributed_to_a_conv():
    class AddThenNorm(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.bn = nn.Conv2d(3, 4, 1), nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4)
            self.out = nn.Conv2d(4, 2, 1)

        def forward(self, x):
            return self.out(self.bn(self.a(x) + self.b(x)))

    graph = graph_and_replay(AddThenNorm(), (3, 6, 6))
    assert graph["a"].batchnorm is None and graph["b"].batchnorm is None
    assert graph["out"].source_layers == ["a", "b"]
