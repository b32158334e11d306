"""Generate the training and benchmark dataset from real llama.cpp deployments.

For each prompt of the pool, in order, every job of deployments.jobs() is run and each response is
appended to the output as soon as it exists, so a stopped run loses nothing and resumes where it was.
Run: python -m simct_ci.training.generate --limit 300 [--worker 0/2]
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from simct_ci.training.deployments import Deployment, Job, jobs
from simct_ci.training.weights import build_all

DEFAULT_POOL = Path("data/prompts/pool.jsonl")
DEFAULT_OUT_DIR = Path("data/dataset")
N_CTX = 2048


def sample_seed(prompt_id: str, deployment: str, sample: int) -> int:
    return zlib.crc32(f"{prompt_id}|{deployment}|{sample}".encode())


def record_key(record: dict) -> tuple[str, str, int]:
    return record["prompt_id"], record["deployment"], record["sample"]


def read_records(path: Path) -> Iterator[dict]:
    """Every record of a JSONL file; a line cut by a kill is skipped, and the records after it still count."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue  # its job is not in existing_keys, so it is generated again


def open_for_append(path: Path) -> TextIO:
    """Append mode, starting on a fresh line: a line cut by a kill must not swallow the next record."""
    if path.exists() and path.stat().st_size:
        with path.open("rb") as handle:
            handle.seek(-1, 2)
            cut = handle.read(1) != b"\n"
        if cut:
            with path.open("a", encoding="utf-8") as handle:
                handle.write("\n")
    return path.open("a", encoding="utf-8")


def existing_keys(out_dir: Path) -> set[tuple[str, str, int]]:
    keys: set[tuple[str, str, int]] = set()
    for path in sorted(out_dir.glob("responses*.jsonl*")):
        try:
            keys.update(record_key(r) for r in read_records(path))
        except EOFError:
            continue  # a packed file cut short: what it lacks is generated again
    return keys


class Generator:
    """Holds one loaded llama.cpp model per weights file and runs a deployment's request on it."""

    def __init__(self, threads: int) -> None:
        self._files = build_all()
        self._models: dict = {}
        self._threads = threads

    def _model(self, weights: str):
        from llama_cpp import Llama

        if weights not in self._models:
            self._models[weights] = Llama(
                model_path=str(self._files[weights]), n_ctx=N_CTX, n_threads=self._threads, verbose=False
            )
        return self._models[weights]

    def run(self, deployment: Deployment, prompt: str, seed: int) -> tuple[str, int, str]:
        model = self._model(deployment.weights)
        decoding = dict(
            temperature=deployment.temperature,
            top_p=deployment.top_p,
            top_k=40,
            min_p=0.0,
            max_tokens=deployment.max_tokens,
            repeat_penalty=deployment.repeat_penalty,
            seed=seed,
        )
        if deployment.plain_completion:
            out = model.create_completion(f"Question: {prompt}\nAnswer:", stop=["\nQuestion:"], **decoding)
            choice = out["choices"][0]
            text = choice["text"]
        else:
            messages = [{"role": "user", "content": prompt}]
            if deployment.system_prompt:
                messages.insert(0, {"role": "system", "content": deployment.system_prompt})
            out = model.create_chat_completion(messages=messages, **decoding)
            choice = out["choices"][0]
            text = choice["message"]["content"] or ""
        return text.strip(), out["usage"]["completion_tokens"], choice.get("finish_reason") or ""


def generate(pool: list[dict], out: Path, done: set, generator: Generator) -> None:
    with open_for_append(out) as handle:
        for prompt in pool:
            started, tokens = time.monotonic(), 0
            for job in jobs():
                tokens += _run_job(prompt, job, done, generator, handle)
            print(f"{prompt['id']}: {tokens} tokens in {time.monotonic() - started:.1f}s", flush=True)


def _run_job(prompt: dict, job: Job, done: set, generator: Generator, handle) -> int:
    tokens = 0
    for sample in range(job.samples):
        key = (prompt["id"], job.deployment.name, sample)
        if key in done:
            continue
        seed = sample_seed(*key)
        text, n_tokens, finish = generator.run(job.deployment, prompt["text"], seed)
        record = {
            "prompt_id": prompt["id"],
            "group": prompt["group"],
            "prompt": prompt["text"],
            "type": prompt["type"],
            "lang": prompt["lang"],
            "split": prompt["split"],
            "deployment": job.deployment.name,
            "change": job.deployment.change,
            "severity": job.deployment.severity,
            "decoding": job.decoding,
            "sample": sample,
            "seed": seed,
            "response": text,
            "completion_tokens": n_tokens,
            "finish_reason": finish,
        }
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")
        handle.flush()
        tokens += n_tokens
    return tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pool", type=Path, default=DEFAULT_POOL)
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    parser.add_argument("--limit", type=int, default=300, help="first N prompts of the pool")
    parser.add_argument("--worker", default="0/1", help="i/n: this process takes every n-th prompt")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    index, count = (int(part) for part in args.worker.split("/"))
    pool = [json.loads(line) for line in args.pool.open(encoding="utf-8")][: args.limit]
    mine = pool[index::count]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    done = existing_keys(args.out_dir)
    generate(mine, args.out_dir / f"responses-w{index}.jsonl", done, Generator(args.threads))


if __name__ == "__main__":
    main()
