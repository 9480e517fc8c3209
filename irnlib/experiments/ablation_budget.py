"""How much training each of the paper's claims needs: the verdicts of an ablation study at every
validation step of its runs.

Every run of a study validates its network while it trains (``val_log.csv``: Y-PSNR of the
reconstruction on the validation set, one draw of z seeded by the run's training seed; see
:mod:`irnlib.training.run_folder`). Read at each validation step, those curves give each claim's
per-seed margins and verdict (:func:`irnlib.experiments.verdicts.verdict`) as the budget grows:
:func:`budget_table`. A claim's verdict is *settled* from the first step after which it no
longer changes (:func:`settled_at`). These are validation numbers (one draw, the validation set),
not the study's table (its test set, several draws): they say where the curves separate, the
table says by how much at the end.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from irnlib.experiments.ablation_tables import CLAIMS, claim_label
from irnlib.experiments.verdicts import NOT_SEPARABLE, margin_fields
from irnlib.protocol import evaluate as ev
from irnlib.runtime.markdown import markdown_table
from irnlib.runtime.paths import atomic_write

__all__ = ["validation_curves", "budget_table", "settled_at", "render_budget_markdown", "plot_budget", "write_budget"]


def validation_curves(runs: dict[tuple[str, int], Path]) -> pd.DataFrame:
    """The validation Y-PSNR of every run, one row per validation step after the start:
    index ``(iteration, train_seed)``, one column per variant (NaN where a run has no such step,
    e.g. one that diverged). ``runs``: ``(variant, seed) -> run folder``, as
    :func:`irnlib.experiments.ablations.train_variants` returns it."""
    logs = [
        pd.read_csv(Path(run) / "val_log.csv").assign(variant=name, train_seed=seed)
        for (name, seed), run in runs.items()
    ]
    curves = pd.concat(logs).pivot_table(index=["iteration", "train_seed"], columns="variant", values="psnr_y")
    return curves[curves.index.get_level_values("iteration") > 0]  # at step 0 nothing is trained yet


def budget_table(runs: dict[tuple[str, int], Path]) -> pd.DataFrame:
    """Each claim of :data:`irnlib.experiments.ablation_tables.CLAIMS` whose two variants are in
    ``runs``, judged at every validation step.

    Columns: ``claim``, ``iteration``, ``margin_seed<s>`` (the better variant's validation
    Y-PSNR minus the worse one's, dB, per training seed) and the fields of
    :func:`irnlib.experiments.verdicts.margin_fields` (``seeds``, ``margins_by_seed``,
    ``margin_db``, ``spread_db``, ``held``, ``holds``, ``verdict``).
    """
    curves = validation_curves(runs)
    seeds = sorted(curves.index.get_level_values("train_seed").unique())
    rows = []
    for better, worse in CLAIMS:
        if better not in curves or worse not in curves:
            continue
        margins = (curves[better] - curves[worse]).unstack("train_seed").reindex(columns=seeds)
        for iteration, by_seed in margins.iterrows():
            per_seed = {f"margin_seed{seed:g}": by_seed[seed] for seed in seeds}
            rows.append({"claim": claim_label(better, worse), "iteration": int(iteration), **per_seed,
                         **margin_fields(by_seed.to_numpy())})  # fmt: skip
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["claim", "iteration", "verdict"])


def settled_at(budget: pd.DataFrame, claim: str) -> int | None:
    """The first validation step from which ``claim``'s verdict stays what it is at the end, if that
    final verdict is a confident one ("holds" or "reversed"); None if it ends not separable."""
    steps = budget[budget["claim"] == claim].sort_values("iteration")
    verdicts = steps["verdict"].tolist()
    if not verdicts or verdicts[-1].startswith(NOT_SEPARABLE):
        return None
    first = len(verdicts) - 1
    while first > 0 and verdicts[first - 1] == verdicts[-1]:
        first -= 1
    return int(steps["iteration"].iloc[first])


def render_budget_markdown(budget: pd.DataFrame, title: str) -> str:
    """One row per claim, one column per validation step: the verdict with its mean margin and seed
    spread (dB), and the step from which the verdict is settled."""
    steps = sorted(budget["iteration"].unique())
    claims = list(dict.fromkeys(budget["claim"]))
    cells = budget.set_index(["claim", "iteration"])
    rows = []
    for claim in claims:
        row = [claim]
        for step in steps:
            r = cells.loc[(claim, step)] if (claim, step) in cells.index else None
            row.append("–" if r is None else f"{r['verdict'].replace(NOT_SEPARABLE, 'not separable')} "
                       f"({r['margin_db']:+.2f}; {r['spread_db']:.2f})")  # fmt: skip
        settled = settled_at(budget, claim)
        row.append("not settled" if settled is None else f"{settled:,}")
        rows.append(row)
    header = ["claim", *(f"{s:,} steps" for s in steps), "settled from (steps)"]
    lines = [f"# {title}", "", "Each claim's verdict during training, from the runs' validation curves (Y-PSNR on "
             "the validation set, one draw of z per run): verdict (mean margin; seed spread, dB). Not the study's "
             "table: that one measures the final models on the test set with several draws. *Settled from*: the "
             "first step after which a confident verdict no longer changes.", ""]  # fmt: skip
    return "\n".join(lines + markdown_table(header, rows)) + "\n"


def plot_budget(budget: pd.DataFrame, title: str):
    """Per claim, each seed's validation margin against the training step, with zero marked."""
    claims = list(dict.fromkeys(budget["claim"]))
    seeds = [c for c in budget.columns if c.startswith("margin_seed")]
    cols = min(3, len(claims)) or 1
    fig, axes = plt.subplots(-(-len(claims) // cols), cols, figsize=(4.2 * cols, 3.0 * -(-len(claims) // cols)),
                             squeeze=False)  # fmt: skip
    for ax, claim in zip(axes.ravel(), claims):
        part = budget[budget["claim"] == claim].sort_values("iteration")
        for column in seeds:
            ax.plot(part["iteration"], part[column], "o-", label=column.replace("margin_seed", "seed "))
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_title(claim, fontsize=8)
        ax.set_xlabel("training step", fontsize=8)
        ax.set_ylabel("margin (dB)", fontsize=8)
        ax.legend(fontsize=7)
    for ax in axes.ravel()[len(claims) :]:
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def write_budget(budget: pd.DataFrame, out_dir, title: str) -> tuple[pd.DataFrame, str, dict]:
    """Write ``budget`` (:func:`budget_table`) as ``ablation_budget.csv`` and ``ablation_budget.md``
    (the page built from the CSV read back) to ``out_dir``; returns the table as read back, its
    Markdown and the paths written."""
    out_dir = Path(out_dir)
    paths = {"csv": ev.write_csv(budget, out_dir / "ablation_budget.csv")}
    budget = pd.read_csv(paths["csv"])
    markdown = render_budget_markdown(budget, title)
    paths["md"] = atomic_write(out_dir / "ablation_budget.md", lambda tmp: tmp.write_text(markdown, encoding="utf-8"))
    return budget, markdown, paths
