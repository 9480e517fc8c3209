"""The kit's one image loader: every colour rule on real files, errors that name the file, PNG round trips."""

import os
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from irnlib.imaging.images import ImageFileError, image_size, load_image, mod_crop, save_png, to_batch, to_image
from irnlib.runtime.paths import atomic_write, remove_stale_temporaries

ASTRONAUT = skimage.data.astronaut()  # uint8 (512, 512, 3)


def write_png16(path: Path, values: np.ndarray) -> Path:
    """A 16-bit PNG (greyscale for H×W, RGB for H×W×3), written chunk by chunk.

    Pillow cannot write 16-bit RGB, so the test builds the file from the PNG specification:
    signature, IHDR, one zlib-compressed IDAT of filter-0 scanlines, IEND.
    """
    arr = np.asarray(values, dtype=">u2")
    h, w = arr.shape[:2]
    colour_type = 2 if arr.ndim == 3 else 0

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    scanlines = b"".join(b"\0" + arr[y].tobytes() for y in range(h))
    header = struct.pack(">IIBBBBB", w, h, 16, colour_type, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(scanlines)) + chunk(b"IEND", b"")
    )
    return path


def test_rgb_png_round_trip_is_exact(tmp_path):
    path = save_png(tmp_path / "a.png", ASTRONAUT, metadata={"source": "astronaut"})
    out = load_image(path)
    assert out.dtype == np.uint8 and out.shape == (512, 512, 3) and out.flags.writeable
    np.testing.assert_array_equal(out, ASTRONAUT)
    assert Image.open(path).text["source"] == "astronaut"
    assert image_size(path) == (512, 512)


def test_greyscale_is_replicated_to_three_channels(tmp_path):
    camera = skimage.data.camera()
    Image.fromarray(camera).save(tmp_path / "grey.png")
    out = load_image(tmp_path / "grey.png")
    assert out.shape == camera.shape + (3,)
    for c in range(3):
        np.testing.assert_array_equal(out[..., c], camera)


def test_one_bit_images_become_black_and_white(tmp_path):
    bits = skimage.data.camera() > 128
    Image.fromarray(bits).convert("1").save(tmp_path / "bits.png")
    out = load_image(tmp_path / "bits.png")
    np.testing.assert_array_equal(out[..., 0], np.where(bits, 255, 0))


def test_palette_images_are_expanded(tmp_path):
    pil = Image.fromarray(ASTRONAUT).quantize(colors=64)
    pil.save(tmp_path / "pal.png")
    assert Image.open(tmp_path / "pal.png").mode == "P"
    np.testing.assert_array_equal(load_image(tmp_path / "pal.png"), np.asarray(pil.convert("RGB")))


def test_palette_transparency_is_dropped(tmp_path):
    pil = Image.fromarray(ASTRONAUT).quantize(colors=16)
    pil.info["transparency"] = 0
    pil.save(tmp_path / "palt.png", transparency=0)
    assert "transparency" in Image.open(tmp_path / "palt.png").info
    np.testing.assert_array_equal(load_image(tmp_path / "palt.png"), np.asarray(pil.convert("RGB")))


def test_alpha_is_dropped_not_composited(tmp_path):
    alpha = np.zeros((512, 512), np.uint8)
    alpha[:, 256:] = 255  # left half fully transparent: its colours must still come back
    Image.fromarray(np.dstack([ASTRONAUT, alpha]), "RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(load_image(tmp_path / "rgba.png"), ASTRONAUT)

    grey = skimage.data.camera()
    Image.fromarray(np.dstack([grey, np.zeros_like(grey)]), "LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(load_image(tmp_path / "la.png")[..., 1], grey)


def test_16_bit_greyscale_and_rgb_keep_the_high_byte(tmp_path):
    levels = np.array([[0, 255, 256, 257, 383, 511, 32768, 65535]], dtype=np.uint16)
    expected = (levels >> 8).astype(np.uint8)  # 0 0 1 1 1 1 128 255

    Image.fromarray(levels).save(tmp_path / "grey16.png")  # Pillow writes 16-bit greyscale itself
    assert Image.open(tmp_path / "grey16.png").mode.startswith("I")
    np.testing.assert_array_equal(load_image(tmp_path / "grey16.png"), np.repeat(expected[..., None], 3, axis=2))

    rgb = np.stack([levels, 65535 - levels, levels // 2], axis=-1)
    out = load_image(write_png16(tmp_path / "rgb16.png", rgb))
    np.testing.assert_array_equal(out, (rgb >> 8).astype(np.uint8))  # the same rule for colour

    out = load_image(write_png16(tmp_path / "grey16b.png", levels))
    np.testing.assert_array_equal(out[..., 0], expected)


def test_jpeg_and_cmyk(tmp_path):
    Image.fromarray(ASTRONAUT).save(tmp_path / "a.jpg", quality=95)
    out = load_image(tmp_path / "a.jpg")
    assert out.shape == (512, 512, 3) and np.abs(out.astype(int) - ASTRONAUT).mean() < 3
    Image.fromarray(ASTRONAUT).convert("CMYK").save(tmp_path / "cmyk.jpg", quality=95)
    assert load_image(tmp_path / "cmyk.jpg").shape == (512, 512, 3)


def test_exif_orientation_is_not_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display"
    wide = ASTRONAUT[:200]
    Image.fromarray(wide).save(tmp_path / "rotated.jpg", exif=exif, quality=95)
    assert load_image(tmp_path / "rotated.jpg").shape == (200, 512, 3)  # as stored


def test_empty_missing_and_undecodable_files_name_the_file(tmp_path):
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageFileError, match=r"empty\.png: the file is empty"):
        load_image(tmp_path / "empty.png")
    with pytest.raises(ImageFileError, match=r"empty\.png"):
        image_size(tmp_path / "empty.png")

    with pytest.raises(FileNotFoundError, match="nothing.png"):
        load_image(tmp_path / "nothing.png")

    (tmp_path / "text.png").write_text("this is not an image\n")
    with pytest.raises(ImageFileError, match=r"text\.png: cannot be decoded"):
        load_image(tmp_path / "text.png")
    with pytest.raises(ImageFileError, match=r"text\.png"):
        image_size(tmp_path / "text.png")

    data = save_png(tmp_path / "whole.png", ASTRONAUT).read_bytes()
    (tmp_path / "truncated.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageFileError, match=r"truncated\.png: cannot be decoded"):
        load_image(tmp_path / "truncated.png")

    corrupt = bytearray(data)
    corrupt[len(data) // 2 : len(data) // 2 + 64] = b"\xff" * 64
    (tmp_path / "corrupt.png").write_bytes(bytes(corrupt))
    with pytest.raises(ImageFileError, match=r"corrupt\.png"):
        load_image(tmp_path / "corrupt.png")


def test_float_images_are_refused(tmp_path):
    Image.fromarray(np.full((8, 8), 0.5, np.float32)).save(tmp_path / "float.tif")
    with pytest.raises(ImageFileError, match=r"float\.tif: floating-point"):
        load_image(tmp_path / "float.tif")


def test_save_png_refuses_wrong_dtype(tmp_path):
    with pytest.raises(TypeError, match="uint8"):
        save_png(tmp_path / "f.png", ASTRONAUT.astype(np.float32))
    assert not (tmp_path / "f.png").exists()


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    path = save_png(tmp_path / "keep.png", ASTRONAUT)
    before = path.read_bytes()

    def broken(tmp):
        tmp.write_bytes(b"half a file")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, broken)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]  # no temporary file left


def test_mod_crop_and_batch_conversions():
    img = ASTRONAUT[:101, :203]
    assert mod_crop(img, 4).shape == (100, 200, 3)
    np.testing.assert_array_equal(mod_crop(img, 4), img[:100, :200])
    batch = to_batch(img)
    assert batch.shape == (1, 3, 101, 203) and batch.dtype == torch.float32
    assert 0 <= batch.min() and batch.max() <= 1
    np.testing.assert_array_equal(to_image(batch), img)
    np.testing.assert_array_equal(to_image(batch[0]), img)


def test_stale_temporaries_of_dead_writers_are_removed_live_ones_kept(tmp_path):
    """A temporary named after a process that no longer exists is removed by the next write of its target."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    stale = tmp_path / f".out.png.{dead_pid}-abc123.tmp"
    other = tmp_path / f".other.png.{dead_pid}-abc123.tmp"
    live = tmp_path / f".out.png.{os.getpid()}-xyz789.tmp"  # a concurrent writer: this very process
    foreign = tmp_path / ".out.png.notes.tmp"  # not the writer's pattern
    for path in (stale, other, live, foreign):
        path.write_bytes(b"half a file")
    save_png(tmp_path / "out.png", ASTRONAUT[:8, :8])
    assert not stale.exists()
    assert other.exists() and live.exists() and foreign.exists()  # another target's, alive, not ours
    assert remove_stale_temporaries(tmp_path) == [other]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([live.name, foreign.name, "out.png"])


def test_to_batch_takes_a_read_only_image_without_a_warning():
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    img.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        batch = to_batch(img)
    assert batch.shape == (1, 3, 2, 3) and float(batch[0, 2, 1, 2]) == pytest.approx(img[1, 2, 2] / 255.0)
