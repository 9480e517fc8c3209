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
import irnlib.training.loop as training_loop
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
