"""Routes: sub-feature circuits of a polysemantic node (the preprint's Fig 10), as a job with a stored result.

The node's most exciting patches are clustered by their layer's activation vectors (HDBSCAN); each cluster
gets its own circuit, stored like `/api/circuit`'s so `/api/circuits/{key}/render` revisualises the node
through it. The answer adds, per cluster, a picture of its top patches, and a 2D projection of every patch.
"""
from __future__ import annotations

import io
import json
import re
from typing import TYPE_CHECKING, Any

import numpy as np
from fastapi import APIRouter
from fastapi.responses import FileResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from viscnn.errors import ViscnnError
from viscnn.server.api_circuits import MAX_IMAGES, MAX_SEED, _methods, check_circuit_methods, circuit_meta
from viscnn.server.api_featurevis import CIRCUIT_KIND, NO_STORE
from viscnn.server.jobs import JobContext
from viscnn.server.responses import answers, done, one_of, pending
from viscnn.server.state import NotFound, ServerState, Unavailable
from viscnn.store import Store

if TYPE_CHECKING:
    from viscnn.circuits.subfeatures import SubfeatureResult

KIND = "subfeatures"
PATCHES = "subfeature-patches"
SHOWN_PATCHES = 8  # per cluster, as the paper's Fig 10b
_KEY = re.compile(r"[0-9a-f]{64}")


class SubfeatureRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    node: str = Field(..., min_length=3, max_length=300, description="the node to split, LAYER:C")
    images: str = Field("overall", min_length=1, max_length=300, description="the image set whose patches are clustered")
    top_n: int = Field(300, ge=2, le=MAX_IMAGES, description="the node's most exciting images (one patch each)")
    min_cluster_size: int = Field(20, ge=2, le=500, description="HDBSCAN's one setting")
    keep: float = Field(0.05, gt=0, le=1, allow_inf_nan=False, description="each circuit's kept share of upstream kernels")
    method: str = Field("actgrad", json_schema_extra=one_of(_methods))
    scrambles: int = Field(1, ge=1, le=5, description="scrambled controls (mixed sets of the same sizes)")
    seed: int = Field(0, ge=0, le=MAX_SEED)


def projection(vectors: np.ndarray) -> np.ndarray:
    """[N, 2]: the patches' activation vectors on their first two principal components (deterministic, cheap;
    the clusters themselves are found in the full dimensions)."""
    centred = vectors - vectors.mean(axis=0, keepdims=True)
    if centred.shape[0] < 2 or not np.abs(centred).max(initial=0.0) > 0:
        return np.zeros((vectors.shape[0], 2))
    u, s, vt = np.linalg.svd(centred, full_matrices=False)
    coords = u[:, :2] * s[:2]
    signs = np.sign(vt[:2].sum(axis=1))  # a fixed orientation: SVD's sign is arbitrary
    coords = coords * np.where(signs == 0, 1.0, signs)
    return np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))


def routes(state: ServerState) -> APIRouter:
    router = APIRouter(tags=["circuits"])

    def store() -> Store:
        if state.store is None:
            raise Unavailable(NO_STORE)
        return state.store

    @router.post("/subfeatures", summary="split a node's top patches into clusters, one circuit each (a job)",
                 responses=answers(503, body="job", write=True))
    def subfeatures(request: SubfeatureRequest) -> Response:
        from viscnn.circuits.select import check_fraction
        from viscnn.graph.ids import parse_node
        from viscnn.scoring.targets import Target

        the_store = store()
        node = parse_node(request.node, state.graph)
        if state.graph[node.layer].kind != "conv":
            raise ViscnnError(f"node {node}: only conv layers' nodes have sub-features")
        image_set = state.image_sets.get(request.images)
        if image_set is None:
            raise ViscnnError(f"unknown image set {request.images[:80]!r}: choose one of /api/sets")
        check_circuit_methods(state, [request.method], Target("node", node.layer, node.channel))
        check_fraction(request.keep, "keep fraction")
        patches = min(request.top_n, len(image_set))
        if patches < 2 * request.min_cluster_size:
            raise ViscnnError(f"{patches} patches (top_n {request.top_n}, image set {request.images!r} of "
                              f"{len(image_set)} images) cannot form 2 clusters of min_cluster_size "
                              f"{request.min_cluster_size}: give at most {patches // 2}")
        key = Store.key("server-subfeatures", model=state.fingerprint, images=image_set.hash(), node=str(node),
                        **request.model_dump(exclude={"node", "images"}))
        if (data := the_store.get_bytes(KIND, key)) is not None:
            return done(json.loads(data))

        def work(context: JobContext) -> dict:
            from viscnn.circuits.subfeatures import find_subfeatures

            found = find_subfeatures(state.loaded.module, state.graph, image_set, state.loaded.preprocess, node,
                                     top_n=request.top_n, min_cluster_size=request.min_cluster_size,
                                     keep=request.keep, method=request.method, seed=request.seed,
                                     device=state.device, batch_size=state.batch_size, scrambles=request.scrambles,
                                     model_name=state.loaded.name, fingerprint=state.fingerprint,
                                     progress=lambda share, message: context.report(0.95 * share, message))
            context.report(0.96, "drawing each cluster's patches")
            result = _answer(state, the_store, found, image_set, key)
            the_store.put_bytes(KIND, key, json.dumps(result).encode(), suffix=".json",
                                meta={"fingerprint": state.fingerprint, "node": str(node)})
            return result

        return pending(state.jobs.submit("subfeatures", work, f"sub-feature circuits of {node} over {request.images}",
                                         key=f"subfeatures|{key}"))

    @router.get("/subfeatures/patches/{key}.png", summary="a sub-feature cluster's top patches",
                response_class=Response, responses=answers(404, body="png"))
    def patches_png(key: str) -> Response:
        path = state.store.get_path(PATCHES, key) if state.store is not None and _KEY.fullmatch(key) else None
        if path is None:
            raise NotFound(f"unknown patch picture {key[:70]!r}: use a URL from a sub-features answer")
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private, max-age=86400"})

    return router


def _answer(state: ServerState, store: Store, found: SubfeatureResult, image_set: Any, key: str) -> dict:
    """The result's JSON, each cluster's circuit stored (for renders through it) and its patches drawn."""
    from viscnn.circuits.subfeatures import patch_crops, patch_grid

    data = found.to_json(image_set, state.graph)
    for k, (cluster, members) in enumerate(zip(data["clusters"], found.clusters, strict=True)):
        circuit = found.circuits[k].to_json(state.graph, state.loaded.module)
        circuit_key = Store.key("server-subfeature-circuit", subfeatures=key, cluster=k)
        circuit["key"] = circuit_key
        store.put_bytes(CIRCUIT_KIND, circuit_key, json.dumps(circuit).encode(), suffix=".json",
                        meta=circuit_meta(state, circuit, subfeature=str(found.node), cluster=k))
        crops = patch_crops(state.graph, image_set, state.loaded.preprocess, found.node, found.patches,
                            members[:SHOWN_PATCHES])
        buffer = io.BytesIO()
        patch_grid(crops, columns=4, cell=72).save(buffer, format="PNG")
        picture_key = Store.key(PATCHES, subfeatures=key, cluster=k)
        store.put_bytes(PATCHES, picture_key, buffer.getvalue(), suffix=".png")
        cluster.update(circuit=circuit_key, kept_fraction=circuit["kept_fraction"],
                       patches_png=f"/api/subfeatures/patches/{picture_key}.png")
    coords = projection(np.stack([p.vector for p in found.patches])) if found.patches else np.zeros((0, 2))
    labels = np.full(len(found.patches), -1)  # HDBSCAN's own numbers differ from the clusters' (largest first)
    for k, members in enumerate(found.clusters):
        labels[members] = k
    data["projection"] = {"method": "PCA of the layer's activation vectors (clusters are found in all dimensions)",
                          "points": [{"x": round(float(x), 5), "y": round(float(y), 5), "cluster": int(label),
                                      "image": p.image, "value": round(p.value, 5)}
                                     for (x, y), label, p in zip(coords, labels, found.patches, strict=True)]}
    data["key"] = key
    return data
