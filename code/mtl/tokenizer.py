"""Loading the fast tokenizer of a model or of the bundled vocabulary, and hashing it for cache fingerprints."""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional

from transformers import AutoTokenizer, BertConfig, PreTrainedTokenizerBase


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerBase:
    """The fast tokenizer of a directory holding vocab.txt (+ tokenizer_config.json) or tokenizer.json.

    Not `BertTokenizerFast(vocab_file=...)`: on transformers 5.x it silently encodes every character as [UNK].
    `config=BertConfig()` (every model here is BERT-architecture): otherwise AutoTokenizer reads the directory's model
    config to pick the tokenizer class, and a saved multi-task model's custom model_type sets off the
    trust_remote_code question, which waits for an answer on a terminal.
    """
    return AutoTokenizer.from_pretrained(str(path), config=BertConfig())


def tokenizer_source(model: Optional[str], fallback: str) -> str:
    """The model's own tokenizer when it ships one (a hub id is assumed to), else `fallback`. `model`: a local
    directory or a hub id, as mtl.paths.model_path gives it."""
    if model:
        local = Path(model)
        if not local.exists() or any((local / f).exists() for f in ("tokenizer.json", "vocab.txt")):
            return model
    return fallback


def tokenizer_hash(tokenizer: PreTrainedTokenizerBase) -> str:
    """Hash of the whole tokenizer definition (vocabulary, normaliser, special tokens)."""
    return hashlib.sha256(tokenizer.backend_tokenizer.to_str().encode()).hexdigest()


