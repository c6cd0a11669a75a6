"""The encoder bundled for run.sh's demo profile (code/assets/demo_encoder/): a file small enough to ship, made by
the command its README gives, that loads as float32 for training with the project's tokenizer. Its quality is not
tested here (CI trains tiny models); README and bench/RESULTS.md report it."""
from __future__ import annotations

import json

import torch
from safetensors import safe_open

from helpers import REPO_ROOT, competition_heads
from mtl.model import load_model
from mtl.tokenizer import load_tokenizer

ENCODER = REPO_ROOT / "code" / "assets" / "demo_encoder"
CONFIG = REPO_ROOT / "code" / "assets" / "configs" / "demo_256.json"


def test_checkpoint_is_small_half_precision_and_of_the_documented_shape():
    weights = ENCODER / "model.safetensors"
    assert weights.stat().st_size <= 50 * 2**20
    with safe_open(str(weights), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F16"}
    config = json.loads((ENCODER / "config.json").read_text())
    sizes = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size")
    assert {k: config[k] for k in sizes} == {k: json.loads(CONFIG.read_text())[k] for k in sizes}
    assert config["dtype"] == "float32"
    command = (ENCODER / "README.md").read_text()
    assert "code/pretrain.py --config_name code/assets/configs/demo_256.json" in command
    assert "--save_dtype float16" in command


def test_loads_as_float32_multitask_model_with_the_project_tokenizer(tokenizer):
    model = load_model(str(ENCODER), None, competition_heads())
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    own = load_tokenizer(str(ENCODER))
    text = "华为发布新款折叠屏手机，今天心情特别好"
    assert own(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert tokenizer.unk_token_id not in own(text)["input_ids"]
