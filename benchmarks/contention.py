"""Two trainings at once: smoke training step time alone, side by side, and side by side with
the kit's thread policy (``irnlib.runtime.threads``); prints a Markdown table.

A step is the smoke profile's (×4, batch 4, patch 48, channels_last, the tuned allocator):
``irnlib.train.IRNObjective``, backward, gradient clipping and Adam on random tensors, as in
``train_step.py``. Every process is fresh and starts without ``OMP_NUM_THREADS`` or
``IRN_THREADS``. Cases:

- **(a) alone, default threads**: one process, torch's default thread count;
- **(b) two at once, default threads**: two identical processes started together;
- **(c) two at once, thread policy**: the same, each calling ``apply_thread_policy()`` at
  start and ``adjust_threads()`` after every step, as the training loop does;
- **(d) alone, thread policy**: what the policy costs when nothing else runs.

A case still running after ``--case-timeout`` seconds is stopped and reported as such (two
processes with spinning OpenMP threads on too few cores can take minutes per step).

Each process runs one warm-up step, then ``--steps`` timed steps; the table gives each
process's median step time, its threads at start → at the end, and the ratio to (a).

Usage::

    python benchmarks/contention.py                 # 5 steps per process
    python benchmarks/contention.py --steps 3 --cases a c
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# Every process starts without thread settings: the parent's torch then reports its default, and
# a case's workers (started with clean_env) set their own.
for _key in ("OMP_NUM_THREADS", "IRN_THREADS"):
    os.environ.pop(_key, None)

import torch  # noqa: E402

from irnlib.model.network import IRN  # noqa: E402
from irnlib.runtime.provenance import device_name  # noqa: E402
from irnlib.runtime.threads import adjust_threads, apply_thread_policy, tune_cpu_allocator  # noqa: E402
from irnlib.train import IRNObjective, make_config  # noqa: E402

CASES = {  # name: (label, processes, policy)
    "a": ("(a) alone, default threads", 1, False),
    "b": ("(b) two at once, default threads", 2, False),
    "c": ("(c) two at once, thread policy", 2, True),
    "d": ("(d) alone, thread policy", 1, True),  # the policy's cost on an idle machine (should be none)
}
SCALE, BATCH, PATCH = 4, 4, 48  # the smoke profile's step


def worker(policy: bool, steps: int, interval: float) -> dict:
    """Time ``steps`` training steps after a warm-up step; runs inside the subprocess."""
    reason = apply_thread_policy().reason if policy else f"torch default: {torch.get_num_threads()} threads"
    start_threads = torch.get_num_threads()
    config = make_config("smoke", scale=SCALE, batch_size=BATCH, patch_size=PATCH)
    if config.tune_allocator:
        tune_cpu_allocator()
    torch.manual_seed(0)
    net = IRN(SCALE)
    with torch.no_grad():  # conv5 is zero at init: random weights give every gradient a value
        for name, p in net.named_parameters():
            if name.endswith("conv5.weight"):
                p.normal_(0, 0.01)
    layout = torch.channels_last if config.channels_last else torch.contiguous_format
    net = net.to(memory_format=layout)
    objective = IRNObjective(net, config)
    optimizer = torch.optim.Adam(net.parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay)
    lr_size = PATCH // SCALE
    hr = torch.rand(BATCH, 3, PATCH, PATCH).contiguous(memory_format=layout)
    lr_ref = torch.rand(BATCH, 3, lr_size, lr_size)
    z_prime = torch.randn(BATCH, 3 * SCALE * SCALE - 3, lr_size, lr_size)

    def step() -> float:
        begin = time.perf_counter()
        terms = objective(hr, lr_ref, z_prime)
        loss = terms["l_forw"] + terms["l_back"] + terms["l_distr"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
        optimizer.step()
        seconds = time.perf_counter() - begin
        if policy:
            adjust_threads(interval)
        return seconds

    warmup = step()
    times = [step() for _ in range(steps)]
    return {"warmup": warmup, "times": times, "threads": [start_threads, torch.get_num_threads()], "reason": reason}


def clean_env() -> dict:
    """The environment of a case's processes: no thread settings, so each case sets its own."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "IRN_THREADS", "MKL_NUM_THREADS")}
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [os.path.dirname(os.path.dirname(os.path.abspath(__file__))), env.get("PYTHONPATH")])
    )
    return env


def run_case(case: str, steps: int, interval: float, timeout: float) -> list[dict] | None:
    """Start the case's processes together and collect their results (None: stopped at ``timeout``)."""
    _, processes, policy = CASES[case]
    command = [
        sys.executable,
        __file__,
        "--worker",
        "policy" if policy else "default",
        "--steps",
        str(steps),
        "--interval",
        str(interval),
    ]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=clean_env()) for _ in range(processes)]
    deadline, results = time.monotonic() + timeout, []
    try:
        for proc in procs:
            out, _ = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
            if proc.returncode:
                raise RuntimeError(f"case {case}: a worker failed with status {proc.returncode}")
            results.append(json.loads(out.strip().splitlines()[-1]))
    except subprocess.TimeoutExpired:
        return None
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5, help="timed steps per process, after one warm-up step")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--interval", type=float, default=5.0, help="adjust_threads' seconds between measurements")
    parser.add_argument("--case-timeout", type=float, default=600.0, help="seconds before a case is stopped")
    parser.add_argument("--worker", choices=["default", "policy"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker == "policy", args.steps, args.interval)))
        return

    print(
        f"Smoke training step (x{SCALE}, batch {BATCH}, patch {PATCH}), one or two processes at once; "
        f"{time.strftime('%Y-%m-%d %H:%M')}; {device_name()}; torch {torch.__version__}; "
        f"load average {os.getloadavg()[0]:.1f} at start; median of {args.steps} steps per process after a warm-up step"
    )  # fmt: skip
    print("| case | load avg at start | process | threads (start → end) | s/step | warm-up s | vs (a) |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    alone = None
    for case in args.cases:
        label, load = CASES[case][0], f"{os.getloadavg()[0]:.1f}"
        results = run_case(case, args.steps, args.interval, args.case_timeout)
        if results is None:
            print(f"| {label} | {load} | – | – | stopped after {args.case_timeout:g} s | – | – |", flush=True)
            continue
        for i, r in enumerate(results, start=1):
            step = statistics.median(r["times"]) if r["times"] else float("nan")
            alone = step if case == "a" and alone is None else alone
            ratio = f"{step / alone:.2f}×" if alone else "–"
            print(
                f"| {label} | {load} | {i} | {r['threads'][0]} → {r['threads'][1]} | {step:.2f} | "
                f"{r['warmup']:.2f} | {ratio} |",
                flush=True,
            )
            if CASES[case][2]:
                print(f"|  |  |  | {r['reason']} |  |  |  |", flush=True)
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
