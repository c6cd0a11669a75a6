"""Where a training step of the project's recipe spends its time: torch.profiler over MultiTaskTrainer steps (demo-size
model, length-grouped task batches, EMA 0.999), the time split by phase and the top operators, and the host-device
syncs counted where there is a device (CUDA: cudaStreamSynchronize / cudaDeviceSynchronize / item calls).

Usage: python bench/profile_step.py [--size small|large] [--steps 40] [--smoke]"""
from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile, record_function

from common import header, results_path, table, work_dir, write_section
from train_throughput import SIZES, training_args

# Phases by the profiler's own labels (transformers and torch name them) and by our record_function ranges.
PHASES = {"data (sampler + collate)": ("step: data",), "forward + loss": ("step: forward",),
          "backward": ("step: backward",), "optimizer + clipping": ("Optimizer.step", "clip_grad"),
          "EMA update": ("ema_update",)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", choices=list(SIZES), default="small")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--smoke", action="store_true")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.smoke:
        args.size, args.steps, args.warmup = "tiny", 6, 2

    from transformers import BertConfig, TrainerCallback

    from mtl.args import DataTrainingArguments
    from mtl.cache import load_or_build_task
    from mtl.data import MultiTaskCollator, MultiTaskDataset, SingleTaskDataset
    from mtl.ema import WeightEMA
    from mtl.labels import label2id_for
    from mtl.model import BertMultiTaskModel, multitask_config
    from mtl.paths import BUNDLED_TOKENIZER_DIR
    from mtl.tasks import get_tasks
    from mtl.tokenizer import load_tokenizer
    from mtl.trainer import MultiTaskTrainer

    cache = str(work_dir(f"bench_cache_300{'_debug' if args.smoke else ''}"))
    data = DataTrainingArguments(max_seq_length=300, debug=args.smoke, data_save_dir=cache,
                                 cleaned_dir=cache).data_settings()
    tokenizer = load_tokenizer(BUNDLED_TOKENIZER_DIR)
    tasks = get_tasks(None)
    train = {t.name: load_or_build_task(t, tokenizer, data)["train"] for t in tasks}
    config = multitask_config(BertConfig(vocab_size=21128, max_position_embeddings=512, **SIZES[args.size]),
                              [t.head(label2id_for(t.labels)) for t in tasks])
    torch.manual_seed(0)
    model = BertMultiTaskModel(config)
    dataset = MultiTaskDataset({t.name: SingleTaskDataset(train[t.name], i) for i, t in enumerate(tasks)})

    # Label the phases the Trainer does not label itself.
    original_update = WeightEMA.update

    def labelled_update(self, *a, **k):
        with record_function("ema_update"):
            return original_update(self, *a, **k)

    WeightEMA.update = labelled_update

    class Profiled(MultiTaskTrainer):
        def compute_loss(self, *a, **k):
            with record_function("step: forward"):
                return super().compute_loss(*a, **k)

        def get_batch_samples(self, *a, **k):
            with record_function("step: data"):
                return super().get_batch_samples(*a, **k)

    original_backward = torch.Tensor.backward

    def labelled_backward(self, *a, **k):
        with record_function("step: backward"):
            return original_backward(self, *a, **k)

    torch.Tensor.backward = labelled_backward
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if torch.cuda.is_available() else [])
    steps = args.warmup + args.steps
    prof = profile(activities=activities, schedule=torch.profiler.schedule(wait=0, warmup=args.warmup, active=args.steps, repeat=1),
                   acc_events=True,
                   record_shapes=False)

    class Step(TrainerCallback):
        def on_step_end(self, *a, **k):
            prof.step()

    out = str(work_dir("bench_profile"))
    trainer = Profiled(model=model, args=training_args(out, steps, args.batch_size, False, False,
                                                       train_sampling_strategy="group_by_length", ema_decay=0.999),
                       train_dataset=dataset, data_collator=MultiTaskCollator(tokenizer.pad_token_id),
                       callbacks=[Step()])
    start = time.perf_counter()
    with prof:
        trainer.train()
    wall = time.perf_counter() - start
    torch.Tensor.backward = original_backward
    WeightEMA.update = original_update

    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)  # microseconds of CPU work in the active steps
    by_name = {e.key: e for e in events}
    phase_rows = []
    for phase, keys in PHASES.items():
        spent = sum(by_name[k].cpu_time_total for k in by_name if any(k.startswith(p) for p in keys))
        phase_rows.append({"phase": phase, "ms per step": f"{spent / 1e3 / args.steps:.2f}",
                           "share of step": f"{spent / total:.1%}"})
    ops = sorted((e for e in events if not e.key.startswith(("step:", "ema_update", "ProfilerStep", "Optimizer"))),
                 key=lambda e: e.self_cpu_time_total, reverse=True)[:12]
    op_rows = [{"operator": e.key, "calls per step": f"{e.count / args.steps:.0f}",
                "self ms per step": f"{e.self_cpu_time_total / 1e3 / args.steps:.2f}",
                "share": f"{e.self_cpu_time_total / total:.1%}"} for e in ops]
    syncs = defaultdict(int)
    for e in events:
        if e.key in ("cudaStreamSynchronize", "cudaDeviceSynchronize", "aten::item", "aten::_local_scalar_dense"):
            syncs[e.key] += e.count
    title = f"Profile of a training step: {args.size} BERT, batch {args.batch_size}, length-grouped, EMA 0.999"
    text = header(title, " ".join(["python bench/profile_step.py", *sys.argv[1:]]))
    text += (f"{args.steps} profiled steps after {args.warmup} warm-up steps ({wall:.1f} s wall for all, profiler "
             f"on). CPU time per step: {total / 1e3 / args.steps:.1f} ms.\n\n")
    text += table(phase_rows, ["phase", "ms per step", "share of step"]) + "\n"
    text += table(op_rows, ["operator", "calls per step", "self ms per step", "share"]) + "\n"
    text += ("Host-device syncs per step: " + (", ".join(f"{k} {v / args.steps:.1f}" for k, v in sorted(syncs.items()))
                                              or "none recorded") + ".\n")
    write_section(results_path("profile_cpu" if not torch.cuda.is_available() else "profile_gpu", args.smoke, args.out),
                  text)


if __name__ == "__main__":
    main()
