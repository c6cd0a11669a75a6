"""Pick run.sh's profile: `baseline` (roberta-wwm-ext-large, 2020 hyperparameters) when a CUDA device is visible
and the model is reachable, else `demo` (a small BERT pretrained here, on CPU). Prints `<profile>\t<reason>`."""
from __future__ import annotations

import os

from mtl.paths import resolve

BASELINE_MODEL = "hfl/chinese-roberta-wwm-ext-large"


def model_reachable(model: str) -> bool:
    """A local directory with a config, or a hub id that answers within a few seconds."""
    if resolve(model).is_dir():
        return (resolve(model) / "config.json").exists()
    if os.environ.get("HF_HUB_OFFLINE") == "1":
        return False
    try:
        from huggingface_hub import model_info

        model_info(model, timeout=5)
        return True
    except Exception:  # offline, unknown id, no permission: all mean "not reachable"
        return False


def choose(requested: str, model: str, cuda: bool | None = None) -> tuple[str, str]:
    if requested in ("demo", "baseline"):
        return requested, f"PROFILE={requested} was requested"
    if requested not in ("", "auto"):
        raise ValueError(f"PROFILE must be auto, demo or baseline, not {requested!r}")
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    if not cuda:
        return "demo", "no CUDA device is visible"
    if not model_reachable(model):
        return "demo", f"a CUDA device is visible but the model {model} is neither a local directory nor reachable on the hub"
    return "baseline", f"a CUDA device is visible and {model} is reachable"


if __name__ == "__main__":
    profile, reason = choose(os.environ.get("PROFILE", "auto"), os.environ.get("BASELINE_MODEL", BASELINE_MODEL))
    print(f"{profile}\t{reason}")
