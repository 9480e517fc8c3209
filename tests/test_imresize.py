"""MATLAB-exact bicubic: closed-form cases, and agreement with an independent NumPy version."""

import math

import numpy as np
import pytest
import torch

from irnlib import imresize
from irnlib.imaging.imresize import contributions, cubic


def reference_resize_1d(signal: np.ndarray, scale: float) -> np.ndarray:
    """Resize the rows of ``signal`` (axis 0) straight from MATLAB's documented algorithm.

    Written independently of irnlib: one output sample at a time, every tap evaluated from
    the kernel formula, mirror indexing by reflection, no tap dropped.
    """
    n = signal.shape[0]
    m = math.ceil(n * scale)
    width = 4 / scale if scale < 1 else 4

    def h(d):
        if scale < 1:
            d = d * scale
        a = abs(d)
        k = (1.5 * a**3 - 2.5 * a**2 + 1) if a <= 1 else (-0.5 * a**3 + 2.5 * a**2 - 4 * a + 2) if a <= 2 else 0.0
        return k * scale if scale < 1 else k

    def mirror(i):  # 1-based index into [1..n, n..1, 1..n, ...]
        i = (i - 1) % (2 * n)
        return i if i < n else 2 * n - 1 - i

    out = np.zeros((m,) + signal.shape[1:])
    for x in range(1, m + 1):
        u = x / scale + 0.5 * (1 - 1 / scale)
        left = math.floor(u - width / 2)
        taps = [(left + p, h(u - (left + p))) for p in range(math.ceil(width) + 2)]
        total = sum(w for _, w in taps)
        for i, w in taps:
            out[x - 1] += (w / total) * signal[mirror(i)]
    return out


def reference_imresize(img: np.ndarray, scale: float) -> np.ndarray:
    """Vertical then horizontal, rounding to uint8 after each pass for uint8 input."""
    is_uint8 = img.dtype == np.uint8
    x = img.astype(np.float64)
    x = reference_resize_1d(x, scale)
    if is_uint8:
        x = np.clip(np.floor(x + 0.5), 0, 255)  # MATLAB: saturate, round half away from zero
    x = reference_resize_1d(x.swapaxes(0, 1), scale).swapaxes(0, 1)
    if is_uint8:
        x = np.clip(np.floor(x + 0.5), 0, 255).astype(np.uint8)
    return x


def test_cubic_kernel_values():
    assert cubic(np.array([0.0]))[0] == 1
    np.testing.assert_allclose(
        cubic(np.array([0.25, 0.75, 1.25, 1.75, 1.0, 2.0, 2.5])),
        [0.8671875, 0.2265625, -0.0703125, -0.0234375, 0.0, 0.0, 0.0],
    )


def test_halving_uses_the_known_antialiased_weights():
    weights, indices = contributions(16, 8, 0.5)
    interior = [-0.01171875, -0.03515625, 0.11328125, 0.43359375, 0.43359375, 0.11328125, -0.03515625, -0.01171875]
    np.testing.assert_allclose(weights[3], interior, atol=1e-15)
    np.testing.assert_array_equal(indices[3], np.arange(3, 11))  # output 4 (1-based) reads inputs 4..11
    np.testing.assert_allclose(weights.sum(1), 1, atol=1e-15)
    np.testing.assert_array_equal(indices[0], [2, 1, 0, 0, 1, 2, 3, 4])  # symmetric border


def test_doubling_weights_have_two_phases():
    weights, _ = contributions(8, 16, 2.0)
    np.testing.assert_allclose(weights[4], [-0.0234375, 0.2265625, 0.8671875, -0.0703125])
    np.testing.assert_allclose(weights[5], [-0.0703125, 0.8671875, 0.2265625, -0.0234375])


@pytest.mark.parametrize("scale", [1 / 2, 1 / 4, 1 / 8, 2, 4])
def test_constant_images_stay_constant(scale):
    img = np.full((32, 24, 3), 137, np.uint8)
    out = imresize(img, scale)
    assert out.shape == (math.ceil(32 * scale), math.ceil(24 * scale), 3)
    assert (out == 137).all()
    t = torch.full((2, 3, 32, 24), 0.3)
    torch.testing.assert_close(imresize(t, scale), torch.full_like(imresize(t, scale), 0.3))


def test_output_size_is_matlab_ceil():
    assert imresize(np.zeros((11, 13), np.uint8), 1 / 4).shape == (3, 4)
    assert imresize(torch.zeros(1, 1, 11, 13), 1 / 2).shape == (1, 1, 6, 7)


@pytest.mark.parametrize("scale", [1 / 2, 1 / 3, 1 / 4, 1 / 8, 2, 3, 4])
@pytest.mark.parametrize("shape", [(24, 16, 3), (17, 29)])
def test_uint8_agrees_exactly_with_the_reference(scale, shape):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, shape, dtype=np.uint8)
    ours, ref = imresize(img, scale), reference_imresize(img, scale)
    assert ours.dtype == np.uint8 and ours.shape == ref.shape
    np.testing.assert_array_equal(ours, ref)


def test_uint8_rounds_between_the_two_passes():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    once = np.clip(np.floor(imresize(img.astype(np.float64), 1 / 4) + 0.5), 0, 255).astype(np.uint8)
    twice = imresize(img, 1 / 4)
    assert (once != twice).any()  # the intermediate rounding is visible ...
    np.testing.assert_array_equal(twice, reference_imresize(img, 1 / 4))  # ... and is MATLAB's


@pytest.mark.parametrize("scale", [1 / 4, 2])
def test_float_tensor_and_numpy_paths_agree_with_the_reference(scale):
    rng = np.random.default_rng(2)
    img = rng.random((20, 28, 3))
    ref = reference_imresize(img, scale)
    np.testing.assert_allclose(imresize(img, scale), ref, atol=1e-12)
    batch = torch.from_numpy(np.stack([img, img[::-1].copy()])).permute(0, 3, 1, 2)
    out = imresize(batch, scale)
    assert out.dtype == torch.float64
    np.testing.assert_allclose(out[0].permute(1, 2, 0).numpy(), ref, atol=1e-12)
    out32 = imresize(batch.float(), scale)
    assert out32.dtype == torch.float32
    np.testing.assert_allclose(out32[0].permute(1, 2, 0).numpy(), ref, atol=1e-5)


def test_float_result_is_not_clipped():
    img = np.zeros((16, 16), np.float64)
    img[:, 8:] = 1.0
    out = imresize(img, 2)
    assert out.min() < 0 and out.max() > 1  # bicubic overshoot survives for float input


def test_bad_input_is_refused_with_a_clear_message():
    with pytest.raises(TypeError, match="float with shape"):
        imresize(torch.zeros(3, 8, 8), 0.5)
    with pytest.raises(TypeError, match="uint8 or float"):
        imresize(np.zeros((8, 8), np.int32), 0.5)
    with pytest.raises(ValueError, match="positive"):
        imresize(np.zeros((8, 8), np.uint8), 0)
