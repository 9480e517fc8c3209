"""The guard's checks on every test image of a model card (irnlib.experiments.card_health)."""

import pandas as pd
import pytest
from conftest import randomize

from irnlib import IRN
from irnlib.experiments import card_health as H


@pytest.fixture(scope="module")
def net():
    return randomize(IRN(2, block_num=[1]), seed=3).eval()


def test_every_embedded_image_gets_its_range_and_latent(net):
    frame = H.health_per_image(net, ["embedded-test"], progress=False)
    assert list(frame.columns) == H.HEALTH_COLUMNS
    assert list(frame["image"]) == ["astronaut", "chelsea", "coffee"]
    assert (frame["lr_min"] <= frame["lr_max"]).all() and (frame["z_max"] >= 0).all()
    assert list(frame["latent_far"]) == list(frame["z_max"] > 8)


def test_a_blow_up_in_one_image_is_flagged_with_its_box(net, monkeypatch):
    real_forward = H.forward

    def blown_up(model, x, tile):  # one image's forward pass gets a latent of 50 and an LR of -3 at LR pixel (20, 30)
        y = real_forward(model, x, tile=tile)
        if x.shape[-2:] == (400, 600):  # coffee
            y[:, 3:, 20, 30], y[:, 0, 20, 30] = 50.0, -3.0
        return y

    monkeypatch.setattr(H, "forward", blown_up)
    frame = H.health_per_image(net, ["embedded-test"], progress=False)
    coffee = frame.set_index("image").loc["coffee"]
    assert coffee["latent_far"] and coffee["lr_out_of_range"] and coffee["z_max"] == 50.0
    assert (coffee["box_top"], coffee["box_left"], coffee["box_bottom"], coffee["box_right"]) == (40, 60, 42, 62)
    summary = H.health_summary(frame)
    assert summary["latent_far"] == ["embedded-test/coffee"] and summary["z_max_image"] == "embedded-test/coffee"
    assert summary["lr_min"] == -3.0 and summary["lr_min_image"] == "embedded-test/coffee"
    text = "\n".join(H.health_lines({"health": summary}))
    assert "| \\|z\\| ≤ 8 | 1 of 3 | embedded-test/coffee |" in text


def test_a_card_older_than_the_check_has_no_section():
    assert H.health_lines({}) == []
    healthy = pd.DataFrame([dict(dataset="Set5", image="bird", height=8, width=8, lr_min=0.0, lr_max=1.0, z_max=1.0,
                                 latent_far=False, lr_out_of_range=False)])  # fmt: skip
    assert "| 0 of 1 | none |" in "\n".join(H.health_lines({"health": H.health_summary(healthy)}))
