"""Pick run.sh's profile: `baseline` (roberta-wwm-ext-large, 2020 hyperparameters) when a CUDA device is visible
and the model is reachable, else `demo` (a small BERT pretrained here, on CPU); and its precision (run.sh's and
own_data.sh's BF16). Prints `<profile>\t<reason>\t<--bf16 value, or nothing for the profile's own>`; with
--precision_only, `<why>\t<--bf16 value>`."""
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


def native_cpu_bf16() -> bool:
    """The CPU multiplies bf16 matrices natively (AVX512-BF16 or AMX). There bf16 autocast trains the demo 1.2x faster
    at the same scores (bench/RESULTS.md); elsewhere bf16 is emulated and can be slower than fp32."""
    import torch

    checks = (getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))
    return any(check() for check in checks if check is not None)


def bf16(requested: str, profile: str, cuda: bool | None = None, native: bool | None = None) -> tuple[str, str]:
    """run.sh's BF16 setting -> (the value of train.py's --bf16, or "" to keep the profile's; why). auto: bf16 autocast
    for the demo on a CPU that computes bf16 natively, the profile's own precision otherwise."""
    value = requested.strip().lower()
    if value in ("1", "true", "yes"):
        return "true", "BF16=1 was requested"
    if value in ("0", "false", "no"):
        return "false", "BF16=0 was requested"
    if value not in ("", "auto"):
        raise ValueError(f"BF16 must be auto, 1 or 0, not {requested!r}")
    if profile != "demo":
        return "", "the profile's own precision"
    if cuda is None:
        import torch

        cuda = torch.cuda.is_available()
    if cuda:
        return "", "the profile's own precision (a CUDA device is visible)"
    if native_cpu_bf16() if native is None else native:
        return "true", "bf16 autocast: this CPU computes bf16 natively (BF16=0 for fp32)"
    return "", "fp32: this CPU has no native bf16"


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--precision_only", action="store_true",
                        help="own_data.sh: print just `<why>\t<--bf16 value>`, for its small-encoder profile")
    args = parser.parse_args(argv)
    caller = "own_data.sh" if args.precision_only else "run.sh"
    try:
        if args.precision_only:
            # own_data.json is a small-encoder recipe like run.sh's demo profile, so BF16=auto decides as for that one
            precision, why = bf16(os.environ.get("BF16", "auto"), "demo")
            print(f"{why}\t{precision}")
            return
        profile, reason = choose(os.environ.get("PROFILE", "auto"), os.environ.get("BASELINE_MODEL", BASELINE_MODEL))
        precision, why = bf16(os.environ.get("BF16", "auto"), profile)
    except ValueError as error:
        raise SystemExit(f"{caller}: error: {error}") from None
    print(f"{profile}\t{reason}; {why}\t{precision}")


if __name__ == "__main__":
    main()
