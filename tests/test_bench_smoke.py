"""The benchmarks run end to end at tiny sizes (`bench/run_all.sh --smoke`), so they cannot silently rot."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import REPO_ROOT


@pytest.mark.slow
def test_bench_smoke_mode_runs_every_benchmark_and_writes_its_tables(tmp_path):
    out = tmp_path / "bench_smoke"
    results_before = {p: p.read_bytes() for p in (REPO_ROOT / "bench" / "results").rglob("*.*")}
    proc = subprocess.run(["bash", str(REPO_ROOT / "bench" / "run_all.sh"), "--smoke"], capture_output=True, text=True,
                          env={**os.environ, "PYTHON": sys.executable, "BENCH_WORK_DIR": str(tmp_path)}, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    expected = {"preprocess": "speed-up", "padding": "length-grouped", "ema": "foreach",
                "throughput_tiny": "(bare) bare PyTorch loop", "profile_cpu": "| backward |",
                "single_vs_multi": "multi − single", "serve": "texts per Predictor call"}
    for name, marker in expected.items():
        text = (out / f"{name}.md").read_text(encoding="utf-8")
        assert marker in text and "Machine:" in text and "Commit:" in text, name
    # smoke numbers never overwrite the committed results
    assert {p: p.read_bytes() for p in (REPO_ROOT / "bench" / "results").rglob("*.*")} == results_before
