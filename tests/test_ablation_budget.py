"""The verdicts of a study during training, from its runs' validation curves (constructed logs)."""

import pandas as pd
import pytest

from irnlib.experiments import ablation_budget as ab_budget
from irnlib.experiments import verdicts as vd
from irnlib.experiments.ablations import FULL

STEPS = [0, 250, 500, 750, 1000]


def fake_runs(tmp_path, curves: dict[tuple[str, int], list[float]]) -> dict:
    """Run folders holding only a ``val_log.csv`` with the given Y-PSNR at :data:`STEPS`."""
    runs = {}
    for (name, seed), psnr in curves.items():
        run = tmp_path / f"{name.replace(' ', '_')}_seed{seed}"
        run.mkdir()
        pd.DataFrame({"iteration": STEPS[: len(psnr)], "psnr_y": psnr, "psnr_rgb": psnr,
                      "lr_psnr_y": 40.0, "lr_psnr_rgb": 40.0}).to_csv(run / "val_log.csv", index=False)  # fmt: skip
        runs[name, seed] = run
    return runs


@pytest.fixture
def runs(tmp_path):
    # full vs without L_distr: reversed at 250, mixed at 500, holds from 750 on
    # full vs without L_back: holds throughout; the 2-block run of seed 1 diverged after 500 steps
    return fake_runs(tmp_path, {
        (FULL, 0): [10, 20, 30, 33, 34],
        (FULL, 1): [10, 19, 29, 32.5, 33.8],
        ("without L_distr", 0): [10, 21, 29, 31, 31],
        ("without L_distr", 1): [10, 21.5, 30, 30, 30.5],
        ("without L_back", 0): [10, 9, 9, 9, 9],
        ("without L_back", 1): [10, 8, 9, 9, 9],
    })  # fmt: skip


def test_each_claim_is_judged_at_every_validation_step_after_the_start(runs):
    budget = ab_budget.budget_table(runs)
    distr = budget[budget["claim"] == f"{FULL} > without L_distr"].set_index("iteration")
    assert list(distr.index) == [250, 500, 750, 1000]
    assert distr.loc[250, "verdict"] == vd.REVERSED  # -1 and -2.5: mean -1.75, spread 1.5
    assert distr.loc[500, "verdict"] == vd.NOT_SEPARABLE  # +1 and -1
    assert distr.loc[750, "verdict"] == vd.HOLDS and distr.loc[1000, "verdict"] == vd.HOLDS
    assert distr.loc[500, "margin_seed0"] == pytest.approx(1.0)
    assert distr.loc[500, "margin_seed1"] == pytest.approx(-1.0)
    assert set(budget["claim"]) == {f"{FULL} > without L_distr", f"{FULL} > without L_back"}


def test_a_verdict_is_settled_from_the_step_after_which_it_no_longer_changes(runs):
    budget = ab_budget.budget_table(runs)
    assert ab_budget.settled_at(budget, f"{FULL} > without L_distr") == 750
    assert ab_budget.settled_at(budget, f"{FULL} > without L_back") == 250
    mixed = budget.assign(verdict=vd.NOT_SEPARABLE)
    assert ab_budget.settled_at(mixed, f"{FULL} > without L_back") is None


def test_a_run_that_stopped_early_leaves_its_seed_out_of_later_steps(tmp_path):
    runs = fake_runs(tmp_path, {
        ("4 InvBlocks per level", 0): [10, 25, 28, 30, 31],
        ("4 InvBlocks per level", 1): [10, 24, 27],  # diverged: validated up to 500 only
        ("2 InvBlocks per level", 0): [10, 20, 24, 26, 27],
        ("2 InvBlocks per level", 1): [10, 21, 23, 25, 26],
    })  # fmt: skip
    budget = ab_budget.budget_table(runs).set_index("iteration")
    assert budget.loc[500, "verdict"] == vd.HOLDS
    assert budget.loc[1000, "seeds"] == 1 and budget.loc[1000, "verdict"] == f"{vd.NOT_SEPARABLE} (1 seed)"


def test_the_budget_page_is_built_from_the_csv_it_writes(runs, tmp_path):
    budget, page, paths = ab_budget.write_budget(
        ab_budget.budget_table(runs), tmp_path / "tables", "Verdicts during training"
    )
    assert pd.read_csv(paths["csv"]).equals(budget)
    assert paths["md"].read_text() == page
    row = next(line for line in page.splitlines() if line.startswith(f"| {FULL} > without L_distr"))
    assert row.split(" | ")[1] == "reversed (-1.75; 1.50)" and row.rstrip(" |").endswith("750")
    assert "1,000 steps" in page
    fig = ab_budget.plot_budget(budget, "Verdicts during training")
    assert len([ax for ax in fig.axes if ax.lines]) == 2


def test_runs_without_both_variants_of_any_claim_give_an_empty_table(tmp_path):
    budget = ab_budget.budget_table(fake_runs(tmp_path, {(FULL, 0): [10, 20, 30], (FULL, 1): [10, 21, 31]}))
    assert budget.empty and budget["iteration"].nunique() == 0
