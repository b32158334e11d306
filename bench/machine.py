"""What every benchmark result carries: when, on what, under how much load, at which commit; and one way to
time a child process (wall time and its own peak RSS, from wait4, so earlier children do not count)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    return None


def _git_commit() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO, capture_output=True)
        return commit + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _busy_processes(limit: int = 3) -> list[str]:
    """The processes using the most CPU besides this one, so a loaded machine says what loads it."""
    try:
        lines = subprocess.run(
            ["ps", "-eo", "pcpu,args", "--sort=-pcpu", "--no-headers"], capture_output=True, text=True, check=True
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return []
    busy = [" ".join(line.split())[:100] for line in lines if "bench/" not in line and "ps -eo" not in line]
    return [line for line in busy if float(line.split()[0]) >= 10.0][:limit]


def environment() -> dict[str, Any]:
    """Date, machine and load (1, 5, 15 min averages) at the time of the call."""
    return {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{_cpu_model()}, {os.cpu_count()} cores, {_memory_gib()} GiB, {platform.system()} "
        f"{platform.machine()}, Python {platform.python_version()}",
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "busy_processes": _busy_processes(),
        "commit": _git_commit(),
        # Other engineers change the engine while these figures are taken: say which version was measured.
        "sources_sha256": {
            name: hashlib.sha256((REPO / name).read_bytes()).hexdigest()[:12]
            for name in (
                "simct_ci/features.py",
                "simct_ci/compare.py",
                "simct_ci/collect.py",
                "simct_ci/bundled/simct-lgbm.txt",
            )
        },
    }


@dataclass(frozen=True)
class ChildRun:
    seconds: float
    peak_rss_mib: float
    returncode: int
    stdout: str
    stderr: str


def run_child(command: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None) -> ChildRun:
    """Run `command`, returning its wall time and its own peak resident set size (Linux wait4 rusage)."""
    with tempfile.TemporaryDirectory() as scratch:
        out_path, err_path = Path(scratch) / "out", Path(scratch) / "err"
        with out_path.open("wb") as out, err_path.open("wb") as err:
            started = time.perf_counter()
            process = subprocess.Popen(command, stdout=out, stderr=err, env=dict(env) if env else None, cwd=cwd)
            _, status, usage = os.wait4(process.pid, 0)
            seconds = time.perf_counter() - started
            process.returncode = os.waitstatus_to_exitcode(status)
        return ChildRun(
            seconds=seconds,
            peak_rss_mib=usage.ru_maxrss / 1024,  # kilobytes on Linux
            returncode=process.returncode,
            stdout=out_path.read_text(errors="replace"),
            stderr=err_path.read_text(errors="replace"),
        )


def save(name: str, result: Mapping[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return path
