"""learned: optimise a mask over kernels so the circuit reproduces the target, at the requested size.

The circuit keeps k = ceil(keep x candidates) kernels (candidates: the kernels on some path from the
input to the target). One logit per candidate kernel is trained with Adam to minimise 1 - Pearson r
between the circuit's and the full model's target values (the whole map of a node target) over a
minibatch: the faithfulness measure itself, so the circuit need not match the target's scale.

- Search (the first SEARCH_FRACTION of the steps): every step samples a gate per kernel from a hard
  concrete distribution (Louizos et al. 2018) at logit - c, where the offset c is solved so that the
  expected share of open gates is the step's density, which falls geometrically from START x keep (at
  most 1) to keep. c is differentiated implicitly: raising one kernel's logit lowers every other's
  chance, so the budget is a constraint, not a penalty whose weight has to be found. The sampled
  circuits are nearly binary, so a kernel is tried both in and out of many circuits: one of two
  redundant paths (which alone seems to do nothing), the kernel of a saturated gate (whose gradient is
  ~0 at the full model) or two of three inputs of a threshold unit all get their chance. No logit is
  ever parked where its gradient vanishes.
- Start: actgrad's ranking (on at most INIT_IMAGES images and INIT_PIXELS pixels, augmented like the
  steps) as quantile logits, PRIOR x logit(1 - q)
  for a kernel ranked at quantile q from the top (ties share their mean quantile): the search drops
  what Taylor ranks last first, which keeps a deep network working while it searches, but kernels
  actgrad scores 0 start in the middle of the pack, not at the bottom.
- Binary phase (the rest): the forward pass runs the binary circuit itself, the top kernels by logit
  taking as many as needed for k of them to remain connected, and the gradient passes straight
  through; the binary circuit is recomputed every REFRESH steps. The circuit with the lowest loss on a
  fixed set of training images (VALIDATION_IMAGES, VALIDATION_PIXELS), measured a few times in this
  phase and for the final logits, is returned.
- Minibatches of BATCH images (at most BATCH_PIXELS input pixels, at least MIN_BATCH images). With
  `augment` (viscnn.circuits.augment), every minibatch is a fresh random crop/flip/jitter of training
  images, possibly smaller than the model's input, and the full model's target is computed on it.
- Step size: linear warm-up over WARMUP_FRACTION of the steps to LEARNING_RATE, cosine to a tenth.
  `steps` steps (default STEPS), fewer when the first steps show that the whole method would take more
  than `seconds` (default MAX_SECONDS; the ranking before and the validations after the steps included):
  the result then depends on the machine's speed. `progress` gets a StepReport after every step.

The planted suite (viscnn.circuits.planted, benchmarks/planted.py) chose these: a dense start without a
prior, or a search without the implicit offset (a Lagrangian penalty instead), or an annealed top-k
with noisy logits, each missed planted kernels that this finds; the prior's strength is what a deep
network (EfficientNet-Lite0) needs not to break while it searches.

The returned edge scores rank the chosen circuit first, then kernels that cannot connect to it, then
the rest by sigmoid(logit); the selection rule's top k of them, with what does not connect dropped, is
exactly the learned circuit. Scores are global (not normalised per layer).
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence

import torch
from torch import nn

from viscnn.circuits.circuit import candidate_kernels, upstream_layers
from viscnn.circuits.connect import connected, read_nodes
from viscnn.circuits.methods import Batch, Progress, StepReport, labelled, register
from viscnn.circuits.methods.actgrad import actgrad
from viscnn.circuits.run import target_output
from viscnn.circuits.select import normalised
from viscnn.errors import ViscnnError
from viscnn.graph import Graph
from viscnn.scoring.scores import Scores
from viscnn.scoring.targets import Target

STEPS = 200
BATCH = 64  # images per step at most...
BATCH_PIXELS = 64 * 28 * 28  # ...and at most this many input pixels per step (8 photos at least)
MIN_BATCH = 8
LEARNING_RATE = 0.4
WARMUP_FRACTION = 0.05
SEARCH_FRACTION = 0.8
START = 4.0  # the search starts at START x keep of the kernels (at most all)
PRIOR = 3.0  # logit scale of actgrad's ranking at the start
INIT_IMAGES, INIT_PIXELS = 256, 16 * 224 * 224  # images for actgrad's ranking, at most (and pixels, all told)
VALIDATION_IMAGES, VALIDATION_PIXELS = 256, 8 * 224 * 224  # images to compare circuits on, at most
VALIDATIONS = 3  # circuits compared on the validation images during the binary phase, and the final ranking's
REFRESH = 4  # binary steps between recomputations of the binary circuit from the logits
MAX_SECONDS = 60.0
MIN_STEPS = 20
BETA, GAMMA, ZETA = 2 / 3, -0.1, 1.1  # hard concrete temperature and stretch (Louizos et al. 2018)
OPEN_SHIFT = BETA * math.log(-GAMMA / ZETA)  # P(gate > 0) = sigmoid(log_alpha - OPEN_SHIFT)

Augmentation = Callable[[torch.Tensor, torch.Generator], torch.Tensor]


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


def quantile_logits(values: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """logit(1 - q) for each allowed entry ranked at quantile q from the top (ties share their mean quantile);
    0 elsewhere."""
    _, inverse, counts = torch.unique(values[allowed].double(), return_inverse=True, return_counts=True)
    larger = torch.cumsum(counts.flip(0), 0).flip(0) - counts  # entries above each tie group
    q = (larger + (counts + 1) / 2)[inverse] / (int(allowed.sum()) + 1)
    out = torch.zeros(values.shape)
    out[allowed] = torch.log((1 - q) / q).float()
    return out


def _offset(logits: torch.Tensor, density: float, guess: float) -> float:
    """The shift c with mean(P(gate open at logits - c)) = density: Newton's method from `guess`, bisection
    when it does not converge."""
    def excess(c: float) -> tuple[float, float]:
        p = torch.sigmoid(logits - c - OPEN_SHIFT)
        return float(p.mean()) - density, float((p * (1 - p)).mean())

    c = guess
    for _ in range(8):
        value, slope = excess(c)
        if abs(value) < 1e-4 * density:
            return c
        if slope < 1e-9:
            break
        c += value / slope
    low, high = float(logits.min()) - 40.0, float(logits.max()) + 40.0
    for _ in range(60):
        c = (low + high) / 2
        if excess(c)[0] > 0:
            low = c
        else:
            high = c
    return c


def _gates(logits: torch.Tensor, offset: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Hard concrete gates in [0, 1] (most exactly 0 or 1) at log alpha = logits - offset."""
    u = torch.rand(logits.shape, generator=generator).to(logits.device).clamp(1e-6, 1 - 1e-6)
    s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + logits - offset) / BETA)
    return (s * (ZETA - GAMMA) + GAMMA).clamp(0, 1)


class _Circuits:
    """Binary circuits from logits: the top kernels, as many as leave `budget` connected ones."""

    def __init__(self, graph: Graph, target: Target, candidates: dict[str, torch.Tensor]) -> None:
        self.graph, self.target, self.candidates = graph, target, candidates
        self.allowed = _flat(candidates)
        self.total = int(self.allowed.sum())
        self.taken = 0  # how many top kernels the last search took

    def _connected(self, order: torch.Tensor, count: int) -> torch.Tensor:
        top = torch.zeros(self.allowed.numel(), dtype=torch.bool)
        top[order[:count]] = True
        return _flat(connected(self.graph, _unflat(top, self.candidates), self.target))

    def _order(self, logits: torch.Tensor) -> torch.Tensor:
        ranked = logits.detach().cpu().masked_fill(~self.allowed, -math.inf)
        return torch.argsort(ranked, descending=True)[: self.total]

    def exact(self, logits: torch.Tensor, budget: int) -> torch.Tensor:
        """The longest prefix of the ranking whose connected part has at most `budget` kernels: a search that
        brackets it from the last prefix's length, then bisects (connected(top n) only grows with n)."""
        order = self._order(logits)
        low = budget  # connected(top low) <= budget always
        best = self._connected(order, low)
        if int(best.sum()) >= budget or self.total <= low:
            self.taken = low
            return best
        high = max(self.taken, 2 * budget)
        while high < self.total:
            mask = self._connected(order, high)
            if int(mask.sum()) > budget:
                break
            low, best, high = high, mask, 2 * high
        high = min(high, self.total)
        if high == self.total:
            mask = self._connected(order, high)
            if int(mask.sum()) <= budget:
                self.taken = high
                return mask
        while high - low > max(1, budget // 1000):
            middle = (low + high) // 2
            mask = self._connected(order, middle)
            if int(mask.sum()) <= budget:
                low, best = middle, mask
            else:
                high = middle
        self.taken = low
        return best

    def fast(self, logits: torch.Tensor, budget: int) -> torch.Tensor:
        """One or two connectivity passes from the last prefix length (logits move little between steps)."""
        if self.taken < budget:
            return self.exact(logits, budget)
        order = self._order(logits)
        mask = self._connected(order, self.taken)
        size = int(mask.sum())
        if size > budget:
            self.taken = max(budget, self.taken - (size - budget))
            mask = self._connected(order, self.taken)
        else:
            self.taken = min(self.total, self.taken + (budget - size) // 2)
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
    progress = min(1.0, (step - warmup) / max(1, steps - warmup))
    return LEARNING_RATE * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))


@register("learned", normalise=False, description="optimised kernel mask: 1 - r loss, hard concrete search at an "
                                                  "annealed budget from actgrad's ranking, then the binary circuit")
def learned(model: nn.Module, graph: Graph, batches: Sequence[Batch], target: Target, keep: float, *, seed: int = 0,
            device: str | torch.device = "cpu", steps: int | None = None, seconds: float | None = None,
            augment: Augmentation | None = None, progress: Progress | None = None) -> Scores:
    started = time.perf_counter()
    steps = int(steps or STEPS)
    budget_seconds = float(seconds or MAX_SECONDS)
    if steps < 1 or budget_seconds <= 0:
        raise ViscnnError(f"learned needs at least one step and some time, not {steps} steps in {budget_seconds:g} s")
    generator = torch.Generator().manual_seed(seed)
    xs = torch.cat([x.cpu() for x, _ in batches])
    ys = torch.cat([y.cpu() for _, y in labelled(batches)])
    count, size = len(xs), max(1, len(batches[0][0]))
    layers = upstream_layers(graph, target)
    candidates = {n: c for n, c in candidate_kernels(graph, target).items() if n in layers}
    circuits = _Circuits(graph, target, candidates)
    k = max(1, math.ceil(keep * circuits.total))
    allowed = circuits.allowed.to(device)
    pixels = int(xs[0, 0].numel())
    first = xs[:max(1, min(count, INIT_IMAGES, INIT_PIXELS // pixels))]  # the ranking's images, augmented like the steps
    first = augment(first, generator) if augment is not None else first
    prior_images = [(first[i: i + size], ys[i: i + size]) for i in range(0, len(first), size)]
    prior = actgrad(model, graph, prior_images, target, keep, seed=seed, device=device)
    ranking = _flat(normalised({n: prior.edges[n] for n in candidates}, candidates))
    logits = (PRIOR * quantile_logits(ranking, circuits.allowed)).to(device)
    logits = torch.where(allowed, logits, torch.full_like(logits, -30.0)).requires_grad_(True)
    optimiser = torch.optim.Adam([logits], lr=LEARNING_RATE)

    def run(images: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        masks = None if mask is None else _unflat(mask, candidates)
        return target_output(model, graph, images.to(device), labels.to(device), target, masks=masks)

    check = torch.randperm(count, generator=generator)[:max(1, min(VALIDATION_IMAGES, VALIDATION_PIXELS // pixels))]
    needed = check if augment is not None else torch.arange(count)  # augmented steps compute their own reference
    with torch.no_grad():
        full = torch.zeros(count, *run(xs[:1], ys[:1], None).shape[1:], device=device)
        for i in range(0, len(needed), size):
            part = needed[i: i + size]
            full[part.to(device)] = run(xs[part], ys[part], None).detach()

    def validate(mask: torch.Tensor) -> float:
        with torch.no_grad():
            return float(_correlation_loss(run(xs[check], ys[check], mask.to(device).float()), full[check.to(device)]))

    batch = min(BATCH, count, max(MIN_BATCH, BATCH_PIXELS // pixels))
    order, position = torch.randperm(count, generator=generator), 0
    offset, best, best_loss, hard = 0.0, None, math.inf, None
    step, loop_started = 0, time.perf_counter()
    while step < steps:
        search = int(SEARCH_FRACTION * steps)
        for group in optimiser.param_groups:
            group["lr"] = _step_size(step, steps)
        if position + batch > count:
            order, position = torch.randperm(count, generator=generator), 0
        index = order[position: position + batch]
        position += batch
        images, labels = xs[index], ys[index]
        if augment is not None:
            images = augment(images, generator)
            with torch.no_grad():
                reference = run(images, labels, None)
        else:
            reference = full[index.to(device)]
        if step < search:
            fraction = step / max(1, search - 1)
            density = math.exp((1 - fraction) * math.log(min(1.0, START * keep)) + fraction * math.log(keep))
            live = logits[allowed]
            offset = _offset(live.detach(), density, offset)
            p = torch.sigmoid(live - offset - OPEN_SHIFT)
            # the offset's own gradient: d offset / d logit_i = p_i (1 - p_i) / sum_j p_j (1 - p_j)
            shift = offset + (p.mean() - density) / (p * (1 - p)).mean().detach().clamp(min=1e-12)
            mask = _gates(logits, shift, generator) * allowed
        else:
            if hard is None or (step - search) % REFRESH == 0:  # connectivity is costly on big graphs
                hard = circuits.fast(logits, k).to(device)
            mask = hard.float() + logits - logits.detach()
        loss = _correlation_loss(run(images, labels, mask), reference)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        step += 1
        if hard is not None and ((step - search) % max(1, (steps - search) // VALIDATIONS) == 0 or step == steps):
            value = validate(hard)
            if value < best_loss:
                best, best_loss = hard.cpu(), value
        per_step = (time.perf_counter() - loop_started) / step
        if step == 3 and steps > MIN_STEPS:  # plan the rest from the first steps, a tenth of the time left in reserve
            left = budget_seconds - (time.perf_counter() - started)
            if per_step * (steps - step) > 0.9 * left:
                steps = max(MIN_STEPS, step + int(0.9 * left / per_step))
        if progress is not None:
            progress(StepReport(step, steps, time.perf_counter() - started, per_step * (steps - step), float(loss.detach())))
    final = circuits.exact(logits, k)  # the learned ranking's own circuit, against the best one seen
    if best is None or validate(final) < best_loss:
        best = final
    edges = circuits.scores(logits, best)
    nodes = {n: v.clamp(min=0).sum(dim=1) for n, v in edges.items()}
    return Scores("learned", str(target), prior.images, count, nodes, edges, {n: graph[n].groups for n in edges},
                  prior.model, time.perf_counter() - started)
