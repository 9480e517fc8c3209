"""Loading official-format checkpoints: inference of the architecture, strictness, errors."""

import os
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import randomize
from PIL import Image

from irnlib import IRN, CheckpointError, load_checkpoint, save_model
from irnlib.app.cli import main
from irnlib.model import checkpoint


@pytest.mark.parametrize("scale,blocks", [(2, [8]), (4, [8, 8]), (8, [2, 3, 1])])
def test_round_trip_infers_scale_and_blocks(tmp_path, scale, blocks):
    net = randomize(IRN(scale, block_num=blocks), seed=scale)
    path = save_model(net, tmp_path / f"IRN_x{scale}.pth")
    loaded = load_checkpoint(path)
    assert (loaded.scale, loaded.block_num) == (scale, blocks)
    assert not loaded.training
    x = torch.rand(1, 3, 16, 16)
    torch.testing.assert_close(loaded(x), net(x))
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left nothing behind


def test_learned_downsampling_ablation_round_trip(tmp_path):
    net = randomize(IRN(4, block_num=[1, 2], downsampling="learned"))
    loaded = load_checkpoint(save_model(net, tmp_path / "ablation.pth"))
    assert (loaded.downsampling, loaded.block_num) == ("learned", [1, 2])
    x = torch.rand(1, 3, 8, 8)
    torch.testing.assert_close(loaded(x), net(x))


def test_official_format_with_module_prefix_and_kit_training_checkpoint(tmp_path):
    net = randomize(IRN(2))
    prefixed = {"module." + k: v for k, v in net.state_dict().items()}  # DataParallel-saved
    torch.save(prefixed, tmp_path / "official.pth")
    torch.save({"model": net.state_dict(), "iteration": 10, "optimizer": {"state": {}}}, tmp_path / "kit.pth")
    x = torch.rand(1, 3, 8, 8)
    for name in ("official.pth", "kit.pth"):
        torch.testing.assert_close(load_checkpoint(tmp_path / name)(x), net(x))


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.pth: checkpoint file not found"):
        load_checkpoint(tmp_path / "nothere.pth")


def test_truncated_file(tmp_path):
    path = save_model(IRN(2), tmp_path / "full.pth")
    data = path.read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="cut.pth: cannot be read as a PyTorch checkpoint"):
        load_checkpoint(tmp_path / "cut.pth")


def test_not_a_checkpoint(tmp_path):
    (tmp_path / "notes.pth").write_text("these are not weights\n")
    with pytest.raises(CheckpointError, match="notes.pth: cannot be read"):
        load_checkpoint(tmp_path / "notes.pth")
    torch.save({"weights": [1, 2, 3]}, tmp_path / "other.pth")
    with pytest.raises(CheckpointError, match="other.pth: holds no IRN state dict"):
        load_checkpoint(tmp_path / "other.pth")
    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "othernet.pth")
    with pytest.raises(CheckpointError, match="not an IRN state dict"):
        load_checkpoint(tmp_path / "othernet.pth")


def test_mismatched_weights_name_the_keys(tmp_path):
    state = IRN(4).state_dict()
    state["operations.1.F.conv1.weight"] = torch.zeros(16, 45, 3, 3)
    del state["operations.2.G.conv5.bias"]
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError, match=r"bad.pth.*operations.2.G.conv5.bias.*operations.1.F.conv1.weight"):
        load_checkpoint(tmp_path / "bad.pth")


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_code_in_a_checkpoint_is_never_executed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with open("evil.pth", "wb") as f:
        pickle.dump({"operations.0.haar_weights": _Exploit()}, f)
    with pytest.raises(CheckpointError):
        load_checkpoint("evil.pth")
    assert not (tmp_path / "PWNED").exists()


def test_code_in_a_checkpoint_gets_no_advice_to_disable_the_safe_loader(tmp_path):
    """Torch's hint that ``weights_only=False`` "will likely succeed" must not reach the user."""
    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"operations.0.haar_weights": _Exploit()}, f)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "evil.pth")
    message = str(err.value)
    assert "evil.pth: refused" in message and "not weights" in message
    assert "weights_only" not in message and "likely succeed" not in message
    assert err.value.__cause__ is None and err.value.__suppress_context__  # no chained torch text either


def test_no_pickle_protocol_warning_leaks(tmp_path):
    """A plain pickle (protocol 4) is refused without torch's UserWarning on stderr."""
    with open(tmp_path / "plain.pth", "wb") as f:
        pickle.dump({"operations.0.haar_weights": _Exploit()}, f, protocol=4)
    path = str(tmp_path / "plain.pth")
    script = f"from irnlib import load_checkpoint\ntry:\n    load_checkpoint({path!r})\nexcept ValueError:\n    pass\n"
    done = subprocess.run([sys.executable, "-W", "default", "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""


def test_wrong_shape_expects_what_the_network_needs_not_what_the_bad_tensor_says(tmp_path):
    """The first subnet's conv1 is the one architecture inference used to read the growth from."""
    state = IRN(2, block_num=[3]).state_dict()
    state["operations.1.F.conv1.weight"] = torch.zeros(16, 9, 3, 3)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(
        CheckpointError, match=r"operations\.1\.F\.conv1\.weight: \(16, 9, 3, 3\) \(expected \(32, 9, 3, 3\)\)"
    ):
        load_checkpoint(tmp_path / "bad.pth")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused(tmp_path, bad):
    net = randomize(IRN(2, block_num=[2]))
    state = net.state_dict()
    state["operations.2.G.conv3.weight"][0, 0, 0, 0] = bad
    path = tmp_path / "diverged.pth"
    torch.save(state, path)
    with pytest.raises(
        CheckpointError,
        match=r"diverged.pth: 1 of \d+ tensors hold NaN or infinite values "
        r"\(operations.2.G.conv3.weight \(1 of \d+\)\).*use another checkpoint",
    ):
        load_checkpoint(path)


# ----------------------------------------------------------------------------------------
# Hostile and damaged checkpoints: checked before any network is built, refused in one line


@pytest.fixture
def no_network(monkeypatch):
    """Make building an IRN in the loader a test failure: refusals must come before it."""

    def refuse(*args, **kwargs):
        if torch.get_default_device().type == "meta":  # expected_shapes: the layout, no memory
            return IRN(*args, **kwargs)
        raise AssertionError(f"the loader built IRN({args}, {kwargs}) for a checkpoint it should refuse")

    monkeypatch.setattr(checkpoint, "IRN", refuse)


def _refused(path) -> str:
    """The one-line :class:`CheckpointError` message ``load_checkpoint(path)`` refuses ``path`` with."""
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "\n" not in message, message
    assert err.value.__cause__ is None
    return message


@pytest.mark.parametrize(
    "arch",
    [
        {"scale": 2, "block_num": [1]},
        {"scale": 4, "block_num": [2, 0], "channels": 1, "gc": 8},
        {"scale": 8, "block_num": [1, 1, 1], "channels": 4, "gc": 4, "downsampling": "learned"},
    ],
)
def test_expected_shapes_are_those_of_the_network(arch):
    """The shapes the loader checks before building anything are exactly the network's, in its order."""
    built = [(k, tuple(v.shape)) for k, v in IRN(**arch).state_dict().items()]
    assert list(checkpoint.expected_shapes(**arch).items()) == built


def test_a_huge_block_index_is_refused_before_any_network_is_built(tmp_path, no_network):
    """A 2 KB file naming InvBlock 2,000,000 used to build the network first: out of memory."""
    state = {"operations.0.haar_weights": IRN(2, block_num=[0]).state_dict()["operations.0.haar_weights"]}
    state["operations.2000000.F.conv1.weight"] = torch.zeros(32, 9, 3, 3)
    torch.save(state, tmp_path / "huge.pth")
    assert (tmp_path / "huge.pth").stat().st_size < 16_000
    message = _refused(tmp_path / "huge.pth")
    assert "'operations.2000000.F.conv1.weight' asks for 2,000,000 InvBlocks after Haar level 1" in message
    assert f"at most {checkpoint.MAX_BLOCKS_PER_LEVEL} per level (MAX_BLOCKS_PER_LEVEL" in message


def _state(**change):
    """A small valid x2 state dict (one InvBlock), with ``change`` applied (``None`` deletes a key)."""
    state = IRN(2, block_num=[1], gc=4).state_dict()
    for key, value in change.items():
        key = key.replace("__", ".")
        state.pop(key) if value is None else state.__setitem__(key, value)
    return state


HAAR = "operations__0__haar_weights"
CONV1 = "operations__1__F__conv1__weight"


@pytest.mark.parametrize(
    "content, expected",
    [
        (torch.zeros(3), "holds no IRN state dict (found a Tensor)"),
        ([torch.zeros(3)], "holds no IRN state dict (found a list)"),
        ({}, "holds no IRN state dict (found an empty dict)"),
        ({0: torch.zeros(1)}, "found key 0 of type int, not a string"),
        ({**_state(), ("a", 1): torch.zeros(1)}, "found key <tuple> of type tuple, not a string"),
        (_state(operations__1__F__conv1__bias="x"), "'operations.1.F.conv1.bias': str, not a tensor"),
        (_state(operations__1__G__conv5__bias=[0.0]), "'operations.1.G.conv5.bias': list, not a tensor"),
        (
            _state(**{HAAR: torch.tensor(1.0)}),
            "the first Haar level's weights have shape (); an IRN's are (4C, 1, 2, 2)",
        ),
        (_state(**{HAAR: torch.zeros(0, 1, 2, 2)}), "the first Haar level's weights have shape (0, 1, 2, 2)"),
        (_state(**{HAAR: torch.zeros(1).expand(4 * 10**9, 1, 2, 2)}), "means 1,000,000,000 image channels"),
        ({k: torch.empty(v.shape, device="meta") for k, v in _state().items()}, "is a meta tensor"),
        ({k: v.to(torch.complex64) for k, v in _state().items()}, "has dtype complex64, not real floating point"),
        (_state(**{CONV1: torch.zeros(4, 9, 3, 3, dtype=torch.int64)}), "has dtype int64, not real floating point"),
        (_state(**{CONV1: torch.zeros(4, 9, 3, 3, dtype=torch.bool)}), "has dtype bool, not real floating point"),
        (_state(**{CONV1: torch.zeros(4, 9, 3, 3).to_sparse()}), "is a sparse_coo tensor, not a dense one"),
        ({"model": _state(), "average": torch.zeros(3)}, "'average' is a Tensor, not the moving average's"),
        ({**_state(), "module.operations.0.haar_weights": torch.zeros(12, 1, 2, 2)}, "both with and without"),
        ({**_state(), f"operations.{'9' * 5000}.H.conv5.bias": torch.zeros(1)}, "more than a billion InvBlocks"),
        ({"operations.00.haar_weights": torch.zeros(12, 1, 2, 2)}, "unexpected keys ['operations.00.haar_weights']"),
        (
            {**_state(), "operations.70.haar_weights": torch.zeros(1)},
            "'operations.70.haar_weights' asks for 69 InvBlocks after Haar level 1",
        ),
    ],
)
def test_hostile_checkpoints_are_refused_in_one_line_without_building_a_network(
    tmp_path, no_network, content, expected
):
    """Each of these used to end in a traceback (IndexError, AttributeError, RuntimeError, ValueError, a
    NotImplementedError from a sparse or float8 tensor, an allocation of terabytes) or, for complex
    weights, to load with a warning that the imaginary part was dropped."""
    torch.save(content, tmp_path / "bad.pth")
    message = _refused(tmp_path / "bad.pth")
    assert expected in message
    assert "use an official IRN_x2/x4/x8.pth" in message or "expected a dict of tensors" in message


def test_growth_channels_beyond_the_bound_are_refused(tmp_path, no_network):
    """Conv1 weights that agree on a huge growth (zero-stride tensors: a tiny file) ask for a huge network."""
    state = _state()
    for subnet in "FGH":
        key = f"operations.1.{subnet}.conv1.weight"
        state[key] = torch.zeros(1).expand(10**8, *state[key].shape[1:])
    torch.save(state, tmp_path / "wide.pth")
    message = _refused(tmp_path / "wide.pth")
    assert f"100,000,000 output (growth) channels; IRN has 1 to {checkpoint.MAX_GROWTH} (MAX_GROWTH" in message


def test_a_network_beyond_the_parameter_bound_is_refused(tmp_path, no_network):
    """Every dimension within its bound, the whole beyond MAX_PARAMETERS: refused before building."""
    state = {"operations.0.haar_weights": torch.zeros(1).expand(4 * checkpoint.MAX_CHANNELS, 1, 2, 2)}
    state["operations.1.haar_weights"] = state["operations.2.haar_weights"] = torch.zeros(1)
    state[f"operations.{2 + checkpoint.MAX_BLOCKS_PER_LEVEL}.F.conv1.weight"] = torch.zeros(1)
    torch.save(state, tmp_path / "big.pth")
    message = _refused(tmp_path / "big.pth")
    assert f"more than the {checkpoint.MAX_PARAMETERS:,} (MAX_PARAMETERS) accepted" in message


def test_wrong_shapes_of_zero_stride_tensors_are_named_without_touching_their_values(tmp_path, no_network):
    """A conv weight of 10**15 elements (one stored) is a wrong shape, not a NaN scan of 4 PB."""
    state = _state(operations__1__G__conv5__weight=torch.zeros(1).expand(10**6, 10**3, 10**3, 1))
    torch.save(state, tmp_path / "bad.pth")
    assert "operations.1.G.conv5.weight: (1000000, 1000, 1000, 1) (expected (9, 19, 3, 3))" in _refused(
        tmp_path / "bad.pth"
    )


class _Thing:
    """A class of an importable module: torch's refusal of it comes with advice to allowlist it."""


def test_a_refused_global_is_named_without_torchs_advice_to_allowlist_it(tmp_path):
    torch.save({"operations.0.haar_weights": _Thing()}, tmp_path / "object.pth")
    message = _refused(tmp_path / "object.pth")
    assert "refused - the file holds Python objects that are not weights (it refers to " in message
    assert "_Thing)" in message
    for advice in ("safe_globals", "allowlist", "trust", "weights_only"):
        assert advice not in message


@pytest.mark.parametrize("cut", [0, 100, 2])
def test_a_corrupt_file_gets_torchs_reason_in_one_sentence(tmp_path, cut):
    data = save_model(IRN(2, block_num=[1]), tmp_path / "full.pth").read_bytes()
    (tmp_path / "cut.pth").write_bytes(data[: len(data) // cut] if cut else b"")
    message = _refused(tmp_path / "cut.pth")
    assert "cannot be read as a PyTorch checkpoint" in message
    assert "weights_only" not in message and "likelihood" not in message and message.count(". ") == 0


def _png(folder) -> str:
    path = folder / "photo.png"
    Image.fromarray(np.full((8, 8, 3), 128, dtype=np.uint8)).save(path)
    return str(path)


@pytest.mark.parametrize(
    "content, expected",
    [
        ({"operations.0.haar_weights": torch.zeros(12, 1, 2, 2), "operations.2000000.F.conv1.weight": torch.zeros(1)},
         "asks for 2,000,000 InvBlocks"),
        ({k: v.to(torch.complex64) for k, v in _state().items()}, "has dtype complex64"),
    ],
    ids=["huge-block-index", "complex"],
)  # fmt: skip
def test_irn_downscale_refuses_a_hostile_checkpoint_in_one_line(tmp_path, capsys, no_network, content, expected):
    torch.save(content, tmp_path / "IRN_x2.pth")
    out = tmp_path / "lr.png"
    status = main(["downscale", _png(tmp_path), str(out), "--checkpoint", str(tmp_path / "IRN_x2.pth")])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith(f"irn: error: {tmp_path / 'IRN_x2.pth'}: ") and err.count("\n") == 1, err
    assert expected in err and "Traceback" not in err
    assert not out.exists()
