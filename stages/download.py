"""Stage 1: fetch the raw data, verified, into data/raw/.

A built-in dataset: its four IDX files. A folder of one's own images given as an
archive URL: the archive, verified against folder.sha256 and unpacked safely into
data/raw/images/. A folder given as a directory is read in place by preprocess
(DVC hashes it as that stage's dependency), so data/raw/ holds only a note of it.
"""

import sys

from mnistpipe import paths
from mnistpipe.archives import download_folder
from mnistpipe.datasets import DATASETS
from mnistpipe.download import download_dataset
from mnistpipe.errors import run_stage
from mnistpipe.params import FOLDER, load_params


def main() -> str:
    params = load_params(paths.PARAMS)
    if params["dataset"] == FOLDER:
        return download_folder(params["folder"], paths.RAW, progress=sys.stderr.isatty())
    spec = DATASETS[params["dataset"]]
    served_by = download_dataset(
        spec, params["download"]["mirrors"], paths.RAW, progress=sys.stderr.isatty()
    )
    sources = ", ".join(sorted(set(served_by.values())))
    return f"download: {spec.name}, 4 verified files in {paths.RAW}/ from {sources}"


if __name__ == "__main__":
    run_stage(main)
