"""The generalisation panel (irnlib.experiments.panel), its cause tools and the downscale guard."""

import warnings

import numpy as np
import pytest
import skimage.data
import torch
from conftest import randomize

from irnlib import IRN, save_model
from irnlib.app.cli import main as irn_main
from irnlib.app.explore import Explorer
from irnlib.data.registry import EMBEDDED
from irnlib.data.test_pairs import TestPair
from irnlib.experiments import panel as P
from irnlib.experiments import panel_cause as C
from irnlib.imaging.images import load_image, save_png, to_batch, to_image
from irnlib.imaging.imresize import imresize
from irnlib.model import inference
from irnlib.model.inference import (
    DownscaleHealth,
    RescaleWarning,
    downscale_image,
    downscale_image_with_health,
)
from irnlib.model.network import quantize
from irnlib.protocol import evaluate


def _bright_net(scale: int = 2, gain: float = 10.0) -> IRN:
    """A pure-Haar IRN whose first level is ``gain`` times too strong: its LR is ``gain`` × the 2×2 mean."""
    net = IRN(scale, block_num=[1] * (scale // 2)).eval()
    with torch.no_grad():
        net.operations[0].haar_weights.mul_(gain)
    return net


def _blown_net(scale: int = 2) -> IRN:
    """A random IRN whose F subnet adds large offsets to the LR branch (a checkpoint like any other)."""
    net = randomize(IRN(scale, block_num=[1]), seed=4)
    with torch.no_grad():
        net.operations[1].F.conv5.weight.mul_(200.0)
    return net.eval()


@pytest.fixture(scope="module")
def tiny():
    return randomize(IRN(2, block_num=[1]), seed=1).eval()


# -- block errors and flags ------------------------------------------------------------


def test_block_errors_find_the_worst_block():
    hr = np.full((96, 64, 3), 100, np.uint8)
    out = hr.copy()
    out[32:64, 32:64] = 160  # one block off by 60 on every channel
    grid = P.block_errors(out, hr)
    assert grid.shape == (3, 2) and grid[1, 1] == 60 and grid.sum() == 60
    assert P.worst_block(out, hr) == (60.0, 32, 32)
    assert P.block_errors(hr[:10, :10], hr[:10, :10]).shape == (1, 1)  # smaller than a block: one block


def test_flags_catch_a_constructed_local_failure_and_pass_a_clean_one():
    failing = P.panel_flags(28.0, 30.0, worst_irn=114.0, worst_bicubic=21.0, lr_min=-5.9, lr_max=2.8, z_max=201.0)
    assert failing == dict(local_failure=True, below_bicubic=True, lr_out_of_range=True, latent_far=True)
    clean = P.panel_flags(33.0, 30.0, worst_irn=15.0, worst_bicubic=12.0, lr_min=-0.05, lr_max=1.05, z_max=4.0)
    assert not any(clean.values())
    # Large but not twice bicubic's, or twice but small: not a local failure.
    assert not P.panel_flags(30, 30, 40.0, 25.0, 0, 1, 1)["local_failure"]
    assert not P.panel_flags(30, 30, 18.0, 5.0, 0, 1, 1)["local_failure"]


# -- the images --------------------------------------------------------------------------


def test_panel_images_are_deterministic_rgb_and_leave_out_test_and_training_photographs():
    images = P.panel_images("T91+BSD200")
    again = P.panel_images("T91+BSD200")
    assert list(images) == list(again)
    for name, img in images.items():
        assert img.dtype == np.uint8 and img.ndim == 3 and img.shape[2] == 3 and max(img.shape[:2]) <= 640, name
        np.testing.assert_array_equal(img, again[name])
    assert "skimage/rocket" in images and "skimage/colorwheel" in images and "grey/camera" in images
    assert not {"skimage/astronaut", "skimage/chelsea", "skimage/coffee"} & set(images)  # embedded-test
    kinds = {name.split("/")[0] for name in images}
    assert kinds == {"skimage", "grey", "synthetic"}
    flat = images["synthetic/flat_colours"]
    assert {tuple(flat[0, 0]), tuple(flat[-1, -1])} == {(255, 0, 0), (0, 0, 0)}
    # A model trained on embedded-train is not tested on those photographs.
    assert "rocket.jpg" in EMBEDDED["embedded-train"]
    assert "skimage/rocket" not in P.panel_images("embedded-train", max_side=64)


def test_photographs_are_whole_up_to_640_pixels_and_larger_ones_keep_their_centre():
    images = P.panel_images("T91+BSD200")
    assert P.MAX_SIDE == 640
    assert images["skimage/rocket"].shape == (427, 640, 3)  # where the issue measured the worst failure
    np.testing.assert_array_equal(images["skimage/rocket"], skimage.data.rocket())
    assert images["skimage/retina"].shape == (640, 640, 3) and images["skimage/colorwheel"].shape[:2] == (370, 371)
    assert images["grey/camera"].shape == (256, 256, 3)  # grey and synthetic images as they were
    assert P.panel_images("T91+BSD200", max_side=256)["skimage/rocket"].shape == (256, 256, 3)


# -- measurements -------------------------------------------------------------------------


def test_measure_image_follows_the_protocol_and_reads_the_forward_pass(tiny):
    img = skimage.data.rocket()[150:214, 300:364]  # 64 × 64
    row, images = P.measure_image(tiny, "rocket", img, seed=3, tile=None)
    assert list(row) == P.PANEL_COLUMNS
    pair = TestPair("rocket", img, imresize(img, 1 / 2))
    trip = evaluate.round_trip(tiny, pair, [torch.Generator().manual_seed(3)], tile=None)
    assert row["psnr_y_irn"] == pytest.approx(trip.sr_metrics[0]["psnr_y"])
    np.testing.assert_array_equal(images["irn"], trip.sr[0])
    bic = evaluate.bicubic_rescale(pair, 2)
    assert row["psnr_y_bicubic"] == pytest.approx(evaluate.sr_metrics(bic, img, 2)["psnr_y"])
    with torch.no_grad():
        y = tiny(to_batch(img))
    assert row["lr_min"] == pytest.approx(float(y[:, :3].min()), abs=1e-5)
    assert row["lr_max"] == pytest.approx(float(y[:, :3].max()), abs=1e-5)
    assert row["z_max"] == pytest.approx(float(y[:, 3:].abs().max()), abs=1e-5)
    assert row["worst_block_irn"] == pytest.approx(P.worst_block(images["irn"], img)[0])


@pytest.mark.parametrize("scale", [2, 4])
def test_a_whole_427x640_photograph_measures_the_same_tiled_as_whole(scale):
    """The panel runs tiled (TILE = 160 per level's map): rocket's 213×320 (×2) map is cut in two columns."""
    net = randomize(IRN(scale, block_num=[1] * (scale // 2)), seed=2).eval()
    rocket = P.panel_images("T91+BSD200")["skimage/rocket"]
    assert len(inference._spans(rocket.shape[1] // 2, inference.TILE)) == 2
    tiled, tiled_images = P.measure_image(net, "skimage/rocket", rocket)  # tile=TILE, as the panel runs
    whole, whole_images = P.measure_image(net, "skimage/rocket", rocket, tile=None)
    assert (tiled["height"], tiled["width"]) == (rocket.shape[0] // scale * scale, 640)
    for column in ("lr_min", "lr_max", "z_max"):
        assert tiled[column] == pytest.approx(whole[column], abs=1e-4), column
    assert tiled["psnr_y_irn"] == pytest.approx(whole["psnr_y_irn"], abs=0.01)
    assert tiled["worst_block_irn"] == pytest.approx(whole["worst_block_irn"], abs=0.05)
    diff = np.abs(tiled_images["irn"].astype(int) - whole_images["irn"].astype(int))
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # 8-bit rounding at most


def test_run_and_write_the_panel(tiny, tmp_path):
    images = {
        "grey/a": P.panel_images(max_side=64, small_side=64)["grey/camera"],
        "synthetic/flat": P._flat_colours(16),
    }
    frame, crops = P.run_panel(tiny, images, progress=False, tile=None)
    assert list(frame["image"]) == list(images) and list(frame.columns) == P.PANEL_COLUMNS
    paths = P.write_panel(frame, crops, tmp_path, {"model": "tiny"})
    assert {p.name for p in paths.values()} == {"panel_x2.csv", "panel_x2.md", "panel_x2_worst.png"}
    text = paths["markdown"].read_text()
    assert "|z| ≤ 8" in text.replace("\\|", "|") and "- model: tiny" in text


def test_panel_command_line(tiny, tmp_path, monkeypatch, capsys):
    save_model(tiny, tmp_path / "IRN_x2.pth")
    monkeypatch.setattr(P, "panel_images", lambda *a, **k: {"synthetic/gradients": P._gradients(32)})
    assert P.main(["--scale", "2", "--checkpoint", str(tmp_path / "IRN_x2.pth"), "--out", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "panel_x2.csv").is_file() and "synthetic/gradients" in capsys.readouterr().out


# -- the cause tools ------------------------------------------------------------------------


def test_cause_command_line_measures_every_image_with_the_one_checkpoint_given(tiny, tmp_path, monkeypatch):
    save_model(tiny, tmp_path / "IRN_x2.pth")
    images = {"synthetic/gradients": P._gradients(32), "synthetic/flat": P._flat_colours(16)}
    monkeypatch.setattr(C, "panel_images", lambda *a, **k: images)
    argv = ["--image", *images, "--scale", "2", "--checkpoint", str(tmp_path / "IRN_x2.pth")]
    assert C.main([*argv, "--out", str(tmp_path / "cause.md")]) == 0
    text = (tmp_path / "cause.md").read_text()
    assert text.count(f"{tmp_path / 'IRN_x2.pth'}") >= 2 and "kit_reference" not in text
    with pytest.raises(SystemExit):  # two checkpoints for three images: which goes with which?
        C.main(["--image", *images, "synthetic/text", "--scale", "2", "--checkpoint", "a.pth", "b.pth"])


def test_trace_forward_ends_at_the_network_output(tiny):
    img = skimage.data.coffee()[:32, :32]
    trace, y = C.trace_forward(tiny, img)
    with torch.no_grad():
        torch.testing.assert_close(y, tiny(to_batch(img)))
    assert list(trace["operation"]) == ["level 1: downsampling", "level 1: InvBlock 1"]
    assert trace["lr_max"].iloc[-1] == pytest.approx(float(y[:, :3].max()))
    ablation = C.reconstruction_ablation(tiny, img, y)
    assert ablation.loc[0, "psnr_y"] > 60  # the true LR and z: exact
    response = C.latent_response(tiny, img, y)
    assert list(response["operation"]) == ["level 1: InvBlock 1", "level 1: downsampling"]
    assert response["z_branch_rms"].iloc[-1] == 0.0 and np.isnan(response["z_gain"].iloc[-1])
    assert 0 <= response["s_at_clamp"].iloc[0] <= 1
    with torch.no_grad():  # the last row: the RGB images' RMS difference, true z against the seed-0 draw
        lr = quantize(y[:, :3])
        drawn = tiny.sample_latent(lr, 1.0, torch.Generator().manual_seed(0))
        sr = [tiny.inverse(torch.cat((lr, z), 1)) for z in (y[:, 3:], drawn)]
        expected = 255 * (sr[1] - sr[0]).pow(2).mean().sqrt()
    assert response["lr_branch_rms"].iloc[-1] == pytest.approx(float(expected), rel=1e-5)
    assert 0 < response["lr_branch_rms"].iloc[-1] and np.exp(-1) < response["z_gain"].iloc[0] < np.exp(1)
    grads = C.gradient_check(tiny, img)
    assert grads["ste_autograd_at_1_5"] != 0 and grads["ste_finite_difference_at_1_5"] == 0


def test_saturated_mask_and_content_stats():
    img = np.full((64, 64, 3), 128, np.uint8)
    img[:2, :2] = 255
    assert C.saturated_mask(img, 2)[0, 0] and C.saturated_mask(img, 2).sum() == 1
    stats = C.content_stats(P._flat_colours(32))
    assert stats["saturated"] == 1.0 and stats["flat_blocks"] == 1.0 and stats["strong_colour"] == 0.75


# -- the guard --------------------------------------------------------------------------------


def test_guard_is_silent_on_a_healthy_downscale_and_keeps_the_numbers(tiny):
    img = skimage.data.astronaut()[:64, :80]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lr = downscale_image(tiny, img, tile=None)
    np.testing.assert_array_equal(lr, to_image(tiny.downscale(to_batch(img))))  # bit-equal to the network's own
    _, health = downscale_image_with_health(tiny, img)
    assert health.healthy and health.box is None and health.message() == ""


def test_guard_warns_how_much_and_where():
    img = np.zeros((48, 64, 3), np.uint8)
    img[8:24, 32:48] = 200  # only this square goes out of range in a 10x too bright LR
    net = _bright_net()
    with pytest.warns(RescaleWarning, match=r"rows 8\.\.23, columns 32\.\.47") as caught:
        lr = downscale_image(net, img)
    assert lr.shape == (24, 32, 3) and lr.max() == 255  # still returned, clipped
    assert "spans 0.00..7.84" in str(caught[0].message)
    _, health = downscale_image_with_health(net, img)
    assert health == DownscaleHealth(0.0, pytest.approx(200 / 255 * 10, rel=1e-5), health.z_max, (8, 32, 24, 48), 2)


def test_irn_downscale_prints_the_warning_and_still_writes(tmp_path, capsys):
    save_model(_blown_net(), tmp_path / "IRN_x2.pth")
    src = save_png(tmp_path / "in.png", skimage.data.coffee()[:40, :50])
    dst = tmp_path / "lr.png"
    assert irn_main(["downscale", str(src), str(dst), "--checkpoint", str(tmp_path / "IRN_x2.pth")]) == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("irn: warning:")]
    assert len(lines) == 1 and lines[0].startswith(f"irn: warning: {src}: IRN x2 is outside its training range")
    assert load_image(dst).shape == (20, 25, 3)


def test_explorer_shows_the_warning_in_its_message_area(tmp_path):
    photo = skimage.data.coffee()[:64, :64]
    ex = Explorer({"photo": photo}, max_side=64, results=tmp_path)
    ex.scale.value = 2
    ex._nets[(2, ex.checkpoint.value)] = _bright_net()
    ex._lr_cache.clear()
    ex.update()
    assert "outside its training range" in ex.message.value
    ex._nets[(2, ex.checkpoint.value)] = IRN(2, block_num=[1]).eval()  # healthy: the warning goes away
    ex._lr_cache.clear()
    ex.update()
    assert ex.message.value == ""


def test_coupling_gains_find_a_block_whose_scale_sits_at_its_clamp():
    net = IRN(2, block_num=[1]).eval()  # conv5 starts at zero: F = G = H = 0, s = 0, gain 1
    img = skimage.data.coffee()[:32, :32]
    calm = C.coupling_gains(net, img)
    assert list(calm["operation"]) == ["level 1: InvBlock 1"]
    assert calm.loc[0, "gain"] == pytest.approx(1.0) and calm.loc[0, "s_there"] == 0.0
    with torch.no_grad():
        net.operations[1].H.conv5.bias.fill_(20.0)  # s = 2·sigmoid(20) − 1 ≈ 1: z multiplied by e
    blown = C.coupling_gains(net, img)
    assert blown.loc[0, "gain"] == pytest.approx(np.e, rel=1e-6) and blown.loc[0, "s_there"] == pytest.approx(1.0)
    assert blown.loc[0, "s_at_clamp"] == 9 * 16 * 16  # every element of z (9 channels × 16²)


def test_an_embedded_test_image_can_be_traced_though_the_panel_leaves_it_out():
    coffee = C.embedded_or_panel_image("embedded-test/coffee", None, 4)
    np.testing.assert_array_equal(coffee, skimage.data.coffee())  # 400×600: already a multiple of 4
