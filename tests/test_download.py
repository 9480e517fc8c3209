"""Downloads against a real HTTP server on 127.0.0.1 serving archives built from real photographs."""

import dataclasses
import hashlib
import io
import socket
import struct
import subprocess
import sys
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from conftest import kill_at_marker

from irnlib.data import archives
from irnlib.data import download as dl
from irnlib.data.folders import CHECKSUM_FILE, list_images, verify_dataset
from irnlib.data.registry import DATASETS, Archive, DatasetInfo, dataset_info
from irnlib.imaging.images import load_image

SKIMAGE = Path(skimage.data.data_dir)
PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png")  # PNG members, copied verbatim
JPEG = "rocket.jpg"  # a JPEG member, converted to PNG on extraction


# --------------------------------------------------------------------------- a real server


class ArchiveServer:
    """Serves ``files`` (URL path -> bytes) over HTTP/1.0 with byte ranges, and misbehaves on demand.

    ``cuts``: for the next requests, how many body bytes to send before dropping the
    connection (``("close", n)``: orderly close; ``("reset", n)``: TCP reset).
    ``length``: the Content-Length header to send instead of the body's length (None: none).
    ``endless``: after the body, keep sending zeros until the client hangs up (at most
    ``ENDLESS_CAP`` bytes, counted in ``extra_sent``). ``stall_after``: send that many body bytes,
    then wait (at most ``STALL_CAP_S``, or until ``release`` is set) and close.
    """

    ENDLESS_CAP = 64 << 20
    STALL_CAP_S = 20.0

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.cuts: list[tuple[str, int]] = []
        self.ranges = True
        self.length: str | None = "auto"
        self.endless = False
        self.extra_sent = 0
        self.stall_after: int | None = None
        self.release = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                owner.requests.append((self.path, self.headers.get("Range")))
                data = owner.files.get(self.path)
                if data is None:
                    self.send_error(404, "Not Found")
                    return
                start = 0
                rng = self.headers.get("Range")
                if rng and owner.ranges:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    if start >= len(data):
                        self.send_error(416, "Range Not Satisfiable")
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data[start:]
                if owner.length is not None:
                    self.send_header("Content-Length", str(len(body)) if owner.length == "auto" else owner.length)
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if owner.stall_after is not None:
                    self.wfile.write(body[: owner.stall_after])
                    self.wfile.flush()
                    owner.release.wait(owner.STALL_CAP_S)
                    self.close_connection = True
                    return
                if owner.endless:
                    self.send_forever(body)
                    return
                if owner.cuts:
                    how, n = owner.cuts.pop(0)
                    self.wfile.write(body[:n])
                    self.wfile.flush()
                    if how == "reset":  # SO_LINGER 0 and no shutdown(): closing sends RST, not FIN
                        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        owner.resets.add(self.connection)
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def send_forever(self, body):
                self.wfile.write(body)
                zeros = bytes(64 << 10)
                try:
                    while owner.extra_sent < owner.ENDLESS_CAP:
                        self.wfile.write(zeros)
                        owner.extra_sent += len(zeros)
                except OSError:  # the client hung up: what the test wants
                    pass
                self.close_connection = True

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            def shutdown_request(self, request):
                if request in owner.resets:
                    owner.resets.discard(request)
                    self.close_request(request)
                else:
                    super().shutdown_request(request)

        self.resets: set = set()
        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = ArchiveServer()
    yield srv
    srv.close()


@pytest.fixture(autouse=True)
def no_retry_wait(monkeypatch):
    monkeypatch.setattr(dl, "RETRY_WAIT_S", 0.0)


# --------------------------------------------------------------------------- archives


def member_files() -> dict[str, bytes]:
    """The dataset's images inside the archive, plus members that must be ignored."""
    files = {f"bench/Tiny/HR/{name}": (SKIMAGE / name).read_bytes() for name in PHOTOS}
    files[f"bench/Tiny/HR/{JPEG}"] = (SKIMAGE / JPEG).read_bytes()
    files["bench/Tiny/LR/x4/astronaut.png"] = (SKIMAGE / "camera.png").read_bytes()  # other folder
    files["bench/Tiny/HR/readme.txt"] = b"not an image"
    files["__MACOSX/bench/Tiny/HR/._astronaut.png"] = b"resource fork"
    return files


def make_zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    return buf.getvalue()


def make_tgz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def tiny(url: str, **changes) -> DatasetInfo:
    info = DatasetInfo(
        name="Tiny",
        purpose="test",
        count=4,
        description="four scikit-image photographs",
        min_side=250,
        max_side=700,
        archive=Archive(url),
        members="Tiny/HR/*",
    )
    return dataclasses.replace(info, **changes)


def serve(server: ArchiveServer, data: bytes, path: str = "/bench.zip", **changes) -> DatasetInfo:
    server.files[path] = data
    return tiny(server.url(path), **changes)


def assert_no_dataset(root: Path, name: str = "Tiny"):
    assert not (root / name).exists()
    assert not list(root.glob(f".{name}.partial-*")), "a temporary extraction folder was left behind"


def assert_complete(folder: Path):
    names = sorted(p.name for p in folder.iterdir())
    assert names == sorted([*PHOTOS, "rocket.png", CHECKSUM_FILE])
    for name in PHOTOS:  # PNG members are stored byte for byte
        assert (folder / name).read_bytes() == (SKIMAGE / name).read_bytes()
    np.testing.assert_array_equal(load_image(folder / "rocket.png"), load_image(SKIMAGE / JPEG))
    sums = dict(line.split("  ")[::-1] for line in (folder / CHECKSUM_FILE).read_text().splitlines())
    assert sums["astronaut.png"] == hashlib.sha256((SKIMAGE / "astronaut.png").read_bytes()).hexdigest()


# --------------------------------------------------------------------------- success


def test_download_extracts_verifies_and_is_idempotent(server, tmp_path, capsys):
    info = serve(server, make_zip(member_files()))
    folder = dl.download(info, tmp_path, progress=True)
    assert folder == tmp_path / "Tiny"
    assert_complete(folder)
    assert (tmp_path / "downloads" / "bench.zip").is_file()  # kept for other datasets of the archive
    assert_no_dataset(tmp_path, "Tiny.partial")  # no temporary folders
    assert server.requests == [("/bench.zip", None)]
    assert "bench.zip" in capsys.readouterr().err  # the tqdm bar names the file

    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert dl.download(info, tmp_path) == folder  # again: nothing fetched, nothing rewritten
    assert len(server.requests) == 1
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == before


def test_tar_gz_archive_and_no_kept_archive(server, tmp_path):
    info = serve(server, make_tgz(member_files()), path="/bench.tar.gz")
    folder = dl.download(info, tmp_path, progress=False, keep_archive=False)
    assert_complete(folder)
    assert not (tmp_path / "downloads" / "bench.tar.gz").exists()


def test_known_size_and_checksum_accepted(server, tmp_path):
    data = make_zip(member_files())
    archive = Archive("", size=len(data), sha256=hashlib.sha256(data).hexdigest(), checksum_source="this test")
    info = serve(server, data)
    info = dataclasses.replace(info, archive=dataclasses.replace(archive, url=info.archive.url))
    assert_complete(dl.download(info, tmp_path, progress=False))


def test_embedded_datasets_need_no_download(tmp_path):
    assert dl.download("embedded-test", tmp_path) == SKIMAGE
    assert not any(tmp_path.iterdir())


# --------------------------------------------------------------------------- resuming


def test_resumes_after_a_truncated_transfer(server, tmp_path):
    data = make_zip(member_files())
    info = serve(server, data)
    cut = len(data) * 2 // 5
    server.cuts = [("close", cut)]  # the first response stops early; the retry resumes
    assert_complete(dl.download(info, tmp_path, progress=False))
    assert server.requests == [("/bench.zip", None), ("/bench.zip", f"bytes={cut}-")]
    assert (tmp_path / "downloads" / "bench.zip").read_bytes() == data


def test_resumes_a_partial_file_left_by_an_earlier_run(server, tmp_path):
    data = make_zip(member_files())
    info = serve(server, data)
    part = tmp_path / "downloads" / "bench.zip.part"
    part.parent.mkdir()
    part.write_bytes(data[:12345])  # as left by a killed process
    assert_complete(dl.download(info, tmp_path, progress=False))
    assert server.requests == [("/bench.zip", "bytes=12345-")]
    assert not part.exists()


def test_server_without_range_support_restarts_from_zero(server, tmp_path):
    data = make_zip(member_files())
    info = serve(server, data)
    server.ranges = False
    server.cuts = [("close", 1000)]
    assert_complete(dl.download(info, tmp_path, progress=False))
    assert (tmp_path / "downloads" / "bench.zip").read_bytes() == data


def test_server_that_keeps_dropping_the_connection(server, tmp_path):
    data = make_zip(member_files())
    info = serve(server, data)
    server.cuts = [("reset", 50_000), ("reset", 50_000), ("close", 50_000)]
    with pytest.raises(dl.DownloadError) as err:
        dl.download(info, tmp_path, progress=False, retries=3)
    message = str(err.value)
    assert "Tiny" in message and info.archive.url in message and "3 attempts" in message
    assert "resume" in message
    assert_no_dataset(tmp_path)
    part = tmp_path / "downloads" / "bench.zip.part"
    assert 0 < part.stat().st_size < len(data)  # kept for resuming
    assert len(server.requests) == 3

    # The server recovers: the next call resumes where the last attempt stopped.
    have = part.stat().st_size
    assert_complete(dl.download(info, tmp_path, progress=False))
    assert server.requests[-1] == ("/bench.zip", f"bytes={have}-")


def test_partial_file_longer_than_the_archive_starts_over(server, tmp_path):
    data = make_zip(member_files())
    info = serve(server, data)
    part = tmp_path / "downloads" / "bench.zip.part"
    part.parent.mkdir()
    part.write_bytes(data + b"junk")  # e.g. the archive changed on the server
    assert_complete(dl.download(info, tmp_path, progress=False))
    assert server.requests == [("/bench.zip", f"bytes={len(data) + 4}-"), ("/bench.zip", None)]


# --------------------------------------------------------------------------- failures


def test_corrupt_archive_is_deleted_and_reported(server, tmp_path):
    data = bytearray(make_zip(member_files()))
    start = data.find(b"IDAT")  # inside the first PNG member: its CRC-32 no longer matches
    data[start + 100 : start + 110] = b"\0" * 10
    info = serve(server, bytes(data))
    with pytest.raises(dl.DownloadError) as err:
        dl.download(info, tmp_path, progress=False)
    message = str(err.value)
    assert "Tiny" in message and "corrupt" in message and info.archive.url in message and "bench.zip" in message
    assert not (tmp_path / "downloads" / "bench.zip").exists()  # the next call fetches it anew
    assert_no_dataset(tmp_path)


def test_not_an_archive(server, tmp_path):
    info = serve(server, b"<html><body>Moved</body></html>" * 100)
    with pytest.raises(dl.DownloadError, match="corrupt"):
        dl.download(info, tmp_path, progress=False)
    assert_no_dataset(tmp_path)


def test_undecodable_image_names_the_member(server, tmp_path):
    files = member_files()
    files["bench/Tiny/HR/coffee.png"] = files["bench/Tiny/HR/coffee.png"][:5000]  # truncated PNG
    info = serve(server, make_zip(files))
    with pytest.raises(dl.DownloadError) as err:
        dl.download(info, tmp_path, progress=False)
    assert "coffee.png" in str(err.value) and "do not verify" in str(err.value)
    assert_no_dataset(tmp_path)


@pytest.mark.parametrize("member", ["coffee.png", JPEG])
def test_archive_with_a_corrupt_member_is_discarded_and_fetched_anew(server, tmp_path, member):
    """A well-formed archive holding a truncated image: once the server is fixed, the next call downloads again."""
    files = member_files()
    good = make_zip(files)
    files[f"bench/Tiny/HR/{member}"] = files[f"bench/Tiny/HR/{member}"][:5000]  # zip CRCs match: only decoding fails
    info = serve(server, make_zip(files))
    with pytest.raises(dl.DownloadError) as err:
        dl.download(info, tmp_path, progress=False)
    message = str(err.value)
    assert member in message and "bench.zip" in message and info.archive.url in message
    assert "the archive was deleted: run download again" in message
    assert not (tmp_path / "downloads" / "bench.zip").exists()
    assert_no_dataset(tmp_path)

    server.files["/bench.zip"] = good  # the server is fixed
    assert_complete(dl.download(info, tmp_path, progress=False))
    assert server.requests == [("/bench.zip", None), ("/bench.zip", None)]


def test_archive_matching_its_published_checksum_is_kept_when_the_entry_is_wrong(server, tmp_path):
    """The right file (SHA-256 verified) with a wrong entry: deleting it would only start a download loop."""
    data = make_zip(member_files())
    info = serve(server, data, count=5)
    info = dataclasses.replace(info, archive=dataclasses.replace(info.archive, sha256=hashlib.sha256(data).hexdigest(),
                                                                  checksum_source="this test"))  # fmt: skip
    with pytest.raises(dl.DownloadError, match="4 images, expected 5.*published SHA-256 and is kept"):
        dl.download(info, tmp_path, progress=False)
    assert (tmp_path / "downloads" / "bench.zip").read_bytes() == data
    assert_no_dataset(tmp_path)


def test_wrong_image_count(server, tmp_path):
    info = serve(server, make_zip(member_files()), count=5)
    with pytest.raises(dl.DownloadError, match="4 images, expected 5"):
        dl.download(info, tmp_path, progress=False)
    assert_no_dataset(tmp_path)


def test_image_sizes_outside_the_expected_range(server, tmp_path):
    info = serve(server, make_zip(member_files()), max_side=500)  # coffee is 600 wide
    with pytest.raises(dl.DownloadError, match=r"coffee.png: size 400×600 outside"):
        dl.download(info, tmp_path, progress=False)
    assert_no_dataset(tmp_path)


def test_checksum_mismatch_deletes_the_file(server, tmp_path):
    data = make_zip(member_files())
    info = serve(server, data)
    info = dataclasses.replace(info, archive=dataclasses.replace(info.archive, sha256="0" * 64))
    with pytest.raises(dl.DownloadError) as err:
        dl.download(info, tmp_path, progress=False)
    assert "SHA-256" in str(err.value) and hashlib.sha256(data).hexdigest() in str(err.value)
    assert not any((tmp_path / "downloads").iterdir())
    assert_no_dataset(tmp_path)


def test_http_error(server, tmp_path):
    info = tiny(server.url("/missing.zip"))
    with pytest.raises(dl.DownloadError, match=r"HTTP 404") as err:
        dl.download(info, tmp_path, progress=False)
    assert "/missing.zip" in str(err.value)
    assert_no_dataset(tmp_path)


def test_unreachable_server(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    info = tiny(f"http://127.0.0.1:{port}/bench.zip")
    with pytest.raises(dl.DownloadError, match="cannot connect"):
        dl.download(info, tmp_path, progress=False, retries=2)
    assert_no_dataset(tmp_path)


def test_existing_folder_that_does_not_verify_is_left_alone(server, tmp_path):
    info = serve(server, make_zip(member_files()))
    (tmp_path / "Tiny").mkdir()
    (tmp_path / "Tiny" / "a.png").write_bytes((SKIMAGE / "coffee.png").read_bytes())
    with pytest.raises(dl.DownloadError, match="already exists but does not verify"):
        dl.download(info, tmp_path, progress=False)
    assert [p.name for p in (tmp_path / "Tiny").iterdir()] == ["a.png"]
    assert server.requests == []


def test_killed_extraction_leaves_no_dataset(server, tmp_path):
    """kill -9 in the middle of extracting: no folder looks like the dataset; the next call cleans up."""
    info = serve(server, make_zip(member_files()))
    archive = dl.fetch(info.archive, tmp_path / "downloads", progress=False)
    marker = tmp_path / "two-written"
    script = f"""
import time
from pathlib import Path
from irnlib.data import archives
from irnlib.data import download as dl
from irnlib.data.registry import Archive, DatasetInfo
written = []
original = archives.write_member_png
def slow_write(folder, member, *rest):
    original(folder, member, *rest)
    written.append(member)
    if len(written) == 2:
        Path({str(marker)!r}).touch()
        time.sleep(60)
archives.write_member_png = slow_write
info = DatasetInfo(name="Tiny", purpose="test", count=4, description="", min_side=250, max_side=700,
                   archive=Archive({info.archive.url!r}), members="Tiny/HR/*")
dl.extract(info, Path({str(archive)!r}), Path({str(tmp_path / "Tiny")!r}), progress=False)
"""
    proc = subprocess.Popen([sys.executable, "-c", script])
    kill_at_marker(proc, marker, 60, "extraction process")
    stale = list(tmp_path.glob(".Tiny.partial-*"))
    assert len(stale) == 1 and len(list(stale[0].glob("*.png"))) == 2  # half-extracted, hidden name
    assert not (tmp_path / "Tiny").exists()
    with pytest.raises(FileNotFoundError):
        list_images("Tiny", root=tmp_path)
    assert_complete(dl.download(info, tmp_path, progress=False))
    assert not list(tmp_path.glob(".Tiny.partial-*"))


# --------------------------------------------------------------------------- the registry


def test_registry_matches_the_shared_layout_and_paper():
    assert {"Set5", "Set14", "BSD100", "Urban100", "T91", "BSD200", "DIV2K_train_HR", "DIV2K_valid_HR"} <= set(DATASETS)
    assert dataset_info("B100").name == "BSD100" and dataset_info("bsds200").name == "BSD200"
    counts = {name: info.count for name, info in DATASETS.items()}
    assert counts["DIV2K_train_HR"] == 800 and counts["DIV2K_valid_HR"] == 100
    assert (counts["Set5"], counts["Set14"], counts["BSD100"], counts["Urban100"]) == (5, 14, 100, 100)
    assert (counts["T91"], counts["BSD200"]) == (91, 200)
    train, valid = DATASETS["DIV2K_train_HR"], DATASETS["DIV2K_valid_HR"]
    assert train.stems[0] == "0001" and train.stems[-1] == "0800" and valid.stems[0] == "0801"
    assert train.archive.url == "https://data.vision.ee.ethz.ch/cvl/DIV2K/DIV2K_train_HR.zip"
    assert valid.archive.filename == "DIV2K_valid_HR.zip"
    for info in DATASETS.values():
        assert info.purpose in ("training", "test", "validation")
        if info.archive is not None:
            assert info.archive.url.startswith("http") and info.members
            assert (info.archive.sha256 is None) == (info.archive.checksum_source == "not known")
            assert info.archive.sha256 is None or len(info.archive.sha256) == 64
    with pytest.raises(KeyError, match="known:"):
        dataset_info("Set6")


def test_registry_bounds_accept_the_shared_datasets(shared_data):
    for name in ("Set5", "Set14", "BSD100", "T91", "BSD200"):
        check = verify_dataset(name, shared_data, thorough=False)
        assert check.ok, check.problems


def test_member_patterns_select_the_documented_archive_layouts():
    chosen = {
        "Set5": ["benchmark/Set5/HR/baby.png", "benchmark/Set5/LR_bicubic/X2/babyx2.png"],
        "BSD100": ["benchmark/B100/HR/3096.png", "benchmark/B100/LR_bicubic/X4/3096x4.png"],
        "Urban100": ["benchmark/Urban100/HR/img001.png", "benchmark/Urban100/HR/._img001.png"],
        "DIV2K_train_HR": ["DIV2K_train_HR/0001.png", "__MACOSX/DIV2K_train_HR/._0001.png"],
        "T91": ["T91/t1.png", "SR_training_datasets/T91/t2.bmp", "SR_training_datasets/General100/im_1.bmp"],
        "BSD200": ["BSDS200/2092.png", "BSDS200/Thumbs.db"],
    }
    expected = {
        "Set5": ["benchmark/Set5/HR/baby.png"],
        "BSD100": ["benchmark/B100/HR/3096.png"],
        "Urban100": ["benchmark/Urban100/HR/img001.png"],
        "DIV2K_train_HR": ["DIV2K_train_HR/0001.png"],
        "T91": ["T91/t1.png", "SR_training_datasets/T91/t2.bmp"],
        "BSD200": ["BSDS200/2092.png"],
    }
    for name, members in chosen.items():
        pattern = dataset_info(name).members
        assert [m for m in members if archives.is_member(m, pattern)] == expected[name], name


def test_a_mirror_with_the_benchmark_layout_reproduces_the_shared_set5(server, tmp_path, shared_data):
    """The registered Set5 entry, pointed at a local copy of the benchmark archive layout."""
    files = {f"benchmark/Set5/HR/{p.name}": p.read_bytes() for p in sorted((shared_data / "Set5").glob("*.png"))}
    files["benchmark/Set5/LR_bicubic/X4/babyx4.png"] = files["benchmark/Set5/HR/baby.png"]
    server.files["/benchmark.tar"] = make_tgz(files)
    info = dataset_info("Set5")
    info = dataclasses.replace(info, archive=dataclasses.replace(info.archive, url=server.url("/benchmark.tar")))
    folder = dl.download(info, tmp_path, progress=False)
    assert folder == tmp_path / "Set5"
    for path in (shared_data / "Set5").iterdir():  # the same files, SHA256SUMS included
        assert (folder / path.name).read_bytes() == path.read_bytes(), path.name
    assert verify_dataset("Set5", tmp_path).ok
