"""Each layer's node vectors -> 2D points: UMAP (umap-learn) or metric MDS (scikit-learn), centred and scaled.

Vectors are L2-normalised first (the paper: overall importance must not decide the place, only which
classes a node serves). Tiny layers skip the fit: 1 node sits at the centre, 2 on a line.
"""
from __future__ import annotations

import warnings

import numpy as np

from viscnn.errors import ViscnnError

METHODS = ("umap", "mds")
MIN_UMAP = 8  # UMAP needs a neighbourhood graph; below this many nodes MDS is used


def normalise_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (all-zero rows stay zero)."""
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def _standardise(points: np.ndarray) -> np.ndarray:
    """Centred on the mean, scaled so the root-mean-square radius is 1/sqrt(2) (that of a uniform unit disc)."""
    points = points - points.mean(axis=0)
    rms = float(np.sqrt((points ** 2).sum(axis=1).mean()))
    return points * (np.sqrt(0.5) / rms) if rms > 0 else points


def project(vectors: np.ndarray, method: str = "umap", *, seed: int = 0, n_neighbors: int = 15,
            normalise: bool = True) -> np.ndarray:
    """[N, D] vectors -> [N, 2] points (float64), centred, with RMS radius 1/sqrt(2).

    Duplicate vectors (e.g. dead nodes, all zero) are spread by a tiny seeded jitter so that the
    methods see distinct points; NaN or infinite values are an error.
    """
    if method not in METHODS:
        raise ViscnnError(f"unknown projection {method!r}: choose from {', '.join(METHODS)}")
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2:
        raise ViscnnError(f"a projection needs node vectors [N, D], got shape {list(vectors.shape)}")
    if not np.isfinite(vectors).all():
        raise ViscnnError("node vectors contain NaN or infinite values")
    n = vectors.shape[0]
    if n == 0:
        return np.zeros((0, 2))
    if n == 1:
        return np.zeros((1, 2))
    if normalise:
        vectors = normalise_rows(vectors)
    rng = np.random.default_rng(seed)
    vectors = vectors + rng.normal(scale=1e-6, size=vectors.shape)
    if n == 2:
        return _standardise(np.array([[-1.0, 0.0], [1.0, 0.0]]))
    if method == "umap" and n >= MIN_UMAP:
        points = _umap(vectors, seed, min(n_neighbors, n - 1))
    else:
        points = _mds(vectors, seed)
    return _standardise(points)


def _mds(vectors: np.ndarray, seed: int) -> np.ndarray:
    import inspect

    from sklearn.manifold import MDS

    options: dict = {"n_components": 2, "n_init": 1, "max_iter": 300, "random_state": seed}
    if "metric_mds" in inspect.signature(MDS).parameters:  # scikit-learn >= 1.8 renamed the options
        options.update(metric_mds=True, metric="euclidean", init="classical_mds")
    else:
        options.update(metric=True, dissimilarity="euclidean")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        return np.asarray(MDS(**options).fit_transform(vectors), dtype=np.float64)


def _umap(vectors: np.ndarray, seed: int, n_neighbors: int) -> np.ndarray:
    try:
        import umap
    except ImportError as exc:  # pragma: no cover - umap-learn is a dependency
        raise ViscnnError("the umap projection needs umap-learn: pip install umap-learn") from exc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # n_jobs overridden by random_state; small-data spectral init notes
        reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=0.3, random_state=seed, n_jobs=1,
                            init="spectral" if vectors.shape[0] > n_neighbors + 2 else "random")
        return np.asarray(reducer.fit_transform(vectors), dtype=np.float64)
