"""Stage 3: train the classifier, seeded, with model.fit or the quickstart's GradientTape loop."""

import tempfile
import time
from pathlib import Path

from mnistpipe import paths
from mnistpipe.checkpoint import discard, how_to_resume
from mnistpipe.dataset_info import read_info
from mnistpipe.distribute import is_chief, make_strategy, reported_worker_loss
from mnistpipe.errors import run_stage
from mnistpipe.files import write_json
from mnistpipe.lineage import lineage, weights_sha256
from mnistpipe.live import open_live
from mnistpipe.models import save_model
from mnistpipe.params import load_params
from mnistpipe.prepared import load_examples
from mnistpipe.seeding import seed_everything
from mnistpipe.training import train_from_params


def main() -> str:
    params = load_params(paths.PARAMS)
    settings = params["train"]
    # First: a multi-worker strategy must exist before TensorFlow starts its runtime.
    strategy = make_strategy(settings["distribute"])
    seed_everything(params["seed"], settings["deterministic"])

    train_split = load_examples(paths.PREPARED, "train", dataset=params["dataset"])
    val_split = load_examples(paths.PREPARED, "val", dataset=params["dataset"])
    # The model takes the prepared images' shape and gives one logit a class.
    info = read_info(paths.PREPARED)
    started = time.perf_counter()
    # Saved at every epoch end: a run killed part way resumes where it stopped.
    # Each epoch's figures go to dvclive as it ends (the chief's only), for
    # `dvc exp show` and `dvc plots show` while the run is still going.
    with reported_worker_loss(strategy), open_live(paths.LIVE, is_chief(strategy)) as live:
        model, history = train_from_params(
            settings,
            params["seed"],
            train_split,
            val_split,
            checkpoint_path=paths.CHECKPOINT,
            strategy=strategy,
            live=live,
            info=info,
        )
    seconds = time.perf_counter() - started
    if not is_chief(strategy):
        # TensorFlow's multi-worker guide: every worker saves, since saving may
        # take part in collective operations, and all but the chief throw it away.
        with tempfile.TemporaryDirectory() as scratch:
            model.save(Path(scratch) / "model.keras")
        return f"train: worker done after {settings['epochs']} epochs; the chief writes outputs"

    save_model(model, paths.MODEL)
    # The last epoch's figures are dvclive's (dvclive/metrics.json); these are the run's own.
    write_json(
        paths.TRAIN_METRICS,
        {
            "best_val_accuracy": round(max(history["val_accuracy"]), 6),
            "epochs": settings["epochs"],
            "parameters": model.count_params(),
        },
    )
    write_json(paths.LINEAGE, lineage(weights_sha256(model), paths.PREPARED))
    images = train_split.count * settings["epochs"]
    write_json(
        paths.TRAIN_TIMING,
        {
            "train_seconds": round(seconds, 3),
            "images_per_second": round(images / seconds, 1),
        },
    )
    # Every output is written; a rerun (dvc repro -f) should train from scratch.
    discard(paths.CHECKPOINT)
    return (
        f"train: {settings['model']} val_accuracy {history['val_accuracy'][-1]:.4f}, "
        f"wrote {paths.MODEL} and {paths.TRAIN_METRICS}, {images / seconds:.0f} images/s"
    )


if __name__ == "__main__":
    # Interrupted, it says how many epochs its checkpoint holds for the rerun to resume from.
    run_stage(main, how_to_go_on=lambda: how_to_resume(paths.CHECKPOINT))
