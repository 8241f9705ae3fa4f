"""learned: optimise a mask over kernels so the circuit reproduces the target, at the requested size.

The circuit may keep k = ceil(keep x candidates) kernels (candidates: the kernels on some path from the
input to the target). One logit per candidate kernel is trained with Adam to minimise 1 - Pearson r
between the circuit's and the full model's target values (the whole map of a node target) over a
minibatch of the images: the faithfulness measure itself, so the circuit need not match the target's
scale, only its pattern.

- Start: logits from actgrad's per-layer-normalised ranking (on at most INIT_IMAGES images), the top k
  positive, so the search begins at a good circuit instead of at random.
- Soft phase (the first SOFT_FRACTION of the steps): the mask is sigmoid(logits), with an L1 penalty on
  its mean whose weight is raised by dual ascent while the soft mask is denser than `keep`.
- Binary phase (the rest): the forward pass runs the binary circuit itself and the gradient passes
  through the sigmoid (straight-through). The binary circuit is the top kernels by logit, taking as
  many as needed for k of them to remain once whatever does not connect the input to the target is
  dropped: the whole budget goes to connected kernels.
- Step size: one cycle (linear warm-up over 10% of the steps to LEARNING_RATE, cosine decay to 0);
  minibatches drawn without replacement of BATCH images, or fewer for big inputs (BATCH_PIXELS input
  pixels, at least MIN_BATCH images: 64 Fashion-MNIST images, 8 ImageNet photos); STEPS steps, fewer
  when the first steps show that they would take more than MAX_SECONDS (big models; the result then
  depends on the machine's speed).
- Early stopping on the training error: every VALIDATE_EVERY steps the binary circuit's loss on a
  fixed subset of VALIDATION_IMAGES training images is measured; the best circuit seen is returned
  (the starting circuit included).

The returned edge scores rank the chosen circuit first, then kernels that cannot connect to it, then
the rest by sigmoid(logit); the selection rule's top k of them, with what does not connect dropped,
is exactly the learned circuit. Scores are global (not normalised per layer).
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import replace

import torch
from torch import nn

from viscnn.circuits.circuit import candidate_kernels, upstream_layers
from viscnn.circuits.connect import connected, read_nodes
from viscnn.circuits.methods import Batch, labelled, register
from viscnn.circuits.methods.actgrad import actgrad
from viscnn.circuits.run import target_output
from viscnn.circuits.select import normalised
from viscnn.graph import Graph
from viscnn.scoring.scores import Scores
from viscnn.scoring.targets import Target

STEPS = 200
BATCH = 64  # images per step at most...
BATCH_PIXELS = 64 * 28 * 28  # ...and at most this many input pixels per step (8 photos at least)
MIN_BATCH = 8
LEARNING_RATE = 0.2
SOFT_FRACTION = 0.25
WARMUP_FRACTION = 0.1
INIT_IMAGES = 256
VALIDATION_IMAGES = 256
VALIDATE_EVERY = 10
MAX_SECONDS = 120.0
MIN_STEPS = 20
INIT_SCALE = 4.0  # initial logit of the best kernel; the k-th best sits at 0
INIT_FLOOR = -12.0  # the lowest initial logit


def _flat(values: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.cat([v.flatten() for v in values.values()])


def _unflat(vector: torch.Tensor, like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out, start = {}, 0
    for name, value in like.items():
        out[name] = vector[start: start + value.numel()].view(value.shape)
        start += value.numel()
    return out


def _correlation_loss(values: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """1 - Pearson r over all entries (1 when either side is constant)."""
    a, b = values.flatten(), reference.flatten()
    a, b = a - a.mean(), b - b.mean()
    return 1 - (a @ b) / (a.norm() * b.norm() + 1e-12)


def _initial_logits(scores: dict[str, torch.Tensor], candidates: dict[str, torch.Tensor], k: int) -> torch.Tensor:
    """Flat logits ranking the candidates like `scores` (normalised per layer): the top k positive."""
    values = _flat(normalised(scores, candidates))
    allowed = _flat(candidates)
    values = torch.where(allowed, values, torch.full_like(values, -math.inf))
    rank = torch.empty_like(values)
    rank[values.argsort(descending=True)] = torch.arange(values.numel(), dtype=values.dtype)
    logits = (INIT_SCALE * (1 - rank / k)).clamp(min=INIT_FLOOR)
    return torch.where(allowed, logits, torch.full_like(logits, -30.0))


class _Circuits:
    """Binary circuits from logits: the top kernels, as many as leave k connected ones."""

    def __init__(self, graph: Graph, target: Target, candidates: dict[str, torch.Tensor], k: int) -> None:
        self.graph, self.target, self.candidates, self.k = graph, target, candidates, k
        self.allowed = _flat(candidates)
        self.total = int(self.allowed.sum())
        self.taken = k  # how many top kernels the last exact search took

    def _connected_top(self, logits: torch.Tensor, count: int) -> torch.Tensor:
        top = torch.zeros(logits.numel(), dtype=torch.bool)
        ranked = logits.detach().cpu().masked_fill(~self.allowed, -math.inf)
        top[torch.topk(ranked, min(count, self.total)).indices] = True
        return _flat(connected(self.graph, _unflat(top, self.candidates), self.target))

    def exact(self, logits: torch.Tensor) -> torch.Tensor:
        """The largest top-`taken` whose connected part has at most k kernels (binary search)."""
        low, high = self.k, self.total
        best = self._connected_top(logits, low)
        if int(best.sum()) >= self.k or high <= low:
            self.taken = low
            return best
        widest = self._connected_top(logits, high)
        if int(widest.sum()) <= self.k:
            self.taken = high
            return widest
        while high - low > 1:  # connected(top n) only grows with n
            middle = (low + high) // 2
            mask = self._connected_top(logits, middle)
            if int(mask.sum()) <= self.k:
                low, best = middle, mask
            else:
                high = middle
        self.taken = low
        return best

    def fast(self, logits: torch.Tensor) -> torch.Tensor:
        """One or two connectivity passes from the last count (logits move little between steps)."""
        mask = self._connected_top(logits, self.taken)
        size = int(mask.sum())
        if size > self.k:
            self.taken = max(self.k, self.taken - (size - self.k))
            mask = self._connected_top(logits, self.taken)
        else:
            self.taken = min(self.total, self.taken + (self.k - size) // 2)
        return mask

    def scores(self, logits: torch.Tensor, chosen: torch.Tensor) -> dict[str, torch.Tensor]:
        """Edge scores whose top k, with what does not connect dropped, are exactly `chosen`."""
        read = read_nodes(self.graph, _unflat(chosen, self.candidates), self.target)
        feeds = _flat({n: read[n][:, None].expand(c.shape) for n, c in self.candidates.items()})
        dead_end = self.allowed & ~chosen & ~feeds  # its output node reaches neither the circuit nor the target
        values = torch.sigmoid(logits.detach().cpu()) + 2.0 * dead_end.float() + 4.0 * chosen.float()
        values = torch.where(self.allowed, values, torch.full_like(values, -1.0))
        return {n: v.clone() for n, v in _unflat(values, self.candidates).items()}


def _step_size(step: int, steps: int) -> float:
    warmup = max(1, int(WARMUP_FRACTION * steps))
    if step < warmup:
        return LEARNING_RATE * (step + 1) / warmup
    progress = (step - warmup) / max(1, steps - warmup)
    return LEARNING_RATE * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@register("learned", normalise=False, description="optimised kernel mask: 1 - r loss, soft L1 phase then "
                                                  "straight-through binary circuit, from actgrad's ranking")
def learned(model: nn.Module, graph: Graph, batches: Sequence[Batch], target: Target, keep: float, *, seed: int = 0,
            device: str | torch.device = "cpu", steps: int | None = None) -> Scores:
    started = time.perf_counter()
    steps = int(steps or STEPS)
    generator = torch.Generator().manual_seed(seed)
    xs = torch.cat([x.cpu() for x, _ in batches])
    ys = torch.cat([y.cpu() for _, y in labelled(batches)])
    count, size = len(xs), max(1, len(batches[0][0]))
    chunks = [(xs[i: i + size], ys[i: i + size]) for i in range(0, min(count, INIT_IMAGES), size)]
    start_scores = actgrad(model, graph, chunks, target, keep, seed=seed, device=device)
    layers = upstream_layers(graph, target)
    candidates = {n: c for n, c in candidate_kernels(graph, target).items() if n in layers}
    circuits = _Circuits(graph, target, candidates, 0)
    circuits.k = circuits.taken = max(1, math.ceil(keep * circuits.total))
    allowed = circuits.allowed.to(device).float()
    logits = _initial_logits({n: start_scores.edges[n] for n in candidates}, candidates, circuits.k)
    logits = logits.to(device).requires_grad_(True)
    optimiser = torch.optim.Adam([logits], lr=LEARNING_RATE)

    def run(index: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        masks = None if mask is None else _unflat(mask, candidates)
        return target_output(model, graph, xs[index].to(device), ys[index], target, masks=masks)

    with torch.no_grad():
        full = torch.cat([run(torch.arange(i, min(count, i + size)), None).detach() for i in range(0, count, size)])
    check = torch.randperm(count, generator=generator)[:VALIDATION_IMAGES]

    def validate(mask: torch.Tensor) -> float:
        with torch.no_grad():
            return float(_correlation_loss(run(check, mask.to(device).float()), full[check.to(full.device)]))

    best = circuits.exact(logits)
    best_loss = validate(best)
    pixels = int(xs[0, 0].numel())
    batch = min(BATCH, count, max(MIN_BATCH, BATCH_PIXELS // pixels))
    order, position = torch.randperm(count, generator=generator), 0
    penalty, step, loop_started = 0.0, 0, time.perf_counter()
    while step < steps:
        soft_phase = step < int(SOFT_FRACTION * steps)
        for group in optimiser.param_groups:
            group["lr"] = _step_size(step, steps)
        if position + batch > count:
            order, position = torch.randperm(count, generator=generator), 0
        index = order[position: position + batch]
        position += batch
        soft = torch.sigmoid(logits) * allowed
        if soft_phase:
            mask = soft
        else:
            hard = circuits.fast(logits).to(device).float()
            mask = hard + soft - soft.detach()
        loss = _correlation_loss(run(index, mask), full[index.to(full.device)])
        if soft_phase:
            density = soft.sum() / circuits.total
            loss = loss + penalty * density
            penalty = max(0.0, penalty + 0.5 * (float(density.detach()) - keep))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        step += 1
        if not soft_phase and (step % VALIDATE_EVERY == 0 or step == steps):
            candidate = circuits.exact(logits)
            value = validate(candidate)
            if value < best_loss:
                best, best_loss = candidate, value
        if step == 3 and steps > MIN_STEPS:  # plan the rest from the time the first steps took
            per_step = (time.perf_counter() - loop_started) / 3
            if per_step * steps > MAX_SECONDS:
                steps = max(MIN_STEPS, int(MAX_SECONDS / per_step))
    edges = circuits.scores(logits, best)
    return replace(start_scores, criterion="learned", edges=edges, nodes={n: v.clamp(min=0).sum(dim=1) for n, v in edges.items()},
                   seconds=time.perf_counter() - started)
