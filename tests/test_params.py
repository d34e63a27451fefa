import pytest
import yaml

from mnistpipe import input_pipeline, loops, models, params, recipe
from mnistpipe.errors import PipelineError
from mnistpipe.params import check_train_settings, load_params
from tests.conftest import REPOSITORY, settings_for


def write_params(tmp_path, edit=None, text=None):
    path = tmp_path / "params.yaml"
    if text is None:
        params = yaml.safe_load((REPOSITORY / "params.yaml").read_text())
        if edit:
            edit(params)
        text = yaml.safe_dump(params)
    path.write_text(text)
    return path


def test_the_committed_params_file_is_valid():
    params = load_params(REPOSITORY / "params.yaml")
    assert params["dataset"] == "fashion_mnist"
    assert params["train"]["model"] == "convnet"


def test_an_integer_learning_rate_is_accepted_as_a_number(tmp_path):
    path = write_params(tmp_path, lambda params: params["train"].update(learning_rate=1))
    assert load_params(path)["train"]["learning_rate"] == 1.0


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("train", "epochs", "ten", "train.epochs is 'ten' (str); expected an integer"),
        ("train", "epochs", 0, "train.epochs is 0; expected an integer >= 1"),
        ("train", "batch_size", True, "train.batch_size is True (bool); expected an integer"),
        ("train", "learning_rate", True, "train.learning_rate is True (bool); expected a number"),
        ("train", "learning_rate", -0.1, "train.learning_rate is -0.1; expected a number in (0"),
        ("train", "learning_rate", float("nan"), "train.learning_rate is nan"),
        (
            "preprocess",
            "val_split",
            1.5,
            "preprocess.val_split is 1.5; expected a number in (0, 1)",
        ),
        ("preprocess", "limit", -1, "preprocess.limit is -1; expected an integer >= 0"),
        (
            "train",
            "model",
            "resnet",
            "train.model is 'resnet'; expected one of: convnet, mlp, quickstart_cnn, strided_cnn",
        ),
        ("train", "optimizer", "adagrad", "expected one of: adam, sgd, rmsprop"),
        ("train", "loop", "manual", "train.loop is 'manual'; expected one of: fit, custom"),
        (
            "train",
            "deterministic",
            "yes",
            "train.deterministic is 'yes' (str); expected true or false",
        ),
        (
            "evaluate",
            "min_accuracy",
            1.2,
            "evaluate.min_accuracy is 1.2; expected a number in [0, 1]",
        ),
        (
            "download",
            "mirrors",
            "http://a/",
            "download.mirrors is 'http://a/' (str); expected a list",
        ),
        ("download", "mirrors", ["ftp://host/mnist/"], "download.mirrors has 'ftp://host/mnist/'"),
        ("train", "shift_pixels", -1, "train.shift_pixels is -1; expected an integer >= 0"),
        ("train", "shift_pixels", 14, "train.shift_pixels is 14; expected an integer <= 13"),
        (
            "train",
            "label_smoothing",
            1.0,
            "train.label_smoothing is 1.0; expected a number in [0, 1)",
        ),
        (
            "evaluate",
            "test_time_augmentation",
            "crop",
            "evaluate.test_time_augmentation is 'crop'; expected one of: none, flip",
        ),
    ],
)
def test_a_bad_value_is_refused_naming_its_key(tmp_path, section, key, value, message):
    path = write_params(tmp_path, lambda params: params[section].update({key: value}))
    with pytest.raises(PipelineError) as error:
        load_params(path)
    assert message in str(error.value)


def test_an_unknown_dataset_lists_the_allowed_ones(tmp_path):
    path = write_params(tmp_path, lambda params: params.update(dataset="cifar10"))
    with pytest.raises(
        PipelineError, match="dataset is 'cifar10'; expected one of: fashion_mnist, mnist"
    ):
        load_params(path)


def test_a_typo_in_a_key_is_refused_with_a_suggestion(tmp_path):
    def typo(params):
        params["train"]["epoch"] = params["train"].pop("epochs")

    with pytest.raises(
        PipelineError, match=r"unknown key train\.epoch .*did you mean train\.epochs\?"
    ):
        load_params(write_params(tmp_path, typo))


def test_a_missing_key_is_named(tmp_path):
    path = write_params(tmp_path, lambda params: params["evaluate"].pop("min_accuracy"))
    with pytest.raises(PipelineError, match=r"missing key evaluate\.min_accuracy"):
        load_params(path)


def test_python_tags_are_refused_not_run(tmp_path):
    path = write_params(tmp_path, text="seed: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(PipelineError, match="is not valid plain YAML"):
        load_params(path)


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(PipelineError, match="nowhere.yaml not found"):
        load_params(tmp_path / "nowhere.yaml")


def test_xla_with_op_determinism_is_refused_rather_than_quietly_dropped():
    with pytest.raises(PipelineError, match="train.jit_compile is true and train.deterministic"):
        check_train_settings(settings_for("quickstart_cnn", "fit", jit_compile=True))


def test_a_warm_up_as_long_as_the_run_is_refused():
    with pytest.raises(PipelineError, match="train.warmup_epochs is 3 and train.epochs is 3"):
        check_train_settings(settings_for("mlp", "fit", epochs=3, warmup_epochs=3))


def test_the_names_the_params_allow_are_exactly_those_the_code_builds():
    # params.py is the one place a name is checked; each module looks it up.
    assert set(params.MODELS) == set(models.PRESETS)
    assert set(params.OPTIMIZERS) == set(recipe.OPTIMIZERS)
    assert set(params.SCHEDULES) == set(recipe.SCHEDULES)
    assert set(params.LOOPS) == set(loops.LOOPS)
    assert set(params.AUGMENTATIONS) == set(input_pipeline.AUGMENTATIONS)
    assert set(params.TEST_TIME_AUGMENTATIONS) == set(models.TEST_TIME_AUGMENTATIONS)


def test_a_number_dvc_exp_run_writes_in_exponent_form_is_read_as_a_number(tmp_path):
    # `dvc exp run -S train.learning_rate=1e-7` writes `learning_rate: 1e-07`.
    path = write_params(tmp_path)
    path.write_text(path.read_text().replace("learning_rate: 0.", "learning_rate: 1e-07 #0."))
    assert load_params(path)["train"]["learning_rate"] == 1e-07
