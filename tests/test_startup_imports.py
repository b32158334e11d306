"""The first request does not wait for the engine: loading the CLI, the config and collection imports none of
the heavy libraries that only comparison and reporting need (see bench/startup.py for the time it saves)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HOT_PATH = ("simct_ci.cli", "simct_ci.pipeline", "simct_ci.collect", "simct_ci.config", "simct_ci.endpoints")
SHARDING = ("simct_ci.shard", "simct_ci.merge")
NOT_BEFORE_FIRST_REQUEST = ("lightgbm", "scipy", "sacrebleu", "jinja2")


def _imported_after(modules: tuple[str, ...]) -> set[str]:
    """Top-level package names in sys.modules of a fresh interpreter that imported `modules`."""
    code = (
        f"import json, sys\nimport {', '.join(modules)}\n"
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=True
    )
    return set(json.loads(result.stdout))


def test_the_hot_path_before_the_first_request_imports_no_engine_or_report_library() -> None:
    loaded = _imported_after(HOT_PATH)
    assert "simct_ci" in loaded  # the probe itself works
    assert loaded.isdisjoint(NOT_BEFORE_FIRST_REQUEST), sorted(loaded & set(NOT_BEFORE_FIRST_REQUEST))


def test_sharding_and_merging_modules_stay_as_light() -> None:
    loaded = _imported_after(SHARDING)
    assert loaded.isdisjoint(NOT_BEFORE_FIRST_REQUEST), sorted(loaded & set(NOT_BEFORE_FIRST_REQUEST))
