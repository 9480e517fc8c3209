"""The explorer's computations and callbacks, driven directly (no browser)."""

import io

import numpy as np
import pytest
import skimage.data
import torch
from conftest import randomize
from PIL import Image

from irnlib import IRN, save_model
from irnlib.app.explore import (
    NOT_DRAWN_GREY,
    UNTRAINED,
    Explorer,
    error_map,
    sample_spread,
    view_figure,
    view_round_trip,
)
from irnlib.imaging.metrics import psnr
from irnlib.protocol.weights import official_weights, reference_weights


@pytest.fixture(scope="module")
def photo():
    return skimage.data.astronaut()[100:164, 180:260]  # 64 × 80 RGB


@pytest.fixture
def explorer(photo, tmp_path):
    net = randomize(IRN(2, block_num=[2]), seed=3)
    (tmp_path / "runs" / "tiny").mkdir(parents=True)
    save_model(net, tmp_path / "runs" / "tiny" / "IRN_x2.pth")
    ex = Explorer({"photo": photo, "flat": np.full((40, 40, 3), 90, np.uint8)}, max_side=64, results=tmp_path)
    ex.scale.value = 2
    return ex


def test_round_trip_measures_what_it_shows(photo):
    net = randomize(IRN(2, block_num=[2]), seed=1)
    view = view_round_trip(net, photo, temperature=0.7, seed=5)
    assert view.irn_lr.shape == view.bicubic_lr.shape == (32, 40, 3)
    assert view.metrics["IRN PSNR"] == pytest.approx(psnr(view.irn_sr, view.hr, border=2))
    again = view_round_trip(net, photo, temperature=0.7, seed=5, lr=view.irn_lr)
    np.testing.assert_array_equal(again.irn_sr, view.irn_sr)  # same draw, same picture
    assert error_map(view.hr, view.hr).max() == 0


def test_spread_is_zero_without_temperature_and_positive_with_it(photo):
    net = randomize(IRN(2, block_num=[1]), seed=2)
    lr = view_round_trip(net, photo).irn_lr
    assert sample_spread(net, lr, temperature=0.0, draws=3).max() < 1e-9
    assert sample_spread(net, lr, temperature=1.0, draws=3).mean() > 0.5


def test_controls_drive_the_view(explorer):
    # The official checkpoint (absent here), the kit's reference model (models/, when committed), the runs;
    # the default is the best of them that exists.
    reference = ("kit reference x2",) if reference_weights(2).is_file() and not official_weights(2).is_file() else ()
    assert explorer.checkpoint.options == (UNTRAINED, *reference, "run tiny")
    assert explorer.checkpoint.value == (reference or ("run tiny",))[0]
    explorer.checkpoint.value = "run tiny"
    first = explorer.update().metrics["IRN PSNR"]
    explorer.temperature.value = 0.3  # observers recompute
    assert explorer.view.metrics["IRN PSNR"] != first
    assert "IRN" in explorer.metrics.value and f"{explorer.view.metrics['IRN PSNR']:.2f}" in explorer.metrics.value
    explorer.seed.value = 4
    assert explorer.view.metrics["IRN PSNR"] != first
    explorer.zoom.value = 4
    assert explorer.zoom_box() == (24, 24, 16)  # centre quarter of the 64×64 crop (max_side)
    assert explorer.panels["hr"].value and explorer.panels["irn_lr"].value
    spread = explorer.draw_samples()
    assert spread.shape == (64, 64) and explorer.panels["spread"].value  # HR-sized
    explorer.checkpoint.value = UNTRAINED
    assert isinstance(explorer.network(), IRN) and explorer.view.metrics["IRN PSNR"] < 20  # Haar + random z
    figure = view_figure(explorer.view, explorer.zoom_box(), spread, title=explorer.describe())
    assert len(figure.axes) == 8


def _png(img):
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return memoryview(buf.getvalue())


def test_upload_adds_a_real_png_and_refuses_bad_files_with_a_message(explorer, photo):
    explorer.add_upload([{"name": "mine.png", "content": _png(photo[:48, :48])}])
    assert explorer.image.value == "upload: mine.png" and explorer.view.hr.shape == (48, 48, 3)
    explorer.add_upload([{"name": "notes.txt", "content": memoryview(b"hello")}])
    assert "Cannot use notes.txt" in explorer.message.value and "cannot be decoded" in explorer.message.value
    explorer.add_upload([{"name": "dot.png", "content": _png(photo[:2, :2])}])
    assert "too small" in explorer.message.value
    assert explorer.image.value == "upload: mine.png"


def test_network_is_loaded_once_per_choice(explorer, monkeypatch):
    explorer.update()
    calls = []
    monkeypatch.setattr("irnlib.app.explore.load_checkpoint", lambda path: calls.append(path) or IRN(2))
    explorer.temperature.value = 0.5
    assert calls == []
    assert torch.is_tensor(next(explorer.network().parameters()))


def test_the_spread_panel_holds_an_image_before_samples_are_drawn(photo):
    explorer = Explorer({"photo": photo}, max_side=64, device="cpu")
    explorer.checkpoint.value = UNTRAINED
    explorer.update()
    blank = np.asarray(Image.open(io.BytesIO(explorer.panels["spread"].value)))  # a real PNG, not an empty one
    assert blank.shape == explorer.view.hr.shape and (blank == NOT_DRAWN_GREY).all()
