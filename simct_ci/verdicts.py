"""What the engine decides, as plain data: per-prompt scores (response-wise) and one model-wise result.

`compare.compare()` produces a Comparison; the report and the gate only read it.
"""

from __future__ import annotations

from dataclasses import dataclass

CONSISTENT, INCONSISTENT, INCOMPLETE = "consistent", "inconsistent", "incomplete"
VERDICTS = (CONSISTENT, INCONSISTENT, INCOMPLETE)


@dataclass(frozen=True)
class PromptScore:
    """Response-wise result for one prompt."""

    prompt_id: str
    p_inconsistent: float  # classifier probability that the candidate's responses come from another deployment
    inconsistent: bool  # p_inconsistent at or above the classifier's decision threshold
    centred: float | None = None  # p_inconsistent minus its mean over all re-splits of the pooled samples (k >= 2)


@dataclass(frozen=True)
class ComponentResult:
    """One t-test of the model-wise family (the classifier's score, the length statistic, the diversity)."""

    name: str
    statistic: float
    p_value: float
    effect_size: float
    alternative: str = "greater"  # "two-sided" for the diversity test


@dataclass(frozen=True)
class ModelWiseResult:
    """Model-wise test over prompts."""

    test: str  # "paired-t" (k >= 2, calibrated) | "one-sample-t" (k = 1, against the training null)
    statistic: float
    p_value: float
    effect_size: float  # mean / sd of the per-prompt statistic (Cohen's d_z); 0 when undefined
    alpha: float
    n_prompts: int
    verdict: str  # one of VERDICTS
    note: str = ""  # why the verdict is incomplete, or a caveat (less rigorous mode, identical responses)
    components: tuple[ComponentResult, ...] = ()  # each component's own test; p_value is the combined test's


@dataclass(frozen=True)
class Comparison:
    """One candidate stage against the reference stage."""

    reference: str
    candidate: str
    samples: int  # responses per prompt per side that the test used
    prompts: tuple[PromptScore, ...]
    model_wise: ModelWiseResult
    missing: tuple[str, ...] = ()  # prompt ids without enough responses on either side
    signature: str = ""  # sacrebleu-style: every setting needed to reproduce the result

    @property
    def verdict(self) -> str:
        return self.model_wise.verdict

    @property
    def inconsistent_ratio(self) -> float:
        return sum(p.inconsistent for p in self.prompts) / len(self.prompts) if self.prompts else 0.0


@dataclass(frozen=True)
class ModelInfo:
    """Identity of the bundled classifier, printed in every report so a verdict can be reproduced."""

    version: str  # e.g. "1.0.0"
    sha256: str  # of the LightGBM text file
    feature_set: str  # e.g. "v1": the feature list the model was trained on

    @property
    def short(self) -> str:
        return f"{self.version}+{self.sha256[:8]}"
