"""The CPU runtime: how many torch intra-op threads to use (the CPUs this process may use, minus
those busy elsewhere), and glibc's allocator kept from returning large blocks to the OS
(:func:`tune_cpu_allocator`).

On a machine shared with other CPU-heavy processes, OpenMP threads that outnumber the free
cores spin at every barrier while the thread they wait for is descheduled: two trainings with
2 threads each on 2 cores went from ~0.5 s to 27–29 s per step, and with one thread each ran at
~1.5–2 s. Making every wait passive (``OMP_WAIT_POLICY=PASSIVE``) avoids that but costs 1.75× on
an idle machine, so this module keeps the spinning runtime and sizes the thread team instead:

- **capacity**: the CPUs in the process's affinity mask (``os.sched_getaffinity``), capped by the
  cgroup CPU quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``; rounded down, at least 1) and by
  torch's own default thread count;
- **busy elsewhere**: the CPU time those CPUs spent on other processes (``/proc/stat`` minus this
  process's own CPU time) over a short sample, in CPUs;
- **threads** = capacity minus the CPUs busy elsewhere (rounded: a CPU busy half the time or
  more counts as taken), at least 1
  (:func:`decide_threads`).

Precedence: an ``OMP_NUM_THREADS`` in the environment always wins (torch already obeys it and the
policy leaves it alone); then ``IRN_THREADS=<n>`` fixes the count; ``IRN_THREADS=auto`` (or
unset) is the policy. :func:`apply_thread_policy` applies it once at start (the ``irn`` command
does); :func:`adjust_threads`, cheap enough to call after every training step, re-measures at
most every ``interval`` seconds and follows the load: fewer threads at once when another process
takes CPUs, more again only when two measurements in a row agree (so that a short pause of the
other process does not make the count flap).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = [
    "ThreadDecision",
    "apply_thread_policy",
    "adjust_threads",
    "decide_threads",
    "next_threads",
    "read_override",
    "cpu_capacity",
    "allowed_cpus",
    "cpu_quota",
    "parse_cpu_max",
    "parse_cfs_quota",
    "BusyMeter",
    "tune_cpu_allocator",
]

# A CPU counts as taken when other processes keep it busy this fraction of the time or more.
BUSY_THRESHOLD = 0.5


@dataclass(frozen=True)
class ThreadDecision:
    """The thread count chosen and why.

    Attributes
    ----------
    threads : int
        Intra-op threads now set in torch.
    source : str
        ``"OMP_NUM_THREADS"``, ``"IRN_THREADS"`` or ``"auto"``.
    reason : str
        One line for logs, e.g. ``"auto: 2 CPUs allowed, no quota, 1.0 busy elsewhere"``.
    """

    threads: int
    source: str
    reason: str


# --------------------------------------------------------------------------------------
# the pure decisions (unit-tested)
# --------------------------------------------------------------------------------------


def read_override(environ) -> tuple[str, int | None]:
    """What the environment asks for.

    Parameters
    ----------
    environ : mapping
        The environment, e.g. ``os.environ``.

    Returns
    -------
    (source, threads) : tuple of str and int or None
        ``("OMP_NUM_THREADS", None)`` when ``OMP_NUM_THREADS`` is set (leave torch alone),
        ``("IRN_THREADS", n)`` for ``IRN_THREADS=n``, ``("auto", None)`` for ``auto`` or unset.

    Raises
    ------
    ValueError
        ``IRN_THREADS`` is neither a positive integer nor ``auto``.
    """
    if environ.get("OMP_NUM_THREADS", "").strip():
        return "OMP_NUM_THREADS", None
    value = environ.get("IRN_THREADS", "auto").strip().lower()
    if value in ("", "auto"):
        return "auto", None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"IRN_THREADS={environ['IRN_THREADS']!r}: use a positive integer or 'auto'")
    return "IRN_THREADS", int(value)


def cpu_capacity(allowed: int, quota: float | None = None, ceiling: int | None = None) -> int:
    """CPUs the process may use: its allowed CPUs, capped by the quota (rounded down) and the ceiling.

    Parameters
    ----------
    allowed : int
        CPUs in the affinity mask.
    quota : float or None
        cgroup CPU quota in CPUs (``1.5`` = 150 ms per 100 ms period); None when unlimited.
    ceiling : int or None
        An upper bound of its own, e.g. torch's default thread count (physical cores).

    Returns
    -------
    int
        At least 1.
    """
    capacity = allowed
    if quota is not None:
        capacity = min(capacity, math.floor(quota))
    if ceiling is not None:
        capacity = min(capacity, ceiling)
    return max(1, capacity)


def decide_threads(allowed: int, quota: float | None, busy_elsewhere: float, ceiling: int | None = None) -> int:
    """Intra-op threads for a process: its CPU capacity minus the CPUs other processes keep busy.

    A CPU counts as taken when it is busy elsewhere half the time or more
    (:data:`BUSY_THRESHOLD`), so a light background (a shell, an editor) keeps all threads.

    Parameters
    ----------
    allowed, quota, ceiling
        As for :func:`cpu_capacity`.
    busy_elsewhere : float
        CPUs (of the allowed ones) busy with other processes, e.g. ``1.0`` for one other
        single-threaded CPU-bound process.

    Returns
    -------
    int
        Between 1 and the capacity.

    Examples
    --------
    >>> decide_threads(2, None, 0.1)     # idle 2-core machine
    2
    >>> decide_threads(2, None, 1.0)     # one other training on it
    1
    >>> decide_threads(16, 4.0, 0.0)     # a container limited to 4 CPUs of 16
    4
    """
    capacity = cpu_capacity(allowed, quota, ceiling)
    taken = math.floor(max(0.0, busy_elsewhere) + (1 - BUSY_THRESHOLD))
    return max(1, min(capacity, capacity - taken))


def next_threads(current: int, target: int, previous_target: int | None) -> int:
    """The thread count after a re-measurement: down at once, up only when confirmed.

    Parameters
    ----------
    current : int
        Threads now.
    target : int
        :func:`decide_threads` for the latest measurement.
    previous_target : int or None
        The target of the measurement before (None for none).

    Returns
    -------
    int
        ``target`` when it is lower than ``current``; when it is higher, the lower of the last two
        targets (so one quiet interval of the other process does not add threads); else ``current``.
    """
    if target < current:
        return target
    if target > current and previous_target is not None:
        return max(current, min(target, previous_target))
    return current


# --------------------------------------------------------------------------------------
# reading the machine
# --------------------------------------------------------------------------------------


def allowed_cpus() -> set[int]:
    """Indices of the CPUs this process may run on (all of them where affinity is not supported)."""
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return set(range(os.cpu_count() or 1))


def parse_cpu_max(text: str) -> float | None:
    """cgroup v2 ``cpu.max`` (``"150000 100000"`` or ``"max 100000"``) as CPUs, None when unlimited."""
    fields = text.split()
    if not fields or fields[0] == "max":
        return None
    period = float(fields[1]) if len(fields) > 1 else 100000.0
    return float(fields[0]) / period


def parse_cfs_quota(quota: str, period: str) -> float | None:
    """cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` as CPUs, None when unlimited (-1)."""
    q, p = int(quota.strip()), int(period.strip())
    return None if q <= 0 or p <= 0 else q / p


def _cgroup_paths(root: Path = Path("/proc/self/cgroup")) -> dict[str, str]:
    """Controller → cgroup path of this process (``""`` is the v2 unified hierarchy)."""
    paths = {}
    try:
        for line in root.read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                paths[name] = path
    except (OSError, ValueError):
        pass
    return paths


def _candidates(mount: Path, path: str) -> list[Path]:
    """The process's cgroup folder and its parents (in a container the mount may be the root)."""
    folder = mount / path.lstrip("/")
    return [folder, *folder.parents[: len(folder.relative_to(mount).parts)]] if path else [mount]


def cpu_quota(mount: Path = Path("/sys/fs/cgroup")) -> float | None:
    """The cgroup CPU quota of this process in CPUs (the tightest along its path), None when unlimited."""
    paths, quotas = _cgroup_paths(), []
    for folder in _candidates(mount, paths.get("", "/")):  # v2
        try:
            quotas.append(parse_cpu_max((folder / "cpu.max").read_text()))
        except (OSError, ValueError, IndexError):
            pass
    for controller in ("cpu", "cpu,cpuacct"):  # v1
        for folder in _candidates(mount / controller, paths.get("cpu", "/")):
            try:
                quota = (folder / "cpu.cfs_quota_us").read_text()
                quotas.append(parse_cfs_quota(quota, (folder / "cpu.cfs_period_us").read_text()))
            except (OSError, ValueError):
                pass
    quotas = [q for q in quotas if q is not None]
    return min(quotas) if quotas else None


def _cpu_busy_seconds(cpus: set[int], stat: Path = Path("/proc/stat")) -> float | None:
    """Seconds the given CPUs have spent busy since boot (all processes), None without ``/proc/stat``."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    busy = 0
    try:
        lines = stat.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        name, *fields = line.split()
        if name.startswith("cpu") and name[3:].isdigit() and int(name[3:]) in cpus:
            user, nice, system, idle, iowait, irq, softirq, steal = (int(f) for f in fields[:8])
            busy += user + nice + system + irq + softirq + steal  # steal: the hypervisor gave it to others
    return busy / tick


class BusyMeter:
    """CPUs kept busy by *other* processes, over the time since the last reading.

    On Linux: the busy time of the allowed CPUs (``/proc/stat``) minus this process's own CPU
    time (all its threads, ``time.process_time``). Elsewhere: the 1-minute load average minus
    this process's own CPU use.
    """

    def __init__(self, cpus: set[int] | None = None):
        self.cpus = cpus if cpus is not None else allowed_cpus()
        self._last = self._now()

    def _now(self) -> tuple[float, float, float | None]:
        return time.monotonic(), time.process_time(), _cpu_busy_seconds(self.cpus)

    def elapsed(self) -> float:
        """Seconds since the last reading."""
        return time.monotonic() - self._last[0]

    def read(self) -> float:
        """CPUs busy elsewhere since the last reading (or construction); starts a new interval."""
        (t0, own0, busy0), (t1, own1, busy1) = self._last, self._now()
        self._last = (t1, own1, busy1)
        wall = max(t1 - t0, 1e-6)
        own = (own1 - own0) / wall  # CPUs this process used
        if busy0 is None or busy1 is None:
            return max(0.0, os.getloadavg()[0] - own) if hasattr(os, "getloadavg") else 0.0
        # /proc/stat counts whole clock ticks (10 ms): over a short interval one tick more can read
        # as more CPUs than there are, and no other process can keep more busy than that.
        return min(float(len(self.cpus)), max(0.0, (busy1 - busy0) / wall - own))


# --------------------------------------------------------------------------------------
# applying it
# --------------------------------------------------------------------------------------


class _Policy:
    """The process's policy state: what was decided at start, and the last re-measurement."""

    def __init__(self, decision: ThreadDecision, meter: BusyMeter | None, capacity: int):
        self.decision, self.meter, self.capacity = decision, meter, capacity
        self.previous_target: int | None = None


_policy: _Policy | None = None


def apply_thread_policy(environ=None, sample_seconds: float = 0.25, force: bool = False) -> ThreadDecision:
    """Set torch's intra-op threads from the environment or the machine; once per process.

    Parameters
    ----------
    environ : mapping, optional
        The environment (default ``os.environ``): ``OMP_NUM_THREADS`` wins, then
        ``IRN_THREADS=<n>|auto`` (default auto).
    sample_seconds : float
        How long to watch the CPUs for other processes' load before deciding (auto only).
    force : bool
        Decide again even if the policy was applied already in this process.

    Returns
    -------
    ThreadDecision
        The threads set, their source and a one-line reason.

    Raises
    ------
    ValueError
        A malformed ``IRN_THREADS``.
    """
    global _policy
    if _policy is not None and not force:
        return _policy.decision

    source, fixed = read_override(os.environ if environ is None else environ)
    if source == "OMP_NUM_THREADS":
        decision = ThreadDecision(
            torch.get_num_threads(), source, f"OMP_NUM_THREADS: {torch.get_num_threads()} threads"
        )
        _policy = _Policy(decision, None, decision.threads)
        return decision
    if source == "IRN_THREADS":
        torch.set_num_threads(fixed)
        _policy = _Policy(ThreadDecision(fixed, source, f"IRN_THREADS={fixed}"), None, fixed)
        return _policy.decision
    ceiling = _torch_default_threads()
    cpus, quota = allowed_cpus(), cpu_quota()
    meter = BusyMeter(cpus)
    time.sleep(sample_seconds)
    busy = meter.read()
    threads = decide_threads(len(cpus), quota, busy, ceiling)
    torch.set_num_threads(threads)
    quota_text = "no quota" if quota is None else f"quota {quota:g} CPUs"
    plural = "s" * (threads > 1)
    reason = f"auto: {len(cpus)} CPUs allowed, {quota_text}, {busy:.1f} busy elsewhere -> {threads} thread{plural}"
    _policy = _Policy(ThreadDecision(threads, source, reason), meter, cpu_capacity(len(cpus), quota, ceiling))
    return _policy.decision


def adjust_threads(interval: float = 5.0) -> int | None:
    """Follow the machine's load during long work; call it as often as you like (e.g. every step).

    Does nothing unless :func:`apply_thread_policy` chose the threads automatically and at least
    ``interval`` seconds passed since the last measurement; then measures the CPUs busy elsewhere
    over that time and applies :func:`next_threads`.

    Parameters
    ----------
    interval : float
        Minimum seconds between measurements.

    Returns
    -------
    int or None
        The new thread count when it changed, else None.
    """
    policy = _policy
    if policy is None or policy.meter is None or policy.meter.elapsed() < interval:
        return None

    target = decide_threads(policy.capacity, None, policy.meter.read())
    current = torch.get_num_threads()
    threads = next_threads(current, target, policy.previous_target)
    policy.previous_target = target
    if threads == current:
        return None
    torch.set_num_threads(threads)
    return threads


_default_threads: int | None = None


def _torch_default_threads() -> int:
    """torch's thread count before the policy first changed it (its default: the physical cores)."""
    global _default_threads
    if _default_threads is None:
        _default_threads = torch.get_num_threads()
    return _default_threads


def tune_cpu_allocator() -> bool:
    """Keep freed memory in the process instead of returning it to the OS (glibc only).

    A training step allocates and frees the same large tensors every iteration, and so does
    every image of an evaluation. glibc serves blocks above 32 MB with fresh ``mmap`` pages,
    which the kernel must fault in and zero each time; on CPU that costs a noticeable share
    of a step, and about half of a whole-image IRN round trip of a 512² image (measured).
    Disabling ``mmap`` for ``malloc`` (``M_MMAP_MAX = 0``) and raising the trim threshold
    makes the heap reuse those pages instead. Process-wide; the numbers computed are unchanged. Returns whether
    it applied (``False`` on a non-glibc platform).
    """

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
        return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 1 << 30))
    except (OSError, AttributeError):
        return False
