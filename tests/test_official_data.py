"""Issue 15: the training data, sampling, warm-up, validation log and z = 0 rows, each checked
against an independent computation (whole-image MATLAB bicubic, scikit-image's bilinear resize,
a hand-built epoch order, a simulation of the official scheduler, scikit-image's PSNR)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import skimage.data
import skimage.metrics
import skimage.transform
import torch
from conftest import randomize

from irnlib import IRN
from irnlib.data.patches import TrainingPatches
from irnlib.data.test_pairs import TestPair
from irnlib.experiments.table1 import KitRow, build_table
from irnlib.experiments.table1_markdown import render_markdown
from irnlib.imaging.images import load_image, save_png, to_batch, to_image
from irnlib.imaging.imresize import imresize
from irnlib.model.network import quantize
from irnlib.protocol import evaluate as ev
from irnlib.train import lr_factor, make_config, validate

pytestmark = pytest.mark.usefixtures("one_thread")


def coordinate_image(path, h, w):
    y, x = np.mgrid[:h, :w]
    save_png(path, np.dstack([y % 256, x % 256, (y // 256) * 16 + x // 256]).astype(np.uint8))
    return path


def positions(crop):
    crop = np.asarray(crop).astype(int)
    return crop[..., 0] + (crop[..., 2] // 16) * 256, crop[..., 1] + (crop[..., 2] % 16) * 256


def apply(arr, hf, vf, tr):
    arr = arr[:, ::-1] if hf else arr
    arr = arr[::-1] if vf else arr
    return arr.transpose(1, 0, 2) if tr else arr


# ------------------------------------------------------------------ 1. the LR target


@pytest.mark.parametrize("scale", [2, 4])
def test_lr_target_is_the_scale_aligned_crop_of_the_whole_image_lr(tmp_path, scale):
    path = coordinate_image(tmp_path / "c.png", 96, 160)  # sides multiples of 2 and 4: not resized
    img = load_image(path)
    whole_lr = imresize(img.astype(np.float64) / 255, 1 / scale)  # MATLAB bicubic of the whole image, float
    patches = TrainingPatches([path], scale, patch=32, seed=1, lr_target="image", cache_dir=tmp_path / "cache")
    p = 32 // scale
    seen, worst_old = set(), 0.0
    for k in range(40):
        hr, lr = patches[k]
        ys, xs = positions(np.rint(hr.permute(1, 2, 0).numpy() * 255))
        top, left = ys.min(), xs.min()
        assert top % scale == 0 and left % scale == 0
        block = np.dstack(np.mgrid[top : top + 32, left : left + 32])
        flips = [g for g in np.ndindex(2, 2, 2) if np.array_equal(np.dstack([ys, xs]), apply(block, *g))]
        assert len(flips) == 1
        seen.add(flips[0])
        want = apply(whole_lr[top // scale : top // scale + p, left // scale : left // scale + p], *flips[0])
        np.testing.assert_allclose(lr.permute(1, 2, 0).numpy(), want, rtol=0, atol=1e-6)
        old = imresize(hr[None], 1 / scale)[0].permute(1, 2, 0).numpy()  # the kit's earlier target
        worst_old = max(worst_old, np.abs(old - want).max())
    assert len(seen) == 8
    assert worst_old > 1e-4  # the earlier target differs in its frame (a ramp image: only slightly)
    # the cache: one float LR per image, read memory-mapped
    assert len(list((tmp_path / "cache" / "decoded").glob("official-x*/*.lr.npy"))) == 1


# ------------------------------------------------------------------ 3. awkward sizes


@pytest.mark.parametrize("size", [(302, 451), (40, 40), (50, 200)])
def test_awkward_sizes_follow_the_official_rescale_rule(tmp_path, size):
    scale, patch = 4, 48
    img = np.ascontiguousarray(skimage.data.astronaut()[: size[0], : size[1]])
    path = save_png(tmp_path / "a.png", img)
    target = (max(patch, size[0] // scale * scale), max(patch, size[1] // scale * scale))
    # cv2.resize(img / 255, (W, H), INTER_LINEAR) as scikit-image computes it: bilinear, half-pixel centres, edge
    want_hr = skimage.transform.resize(
        img.astype(np.float64) / 255, (*target, 3), order=1, mode="edge", anti_aliasing=False
    )
    want_lr = imresize(want_hr, 1 / scale)
    patches = TrainingPatches([path], scale, patch=patch, seed=0, lr_target="image")
    hr, lr = patches.prepared(0)
    assert hr.shape == (*target, 3) and lr.shape == (target[0] // scale, target[1] // scale, 3)
    np.testing.assert_allclose(hr, want_hr, rtol=0, atol=2e-6)
    np.testing.assert_allclose(lr, want_lr, rtol=0, atol=2e-6)
    sample_hr, sample_lr = patches[0]
    assert sample_hr.shape == (3, patch, patch) and sample_lr.shape == (3, patch // scale, patch // scale)


def test_images_of_the_right_size_are_not_resized(tmp_path):
    img = np.ascontiguousarray(skimage.data.astronaut()[:200, :100])
    patches = TrainingPatches([save_png(tmp_path / "a.png", img)], 4, patch=48, lr_target="image")
    hr, _ = patches.prepared(0)
    assert hr.dtype == np.uint8 and np.array_equal(hr, img)


# ------------------------------------------------------------------ 2. epoch sampling


def test_epoch_sampling_is_a_hand_built_shuffle_per_epoch_dropping_the_last_batch(tmp_path):
    n, batch, seed = 5, 2, 7
    paths = [save_png(tmp_path / f"{j}.png", np.full((32, 32, 3), 40 * j, np.uint8)) for j in range(n)]
    patches = TrainingPatches(paths, 2, patch=16, seed=seed, lr_target="image", sampling="epoch", batch_size=batch)
    per_epoch = n // batch  # 2 batches; the fifth image of each epoch's order is dropped
    for k in reversed(range(3 * per_epoch * batch)):  # any order: no sampler state
        t = k // batch
        epoch, i = t // per_epoch, t % per_epoch
        order = np.random.default_rng((seed, epoch, 2)).permutation(n)
        want = order[i * batch + k % batch]
        assert int(patches.crop(k)[0, 0, 0]) == 40 * want, k
    epoch0 = {int(patches.crop(k)[0, 0, 0]) // 40 for k in range(per_epoch * batch)}
    assert len(epoch0) == per_epoch * batch  # without replacement within an epoch
    with pytest.raises(ValueError, match="no complete batch"):
        TrainingPatches(paths, 2, patch=16, sampling="epoch", batch_size=8)


def test_the_paper_profile_samples_by_epoch_and_the_smoke_profile_keeps_its_stream():
    assert make_config("paper").sampling == "epoch" and make_config("paper").lr_target == "image"
    assert make_config("smoke").sampling == "stream" and make_config("smoke").lr_target == "image"


# ------------------------------------------------------------------ 4. warm-up


def official_factors(steps, warmup, milestones, gamma=0.5):
    """The official loop: optimizer step, then MultiStepLR.step, then the warm-up override."""
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    for group in opt.param_groups:
        group.setdefault("initial_lr", group["lr"])
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(milestones), gamma=gamma)
    used = []
    for current_step in range(1, steps + 1):
        used.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
        if current_step < warmup:
            for group in opt.param_groups:
                group["lr"] = group["initial_lr"] / warmup * current_step
    return used


@pytest.mark.parametrize("warmup,milestones", [(5, (8,)), (5, (3, 9)), (2, (4,)), (1, (3,))])
def test_official_warmup_rule_matches_the_official_scheduler(warmup, milestones):
    config = make_config("paper", warmup_iterations=warmup, warmup_rule="official", lr_milestones=milestones)
    got = [lr_factor(t, config) for t in range(12)]
    np.testing.assert_allclose(got, official_factors(12, warmup, milestones), rtol=1e-12)
    if warmup == 5 and milestones == (8,):
        np.testing.assert_allclose(got[:8], [1, 0.2, 0.4, 0.6, 0.8, 0.8, 0.8, 0.8])


# ------------------------------------------------------------------ 5. validation log


def small_net(scale=2):
    return randomize(IRN(scale, block_num=[2]), seed=scale).eval()


def test_validation_reports_y_and_rgb_psnr():
    net = small_net()
    img = np.ascontiguousarray(skimage.data.astronaut()[100:164, 200:264])
    pairs = [TestPair("a", img, imresize(img, 1 / 2))]
    got = validate(net, pairs, seed=3)
    assert set(got) == {"psnr_y", "psnr_rgb", "lr_psnr_y", "lr_psnr_rgb"}
    # independent: the same round trip by the network's own methods, scikit-image's PSNR
    with torch.no_grad():
        y = net(to_batch(img))
        lr = quantize(y[:, :3])
        gen = torch.Generator().manual_seed(3)
        z = torch.randn(y[:, 3:].shape, generator=gen)
        sr = to_image(net.inverse(torch.cat([lr, z], 1))[:, :3])
    lr8 = to_image(lr)
    want_rgb = skimage.metrics.peak_signal_noise_ratio(img[2:-2, 2:-2], sr[2:-2, 2:-2], data_range=255)
    want_lr_rgb = skimage.metrics.peak_signal_noise_ratio(pairs[0].lr, lr8, data_range=255)
    assert got["psnr_rgb"] == pytest.approx(want_rgb, abs=1e-3)
    assert got["lr_psnr_rgb"] == pytest.approx(want_lr_rgb, abs=1e-3)


# ------------------------------------------------------------------ 6. temperature 0


def test_dataset_evaluation_at_z_zero_and_its_table_row():
    net = small_net()
    frame = ev.evaluate_dataset("embedded-test", 2, net=net, draws=2, max_images=1, progress=False, temperature=0.0)
    assert (frame["temperature"] == 0).all() and frame["psnr_rgb"].nunique() == 1  # z = 0: every draw the same
    pair = ev.evaluation_pairs("embedded-test", 2, count=1)[0]
    with torch.no_grad():
        y = net(to_batch(pair.hr))
        sr = to_image(net.inverse(torch.cat([quantize(y[:, :3]), torch.zeros_like(y[:, 3:])], 1))[:, :3])
    want = skimage.metrics.peak_signal_noise_ratio(pair.hr[2:-2, 2:-2], sr[2:-2, 2:-2], data_range=255)
    assert frame["psnr_rgb"].iloc[0] == pytest.approx(want, abs=1e-2)  # tiled vs whole: float rounding only

    one = ev.evaluate_dataset("embedded-test", 2, net=net, draws=2, max_images=1, progress=False)
    bic = ev.evaluate_dataset("embedded-test", 2, max_images=1, progress=False)
    per_image = pd.concat([bic, one, frame], ignore_index=True)
    rows = [
        KitRow("Bicubic", "bicubic", "Bicubic & Bicubic"),
        KitRow("IRN", "irn", "IRN (ours)"),
        KitRow("IRN, z = 0", "irn", "IRN (ours)", temperature=0.0),
    ]
    table = build_table(per_image, 2, rows, ["embedded-test"])
    kit = table[table["source"] == "this kit"].set_index("row")
    assert kit.loc["IRN, z = 0", "psnr_rgb"] == pytest.approx(frame["psnr_rgb"].mean())
    assert kit.loc["IRN", "psnr_rgb"] == pytest.approx(one["psnr_rgb"].mean())
    assert "IRN, z = 0" in render_markdown(table, 2)
