"""Speed and peak memory of one IRN training step; prints a Markdown table.

Each (configuration, mode) runs in a fresh subprocess, so that its peak resident memory
(``ru_maxrss``) is its own. A step is ``irnlib.train.train_step``, the one of
``irnlib.train.train``'s loop: the objective (forward, 8-bit LR, inverse with a fresh z'),
backward, gradient clipping at 10, an Adam step and the learning-rate schedule, on random
inputs. The network gets random ``conv5`` weights, so that every gradient is non-zero, as in a
trained network.

Every ratio is measured side by side: the speed-up and the memory of each mode are against
``plain`` (the official arithmetic) of the same row in the same run, with the rounds of the
modes interleaved so that a busy spell hits them alike. The header names the CPU (model,
family, AVX2/AVX-512/AMX) and the threads.

Modes:

- ``plain``: NCHW tensors, the default allocator: the original implementation's way.
- ``alloc``: ``plain`` with the CPU allocator tuning of ``irnlib.train`` (``tune_cpu_allocator``).
- ``fast``: ``alloc`` plus channels_last tensors (same mathematics, other kernels).
- ``fast+recompute``: ``fast`` plus ``memory_saving`` (each InvBlock's activations are
  recomputed during the backward pass instead of being kept).
- ``fast+bf16``: ``fast`` under bf16 autocast (``amp="bf16"``); only worth it where the CPU
  does bf16 natively (``irnlib.provenance.native_bf16``: AMX or AVX-512-BF16), which the
  header says; elsewhere it is emulated and slow. Not run by default.

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
MODES = ("plain", "alloc", "fast", "fast+recompute", "fast+bf16")
DEFAULT_MODES = MODES[:4]


def worker(scale: int, batch: int, patch: int, mode: str, repeats: int) -> dict:
    """Time ``repeats`` training steps after one warm-up step; runs inside the subprocess."""
    import torch

    from irnlib.train import build, make_config, train_step, tune_cpu_allocator

    if mode != "plain":
        tune_cpu_allocator()
    config = make_config("paper", scale=scale, batch_size=batch, patch_size=patch, channels_last=mode.startswith("fast"),
                         memory_saving=mode.endswith("recompute"), amp="bf16" if mode.endswith("bf16") else "off")  # fmt: skip
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
    parser.add_argument("--modes", nargs="*", default=list(DEFAULT_MODES), choices=MODES,
                        help="plain is always run too: every ratio is against it")
    parser.add_argument("--quick", action="store_true", help="skip the b16 p144 rows")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        row, mode = args.worker.split(":")
        print(json.dumps(worker(*ROWS[row], mode, args.repeats)))
        return
    rows = args.rows or [r for r in ROWS if not (args.quick and "b16" in r)]
    modes = ["plain"] + [m for m in args.modes if m != "plain"]
    import torch

    from irnlib.provenance import device_name, native_bf16

    print(
        f"IRN training step, {time.strftime('%Y-%m-%d %H:%M')}; torch {torch.__version__}; "
        f"{device_name('cpu')} (native bf16: {native_bf16() or 'none'}); load average {os.getloadavg()[0]:.1f} at start; "
        f"median (min) of {args.rounds}×{args.repeats} steps, each subprocess after a warm-up step"
    )  # fmt: skip
    print("| config | mode | s/step | HR Mpx/s | peak GB | speed-up vs plain | peak memory vs plain | data share |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        scale, batch, patch = ROWS[row]
        data_s = data_seconds_per_batch(scale, batch, patch)
        results = {mode: [] for mode in modes}
        for _ in range(args.rounds):  # interleaved, so that a busy spell hits every mode alike
            for mode in modes:
                results[mode].append(run_worker(row, mode, args.repeats))
        step = {m: statistics.median([t for r in results[m] for t in r["times"]]) for m in modes}
        peak = {m: max(r["peak_gb"] for r in results[m]) for m in modes}
        for mode in modes:
            fastest = min(t for r in results[mode] for t in r["times"])
            print(
                f"| {row} | {mode} | {step[mode]:.2f} ({fastest:.2f}) | {batch * patch * patch / step[mode] / 1e6:.3f} | "
                f"{peak[mode]:.2f} | {step['plain'] / step[mode]:.2f}× | {peak[mode] / peak['plain']:.2f}× | "
                f"{data_s / (step[mode] + data_s):.1%} |",
                flush=True,
            )
    print(f"load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
