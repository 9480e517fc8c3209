"""The command line under faults: every bad input or broken environment gets one line
``irn: error: ...`` and a non-zero exit, and no original is replaced or lost.

Real files throughout: PNG/JPEG photographs, checkpoints with damaged weights, a read-only
file system and a full disk (mounted in a private mount namespace with ``unshare``), and a
real ``kill -9`` of a process in the middle of writing. ``tests/BAD_INPUTS.md`` lists them.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import skimage.data
import torch
from conftest import kill_at_marker, randomize
from PIL import Image

from irnlib import IRN, save_model
from irnlib.app.cli import main
from irnlib.app.rescale import KEY_SCALE, KEY_SIZE
from irnlib.imaging.images import load_image, save_png

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An x2 IRN with 2 InvBlocks, random weights, exported in the official format."""
    path = tmp_path_factory.mktemp("ckpt") / "IRN_x2.pth"
    save_model(randomize(IRN(2, block_num=[2]), seed=3), path)
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden ones included) with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def irn(*args, env_extra=None) -> subprocess.CompletedProcess:
    """The real entry point in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", **(env_extra or {})}
    return subprocess.run(
        [sys.executable, "-m", "irnlib", *map(str, args)], capture_output=True, text=True, timeout=300, env=env
    )


def assert_one_line_error(done: subprocess.CompletedProcess, *fragments: str):
    """Exit status 2 and one ``irn: error:`` message (no traceback) holding ``fragments``.

    Only a progress bar (a folder's) may come before it on stderr.
    """
    assert done.returncode == 2, (done.returncode, done.stderr)
    before, sep, _ = done.stderr.partition("irn: error: ")
    assert sep, done.stderr
    assert before.strip() == "" or before.lstrip().startswith(("downscaling", "upscaling")), done.stderr
    assert done.stderr.count("irn: error: ") == 1 and "Traceback" not in done.stderr, done.stderr
    for fragment in fragments:
        assert fragment in done.stderr, done.stderr


# --------------------------------------------------------------------------- output-path policy (item 4)


def test_refuses_to_overwrite_the_input_file(tmp_path, checkpoint, capsys):
    photo = save_png(tmp_path / "a.png", skimage.data.chelsea()[:40, :48])
    (tmp_path / "sub").mkdir()
    before = snapshot(tmp_path)
    for out in ("a.png", "sub/../a.png"):
        assert main(["downscale", str(photo), str(tmp_path / out), "--checkpoint", str(checkpoint)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("irn: error:") and "OUT is the input file" in err and "choose another output name" in err
    assert snapshot(tmp_path) == before  # the original is untouched, nothing else written


def test_refuses_the_input_folder_as_output_folder(tmp_path, checkpoint, capsys):
    folder = tmp_path / "d"
    save_png(folder / "a.png", skimage.data.chelsea()[:40, :48])
    Image.fromarray(skimage.data.coffee()[:40, :40]).save(folder / "b.jpg")
    before = snapshot(folder)
    for out in (folder, tmp_path / "d" / ".." / "d"):
        assert main(["downscale", str(folder), str(out), "--checkpoint", str(checkpoint)]) == 2
        assert "OUT is the input folder" in capsys.readouterr().err
    assert snapshot(folder) == before


def test_refuses_two_inputs_with_one_output_name_before_writing_anything(tmp_path, checkpoint, capsys):
    folder, out = tmp_path / "d", tmp_path / "out"
    save_png(folder / "x.png", skimage.data.chelsea()[:40, :48])
    Image.fromarray(skimage.data.coffee()[:40, :40]).save(folder / "x.jpg")
    save_png(folder / "y.png", skimage.data.astronaut()[:40, :40])
    assert main(["downscale", str(folder), str(out), "--checkpoint", str(checkpoint)]) == 2
    err = capsys.readouterr().err
    assert "x.jpg and x.png would be written to x.png" in err and "nothing was written" in err
    assert not out.exists()


# --------------------------------------------------------------------------- silently wrong outputs (item 5)


def test_checkpoint_with_nan_weights_is_refused(tmp_path, checkpoint):
    state = torch.load(checkpoint, weights_only=True)
    state["operations.1.F.conv1.weight"][0, 0, 0, 0] = float("nan")
    torch.save(state, tmp_path / "nan.pth")
    photo = save_png(tmp_path / "a.png", skimage.data.chelsea()[:40, :48])
    done = irn("downscale", photo, tmp_path / "lr.png", "--checkpoint", tmp_path / "nan.pth", "--device", "cpu")
    assert_one_line_error(done, "nan.pth", "NaN or infinite", "use another checkpoint")
    assert not (tmp_path / "lr.png").exists()


def test_a_stored_size_smaller_than_the_lr_allows_is_refused(tmp_path, checkpoint, capsys):
    photo = save_png(tmp_path / "a.png", skimage.data.chelsea()[:41, :47])
    lr_path, out = tmp_path / "lr.png", tmp_path / "out.png"
    assert main(["downscale", str(photo), str(lr_path), "--checkpoint", str(checkpoint)]) == 0
    with Image.open(lr_path) as pil:
        meta = dict(pil.text)
    assert meta[KEY_SIZE] == "41 x 47"
    lr = load_image(lr_path)  # 21 x 24
    for damaged in ("40 x 47", "30 x 20"):  # 40 rows would give a 20-row LR
        save_png(lr_path, lr, {**meta, KEY_SIZE: damaged})
        assert main(["upscale", str(lr_path), str(out), "--checkpoint", str(checkpoint)]) == 2
        err = capsys.readouterr().err
        assert f"size {damaged.replace(' ', '')} does not fit a 21x24 LR at x2" in err and "41..42 x 47..48" in err
        assert not out.exists()
    # the way out the message gives: --size
    assert main(["upscale", str(lr_path), str(out), "--checkpoint", str(checkpoint), "--size", "41x47"]) == 0
    assert load_image(out).shape == (41, 47, 3)


# --------------------------------------------------------------------------- one error boundary (item 6)


def test_unreadable_scale_chunk_without_checkpoint(tmp_path):
    lr = save_png(tmp_path / "lr.png", skimage.data.chelsea()[:20, :20], {KEY_SCALE: "x4?", KEY_SIZE: "40 x 40"})
    done = irn("upscale", lr, tmp_path / "out.png")
    assert_one_line_error(done, "lr.png", "irn:scale text chunk is 'x4?'", "pass --scale or --checkpoint")
    assert not (tmp_path / "out.png").exists()


def test_output_path_that_is_a_folder(tmp_path, checkpoint):
    photo = save_png(tmp_path / "a.png", skimage.data.chelsea()[:40, :48])
    (tmp_path / "out.png").mkdir()
    done = irn("downscale", photo, tmp_path / "out.png", "--checkpoint", checkpoint, "--device", "cpu")
    assert_one_line_error(done, "out.png: cannot write the output (Is a directory)")
    assert list((tmp_path / "out.png").iterdir()) == []
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_in_folder_mode_a_file_that_cannot_be_written_does_not_stop_the_others(tmp_path, checkpoint):
    folder, out = tmp_path / "in", tmp_path / "out"
    for name, img in (("a", skimage.data.chelsea()), ("b", skimage.data.coffee()), ("c", skimage.data.astronaut())):
        save_png(folder / f"{name}.png", img[:40, :48])
    (out / "b.png").mkdir(parents=True)  # in the way of b's output
    done = irn("downscale", folder, out, "--checkpoint", checkpoint, "--device", "cpu")
    assert_one_line_error(done, "1 of 3 images failed", "b.png: cannot write the output (Is a directory)")
    assert load_image(out / "a.png").shape == load_image(out / "c.png").shape == (20, 24, 3)
    assert f"-> {out / 'c.png'}" in done.stdout  # processed after the failure


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch without a usable GPU")
def test_cuda_device_on_a_cpu_only_torch(tmp_path, checkpoint):
    photo = save_png(tmp_path / "a.png", skimage.data.chelsea()[:40, :48])
    done = irn("downscale", photo, tmp_path / "lr.png", "--checkpoint", checkpoint, "--device", "cuda")
    assert_one_line_error(done, "--device cuda:", "use --device cpu")
    assert not (tmp_path / "lr.png").exists()
    done = irn("evaluate", "--scale", "2", "--checkpoint", checkpoint, "--device", "cuda", "--out", tmp_path / "t")
    assert_one_line_error(done, "--device cuda:")
    assert not (tmp_path / "t").exists()


def test_results_folder_that_cannot_be_created(tmp_path, capsys):
    (tmp_path / "file.txt").write_text("a file, not a folder")
    assert main(["reproduce", "--results", str(tmp_path / "file.txt" / "results")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("irn: error: --results") and "cannot write there" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


# --------------------------------------------------------------------------- read-only and full file systems


def _can_unshare() -> bool:
    if not shutil.which("unshare"):
        return False
    return (
        subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs tmpfs /mnt"], capture_output=True).returncode == 0
    )


needs_namespace = pytest.mark.skipif(
    not _can_unshare(), reason="needs `unshare -rm` (user and mount namespaces) to mount"
)


def in_namespace(mount: str, *args, after: str = "true") -> subprocess.CompletedProcess:
    """``irn args`` after shell commands ``mount``, in a private mount namespace that is gone afterwards.

    ``after`` runs in the namespace once ``irn`` has finished (its output is appended to stdout).
    """
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = " ".join(map(str, [sys.executable, "-m", "irnlib", *args]))
    script = f"set -e; {mount}; set +e; {command}; rc=$?; echo '--after--'; {after}; exit $rc"
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300, env=env)


@needs_namespace
def test_read_only_output_folder(tmp_path, checkpoint):
    folder, out = tmp_path / "in", tmp_path / "out"
    for name, img in (("a", skimage.data.chelsea()), ("b", skimage.data.coffee())):
        save_png(folder / f"{name}.png", img[:40, :48])
    out.mkdir()
    mount = f"mount --bind {out} {out}; mount -o remount,bind,ro {out}"
    done = in_namespace(mount, "downscale", folder, out, "--checkpoint", checkpoint, "--device", "cpu")
    assert_one_line_error(
        done, "2 of 2 images failed", "a.png: cannot write the output (Read-only file system)", "b.png: cannot write"
    )
    single = in_namespace(mount, "downscale", folder / "a.png", out / "a.png", "--checkpoint", checkpoint)
    assert_one_line_error(single, "a.png: cannot write the output (Read-only file system)")
    assert list(out.iterdir()) == []


@needs_namespace
def test_full_disk_keeps_the_previous_output_and_leaves_no_temporary(tmp_path, checkpoint):
    photo = save_png(tmp_path / "big.png", skimage.data.astronaut())  # its LR PNG is about 200 kB
    out = tmp_path / "out"
    out.mkdir()
    previous = "printf previous > {0}/lr.png".format(out)
    mount = f"mount -t tmpfs -o size=64k tmpfs {out}; {previous}"
    done = in_namespace(
        mount,
        "downscale",
        photo,
        out / "lr.png",
        "--checkpoint",
        checkpoint,
        "--device",
        "cpu",
        "--overwrite",  # the previous lr.png is not irn's: the user asks to replace it
        after=f"ls -a {out}; cat {out}/lr.png",
    )
    assert_one_line_error(done, "lr.png: cannot write the output (No space left on device)")
    # The full folder as it was inside the namespace: no temporary, the previous output intact.
    assert done.stdout.split("--after--")[1].split() == [".", "..", "lr.png", "previous"]


@needs_namespace
def test_reproduce_into_a_read_only_results_folder(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    mount = f"mount --bind {results} {results}; mount -o remount,bind,ro {results}"
    done = in_namespace(mount, "reproduce", "--results", results)
    assert_one_line_error(done, f"--results {results}: cannot write there (Read-only file system)")
    assert "notebook" not in done.stdout.lower()  # refused up front, before the pipeline starts


# --------------------------------------------------------------------------- kill -9 (item 7)


def test_kill_9_while_writing_leaves_a_temporary_that_the_next_run_removes(tmp_path, checkpoint):
    photo = save_png(tmp_path / "a.png", skimage.data.chelsea()[:40, :48])
    out, marker = tmp_path / "out", tmp_path / "writing"
    script = f"""
import time
from pathlib import Path
from PIL import Image
from irnlib.app.cli import main
def stalled_save(self, fp, *args, **kwargs):  # half the PNG is on disk when the process dies
    Path(fp).write_bytes(b"\\x89PNG half a file")
    Path({str(marker)!r}).touch()
    time.sleep(60)
Image.Image.save = stalled_save
main(["downscale", {str(photo)!r}, {str(out / "lr.png")!r}, "--checkpoint", {str(checkpoint)!r}, "--device", "cpu"])
"""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    kill_at_marker(proc, marker, 120, "writing process")
    left = [p.name for p in out.iterdir()]
    assert len(left) == 1 and left[0].startswith(f".lr.png.{proc.pid}-") and left[0].endswith(".tmp"), left
    assert not (out / "lr.png").exists()  # the output never appears half-written

    done = irn("downscale", photo, out / "other.png", "--checkpoint", checkpoint, "--device", "cpu")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == ["other.png"]  # the killed run's temporary is gone


# --------------------------------------------------------------------------- files the kit did not write (#28)


def test_an_output_never_replaces_a_file_irn_did_not_write_unless_asked(tmp_path, checkpoint, capsys):
    photo = save_png(tmp_path / "photo.png", skimage.data.chelsea()[:40, :48])
    lr = tmp_path / "photo_lr.png"
    assert main(["downscale", str(photo), str(lr), "--checkpoint", str(checkpoint)]) == 0
    assert main(["downscale", str(photo), str(lr), "--checkpoint", str(checkpoint)]) == 0  # its own output: replaced
    precious = save_png(tmp_path / "precious.png", skimage.data.astronaut()[:40, :48])
    before = snapshot(tmp_path)
    capsys.readouterr()
    assert main(["upscale", str(lr), str(precious), "--checkpoint", str(checkpoint)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("irn: error:") and "precious.png" in err and "--overwrite" in err and err.count("\n") == 1
    assert snapshot(tmp_path) == before
    assert main(["upscale", str(lr), str(precious), "--checkpoint", str(checkpoint), "--overwrite"]) == 0
    assert load_image(precious).shape == (40, 48, 3) and snapshot(tmp_path)["precious.png"] != before["precious.png"]


def test_upscaling_a_folder_back_into_its_originals_is_refused(tmp_path, checkpoint, capsys):
    """`irn downscale nest nest/lr; irn upscale nest/lr nest` would have replaced nest/ok.png."""
    nest = tmp_path / "nest"
    save_png(nest / "ok.png", skimage.data.chelsea()[:40, :48])
    assert main(["downscale", str(nest), str(nest / "lr"), "--checkpoint", str(checkpoint)]) == 0
    before = snapshot(nest)
    capsys.readouterr()
    assert main(["upscale", str(nest / "lr"), str(nest), "--checkpoint", str(checkpoint)]) == 2
    assert "ok.png: the output exists and was not written by irn" in capsys.readouterr().err
    assert snapshot(nest) == before


@pytest.mark.parametrize(
    "option, value, allowed",
    [
        ("--temperature", "nan", "0..10"),
        ("--temperature", "inf", "0..10"),
        ("--temperature", "-1", "0..10"),
        ("--seed", "1180591620717411303424", "0..9223372036854775807"),
        ("--seed", "-3", "0..9223372036854775807"),
        ("--seed", "x", "0..9223372036854775807"),
    ],
)
def test_out_of_range_upscale_values_are_refused_with_their_range(tmp_path, checkpoint, capsys, option, value, allowed):
    photo = save_png(tmp_path / "photo.png", skimage.data.chelsea()[:40, :48])
    lr = tmp_path / "lr.png"
    assert main(["downscale", str(photo), str(lr), "--checkpoint", str(checkpoint)]) == 0
    before = snapshot(tmp_path)
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(["upscale", str(lr), str(tmp_path / "up.png"), "--checkpoint", str(checkpoint), option, value])
    assert stop.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("irn upscale: error: argument") and option in err and allowed in err
    assert snapshot(tmp_path) == before  # no black image written


def test_draws_out_of_range_are_refused(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["evaluate", "--draws", "0"])
    assert stop.value.code == 2 and "use 1..100" in capsys.readouterr().err


def test_an_unknown_dataset_is_refused_before_any_work(tmp_path, checkpoint, capsys):
    out = tmp_path / "tables"
    code = main(["evaluate", "--scale", "2", "--checkpoint", str(checkpoint), "--datasets", "Nope", "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("irn: error: --datasets: unknown dataset 'Nope'") and "Set5" in err
    assert err.count("\n") == 1 and not out.exists()  # no empty table, no advice that fails
