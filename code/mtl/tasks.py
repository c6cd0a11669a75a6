"""Tasks as data: a task is a JSON (or YAML) spec file (files, format, columns, labels, cleaner, metric); this module reads
and checks specs, and keeps the registry of the bundled ones (code/assets/tasks/).

A spec (docs/tasks.md has a complete example):

    {"name": "waimai", "format": {"type": "csv", "header": true},
     "files": {"train": "waimai_10k.csv", "validation": null, "test": {"new": "new_reviews.csv"}},
     "columns": {"id": null, "text": ["review"], "label": "label"},
     "labels": ["0", "1"], "label_names": {"0": "negative", "1": "positive"},
     "cleaner": null, "metric": "macro_f1", "drop_duplicates": true, "skip_bad_rows": false}

A relative file path is read from the spec file's folder; `{data_dir}/...` from --data_dir (the competition specs
use it, so --data_dir keeps working). `--tasks` takes registry names, spec paths and folders of specs, mixed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import yaml

from .cleaning import CLEANERS
from .errors import UsageError
from .heads import TaskHead

SPEC_DIR = Path(__file__).resolve().parents[1] / "assets" / "tasks"
ROUND1_DIR, ROUND2_DIR = "nlp_round1_data", "nlp_round2_data"  # the competition's folders, as its specs name them
DEFAULT_TASKS = ("ocnli", "ocemotion", "tnews")  # the competition's three: what runs when --tasks is not given
FORMATS = ("tianchi_tsv", "csv", "tsv", "jsonl")
# name -> takes a positive label; what a spec's "metric" may name (mtl.metrics computes them)
METRICS = {"macro_f1": False, "accuracy": False, "f1": True, "weighted_f1": False, "matthews": False}
SPEC_KEYS = {"name", "description", "source", "format", "files", "columns", "labels", "label_names", "cleaner",
             "metric", "drop_duplicates", "skip_bad_rows"}


@dataclass(frozen=True)
class FileFormat:
    """How a task's files are read (mtl.records). tianchi_tsv: the competition's headerless, quote-free TSV with line
    repair; csv: the csv module (RFC 4180 quoting); tsv: one row a line, no quoting (a quote is text); csv / tsv take
    a header row or `column_names`; jsonl: one JSON object a line."""

    type: str = "tianchi_tsv"
    header: bool = True  # csv / tsv: the first row names the columns
    column_names: Optional[tuple[str, ...]] = None  # csv / tsv without a header: the columns' names, in order
    encoding: str = "utf-8"
    delimiter: Optional[str] = None  # csv / tsv: default ',' / '\t'


@dataclass(frozen=True)
class TaskMetric:
    """The score that stands for the task (eval_<task>, and its share of eval_avg)."""

    name: str = "macro_f1"
    pos_label: Optional[str] = None  # f1: the label string of the positive class


@dataclass(frozen=True)
class Task:
    """A classification task read from a spec."""

    name: str  # lower case, used in file names, metric names and the model config
    text_columns: tuple[str, ...]  # one column: single sentence; two: sentence pair
    train: str  # file paths as the spec gives them ({data_dir}/... or relative to spec_dir)
    tests: tuple[tuple[str, str], ...] = ()  # (name, path) of each test file, in spec order
    validation: Optional[str] = None  # else a stratified split of train
    format: FileFormat = FileFormat()
    id_column: Optional[str] = "id"  # None: a row's id is its line number in the file
    label_column: str = "label"
    labels: Optional[tuple[str, ...]] = None  # None: the sorted set of labels seen in train
    label_names: Optional[dict[str, str]] = field(default=None, hash=False)  # label -> readable name
    cleaner: Optional[str] = None  # a name in mtl.cleaning.CLEANERS, or None for unchanged text
    metric: TaskMetric = TaskMetric()
    drop_duplicates: bool = False  # drop a labelled row whose texts and label repeat an earlier row's
    skip_bad_rows: bool = False  # drop bad rows (reported) even without --skip_bad_rows
    spec_dir: Path = SPEC_DIR  # where relative file paths are read from

    @property
    def num_labels(self) -> int:
        if self.labels is None:
            raise ValueError(f"{self.name}: labels are known only once train is read (mtl.cache)")
        return len(self.labels)

    def label_name(self, label: str) -> str:
        return (self.label_names or {}).get(label, label)

    def head(self, label2id: dict[str, int]) -> TaskHead:
        """The model's record of this task, its labels ordered by their class ids in `label2id`."""
        labels = sorted(label2id, key=label2id.__getitem__)
        return TaskHead(self.name, labels, {label: self.label_name(label) for label in labels}, list(self.text_columns),
                        self.cleaner)

    @property
    def file_prefix(self) -> str:
        """Upper-case name, as the competition names its train files (OCNLI_train1128.csv)."""
        return self.name.upper()

    def columns(self, with_label: bool) -> tuple[str, ...]:
        """The columns of a table read from the task's files: id, the text columns, and label."""
        return ("id", *self.text_columns) + (("label",) if with_label else ())

    def path(self, spec_path: str, data_dir: str | Path) -> Path:
        """A file path of the spec located: `{data_dir}/x` under data_dir, a relative one under spec_dir."""
        if spec_path.startswith("{data_dir}/"):
            return Path(data_dir) / spec_path.removeprefix("{data_dir}/")
        path = Path(spec_path).expanduser()
        return path if path.is_absolute() else self.spec_dir / path

    def train_path(self, data_dir: str | Path) -> Path:
        return self.path(self.train, data_dir)

    def test_path(self, name: str, data_dir: str | Path) -> Path:
        return self.path(dict(self.tests)[name], data_dir)

    def signature(self) -> dict:
        """The spec's content as it affects a cache (mtl.cache fingerprints it)."""
        return {"format": vars(self.format) | {"column_names": list(self.format.column_names or [])},
                "id_column": self.id_column, "text_columns": list(self.text_columns), "label_column": self.label_column,
                "labels": list(self.labels) if self.labels is not None else None, "cleaner": self.cleaner,
                "drop_duplicates": self.drop_duplicates, "skip_bad_rows": self.skip_bad_rows}


def _fail(where: str, message: str) -> UsageError:
    return UsageError(f"{where}: {message}; see docs/tasks.md for the spec format")


def task_from_spec(spec: dict, where: str, spec_dir: Path) -> Task:
    """A Task from a spec's JSON object; `where` names it in errors (the file path)."""
    if not isinstance(spec, dict):
        raise _fail(where, "a task spec must be one JSON object")
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise _fail(where, f"unknown key(s) {unknown}; known: {sorted(SPEC_KEYS)}")
    name = spec.get("name")
    if not isinstance(name, str) or not name.strip() or name != name.lower() or any(c in name for c in "/\\, \t"):
        raise _fail(where, f"'name' {name!r} must be a lower-case name without spaces, commas or slashes")

    fmt = spec.get("format", "tianchi_tsv")
    fmt = {"type": fmt} if isinstance(fmt, str) else fmt
    if not isinstance(fmt, dict) or fmt.get("type") not in FORMATS:
        raise _fail(where, f"'format' {spec.get('format')!r}: the type must be one of {list(FORMATS)}")
    extra = sorted(set(fmt) - {"type", "header", "column_names", "encoding", "delimiter"})
    if extra:
        raise _fail(where, f"unknown 'format' key(s) {extra}")
    names = fmt.get("column_names")
    file_format = FileFormat(fmt["type"], bool(fmt.get("header", names is None)), tuple(names) if names else None,
                             fmt.get("encoding", "utf-8"), fmt.get("delimiter"))
    if file_format.type in ("csv", "tsv") and not file_format.header and not file_format.column_names:
        raise _fail(where, "a csv/tsv file without a header needs 'format': {'column_names': [...]}")

    files = spec.get("files")
    if not isinstance(files, dict) or not isinstance(files.get("train"), str):
        raise _fail(where, "'files' must give at least {'train': PATH}")
    tests = files.get("test") or {}
    if isinstance(tests, str):
        tests = {"test": tests}
    if not isinstance(tests, dict) or not all(isinstance(v, str) for v in tests.values()):
        raise _fail(where, "'files.test' must map test names to paths, e.g. {'a': 'test_a.csv'}")

    columns = spec.get("columns", {})
    texts = columns.get("text", ["text"])
    texts = [texts] if isinstance(texts, str) else list(texts)
    if not 1 <= len(texts) <= 2 or len(set(texts)) != len(texts):
        raise _fail(where, f"'columns.text' {texts}: one text column, or two (a sentence pair)")
    id_column = columns.get("id", "id" if file_format.type == "tianchi_tsv" else None)
    label_column = columns.get("label", "label")
    if file_format.type == "tianchi_tsv" and (id_column != "id" or label_column != "label"):
        raise _fail(where, "tianchi_tsv files have the columns id, the text column(s), label (in that order)")

    labels = spec.get("labels")
    if labels is not None:
        labels = tuple(str(x) for x in labels)
        if len(set(labels)) != len(labels) or len(labels) < 2:
            raise _fail(where, f"'labels' {list(labels)} must hold two or more distinct labels")
    label_names = spec.get("label_names")
    if label_names is not None:
        label_names = {str(k): str(v) for k, v in label_names.items()}

    metric = spec.get("metric", "macro_f1")
    metric = {"name": metric} if isinstance(metric, str) else metric
    if not isinstance(metric, dict) or metric.get("name") not in METRICS:
        raise _fail(where, f"'metric' {spec.get('metric')!r}: use one of {list(METRICS)} "
                           "(f1 as {'name': 'f1', 'pos_label': LABEL})")
    pos_label = metric.get("pos_label")
    if METRICS[metric["name"]] != (pos_label is not None):
        raise _fail(where, "'metric': 'f1' (binary) needs 'pos_label', and only it takes one")
    if pos_label is not None and labels is not None and str(pos_label) not in labels:
        raise _fail(where, f"'metric.pos_label' {pos_label!r} is not one of 'labels' {list(labels)}")

    cleaner = spec.get("cleaner")
    if cleaner is not None and cleaner not in CLEANERS:
        raise _fail(where, f"'cleaner' {cleaner!r}: use one of {sorted(CLEANERS)} or null")
    return Task(name=name, text_columns=tuple(texts), train=files["train"], tests=tuple(tests.items()),
                validation=files.get("validation"), format=file_format, id_column=id_column,
                label_column=label_column, labels=labels, label_names=label_names, cleaner=cleaner,
                metric=TaskMetric(metric["name"], None if pos_label is None else str(pos_label)),
                drop_duplicates=bool(spec.get("drop_duplicates", False)),
                skip_bad_rows=bool(spec.get("skip_bad_rows", False)), spec_dir=spec_dir)


SPEC_SUFFIXES = (".json", ".yaml", ".yml")


def load_spec(path: str | Path) -> Task:
    """The task described by a spec file: JSON, or YAML (.yaml / .yml, read by PyYAML, which transformers needs
    anyway) with the same keys."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise UsageError(f"{path}: cannot read the task spec ({err.strerror})") from None
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            spec = yaml.safe_load(text)
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
            raise UsageError(f"{where}: not valid YAML ({getattr(err, 'problem', None) or err})") from None
    else:
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as err:
            raise UsageError(f"{path}:{err.lineno}: not valid JSON ({err.msg})") from None
    return task_from_spec(spec, str(path), path.resolve().parent)


def _specs_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in SPEC_SUFFIXES)


def _load_registry() -> dict[str, Task]:
    tasks = [load_spec(p) for p in _specs_in(SPEC_DIR)]
    registry = {t.name: t for t in tasks}
    order = list(DEFAULT_TASKS) + sorted(set(registry) - set(DEFAULT_TASKS))
    return {name: registry[name] for name in order}


REGISTRY: dict[str, Task] = _load_registry()  # every bundled spec, the competition's three first
TASKS: dict[str, Task] = {name: REGISTRY[name] for name in DEFAULT_TASKS}  # the default --tasks


def get_tasks(names: Optional[Iterable[str] | str] = None) -> list[Task]:
    """Tasks from registry names, spec file paths and folders of specs (comma-separated string or list), in the
    order given; the competition's three when None. A path is taken as given (the CLIs resolve it first)."""
    if names is None:
        return list(TASKS.values())
    if isinstance(names, str):
        names = names.split(",")
    tasks: list[Task] = []
    for item in (n.strip() for n in names):
        if not item:
            continue
        if item.lower() in REGISTRY:
            tasks.append(REGISTRY[item.lower()])
            continue
        path = Path(item)
        if path.is_dir():
            specs = _specs_in(path)
            if not specs:
                raise UsageError(f"--tasks {item}: the folder holds no task spec (*.json, *.yaml)")
            tasks += [load_spec(p) for p in specs]
        elif path.is_file() or path.suffix.lower() in SPEC_SUFFIXES:
            tasks.append(load_spec(path))
        else:
            raise UsageError(f"unknown task(s) [{item!r}]; known: {sorted(REGISTRY)}, or give a spec file (.json, .yaml) "
                             "or a folder of them")
    seen: set[str] = set()
    for task in tasks:
        if task.name in seen:
            raise UsageError(f"--tasks names task {task.name!r} twice; task names must be unique")
        seen.add(task.name)
    return tasks
