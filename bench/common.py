"""Shared bits of the benchmarks: paths, machine description, and appending sections to RESULTS.md."""
from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT / "code"))


def machine() -> str:
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
    import torch

    gpu = f", GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{cpu}, {os.cpu_count()} cores{gpu}; torch {torch.__version__}"


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def header(title: str, command: str) -> str:
    return (f"## {title}\n\nMachine: {machine()}. Date: {dt.date.today().isoformat()}. Commit: {commit()}.\n"
            f"Command: `{command}`\n\n")


def table(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def write_section(path: Path, text: str) -> None:
    """Write one benchmark's section to its own file under bench/results/ (RESULTS.md is assembled from them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    print(text)


def work_dir(name: str) -> Path:
    """Scratch space of a benchmark (caches, checkpoints): $BENCH_WORK_DIR/<name>, by default under user_data/.
    The tests point BENCH_WORK_DIR at a temporary directory, so a test run writes nothing into the repository."""
    return Path(os.environ.get("BENCH_WORK_DIR") or REPO_ROOT / "user_data") / name


def results_path(name: str, smoke: bool, out: str | None = None) -> Path:
    """bench/results/<name>.md for real runs; smoke runs (CI) write into work_dir("bench_smoke") and leave the
    results alone."""
    if out:
        return Path(out)
    return (work_dir("bench_smoke") if smoke else REPO_ROOT / "bench/results") / f"{name}.md"
