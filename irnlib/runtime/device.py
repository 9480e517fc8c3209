"""Which torch device: the one place a device is chosen from what the user wrote.

``"auto"`` means CUDA when this torch can use it, else the CPU; every command, notebook and
training takes its device through :func:`usable_device`, which refuses a device that is not
there with one line saying what to use instead.
"""

from __future__ import annotations

import torch

__all__ = ["resolve_device", "device_problem", "usable_device", "net_device"]


def resolve_device(device="auto") -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def device_problem(device: torch.device) -> str | None:
    """Why ``device`` cannot be used in this process, or None when it can.

    Parameters
    ----------
    device : torch.device

    Returns
    -------
    str or None
        E.g. ``"this torch (2.3.0+cpu) is built without CUDA"`` or ``"no such GPU (0 visible)"``.
    """
    if device.type != "cuda":
        return None
    if torch.version.cuda is None and torch.version.hip is None:
        return f"this torch ({torch.__version__}) is built without CUDA"
    if not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count():
        return f"no such GPU ({torch.cuda.device_count()} visible)"
    return None


def usable_device(name: str, spelled: str = "device={}") -> torch.device:
    """:func:`resolve_device` of ``name``, refused when it is not a device or not usable here.

    Parameters
    ----------
    name : str
        ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ...
    spelled : str
        How the user writes the choice, for the message: ``"--device {}"`` or ``"device={}"``.

    Raises
    ------
    ValueError
        One line naming the choice, the problem and what to use instead.
    """
    try:
        device = resolve_device(name)
    except RuntimeError:
        raise ValueError(f"{spelled.format(name)}: not a device; use auto, cpu, cuda or cuda:N") from None
    problem = device_problem(device)
    if problem:
        raise ValueError(
            f"{spelled.format(name)}: {problem}; use {spelled.format('cpu')} or {spelled.format('auto')} "
            "(a GPU needs a CUDA build of torch)"
        )
    return device


def net_device(net: torch.nn.Module) -> torch.device:
    """The device a network's weights are on."""
    return next(net.parameters()).device
