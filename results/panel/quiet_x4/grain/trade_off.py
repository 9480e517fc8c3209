"""The figure of trade_off.csv: the smooth-image floor against coffee's LR minimum, per run and checkpoint.

Run from the repository root: ``.venv/bin/python results/panel/quiet_x4/grain/trade_off.py``.
Each run's line starts at the model it started from (the reference, F2's last checkpoint or stage 8 = X's).
"""

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

HERE = Path(__file__).parent
RUNS = [("F2", "o"), ("W", "s"), ("W3", "^"), ("X", "D"), ("Y", "v"), ("Y0", "P")]
RUNS += [("Zg", "X"), ("Zf", "x"), ("Zr", "<"), ("Zd", ">"), ("Zq", "h")]  # session 19: which terms grain trains
RUNS += [("Zb", "*"), ("Ze", "8"), ("Zc", "d"), ("Zl", "p"), ("Zn", "1"), ("Zh", "2"), ("Zk", "H"), ("Zw", "+")]  # session 20: the flat and gradient patches, Zr's recipe

points = pd.read_csv(HERE / "trade_off.csv", dtype={"grain_of_kinds": str})
points = points[points.run.isin([name for name, _ in RUNS]) | (points.run == "reference")]
measured = points.dropna(subset=["colorwheel_gap_db"])  # the 250-step points of Y and Y0 have coffee only
starts = {
    "reference": points[points.run == "reference"].iloc[0],
    "F2 2000": points[(points.run == "F2") & (points.steps == 2000)].iloc[0],
    "stage 8": points[(points.run == "X") & (points.steps == 1000)].iloc[0],
}
fig, axes = plt.subplots(1, 2, figsize=(12, 7))
for ax, column, title in zip(axes, ["colorwheel_gap_db", "gradients_gap_db"], ["colour wheel", "gradients"]):
    for i, (name, marker) in enumerate(RUNS):
        run = measured[measured.run == name]
        start = starts[run.started_from.iloc[0]]
        xs, ys = [start.coffee_lr_min_x1, *run.coffee_lr_min_x1], [start[column], *run[column]]
        first = run.iloc[0]
        partly = isinstance(first.grain_trains, str) and first.grain_trains != "all terms"  # Zf, Zr, Zq
        how = f" ({first.grain_trains})" if partly else ""
        share = f", {first.synthetic_fraction:g} synthetic" if first.synthetic_fraction != 0.25 else ""
        smooth = ""  # session 20's changes to the flat and gradient patches' terms and the synthetic LR target
        if first.flat_gradient_back_weight != 1:
            smooth += f", flat+gradient L_back ×{first.flat_gradient_back_weight:g}"
        if first.flat_gradient_distr_weight == 0:
            smooth += ", no L_distr on flat+gradient"
        if first.l_distr != "sum_of_squares":
            smooth += ", no L_distr" if first.l_distr == "off" else f", L_distr {first.l_distr}"
        if first.synthetic_lr == "clipped":
            smooth += ", clipped synthetic LR"
        label = f"{name}: grain {first.grain_of_kinds}{how}{share}{smooth}, from {first.started_from}"
        ax.plot(xs, ys, marker=marker, label=label, color=plt.cm.tab20((2 * i) % 20 + (2 * i) // 20))
        ax.annotate(f"{run.steps.iloc[-1]}", (xs[-1], ys[-1]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    reference = starts["reference"]
    ax.plot(reference.coffee_lr_min_x1, reference[column], "k*", markersize=12, label="reference (stage 6)")
    ax.axvline(-0.1, color="grey", linestyle=":", label="guard: LR min −0.1")
    ax.set_title(f"{title}: IRN − bicubic Y-PSNR (dB)")
    ax.set_xlabel("coffee's LR minimum before quantisation (×1)")
axes[0].set_ylabel("margin over bicubic (dB; goal ≥ −0.5)")
handles, labels = axes[1].get_legend_handles_labels()
fig.legend(handles, labels, fontsize=7, loc="lower center", ncol=3)
fig.suptitle("×4: floor (up is better) against coffee's LR minimum (right is better), every 250–500 steps")
fig.tight_layout(rect=(0, 0.2, 1, 1))
fig.savefig(HERE / "trade_off.png", dpi=110)
print("wrote", HERE / "trade_off.png")
