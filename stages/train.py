"""Stage 3: train the classifier, seeded, with model.fit or the quickstart's GradientTape loop."""

import tempfile
import time
from pathlib import Path

from mnistpipe import paths
from mnistpipe.data import load_examples
from mnistpipe.distribute import is_chief, make_strategy, reported_worker_loss
from mnistpipe.errors import run_stage
from mnistpipe.files import atomic_path, write_csv, write_json
from mnistpipe.lineage import lineage, weights_sha256
from mnistpipe.models import save_model
from mnistpipe.params import load_params
from mnistpipe.seeding import seed_everything
from mnistpipe.training import train_from_params


def main() -> str:
    params = load_params(paths.PARAMS)
    settings = params["train"]
    # First: a multi-worker strategy must exist before TensorFlow starts its runtime.
    strategy = make_strategy(settings["distribute"])
    seed_everything(params["seed"], settings["deterministic"])

    train_split = load_examples(paths.PREPARED, "train")
    val_split = load_examples(paths.PREPARED, "val")
    started = time.perf_counter()
    # Saved at every epoch end: a run killed part way resumes where it stopped.
    with reported_worker_loss(strategy):
        model, history = train_from_params(
            settings,
            params["seed"],
            train_split,
            val_split,
            checkpoint_path=paths.CHECKPOINT,
            strategy=strategy,
        )
    seconds = time.perf_counter() - started
    if not is_chief(strategy):
        # TensorFlow's multi-worker guide: every worker saves, since saving may
        # take part in collective operations, and all but the chief throw it away.
        with tempfile.TemporaryDirectory() as scratch:
            model.save(Path(scratch) / "model.keras")
        return f"train: worker done after {settings['epochs']} epochs; the chief writes outputs"

    with atomic_path(paths.MODEL, suffix=".keras") as temporary:
        save_model(model, temporary)
    epochs = range(1, settings["epochs"] + 1)
    write_csv(
        paths.HISTORY_PLOT,
        [
            {
                "epoch": epoch,
                **{key: round(values[epoch - 1], 6) for key, values in history.items()},
            }
            for epoch in epochs
        ],
    )
    final = {key: round(values[-1], 6) for key, values in history.items()}
    write_json(
        paths.TRAIN_METRICS,
        {
            **final,
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
    paths.CHECKPOINT.unlink(missing_ok=True)
    return (
        f"train: {settings['model']} val_accuracy {final['val_accuracy']:.4f}, "
        f"wrote {paths.MODEL} and {paths.TRAIN_METRICS}, {images / seconds:.0f} images/s"
    )


if __name__ == "__main__":
    run_stage(main)
