"""Fixtures shared by the tests: small IDX datasets written on the fly, a loopback HTTP server."""

import dataclasses
import gzip
import hashlib
import http.server
import runpy
import shutil
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import yaml

from mnistpipe.datasets import DATASETS, FILE_NAMES
from mnistpipe.idx import encode_idx

REPOSITORY = Path(__file__).resolve().parents[1]
SHARED_MNIST = REPOSITORY.parent / "shared" / "datasets" / "mnist"
SYSTEM_FASHION_MNIST = Path(DATASETS["fashion_mnist"].system_directory)
# The built-in datasets' model shape, for models.build_model and load_model.
BUILT_IN = {"input_shape": (28, 28, 1), "classes": 10}


def pytest_collection_modifyitems(config, items):
    """The files that run the real pipeline (marked slow) first, the others after them.

    `make test` hands whole files to its three processes (pytest-xdist, --dist
    loadfile) in the order collected (--no-loadscope-reorder; by default xdist
    puts the files with the most tests first, whatever their time). The longest
    first, the short ones then fill in around them, and the processes end
    together instead of one running a long file alone at the end.
    """
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


def synthetic_split(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Learnable 28x28 uint8 images: class k is a bright 6x6 square at a place of its own."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count, dtype=np.uint8) % 10
    rng.shuffle(labels)
    images = rng.integers(0, 60, size=(count, 28, 28), dtype=np.uint8)
    for index, label in enumerate(labels):
        row, column = 2 + 8 * (label // 4), 2 + 8 * (label % 4)
        images[index, row : row + 6, column : column + 6] = 255
    return images, labels


def small_splits():
    """Training and validation arrays for quick training tests: 500 and 100 synthetic images."""
    from mnistpipe.data import scale_images

    images, labels = synthetic_split(600, seed=3)
    images = scale_images(images)
    labels = labels.astype(np.int64)
    return (images[:500], labels[:500]), (images[500:], labels[500:])


def settings_for(model_name, loop, **changes):
    """A whole ``train`` params section for quick tests, with ``changes``."""
    return {
        "model": model_name,
        "optimizer": "adam",
        "learning_rate": 0.003,
        "lr_schedule": "cosine",
        "batch_size": 64,
        "epochs": 3,
        "shuffle_buffer": 0,
        "augment": "flip",
        "shift_pixels": 0,
        "label_smoothing": 0.0,
        "warmup_epochs": 0.0,
        "loop": loop,
        # Dropout makes resume tests fail unless its random state is restored too.
        "dropout": 0.2,
        "deterministic": True,
        "jit_compile": False,
        "distribute": "none",
        "mixed_precision": False,
        **changes,
    }


def synthetic_idx_files(train_count: int = 600, test_count: int = 100) -> dict[str, bytes]:
    """The four decompressed IDX files of a small synthetic dataset, by file name."""
    train_images, train_labels = synthetic_split(train_count, seed=1)
    test_images, test_labels = synthetic_split(test_count, seed=2)
    arrays = {
        "train_images": train_images,
        "train_labels": train_labels,
        "test_images": test_images,
        "test_labels": test_labels,
    }
    return {FILE_NAMES[role]: encode_idx(array) for role, array in arrays.items()}


def write_mirror(
    directory: Path,
    files: dict[str, bytes],
    compress_level: int | None = 9,
) -> Path:
    """A mirror directory holding ``files`` gzip-compressed at ``compress_level`` (None: plain)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        if compress_level is None:
            (directory / name).write_bytes(content)
        else:
            (directory / f"{name}.gz").write_bytes(
                gzip.compress(content, compresslevel=compress_level, mtime=0)
            )
    return directory


def set_params(root: Path, section: str, **values) -> None:
    """Change keys of one section of ``root``/params.yaml."""
    params_path = root / "params.yaml"
    params = yaml.safe_load(params_path.read_text())
    params[section].update(values)
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture
def synthetic_files() -> dict[str, bytes]:
    return synthetic_idx_files()


@pytest.fixture
def synthetic_dataset(monkeypatch, synthetic_files):
    """Make ``fashion_mnist`` mean the synthetic dataset: its checksums, no built-in sources."""
    spec = dataclasses.replace(
        DATASETS["fashion_mnist"],
        sha256={
            role: hashlib.sha256(synthetic_files[name]).hexdigest()
            for role, name in FILE_NAMES.items()
        },
        system_directory=None,
        public_mirrors=(),
    )
    monkeypatch.setitem(DATASETS, "fashion_mnist", spec)
    return spec


class _Handler(http.server.BaseHTTPRequestHandler):
    routes: dict = {}

    def do_GET(self):  # noqa: N802 (the name http.server calls)
        self.server.requests.append(self.path)
        route = self.server.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        route(self)

    def log_message(self, *args):
        pass


class LoopbackServer(http.server.ThreadingHTTPServer):
    """An HTTP server on 127.0.0.1 whose answers the test sets per path."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.routes: dict = {}
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def serve_bytes(
        self,
        path: str,
        body: bytes,
        status: int = 200,
        content_type: str = "application/octet-stream",
    ) -> None:
        def answer(handler):
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)

        self.routes[path] = answer

    def serve_status(self, path: str, status: int) -> None:
        self.routes[path] = lambda handler: handler.send_error(status)

    def serve_dropped(self, path: str, body: bytes, after_half=None) -> None:
        """Announce all of ``body``, send half, then close the connection.

        ``after_half``, if given, is called once half is sent, before the close.
        """

        def answer(handler):
            handler.send_response(200)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body[: len(body) // 2])
            handler.wfile.flush()
            if after_half is not None:
                after_half()
            handler.close_connection = True

        self.routes[path] = answer


@pytest.fixture
def http_server():
    server = LoopbackServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


# What `dvc repro` needs from this repository; data, models and caches are rebuilt.
PROJECT_FILES = (
    "dvc.yaml",
    "params.yaml",
    "uv.lock",
    "stages",
    "src",
    ".dvc/config",
    "plots/page_template.html",
    ".dvcignore",
    "Makefile",
    ".gitignore",
    # The image folder's place (dataset: folder): preprocess depends on it in every run.
    "data/images/README.md",
)


def copy_project(root: Path) -> Path:
    """The project's files (PROJECT_FILES) copied into ``root``, for a run of dvc there."""
    for name in PROJECT_FILES:
        source = REPOSITORY / name
        if source.is_dir():
            shutil.copytree(
                source, root / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
            )
        else:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, root / name)
    return root


def use_this_virtualenv(root: Path) -> None:
    """Let `make` in the git repository ``root`` find `make setup` done, as in a set-up clone.

    ``root``/.venv becomes a link to this interpreter's virtualenv, and the files its
    install depends on are copied with their times, so that targets that depend on
    setup run at once. Skipped where that virtualenv was not made by `make setup`, or
    where the files are newer than its install: make would then install into it.
    """
    virtualenv = Path(sys.prefix)
    installed = virtualenv / ".installed"
    sources = [REPOSITORY / "pyproject.toml", *sorted((REPOSITORY / "requirements").glob("*.txt"))]
    if not installed.is_file() or any(
        source.stat().st_mtime > installed.stat().st_mtime for source in sources
    ):
        pytest.skip(f"{virtualenv} is not a virtualenv that `make setup` made and that is current")
    (root / ".venv").symlink_to(virtualenv, target_is_directory=True)
    (root / "requirements").mkdir(exist_ok=True)
    for source in sources:
        shutil.copy2(source, root / source.relative_to(REPOSITORY))
    # .gitignore's /.venv/ matches a folder, not a link.
    with open(root / ".git" / "info" / "exclude", "a") as exclude:
        exclude.write("/.venv\n")


def run_stage_main(name):
    return runpy.run_path(str(REPOSITORY / "stages" / f"{name}.py"), run_name="test")["main"]()


@pytest.fixture
def project(tmp_path, monkeypatch, synthetic_dataset, synthetic_files):
    """A project directory with params for a quick run and a local mirror of the synthetic data."""
    mirror = write_mirror(tmp_path / "mirror", synthetic_files)
    params = yaml.safe_load((REPOSITORY / "params.yaml").read_text())
    params["download"]["mirrors"] = [str(mirror)]
    params["preprocess"]["val_split"] = 0.2
    params["train"].update(model="quickstart_cnn", epochs=2, batch_size=32, learning_rate=0.003)
    params["evaluate"]["min_accuracy"] = 0.8
    root = tmp_path / "project"
    root.mkdir()
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    monkeypatch.chdir(root)
    return root
