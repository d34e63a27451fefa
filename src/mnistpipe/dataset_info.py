"""What the prepared data is: its class names and image shape, in ``dataset.json``.

Preprocess writes it beside the arrays for every dataset, built-in or a folder of
one's own; train builds the model from it (input shape, class count), evaluate
and export name the classes from it. It is the one place a stage learns what
kind of images it deals with.
"""

import dataclasses
import os
from pathlib import Path

from mnistpipe.datasets import IMAGE_SIDE, NUM_CLASSES
from mnistpipe.errors import PipelineError
from mnistpipe.files import write_json
from mnistpipe.inputs import read_json_object

INFO_FILE = "dataset.json"
REBUILD = "run dvc repro --force preprocess (or dvc checkout data/prepared)"


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    class_names: tuple[str, ...]
    # (height, width, channels) of every image, as the model takes it.
    image_shape: tuple[int, int, int]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def write_info(directory: str | os.PathLike, info: DatasetInfo) -> None:
    write_json(
        Path(directory) / INFO_FILE,
        {"class_names": list(info.class_names), "image_shape": list(info.image_shape)},
    )


def read_info(directory: str | os.PathLike) -> DatasetInfo:
    """The ``dataset.json`` in ``directory``, checked: class names and an (H, W, C) shape."""
    path = Path(directory) / INFO_FILE
    value = read_json_object(path, "preprocess", required=("class_names", "image_shape"))
    names, shape = value["class_names"], value["image_shape"]
    names_ok = (
        isinstance(names, list)
        and len(names) >= 2
        and all(isinstance(name, str) and name for name in names)
        and len(set(names)) == len(names)
    )
    shape_ok = (
        isinstance(shape, list)
        and len(shape) == 3
        and all(isinstance(side, int) and not isinstance(side, bool) for side in shape)
        and all(side >= 1 for side in shape)
        and shape[2] in (1, 3)
    )
    if not (names_ok and shape_ok):
        raise PipelineError(
            f"{path} holds class_names {str(names)[:60]} and image_shape {str(shape)[:60]}; "
            "expected at least two distinct class names and [height, width, 1 or 3]; "
            f"{REBUILD}"
        )
    return DatasetInfo(tuple(names), (shape[0], shape[1], shape[2]))


# What prepared data written before dataset.json existed holds: a built-in dataset.
BUILT_IN_INFO = DatasetInfo(
    tuple(str(number) for number in range(NUM_CLASSES)), (IMAGE_SIDE, IMAGE_SIDE, 1)
)


def prepared_info(directory: str | os.PathLike) -> DatasetInfo:
    """The prepared data's class names and image shape, from its ``dataset.json``."""
    if not (Path(directory) / INFO_FILE).exists():
        return BUILT_IN_INFO
    return read_info(directory)
