"""Stage 2: validate the IDX files, scale to float32 [0, 1], add the channel axis, split."""

from mnistpipe import paths
from mnistpipe.data import prepare
from mnistpipe.errors import run_stage
from mnistpipe.params import load_params


def main() -> str:
    params = load_params(paths.PARAMS)
    sizes = prepare(
        paths.RAW,
        paths.PREPARED,
        val_split=params["preprocess"]["val_split"],
        limit=params["preprocess"]["limit"],
        seed=params["seed"],
        storage_format=params["preprocess"]["format"],
        shard_size=params["preprocess"]["shard_size"],
        dataset=params["dataset"],
    )
    counts = ", ".join(f"{split} {count}" for split, count in sizes.items())
    return (
        f"preprocess: {counts} examples in {paths.PREPARED}/ as {params['preprocess']['format']}"
    )


if __name__ == "__main__":
    run_stage(main)
