"""Smoothing a layer's projection into a disc of uniform density, keeping neighbourhoods (the paper's Fig. 12).

The paper pushes points apart with a force field until their density is even. Here the end state is
reached directly: the points are matched to the places of a sunflower grid (Vogel's spiral, which fills
the unit disc with even density) of the same size, by the assignment that minimises the summed squared
displacement (an optimal transport plan between the two point sets). Such a plan never crosses
itself in the squared-distance sense (it is cyclically monotone), so points that were near stay near.
Layers of more than MAX_ASSIGN nodes are first halved, points and places alike, along alternating axes.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from viscnn.errors import ViscnnError

GOLDEN_ANGLE = np.pi * (3.0 - np.sqrt(5.0))
MAX_ASSIGN = 2000  # above this many points, the exact assignment (O(n^3)) is made per block of a k-d split


def sunflower(n: int) -> np.ndarray:
    """[n, 2] points filling the unit disc with uniform density (Vogel's spiral)."""
    i = np.arange(n, dtype=np.float64)
    radius = np.sqrt((i + 0.5) / max(n, 1))
    angle = i * GOLDEN_ANGLE
    return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)


def _fit_scale(points: np.ndarray) -> np.ndarray:
    """Centred, and scaled so the RMS radius matches a uniform unit disc's (1/sqrt(2))."""
    points = points - points.mean(axis=0)
    rms = float(np.sqrt((points ** 2).sum(axis=1).mean()))
    return points * (np.sqrt(0.5) / rms) if rms > 0 else points


def _assign(points: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """grid[k] for each point: the least-squared-displacement matching of points to grid places."""
    cost = ((points[:, None, :] - grid[None, :, :]) ** 2).sum(axis=2)
    rows, cols = linear_sum_assignment(cost)
    target = np.empty_like(points)
    target[rows] = grid[cols]
    return target


def _split_assign(points: np.ndarray, grid: np.ndarray, axis: int = 0) -> np.ndarray:
    """For big layers: halve points and places alike along alternating axes (k-d style), then match
    each small block exactly. Each half keeps its share of places, so the density stays uniform."""
    if len(points) <= MAX_ASSIGN:
        return _assign(points, grid)
    half = len(points) // 2
    by_point = np.argsort(points[:, axis], kind="stable")
    by_place = np.argsort(grid[:, axis], kind="stable")
    target = np.empty_like(points)
    for part in (slice(None, half), slice(half, None)):
        target[by_point[part]] = _split_assign(points[by_point[part]], grid[by_place[part]], 1 - axis)
    return target


def smooth_to_disc(points: np.ndarray, strength: float = 1.0) -> np.ndarray:
    """[N, 2] points -> [N, 2] points in the unit disc, of uniform density where `strength` is 1.

    `strength` blends the (centred, scaled) input (0) with the uniform arrangement (1).
    """
    points = np.asarray(points, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2:
        raise ViscnnError(f"smoothing needs 2D points [N, 2], got shape {list(points.shape)}")
    if not np.isfinite(points).all():
        raise ViscnnError("the points to smooth contain NaN or infinite values")
    if not 0.0 <= strength <= 1.0:
        raise ViscnnError(f"smoothing strength must be between 0 and 1, not {strength}")
    n = len(points)
    if n <= 1:
        return np.zeros((n, 2))
    scaled = _fit_scale(points)
    target = _split_assign(scaled, sunflower(n))
    result = (1.0 - strength) * scaled + strength * target
    radius = np.hypot(result[:, 0], result[:, 1]).max()
    return result / radius if radius > 1.0 else result
