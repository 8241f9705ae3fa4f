"""Queries for the page: check the request, answer from memory or the store, else score in a job."""
from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from viscnn.data import ImageSet
from viscnn.errors import ViscnnError
from viscnn.scoring.criteria import CRITERIA
from viscnn.scoring.expression import Expression, parse_expression
from viscnn.scoring.query import KIND, score_key, score_sets
from viscnn.scoring.scores import Scores
from viscnn.scoring.targets import Target
from viscnn.server.jobs import JobContext
from viscnn.server.prune import KernelFacts, Rule, prune
from viscnn.server.state import ServerState
from viscnn.store import Store

DEFAULT_NODE_RULE = Rule("fraction", 0.1)
DEFAULT_EDGE_RULE = Rule("cumulative", 0.5)
MAX_EDGES = 100_000
PROGRESS_STEPS = 4


@dataclass(frozen=True)
class QuerySpec:
    """A checked query: which sets, what target, which criterion, and what to draw."""

    expression: Expression
    target: Target
    criterion: str
    node_rule: Rule
    edge_rule: Rule
    max_edges: int
    key: str

    @property
    def images(self) -> str:
        """The expression, normalised."""
        return str(self.expression)

    @property
    def terms(self) -> tuple[str, ...]:
        return tuple(self.expression.terms)


class SetHashes:
    """Each image set's content hash, computed once per set object (uploads replace the set object)."""

    def __init__(self) -> None:
        self._hashes: dict[int, tuple[object, str]] = {}
        self._lock = threading.Lock()

    def __call__(self, image_set: ImageSet) -> str:
        with self._lock:
            entry = self._hashes.get(id(image_set))
            if entry is not None and entry[0] is image_set:
                return entry[1]
        value = image_set.hash()
        with self._lock:
            self._hashes[id(image_set)] = (image_set, value)
        return value


def check_query(state: ServerState, hashes: SetHashes, images: str, *, target: str = "loss", criterion: str = "taylor",
                node_fraction: float | None = None, node_cumulative: float | None = None,
                edge_fraction: float | None = None, edge_cumulative: float | None = None,
                max_edges: int = MAX_EDGES) -> QuerySpec:
    """Every fault of a query as a ViscnnError, before any work."""
    if criterion not in CRITERIA:
        raise ViscnnError(f"unknown criterion {criterion!r}: choose from {', '.join(CRITERIA)}")
    if not isinstance(images, str) or not images.strip():
        raise ViscnnError("give an image-set expression, e.g. 'overall' or 'tiger_cat - overall'")
    sets = state.image_sets
    parsed = parse_expression(images, list(sets))
    the_target = state.target(target)
    node_rule = Rule.of(node_fraction, node_cumulative, DEFAULT_NODE_RULE, "node")
    edge_rule = Rule.of(edge_fraction, edge_cumulative, DEFAULT_EDGE_RULE, "edge")
    if not 0 <= max_edges <= 10 * MAX_EDGES:
        raise ViscnnError(f"max_edges must be between 0 and {10 * MAX_EDGES}, not {max_edges}")
    terms = tuple(parsed.terms)
    key = Store.key("server-query", model=state.fingerprint, images=str(parsed), target=str(the_target),
                    criterion=criterion, sets=[hashes(sets[name]) for name in terms])
    return QuerySpec(parsed, the_target, criterion, node_rule, edge_rule, int(max_edges), key)


def in_store(state: ServerState, spec: QuerySpec) -> bool:
    """True when every set of the query has its scores in the store (no forward pass needed)."""
    if state.store is None:
        return False
    return all(state.store.get_path(KIND, score_key(state.fingerprint, state.image_sets[name], spec.target,
                                                    spec.criterion)) is not None for name in spec.terms)


def compute(state: ServerState, spec: QuerySpec, context: JobContext | None = None) -> tuple[Scores, dict]:
    """Score the query (sets missing from the store get a forward pass); returns (scores, how it went)."""
    sizes = [len(state.image_sets[name]) for name in spec.terms]
    # at least PROGRESS_STEPS batches per set when it has the images for them: the page sees progress move
    batch = max(1, min(state.batch_size, -(-max(sizes) // PROGRESS_STEPS)))
    total = sum(-(-n // batch) for n in sizes)
    done = [0]

    def progress(batches: Iterable, name: str, count: int) -> Iterable:
        if context is None:
            return batches
        return _counted(context, batches, done, total, f"scoring {name} ({count} images)", -(-count // batch))

    result = score_sets(state.loaded, state.graph, state.image_sets, spec.expression, spec.target,
                        criteria=[spec.criterion], store=state.store, batch_size=batch, device=state.device,
                        progress=progress)
    scores = result.scores[spec.criterion]
    state.queries.put(spec.key, scores)
    return scores, {"seconds": result.seconds, "computed": result.computed, "cached": result.cached}


def _counted(context: JobContext, batches: Iterable, done: list[int], total: int, message: str,
             steps: int) -> Iterator:
    for k, batch in enumerate(batches):
        context.report(done[0] / max(total, 1), f"{message}: batch {k + 1}/{steps}")
        yield batch
        done[0] += 1
    context.report(done[0] / max(total, 1), f"{message}: done")


def answer(state: ServerState, facts: KernelFacts, spec: QuerySpec, scores: Scores, how: dict) -> dict:
    """The JSON the page gets for a query (numpy arrays inside: serialise with orjson)."""
    drawn = prune(scores, state.graph, facts, node_rule=spec.node_rule, edge_rule=spec.edge_rule,
                  max_edges=spec.max_edges)
    return {"key": spec.key, "seconds": how.get("seconds", 0.0), "computed": how.get("computed", []),
            "cached": how.get("cached", []), "images": spec.images, "target": str(spec.target), "criterion": spec.criterion,
            "n_images": scores.n_images, **drawn}
