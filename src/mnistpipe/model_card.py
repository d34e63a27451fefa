"""MODEL_CARD.md: what the exported model is, what it was trained and tested on, where it fails.

Written by the export stage beside the SavedModel from the params and the
metrics files, so every figure in it is one the pipeline measured.
"""

from mnistpipe import paths
from mnistpipe.dataset_info import DatasetInfo
from mnistpipe.datasets import DATASETS, FILE_NAMES
from mnistpipe.inputs import read_json_object
from mnistpipe.live import last_epoch_figures
from mnistpipe.quality import bar_verdict, meets_bar

# What each dataset's images are, for the card's "intended use" and "limits".
_DATASET_DESCRIPTIONS = {
    "fashion_mnist": "Zalando's Fashion-MNIST: 28x28 grayscale photos of single clothing "
    "articles and shoes, centred on a black background",
    "mnist": "MNIST: 28x28 grayscale scans of single handwritten digits, white on black, "
    "centred by their centre of mass",
}
# The data report preprocess writes; its "summary" figures are quoted in the card when the
# file is there (metrics/data.json holds the one `dvc metrics show` lists).
DATA_REPORT = paths.METRICS / "data_report.json"
# Classes listed by name in the card's "Model" section; the rest are in classes.json
# (the per-class table under "Metrics" still has a row for every class).
LISTED_CLASSES = 50
_COUNT_WORDS = {2: "two", 3: "three", 4: "four", 5: "five", 10: "ten"}


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _environment_lock_line(lock_sha256: str | None) -> str:
    # Unlike the three library versions, the lock pins every package by version and hash:
    # the commit whose uv.lock has this SHA-256 rebuilds the very environment (`make setup`).
    if lock_sha256 is None:
        return "Environment lock: none (the project had no `uv.lock`)"
    return f"Environment lock (`uv.lock`) SHA-256: `{lock_sha256}`"


def _kernels_line(onednn: bool | None, portable: dict | None) -> str:
    # Reruns agree byte for byte only on the same kernels (mnistpipe/__init__ says why).
    if onednn is None:
        return "not recorded"
    line = "oneDNN" if onednn else "TensorFlow's own (oneDNN off)"
    if portable:
        line += (
            f", instruction set at most {portable['max_instruction_set']}, "
            f"{portable['threads']} threads: "
            + (
                "the same bytes on every x86-64 machine with AVX2"
                if portable["same_bytes_everywhere"]
                else "the bytes of machines like this one only (MNISTPIPE_PORTABLE=0 or "
                "the environment's own setting)"
            )
        )
    return line


def _yaml_value(value) -> str:
    # As params.yaml spells it: true/false, not Python's True/False.
    text = str(value).lower() if isinstance(value, bool) else str(value)
    return f"`{text}`"


def _count_words(count: int) -> str:
    return _COUNT_WORDS.get(count, str(count))


def _input_line(info: DatasetInfo) -> str:
    """The serving signature's input, in words (serving.served_shape)."""
    height, width, channels = info.image_shape
    if channels == 1:
        return f"uint8 of shape (N, {height}, {width}), raw pixels"
    return f"uint8 of shape (N, {height}, {width}, {channels}), raw RGB pixels"


def _classes_line(class_names: tuple[str, ...]) -> str:
    listed = ", ".join(
        f"{index} {name}" for index, name in enumerate(class_names[:LISTED_CLASSES])
    )
    more = len(class_names) - LISTED_CLASSES
    return listed + (f", and {more} more (all in `classes.json`)." if more > 0 else ".")


def _image_words(info: DatasetInfo) -> str:
    height, width, channels = info.image_shape
    return f"{height}x{width} {'grayscale' if channels == 1 else 'RGB'}"


def read_data_summary() -> dict | None:
    """The data report's summary figures, or None if preprocess wrote no report."""
    if not DATA_REPORT.exists():
        return None
    return read_json_object(DATA_REPORT, "preprocess", required=("summary",))["summary"]


def _summary_rows(summary: dict) -> list[list]:
    # Whatever figures the report holds, nested ones by their dotted names.
    rows = []
    for key, value in summary.items():
        if isinstance(value, dict):
            rows += [[f"{key}.{name}", figure] for name, figure in _summary_rows(value)]
        elif not isinstance(value, list):
            rows.append([key, value])
    return rows


def _data_report_section(summary: dict | None) -> list[str]:
    if summary is None:
        return []
    return [
        "The data report of preprocess (its summary; the whole report, per class and "
        "split, is `metrics/data_report.json`):",
        _table(["figure", "value"], _summary_rows(summary)),
    ]


def _data_description(dataset: str, info: DatasetInfo, params: dict) -> list[str]:
    """The card's "Data" paragraphs: a built-in dataset's checksums, or the folder's source."""
    spec = DATASETS.get(dataset)
    if spec is not None:
        checksum_rows = [
            [f"`{FILE_NAMES[role]}`", f"`{spec.sha256[role]}`"] for role in FILE_NAMES
        ]
        return [
            f"{_DATASET_DESCRIPTIONS.get(dataset, dataset)}. Each file was verified by the "
            "SHA-256 of its decompressed content before use:",
            _table(["file", "SHA-256"], checksum_rows),
        ]
    folder = params.get("folder", {})
    source = f"`{folder['path']}`" if "path" in folder else "a folder"
    checksum = f" (archive SHA-256 `{folder['sha256']}`)" if folder.get("sha256") else ""
    return [
        f"Labelled images from {source}{checksum}, one folder a class, "
        f"{len(info.class_names)} classes; every image converted to "
        f"{_image_words(info)} with its proportions kept and black padding "
        "(`mnistpipe.pictures.load_picture`, which `mnistpipe predict` uses too)."
    ]


def _most_confused(per_class: dict, class_names: tuple[str, ...]) -> str:
    """The weakest class by F1, in words."""
    weakest = min(class_names, key=lambda name: (per_class[name]["f1"], name))
    figures = per_class[weakest]
    return (
        f"{weakest} is the hardest class: F1 {figures['f1']:.3f} "
        f"(precision {figures['precision']:.3f}, recall {figures['recall']:.3f})"
    )


def read_card_metrics(class_names: tuple[str, ...]) -> tuple[dict, dict, dict, dict]:
    """What the model card reports from train and evaluate, each file checked for its keys.

    Read before anything is exported: a file edited by hand or cut short is one
    error naming it, not a KeyError half way through the card.
    """
    return (
        {
            **read_json_object(paths.TRAIN_METRICS, "train", numbers=("parameters",)),
            **last_epoch_figures(paths.LIVE_METRICS),
        },
        read_json_object(
            paths.EVALUATE_METRICS,
            "evaluate",
            numbers=("accuracy", "loss", "min_accuracy", "examples", "macro_avg.f1"),
        ),
        read_json_object(
            paths.CLASS_METRICS,
            "evaluate",
            numbers=tuple(
                f"per_class.{name}.{figure}"
                for name in class_names
                for figure in ("precision", "recall", "f1", "support")
            ),
        ),
        read_json_object(
            paths.LINEAGE,
            "train",
            required=(
                "weights_sha256",
                "data_sha256",
                "environment_lock_sha256",
                *(f"versions.{package}" for package in ("tensorflow", "keras", "dvc")),
            ),
        ),
    )


def model_card(
    dataset: str,
    info: DatasetInfo,
    params: dict,
    train_metrics: dict,
    evaluation: dict,
    class_metrics: dict,
    lineage: dict,
    export_metrics: dict,
    data_summary: dict | None = None,
) -> str:
    """The card's Markdown text.

    ``dataset`` is the params' dataset, ``info`` the prepared data's classes and
    image shape; ``evaluation`` is metrics/evaluate.json, ``class_metrics``
    metrics/classes.json, ``lineage`` metrics/lineage.json and ``data_summary``
    the data report's figures (read_data_summary), if any.
    """
    settings = params["train"]
    class_names = info.class_names
    built_in = dataset in DATASETS
    per_class = class_metrics["per_class"]
    # The bar evaluate judged by, as it recorded it.
    min_accuracy = evaluation["min_accuracy"]
    if meets_bar(evaluation["accuracy"], min_accuracy):
        bar = (
            f"Quality bar: met. The {bar_verdict(evaluation['accuracy'], min_accuracy)}; "
            "the release step may publish this model."
        )
    else:
        bar = (
            f"Quality bar: **not met**. The {bar_verdict(evaluation['accuracy'], min_accuracy)}: "
            "an experiment's result, which the release step and the CI gate refuse to publish."
        )
    description = _DATASET_DESCRIPTIONS.get(
        dataset, f"{_image_words(info)} images of the user's own, {len(class_names)} classes"
    )
    params_rows = [[f"`train.{key}`", _yaml_value(value)] for key, value in settings.items()]
    params_rows += [
        ["`seed`", _yaml_value(params["seed"])],
        ["`preprocess.val_split`", _yaml_value(params["preprocess"]["val_split"])],
        ["`preprocess.limit`", _yaml_value(params["preprocess"]["limit"])],
    ]
    class_rows = [
        [
            index,
            name,
            f"{per_class[name]['precision']:.4f}",
            f"{per_class[name]['recall']:.4f}",
            f"{per_class[name]['f1']:.4f}",
            per_class[name]["support"],
        ]
        for index, name in enumerate(class_names)
    ]
    versions = ", ".join(f"{name} {version}" for name, version in lineage["versions"].items())
    limit_note = (
        f" Trained on the first {params['preprocess']['limit']} training images only "
        "(`preprocess.limit`): a quick run, not the full model."
        if params["preprocess"]["limit"]
        else ""
    )
    sections = [
        f"# Model card: {dataset} classifier (`{settings['model']}`)",
        "Written by the pipeline's export stage (`stages/export.py`); every figure below "
        "is one it measured.",
        "## Model",
        f"- Architecture: the `{settings['model']}` preset of `src/mnistpipe/models.py`, "
        f"{train_metrics['parameters']:,} parameters, trained {settings['epochs']} epochs "
        f"with {settings['optimizer']} (learning rate {settings['learning_rate']}, "
        f"{settings['lr_schedule']} schedule), batch {settings['batch_size']}.\n"
        "- Files: `saved_model/` (TensorFlow SavedModel, signature `serving_default`: "
        f"`images`, {_input_line(info)}; returns the probabilities of "
        f"the {len(class_names)} classes, scaling and softmax inside the graph), `model.keras` "
        "(the trained Keras model; load with `safe_mode=True`), `classes.json` (class names "
        "by index, image shape).\n"
        "- Classes, by output index: " + _classes_line(class_names),
        "## Data",
        *_data_description(dataset, info, params),
        *_data_report_section(data_summary),
        f"Validation: a seeded {params['preprocess']['val_split']:.0%} of the training set. "
        f"Prepared data (`data/prepared/`) SHA-256: `{lineage['data_sha256']}`.{limit_note}",
        "## Training params",
        _table(["param", "value"], params_rows),
        "## Metrics",
        f"On the {evaluation['examples']} test images: accuracy "
        f"**{evaluation['accuracy']:.4f}**, loss {evaluation['loss']:.4f}, macro-averaged "
        f"F1 {evaluation['macro_avg']['f1']:.4f}. After the last epoch: training accuracy "
        f"{train_metrics['accuracy']:.4f}, validation accuracy "
        f"{train_metrics['val_accuracy']:.4f}.",
        bar,
        _table(["index", "class", "precision", "recall", "F1", "test images"], class_rows),
        "## Export parity",
        f"The SavedModel, fed raw uint8 pixels, against the trained Keras model on "
        f"preprocessed ones, over {export_metrics['test_examples']} test images: "
        f"{export_metrics['argmax_disagreements']} disagreements on the predicted class, "
        "largest probability difference "
        f"{export_metrics['max_probability_difference_ppm']:.2g} ppm (parts per million; "
        f"tolerance {export_metrics['parity_tolerance_ppm']:g} ppm); the SavedModel's accuracy "
        f"is {export_metrics['exported_accuracy']:.4f}.",
        "## Lineage",
        f"- Weights SHA-256: `{lineage['weights_sha256']}`\n"
        f"- Prepared data SHA-256: `{lineage['data_sha256']}`\n"
        f"- Libraries: {versions}\n"
        f"- {_environment_lock_line(lineage['environment_lock_sha256'])}\n"
        "- TensorFlow's kernels: "
        + _kernels_line(lineage.get("onednn_kernels"), lineage.get("portable_kernels")),
        "## Intended use",
        f"Classifying images like the dataset's own ({description}) into its "
        f"{_count_words(len(class_names))} classes"
        + (
            ": teaching, benchmarking training pipelines, and as a baseline for such work. "
            "`python -m mnistpipe.predict` turns other pictures into that form (28x28 "
            "grayscale, light on dark) before asking the model."
            if built_in
            else ". `python -m mnistpipe.predict` converts other pictures as preprocess "
            f"converted the training images ({_image_words(info)}, proportions kept, black "
            "padding) before asking the model."
        ),
        "## Limits",
        "\n".join(
            [
                f"- {_most_confused(per_class, class_names)}; see the confusion matrix "
                "in `plots/images/confusion_matrix.png`.",
                f"- Every input gets one of the {_count_words(len(class_names))} classes, "
                "whatever it shows: there is no "
                '"none of these" answer, and a high probability is no proof that the image '
                "belongs to the dataset's world.",
                "- Photos that do not look like the dataset (cluttered backgrounds, several "
                "objects, off-centre or cropped objects, light objects on light ground) are "
                "classified far worse than the test accuracy says.",
                "- The test accuracy holds for the dataset's test set only; it says nothing "
                "about other sources of images, and it is not meant for decisions about "
                "people.",
            ]
        ),
    ]
    return "\n\n".join(sections) + "\n"
