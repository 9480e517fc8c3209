"""Verdicts on the paper's claims, with the confidence a few training seeds allow.

A claim compares two variants trained with the same budget, "A > B" (A reconstructs better).
Each training seed trains both; the claim's **margin for a seed** is A's Y-PSNR minus B's, both
trained with that seed and measured on the same images and draws. The **seed spread** is the
range of those per-seed margins: the largest minus the smallest (0 for identical seeds; unknown
for a single seed). It is the one measure of seed-to-seed noise used here, and the rule
(:func:`verdict`) compares the mean margin with it:

- ``"holds"``: the claim holds for every seed and the mean margin exceeds the seed spread;
- ``"reversed"``: it fails for every seed and the reversed margin (minus the mean) exceeds the
  seed spread: a confident reversal;
- ``"not separable at this budget"``: anything else (mixed signs, or a spread at least as large
  as the margin); with one seed no spread is known, and the verdict is
  ``"not separable at this budget (1 seed)"`` whatever the margin.

:func:`margin_fields` gives the numbers a verdict is made from as CSV fields;
:func:`compare_verdicts` sets a run's verdicts beside another study's (the committed longer
study, :data:`COMMITTED_STUDY`, read by :func:`read_study`) and says whether they agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from irnlib.runtime.paths import REPO_ROOT, short_path

__all__ = [
    "HOLDS",
    "REVERSED",
    "NOT_SEPARABLE",
    "COMMITTED_STUDY",
    "COMMITTED_FIELDS",
    "RULE",
    "seed_spread",
    "verdict",
    "margin_fields",
    "agreement",
    "compare_verdicts",
    "study_iterations",
    "DEFERRED",
    "Study",
    "read_study",
    "describe_study",
]

HOLDS = "holds"
REVERSED = "reversed"
NOT_SEPARABLE = "not separable at this budget"
AGREE = "agree"
DISAGREE = "disagree"  # one study holds, the other is reversed
COMMITTED_OPEN = "committed study not separable"  # this run has a verdict, the committed study cannot tell

# The kit's committed longer ablation study (the quick profile; docs/results.md says how it was run).
COMMITTED_STUDY = REPO_ROOT / "results" / "quick" / "tables"

RULE = (
    "**holds**: the claim holds for every seed and its mean margin exceeds the seed spread (the largest "
    "minus the smallest per-seed margin); **reversed**: it fails for every seed and the reversed margin "
    "exceeds the seed spread; otherwise **not separable at this budget** (mixed signs, or a spread at "
    "least as large as the margin; with one seed no spread is known)."
)

# Ordering fields that come from the compared study, in order (see compare_verdicts).
COMMITTED_FIELDS = ["committed_seeds", "committed_margins_by_seed", "committed_margin_db", "committed_spread_db",
                    "committed_verdict", "agreement", "committed_run_id", "committed_budget", "committed_commit",
                    "committed_date"]  # fmt: skip


def _finite(margins) -> np.ndarray:
    values = np.asarray(margins, dtype=float).ravel()
    return values[np.isfinite(values)]


def seed_spread(margins) -> float:
    """The seed spread of a claim: max − min of its per-seed margins (NaN below two seeds).

    Parameters
    ----------
    margins : array_like
        One margin (dB) per training seed; NaN entries (a seed without both variants) are ignored.
    """
    values = _finite(margins)
    return float(values.max() - values.min()) if len(values) >= 2 else float("nan")


def verdict(margins) -> str:
    """The verdict on a claim "A > B" from its per-seed margins (A − B, dB), by the rule of the
    module docstring: ``"holds"``, ``"reversed"``, ``"not separable at this budget"``, or
    ``"not separable at this budget (1 seed)"`` (and ``"(no seed)"`` when none has a number).

    A mean margin that exceeds the spread is positive for every seed (the smallest margin is at
    least mean − spread), so the first two verdicts never rest on the mean alone.
    """
    values = _finite(margins)
    if len(values) < 2:
        return f"{NOT_SEPARABLE} ({'1 seed' if len(values) else 'no seed'})"
    mean, spread = float(values.mean()), seed_spread(values)
    if (values > 0).all() and mean > spread:
        return HOLDS
    if (values < 0).all() and -mean > spread:
        return REVERSED
    return NOT_SEPARABLE


def margin_fields(margins) -> dict:
    """The numbers a verdict is made from, and the verdict, as the fields of one CSV line.

    ``seeds`` (seeds with a margin), ``margins_by_seed`` (``"+2.10 / -0.40"``, in seed order),
    ``margin_db`` (their mean), ``spread_db`` (:func:`seed_spread`), ``held`` (seeds where the
    claim holds), ``holds`` (``"1 of 2"``) and ``verdict``.
    """
    values = _finite(margins)
    held = int((values > 0).sum())
    return {
        "seeds": len(values),
        "margins_by_seed": " / ".join(f"{v:+.2f}" for v in values),
        "margin_db": float(values.mean()) if len(values) else float("nan"),
        "spread_db": seed_spread(values),
        "held": held,
        "holds": f"{held} of {len(values)}",
        "verdict": verdict(values),
    }


def agreement(own: str, other: str, run_label: str = "smoke") -> str:
    """Do two verdicts on one claim agree? ``"agree"`` (the same verdict; two "not separable" agree
    whatever their seed counts), ``"<run_label> not separable"`` (this run cannot tell, the other
    study can), ``"committed study not separable"`` (the reverse), or ``"disagree"`` (one holds,
    the other is reversed). ``""`` when the other study has no verdict on the claim."""
    if not isinstance(other, str) or not other:
        return ""
    own_open, other_open = own.startswith(NOT_SEPARABLE), other.startswith(NOT_SEPARABLE)
    if own == other or (own_open and other_open):
        return AGREE
    if own_open:
        return f"{run_label} not separable"
    return COMMITTED_OPEN if other_open else DISAGREE


@dataclass
class Study:
    """A finished ablation study on disk: its folder, per-image CSV (None when absent) and provenance."""

    folder: Path
    per_image: pd.DataFrame | None = None
    provenance: dict = field(default_factory=dict)

    @property
    def found(self) -> bool:
        return self.per_image is not None


def _provenance_block(page: Path) -> dict:
    """The ``- key: value`` lines under ``**Provenance**`` of an ablation page (empty if none)."""
    if not page.is_file():
        return {}
    block = page.read_text(encoding="utf-8").partition("**Provenance**")[2]
    return dict(re.findall(r"^- ([\w ]+): (.*)$", block, re.M))


def read_study(folder=COMMITTED_STUDY) -> Study:
    """The study in ``folder``: ``ablations_per_image.csv`` (its measurements, from which its
    verdicts are recomputed) and the provenance block of its ``ablations.md`` (run id, profile,
    training budget, seeds, commit, date, as that run recorded them)."""
    folder = Path(folder)
    csv = folder / "ablations_per_image.csv"
    per_image = pd.read_csv(csv) if csv.is_file() else None
    return Study(folder, per_image, _provenance_block(folder / "ablations.md"))


def describe_study(study: Study) -> str:
    """The study in one line: where, what it trained, with which commit and when (as recorded)."""
    p = study.provenance
    what = [f"profile {p['profile']}" if "profile" in p else "", f"×{p['scale']}" if "scale" in p else ""]
    what += [p.get("training_budget", ""), f"test set {p['test_set']}" if "test_set" in p else ""]
    when = [f"commit {p['commit']}" if "commit" in p else "", p.get("date", ""),
            f"run {p['run_id']}" if "run_id" in p else ""]  # fmt: skip
    described = "; ".join(", ".join(s for s in part if s) for part in (what, when) if any(part))
    return f"`{short_path(study.folder)}/` ({described or 'its provenance is not recorded'})"


def study_iterations(study: Study) -> int | None:
    """Training iterations per variant and seed of a study, from its recorded budget (None if unknown)."""
    found = re.match(r"\s*([\d,]+) iterations", study.provenance.get("training_budget", ""))
    return int(found.group(1).replace(",", "")) if found else None


DEFERRED = "the longer study:"  # marks a shorter run's verdict that the longer study does not share


def _as_shorter_run(own: str, theirs: str) -> str:
    """``own`` as a run shorter than the other study states it: a confident verdict the longer
    study does not share is deferred to it."""
    if agreement(own, theirs) not in (COMMITTED_OPEN, DISAGREE):
        return own
    return f"{NOT_SEPARABLE} ({own} for every seed here; {DEFERRED} {theirs})"


def compare_verdicts(
    own: pd.DataFrame,
    other: pd.DataFrame | None,
    study: Study | None = None,
    run_label: str = "smoke",
    shorter: bool = False,
) -> pd.DataFrame:
    """``own`` (an ordering frame: ``claim``, ``verdict``) with, for each claim, the other study's
    numbers and verdict on the same claim and whether they agree (:func:`agreement`).

    With ``shorter`` (this run trained fewer iterations than the other study), a confident verdict
    of this run's that the longer study does not share is one this budget cannot make: it becomes
    ``"not separable at this budget (<its verdict> for every seed here; the longer study: ...)"``,
    and the agreement is computed from that; the margins stay as measured.

    Parameters
    ----------
    own, other : pandas.DataFrame
        Ordering frames (:func:`margin_fields` per claim); ``other`` None: the other study is
        absent, and its fields are left empty (the page says so once).
    study : Study, optional
        Where ``other`` comes from: its provenance fills ``committed_run_id``, ``committed_budget``,
        ``committed_commit`` and ``committed_date``.
    run_label : str
        How :func:`agreement` names this run (its profile).
    shorter : bool
        Whether this run's budget is smaller than the other study's (see above).
    """
    out = own.copy()
    for name in COMMITTED_FIELDS:
        out[name] = ""
    if other is None or not len(out):
        return out
    theirs = other.set_index("claim")
    for name in ("seeds", "margins_by_seed", "margin_db", "spread_db", "verdict"):
        out["committed_" + name] = out["claim"].map(theirs[name]) if name in theirs else ""
    if shorter:
        out["verdict"] = [_as_shorter_run(a, b) for a, b in zip(out["verdict"], out["committed_verdict"])]
    out["agreement"] = [agreement(a, b, run_label) for a, b in zip(out["verdict"], out["committed_verdict"])]
    recorded = study.provenance if study is not None else {}
    for name, key in (("run_id", "run_id"), ("budget", "training_budget"), ("commit", "commit"), ("date", "date")):
        out["committed_" + name] = recorded.get(key, "")
    return out
