"""The real deployments the training data comes from: one reference and the ways real stages change it.

Every change is something a platform team actually ships: a requantized build, a different model
behind the gateway, a decoding default changed in the server, a system prompt added by a template.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

REFERENCE = "reference"

# How strongly a change moves responses; the benchmark sets its power targets per group.
LARGE, MODERATE, SUBTLE, NONE = "large", "moderate", "subtle", "none"


@dataclass(frozen=True)
class Deployment:
    """One stage: which weights, which decoding, which prompt template."""

    name: str
    change: str  # kind of change against the reference; REFERENCE for the reference itself
    severity: str
    weights: str  # key into the weights built by quantize.py
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 128
    repeat_penalty: float = 1.0
    system_prompt: str | None = None
    plain_completion: bool = False  # base models have no chat template

    def greedy(self) -> Deployment:
        return replace(self, name=f"{self.name}@greedy", temperature=0.0)


SAMPLED_REFERENCE = Deployment(REFERENCE, REFERENCE, NONE, "smollm2-q4_1")

CHANGES: tuple[Deployment, ...] = (
    replace(
        SAMPLED_REFERENCE,
        name="model-swap",
        change="model-swap",
        severity=LARGE,
        weights="gemma3-270m-q4_k_m",
        plain_completion=True,
    ),
    replace(SAMPLED_REFERENCE, name="quant-q2_k", change="quant-q2_k", severity=LARGE, weights="smollm2-q2_k"),
    replace(SAMPLED_REFERENCE, name="max-tokens-half", change="max-tokens-half", severity=LARGE, max_tokens=64),
    replace(SAMPLED_REFERENCE, name="quant-q4_0", change="quant-q4_0", severity=MODERATE, weights="smollm2-q4_0"),
    replace(SAMPLED_REFERENCE, name="repeat-penalty", change="repeat-penalty", severity=MODERATE, repeat_penalty=1.3),
    replace(SAMPLED_REFERENCE, name="quant-q3_k_m", change="quant-q3_k_m", severity=SUBTLE, weights="smollm2-q3_k_m"),
    replace(SAMPLED_REFERENCE, name="temperature-1.0", change="temperature-1.0", severity=SUBTLE, temperature=1.0),
    replace(SAMPLED_REFERENCE, name="top-p-0.8", change="top-p-0.8", severity=SUBTLE, top_p=0.8),
    replace(
        SAMPLED_REFERENCE,
        name="system-prompt",
        change="system-prompt",
        severity=SUBTLE,
        system_prompt="You are a concise assistant. Answer clearly.",
    ),
)

# Decoding-parameter changes mean nothing under greedy decoding, so they have no greedy twin.
_SAMPLING_ONLY = {"temperature-1.0", "top-p-0.8"}

# 15 = 2 x 5 for the reference + 5 for a same-deployment candidate, so the detection benchmark can
# measure 1, 3 and 5 samples per prompt. Prompts generated before the bump have 9 and 3; they count
# as complete (the engine's 3-sample protocol needs no more) and the generator tops them up.
REFERENCE_SAMPLES = 15
CHANGE_SAMPLES = 5
CORE_REFERENCE_SAMPLES = 9
CORE_CHANGE_SAMPLES = 3
GREEDY_REFERENCE_RUNS = 2  # a rerun shows whether greedy decoding is deterministic here


@dataclass(frozen=True)
class Job:
    deployment: Deployment
    decoding: str  # "sampled" | "greedy"
    samples: int

    @property
    def required(self) -> int:
        """Samples a prompt needs for this job to count as complete."""
        if self.decoding == "greedy":
            return self.samples
        core = CORE_REFERENCE_SAMPLES if self.deployment.change == REFERENCE else CORE_CHANGE_SAMPLES
        return min(self.samples, core)


def jobs() -> list[Job]:
    """Everything generated for one prompt, reference first."""
    planned = [Job(SAMPLED_REFERENCE, "sampled", REFERENCE_SAMPLES)]
    planned += [Job(change, "sampled", CHANGE_SAMPLES) for change in CHANGES]
    planned.append(Job(SAMPLED_REFERENCE.greedy(), "greedy", GREEDY_REFERENCE_RUNS))
    planned += [Job(change.greedy(), "greedy", 1) for change in CHANGES if change.change not in _SAMPLING_ONLY]
    return planned
