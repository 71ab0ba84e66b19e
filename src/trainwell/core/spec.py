"""Spec: the whole run as one validated, serialisable object.

Every knob a user can turn lives here under the name docs/practices/ uses.
The resolved spec (every default filled in) is saved with each run, so a run
directory always says exactly how its model was trained.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from trainwell.core import strict_yaml
from trainwell.core.io import atomic_write
from trainwell.core.errors import UserError, did_you_mean, shorten

TASKS = ("auto", "regression", "binary", "multiclass", "multilabel")
BUILTIN_DATASETS = ("digits", "breast_cancer", "diabetes", "iris", "wine", "circles")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataSpec(_Section):
    source: str = "digits"
    target: Optional[Union[str, list[str]]] = None
    split: Union[Literal["auto"], list[float]] = "auto"
    # auto: robust + smooth clipping for MLP tables, standard for other tables, channel/pixels for images
    scale: Literal["auto", "robust", "quantile", "standard", "channel", "pixels", "none"] = "auto"
    # robust scaling: heavy-tailed columns (training |z| > 6) also appended as a plain z-score (data/scaling.py)
    linear_copy: bool = True
    # robust scaling: each numeric column also encoded through this many quantile bins (data/piecewise.py);
    # auto = 8 for a regression of 500+ training rows, else 0 (none); docs/tabular.md#piecewise-linear-encoding
    piecewise: Union[Literal["auto"], int] = "auto"
    features: list[Literal["squares"]] = Field(default_factory=list)
    # NaN features: auto = training median + a missing indicator per column; median/mean = the fill alone; none = refused
    impute: Literal["auto", "median", "mean", "none"] = "auto"
    # tables (data/columns.py): which text columns are read as booleans, numbers ("$1,200", "12%") or dates
    parse: list[Literal["booleans", "numbers", "dates"]] = Field(default_factory=lambda: ["booleans", "numbers", "dates"])
    few_categories: int = Field(32, ge=0)   # text columns of at most this many distinct values: every value its own indicator
    max_categories: int = Field(512, ge=0)  # more: values with min_count+ rows, at most this many; the rest "(other)"; 0 = no cap
    min_count: int = Field(5, ge=1)         # ... the training rows a value needs for its own indicator in such a column
    categorical: list[str] = Field(default_factory=list)   # columns read as categories whatever their values (a subject number)
    drop_columns: Union[Literal["auto"], list[str]] = "auto"   # auto: identifiers, free text, empty columns; or these names
    drop_missing_target: bool = True        # rows without a target: dropped (counted), or refused when false
    header: bool = True                     # false: the first line is data; columns are named column_1, column_2, ...
    sheet: Optional[Union[str, int]] = None  # workbooks: the sheet to read, by name or position (1 = first); None: the first
    target_transform: Literal["auto", "log", "none"] = "auto"   # regression: auto = log1p when >= 0 and skewness > 2
    clip_predictions: bool = True           # regression: predictions clipped to the training target range (+-5%)
    smearing: bool = True                   # regression, logged target: predictions estimate the mean (Duan 1983)
    weight: Optional[str] = None            # a column of per-row weights (training rows resampled in proportion)
    # classification: per-class loss weights, "balanced" (n / (classes x n_class)) or {class name: weight}
    class_weight: Optional[Union[Literal["balanced"], dict[str, float]]] = None
    streaming: Union[bool, Literal["auto"]] = "auto"   # auto: stream files larger than 1/4 of free RAM
    row_id: Optional[str] = None            # streaming: column whose hash decides the split (else row index)
    shuffle_buffer: int = Field(65536, ge=1)   # streaming: rows held for shuffling
    augment: "AugmentSpec" = Field(default_factory=lambda: AugmentSpec())   # train-only, on the device

    @field_validator("target", "drop_columns", "weight", "row_id", mode="before")
    @classmethod
    def _column_names(cls, v: Any) -> Any:
        """A column named by a number (a year, ``2014``) is still a name: ``--set data.target=2014`` reads an int."""
        if isinstance(v, int) and not isinstance(v, bool):
            return str(v)
        if isinstance(v, list):
            return [str(x) if isinstance(x, int) and not isinstance(x, bool) else x for x in v]
        return v

    @field_validator("categorical", mode="before")
    @classmethod
    def _category_names(cls, v: Any) -> Any:
        """``--set data.categorical=prof`` names one column; a number (``2014``) is a name too."""
        v = [v] if isinstance(v, (str, int)) and not isinstance(v, bool) else v
        return [str(x) if isinstance(x, int) and not isinstance(x, bool) else x for x in v] if isinstance(v, list) else v

    @field_validator("target")
    @classmethod
    def _distinct_targets(cls, v: Any) -> Any:
        if isinstance(v, list):
            twice = sorted({t for t in v if v.count(t) > 1})
            if twice:       # --target y --target y: a two-label task on one column
                raise ValueError(f"names {', '.join(twice)} more than once; give each target column once")
        return v

    @field_validator("piecewise")
    @classmethod
    def _bins(cls, v: Any) -> Any:
        if isinstance(v, int) and not 0 <= v <= 256:
            raise ValueError("piecewise must be 'auto', 0 (no encoding) or a number of bins from 2 to 256")
        if v == 1:
            raise ValueError("piecewise=1 is one bin, the column itself; give 0 (no encoding) or 2 to 256 bins")
        return v

    @field_validator("split")
    @classmethod
    def _fractions(cls, v: Any) -> Any:
        if isinstance(v, list):
            if len(v) != 3 or any(f < 0 for f in v):
                raise ValueError("split must be 'auto' or three fractions [train, val, test]")
            if v[0] <= 0:
                raise ValueError("the train fraction must be positive")
            if abs(sum(v) - 1.0) > 1e-6 and not all(float(f).is_integer() for f in v):
                raise ValueError("split fractions must sum to 1 (or all be row counts)")
        return v


class ModelSpec(_Section):
    type: str = Field("mlp", pattern=r"^[a-z][a-z0-9_]{0,31}$")   # a topology in nn/topologies/ (trainwell list)
    # cnn (and conv autoencoders): conv blocks, then the dense head `hidden`
    channels: list[int] = Field(default_factory=lambda: [32, 64])
    kernel_size: int = Field(3, ge=1)
    pool: int = Field(2, ge=1)
    conv_dims: Literal["auto", 1, 2] = "auto"
    # rnn
    cell: Literal["elman", "lstm", "gru"] = "gru"
    layers: int = Field(1, ge=1)
    hidden_size: int = Field(64, ge=1)
    bidirectional: bool = False
    # autoencoder
    bottleneck: int = Field(32, ge=1)
    denoise: float = Field(0.0, ge=0)
    encoder: Literal["auto", "dense", "conv"] = "auto"
    # custom: the user's own torch module, "path/to/file.py:ClassName"
    module: Optional[str] = None
    module_kwargs: dict[str, Any] = Field(default_factory=dict)
    hidden: Union[Literal["auto", "heuristic"], list[int]] = "auto"   # heuristic: docs/practices/width.md
    ensemble: Union[Literal["auto"], int] = "auto"   # mlp: members trained at once, averaged (nn/ensemble.py); 1 = off
    # packed members cross-fitted over folds of the training + validation rows (train/crossfit.py);
    # auto: when there are fewer than 500 validation rows and no validation_data was given
    crossfit: Union[Literal["auto"], bool] = "auto"
    # cross-fitted members also train on the test split's rows, each scored by the member that holds it out
    # (train/crossfit.py); false keeps the test rows out of training
    crossfit_test: bool = True
    # packed members of two widths: half the given width, half 128 (nn/member_widths.py); an option, measured
    # in docs/tabular.md#members-of-two-widths
    mixed_width: bool = False
    activation: str = "relu"
    init: str = "auto"
    init_std: float = 1.0
    init_limit: float = 0.5
    init_value: float = 0.0
    bias_init: float = 0.0
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    batchnorm: Literal[False, True, "before", "after"] = False
    residual: bool = False
    preset: Literal["none", "self_normalizing"] = "none"   # self_normalizing: SELU + LeCun normal + alpha dropout
    output_activation: Literal["auto", "none", "relu", "softplus", "sigmoid", "tanh"] = "auto"
    loss: Literal["auto", "mse", "mae", "huber", "bce", "cross_entropy"] = "auto"

    @field_validator("hidden")
    @classmethod
    def _widths(cls, v: Any) -> Any:
        if isinstance(v, list) and any(int(w) < 1 for w in v):
            raise ValueError("hidden widths must be positive integers")
        return v

    @field_validator("ensemble")
    @classmethod
    def _members(cls, v: Any) -> Any:
        if isinstance(v, int) and not 1 <= v <= 256:
            raise ValueError("ensemble must be 'auto' or a number of members from 1 (off) to 256")
        return v


class AugmentSpec(_Section):
    shift: int = Field(0, ge=0)       # random shifts of up to this many pixels / steps
    noise: float = Field(0.0, ge=0)   # Gaussian noise sigma (in scaled units)


class OptimSpec(_Section):
    name: str = "adam"
    lr: float = Field(1e-3, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    beta1: float = Field(0.9, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    rho: float = Field(0.9, ge=0, lt=1)       # rmsprop: S = rho S + (1-rho) dW^2
    eps: float = Field(1e-8, gt=0)
    weight_decay: float = Field(0.0, ge=0)


class ScheduleSpec(_Section):
    name: str = "auto"     # auto: plateau, patience a third of the stop patience (api.auto_schedule); none = constant
    step_size: int = Field(10, ge=1)        # step: epochs per halving (T)
    gamma: float = Field(0.5, gt=0)         # step / piecewise factor
    decay_rate: float = Field(0.05, ge=0)   # exponential e^{-k t}: k
    decay_steps: Optional[int] = None       # exponential 0.1^{t/s}: s (uses the second form when set)
    decay_t: float = Field(10.0, gt=0)      # inverse_time: T in mu0 / (1 + t/T)
    boundaries: list[int] = Field(default_factory=list)   # piecewise: epochs
    values: list[float] = Field(default_factory=list)     # piecewise: lrs (len = boundaries + 1)
    factor: float = Field(0.5, gt=0, lt=1)  # plateau
    patience: int = Field(5, ge=0)          # plateau
    max_lr: Optional[float] = None          # onecycle (default: 10 x optim.lr)
    warmup_steps: int = Field(100, ge=0)    # warmup (batches)
    per: Literal["auto", "epoch", "batch"] = "auto"


class RegularizeSpec(_Section):
    l1: float = Field(0.0, ge=0)
    l2: float = Field(0.0, ge=0)
    bias_l1: float = Field(0.0, ge=0)
    bias_l2: float = Field(0.0, ge=0)
    activity_l1: float = Field(0.0, ge=0)
    activity_l2: float = Field(0.0, ge=0)
    clip_norm: Optional[float] = Field(None, gt=0)
    clip_value: Optional[float] = Field(None, gt=0)
    noise: float = Field(0.0, ge=0)


class TrainSpec(_Section):
    epochs: Union[int, Literal["auto"]] = "auto"   # auto: 200, or 10,000 steps when epochs are short (train/epoch_budget.py)
    batch_size: Union[int, Literal["full", "auto"]] = "auto"   # auto: 32 (a cross-fitted classifier: 128), growing with the rows (train/batch_size.py)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    seed: int = 0
    fast: bool = False
    backward: Literal["auto", "autograd"] = "auto"   # auto: plain MLPs on CPU take the hand-written step (train/fast.py)
    tensorboard: Optional[str] = None
    monitor: bool = True                    # babysitting monitors -> diagnostics.csv, diagnosis.json
    monitor_every: int = Field(0, ge=0)     # sample every K steps; 0 = auto (one sample per epoch, at most every 100 steps)
    progress: bool = True
    # classifiers: temperature scaling on the validation split (train/calibration.py); auto = when it lowers the
    # validation log-loss, temperature = always, none = off
    calibrate: Literal["auto", "temperature", "none"] = "auto"

    @field_validator("epochs", "batch_size")
    @classmethod
    def _positive(cls, v: Any, info: Any) -> Any:
        if isinstance(v, int) and v < 1:
            words = {"epochs": "epochs must be >= 1 or 'auto'",
                     "batch_size": "batch_size must be >= 1 (1 = stochastic GD), 'full' or 'auto'"}
            raise ValueError(words[info.field_name])
        return v


class StopSpec(_Section):
    enabled: bool = True
    monitor: str = "auto"      # auto: val_<metric> for classification, val_loss for regression
    mode: Literal["auto", "min", "max"] = "auto"
    patience: Union[int, Literal["auto"]] = "auto"   # auto: 10 epochs (30 for a regression), at least 1,000 steps
    min_delta: float = Field(0.0, ge=0)   # least progress, of the value and of its tie-break loss
    restore_best: bool = True
    target: Optional[float] = None   # val metric >= target and change < delta: stop (practices/early_stopping.md)
    delta: float = Field(1e-5, ge=0)
    on_nan: Literal["stop", "rollback"] = "stop"


class TrackSpec(_Section):
    # MLflow tracking URI (http://host:port, file:./mlruns, sqlite:///mlflow.db); true = ./mlruns; none = off
    mlflow: Optional[Union[bool, str]] = None
    experiment: Optional[str] = None        # MLflow experiment name (default: the data's name)


class CheckpointSpec(_Section):
    every: int = Field(0, ge=0)        # epochs; 0 = only best and last
    every_steps: int = Field(0, ge=0)
    keep: int = Field(3, ge=1)


DataSpec.model_rebuild()


class Spec(_Section):
    """The whole run. ``Spec()`` is a complete, sensible default."""

    data: DataSpec = Field(default_factory=DataSpec)
    task: Literal["auto", "regression", "binary", "multiclass", "multilabel", "reconstruction"] = "auto"
    model: ModelSpec = Field(default_factory=ModelSpec)
    optim: OptimSpec = Field(default_factory=OptimSpec)
    schedule: ScheduleSpec = Field(default_factory=ScheduleSpec)
    regularize: RegularizeSpec = Field(default_factory=RegularizeSpec)
    train: TrainSpec = Field(default_factory=TrainSpec)
    stop: StopSpec = Field(default_factory=StopSpec)
    checkpoint: CheckpointSpec = Field(default_factory=CheckpointSpec)
    track: TrackSpec = Field(default_factory=TrackSpec)

    # -- construction -------------------------------------------------------
    @classmethod
    def build(cls, base: "Spec | dict | str | Path | None" = None, sets: list[str] | None = None,
              **sections: Any) -> "Spec":
        """Spec from a file/dict/Spec, then section dicts, then ``a.b=value`` overrides."""
        if base is None:
            tree: dict = {}
        elif isinstance(base, Spec):   # only what was set: a default stays a default (e.g. optim.lr, see
            tree = base.model_dump(mode="json", exclude_unset=True)   # train/batch_size.py)
        elif isinstance(base, dict):
            tree = json.loads(json.dumps(base))
        else:
            tree = _read_yaml(Path(base))
        for key, value in sections.items():
            if value is None:
                continue
            if isinstance(value, dict) and isinstance(tree.get(key), dict):
                tree[key].update(value)
            else:
                tree[key] = value
        for item in sets or []:
            _apply_set(tree, item)
        return cls.from_dict(tree)

    @classmethod
    def from_dict(cls, tree: dict) -> "Spec":
        try:
            return cls.model_validate(tree)
        except ValidationError as exc:
            raise UserError(_explain(exc)) from None

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    def to_yaml(self, path: str | Path | None = None) -> str:
        text = yaml_text(self.to_dict())
        if path is not None:
            atomic_write(path, text)          # temp + fsync + rename (core/io.py): never half a spec
        return text

    @classmethod
    def from_yaml(cls, path: str | Path) -> "Spec":
        return cls.from_dict(_read_yaml(Path(path)))


# libyaml's emitter writes the same text as PyYAML's Python one, ten times faster (8 ms a spec, three a run)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def yaml_text(tree: dict) -> str:
    """A plain tree as YAML, keys in their order (safe types only)."""
    return yaml.dump(tree, Dumper=_DUMPER, sort_keys=False)


def _read_yaml(path: Path) -> dict:
    if not path.exists():
        raise UserError(f"Spec file {path} does not exist. Check the path given to --spec.")
    tree = strict_yaml.load_file(path) or {}
    if not isinstance(tree, dict):
        raise UserError(f"Spec file {path} must hold a mapping of sections (data:, model:, ...).")
    return tree


def _apply_set(tree: dict, item: str) -> None:
    """Apply one ``section.key=value`` override; the value is parsed as YAML."""
    if "=" not in item:
        raise UserError(
            f'--set "{item}" has no "=". Write it as section.key=value, e.g. --set optim.lr=0.01.'
        )
    path, raw = item.split("=", 1)
    keys = [k for k in path.strip().split(".") if k]
    if not keys:
        raise UserError(f'--set "{item}" names no key. Write it as section.key=value.')
    value = strict_yaml.value(raw, f'--set "{shorten(item, 80)}"') if raw.strip() else None
    node = tree
    fields: dict = Spec.model_fields
    for depth, key in enumerate(keys[:-1]):
        if key not in fields:
            raise UserError(
                f'--set "{item}": unknown section "{key}".{did_you_mean(key, fields)} '
                f"Valid sections: {', '.join(fields)}."
            )
        annotation = fields[key].annotation
        fields = getattr(annotation, "model_fields", {})
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise UserError(f'--set "{item}": "{key}" is not a section.')
    last = keys[-1]
    if last not in fields:
        where = ".".join(keys[:-1]) or "the top level"
        raise UserError(
            f'--set "{item}": unknown key "{last}" in {where}.{did_you_mean(last, fields)} '
            f"Valid keys: {', '.join(fields)}."
        )
    node[last] = value


def _loc(err: dict) -> str:
    """An error's place as a spec path (``model.hidden``), without pydantic's union-branch names."""
    return ".".join(str(p) for p in err["loc"] if not str(p).startswith(("literal[", "list[", "function-")))


def _explain(exc: ValidationError) -> str:
    """Turn pydantic's errors into one paragraph with the valid choices."""
    parts = []
    errors = exc.errors()
    as_list = {_loc(e) for e in errors if e["type"] == "list_type" and isinstance(e.get("input"), str)}
    for err in errors:
        loc = _loc(err)
        kind = err["type"]
        if loc in as_list:   # "64,32" for a list: the other branches' complaints (not "auto") only confuse
            if kind == "list_type":
                items = err["input"].strip("()[] ")[:80]
                parts.append(f'{loc} = {err["input"][:80]!r} is not a list: write a list in brackets, e.g. '
                             f'--set "{loc}=[{items}]" (in YAML: {loc.split(".")[-1]}: [{items}]).')
            continue
        if kind == "extra_forbidden":
            parent = Spec
            for p in err["loc"][:-1]:
                parent = getattr(parent.model_fields.get(str(p)), "annotation", None) or parent
            valid = list(getattr(parent, "model_fields", {}))
            name = str(err["loc"][-1])
            parts.append(f'unknown key "{loc}".{did_you_mean(name, valid)} Valid keys here: {", ".join(valid)}.')
        elif kind == "literal_error":
            choices = re.findall(r"'([^']*)'", str((err.get("ctx") or {}).get("expected", "")))
            parts.append(f'{loc} = {shorten(repr(err.get("input")), 80)} is not allowed: '
                         f'{err["msg"].replace("Input should be ", "expected ")}.'
                         f'{did_you_mean(str(err.get("input")), choices)}')
        else:
            parts.append(f'{loc} = {shorten(repr(err.get("input")), 80)}: {shorten(err["msg"], 200)}.')
    seen = list(dict.fromkeys(parts))
    more = f" ({len(seen) - 5} more problems not shown.)" if len(seen) > 5 else ""
    return "Invalid spec: " + " ".join(seen[:5]) + more + " Fix the spec file or the --set option and retry."
