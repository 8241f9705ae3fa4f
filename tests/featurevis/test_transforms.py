"""Batched random transforms: per-image randomness, seeded, differentiable, sized for the model."""
import pytest
import torch
import torch.nn.functional as F

from viscnn.featurevis.transforms import (
    Jitter,
    Pad,
    Resize,
    ScaleRotate,
    apply,
    sequential,
    standard_transforms,
)


def _batch(n=4, c=3, size=20):
    return torch.rand(n, c, size, size, generator=torch.Generator().manual_seed(0))


def test_jitter_crops_each_image_at_its_own_offset():
    x = _batch(8)
    out = Jitter(4)(x, torch.Generator().manual_seed(1))
    assert out.shape == (8, 3, 16, 16)
    offsets = set()
    for k in range(8):
        found = [(dy, dx) for dy in range(5) for dx in range(5) if torch.equal(out[k], x[k, :, dy:dy + 16, dx:dx + 16])]
        assert found, "every crop is a window of its own image"
        offsets.add(found[0])
    assert len(offsets) > 1


def test_same_generator_seed_same_transform():
    x = _batch()
    chain = standard_transforms(20)
    a = apply(chain, x, torch.Generator().manual_seed(3))
    b = apply(chain, x, torch.Generator().manual_seed(3))
    c = apply(chain, x, torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)


@pytest.mark.parametrize("strong", [False, True])
def test_standard_chain_returns_the_model_size_and_passes_gradients(strong):
    x = _batch(2, 1, 28).requires_grad_(True)
    out = apply(standard_transforms(28, strong=strong), x, torch.Generator().manual_seed(0))
    assert out.shape == (2, 1, 28, 28)
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_identity_scale_and_rotation_leave_the_image_alone():
    x = _batch()
    out = ScaleRotate(scales=(1.0,), angles=(0.0,))(x, torch.Generator())
    assert torch.allclose(out, x, atol=1e-5)


def test_rotation_by_90_degrees_turns_the_image():
    x = _batch(1, 1, 9)
    out = ScaleRotate(scales=(1.0,), angles=(90.0,))(x, torch.Generator())
    assert torch.allclose(out, torch.rot90(x, 1, dims=(2, 3)), atol=1e-4) or \
        torch.allclose(out, torch.rot90(x, -1, dims=(2, 3)), atol=1e-4)


def test_pad_is_grey_and_resize_restores_size():
    x = _batch(1, 3, 10)
    padded = Pad(3)(x, torch.Generator())
    assert padded.shape[-1] == 16 and torch.all(padded[:, :, 0, :] == 0.5)
    assert Resize(10)(padded, torch.Generator()).shape[-1] == 10


def _smooth(n=4, c=3, size=48):
    coarse = torch.rand(n, c, 6, 6, generator=torch.Generator().manual_seed(0))
    return F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)


def _generators(n):
    return [torch.Generator().manual_seed(k) for k in range(n)]


@pytest.mark.parametrize("chain", [
    [Pad(4), Jitter(3), Jitter(2)],
    [Pad(4), Jitter(3), ScaleRotate(scales=(1.0,), angles=(90.0,)), Jitter(2), Resize(47)],
    [Pad(5), Jitter(3), ScaleRotate(scales=(1.1,), angles=(7.0,))],
    [Jitter(4), Resize(40)],
])
def test_one_resampling_equals_the_chain_where_the_chain_interpolates_once(chain):
    x = _smooth()
    merged, chained = apply(chain, x, _generators(4)), sequential(chain, x, _generators(4))
    assert merged.shape == chained.shape
    assert torch.allclose(merged[..., 3:-3, 3:-3], chained[..., 3:-3, 3:-3], atol=1e-5)


@pytest.mark.parametrize("strong", [False, True])
def test_one_resampling_matches_the_standard_chain_up_to_its_second_interpolation(strong):
    x = _smooth(size=64)
    chain = standard_transforms(64, strong=strong)
    merged, chained = apply(chain, x, _generators(4)), sequential(chain, x, _generators(4))
    assert merged.shape == chained.shape == x.shape
    assert (merged - chained).abs().mean() < 5e-3
    assert (merged - x).abs().mean() > 5 * (merged - chained).abs().mean()  # it did transform


def test_an_image_is_resampled_the_same_in_any_batch():
    x = _batch(5, 3, 28)
    chain = standard_transforms(28)
    together = apply(chain, x, _generators(5))
    alone = apply(chain, x[3:4], [torch.Generator().manual_seed(3)])
    assert torch.equal(together[3:4], alone)


def test_a_reflection_pad_is_not_merged():
    x = _smooth(1, 1, 16)
    chain = [Pad(3, mode="reflect"), Jitter(2)]
    assert torch.equal(apply(chain, x, _generators(1)), sequential(chain, x, _generators(1)))
