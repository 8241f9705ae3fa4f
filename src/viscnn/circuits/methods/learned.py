"""learned: optimise a mask over kernels so the circuit reproduces the target, at the requested size.

The mask is sigmoid(logits); the loss is the circuit's error on the target's values (the whole map
of a node target), divided by their variance, plus a sparsity penalty on the mean mask whose weight
is adjusted each step (dual ascent) so the soft mask's density moves to `keep`. The second half of
the steps trains the binary circuit itself: the forward pass uses the top-`keep` kernels by logit
and the gradient passes through the sigmoid (straight-through). Logits start from actgrad's
normalised ranking, so the search begins at a good circuit instead of at random.
"""
from __future__ import annotations

import math
from dataclasses import replace

import torch

from viscnn.circuits.circuit import candidate_kernels, upstream_layers
from viscnn.circuits.methods import register
from viscnn.circuits.methods.actgrad import actgrad
from viscnn.circuits.run import target_output
from viscnn.circuits.select import normalised

STEPS = 120
LEARNING_RATE = 0.1


def _initial_logits(scores: dict[str, torch.Tensor], keep: float, candidates: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Logits whose sigmoid ranks the candidate kernels like actgrad, about `keep` of them above 0.5."""
    values = normalised(scores, candidates)
    flat = torch.cat([v.flatten() for v in values.values()])
    allowed = torch.cat([c.flatten() for c in candidates.values()])
    rank = torch.empty_like(flat)
    rank[flat.argsort(descending=True)] = torch.linspace(0, 1, flat.numel()) * flat.numel() / max(1, int(allowed.sum()))
    logits = torch.where(allowed, (keep - rank) * 8.0, torch.full_like(flat, -20.0))  # the top `keep` start positive
    out, start = {}, 0
    for name, value in values.items():
        out[name] = logits[start: start + value.numel()].view_as(value).clone()
        start += value.numel()
    return out


def _hard(logits: dict[str, torch.Tensor], keep: float, candidates: int) -> dict[str, torch.Tensor]:
    flat = torch.cat([v.detach().flatten() for v in logits.values()])
    count = max(1, math.ceil(keep * candidates))
    threshold = torch.topk(flat, count).values[-1]
    return {k: (v.detach() >= threshold).float() for k, v in logits.items()}


@register("learned", normalise=False, description="optimised kernel mask (sigmoid relaxation, L1 penalty, "
                                                  "straight-through binary phase)")
def learned(model, graph, batches, target, keep, seed=0, device="cpu", steps: int = STEPS):  # noqa: ANN001
    torch.manual_seed(seed)
    start_scores = actgrad(model, graph, batches, target, keep, seed=seed, device=device)
    layers = upstream_layers(graph, target)
    candidates = candidate_kernels(graph, target)
    allowed = {k: v.to(device).float() for k, v in candidates.items()}
    logits = {k: v.to(device).requires_grad_(True) for k, v in _initial_logits(
        {n: start_scores.edges[n] for n in layers}, keep, candidates).items()}
    with torch.no_grad():
        full = [target_output(model, graph, x.to(device), labels, target) for x, labels in batches]
    scale = torch.cat([f.flatten() for f in full]).var().clamp(min=1e-8)
    optimiser = torch.optim.Adam(list(logits.values()), lr=LEARNING_RATE)
    penalty = 0.0
    total = int(sum(float(a.sum()) for a in allowed.values()))
    for step in range(steps):
        binary_phase = step >= steps // 2
        hard = _hard(logits, keep, total) if binary_phase else None
        for (x, labels), reference in zip(batches, full):
            soft = {k: torch.sigmoid(v) * allowed[k] for k, v in logits.items()}
            masks = {k: hard[k] + soft[k] - soft[k].detach() for k in soft} if hard else soft
            values = target_output(model, graph, x.to(device), labels, target, masks)
            error = ((values - reference) ** 2).mean() / scale
            density = sum(m.sum() for m in soft.values()) / total
            loss = error + (0.0 if binary_phase else penalty * density)
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        if not binary_phase:  # dual ascent: raise the penalty while the soft mask is denser than asked
            penalty = max(0.0, penalty + 0.5 * (float(density.detach()) - keep))
    edges = {k: torch.sigmoid(v.detach()).cpu() for k, v in logits.items()}
    return replace(start_scores, criterion="learned", edges=edges, nodes={k: v.sum(dim=1) for k, v in edges.items()})
