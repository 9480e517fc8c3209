"""Loading official-format checkpoints: inference of the architecture, strictness, errors."""

import os
import pickle
import subprocess
import sys

import pytest
import torch
from conftest import randomize

from irnlib import IRN, CheckpointError, load_checkpoint, save_model


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
