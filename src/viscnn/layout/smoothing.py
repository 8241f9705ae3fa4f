"""Smoothing a layer's projection into a disc of uniform density, keeping neighbourhoods (the paper's Fig. 12).

The paper pushes points apart with a force field until their density is even. Here the end state is
reached directly: the points are matched to the places of a sunflower grid (Vogel's spiral, which fills
the unit disc with even density) of the same size, by the assignment that minimises the summed squared
displacement (an optimal transport plan between the two point sets). Such a plan never crosses
itself in the squared-distance sense (it is cyclically monotone), so points that were near stay near.
"""
from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from viscnn.errors import ViscnnError

GOLDEN_ANGLE = np.pi * (3.0 - np.sqrt(5.0))
MAX_ASSIGN = 4000  # above this many points the exact assignment (O(n^3)) gives way to rank equalisation


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


def _rank_equalise(points: np.ndarray) -> np.ndarray:
    """Cheap fallback for huge layers: radii by rank to sqrt(rank / n), angles by rank to uniform."""
    n = len(points)
    radius = np.hypot(points[:, 0], points[:, 1])
    angle = np.arctan2(points[:, 1], points[:, 0])
    new_radius = np.sqrt((np.argsort(np.argsort(radius, kind="stable"), kind="stable") + 0.5) / n)
    order = np.argsort(np.argsort(angle, kind="stable"), kind="stable")
    new_angle = -np.pi + 2 * np.pi * (order + 0.5) / n
    return np.stack([new_radius * np.cos(new_angle), new_radius * np.sin(new_angle)], axis=1)


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
    if n > MAX_ASSIGN:
        target = _rank_equalise(scaled)
    else:
        grid = sunflower(n)
        cost = ((scaled[:, None, :] - grid[None, :, :]) ** 2).sum(axis=2)
        rows, cols = linear_sum_assignment(cost)
        target = np.empty_like(scaled)
        target[rows] = grid[cols]
    result = (1.0 - strength) * scaled + strength * target
    radius = np.hypot(result[:, 0], result[:, 1]).max()
    return result / radius if radius > 1.0 else result
