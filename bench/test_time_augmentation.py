"""Test-time augmentation on the default model: its accuracy gain, and the speed of its export.

The same trained model is scored both ways, so the gain costs no training.
"""

from pathlib import Path

from bench.serving import measure_model_serving


def measure_test_time_augmentation(root: Path) -> dict:
    import numpy as np

    from mnistpipe import paths
    from mnistpipe.dataset_info import read_info
    from mnistpipe.models import load_model, with_test_time_augmentation
    from mnistpipe.prepared import load_split

    info = read_info(root / paths.PREPARED)
    model = load_model(root / paths.MODEL, info.image_shape, info.num_classes)
    images, labels = load_split(root / paths.PREPARED, "test")
    accuracies = {}
    for augmentation in ("none", "flip"):
        scored = with_test_time_augmentation(model, augmentation, info.image_shape)
        logits = scored.predict(images, batch_size=1000, verbose=0)
        accuracies[augmentation] = float(np.mean(np.argmax(logits, axis=1) == labels))
    print(
        f"test-time augmentation: test accuracy {accuracies['none']:.4f} without, "
        f"{accuracies['flip']:.4f} with flips",
        flush=True,
    )
    serving = measure_model_serving(
        with_test_time_augmentation(model, "flip", info.image_shape),
        root / "bench-exports" / "flip" / "saved_model",
        root / paths.RAW,
    )
    return {
        "tta_gain": accuracies["flip"] - accuracies["none"],
        "tta_test_accuracy": accuracies,
        **{f"tta_{key}": value for key, value in serving.items()},
    }
