"""The published claims the ablation study tests, and the rule that turns seeds into a verdict.

A claim says one variant beats another on one metric. Its verdict compares the two variants'
means over seeds with the noise of that difference, ``SE = sqrt(s_a²/n_a + s_b²/n_b)`` (sample
standard deviations over seeds, Welch's standard error):

- **holds**: the difference points the claimed way and exceeds ``z`` standard errors;
- **contradicted**: it points the other way by more than ``z`` standard errors;
- **within noise**: neither (this budget and seed count cannot tell the two apart);
- **not run**: a variant is missing from the study, or has fewer than two seeds (no spread).

Sources (facts quoted with their numbers):
- seed 001 (``../shared/seeds/001_*``), Table 4-1, FID (lower is better): full model N_we 23.07,
  without the two-stage split 24.28, without attention 27.32, without spectral norm 29.78, without
  the GAN loss 35.90; FiNet 34.68 and BicycleGAN 28.02 for reference.
- seed 001, chapter 2 (the compatibility prior, eq. 2-18): sampling z gives several completions of one input;
  the issue's test of it: diversity clearly above the deterministic model's at an FID that is not worse (a
  "samples_fid" claim within noise or holding means not worse; contradicted means worse).
- FE-GAN (seed 000 and DESIGN.md section 3): attention normalisation (ANL) beats SPADE-style and plain
  instance normalisation in the decoder; the partial-convolution encoder beats gated and plain
  convolutions; sketch and colour guidance is what lets the user steer the edit.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

HOLDS, CONTRADICTED, WITHIN_NOISE, NOT_RUN = "holds", "contradicted", "within noise", "not run"


@dataclass(frozen=True)
class Claim:
    better: str                 # the variant the source says is better ...
    worse: str                  # ... than this one
    metric: str                 # a key of the variants' metrics
    lower_is_better: bool
    source: str
    published: tuple[float, float] | None = None   # (better, worse) as published, when the source gives numbers

    @property
    def text(self) -> str:
        return f"{self.better} better than {self.worse} ({self.metric})"


_T41 = "seed 001 Table 4-1"
_FEGAN = "FE-GAN"
_DIVERSE = "seed 001 ch. 2"
CLAIMS: tuple[Claim, ...] = (
    # seed 001's ordering by FID: full < w/o two-stage < w/o attention < w/o spectral norm < w/o GAN
    Claim("full", "one_stage", "fid", True, _T41, (23.07, 24.28)),
    Claim("one_stage", "no_attention", "fid", True, _T41, (24.28, 27.32)),
    Claim("no_attention", "no_spectral_norm", "fid", True, _T41, (27.32, 29.78)),
    Claim("no_spectral_norm", "no_gan", "fid", True, _T41, (29.78, 35.90)),
    Claim("full", "no_attention", "fid", True, _T41, (23.07, 27.32)),
    Claim("full", "no_spectral_norm", "fid", True, _T41, (23.07, 29.78)),
    Claim("full", "no_gan", "fid", True, _T41, (23.07, 35.90)),
    # FE-GAN: ANL over SPADE-style and plain normalisation; partial >= gated >= plain encoders
    Claim("full", "spade_norm", "fid", True, _FEGAN),
    Claim("full", "instance_norm", "fid", True, _FEGAN),
    Claim("full", "gated_conv", "fid", True, _FEGAN),
    Claim("gated_conv", "plain_conv", "fid", True, _FEGAN),
    # sketch/colour guidance matters: without it the hole is rendered from context alone
    Claim("full", "no_sketch_colour", "fid", True, _FEGAN),
    Claim("full", "no_sketch_colour", "psnr_hole", False, _FEGAN),
    # seed 001: one input, several completions, without losing quality (fashion_edit/evaluation/diversity.py)
    Claim("stochastic", "full", "diversity_lpips", False, _DIVERSE),
    Claim("stochastic", "full", "diversity_parsing", False, _DIVERSE),
    Claim("stochastic", "full", "samples_fid", True, _DIVERSE),
)


@dataclass(frozen=True)
class Verdict:
    claim: Claim
    verdict: str
    difference: float   # mean(worse) - mean(better), signed so that > 0 agrees with the claim
    standard_error: float
    seeds: tuple[int, int]


def _mean_std(runs: Sequence[Mapping[str, float]], key: str) -> tuple[float, float, int]:
    values = [float(r[key]) for r in runs if r.get(key) is not None and math.isfinite(float(r[key]))]
    n = len(values)
    if n == 0:
        return math.nan, math.nan, 0
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else math.nan
    return mean, std, n


def judge(claim: Claim, metrics: Mapping[str, Sequence[Mapping[str, float]]], z: float) -> Verdict:
    """The verdict on ``claim`` from per-seed metrics by variant (see the module docstring for the rule)."""
    a_mean, a_std, a_n = _mean_std(metrics.get(claim.better, ()), claim.metric)
    b_mean, b_std, b_n = _mean_std(metrics.get(claim.worse, ()), claim.metric)
    if a_n < 2 or b_n < 2:
        return Verdict(claim, NOT_RUN, math.nan, math.nan, (a_n, b_n))
    gap = (b_mean - a_mean) if claim.lower_is_better else (a_mean - b_mean)
    se = math.sqrt(a_std ** 2 / a_n + b_std ** 2 / b_n)
    verdict = HOLDS if gap > z * se else CONTRADICTED if -gap > z * se else WITHIN_NOISE
    return Verdict(claim, verdict, gap, se, (a_n, b_n))


def judge_all(metrics: Mapping[str, Sequence[Mapping[str, float]]], z: float) -> list[Verdict]:
    return [judge(claim, metrics, z) for claim in CLAIMS]


def verdict_table(verdicts: Sequence[Verdict], z: float) -> str:
    """Markdown: one row per claim with the published numbers, our gap ± SE and the verdict."""
    rows = [f"| claim | source | published | our gap in the claim's favour ± SE | verdict (rule: gap vs {z:g}·SE) |",
            "|---|---|---|---|---|"]
    for v in verdicts:
        published = (f"{v.claim.published[0]:g} vs {v.claim.published[1]:g}" if v.claim.published else "–")
        ours = ("–" if math.isnan(v.difference) else f"{v.difference:+.3g} ± {v.standard_error:.2g}")
        note = f"{v.verdict} (seeds {v.seeds[0]}/{v.seeds[1]})" if v.verdict == NOT_RUN else v.verdict
        rows.append(f"| {v.claim.text} | {v.claim.source} | {published} | {ours} | {note} |")
    return "\n".join(rows)
