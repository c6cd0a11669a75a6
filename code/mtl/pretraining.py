"""Masked-language-model pretraining with Chinese whole-word masking (the "wwm" of roberta-wwm).

Words come from jieba; when a word is chosen, every one of its tokens is masked. transformers 5.x's own
`DataCollatorForLanguageModeling(whole_word_mask=True)` does not fit Chinese: it finds words by gaps in the
offsets, and Chinese text has none, so a whole sentence would be one "word"; it also masks 15% of words rather
than of tokens and drops the 10% random / 10% kept replacement. So the collator below subclasses it and only
replaces how positions are chosen, as HF's earlier `DataCollatorForWholeWordMask` did with `chinese_ref`.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Optional

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from tokenizers import Encoding, Tokenizer
from transformers import DataCollatorForLanguageModeling, PreTrainedTokenizerBase, Trainer

from .task_files import ReadSettings, TaskFiles, read_table, train_validation_tables
from .tasks import Task

logger = logging.getLogger(__name__)


def task_texts(tasks: Iterable[Task], data_dir: Path, reading: Optional[ReadSettings] = None,
               include_validation: bool = False, same: Optional[TextKey] = None) -> list[str]:
    """The texts of the tasks' train splits and test files (labels unused), cleaned, de-duplicated, in first-seen
    order; each text column of a pair task (OCNLI's premise and hypothesis) gives texts of its own.

    No text of any task's validation rows is kept (unless asked), in whichever task's train split or test file it
    also appears: the split is train.py's (same reader, ratio and seed in `reading`; a spec's own validation file
    when it names one), so a model pretrained here has not seen the texts it is scored on. Two tasks over one file
    (shopping_cat and shopping_sentiment) split it differently, so one's train split holds the other's validation
    rows; a text of a validation row may repeat in a train row (an OCNLI premise) or a test file. `same` maps texts
    to keys that are equal when two texts count as one (`TokenKey`: the same tokens, as "很好 很好" and "很好很好"
    are to the model); default: equal strings."""
    reading = reading or ReadSettings()
    texts: dict[str, None] = {}
    held_out: dict[str, None] = {}
    for task in tasks:
        files = TaskFiles.of(task, data_dir, None)
        _, train, validation, _ = train_validation_tables(task, files, reading)
        tables = [train, validation] if include_validation else [train]
        tables += [read_table(task, path, False, reading) for path in files.tests.values()]
        for table in tables:
            for column in task.text_columns:
                texts.update(dict.fromkeys(table.columns[column]))
        if not include_validation:
            held_out.update((text, None) for column in task.text_columns for text in validation.columns[column])
    same = same or (lambda batch: batch)
    held_keys = set(same(list(held_out)))
    kept = [text for text, key in zip(texts, same(list(texts))) if key not in held_keys]
    logger.info("corpus: %d distinct texts (train splits, test files%s); %d of the texts of validation rows left out",
                len(kept), ", validation rows" if include_validation else "", len(texts) - len(kept))
    return kept


TextKey = Callable[[list[str]], list[Hashable]]


class TokenKey:
    """Texts -> their whole token ids (no truncation): texts the model cannot tell apart get one key. The encodings
    are kept (`encoded`), so `encode_with_words` need not tokenize the corpus a second time."""

    def __init__(self, tokenizer: PreTrainedTokenizerBase):
        self.backend = untruncated(tokenizer)
        self.encoded: dict[str, Encoding] = {}

    def __call__(self, batch: list[str]) -> list[tuple[int, ...]]:
        encodings = self.backend.encode_batch(batch, add_special_tokens=False)
        self.encoded.update(zip(batch, encodings))
        return [tuple(e.ids) for e in encodings]


def untruncated(tokenizer: PreTrainedTokenizerBase) -> Tokenizer:
    """A copy of the Rust tokenizer that neither truncates nor pads (a copy: both are state the caller keeps)."""
    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_truncation()
    backend.no_padding()
    return backend


def file_texts(paths: Iterable[Path]) -> list[str]:
    """Non-empty lines of plain-text files, de-duplicated."""
    texts: dict[str, None] = {}
    for path in paths:
        for line in Path(path).read_text(encoding="utf-8").splitlines():
            if line.strip():
                texts[line.strip()] = None
    return list(texts)


def jieba_word_starts(texts: list[str]) -> list[np.ndarray]:
    """For every text, the word index of each character (jieba segmentation)."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    out = []
    for text in texts:
        lengths = [len(w) for w in jieba.lcut(text)]
        out.append(np.repeat(np.arange(len(lengths)), lengths))
    return out


def encode_with_words(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_seq_length: int,
                      split_long: bool = False, encoded: Optional[dict[str, Encoding]] = None) -> dict[str, Any]:
    """Token ids and, per token, the jieba word it belongs to (-1 for [CLS]/[SEP]); flat arrays + offsets, and per
    row the index of its text (`source`). A text longer than max_seq_length keeps its first max_seq_length tokens, or
    with `split_long` becomes near-equal consecutive windows of at most max_seq_length tokens each, so none of it is
    lost (a word cut by a window's edge is two words there). `encoded`: the texts' encodings without special tokens,
    when already made (TokenKey.encoded)."""
    if encoded is not None:
        encodings = [encoded[text] for text in texts]
    else:
        encodings = untruncated(tokenizer).encode_batch(texts, add_special_tokens=False)
    char_words = jieba_word_starts(texts)
    cls, sep, width = tokenizer.cls_token_id, tokenizer.sep_token_id, max_seq_length - 2
    ids, words, lengths, source = [], [], [], []
    for index, (enc, cw) in enumerate(zip(encodings, char_words)):
        text_ids = np.asarray(enc.ids, dtype=np.int64)
        starts = np.asarray([s for s, _ in enc.offsets], dtype=np.int64)
        text_words = cw[np.minimum(starts, len(cw) - 1)] if len(cw) else np.zeros(len(starts), dtype=np.int64)
        windows = max(1, -(-len(text_ids) // width)) if split_long else 1
        for part in np.array_split(np.arange(min(len(text_ids), windows * width)), windows):
            ids.append(np.concatenate(([cls], text_ids[part], [sep])))
            words.append(np.concatenate(([-1], text_words[part], [-1])))
            lengths.append(len(part) + 2)
            source.append(index)
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return {"input_ids": torch.from_numpy(np.concatenate(ids).astype(np.int32)) if ids else torch.zeros(0, dtype=torch.int32),
            "word_ids": torch.from_numpy(np.concatenate(words).astype(np.int32)) if words else torch.zeros(0, dtype=torch.int32),
            "offsets": torch.from_numpy(offsets), "source": np.asarray(source, dtype=np.int64)}


class MLMDataset(torch.utils.data.Dataset):
    def __init__(self, features: dict[str, Any], indices: Optional[np.ndarray] = None):
        self.features = features
        self.indices = np.arange(len(features["offsets"]) - 1) if indices is None else indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        j = int(self.indices[i])
        s, e = int(self.features["offsets"][j]), int(self.features["offsets"][j + 1])
        return {"input_ids": self.features["input_ids"][s:e].long(), "word_ids": self.features["word_ids"][s:e].long()}


@dataclass
class ChineseWholeWordMaskCollator(DataCollatorForLanguageModeling):
    """Choose whole jieba words in random order until ~mlm_probability of the tokens are covered (as BERT's
    create_pretraining_data and HF's run_mlm_wwm); then per token 80% [MASK], 10% random token, 10% unchanged."""

    def torch_call(self, examples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        if self.seed is not None and self.generator is None:
            self.create_rng()
        width = max(len(e["input_ids"]) for e in examples)
        input_ids = torch.full((len(examples), width), self.tokenizer.pad_token_id, dtype=torch.long)
        word_ids = torch.full((len(examples), width), -1, dtype=torch.long)
        attention_mask = torch.zeros((len(examples), width), dtype=torch.long)
        for row, e in enumerate(examples):
            n = len(e["input_ids"])
            input_ids[row, :n], word_ids[row, :n], attention_mask[row, :n] = e["input_ids"], e["word_ids"], 1
        masked = self.whole_word_positions(word_ids)
        labels = input_ids.clone()
        labels[~masked] = -100
        inputs = input_ids.clone()
        replace = torch.bernoulli(torch.full(labels.shape, self.mask_replace_prob), generator=self.generator).bool() & masked
        inputs[replace] = self.tokenizer.mask_token_id
        rest = 1.0 - self.mask_replace_prob
        if rest > 0 and self.random_replace_prob > 0:
            rand = torch.bernoulli(torch.full(labels.shape, self.random_replace_prob / rest),
                                   generator=self.generator).bool() & masked & ~replace
            inputs[rand] = torch.randint(len(self.tokenizer), labels.shape, generator=self.generator)[rand]
        return {"input_ids": inputs, "attention_mask": attention_mask, "labels": labels}

    def whole_word_positions(self, word_ids: torch.Tensor) -> torch.Tensor:
        """Boolean (batch, width): tokens of the chosen words; -1 (special, padding) is never chosen."""
        words_np = word_ids.numpy()
        masked = np.zeros(words_np.shape, dtype=bool)
        for row, words in enumerate(words_np):
            ids, sizes = np.unique(words[words >= 0], return_counts=True)
            if len(ids) == 0:
                continue
            target = max(1, int(round(int(sizes.sum()) * self.mlm_probability)))
            chosen, covered = [], 0
            for k in torch.randperm(len(ids), generator=self.generator).tolist():
                if covered + sizes[k] > target:
                    continue  # a word that would overshoot is skipped, never cut
                chosen.append(ids[k])
                covered += int(sizes[k])
                if covered >= target:
                    break
            masked[row] = np.isin(words, chosen)
        return torch.from_numpy(masked)


class MaskedLMTrainer(Trainer):
    """Trainer for BertForMaskedLM that runs the vocabulary projection on masked positions only (~15% of them):
    with a 21,128-token vocabulary that projection costs more than a small encoder, and the loss is the same."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        loss, _, _ = masked_lm_step(model, inputs)
        return loss

    @torch.no_grad()
    def evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix: str = "eval") -> dict[str, float]:
        """MLM loss and masked-token accuracy on the held-out slice, with fixed masks (seeded collator)."""
        dataset = eval_dataset if eval_dataset is not None else self.eval_dataset
        collator = ChineseWholeWordMaskCollator(self.data_collator.tokenizer, mlm_probability=self.data_collator.mlm_probability,
                                                seed=1234)
        loader = torch.utils.data.DataLoader(dataset, batch_size=self.args.eval_batch_size, collate_fn=collator)
        model = self.model
        was_training = model.training
        model.eval()
        total_loss, correct, count = 0.0, 0, 0
        for batch in loader:
            batch = {k: v.to(self.args.device) for k, v in batch.items()}
            loss, logits, labels = masked_lm_step(model, batch)
            total_loss += float(loss) * len(labels)
            correct += int((logits.argmax(-1) == labels).sum())
            count += len(labels)
        model.train(was_training)
        loss = total_loss / max(count, 1)
        metrics = {f"{metric_key_prefix}_loss": loss, f"{metric_key_prefix}_accuracy": correct / max(count, 1),
                   f"{metric_key_prefix}_perplexity": math.exp(min(loss, 50.0)), f"{metric_key_prefix}_masked_tokens": count}
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics


SAVE_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def save_weights_as(model_dir: str | Path, dtype: str) -> None:
    """Rewrite a saved model's model.safetensors with floating-point weights in `dtype` (e.g. float16: half the size,
    to ship a checkpoint in the repository). config.json keeps float32, so `from_pretrained` (whose default dtype is
    "auto": the config's) loads the weights back as float32 for training."""
    path = Path(model_dir) / "model.safetensors"
    weights = load_file(str(path))
    save_file({k: (v.to(SAVE_DTYPES[dtype]) if v.is_floating_point() else v).contiguous() for k, v in weights.items()},
              str(path), metadata={"format": "pt"})


def masked_lm_step(model, inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Loss, logits and labels at the masked positions only."""
    labels = inputs["labels"]
    hidden = model.bert(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).last_hidden_state
    selected = labels != -100
    logits = model.cls(hidden[selected])
    targets = labels[selected]
    return torch.nn.functional.cross_entropy(logits.float(), targets), logits, targets
