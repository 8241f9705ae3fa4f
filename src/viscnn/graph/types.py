"""The graph's vocabulary: nodes (filters), edges (kernels), layers and receptive fields."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

INPUT = "input"
NO_SOURCE = -1  # this input channel does not come from that layer
ALL_CHANNELS = -2  # this input channel depends on every channel of that layer (e.g. after a mean over channels)


@dataclass(frozen=True, order=True)
class Node:
    """A filter: output channel `channel` of conv `layer` (or an image channel of layer 'input')."""

    layer: str
    channel: int

    def __str__(self) -> str:
        return f"{self.layer}:{self.channel}"


@dataclass(frozen=True, order=True)
class Edge:
    """A 2D kernel of conv `layer`, from its input channel `inp` (absolute index) to output channel `out`."""

    layer: str
    out: int
    inp: int

    def __str__(self) -> str:
        return f"{self.layer}:{self.out}<-{self.inp}"

    @property
    def node(self) -> Node:
        """The filter this kernel feeds."""
        return Node(self.layer, self.out)


@dataclass(frozen=True)
class Unit:
    """One unit of node `channel`'s map of conv `layer`: row `y`, column `x`.

    `y` and `x` are None together when the position is left open: `viscnn composition` then takes the
    unit where the channel's map peaks on its image.
    """

    layer: str
    channel: int
    y: int | None = None
    x: int | None = None

    def __post_init__(self) -> None:
        if (self.y is None) != (self.x is None):
            raise ValueError(f"unit {self.layer}:{self.channel} needs both y and x, or neither")

    def __str__(self) -> str:
        return f"{self.layer}:{self.channel}" + ("" if self.y is None else f":{self.y},{self.x}")

    @property
    def node(self) -> Node:
        return Node(self.layer, self.channel)

    @property
    def position(self) -> tuple[int, int] | None:
        return None if self.y is None or self.x is None else (self.y, self.x)


@dataclass(frozen=True)
class ReceptiveField:
    """Where a unit of a map looks in the input image, in input pixels.

    Unit (y, x) sees rows [offset_h + y * stride_h, offset_h + y * stride_h + size_h) and likewise for
    columns. `offset` can be negative: part of the field lies in the padding. `whole_image` marks maps
    whose units see everything (after global pooling or a flatten).
    """

    size: tuple[float, float]
    stride: tuple[float, float]
    offset: tuple[float, float]
    whole_image: bool = False

    def box(self, y: int, x: int) -> tuple[float, float, float, float]:
        """(top, left, bottom, right) of unit (y, x)'s field, in input pixels (not clipped to the image)."""
        top = self.offset[0] + y * self.stride[0]
        left = self.offset[1] + x * self.stride[1]
        return (top, left, top + self.size[0], left + self.size[1])

    def to_json(self) -> dict:
        return {"size": list(self.size), "stride": list(self.stride), "offset": list(self.offset), "whole_image": self.whole_image}


@dataclass
class Layer:
    """One conv call (or the input image, or a linear head) of the traced model.

    `sources` says where each input channel comes from: a list of (source layer, array over this layer's
    input channels holding the source channel, NO_SOURCE or ALL_CHANNELS). An input channel can come
    from several layers (after a residual add); `cat` offsets the indices.
    """

    name: str
    kind: str  # "input" | "conv" | "linear"
    index: int
    out_channels: int
    in_channels: int = 0
    groups: int = 1
    kernel_size: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)  # top, bottom, left, right (zero padding folded in)
    dilation: tuple[int, int] = (1, 1)
    padding_mode: str = "zeros"
    bias: bool = False
    module: str = ""
    weight_name: str | None = None
    input_shape: tuple[int, ...] = ()
    output_shape: tuple[int, ...] = ()
    receptive_field: ReceptiveField | None = None
    sources: list[tuple[str, np.ndarray]] = field(default_factory=list)
    batchnorm: str | None = None  # module name of a BatchNorm applied directly to this layer's output
    rewritten: bool = False  # an in-place op (ReLU(inplace=True), +=) overwrites this layer's map
    depth: int = 0

    @property
    def in_per_group(self) -> int:
        return self.in_channels // self.groups if self.groups else 0

    @property
    def out_per_group(self) -> int:
        return self.out_channels // self.groups if self.groups else 0

    @property
    def num_edges(self) -> int:
        return self.out_channels * self.in_per_group if self.kind == "conv" else 0

    @property
    def source_layers(self) -> list[str]:
        return sorted({name for name, _ in self.sources})

    def input_channel(self, out: int, local_in: int) -> int:
        """Absolute input channel of the kernel at weight[out, local_in]."""
        return (out // self.out_per_group) * self.in_per_group + local_in

    def in_sources(self, channel: int) -> list[Node]:
        """The nodes feeding input channel `channel` (absolute index) of this layer."""
        nodes: list[Node] = []
        for name, index in self.sources:
            value = int(index[channel])
            if value >= 0:
                nodes.append(Node(name, value))
            elif value == ALL_CHANNELS:
                nodes.append(Node(name, ALL_CHANNELS))
        return nodes
