"""Every path the pipeline reads or writes, relative to the project root.

DVC runs each stage from the directory holding dvc.yaml, so these are the
same paths dvc.yaml names as deps and outs.
"""

from pathlib import Path

PARAMS = Path("params.yaml")
# Every package of the environment by version and hash (`make lock`); the lineage records its
# SHA-256.
ENVIRONMENT_LOCK = Path("uv.lock")
RAW = Path("data/raw")
PREPARED = Path("data/prepared")
MODEL = Path("models/model.keras")
EXPORT = Path("models/export")
EXPORTED_SAVED_MODEL = EXPORT / "saved_model"
EXPORTED_KERAS = EXPORT / "model.keras"
EXPORTED_CLASSES = EXPORT / "classes.json"
MODEL_CARD = EXPORT / "MODEL_CARD.md"
METRICS = Path("metrics")
TRAIN_METRICS = METRICS / "train.json"
EVALUATE_METRICS = METRICS / "evaluate.json"
EXPORT_METRICS = METRICS / "export.json"
# Stage outputs beside the metrics but not metrics (not in dvc.yaml's `metrics:`), so that
# `dvc metrics show` stays a short table: per-class figures, and what the model came from.
CLASS_METRICS = METRICS / "classes.json"
LINEAGE = METRICS / "lineage.json"
# The data report of preprocess: a few figures (a metric), and the whole report beside them.
DATA_METRICS = METRICS / "data.json"
DATA_REPORT = METRICS / "data_report.json"
# Where the download stage unpacks an archive of images (folder.path a URL).
RAW_IMAGES = RAW / "images"
TRAIN_TIMING = Path("logs/train_timing.json")
# dvclive's log of the train stage: its metrics.json holds the last epoch's figures, and
# plots/metrics/{train,eval}/*.tsv one row an epoch, written as each epoch ends.
LIVE = Path("dvclive")
LIVE_METRICS = LIVE / "metrics.json"
PREDICTIONS_PLOT = Path("plots/predictions.csv")
CONFUSION_MATRIX_IMAGE = Path("plots/images/confusion_matrix.png")
MISCLASSIFIED_IMAGE = Path("plots/images/misclassified.png")
# Not a DVC output: it must outlive a killed run, which DVC would clean up.
CHECKPOINT = Path("checkpoints/train.npz")
