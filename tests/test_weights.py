"""One owner for weights: where each kind lives and which is used for what."""

import pytest

from irnlib.protocol import weights
from irnlib.runtime.paths import REPO_ROOT


@pytest.fixture
def places(tmp_path, monkeypatch):
    """The official and reference folders moved into a temporary tree, results there too."""
    monkeypatch.setattr(weights, "PRETRAINED_DIR", tmp_path / "data" / "pretrained")
    monkeypatch.setattr(weights, "MODELS_DIR", tmp_path / "models")
    monkeypatch.setenv("IRN_RESULTS", str(tmp_path / "results"))
    return tmp_path


def _touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"weights")
    return path


def test_rescaling_takes_the_official_weights_when_present_else_the_kit_reference(places):
    reference = _touch(weights.reference_weights(2))
    assert weights.choose_weights("rescale", 2) == reference
    official = _touch(weights.official_weights(2))
    assert weights.choose_weights("rescale", 2) == official
    assert weights.weights_kind(official, 2) == "official"
    assert weights.weights_kind(reference, 2) == "kit reference"
    assert weights.weights_kind(places / "elsewhere.pth", 2) == "other"


def test_table1_takes_the_profiles_own_weights(places):
    assert weights.choose_weights("table1", 4, "smoke") == places / "results/runs/smoke_x4/IRN_x4.pth"
    assert weights.choose_weights("table1", 2, "paper") == weights.official_weights(2)
    with pytest.raises(ValueError, match="needs the profile"):
        weights.choose_weights("table1", 2)
    with pytest.raises(ValueError, match="unknown purpose 'figure'"):
        weights.choose_weights("figure", 2)


def test_available_weights_lists_official_reference_then_runs_in_order(places):
    _touch(weights.exported_weights(places / "results/runs/b_x2", 2))
    _touch(weights.exported_weights(places / "results/runs/a_x2", 2))
    _touch(weights.reference_weights(2))
    _touch(weights.official_weights(2))
    _touch(places / "results/runs/c_x4/IRN_x4.pth")  # another scale is not listed
    assert list(weights.available_weights(2)) == ["official IRN_x2.pth", "kit reference x2", "run a_x2", "run b_x2"]


def test_the_committed_reference_models_are_where_the_kit_looks():
    assert weights.reference_weights(2) == REPO_ROOT / "models/kit_reference_x2/IRN_x2.pth"
    assert weights.reference_weights(4).is_file()
