"""Where a number came from: commit, date, machine, device, library versions.

Every table, log and figure the kit writes carries one of these records beside it.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
import secrets
import subprocess
import sys

import torch

from irnlib.runtime.paths import REPO_ROOT

__all__ = [
    "git_commit",
    "cpu_model",
    "device_name",
    "make_run_id",
    "current_run_id",
    "provenance",
    "provenance_markdown",
    "command_line",
]


def make_run_id(now: _dt.datetime | None = None) -> str:
    """A new unique, sortable run id: ``YYYYmmddTHHMMSSZ-xxxxxx`` (UTC)."""
    now = now or _dt.datetime.now(_dt.timezone.utc)
    return f"{now:%Y%m%dT%H%M%SZ}-{secrets.token_hex(3)}"


def current_run_id() -> str:
    """The pipeline's run id (``$IRN_RUN_ID``, set by ``irn reproduce``), else a new one."""
    return os.environ.get("IRN_RUN_ID") or make_run_id()


def git_commit(repo=REPO_ROOT) -> str:
    """Short commit hash of the kit's checkout, with ``+dirty`` if files changed; ``unknown`` outside git."""
    try:
        run = lambda *args: subprocess.run(  # noqa: E731
            ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        commit = run("rev-parse", "--short=12", "HEAD")
        dirty = run("status", "--porcelain", "--untracked-files=no")
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of ``/proc/cpuinfo`` (empty where there is none)."""
    fields = {}
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8", errors="replace"):
            key, _, value = line.partition(":")
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields


def native_bf16() -> str | None:
    """The instruction set that runs bfloat16 matrix arithmetic natively on this CPU:
    ``"amx"`` (AMX-BF16), ``"avx512_bf16"``, or None (bf16 would be emulated, slower than fp32)."""
    flags = set(_cpuinfo().get("flags", "").split())
    return "amx" if "amx_bf16" in flags else "avx512_bf16" if "avx512_bf16" in flags else None


def cpu_model() -> str:
    """The CPU's model name and the capabilities that change the kit's speed, e.g.
    ``AMD EPYC; family 25 model 1; avx2`` or ``Intel Xeon ...; family 6 model 143; avx2, avx512, amx``."""
    fields = _cpuinfo()
    if not fields:
        return platform.processor() or platform.machine()
    flags = set(fields.get("flags", "").split())
    caps = [
        name
        for name, flag in (("avx2", "avx2"), ("avx512", "avx512f"), ("avx512_bf16", "avx512_bf16"), ("amx", "amx_bf16"))
        if flag in flags
    ]
    family = f"family {fields.get('cpu family', '?')} model {fields.get('model', '?')}"
    return f"{fields.get('model name', platform.machine())}; {family}; {', '.join(caps) or 'no avx2'}"


def device_name(device=None) -> str:
    """Human-readable name of a torch device, e.g. ``NVIDIA H100 80GB HBM3`` or
    ``CPU (AMD EPYC; family 25 model 1; avx2; 2 threads)``."""
    device = torch.device(device if device is not None else "cpu")
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({cpu_model()}; {torch.get_num_threads()} threads)"


def provenance(device=None, **extra) -> dict:
    """A provenance record: ``extra`` fields (data, iterations, checkpoint, ...) plus the environment."""
    record = dict(extra)
    if os.environ.get("IRN_RUN_ID"):  # set by the pipeline (``irn reproduce``) for every notebook
        record.setdefault("run_id", os.environ["IRN_RUN_ID"])
    record.update(
        commit=git_commit(),
        date=_dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        device=device_name(device),
        host=platform.node(),
        python=sys.version.split()[0],
        torch=torch.__version__,
    )
    return record


def provenance_markdown(record: dict, title: str = "Provenance") -> str:
    """The record as a small Markdown list, for the foot of a generated table."""
    lines = [f"**{title}**", ""]
    lines += [f"- {key}: {value}" for key, value in record.items()]
    return "\n".join(lines) + "\n"


def command_line(module: str, argv=None) -> str:
    """The sentence a command's Markdown report ends its legend with: how to run it again and where it ran.

    ``Command: `python -m MODULE ARGS`; commit C; date D; CPU M; N torch threads.``, ``ARGS`` being
    ``argv`` (default: this process's arguments).
    """
    args = " ".join(argv if argv is not None else sys.argv[1:])
    return (
        f"Command: `python -m {module} {args}`; commit {git_commit()}; "
        f"date {_dt.datetime.now(_dt.timezone.utc):%Y-%m-%d %H:%M UTC}; CPU {cpu_model()}; "
        f"{torch.get_num_threads()} torch threads."
    )
