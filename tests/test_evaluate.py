"""Evaluation protocol (irnlib.protocol.evaluate) and tiled inference (irnlib.model.inference)."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import randomize

from irnlib import IRN, save_model
from irnlib.data.folders import dataset_version
from irnlib.data.test_pairs import PairedTestSet, TestPair
from irnlib.imaging.images import save_png, to_batch, to_image
from irnlib.imaging.imresize import imresize
from irnlib.imaging.metrics import psnr
from irnlib.model import inference
from irnlib.model.checkpoint_info import describe_checkpoint
from irnlib.model.network import DenseSubnet, InvBlock
from irnlib.protocol import evaluate as ev
from irnlib.protocol.summary import summarize_draws
from irnlib.train import make_config

pytestmark = pytest.mark.usefixtures("one_thread")  # small convolutions: see conftest.one_thread


def small_net(scale: int, dtype=torch.float32) -> IRN:
    """A randomized IRN with 2 InvBlocks per level: same receptive field per block, fast."""
    return randomize(IRN(scale, block_num=[2] * {2: 1, 4: 2, 8: 3}[scale]), seed=scale).to(dtype).eval()


def test_invblock_halo_is_exactly_ten_pixels():
    """Changing one input pixel changes InvBlock outputs within 10 pixels, not beyond."""
    net = small_net(2, torch.float64)
    block = net.operations[1]
    x = torch.rand(1, 12, 41, 41, dtype=torch.float64)
    x2 = x.clone()
    x2[0, 5, 20, 20] += 1.0
    with torch.inference_mode():
        changed = (block(x) - block(x2)).abs().amax(dim=(0, 1)) > 0
    rows, cols = torch.nonzero(changed, as_tuple=True)
    assert int((rows - 20).abs().max()) == inference.HALO and int((cols - 20).abs().max()) == inference.HALO


@pytest.mark.parametrize("scale", [2, 4, 8])
def test_tiled_equals_untiled_in_float64(scale):
    """Tiling is exact: in float64 (NCHW) the tiled results match the network's to 1e-10."""
    net = small_net(scale, torch.float64)
    hr = torch.rand(1, 3, 45, 61, dtype=torch.float64)  # odd sizes: padded like net.downscale
    tile = {2: 9, 4: 5, 8: 3}[scale]  # several tiles at every level, of unequal sizes
    opts = dict(tile=tile, channels_last=False)
    with torch.inference_mode():
        padded = net.pad_to_multiple(hr)
        y = net(padded)
        assert (inference.forward(net, padded, **opts) - y).abs().max() < 1e-10
        assert (inference.inverse(net, y, **opts) - net.inverse(y)).abs().max() < 1e-10
        lr = net.downscale(hr)
        assert torch.equal(inference.downscale(net, hr, **opts), lr)
        want = net.upscale(lr, generator=torch.Generator().manual_seed(1), size=hr.shape[-2:])
        got = inference.upscale(net, lr, generator=torch.Generator().manual_seed(1), size=hr.shape[-2:], **opts)
    assert got.shape == want.shape == hr.shape
    assert (got - want).abs().max() < 1e-10


@pytest.mark.parametrize("scale", [2, 4])
def test_tiled_fast_path_equals_untiled_in_float32(scale):
    """The default path (tiles + channels-last) against the network's own methods, full IRN."""
    net = randomize(IRN(scale), seed=3).eval()
    hr = torch.rand(1, 3, 61, 83)
    with torch.inference_mode():
        padded = net.pad_to_multiple(hr)
        y = net(padded)
        assert (inference.forward(net, padded, tile=9) - y).abs().max() < 1e-5
        lr = net.downscale(hr)
        want = net.upscale(lr, generator=torch.Generator().manual_seed(2))
        got = inference.upscale(net, lr, generator=torch.Generator().manual_seed(2), tile=9)
        # float32 rounding grows with the values (random weights reach |x| ~ 25): relative 1e-6
        assert (got - want).abs().max() < 1e-5 * max(1.0, float(want.abs().max()))
        # 8-bit LR: identical except where float rounding straddles a rounding boundary
        lr_tiled = inference.downscale(net, hr, tile=9)
    assert (lr_tiled - lr).abs().max() <= 1 / 255 + 1e-6
    assert (lr_tiled != lr).float().mean() < 1e-3


@pytest.mark.parametrize("cin, cout", [(9, 3), (3, 9), (45, 3), (3, 45)])  # F and G/H at the levels of ×2 and ×4
def test_subnet_nhwc_is_the_dense_subnet_with_its_sums_reordered(cin, cout):
    """In float64 the reordered sums agree to 1e-12, at every size down to 1×1 (the column
    shifts at the borders), for narrow (by columns) and wide conv5 alike."""
    subnet = randomize(DenseSubnet(cin, cout), seed=cin + cout).double()
    gen = torch.Generator().manual_seed(0)
    for size in [(1, 1), (1, 7), (5, 1), (13, 17)]:
        x = torch.randn(2, cin + 2, *size, generator=gen, dtype=torch.float64)[:, 2:]  # a channel slice, as in a block
        with torch.inference_mode():
            got, want = inference.subnet_nhwc(subnet, x), subnet(x)
        assert got.shape == want.shape and got.is_contiguous(memory_format=torch.channels_last)
        assert (got - want).abs().max() < 1e-12, size


def test_untiled_inference_is_the_networks_own_arithmetic():
    """``tile=None`` (training's validation, the explorer) runs ``net.run`` itself: bit-equal."""
    net = small_net(4)
    hr = torch.rand(1, 3, 24, 28)
    with torch.inference_mode():
        y = net(hr)
        assert torch.equal(inference.forward(net, hr, tile=None), y)
        assert torch.equal(inference.inverse(net, y, tile=None), net.inverse(y))


def test_invblock_runs_its_subnets_through_run_subnet():
    block = randomize(InvBlock(12), seed=4).double()
    x = torch.rand(1, 12, 9, 11, dtype=torch.float64)
    calls = []

    def run_subnet(subnet, t):
        calls.append(subnet)
        return inference.subnet_nhwc(subnet, t)

    with torch.inference_mode():
        y = block(x, run_subnet=run_subnet)
        assert calls == [block.F, block.H, block.G]
        assert (y - block(x)).abs().max() < 1e-12
        assert (block.inverse(y, run_subnet=run_subnet) - x).abs().max() < 1e-12
    assert calls[3:] == [block.G, block.H, block.F]


def test_spans_cover_the_side_in_equal_parts_at_least_a_tile_long():
    for tile in (1, 3, 16, inference.TILE):
        for length in range(1, 4 * tile + 3):
            spans = inference._spans(length, tile)
            assert spans[0][0] == 0 and spans[-1][1] == length
            assert all(stop == start for (_, stop), (start, _) in zip(spans, spans[1:]))
            sizes = [stop - start for start, stop in spans]
            if length < 2 * tile:
                assert sizes == [length]  # too short to split without a tile under `tile`
            else:
                assert max(sizes) - min(sizes) <= 1 and tile <= min(sizes) and max(sizes) < 2 * tile


def test_image_functions_handle_any_size_and_crop_back():
    net = small_net(4)
    img = (np.random.default_rng(0).random((45, 70, 3)) * 255).astype(np.uint8)
    lr = inference.downscale_image(net, img, tile=7)
    assert lr.shape == (12, 18, 3) and lr.dtype == np.uint8
    sr = inference.upscale_image(net, lr, size=img.shape[:2], seed=5, tile=7)
    assert sr.shape == img.shape and sr.dtype == np.uint8
    with torch.inference_mode():
        want = to_image(net.upscale(to_batch(lr), generator=torch.Generator().manual_seed(5), size=img.shape[:2]))
    assert np.abs(sr.astype(int) - want.astype(int)).max() <= 1
    assert np.array_equal(inference.upscale_image(net, lr, seed=5, tile=7)[:45, :70], sr)


def test_bad_tile_is_refused():
    with pytest.raises(ValueError, match="tile"):
        inference.forward(small_net(2), torch.rand(1, 3, 8, 8), tile=0)


def _pair(seed=0, size=(64, 48), scale=2) -> TestPair:
    hr = (np.random.default_rng(seed).random((*size, 3)) * 255).astype(np.uint8)
    hr = np.ascontiguousarray(hr)
    return TestPair(f"img{seed}", hr, imresize(hr, 1 / scale))


def test_five_draws_are_seeded_independent_and_reproducible():
    net = small_net(2)
    pair = _pair()
    rows = ev.evaluate_pair(pair, 2, "toy", net=net, draws=5, seed=7, tile=None)
    again = ev.evaluate_pair(pair, 2, "toy", net=net, draws=5, seed=7, tile=None)
    assert [r["draw"] for r in rows] == [0, 1, 2, 3, 4]
    assert len({r["seed"] for r in rows}) == 5  # independent draws
    assert len({r["psnr_y"] for r in rows}) == 5
    assert [r["psnr_y"] for r in rows] == [r["psnr_y"] for r in again]
    other = ev.evaluate_pair(pair, 2, "toy", net=net, draws=5, seed=8, tile=None)
    assert [r["psnr_y"] for r in rows] != [r["psnr_y"] for r in other]
    # a draw is exactly: downscale, upscale with the draw's seed, uint8, Y-PSNR border s
    with torch.inference_mode():
        lr = net.downscale(to_batch(pair.hr))
        sr = to_image(net.upscale(lr, generator=torch.Generator().manual_seed(rows[3]["seed"])))
    assert rows[3]["psnr_y"] == pytest.approx(psnr(sr, pair.hr, border=2), abs=1e-3)
    assert rows[0]["lr_psnr_y"] == pytest.approx(psnr(to_image(lr), pair.lr, border=0), abs=1e-9)


def test_draw_seeds_do_not_depend_on_evaluation_order():
    assert ev.draw_seed(0, "Set5", "baby", 2) == ev.draw_seed(0, "Set5", "baby", 2)
    seeds = {ev.draw_seed(0, d, i, k) for d in ("Set5", "Set14") for i in ("a", "b") for k in range(5)}
    assert len(seeds) == 20


def test_mean_and_range_over_draws():
    """Dataset average per draw, then the mean and the range across draws."""
    rows = []
    for draw, (a, b) in enumerate([(30.0, 32.0), (30.2, 32.0), (29.9, 32.1)]):
        for image, value in (("x", a), ("y", b)):
            rows.append(
                dict(
                    dataset="d",
                    image=image,
                    method="irn",
                    scale=4,
                    draw=draw,
                    checkpoint="c",
                    psnr_y=value,
                    ssim_y=0.5,
                    psnr_rgb=value - 1,
                    lr_psnr_y=40.0,
                    lr_ssim_y=0.99,
                )
            )
    s = summarize_draws(pd.DataFrame(rows)).iloc[0]
    per_draw = [31.0, 31.1, 31.0]
    assert s["psnr_y"] == pytest.approx(np.mean(per_draw))
    assert s["psnr_y_range"] == pytest.approx(0.1)
    assert s["draws"] == 3 and s["images"] == 2


def test_png_round_trip_gives_the_same_numbers(tmp_path):
    net = small_net(4)
    pair = _pair(1, (72, 56), 4)
    memory = ev.evaluate_pair(pair, 4, "toy", net=net, draws=2, seed=3)
    files = ev.evaluate_pair(pair, 4, "toy", net=net, draws=2, seed=3, lr_png_dir=tmp_path)
    assert (tmp_path / "img1.png").is_file()
    assert pd.DataFrame(memory).drop(columns="checkpoint").equals(pd.DataFrame(files).drop(columns="checkpoint"))


def test_evaluate_dataset_columns_and_bicubic_rows():
    frame = ev.evaluate_dataset("embedded-test", 4, progress=False)
    assert list(frame.columns) == ev.CSV_COLUMNS
    assert list(frame["image"]) == ["astronaut", "chelsea", "coffee"]
    assert (frame["method"] == "bicubic").all() and (frame["draw"] == 0).all()
    pair = PairedTestSet("embedded-test", 4)[1]
    sr = imresize(imresize(pair.hr, 1 / 4), 4)
    assert frame["psnr_y"].iloc[1] == pytest.approx(psnr(sr, pair.hr, border=4))
    assert frame["lr_psnr_y"].isna().all()


def test_evaluate_dataset_irn_with_max_images_and_errors():
    net = small_net(2)
    frame = ev.evaluate_dataset(
        "embedded-test", 2, net=net, draws=2, max_images=1, checkpoint="toy.pth", progress=False
    )
    assert len(frame) == 2 and set(frame["checkpoint"]) == {"toy.pth"}
    assert frame["lr_psnr_y"].notna().all()
    with pytest.raises(ValueError, match="x2"):
        ev.evaluate_dataset("embedded-test", 4, net=net, progress=False)
    with pytest.raises(FileNotFoundError, match="Urban100"):
        ev.evaluate_dataset("Urban100", 4, root="/nonexistent", progress=False)


def test_describe_checkpoint(tmp_path):
    run = tmp_path / "runs" / "smoke_x4"
    run.mkdir(parents=True)
    save_model(small_net(4), run / "IRN_x4.pth")
    assert describe_checkpoint(run / "IRN_x4.pth").training.startswith("training unknown")
    config = dataclasses.asdict(make_config("smoke", iterations=300))  # what irnlib.train writes
    (run / "config.json").write_text(json.dumps(config))
    info = describe_checkpoint(run / "IRN_x4.pth")
    assert info.shortened and "300 iterations" in info.training and "smoke" in info.training
    assert "embedded-train" in info.training and "shortened" in info.label()
    assert "distr_loss" not in info.training  # the paper's L_distr goes unnamed
    (run / "config.json").write_text(json.dumps(config | {"distr_loss": "unit_hinge"}))
    assert "profile smoke with distr_loss=unit_hinge, trained on" in describe_checkpoint(run / "IRN_x4.pth").training
    (run / "config.json").write_text(json.dumps(config))
    (run / "provenance.json").write_text(json.dumps({"status": "running", "iterations_done": 150}))
    assert "150 iterations" in describe_checkpoint(run / "IRN_x4.pth").training
    assert "run not finished (150 of 300 planned iterations)" in describe_checkpoint(run / "IRN_x4.pth").training
    official = tmp_path / "pretrained"
    official.mkdir()
    save_model(small_net(2), official / "IRN_x2.pth")
    assert describe_checkpoint(official / "IRN_x2.pth").training == "official checkpoint"
    assert not describe_checkpoint(tmp_path / "missing.pth").exists


def test_dataset_version_changes_with_content(tmp_path):
    folder = tmp_path / "Toy"
    folder.mkdir()
    save_png(folder / "a.png", _pair().hr)
    first = dataset_version("Toy", tmp_path)
    assert first["images"] == 1
    save_png(folder / "a.png", _pair(2).hr)
    assert dataset_version("Toy", tmp_path)["sha256"] != first["sha256"]


@pytest.mark.parametrize("scale", [2, 4])
def test_bicubic_rows_match_the_reference_values(shared_data, scale):
    """The kit's Bicubic & Bicubic rows, through the evaluation code, against shared/datasets/README.md."""
    reference = {  # "this data" columns of ../shared/datasets/README.md
        2: {"Set5": (33.67, 0.9303), "Set14": (30.32, 0.8699), "BSD100": (29.56, 0.8434)},
        4: {"Set5": (28.43, 0.8111), "Set14": (26.09, 0.7048), "BSD100": (25.96, 0.6681)},
    }[scale]
    frames = [ev.evaluate_dataset(d, scale, root=shared_data, progress=False) for d in reference]
    summary = summarize_draws(pd.concat(frames)).set_index("dataset")
    for dataset, (want_psnr, want_ssim) in reference.items():
        assert abs(summary.loc[dataset, "psnr_y"] - want_psnr) <= 0.02, dataset
        assert abs(summary.loc[dataset, "ssim_y"] - want_ssim) <= 0.001, dataset
    assert summary.loc["BSD100", "images"] == 100


def test_a_later_stage_counts_its_earlier_stages(tmp_path):
    folder = tmp_path / "kit_reference_x4"
    folder.mkdir()
    save_model(small_net(4), folder / "IRN_x4.pth")
    (folder / "config.json").write_text(json.dumps(dataclasses.asdict(make_config("quick", iterations=250))))
    start = {"file": "models/kit_reference_x4/IRN_x4.pth", "sha256": "ab"}
    record = {"status": "finished", "iterations_done": 250, "init_from": start}
    (folder / "provenance.json").write_text(json.dumps(record))
    assert "250 iterations from the weights of models/kit_reference_x4/IRN_x4.pth" in (
        describe_checkpoint(folder / "IRN_x4.pth").training
    )
    for kept, done in ((folder / "started_from", 1000), (folder / "started_from" / "started_from", 4400)):
        kept.mkdir()
        (kept / "provenance.json").write_text(json.dumps({"status": "finished", "iterations_done": done}))
    assert describe_checkpoint(folder / "IRN_x4.pth").training.startswith(
        "5,650 iterations in 3 stages (the last 250), profile quick"
    )
