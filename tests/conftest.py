"""Shared fixtures. Tests that need the real benchmark images use ``shared_data``."""

import os
import signal
import time
from pathlib import Path

import pytest
import torch

from irnlib.runtime import threads as policy


def pytest_configure(config):
    """Under pytest-xdist (``make test`` runs ``-n auto``) every process gets one OpenMP thread.

    Workers share the CPUs: torch's default team (one thread per CPU) in each of them spins at
    every barrier while the other worker holds the cores (``irnlib.runtime.threads``), which made
    small convolutions ten times slower. The variable is set before the workers start, so they,
    and every process a test starts (the ``irn`` command, notebook kernels), inherit it.
    """
    workers = getattr(config.option, "numprocesses", None)
    if workers not in (None, 0, 1) and "OMP_NUM_THREADS" not in os.environ:
        os.environ["OMP_NUM_THREADS"] = "1"


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: one worker per CPU this process may really use (affinity and cgroup quota, as
    the kit's thread policy counts them), not per CPU the host has."""
    return policy.cpu_capacity(len(policy.allowed_cpus()), policy.cpu_quota())


LONGEST_FIRST = ("test_main_job.py", "test_tables.py", "test_models.py")  # minutes, then about two


def pytest_collection_modifyitems(config, items):
    """The longest test files first: the other workers share the rest of the suite meanwhile."""
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the rest keep their order


@pytest.fixture
def shared_data() -> Path:
    """The folder named by IRN_DATA (``../shared/datasets`` in CI); skip if absent."""
    env = os.environ.get("IRN_DATA")
    if not env:
        pytest.skip("IRN_DATA is not set: point it at the shared datasets (.ci/run sets ../shared/datasets)")
    root = Path(env).resolve()  # notebooks run in notebooks/: a relative path would move
    if not (root / "Set5").is_dir():
        pytest.skip(f"IRN_DATA={env} holds no Set5/ folder")
    return root


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a test module: small convolutions gain nothing from two, and on a
    shared 2-core machine OpenMP's spinning threads make timings swing tenfold.

    The kit's thread policy is pinned at one thread too (as ``IRN_THREADS=1`` would): otherwise
    a policy left by an earlier test follows the load inside ``train`` and may switch to two
    threads mid-run, and two runs that should be bit-identical then differ in the last bits.
    """

    before, saved = torch.get_num_threads(), policy._policy
    policy.apply_thread_policy({"IRN_THREADS": "1"}, force=True)
    yield
    policy._policy = saved
    torch.set_num_threads(before)


def randomize(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every subnet random, well-conditioned weights (conv5 is zero at init), all drawn from
    ``seed``: conv1-4 as IRN initialises them (Xavier normal times 0.1), conv5 and every bias
    small and random. The network is then the same whatever the global generator has drawn
    before (a learned downsampling's orthogonal matrices keep their own initialisation)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in net.named_parameters():
            if name.endswith("conv5.weight"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.02)
            elif name.endswith(("conv1.weight", "conv2.weight", "conv3.weight", "conv4.weight")):
                torch.nn.init.xavier_normal_(p, generator=gen).mul_(0.1)
            elif name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.01)
    return net


def kill_at_marker(proc, marker: Path, timeout: float, what: str) -> None:
    """Wait until subprocess ``proc`` creates ``marker`` (it has reached the moment to test),
    then ``kill -9`` it there, as a crash or power cut would; ``what`` names it in failures."""
    try:
        deadline = time.monotonic() + timeout
        while not marker.exists():
            assert proc.poll() is None, f"the {what} ended early"
            assert time.monotonic() < deadline, f"the {what} never got there"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
