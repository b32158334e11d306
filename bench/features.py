"""Feature-extraction throughput on one core, on real responses from the committed dataset.

Run: python bench/features.py                   (writes bench/results/features.json)
     python bench/features.py --baseline HEAD   (also times simct_ci/features.py as committed at HEAD)

- prompt_pairs_per_second: a reference response and a candidate response to the same prompt, from raw text to
  the pair's similarities (two ResponseStats.of, one pair_similarities, nothing cached). Target: >= 5,000.
- pairs_per_second_with_cached_response_stats: pair_similarities alone, what one more pair of a pool costs.
- pools_per_second: PromptPool.of on 3 reference + 3 candidate responses to one prompt (the default
  `samples: 3`): 6 responses, 15 pairs; what compare() does per prompt.

Each figure is the median of several rounds over the same inputs, also given per second of this process's own
CPU time: on a shared machine the wall-clock figure counts the time other processes hold the core, the CPU-time
one does not. With --baseline, rounds of the two versions alternate, so both see the same load.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

# One core, whatever else the machine runs, pinned before numpy starts its (idle) BLAS threads.
CPU = min(os.sched_getaffinity(0))
os.sched_setaffinity(0, {CPU})

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import REPO, environment, save  # noqa: E402
from simct_ci import features  # noqa: E402
from simct_ci.training.dataset import PACKED, load_records  # noqa: E402
from simct_ci.training.deployments import REFERENCE, SAMPLED_REFERENCE  # noqa: E402

TARGET = 5000  # prompt pairs per second
PAIRS = 1000
POOLS = 100
POOL_SAMPLES = 3  # per side
ROUNDS = 7


@dataclass(frozen=True)
class Inputs:
    pairs: list[tuple[str, str]]  # (reference response, candidate response) to one prompt
    pools: list[list[str]]  # POOL_SAMPLES reference responses, then POOL_SAMPLES of one candidate deployment
    prompts: int


def load_inputs() -> Inputs:
    """Pairs and pools from the packed dataset, in a fixed random order."""
    references: dict[str, list[str]] = defaultdict(list)
    candidates: dict[tuple[str, str], list[str]] = defaultdict(list)
    records = sorted(load_records([REPO / PACKED]), key=lambda r: (r["prompt_id"], r["deployment"], r["sample"]))
    for record in records:
        if record["deployment"] == SAMPLED_REFERENCE.name:
            references[record["prompt_id"]].append(record["response"])
        elif record["change"] != REFERENCE:
            candidates[record["prompt_id"], record["deployment"]].append(record["response"])
    pairs = [
        (reference, candidate)
        for (prompt, _), responses in candidates.items()
        for reference in references[prompt]
        for candidate in responses
    ]
    pools = [
        references[prompt][:POOL_SAMPLES] + responses[:POOL_SAMPLES]
        for (prompt, _), responses in candidates.items()
        if len(references[prompt]) >= POOL_SAMPLES and len(responses) >= POOL_SAMPLES
    ]
    rng = random.Random(0)
    rng.shuffle(pairs)
    rng.shuffle(pools)
    return Inputs(pairs[:PAIRS], pools[:POOLS], len(references))


def features_at(ref: str) -> ModuleType:
    """simct_ci/features.py as committed at `ref`, imported under a name of its own."""
    source = subprocess.run(
        ["git", "show", f"{ref}:simct_ci/features.py"], cwd=REPO, capture_output=True, text=True, check=True
    ).stdout
    module = ModuleType(f"features_at_{ref}")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{ref}:simct_ci/features.py", "exec"), module.__dict__)
    return module


def _rate(work: Callable[[], int]) -> tuple[float, float]:
    """(items per second of wall time, items per second of this process's CPU time) for one call of `work`."""
    wall, cpu = time.perf_counter(), time.process_time()
    items = work()
    return items / (time.perf_counter() - wall), items / (time.process_time() - cpu)


def one_round(module: ModuleType, inputs: Inputs) -> dict[str, tuple[float, float]]:
    stats_of, similarities = module.ResponseStats.of, module.pair_similarities

    def end_to_end() -> int:
        for reference, candidate in inputs.pairs:
            similarities(stats_of(reference), stats_of(candidate))
        return len(inputs.pairs)

    def pools() -> int:
        for texts in inputs.pools:
            module.PromptPool.of(texts, closed=False)
        return len(inputs.pools)

    rates = {"prompt_pairs": _rate(end_to_end), "pools": _rate(pools)}
    stats = [(stats_of(reference), stats_of(candidate)) for reference, candidate in inputs.pairs]

    def cached() -> int:
        for reference, candidate in stats:
            similarities(reference, candidate)
        return len(stats)

    return {**rates, "cached_pairs": _rate(cached)}


FIGURES = {
    "prompt_pairs_per_second": ("prompt_pairs", 0),
    "prompt_pairs_per_cpu_second": ("prompt_pairs", 1),
    "pairs_per_second_with_cached_response_stats": ("cached_pairs", 0),
    "pairs_per_cpu_second_with_cached_response_stats": ("cached_pairs", 1),
    "pools_per_second": ("pools", 0),
    "pools_per_cpu_second": ("pools", 1),
}


def measure(modules: dict[str, ModuleType], inputs: Inputs, rounds: int) -> dict[str, dict[str, int]]:
    """Median of each figure per module over `rounds` rounds, the modules' rounds alternating."""
    warm_up = Inputs(inputs.pairs[:50], inputs.pools[:5], 0)
    for module in modules.values():
        one_round(module, warm_up)
    samples: dict[str, list[dict[str, tuple[float, float]]]] = defaultdict(list)
    for _ in range(rounds):
        for name, module in modules.items():
            samples[name].append(one_round(module, inputs))
    return {
        name: {
            figure: round(statistics.median(sample[work][clock] for sample in samples[name]))
            for figure, (work, clock) in FIGURES.items()
        }
        for name in modules
    }


def max_difference(a: ModuleType, b: ModuleType, pairs: Sequence[tuple[str, str]]) -> float:
    """Largest difference between two versions' similarities on the benchmark's pairs (0.0: the same numbers)."""

    def values(module: ModuleType, pair: tuple[str, str]) -> Any:
        return module.pair_similarities(*(module.ResponseStats.of(text) for text in pair))

    return max(float(abs(values(a, pair) - values(b, pair)).max()) for pair in pairs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", metavar="REF", help="also time simct_ci/features.py at this git ref")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()

    before = environment()
    inputs = load_inputs()
    texts = [text for pair in inputs.pairs for text in pair]
    modules = {"current": features}
    if args.baseline:
        modules["baseline"] = features_at(args.baseline)
    rates = measure(modules, inputs, args.rounds)
    result: dict[str, Any] = {
        **before,
        "cpu": f"pinned to CPU {CPU} (sched_setaffinity)",
        "dataset": {
            "file": str(PACKED),
            "sha256": hashlib.sha256((REPO / PACKED).read_bytes()).hexdigest()[:12],
            "prompts": inputs.prompts,
            "prompt_pairs": len(inputs.pairs),
            "pools": len(inputs.pools),
        },
        "mean_tokens_per_response": round(statistics.mean(len(features.tokenize(t)) for t in texts), 1),
        "mean_characters_per_response": round(statistics.mean(len(t) for t in texts), 1),
        "rounds": args.rounds,
        "target_prompt_pairs_per_second": TARGET,
        **rates["current"],
        "load_average_after": [round(value, 2) for value in os.getloadavg()],
    }
    if args.baseline:
        baseline = rates["baseline"]
        result["baseline"] = {
            "ref": args.baseline,
            **baseline,
            "max_abs_difference": max_difference(features, modules["baseline"], inputs.pairs),
        }
        result["speed_up"] = {figure: round(rates["current"][figure] / baseline[figure], 2) for figure in baseline}
    path = save("features", result)
    print(path.read_text(encoding="utf-8"), end="")


if __name__ == "__main__":
    main()
