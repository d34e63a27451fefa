"""The same bytes on every x86-64 machine: the kernels' instruction set and thread count.

mnistpipe/__init__ caps oneDNN at AVX2 and picks 1, 2 or 4 intra-op threads before
TensorFlow loads. These tests train the default convnet briefly on real
Fashion-MNIST in processes of their own (both settings are read once, when
TensorFlow starts) and compare the weights' SHA-256.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPOSITORY, SYSTEM_FASHION_MNIST

# Trains the default convnet for one epoch on 1,024 real images; prints the lineage's
# record of the kernels and the weights' SHA-256 as one JSON line.
PROBE = """
import json, sys
import mnistpipe
from mnistpipe.data import scale_images
from mnistpipe.idx import read_pair
from mnistpipe.lineage import portable_kernels, weights_sha256
from mnistpipe.params import load_params
from mnistpipe.seeding import seed_everything
from mnistpipe.training import train_from_params

raw = sys.argv[1] + "/train-"
images, labels = read_pair(raw + "images-idx3-ubyte.gz", raw + "labels-idx1-ubyte.gz")
images, labels = scale_images(images[:1024]), labels[:1024].astype("int64")
params = load_params(sys.argv[2])
settings = {**params["train"], "epochs": 1}
seed_everything(params["seed"], True)
validation = (images[:128], labels[:128])
model, _ = train_from_params(settings, params["seed"], (images, labels), validation)
print(json.dumps({"kernels": portable_kernels(), "weights": weights_sha256(model)}))
"""

# The environment variables these tests set; anything the caller's shell set is dropped.
SETTINGS = ("ONEDNN_MAX_CPU_ISA", "TF_NUM_INTRAOP_THREADS", "MNISTPIPE_PORTABLE")


def _cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _environment(**settings: str) -> dict:
    environment = {key: value for key, value in os.environ.items() if key not in SETTINGS}
    return {**environment, **settings}


def _train(**settings: str) -> dict:
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            PROBE,
            str(SYSTEM_FASHION_MNIST),
            str(REPOSITORY / "params.yaml"),
        ],
        capture_output=True,
        text=True,
        env=_environment(**settings),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def _settings_seen(**settings: str) -> dict:
    program = (
        "import json, os, mnistpipe; print(json.dumps({key: os.environ.get(key) for key in "
        f"{SETTINGS!r}}}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", program],
        capture_output=True,
        text=True,
        env=_environment(**settings),
        timeout=60,
        check=True,
    )
    return json.loads(result.stdout)


def test_the_package_caps_the_instruction_set_and_fixes_two_threads():
    seen = _settings_seen()
    assert (seen["ONEDNN_MAX_CPU_ISA"], seen["TF_NUM_INTRAOP_THREADS"]) == ("AVX2", "2")


def test_the_environment_wins_and_mnistpipe_portable_0_leaves_both_to_the_machine():
    seen = _settings_seen(ONEDNN_MAX_CPU_ISA="AVX512_CORE", TF_NUM_INTRAOP_THREADS="3")
    assert (seen["ONEDNN_MAX_CPU_ISA"], seen["TF_NUM_INTRAOP_THREADS"]) == ("AVX512_CORE", "3")
    seen = _settings_seen(MNISTPIPE_PORTABLE="0")
    assert (seen["ONEDNN_MAX_CPU_ISA"], seen["TF_NUM_INTRAOP_THREADS"]) == (None, None)


needs_fashion_mnist = pytest.mark.skipif(
    not SYSTEM_FASHION_MNIST.is_dir(),
    reason=f"needs Debian's dataset-fashion-mnist in {SYSTEM_FASHION_MNIST} (make setup)",
)


@needs_fashion_mnist
def test_an_avx512_machine_trains_the_weights_of_an_avx2_machine_and_threads_matter():
    """The default on this machine, against an AVX2 CPU, and against other thread counts.

    An AVX2-only machine is what ONEDNN_MAX_CPU_ISA=AVX2 makes of this one: oneDNN then
    dispatches exactly the kernels it would run there. One thread instead of two trains
    other weights (the fused batch norm's sums): the fixed count is what makes machines
    with other core counts agree. Where this machine has AVX-512, its own kernels give
    other weights too: the cap is what makes the two kinds agree.
    """
    default = _train()
    assert default["kernels"]["same_bytes_everywhere"] is True
    avx2_machine = _train(ONEDNN_MAX_CPU_ISA="AVX2")
    assert avx2_machine["weights"] == default["weights"]
    one_thread = _train(TF_NUM_INTRAOP_THREADS="1")
    assert one_thread["kernels"]["same_bytes_everywhere"] is False
    assert one_thread["weights"] != default["weights"]
    if "avx512f" not in _cpu_flags():
        pytest.skip(
            "this CPU has no AVX-512 (/proc/cpuinfo), so its own kernels are the AVX2 ones: "
            "the uncapped run cannot differ here"
        )
    own_kernels = _train(MNISTPIPE_PORTABLE="0", TF_NUM_INTRAOP_THREADS="2")
    assert own_kernels["weights"] != default["weights"]
