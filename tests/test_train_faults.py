"""Training runs under faults (issue 14): the run folder's commit point after a real ``kill -9``,
an unreadable ``last.pt``, two trainings on one run folder, and the training error boundary."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

import irnlib.train as train_module
import irnlib.training.cli as training_cli
import irnlib.training.loop as training_loop
from irnlib.app.cli import main as irn_main
from irnlib.model.checkpoint import save_model
from irnlib.model.network import IRN
from irnlib.train import CheckpointUnreadable, SettingsError, make_config, train

TINY = dict(scale=2, patch_size=16, batch_size=2, val_images=1, val_crop=32, progress=False, num_workers=0)

# Runs `python -m irnlib.train` with a SIGKILL of itself right after it wrote `<kill_file>` at
# iteration `<kill_at>`: python -c KILLER <kill_file> <kill_at> <train arguments>.
KILLER = """
import os, signal, sys
import irnlib.train as T
import irnlib.training.state as S
kill_file, kill_at = sys.argv[1], int(sys.argv[2])
original = S._save_training_state
def save_then_die(path, *state):  # state: ..., iteration, config
    original(path, *state)
    if path.name == kill_file and state[-2] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
S._save_training_state = save_then_die
sys.exit(T.command(sys.argv[3:]))
"""


def tiny_config(tmp_path, **overrides):
    return make_config("smoke", runs_dir=str(tmp_path), **{**TINY, "block_num": [1], **overrides})


def train_args(tmp_path, run_name, iterations, *extra):
    fields = {**TINY, "block_num": 1, "iterations": iterations, "runs_dir": tmp_path, "run_name": run_name,
              "log_every": 1, "val_every": 100, "checkpoint_every": 2}  # fmt: skip
    return ["--profile", "smoke", *(f"{k}={v}" for k, v in fields.items()), *extra]


def env():
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def run_training(args, *, module="irnlib.train", environ=None, timeout=300):
    return subprocess.run([sys.executable, "-m", module, *args], env=environ or env(), capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def assert_one_line_error(done, prefix, *fragments, status=2):
    assert done.returncode == status, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(prefix) and "Traceback" not in done.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def model_weights(path):
    state = torch.load(path, weights_only=True)
    return state["model"] if "model" in state else state


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


# --------------------------------------------------------------------------------------
# 1. the commit point


def test_kill_right_after_the_final_last_pt_leaves_no_stale_export(tmp_path):
    args = train_args(tmp_path, "k", 4)
    killed = subprocess.run([sys.executable, "-c", KILLER, "last.pt", "4", *args], env=env(), capture_output=True,
                            text=True, timeout=300)  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    run_dir = tmp_path / "k"
    assert torch.load(run_dir / "checkpoints/last.pt", weights_only=True)["iteration"] == 4

    resumed = run_training(args)
    assert resumed.returncode == 0, resumed.stderr
    record = json.loads((run_dir / "provenance.json").read_text())
    assert record["status"] == "finished" and record["iterations_done"] == 4
    # The export is the model of last.pt (it was the iteration-2 model before the fix).
    assert_same_weights(model_weights(run_dir / "IRN_x2.pth"), model_weights(run_dir / "checkpoints/last.pt"))


def test_resume_replaces_an_export_older_than_last_pt(tmp_path):
    config = tiny_config(tmp_path, iterations=4, checkpoint_every=2, keep_every=2, run_name="old")
    run_dir = train(config)
    net = IRN(2, [1])
    net.load_state_dict(model_weights(run_dir / "checkpoints/iter_0000002.pt"))
    save_model(net, run_dir / "IRN_x2.pth")  # a folder left by an earlier version: export at 2, last.pt at 4

    train(config)
    assert_same_weights(model_weights(run_dir / "IRN_x2.pth"), model_weights(run_dir / "checkpoints/last.pt"))


# --------------------------------------------------------------------------------------
# 2. an unreadable last.pt


def test_corrupt_last_pt_gets_one_line_that_keeps_the_periodic_checkpoints(tmp_path):
    config = tiny_config(tmp_path, iterations=2, checkpoint_every=2, keep_every=2, run_name="c")
    run_dir = train(config)
    last, periodic = run_dir / "checkpoints/last.pt", run_dir / "checkpoints/iter_0000002.pt"
    last.write_bytes(last.read_bytes()[:1000])  # truncated
    kept = periodic.read_bytes()

    args = train_args(tmp_path, "c", 4, "keep_every=2")
    line = assert_one_line_error(run_training(args), "error: ", str(last), "iter_0000002.pt", f"cp {periodic} {last}",
                                 "--fresh", "DELETES")  # fmt: skip
    assert "resume=False" in line and "remove it" not in line
    assert periodic.read_bytes() == kept  # nothing was deleted
    assert_one_line_error(run_training(["train", *args], module="irnlib"), "irn: error: ", str(last), "--fresh")

    shutil.copyfile(periodic, last)  # the advice
    done = run_training(args)
    assert done.returncode == 0, done.stderr
    assert json.loads((run_dir / "provenance.json").read_text())["resumed_from"] == 2


def test_missing_last_pt_beside_periodic_checkpoints_wipes_nothing(tmp_path):
    config = tiny_config(tmp_path, iterations=2, checkpoint_every=2, keep_every=2, run_name="m")
    run_dir = train(config)
    (run_dir / "checkpoints/last.pt").unlink()  # what the old advice said to do
    with pytest.raises(CheckpointUnreadable, match=r"last.pt is missing.*iter_0000002.pt.*cp "):
        train(config)
    assert (run_dir / "checkpoints/iter_0000002.pt").is_file()


# --------------------------------------------------------------------------------------
# 3. one training per run folder


def test_a_second_training_on_a_busy_run_folder_fails_at_once_and_kill_9_frees_it(tmp_path):
    run_dir = tmp_path / "busy"
    first = subprocess.Popen([sys.executable, "-m", "irnlib.train", *train_args(tmp_path, "busy", 100_000)], env=env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not (run_dir / "checkpoints/last.pt").is_file():  # the first run holds the folder and has saved
            assert first.poll() is None, first.stderr.read()
            assert time.monotonic() < deadline, "the first run did not start"
            time.sleep(0.2)

        def saved_iteration():
            return torch.load(run_dir / "checkpoints/last.pt", weights_only=True)["iteration"]

        before = saved_iteration()
        # --fresh would delete the first run's checkpoints: it must be refused before that.
        second = run_training([*train_args(tmp_path, "busy", 4), "--fresh"])
        assert_one_line_error(second, "error: ", str(run_dir), f"pid {first.pid}", "another training")
        assert first.poll() is None and saved_iteration() >= before  # the first run's checkpoints were not wiped
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    # The OS released the dead run's lock: a new training may take the folder.
    third = run_training([*train_args(tmp_path, "busy", 2), "--fresh"])
    assert third.returncode == 0, third.stderr


def test_the_lock_names_its_holder(tmp_path):
    fd = train_module.lock_run_folder(tmp_path / "r")
    try:
        assert (tmp_path / "r" / train_module.LOCK_NAME).read_text().strip() == str(os.getpid())
        lock = "import sys, irnlib.train as T; T.lock_run_folder(__import__('pathlib').Path(sys.argv[1]))"
        probe = subprocess.run([sys.executable, "-c", lock, str(tmp_path / "r")], env=env(), capture_output=True,
                               text=True)  # fmt: skip
        assert probe.returncode != 0 and f"pid {os.getpid()}" in probe.stderr and "RunFolderBusy" in probe.stderr
    finally:
        os.close(fd)


# --------------------------------------------------------------------------------------
# 6. the training error boundary, and the thread policy


@pytest.mark.parametrize("value", ["-1", "0", "nan"])
def test_a_learning_rate_that_is_not_positive_is_refused(value):
    with pytest.raises(ValueError, match="lr must be > 0"):
        make_config("smoke", lr=float(value))
    done = run_training(["--profile", "smoke", f"lr={value}"])
    assert done.returncode == 2 and "lr must be > 0" in done.stderr and "Traceback" not in done.stderr


def test_resuming_with_changed_settings_is_one_line(tmp_path):
    train(tiny_config(tmp_path, iterations=2, checkpoint_every=2, run_name="s"))
    done = run_training(train_args(tmp_path, "s", 4, "lr=1e-3"))
    assert_one_line_error(done, "error: ", "cannot resume", "lr: 0.0005 -> 0.001", "--fresh")
    with pytest.raises(SettingsError, match="cannot resume"):  # still a ValueError for Python callers
        train(tiny_config(tmp_path, iterations=2, run_name="s", lr=1e-3))


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch without a usable GPU")
def test_cuda_device_without_a_gpu_is_one_line(tmp_path):
    done = run_training(["train", *train_args(tmp_path, "g", 2, "device=cuda")], module="irnlib")
    assert_one_line_error(done, "irn: error: device=cuda: ", "use device=cpu")
    assert not (tmp_path / "g").exists()


def test_malformed_irn_threads_is_one_line_for_python_m_irnlib_train(tmp_path):
    environ = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    done = run_training(train_args(tmp_path, "t", 2), environ={**environ, "IRN_THREADS": "lots"})
    assert_one_line_error(done, "error: IRN_THREADS='lots'")


def test_the_thread_policy_is_recorded_and_followed_every_step(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(training_loop, "adjust_threads", lambda: calls.append(1))
    run_dir = train(tiny_config(tmp_path, iterations=3, run_name="p"))
    record = json.loads((run_dir / "provenance.json").read_text())
    assert record["threads"].startswith(("OMP_NUM_THREADS", "IRN_THREADS", "auto"))
    assert len(calls) == 3


# --------------------------------------------------------------------------------------
# 7. bad settings, bad files and unwritable folders: one line, exit 2, nothing written (issue 21)


def command_error(capsys, args, *fragments, prefix="error: "):
    """Run ``python -m irnlib.train``'s :func:`command` in-process; assert one line, exit 2, no traceback."""
    status = training_cli.command(args, prefix=prefix.removesuffix(": "))
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert status == 2, err
    assert len(lines) == 1 and lines[0].startswith(prefix) and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.mark.parametrize(
    "extra, fragments",
    [
        (["val_images=0"], ["val_images must be None (all images) or a whole number >= 1, got 0"]),
        (["patch_size=0"], ["patch_size 0 must be a multiple of scale 2, at least 2"]),
        (["val_crop=-5"], ["val_crop must be None (whole images) or a whole number >= 22", "got -5"]),
        (["scale=4", "block_num=1,1", "val_crop=32"], ["val_crop must be", ">= 44 (11 x scale 4", "got 32"]),
        (["block_num=[]"], ["block_num must be None or 1 whole number(s) >= 1", "got []"]),
        (["block_num=0"], ["block_num must be", "got [0]"]),
        (["block_num=-1"], ["block_num must be", "got [-1]"]),
        (["iterations=1e999"], ["override 'iterations=1e999': expected a whole number"]),
        (["lr=inf"], ["lr must be > 0, a finite number, got inf"]),
        (["run_name=../escape"], ["run_name='../escape': it holds a path separator", "inside runs_dir"]),
        (["run_name=.."], ["run_name='..': it names no folder of its own"]),
        (["run_name=/tmp/abs"], ["run_name='/tmp/abs': it holds a path separator"]),
    ],
)
def test_settings_out_of_range_are_one_line_and_write_nothing(tmp_path, capsys, extra, fragments):
    command_error(capsys, train_args(tmp_path / "runs", "r", 2, *extra), *fragments)
    assert not (tmp_path / "runs").exists() and not (tmp_path / "escape").exists()


def test_a_run_name_is_one_plain_folder_name_in_python_too(tmp_path):
    for name in ("../escape", "a/b", "..", ".", "", " x", "a\0b"):
        with pytest.raises(SettingsError, match="run_name="):
            tiny_config(tmp_path, run_name=name)
    assert tiny_config(tmp_path, run_name="ok-1.x").run_dir == tmp_path / "ok-1.x"


def test_an_unknown_dataset_lists_the_known_ones(tmp_path, capsys):
    line = command_error(capsys, train_args(tmp_path, "d", 2, "train_set=Nope"), "train_set=Nope: ",
                         "unknown dataset 'Nope'", "known: ", "datasets present here: embedded-train")  # fmt: skip
    assert "DIV2K_train_HR" in line
    command_error(capsys, train_args(tmp_path, "d", 2, "val_set=Nope"), "val_set=Nope: ", "unknown dataset")
    assert irn_main(["train", *train_args(tmp_path, "d", 2, "train_set=Nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("irn: error: train_set=Nope: ") and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "d").exists()


def test_a_bad_init_from_file_is_one_line_and_leaves_no_empty_run_folder(tmp_path, capsys):
    not_weights, nan = tmp_path / "notes.pth", tmp_path / "nan.pth"
    not_weights.write_text("not weights\n")
    net = IRN(2, [1])
    with torch.no_grad():
        next(net.parameters()).fill_(float("nan"))
    save_model(net, nan)
    cases = [(tmp_path / "missing.pth", "checkpoint file not found"), (not_weights, ""),
             (nan, "NaN")]  # fmt: skip
    for path, fragment in cases:
        runs = tmp_path / "runs"
        command_error(capsys, train_args(runs, "i", 2, f"init_from={path}"), f"init_from={path}: ", fragment)
        assert not runs.exists()  # the run folder (and runs_dir) it made are gone again


def test_a_failed_run_keeps_a_folder_holding_earlier_work(tmp_path, capsys):
    run_dir = train(tiny_config(tmp_path, iterations=2, checkpoint_every=2, run_name="w"))
    before = sorted(p.name for p in run_dir.rglob("*"))
    command_error(capsys, train_args(tmp_path, "w", 2, f"init_from={tmp_path / 'missing.pth'}", "--fresh"),
                  "checkpoint file not found")  # fmt: skip
    assert sorted(p.name for p in run_dir.rglob("*")) == before  # --fresh wiped nothing before the refusal


def test_resuming_with_fewer_iterations_than_done_is_one_line(tmp_path, capsys):
    run_dir = train(tiny_config(tmp_path, iterations=2, checkpoint_every=2, run_name="f"))
    kept = (run_dir / "checkpoints/last.pt").read_bytes()
    command_error(capsys, train_args(tmp_path, "f", 1), "last.pt is at iteration 2, beyond the requested iterations=1",
                  "iterations=2 or more")  # fmt: skip
    assert (run_dir / "checkpoints/last.pt").read_bytes() == kept


def test_last_pt_that_is_not_a_training_state_is_one_line(tmp_path, capsys):
    run_dir = train(tiny_config(tmp_path, iterations=2, checkpoint_every=2, run_name="x"))
    last = run_dir / "checkpoints/last.pt"
    saved = torch.load(last, weights_only=True)
    shutil.copyfile(run_dir / "IRN_x2.pth", last)  # an exported model copied over last.pt
    command_error(capsys, train_args(tmp_path, "x", 4), f"{last}: cannot read the training checkpoint: it holds "
                  "weights alone", "init_from=", "--fresh")  # fmt: skip
    torch.save({**saved, "iteration": -5}, last)
    command_error(capsys, train_args(tmp_path, "x", 4), "its iteration -5 is not a number of iterations done")
    torch.save({"iteration": 3}, last)
    command_error(capsys, train_args(tmp_path, "x", 4), "it is not a training state (it lacks model, optimizer")


class NotWeights:  # pickled into a last.pt: the safe loader refuses it
    pass


def test_the_corrupt_last_pt_message_holds_only_the_kits_words(tmp_path, capsys):
    run_dir = train(tiny_config(tmp_path, iterations=2, checkpoint_every=2, run_name="t"))
    last = run_dir / "checkpoints/last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    line = command_error(capsys, train_args(tmp_path, "t", 4), "the file is truncated, corrupt or not a PyTorch file")
    assert "PytorchStreamReader" not in line and "RuntimeError" not in line
    torch.save({"iteration": NotWeights()}, last)
    line = command_error(capsys, train_args(tmp_path, "t", 4), "it holds Python objects that are not a training state")
    assert "weights_only" not in line.replace("Weights only", "weights_only") and "UnpicklingError" not in line


def _can_unshare() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs tmpfs /mnt"], capture_output=True)
    return probe.returncode == 0


needs_namespace = pytest.mark.skipif(not _can_unshare(), reason="needs `unshare -rm` to mount")


def in_namespace(mount, args, after="true"):
    """``python -m irnlib.train args`` after ``mount``, in a private mount namespace."""
    command = " ".join(map(str, [sys.executable, "-m", "irnlib.train", *args]))
    script = f"set -e; {mount}; set +e; {command}; rc=$?; echo '--after--'; {after}; exit $rc"
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300,
                          env=env())  # fmt: skip


@needs_namespace
def test_read_only_runs_dir_or_run_folder_is_one_line(tmp_path):
    runs = tmp_path / "runs"
    (runs / "old").mkdir(parents=True)
    mount = f"mount --bind {runs} {runs}; mount -o remount,bind,ro {runs}"
    done = in_namespace(mount, train_args(runs, "new", 2))
    assert_one_line_error(done, "error: ", f"{runs / 'new'}: cannot write the run folder", "Read-only file system",
                          "runs_dir=")  # fmt: skip
    done = in_namespace(mount, train_args(runs, "old", 2))
    assert_one_line_error(done, "error: ", f"{runs / 'old'}: cannot write the run folder", "Read-only file system")
    assert sorted(p.name for p in runs.iterdir()) == ["old"] and not any((runs / "old").iterdir())


@needs_namespace
def test_a_full_disk_during_a_save_is_one_line_with_free_space_advice(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    mount = f"mount -t tmpfs -o size=64k tmpfs {runs}"
    done = in_namespace(mount, train_args(runs, "full", 2), after=f"ls -a {runs / 'full'}")
    assert_one_line_error(done, "error: ", f"{runs / 'full'}: cannot write the run's files (No space left on device",
                          "MB free", "Free space on that disk", "runs_dir=")  # fmt: skip
    assert ".tmp" not in done.stdout.split("--after--")[1]  # no temporary left behind
