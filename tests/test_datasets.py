"""Data root, verification, LR reference cache, test pairs and training patches, on real images."""

import pickle
import shutil
import time
from pathlib import Path

import nbformat
import numpy as np
import papermill
import pytest
import skimage.data
import torch
from PIL import Image
from torch.utils.data import DataLoader, Subset

from irnlib.data import lr_cache
from irnlib.data.folders import (
    available_datasets,
    dataset_table,
    list_images,
    verify_dataset,
    verify_folder,
    write_checksums,
)
from irnlib.data.lr_cache import lr_cache_path
from irnlib.data.patches import TrainingPatches
from irnlib.data.registry import EMBEDDED, DatasetInfo
from irnlib.data.test_pairs import PairedTestSet, prepare_lr_references
from irnlib.imaging.images import load_image, mod_crop, save_png
from irnlib.imaging.imresize import imresize
from irnlib.runtime.paths import REPO_ROOT, cache_root, data_root, sha256_file

SKIMAGE = Path(skimage.data.data_dir)
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png")


def make_dataset(root: Path, name: str = "Photos", photos=PHOTOS) -> Path:
    """A dataset folder of real photographs (copied byte for byte from scikit-image)."""
    folder = root / name
    folder.mkdir(parents=True)
    for photo in photos:
        shutil.copyfile(SKIMAGE / photo, folder / photo)
    return folder


def photos_info(**changes) -> DatasetInfo:
    fields = dict(name="Photos", purpose="test", count=3, description="", min_side=250, max_side=700)
    return DatasetInfo(**{**fields, **changes})


def listing(folder: Path) -> dict:
    return {p: p.stat().st_mtime_ns for p in folder.rglob("*")}


# --------------------------------------------------------------------------- where things are


def test_data_root_and_cache_root_resolution(monkeypatch, tmp_path):
    monkeypatch.delenv("IRN_DATA", raising=False)
    monkeypatch.delenv("IRN_CACHE", raising=False)
    assert data_root() == REPO_ROOT / "data"
    assert cache_root() == REPO_ROOT / "results" / "cache"
    monkeypatch.setenv("IRN_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("IRN_CACHE", str(tmp_path / "cache"))
    assert data_root() == tmp_path / "env" and data_root("") == tmp_path / "env"
    assert cache_root() == tmp_path / "cache"
    assert data_root(tmp_path / "x") == tmp_path / "x" and cache_root(tmp_path / "y") == tmp_path / "y"


def test_list_images_errors_say_where_and_how(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no folder .*Set5.*download\('Set5'\)"):
        list_images("Set5", root=tmp_path)
    (tmp_path / "Set5").mkdir()
    (tmp_path / "Set5" / "notes.txt").write_text("no images here")
    with pytest.raises(FileNotFoundError, match="holds no images"):
        list_images("Set5", root=tmp_path)


def test_aliases_and_available_datasets(tmp_path):
    make_dataset(tmp_path, "BSD100")
    make_dataset(tmp_path, "NotRegistered")
    assert [p.name for p in list_images("B100", root=tmp_path)] == sorted(PHOTOS)
    assert available_datasets(tmp_path) == ["embedded-train", "embedded-test", "BSD100"]
    assert [p.name for p in list_images("embedded-test")] == list(EMBEDDED["embedded-test"])


# --------------------------------------------------------------------------- verification


def test_verify_a_good_folder_with_checksums(tmp_path):
    folder = make_dataset(tmp_path)
    write_checksums(folder)
    check = verify_folder(folder, photos_info())
    assert check.ok, check.problems
    assert check.images == 3 and check.expected == 3 and check.thorough
    assert check.checksums == "3 files checked against SHA256SUMS"
    assert check.size_bytes == sum(p.stat().st_size for p in folder.iterdir())


def test_verify_reports_each_problem_naming_the_file(tmp_path):
    folder = make_dataset(tmp_path)
    write_checksums(folder)
    data = (folder / "coffee.png").read_bytes()
    (folder / "coffee.png").write_bytes(data[: len(data) // 2])  # truncated: header still fine
    (folder / "extra.png").write_bytes((SKIMAGE / "rocket.jpg").read_bytes())  # too wide, unlisted

    quick = verify_folder(folder, photos_info(max_side=620), thorough=False)  # headers only: no decoding, no sums
    assert quick.checksums == "not checked"
    assert any("4 images, expected 3" in p for p in quick.problems)
    assert any("extra.png: size 427×640 outside" in p for p in quick.problems)
    assert not any("coffee.png" in p for p in quick.problems)

    full = verify_folder(folder, photos_info(max_side=620))
    assert any("coffee.png: cannot be decoded" in p for p in full.problems)
    assert any("coffee.png: SHA-256 differs" in p for p in full.problems)
    assert any("extra.png: not listed in" in p for p in full.problems)
    assert not full.ok


def test_verify_expected_names(tmp_path):
    folder = make_dataset(tmp_path)
    check = verify_folder(folder, photos_info(stems=("astronaut", "chelsea", "camera")))
    assert any("missing 1 expected images" in p and "camera" in p for p in check.problems)


def test_dataset_table_reports_presence(tmp_path):
    make_dataset(tmp_path, "Set5", PHOTOS[:2])
    table = dataset_table(["Set5", "Set14", "embedded-test"], tmp_path)
    assert list(table.columns) == [
        "dataset",
        "purpose",
        "images",
        "expected",
        "verified",
        "size on disk (MB)",
        "problems",
    ]
    rows = table.set_index("dataset")
    assert rows.loc["Set5", "images"] == 2 and not rows.loc["Set5", "verified"]
    assert "2 images, expected 5" in rows.loc["Set5", "problems"]
    assert rows.loc["Set14", "images"] == 0 and "download('Set14')" in rows.loc["Set14", "problems"]
    assert rows.loc["embedded-test", "verified"] and rows.loc["embedded-test", "size on disk (MB)"] > 1


# --------------------------------------------------------------------------- test pairs and the LR cache


@pytest.mark.parametrize("scale", [2, 4])
def test_paired_test_set_embedded(scale):
    test_set = PairedTestSet("embedded-test", scale)
    assert len(test_set) == 3
    pair = test_set[1]  # chelsea: 300 × 451, not a multiple of 4
    hr = load_image(SKIMAGE / "chelsea.png")
    assert pair.name == "chelsea"
    np.testing.assert_array_equal(pair.hr, mod_crop(hr, scale))
    assert pair.lr.dtype == np.uint8 and pair.lr.shape == (300 // scale, 451 // scale, 3)
    np.testing.assert_array_equal(pair.lr, imresize(pair.hr, 1 / scale))


def test_lr_cache_is_written_reused_and_invalidated(tmp_path, monkeypatch):
    root, cache = tmp_path / "data", tmp_path / "cache"
    make_dataset(root)
    data_before = listing(root)
    first = PairedTestSet("Photos", 4, root, cache_dir=cache)
    loaded = [first.load(i) for i in range(3)]
    assert [reused for _, reused in loaded] == [False, False, False]
    entry = lr_cache_path(cache, "Photos", 4, "astronaut")
    assert entry == cache / "Photos" / "LRbicx4" / "astronaut.png" and entry.is_file()
    assert Image.open(entry).text["source-sha256"] == sha256_file(root / "Photos" / "astronaut.png")
    assert listing(root) == data_before  # nothing written into the data root

    again = PairedTestSet("Photos", 4, root, cache_dir=cache)
    for i, (pair, _) in enumerate(loaded):
        cached, reused = again.load(i)
        assert reused
        np.testing.assert_array_equal(cached.lr, pair.lr)
        np.testing.assert_array_equal(cached.lr, imresize(pair.hr, 1 / 4))

    # A changed source (same name) is recomputed, never served stale.
    save_png(root / "Photos" / "astronaut.png", np.ascontiguousarray(skimage.data.astronaut()[::-1]))
    pair, reused = again.load(0)
    assert not reused
    np.testing.assert_array_equal(pair.lr, imresize(pair.hr, 1 / 4))
    assert again.load(0)[1]

    # A damaged cache entry is recomputed and replaced.
    entry.write_bytes(b"garbage")
    pair, reused = again.load(0)
    assert not reused and again.load(0)[1]

    # A new cache version invalidates every entry.
    monkeypatch.setattr(lr_cache, "LR_CACHE_VERSION", "test-next")
    assert not again.load(1)[1]


def test_prepare_lr_references(tmp_path):
    table = prepare_lr_references("embedded-test", [2, 4], cache_dir=tmp_path, progress=False)
    assert list(table["scale"]) == [2, 4] and list(table["computed"]) == [3, 3]
    assert len(list((tmp_path / "embedded-test" / "LRbicx2").glob("*.png"))) == 3
    again = prepare_lr_references("embedded-test", [4], cache_dir=tmp_path, progress=False)
    assert list(again["reused"]) == [3] and list(again["computed"]) == [0]


def test_prepare_lr_references_default_cache_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("IRN_CACHE", str(tmp_path / "env-cache"))
    table = prepare_lr_references("embedded-test", [4], progress=False)
    assert table["folder"][0] == str(tmp_path / "env-cache" / "embedded-test" / "LRbicx4")
    assert len(list((tmp_path / "env-cache" / "embedded-test" / "LRbicx4").glob("*.png"))) == 3


# --------------------------------------------------------------------------- training patches


def training_paths():
    return list_images("embedded-train")


@pytest.mark.parametrize("scale", [2, 4])
def test_training_patches_are_aligned_and_deterministic(scale):
    patches = TrainingPatches(training_paths(), scale, patch=48, seed=3)
    for k in range(6):
        hr, lr = patches[k]
        assert hr.dtype == torch.float32 and hr.shape == (3, 48, 48)
        assert lr.shape == (3, 48 // scale, 48 // scale)
        assert 0 <= hr.min() and hr.max() <= 1
        torch.testing.assert_close(lr, imresize(hr[None], 1 / scale)[0], rtol=0, atol=0)
    again = TrainingPatches(training_paths(), scale, patch=48, seed=3)
    for k in (5, 0, 2):  # any order: item k depends on (seed, k) only
        assert torch.equal(again[k][0], patches[k][0])
    other = TrainingPatches(training_paths(), scale, patch=48, seed=4)
    assert not torch.equal(other[0][0], patches[0][0])


def coordinate_image(path: Path, h: int = 300, w: int = 500) -> Path:
    """A PNG whose pixel (y, x) spells its own position: R = y mod 256, G = x mod 256, B = high bits."""
    y, x = np.mgrid[:h, :w]
    save_png(path, np.dstack([y % 256, x % 256, (y // 256) * 16 + x // 256]).astype(np.uint8))
    return path


SYMMETRIES = {  # the 8 symmetries of the square, as functions of an (H, W, ...) array
    f"{'h' if hf else ''}{'v' if vf else ''}{'t' if tr else ''}": (hf, vf, tr)
    for hf in (False, True)
    for vf in (False, True)
    for tr in (False, True)
}


def apply(arr, hf, vf, tr):
    arr = arr[:, ::-1] if hf else arr
    arr = arr[::-1] if vf else arr
    return arr.transpose(1, 0, *range(2, arr.ndim)) if tr else arr


def test_training_patches_are_crops_in_all_eight_symmetries(tmp_path):
    path = coordinate_image(tmp_path / "coords.png")
    patches = TrainingPatches([path], 4, patch=32, seed=0)
    seen = set()
    for k in range(100):
        crop = patches.crop(k).astype(int)
        ys, xs = crop[..., 0] + (crop[..., 2] // 16) * 256, crop[..., 1] + (crop[..., 2] % 16) * 256
        top, left = ys.min(), xs.min()
        block = np.dstack(np.mgrid[top : top + 32, left : left + 32])  # (32, 32, 2): y, x
        found = [name for name, g in SYMMETRIES.items() if np.array_equal(np.dstack([ys, xs]), apply(block, *g))]
        assert len(found) == 1, f"item {k} is not a symmetry of a 32×32 block of the image"
        seen.add(found[0])
        assert 0 <= top <= 300 - 32 and 0 <= left <= 500 - 32
    assert len(seen) == 8
    plain = TrainingPatches([path], 4, patch=32, seed=0, augment=False)
    crop = plain.crop(0).astype(int)
    ys, xs = crop[..., 0] + (crop[..., 2] // 16) * 256, crop[..., 1] + (crop[..., 2] % 16) * 256
    assert np.all(np.diff(xs, axis=1) == 1) and np.all(np.diff(ys, axis=0) == 1)


def test_decoded_image_cache(tmp_path):
    root = tmp_path / "data"
    paths = sorted(make_dataset(root).iterdir())  # astronaut first
    in_memory = TrainingPatches(paths, 2, patch=64, seed=1)
    cached = TrainingPatches(paths, 2, patch=64, seed=1, cache_dir=tmp_path / "cache")
    for k in range(10):
        hr, lr = cached[k]
        assert torch.equal(hr, in_memory[k][0]) and torch.equal(lr, in_memory[k][1])
    files = sorted((tmp_path / "cache" / "decoded").glob("*.npy"))
    assert {f.name.rsplit("-", 1)[0] for f in files} == {"astronaut", "chelsea", "coffee"}
    assert all(isinstance(img, np.memmap) for img in cached._images.values())
    np.testing.assert_array_equal(np.load(files[0]), load_image(root / "Photos" / "astronaut.png"))
    assert len(pickle.dumps(cached)) < 10_000  # no pixels travel to DataLoader workers

    # A changed source gets a new cache file.
    time.sleep(0.01)
    save_png(root / "Photos" / "astronaut.png", np.ascontiguousarray(skimage.data.astronaut()[:, ::-1]))
    fresh = TrainingPatches(paths, 2, patch=64, seed=1, cache_dir=tmp_path / "cache")
    fresh.image(0)
    assert len(list((tmp_path / "cache" / "decoded").glob("astronaut-*.npy"))) == 2
    np.testing.assert_array_equal(fresh.image(0), np.ascontiguousarray(skimage.data.astronaut()[:, ::-1]))


def test_dataloader_workers_give_the_same_items(tmp_path):
    patches = TrainingPatches(training_paths(), 4, patch=48, seed=2, cache_dir=tmp_path)
    loader = DataLoader(Subset(patches, range(8)), batch_size=4, num_workers=2)
    hr = torch.cat([batch[0] for batch in loader])
    assert torch.equal(hr, torch.stack([patches[k][0] for k in range(8)]))


def test_training_patch_errors(tmp_path):
    with pytest.raises(ValueError, match="multiple of the scale"):
        TrainingPatches(training_paths(), 4, patch=30)
    with pytest.raises(ValueError, match="at least one image"):
        TrainingPatches([], 4)
    small = save_png(tmp_path / "small.png", skimage.data.astronaut()[:40, :40])
    with pytest.raises(ValueError, match=r"small\.png.*smaller than the patch"):
        TrainingPatches([small], 4, patch=48)[0]


# --------------------------------------------------------------------------- the shared benchmark images


@pytest.mark.parametrize("name,count", [("Set5", 5), ("Set14", 14), ("BSD100", 100)])
@pytest.mark.parametrize("scale", [2, 4])
def test_shared_test_sets_load(shared_data, name, count, scale):
    test_set = PairedTestSet(name, scale, root=shared_data)
    assert len(test_set) == count
    for pair in test_set:
        h, w, c = pair.hr.shape
        assert c == 3 and h % scale == 0 and w % scale == 0 and min(h, w) >= 200
        assert pair.lr.shape == (h // scale, w // scale, 3) and pair.lr.dtype == np.uint8
        if pair.name == "bridge":  # Set14's single-channel image: three equal channels
            assert np.array_equal(pair.hr[..., 0], pair.hr[..., 2])


def test_shared_baby_lr_is_matlab_bicubic(shared_data):
    pair = PairedTestSet("Set5", 4, root=shared_data)[0]
    assert pair.name == "baby" and pair.hr.shape == (512, 512, 3)
    np.testing.assert_array_equal(pair.lr, imresize(pair.hr, 1 / 4))


def test_shared_training_patches_are_aligned(shared_data):
    paths = list_images("T91", shared_data) + list_images("BSD200", shared_data)
    assert len(paths) == 291
    patches = TrainingPatches(paths, 4, patch=64, seed=0)
    for k in range(16):
        hr, lr = patches[k]
        torch.testing.assert_close(lr, imresize(hr[None], 1 / 4)[0], rtol=0, atol=0)


def test_shared_datasets_verify(shared_data):
    for name in ("Set5", "Set14", "BSD100"):
        check = verify_dataset(name, shared_data)
        assert check.ok, check.problems
        assert check.checksums.endswith("checked against SHA256SUMS")


# --------------------------------------------------------------------------- notebook 00


NOTEBOOK = REPO_ROOT / "notebooks" / "00_data_preparation.ipynb"


def run_notebook_00(tmp_path, **parameters):
    out = tmp_path / "00_out.ipynb"
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(out),
        parameters={"cache_dir": str(tmp_path / "cache"), **parameters},
        cwd=str(NOTEBOOK.parent),
        progress_bar=False,
        kernel_name="python3",
    )
    return nbformat.read(out, as_version=4)


def outputs_text(nb) -> str:
    parts = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            parts.append(output.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


@pytest.mark.slow
def test_notebook_00_runs_under_papermill_on_the_embedded_default(tmp_path):
    """Runs notebook 00 with papermill (a real kernel): embedded default, no network."""
    nb = run_notebook_00(tmp_path, data_root=str(tmp_path / "empty-data-root"))
    text = outputs_text(nb)
    assert "embedded-test" in text and "embedded-train" in text
    assert len(list((tmp_path / "cache" / "embedded-test" / "LRbicx4").glob("*.png"))) == 3
    assert any("image/png" in o.get("data", {}) for cell in nb.cells for o in cell.get("outputs", []))


@pytest.mark.slow
def test_notebook_00_runs_under_papermill_on_the_shared_data(tmp_path, shared_data):
    """Runs notebook 00 with papermill on the shared benchmark images."""
    nb = run_notebook_00(tmp_path, data_root=str(shared_data))
    text = outputs_text(nb)
    for name in ("Set5", "Set14", "BSD100", "T91", "BSD200"):
        assert name in text
    assert len(list((tmp_path / "cache" / "BSD100" / "LRbicx2").glob("*.png"))) == 100


def test_a_union_of_datasets_lists_both_sorted_by_name(tmp_path):
    for folder, names in (("T91", ["t2.png", "t1.png"]), ("BSD200", ["100.png"])):
        (tmp_path / folder).mkdir()
        for n in names:
            save_png(tmp_path / folder / n, np.zeros((8, 8, 3), np.uint8))
    assert [p.name for p in list_images("T91+BSD200", root=tmp_path)] == ["100.png", "t1.png", "t2.png"]
    save_png(tmp_path / "BSD200" / "t1.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="t1.png"):
        list_images("T91+BSD200", root=tmp_path)
