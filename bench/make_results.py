"""Assemble bench/RESULTS.md from the sections under bench/results/ and draw bench/padding.png."""
from __future__ import annotations

import json

from common import REPO_ROOT

RESULTS = REPO_ROOT / "bench" / "results"
ORDER = ["summary", "preprocess", "padding", "throughput_small", "ema", "ddp_cpu", "predict", "onnx", "serve", "task_strategies", "pcgrad", "single_vs_multi", "profile_cpu", "throughput_large_bf16",
         "throughput_large_bf16_compile", "demo_cpu", "demo_quality", "history"]


def chart() -> str:
    """A bar chart of padding efficiency, when matplotlib is installed (bench/requirements.txt)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return ""
    rows = json.loads((RESULTS / "padding.json").read_text())
    fig, ax = plt.subplots(figsize=(8, 3.6))
    names = list(dict.fromkeys(r["batching"] for r in rows))
    width = 0.38
    for k, batch_size in enumerate((16, 32)):
        values = [float(r["real / computed tokens"]) for r in rows if r["batch size"] == batch_size]
        bars = ax.bar([i + (k - 0.5) * width for i in range(len(names))], values, width, label=f"batch {batch_size}")
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks(range(len(names)), [n.replace(", ", ",\n") for n in names], fontsize=8)
    ax.set_ylabel("real / computed tokens")
    ax.set_ylim(0, 1.1)
    ax.legend(fontsize=8)
    ax.set_title("Padding efficiency on the bundled train splits")
    fig.tight_layout()
    fig.savefig(REPO_ROOT / "bench" / "padding.png", dpi=110)
    return "\n![padding efficiency](padding.png)\n"


def main() -> None:
    parts = ["# Benchmarks\n\nEvery table below comes from a real run; each names its machine, date, commit and command. "
             "Ratios are measured side by side in one run (these machines are shared and noisy). Reproduce the CPU "
             "tables with `bash bench/run_all.sh` and the GPU ones with `bash bench/run_gpu.sh`; "
             "`bash bench/run_all.sh --smoke` (run by the tests) keeps the scripts from rotting.\n"]
    for name in ORDER:
        path = RESULTS / f"{name}.md"
        if path.exists():
            text = path.read_text(encoding="utf-8")
            if name == "padding":
                text += chart()
            parts.append(text)
    (REPO_ROOT / "bench" / "RESULTS.md").write_text("\n".join(parts), encoding="utf-8")


if __name__ == "__main__":
    main()
