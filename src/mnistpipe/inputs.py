"""Reading the JSON files one stage wrote for another, and DVC's YAML files, checked before use.

A metrics file edited by hand, cut short, or left by another tool would
otherwise fail deep inside the code that reads it, with a traceback.
"""

import json
import math
import os
from pathlib import Path
from typing import Any

import yaml

from mnistpipe.errors import PipelineError, shown


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def read_json_object(
    path: str | os.PathLike,
    writer: str,
    required: tuple[str, ...] = (),
    numbers: tuple[str, ...] = (),
) -> dict:
    """The JSON object in ``path``, which the stage ``writer`` writes.

    Raises ``PipelineError`` naming the file, what it holds and how to rebuild
    it, unless it is a JSON object (no NaN or infinity) with the ``required``
    keys and, under the ``numbers`` keys, numbers. A key may be dotted:
    ``macro_avg.f1`` is the key ``f1`` of the object under ``macro_avg``.
    """
    way_back = f"run dvc repro --force {writer} (or dvc checkout {path})"
    expected = f"the JSON object the {writer} stage writes; {way_back}"
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PipelineError(
            f"{path} does not exist; expected the {writer} stage's output: run dvc repro"
        ) from None
    except (OSError, UnicodeDecodeError) as error:
        raise PipelineError(f"{path} is not valid JSON ({error}); expected {expected}") from None
    value = parse_json_object(text, str(path), expected)
    missing = [key for key in (*required, *numbers) if _missing(value, key)]
    if missing:
        named = ", ".join(missing[:4]) + (f" and {len(missing) - 4} more" if missing[4:] else "")
        raise PipelineError(
            f"{path} has no {named}; expected the keys the {writer} stage writes; {way_back}"
        )
    for key in numbers:
        number = _lookup(value, key)
        if isinstance(number, bool) or not isinstance(number, int | float):
            raise PipelineError(
                f"{path} has {key} {number!r}; expected a number, as the {writer} stage "
                f"writes it; {way_back}"
            )
    for key in (*required, *numbers):
        # 1e999 is JSON's way to an infinity that parse_constant never sees, and an
        # integer written out past float's range (10**400) breaks the float() of
        # the code that reads it.
        number = _lookup(value, key)
        is_number = isinstance(number, int | float) and not isinstance(number, bool)
        if is_number and finite_number(number) is None:
            raise PipelineError(
                f"{path} has {key} {shown(number)}; expected a finite number; {way_back}"
            )
    return value


def parse_json_object(text: str, source: str, expected: str) -> dict:
    """The JSON object ``text`` holds; ``source`` names where the text is from.

    Text that is not JSON, NaN or an infinity written as a constant, or a document
    that is not an object raises ``PipelineError`` naming ``source`` and what was
    ``expected``. Text read from git (``git show``) has no file to open, hence text.
    """
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as error:
        # RecursionError: an array nested some thousands deep ([[[[...).
        raise PipelineError(f"{source} is not valid JSON ({error}); expected {expected}") from None
    if not isinstance(value, dict):
        raise PipelineError(f"{source} holds a JSON {type(value).__name__}; expected {expected}")
    return value


def finite_number(value: Any) -> float | None:
    """``value`` as a float when it is a number a float holds; None when it is not.

    Not a bool, not NaN or an infinity, and not an integer beyond float's range,
    which JSON allows (10**400 written out) and float() refuses with OverflowError.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _lookup(value: Any, key: str) -> Any:
    for part in key.split("."):
        value = value[part]
    return value


def _missing(value: Any, key: str) -> bool:
    for part in key.split("."):
        if not isinstance(value, dict) or part not in value:
            return True
        value = value[part]
    return False


def parse_yaml_mapping(text: str, source: str, expected: str) -> dict:
    """The YAML mapping ``text`` holds, read safely; ``source`` names where the text is from.

    Malformed YAML, a tag such as ``!!python/object``, or a document that is not a
    mapping raises ``PipelineError`` naming ``source`` and what was ``expected``
    (``"DVC's pipeline file"``). An empty document is an empty mapping.
    """
    try:
        value = yaml.safe_load(text)
    except (yaml.YAMLError, ValueError, RecursionError) as error:
        # ValueError: PyYAML turns an integer longer than Python allows into one.
        detail = " ".join(str(error).split())
        raise PipelineError(
            f"{source} is not valid plain YAML ({detail}); expected {expected}"
        ) from None
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise PipelineError(
            f"{source} holds a YAML {type(value).__name__}; expected a mapping: {expected}"
        )
    return value


def read_yaml_mapping(path: str | os.PathLike, expected: str) -> dict:
    """The YAML mapping in the file ``path``, as ``parse_yaml_mapping`` reads it."""
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except FileNotFoundError:
        raise PipelineError(
            f"{path} does not exist in {os.getcwd()}; expected {expected}"
        ) from None
    except OSError as error:
        raise PipelineError(
            f"cannot read {path}: {error.strerror or error}; expected {expected}"
        ) from None
    except UnicodeDecodeError as error:
        raise PipelineError(
            f"{path} is not UTF-8 text ({error.reason}); expected {expected}"
        ) from None
    return parse_yaml_mapping(text, str(path), expected)


def mapping_under(value: dict, key: str, source: str, expected: str) -> dict:
    """``value[key]`` if it is a mapping, {} if absent or empty; else a ``PipelineError``."""
    found = value.get(key)
    if found is None:
        return {}
    if not isinstance(found, dict):
        raise PipelineError(
            f"{key} in {source} is {shown(found)}; expected a mapping of {expected}"
        )
    return found


def read_text(path: str | os.PathLike, expected: str, missing: str | None = None) -> str:
    """The UTF-8 text of the file ``path``.

    A file that cannot be read (a directory, no permission) or is not UTF-8 raises
    ``PipelineError`` naming it and what was ``expected``; so does a missing one,
    with the message ``missing`` when given.
    """
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        if missing is not None and isinstance(error, FileNotFoundError):
            raise PipelineError(missing) from None
        reason = getattr(error, "strerror", None) or error
        raise PipelineError(f"cannot read {path} ({reason}); expected {expected}") from None
