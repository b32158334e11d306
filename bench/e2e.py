"""End-to-end cost of a run without the LLM calls: `python -m simct_ci run` on recorded stages.

Run: python bench/e2e.py                       (1,000, 2,000, 5,000 and 10,000 prompts; writes bench/results/e2e.json)
     python bench/e2e.py --sizes 1000 --profile (also profiles the 1,000-prompt run in-process with cProfile)

The recorded stages are resampled from REAL responses of the committed dataset (data/dataset/responses.jsonl.gz):
each benchmark prompt takes one real prompt's responses, so its samples are as alike as real samples are:
- `bare-metal` (reference): 6 of the real prompt's 9 reference-deployment samples (the reference answers
  2 x samples per prompt: the engine's anchor and held-back sets);
- `rerun` (consistent): the other 3 samples of the same deployment;
- `changed` (inconsistent): the 3 samples of one of the real changed deployments (requantized, model swap, ...).
All responses of one benchmark prompt end with the same tag " #<n>", so no cache keyed by text could reuse work
across benchmark prompts that share a real prompt; pairs inside one prompt stay as alike as in the data.
Each run is a fresh process, timed from start to exit, with its own peak RSS (wait4).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import random
import shutil
import sys
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import REPO, environment, run_child, save
from simct_ci.protocol import REFERENCE_FACTOR

SIZES = (1_000, 2_000, 5_000, 10_000)
SAMPLES = 3
REFERENCE_SAMPLES = REFERENCE_FACTOR * SAMPLES  # what a run asks the reference for
REFERENCE_DEPLOYMENT = "reference"
STAGES = ("bare-metal", "rerun", "changed")
TARGET_SECONDS_AT_1000 = 10.0
TARGET_PEAK_MIB_AT_10000 = 1024.0


def _real_prompts() -> list[dict[str, Any]]:
    """Real prompts with >= 3 x SAMPLES reference samples and >= SAMPLES samples of some changed deployment."""
    from simct_ci.training.dataset import PACKED, load_records

    grouped: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for record in load_records([REPO / PACKED]):
        if record.get("decoding", "sampled") == "sampled" and "@" not in record["deployment"]:
            grouped[record["prompt_id"]][record["deployment"]].append(record)
    prompts = []
    for prompt_id, deployments in sorted(grouped.items()):
        reference = sorted(deployments.get(REFERENCE_DEPLOYMENT, []), key=lambda r: r["sample"])
        changes = {
            name: [r["response"] for r in sorted(rows, key=lambda r: r["sample"])][:SAMPLES]
            for name, rows in sorted(deployments.items())
            if name != REFERENCE_DEPLOYMENT and len(rows) >= SAMPLES
        }
        if len(reference) >= REFERENCE_SAMPLES + SAMPLES and changes:
            first = reference[0]
            prompts.append(
                {
                    "id": prompt_id,
                    "text": first["prompt"],
                    "type": first.get("type", "open"),
                    "reference": [r["response"] for r in reference],
                    "changes": changes,
                }
            )
    if not prompts:
        raise SystemExit("bench/e2e.py: the committed dataset holds no prompt with enough samples")
    return prompts


def write_workload(directory: Path, n_prompts: int, sources: list[dict[str, Any]], seed: int = 0) -> Path:
    """prompts.jsonl, three recorded stages and simct.yml for `n_prompts` benchmark prompts; returns the config."""
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    files = {name: (directory / f"{name}.jsonl").open("w", encoding="utf-8") for name in ("prompts", *STAGES)}
    try:
        for n in range(n_prompts):
            source = rng.choice(sources)
            prompt_id, tag = f"bench-{n:05d}", f" #{n}"
            text = source["text"] + tag
            files["prompts"].write(json.dumps({"id": prompt_id, "text": text, "type": source["type"]}) + "\n")
            same_deployment = rng.sample(source["reference"], REFERENCE_SAMPLES + SAMPLES)
            change = source["changes"][rng.choice(sorted(source["changes"]))]
            sides = {
                "bare-metal": same_deployment[:REFERENCE_SAMPLES],
                "rerun": same_deployment[REFERENCE_SAMPLES:],
                "changed": change,
            }
            for stage, texts in sides.items():
                for sample, response in enumerate(texts):
                    row = {"prompt_id": prompt_id, "prompt": text, "response": response + tag, "sample": sample}
                    files[stage].write(json.dumps(row, ensure_ascii=False) + "\n")
    finally:
        for handle in files.values():
            handle.close()
    config = directory / "simct.yml"
    config.write_text(
        "version: 1\nreference: bare-metal\nstages:\n"
        + "".join(f"  {stage}: {{responses: {stage}.jsonl}}\n" for stage in STAGES)
        + f"prompts:\n  - file: prompts.jsonl\nsampling: {{samples: {SAMPLES}, temperature: 0.7, max_tokens: 128}}\n",
        encoding="utf-8",
    )
    return config


def _run_once(config: Path, out_dir: Path) -> dict[str, Any]:
    shutil.rmtree(out_dir, ignore_errors=True)
    env = {**os.environ, "CI": "true", "PYTHONPATH": str(REPO), "COLUMNS": "120"}
    child = run_child(
        [sys.executable, "-m", "simct_ci", "run", "--config", str(config), "--output-dir", str(out_dir), "--no-cache"],
        env=env,
        cwd=config.parent,
    )
    if child.returncode not in (0, 1, 3):
        raise SystemExit(f"bench/e2e.py: the run failed with {child.returncode}:\n{child.stderr[-3000:]}")
    report = json.loads((out_dir / "report.json").read_text(encoding="utf-8"))
    return {
        "seconds": round(child.seconds, 2),
        "peak_rss_mib": round(child.peak_rss_mib, 1),
        "exit_code": child.returncode,
        "verdicts": {s["stage"]: s["verdict"] for s in report["stages"]},
        "report_md_bytes": (out_dir / "report.md").stat().st_size,
    }


def phases(config: Path, out_dir: Path) -> dict[str, float]:
    """Wall time of each step of a run in a fresh process, each step paying for the imports it needs."""
    import time

    shutil.rmtree(out_dir, ignore_errors=True)
    os.environ["CI"] = "true"
    timings: dict[str, float] = {}
    started = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal started
        now = time.perf_counter()
        timings[name] = round(now - started, 3)
        started = now

    from simct_ci import pipeline
    from simct_ci.collect import ResponseCache
    from simct_ci.config import load_config
    from simct_ci.model import read_card

    config_obj = load_config(config)
    card = read_card()
    lap("load config and model card")
    responses = pipeline.collect_all(config_obj, out_dir, ResponseCache.disabled())
    lap("read recorded stages")
    from simct_ci.compare import compare  # noqa: F401 - the engine's imports, timed on their own
    from simct_ci.model import BundledModel

    model = BundledModel(card)
    lap("import engine, load LightGBM model")
    comparisons = pipeline.compare_all(config_obj, responses, model)
    lap("compare (features, scores, t-test)")
    report = pipeline.build_report(config_obj, "simct.yml", responses, comparisons, card)
    from simct_ci import terminal

    lap("build report, import report room")
    sink = io.StringIO()
    from rich.console import Console

    terminal.write_and_show(report, out_dir, Console(file=sink))
    lap("render and write report.json, report.md")
    return timings


def profile(config: Path, out_dir: Path, top: int = 25) -> dict[str, Any]:
    """The same run in this process under cProfile: where the time goes, by cumulative and by own time."""
    from simct_ci.cli import main

    shutil.rmtree(out_dir, ignore_errors=True)
    os.environ["CI"] = "true"
    profiler = cProfile.Profile()
    sink = io.StringIO()
    stdout, stderr = sys.stdout, sys.stderr
    sys.stdout = sys.stderr = sink
    try:
        profiler.runcall(main, ["run", "--config", str(config), "--output-dir", str(out_dir), "--no-cache"])
    finally:
        sys.stdout, sys.stderr = stdout, stderr
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]

    def rows(key: str) -> list[dict[str, Any]]:
        entries = []
        for (file, line, function), (_, calls, own, cumulative, _) in stats.stats.items():  # type: ignore[attr-defined]
            entries.append(
                {
                    "function": f"{Path(file).name}:{line}({function})",
                    "calls": calls,
                    "own_s": round(own, 3),
                    "cumulative_s": round(cumulative, 3),
                }
            )
        entries.sort(key=lambda e: -e[key])
        return entries[:top]

    return {"total_s": round(total, 2), "by_cumulative": rows("cumulative_s"), "by_own_time": rows("own_s")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="numbers of prompts")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size (the median is reported)")
    parser.add_argument(
        "--profile", action="store_true", help="also time each step and cProfile the smallest size, in-process"
    )
    parser.add_argument("--keep", type=Path, help="keep the generated workloads in this directory")
    parser.add_argument("--phases-of", nargs=2, type=Path, metavar=("CONFIG", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.phases_of:  # a fresh process, so that each step pays its own imports
        print(json.dumps(phases(*args.phases_of)))
        return

    sources = _real_prompts()
    result: dict[str, Any] = {
        "benchmark": "e2e: python -m simct_ci run on recorded stages (no LLM calls)",
        "command": "python bench/e2e.py " + " ".join(sys.argv[1:]),
        "environment_before": environment(),
        "workload": {
            "samples": SAMPLES,
            "stages": list(STAGES),
            "candidate_stages": len(STAGES) - 1,
            "real_source_prompts": len(sources),
            "mean_response_chars": round(
                sum(len(t) for s in sources for t in s["reference"]) / sum(len(s["reference"]) for s in sources), 1
            ),
        },
        "runs": [],
    }
    base = args.keep or Path(tempfile.mkdtemp(prefix="simct-bench-e2e-"))
    try:
        for size in args.sizes:
            config = write_workload(base / f"prompts-{size}", size, sources)
            runs = [_run_once(config, base / f"out-{size}") for _ in range(args.repeat)]
            runs.sort(key=lambda run: run["seconds"])
            median = runs[len(runs) // 2]
            entry = {"prompts": size, **median, "all_seconds": [run["seconds"] for run in runs]}
            entry["load_average_after"] = [round(value, 2) for value in os.getloadavg()]
            result["runs"].append(entry)
            save("e2e", result)  # what is measured so far survives a failure at a larger size
            print(json.dumps(entry), flush=True)
        if args.profile:
            size = min(args.sizes)
            config = base / f"prompts-{size}" / "simct.yml"
            child = run_child(
                [sys.executable, str(Path(__file__).resolve()), "--phases-of", str(config), str(base / "phased")],
                env={**os.environ, "PYTHONPATH": str(REPO)},
            )
            if child.returncode != 0:
                raise SystemExit(f"bench/e2e.py: the timed steps failed:\n{child.stderr[-3000:]}")
            result["phases"] = {"prompts": size, "seconds": json.loads(child.stdout)}
            print(json.dumps(result["phases"]), flush=True)
            result["profile"] = {"prompts": size, **profile(config, base / "profiled")}
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)
    result["environment_after"] = environment()
    by_size = {run["prompts"]: run for run in result["runs"]}
    result["targets"] = {
        "seconds_at_1000_prompts": {"target": TARGET_SECONDS_AT_1000, "measured": by_size.get(1000, {}).get("seconds")},
        "peak_rss_mib_at_10000_prompts": {
            "target": TARGET_PEAK_MIB_AT_10000,
            "measured": by_size.get(10_000, {}).get("peak_rss_mib"),
        },
    }
    path = save("e2e", result)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
