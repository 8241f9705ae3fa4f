"""A query: an image-set expression, a target and criteria -> Scores, with per-set results cached.

Scores are means over images, so `tiger - overall` is the tiger set's scores minus the overall set's.
Each set's scores are cached in the store under (model fingerprint, set hash, target, criterion,
edges), so expressions over sets already scored cost no forward pass.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from viscnn import distributed
from viscnn.data import ImageSet
from viscnn.errors import ViscnnError
from viscnn.graph import Graph
from viscnn.models import LoadedModel
from viscnn.scoring.criteria import CRITERIA
from viscnn.scoring.engine import Batch, score_batches
from viscnn.scoring.expression import Expression
from viscnn.scoring.scores import Scores
from viscnn.scoring.targets import Target, check_scorable
from viscnn.store import Store

if TYPE_CHECKING:
    from viscnn.store import Store

KIND = "scores"


@dataclass
class QueryResult:
    """Scores per criterion, with what was computed and what came from the cache."""

    scores: dict[str, Scores]
    computed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    seconds: float = 0.0


def share(image_set: ImageSet, batch_size: int) -> ImageSet:
    """This process's share of the images under torchrun (whole batches, dealt round-robin; see
    `viscnn.distributed.share`): the whole set for a single process."""
    if not distributed.active():
        return image_set
    if len(image_set) < distributed.world():  # every process sees the same length, so all of them stop here together
        raise ViscnnError(f"image set {image_set.name!r} has {len(image_set)} images, fewer than the "
                          f"{distributed.world()} processes")
    return image_set.subset([image_set.items[i] for i in distributed.share(len(image_set), batch_size)])


def score_sets(loaded: LoadedModel, graph: Graph, image_sets: dict[str, ImageSet], expression: Expression,
               target: Target, *, criteria: Sequence[str] = ("taylor",), edges: bool = True, store: Store | None = None,
               batch_size: int = 32, device: str | torch.device = "cpu", clip: bool = False,
               progress: Callable[[Iterable, str, int], Iterable] | None = None,
               baseline: str = "zero") -> QueryResult:
    """Score a parsed image-set `expression` (e.g. of 'tiger - overall') over the named image sets.

    `expression` and `target` are parsed once where the query comes in (`parse_expression` against
    `image_sets`, `parse_target` against `graph`). `store` (a viscnn.store.Store) caches each set's
    scores. `progress(batches, set_name, n_images)` wraps the batch iterator (e.g. in tqdm) when given.
    `baseline` (signed Taylor): "zero", "mean" or the path of a reference image.

    Under torchrun every process calls this: rank 0 alone reads and writes the store (the others may
    pass store=None) and says what is cached, each process scores its share of the images, and every
    process gets the whole result.
    """
    check_scorable(target)
    unknown = [name for name in expression.terms if name not in image_sets]
    if unknown:
        raise ViscnnError(f"image set {unknown[0]!r} of {str(expression)!r} is not one of the sets given")
    reference, baseline_id = _baseline(baseline, loaded)
    start = time.perf_counter()
    fingerprint = loaded.fingerprint()
    per_set: dict[str, dict[str, Scores]] = {}
    result = QueryResult({})
    for name in expression.terms:
        image_set = image_sets[name]

        def lookup(image_set: ImageSet = image_set) -> tuple[dict[str, str], dict[str, Scores]]:
            if store is None:
                return {}, {}
            images_hash = image_set.hash()  # reads every image: once per set
            keys = {c: score_key(fingerprint, image_set, target, c, edges=edges, baseline=baseline_id,
                                 images_hash=images_hash) for c in criteria}
            return keys, {c: Scores.load(p) for c, key in keys.items() if (p := store.get_path(KIND, key)) is not None}

        keys, cached = distributed.from_main(lookup)
        missing = [c for c in criteria if c not in cached]
        if missing:
            mine = share(image_set, batch_size)
            batches: Iterable[Batch] = mine.batches(loaded.preprocess, batch_size)
            if progress is not None:
                batches = progress(batches, name, len(mine))
            fresh = score_batches(loaded.module, graph, batches, target, missing, edges=edges, images=name,
                                  device=device, model_id=fingerprint, baseline=reference, split=True)
            if store is not None and keys and distributed.is_main():
                for c, scores in fresh.items():
                    store.put_file(KIND, keys[c], scores.save, meta=scores.header(), suffix=".safetensors")
            cached.update(fresh)
            result.computed.append(name)
        else:
            result.cached.append(name)
        per_set[name] = cached
    for criterion in criteria:
        combined = expression.combine({name: per_set[name][criterion] for name in expression.terms})
        combined.images = str(expression)
        combined.n_images = sum(per_set[name][criterion].n_images for name in expression.terms)
        result.scores[criterion] = combined.clip() if clip else combined
    result.seconds = time.perf_counter() - start
    return result


def score_key(fingerprint: str, image_set: ImageSet, target: str | Target, criterion: str, *, edges: bool = True,
              baseline: str = "zero", images_hash: str | None = None) -> str:
    """The store key (kind `KIND`) of one image set's scores: model fingerprint, set hash, target, criterion,
    whether edges were scored, and the baseline (recorded for signed Taylor only: no other criterion uses it).
    `images_hash`: the set's `hash()` when the caller has it (it reads every image)."""
    return Store.key(KIND, model=fingerprint, images=images_hash or image_set.hash(), target=str(target), criterion=criterion,
                     edges=edges, baseline=baseline if criterion == "taylor_signed" else "zero")


def _baseline(baseline: str, loaded: LoadedModel) -> tuple[str | torch.Tensor, str]:
    """(what the engine takes, what the cache key records) for a baseline option."""
    if baseline in ("zero", "mean"):
        return baseline, baseline
    from viscnn.data import open_image_sets

    image_set = open_image_sets(baseline)["overall"]
    if len(image_set) != 1:
        raise ViscnnError(f"baseline {baseline!r} must be one image, not {len(image_set)}")
    x, _ = next(iter(image_set.batches(loaded.preprocess, 1)))
    return x[0], f"image:{image_set.hash()}"


__all__ = ["CRITERIA", "QueryResult", "score_key", "score_sets"]
