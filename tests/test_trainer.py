"""MultiTaskTrainer on its own: it takes MultiTaskTrainingArguments only, and scores the dataset it evaluates."""
from __future__ import annotations

import pytest
import torch
from transformers import BertConfig, TrainingArguments

from helpers import TINY_CONFIG, numbered_heads
from mtl.args import MultiTaskTrainingArguments
from mtl.data import MultiTaskCollator, MultiTaskDataset, SingleTaskDataset
from mtl.metrics import task_scores
from mtl.model import BertMultiTaskModel, multitask_config
from mtl.trainer import MultiTaskTrainer

CLASSES = {"ocnli": 3, "ocemotion": 7, "tnews": 15}


def random_task(task_id: int, rows: int, classes: int) -> SingleTaskDataset:
    """`rows` random token rows of 3 to 7 tokens with random labels."""
    generator = torch.Generator().manual_seed(task_id)
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), torch.randint(3, 8, (rows,), generator=generator).cumsum(0)])
    tokens = torch.randint(100, 200, (int(offsets[-1]),), generator=generator)
    return SingleTaskDataset({"input_ids": tokens, "token_type_ids": torch.zeros_like(tokens), "offsets": offsets,
                              "labels": torch.randint(0, classes, (rows,), generator=generator),
                              "ids": [str(i) for i in range(rows)]}, task_id)


def tiny_model() -> BertMultiTaskModel:
    torch.manual_seed(0)
    return BertMultiTaskModel(multitask_config(BertConfig.from_pretrained(str(TINY_CONFIG)), numbered_heads(**CLASSES)))


def test_plain_training_arguments_are_refused_by_name(tmp_path):
    """The trainer reads MultiTaskTrainingArguments' fields; it used to read them with getattr defaults that
    disagreed with args.py's (task-sampling temperature 1.0 vs 2.0, EMA decay 0 vs 0.999)."""
    with pytest.raises(TypeError, match="MultiTaskTrainingArguments, not TrainingArguments"):
        MultiTaskTrainer(model=tiny_model(), args=TrainingArguments(output_dir=str(tmp_path), report_to="none"),
                         data_collator=MultiTaskCollator())


def test_each_evaluation_scores_the_tasks_of_its_own_dataset(tmp_path):
    """The scores followed the task list of whichever of evaluate / predict_tasks ran last: a prediction on one task
    after an evaluation of three was split as three tasks."""
    every = MultiTaskDataset({name: random_task(i, 20 + 5 * i, n) for i, (name, n) in enumerate(CLASSES.items())})
    args = MultiTaskTrainingArguments(output_dir=str(tmp_path), report_to="none", eval_strategy="no",
                                      load_best_model_at_end=False, per_device_eval_batch_size=8)
    trainer = MultiTaskTrainer(model=tiny_model(), args=args, eval_dataset=every, data_collator=MultiTaskCollator())
    assert {"eval_ocnli", "eval_ocemotion", "eval_tnews", "eval_avg"} <= set(trainer.evaluate())
    tnews = MultiTaskDataset({"tnews": every.datasets["tnews"]})
    output = trainer.predict(tnews)
    expected = task_scores(output.predictions, output.label_ids, [("tnews", len(tnews), CLASSES["tnews"])])
    assert {k: output.metrics[f"test_{k}"] for k in expected} == expected
    assert not any(k.startswith(("test_ocnli", "test_ocemotion")) for k in output.metrics)
    assert set(trainer.predict_tasks(tnews)) == {"tnews"}
    assert {"eval_ocnli", "eval_ocemotion", "eval_tnews"} <= set(trainer.evaluate())


@pytest.mark.parametrize("best", ["not chosen", "the last step", "an earlier step", "bf16 full eval"])
def test_the_final_evaluation_is_the_last_training_step_s_unless_a_checkpoint_was_swapped_in(tmp_path, best):
    """train.py's --do_eval after training repeated the evaluation HF runs at the last step (eval_strategy "steps"):
    a second pass over the validation rows for the same scores, in each run.sh stage. Reusing it must give what a new
    evaluation gives (EMA weights too), and must not happen when load_best_model_at_end swapped in an earlier
    checkpoint's weights, nor under --bf16_full_eval (HF casts the model to bf16 for evaluations outside training
    only). Which checkpoint is best is steered by the loss on the training rows, which falls."""
    rows = {name: random_task(i, 24, n) for i, (name, n) in enumerate(CLASSES.items())}
    data = MultiTaskDataset(rows)
    args = MultiTaskTrainingArguments(output_dir=str(tmp_path), report_to="none", eval_strategy="steps", eval_steps=4,
                                      save_strategy="steps", save_steps=4,
                                      load_best_model_at_end=best not in ("not chosen", "bf16 full eval"),
                                      bf16_full_eval=best == "bf16 full eval",
                                      metric_for_best_model="eval_loss", greater_is_better=best == "an earlier step",
                                      max_steps=6, ema_decay=0.5, per_device_train_batch_size=8,
                                      per_device_eval_batch_size=8, learning_rate=1e-2, disable_tqdm=True, seed=1)
    trainer = MultiTaskTrainer(model=tiny_model(), args=args, train_dataset=data, eval_dataset=data,
                               data_collator=MultiTaskCollator())
    loops = []
    evaluation_loop = trainer.evaluation_loop
    trainer.evaluation_loop = lambda *a, **k: loops.append(1) or evaluation_loop(*a, **k)
    trainer.train()
    assert len(loops) == 2  # steps 4 and 6 (the last)
    if best in ("the last step", "an earlier step"):
        assert trainer.state.best_global_step == (4 if best == "an earlier step" else 6)
    reused = trainer.final_evaluation()
    assert len(loops) == (3 if best in ("an earlier step", "bf16 full eval") else 2)
    reused_output = trainer.last_evaluation
    fresh = trainer.evaluate()
    scores = [k for k in fresh if k.startswith("eval_") and not k.endswith(("runtime", "per_second"))]
    assert {"eval_avg", "eval_loss"} <= set(scores)
    assert {k: reused[k] for k in scores} == pytest.approx({k: fresh[k] for k in scores}, abs=1e-6)
    assert (reused_output.predictions == trainer.last_evaluation.predictions).all()
