"""The table of docs/performance.md, from bench/results/*.json: every figure with its target, date and load.

Run: python bench/summary.py           (prints the Markdown table)
     python bench/summary.py --write   (also replaces the table between the markers in docs/performance.md)
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import REPO, RESULTS

DOC = REPO / "docs" / "performance.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def _when(result: dict[str, Any]) -> str:
    env = result.get("environment_before") or result
    load = env.get("load_average")
    shown = f"load {load[0]:.1f}" if load else "load n/a"
    return f"{env.get('date', '?')[:16].replace('T', ' ')}, {shown}"


def _verdict(met: bool | None) -> str:
    return "n/a" if met is None else ("met" if met else "**not met**")


def rows() -> Iterator[tuple[str, str, str, str, str, str]]:
    """(figure, measured, target, met, command, date and load)."""
    startup = _load("startup")
    if startup:
        value = startup["image-like"]["median_s"]
        baseline = next((v for k, v in startup.items() if k.startswith("baseline")), None)
        before = f" (before lazy imports: {baseline['median_s']:.2f} s)" if baseline else ""
        yield (
            "start-up: entrypoint.py to first request",
            f"{value:.2f} s median{before}",
            "<= 1.5 s",
            _verdict(value <= 1.5),
            "python bench/startup.py",
            _when(startup),
        )
    e2e = _load("e2e")
    if e2e:
        for run in e2e["runs"]:
            prompts = run["prompts"]
            target, met = "", None
            if prompts == 1000:
                target, met = "<= 10 s", run["seconds"] <= 10
            if prompts == 10_000:
                target, met = "peak <= 1 GiB", run["peak_rss_mib"] <= 1024
            yield (
                f"end-to-end, {prompts:,} prompts x 3 samples x 2 stages + reference (recorded)",
                f"{run['seconds']:.1f} s, peak RSS {run['peak_rss_mib']:.0f} MiB",
                target,
                _verdict(met),
                "python bench/e2e.py",
                _when(e2e),
            )
    features = _load("features")
    if features:
        per_cpu = features["prompt_pairs_per_cpu_second"]
        target = features["target_prompt_pairs_per_second"]
        baseline = features.get("baseline")
        before = (
            f"; the code at {baseline['ref']} ({features['commit'].split('+')[0]}), rounds alternating: "
            f"{baseline['prompt_pairs_per_cpu_second']}"
            if baseline
            else ""
        )
        yield (
            "feature extraction, one core",
            f"{per_cpu} prompt pairs per CPU second, median of {features['rounds']} rounds "
            f"({features['pairs_per_cpu_second_with_cached_response_stats']} with cached response stats); "
            f"wall clock {features['prompt_pairs_per_second']}{before}",
            f">= {target:,} prompt pairs/s",
            _verdict(per_cpu >= target) + (" in CPU time, the core shared" if features["load_average"][0] > 2 else ""),
            "python bench/features.py",
            _when(features),
        )
    collection = _load("collection")
    if collection:
        ratio = collection["ratio_action_to_plain"]
        rps = collection["requests_per_second"]
        overhead = collection.get("client_ms_per_request_instant_endpoint")
        client = f"; client cost {overhead['action']:.1f} vs {overhead['plain']:.1f} ms/request" if overhead else ""
        yield (
            "collection vs a plain concurrent client (llama.cpp, loopback)",
            f"ratio {ratio:.2f} ({rps['action']:.2f} vs {rps['plain']:.2f} requests/s{client})",
            ">= 0.9",
            _verdict(ratio >= 0.9),
            "python bench/collection.py",
            _when(collection),
        )
    image = _load("image_size")
    if image:
        size = image["image_uncompressed_mb"]
        top = ", ".join(f"{p['name']} {p['installed_mb']:.0f}" for p in image["packages"][:3])
        status = _verdict(size <= 350)
        if size <= 350:  # the margin and the base image's figure, which is published, not measured
            base = image["base_image"]["uncompressed_mb"]
            status += f" by {350 - size:.0f} MB, if the base image is the published {base:.0f} MB (not measured here)"
        yield (
            "image size (base published + measured venv + package)",
            f"{size:.0f} MB uncompressed, {image['image_compressed_mb']:.0f} MB compressed (largest: {top} MB)",
            "<= 350 MB",
            status,
            "python bench/image_size.py",
            _when(image),
        )


def table() -> str:
    lines = [
        "| figure | measured | target | status | command | date (UTC), load average (1 min) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    lines += [f"| {' | '.join(row)} |" for row in rows()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help=f"update the table in {DOC.relative_to(REPO)}")
    args = parser.parse_args()
    text = table()
    print(text)
    if args.write:
        doc = DOC.read_text(encoding="utf-8")
        head, _, rest = doc.partition(START)
        _, _, tail = rest.partition(END)
        if not rest:
            raise SystemExit(f"{DOC}: no {START} marker")
        DOC.write_text(f"{head}{START}\n{text}{END}{tail}", encoding="utf-8")
        print(f"updated {DOC}")


if __name__ == "__main__":
    main()
