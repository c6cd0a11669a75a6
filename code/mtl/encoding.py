"""Texts -> token ids truncated as in training: flat int arrays plus row offsets (the caches' layout)."""
from __future__ import annotations

from itertools import chain

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import PreTrainedTokenizerBase


def truncating_backend(tokenizer: PreTrainedTokenizerBase, max_seq_length: int) -> Tokenizer:
    """A copy of the Rust tokenizer with truncation on (a copy: truncation is state, and the caller's must not change)."""
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.enable_truncation(max_seq_length, strategy="longest_first")
    backend.no_padding()
    return backend


def encode(tokenizer: PreTrainedTokenizerBase, texts: list[list[str]], max_seq_length: int) -> dict[str, torch.Tensor]:
    """Tokenize one or two text columns (truncated to max_seq_length) into flat arrays; see `encode_with`."""
    return encode_with(truncating_backend(tokenizer, max_seq_length), texts)


def encode_with(backend: Tokenizer, texts: list[list[str]]) -> dict[str, torch.Tensor]:
    """Tokenize one or two text columns into flat int32 ids, int8 segment ids and int64 offsets.

    Calls the Rust tokenizer's `encode_batch` directly: on the bundled train files it is ~1.6x faster than
    `tokenizer(list, ...)`, whose Python-side conversion of every encoding dominates at this size.
    Truncation is `longest_first` and keeps the final [SEP], as `encode_plus(truncation=True)` did in 2020.
    """
    inputs = list(zip(*texts)) if len(texts) == 2 else texts[0]
    encodings = backend.encode_batch(inputs) if inputs else []
    lengths = np.fromiter((len(e) for e in encodings), dtype=np.int64, count=len(encodings))
    offsets = np.zeros(len(encodings) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    total = int(offsets[-1])
    ids = np.fromiter(chain.from_iterable(e.ids for e in encodings), dtype=np.int32, count=total)
    if len(texts) == 2:
        types = np.fromiter(chain.from_iterable(e.type_ids for e in encodings), dtype=np.int8, count=total)
    else:
        types = np.zeros(total, dtype=np.int8)  # a single sentence is all segment 0
    return {
        "input_ids": torch.from_numpy(ids),
        "token_type_ids": torch.from_numpy(types),
        "offsets": torch.from_numpy(offsets),
    }


