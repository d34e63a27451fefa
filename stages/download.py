"""Stage 1: fetch the dataset's four IDX files, verified, into data/raw/."""

import sys

from mnistpipe import paths
from mnistpipe.datasets import DATASETS
from mnistpipe.download import download_dataset
from mnistpipe.errors import run_stage
from mnistpipe.params import load_params


def main() -> str:
    params = load_params(paths.PARAMS)
    spec = DATASETS[params["dataset"]]
    served_by = download_dataset(
        spec, params["download"]["mirrors"], paths.RAW, progress=sys.stderr.isatty()
    )
    sources = ", ".join(sorted(set(served_by.values())))
    return f"download: {spec.name}, 4 verified files in {paths.RAW}/ from {sources}"


if __name__ == "__main__":
    run_stage(main)
