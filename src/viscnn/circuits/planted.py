"""Planted circuits: small CNNs whose circuit is known by construction, one hard case each.

Every case is a network with hand-set weights, a node target, and the kernels that carry the target
(the planted circuit; where several sets do it equally, every one of them). Around the planted kernels
sit a few weak filler kernels (random, small) and the case's distractors. The cases:

    redundant   two identical paths OR-ed by a saturating clamp: each alone suffices, so removing either
                changes nothing and its first kernel's |map x gradient| is exactly 0 (single-kernel
                ablation, Taylor and SNIP all say it does nothing)
    gating      a signal multiplied by a saturated sigmoid gate: the gate's kernel has a gradient of
                ~1e-4, yet without it the signal is lost
    threshold   a ReLU whose bias lets it fire only on two of three identical inputs: any single input
                can go (the output is only rescaled), two must stay; Taylor ranks all three alike
    distractor  kernels with large activations that do not reach the target in r: a chain from a
                constant input channel (a constant offset, invisible to Pearson r) and two large paths
                that cancel exactly; and large-weight kernels into a dead ReLU (the magnitude trap)
    residual    a residual block whose branch cancels the skip of one channel and carries a signal
    depthwise   a MobileNet block (conv, depthwise, pointwise) with a constant-offset depthwise channel
    combined    four layers holding redundant copies, a two-of-three threshold, a plain signal, a constant
                chain, cancelling paths and dead large weights at once (six planted sets)

Each planted set is checked by ablation (`verify`): it reproduces the target (r >= R_PLANTED on fresh
images), every kernel of it is needed (removing any one drops r below R_PLANTED), and where the number of
subsets is small enough, every subset of at most as many kernels of the nonzero ones is tried: the planted
sets are then exactly the smallest sets that reproduce the target. Inputs are binary pixel planes
(Bernoulli 0.5) and, where a case says so, a constant plane of ones.
"""
from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import cast

import torch
from torch import nn
from torch.func import functional_call

from viscnn.circuits.circuit import candidate_kernels
from viscnn.circuits.masking import Masks
from viscnn.circuits.run import pearson, target_output
from viscnn.errors import ViscnnError
from viscnn.graph import INPUT, Edge, Graph, Node, build_graph
from viscnn.scoring.targets import Target, parse_target

R_PLANTED = 0.999  # what "reproduces the target" means
SIZE = 12  # image side
FILLER = 0.03  # scale of the weak filler kernels
SOBEL = ((1.0, 0.0, -1.0), (2.0, 0.0, -2.0), (1.0, 0.0, -1.0))
BAR = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0))


@dataclass
class PlantedCase:
    """A network, its target, and the planted circuit (alternatives: each a smallest set reproducing it)."""

    name: str
    hard: str
    model: nn.Module
    graph: Graph
    target: Target
    planted: tuple[frozenset[Edge], ...]
    planes: tuple[str, ...]  # per input channel: "binary" or "ones"

    @property
    def size(self) -> int:
        """The planted circuit's number of kernels."""
        return len(self.planted[0])

    def images(self, count: int, seed: int) -> torch.Tensor:
        """`count` input images [N, C, SIZE, SIZE] (a seeded draw)."""
        generator = torch.Generator().manual_seed(seed)
        planes = [torch.ones(count, 1, SIZE, SIZE) if kind == "ones" else
                  (torch.rand(count, 1, SIZE, SIZE, generator=generator) < 0.5).float() for kind in self.planes]
        return torch.cat(planes, dim=1)

    def candidates(self) -> dict[str, torch.Tensor]:
        return candidate_kernels(self.graph, self.target)

    def keep(self) -> float:
        """The kept fraction asking for exactly `size` kernels of the target's candidates."""
        total = int(sum(int(m.sum()) for m in self.candidates().values()))
        return (self.size - 0.5) / total

    def masks(self, edges: Sequence[Edge] | frozenset[Edge]) -> Masks:
        """Boolean masks over the candidate layers keeping `edges`."""
        masks = {n: torch.zeros_like(c) for n, c in self.candidates().items()}
        for edge in edges:
            out, local = self.graph.kernel_index(edge)
            masks[edge.layer][out, local] = True
        return masks

    def recall(self, masks: Masks) -> float:
        """The largest share of one planted set that `masks` keeps."""
        kept = {self.graph.edge_at(n, o, i) for n, m in masks.items() for o, i in m.nonzero().tolist()}
        return max(len(kept & edges) / len(edges) for edges in self.planted)

    def faithfulness(self, masks: Masks, images: torch.Tensor) -> float:
        """Pearson r of the target under `masks` with the full model's, over `images`."""
        with torch.no_grad():
            full = target_output(self.model, self.graph, images, None, self.target)
            kept = target_output(self.model, self.graph, images, None, self.target,
                                 masks={k: v.float() for k, v in masks.items()})
        return pearson(full, kept)


# --- networks -----------------------------------------------------------------------------------------

def _conv(cin: int, cout: int, *, groups: int = 1, size: int = 3) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, size, padding=size // 2, groups=groups)
    conv.weight.data.zero_()
    _bias(conv).zero_()
    conv.requires_grad_(False)
    return conv


def _bias(conv: nn.Conv2d) -> torch.Tensor:
    assert conv.bias is not None
    return conv.bias.data


class Chain(nn.Module):
    """convs c1..cN with a ReLU between each (the last is linear)."""

    def __init__(self, widths: Sequence[int]) -> None:
        super().__init__()
        self.depth = len(widths) - 1
        for index in range(self.depth):
            self.add_module(f"c{index + 1}", _conv(widths[index], widths[index + 1]))

    def convs(self) -> list[nn.Conv2d]:
        return [cast(nn.Conv2d, getattr(self, f"c{index + 1}")) for index in range(self.depth)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for index, conv in enumerate(self.convs()):
            x = conv(x)
            x = torch.relu(x) if index < self.depth - 1 else x
        return x


class Gated(nn.Module):
    """c1 makes `width` signal and `width` gate channels; z = relu(signal) x sigmoid(gate); c2 reads z."""

    def __init__(self, cin: int, width: int, cout: int) -> None:
        super().__init__()
        self.width = width
        self.c1 = _conv(cin, 2 * width)
        self.c2 = _conv(width, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c1(x)
        return self.c2(torch.relu(h[:, :self.width]) * torch.sigmoid(h[:, self.width:]))


class Residual(nn.Module):
    """h = relu(c1 x); y = h + c3(relu(c2 h)); out = c4(relu(y))."""

    def __init__(self, cin: int, width: int, cout: int) -> None:
        super().__init__()
        self.c1, self.c2, self.c3, self.c4 = _conv(cin, width), _conv(width, width), _conv(width, width), _conv(width, cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.c1(x))
        return self.c4(torch.relu(h + self.c3(torch.relu(self.c2(h)))))


class Depthwise(nn.Module):
    """A MobileNet block: c1 (3x3), dw (3x3 depthwise), pw (1x1)."""

    def __init__(self, cin: int, width: int, cout: int) -> None:
        super().__init__()
        self.c1, self.dw, self.pw = _conv(cin, width), _conv(width, width, groups=width), _conv(width, cout, size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pw(torch.relu(self.dw(torch.relu(self.c1(x)))))


def _set(conv: nn.Conv2d, out: int, local: int, value: float | Sequence[Sequence[float]]) -> None:
    """Kernel [out, local] := `value` (a number: the centre tap alone, which keeps constant maps constant)."""
    kernel = conv.weight.data[out, local]
    kernel.zero_()
    if isinstance(value, (int, float)):
        kernel[kernel.shape[0] // 2, kernel.shape[1] // 2] = float(value)
    else:
        kernel.copy_(torch.tensor(value))


def _fill(conv: nn.Conv2d, kernels: Sequence[tuple[int, int]], generator: torch.Generator) -> None:
    """Weak random filler kernels at (out, local) positions."""
    for out, local in kernels:
        conv.weight.data[out, local] = FILLER * torch.randn(conv.weight.shape[2:], generator=generator)


def _case(name: str, hard: str, model: nn.Module, planes: tuple[str, ...], target: str,
          planted: Sequence[Sequence[str]]) -> PlantedCase:
    model.eval()
    graph = build_graph(model, (len(planes), SIZE, SIZE), name)
    parsed = parse_target(target, graph)
    alternatives = []
    for edges in planted:
        found = []
        for text in edges:
            layer, rest = text.rsplit(":", 1)
            out, inp = (int(v) for v in rest.split("<-"))
            found.append(Edge(layer, out, inp))
        alternatives.append(frozenset(found))
    return PlantedCase(name, hard, model, graph, parsed, tuple(alternatives), planes)


def redundant() -> PlantedCase:
    g = torch.Generator().manual_seed(1)
    net = Chain([2, 6, 5, 2])
    c1, c2, c3 = net.convs()
    _set(c1, 0, 0, 1.0)  # A = x0
    _set(c1, 1, 0, 1.0)  # B = x0, a copy of A
    _set(c1, 2, 1, SOBEL)  # C = edges of x1
    for source in (0, 1):
        _set(c2, 0, source, 1.0)  # u1 = A + B
        _set(c2, 1, source, 1.0)  # u2 = A + B - 1
    _bias(c2)[1] = -1.0
    _set(c2, 2, 2, 0.5)  # C' = C / 2
    _set(c3, 0, 0, 1.0)  # t = relu(u1) - relu(u2) + C' = clamp(A + B, 0, 1) + C'
    _set(c3, 0, 1, -1.0)
    _set(c3, 0, 2, 1.0)
    _fill(c1, [(3, 0), (4, 1), (5, 1)], g)
    _fill(c2, [(3, 3), (4, 4), (4, 5)], g)
    _fill(c3, [(0, 3), (0, 4)], g)
    path_c = ["c1:2<-1", "c2:2<-2", "c3:0<-2"]
    return _case("redundant", "two copies of a path OR-ed by a saturating clamp: each alone suffices, so single-kernel "
                 "scores of their first kernels are 0", net, ("binary", "binary"), "c3:0",
                 [["c1:0<-0", "c2:0<-0", "c3:0<-0"] + path_c, ["c1:1<-0", "c2:0<-1", "c3:0<-0"] + path_c])


def gating() -> PlantedCase:
    g = torch.Generator().manual_seed(2)
    net = Gated(2, 4, 2)
    _set(net.c1, 0, 0, BAR)  # S0 = bars of x0
    _set(net.c1, 4, 1, 40.0)  # G0 = sigmoid(40 x1 - 20): saturated, 0 or 1
    _bias(net.c1)[4] = -20.0
    _set(net.c1, 1, 1, SOBEL)  # S1 = edges of x1
    _set(net.c1, 5, 0, 4.0)  # G1 = sigmoid(4 x0 - 2): not saturated
    _bias(net.c1)[5] = -2.0
    _set(net.c2, 0, 0, 1.0)
    _set(net.c2, 0, 1, 0.5)
    _fill(net.c1, [(2, 0), (3, 1), (6, 1), (7, 0), (2, 1), (0, 1), (1, 0)], g)
    _fill(net.c2, [(0, 2), (0, 3)], g)
    return _case("gating", "a signal times a saturated sigmoid gate: the gate kernel's gradient is ~1e-4, yet "
                 "without it the signal is lost", net, ("binary", "binary"), "c2:0",
                 [["c1:0<-0", "c1:4<-1", "c2:0<-0", "c1:1<-1", "c1:5<-0", "c2:0<-1"]])


def threshold() -> PlantedCase:
    g = torch.Generator().manual_seed(3)
    net = Chain([2, 6, 4, 2])
    c1, c2, c3 = net.convs()
    for copy in range(3):
        _set(c1, copy, 0, 1.0)  # a = b = c = x0
        _set(c2, 0, copy, 1.0)  # u1 = relu(a + b + c - 1)
        _set(c2, 1, copy, 1.0)  # u2 = relu(a + b + c - 2)
    _bias(c2)[0], _bias(c2)[1] = -1.0, -2.0
    _set(c1, 3, 1, SOBEL)
    _set(c2, 2, 3, 0.5)
    _set(c3, 0, 0, 1.0)  # t = u1 - u2 + ... = clamp(a + b + c - 1, 0, 1) + ...: two of the three inputs fire it
    _set(c3, 0, 1, -1.0)
    _set(c3, 0, 2, 1.0)
    _fill(c1, [(4, 0), (5, 1)], g)
    _fill(c2, [(3, 4), (3, 5)], g)
    _fill(c3, [(0, 3)], g)
    path = ["c1:3<-1", "c2:2<-3", "c3:0<-2", "c3:0<-0"]
    pairs = itertools.combinations(range(3), 2)
    return _case("threshold", "a ReLU whose bias needs two of three identical inputs: any one can go, two must "
                 "stay, and each input's first kernel scores 0 alone", net, ("binary", "binary"), "c3:0",
                 [[f"c1:{a}<-0", f"c1:{b}<-0", f"c2:0<-{a}", f"c2:0<-{b}"] + path for a, b in pairs])


def distractor() -> PlantedCase:
    g = torch.Generator().manual_seed(4)
    net = Chain([3, 7, 6, 2])
    c1, c2, c3 = net.convs()
    _set(c1, 0, 0, BAR)  # signal 1
    _set(c2, 0, 0, 1.0)
    _set(c3, 0, 0, 1.0)
    _set(c1, 1, 1, SOBEL)  # signal 2
    _set(c2, 1, 1, 0.5)
    _set(c3, 0, 1, 1.0)
    _set(c1, 2, 2, 5.0)  # a constant chain from the plane of ones: +25 everywhere
    _set(c2, 2, 2, 5.0)
    _set(c3, 0, 2, 1.0)
    _set(c1, 3, 0, 3.0)  # D1 = D2 = 3 x0, which cancel in c2:3 (= 1 everywhere)
    _set(c1, 4, 0, 3.0)
    _set(c2, 3, 3, 2.0)
    _set(c2, 3, 4, -2.0)
    _bias(c2)[3] = 1.0
    _set(c3, 0, 3, 1.0)
    _set(c1, 5, 1, 40.0)  # large weights into dead ReLUs
    _bias(c1)[5] = -100.0
    _set(c2, 4, 5, 40.0)
    _set(c3, 0, 4, 40.0)
    _fill(c1, [(6, 0), (6, 1)], g)
    _fill(c2, [(5, 6), (5, 0)], g)
    _fill(c3, [(0, 5)], g)
    return _case("distractor", "large-activation kernels that do not reach the target in r (a constant chain, "
                 "two paths that cancel) and large-weight kernels into a dead ReLU", net,
                 ("binary", "binary", "ones"), "c3:0",
                 [["c1:0<-0", "c2:0<-0", "c3:0<-0", "c1:1<-1", "c2:1<-1", "c3:0<-1"]])


def residual() -> PlantedCase:
    g = torch.Generator().manual_seed(5)
    net = Residual(2, 5, 2)
    _set(net.c1, 0, 0, 2.0)  # h0 = 2 x0 goes through the skip...
    _set(net.c2, 1, 0, 1.0)  # ...and the branch, which subtracts it again: y0 = branch signal alone
    _set(net.c3, 0, 1, -1.0)
    _set(net.c1, 1, 1, SOBEL)  # the branch's signal
    _set(net.c2, 0, 1, 1.0)
    _set(net.c3, 0, 0, 1.0)
    _set(net.c1, 2, 0, BAR)  # a signal through the skip alone
    _set(net.c4, 0, 0, 1.0)
    _set(net.c4, 0, 2, 0.5)
    _fill(net.c1, [(3, 1), (4, 0)], g)
    _fill(net.c2, [(3, 3), (4, 4)], g)
    _fill(net.c3, [(3, 3), (4, 4)], g)
    _fill(net.c4, [(0, 3), (0, 4)], g)
    return _case("residual", "a residual branch that cancels its skip on one channel and adds a signal", net,
                 ("binary", "binary"), "c4:0",
                 [["c1:1<-1", "c2:0<-1", "c3:0<-0", "c4:0<-0", "c1:2<-0", "c4:0<-2"]])


def depthwise() -> PlantedCase:
    g = torch.Generator().manual_seed(6)
    net = Depthwise(3, 5, 2)
    _set(net.c1, 0, 0, 1.0)
    _set(net.dw, 0, 0, BAR)
    _set(net.pw, 0, 0, 1.0)
    _set(net.c1, 1, 1, SOBEL)
    _set(net.dw, 1, 0, 1.0)
    _set(net.pw, 0, 1, 0.5)
    _set(net.c1, 2, 2, 4.0)  # a constant channel through the depthwise conv: +16 everywhere
    _set(net.dw, 2, 0, 4.0)
    _set(net.pw, 0, 2, 1.0)
    _fill(net.c1, [(3, 0), (4, 1), (3, 2)], g)
    _fill(net.dw, [(3, 0), (4, 0)], g)
    _fill(net.pw, [(0, 3), (0, 4)], g)
    return _case("depthwise", "conv -> depthwise -> pointwise, with a constant-offset depthwise channel", net,
                 ("binary", "binary", "ones"), "pw:0",
                 [["c1:0<-0", "dw:0<-0", "pw:0<-0", "c1:1<-1", "dw:1<-1", "pw:0<-1"]])


def combined() -> PlantedCase:
    g = torch.Generator().manual_seed(7)
    net = Chain([3, 10, 10, 8, 2])
    c1, c2, c3, c4 = net.convs()
    for copy in (0, 1):  # redundant copies A, B of x0, OR-ed by a clamp: c3:0 = clamp(A + B, 0, 1)
        _set(c1, copy, 0, 1.0)
        _set(c2, 0, copy, 1.0)
        _set(c2, 1, copy, 1.0)
    _bias(c2)[1] = -1.0
    _set(c3, 0, 0, 1.0)
    _set(c3, 0, 1, -1.0)
    _set(c4, 0, 0, 1.0)
    for copy in (2, 3, 4):  # three copies of x1, two of which fire c3:1 = clamp(a + b + c - 1, 0, 1)
        _set(c1, copy, 1, 1.0)
        _set(c2, 2, copy, 1.0)
        _set(c2, 3, copy, 1.0)
    _bias(c2)[2], _bias(c2)[3] = -1.0, -2.0
    _set(c3, 1, 2, 1.0)
    _set(c3, 1, 3, -1.0)
    _set(c4, 0, 1, 0.7)
    _set(c1, 5, 0, SOBEL)  # a plain signal
    _set(c2, 4, 5, 0.5)
    _set(c3, 2, 4, 1.0)
    _set(c4, 0, 2, 0.5)
    _set(c1, 6, 2, 5.0)  # a constant chain
    _set(c2, 5, 6, 5.0)
    _set(c3, 3, 5, 1.0)
    _set(c4, 0, 3, 1.0)
    _set(c1, 7, 1, 3.0)  # two large paths that cancel
    _set(c1, 8, 1, 3.0)
    _set(c2, 6, 7, 2.0)
    _set(c2, 6, 8, -2.0)
    _bias(c2)[6] = 1.0
    _set(c3, 4, 6, 1.0)
    _set(c4, 0, 4, 1.0)
    _set(c1, 9, 0, 40.0)  # large weights into a dead ReLU
    _bias(c1)[9] = -100.0
    _set(c2, 7, 9, 40.0)
    _set(c3, 5, 7, 40.0)
    _set(c4, 0, 5, 40.0)
    _fill(c2, [(8, 0), (8, 5), (9, 2), (9, 9), (8, 3)], g)
    _fill(c3, [(6, 8), (6, 9), (7, 4), (7, 8), (6, 0)], g)
    _fill(c4, [(0, 6), (0, 7)], g)
    plain = ["c1:5<-0", "c2:4<-5", "c3:2<-4", "c4:0<-2"]
    sets = []
    for a in (0, 1):
        for x, y in itertools.combinations((2, 3, 4), 2):
            sets.append([f"c1:{a}<-0", f"c2:0<-{a}", "c3:0<-0", "c4:0<-0", f"c1:{x}<-1", f"c1:{y}<-1", f"c2:2<-{x}",
                         f"c2:2<-{y}", "c3:1<-2", "c4:0<-1"] + plain)
    return _case("combined", "four layers: redundant copies, a two-of-three threshold, a plain signal, a constant "
                 "chain, cancelling paths and dead large weights together", net, ("binary", "binary", "ones"), "c4:0",
                 sets)


CASES: dict[str, Callable[[], PlantedCase]] = {f.__name__: f for f in (redundant, gating, threshold, distractor,
                                                                          residual, depthwise, combined)}


def build(name: str) -> PlantedCase:
    """The planted case `name` (one of CASES)."""
    if name not in CASES:
        raise ViscnnError(f"unknown planted case {name!r}: choose from {', '.join(CASES)}")
    return CASES[name]()


# --- ground truth by ablation -------------------------------------------------------------------------

@dataclass
class Verification:
    """What ablation says about a case's planted sets."""

    r_planted: float  # the worst planted set's r
    r_without: float  # the best r with one kernel of a planted set removed
    circuits: int  # circuits tried exhaustively (0: too many to try)
    smallest: list[frozenset[Edge]]  # the sets of the smallest size reaching R_PLANTED among those tried
    exhaustive: bool

    @property
    def sound(self) -> bool:
        """The planted sets reproduce the target, each of their kernels is needed, and (when exhaustive) no
        other set of that size or smaller does it."""
        return self.r_planted >= R_PLANTED > self.r_without


def _r_rows(values: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Pearson r of every row of `values` [M, P] with `reference` [P]."""
    a = values.double() - values.double().mean(dim=1, keepdim=True)
    b = reference.double() - reference.double().mean()
    return (a @ b) / (a.norm(dim=1) * b.norm()).clamp(min=1e-30)


def subset_r(case: PlantedCase, sets: Sequence[Sequence[Edge]], images: torch.Tensor, *, chunk: int = 512) -> torch.Tensor:
    """r of the target with only each set's kernels kept (torch.func.vmap over the masks, `chunk` at a time)."""
    layers = list(case.candidates())
    names = {n: str(case.graph[n].weight_name) for n in layers}
    params = dict(case.model.named_parameters())
    with torch.no_grad():
        full = target_output(case.model, case.graph, images, None, case.target).flatten()
    channel = case.target.channel

    def run(masks: dict[str, torch.Tensor]) -> torch.Tensor:
        weights = {**params, **{names[n]: params[names[n]] * masks[n][:, :, None, None] for n in layers}}
        return functional_call(case.model, weights, (images,))[:, channel].flatten()

    batched = torch.func.vmap(run)
    values = []
    for start in range(0, len(sets), chunk):
        stack = {n: torch.zeros(len(sets[start: start + chunk]), *case.candidates()[n].shape) for n in layers}
        for row, edges in enumerate(sets[start: start + chunk]):
            for edge in edges:
                out, local = case.graph.kernel_index(edge)
                stack[edge.layer][row, out, local] = 1.0
        with torch.no_grad():
            values.append(_r_rows(batched(stack), full))
    return torch.cat(values) if values else torch.zeros(0)


def _paths(case: PlantedCase, pool: Sequence[Edge]) -> list[frozenset[Edge]]:
    """Every input -> target path through the kernels of `pool`."""
    feeds: dict[Node, list[Edge]] = {}
    for edge in pool:
        feeds.setdefault(edge.node, []).append(edge)

    def sources(edge: Edge) -> list[Node]:
        return [Node(source, int(index[edge.inp])) for source, index in case.graph[edge.layer].sources if index[edge.inp] >= 0]

    def back(node: Node, depth: int) -> list[list[Edge]]:
        found = []
        for edge in feeds.get(node, []) if depth < len(case.graph.conv_layers) else []:
            for source in sources(edge):
                found += [[edge]] if source.layer == INPUT else [p + [edge] for p in back(source, depth + 1)]
        return found

    assert case.target.layer is not None and case.target.channel is not None
    return list({frozenset(p) for p in back(Node(case.target.layer, case.target.channel), 0)})


def circuits_up_to(case: PlantedCase, pool: Sequence[Edge], size: int, *, limit: int) -> list[frozenset[Edge]] | None:
    """Every circuit (a union of input -> target paths) of at most `size` kernels of `pool`; None past `limit`."""
    paths = sorted((p for p in _paths(case, pool) if len(p) <= size), key=sorted)
    found: set[frozenset[Edge]] = set()

    def grow(union: frozenset[Edge], start: int) -> bool:
        for index in range(start, len(paths)):
            bigger = union | paths[index]
            if len(bigger) <= size and bigger not in found:
                found.add(bigger)
                if len(found) > limit or not grow(bigger, index + 1):
                    return False
        return True

    return sorted(found, key=lambda s: (len(s), sorted(s))) if grow(frozenset(), 0) else None


def verify(case: PlantedCase, *, images: int = 32, seed: int = 99, limit: int = 200_000) -> Verification:
    """Check the planted sets by ablation on fresh images: each reproduces the target, each of its kernels is
    needed, and (exhaustively, when there are at most `limit` of them) no other circuit of at most as many
    kernels with nonzero weights does it."""
    x = case.images(images, seed)
    planted = [sorted(edges) for edges in case.planted]
    r_planted = float(subset_r(case, planted, x).min())
    fewer = [[e for e in edges if e != drop] for edges in planted for drop in edges]
    r_without = float(subset_r(case, fewer, x).max())
    weights = {n: case.graph.kernels(case.model, n).detach().flatten(2).abs().sum(-1) for n in case.candidates()}
    pool = [case.graph.edge_at(n, o, i) for n, c in case.candidates().items()
            for o, i in (c & (weights[n] > 0)).nonzero().tolist()]
    circuits = circuits_up_to(case, pool, case.size, limit=limit)
    if circuits is None:
        return Verification(r_planted, r_without, 0, [], False)
    r = subset_r(case, [sorted(c) for c in circuits], x)
    reaching = [(len(c), c) for c, value in zip(circuits, r.tolist()) if value >= R_PLANTED]
    smallest = min((n for n, _ in reaching), default=0)
    return Verification(r_planted, r_without, len(circuits), [c for n, c in reaching if n == smallest], True)
