"""The Action's image size without Docker: what `pip install -r requirements.txt` adds, measured in a fresh venv,
plus the package's own files, plus the python:3.11-slim base image's published size.

The venv then loses what the Dockerfile deletes in the same RUN (numpy's and scipy's `tests/` directories): the
bench reads that `find` command from the Dockerfile and runs it on the venv's site-packages, and stops if the
install RUN holds any other command it does not replicate.

Run: python bench/image_size.py          (writes bench/results/image_size.json; needs pip to reach its index)

Per distribution: bytes on disk of the files in its RECORD (the .pyc files pip compiles included, as in the
image). The compressed figure is what a pull downloads for that layer: the files as a gzip'd tar (level 6, like
Docker's layers). pip, setuptools and wheel are left out: the base image has them already.
`of_which_tests_mb` is what is left of a distribution under `tests/` or `testing/` after the cleanup,
`removed_by_cleanup_mb` what the cleanup deleted from it.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shlex
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.machine import REPO, environment, save

TARGET_MB = 350.0
MB = 1_000_000  # decimal megabytes, as Docker and Docker Hub report sizes

# The base image cannot be pulled here (no Docker, no access to Docker Hub from this machine). Figures for
# python:3.11-slim (Debian 12 "bookworm"), linux/amd64, as Docker Hub's tag page (hub.docker.com/_/python,
# "Compressed Size") and `docker image ls` (uncompressed) report them for the 3.11.x-slim builds of 2024-2025,
# rounded up. Not measured on this machine: check with `docker image ls python:3.11-slim` and update.
BASE_IMAGE = "python:3.11-slim (bookworm, linux/amd64)"
BASE_COMPRESSED_MB = 45.0
BASE_UNCOMPRESSED_MB = 130.0
BASE_SOURCE = "Docker Hub tag page (compressed) and `docker image ls` (uncompressed); approximate, not measured here"
# libgomp1, which the Dockerfile adds for LightGBM: Debian 12's Installed-Size (apt-cache show libgomp1).
LIBGOMP_FALLBACK_KB = 312

ALREADY_IN_BASE = {"pip", "setuptools", "wheel"}
APP_PATHS = ("simct_ci", "templates", "entrypoint.py")  # what the Dockerfile copies
APP_EXCLUDED = ("training", "__pycache__")  # .dockerignore
DOCKERFILE = REPO / "Dockerfile"
IMAGE_SITE_PACKAGES = "/usr/local/lib/python3.11/site-packages"  # where pip installs in python:3.11-slim

_SIZES_SCRIPT = r"""
import json, sys
from importlib import metadata
from pathlib import Path
rows = []
for dist in metadata.distributions():
    files = []
    for f in dist.files or ():
        path = Path(dist.locate_file(f))
        if path.is_file():
            files.append(str(path))
    rows.append({"name": dist.metadata["Name"], "version": dist.version, "files": files,
                 "requires": dist.requires or []})
print(json.dumps(rows))
"""


class _Counter(io.RawIOBase):
    """A writable sink that only counts bytes."""

    def __init__(self) -> None:
        self.count = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self.count += len(data)
        return len(data)


def compressed_size(files: list[Path], root: Path) -> int:
    """Bytes of a gzip'd tar (level 6) of `files`, paths relative to `root`."""
    counter = _Counter()
    with (
        gzip.GzipFile(fileobj=counter, mode="wb", compresslevel=6, mtime=0) as zipped,
        tarfile.open(fileobj=zipped, mode="w") as tar,
    ):
        for path in files:
            tar.add(path, arcname=str(path.relative_to(root)), recursive=False)
    return counter.count


def _requirement_name(requirement: str) -> str | None:
    """The distribution a Requires-Dist line names, None for an extra's optional requirement."""
    if "extra ==" in requirement:
        return None
    name = requirement.split(";")[0].strip()
    for stop in "<>=!~[ (":
        name = name.split(stop)[0]
    return _normal(name)


def _normal(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def _venv(directory: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", str(directory)], check=True)
    python = directory / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-cache-dir", "-r", str(REPO / "requirements.txt")],
        check=True,
    )
    return python


def _site_packages(python: Path) -> Path:
    out = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    )
    return Path(out.stdout.strip())


def install_cleanup() -> list[list[str]]:
    """The `find`s that the Dockerfile's install RUN runs after `pip install -r requirements.txt`, as argv.

    Stops when the RUN holds a command other than that install and `find`s under the image's site-packages: the
    bench would then measure something else than the image."""
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    runs = [line[4:] for line in text.splitlines() if line.startswith("RUN ") and "pip install" in line]
    if len(runs) != 1:
        raise SystemExit(f"{DOCKERFILE}: expected one RUN with `pip install`, found {len(runs)}")
    cleanups = []
    for argv in (shlex.split(part) for part in runs[0].split("&&")):
        if argv[:2] == ["pip", "install"] and argv[-2:] == ["-r", "requirements.txt"]:
            continue
        starts = argv[1 : next((i for i, word in enumerate(argv) if word.startswith("-")), len(argv))]
        if argv[0] != "find" or not starts or not all(s.startswith(IMAGE_SITE_PACKAGES + "/") for s in starts):
            raise SystemExit(
                f"{DOCKERFILE}: the install RUN runs {shlex.join(argv)!r}, which this bench does not replicate"
            )
        cleanups.append(argv)
    return cleanups


def _apply_cleanup(commands: list[list[str]], site: Path) -> dict[str, Any]:
    """Run the Dockerfile's cleanup on the venv's site-packages; what it removed."""

    def sizes() -> dict[Path, int]:
        return {p: p.stat().st_size for p in site.rglob("*") if p.is_file()}

    before = sizes()
    for argv in commands:
        subprocess.run([word.replace(IMAGE_SITE_PACKAGES, str(site)) for word in argv], check=True)
    after = sizes()
    removed = {path: size for path, size in before.items() if path not in after}
    by_top: dict[str, float] = {}
    for path, size in removed.items():
        top = path.relative_to(site).parts[0]
        by_top[top] = by_top.get(top, 0) + size
    return {
        "dockerfile_commands": [shlex.join(argv) for argv in commands],
        "removed_files": len(removed),
        "removed_mb": round(sum(removed.values()) / MB, 2),
        "removed_mb_by_top_level": {top: round(size / MB, 2) for top, size in sorted(by_top.items())},
    }


def _libgomp_kb() -> tuple[int, str]:
    try:
        out = subprocess.run(["apt-cache", "show", "libgomp1"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Installed-Size:"):
                return int(line.split()[1]), "apt-cache show libgomp1 (this machine is Debian 12, like the base image)"
    except (OSError, subprocess.CalledProcessError, ValueError):
        pass
    return LIBGOMP_FALLBACK_KB, "Debian 12 libgomp1 Installed-Size (constant)"


def _app_files() -> list[Path]:
    files = []
    for name in APP_PATHS:
        path = REPO / name
        candidates = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        files += [p for p in candidates if not any(part in APP_EXCLUDED for part in p.relative_to(REPO).parts)]
    return files


def main() -> None:
    result: dict[str, Any] = {
        "benchmark": "image size: requirements.txt in a fresh venv + the package + the base image's published size",
        "command": "python bench/image_size.py",
        "environment_before": environment(),
    }
    cleanup_commands = install_cleanup()  # before the install: a Dockerfile the bench cannot follow stops it at once
    with tempfile.TemporaryDirectory(prefix="simct-bench-image-") as scratch:
        python = _venv(Path(scratch) / "venv")
        site = _site_packages(python)
        cleanup = _apply_cleanup(cleanup_commands, site)
        rows = json.loads(subprocess.run([str(python), "-c", _SIZES_SCRIPT], capture_output=True, text=True,
                                         check=True).stdout)  # fmt: skip
        packages = []
        for row in rows:
            if row["name"].lower() in ALREADY_IN_BASE:
                continue
            files = [Path(f) for f in row["files"]]
            test_files = [f for f in files if {"tests", "testing"} & set(f.relative_to(site).parts)]
            packages.append(
                {
                    "name": row["name"],
                    "version": row["version"],
                    "installed_mb": round(sum(f.stat().st_size for f in files) / MB, 2),
                    "compressed_mb": round(compressed_size(files, site) / MB, 2),
                    "of_which_tests_mb": round(sum(f.stat().st_size for f in test_files) / MB, 2),
                    "removed_by_cleanup_mb": cleanup["removed_mb_by_top_level"].get(_normal(row["name"]), 0.0),
                    "required_by": sorted(
                        other["name"]
                        for other in rows
                        if any(_requirement_name(req) == _normal(row["name"]) for req in other["requires"])
                    ),
                }
            )
        packages.sort(key=lambda p: -p["installed_mb"])
        every_file = [p for p in site.rglob("*") if p.is_file()]
        total_site = sum(p.stat().st_size for p in every_file) / MB
    app = _app_files()
    app_installed = sum(p.stat().st_size for p in app) / MB
    app_compressed = compressed_size(app, REPO) / MB
    libgomp_kb, libgomp_source = _libgomp_kb()
    deps_installed = sum(p["installed_mb"] for p in packages)
    deps_compressed = sum(p["compressed_mb"] for p in packages)
    layers = {
        "base image": {"installed_mb": BASE_UNCOMPRESSED_MB, "compressed_mb": BASE_COMPRESSED_MB},
        "libgomp1 (apt)": {"installed_mb": round(libgomp_kb * 1024 / MB, 2), "compressed_mb": None},
        "pip install -r requirements.txt": {
            "installed_mb": round(deps_installed, 1),
            "compressed_mb": round(deps_compressed, 1),
        },
        "simct_ci/, templates/, entrypoint.py": {
            "installed_mb": round(app_installed, 2),
            "compressed_mb": round(app_compressed, 2),
        },
    }
    total_installed = sum(layer["installed_mb"] for layer in layers.values())
    total_compressed = sum(layer["compressed_mb"] or layer["installed_mb"] for layer in layers.values())
    result.update(
        {
            "base_image": {
                "name": BASE_IMAGE,
                "compressed_mb": BASE_COMPRESSED_MB,
                "uncompressed_mb": BASE_UNCOMPRESSED_MB,
                "source": BASE_SOURCE,
            },
            "libgomp1_source": libgomp_source,
            "cleanup": cleanup,
            "site_packages_total_mb_including_pip": round(total_site, 1),
            "packages": packages,
            "layers": layers,
            "image_uncompressed_mb": round(total_installed, 1),
            "image_compressed_mb": round(total_compressed, 1),
            "target": {"mb": TARGET_MB, "measured_uncompressed": round(total_installed, 1)},
            "environment_after": environment(),
        }
    )
    for package in packages[:8]:
        print(
            f"{package['name']:<20} {package['installed_mb']:>7.1f} MB  ({package['compressed_mb']:.1f} MB gzip, "
            f"tests left {package['of_which_tests_mb']:.1f} MB, removed {package['removed_by_cleanup_mb']:.1f} MB, "
            f"required by {', '.join(package['required_by']) or '-'})"
        )
    commands = " && ".join(cleanup["dockerfile_commands"]) or "none"
    print(f"cleanup: {commands}: -{cleanup['removed_mb']:.1f} MB ({cleanup['removed_files']} files)")
    print(
        f"image: {total_installed:.0f} MB uncompressed, {total_compressed:.0f} MB compressed (target {TARGET_MB:.0f})"
    )
    print(f"wrote {save('image_size', result)}")


if __name__ == "__main__":
    os.environ.setdefault("PIP_DISABLE_PIP_VERSION_CHECK", "1")
    main()
