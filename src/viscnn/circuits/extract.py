"""`extract`: a circuit as a physically smaller network, with the filters it does not need gone.

torch-pruning's dependency graph does the surgery (a filter's conv output channel, its BN entries, the
consumers' input channels, and the channels coupled to it by residual adds, concatenations and
depthwise convs go together); viscnn decides what may go.

What a removed filter means: `Circuit.module()` zeroes removed kernels and leaves every filter's bias,
so a filter whose kernels are all removed still outputs a constant map. Removing that filter is exact
only when its map cannot reach the target except through removed kernels: the filters that no kept
kernel reads and that the target does not read (`read_nodes`; a residual channel read by a kept kernel
keeps every filter that feeds it). Only those are removed, so the extracted network gives the target
exactly the values the masked circuit gives. Inside the kept filters, the circuit's removed kernels
are zeroed. Layers after a node target keep one filter each (torch-pruning leaves no layer empty), so
the network still runs to its output; the target is read at its layer, under its new channel index.
"""
from __future__ import annotations

import copy
import signal
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from viscnn.circuits.circuit import Circuit, upstream_layers
from viscnn.circuits.connect import read_nodes
from viscnn.errors import ViscnnError
from viscnn.graph import INPUT, Graph, build_graph
from viscnn.scoring.targets import Target


@dataclass
class Extracted:
    """The smaller network, its graph and target, and which original channels each layer kept."""

    module: nn.Module
    graph: Graph
    target: Target
    channels: dict[str, list[int]]  # per conv layer: the original index of each remaining channel
    original_channels: dict[str, int]
    parameters_before: int
    parameters_after: int

    @property
    def removed_filters(self) -> int:
        return sum(self.original_channels[n] - len(c) for n, c in self.channels.items())


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _conv_modules(model: nn.Module, graph: Graph, upstream: list[str]) -> dict[str, nn.Conv2d]:
    """The conv modules of the layers filters may be removed from: upstream of the target (all of them,
    or an error) and after it (those called once)."""
    modules = dict(model.named_modules())
    found = {}
    for layer in graph.conv_layers:
        module = modules.get(layer.name.removesuffix(".weight"))
        if layer.name in upstream and "@" in layer.name:
            raise ViscnnError(f"cannot extract a circuit through {layer.name}: that conv is called more than once, so "
                              f"its filters cannot be removed for one call only (use the masked circuit)")
        if layer.name in upstream and not isinstance(module, nn.Conv2d):
            raise ViscnnError(f"cannot extract: layer {layer.name} is not an nn.Conv2d module of the model")
        shared = any(other.name.startswith(layer.name + "@") for other in graph.conv_layers)
        if isinstance(module, nn.Conv2d) and "@" not in layer.name and not shared:
            found[layer.name] = module
    return found


EXTRACT_SECONDS = 240.0


class _Expired(BaseException):  # not an Exception: torch-pruning's failures are caught as Exception below
    pass


@contextmanager
def _time_limit(seconds: float, graph: Graph) -> Iterator[None]:
    """Interrupt the block after `seconds` with a refusal (SIGALRM: the main thread only; elsewhere no limit)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "setitimer"):
        yield
        return

    def expire(_signum: int, _frame: object) -> None:
        raise _Expired

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _Expired:
        raise _cannot(graph, f"torch-pruning's dependency search took more than {seconds:g} s on it") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _grouped(module: object) -> bool:
    """A grouped conv that is not depthwise: torch-pruning 1.6 cannot remove its channels correctly."""
    return isinstance(module, nn.Conv2d) and 1 < module.groups < module.in_channels


def _followable(group: Any, dependencies: Any, layer_of: dict[nn.Module, str], remaining: dict[str, list[int]]) -> bool:
    """False for a pruning group viscnn cannot trust torch-pruning with: one that reaches a grouped (not
    depthwise) conv, or that names channels of a layer outside the channels it has (a split or chunk
    torch-pruning maps into another channel space)."""
    for item in group.items:
        module = item.dep.target.module
        if _grouped(module):
            return False
        member = layer_of.get(module)
        if member is not None and dependencies.is_out_channel_pruning_fn(item.dep.handler) and \
                any(not 0 <= index < len(remaining[member]) for index in item.idxs):
            return False
    return True


def _refusal(graph: Graph, what: str, exc: Exception) -> ViscnnError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return _cannot(graph, f"{what} ({type(exc).__name__}{': ' + reason if reason else ''})")


def _cannot(graph: Graph, why: str) -> ViscnnError:
    """The one-line refusal of every extraction that cannot be done exactly."""
    return ViscnnError(f"cannot extract a circuit of {graph.model_name or 'this model'} physically: {why}; the masked "
                       "circuit (without --extract) is unaffected")


def _zero_removed_kernels(convs: dict[str, nn.Conv2d], masks: dict[str, torch.Tensor]) -> None:
    with torch.no_grad():
        for name, conv in convs.items():
            if name in masks:
                conv.weight.mul_(masks[name].to(conv.weight.device, conv.weight.dtype)[:, :, None, None])


def extract(circuit: Circuit, model: nn.Module, graph: Graph, input_shape: tuple[int, ...] | None = None, *,
            seconds: float = EXTRACT_SECONDS) -> Extracted:
    """A copy of `model` without the filters `circuit` does not need; the model itself is untouched.

    Refused (one ViscnnError) where torch-pruning cannot do it exactly, or takes more than `seconds`
    (enforced in the main thread, where the CLI runs it)."""
    import torch_pruning as tp  # imported here: only extraction needs it

    target = circuit.target
    layers = upstream_layers(graph, target)
    if circuit.num_edges == 0:
        raise ViscnnError(f"the circuit for {circuit.target} is empty: nothing to extract")
    shape = tuple(input_shape or graph.layers[INPUT].output_shape)
    smaller = copy.deepcopy(model).eval()
    convs = _conv_modules(smaller, graph, layers)
    _zero_removed_kernels(convs, circuit.masks)
    needed = read_nodes(graph, circuit.masks, target)
    device = next(smaller.parameters()).device
    flags = {parameter: parameter.requires_grad for parameter in smaller.parameters()}
    for parameter in flags:  # torch-pruning follows autograd's graph, which frozen weights do not build
        parameter.requires_grad_(True)
    with _time_limit(seconds, graph):  # torch-pruning's group search can run for hours on some models
        try:
            with torch.enable_grad(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch-pruning's own warnings; a failure is reported below
                dependencies = tp.DependencyGraph().build_dependency(smaller, example_inputs=torch.zeros(1, *shape,
                                                                                                        device=device))
        except Exception as exc:  # torch-pruning cannot follow every architecture (e.g. a channel shuffle by reshape)
            raise _refusal(graph, "torch-pruning cannot build its dependency graph of this model", exc) from exc
        layer_of: dict[nn.Module, str] = {module: name for name, module in convs.items()}
        remaining = {name: list(range(conv.out_channels)) for name, conv in convs.items()}
        original = {name: conv.out_channels for name, conv in convs.items()}
        before = _count(smaller)

        def removable(name: str, position: int) -> bool:
            return not bool(needed[name][remaining[name][position]])

        for name in convs:  # after the target too: nothing there reaches the target
            conv = convs[name]
            positions = [p for p in range(conv.out_channels) if removable(name, p)]
            if not positions:
                continue
            group = dependencies.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=positions)
            if not _followable(group, dependencies, layer_of, remaining):
                continue  # these filters stay: exact, only less small
            allowed = set(positions)
            for item in group.items:  # a coupled filter that is needed keeps its partners too
                if not (isinstance(item.dep.target.module, nn.Conv2d)
                        and dependencies.is_out_channel_pruning_fn(item.dep.handler)):
                    continue
                member = layer_of.get(item.dep.target.module)
                for index, root in zip(item.idxs, item.root_idxs):
                    if member is None or not removable(member, index):
                        allowed.discard(root)
            coupled = {layer_of.get(i.dep.target.module) for i in group.items
                       if dependencies.is_out_channel_pruning_fn(i.dep.handler)}
            if len(allowed) >= min(convs[m].out_channels for m in coupled if m is not None):
                allowed.discard(max(allowed))  # a layer keeps at least one channel (torch-pruning needs one)
            if not allowed:
                continue
            group = dependencies.get_pruning_group(conv, tp.prune_conv_out_channels, idxs=sorted(allowed))
            if not dependencies.check_pruning_group(group):
                continue
            gone: dict[str, set[int]] = {}
            for item in group.items:
                member = layer_of.get(item.dep.target.module)
                if member is not None and dependencies.is_out_channel_pruning_fn(item.dep.handler):
                    gone.setdefault(member, set()).update(item.idxs)
            try:
                group.prune()
            except Exception as exc:  # torch-pruning's surgery failed on this architecture
                raise _refusal(graph, f"torch-pruning failed to remove filters of {name}", exc) from exc
            for member, indices in gone.items():
                remaining[member] = [c for p, c in enumerate(remaining[member]) if p not in indices]
            lost = [m for m, conv in convs.items() if len(remaining[m]) != conv.out_channels]
            if lost:  # torch-pruning removed channels through a coupling it did not report as such
                raise _cannot(graph, f"torch-pruning removed filters of {lost[0]} through a coupling viscnn cannot follow")
    for parameter in smaller.parameters():  # pruned parameters are new objects: match them by requires_grad default
        parameter.requires_grad_(False if not any(flags.values()) else parameter.requires_grad)
    try:
        smaller_graph = build_graph(smaller, shape, graph.model_name)
    except ViscnnError as exc:  # torch-pruning left channel counts that no longer fit (e.g. around a split)
        raise _cannot(graph, f"the network torch-pruning made does not run ({exc})") from exc
    new_target = target
    if target.inside and target.kind in ("node", "neuron"):
        node = target.node
        new_target = replace(target, channel=remaining[node.layer].index(node.channel))
    elif target.inside:
        raise ViscnnError("extract() supports node, neuron and output targets; a direction target would need its "
                          "channel weights renumbered")
    _check_exact(model, graph, target, circuit, smaller, smaller_graph, new_target, shape)
    return Extracted(smaller, smaller_graph, new_target, remaining, original, before, _count(smaller))


def _check_exact(model: nn.Module, graph: Graph, target: Target, circuit: Circuit, smaller: nn.Module,
                 smaller_graph: Graph, new_target: Target, shape: tuple[int, ...]) -> None:
    """Refuse a smaller network whose target differs from the masked circuit's on probe images: torch-pruning
    can mis-handle a coupling (a channel shuffle, a split) without an error, and a silent wrong network is
    worse than none."""
    from viscnn.circuits.run import target_output

    device = next(smaller.parameters()).device
    probe = torch.rand(2, *shape, generator=torch.Generator().manual_seed(0)).to(device) * 2 - 1
    masks = {name: mask.float().to(device) for name, mask in circuit.masks.items()}
    with torch.no_grad():
        masked = target_output(model, graph, probe, None, target, masks=masks)
        got = target_output(smaller, smaller_graph, probe, None, new_target)
    difference = float((masked - got).abs().max())
    scale = float(masked.abs().max())
    if not difference <= 1e-4 * max(1.0, scale):  # NaN too
        raise _cannot(graph, f"the network torch-pruning made gives the target values up to {difference:.2e} away from "
                             "the masked circuit's (a coupling it mis-handled)")
