"""Ablation switches really change what is trained or sampled; tables come from the CSV."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import skimage.data
import torch
from conftest import randomize

from irnlib import IRN
from irnlib.data.test_pairs import TestPair
from irnlib.experiments import ablation_tables as at
from irnlib.experiments import ablations as ab
from irnlib.imaging.imresize import imresize
from irnlib.model.checkpoint import load_checkpoint, save_model
from irnlib.model.network import LearnedDownsampling
from irnlib.protocol import evaluate as ev
from irnlib.train import IRNObjective


@pytest.fixture(scope="module")
def setup():
    return ab.ablation_setup("smoke")


def _terms(config, seed=0):
    torch.manual_seed(seed)
    net = randomize(IRN(config.scale, config.block_num, downsampling=config.downsampling), seed=1)
    gen = torch.Generator().manual_seed(2)
    hr = torch.rand(2, 3, 16, 16, generator=gen)
    z = torch.randn(2, 3 * config.scale**2 - 3, 8, 8, generator=gen)
    terms = IRNObjective(net, config)(hr, imresize(hr, 1 / config.scale), z)
    loss = sum(terms.values())
    loss.backward()
    grads = torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])
    return {k: float(v.detach()) for k, v in terms.items()}, grads, net


def test_objective_switches_remove_exactly_their_term(setup):
    by_name = {v.name: v for v in ab.variants(setup.scale)}
    full, full_grads, _ = _terms(ab.variant_config(setup, by_name[ab.FULL]))
    assert (
        all(full[k] > 0 for k in ("l_forw", "l_back", "l_distr")) and full["l_stress"] == full["l_range"] == 0
    )  # the paper's
    for name, term in (("without L_forw", "l_forw"), ("without L_back", "l_back"), ("without L_distr", "l_distr")):
        terms, grads, _ = _terms(ab.variant_config(setup, by_name[name]))
        assert terms[term] == 0
        assert all(terms[k] == pytest.approx(full[k]) for k in full if k != term)  # the others unchanged
        assert not torch.allclose(grads, full_grads)  # and the update differs


def test_downsampling_and_capacity_variants_change_the_network(setup):
    by_name = {v.name: v for v in ab.variants(setup.scale)}
    _, _, learned = _terms(ab.variant_config(setup, by_name["learned 1x1 downsampling"]))
    assert isinstance(learned.operations[0], LearnedDownsampling) and learned.operations[0].weight.grad is not None
    counts = {}
    for name in ("2 InvBlocks per level", "4 InvBlocks per level", ab.FULL):
        config = ab.variant_config(setup, by_name[name])
        counts[name] = sum(p.numel() for p in IRN(config.scale, config.block_num).parameters())
    assert counts["2 InvBlocks per level"] * 2 == counts["4 InvBlocks per level"]
    assert counts["4 InvBlocks per level"] * 2 == counts[ab.FULL]
    paper = ab.ablation_setup("paper")
    paper_variants = {v.name: v for v in ab.variants(paper.scale)}
    assert ab.variant_config(paper, paper_variants["2 InvBlocks per level"]).block_num == [2] * 2  # x4: two levels
    assert paper.train.batch_size == 16 and paper.train.patch_size == 144


def test_every_variant_and_seed_trains_with_the_same_budget_in_its_own_run(setup):
    assert len(setup.seeds) == 2
    configs = [ab.variant_config(setup, v, seed) for v in ab.variants(setup.scale) for seed in setup.seeds]
    assert len({c.run_name for c in configs}) == len(configs)
    budget = {(c.iterations, c.batch_size, c.patch_size, c.lr, c.train_set) for c in configs}
    assert len(budget) == 1
    assert {c.seed for c in configs} == set(setup.seeds)
    assert ab.variant_config(setup, ab.variants(2)[0]).seed == setup.seeds[0]


def _pair(size=32, scale=2):
    hr = skimage.data.astronaut()[200 : 200 + size, 200 : 200 + size]
    return TestPair("crop", hr, imresize(hr, 1 / scale))


def test_conditions_change_what_is_sampled_and_what_is_upscaled():
    net = randomize(IRN(2, block_num=[1]), seed=4)
    pair = _pair()
    by_name = {c.name: c for c in ab.conditions()}
    rows = {}
    for name in ("z ~ N(0, 1)", "z = 0", "z temperature 0.5", "LR as JPEG q75"):
        c = by_name[name]
        rows[name] = ev.evaluate_pair(
            pair, 2, "toy", net=net, draws=3, temperature=c.temperature, lr_transform=c.lr_transform()
        )
    psnr = {k: [r["psnr_y"] for r in v] for k, v in rows.items()}
    assert len(set(psnr["z = 0"])) == 1  # no randomness left
    assert len(set(psnr["z ~ N(0, 1)"])) == 3
    assert psnr["z temperature 0.5"] != psnr["z ~ N(0, 1)"]
    assert psnr["LR as JPEG q75"] != psnr["z ~ N(0, 1)"]
    assert rows["LR as JPEG q75"][0]["lr_psnr_y"] == rows["z ~ N(0, 1)"][0]["lr_psnr_y"]  # measured before JPEG
    bicubic = ev.evaluate_pair(pair, 2, "toy", lr_transform=by_name["LR as JPEG q75"].lr_transform())[0]
    assert bicubic["psnr_y"] < ev.evaluate_pair(pair, 2, "toy")[0]["psnr_y"]


def _row(variant, group, train_seed, draw, value, condition="z ~ N(0, 1)"):
    return {"variant": variant, "group": group, "train_seed": train_seed, "condition": condition, "temperature": 1.0,
            "jpeg_quality": np.nan, "dataset": "toy", "image": "a", "method": "irn", "scale": 2, "draw": draw,
            "seed": draw, "height": 8, "width": 8, "psnr_y": value, "ssim_y": 0.5, "psnr_rgb": value,
            "lr_psnr_y": 40.0, "lr_ssim_y": 0.9, "lr_psnr_rgb": 40.0, "checkpoint": variant}  # fmt: skip


def test_table_is_computed_from_the_per_image_csv(setup, tmp_path):
    rows = []
    for variant, group, seeds in (("IRN (full)", "reference", {0: [30.0, 32.0], 1: [34.0, 34.0]}),
                                  ("without L_back", "objective", {0: [10.0, 12.0], 1: [40.0, 40.0]})):  # fmt: skip
        rows += [_row(variant, group, seed, draw, v) for seed, values in seeds.items() for draw, v in enumerate(values)]
    rows.append(_row("Bicubic & Bicubic", "baseline", None, 0, 33.0))
    table, markdown, paths = at.write_tables(pd.DataFrame(rows), setup, tmp_path, {"run_id": "r1"})
    full = table.set_index("variant").loc["IRN (full)"]
    assert full["psnr_y"] == pytest.approx(32.5)  # the mean of seed 0's 31 and seed 1's 34
    assert full["psnr_y_by_seed"] == "31.00 / 34.00" and full["seed_range_db"] == pytest.approx(3.0)
    assert full["psnr_y_std"] == pytest.approx(0.5)  # seed 0: 1.0, seed 1: 0.0
    assert table.set_index("variant").loc["Bicubic & Bicubic", "seeds"] == 0
    assert "SMOKE RUN" in markdown and "| reference | IRN (full) | z ~ N(0, 1) | 32.50 | 31.00 / 34.00 |" in markdown
    assert f", {setup.train.iterations:,} steps per variant and seed)" in markdown.splitlines()[0]  # the budget run
    # The paper's ordering, seed by seed: full beats "without L_back" with seed 0, not with seed 1.
    ordering = pd.read_csv(paths["ordering"])
    claim = ordering.set_index("claim").loc["IRN (full) > without L_back"]
    assert claim["holds"] == "1 of 2" and claim["verdict"] == "not separable at this budget"  # mixed signs
    assert claim["margin_db"] == pytest.approx(((31 - 11) + (34 - 40)) / 2)
    assert claim["margins_by_seed"] == "+20.00 / -6.00" and claim["spread_db"] == pytest.approx(26.0)
    assert "| IRN (full) > without L_back | +7.00 | +20.00 / -6.00 | 26.00 | 1 of 2 seeds | not separable" in markdown
    edited = pd.read_csv(paths["per_image"])
    edited.loc[0, "psnr_y"] = 34.0  # the CSV is the source of truth
    again = at.ablation_table(edited, setup)
    assert again.loc[again["variant"] == "IRN (full)", "psnr_y"].item() == pytest.approx(33.5)
    assert pd.read_csv(paths["csv"])["run_id"].eq("r1").all()


def test_tiny_study_end_to_end(tmp_path, monkeypatch):
    monkeypatch.setenv("IRN_RESULTS", str(tmp_path))
    setup = ab.ablation_setup("smoke", iterations=2, patch_size=16, val_crop=32, val_every=2, checkpoint_every=2)
    setup = dataclasses.replace(setup, eval_crop=32, eval_images=1, draws=2)
    chosen = [v for v in ab.variants(2) if v.name in (ab.FULL, "without L_distr")]
    runs = ab.train_variants(setup, chosen)
    assert set(runs) == {(v.name, s) for v in chosen for s in (0, 1)}
    assert all((run / "IRN_x2.pth").is_file() and run.parent == tmp_path / "runs" for run in runs.values())
    first, second = (load_checkpoint(runs[ab.FULL, s] / "IRN_x2.pth").state_dict() for s in (0, 1))
    assert not all(torch.equal(first[k], second[k]) for k in first)  # the seeds are different runs
    tests = ab.conditions(temperatures=[0.0], jpeg_qualities=[90])
    model = ab.condition_model(2)
    if model is not None:  # the latent and JPEG conditions go to the kit's best model
        monkeypatch.setattr(ab, "condition_model", lambda scale: None)
    per_image = ab.evaluate_ablations(setup, runs, chosen, tests)
    table = at.ablation_table(per_image, setup)
    assert set(table["variant"]) == {ab.FULL, "without L_distr", "Bicubic & Bicubic"}
    assert len(table) == 3 + 1 + 2  # full x 3 conditions, the other variant x 1, bicubic x 2
    assert table["psnr_y"].notna().all() and (table.loc[table["group"] != "baseline", "seeds"] >= 1).all()
    at.plot_ablations(table, setup)


def test_conditions_use_the_kits_best_model(tmp_path, monkeypatch):
    net = randomize(IRN(2, block_num=[1]), seed=3)
    path = save_model(net, tmp_path / "IRN_x2.pth")
    monkeypatch.setattr(ab, "condition_model", lambda scale: ("IRN (some model)", path))
    setup = ab.ablation_setup("smoke")
    setup = dataclasses.replace(setup, eval_crop=32, eval_images=1, draws=1, seeds=(0,))
    runs = {(ab.FULL, 0): tmp_path}
    tests = ab.conditions(temperatures=[0.0], jpeg_qualities=[90])
    per_image = ab.evaluate_ablations(setup, runs, [ab.variants(2)[0]], tests)
    by_variant = per_image.groupby("variant")["condition"].apply(set)
    assert by_variant[ab.FULL] == {ab.PAPER_CONDITION}  # trained variants: the paper's condition only
    assert by_variant["IRN (some model)"] == {c.name for c in tests}
    assert per_image.loc[per_image["variant"] == "IRN (some model)", "group"].eq("model").all()


def test_a_variant_that_diverges_is_measured_from_its_last_good_checkpoint(tmp_path, monkeypatch):
    """Diverging is a result of an ablation (the quick study's "without L_forw" does), not a
    failure of the study: the other runs go on, and the page says which run diverged where."""
    monkeypatch.setenv("IRN_RESULTS", str(tmp_path))
    real_forward = IRNObjective.forward
    steps = []

    def forward_without_l_distr_fails_at_step_3(
        self, hr, lr_ref, z_prime, back_weight=None, distr_weight=None, distr_factor=1.0
    ):
        terms = real_forward(self, hr, lr_ref, z_prime, back_weight, distr_weight, distr_factor)
        if not self.lambda_distr:
            steps.append(1)
            if len(steps) == 3:  # the first seed's third step: NaN, as a real divergence gives
                terms["l_back"] = terms["l_back"] * float("nan")
        return terms

    monkeypatch.setattr(IRNObjective, "forward", forward_without_l_distr_fails_at_step_3)
    setup = ab.ablation_setup("smoke", iterations=4, patch_size=16, val_crop=32, val_every=4, checkpoint_every=2)
    setup = dataclasses.replace(setup, eval_crop=32, eval_images=1, draws=1)
    chosen = [v for v in ab.variants(2) if v.name in (ab.FULL, "without L_distr")]
    runs = ab.train_variants(setup, chosen)
    assert len(runs) == 4  # the study went on after the divergence
    broken, fine = runs["without L_distr", 0], runs["without L_distr", 1]
    assert ab.diverged_at(broken) == 3 and ab.diverged_at(fine) is None and ab.diverged_at(runs[ab.FULL, 0]) is None
    assert ab.trained_model(broken, 2) == broken / "checkpoints" / "last.pt"
    assert torch.load(broken / "checkpoints" / "last.pt", weights_only=True)["iteration"] == 2
    assert ab.trained_model(fine, 2) == fine / "IRN_x2.pth"

    monkeypatch.setattr(ab, "condition_model", lambda scale: None)
    per_image = ab.evaluate_ablations(setup, runs, chosen, ab.conditions(temperatures=[], jpeg_qualities=[]))
    assert per_image["psnr_y"].notna().all()
    _, markdown, paths = at.write_tables(per_image, setup, tmp_path / "tables", {"run_id": "r"})
    table = pd.read_csv(paths["csv"]).set_index("variant")
    assert table.loc["without L_distr", "diverged"] == "seed 0 at iteration 3"
    assert table["diverged"].isna()[ab.FULL]
    assert "**without L_distr: training diverged** (seed 0 at iteration 3)" in markdown


def test_a_shorter_study_stretches_the_plans_schedule_alike():
    plan = ab.ablation_setup("quick")
    short = ab.ablation_setup("quick", iterations=plan.train.iterations // 2)
    assert short.train.lr_milestones == tuple(round(m / 2) for m in plan.train.lr_milestones)
    assert ab.ablation_setup("quick", iterations=100, lr_milestones=(90,)).train.lr_milestones == (90,)


def test_a_finetuned_study_starts_every_objective_variant_from_the_trained_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("IRN_RESULTS", str(tmp_path))
    weights = save_model(randomize(IRN(2), seed=4).eval(), tmp_path / "IRN_x2.pth")
    setup = ab.ablation_setup("smoke", iterations=2, patch_size=16, val_crop=32, val_every=2, checkpoint_every=2,
                              init_from=str(weights))  # fmt: skip
    chosen = ab.variants(2, finetuned=True)
    assert [v.group for v in chosen] == ["reference", "objective", "objective", "objective"]
    assert f"fine-tuned from `{weights}`" in setup.budget()
    runs = ab.train_variants(setup, [v for v in chosen if v.name in (ab.FULL, "without L_distr")])
    assert all("_finetuned_" in run.name for run in runs.values())
    for run in runs.values():
        record = pd.read_json(run / "provenance.json", typ="series")
        assert record["init_from"]["file"] == str(weights)
