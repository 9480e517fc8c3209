"""The thread policy (irnlib.runtime.threads): its decisions from allowed CPUs, quota and load, the
environment's overrides, and the machine readers on fake cgroup and /proc files. No timings."""

import importlib
import platform

import pytest
import torch

from irnlib.app.cli import main
from irnlib.runtime import threads
from irnlib.runtime.threads import (
    BusyMeter,
    adjust_threads,
    apply_thread_policy,
    cpu_capacity,
    decide_threads,
    next_threads,
    parse_cfs_quota,
    parse_cpu_max,
    read_override,
    tune_cpu_allocator,
)


@pytest.fixture(autouse=True)
def fresh_policy(monkeypatch):
    """Each test starts with no policy applied and gets torch's thread count back afterwards."""
    before = torch.get_num_threads()
    monkeypatch.setattr(threads, "_policy", None)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------------------
# decisions: allowed CPUs, quota, load -> threads
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "allowed, quota, busy, ceiling, expected",
    [
        (2, None, 0.0, None, 2),  # idle 2-core machine: keep the idle speed
        (2, None, 0.3, None, 2),  # a light background (shell, editor) does not cost a thread
        (2, None, 0.5, None, 1),  # half a CPU busy elsewhere counts as taken
        (2, None, 1.0, None, 1),  # one other training: the case that collapsed 50x
        (2, None, 2.0, None, 1),  # a fully busy machine: never below 1
        (2, None, 3.4, None, 1),  # oversubscribed (load > CPUs)
        (16, None, 5.2, None, 11),
        (16, 4.0, 0.0, None, 4),  # a container limited to 4 CPUs
        (16, 2.5, 0.0, None, 2),  # a fractional quota rounds down
        (16, 0.5, 0.0, None, 1),  # ... but never below 1
        (4, 8.0, 0.0, None, 4),  # a quota above the affinity mask changes nothing
        (8, None, 0.0, 4, 4),  # torch's default (physical cores) caps the count
        (8, 6.0, 3.0, 4, 1),  # every cap together, then the load
        (2, None, -0.2, None, 2),  # a negative (noisy) reading is taken as 0
    ],
)
def test_decide_threads(allowed, quota, busy, ceiling, expected):
    assert decide_threads(allowed, quota, busy, ceiling) == expected


def test_capacity_is_the_tightest_limit_and_at_least_one():
    assert cpu_capacity(8) == 8
    assert cpu_capacity(8, quota=3.9) == 3
    assert cpu_capacity(8, quota=3.9, ceiling=2) == 2
    assert cpu_capacity(1, quota=0.1) == 1


@pytest.mark.parametrize(
    "current, target, previous, expected",
    [
        (2, 1, None, 1),  # another process took a CPU: fewer threads at once
        (2, 1, 2, 1),
        (1, 2, None, 1),  # more threads only once the quiet spell is confirmed
        (1, 2, 1, 1),  # one quiet interval of the other process: stay
        (1, 2, 2, 2),  # two in a row: take the CPU back
        (1, 4, 3, 3),  # the lower of the two confirming targets
        (2, 2, 1, 2),
    ],
)
def test_next_threads_goes_down_at_once_and_up_when_confirmed(current, target, previous, expected):
    assert next_threads(current, target, previous) == expected


# --------------------------------------------------------------------------------------
# the environment
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "environ, expected",
    [
        ({}, ("auto", None)),
        ({"IRN_THREADS": "auto"}, ("auto", None)),
        ({"IRN_THREADS": " AUTO "}, ("auto", None)),
        ({"IRN_THREADS": "3"}, ("IRN_THREADS", 3)),
        ({"OMP_NUM_THREADS": "1"}, ("OMP_NUM_THREADS", None)),
        ({"OMP_NUM_THREADS": "1", "IRN_THREADS": "4"}, ("OMP_NUM_THREADS", None)),  # explicit OpenMP wins
        ({"OMP_NUM_THREADS": ""}, ("auto", None)),  # set but empty: not a choice
    ],
)
def test_read_override(environ, expected):
    assert read_override(environ) == expected


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5"])
def test_a_malformed_irn_threads_is_refused_with_its_value(value):
    with pytest.raises(ValueError, match=f"IRN_THREADS='{value}'"):
        read_override({"IRN_THREADS": value})


def test_omp_num_threads_is_left_alone():
    torch.set_num_threads(1)
    decision = apply_thread_policy({"OMP_NUM_THREADS": "1", "IRN_THREADS": "2"})
    assert decision.source == "OMP_NUM_THREADS" and decision.threads == 1
    assert torch.get_num_threads() == 1


def test_irn_threads_fixes_the_count_and_is_not_adjusted(monkeypatch):
    decision = apply_thread_policy({"IRN_THREADS": "2"})
    assert (decision.threads, decision.source, torch.get_num_threads()) == (2, "IRN_THREADS", 2)
    assert adjust_threads(interval=0) is None and torch.get_num_threads() == 2


def test_auto_uses_the_machine_readings(monkeypatch):
    monkeypatch.setattr(threads, "allowed_cpus", lambda: {0, 1})
    monkeypatch.setattr(threads, "cpu_quota", lambda: None)
    monkeypatch.setattr(threads.BusyMeter, "read", lambda self: 1.0)  # one other training
    decision = apply_thread_policy({}, sample_seconds=0)
    assert decision.source == "auto" and decision.threads == 1 == torch.get_num_threads()
    assert "2 CPUs allowed" in decision.reason and "1.0 busy elsewhere" in decision.reason


def test_the_policy_is_applied_once_per_process(monkeypatch):
    first = apply_thread_policy({"IRN_THREADS": "1"})
    assert apply_thread_policy({"IRN_THREADS": "2"}) is first and torch.get_num_threads() == 1
    assert apply_thread_policy({"IRN_THREADS": "2"}, force=True).threads == 2


def test_adjust_threads_follows_the_load(monkeypatch):
    readings = iter([0.0, 1.2, 0.1, 0.1])  # start idle; another training starts; it ends
    monkeypatch.setattr(threads, "allowed_cpus", lambda: {0, 1})
    monkeypatch.setattr(threads, "cpu_quota", lambda: None)
    monkeypatch.setattr(threads, "_torch_default_threads", lambda: 2)
    monkeypatch.setattr(threads.BusyMeter, "read", lambda self: next(readings))
    assert apply_thread_policy({}, sample_seconds=0).threads == 2
    assert adjust_threads(interval=3600) is None  # not yet time to measure
    assert adjust_threads(interval=0) == 1 == torch.get_num_threads()  # down at once
    assert adjust_threads(interval=0) is None  # one quiet interval: stay at 1
    assert adjust_threads(interval=0) == 2 == torch.get_num_threads()  # confirmed: back to 2


def test_adjust_threads_without_a_policy_does_nothing():
    assert adjust_threads(interval=0) is None


def test_the_command_line_refuses_a_malformed_irn_threads(monkeypatch, capsys, tmp_path):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("IRN_THREADS", "lots")
    assert main(["downscale", str(tmp_path / "a.png"), str(tmp_path / "b.png")]) == 2
    assert main(["train", "--help"]) == 2
    err = capsys.readouterr().err
    assert err.count("irn: error: IRN_THREADS='lots': use a positive integer or 'auto'") == 2


def test_the_command_line_applies_the_policy(monkeypatch, tmp_path):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setenv("IRN_THREADS", "1")
    main(
        ["downscale", str(tmp_path / "missing.png"), str(tmp_path / "b.png"), "--scale", "2"]
    )  # fails later: no matter
    assert threads._policy.decision.source == "IRN_THREADS" and torch.get_num_threads() == 1


# --------------------------------------------------------------------------------------
# reading the machine: cgroup files, /proc/stat
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected", [("max 100000\n", None), ("150000 100000\n", 1.5), ("200000 50000", 4.0), ("", None)]
)
def test_parse_cpu_max(text, expected):
    assert parse_cpu_max(text) == expected


@pytest.mark.parametrize(
    "quota, period, expected", [("-1\n", "100000\n", None), ("50000", "100000", 0.5), ("300000", "100000", 3.0)]
)
def test_parse_cfs_quota(quota, period, expected):
    assert parse_cfs_quota(quota, period) == expected


def test_cpu_quota_reads_cgroup_v2_along_the_path(monkeypatch, tmp_path):
    (tmp_path / "job" / "step").mkdir(parents=True)
    (tmp_path / "cpu.max").write_text("max 100000\n")
    (tmp_path / "job" / "cpu.max").write_text("300000 100000\n")  # the parent's limit binds
    (tmp_path / "job" / "step" / "cpu.max").write_text("max 100000\n")
    monkeypatch.setattr(threads, "_cgroup_paths", lambda: {"": "/job/step"})
    assert threads.cpu_quota(tmp_path) == 3.0


def test_cpu_quota_reads_cgroup_v1(monkeypatch, tmp_path):
    folder = tmp_path / "cpu,cpuacct" / "docker"
    folder.mkdir(parents=True)
    (folder / "cpu.cfs_quota_us").write_text("150000\n")
    (folder / "cpu.cfs_period_us").write_text("100000\n")
    monkeypatch.setattr(threads, "_cgroup_paths", lambda: {"cpu": "/docker", "cpuacct": "/docker", "": "/"})
    assert threads.cpu_quota(tmp_path) == 1.5


def test_cpu_quota_is_none_without_cgroup_files(monkeypatch, tmp_path):
    monkeypatch.setattr(threads, "_cgroup_paths", lambda: {})
    assert threads.cpu_quota(tmp_path) is None


def test_busy_seconds_counts_only_the_allowed_cpus(tmp_path):
    stat = tmp_path / "stat"
    stat.write_text(
        "cpu  900 0 90 900 9 0 0 0 0 0\n"
        "cpu0 100 10 50 400 5 3 2 20 0 0\n"  # busy: user nice system irq softirq steal = 185 ticks
        "cpu1 700 0 30 500 4 0 0 0 0 0\n"
        "intr 12345\n"
    )
    tick = threads.os.sysconf("SC_CLK_TCK")
    assert threads._cpu_busy_seconds({0}, stat) == pytest.approx(185 / tick)
    assert threads._cpu_busy_seconds({0, 1}, stat) == pytest.approx((185 + 730) / tick)
    assert threads._cpu_busy_seconds({0}, tmp_path / "missing") is None


def test_busy_meter_reads_something_sane_on_this_machine():
    meter = BusyMeter()
    sum(range(10**5))
    busy = meter.read()
    assert 0.0 <= busy <= len(meter.cpus) + 0.5


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the allocator setting is for glibc only")
def test_allocator_setting_applies_on_glibc():
    assert tune_cpu_allocator() is True
    assert tune_cpu_allocator() is True  # idempotent: applying it again is harmless


class _PolicyApplied(Exception):
    pass


@pytest.mark.parametrize(
    "module, argv",
    [
        ("panel", ["--scale", "2"]),
        ("panel_cause", ["--image", "synthetic/gradients", "--scale", "2"]),
        ("latent_scale", ["--checkpoint", "a=100=IRN_x2.pth"]),
        ("modelcard", ["results/runs/quick_x2"]),
    ],
)
def test_the_measuring_commands_apply_the_thread_policy_before_their_work(monkeypatch, module, argv):
    """Minutes of measuring beside a training keep to IRN_THREADS as the training does."""
    command = importlib.import_module(f"irnlib.experiments.{module}")

    def applied(*args, **kwargs):
        raise _PolicyApplied

    monkeypatch.setattr(command, "apply_thread_policy", applied)
    with pytest.raises(_PolicyApplied):  # the first thing main does after reading its arguments
        command.main(argv)
