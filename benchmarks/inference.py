"""IRN inference speed and peak memory: downscale and upscale of one RGB image.

Prints a Markdown table: for a 512×512 and a 2040×1356 image at ×2 and ×4, the seconds for
``downscale`` and ``upscale`` and the peak resident memory, for

- ``reference``: the network's own whole-image ``net.downscale`` / ``net.upscale`` under
  ``torch.no_grad`` (what the original implementation does), default allocator;
- ``reference+alloc``: the same with glibc's allocator kept from returning freed memory to
  the OS (:func:`irnlib.runtime.threads.tune_cpu_allocator`), to show that setting's share alone;
- ``kit``: what ``irn downscale`` / ``irn upscale`` and the evaluation run: the allocator
  setting, :func:`irnlib.model.inference.downscale` / :func:`~irnlib.model.inference.upscale` (tiled,
  channels-last convolutions, ``torch.inference_mode``), once per ``--tile`` value, so tile
  sizes are compared side by side in one run;
- ``kit-official-subnets``: ``kit`` with every dense subnet run by its own
  ``DenseSubnet.forward`` instead of :func:`irnlib.model.inference.subnet_nhwc`, to show that
  function's share alone.

"CPU s" is the process's CPU time for downscale + upscale: on a machine shared with other
work it varies less than the wall-clock seconds. Every configuration runs in a fresh subprocess, so its
peak RSS is its own (the resident memory after imports is printed too). Random weights (timing does not depend on them).

    python benchmarks/inference.py                 # all configurations
    python benchmarks/inference.py --sizes 512x512 --scales 4 --repeats 3 --tile 128 160
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import resource
import subprocess
import sys
import time

import torch

from irnlib import IRN
from irnlib.model import inference
from irnlib.model.inference import TILE
from irnlib.runtime.provenance import cpu_model, native_bf16
from irnlib.runtime.threads import tune_cpu_allocator


def run_one(mode: str, scale: int, height: int, width: int, repeats: int, tile: int | None, threads: int) -> dict:
    """Time one configuration in this process; return seconds (median) and memory in MiB."""

    if threads > 0:
        torch.set_num_threads(threads)

    if mode != "reference":
        tune_cpu_allocator()
    if mode == "kit-official-subnets":
        inference.subnet_nhwc = lambda subnet, x: subnet(x)  # what the tiled steps call, looked up per call

    torch.manual_seed(0)
    net = IRN(scale).eval()
    with torch.no_grad():  # random weights: every subnet active (conv5 is zero at init)
        for name, p in net.named_parameters():
            if name.endswith("conv5.weight"):
                p.normal_(0, 0.02)
    hr = torch.rand(1, 3, height, width)
    base_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    down_times, up_times, cpu_times = [], [], []
    for _ in range(repeats):
        c0 = time.process_time()
        gen = torch.Generator().manual_seed(0)
        if mode.startswith("reference"):
            with torch.no_grad():
                t0 = time.perf_counter()
                lr = net.downscale(hr)
                t1 = time.perf_counter()
                net.upscale(lr, generator=gen)
                t2 = time.perf_counter()
        else:
            with torch.inference_mode():
                t0 = time.perf_counter()
                lr = inference.downscale(net, hr, tile=tile)
                t1 = time.perf_counter()
                inference.upscale(net, lr, generator=gen, tile=tile)
                t2 = time.perf_counter()
        cpu_times.append(time.process_time() - c0)
        down_times.append(t1 - t0)
        up_times.append(t2 - t1)
    median = lambda xs: sorted(xs)[len(xs) // 2]  # noqa: E731
    return {
        "down_s": median(down_times),
        "up_s": median(up_times),
        "cpu_s": median(cpu_times),
        "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "base_mib": base_mib,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


def run_in_subprocess(mode, scale, height, width, repeats, tile, threads) -> dict:
    args = [
        sys.executable,
        __file__,
        "--child",
        mode,
        str(scale),
        str(height),
        str(width),
        str(repeats),
        str(tile),
        str(threads),
    ]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def load_average() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["512x512", "2040x1356"], help="WIDTHxHEIGHT")
    parser.add_argument("--scales", nargs="+", type=int, default=[2, 4])
    modes = ["reference", "reference+alloc", "kit-official-subnets", "kit"]
    parser.add_argument("--modes", nargs="+", default=modes, choices=modes)
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per configuration (median)")
    parser.add_argument(
        "--tile",
        type=int,
        nargs="+",
        default=None,
        help="kit tile size(s), each a row (default: irnlib.model.inference.TILE)",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--child", nargs=7, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        mode, scale, height, width, repeats, tile, threads = args.child
        tile = None if tile == "None" else int(tile)
        print(json.dumps(run_one(mode, int(scale), int(height), int(width), int(repeats), tile, int(threads))))
        return

    tiles = args.tile or [TILE]
    runs = [(mode, tile) for mode in args.modes for tile in (tiles if mode.startswith("kit") else [None])]
    start_load = load_average()
    print(
        f"# IRN inference, {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC, {platform.machine()}, "
        f"{cpu_model()} (native bf16: {native_bf16() or 'none'}), load average at start {start_load}"
    )
    print()
    print("| image | scale | mode | downscale s | upscale s | total s | CPU s | peak RSS MiB (after imports) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for size in args.sizes:
        width, height = (int(v) for v in size.lower().split("x"))
        for scale in args.scales:
            totals, cpu = {}, {}
            for mode, tile in runs:
                name = mode if tile is None else f"{mode}, tile {tile}"
                r = run_in_subprocess(mode, scale, height, width, args.repeats, tile, args.threads)
                totals[name] = r["down_s"] + r["up_s"]
                cpu[name] = r["cpu_s"]
                print(
                    f"| {width}×{height} | ×{scale} | {name} | {r['down_s']:.2f} | {r['up_s']:.2f} | "
                    f"{totals[name]:.2f} | {r['cpu_s']:.2f} | {r['peak_mib']:.0f} ({r['base_mib']:.0f}) |",
                    flush=True,
                )
            for name in totals:
                if "reference" in totals and name != "reference":
                    wall, cpu_time = totals["reference"] / totals[name], cpu["reference"] / cpu[name]
                    print(
                        f"| {width}×{height} | ×{scale} | speed-up, {name} | | | {wall:.2f}× | {cpu_time:.2f}× | |",
                        flush=True,
                    )
    print()
    print(f"threads {r['threads']}, torch {r['torch']}, load average at end {load_average()}")


if __name__ == "__main__":
    main()
