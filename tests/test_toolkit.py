"""The competition toolkit's training techniques, each against what it should compute by hand: FGM / PGD on the word
embeddings (mtl/adversarial.py), R-Drop (mtl/rdrop.py), multi-sample dropout (the heads in mtl/model.py) and
layer-wise learning-rate decay (mtl/llrd.py); and their refusals, in one line before anything is written."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import BertConfig

import train
from helpers import TINY_CONFIG, numbered_heads
from mtl.adversarial import adversarial_step
from mtl.args import MultiTaskTrainingArguments
from mtl.data import MultiTaskCollator
from mtl.errors import UsageError
from mtl.model import BertMultiTaskModel, multitask_config
from mtl.trainer import MultiTaskTrainer

CLASSES = {"ocnli": 3, "ocemotion": 7, "tnews": 15}


def tiny_model(**config) -> BertMultiTaskModel:
    torch.manual_seed(0)
    base = BertConfig.from_pretrained(str(TINY_CONFIG), **config)
    return BertMultiTaskModel(multitask_config(base, numbered_heads(**CLASSES)))


def batch(rows: int = 6, task_id: int = 1) -> dict:
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(100, 300, (rows, 9), generator=g)
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids),
            "labels": torch.randint(0, CLASSES["ocemotion"], (rows,), generator=g), "task_id": task_id}


def trainer_for(model, tmp_path, **args) -> MultiTaskTrainer:
    args = MultiTaskTrainingArguments(output_dir=str(tmp_path), report_to="none", eval_strategy="no",
                                      load_best_model_at_end=False, **args)
    trainer = MultiTaskTrainer(model=model, args=args, data_collator=MultiTaskCollator())
    trainer.current_gradient_accumulation_steps = args.gradient_accumulation_steps  # set by the training loop
    return trainer


def grads(model) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def seeded_grads(model, tmp_path) -> dict[str, torch.Tensor]:
    """Earlier micro-batches' gradients, already accumulated in .grad: the attack must not read them."""
    g = torch.Generator().manual_seed(7)
    for p in model.parameters():
        p.grad = torch.randn(p.shape, generator=g)
    return grads(model)


@pytest.mark.parametrize("accumulation", [1, 2])
def test_fgm_step_is_the_clean_plus_the_adversarial_gradient_and_restores_the_embeddings(tmp_path, accumulation):
    model = tiny_model(hidden_dropout_prob=0, attention_probs_dropout_prob=0)  # deterministic passes
    embeddings = model.bert.embeddings.word_embeddings.weight
    before = embeddings.detach().clone()
    epsilon = 0.5
    plain = trainer_for(model, tmp_path / "plain", gradient_accumulation_steps=accumulation)
    fgm = trainer_for(model, tmp_path / "fgm", gradient_accumulation_steps=accumulation, adversarial="fgm",
                      adversarial_epsilon=epsilon)

    # by hand: the clean step's gradients, then the same step with the embeddings moved along their own gradient
    model.zero_grad(set_to_none=True)
    plain.training_step(model, batch())
    clean = grads(model)
    direction = clean["bert.embeddings.word_embeddings.weight"]
    with torch.no_grad():
        embeddings.add_(epsilon * direction / direction.norm())
    model.zero_grad(set_to_none=True)
    plain.training_step(model, batch())
    perturbed = grads(model)
    with torch.no_grad():
        embeddings.copy_(before)

    earlier = seeded_grads(model, tmp_path)
    loss = fgm.training_step(model, batch())
    assert torch.equal(embeddings, before), "the embeddings were not restored exactly"
    got = grads(model)
    for name in clean:
        torch.testing.assert_close(got[name], earlier[name] + clean[name] + perturbed[name], rtol=1e-5, atol=1e-6,
                                   msg=name)
    model.zero_grad(set_to_none=True)
    assert loss == pytest.approx(float(plain.training_step(model, batch())))  # the clean loss is the one logged


def test_pgd_stays_in_the_ball_takes_its_steps_and_restores_the_weight():
    weight = nn.Parameter(torch.randn(5, 4))
    start = weight.detach().clone()
    target = torch.randn(5, 4)

    def loss_fn():  # anisotropic, so the steps turn
        return ((weight - target) ** 2 * torch.arange(1.0, 5.0)).sum()

    seen, inner = [], []

    def clean():
        loss = loss_fn()
        loss.backward()
        return loss.detach()

    def adversarial():
        seen.append((weight - start).detach().clone())
        loss_fn().backward()

    def inner_loss():
        inner.append((weight - start).detach().clone())
        return loss_fn()

    adversarial_step(weight, clean, adversarial, inner_loss, method="pgd", epsilon=0.3, steps=4)
    assert torch.equal(weight.detach(), start)
    assert len(inner) == 3 and len(seen) == 1  # steps - 1 inner gradients, then the one adversarial pass
    norms = [float(d.norm()) for d in [*inner, *seen]]
    assert norms[0] == pytest.approx(2.5 * 0.3 / 4)  # Madry et al.'s step, 2.5 epsilon / steps
    assert norms[-1] == pytest.approx(0.3, abs=1e-6) and max(norms) <= 0.3 + 1e-6  # projected onto the ball
    # the first step goes along the clean gradient, the next along the perturbed point's
    g0 = 2 * (start - target) * torch.arange(1.0, 5.0)
    torch.testing.assert_close(inner[0], 2.5 * 0.3 / 4 * g0 / g0.norm())
    assert not torch.allclose(inner[1] / inner[1].norm(), inner[0] / inner[0].norm(), atol=1e-3)
    # more steps than fit: the ball's edge exactly
    weight.grad = None
    seen.clear()
    inner.clear()
    adversarial_step(weight, clean, adversarial, inner_loss, method="pgd", epsilon=0.1, steps=2)
    adversarial_step(weight, clean, adversarial, inner_loss, method="pgd", epsilon=0.1, steps=1)
    assert float(seen[1].norm()) == pytest.approx(0.1, abs=1e-6)


class FixedMasks(nn.Module):
    """Dropout with two fixed masks: the first half of a doubled batch gets mask 0, the second mask 1; a batch of
    the original size gets mask `single`."""

    def __init__(self, rows: int, hidden: int):
        super().__init__()
        g = torch.Generator().manual_seed(11)
        self.masks = (torch.rand(2, 1, 1, hidden, generator=g) > 0.3).float() / 0.7
        self.rows, self.single = rows, 0

    def forward(self, x):
        if x.shape[0] == 2 * self.rows:
            return torch.cat([x[:self.rows] * self.masks[0], x[self.rows:] * self.masks[1]])
        return x * self.masks[self.single]


def test_rdrop_loss_is_the_formula_on_two_fixed_dropout_masks(tmp_path):
    model = tiny_model()
    for module in model.bert.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0  # the only dropout left is the fixed masks'
    inputs = batch()
    model.dropout = FixedMasks(len(inputs["labels"]), model.config.hidden_size)
    alpha = 2.5
    trainer = trainer_for(model, tmp_path, rdrop_alpha=alpha)
    model.train()
    loss = trainer.compute_loss(model, dict(inputs))

    logits = []
    for mask in (0, 1):
        model.dropout.single = mask
        logits.append(model(**inputs).logits.float())
    p, q = (torch.softmax(x, -1) for x in logits)
    ce = (nn.functional.cross_entropy(logits[0], inputs["labels"]) + nn.functional.cross_entropy(logits[1], inputs["labels"])) / 2
    kl = ((p * (p.log() - q.log())).sum(-1).mean() + (q * (q.log() - p.log())).sum(-1).mean()) / 2
    assert float(kl) > 1e-4  # the masks differ, so the term is there to get wrong
    assert float(loss) == pytest.approx(float(ce + alpha * kl), rel=1e-5)


def test_multi_sample_dropout_trains_on_the_mean_of_the_samples_losses_and_infers_with_the_plain_head(tmp_path):
    model = tiny_model(hidden_dropout_prob=0, attention_probs_dropout_prob=0, classifier_dropout=0.4)
    model.config.multi_sample_dropout = 4
    inputs = batch()
    labels = inputs["labels"]
    model.train()
    torch.manual_seed(5)
    loss = model(**inputs).loss
    torch.manual_seed(5)
    hidden = model.encode(inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"])
    head = model.heads["ocemotion"]
    pooled = head.attention(hidden, inputs["attention_mask"])
    by_hand = torch.stack([nn.functional.cross_entropy(head.classifier(nn.functional.dropout(pooled, 0.4)), labels)
                           for _ in range(4)]).mean()
    assert float(loss) == pytest.approx(float(by_hand), rel=1e-5)

    model.eval()
    sampled = model(**inputs).logits
    model.config.multi_sample_dropout = 1
    torch.testing.assert_close(sampled, model(**inputs).logits, rtol=0, atol=0)

    model.config.multi_sample_dropout = 4  # a config field: saved with the model, loaded back
    model.save_pretrained(tmp_path / "saved")
    assert BertMultiTaskModel.from_pretrained(tmp_path / "saved").config.multi_sample_dropout == 4


def test_layerwise_decay_gives_each_parameter_its_depths_rate_and_keeps_weight_decay_groups(tmp_path):
    model = tiny_model()
    layers = model.config.num_hidden_layers
    trainer = trainer_for(model, tmp_path, learning_rate=1e-3, layerwise_lr_decay=0.5, weight_decay=0.01)
    optimizer = trainer.create_optimizer()
    assert trainer.create_optimizer() is optimizer and len(optimizer.param_groups) == 2 * (layers + 2)
    group_of = {id(p): g for g in optimizer.param_groups for p in g["params"]}
    for name, param in model.named_parameters():
        if name.startswith("heads."):
            depth = 0
        elif name.startswith("bert.embeddings."):
            depth = layers + 1
        else:
            depth = layers - int(name.split(".")[3])  # bert.encoder.layer.<i>.
        group = group_of[id(param)]
        assert group["lr"] == pytest.approx(1e-3 * 0.5 ** depth), name
        assert group["weight_decay"] == (0.0 if "bias" in name or "LayerNorm" in name else 0.01), name
    scheduler = trainer.create_scheduler(num_training_steps=10, optimizer=optimizer)
    optimizer.step()
    scheduler.step()  # the schedule scales every group alike: the ratios hold
    rates = {g["layer_depth"]: g["lr"] for g in optimizer.param_groups}
    assert rates[layers + 1] / rates[0] == pytest.approx(0.5 ** (layers + 1))


def run_args(tmp_path, data_dir, *extra: str) -> list[str]:
    return ["--config_name", str(TINY_CONFIG), "--do_train", "--max_steps", "2", "--data_dir", str(data_dir),
            "--cleaned_dir", str(tmp_path / "out"), "--data_save_dir", str(tmp_path / "out"),
            "--output_dir", str(tmp_path / "out" / "run"), "--max_seq_length", "32", "--report_to", "none", *extra]


@pytest.mark.parametrize("extra, message", [
    (["--adversarial", "fgm", "--pcgrad", "true"], "does not combine with --pcgrad"),
    (["--adversarial", "pgd", "--freeze", "true"], "drop --adversarial for a heads-only stage"),
    (["--adversarial", "fmg"], "use fgm, pgd or no"),
    (["--adversarial_steps", "0"], "must be at least 1"),
    (["--rdrop_alpha", "1", "--config_overrides", "hidden_dropout_prob=0,attention_probs_dropout_prob=0"],
     "the model has no dropout"),
    (["--multi_sample_dropout", "3", "--config_overrides", "hidden_dropout_prob=0"], "classifier_dropout=0.3"),
    (["--multi_sample_dropout", "0"], "give a number of dropout samples"),
    (["--layerwise_lr_decay", "1.5"], "must be in (0, 1]"),
])
def test_toolkit_mistakes_are_refused_in_one_line_writing_nothing(tmp_path, small_data_dir, extra, message):
    with pytest.raises(UsageError) as err:
        train.main(run_args(tmp_path, small_data_dir, *extra))
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "out").exists()


def test_rdrop_runs_when_only_the_heads_have_dropout(tmp_path, small_data_dir):
    """Multi-sample dropout is dropout R-Drop can compare, even with the encoder's off."""
    train.main(run_args(tmp_path, small_data_dir, "--rdrop_alpha", "1", "--multi_sample_dropout", "2",
                        "--config_overrides", "hidden_dropout_prob=0,attention_probs_dropout_prob=0,classifier_dropout=0.2"))
    assert (tmp_path / "out" / "run" / "model.safetensors").exists()



@pytest.mark.slow
def test_attack_under_ddp_equals_one_process_with_the_whole_batch():
    """Each process's direction is its shard's gradient averaged over the processes: the perturbation, and so the
    step, is the one a single process computing the whole batch takes (FGM and PGD; tests/ddp_attack_worker.py)."""
    import socket

    import torch.multiprocessing as mp

    from ddp_attack_worker import METHODS, attack, worker

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    context = mp.get_context("spawn")
    queue = context.Queue()
    processes = [context.Process(target=worker, args=(r, 2, port, queue)) for r in range(2)]
    for p in processes:
        p.start()
    results = dict(queue.get(timeout=120) for _ in processes)
    for p in processes:
        p.join(60)
    for method in METHODS:
        whole = attack(method)
        for rank in (0, 1):
            for name in whole:
                torch.testing.assert_close(torch.from_numpy(results[rank][method][name]), whole[name], rtol=1e-5,
                                           atol=1e-6, msg=f"{method}, rank {rank}, {name}")
