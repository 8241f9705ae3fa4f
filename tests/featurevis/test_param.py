"""The FFT image parametrisation: valid pixels, seeded per image, 1/f scaled, grey for 1-channel models."""
import torch

from viscnn.featurevis.param import FFTImage, frequencies, image_param


def test_pixels_are_valid_and_start_near_grey():
    image = image_param(2, 3, 32, seeds=[0, 1])
    pixels = image()
    assert pixels.shape == (2, 3, 32, 32)
    assert pixels.min() > 0 and pixels.max() < 1
    assert (pixels - 0.5).abs().mean() < 0.1  # small initial noise: renders start from grey


def test_image_k_depends_only_on_its_seed_not_on_the_batch():
    alone = image_param(1, 3, 24, seeds=[7])()
    batched = image_param(3, 3, 24, seeds=[5, 6, 7])()
    assert torch.equal(alone[0], batched[2])
    assert not torch.equal(batched[0], batched[1])


def test_low_frequencies_get_larger_steps_than_high_ones():
    image = FFTImage(1, 3, 32)
    freqs = frequencies(32, 32)
    low = image.scale[freqs == freqs[freqs > 0].min()].mean()
    high = image.scale[freqs == freqs.max()].mean()
    assert low > 10 * high


def test_grey_parametrisation_for_one_channel_models_and_colour_for_rgb():
    grey = image_param(1, 1, 16, seeds=[0])
    assert grey().shape == (1, 1, 16, 16) and not grey.decorrelate
    colour = image_param(1, 3, 16, seeds=[0])
    assert colour.decorrelate
    # decorrelated colour: one basis channel changes all three RGB channels
    with torch.no_grad():
        colour.spectrum.zero_()
        colour.spectrum[0, 0, 0, 0, 0] = 1.0
    rgb = colour()[0].mean(dim=(1, 2))
    assert (rgb - 0.5).abs().min() > 0.01


def test_gradients_reach_the_spectrum():
    image = image_param(2, 3, 16, seeds=[0, 1])
    image()[:, 0].mean().backward()
    assert image.spectrum.grad is not None and image.spectrum.grad.abs().sum() > 0
