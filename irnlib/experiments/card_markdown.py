"""A reference model's card as people read it: ``README.md`` written from ``card.json``.

:func:`card_markdown` renders a card (the dictionary :func:`irnlib.experiments.modelcard.publish`
writes as ``card.json``): the title and training facts, how the training deviates from the
paper's, the measured test sets beside the paper's Table 1, the checks on the test images
(:mod:`irnlib.experiments.card_health`), the generalisation panel
(:mod:`irnlib.experiments.panel_card`), the saturation stress
(:mod:`irnlib.experiments.saturation_stress`) and the commands that train the model again.
:func:`card_stage` and :data:`STARTED_FROM` say which stage a model is and where its previous
stage's card is kept.
"""

from __future__ import annotations

import math

from irnlib.experiments.card_health import health_lines
from irnlib.experiments.panel_card import panel_card_lines
from irnlib.experiments.saturation_stress import saturation_card_lines
from irnlib.paper import BICUBIC_ROW, IRN_ROW, paper_value
from irnlib.runtime.markdown import markdown_table

__all__ = ["STARTED_FROM", "STAGE_WORDS", "card_stage", "previous_card", "card_markdown"]

STARTED_FROM = "started_from"  # a later stage's folder keeps the card of the model it started from
STAGE_WORDS = dict(enumerate(zip(
    "two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen".split(),
    "second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth thirteenth fourteenth fifteenth"
    .split()), start=2))  # fmt: skip


def card_stage(card: dict) -> int:
    """Which training stage a card's model is: its ``stage``, else (cards older than that field) 2
    for a model started from another's weights (``init_from``), else 1."""
    return int(card.get("stage") or (2 if card.get("training", {}).get("init_from") else 1))


def previous_card(card: dict) -> str | None:
    """Where the card of the model this one started from is kept (None: not kept here)."""
    return card.get("previous_card", f"{STARTED_FROM}/README.md")  # cards older than the field kept it


def _stage_text(card: dict) -> tuple[str, list[str]]:
    """How the card's title paragraph counts the stages, and its facts' line on this stage."""
    stage, start = card_stage(card), card["training"].get("init_from")
    if not start:
        return "", []
    count, ordinal = STAGE_WORDS.get(stage, (str(stage), f"{stage}th"))
    kept = previous_card(card)
    line = (
        f"- {ordinal} stage: started from the weights of `{start['file']}` (SHA-256 `{start['sha256']}`), "
        + (f"the model described in `{STARTED_FROM}/`" if kept else "a model whose card is not kept here")
        + ", with a fresh optimiser and learning-rate schedule"
    )
    if not kept:
        return f" in at least {count} stages", [line]
    which = "the first stage's" if stage == 2 else "the previous stage's"
    earlier = "" if stage == 2 else f", which keeps the stages before it in its own `{STARTED_FROM}/`"
    at_least = "" if card.get("first_stage_kept", True) else "at least "  # cards older than the field: True
    return f" in {at_least}{count} stages ({which} card: `{kept}`{earlier})", [line]


def _card_facts(card: dict) -> list[str]:
    """The card's title and its facts: file, training, data, commits."""
    s, run, cfg = card["scale"], card["training"], card["config"]
    start = run.get("init_from")  # a later stage: started from another model's weights
    done, planned, recipe = run["iterations_done"], int(cfg["iterations"]), card["recipe_iterations"]
    stages, stage_lines = _stage_text(card)
    return [
        f"# IRN ×{s} — kit reference model",
        "",
        f"IRN ×{s} trained **by this kit** (not the authors' released checkpoint), with the paper's",
        f"network and objective and the kit's quick recipe{stages}. Tests and the main job use it when no",
        f"official `data/pretrained/IRN_x{s}.pth` is present.",
        "",
        f"- file: `{card['file']}`, SHA-256 `{card['sha256']}`",
        f"- training: {done:,} of the run's {planned:,} planned iterations"
        + (" (**run not finished: a shortened model**)" if done < planned else "")
        + (f" (the quick recipe plans {recipe:,})" if recipe != planned else "")
        + "; the paper trains 500,000 iterations of 16 × 144² patches on DIV2K",
        *stage_lines,
        (
            "- training time: not recorded (the run's train_log.csv was not kept)"
            if math.isnan(run["train_hours"])
            else f"- training time: {run['train_hours']:.2f} h of training steps" + (" (this stage)" if start else "")
        )
        + f"; begun on {run['started'].get('device')}, last resumed on {run['device']}",
        f"- training data: `{cfg['train_set']}` ({run['train_data']['images']} images, fingerprint "
        f"`{run['train_data']['sha256']}`); validation during training: `{cfg['val_set']}`",
        *([f"- note: {card['note']}"] if card.get("note") else []),
        f"- training began at commit {run['started']['commit']}, {run['started']['date']}; last resumed at commit "
        f"{run['commit']}, {run['date']}; card written at commit {card['provenance']['commit']}, "
        f"{card['provenance']['date']}, measured on {card['provenance']['device']}",
        "",
    ]


MEASURED_HEADER = ["test set", "images", "IRN (this model)", "Bicubic & Bicubic (this kit)", "IRN − bicubic",
                   "IRN LR vs bicubic LR", "paper IRN", "paper Bicubic"]  # fmt: skip


def _paper_pair(value: tuple[float, float]) -> str:
    return "–" if math.isnan(value[0]) else f"{value[0]:.2f} / {value[1]:.4f}"


def _measured_lines(card: dict) -> list[str]:
    """The card's numbers next to the paper's, one row per test set."""
    s, rows = card["scale"], []
    for m in card["measured"]:
        paper_irn, paper_bic = paper_value(IRN_ROW, s, m["dataset"]), paper_value(BICUBIC_ROW, s, m["dataset"])
        rows.append([
            m["dataset"], m["images"], f"{m['irn_psnr_y']:.2f} / {m['irn_ssim_y']:.4f}",
            f"{m['bicubic_psnr_y']:.2f} / {m['bicubic_ssim_y']:.4f}", f"{m['margin_psnr_y']:+.2f}",
            f"{m['lr_psnr_y']:.2f}", _paper_pair(paper_irn), _paper_pair(paper_bic),
        ])  # fmt: skip
    return [
        f"## Measured (Y-PSNR dB / SSIM, border {s}, z ~ N(0, 1), {card['draws']} draw(s) of z)",
        "",
        *markdown_table(MEASURED_HEADER, rows),
        "",
        "The paper columns are the paper's published Table 1 (`data/paper_tables.csv`), not measured here.",
        "",
    ]


def _retrain_lines(card: dict) -> list[str]:
    """How to train the model again (both stages of a second stage) and publish it here."""
    s, start, stage = card["scale"], card["training"].get("init_from"), card_stage(card)
    lines = ["## Retrain or continue", "", "```bash"]
    if start:
        if previous_card(card):  # the earlier stages' own commands, then this stage from the previous export
            previous = f"quick_x{s}" if stage <= 2 else f"quick_x{s}_stage{stage - 1}"
            first = f"results/runs/{previous}/IRN_x{s}.pth"
            overrides = [
                o if not o.startswith("init_from=") else f"init_from={first}" for o in card["recipe_overrides"]
            ]
            earlier = (
                f"# first stage: the command in started_from/README.md (results/runs/quick_x{s}), then"
                if stage <= 2
                else f"# earlier stages: the commands in started_from/README.md "
                f"(the last: results/runs/{previous}), then"
            )
        else:  # started from weights whose card is not kept here: their file, as recorded
            overrides = card["recipe_overrides"]
            earlier = f"# earlier stages: not in this card (see its note), then from {start['file']}:"
        lines += [
            earlier,
            f"python -m irnlib.train --profile quick {' '.join(overrides)} run_name=quick_x{s}_stage{stage}",
            f"python -m irnlib.experiments.modelcard results/runs/quick_x{s}_stage{stage}  # measure and publish here",
        ]
    else:
        lines += [
            f"python -m irnlib.train --profile quick {' '.join(card['recipe_overrides'])}  "
            f"# results/runs/quick_x{s}; resumes it if there",
            f"python -m irnlib.experiments.modelcard results/runs/quick_x{s}  # measure and publish here",
        ]
    return lines + ["```", ""]


# The objective's settings a card's "Unchanged" line names when they deviate from the paper's
OBJECTIVE_DEVIATIONS = {
    "quantize_gradient": "the quantiser's gradient in L_back",
    "distr_loss": "L_distr's form (`distr_loss`)",
    "forward_only_kinds": "L_back's samples (the synthetic `forward_only_kinds` train the forward terms only)",
    "lr_only_kinds": "L_back's and L_distr's samples (the synthetic `lr_only_kinds` train the LR only)",
    "heavy_back_kinds": "L_back's weights (the synthetic `heavy_back_kinds` weigh `heavy_back_weight`)",
    "free_latent_kinds": "L_distr's samples (the synthetic `free_latent_kinds` have none)",
    "synthetic_lr": "L_forw's target on the synthetic patches (`synthetic_lr`)",
}


ADDED_TERMS = {  # the kit's loss terms a card names when its model trained with them
    "lambda_stress": "the kit's stress term L_stress (`lambda_stress`, `stress_eps`)",
    "lambda_range": "the kit's range term L_range (`lambda_range`)",
    "lambda_grid": "the kit's grid term L_grid (`lambda_grid`, `grid_block`)",
}


def card_markdown(card: dict) -> str:
    """The card's ``README.md`` text, from its ``card.json`` dictionary."""
    deviations = [[f"`{k}`", p, r] for k, (p, r) in card["deviations"].items()]
    lines = _card_facts(card) + ["## Deviations from the paper's training", ""]
    lines += markdown_table(["field", "paper", "this model"], deviations)
    differs = [words for field, words in OBJECTIVE_DEVIATIONS.items() if field in card["deviations"]]
    # the kit's own terms (irnlib.training.objective), those the model trained with
    added = [words for field, words in ADDED_TERMS.items() if field in card["deviations"]]
    lines += [
        "",
        "Unchanged: the network (Haar + 8 InvBlocks per level, official weights layout), the objective's",
        "terms (L_forw, L_back, L_distr with the official weights"
        + (f"; only {' and '.join(differs)} differ{'s' if len(differs) == 1 else ''}, as listed" if differs else "")
        + ") and the test-time protocol."
        + (f" Added, not in the paper: {' and '.join(added)}." if added else ""),
        "",
    ]
    checks = health_lines(card) + panel_card_lines(card) + saturation_card_lines(card)
    return "\n".join(lines + _measured_lines(card) + checks + _retrain_lines(card))
