"""EMA overhead on a BERT-large-shaped model (24 layers, hidden 1024, vocab 21,128: ~325M parameters), CPU, fp32:
one training step (forward, backward, AdamW) against one EMA update, for the foreach implementation used here
(mtl.ema.WeightEMA) and for the 2020 baseline's per-parameter loop (a new tensor and a clone() per parameter)."""
from __future__ import annotations

import argparse
import functools
import time

import torch

from common import header, results_path, table, write_section
from mtl.ema import WeightEMA
from mtl.heads import TaskHead
from mtl.model import BertMultiTaskModel, multitask_config


class EMA2020:
    """The 2020 baseline's EMA, verbatim in spirit: Python loop, fresh tensors and a clone per parameter per step."""

    def __init__(self, model, decay):
        self.model, self.decay = model, decay
        self.shadow = {n: p.data.clone() for n, p in model.named_parameters() if p.requires_grad}

    def update(self):
        for name, param in self.model.named_parameters():
            if param.requires_grad:
                new_average = (1.0 - self.decay) * param.data + self.decay * self.shadow[name]
                self.shadow[name] = new_average.clone()


def timed(fn, repeats: int) -> float:
    fn()  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--seq_length", type=int, default=48, help="padded length of the timed batch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--smoke", action="store_true", help="a 2-layer, hidden-64 model: for CI")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    from transformers import BertConfig

    shape = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256) if args.smoke \
        else dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)
    config = multitask_config(BertConfig(vocab_size=21128, **shape), [TaskHead("tnews", [str(i) for i in range(15)])])
    torch.manual_seed(0)
    model = BertMultiTaskModel(config)
    n_params = sum(p.numel() for p in model.parameters())
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    x = torch.randint(1000, 8000, (args.batch_size, args.seq_length))
    y = torch.randint(0, 15, (args.batch_size,))

    def train_step():
        loss = model(input_ids=x, task_id=0, labels=y).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    step = timed(train_step, args.repeats)
    foreach = WeightEMA(model, decay=0.999)
    t_foreach = timed(functools.partial(foreach.update, 10), max(args.repeats, 5))
    del foreach
    old = EMA2020(model, decay=0.999)
    t_old = timed(old.update, max(args.repeats, 5))
    rows = [
        {"what": f"training step (batch {args.batch_size} x {args.seq_length} tokens, AdamW)", "seconds": f"{step:.3f}", "% of a step": "100"},
        {"what": "EMA update, foreach (this project)", "seconds": f"{t_foreach:.4f}", "% of a step": f"{100 * t_foreach / step:.2f}"},
        {"what": "EMA update, 2020 per-parameter loop + clone()", "seconds": f"{t_old:.4f}", "% of a step": f"{100 * t_old / step:.2f}"},
    ]
    text = header(f"EMA overhead ({n_params / 1e6:.0f}M parameters, CPU, fp32)",
                  "python bench/ema_overhead.py" + (" --smoke" if args.smoke else ""))
    text += table(rows, ["what", "seconds", "% of a step"])
    text += f"\nforeach is {t_old / t_foreach:.1f}x faster than the 2020 loop.\n"
    write_section(results_path("ema", args.smoke, args.out), text)


if __name__ == "__main__":
    main()
