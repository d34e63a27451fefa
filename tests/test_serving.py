"""The exported SavedModel with test-time augmentation inside its graph."""

import keras
import numpy as np

from mnistpipe.data import scale_images
from mnistpipe.models import build_model, with_test_time_augmentation
from mnistpipe.serving import export_saved_model, load_serving_function, parity
from tests.conftest import BUILT_IN, synthetic_split


def test_the_export_averages_an_image_and_its_mirror_inside_the_graph_and_passes_parity(
    tmp_path,
):
    keras.utils.set_random_seed(2)
    averaged = with_test_time_augmentation(
        build_model("convnet", 0.1, **BUILT_IN), "flip", (28, 28, 1)
    )
    raw_images, _ = synthetic_split(50, seed=4)
    export_saved_model(averaged, tmp_path / "saved_model")
    figures = parity(averaged, tmp_path / "saved_model", raw_images, scale_images(raw_images))
    assert figures["argmax_disagreements"] == 0
    # The client sends raw pixels only; the mirror's scores equal the image's.
    serve = load_serving_function(tmp_path / "saved_model")
    np.testing.assert_allclose(serve(raw_images[:, :, ::-1]), serve(raw_images), atol=1e-6)
