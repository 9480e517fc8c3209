"""The command line (irnlib.app.cli): downscale → upscale round trips on real PNG files, and its errors."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import skimage.data
from conftest import randomize
from PIL import Image

from irnlib import IRN, load_checkpoint, save_model
from irnlib.app.cli import main
from irnlib.app.rescale import KEY_SCALE, KEY_SIZE
from irnlib.imaging.images import load_image, save_png
from irnlib.imaging.metrics import psnr
from irnlib.model.inference import downscale_image, upscale_image


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An x2 IRN with 2 InvBlocks, random weights, exported in the official format."""
    path = tmp_path_factory.mktemp("ckpt") / "IRN_x2.pth"
    save_model(randomize(IRN(2, block_num=[2]), seed=3), path)
    return path


@pytest.fixture
def photo(tmp_path):
    """A real photograph with odd sides (not multiples of the scale), as a PNG file."""
    img = skimage.data.astronaut()[100:201, 150:263]  # 101 x 113
    return save_png(tmp_path / "astronaut.png", img), img


def test_round_trip_restores_the_original_size_and_matches_the_library(tmp_path, photo, checkpoint):
    src, hr = photo
    lr_path, out_path = tmp_path / "lr.png", tmp_path / "restored.png"
    assert main(["downscale", str(src), str(lr_path), "--scale", "2", "--checkpoint", str(checkpoint)]) == 0
    lr = load_image(lr_path)
    assert lr.shape == (51, 57, 3)
    with Image.open(lr_path) as pil:
        assert pil.text[KEY_SIZE] == "101 x 113" and pil.text[KEY_SCALE] == "2"
    assert main(["upscale", str(lr_path), str(out_path), "--checkpoint", str(checkpoint), "--seed", "7"]) == 0
    restored = load_image(out_path)
    assert restored.shape == hr.shape  # cropped back from 102 x 114

    # The files hold exactly what the library computes in memory (PNG is lossless).

    net = load_checkpoint(checkpoint)
    expected_lr = downscale_image(net, hr)
    np.testing.assert_array_equal(lr, expected_lr)
    np.testing.assert_array_equal(restored, upscale_image(net, expected_lr, size=hr.shape[:2], seed=7))


def test_temperature_zero_gives_a_faithful_restoration(tmp_path, photo, checkpoint):
    """With z = 0 even an untrained IRN restores the photograph roughly (Haar low-pass inside)."""
    src, hr = photo
    lr_path, out_path = tmp_path / "lr.png", tmp_path / "out.png"
    main(["downscale", str(src), str(lr_path), "--checkpoint", str(checkpoint)])
    main(["upscale", str(lr_path), str(out_path), "--checkpoint", str(checkpoint), "--temperature", "0"])
    value = psnr(load_image(out_path), hr, border=2)
    assert 20 < value < 60, value


def test_python_dash_m_and_help(tmp_path, photo, checkpoint):
    """The real entry point, in a fresh process: help for newcomers, and a downscale."""

    def run(*a):
        return subprocess.run([sys.executable, "-m", "irnlib", *a], capture_output=True, text=True, timeout=300)

    top = run("--help")
    assert top.returncode == 0
    for command in ("reproduce", "train", "evaluate", "downscale", "upscale", "examples:"):
        assert command in top.stdout
    assert "--temperature" in run("upscale", "--help").stdout
    assert "field=value" in run("train", "--help").stdout  # handed to irnlib.train's parser
    out = tmp_path / "lr.png"
    done = run("downscale", str(photo[0]), str(out), "--checkpoint", str(checkpoint), "--device", "cpu")
    assert done.returncode == 0, done.stderr
    assert f"-> {out}" in done.stdout and out.is_file()


def test_folders_are_processed_and_a_bad_file_is_named_without_stopping_the_others(tmp_path, checkpoint, capsys):
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    save_png(folder / "a.png", skimage.data.chelsea()[:64, :80])
    save_png(folder / "b.png", skimage.data.coffee()[:48, :50])
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    (folder / "notes.txt").write_text("ignored: not an image")
    status = main(["downscale", str(folder), str(out), "--checkpoint", str(checkpoint)])
    assert status == 2
    err = capsys.readouterr().err
    assert "1 of 3 images failed" in err and "broken.png" in err and "cannot be decoded" in err
    assert sorted(p.name for p in out.iterdir()) == ["a.png", "b.png"]
    assert load_image(out / "b.png").shape == (24, 25, 3)


@pytest.mark.parametrize(
    "make_args, message",
    [
        (lambda d, c: ["downscale", str(d / "missing.png"), str(d / "o.png"), "--checkpoint", str(c)], "no such file"),
        (lambda d, c: ["downscale", str(d / "photo.png"), str(d / "o.jpg"), "--checkpoint", str(c)], "must be a .png"),
        (
            lambda d, c: ["downscale", str(d / "photo.png"), str(d / "o.png"), "--checkpoint", str(c), "--scale", "4"],
            "is an x2 checkpoint, but --scale 4",
        ),
        (
            lambda d, c: ["downscale", str(d / "photo.png"), str(d / "o.png"), "--checkpoint", str(d / "none.pth")],
            "none.pth not found",
        ),
        (
            lambda d, c: ["downscale", str(d / "empty.png"), str(d / "o.png"), "--checkpoint", str(c)],
            "empty.png: the file is empty",
        ),
        (
            lambda d, c: ["upscale", str(d / "photo.png"), str(d / "o.png"), "--checkpoint", str(c), "--size", "3x"],
            "not of the form HxW",
        ),
    ],
)
def test_bad_input_gets_a_clear_error_and_writes_nothing(tmp_path, checkpoint, capsys, make_args, message):
    save_png(tmp_path / "photo.png", skimage.data.chelsea()[:32, :32])
    (tmp_path / "empty.png").write_bytes(b"")
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(make_args(tmp_path, checkpoint)) == 2
    err = capsys.readouterr().err
    assert err.startswith("irn: error:") and message in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no output, no temporary file


def test_upscale_refuses_an_lr_of_another_scale_and_keeps_the_existing_output(tmp_path, checkpoint, capsys):
    lr = tmp_path / "lr.png"
    save_png(lr, skimage.data.chelsea()[:20, :20], {KEY_SCALE: "4", KEY_SIZE: "80 x 80"})
    out = tmp_path / "out.png"
    out.write_bytes(b"previous result")
    assert main(["upscale", str(lr), str(out), "--checkpoint", str(checkpoint), "--overwrite"]) == 2
    assert "downscaled x4, but the checkpoint is x2" in capsys.readouterr().err
    assert out.read_bytes() == b"previous result"


def test_upscaling_a_foreign_image_says_so_and_doubles_its_size(tmp_path, checkpoint, capsys):
    lr = save_png(tmp_path / "small.png", skimage.data.chelsea()[:30, :40])
    assert main(["upscale", str(lr), str(tmp_path / "big.png"), "--checkpoint", str(checkpoint)]) == 0
    assert "was not written by `irn downscale`" in capsys.readouterr().err
    assert load_image(tmp_path / "big.png").shape == (60, 80, 3)


def test_evaluate_writes_table1_for_a_checkpoint(tmp_path, checkpoint, capsys):
    out = tmp_path / "tables"
    args = [
        "evaluate",
        "--scale",
        "2",
        "--checkpoint",
        str(checkpoint),
        "--profile",
        "smoke",
        "--datasets",
        "embedded-test",
        "--draws",
        "2",
        "--device",
        "cpu",
        "--out",
        str(out),
    ]
    assert main(args) == 0
    assert "Measured by this kit" in capsys.readouterr().out
    table = pd.read_csv(out / "table1_x2.csv")
    irn = table[(table["source"] == "this kit") & (table["paper_row"] == "IRN (ours)")]
    irn = irn[~irn["row"].str.startswith("IRN (kit reference")]  # the committed reference model has its own row
    assert irn["status"].tolist() == ["measured"] and irn["draws"].tolist() == [2]
    assert main(["evaluate", "--scale", "2", "4", "--checkpoint", str(checkpoint)]) == 2
    assert "--checkpoint is for one scale" in capsys.readouterr().err
    assert main(["evaluate", "--scale", "4", "--checkpoint", str(checkpoint), "--out", str(out)]) == 2
    assert "is an x2 checkpoint" in capsys.readouterr().err
