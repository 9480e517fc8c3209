"""Whole training runs: run folder, resume after a real kill, DDP with gloo, NaN handling."""

import csv
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import irnlib.training.loop as training_loop
from irnlib import load_checkpoint
from irnlib.data.folders import list_images
from irnlib.data.patches import TrainingPatches
from irnlib.model.network import IRN
from irnlib.runtime.paths import sha256_file
from irnlib.train import (
    IRNObjective,
    IterationBatches,
    TrainingDiverged,
    TrainingSamples,
    make_config,
    train,
    validate,
    validation_pairs,
)

# A run that takes well under a second per iteration on a 2-core CPU.
TINY = dict(scale=2, patch_size=16, batch_size=2, val_images=1, val_crop=32, progress=False)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def tiny_config(tmp_path, **overrides):
    return make_config("smoke", runs_dir=str(tmp_path), **{**TINY, "block_num": [1], **overrides})


def test_run_folder_contents(tmp_path):
    config = tiny_config(tmp_path, iterations=4, log_every=2, val_every=2, checkpoint_every=2, keep_every=4,
                         run_name="r", lr_milestones=(2,))  # fmt: skip
    run_dir = train(config)
    assert run_dir == tmp_path / "r"
    names = {p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*")}
    assert {"config.json", "provenance.json", "train_log.csv", "val_log.csv", "training_curves.png",
            "IRN_x2.pth", "checkpoints/last.pt", "checkpoints/iter_0000004.pt"} <= names  # fmt: skip
    assert not [n for n in names if n.endswith(".tmp")]
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["iterations"] == 4 and saved["lambda_forw"] == 4.0 and saved["block_num"] == [1]
    log = read_csv(run_dir / "train_log.csv")
    assert [r["iteration"] for r in log] == ["2", "4"]
    assert set(log[0]) == {"iteration", "loss", "l_forw", "l_back", "l_distr", "l_stress", "l_range", "l_grid",
                           "grad_norm", "lr", "s_per_it", "samples_per_s", "data_share"}  # fmt: skip
    assert [float(r["lr"]) for r in log] == [5e-4, 2.5e-4]  # the rate used by steps 2 and 4
    row = log[-1]
    assert float(row["loss"]) == pytest.approx(
        sum(float(row[k]) for k in ("l_forw", "l_back", "l_distr", "l_stress", "l_range")), rel=1e-5
    )
    val = read_csv(run_dir / "val_log.csv")
    assert [r["iteration"] for r in val] == ["0", "2", "4"]
    assert all(float(r["psnr_y"]) > 0 and float(r["lr_psnr_y"]) > 0 for r in val)
    record = json.loads((run_dir / "provenance.json").read_text())
    assert record["status"] == "finished" and record["iterations_done"] == 4 and record["commit"]
    assert record["validation_last"]["iteration"] == 4 and record["validation_last"]["psnr_y"] == float(
        val[-1]["psnr_y"]
    )
    # The export is the official format; the training checkpoint holds everything to resume.
    exported = load_checkpoint(run_dir / "IRN_x2.pth")
    state = torch.load(run_dir / "checkpoints/last.pt", weights_only=True)
    assert set(state) >= {"model", "optimizer", "scheduler", "iteration", "rng", "config"}
    assert state["iteration"] == 4
    for key, value in exported.state_dict().items():
        assert torch.equal(value, state["model"][key])
    # Resuming a finished run changes nothing; a mathematically different run is refused.
    before = (run_dir / "train_log.csv").read_text()
    train(config)
    assert (run_dir / "train_log.csv").read_text() == before
    with pytest.raises(ValueError, match=r"different settings \(lr: 0.0005 -> 0.0001\)"):
        train(tiny_config(tmp_path, iterations=6, run_name="r", lr=1e-4, lr_milestones=(2,)))
    # ... and resume=False starts afresh.
    train(tiny_config(tmp_path, iterations=2, log_every=1, run_name="r", keep_every=0), resume=False)
    assert [r["iteration"] for r in read_csv(run_dir / "train_log.csv")] == ["1", "2"]
    assert not (run_dir / "checkpoints/iter_0000004.pt").exists()


def test_unreadable_checkpoint_is_reported(tmp_path):
    config = tiny_config(tmp_path, iterations=1, run_name="bad")
    last = config.run_dir / "checkpoints" / "last.pt"
    last.parent.mkdir(parents=True)
    last.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(RuntimeError, match="last.pt: cannot read the training checkpoint"):
        train(config)


def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    real_forward = IRNObjective.forward
    calls = []

    def forward_that_fails_at_the_third_step(
        self, hr, lr_ref, z_prime, back_weight=None, distr_weight=None, distr_factor=1.0
    ):
        calls.append(1)
        terms = real_forward(self, hr, lr_ref, z_prime, back_weight, distr_weight, distr_factor)
        if len(calls) == 3:
            terms["l_back"] = terms["l_back"] * float("nan")
        return terms

    monkeypatch.setattr(IRNObjective, "forward", forward_that_fails_at_the_third_step)
    config = tiny_config(tmp_path, iterations=6, checkpoint_every=2, run_name="nan")
    with pytest.raises(
        TrainingDiverged, match=r"diverged at iteration 3: .*'l_back': nan.*last good checkpoint .*last.pt"
    ):
        train(config)
    state = torch.load(config.run_dir / "checkpoints/last.pt", weights_only=True)
    assert state["iteration"] == 2
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    record = json.loads((config.run_dir / "provenance.json").read_text())
    assert record["status"] == "diverged" and record["diverged_at"] == 3


def _cli(run_name, tmp_path, iterations, extra=()):
    args = [f"{k}={v}" for k, v in TINY.items()] + [
        f"iterations={iterations}", f"runs_dir={tmp_path}", f"run_name={run_name}",
        "log_every=1", "val_every=5", "checkpoint_every=2", *extra,
    ]  # fmt: skip
    return [sys.executable, "-m", "irnlib.train", "--profile", "smoke", *args]


def _weights(path):
    return torch.load(path, weights_only=True)


@pytest.mark.slow
def test_resume_after_kill_is_bit_identical(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    iterations = 24
    # The uninterrupted run.
    subprocess.run(_cli("straight", tmp_path, iterations), check=True, env=env, capture_output=True)

    # The same run, killed with SIGKILL while it writes a checkpoint (after the first one).
    proc = subprocess.Popen(
        _cli("killed", tmp_path, iterations), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    ckpt_dir = tmp_path / "killed" / "checkpoints"
    deadline, mid_save = time.monotonic() + 300, False
    while time.monotonic() < deadline and proc.poll() is None:
        if (ckpt_dir / "last.pt").is_file():
            temporaries = [p for p in ckpt_dir.iterdir() if p.name.endswith(".tmp")] if ckpt_dir.is_dir() else []
            if temporaries:
                proc.send_signal(signal.SIGKILL)
                mid_save = True
                break
        time.sleep(0.0005)
    if not mid_save and proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = torch.load(ckpt_dir / "last.pt", weights_only=True)["iteration"]
    assert 0 < killed_at < iterations

    # Restarting it continues from the last checkpoint, cleans up, and ends bit-identical.
    subprocess.run(_cli("killed", tmp_path, iterations), check=True, env=env, capture_output=True)
    assert not [p for p in ckpt_dir.iterdir() if p.name.endswith(".tmp")]
    straight, resumed = _weights(tmp_path / "straight/IRN_x2.pth"), _weights(tmp_path / "killed/IRN_x2.pth")
    assert straight.keys() == resumed.keys()
    for key in straight:
        assert torch.equal(straight[key], resumed[key]), key
    a = _weights(tmp_path / "straight/checkpoints/last.pt")
    b = _weights(tmp_path / "killed/checkpoints/last.pt")
    assert a["iteration"] == b["iteration"] == iterations
    for (ka, va), (kb, vb) in zip(a["optimizer"]["state"].items(), b["optimizer"]["state"].items()):
        assert torch.equal(va["exp_avg_sq"], vb["exp_avg_sq"])
    # The log holds every iteration once, with the same losses as the uninterrupted run.
    log_a, log_b = read_csv(tmp_path / "straight/train_log.csv"), read_csv(tmp_path / "killed/train_log.csv")
    assert [r["iteration"] for r in log_b] == [str(i) for i in range(1, iterations + 1)]
    assert [r["loss"] for r in log_a] == [r["loss"] for r in log_b]
    assert read_csv(tmp_path / "straight/val_log.csv") == read_csv(tmp_path / "killed/val_log.csv")
    print(f"killed {'mid-save' if mid_save else 'between saves'} with last.pt at iteration {killed_at}")


def _ddp_gradients(rank, world, init_file, out_dir):
    """One process of the gloo test: the DDP-averaged gradient of its slice of a global batch."""
    torch.set_num_threads(1)
    if world > 1:
        dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    torch.manual_seed(0)
    net = IRN(2, block_num=[2])
    with torch.no_grad():  # a network part-way through training: every gradient is informative
        for name, p in net.named_parameters():
            if name.endswith("conv5.weight"):
                p.normal_(0, 0.02)
    objective = IRNObjective(net, make_config("paper", scale=2))
    model = torch.nn.parallel.DistributedDataParallel(objective) if world > 1 else objective
    samples = TrainingSamples(TrainingPatches(list_images("embedded-train"), 2, 16, seed=0), 2, seed=0)
    (indices,) = IterationBatches(5, 6, batch_size=4, rank=rank, world=world)  # iteration 5
    hr, lr_ref, z_prime, _, _ = (torch.stack(parts) for parts in zip(*(samples[k] for k in indices)))
    terms = model(hr, lr_ref, z_prime)
    (terms["l_forw"] + terms["l_back"] + terms["l_distr"]).backward()
    if rank == 0:
        torch.save({n: p.grad for n, p in net.named_parameters()}, Path(out_dir) / f"grads_{world}.pt")
    if world > 1:
        dist.barrier()  # as train() does: a rank that tears gloo down while its peer is still busy can abort
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_gradient_of_two_half_batches_is_the_full_batch_gradient(tmp_path):
    _ddp_gradients(0, 1, None, tmp_path)
    mp.spawn(_ddp_gradients, args=(2, tmp_path / "init", tmp_path), nprocs=2, join=True)
    one, two = torch.load(tmp_path / "grads_1.pt"), torch.load(tmp_path / "grads_2.pt")
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=1e-4, atol=1e-5 * one[key].abs().max().item(), msg=key)


@pytest.mark.slow
def test_two_process_ddp_run_matches_one_process(tmp_path):
    """``torchrun`` with 2 gloo processes of batch 2 against 1 process of batch 4, 3 steps.

    Losses and gradient norms agree to rounding. The weights agree to within what Adam makes
    of rounding: it divides each gradient element by its own magnitude, so an element whose
    gradient is at rounding level (right after the zero-initialised conv5 layers) may move by
    up to ``lr`` per step either way; we bound every element by that and most by 1e-5.
    """
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    steps, lr = 3, 2e-4
    single = _cli("single", tmp_path, steps, ["batch_size=4", "val_every=100", f"lr={lr}"])
    subprocess.run(single, check=True, env=env, capture_output=True)
    ddp = [torchrun, "--standalone", "--nproc_per_node=2", *single[1:]]  # -m irnlib.train ...
    ddp[ddp.index("run_name=single")] = "run_name=ddp"
    result = subprocess.run(ddp, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((tmp_path / "ddp/config.json").read_text())["batch_size"] == 4
    assert json.loads((tmp_path / "ddp/provenance.json").read_text())["processes"] == 2
    log_one, log_two = read_csv(tmp_path / "single/train_log.csv"), read_csv(tmp_path / "ddp/train_log.csv")
    assert len(log_one) == len(log_two) == steps
    for a, b in zip(log_one, log_two):
        # Step 1 starts from the same weights: only the batch split differs. Later steps start
        # from weights that differ as described above.
        first = a["iteration"] == "1"
        assert float(b["grad_norm"]) == pytest.approx(float(a["grad_norm"]), rel=1e-5 if first else 1e-3)
        for column in ("loss", "l_forw", "l_back", "l_distr"):  # to 1e-5 of the total loss
            assert float(b[column]) == pytest.approx(float(a[column]), abs=1e-5 * float(a["loss"])), (
                a["iteration"],
                column,
            )
    one, two = _weights(tmp_path / "single/IRN_x2.pth"), _weights(tmp_path / "ddp/IRN_x2.pth")
    diff = torch.cat([(two[k] - one[k]).abs().flatten() for k in one])
    assert diff.max() <= 2 * lr * steps
    assert (diff > 1e-5).float().mean() < 0.05
    assert len(read_csv(tmp_path / "ddp/val_log.csv")) == 2  # only rank 0 wrote (iterations 0 and 3)


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
@pytest.mark.filterwarnings("ignore:Detected call of `lr_scheduler")  # fp16: the scaler may skip a step
def test_autocast_runs_on_cpu(tmp_path, amp):
    run_dir = train(tiny_config(tmp_path, iterations=2, log_every=1, run_name=amp, amp=amp))
    losses = [float(r["loss"]) for r in read_csv(run_dir / "train_log.csv")]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    assert load_checkpoint(run_dir / "IRN_x2.pth").scale == 2


def test_trains_on_t91_and_validates_on_set5(tmp_path, shared_data):
    config = tiny_config(
        tmp_path, iterations=2, train_set="T91", val_set="Set5", data_root=str(shared_data), run_name="t91"
    )
    run_dir = train(config)
    assert [r["iteration"] for r in read_csv(run_dir / "val_log.csv")] == ["0", "2"]
    record = json.loads((run_dir / "provenance.json").read_text())
    assert record["data"] == "T91" and record["validation"] == "Set5"


def test_a_resumed_run_keeps_where_it_started(tmp_path):
    config = tiny_config(tmp_path, iterations=2, checkpoint_every=2, run_name="r")
    run_dir = train(config)
    first = json.loads((run_dir / "provenance.json").read_text())
    first["commit"], first["date"] = "0123456789ab", "2026-01-01 00:00 UTC"  # as if begun in an earlier session
    (run_dir / "provenance.json").write_text(json.dumps(first))
    train(tiny_config(tmp_path, iterations=4, checkpoint_every=2, run_name="r"))
    record = json.loads((run_dir / "provenance.json").read_text())
    assert record["resumed_from"] == 2 and record["iterations_done"] == 4
    assert record["started"] == {"commit": "0123456789ab", "date": "2026-01-01 00:00 UTC", "device": first["device"]}
    assert record["commit"] != "0123456789ab"


def test_a_schedule_not_yet_used_may_change_on_resume(tmp_path, monkeypatch, one_thread):
    # Decided after 2 steps: decay at step 3. The resumed run equals a fresh run with that schedule
    # (bit for bit at a fixed thread count: the thread policy must not follow the load meanwhile).
    monkeypatch.setattr(training_loop, "adjust_threads", lambda *args, **kwargs: None)
    train(tiny_config(tmp_path, iterations=2, checkpoint_every=2, run_name="later", lr_milestones=(100,)))
    resumed = train(tiny_config(tmp_path, iterations=4, checkpoint_every=2, run_name="later", lr_milestones=(3,)))
    fresh = train(tiny_config(tmp_path, iterations=4, checkpoint_every=2, run_name="fresh", lr_milestones=(3,)))
    a, b = load_checkpoint(resumed / "IRN_x2.pth").state_dict(), load_checkpoint(fresh / "IRN_x2.pth").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [float(r["lr"]) for r in read_csv(resumed / "train_log.csv")][-1] == 2.5e-4
    # A milestone that has already been passed (or a new one in the past) is a different run.
    with pytest.raises(ValueError, match=r"different settings \(lr_milestones: \[3\] -> \[1\]\)"):
        train(tiny_config(tmp_path, iterations=6, run_name="later", lr_milestones=(1,)))


def test_init_from_starts_from_an_exported_models_weights(tmp_path, one_thread):
    first = train(tiny_config(tmp_path, iterations=2, checkpoint_every=2, run_name="first"))
    source = first / "IRN_x2.pth"
    second = train(tiny_config(tmp_path, iterations=0, run_name="second", init_from=str(source)))
    a, b = load_checkpoint(source).state_dict(), load_checkpoint(second / "IRN_x2.pth").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)  # no step taken: the weights it started from
    assert read_csv(second / "val_log.csv")[0]["psnr_y"] == read_csv(first / "val_log.csv")[-1]["psnr_y"]
    record = json.loads((second / "provenance.json").read_text())
    assert record["init_from"] == {"file": str(source), "sha256": sha256_file(source)}
    # Resumed after the file it started from has changed: the record keeps what it started from.
    train(tiny_config(tmp_path, iterations=2, checkpoint_every=2, run_name="second", init_from=str(source)))
    torch.save({k: v + 1 for k, v in a.items()}, source)
    train(tiny_config(tmp_path, iterations=3, checkpoint_every=3, run_name="second", init_from=str(source)))
    assert json.loads((second / "provenance.json").read_text())["init_from"] == record["init_from"]
    # The weights are part of the run's mathematics: another start is another run.
    with pytest.raises(ValueError, match="init_from"):
        train(tiny_config(tmp_path, iterations=2, run_name="second", init_from=None))
    with pytest.raises(ValueError, match=r"init_from=.*an IRN x2 whose blocks differ"):
        train(tiny_config(tmp_path, iterations=1, run_name="third", init_from=str(source), block_num=[2]))


def test_init_from_a_smaller_scale_starts_the_first_levels(tmp_path, one_thread):
    x2 = train(tiny_config(tmp_path, iterations=2, checkpoint_every=2, run_name="x2")) / "IRN_x2.pth"
    fresh = train(tiny_config(tmp_path, iterations=0, scale=4, block_num=[1, 1], val_crop=48, run_name="fresh"))
    grown = train(
        tiny_config(tmp_path, iterations=0, scale=4, block_num=[1, 1], val_crop=48, run_name="grown", init_from=str(x2))
    )
    small, before = load_checkpoint(x2).state_dict(), load_checkpoint(fresh / "IRN_x4.pth").state_dict()
    after = load_checkpoint(grown / "IRN_x4.pth").state_dict()
    assert small.keys() < after.keys()
    assert all(torch.equal(after[k], small[k]) for k in small)  # the x2's level is the first level
    assert all(torch.equal(after[k], before[k]) for k in after.keys() - small.keys())  # the rest as initialised
    assert any(not torch.equal(small[k], before[k]) for k in small)  # (so the check above means something)
    # The smaller model's blocks must be the first level's exactly.
    with pytest.raises(ValueError, match=r"init_from=.*an IRN x2 whose blocks differ"):
        train(
            tiny_config(
                tmp_path, iterations=0, scale=4, block_num=[2, 1], val_crop=48, run_name="other", init_from=str(x2)
            )
        )


def test_the_weight_average_is_validated_and_exported_and_changes_no_step(tmp_path, one_thread):
    d = 0.5
    plain = train(tiny_config(tmp_path, iterations=3, run_name="plain"))
    averaged = train(tiny_config(tmp_path, iterations=3, run_name="ema", ema_decay=d))
    # The same run again in steps of one iteration (resumed twice), keeping each step's weights.
    weights = []
    for done in (1, 2, 3):
        chunked = train(tiny_config(tmp_path, iterations=done, run_name="chunked", ema_decay=d))
        weights.append(torch.load(chunked / "checkpoints/last.pt", weights_only=True))
    raw = torch.load(plain / "checkpoints/last.pt", weights_only=True)
    kept = torch.load(averaged / "checkpoints/last.pt", weights_only=True)
    assert raw["average"] is None and int(kept["average"]["n_averaged"]) == 3
    w1, w2, w3 = (w["model"] for w in weights)
    for key, value in raw["model"].items():
        assert torch.equal(kept["model"][key], value)  # the average changes no step
        assert torch.equal(weights[-1]["average"][f"module.{key}"], kept["average"][f"module.{key}"])  # resumes exactly
        if value.is_floating_point() and "haar" not in key:  # parameters; the Haar filters are constants
            by_hand = d * (d * w1[key] + (1 - d) * w2[key]) + (1 - d) * w3[key]  # the first step's weights, then d
            torch.testing.assert_close(kept["average"][f"module.{key}"], by_hand)
    moved = [k for k in w3 if "haar" not in k and not torch.equal(w3[k], kept["average"][f"module.{k}"])]
    assert moved  # the average is not the last weights
    # What the run exports, what loading its last.pt gives, and what it validated is the average.
    exported = load_checkpoint(averaged / "IRN_x2.pth").state_dict()
    from_last = load_checkpoint(averaged / "checkpoints/last.pt").state_dict()
    for key, value in exported.items():
        assert torch.equal(value, kept["average"][f"module.{key}"]) and torch.equal(from_last[key], value)
    config = tiny_config(tmp_path, iterations=3, run_name="ema", ema_decay=d)
    measured = validate(load_checkpoint(averaged / "IRN_x2.pth"), validation_pairs(config), config.seed)
    assert float(read_csv(averaged / "val_log.csv")[-1]["psnr_y"]) == pytest.approx(measured["psnr_y"], abs=1e-4)
    assert read_csv(averaged / "val_log.csv")[-1]["psnr_y"] != read_csv(plain / "val_log.csv")[-1]["psnr_y"]
    # A run that starts from a model's weights validates and exports them until its first step.
    started = train(
        tiny_config(tmp_path, iterations=0, run_name="from", ema_decay=d, init_from=str(averaged / "IRN_x2.pth"))
    )
    again = load_checkpoint(started / "IRN_x2.pth").state_dict()
    assert all(torch.equal(again[k], v) for k, v in exported.items())
    # The average is part of the run's mathematics (it is what the run exports).
    with pytest.raises(ValueError, match=r"different settings \(ema_decay: 0.5 -> 0.0\)"):
        train(tiny_config(tmp_path, iterations=4, run_name="ema"))
    with pytest.raises(ValueError, match=r"ema_decay must be in \[0, 1\)"):
        tiny_config(tmp_path, ema_decay=1.0)


def test_the_distr_curriculum_is_applied_by_step_and_is_part_of_the_run(tmp_path, one_thread):
    run = train(tiny_config(tmp_path, iterations=4, log_every=1, distr_off_iterations=2, distr_ramp_iterations=2))
    l_distr = [float(row["l_distr"]) for row in read_csv(run / "train_log.csv")]
    assert l_distr[:2] == [0, 0] and all(v > 0 for v in l_distr[2:])
    # Resumed in one-step chunks, the same run reaches the same weights: the factor is the step's.
    for done in (1, 2, 3, 4):
        chunked = train(
            tiny_config(
                tmp_path,
                iterations=done,
                run_name="chunked",
                log_every=1,
                distr_off_iterations=2,
                distr_ramp_iterations=2,
            )
        )
    a, b = (torch.load(r / "checkpoints/last.pt", weights_only=True)["model"] for r in (run, chunked))
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(
        ValueError, match=r"different settings \(distr_off_iterations: 2 -> 0, distr_ramp_iterations: 2 -> 0\)"
    ):
        train(tiny_config(tmp_path, iterations=5))
