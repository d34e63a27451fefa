"""params.yaml: one schema for every stage, checked when the file is loaded.

A wrong type, a value out of range, an unknown value or an unknown key (a typo
such as ``train.epoch``) stops the stage with a ``PipelineError`` that names
the key, what was found and what was expected.
"""

import difflib
import os
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any

import yaml

from mnistpipe.datasets import DATASETS
from mnistpipe.errors import PipelineError, shown
from mnistpipe.inputs import finite_number

MODELS = ("convnet", "mlp", "quickstart_cnn", "strided_cnn")
OPTIMIZERS = ("adam", "sgd", "rmsprop")
LOOPS = ("fit", "custom")
STRATEGIES = ("none", "mirrored", "multi_worker")
FORMATS = ("npy", "tfrecord")
SCHEDULES = ("cosine", "constant")
AUGMENTATIONS = ("none", "flip")
TEST_TIME_AUGMENTATIONS = ("none", "flip")
# The built-in datasets, or a labelled image folder of one's own (the ``folder`` section).
FOLDER = "folder"
DATASET_CHOICES = (*DATASETS, FOLDER)
# What preprocess does with an image it cannot read: stop with one line, or skip it
# and record it in the data report.
ON_UNREADABLE = ("stop", "skip")
# The archives ``folder.path`` may name, by how their name ends.
ARCHIVE_SUFFIXES = (".zip", ".tar.gz", ".tgz")
URL_SCHEMES = ("http", "https")
# The largest image side a model is fed: 4096 x 4096 x 3 bytes is 48 MiB an image.
MAX_IMAGE_SIDE = 4096


@dataclass(frozen=True)
class Integer:
    minimum: int | None = None
    # Sizes far beyond any data or machine would fail late, out of memory; refuse
    # them while the params are read.
    maximum: int | None = None

    def check(self, key: str, value: Any) -> int:
        # bool is a subclass of int in Python; `epochs: true` is a mistake, not 1.
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(key, value, "an integer")
        if self.minimum is not None and value < self.minimum:
            raise PipelineError(f"{key} is {shown(value)}; expected an integer >= {self.minimum}")
        if self.maximum is not None and value > self.maximum:
            raise PipelineError(
                f"{key} is {shown(value)}; expected an integer <= {self.maximum:,}"
            )
        return value


_EXPONENT_FORM = re.compile(r"[-+]?[0-9]+(\.[0-9]*)?[eE][-+]?[0-9]+\Z")


@dataclass(frozen=True)
class Number:
    minimum: float
    maximum: float
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False

    def check(self, key: str, value: Any) -> float:
        if isinstance(value, str) and _EXPONENT_FORM.match(value):
            # `dvc exp run -S train.learning_rate=1e-7` writes 1e-07, a number in
            # YAML 1.2 but a string to PyYAML (YAML 1.1 wants 1.0e-07).
            value = float(value)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _type_error(key, value, "a number")
        number = finite_number(value)
        if number is None or not self._holds(number):
            low = "(" if self.exclusive_minimum else "["
            high = ")" if self.exclusive_maximum else "]"
            interval = f"{low}{self.minimum:g}, {self.maximum:g}{high}"
            raise PipelineError(f"{key} is {shown(value)}; expected a number in {interval}")
        return number

    def _holds(self, number: float) -> bool:
        above_minimum = number > self.minimum if self.exclusive_minimum else number >= self.minimum
        below_maximum = number < self.maximum if self.exclusive_maximum else number <= self.maximum
        return above_minimum and below_maximum


@dataclass(frozen=True)
class Choice:
    allowed: tuple[str, ...]

    def check(self, key: str, value: Any) -> str:
        if value not in self.allowed:
            raise PipelineError(
                f"{key} is {shown(value)}; expected one of: {', '.join(self.allowed)}"
            )
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
                    f"{key} has {shown(item)}; expected a directory or an http:// or https:// URL"
                )
        return list(value)


@dataclass(frozen=True)
class FolderPath:
    """A directory, an archive file, or an http(s) URL of a .zip or .tar.gz."""

    def check(self, key: str, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise _type_error(key, value, "a directory, or a URL of a .zip or .tar.gz")
        if "://" in value:
            scheme = value.split("://", 1)[0].lower()
            if scheme == "file":
                # The value is also preprocess's dependency in dvc.yaml (${folder.path}),
                # and DVC reads a file:// URL as a relative path that does not exist.
                local = urllib.parse.unquote(urllib.parse.urlsplit(value).path)
                raise PipelineError(
                    f"{key} is {shown(value)}: DVC cannot track a file:// URL as a "
                    f"dependency; expected the archive's path: {shown(local)}"
                )
            if scheme not in URL_SCHEMES:
                raise PipelineError(
                    f"{key} is {shown(value)}; expected a directory or an http:// or https:// URL"
                )
            if not is_archive(value):
                raise PipelineError(
                    f"{key} is {shown(value)}; expected a URL of a "
                    f"{' or '.join(ARCHIVE_SUFFIXES)} archive"
                )
        return value


@dataclass(frozen=True)
class Checksum:
    """A SHA-256 as 64 hexadecimal digits, or "" for none."""

    def check(self, key: str, value: Any) -> str:
        if value is None:
            return ""
        if not isinstance(value, str) or not re.fullmatch(r"([0-9a-fA-F]{64})?", value):
            raise PipelineError(
                f'{key} is {shown(value)}; expected 64 hexadecimal digits (a SHA-256) or ""'
            )
        return value.lower()


@dataclass(frozen=True)
class ImageSize:
    """[height, width] in pixels."""

    def check(self, key: str, value: Any) -> list[int]:
        if not isinstance(value, list) or len(value) != 2:
            raise _type_error(key, value, "[height, width], two integers")
        side = Integer(minimum=1, maximum=MAX_IMAGE_SIDE)
        return [side.check(f"{key}[{index}]", item) for index, item in enumerate(value)]


@dataclass(frozen=True)
class Channels:
    def check(self, key: str, value: Any) -> int:
        if isinstance(value, bool) or value not in (1, 3):
            raise PipelineError(f"{key} is {shown(value)}; expected 1 (grayscale) or 3 (RGB)")
        return value


def is_url(path: str) -> bool:
    return "://" in path


def is_archive(path: str) -> bool:
    """Whether ``folder.path`` names an archive (a URL or a file) rather than a directory."""
    name = path.split("?", 1)[0].lower() if is_url(path) else path.lower()
    return name.endswith(ARCHIVE_SUFFIXES)


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
                    f"{key} has metric {shown(metric)}; expected FILE.KEY, e.g. evaluate.accuracy"
                )
            checked[metric] = Number(0.0, float("inf")).check(f"{key}.{metric}", tolerance)
        return checked


SCHEMA: dict[str, Any] = {
    # NumPy's and Keras' seeds are 32-bit.
    "seed": Integer(minimum=0, maximum=2**32 - 1),
    "dataset": Choice(DATASET_CHOICES),
    "download": {
        "mirrors": Sources(),
    },
    "folder": {
        "path": FolderPath(),
        "sha256": Checksum(),
        "image_size": ImageSize(),
        "channels": Channels(),
        "test_split": Number(0.0, 1.0, exclusive_minimum=True, exclusive_maximum=True),
        "on_unreadable": Choice(ON_UNREADABLE),
    },
    "preprocess": {
        "val_split": Number(0.0, 1.0, exclusive_minimum=True, exclusive_maximum=True),
        "limit": Integer(minimum=0, maximum=100_000_000),
        "format": Choice(FORMATS),
        "shard_size": Integer(minimum=1, maximum=10_000_000),
    },
    "train": {
        "model": Choice(MODELS),
        "optimizer": Choice(OPTIMIZERS),
        "learning_rate": Number(0.0, 10.0, exclusive_minimum=True),
        "lr_schedule": Choice(SCHEDULES),
        "batch_size": Integer(minimum=1, maximum=1_000_000),
        "epochs": Integer(minimum=1, maximum=100_000),
        "shuffle_buffer": Integer(minimum=0, maximum=100_000_000),
        "augment": Choice(AUGMENTATIONS),
        # A shift of half the 28-pixel side or more would leave no image to see.
        "shift_pixels": Integer(minimum=0, maximum=13),
        "label_smoothing": Number(0.0, 1.0, exclusive_maximum=True),
        "warmup_epochs": Number(0.0, float("inf")),
        "loop": Choice(LOOPS),
        "dropout": Number(0.0, 1.0, exclusive_maximum=True),
        "deterministic": Flag(),
        "jit_compile": Flag(),
        "distribute": Choice(STRATEGIES),
        "mixed_precision": Flag(),
    },
    "evaluate": {
        "min_accuracy": Number(0.0, 1.0),
        "test_time_augmentation": Choice(TEST_TIME_AUGMENTATIONS),
    },
    "gate": {
        "tolerances": Tolerances(),
    },
}


def _type_error(key: str, value: Any, expected: str) -> PipelineError:
    return PipelineError(f"{key} is {shown(value)} ({type(value).__name__}); expected {expected}")


def _check_section(values: Any, schema: dict[str, Any], prefix: str, source: str) -> dict:
    where = prefix.rstrip(".") or source
    if not isinstance(values, dict):
        raise PipelineError(f"{where} in {source} is {shown(values)}; expected a mapping of keys")
    for key in values:
        if key not in schema:
            # A key as written (train.epoch), unless YAML made something else of it.
            plain = isinstance(key, str) and key.isprintable() and len(key) <= 80
            name = key if plain else shown(key)
            message = f"unknown key {prefix}{name} in {source}"
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
    except OSError as error:
        raise PipelineError(f"cannot read {path}: {error.strerror}; expected YAML") from None
    except UnicodeDecodeError as error:
        raise PipelineError(f"{path} is not UTF-8 text ({error.reason}); expected YAML") from None
    except (yaml.YAMLError, ValueError, RecursionError) as error:
        # ValueError: PyYAML turns an integer longer than Python allows into one.
        # The safe loader refuses tags such as !!python/object instead of running them.
        detail = " ".join(str(error).split())
        raise PipelineError(f"{path} is not valid plain YAML: {detail}") from None
    return check_params(values, str(path))


def check_params(values: Any, source: str) -> dict[str, Any]:
    """``values`` (as YAML read them from ``source``) checked as load_params checks a file."""
    params = _check_section(values, SCHEMA, "", source)
    check_folder_settings(params["folder"])
    check_train_settings(params["train"])
    return params


def check_folder_settings(settings: dict) -> None:
    """An archive is verified by its SHA-256; a directory has none (DVC hashes its files)."""
    if is_archive(settings["path"]) and not settings["sha256"]:
        raise PipelineError(
            f"folder.sha256 is empty but folder.path {shown(settings['path'])} is an archive; "
            "expected its SHA-256 (sha256sum FILE), so that it is verified before unpacking"
        )
    if not is_archive(settings["path"]) and settings["sha256"]:
        raise PipelineError(
            f"folder.sha256 is set but folder.path {shown(settings['path'])} is a directory; "
            'expected "" (DVC hashes a directory\'s files itself: dvc add it)'
        )


def check_train_settings(settings: dict) -> None:
    """Refuse combinations of ``train`` params that cannot work, before any work starts.

    load_params calls it; so does anyone who builds a ``train`` section by hand
    (the benchmark's arms, tests), so that every check lives here, once.
    """
    if settings["jit_compile"] and settings["deterministic"]:
        # Keras would quietly train without XLA: TensorFlow's op determinism has no
        # XLA kernels.
        raise PipelineError(
            "train.jit_compile is true and train.deterministic is true; XLA cannot run "
            "deterministically, so set one of them to false"
        )
    if settings["distribute"] == "multi_worker" and settings["loop"] == "fit":
        raise PipelineError(
            "train.distribute is multi_worker and train.loop is fit; Keras 3's model.fit "
            "fails under MultiWorkerMirroredStrategy (keras-team/keras#20585), so set "
            "train.loop: custom"
        )
    if settings["warmup_epochs"] >= settings["epochs"]:
        raise PipelineError(
            f"train.warmup_epochs is {settings['warmup_epochs']:g} and train.epochs is "
            f"{settings['epochs']}; expected fewer warm-up epochs than epochs, so that the "
            "learning rate also decays"
        )
    if settings["mixed_precision"]:
        import tensorflow as tf  # Only here: the other checks need no TensorFlow.

        if not tf.config.list_physical_devices("GPU"):
            raise PipelineError(
                "train.mixed_precision is true but TensorFlow sees no GPU; float16 is only "
                "faster on GPUs (compute capability 7.0 or newer), so set it to false here"
            )
