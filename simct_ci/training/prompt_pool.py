"""Build the prompt pool used for data generation: real Arena-Hard prompts (en, zh) and our own closed ones.

AlpacaEval is CC BY-NC and may only be used for evaluation, so it never enters this pool.
Run: python -m simct_ci.training.prompt_pool --shared ../shared/data --out data/prompts/pool.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import zlib
from pathlib import Path

MAX_PROMPT_CHARS = 600  # keeps prompt evaluation cheap on a 2-core CPU
EVAL_SHARE_PERCENT = 40  # of prompt groups held out from training


def split_of(group: str) -> str:
    """Deterministic grouped split: a prompt and its translation always land on the same side."""
    return "eval" if zlib.crc32(group.encode()) % 100 < EVAL_SHARE_PERCENT else "train"


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def arena_prompts(shared: Path, rng: random.Random) -> list[dict]:
    """One language per Arena-Hard question (two thirds English), so translations do not repeat content."""
    english = {q["question_id"]: q for q in _read_jsonl(shared / "arena_hard" / "question-en.jsonl")}
    chinese = {q["question_id"]: q for q in _read_jsonl(shared / "arena_hard" / "question-zh.jsonl")}
    ids = sorted(english)
    rng.shuffle(ids)
    prompts = []
    for position, qid in enumerate(ids):
        lang = "zh" if position % 3 == 2 and qid in chinese else "en"
        text = (chinese if lang == "zh" else english)[qid]["turns"][0]["content"].strip()
        if len(text) > MAX_PROMPT_CHARS:
            continue
        prompts.append(
            {
                "id": f"arena-{qid[:12]}-{lang}",
                "group": f"arena-{qid}",
                "text": text,
                "type": "open",
                "lang": lang,
                "source": "arena-hard-v0.1",
            }
        )
    return prompts


def closed_prompts(path: Path, rng: random.Random) -> list[dict]:
    prompts = [dict(p, source="simct-closed") for p in _read_jsonl(path)]
    rng.shuffle(prompts)
    return prompts


def build_pool(shared: Path, closed_path: Path, seed: int = 0) -> list[dict]:
    """Interleave two open prompts with one closed prompt, so any prefix of the pool is a balanced dataset."""
    rng = random.Random(seed)
    open_ones, closed_ones = arena_prompts(shared, rng), closed_prompts(closed_path, rng)
    pool: list[dict] = []
    while open_ones or closed_ones:
        pool.extend(open_ones[:2])
        del open_ones[:2]
        pool.extend(closed_ones[:1])
        del closed_ones[:1]
    for prompt in pool:
        prompt["split"] = split_of(prompt["group"])
    return pool


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--closed", type=Path, default=Path("data/prompts/closed.jsonl"))
    parser.add_argument("--out", type=Path, default=Path("data/prompts/pool.jsonl"))
    args = parser.parse_args()
    pool = build_pool(args.shared, args.closed)
    with args.out.open("w", encoding="utf-8") as handle:
        for prompt in pool:
            handle.write(json.dumps(prompt, ensure_ascii=False) + "\n")
    print(f"wrote {len(pool)} prompts to {args.out}")


if __name__ == "__main__":
    main()
