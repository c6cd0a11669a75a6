"""export.py: one ONNX graph of the whole multi-task model (every head's eval-mode logits, logit adjustment
included), run through Predictor / predict.py on ONNX Runtime; fp32 logits equal PyTorch's, dynamic axes, int8,
refusals, and an export that fails leaves the earlier one whole."""
from __future__ import annotations

import collections
import json
import shutil

import numpy as np
import onnx
import pytest
import torch

import export
import predict
import train
from helpers import REPO_ROOT, TINY_CONFIG, common, competition_heads
from mtl import onnx_export
from mtl.backends import OnnxBackend, TorchBackend, open_backend
from mtl.data import MultiTaskCollator, SingleTaskDataset
from mtl.errors import UsageError
from mtl.labels import IGNORE_LABEL
from mtl.model import load_model
from mtl.onnx_backend import output_name
from mtl.predictor import Predictor
from mtl.readers import read_task_file
from mtl.tasks import TASKS

TAU = 0.5


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """CI runs two test modules at once on two cores: one thread each for PyTorch and ONNX Runtime (which takes
    PyTorch's count) instead of two, which oversubscribed the cores and ran the forward passes several times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def exported(tmp_path_factory, small_data_dir):
    """A tiny model trained by train.py with logit adjustment, its fp32 export and its int8 export."""
    tmp = tmp_path_factory.mktemp("export")
    train.main(["--config_name", str(TINY_CONFIG), "--do_train", "--max_steps", "20", "--learning_rate", "3e-3",
                "--logit_adjustment", str(TAU), "--eval_strategy", "no", "--save_strategy", "no",
                "--load_best_model_at_end", "false", "--pseudo", "false", *common(tmp, small_data_dir, "model")])
    model_dir = tmp / "model"
    export.main(["--model_name_or_path", str(model_dir), "--output_dir", str(tmp / "fp32")])
    export.main(["--model_name_or_path", str(model_dir), "--output_dir", str(tmp / "int8"), "--quantize", "int8"])
    return model_dir, tmp / "fp32", tmp / "int8"


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tokenizer):
    """For the refusals, which stop before any graph is made: a tiny model with random weights, saved, and a
    stand-in for its export (the export's config.json; model.onnx a placeholder)."""
    tmp = tmp_path_factory.mktemp("saved")
    torch.manual_seed(0)
    model = load_model(None, str(TINY_CONFIG), competition_heads())
    model.config.logit_adjustment = TAU
    model.save_pretrained(tmp / "model")
    tokenizer.save_pretrained(tmp / "model")
    config = json.loads((tmp / "model" / "config.json").read_text())
    config["onnx"] = {"file": "model.onnx", "quantization": None, "opset": 20, "source": str(tmp / "model"),
                      "logit_adjustment": TAU}
    (tmp / "export").mkdir()
    (tmp / "export" / "config.json").write_text(json.dumps(config))
    (tmp / "export" / "model.onnx").write_bytes(b"a placeholder")
    return tmp / "model", tmp / "export"


def batches(predictor: Predictor, task: str, texts: list, size: int = 64):
    """The file's rows in file order (so the batches mix lengths and pad), as the collator pads them."""
    features = predictor.encode(task, texts)
    rows = len(features["offsets"]) - 1
    dataset = SingleTaskDataset({**features, "labels": torch.full((rows,), IGNORE_LABEL),
                                 "ids": [str(i) for i in range(rows)]}, predictor.config.task_index(task))
    collate = MultiTaskCollator(0)
    for start in range(0, rows, size):
        yield collate([dataset[i] for i in range(start, min(rows, start + size))])


def texts_of(task, path) -> list:
    table, _ = read_task_file(task, path, False)
    columns = [table.columns[c] for c in task.text_columns]
    return columns[0] if len(columns) == 1 else list(zip(*columns))


@pytest.mark.slow
def test_fp32_graph_gives_the_models_eval_logits_on_every_bundled_test_file(exported, small_data_dir):
    """All rows of test A and B of the three tasks (9,000 rows): ONNX Runtime's logits within 1e-4 of the PyTorch
    model's eval-mode logits, which include the logit adjustment (tau > 0, priors recorded)."""
    model_dir, fp32, _ = exported
    torch_predictor = Predictor.from_pretrained(str(model_dir), device="cpu")
    onnx_backend = open_backend(str(fp32))
    assert isinstance(onnx_backend, OnnxBackend) and isinstance(torch_predictor.backend, TorchBackend)
    config = torch_predictor.config
    assert config.logit_adjustment == TAU and all(t.class_priors for t in config.tasks)
    rows, worst = 0, 0.0
    for task in TASKS.values():
        task_id = config.task_index(task.name)
        for which in ("a", "b"):
            for batch in batches(torch_predictor, task.name, texts_of(task, task.test_path(which, small_data_dir))):
                expected = torch_predictor.backend.logits(task_id, batch)
                got = onnx_backend.logits(task_id, batch)
                worst = max(worst, float((got - expected).abs().max()))
                rows += len(got)
    assert rows == 9000
    assert worst <= 1e-4, worst


@pytest.mark.slow
def test_dynamic_axes_batch_1_and_64_short_and_max_length_rows(exported):
    model_dir, fp32, _ = exported
    model = load_model(str(model_dir), None, []).eval()
    every_head = onnx_export.AllHeads(model)
    session = open_backend(str(fp32)).session
    # batches of 1 and 64; rows of 3 tokens, of the trained length (what Predictor sends at most) and of 512
    trained, longest = model.config.max_seq_length, model.config.max_position_embeddings
    for rows, length in ((1, 3), (64, 3), (1, trained), (64, trained), (1, longest), (2, longest), (7, 37)):
        inputs = onnx_export.sample_inputs(model, rows, length, seed=rows + length)
        with torch.inference_mode():
            expected = every_head(**inputs)
        got = session.run(None, {k: v.numpy() for k, v in inputs.items()})
        for task_id, (a, b) in enumerate(zip(got, expected)):
            assert a.shape == b.shape == (rows, model.config.tasks[task_id].num_labels)
            np.testing.assert_allclose(a, b.numpy(), atol=1e-4, rtol=0)


@pytest.mark.slow
def test_the_export_folder_holds_one_graph_of_every_head_and_records_the_export(exported):
    model_dir, fp32, _ = exported
    assert sorted(p.name for p in fp32.iterdir()) == ["config.json", "model.onnx", "tokenizer.json",
                                                      "tokenizer_config.json"]
    config = json.loads((fp32 / "config.json").read_text())
    source = json.loads((model_dir / "config.json").read_text())
    assert config["onnx"] == {"file": "model.onnx", "quantization": None, "opset": 20,
                              "source": str(model_dir.resolve()), "logit_adjustment": TAU,
                              "exporter": f"torch.onnx.export (dynamo), torch {torch.__version__}"}
    # the model's config otherwise, labels, names, columns, cleaners, length and tau included (no auto_map: the
    # modeling code is not copied)
    assert {k: v for k, v in config.items() if k != "onnx"} == {k: v for k, v in source.items() if k != "auto_map"}
    graph = onnx.load(str(fp32 / "model.onnx")).graph
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert list(dims) == ["input_ids", "attention_mask", "token_type_ids"]
    assert all(isinstance(d[0], str) and isinstance(d[1], str) for d in dims.values())  # both axes dynamic
    assert [o.name for o in graph.output] == [output_name(t["name"]) for t in config["tasks"]]


@pytest.mark.slow
def test_predict_py_gives_the_same_answers_on_onnx_as_on_torch(exported, small_data_dir, tmp_path):
    """The first 500 rows of OCNLI (sentence pairs) and OCEMOTION (its cleaner) test B through predict.py, top 3:
    the same ids and labels, the probabilities within 1e-4."""
    model_dir, fp32, _ = exported
    for task in ("ocnli", "ocemotion"):
        rows = tmp_path / f"{task}.csv"  # the competition's layout
        rows.write_bytes(b"".join(TASKS[task].test_path("b", small_data_dir).read_bytes().splitlines(True)[:500]))
        outputs = {}
        for backend, folder in (("torch", model_dir), ("onnx", fp32)):
            outputs[backend] = predict.main(["--model_name_or_path", str(folder), "--tasks", task, "--top_k", "3",
                                             "--input_file", str(rows), "--backend", backend,
                                             "--output_file", str(tmp_path / f"{backend}.jsonl")])
        assert len(outputs["torch"]) == len(outputs["onnx"]) == 500
        for a, b in zip(outputs["torch"], outputs["onnx"]):
            assert (a["id"], a["label"], [s["label"] for s in a["top_k"]]) == \
                (b["id"], b["label"], [s["label"] for s in b["top_k"]])
            assert np.allclose([s["probability"] for s in a["top_k"]], [s["probability"] for s in b["top_k"]],
                               atol=1e-4, rtol=0)


@pytest.mark.slow
def test_int8_export_holds_int8_weights_and_mostly_agrees_with_fp32(exported, small_data_dir):
    """The tiny, briefly trained model is no accuracy test (bench/onnx_speed.py measures int8 on a real one):
    here the graph's linear layers are quantized, it is recorded as int8, and its labels are close to fp32's."""
    _, fp32, int8 = exported
    assert json.loads((int8 / "config.json").read_text())["onnx"]["quantization"] == "int8"
    config = json.loads((fp32 / "config.json").read_text())
    ops = collections.Counter(n.op_type for n in onnx.load(str(int8 / "model.onnx")).graph.node)
    # every linear layer's weights: six per encoder layer, two per head (attention score, classifier)
    assert ops["MatMulInteger"] == 6 * config["num_hidden_layers"] + 2 * len(config["tasks"])
    assert ops["DynamicQuantizeLinear"] > 0
    assert not (int8 / "model.fp32.onnx").exists()
    texts = texts_of(TASKS["tnews"], TASKS["tnews"].test_path("a", small_data_dir))
    full = [p.label for p in Predictor.from_pretrained(str(fp32)).predict("tnews", texts)]
    quantized = [p.label for p in Predictor.from_pretrained(str(int8)).predict("tnews", texts)]
    assert np.mean([a == b for a, b in zip(full, quantized)]) >= 0.9


def test_refusals_are_one_line_and_write_nothing(saved, tmp_path):
    model_dir, export_dir = saved
    before = sorted(p.name for p in model_dir.iterdir())
    cases = [
        (["--model_name_or_path", str(REPO_ROOT / "code/assets/demo_encoder")], "no task heads"),
        (["--model_name_or_path", str(export_dir)], "an ONNX export"),
        (["--model_name_or_path", str(model_dir), "--output_dir", str(model_dir)], "holds other files"),
        (["--model_name_or_path", str(model_dir), "--quantize", "int4"], "invalid choice: 'int4'"),
        (["--model_name_or_path", str(model_dir), "--opset", "13"], "--opset 13"),
    ]
    for argv, message in cases:
        if "--output_dir" not in argv:
            argv = [*argv, "--output_dir", str(tmp_path / "out")]
        with pytest.raises(UsageError, match=message) as error:
            export.main(argv)
        assert "\n" not in str(error.value)
    # an export of another model is not replaced
    other = tmp_path / "other"
    shutil.copytree(export_dir, other)
    config = json.loads((other / "config.json").read_text())
    config["onnx"]["source"] = "/somewhere/else"
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(UsageError, match="the ONNX export of another model"):
        export.main(["--model_name_or_path", str(model_dir), "--output_dir", str(other)])
    assert sorted(p.name for p in model_dir.iterdir()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other"]  # no staging folder, no "out"


def test_backend_choice_refusals(saved, tmp_path):
    model_dir, export_dir = saved
    with pytest.raises(UsageError, match="a PyTorch model, not an ONNX export; run python code/export.py"):
        Predictor.from_pretrained(str(model_dir), backend="onnx")
    with pytest.raises(UsageError, match="an ONNX export .* pass that model itself"):
        Predictor.from_pretrained(str(export_dir), backend="torch")
    with pytest.raises(UsageError, match="runs on the CPU"):
        Predictor.from_pretrained(str(export_dir), device="cuda")
    # the graph applies the adjustment it was exported with: a config edited afterwards is refused, not ignored
    edited = tmp_path / "edited"
    shutil.copytree(export_dir, edited)
    config = json.loads((edited / "config.json").read_text())
    config["logit_adjustment"] = 0.0
    (edited / "config.json").write_text(json.dumps(config))
    with pytest.raises(UsageError, match="logit_adjustment 0, but the graph applies 0.5"):
        Predictor.from_pretrained(str(edited))


def test_a_failed_export_leaves_the_earlier_export_whole(saved, tmp_path, monkeypatch):
    """The graph is cut short (a kill, a full disk): output_dir keeps the earlier export byte for byte, and neither
    the half-written files nor the leftovers of an earlier killed run stay behind."""
    model_dir, export_dir = saved
    target = tmp_path / "export"
    shutil.copytree(export_dir, target)
    config = json.loads((target / "config.json").read_text())
    config["onnx"]["source"] = str(model_dir.resolve())  # an earlier export of this model: it may be replaced
    (target / "config.json").write_text(json.dumps(config))
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    leftover = tmp_path / ".export.export-tmp"
    leftover.mkdir()
    (leftover / "model.onnx").write_bytes(b"half")

    def cut_short(model, path, opset=None):
        assert not (leftover / "model.onnx").exists()  # the killed run's leftovers went first
        path.write_bytes(b"\x08\x01" * 100)
        raise OSError("killed")

    monkeypatch.setattr(onnx_export, "export_graph", cut_short)
    with pytest.raises(OSError, match="killed"):
        export.main(["--model_name_or_path", str(model_dir), "--output_dir", str(target)])
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export"]
