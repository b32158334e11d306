"""Start-up time: from starting `python entrypoint.py` (as the Action's container does) to the first HTTP request
arriving at a live stage's endpoint (a loopback stub that answers at once).

Run: python bench/startup.py            (7 runs per mode, median; writes bench/results/startup.json)

Two modes:
- `image-like`: the package is copied without __pycache__ and run with PYTHONDONTWRITEBYTECODE=1, as the Docker
  image does (its Dockerfile copies the sources only; pip precompiled the dependencies), so simct_ci's modules are
  compiled on every start;
- `warm`: the repository with its __pycache__, as on a developer's machine.
The process is stopped once the first request has arrived. A third figure, `python -c pass`, is the floor.
The imports done before the first request, by cumulative time, come from one extra run with -X importtime.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import REPO, environment, save

TARGET_SECONDS = 1.5
TIMEOUT = 60.0
PROMPTS = 8


class _Stub(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.first_request = threading.Event()
        self.first_request_at = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # the client is stopped at its first request: broken pipes are expected


class _Handler(BaseHTTPRequestHandler):
    server: _Stub

    def do_POST(self) -> None:
        if not self.server.first_request.is_set():
            self.server.first_request_at = time.perf_counter()
            self.server.first_request.set()
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _workspace(directory: Path, url: str) -> None:
    prompts = "".join(f'  - {{id: q{i}, text: "Question {i}: name a colour."}}\n' for i in range(PROMPTS))
    (directory / "simct.yml").write_text(
        f"""version: 1
reference: bare-metal
stages:
  bare-metal: {{base_url: {url}, model: stub}}
  candidate: {{base_url: {url}, model: stub}}
prompts:
{prompts}sampling: {{samples: 2, max_tokens: 16}}
""",
        encoding="utf-8",
    )


def _image_like_copy(target: Path, ref: str | None = None) -> Path:
    """simct_ci/, templates/ and entrypoint.py without any __pycache__, as the Dockerfile copies them;
    from the working tree, or from the git commit `ref` (to measure a baseline)."""
    if ref is not None:
        target.mkdir(parents=True)
        archive = subprocess.run(
            ["git", "archive", ref, "simct_ci", "templates", "entrypoint.py"], cwd=REPO, capture_output=True, check=True
        ).stdout
        subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
        return target
    ignore = shutil.ignore_patterns("__pycache__", "training")
    shutil.copytree(REPO / "simct_ci", target / "simct_ci", ignore=ignore)
    shutil.copytree(REPO / "templates", target / "templates", ignore=ignore)
    shutil.copy(REPO / "entrypoint.py", target / "entrypoint.py")
    return target


def _env(app: Path, workspace: Path, *, image_like: bool) -> dict[str, str]:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/root"),
        "PYTHONPATH": str(app),
        "PYTHONUNBUFFERED": "1",
        "CI": "true",
        "GITHUB_ACTIONS": "true",
        "GITHUB_WORKSPACE": str(workspace),
        "INPUT_CONFIG": "simct.yml",
        "INPUT_OUTPUT_DIR": str(workspace / "simct-out"),
        "INPUT_COMMENT": "false",
    }
    if image_like:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _time_to_first_request(app: Path, workspace: Path, *, image_like: bool, extra: list[str] | None = None) -> float:
    with _Stub() as stub:
        threading.Thread(target=stub.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
        _workspace(workspace, stub.url)
        shutil.rmtree(workspace / "simct-out", ignore_errors=True)
        command = [sys.executable, *(extra or []), str(app / "entrypoint.py")]
        log = workspace / "stderr.log"
        with log.open("wb") as sink:
            started = time.perf_counter()
            process = subprocess.Popen(command, cwd=workspace, env=_env(app, workspace, image_like=image_like),
                                       stdout=subprocess.DEVNULL, stderr=sink)  # fmt: skip
            try:
                if not stub.first_request.wait(TIMEOUT):
                    raise SystemExit(f"bench/startup.py: no request within {TIMEOUT:.0f} s:\n{log.read_text()[-2000:]}")
                elapsed = stub.first_request_at - started
            finally:
                process.terminate()
                process.wait(timeout=30)
                stub.shutdown()
        return elapsed


def _floor(runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _imports_before_first_request(app: Path, workspace: Path) -> list[dict[str, Any]]:
    """Top-level imports by cumulative time, from -X importtime (the process stops at the first request)."""
    _time_to_first_request(app, workspace, image_like=True, extra=["-X", "importtime"])
    rows = []
    for line in (workspace / "stderr.log").read_text(errors="replace").splitlines():
        parts = line.removeprefix("import time:").split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2]
        if name.startswith(" ") and not name.startswith("  "):  # one space: imported by the top level
            rows.append({"module": name.strip(), "cumulative_ms": round(int(parts[1]) / 1000, 1)})
    rows.sort(key=lambda row: -row["cumulative_ms"])
    return rows[:12]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="runs per mode (the median is reported)")
    parser.add_argument(
        "--baseline", metavar="GIT_REF", default="ffaf9bb",
        help="also measure this commit, image-like (default: the last commit before lazy imports; '' to skip)",
    )  # fmt: skip
    args = parser.parse_args()

    result: dict[str, Any] = {
        "benchmark": "startup: python entrypoint.py until the first HTTP request reaches a loopback endpoint",
        "command": "python bench/startup.py " + " ".join(sys.argv[1:]),
        "environment_before": environment(),
        "runs": args.runs,
    }
    with tempfile.TemporaryDirectory(prefix="simct-bench-startup-") as scratch:
        image_app = _image_like_copy(Path(scratch) / "app")
        workspace = Path(scratch) / "workspace"
        workspace.mkdir()
        modes = [("image-like", image_app, True), ("warm", REPO, False)]
        if args.baseline:
            baseline_app = _image_like_copy(Path(scratch) / "baseline", args.baseline)
            modes.append((f"baseline {args.baseline}, image-like", baseline_app, True))
        for mode, app, image_like in modes:
            _time_to_first_request(app, workspace, image_like=image_like)  # page cache warm, not measured
            times = [_time_to_first_request(app, workspace, image_like=image_like) for _ in range(args.runs)]
            result[mode] = {
                "median_s": round(statistics.median(times), 3),
                "min_s": round(min(times), 3),
                "max_s": round(max(times), 3),
            }
            print(mode, json.dumps(result[mode]), flush=True)
        result["python_floor_s"] = round(_floor(args.runs), 3)
        result["imports_before_first_request"] = _imports_before_first_request(image_app, workspace)
    result["environment_after"] = environment()
    result["target"] = {"seconds": TARGET_SECONDS, "measured_image_like": result["image-like"]["median_s"]}
    print(f"wrote {save('startup', result)}")


if __name__ == "__main__":
    main()
