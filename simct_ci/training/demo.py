"""Build the embedded demo from the dataset: real recorded responses of three stages on held-out prompts.

- bare-metal: the reference deployment (SmolLM2 Q4_1, temperature 0.7), samples 0-5 (the reference is
  queried for 2 x samples responses, see compare.py);
- rerun: the same deployment queried again (samples 6-8): should be consistent;
- quantized-q2_k: the same model requantized to Q2_K: should be inconsistent.
Run: python -m simct_ci.training.demo [--prompts 30]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from simct_ci.recorded import write_recorded
from simct_ci.responses import Response
from simct_ci.training.dataset import PromptResponses, load_prompts
from simct_ci.training.deployments import REFERENCE

DEMO_DIR = Path("simct_ci/demo")
SAMPLES = 3
# stage -> (deployment in the dataset, first sample, how many)
STAGES = {
    "bare-metal": (REFERENCE, 0, 2 * SAMPLES),
    "rerun": (REFERENCE, 2 * SAMPLES, SAMPLES),
    "quantized-q2_k": ("quant-q2_k", 0, SAMPLES),
}

CONFIG = """\
# The embedded demo: recorded responses of real llama.cpp deployments (see data/DATA_CARD.md).
# `python -m simct_ci run` without --config runs it.
version: 1
reference: bare-metal
stages:
  bare-metal: {responses: bare-metal.jsonl}
  rerun: {responses: rerun.jsonl}
  quantized-q2_k: {responses: quantized-q2_k.jsonl}
prompts:
  - file: prompts.jsonl
sampling: {samples: 3, temperature: 0.7, max_tokens: 128}
gate: {alpha: 0.05, min_prompts: 10}
"""


def _stage_rows(
    prompts: list[PromptResponses], deployment: str, first: int, count: int, texts: dict[str, str]
) -> list[Response]:
    return [
        Response(p.id, texts[p.id], p.responses[deployment][first + sample], sample)
        for p in prompts
        for sample in range(count)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--prompts", type=int, default=30)
    parser.add_argument("--split", default="eval")
    args = parser.parse_args()
    prompts = [p for p in load_prompts() if p.split == args.split][: args.prompts]
    texts = _prompt_texts()
    DEMO_DIR.mkdir(parents=True, exist_ok=True)
    with (DEMO_DIR / "prompts.jsonl").open("w", encoding="utf-8") as handle:
        for p in prompts:
            row = {"id": p.id, "text": texts[p.id], "type": "closed" if p.closed else "open"}
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")
    for stage, (deployment, first, count) in STAGES.items():
        write_recorded(DEMO_DIR / f"{stage}.jsonl", _stage_rows(prompts, deployment, first, count, texts))
    (DEMO_DIR / "simct.yml").write_text(CONFIG, encoding="utf-8")
    print(f"demo: {len(prompts)} prompts in {DEMO_DIR}")


def _prompt_texts() -> dict[str, str]:
    pool = Path("data/prompts/pool.jsonl")
    return {row["id"]: row["text"] for row in map(json.loads, pool.open(encoding="utf-8"))}


if __name__ == "__main__":
    main()
