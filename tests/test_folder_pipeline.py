"""The real `dvc repro` of download and preprocess on a folder of images, in temporary repos."""

import hashlib
import http.server
import json
import shutil
import tarfile
import threading
import unicodedata
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from tests.conftest import copy_project
from tests.test_pipeline import dvc, git_commit, run

pytestmark = pytest.mark.slow


def write_images(root: Path, order: list[int], form: str = "NFC") -> None:
    """Two classes of 8 distinct images each, written in ``order`` (listing order varies)."""
    rng = np.random.default_rng(0)
    pictures = {index: rng.integers(0, 256, (20, 16, 3), dtype=np.uint8) for index in range(16)}
    for index in order:
        name = unicodedata.normalize(form, "chat noir" if index < 8 else "café")
        (root / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pictures[index]).save(root / name / f"{index:02d}.png")


def folder_project(root: Path, **folder) -> Path:
    copy_project(root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["dataset"] = "folder"
    params["folder"].update(image_size=[12, 12], channels=3, test_split=0.25, **folder)
    params["preprocess"]["val_split"] = 0.2
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run(root, "git", "init", "-q")
    return root


def preprocess_lock(root: Path) -> dict:
    return yaml.safe_load((root / "dvc.lock").read_text())["stages"]["preprocess"]


def test_a_changed_or_new_image_reruns_preprocess_and_two_clones_lock_the_same(tmp_path):
    first = folder_project(tmp_path / "first")
    write_images(first / "data" / "images", list(range(16)))
    output = dvc(first, "repro", "preprocess")
    assert "Running stage 'download'" in output and "Running stage 'preprocess'" in output
    report = json.loads((first / "metrics" / "data_report.json").read_text())
    assert report["counts"]["café"] == {"train": 5, "val": 1, "test": 2}
    assert report["summary"]["images"] == 16
    assert json.loads((first / "metrics" / "data.json").read_text()) == {"duplicates": 0}
    info = json.loads((first / "data" / "prepared" / "dataset.json").read_text())
    assert info == {"class_names": ["café", "chat noir"], "image_shape": [12, 12, 3]}
    git_commit(first, "first run")

    # Another clone: files written in another order, names decomposed as macOS writes them.
    second = folder_project(tmp_path / "second")
    write_images(second / "data" / "images", list(reversed(range(16))), form="NFD")
    dvc(second, "repro", "preprocess")
    first_outs = {out["path"]: out["md5"] for out in preprocess_lock(first)["outs"]}
    second_outs = {out["path"]: out["md5"] for out in preprocess_lock(second)["outs"]}
    assert first_outs == second_outs

    # One changed image: preprocess reruns, download does not.
    image = first / "data" / "images" / "café" / "09.png"
    Image.fromarray(np.zeros((20, 16, 3), dtype=np.uint8)).save(image)
    output = dvc(first, "repro", "preprocess")
    assert "'download' didn't change" in output and "Running stage 'preprocess'" in output
    # A new image too.
    shutil.copy(image, image.with_name("new.png"))
    assert "Running stage 'preprocess'" in dvc(first, "repro", "preprocess")


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *arguments):
        pass


def test_an_archive_url_is_downloaded_verified_and_unpacked_then_prepared(tmp_path):
    served = tmp_path / "served"
    write_images(served / "pets", list(range(16)))
    archive = tmp_path / "pets.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(served / "pets", arcname="pets")
    checksum = hashlib.sha256(archive.read_bytes()).hexdigest()
    handler = lambda *arguments: QuietHandler(*arguments, directory=str(tmp_path))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/pets.tar.gz"
        root = folder_project(tmp_path / "project", path=url, sha256=checksum)
        output = dvc(root, "repro", "preprocess")
        assert "16 files of the verified archive" in output
        assert (root / "data" / "raw" / "images" / "pets" / "café").is_dir()
        sizes = json.loads((root / "metrics" / "data_report.json").read_text())["summary"]
        assert sizes["images"] == 16 and sizes["classes"] == 2
        # A wrong SHA-256: one line, and nothing unpacked.
        params = yaml.safe_load((root / "params.yaml").read_text())
        params["folder"]["sha256"] = "0" * 64
        (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        failed = run(root, "python", "stages/download.py", check=False)
        assert failed.returncode != 0 and "content SHA-256 is" in failed.stderr
        assert "Traceback" not in failed.stderr
    finally:
        server.shutdown()
