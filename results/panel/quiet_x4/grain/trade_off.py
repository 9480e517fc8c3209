"""The figure of trade_off.csv: the smooth-image floor against coffee's LR minimum, per run and checkpoint.

Run from the repository root: ``.venv/bin/python results/panel/quiet_x4/grain/trade_off.py``.
"""

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

HERE = Path(__file__).parent
runs = pd.read_csv(HERE / "trade_off.csv")
reference = runs[runs.run == "reference"].iloc[0]
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
for ax, column, title in zip(axes, ["colorwheel_gap_db", "gradients_gap_db"], ["colour wheel", "gradients"]):
    for name, marker in [("F2", "o"), ("W", "s"), ("W3", "^"), ("X", "D")]:
        run = runs[runs.run == name]
        start = runs[runs.run == "F2"].iloc[-1] if name == "X" else reference
        xs = [start.coffee_lr_min_x1, *run.coffee_lr_min_x1]
        ys = [start[column], *run[column]]
        grain = run.grain_kinds.iloc[0]
        label = f"{name}: grain {grain} of {4 + grain} kinds" if grain else f"{name}: no grain"
        ax.plot(xs, ys, marker=marker, label=label + (", from F2" if name == "X" else ""))
        ax.annotate(f"{run.steps.iloc[-1]}", (xs[-1], ys[-1]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.plot(reference.coffee_lr_min_x1, reference[column], "k*", markersize=12, label="reference (stage 6)")
    ax.axvline(-0.1, color="grey", linestyle=":", label="guard: LR min −0.1")
    ax.set_title(f"{title}: IRN − bicubic Y-PSNR (dB)")
    ax.set_xlabel("coffee's LR minimum before quantisation (×1)")
axes[0].set_ylabel("margin over bicubic (dB; goal ≥ −0.5)")
axes[1].legend(fontsize=7, loc="lower left")
fig.suptitle("×4: floor (up is better) against coffee's LR minimum (right is better), every 250–500 steps")
fig.tight_layout()
fig.savefig(HERE / "trade_off.png", dpi=110)
print("wrote", HERE / "trade_off.png")
