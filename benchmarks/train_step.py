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
- ``alloc``: ``plain`` with the CPU allocator setting (``irnlib.runtime.threads.tune_cpu_allocator``).
- ``fast``: ``alloc`` plus channels_last tensors (same mathematics, other kernels).
- ``fast+recompute``: ``fast`` plus ``memory_saving`` (each InvBlock's activations are
  recomputed during the backward pass instead of being kept).
- ``fast+bf16``: ``fast`` under bf16 autocast (``amp="bf16"``); only worth it where the CPU
  does bf16 natively (``irnlib.runtime.provenance.native_bf16``: AMX or AVX-512-BF16), which the
  header says; elsewhere it is emulated and slow. Not run by default.
- ``fast+bf16+recompute``: ``fast+bf16`` plus ``memory_saving``. Not run by default.
- ``fast+stress``: ``fast`` with the kit's stress term on (``lambda_stress=1``, issue 27): what
  its extra backward pass and forward/backward pass on the moved batch cost. Not run by default
  on a CPU.

On a GPU (``--device cuda``) every mode runs in one process, one after the other, and the
peak is the GPU memory torch allocated (``torch.cuda.max_memory_allocated``); the modes there
are ``plain`` (fp32 NCHW, cuDNN's default kernel choice), ``tuned`` (``cudnn.benchmark``, which
training turns on), ``fast`` (``tuned`` plus channels_last), ``fast+recompute``,
``fast+bf16`` / ``fast+fp16`` (autocast) and ``fast+stress``. The table adds the hours 500k steps
would take, and
``--precision`` prints the loss terms and gradient of bf16 and fp16 against fp32 on photographs
(on a CPU: bf16 only).

Data time: producing one batch of real training samples (crop, flips, MATLAB bicubic LR and
z') in the training process, from images already decoded, as a share of a step.

Usage::

    python benchmarks/train_step.py                      # all rows (paper rows take minutes)
    python benchmarks/train_step.py --quick              # without the b16 p144 rows
    python benchmarks/train_step.py --repeats 3 --rows x2-b16-p144
    python benchmarks/train_step.py --device cuda --rows x2-b16-p144 x4-b16-p144 --precision
    python benchmarks/train_step.py --profile smoke-x4-b4-p48:fast --repeats 5   # where a step's time goes

``--profile ROW:MODE`` runs ``torch.profiler`` over the steps of one row and mode (in this
process, after a warm-up step) and prints where their CPU time goes: each operator's own time,
grouped by the phase it ran in (the objective's forward and inverse passes, autograd's backward
pass, Adam, the rest: gradient clipping and the loss values) and by kind (convolution, concatenation, activation,
element-wise arithmetic, copies and layout conversions, reductions).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import skimage.data
import torch
from torch.profiler import ProfilerActivity, profile, record_function

from irnlib.data.folders import list_images
from irnlib.data.patches import TrainingPatches
from irnlib.imaging.images import save_png
from irnlib.imaging.imresize import imresize
from irnlib.runtime.provenance import device_name, native_bf16
from irnlib.runtime.threads import tune_cpu_allocator
from irnlib.train import IRNObjective, TrainingSamples, build, make_config, train_step

ROWS = {  # name: (scale, batch, patch)
    "x2-b16-p144": (2, 16, 144),  # the paper's configuration
    "x4-b16-p144": (4, 16, 144),
    "x2-b4-p64": (2, 4, 64),
    "x4-b4-p64": (4, 4, 64),
    "smoke-x4-b4-p48": (4, 4, 48),  # the smoke profile
    "quick-x2-b4-p48": (2, 4, 48),  # the quick profile (the kit reference models)
}
MODES = ("plain", "alloc", "fast", "fast+recompute", "fast+bf16", "fast+bf16+recompute", "fast+stress")
DEFAULT_MODES = MODES[:4]
GPU_MODES = ("plain", "tuned", "fast", "fast+recompute", "fast+bf16", "fast+fp16", "fast+stress")


def mode_config(scale: int, batch: int, patch: int, mode: str, device: str = "cpu"):
    """The paper's configuration at this size, with ``mode``'s speed settings."""
    amp = "bf16" if "+bf16" in mode else "fp16" if "+fp16" in mode else "off"
    return make_config("paper", scale=scale, batch_size=batch, patch_size=patch, channels_last=mode.startswith("fast"),
                       memory_saving=mode.endswith("recompute"), amp=amp, device=device,
                       lambda_stress=1.0 if mode.endswith("+stress") else 0.0)  # fmt: skip


def trained_like(config, device):
    """:func:`irnlib.train.build`'s state (seeded as ``train()`` seeds it) with random ``conv5``
    weights, so that every gradient is non-zero as in a trained network."""
    state = build(config, device)
    with torch.no_grad():
        for name, p in state.net.named_parameters():
            if name.endswith("conv5.weight"):
                p.normal_(0, 0.01)
    return state


def random_batch(config, device):
    """Random ``(hr, lr_ref, z_prime)`` of the configuration's batch, in its memory layout."""
    s, b, p = config.scale, config.batch_size, config.patch_size
    memory_format = torch.channels_last if config.channels_last else torch.contiguous_format
    hr = torch.rand(b, 3, p, p, device=device).contiguous(memory_format=memory_format)
    return (
        hr,
        torch.rand(b, 3, p // s, p // s, device=device),
        torch.randn(b, 3 * s * s - 3, p // s, p // s, device=device),
    )


def cpu_step(scale: int, batch: int, patch: int, mode: str):
    """``(state, step)``: a CPU training state in ``mode`` and a function that runs one
    training step of it on a fixed random batch (the allocator tuned unless ``plain``)."""
    if mode != "plain":
        tune_cpu_allocator()
    config = mode_config(scale, batch, patch, mode)
    state = trained_like(config, torch.device("cpu"))
    hr, lr_ref, z_prime = random_batch(config, "cpu")

    def step():
        train_step(state, hr, lr_ref, z_prime, config, step=state.scheduler.last_epoch)

    return state, step


def worker(scale: int, batch: int, patch: int, mode: str, repeats: int) -> dict:
    """Time ``repeats`` training steps after one warm-up step; runs inside the subprocess."""
    _, step = cpu_step(scale, batch, patch, mode)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
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


def gpu_mode(scale: int, batch: int, patch: int, mode: str, repeats: int, device) -> dict:
    """Time ``repeats`` training steps on a GPU after three warm-up steps (cuDNN's kernel search
    with ``tuned``); the peak is the GPU memory torch allocated during the mode's steps."""
    torch.backends.cudnn.benchmark = mode != "plain"
    config = mode_config(scale, batch, patch, mode, str(device))
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats(device)
    state = trained_like(config, device)
    hr, lr_ref, z_prime = random_batch(config, device)
    for t in range(3):
        train_step(state, hr, lr_ref, z_prime, config, step=t)
    torch.cuda.synchronize(device)
    times = []
    for t in range(3, 3 + repeats):
        start = time.perf_counter()
        train_step(state, hr, lr_ref, z_prime, config, step=t)
        torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    result = {"times": times, "peak_gb": torch.cuda.max_memory_allocated(device) / 1e9}
    del state
    return result


def photo_batch(batch: int, patch: int):
    """``batch`` crops of ``patch``² from scikit-image's photographs, floats in [0, 1], (b, 3, P, P)."""
    photos = [skimage.data.astronaut(), skimage.data.coffee(), skimage.data.chelsea()]
    rng = np.random.default_rng(0)
    crops = []
    for k in range(batch):
        img = photos[k % len(photos)]
        y, x = rng.integers(0, img.shape[0] - patch + 1), rng.integers(0, img.shape[1] - patch + 1)
        crops.append(torch.from_numpy(img[y : y + patch, x : x + patch].copy()).permute(2, 0, 1))
    return torch.stack(crops).float() / 255


def precision_table(scale: int, batch: int, patch: int, device, autocasts=("bf16", "fp16")) -> list[str]:
    """Markdown rows: each loss term and the gradient under the ``autocasts`` (bf16, fp16)
    against fp32 (the same network, photographs and z'), relative errors and the gradients' cosine."""
    hr = photo_batch(batch, patch)
    lr_ref = imresize(hr, 1 / scale).clamp(0, 1)
    hr, lr_ref = hr.to(device), lr_ref.to(device)
    z_prime = torch.randn(batch, 3 * scale * scale - 3, patch // scale, patch // scale,
                          generator=torch.Generator().manual_seed(1)).to(device)  # fmt: skip
    config = mode_config(scale, batch, patch, "plain", str(device))
    net = trained_like(config, device).net
    objective = IRNObjective(net, config)
    results = {}
    dtypes = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    for label in ("fp32", *autocasts):
        dtype = dtypes[label]
        net.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            terms = objective(hr, lr_ref, z_prime)
        sum(terms.values()).backward()
        grads = torch.cat([p.grad.flatten().double() for p in net.parameters() if p.grad is not None])
        results[label] = ({k: float(v.detach()) for k, v in terms.items()}, grads)
    terms32, g32 = results["fp32"]
    rows = []
    for label in autocasts:
        terms, g = results[label]
        rel = {k: abs(terms[k] - terms32[k]) / (abs(terms32[k]) or 1.0) for k in terms32}
        cosine = float(torch.nn.functional.cosine_similarity(g32, g, dim=0))
        rows.append(
            f"| x{scale}-b{batch}-p{patch} | {label} | "
            f"{rel['l_forw']:.2%} | {rel['l_back']:.2%} | {rel['l_distr']:.2%} | "
            f"{float((g - g32).norm() / g32.norm()):.2%} | {cosine:.4f} |"
        )
    return rows


def print_precision(rows: list[str], device, autocasts: tuple[str, ...]) -> None:
    """Print :func:`precision_table` for ``rows`` as one Markdown table."""
    print()
    table_head(f"{' and '.join(autocasts)} autocast against fp32, one step on photographs (random conv5 weights), "
               "relative error:",
               ["config", "autocast", "L_forw", "L_back", "L_distr", "gradient (L2)", "gradient cosine"])  # fmt: skip
    for row in rows:
        for line in precision_table(*ROWS[row], device, autocasts):
            print(line, flush=True)


def table_head(title: str, columns: list[str]) -> None:
    """Print a title line and a Markdown table's header."""
    print(title)
    print("| " + " | ".join(columns) + " |")
    print("| " + " | ".join("---" for _ in columns) + " |")


def main_gpu(args, rows: list[str]) -> None:
    device = torch.device(args.device)
    modes = ["plain"] + [m for m in (args.modes or GPU_MODES) if m != "plain" and m in GPU_MODES]
    table_head(
        f"IRN training step, {time.strftime('%Y-%m-%d %H:%M')}; torch {torch.__version__}; {device_name(device)}; "
        f"cuDNN {torch.backends.cudnn.version()}; TF32 for convolutions: {torch.backends.cudnn.allow_tf32}; "
        f"median (min) of {args.repeats} steps per mode after 3 warm-up steps, "
        "modes one after the other in one process",
        ["config", "mode", "s/step", "HR Mpx/s", "peak GB (GPU)", "speed-up vs plain", "peak memory vs plain",
         "500k steps (h)"],
    )  # fmt: skip
    for row in rows:
        scale, batch, patch = ROWS[row]
        results = {mode: gpu_mode(scale, batch, patch, mode, args.repeats, device) for mode in modes}
        step = {m: statistics.median(r["times"]) for m, r in results.items()}
        for mode in modes:
            print(
                f"| {row} | {mode} | {step[mode]:.4f} ({min(results[mode]['times']):.4f}) | "
                f"{batch * patch * patch / step[mode] / 1e6:.2f} | {results[mode]['peak_gb']:.2f} | "
                f"{step['plain'] / step[mode]:.2f}× | {results[mode]['peak_gb'] / results['plain']['peak_gb']:.2f}× | "
                f"{500_000 * step[mode] / 3600:.1f} |",
                flush=True,
            )
    if args.precision:
        print_precision(rows, device, ("bf16", "fp16"))


def data_seconds_per_batch(scale: int, batch: int, patch: int, repeats: int = 20) -> float:
    """Seconds to produce one batch of training samples from decoded images (main process)."""
    with tempfile.TemporaryDirectory(prefix="irn-bench-") as folder:
        try:
            paths = list_images("DIV2K_train_HR")[:16]
        except FileNotFoundError:  # stand-ins of DIV2K's size: 2040×1356 PNGs
            rng = np.random.default_rng(0)
            paths = [
                save_png(Path(folder) / f"{i}.png", rng.integers(0, 256, (1356, 2040, 3), dtype=np.uint8))
                for i in range(4)
            ]
        samples = TrainingSamples(TrainingPatches(paths, scale, patch, seed=0), scale, seed=0)
        for k in range(len(paths) * 8):  # decode (and cache) every image first
            samples[k]
        start = time.perf_counter()
        for t in range(repeats):
            torch.utils.data.default_collate([samples[10_000 + t * batch + i] for i in range(batch)])
    return (time.perf_counter() - start) / repeats


OP_KINDS = (  # (kind, operator-name fragments), first match wins
    ("convolution", ("conv",)),
    ("concatenation", ("cat",)),
    ("activation", ("leaky_relu", "sigmoid", "threshold")),
    ("copy / layout", ("copy_", "clone", "contiguous", "empty_like", "to_dense", "_to_copy")),
    ("reduction", ("sum", "norm", "mean", "stack", "abs", "sqrt")),
    (
        "element-wise",
        (
            "add",
            "mul",
            "sub",
            "div",
            "exp",
            "lerp",
            "addcmul",
            "addcdiv",
            "clamp",
            "round",
            "pow",
            "neg",
            "fill_",
            "zero_",
            "where",
            "sign",
        ),
    ),
)


def op_kind(name: str) -> str:
    """The kind of operator ``name`` (an ``aten::`` name) is, for :func:`profile_step`'s table."""
    name = name.removeprefix("aten::")
    for kind, fragments in OP_KINDS:
        if any(fragment in name for fragment in fragments):
            return kind
    return "other"


def op_phase(event) -> str:
    """The phase of the training step an operator event ran in, from its enclosing events."""
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("autograd::engine"):
            return "backward"
        if parent.name.startswith(("Optimizer.step", "Optimizer.zero_grad")):
            return "Adam"
        if parent.name == "objective":
            return "objective (forward + inverse)"
        parent = parent.cpu_parent
    return "other (gradient clipping, loss values)"


def profile_step(row: str, mode: str, repeats: int) -> None:
    """Print where ``repeats`` training steps of ``row`` in ``mode`` spend their CPU time."""
    state, step = cpu_step(*ROWS[row], mode)
    objective = state.model.forward

    def labelled(*args):  # marks the objective's operators for op_phase
        with record_function("objective"):
            return objective(*args)

    state.model.forward = labelled
    step()  # warm-up
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(repeats):
            step()
    wall = (time.perf_counter() - start) / repeats

    own = collections.Counter()  # (phase, kind) -> seconds of the operators' own time
    for event in prof.events():
        if event.name.startswith("aten::") and event.self_cpu_time_total > 0:
            own[op_phase(event), op_kind(event.name)] += event.self_cpu_time_total / 1e6 / repeats
    total = sum(own.values())
    table_head(
        f"Where a training step's time goes: {row}, mode {mode}, {repeats} steps after a warm-up; "
        f"{device_name('cpu')}; torch {torch.__version__}; {time.strftime('%Y-%m-%d %H:%M')}. "
        f"Wall time {wall:.3f} s/step under the profiler, of which operators' own time {total:.3f} s/step",
        ["phase", "kind", "s/step", "share"],
    )
    for (phase, kind), seconds in own.most_common():
        print(f"| {phase} | {kind} | {seconds:.4f} | {seconds / total:.1%} |")
    by_phase = collections.Counter()
    for (phase, _), seconds in own.items():
        by_phase[phase] += seconds
    print("\nBy phase: " + "; ".join(f"{phase} {seconds / total:.1%}" for phase, seconds in by_phase.most_common()))


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
    parser.add_argument(
        "--modes",
        nargs="*",
        default=None,
        choices=sorted(set(MODES + GPU_MODES)),
        help="plain is always run too: every ratio is against it",
    )
    parser.add_argument("--device", default="cpu", help="cpu (default) or a CUDA device such as cuda")
    parser.add_argument("--precision", action="store_true", help="also bf16 (and on a GPU fp16) against fp32")
    parser.add_argument("--quick", action="store_true", help="skip the b16 p144 rows")
    parser.add_argument("--profile", metavar="ROW:MODE", help="profile the steps of one row and mode instead")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.profile:
        row, _, mode = args.profile.partition(":")
        mode = mode or "fast"
        if row not in ROWS or mode not in MODES:
            raise SystemExit(
                f"--profile: want ROW:MODE with ROW one of {', '.join(ROWS)} and MODE one of {', '.join(MODES)}; "
                f"got {args.profile!r}"
            )
        profile_step(row, mode, args.repeats)
        return
    if args.worker:
        row, mode = args.worker.split(":")
        print(json.dumps(worker(*ROWS[row], mode, args.repeats)))
        return
    rows = args.rows or [r for r in ROWS if not (args.quick and "b16" in r)]
    if args.device != "cpu":
        main_gpu(args, rows)
        return
    modes = ["plain"] + [m for m in (args.modes or DEFAULT_MODES) if m != "plain" and m in MODES]

    table_head(
        f"IRN training step, {time.strftime('%Y-%m-%d %H:%M')}; torch {torch.__version__}; "
        f"{device_name('cpu')} (native bf16: {native_bf16() or 'none'}); "
        f"load average {os.getloadavg()[0]:.1f} at start; "
        f"median (min) of {args.rounds}×{args.repeats} steps, each subprocess after a warm-up step",
        ["config", "mode", "s/step", "HR Mpx/s", "peak GB", "speed-up vs plain", "peak memory vs plain", "data share"],
    )  # fmt: skip
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
                f"| {row} | {mode} | {step[mode]:.2f} ({fastest:.2f}) | "
                f"{batch * patch * patch / step[mode] / 1e6:.3f} | "
                f"{peak[mode]:.2f} | {step['plain'] / step[mode]:.2f}× | {peak[mode] / peak['plain']:.2f}× | "
                f"{data_s / (step[mode] + data_s):.1%} |",
                flush=True,
            )
    print(f"load average {os.getloadavg()[0]:.1f} at the end")
    if args.precision:  # on a CPU, bf16 only: fp16 has no native CPU arithmetic to measure
        print_precision(rows, torch.device("cpu"), ("bf16",))


if __name__ == "__main__":
    main()
