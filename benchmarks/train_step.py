"""Speed and peak memory of one IRN training step; prints a Markdown table.

Each (configuration, mode) runs in a fresh subprocess, so that its peak resident memory
(``ru_maxrss``) is its own. A step is ``irnlib.train.train_step``, the one of
``irnlib.train.train``'s loop: the objective (forward, 8-bit LR, inverse with a fresh z'),
backward, gradient clipping at 10, an Adam step and the learning-rate schedule, on random inputs (as the reference measurements were). The network
gets random ``conv5`` weights, so that every gradient is non-zero, as in a trained network.

Modes:

- ``plain``: NCHW tensors, the default allocator: the original implementation's way.
- ``alloc``: ``plain`` with the CPU allocator tuning of ``irnlib.train`` (``tune_cpu_allocator``).
- ``fast``: ``alloc`` plus channels_last tensors (same mathematics, other kernels).
- ``fast+recompute``: ``fast`` plus ``memory_saving`` (each InvBlock's activations are
  recomputed during the backward pass instead of being kept).

Data time: producing one batch of real training samples (crop, flips, MATLAB bicubic LR and
z') in the training process, from images already decoded, as a share of a step.

Usage::

    python benchmarks/train_step.py                      # all rows (paper rows take minutes)
    python benchmarks/train_step.py --quick              # without the b16 p144 rows
    python benchmarks/train_step.py --repeats 3 --rows x2-b16-p144
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROWS = {  # name: (scale, batch, patch)
    "x2-b16-p144": (2, 16, 144),  # the paper's configuration
    "x4-b16-p144": (4, 16, 144),
    "x2-b4-p64": (2, 4, 64),
    "x4-b4-p64": (4, 4, 64),
    "smoke-x4-b4-p48": (4, 4, 48),  # the smoke profile
}
MODES = ("plain", "alloc", "fast", "fast+recompute")
# The original implementation on this kind of machine (issue 4): seconds per step, peak GB.
REFERENCE = {"x2-b16-p144": (20.2, 8.3), "x4-b16-p144": (24.5, 10.4), "x2-b4-p64": (0.83, None), "x4-b4-p64": (1.20, None)}


def worker(scale: int, batch: int, patch: int, mode: str, repeats: int) -> dict:
    """Time ``repeats`` training steps after one warm-up step; runs inside the subprocess."""
    import torch

    from irnlib.train import build, make_config, train_step, tune_cpu_allocator

    if mode != "plain":
        tune_cpu_allocator()
    config = make_config("paper", scale=scale, batch_size=batch, patch_size=patch,
                         channels_last=mode.startswith("fast"), memory_saving=mode.endswith("recompute"))  # fmt: skip
    state = build(config, torch.device("cpu"))  # seeds with config.seed (0), as train() does
    with torch.no_grad():
        for name, p in state.net.named_parameters():
            if name.endswith("conv5.weight"):
                p.normal_(0, 0.01)
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    lr_size = patch // scale
    hr = torch.rand(batch, 3, patch, patch).contiguous(memory_format=memory_format)
    lr_ref = torch.rand(batch, 3, lr_size, lr_size)
    z_prime = torch.randn(batch, 3 * scale * scale - 3, lr_size, lr_size)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def step():
        train_step(state, hr, lr_ref, z_prime, config)

    step()  # warm-up: oneDNN primitive creation, allocator growth
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {
        "times": times,
        "peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e9,  # ru_maxrss is in KiB
        "base_gb": rss_before * 1024 / 1e9,
        "threads": torch.get_num_threads(),
    }


def data_seconds_per_batch(scale: int, batch: int, patch: int, repeats: int = 20) -> float:
    """Seconds to produce one batch of training samples from decoded images (main process)."""
    import numpy as np
    import torch

    from irnlib.datasets import TrainingPatches, list_images
    from irnlib.images import save_png
    from irnlib.train import TrainingSamples

    with tempfile.TemporaryDirectory(prefix="irn-bench-") as folder:
        try:
            paths = list_images("DIV2K_train_HR")[:16]
        except FileNotFoundError:  # stand-ins of DIV2K's size: 2040×1356 PNGs
            rng = np.random.default_rng(0)
            paths = [save_png(Path(folder) / f"{i}.png", rng.integers(0, 256, (1356, 2040, 3), dtype=np.uint8)) for i in range(4)]
        samples = TrainingSamples(TrainingPatches(paths, scale, patch, seed=0), scale, seed=0)
        for k in range(len(paths) * 8):  # decode (and cache) every image first
            samples[k]
        start = time.perf_counter()
        for t in range(repeats):
            torch.utils.data.default_collate([samples[10_000 + t * batch + i] for i in range(batch)])
    return (time.perf_counter() - start) / repeats


def run_worker(row: str, mode: str, repeats: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--worker", f"{row}:{mode}", "--repeats", str(repeats)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2, help="timed steps per subprocess (after one warm-up)")
    parser.add_argument("--rounds", type=int, default=2, help="subprocesses per row and mode, interleaved")
    parser.add_argument("--rows", nargs="*", default=None, choices=list(ROWS), help="rows to run (default: all)")
    parser.add_argument("--modes", nargs="*", default=list(MODES), choices=MODES)
    parser.add_argument("--quick", action="store_true", help="skip the b16 p144 rows")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        row, mode = args.worker.split(":")
        print(json.dumps(worker(*ROWS[row], mode, args.repeats)))
        return
    rows = args.rows or [r for r in ROWS if not (args.quick and "b16" in r)]
    import torch

    print(
        f"IRN training step, {time.strftime('%Y-%m-%d %H:%M')}; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}, load average {os.getloadavg()[0]:.1f} at start; "
        f"median (min) of {args.rounds}×{args.repeats} steps, each subprocess after a warm-up step"
    )  # fmt: skip
    print("| config | mode | s/step | HR Mpx/s | peak GB | reference s/step (peak GB) | speed-up vs reference | data share |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        scale, batch, patch = ROWS[row]
        data_s = data_seconds_per_batch(scale, batch, patch)
        results = {mode: [] for mode in args.modes}
        for _ in range(args.rounds):  # interleaved, so that a busy spell hits every mode alike
            for mode in args.modes:
                results[mode].append(run_worker(row, mode, args.repeats))
        for mode in args.modes:
            times = [t for r in results[mode] for t in r["times"]]
            step, fastest = statistics.median(times), min(times)
            peak = max(r["peak_gb"] for r in results[mode])
            ref_s, ref_gb = REFERENCE.get(row, (None, None))
            ref = "–" if ref_s is None else f"{ref_s}" + (f" ({ref_gb})" if ref_gb else "")
            speedup = "–" if ref_s is None else f"{ref_s / step:.2f}×"
            print(
                f"| {row} | {mode} | {step:.2f} ({fastest:.2f}) | {batch * patch * patch / step / 1e6:.3f} | {peak:.2f} | "
                f"{ref} | {speedup} | {data_s / (step + data_s):.1%} |",
                flush=True,
            )
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
