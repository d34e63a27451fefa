"""Start-up: TensorFlow is loaded when something needs it, and without its start-up notices."""

import os
import subprocess
import sys

import pytest

from tests.conftest import REPOSITORY


def python(code: str, **variables: str) -> subprocess.CompletedProcess:
    # As a user's shell starts it: TensorFlow's log level and kernels are mnistpipe's to choose.
    environment = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")
    }
    environment.update(variables)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=120
    )


def test_the_commands_that_need_no_model_start_without_tensorflow():
    # The gate, push and pull, the release, the command line and the download stage's code.
    result = python(
        "import sys\n"
        "import mnistpipe.cli, mnistpipe.gate, mnistpipe.remote, mnistpipe.release\n"
        "import mnistpipe.download, mnistpipe.params, mnistpipe.report\n"
        "print(sorted(name for name in ('tensorflow', 'keras') if name in sys.modules))\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"


def test_download_and_preprocess_to_npy_run_without_loading_tensorflow(project):
    # Loading TensorFlow was 5 of preprocess's 7 seconds; the npy format needs none of it.
    stages = str(REPOSITORY / "stages")
    result = python(
        "import runpy, sys\n"
        "for stage in ('download', 'preprocess'):\n"
        f"    runpy.run_path(f'{stages}/{{stage}}.py', run_name='test')['main']()\n"
        "print(sorted(name for name in ('tensorflow', 'keras') if name in sys.modules))\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "[]\n"
    assert (project / "data" / "prepared" / "train_images.npy").is_file()


@pytest.mark.parametrize("first", ["import tensorflow", "import keras", "import mnistpipe.models"])
def test_tensorflow_loads_without_its_start_up_notices_however_it_is_first_imported(first):
    # Without mnistpipe's finder TensorFlow 2.21 writes "WARNING: All log messages before
    # absl::InitializeLog() ..." and an I0000 line on stderr, above a stage's own words.
    result = python(
        f"import mnistpipe\n{first}\n"
        "import tensorflow as tf\n"
        "assert int(tf.constant(2) * 3) == 6\n"
        "assert tf.__loader__ is tf.__spec__.loader and 'Quiet' not in repr(tf.__loader__)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize(
    ("variables", "expected"),
    [({}, "1 True"), ({"TF_ENABLE_ONEDNN_OPTS": "0"}, "0 False")],
)
def test_onednn_kernels_are_on_unless_the_environment_turns_them_off(variables, expected):
    # mnistpipe sets the variable, or keeps the user's; TensorFlow then reports the kernels
    # it runs (on CPUs without AVX-512 VNNI, BF16, AVX-VNNI or AMX they are off by default).
    result = python(
        "import os, mnistpipe\n"
        "value = os.environ['TF_ENABLE_ONEDNN_OPTS']\n"
        "import mnistpipe.lineage\n"
        "print(value, mnistpipe.lineage.onednn_kernels())\n",
        **variables,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{expected}\n"
