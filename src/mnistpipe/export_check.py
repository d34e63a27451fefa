"""An export folder checked whole before it is used, against what it declares itself.

The export stage writes ``saved_model/``, ``model.keras``, ``classes.json`` and
``MODEL_CARD.md`` together; a folder copied by hand, pulled half way or made by
another version may hold parts that do not fit. Each reader (predict, release,
the bench) calls :func:`load_export`, which checks

- that every file the model card lists is there, and the SavedModel's own files;
- ``classes.json``: a list of names, one per output of the model;
- the serving signature: uint8 images in (what a client sends), shaped
  (N, H, W) or (N, H, W, C), and one probability per class out;
- when the reader says what it feeds (``image_shape``), that the signature
  takes it.

Nothing here assumes 28x28 or 10 classes: the shapes and the class count are the
export's own. Each mismatch is one line naming the file and what was expected.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

from mnistpipe import paths
from mnistpipe.errors import PipelineError, shown

SIGNATURE = "serving_default"
INPUT = "images"
OUTPUT = "probabilities"
CLASSES = paths.EXPORTED_CLASSES.name
CARD = paths.MODEL_CARD.name
SAVED_MODEL = paths.EXPORTED_SAVED_MODEL.name
# A file or folder name in backquotes on the card's "Files:" line: `saved_model/`,
# `model.keras`; not `serving_default` or `safe_mode=True`.
_CARD_FILE = re.compile(r"`([\w.-]+(?:/|\.\w+))`")
_RUN_EXPORT = "run `dvc repro export` (or `make pull`) to make the export again"
# What an export that predates classes.json's image_shape took: a built-in dataset's.
IDX_IMAGE_SHAPE = (28, 28, 1)


@dataclass(frozen=True)
class Export:
    """A checked export: its classes.json, the image shape it takes, its serving function."""

    directory: Path
    classes: "ExportedClasses"
    image_shape: tuple[int | None, ...]  # One image's (H, W) or (H, W, C); None: any.
    serve: object  # uint8 images (N, *image_shape) -> probabilities (N, classes).

    @property
    def class_names(self) -> list[str]:
        return self.classes.class_names


def _mismatches_error(mismatches: list[str]) -> PipelineError:
    # One line a mismatch: the caller prints "error: " before the first, and each
    # line after it carries its own.
    return PipelineError("\nerror: ".join(mismatches))


def card_files(directory: Path) -> list[str]:
    """The files and folders the model card's ``Files:`` line names."""
    card = directory / CARD
    try:
        text = card.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise PipelineError(
            f"{card}: cannot read it ({error}); expected the model card the export stage "
            f"writes: {_RUN_EXPORT}"
        ) from None
    lines = [line for line in text.splitlines() if line.lstrip("- ").startswith("Files:")]
    if not lines:
        raise PipelineError(
            f"{card}: no 'Files:' line; expected the list of the export's files the export "
            f"stage writes: {_RUN_EXPORT}"
        )
    return _CARD_FILE.findall(lines[0])


@dataclass(frozen=True)
class ExportedClasses:
    """What ``classes.json`` says beside the SavedModel."""

    class_names: list[str]
    # (height, width, channels) of the images the model takes.
    image_shape: tuple[int, int, int]
    # Whether the model's images are light on dark (the built-in datasets').
    invert_dark_on_light: bool


def read_classes(directory: Path) -> ExportedClasses:
    """``classes.json``: distinct class names, the image shape, whether pictures are inverted.

    An export made before the image shape was recorded was of a built-in
    dataset: 28x28 grayscale, light on dark.
    """
    path = directory / CLASSES
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        names = document["class_names"]
        # A string or a number here would be taken apart letter by letter, or fail later.
        if not (isinstance(names, list) and all(isinstance(name, str) for name in names)):
            raise TypeError(f"class_names is {shown(names)}, not a list of names")
        shape = document.get("image_shape", list(IDX_IMAGE_SHAPE))
        if not (
            isinstance(shape, list)
            and len(shape) == 3
            and all(type(side) is int and side >= 1 for side in shape)
            and shape[2] in (1, 3)
        ):
            raise TypeError(f"image_shape is {shown(shape)}, not [height, width, 1 or 3]")
        invert = document.get("invert_dark_on_light", "image_shape" not in document)
        if not isinstance(invert, bool):
            raise TypeError(f"invert_dark_on_light is {shown(invert)}, not true or false")
    # RecursionError: JSON nested thousands deep ([[[[...).
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as error:
        raise PipelineError(
            f"cannot read the class names from {path} ({error}); expected the export "
            f'stage\'s {{"class_names": [...]}}: {_RUN_EXPORT}'
        ) from None
    if not names or len(set(names)) != len(names):
        raise PipelineError(
            f"{path}: class_names is {shown(names)}; expected distinct names, one per class: "
            f"{_RUN_EXPORT}"
        )
    return ExportedClasses(names, (shape[0], shape[1], shape[2]), invert)


def _load_signature(saved_model: Path):
    import tensorflow as tf

    from mnistpipe.errors import tensorflow_reason

    try:
        loaded = tf.saved_model.load(str(saved_model))
    except Exception as error:  # noqa: BLE001 (protobuf, TensorFlow and OS errors alike)
        raise PipelineError(
            f"{saved_model}: cannot load the SavedModel ({tensorflow_reason(error)}); "
            f"expected the export stage's SavedModel: {_RUN_EXPORT}"
        ) from None
    if SIGNATURE not in loaded.signatures:
        raise PipelineError(
            f"{saved_model}: no {SIGNATURE!r} signature (it has {sorted(loaded.signatures)}); "
            f"expected the export stage's serving signature: {_RUN_EXPORT}"
        )
    return loaded, loaded.signatures[SIGNATURE]


def load_export(directory: str | Path, image_shape: tuple[int, ...] | None = None) -> Export:
    """The export at ``directory``, checked whole; ``PipelineError`` lists what does not fit.

    ``image_shape``: one image as the reader will send it (e.g. (28, 28)), checked
    against the signature; None: the images classes.json declares.
    """
    # Here, not at the top: serving loads TensorFlow, and `mnistpipe predict --help`
    # imports this module.
    from mnistpipe.serving import served_shape, serving_function

    directory = Path(directory)
    declared = read_classes(directory)
    class_names = declared.class_names
    # What a client sends: the images classes.json declares, as the signature takes them.
    image_shape = served_shape(declared.image_shape) if image_shape is None else image_shape
    mismatches = []
    for name in card_files(directory):
        path = directory / name.rstrip("/")
        if not (path.is_dir() if name.endswith("/") else path.is_file()):
            mismatches.append(f"{path}: missing; expected it, as {directory / CARD} lists it")
    for name in ("saved_model.pb", "variables/variables.index"):
        path = directory / SAVED_MODEL / name
        if (directory / SAVED_MODEL).is_dir() and not path.is_file():
            mismatches.append(f"{path}: missing; expected the SavedModel's {name}")
    if mismatches:
        raise _mismatches_error([*mismatches[:-1], f"{mismatches[-1]}; {_RUN_EXPORT}"])
    loaded, signature = _load_signature(directory / SAVED_MODEL)

    saved_model = directory / SAVED_MODEL
    inputs = signature.structured_input_signature[1]
    outputs = signature.structured_outputs
    spec = inputs.get(INPUT)
    if spec is None:
        mismatches.append(
            f"{saved_model}: the {SIGNATURE} signature takes {sorted(inputs)}; "
            f"expected one input named {INPUT!r}"
        )
    else:
        if spec.dtype.name != "uint8":
            mismatches.append(
                f"{saved_model}: the signature's {INPUT!r} are {spec.dtype.name}; expected "
                "uint8 (raw pixels, which predict sends)"
            )
        shape = tuple(spec.shape.as_list()) if spec.shape.rank is not None else None
        if shape is None or len(shape) not in (3, 4):
            mismatches.append(
                f"{saved_model}: the signature's {INPUT!r} are shaped {shape}; expected "
                "(N, height, width) or (N, height, width, channels)"
            )
        elif image_shape is not None and not _fits(shape[1:], tuple(image_shape)):
            mismatches.append(
                f"{saved_model}: the signature takes images shaped {shape[1:]}; expected "
                f"{tuple(image_shape)}, the images this reader sends"
            )
    output = outputs.get(OUTPUT, next(iter(outputs.values()), None))
    classes = output.shape.as_list()[-1] if output is not None and output.shape.rank else None
    if classes is None:
        mismatches.append(f"{saved_model}: the signature's output has no class axis")
    elif classes != len(class_names):
        mismatches.append(
            f"{directory / CLASSES}: names {len(class_names)} classes; expected {classes}, "
            f"one per output of {saved_model}"
        )
    if mismatches:
        raise _mismatches_error([*mismatches[:-1], f"{mismatches[-1]}; {_RUN_EXPORT}"])

    return Export(directory, declared, shape[1:], serving_function(loaded, signature))


def _fits(declared: tuple, sent: tuple) -> bool:
    """Whether images shaped ``sent`` fit a signature's ``declared`` (None: any size)."""
    return len(declared) == len(sent) and all(
        want is None or want == have for want, have in zip(declared, sent, strict=True)
    )
