"""params.yaml: one schema for every stage, checked when the file is loaded.

A wrong type, a value out of range, an unknown value or an unknown key (a typo
such as ``train.epoch``) stops the stage with a ``PipelineError`` that names
the key, what was found and what was expected.
"""

import difflib
import math
import os
from dataclasses import dataclass
from typing import Any

import yaml

from mnistpipe.datasets import DATASETS
from mnistpipe.errors import PipelineError

MODELS = ("convnet", "mlp", "quickstart_cnn")
OPTIMIZERS = ("adam", "sgd", "rmsprop")
LOOPS = ("fit", "custom")
STRATEGIES = ("none", "mirrored", "multi_worker")
FORMATS = ("npy", "tfrecord")
SCHEDULES = ("cosine", "constant")
AUGMENTATIONS = ("none", "flip")


@dataclass(frozen=True)
class Integer:
    minimum: int | None = None

    def check(self, key: str, value: Any) -> int:
        # bool is a subclass of int in Python; `epochs: true` is a mistake, not 1.
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(key, value, "an integer")
        if self.minimum is not None and value < self.minimum:
            raise PipelineError(f"{key} is {value}; expected an integer >= {self.minimum}")
        return value


@dataclass(frozen=True)
class Number:
    minimum: float
    maximum: float
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False

    def check(self, key: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _type_error(key, value, "a number")
        value = float(value)
        below = value <= self.minimum if self.exclusive_minimum else value < self.minimum
        above = value >= self.maximum if self.exclusive_maximum else value > self.maximum
        if not math.isfinite(value) or below or above:
            low = "(" if self.exclusive_minimum else "["
            high = ")" if self.exclusive_maximum else "]"
            interval = f"{low}{self.minimum:g}, {self.maximum:g}{high}"
            raise PipelineError(f"{key} is {value}; expected a number in {interval}")
        return value


@dataclass(frozen=True)
class Choice:
    allowed: tuple[str, ...]

    def check(self, key: str, value: Any) -> str:
        if value not in self.allowed:
            raise PipelineError(f"{key} is {value!r}; expected one of: {', '.join(self.allowed)}")
        return value


@dataclass(frozen=True)
class Flag:
    def check(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise _type_error(key, value, "true or false")
        return value


@dataclass(frozen=True)
class Sources:
    """A list of directories or http(s) URL bases."""

    def check(self, key: str, value: Any) -> list[str]:
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise _type_error(key, value, "a list of directories or http(s) URLs")
        for item in value:
            scheme = item.split("://", 1)[0].lower() if "://" in item else ""
            if scheme not in ("", "http", "https"):
                raise PipelineError(
                    f"{key} has {item!r}; expected a directory or an http:// or https:// URL"
                )
        return list(value)


@dataclass(frozen=True)
class Tolerances:
    """Metric name (``evaluate.accuracy``) → how much it may get worse, a number >= 0."""

    def check(self, key: str, value: Any) -> dict[str, float]:
        if not isinstance(value, dict):
            raise _type_error(key, value, "a mapping of metric names to numbers >= 0")
        checked = {}
        for metric, tolerance in value.items():
            if not isinstance(metric, str) or "." not in metric:
                raise PipelineError(
                    f"{key} has metric {metric!r}; expected FILE.KEY, e.g. evaluate.accuracy"
                )
            checked[metric] = Number(0.0, float("inf")).check(f"{key}.{metric}", tolerance)
        return checked


SCHEMA: dict[str, Any] = {
    "seed": Integer(minimum=0),
    "dataset": Choice(tuple(DATASETS)),
    "download": {
        "mirrors": Sources(),
    },
    "preprocess": {
        "val_split": Number(0.0, 1.0, exclusive_minimum=True, exclusive_maximum=True),
        "limit": Integer(minimum=0),
        "format": Choice(FORMATS),
        "shard_size": Integer(minimum=1),
    },
    "train": {
        "model": Choice(MODELS),
        "optimizer": Choice(OPTIMIZERS),
        "learning_rate": Number(0.0, 10.0, exclusive_minimum=True),
        "lr_schedule": Choice(SCHEDULES),
        "batch_size": Integer(minimum=1),
        "epochs": Integer(minimum=1),
        "shuffle_buffer": Integer(minimum=0),
        "augment": Choice(AUGMENTATIONS),
        "loop": Choice(LOOPS),
        "dropout": Number(0.0, 1.0, exclusive_maximum=True),
        "deterministic": Flag(),
        "jit_compile": Flag(),
        "distribute": Choice(STRATEGIES),
        "mixed_precision": Flag(),
    },
    "evaluate": {
        "min_accuracy": Number(0.0, 1.0),
    },
    "gate": {
        "tolerances": Tolerances(),
    },
}


def _type_error(key: str, value: Any, expected: str) -> PipelineError:
    return PipelineError(f"{key} is {value!r} ({type(value).__name__}); expected {expected}")


def _check_section(values: Any, schema: dict[str, Any], prefix: str, source: str) -> dict:
    where = prefix.rstrip(".") or source
    if not isinstance(values, dict):
        raise PipelineError(f"{where} in {source} is {values!r}; expected a mapping of keys")
    for key in values:
        if key not in schema:
            message = f"unknown key {prefix}{key} in {source}"
            suggestions = difflib.get_close_matches(str(key), list(schema), n=1)
            if suggestions:
                message += f"; did you mean {prefix}{suggestions[0]}?"
            else:
                message += f"; expected one of: {', '.join(prefix + name for name in schema)}"
            raise PipelineError(message)
    checked = {}
    for key, rule in schema.items():
        if key not in values:
            raise PipelineError(f"missing key {prefix}{key} in {source}")
        if isinstance(rule, dict):
            checked[key] = _check_section(values[key], rule, f"{prefix}{key}.", source)
        else:
            checked[key] = rule.check(f"{prefix}{key}", values[key])
    return checked


def load_params(path: str | os.PathLike = "params.yaml") -> dict[str, Any]:
    """Read and validate params.yaml with YAML's safe loader.

    Every key in SCHEMA must be present and no other; returns the checked values
    as nested dicts (``params["train"]["epochs"]``).
    """
    try:
        with open(path, encoding="utf-8") as stream:
            values = yaml.safe_load(stream)
    except FileNotFoundError:
        raise PipelineError(f"{path} not found; expected the pipeline's params file") from None
    except yaml.YAMLError as error:
        # The safe loader refuses tags such as !!python/object instead of running them.
        detail = " ".join(str(error).split())
        raise PipelineError(f"{path} is not valid plain YAML: {detail}") from None
    return _check_section(values, SCHEMA, "", str(path))
