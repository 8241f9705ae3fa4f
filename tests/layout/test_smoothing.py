"""Smoothing to a uniform disc: density even within a tolerance, neighbourhoods mostly kept."""
import numpy as np
import pytest

from viscnn.errors import ViscnnError
from viscnn.layout import smoothing
from viscnn.layout.smoothing import smooth_to_disc, sunflower


def clustered(n=600, seed=0):
    """Points in five tight, unequal clusters: far from uniform."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0], [4, 0], [0, 5], [-3, -3], [6, 6]], dtype=float)
    sizes = [0.4, 0.2, 0.2, 0.1, 0.1]
    which = rng.choice(len(centres), n, p=sizes)
    return centres[which] + rng.normal(scale=[0.3, 0.8], size=(n, 2)), which


def density_error(points):
    """Largest relative deviation of the counts in 4 rings x 8 sectors from what equal areas expect."""
    radius = np.hypot(points[:, 0], points[:, 1])
    ring = np.minimum((radius ** 2 * 4).astype(int), 3)  # equal-area rings
    sector = ((np.arctan2(points[:, 1], points[:, 0]) + np.pi) / (2 * np.pi) * 8).astype(int) % 8
    counts = np.bincount(ring * 8 + sector, minlength=32)
    expected = len(points) / 32
    return np.abs(counts - expected).max() / expected


def knn(points, k):
    d = ((points[:, None] - points[None]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1)[:, :k]


def kept(before, after, k=10):
    """Mean fraction of each point's k nearest neighbours that are still among its k nearest."""
    a, b = knn(before, k), knn(after, k)
    return np.mean([len(set(x) & set(y)) / k for x, y in zip(a, b)])


def test_sunflower_is_uniform():
    points = sunflower(800)
    assert np.hypot(points[:, 0], points[:, 1]).max() <= 1.0
    assert density_error(points) < 0.1


def test_clusters_become_a_uniform_disc():
    points, _ = clustered()
    assert density_error(points - points.mean(0)) > 1.0  # the input is nowhere near uniform
    smoothed = smooth_to_disc(points)
    assert smoothed.shape == points.shape
    assert np.hypot(smoothed[:, 0], smoothed[:, 1]).max() <= 1.0 + 1e-9
    assert density_error(smoothed) < 0.15
    # distinct places: the disc's places are each used once
    assert len(np.unique(np.round(smoothed, 9), axis=0)) == len(points)


def test_neighbours_mostly_kept():
    points, which = clustered()
    smoothed = smooth_to_disc(points)
    shuffled = smoothed[np.random.default_rng(1).permutation(len(smoothed))]
    assert kept(points, smoothed) > 0.5
    assert kept(points, shuffled) < 0.05  # the measure can fail: a uniform disc with neighbours lost
    # clusters stay in one piece: a point's nearest neighbour after smoothing is from its own cluster
    nearest = knn(smoothed, 1)[:, 0]
    assert (which[nearest] == which).mean() > 0.85
    assert (which[nearest[np.random.default_rng(2).permutation(len(nearest))]] == which).mean() < 0.5


def test_strength_blends():
    points, _ = clustered(200)
    half = smooth_to_disc(points, 0.5)
    full = smooth_to_disc(points, 1.0)
    assert density_error(full) < density_error(half)


def test_big_layers_split_into_blocks(monkeypatch):
    monkeypatch.setattr(smoothing, "MAX_ASSIGN", 150)  # 600 points: two levels of halving
    points, _ = clustered()
    smoothed = smooth_to_disc(points)
    assert density_error(smoothed) < 0.15
    assert kept(points, smoothed) > 0.4


@pytest.mark.parametrize("bad", [np.zeros((5, 3)), np.array([[0.0, np.nan], [1.0, 1.0]]), np.zeros(4)])
def test_bad_points(bad):
    with pytest.raises(ViscnnError):
        smooth_to_disc(bad)


def test_bad_strength():
    with pytest.raises(ViscnnError, match="strength"):
        smooth_to_disc(np.zeros((3, 2)), 1.5)


def test_tiny():
    assert smooth_to_disc(np.zeros((0, 2))).shape == (0, 2)
    assert np.allclose(smooth_to_disc(np.ones((1, 2))), 0)
