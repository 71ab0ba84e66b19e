"""Search spaces: YAML keyed by spec paths, turned into optuna suggestions.

Syntax (one entry per spec path; scales as in Bergstra & Bengio 2012, docs/practices/hyperparameter_search.md)::

    optim.lr: {log: [1e-5, 1]}                 # alpha = 10^k, k uniform in [-5, 0]
    optim.beta1: {one_minus_log: [1e-4, 1e-1]} # beta = 1 - 10^k, k uniform in [-4, -1]
    train.batch_size: {choice: [32, 64, 128]}
    model.hidden: {choice: [[64], [128, 64]]}
    model.units: {int: [16, 512], log: true}   # with model.layers: hidden = [units] * layers
    model.layers: {int: [1, 3]}
    model.dropout: {float: [0.0, 0.5]}
    optim.name: [adam, nadam]                   # a plain list: grid values (a choice elsewhere)

A space is validated up front: an unknown path gets a did-you-mean, bad bounds
and values the spec would reject are a ``UserError`` (exit code 2 in the CLI).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


from trainwell.core import strict_yaml
from trainwell.core.errors import UserError, did_you_mean
from trainwell.optim.optimizers import OPTIMIZERS
from trainwell.core.spec import Spec

KINDS = ("log", "one_minus_log", "int", "float", "choice", "grid")
#: virtual keys: ``hidden = [model.units] * model.layers``
VIRTUAL = {"model.units": 64, "model.layers": 1}
MAX_GRID_INT = 64


@dataclass
class Param:
    """One searched spec path."""

    path: str
    kind: str                      # one of KINDS
    low: float | None = None
    high: float | None = None
    log: bool = False
    choices: list[Any] = field(default_factory=list)

    @property
    def optuna_name(self) -> str:
        """The name optuna sees; one_minus_log params are searched as ``1-path`` (log-uniform)."""
        return f"1-{self.path}" if self.kind == "one_minus_log" else self.path

    def describe(self) -> str:
        if self.kind in ("choice", "grid"):
            return f"{self.path}: {self.kind} of {len(self.choices)}"
        if self.kind == "one_minus_log":
            return f"{self.path}: 1 - loguniform[{self.low:g}, {self.high:g}]"
        if self.kind == "log":
            return f"{self.path}: log-uniform [{self.low:g}, {self.high:g}]"
        scale = "log-uniform" if self.log else "uniform"
        return f"{self.path}: {self.kind} {scale} [{self.low:g}, {self.high:g}]"

    # -- optuna ---------------------------------------------------------------
    def suggest(self, trial: Any) -> Any:
        name = self.optuna_name
        if self.kind == "log":
            return trial.suggest_float(name, self.low, self.high, log=True)
        if self.kind == "one_minus_log":
            return 1.0 - trial.suggest_float(name, self.low, self.high, log=True)
        if self.kind == "float":
            return trial.suggest_float(name, self.low, self.high, log=self.log)
        if self.kind == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        encoded = [_encode(c) for c in self.choices]
        return _decode(trial.suggest_categorical(name, encoded))

    def grid_values(self) -> list[Any]:
        """The values a grid search visits (optuna-storable: str/int/float/bool/None)."""
        if self.kind in ("choice", "grid"):
            return [_encode(c) for c in self.choices]
        if self.kind == "int" and not self.log and self.high - self.low + 1 <= MAX_GRID_INT:
            return list(range(int(self.low), int(self.high) + 1))
        raise UserError(
            f'Grid search needs discrete values, but "{self.path}" is a {self.kind} range. '
            f"Write it as a plain list, e.g. {self.path}: [{self.low:g}, {self.high:g}], "
            f"or use --sampler random|tpe."
        )

    def value_from_params(self, params: dict[str, Any]) -> Any:
        """The spec value of this param from a trial's ``params`` dict."""
        raw = params[self.optuna_name]
        if self.kind == "one_minus_log":
            return 1.0 - raw
        if self.kind in ("choice", "grid"):
            return _decode(raw)
        return raw


def _encode(value: Any) -> Any:
    """Optuna stores only scalars: lists/dicts become their JSON text."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return json.dumps(value)


def _decode(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


@dataclass
class Space:
    """An ordered set of Params (order = search priority, docs/practices/hyperparameter_search.md)."""

    params: list[Param]

    def __iter__(self):
        return iter(self.params)

    def __len__(self) -> int:
        return len(self.params)

    def suggest(self, trial: Any) -> dict[str, Any]:
        """Sample every param for ``trial``; returns ``{spec path: value}``."""
        return {p.path: p.suggest(trial) for p in self.params}

    def grid(self) -> dict[str, list[Any]]:
        return {p.optuna_name: p.grid_values() for p in self.params}

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid().values())

    def values(self, params: dict[str, Any]) -> dict[str, Any]:
        """``{spec path: value}`` from a (frozen) trial's params."""
        return {p.path: p.value_from_params(params) for p in self.params if p.optuna_name in params}

    def to_dict(self) -> dict:
        out: dict[str, Any] = {}
        for p in self.params:
            if p.kind == "grid":
                out[p.path] = list(p.choices)
            elif p.kind == "choice":
                out[p.path] = {"choice": list(p.choices)}
            elif p.kind == "int":
                out[p.path] = {"int": [int(p.low), int(p.high)], **({"log": True} if p.log else {})}
            elif p.kind == "float":
                out[p.path] = {"float": [p.low, p.high], **({"log": True} if p.log else {})}
            else:
                out[p.path] = {p.kind: [p.low, p.high]}
        return out


# -- parsing and validation -----------------------------------------------------
def _known_paths() -> dict[str, list[str]]:
    sections = {}
    for name, f in Spec.model_fields.items():
        sub = getattr(f.annotation, "model_fields", None)
        sections[name] = list(sub) if sub else []
    return sections


def _check_path(path: str) -> None:
    sections = _known_paths()
    if path in VIRTUAL:
        return
    parts = path.split(".")
    if len(parts) == 1:
        if parts[0] in sections and not sections[parts[0]]:
            return
        raise UserError(
            f'Search space: "{path}" is not a spec path.{did_you_mean(path, _all_paths())} '
            f"Write section.key, e.g. optim.lr."
        )
    section, key = parts[0], ".".join(parts[1:])
    if section not in sections or not sections[section]:
        raise UserError(
            f'Search space: unknown section "{section}" in "{path}".{did_you_mean(section, sections)} '
            f"Valid sections: {', '.join(s for s in sections if sections[s])}."
        )
    if key not in sections[section]:
        raise UserError(
            f'Search space: unknown key "{path}".{did_you_mean(path, _all_paths())} '
            f"Valid keys in {section}: {', '.join(sections[section])}."
        )


def _all_paths() -> list[str]:
    out = [*VIRTUAL]
    for s, keys in _known_paths().items():
        out += [f"{s}.{k}" for k in keys] if keys else [s]
    return out


def _num(v: Any) -> Any:
    """YAML 1.1 reads 1e-5 (no dot) as a string: take numeric strings as numbers."""
    if isinstance(v, str):
        try:
            return int(v) if v.strip().lstrip("+-").isdigit() else float(v)
        except ValueError:
            return v
    return v


def _pair(path: str, kind: str, value: Any) -> tuple[float, float]:
    if isinstance(value, (list, tuple)):
        value = [_num(v) for v in value]
    if not (isinstance(value, (list, tuple)) and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)):
        raise UserError(f'Search space: "{path}: {{{kind}: ...}}" needs two numbers, low and high '
                        f"(e.g. [1e-5, 1]); got {value!r}.")
    lo, hi = float(value[0]), float(value[1])
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo >= hi:
        raise UserError(f'Search space: "{path}" has bounds {lo:g} and {hi:g}; the first (low) must be below the second (high).')
    return lo, hi


def parse_param(path: str, entry: Any) -> Param:
    """One YAML entry -> Param (bounds checked)."""
    _check_path(path)
    if isinstance(entry, list):
        if not entry:
            raise UserError(f'Search space: "{path}" is an empty list; give at least one value.')
        return Param(path, "grid", choices=[_num(v) for v in entry])
    if not isinstance(entry, dict):
        raise UserError(
            f'Search space: "{path}: {entry!r}" is not a range. Use a list of values or one of '
            f"{{log: [1e-5, 1]}}, {{one_minus_log: [1e-4, 1e-1]}}, {{int: [1, 3]}}, {{float: [0, 0.5]}}, "
            f"{{choice: [32, 64]}}."
        )
    kinds = [k for k in entry if k in ("log", "one_minus_log", "int", "float", "choice")
             and not (k == "log" and isinstance(entry[k], bool))]
    extra = [k for k in entry if k not in ("log", "one_minus_log", "int", "float", "choice")]
    if len(kinds) != 1 or extra:
        bad = extra[0] if extra else None
        hint = did_you_mean(bad, KINDS) if bad else ""
        raise UserError(
            f'Search space: "{path}" must have exactly one of log, one_minus_log, int, float, choice'
            f"{f' (unknown {bad!r}.{hint})' if bad else ''}; got {sorted(entry)}."
        )
    kind = kinds[0]
    value = entry[kind]
    log_flag = entry.get("log") is True
    if kind == "choice":
        if not isinstance(value, list) or not value:
            raise UserError(f'Search space: "{path}: {{choice: ...}}" needs a non-empty list of values.')
        return Param(path, "choice", choices=[_num(v) for v in value])
    lo, hi = _pair(path, kind, value)
    if kind == "log":
        if lo <= 0:
            raise UserError(f'Search space: "{path}: {{log: [{lo:g}, {hi:g}]}}" needs low > 0 (log scale).')
        return Param(path, "log", lo, hi, log=True)
    if kind == "one_minus_log":
        if lo <= 0 or hi > 1:
            raise UserError(
                f'Search space: "{path}: {{one_minus_log: [{lo:g}, {hi:g}]}}" bounds 1 - beta, so they must lie '
                f"in (0, 1]; e.g. [1e-4, 1e-1] gives beta in [0.9, 0.9999]."
            )
        return Param(path, "one_minus_log", lo, hi, log=True)
    if kind == "int":
        if not (lo.is_integer() and hi.is_integer()):
            raise UserError(f'Search space: "{path}: {{int: {value}}}" needs integer bounds.')
        if log_flag and lo < 1:
            raise UserError(f'Search space: "{path}: {{int: [{lo:g}, {hi:g}], log: true}}" needs low >= 1.')
        return Param(path, "int", lo, hi, log=log_flag)
    if log_flag and lo <= 0:
        raise UserError(f'Search space: "{path}: {{float: [{lo:g}, {hi:g}], log: true}}" needs low > 0.')
    return Param(path, "float", lo, hi, log=log_flag)


def _probe_values(p: Param) -> list[Any]:
    if p.kind in ("choice", "grid"):
        return list(p.choices)
    if p.kind == "one_minus_log":
        return [1.0 - p.low, 1.0 - p.high]
    if p.kind == "int":
        return [int(p.low), int(p.high)]
    return [p.low, p.high]


def apply_values(tree: dict, values: dict[str, Any]) -> dict:
    """Write ``{spec path: value}`` into a spec dict (``model.units``/``layers`` -> ``model.hidden``)."""
    units = values.get("model.units")
    layers = values.get("model.layers")
    for path, value in values.items():
        if path in VIRTUAL:
            continue
        node = tree
        *parents, last = path.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    if units is not None or layers is not None:
        hidden = tree.get("model", {}).get("hidden")
        if units is None:
            units = hidden[0] if isinstance(hidden, list) and hidden else VIRTUAL["model.units"]
        if layers is None:
            layers = len(hidden) if isinstance(hidden, list) and hidden else VIRTUAL["model.layers"]
        tree.setdefault("model", {})["hidden"] = [int(units)] * int(layers)
    return tree


def validate_against(space: Space, base: Spec) -> None:
    """Every bound and choice must make a valid spec on top of ``base``."""
    for p in space:
        for v in _probe_values(p):
            if p.path in VIRTUAL and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise UserError(f'Search space: "{p.path}" values must be positive integers; got {v!r}.')
            try:
                Spec.from_dict(apply_values(base.to_dict(), {p.path: v}))
            except UserError as exc:
                raise UserError(f'Search space: "{p.path}" = {v!r} is not a valid value. {exc}') from None


def parse_space(source: "Space | dict | str | Path | None", base: Spec | None = None,
                sampler: str = "tpe") -> Space:
    """A Space from a YAML file, a dict or None (the default space for ``base``)."""
    base = base or Spec()
    if isinstance(source, Space):
        space = source
    else:
        if source is None:
            tree = default_space(base, grid=sampler == "grid")
        elif isinstance(source, dict):
            tree = source
        else:
            path = Path(source)
            if not path.exists():
                raise UserError(f"Search space file {path} does not exist. Check the path given to --space.")
            tree = strict_yaml.load_file(path, "Search space file") or {}
        if not isinstance(tree, dict) or not tree:
            raise UserError("The search space must be a non-empty mapping of spec paths, e.g. optim.lr: {log: [1e-5, 1]}.")
        if "model.hidden" in tree and ("model.units" in tree or "model.layers" in tree):
            raise UserError("Search space: give either model.hidden or model.units/model.layers, not both.")
        space = Space([parse_param(str(k), v) for k, v in tree.items()])
    validate_against(space, base)
    if sampler == "grid":
        space.grid()   # raises for continuous ranges
    return space


def default_space(base: Spec, grid: bool = False) -> dict:
    """A sensible space in priority order (Ng; Bengio 2012): lr; momentum/beta1; batch size; hidden units; layers."""
    entry = OPTIMIZERS.get(base.optim.name)     # an unknown name is refused when the optimizer is built
    momentum_key = f"optim.{entry.momentum_field}" if entry and entry.momentum_field else None
    if grid:
        tree: dict[str, Any] = {"optim.lr": [1e-4, 1e-3, 1e-2]}
        if momentum_key:
            tree[momentum_key] = [0.9, 0.99]
        tree["model.units"] = [32, 128]
        return tree
    tree = {"optim.lr": {"log": list(entry.lr_range if entry else (1e-5, 1e-1))}}
    if momentum_key:
        tree[momentum_key] = {"one_minus_log": [1e-3, 1e-1]}
    tree["train.batch_size"] = {"choice": [16, 32, 64, 128, 256]}
    tree["model.units"] = {"int": [16, 512], "log": True}
    tree["model.layers"] = {"int": [1, 3]}
    return tree
