"""Queries for the page: check the request, answer from memory or the store, else score in a job.

A big set is scored on a sample: `sample` N scores at most N images of each set of the expression (a fixed
choice: seed `SAMPLE_SEED`, so the same N gives the same images, and their scores are cached like a set's);
`sample` 0 scores every image; without `sample`, a set of more than `DEFAULT_SAMPLE` images is sampled to
that many (Fashion-MNIST's 10,000 test images: 500), and the answer says so (`sampled`).
"""
from __future__ import annotations

import random
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
DEFAULT_SAMPLE = 500  # images per set a query scores when it does not say `sample`
SAMPLE_SEED = 0
MAX_SAMPLE = 1_000_000


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
    sets: dict[str, ImageSet]  # what each set of the expression scores: the set, or its sample
    sampled: dict[str, tuple[int, int]]  # set -> (images scored, images in the set), for the sets sampled

    @property
    def images(self) -> str:
        """The expression, normalised."""
        return str(self.expression)

    @property
    def terms(self) -> tuple[str, ...]:
        return tuple(self.expression.terms)


class Samples:
    """Each set's fixed sample of n images (`SAMPLE_SEED`), made once per set object and size."""

    def __init__(self) -> None:
        self._samples: dict[tuple[int, int], tuple[ImageSet, ImageSet]] = {}
        self._lock = threading.Lock()

    def __call__(self, image_set: ImageSet, n: int) -> ImageSet:
        if n <= 0 or n >= len(image_set):
            return image_set
        with self._lock:
            entry = self._samples.get((id(image_set), n))
            if entry is not None and entry[0] is image_set:
                return entry[1]
            chosen = sorted(random.Random(SAMPLE_SEED).sample(range(len(image_set)), n))
            sample = image_set.subset([image_set.items[k] for k in chosen])
            self._samples[(id(image_set), n)] = (image_set, sample)
            return sample


def sample_size(sample: int | None, size: int) -> int:
    """How many images of a set of `size` a query scores for its `sample` field (0 or None: see the module)."""
    if sample is None:
        return min(size, DEFAULT_SAMPLE)
    if not 0 <= sample <= MAX_SAMPLE:
        raise ViscnnError(f"sample must be between 0 (every image) and {MAX_SAMPLE:,} images, not {sample}")
    return size if sample == 0 else min(size, sample)


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
                max_edges: int = MAX_EDGES, sample: int | None = None, samples: Samples | None = None) -> QuerySpec:
    """Every fault of a query as a ViscnnError, before any work. `samples` keeps the sets' samples (one per
    server, so a sample's hash is computed once)."""
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
    samples = samples or Samples()
    chosen = {name: samples(sets[name], sample_size(sample, len(sets[name]))) for name in terms}
    sampled = {name: (len(chosen[name]), len(sets[name])) for name in terms if len(chosen[name]) < len(sets[name])}
    key = Store.key("server-query", model=state.fingerprint, images=str(parsed), target=str(the_target),
                    criterion=criterion, sets=[hashes(chosen[name]) for name in terms])
    return QuerySpec(parsed, the_target, criterion, node_rule, edge_rule, int(max_edges), key, chosen, sampled)


def in_store(state: ServerState, spec: QuerySpec) -> bool:
    """True when every set of the query has its scores in the store (no forward pass needed)."""
    return all(_stored(state, spec, name) for name in spec.terms)


def _stored(state: ServerState, spec: QuerySpec, name: str) -> bool:
    return state.store is not None and state.store.get_path(
        KIND, score_key(state.fingerprint, spec.sets[name], spec.target, spec.criterion)) is not None


def compute(state: ServerState, spec: QuerySpec, context: JobContext | None = None) -> tuple[Scores, dict]:
    """Score the query (sets missing from the store get a forward pass); returns (scores, how it went).
    With `context`, the job reports the images scored of all the query has to score, and the time left."""
    sizes = [len(spec.sets[name]) for name in spec.terms]
    # at least PROGRESS_STEPS batches per set when it has the images for them: the page sees progress move
    batch = max(1, min(state.batch_size, -(-max(sizes) // PROGRESS_STEPS)))
    total = sum(len(spec.sets[name]) for name in spec.terms if not _stored(state, spec, name)) or 1
    done = [0]

    def progress(batches: Iterable, name: str, count: int) -> Iterable:
        if context is None:
            return batches
        return _counted(context, batches, done, total, f"scoring {name} ({count:,} images)")

    result = score_sets(state.loaded, state.graph, spec.sets, spec.expression, spec.target,
                        criteria=[spec.criterion], store=state.store, batch_size=batch, device=state.device,
                        progress=progress)
    scores = result.scores[spec.criterion]
    state.queries.put(spec.key, scores)
    return scores, {"seconds": result.seconds, "computed": result.computed, "cached": result.cached}


def _counted(context: JobContext, batches: Iterable, done: list[int], total: int, message: str) -> Iterator:
    for batch in batches:
        context.steps(done[0], total, "images", message, stop=0.98)
        yield batch
        done[0] += len(batch[0])
    context.steps(done[0], total, "images", f"{message}: done", stop=0.98)


def answer(state: ServerState, facts: KernelFacts, spec: QuerySpec, scores: Scores, how: dict) -> dict:
    """The JSON the page gets for a query (numpy arrays inside: serialise with orjson)."""
    drawn = prune(scores, state.graph, facts, node_rule=spec.node_rule, edge_rule=spec.edge_rule,
                  max_edges=spec.max_edges)
    return {"key": spec.key, "seconds": how.get("seconds", 0.0), "computed": how.get("computed", []),
            "cached": how.get("cached", []), "images": spec.images, "target": str(spec.target), "criterion": spec.criterion,
            "n_images": scores.n_images, "sampled": {name: {"images": n, "of": of} for name, (n, of) in spec.sampled.items()},
            **drawn}
