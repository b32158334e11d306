"""The committed dataset: real responses of real deployments, and the labelled feature rows built from it.

Packing: python -m simct_ci.training.dataset pack   (worker JSONL files -> data/dataset/responses.jsonl.gz)
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simct_ci.features import PromptPool, split_features
from simct_ci.training.deployments import (
    CHANGE_SAMPLES,
    CHANGES,
    GREEDY_REFERENCE_RUNS,
    REFERENCE,
    REFERENCE_SAMPLES,
    SAMPLED_REFERENCE,
    jobs,
)
from simct_ci.training.generate import read_records, record_key

DATASET_DIR = Path("data/dataset")
PACKED = DATASET_DIR / "responses.jsonl.gz"
GREEDY_REFERENCE = SAMPLED_REFERENCE.greedy().name


@dataclass(frozen=True)
class PromptResponses:
    """Every deployment's responses to one prompt, by deployment name, ordered by sample index."""

    id: str
    group: str
    split: str
    closed: bool
    lang: str
    responses: dict[str, list[str]]


def dataset_files(directory: Path = DATASET_DIR) -> list[Path]:
    return sorted(directory.glob("responses*.jsonl*"))


def load_records(paths: Iterable[Path]) -> list[dict]:
    """All records, deduplicated by (prompt, deployment, sample); a line cut by a kill is skipped (read_records),
    a packed file cut short ends where it is cut."""
    records: dict[tuple, dict] = {}
    for path in paths:
        try:
            for record in read_records(path):
                records.setdefault(record_key(record), record)
        except EOFError:
            continue
    return list(records.values())


def complete_prompts(records: Iterable[dict]) -> list[PromptResponses]:
    """Prompts for which every job of deployments.jobs() finished: partial prompts would bias the classes."""
    grouped: dict[str, list[dict]] = defaultdict(list)
    for record in records:
        grouped[record["prompt_id"]].append(record)
    needed = {job.deployment.name: job.required for job in jobs()}
    prompts = []
    for prompt_id, rows in grouped.items():
        by_deployment: dict[str, list[dict]] = defaultdict(list)
        for row in rows:
            by_deployment[row["deployment"]].append(row)
        if any(len(by_deployment.get(name, ())) < count for name, count in needed.items()):
            continue
        first = rows[0]
        responses = {
            name: [r["response"] for r in sorted(rs, key=lambda r: r["sample"])] for name, rs in by_deployment.items()
        }
        prompts.append(
            PromptResponses(
                prompt_id, first["group"], first["split"], first["type"] == "closed", first["lang"], responses
            )
        )
    return sorted(prompts, key=lambda p: p.id)


def load_prompts(directory: Path = DATASET_DIR) -> list[PromptResponses]:
    return complete_prompts(load_records(dataset_files(directory)))


def file_sha256(paths: Iterable[Path]) -> str:
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class Row:
    features: np.ndarray
    label: int  # 1: candidate is another deployment
    change: str  # the kind of change, REFERENCE for same-deployment rows
    samples: int  # per side
    decoding: str  # "sampled" | "greedy"
    prompt_id: str
    group: str


class PromptRows:
    """Builds labelled feature rows for one prompt from a single pool of all its responses."""

    def __init__(self, prompt: PromptResponses) -> None:
        self.prompt = prompt
        self._index: dict[str, list[int]] = {}
        texts: list[str] = []
        for name, responses in prompt.responses.items():
            self._index[name] = list(range(len(texts), len(texts) + len(responses)))
            texts.extend(responses)
        self.pool = PromptPool.of(texts, prompt.closed)

    def indices(self, deployment: str) -> list[int]:
        return self._index[deployment]

    def row(self, ref: list[int], cand: list[int], label: int, change: str, decoding: str) -> Row:
        return Row(
            split_features(self.pool, ref, cand), label, change, len(ref), decoding, self.prompt.id, self.prompt.group
        )


# Rounds of random splits per prompt and k: 1 before model 1.3. 3 raised the leave-one-change-out classifier's
# effect size on 87 held-out prompts by 0.04-0.37 for 6 of 9 changes (Q3_K_M 0.37 -> 0.44, Q4_0 0.89 -> 0.99),
# lowered it for the repetition penalty (1.49 -> 1.38) and left top-p and temperature level.
SAMPLED_DRAWS = 3


def sampled_rows(rows: PromptRows, k: int, rng: random.Random, changes: Iterable[str]) -> Iterator[Row]:
    """Same-deployment rows split the reference's samples; changed rows pit k reference against k changed.

    SAMPLED_DRAWS rounds of random draws: each prompt's 15 reference and 5 changed samples allow many splits,
    and more of them show the model how much a prompt's features vary by chance alone.
    """
    changes = tuple(changes)
    reference = rows.indices(REFERENCE)
    for _ in range(SAMPLED_DRAWS):
        for _ in range(_null_rows_per_prompt(k)):
            drawn = rng.sample(reference, 2 * k)
            yield rows.row(drawn[:k], drawn[k:], 0, REFERENCE, "sampled")
        for change in changes:
            yield rows.row(rng.sample(reference, k), rng.sample(rows.indices(change), k), 1, change, "sampled")


def _null_rows_per_prompt(k: int) -> int:
    return {1: 3, 2: 3, 3: 3}.get(k, 1)


def greedy_rows(rows: PromptRows, changes: Iterable[str]) -> Iterator[Row]:
    """Greedy decoding is deterministic here (the two reference runs show it), so k samples are k copies."""
    first, rerun = rows.indices(GREEDY_REFERENCE)[:2]
    for k in (1, 3):
        yield rows.row([first] * k, [rerun] * k, 0, REFERENCE, "greedy")
        for change in changes:
            greedy_change = f"{change}@greedy"
            if greedy_change in rows.prompt.responses:
                yield rows.row([first] * k, rows.indices(greedy_change)[:1] * k, 1, change, "greedy")


def build_rows(prompts: Iterable[PromptResponses], changes: Iterable[str], seed: int = 0) -> list[Row]:
    changes = tuple(changes)
    rng = random.Random(seed)
    built: list[Row] = []
    for prompt in prompts:
        rows = PromptRows(prompt)
        for k in (1, 2, 3):
            built.extend(sampled_rows(rows, k, rng, changes))
        built.extend(greedy_rows(rows, changes))
    return built


ALL_CHANGES = tuple(change.change for change in CHANGES)


def counts(prompts: list[PromptResponses]) -> dict[str, int]:
    return dict(Counter(f"{p.split}/{'closed' if p.closed else 'open'}/{p.lang}" for p in prompts))


def pack(directory: Path = DATASET_DIR) -> Path:
    """Merge everything generated so far into the committed, compressed, sorted file."""
    records = load_records(dataset_files(directory))
    records.sort(key=record_key)
    with gzip.GzipFile(PACKED, "wb", mtime=0) as raw:  # mtime 0: the same data packs to the same bytes
        for record in records:
            raw.write((json.dumps(record, ensure_ascii=False) + "\n").encode())
    return PACKED


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["pack", "stats"])
    args = parser.parse_args()
    if args.command == "pack":
        print(f"packed {pack()}")
    prompts = load_prompts()
    print(f"{len(prompts)} complete prompts: {counts(prompts)}")
    print(
        f"reference samples {REFERENCE_SAMPLES}, change samples {CHANGE_SAMPLES}, "
        f"greedy reference runs {GREEDY_REFERENCE_RUNS}"
    )


if __name__ == "__main__":
    main()
