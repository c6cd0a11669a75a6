"""Training throughput, same BERT shape, same data, same number of optimizer steps:
(a) the stock HF recipe (AutoModelForSequenceClassification, one model per task, DataCollatorWithPadding, default
    random sampler; steps split across the tasks in proportion to their train sizes),
(b) MultiTaskTrainer as in 2020 (task-homogeneous batches, dynamic padding, no length grouping),
(c) MultiTaskTrainer with length-grouped task batches (`--train_sampling_strategy group_by_length`),
(a_g) the stock HF recipe with its own length grouping (TrainingArguments(train_sampling_strategy="group_by_length"),
    transformers 5's spelling of group_by_length=True): the fair peer of (c),
(bare) a bare PyTorch loop over the same model as (c) and the same batches, collated before the clock starts
    (torch.optim.AdamW(fused=True), no Trainer, no EMA, no scheduler, no clipping): this machine's practical limit,
(d) MultiTaskTrainer in throughput mode (--max_tokens_per_batch = batch size x the mean real length, widths padded
    to a multiple of 8).
Each variant runs in its own process (clean peak-memory readings); steady-state rates exclude warm-up steps.

Usage: python bench/train_throughput.py [--size small|large] [--steps N] [--bf16] [--compile] [--smoke]"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import torch

from common import header, results_path, table, work_dir, write_section

DENSE_BF16_PEAK = {"H100": 989e12, "H200": 989e12, "A100": 312e12}  # dense bf16 FLOP/s by device name (SXM)
SIZES = {  # BERT shapes; vocab is the bundled 21,128 tokens
    "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64),
    "small": dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=2, intermediate_size=512),
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096),
}


class TokenCounter:
    """Wraps a collator; records (real, computed) tokens of every batch in order."""

    def __init__(self, collator):
        self.collator, self.batches = collator, []

    def __call__(self, examples):
        batch = self.collator(examples)
        mask = batch["attention_mask"]
        self.batches.append((int(mask.sum()), mask.numel(), mask.shape[1]))
        return batch


def step_timer(warmup: int):
    from transformers import TrainerCallback

    class Timer(TrainerCallback):
        def __init__(self):
            self.start = self.end = None
            self.steps = 0

        def on_step_end(self, args, state, control, **kwargs):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            self.steps += 1
            if self.steps == warmup:
                self.start = time.perf_counter()
            self.end = time.perf_counter()

    return Timer()


def training_args(out: str, steps: int, batch_size: int, bf16: bool, compile_: bool, **extra):
    from mtl.args import MultiTaskTrainingArguments

    return MultiTaskTrainingArguments(
        output_dir=out, max_steps=steps, per_device_train_batch_size=batch_size, learning_rate=3e-5, seed=2020,
        eval_strategy="no", save_strategy="no", load_best_model_at_end=False, logging_steps=10**6,
        report_to="none", disable_tqdm=True, bf16=bf16, torch_compile=compile_, dataloader_pin_memory=False, **extra)


def run_variant(variant: str, size: str, steps: int, warmup: int, batch_size: int, max_seq_length: int,
                bf16: bool, compile_: bool, debug: bool) -> dict:
    from transformers import AutoModelForSequenceClassification, BertConfig, DataCollatorWithPadding, Trainer

    from mtl.args import DataTrainingArguments
    from mtl.cache import load_or_build_task
    from mtl.data import MultiTaskBatchSampler, MultiTaskCollator, MultiTaskDataset, SingleTaskDataset
    from mtl.labels import label2id_for
    from mtl.model import BertMultiTaskModel, multitask_config
    from mtl.paths import BUNDLED_TOKENIZER_DIR
    from mtl.tasks import get_tasks
    from mtl.tokenizer import load_tokenizer
    from mtl.trainer import MultiTaskTrainer

    cache = str(work_dir(f"bench_cache_{max_seq_length}{'_debug' if debug else ''}"))
    data = DataTrainingArguments(max_seq_length=max_seq_length, debug=debug, data_save_dir=cache,
                                 cleaned_dir=cache).data_settings()
    tokenizer = load_tokenizer(BUNDLED_TOKENIZER_DIR)
    tasks = get_tasks(None)
    train = {t.name: load_or_build_task(t, tokenizer, data)["train"] for t in tasks}
    config = BertConfig(vocab_size=21128, max_position_embeddings=512, **SIZES[size])
    out = str(work_dir("bench_throughput"))
    torch.manual_seed(0)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    counters, elapsed, timed_steps = [], 0.0, 0
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")

    if variant in ("a", "a_max", "a_g"):
        sizes = [len(train[t.name]["ids"]) for t in tasks]
        per_task = [round(steps * n / sum(sizes)) for n in sizes]
        per_task[-1] = steps - sum(per_task[:-1])
        for task, n_steps in zip(tasks, per_task):
            features = train[task.name]
            ds = SingleTaskDataset(features, 0)
            rows = [{"input_ids": ds[i]["input_ids"].tolist(), "token_type_ids": ds[i]["token_type_ids"].tolist(),
                     "labels": int(ds[i]["labels"])} for i in range(len(ds))]
            model = AutoModelForSequenceClassification.from_config(
                BertConfig(vocab_size=21128, max_position_embeddings=512, num_labels=task.num_labels, **SIZES[size]))
            # a_max: the "Fine-tune a pretrained model" tutorial's padding="max_length" instead of dynamic padding
            padding = dict(padding="max_length", max_length=max_seq_length) if variant == "a_max" else {}
            counter = TokenCounter(DataCollatorWithPadding(tokenizer, **padding))
            task_warmup = max(1, min(warmup, n_steps - 1))  # at least one timed step per task
            timer = step_timer(task_warmup)
            grouping = {"train_sampling_strategy": "group_by_length"} if variant == "a_g" else {}
            trainer = Trainer(model=model, args=training_args(out, n_steps, batch_size, bf16, compile_, **grouping),
                              train_dataset=rows, data_collator=counter, callbacks=[timer])
            trainer.train()
            elapsed += timer.end - timer.start
            timed_steps += timer.steps - task_warmup
            # accelerate prefetches one batch, so the counter may hold one more than was consumed
            counters.append(counter.batches[task_warmup:timer.steps])
    else:  # the multi-task variants: one model with a head per task over the same train splits
        config = multitask_config(config, [t.head(label2id_for(t.labels)) for t in tasks])
        model = BertMultiTaskModel(config).to(device)
        dataset = MultiTaskDataset({t.name: SingleTaskDataset(train[t.name], i) for i, t in enumerate(tasks)})
        if variant == "bare":
            sampler = MultiTaskBatchSampler(dataset.sizes, batch_size, seed=2020,
                                            lengths=[d.lengths for d in dataset.datasets.values()])
            counter = TokenCounter(MultiTaskCollator(tokenizer.pad_token_id))
            batches = [counter([dataset[i] for i in b]) for b, _ in zip(sampler, range(steps))]
            counters.append(counter.batches[warmup:])
            # the fused kernel, as the Trainer's default optim ("adamw_torch_fused" with torch >= 2.8): the fastest AdamW here
            optimizer = torch.optim.AdamW(model.parameters(), lr=3e-5, fused=True)
            model.train()
            for step, batch in enumerate(batches):
                if step == warmup:
                    if torch.cuda.is_available():
                        torch.cuda.synchronize()
                    start = time.perf_counter()
                batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                    loss = model(**batch).loss
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            elapsed, timed_steps = time.perf_counter() - start, len(batches) - warmup
        else:
            counter = TokenCounter(MultiTaskCollator(tokenizer.pad_token_id, 8 if variant == "d" else None))
            timer = step_timer(warmup)
            strategy = "group_by_length" if variant in ("c", "d", "c_lean") else "random"
            # c_lean: no clipping and no EMA, as bare (the others: the EMA at its default decay, 0.999)
            extra = {"max_grad_norm": 0.0, "ema_decay": 0.0} if variant == "c_lean" else {}
            if variant == "d":  # the same tokens per step as (c) on average, in fuller batches
                mean_length = float(torch.cat([d.lengths for d in dataset.datasets.values()]).float().mean())
                extra.update(max_tokens_per_batch=int(batch_size * mean_length), pad_to_multiple_of=8)
            trainer = MultiTaskTrainer(model=model, args=training_args(out, steps, batch_size, bf16, compile_,
                                                                       train_sampling_strategy=strategy, **extra),
                                       train_dataset=dataset, data_collator=counter, callbacks=[timer])
            trainer.train()
            elapsed, timed_steps = timer.end - timer.start, timer.steps - warmup
            counters.append(counter.batches[warmup:timer.steps])

    batches = [b for c in counters for b in c]
    real, computed = sum(b[0] for b in batches), sum(b[1] for b in batches)
    n_params = sum(p.numel() for n, p in model.named_parameters() if "embeddings" not in n)
    layers, hidden = config.num_hidden_layers, config.hidden_size
    # model FLOPs of the computed (padded) tokens: 6 N per token + attention scores 12 L h s per token
    flops = sum(6 * n_params * b[1] + 12 * layers * hidden * b[2] * b[1] for b in batches)
    # the useful work: real (unpadded) tokens only, attention over each batch's padded width (an upper bound)
    real_flops = sum(6 * n_params * b[0] + 12 * layers * hidden * b[2] * b[0] for b in batches)
    peak_flops = next((v for k, v in DENSE_BF16_PEAK.items() if torch.cuda.is_available()
                       and k in torch.cuda.get_device_name()), None)
    peak = (torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available()
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    rows_timed = sum(b[1] // b[2] for b in batches)  # a token-budget batch holds a varying number of rows
    return {"variant": variant, "steps timed": timed_steps, "seconds": elapsed,
            "samples/s": rows_timed / elapsed, "real tokens/s": real / elapsed,
            "computed tokens/s": computed / elapsed, "real/computed": real / computed,
            "TFLOP/s": flops / elapsed / 1e12, "peak memory GiB": peak,
            "MFU": real_flops / elapsed / peak_flops if peak_flops else None}


LABELS = {"a_max": "(a') stock HF recipe, padding to max_length (the HF tutorial's)", "a": "(a) stock HF recipe",
          "a_g": "(a_g) stock HF recipe, group_by_length", "b": "(b) MultiTaskTrainer, 2020 batching",
          "c": "(c) MultiTaskTrainer, length-grouped", "d": "(d) MultiTaskTrainer, throughput mode",
          "c_lean": "(c_lean) (c) without EMA and gradient clipping",
          "bare": "(bare) bare PyTorch loop, pre-collated batches of (c)"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=list(SIZES), default="small")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--max_seq_length", type=int, default=300)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--variants", default="a_max,a,a_g,b,c,d,bare")
    parser.add_argument("--smoke", action="store_true", help="tiny model, debug data, a few steps: for CI")
    parser.add_argument("--repeats", type=int, default=1,
                        help="Run the variant list this many times, rotating its order; report each variant's median "
                             "(shared machines drift by tens of percent between runs a minute apart).")
    parser.add_argument("--variant", help=argparse.SUPPRESS)  # internal: run one variant, print JSON
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.smoke:
        args.size, args.steps, args.warmup = "tiny", 12, 2
    if args.variant:  # the child: one variant, or (smoke) several one after another
        for v in args.variant.split(","):
            print("RESULT " + json.dumps(run_variant(v, args.size, args.steps, args.warmup, args.batch_size,
                                                     args.max_seq_length, args.bf16, args.compile, args.smoke)),
                  flush=True)
        return
    runs: dict[str, list[dict]] = {}
    names = args.variants.split(",")
    order = [names[(i + r) % len(names)] for r in range(args.repeats) for i in range(len(names))]
    # Each variant in a process of its own, for clean peak-memory readings; the smoke run (CI) runs them all in one
    # child, which saves six start-ups (torch and transformers imports) and still goes through this path.
    for batch in ([",".join(order)] if args.smoke else order):
        cmd = [sys.executable, __file__, "--variant", batch, "--size", args.size, "--steps", str(args.steps),
               "--warmup", str(args.warmup), "--batch_size", str(args.batch_size),
               "--max_seq_length", str(args.max_seq_length)] + (["--bf16"] if args.bf16 else []) \
            + (["--compile"] if args.compile else []) + (["--smoke"] if args.smoke else [])
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        lines = [out for out in proc.stdout.splitlines() if out.startswith("RESULT ")]
        if proc.returncode or len(lines) != len(batch.split(",")):
            sys.stderr.write(proc.stdout[-3000:] + proc.stderr[-3000:])
            raise SystemExit(f"variant(s) {batch} failed")
        for line in lines:
            result = json.loads(line[len("RESULT "):])
            runs.setdefault(result["variant"], []).append(result)
    rows = []
    for v in names:  # each variant's median run by samples/s
        ordered = sorted(runs[v], key=lambda r: r["samples/s"])
        rows.append({**ordered[len(ordered) // 2], "range": f"{ordered[0]['samples/s']:.0f}–{ordered[-1]['samples/s']:.0f}"})
    by = {r["variant"]: r for r in rows}
    shown = []
    for r in rows:
        shown.append({"variant": LABELS[r["variant"]], "samples/s": f"{r['samples/s']:.1f}",
                      "range of runs": r["range"] if args.repeats > 1 else "",
                      "real tokens/s": f"{r['real tokens/s']:,.0f}", "real/computed": f"{r['real/computed']:.3f}",
                      "model TFLOP/s": f"{r['TFLOP/s']:.2f}", "peak memory (GiB)": f"{r['peak memory GiB']:.2f}",
                      "MFU (real tokens)": f"{r['MFU']:.1%}" if r.get("MFU") else "–"})
    title = (f"Training throughput: {args.size} BERT ({SIZES[args.size]['num_hidden_layers']} layers, hidden "
             f"{SIZES[args.size]['hidden_size']}), batch {args.batch_size}, {args.steps} steps"
             f"{', bf16' if args.bf16 else ', fp32'}{', torch.compile' if args.compile else ''}")
    command = "python bench/train_throughput.py " + " ".join(a for a in sys.argv[1:])
    text = header(title, command.strip()) + table(shown, ["variant", "samples/s", *(["range of runs"] if args.repeats > 1 else []), "real tokens/s", "real/computed",
                                                          "model TFLOP/s", "peak memory (GiB)", "MFU (real tokens)"])
    ratios = [(num, den) for num, den in (("c", "a"), ("c", "a_max"), ("c", "b"), ("c", "a_g"), ("c", "bare"),
                                          ("d", "c"), ("d", "a_g"), ("c_lean", "bare")) if {num, den} <= set(by)]
    if ratios:
        text += "\nRatios of samples/s: " + "; ".join(
            f"({num})/({den}) **{by[num]['samples/s'] / by[den]['samples/s']:.2f}x**" for num, den in ratios)
    if args.repeats > 1:
        text += (f"\n\n{args.repeats} runs of each variant in rotated order; the table shows each variant's median "
                 "run (its samples/s, tokens, memory), the range its runs spanned.")
    text += ("\n\nPeak memory: CPU = the process's max RSS; GPU = torch.cuda.max_memory_allocated. Model FLOPs count "
             "every computed (padded) token: 6 x non-embedding parameters + 12 x layers x hidden x padded length.\n")
    out = results_path(f"throughput_{args.size}{'_bf16' if args.bf16 else ''}{'_compile' if args.compile else ''}",
                       args.smoke, args.out)
    write_section(out, text)
    (out.with_suffix(".json")).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
