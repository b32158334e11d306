"""Split a run's prompts across a CI matrix: which prompts a shard collects, and what it leaves behind.

A prompt's shard depends only on its id (a stable hash) and the number of shards, never on its position:
adding, removing or reordering prompts moves no other prompt. A shard run collects its prompts' responses
into `DIR/responses/<stage>.jsonl` and describes itself in `DIR/shard.json` (the manifest), which
`merge.py` checks before it combines the shards. A shard never decides a verdict.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simct_ci import __version__
from simct_ci.config import Config
from simct_ci.errors import SimctError
from simct_ci.jsonl import one_line
from simct_ci.responses import Failure, Prompt, StageResponses

MANIFEST = "shard.json"
MANIFEST_FORMAT = 1  # bump when a field changes meaning; merge refuses formats it does not know
_SPEC = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")
MAX_SHARDS = 1000


class ShardError(SimctError):
    """A bad --shard value, or shard outputs that cannot be merged. The message names the shard or file."""


@dataclass(frozen=True)
class ShardSpec:
    """Shard `index` of `count`, 1-based like a matrix value: 1/4, 2/4, 3/4, 4/4."""

    index: int
    count: int

    @classmethod
    def parse(cls, text: str) -> ShardSpec:
        match = _SPEC.fullmatch(text)
        if not match:
            raise ShardError(f"--shard: expected i/n such as 2/4, got {one_line(text)[:40]!r}")
        index, count = int(match[1]), int(match[2])
        if not 1 <= count <= MAX_SHARDS:
            raise ShardError(f"--shard: the number of shards must be between 1 and {MAX_SHARDS}, got {count}")
        if not 1 <= index <= count:
            raise ShardError(f"--shard: the shard index must be between 1 and {count}, got {index}")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(prompt_id: str, count: int) -> int:
    """The 1-based shard of a prompt: a hash of its id alone, the same on every machine and Python version."""
    digest = hashlib.sha256(prompt_id.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def select(prompts: Sequence[Prompt], spec: ShardSpec) -> tuple[Prompt, ...]:
    """This shard's prompts, in config order."""
    return tuple(prompt for prompt in prompts if shard_of(prompt.id, spec.count) == spec.index)


def config_fingerprint(config: Config) -> str:
    """sha256 of everything in the config that shapes the responses: stages, prompts and sampling.

    API keys are left out (they authorise, they do not shape), and so are file paths (shards and the merge
    may run in different workspaces); the gate is left out too: only the merge applies it.
    """
    identity = {
        "reference": config.reference,
        "stages": [
            {
                "name": stage.name,
                "recorded": stage.is_recorded,
                "base_url": (stage.base_url or "").rstrip("/"),
                "model": stage.model,
                "api": stage.api,
                "system_prompt": stage.system_prompt,
            }
            for stage in config.stages
        ],
        "prompts": [[prompt.id, prompt.text, prompt.type] for prompt in config.prompts],
        "sampling": dataclasses.asdict(config.sampling),
    }
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Manifest:
    """`shard.json`: what one shard collected, and everything the merge must find identical across shards."""

    config_id: str
    config_sha256: str
    spec: ShardSpec
    prompt_ids: tuple[str, ...]
    stages: tuple[str, ...]
    sampling: dict[str, Any]
    model_sha256: str
    failures: dict[str, tuple[Failure, ...]]  # stage -> requests that failed for good
    simct_version: str = __version__

    @classmethod
    def of(
        cls,
        config: Config,
        config_id: str,
        spec: ShardSpec,
        prompts: Sequence[Prompt],
        responses: Mapping[str, StageResponses],
        model_sha256: str,
    ) -> Manifest:
        return cls(
            config_id=config_id,
            config_sha256=config_fingerprint(config),
            spec=spec,
            prompt_ids=tuple(prompt.id for prompt in prompts),
            stages=tuple(stage.name for stage in config.stages),
            sampling=dataclasses.asdict(config.sampling),
            model_sha256=model_sha256,
            failures={name: stage.failures for name, stage in responses.items()},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "simct": self.simct_version,
            "config": self.config_id,
            "config_sha256": self.config_sha256,
            "shard": str(self.spec),
            "index": self.spec.index,
            "count": self.spec.count,
            "stages": list(self.stages),
            "sampling": self.sampling,
            "model_sha256": self.model_sha256,
            "prompt_ids": list(self.prompt_ids),
            "failures": {
                stage: [dataclasses.asdict(failure) for failure in failures]
                for stage, failures in self.failures.items()
            },
        }

    @classmethod
    def from_dict(cls, raw: object, where: str) -> Manifest:
        """Parse a manifest read from `where`; anything missing or mistyped is a one-line ShardError."""
        if not isinstance(raw, dict):
            raise ShardError(f"{where}: expected a JSON object")
        if raw.get("format") != MANIFEST_FORMAT:
            raise ShardError(
                f"{where}: manifest format {raw.get('format')!r}, this simct-action reads {MANIFEST_FORMAT}; "
                "run the shards and the merge with the same simct-action version"
            )
        try:
            spec = ShardSpec(int(raw["index"]), int(raw["count"]))
            failures = {
                str(stage): tuple(Failure(str(f["prompt_id"]), int(f["sample"]), str(f["error"])) for f in rows)
                for stage, rows in raw["failures"].items()
            }
            manifest = cls(
                config_id=str(raw["config"]),
                config_sha256=str(raw["config_sha256"]),
                spec=spec,
                prompt_ids=tuple(_strings(raw["prompt_ids"])),
                stages=tuple(_strings(raw["stages"])),
                sampling=dict(raw["sampling"]),
                model_sha256=str(raw["model_sha256"]),
                failures=failures,
                simct_version=str(raw.get("simct", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise ShardError(f"{where}: not a valid shard manifest (missing or mistyped {error})") from None
        if not 1 <= spec.index <= spec.count:
            raise ShardError(f"{where}: shard {spec} is out of range")
        return manifest


def _strings(value: object) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise TypeError("a list of strings")
    return value


def write_manifest(out_dir: Path, manifest: Manifest) -> Path:
    """Write `out_dir/shard.json` atomically (a cancelled job leaves no half manifest to merge)."""
    path = out_dir / MANIFEST
    out_dir.mkdir(parents=True, exist_ok=True)
    # ASCII escapes: an error message from a server may hold a lone surrogate, which UTF-8 cannot encode.
    text = json.dumps(manifest.to_dict(), indent=2, ensure_ascii=True) + "\n"
    descriptor, temporary = tempfile.mkstemp(dir=out_dir, prefix=f".{MANIFEST}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        Path(temporary).chmod(0o644)  # the runner user uploads what the container (root) wrote
        Path(temporary).replace(path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def read_manifest(shard_dir: Path) -> Manifest:
    path = shard_dir / MANIFEST
    shown = one_line(str(path))
    if not shard_dir.is_dir():
        raise ShardError(f"{one_line(str(shard_dir))}: not a directory (give each shard's output directory)")
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ShardError(
            f"{shown}: not found; is {one_line(str(shard_dir))} the output directory of a `run --shard i/n`?"
        ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ShardError(f"{shown}: unreadable ({one_line(str(error))})") from None
    return Manifest.from_dict(raw, shown)
