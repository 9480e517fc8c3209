"""PSNR/SSIM as the paper measures them, and the Bicubic & Bicubic reference row."""

import math

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from irnlib.data.test_pairs import PairedTestSet
from irnlib.imaging.imresize import imresize
from irnlib.imaging.metrics import psnr, rgb_to_y, ssim


def test_y_channel_of_known_colours():
    img = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], np.uint8)
    np.testing.assert_allclose(rgb_to_y(img)[0], [16, 235, 16 + 65.481, 16 + 128.553, 16 + 24.966])


def test_psnr_of_a_known_error():
    a = np.full((20, 20), 100, np.uint8)
    b = a.copy()
    b[5:15, 5:15] += 10  # MSE 100 * 100/400 = 25 after no border
    assert psnr(a, b, border=0) == pytest.approx(20 * math.log10(255 / 5))
    assert psnr(a, a, border=2) == math.inf


def test_border_is_removed_before_measuring():
    a = np.zeros((16, 16, 3), np.uint8)
    b = a.copy()
    b[:2] = 255  # damage only the top two rows
    assert psnr(a, b, border=2) == math.inf
    assert psnr(a, b, border=1) < 20


def test_rgb_psnr_differs_from_y_psnr():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-8, 9, a.shape), 0, 255).astype(np.uint8)
    y_mse = np.mean((rgb_to_y(a) - rgb_to_y(b))[2:-2, 2:-2] ** 2)
    rgb_mse = np.mean((a.astype(float) - b)[2:-2, 2:-2] ** 2)
    assert psnr(a, b, border=2) == pytest.approx(10 * math.log10(255**2 / y_mse))
    assert psnr(a, b, border=2, y_channel=False) == pytest.approx(10 * math.log10(255**2 / rgb_mse))


@pytest.mark.parametrize("y_channel", [True, False])
def test_ssim_agrees_with_scikit_image(y_channel):
    rng = np.random.default_rng(1)
    a = rng.integers(0, 256, (64, 48, 3), dtype=np.uint8)
    b = np.clip(a.astype(int) + rng.integers(-30, 31, a.shape), 0, 255).astype(np.uint8)
    kw = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=255)
    if y_channel:
        ya, yb = rgb_to_y(a)[4:-4, 4:-4], rgb_to_y(b)[4:-4, 4:-4]
        expected = structural_similarity(ya, yb, **kw)
    else:
        expected = structural_similarity(a[4:-4, 4:-4], b[4:-4, 4:-4], channel_axis=2, **kw)
    assert ssim(a, b, border=4, y_channel=y_channel) == pytest.approx(expected, abs=1e-9)
    assert ssim(a, a, border=4) == pytest.approx(1.0)


def test_errors_say_what_was_passed_and_what_is_expected():
    a = np.zeros((16, 16, 3), np.uint8)
    with pytest.raises(ValueError, match=r"img1 \(16, 16, 3\) vs img2 \(16, 8, 3\)"):
        psnr(a, a[:, :8], border=0)
    with pytest.raises(TypeError, match="img2 must be a uint8.*float64"):
        ssim(a, a.astype(np.float64), border=0)
    with pytest.raises(ValueError, match="H×W×3 RGB or H×W, got shape"):
        psnr(a[..., :2], a[..., :2], border=0)
    with pytest.raises(ValueError, match="border"):
        psnr(a, a, border=8)
    with pytest.raises(ValueError, match="window"):
        ssim(a, a, border=4)


# The reference row of ../shared/datasets/README.md ("this data" columns).
BICUBIC_REFERENCE = {
    ("Set5", 2): (33.67, 0.9303),
    ("Set5", 4): (28.43, 0.8111),
    ("Set14", 2): (30.32, 0.8699),
    ("Set14", 4): (26.09, 0.7048),
    ("BSD100", 2): (29.56, 0.8434),
    ("BSD100", 4): (25.96, 0.6681),
}


@pytest.mark.parametrize("dataset,scale", sorted(BICUBIC_REFERENCE))
def test_bicubic_and_bicubic_row_matches_the_reference(shared_data, dataset, scale):
    psnrs, ssims = [], []
    for pair in PairedTestSet(dataset, scale, root=shared_data):
        sr = imresize(pair.lr, scale)
        psnrs.append(psnr(sr, pair.hr, border=scale))
        ssims.append(ssim(sr, pair.hr, border=scale))
    ref_psnr, ref_ssim = BICUBIC_REFERENCE[dataset, scale]
    assert np.mean(psnrs) == pytest.approx(ref_psnr, abs=0.02)
    assert np.mean(ssims) == pytest.approx(ref_ssim, abs=0.001)
