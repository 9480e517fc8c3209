"""benchmarks/gpu_data.py: datasets packed as lossless WebP come back with the same pixels."""

import importlib.util
from pathlib import Path

import numpy as np
import skimage.data
from PIL import Image

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_data.py"
spec = importlib.util.spec_from_file_location("gpu_data", SCRIPT)
gpu_data = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_data)


def _datasets(root: Path) -> dict[str, np.ndarray]:
    images = {"A/astronaut.png": skimage.data.astronaut()[:96, :80], "B/coffee.png": skimage.data.coffee()[50:120, :64]}
    for rel, pixels in images.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / rel)
    return images


def test_round_trip_keeps_pixels(tmp_path):
    images = _datasets(tmp_path / "data")
    manifest = gpu_data.pack(tmp_path / "data", ["A", "B"], tmp_path / "packed", workers=1)
    assert sorted(manifest) == ["A/astronaut.webp", "B/coffee.webp"]
    assert gpu_data.main(["--workers", "1", "unpack", str(tmp_path / "packed"), str(tmp_path / "out")]) == 0
    for rel, pixels in images.items():
        np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "out" / rel)), pixels)


def test_changed_pixels_are_named(tmp_path, capsys):
    _datasets(tmp_path / "data")
    gpu_data.pack(tmp_path / "data", ["A", "B"], tmp_path / "packed", workers=1)
    changed = tmp_path / "packed" / "B" / "coffee.webp"
    pixels = np.asarray(Image.open(changed)).copy()
    pixels[0, 0, 0] ^= 1
    Image.fromarray(pixels).save(changed, lossless=True)
    assert gpu_data.main(["--workers", "1", "unpack", str(tmp_path / "packed"), str(tmp_path / "out")]) == 1
    assert (
        capsys.readouterr().out.strip()
        == f"{changed}: decoded pixels differ from pixels.json; pack it again from the original PNG"
    )
    assert not (tmp_path / "out" / "B" / "coffee.png").exists()
