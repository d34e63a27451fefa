"""Stage 2: the raw data → train, validation and test splits in data/prepared/, and a report.

The built-in datasets: validate the IDX files, scale to float32 [0, 1], add the
channel axis, carve the validation split. A folder of one's own images: decode
and resize each, group exact duplicates, split stratified by class. Either way
dataset.json names the classes and the image shape, and metrics/ gets the data report.
"""

from mnistpipe import paths
from mnistpipe.data import prepare, raw_splits
from mnistpipe.data_report import builtin_report, write_reports
from mnistpipe.datasets import DATASETS
from mnistpipe.errors import run_stage
from mnistpipe.folder_data import prepare_folder
from mnistpipe.image_folder import folder_root
from mnistpipe.params import FOLDER, load_params


def main() -> str:
    params = load_params(paths.PARAMS)
    settings, seed = params["preprocess"], params["seed"]
    if params["dataset"] == FOLDER:
        folder = params["folder"]
        sizes, report = prepare_folder(
            folder_root(folder["path"], paths.RAW),
            paths.PREPARED,
            image_size=tuple(folder["image_size"]),
            channels=folder["channels"],
            test_split=folder["test_split"],
            val_split=settings["val_split"],
            seed=seed,
            on_unreadable=folder["on_unreadable"],
            storage_format=settings["format"],
            shard_size=settings["shard_size"],
            source={"path": folder["path"], "sha256": folder["sha256"]},
        )
    else:
        sizes = prepare(
            paths.RAW,
            paths.PREPARED,
            val_split=settings["val_split"],
            limit=settings["limit"],
            seed=seed,
            storage_format=settings["format"],
            shard_size=settings["shard_size"],
            dataset=params["dataset"],
        )
        splits = raw_splits(paths.RAW, settings["val_split"], settings["limit"], seed)
        report = builtin_report(DATASETS[params["dataset"]].class_names, splits)
    write_reports(paths.DATA_METRICS, paths.DATA_REPORT, report)
    counts = ", ".join(f"{split} {count}" for split, count in sizes.items())
    return f"preprocess: {counts} examples in {paths.PREPARED}/ as {settings['format']}"


if __name__ == "__main__":
    run_stage(main)
