"""Bounds on what a hostile or broken server, archive or dataset folder can cost, and one-line errors.

Real HTTP on 127.0.0.1 (the server of ``test_download``), real zip and tar files built here, real
PNG files; every loop and wait in the server is capped.
"""

import dataclasses
import io
import shutil
import struct
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from test_download import (
    ArchiveServer,
    assert_complete,
    assert_no_dataset,
    make_tgz,
    make_zip,
    member_files,
    serve,
    tiny,
)

from irnlib.data import archives
from irnlib.data import download as dl
from irnlib.data.folders import list_images, resolve_dataset_names, verify_dataset, verify_folder
from irnlib.data.lr_cache import lr_reference
from irnlib.data.registry import DATASETS, GiB, UnknownDatasetError, dataset_info
from irnlib.data.test_pairs import IncompleteDatasetError, PairedTestSet, min_test_side
from irnlib.imaging.images import ImageFileError, image_size
from irnlib.imaging.metrics import ssim

SKIMAGE = Path(skimage.data.data_dir)
SET5 = ("baby", "bird", "butterfly", "head", "woman")


@pytest.fixture
def server():
    srv = ArchiveServer()
    yield srv
    srv.close()


@pytest.fixture(autouse=True)
def no_retry_wait(monkeypatch):
    monkeypatch.setattr(dl, "RETRY_WAIT_S", 0.0)


def set5_entry(url: str, **changes):
    """The registered Set5 entry (its real bounds), pointed at the local server."""
    info = dataset_info("Set5")
    return dataclasses.replace(info, archive=dataclasses.replace(info.archive, url=url), **changes)


def disk_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


# --------------------------------------------------------------------------- 1. archive bombs


def zeros_zip(name: str, size: int) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(name, bytes(size))
    return buf.getvalue()


def declare_size(data: bytes, size: int) -> bytes:
    """A zip whose (only) member declares ``size`` bytes, in its local header and the central directory."""
    data = bytearray(data)
    local, central = data.find(b"PK\x03\x04"), data.find(b"PK\x01\x02")
    data[local + 22 : local + 26] = struct.pack("<I", size)
    data[central + 24 : central + 28] = struct.pack("<I", size)
    return bytes(data)


def test_a_small_zip_declaring_a_3_gib_member_is_refused_before_extracting_it(server, tmp_path):
    data = declare_size(zeros_zip("benchmark/Set5/HR/baby.png", 1000), 3 * GiB)
    info = set5_entry(server.url("/benchmark.tar"))
    server.files["/benchmark.tar"] = data
    with pytest.raises(dl.DownloadError) as err:
        dl.download(info, tmp_path, progress=False)
    message = str(err.value)
    assert "\n" not in message and "benchmark/Set5/HR/baby.png" in message
    assert f"declares {3 * GiB} bytes" in message and f"{info.member_byte_limit} bytes" in message
    assert "refused before extracting" in message and info.archive.url in message
    assert not (tmp_path / "downloads" / "benchmark.tar").exists()  # deleted: the next call fetches anew
    assert_no_dataset(tmp_path, "Set5")
    assert disk_bytes(tmp_path) == 0


@pytest.mark.parametrize("kind", ["zip", "tgz"])
def test_a_highly_compressed_member_over_the_bound_is_refused(server, tmp_path, kind):
    """20 MB of zeros compress to ~20 kB: refused by the Set5 entry's real bound (3 MiB a member)."""
    name, size = "benchmark/Set5/HR/baby.png", 20_000_000
    data = zeros_zip(name, size) if kind == "zip" else make_tgz({name: bytes(size)})
    assert len(data) < 100_000
    server.files["/benchmark.tar"] = data
    info = set5_entry(server.url("/benchmark.tar"))
    with pytest.raises(dl.DownloadError, match=rf"member {name} declares {size} bytes, more than the"):
        dl.download(info, tmp_path, progress=False)
    assert_no_dataset(tmp_path, "Set5")
    assert disk_bytes(tmp_path) == 0


def test_members_together_over_the_dataset_bound_are_refused(server, tmp_path):
    files = {f"bench/Tiny/HR/{c}.png": bytes(900_000) for c in "abc"}
    info = serve(server, make_zip(files), count=2, max_image_bytes=1_000_000)  # 2 MB in all
    assert info.max_total_bytes == 2_000_000
    with pytest.raises(
        dl.DownloadError, match=r"c\.png \(900000 bytes\) would bring .* 2700000 bytes, more than the 2000000"
    ):
        dl.download(info, tmp_path, progress=False)
    assert_no_dataset(tmp_path)


def test_a_member_streaming_past_its_declared_size_is_cut_at_the_bound(tmp_path):
    """Declared sizes can lie (other archive readers): the stream itself is bounded too."""
    budget = archives.MemberBudget(dataclasses.replace(DATASETS["Set5"], max_image_bytes=3 * archives.CHUNK_BYTES))
    reader = archives.BoundedReader(io.BytesIO(bytes(10 * archives.CHUNK_BYTES)), "x.png", budget)
    out = tmp_path / "x.png"
    with pytest.raises(archives.ArchiveContentError, match="x.png holds more than 3145728 bytes"), open(out, "wb") as f:
        shutil.copyfileobj(reader, f, archives.CHUNK_BYTES)
    assert out.stat().st_size <= 3 * archives.CHUNK_BYTES


def test_a_converted_member_larger_than_the_entry_is_not_decoded(server, tmp_path):
    """A JPEG member's header is measured before decoding: a side above max_side is reported, not decoded."""
    info = serve(server, make_zip(member_files()), max_side=620)  # rocket.jpg is 427×640
    with pytest.raises(dl.DownloadError, match=r"rocket\.jpg: size 427×640 outside .*not decoded"):
        dl.download(info, tmp_path, progress=False)
    assert_no_dataset(tmp_path)


def test_every_registered_bound_admits_the_largest_valid_image():
    for info in DATASETS.values():
        assert info.member_byte_limit >= 3 * info.max_side**2 + 10_000  # a raw 8-bit RGB image and headers
        assert info.max_total_bytes == info.count * info.member_byte_limit
        if info.archive is not None:
            assert info.archive.byte_limit <= 16 * GiB
            assert info.archive.size is None or info.archive.byte_limit == info.archive.size


# --------------------------------------------------------------------------- 2./3. endless or odd bodies


@pytest.mark.parametrize("length", [None, "abc"])
def test_an_endless_body_stops_at_the_archive_bound(server, tmp_path, length):
    data = make_zip(member_files())
    info = serve(server, data)
    info = dataclasses.replace(info, archive=dataclasses.replace(info.archive, max_size=len(data) + 1000))
    server.endless, server.length = True, length
    start = time.monotonic()
    with pytest.raises(dl.DownloadError) as err:
        dl.download(info, tmp_path, progress=False)
    message = str(err.value)
    assert "\n" not in message and info.archive.url in message
    assert f"more than the {len(data) + 1000} bytes allowed by the registry's bound" in message
    assert "bench.zip.part deleted" in message
    assert not (tmp_path / "downloads" / "bench.zip.part").exists()
    assert server.extra_sent < ArchiveServer.ENDLESS_CAP  # the kit hung up long before the cap
    assert time.monotonic() - start < 10
    assert_no_dataset(tmp_path)


def test_a_known_size_bounds_the_body_too(server, tmp_path):
    data = make_zip(member_files())
    info = serve(server, data)
    info = dataclasses.replace(info, archive=dataclasses.replace(info.archive, size=len(data)))
    server.endless, server.length = True, None
    with pytest.raises(
        dl.DownloadError, match=f"more than the {len(data)} bytes allowed by the archive's registered size"
    ):
        dl.download(info, tmp_path, progress=False)


def test_a_content_length_above_the_bound_is_refused_before_any_byte_is_written(server, tmp_path):
    info = serve(server, make_zip(member_files()))
    info = dataclasses.replace(info, archive=dataclasses.replace(info.archive, max_size=10_000_000))
    server.length = "99999999999"
    with pytest.raises(
        dl.DownloadError, match=r"announces 99999999999 bytes \(Content-Length\), more than the 10000000"
    ):
        dl.download(info, tmp_path, progress=False)
    assert not any((tmp_path / "downloads").iterdir())


@pytest.mark.parametrize("length", ["abc", "-5", "", "12, 12"])
def test_a_malformed_content_length_counts_as_unknown(server, tmp_path, length):
    info = serve(server, make_zip(member_files()))
    server.length = length
    assert_complete(dl.download(info, tmp_path, progress=False))


@given(st.one_of(st.none(), st.text(max_size=30), st.from_regex(r"\A\s*[0-9]{1,25}\s*\Z")))
def test_content_length_parsing_never_raises(header):
    value = dl._content_length(header)
    if value is not None:
        assert value >= 0 and value == int(header.strip())
        assert header.strip().isascii() and header.strip().isdigit()
    assert dl._content_range_start(header) is None or isinstance(dl._content_range_start(header), int)


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(0, 3 * 4096), max_size=5),
    member_limit=st.integers(0, 8192),
    declared_lie=st.integers(-4096, 4096),
)
def test_member_bounds_hold_for_any_sizes(sizes, member_limit, declared_lie):
    info = dataclasses.replace(DATASETS["Set5"], count=2, max_image_bytes=member_limit)
    budget = archives.MemberBudget(info)
    for i, size in enumerate(sizes):
        declared = max(0, size + declared_lie)
        refused = budget.refuse_declared(f"m{i}.png", declared)
        assert (refused is None) == (declared <= member_limit and budget.used + declared <= 2 * member_limit)
        if refused:
            return
        reader = archives.BoundedReader(io.BytesIO(bytes(size)), f"m{i}.png", budget)
        got = 0
        try:
            while chunk := reader.read(1000):
                got += len(chunk)
        except archives.ArchiveContentError as err:
            assert size > member_limit or budget.used > 2 * member_limit, err
            assert got <= member_limit
            return
        assert got == size <= member_limit


# --------------------------------------------------------------------------- 4. a stalled transfer


def test_a_stalled_transfer_keeps_its_bytes_and_the_next_call_resumes(server, tmp_path):
    data = make_zip(member_files())
    info = serve(server, data)
    server.stall_after = 30_000  # less than one read chunk: nothing may wait unwritten in a buffer
    start = time.monotonic()
    with pytest.raises(dl.DownloadError) as err:
        dl.download(info, tmp_path, progress=False, retries=1, timeout=0.5)
    assert time.monotonic() - start < 10
    message = str(err.value)
    assert "\n" not in message and "stalled: no data for 0.5 s after 30000 bytes" in message
    assert "30000 bytes are kept" in message and "resume" in message
    part = tmp_path / "downloads" / "bench.zip.part"
    assert part.read_bytes() == data[:30_000]

    server.stall_after = None
    server.release.set()
    assert_complete(dl.download(info, tmp_path, progress=False))
    assert server.requests[-1] == ("/bench.zip", "bytes=30000-")


def test_the_default_stall_timeout_is_short():
    assert dl.TIMEOUT_S <= 30


# --------------------------------------------------------------------------- 5. a decompression bomb header


def bomb_png(path: Path, width: int = 20000, height: int = 20000) -> Path:
    """A valid 1×1 PNG whose IHDR (CRC fixed) declares ``width``×``height``."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    ihdr = data.find(b"IHDR")
    data[ihdr + 4 : ihdr + 12] = struct.pack(">II", width, height)
    data[ihdr + 17 : ihdr + 21] = struct.pack(">I", zlib.crc32(bytes(data[ihdr : ihdr + 17])))
    path.write_bytes(bytes(data))
    return path


def test_a_png_header_declaring_20000_squared_is_one_line(tmp_path):
    path = bomb_png(tmp_path / "bomb.png")
    with pytest.raises(ImageFileError) as err:
        image_size(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert "20000×20000 pixels (400000000)" in message and f"{2 * Image.MAX_IMAGE_PIXELS} pixels" in message
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_a_dataset_folder_holding_a_bomb_reports_it_without_decoding(tmp_path):
    folder = tmp_path / "Set5"
    folder.mkdir()
    for stem in SET5[:4]:
        shutil.copyfile(SKIMAGE / "coffee.png", folder / f"{stem}.png")
    bomb_png(folder / "woman.png")
    for thorough in (False, True):
        check = verify_folder(folder, dataset_info("Set5"), thorough=thorough)
        assert any("woman.png: refused without decoding" in p and "20000×20000" in p for p in check.problems)
    with pytest.raises(ImageFileError, match="woman.png: refused without decoding"):
        PairedTestSet("Set5", 4, tmp_path)


# --------------------------------------------------------------------------- 6./7. incomplete or tiny test sets


def make_set5(root: Path, stems=SET5, tiny_one: str | None = None) -> Path:
    folder = root / "Set5"
    folder.mkdir(parents=True)
    for stem in stems:
        shutil.copyfile(SKIMAGE / "coffee.png", folder / f"{stem}.png")
    if tiny_one:
        Image.fromarray(np.full((3, 5, 3), 128, np.uint8)).save(folder / f"{tiny_one}.png")
    return folder


def test_a_set5_of_four_images_is_never_measured_as_set5(tmp_path):
    make_set5(tmp_path, SET5[:4])
    with pytest.raises(IncompleteDatasetError) as err:
        PairedTestSet("Set5", 4, tmp_path)
    message = str(err.value)
    assert "\n" not in message and "4 images, expected 5" in message and "woman" in message
    assert "not comparable with the paper's Set5" in message and "download('Set5')" in message
    check = verify_dataset("Set5", tmp_path, thorough=False)
    assert not check.ok and check.images == 4 and check.expected == 5


def test_a_set5_with_another_image_name_is_refused(tmp_path):
    make_set5(tmp_path, (*SET5[:4], "lena"))
    with pytest.raises(IncompleteDatasetError, match=r"missing 1 expected images, e.g. \['woman'\]"):
        PairedTestSet("Set5", 2, tmp_path)


def test_the_same_images_under_a_name_of_your_own_are_measured(tmp_path):
    folder = make_set5(tmp_path, SET5[:4])
    folder.rename(tmp_path / "MySet")
    assert len(PairedTestSet("MySet", 4, tmp_path)) == 4
    assert len(PairedTestSet("Set5", 4, make_set5(tmp_path / "full").parent)) == 5


def test_a_3x5_image_at_x4_is_one_line_naming_it_and_the_minimum(tmp_path):
    make_set5(tmp_path, SET5[:4], tiny_one="woman")
    with pytest.raises(ValueError) as err:
        PairedTestSet("Set5", 4, tmp_path)
    message = str(err.value)
    assert "\n" not in message and "woman.png: 3×5 pixels is too small for a x4 test pair" in message
    assert "at least 20 pixels" in message


@pytest.mark.parametrize(("scale", "side"), [(2, 16), (4, 20), (8, 32)])
def test_the_minimum_test_side_is_measurable(tmp_path, scale, side):
    assert min_test_side(scale) == side
    folder = tmp_path / "Small"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (side, side + 1, 3), dtype=np.uint8)).save(folder / "ok.png")
    pair = PairedTestSet("Small", scale, tmp_path)[0]
    assert pair.lr.shape == (side // scale, side // scale, 3)
    assert np.isfinite(ssim(pair.hr, pair.hr, border=scale))
    Image.fromarray(rng.integers(0, 256, (side - 1, side, 3), dtype=np.uint8)).save(folder / "small.png")
    with pytest.raises(ValueError, match=rf"small.png: {side - 1}×{side} pixels is too small"):
        PairedTestSet("Small", scale, tmp_path)


def test_lr_reference_refuses_an_hr_without_an_lr():
    with pytest.raises(ValueError, match=r"x4 LR reference.*multiples of 4"):
        lr_reference(np.zeros((0, 4, 3), np.uint8), 4)


# --------------------------------------------------------------------------- 8. unknown dataset names


def test_an_unknown_dataset_is_one_value_error_listing_the_known_names(tmp_path):
    with pytest.raises(ValueError) as err:
        dl.download("Nope", tmp_path)
    message = str(err.value)
    assert message.startswith("unknown dataset 'Nope'; known: ") and "Set5" in message and "B100" in message
    assert isinstance(err.value, KeyError) and isinstance(err.value, UnknownDatasetError)  # older callers
    assert not any(tmp_path.iterdir())
    with pytest.raises(ValueError, match=r"unknown dataset 'set55' \(did you mean 'Set5'\?\)"):
        dataset_info("set55")


def test_names_are_validated_early(tmp_path):
    (tmp_path / "Mine").mkdir()
    assert resolve_dataset_names(["B100", "set5", "Mine", "T91+BSDS200"], tmp_path) == [
        "BSD100",
        "Set5",
        "Mine",
        "T91+BSD200",
    ]
    assert resolve_dataset_names("Urban100", tmp_path) == [
        "Urban100"
    ]  # registered, absent: the caller says how to get it
    with pytest.raises(UnknownDatasetError, match=r"unknown dataset 'Nope'; known: .*nor is there a folder .*Nope"):
        resolve_dataset_names(["Set5", "Nope"], tmp_path)
    with pytest.raises(ValueError, match="unknown dataset 'Nope'"):
        resolve_dataset_names(["T91+Nope"], tmp_path)


def test_listing_an_unknown_dataset_gives_no_advice_that_fails(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        list_images("Nope", tmp_path)
    message = str(err.value)
    assert "download('Nope')" not in message and "unknown dataset 'Nope'; known:" in message
    assert tiny("x").name == "Tiny"  # the helpers of test_download stay importable
