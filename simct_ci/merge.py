"""Combine the output directories of shard runs into the responses of one whole run.

Each shard directory holds `shard.json` and `responses/<stage>.jsonl` (see shard.py). The merge checks that
the shards belong together (one config, one sampling, one bundled model; shards 1..n each given once; their
prompts disjoint and together every prompt of the config), writes every stage's responses to
`OUT/responses/<stage>.jsonl`, and returns the config with each stage turned into that recorded file. From
there a merged run is a run on recorded stages, through the same pipeline: it cannot reach another verdict
than the unsharded run on the same responses.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from simct_ci.collect import ResponseCache
from simct_ci.config import Config, StageConfig
from simct_ci.jsonl import one_line
from simct_ci.pipeline import RESPONSES_DIR, collect_all
from simct_ci.recorded import read_recorded, write_recorded
from simct_ci.responses import Failure, Response, StageResponses
from simct_ci.shard import Manifest, ShardError, config_fingerprint, read_manifest

Shard = tuple[Path, Manifest]


def merge_shards(
    config: Config, config_id: str, shard_dirs: Sequence[Path], out_dir: Path, model_sha256: str
) -> tuple[Config, dict[str, StageResponses]]:
    """(the config with recorded stages, every stage's merged responses and failures), ready for evaluation."""
    shards = [(directory, read_manifest(directory)) for directory in shard_dirs]
    _check_complete_set(shards)
    for directory, manifest in shards:
        _check_belongs(directory, manifest, config, config_id, model_sha256)
    _check_prompts(shards, config)
    responses = _read_responses(shards, config)
    recorded = []
    for stage in config.stages:
        path = out_dir / RESPONSES_DIR / f"{stage.name}.jsonl"
        write_recorded(path, responses[stage.name])
        recorded.append(StageConfig(name=stage.name, responses=path))
    merged_config = dataclasses.replace(config, stages=tuple(recorded))
    collected = collect_all(merged_config, out_dir, ResponseCache.disabled())
    # Failed requests are in no responses file: the manifests carry them, so the gate counts them as in a whole run.
    failures = _failures(shards)
    merged = {name: dataclasses.replace(stage, failures=failures.get(name, ())) for name, stage in collected.items()}
    return merged_config, merged


def _where(directory: Path) -> str:
    return one_line(str(directory))


def _check_complete_set(shards: list[Shard]) -> None:
    """Shards 1..n of one n, each given once: a missing shard is named, not silently skipped."""
    first_dir, first = shards[0]
    count = first.spec.count
    given: dict[int, Path] = {}
    for directory, manifest in shards:
        if manifest.spec.count != count:
            raise ShardError(
                f"{_where(directory)} is shard {manifest.spec} but {_where(first_dir)} is shard {first.spec}: "
                "all shards of one run are split the same number of ways"
            )
        if manifest.spec.index in given:
            raise ShardError(
                f"shard {manifest.spec} is given twice: {_where(given[manifest.spec.index])} and {_where(directory)}"
            )
        given[manifest.spec.index] = directory
    missing = [index for index in range(1, count + 1) if index not in given]
    if missing:
        names = ", ".join(f"{index}/{count}" for index in missing)
        have = ", ".join(f"{index}/{count}" for index in sorted(given))
        verb = "is" if len(missing) == 1 else "are"
        raise ShardError(
            f"shard {names} {verb} missing (given: {have}); merge needs every shard's output directory "
            "(did a shard's job fail, or its artifact not download?)"
        )


def _check_belongs(directory: Path, manifest: Manifest, config: Config, config_id: str, model_sha256: str) -> None:
    where = f"{_where(directory)} (shard {manifest.spec})"
    if manifest.config_id != config_id:
        raise ShardError(f"{where} was collected for config {manifest.config_id!r}, this merge is for {config_id!r}")
    if manifest.sampling != dataclasses.asdict(config.sampling):
        raise ShardError(
            f"{where} was collected with sampling {manifest.sampling}, {config_id} now says "
            f"{dataclasses.asdict(config.sampling)}; rerun the shards"
        )
    if manifest.config_sha256 != config_fingerprint(config):
        raise ShardError(
            f"{where} was collected from another version of {config_id} (its stages or prompts differ); "
            "rerun the shards"
        )
    if manifest.model_sha256 != model_sha256:
        raise ShardError(
            f"{where} was collected with bundled model {manifest.model_sha256[:12]}, this merge has "
            f"{model_sha256[:12]}; run the shards and the merge with the same simct-action version"
        )


def _check_prompts(shards: list[Shard], config: Config) -> None:
    """The shards' prompts are disjoint and together exactly the config's prompts."""
    owner: dict[str, Shard] = {}
    for shard in shards:
        directory, manifest = shard
        for prompt_id in manifest.prompt_ids:
            if prompt_id in owner:
                other_dir, other = owner[prompt_id]
                raise ShardError(
                    f"prompt {prompt_id!r} is in shard {other.spec} ({_where(other_dir)}) and in shard "
                    f"{manifest.spec} ({_where(directory)}): shards must not overlap"
                )
            owner[prompt_id] = shard
    expected = {prompt.id for prompt in config.prompts}
    extra = sorted(set(owner) - expected)
    if extra:
        directory, manifest = owner[extra[0]]
        raise ShardError(
            f"{_where(directory)} (shard {manifest.spec}) holds prompt {extra[0]!r}, which is not in the config"
        )
    uncovered = [prompt.id for prompt in config.prompts if prompt.id not in owner]
    if uncovered:
        raise ShardError(
            f"no shard holds prompt {uncovered[0]!r} ({len(uncovered)} prompts uncovered); rerun the shards"
        )


def _read_responses(shards: list[Shard], config: Config) -> dict[str, list[Response]]:
    merged: dict[str, list[Response]] = {stage.name: [] for stage in config.stages}
    for directory, manifest in shards:
        own = set(manifest.prompt_ids)
        for stage in config.stages:
            path = directory / RESPONSES_DIR / f"{stage.name}.jsonl"
            if not path.is_file():
                raise ShardError(
                    f"{_where(path)}: missing; shard {manifest.spec} did not record stage {stage.name} (rerun it)"
                )
            for response in read_recorded(path):
                if response.prompt_id not in own:
                    raise ShardError(
                        f"{_where(path)}: holds prompt {response.prompt_id!r}, which belongs to another shard"
                    )
                merged[stage.name].append(response)
    return merged


def _failures(shards: list[Shard]) -> dict[str, tuple[Failure, ...]]:
    by_stage: dict[str, list[Failure]] = {}
    for _, manifest in shards:
        for stage, failures in manifest.failures.items():
            by_stage.setdefault(stage, []).extend(failures)
    return {stage: tuple(sorted(rows, key=lambda f: (f.prompt_id, f.sample))) for stage, rows in by_stage.items()}
