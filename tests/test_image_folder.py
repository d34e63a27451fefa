"""An image folder (dataset: folder): scan, bad data, splits, duplicates, formats, report."""

import gzip
import hashlib
import io
import os
import tarfile
import unicodedata
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnistpipe import archives
from mnistpipe.data import prepare, raw_splits
from mnistpipe.data_report import builtin_report, summary
from mnistpipe.dataset_info import read_info
from mnistpipe.datasets import DATASETS
from mnistpipe.download import fetch_archive
from mnistpipe.errors import PipelineError
from mnistpipe.folder_data import prepare_folder
from mnistpipe.idx import read_pair
from mnistpipe.params import check_params, load_params
from mnistpipe.prepared import load_split
from tests.conftest import REPOSITORY, SYSTEM_FASHION_MNIST

MATPLOTLIB_DATA = Path(__import__("matplotlib").get_data_path())


def png(pixels: np.ndarray, image_format: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=image_format)
    return buffer.getvalue()


def make_folder(root: Path, classes: dict[str, int], seed: int = 0, side: int = 12) -> Path:
    """``root``/CLASS/N.png: distinct random grayscale images, ``classes`` → how many."""
    rng = np.random.default_rng(seed)
    for name, count in classes.items():
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(count):
            pixels = rng.integers(0, 256, (side, side), dtype=np.uint8)
            (root / name / f"{index:03d}.png").write_bytes(png(pixels))
    return root


def prepared(root: Path, output: Path, **changes):
    settings = {
        "image_size": (12, 12),
        "channels": 1,
        "test_split": 0.2,
        "val_split": 0.2,
        "seed": 7,
        **changes,
    }
    return prepare_folder(root, output, **settings)


def outputs(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


# ---- params


def folder_params(**folder) -> dict:
    import yaml

    values = yaml.safe_load((REPOSITORY / "params.yaml").read_text())
    values["dataset"] = "folder"
    values["folder"].update(folder)
    return values


def test_the_committed_params_have_the_folder_section_and_fashion_mnist_stays_the_default():
    params = load_params(REPOSITORY / "params.yaml")
    assert params["dataset"] == "fashion_mnist"
    assert params["folder"] == {
        "path": "data/images",
        "sha256": "",
        "image_size": [28, 28],
        "channels": 1,
        "test_split": 0.15,
        "on_unreadable": "stop",
    }


@pytest.mark.parametrize(
    ("folder", "fragment"),
    [
        ({"path": "https://example.org/images.zip"}, "folder.sha256 is empty"),
        ({"sha256": "a" * 64}, "folder.sha256 is set but folder.path"),
        ({"sha256": "xyz"}, "folder.sha256 is 'xyz'; expected 64 hexadecimal"),
        ({"path": "ftp://example.org/images.zip"}, "folder.path is 'ftp://"),
        # DVC reads a file:// dependency as a relative path: the path is the way.
        (
            {"path": "file:///srv/my%20pets.zip", "sha256": "a" * 64},
            "DVC cannot track a file:// URL as a dependency; expected the archive's path: "
            "'/srv/my pets.zip'",
        ),
        ({"path": "https://example.org/images.rar", "sha256": "a" * 64}, ".zip or .tar.gz"),
        ({"image_size": [28]}, "folder.image_size is [28]"),
        ({"image_size": [0, 28]}, "folder.image_size[0] is 0"),
        ({"channels": 2}, "folder.channels is 2; expected 1 (grayscale) or 3 (RGB)"),
        ({"test_split": 1.0}, "folder.test_split is 1.0"),
        ({"on_unreadable": "ignore"}, "folder.on_unreadable is 'ignore'; expected one of: stop"),
    ],
)
def test_each_folder_key_is_checked_with_one_line_naming_it(folder, fragment):
    with pytest.raises(PipelineError) as raised:
        check_params(folder_params(**folder), "params.yaml")
    assert fragment in str(raised.value) and "\n" not in str(raised.value)


def test_an_archive_url_with_its_sha256_is_accepted():
    params = check_params(
        folder_params(path="https://example.org/images.tar.gz", sha256="A" * 64), "params.yaml"
    )
    assert params["dataset"] == "folder" and params["folder"]["sha256"] == "a" * 64


# ---- the folder: layout, order, splits


def test_class_names_are_the_sorted_folder_names_and_dataset_json_holds_them(tmp_path):
    root = make_folder(tmp_path / "images", {"zebra": 6, "Ant lion": 6, "café ü": 6})
    sizes, report = prepared(root, tmp_path / "out")
    info = read_info(tmp_path / "out")
    assert info.class_names == ("Ant lion", "café ü", "zebra")
    assert info.image_shape == (12, 12, 1)
    assert sum(sizes.values()) == 18
    images, labels = load_split(tmp_path / "out", "train")
    assert images.shape[1:] == (12, 12, 1) and images.dtype == np.float32
    assert set(labels) == {0, 1, 2}
    assert report["counts"]["zebra"] == {"train": 4, "val": 1, "test": 1}


def test_the_same_images_give_the_same_bytes_whatever_the_names_unicode_form(tmp_path):
    # macOS writes names decomposed (NFD), Linux as typed (NFC): the same folder.
    for form in ("NFC", "NFD"):
        root = tmp_path / form
        make_folder(root, {unicodedata.normalize(form, "Crème brûlée"): 5, "tarte": 5})
        for path in (root / "tarte").iterdir():
            path.rename(path.with_name(unicodedata.normalize(form, "é") + path.name))
        prepared(root, tmp_path / f"out-{form}")
    assert outputs(tmp_path / "out-NFC") == outputs(tmp_path / "out-NFD")


def test_splits_are_stratified_and_seeded_and_the_seed_matters(tmp_path):
    root = make_folder(tmp_path / "images", {"a": 40, "b": 20})
    _, report = prepared(root, tmp_path / "one")
    prepared(root, tmp_path / "two")
    prepared(root, tmp_path / "three", seed=8)
    assert report["counts"] == {
        "a": {"train": 26, "val": 6, "test": 8},
        "b": {"train": 13, "val": 3, "test": 4},
    }
    assert outputs(tmp_path / "one") == outputs(tmp_path / "two")
    assert outputs(tmp_path / "one") != outputs(tmp_path / "three")


def test_given_train_and_test_folders_are_used_as_given(tmp_path):
    make_folder(tmp_path / "images" / "train", {"a": 10, "b": 10}, seed=1)
    make_folder(tmp_path / "images" / "test", {"a": 3, "b": 2}, seed=2)
    sizes, report = prepared(tmp_path / "images", tmp_path / "out")
    assert sizes == {"train": 16, "val": 4, "test": 5}
    assert report["counts"]["b"]["test"] == 2


def test_exact_duplicates_never_straddle_splits_and_the_report_counts_them(tmp_path):
    root = make_folder(tmp_path / "images", {"a": 30, "b": 30})
    # Every image of class a twice more, under other names and in another format.
    for path in sorted((root / "a").iterdir()):
        pixels = np.asarray(Image.open(path))
        (root / "a" / f"copy-{path.stem}.bmp").write_bytes(png(pixels, "BMP"))
        (root / "a" / f"again-{path.stem}.png").write_bytes(path.read_bytes())
    _, report = prepared(root, tmp_path / "out")
    assert report["duplicates"]["groups"] == 30 and report["duplicates"]["images"] == 60
    assert report["duplicates"]["straddling_splits"] == 0
    assert report["duplicates"]["test_in_train"] == 0
    digests = {}
    for split in ("train", "val", "test"):
        images, _ = load_split(tmp_path / "out", split)
        digests[split] = {hashlib.sha256(image.tobytes()).digest() for image in images}
    assert not digests["test"] & (digests["train"] | digests["val"])
    assert not digests["val"] & digests["train"]


def test_hidden_and_system_entries_are_counted_never_used(tmp_path):
    root = make_folder(tmp_path / "images", {"a": 4, "b": 4})
    (root / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (root / "a" / "Thumbs.db").write_bytes(b"not an image")
    (root / ".ipynb_checkpoints" / "x").mkdir(parents=True)
    (root / "b" / ".hidden").mkdir()
    (root / "b" / ".hidden" / "nope.png").write_bytes(b"broken")
    (root / "README.md").write_text("about the images")
    _, report = prepared(root, tmp_path / "out")
    assert read_info(tmp_path / "out").class_names == ("a", "b")
    assert report["ignored"]["entries"] == 5
    assert sum(report["images"].values()) == 8


@pytest.mark.parametrize(
    ("layout", "fragment"),
    [
        ({"a": 4, "b": 0}, "class folder"),
        ({"a": 4, "b": 1}, "class 'b' in"),
        ({"only": 5}, "holds only the class 'only'; expected at least two class folders"),
        ({}, "holds no class folder"),
    ],
)
def test_empty_single_image_and_single_class_folders_are_one_clear_line(
    tmp_path, layout, fragment
):
    root = make_folder(tmp_path / "images", layout)
    root.mkdir(exist_ok=True)
    with pytest.raises(PipelineError) as raised:
        prepared(root, tmp_path / "out")
    assert fragment in str(raised.value) and "\n" not in str(raised.value)
    assert not (tmp_path / "out").exists()


def test_only_train_without_test_is_refused(tmp_path):
    make_folder(tmp_path / "images" / "train", {"a": 3, "b": 3})
    (tmp_path / "images" / "other").mkdir()
    with pytest.raises(PipelineError, match="holds train/ but no test/"):
        prepared(tmp_path / "images", tmp_path / "out")


def test_a_link_out_of_the_folder_is_refused_and_a_link_loop_is_read_once(tmp_path):
    root = make_folder(tmp_path / "images", {"a": 4, "b": 4})
    (root / "a" / "up").symlink_to(root)
    (root / "b" / "inside.png").symlink_to(root / "a" / "000.png")
    _, report = prepared(root, tmp_path / "out")
    assert sum(report["images"].values()) == 9
    outside = tmp_path / "secret.png"
    outside.write_bytes((root / "a" / "001.png").read_bytes())
    (root / "b" / "leak.png").symlink_to(outside)
    with pytest.raises(PipelineError, match="symbolic link to .*, outside"):
        prepared(root, tmp_path / "out2")


# ---- bad images: stop or skip


def bad_files(root: Path) -> None:
    good = (root / "a" / "000.png").read_bytes()
    (root / "a" / "empty.png").write_bytes(b"")
    (root / "a" / "truncated.png").write_bytes(good[: len(good) // 2])
    (root / "b" / "notes.jpg").write_text("not an image at all")


def test_unreadable_images_stop_preprocess_with_one_line_naming_them(tmp_path):
    root = make_folder(tmp_path / "images", {"a": 5, "b": 5})
    bad_files(root)
    with pytest.raises(PipelineError) as raised:
        prepared(root, tmp_path / "out")
    message = str(raised.value)
    assert message.startswith("3 unreadable image(s) in")
    assert "a/empty.png is empty" in message and "a/truncated.png is a damaged image" in message
    assert "b/notes.jpg is not an image" in message and "on_unreadable: skip" in message
    assert "\n" not in message and not (tmp_path / "out").exists()


def test_skip_leaves_unreadable_images_out_and_records_each_in_the_report(tmp_path):
    root = make_folder(tmp_path / "images", {"a": 5, "b": 5})
    bad_files(root)
    sizes, report = prepared(root, tmp_path / "out", on_unreadable="skip")
    assert sum(sizes.values()) == 10
    assert [entry["path"] for entry in report["skipped"]] == [
        "a/empty.png",
        "a/truncated.png",
        "b/notes.jpg",
    ]
    assert summary(report)["skipped"] == 3


def test_a_png_named_jpg_and_every_mode_is_read_from_its_bytes(tmp_path):
    root = make_folder(tmp_path / "images", {"a": 3, "b": 3}, side=12)
    rng = np.random.default_rng(5)
    rgb = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    (root / "b" / "photo.jpg").write_bytes(png(rgb))  # a PNG named .jpg
    (root / "b" / "palette.gif").write_bytes(png(rgb, "GIF"))
    Image.fromarray(rgb).convert("CMYK").save(root / "b" / "cmyk.jpg", "JPEG")
    rgba = np.dstack([rgb, np.full((20, 30), 128, np.uint8)])
    (root / "b" / "alpha.webp").write_bytes(png(rgba, "WEBP"))
    sixteen = Image.fromarray(rng.integers(0, 65536, (9, 9), dtype=np.uint16))
    sixteen.save(root / "b" / "deep.png")
    _, report = prepared(root, tmp_path / "out", channels=3)
    assert report["skipped"] == [] and sum(report["images"].values()) == 11
    assert report["resized"]["by_class"] == {"a": 0, "b": 5}


# ---- formats: npy and streamed TFRecord hold the same examples


def test_tfrecord_shards_hold_the_npy_arrays(tmp_path):
    root = make_folder(tmp_path / "images", {"a": 9, "b": 9, "c": 9})
    prepared(root, tmp_path / "npy")
    prepared(root, tmp_path / "tfrecord", storage_format="tfrecord", shard_size=4)
    for split in ("train", "val", "test"):
        streamed = load_split(tmp_path / "tfrecord", split)
        in_memory = load_split(tmp_path / "npy", split)
        for made, expected in zip(streamed, in_memory, strict=True):
            np.testing.assert_array_equal(made, expected)


# ---- real images a package ships, and a mixed RGB folder


# Debian's adwaita-icon-theme: real colour icons with transparency, of two kinds.
# Its black symbolic glyphs on transparency all become black on black (transparency is
# laid on black, the padding's colour): exact duplicates the report counts.
ADWAITA = Path("/usr/share/icons/Adwaita/48x48/legacy")


def test_real_icons_that_a_debian_package_ships_are_prepared(tmp_path):
    if not ADWAITA.is_dir():
        pytest.skip("Debian's adwaita-icon-theme is not installed")
    root = tmp_path / "icons"
    for kind in ("battery", "face", "preferences"):
        (root / kind).mkdir(parents=True)
        for path in sorted(ADWAITA.glob(f"{kind}-*.png")):
            (root / kind / path.name).write_bytes(path.read_bytes())
    sizes, report = prepared(root, tmp_path / "out", image_size=(32, 32), channels=3)
    assert read_info(tmp_path / "out").class_names == ("battery", "face", "preferences")
    assert sum(sizes.values()) == len(list(root.glob("*/*.png"))) == 88
    assert report["resized"]["images"] == 88 and report["skipped"] == []
    assert report["duplicates"]["images"] > 0 and report["duplicates"]["straddling_splits"] == 0


def test_a_mixed_rgb_folder_of_real_photos_in_five_formats_and_many_sizes(tmp_path):
    photo = Image.open(MATPLOTLIB_DATA / "sample_data" / "grace_hopper.jpg").convert("RGB")
    root = tmp_path / "photos"
    formats = ("PNG", "JPEG", "BMP", "GIF", "WEBP")
    for label, name in enumerate(("left", "right")):
        (root / name).mkdir(parents=True)
        for index in range(10):
            side = 40 + 17 * index
            box = (
                label * 200 + index * 5,
                index * 9,
                label * 200 + index * 5 + side,
                index * 9 + side * 2,
            )
            crop = photo.crop(box)
            image_format = formats[index % len(formats)]
            crop.save(root / name / f"{index}.{image_format.lower()}", image_format)
    sizes, report = prepared(root, tmp_path / "out", image_size=(32, 24), channels=3)
    images, _ = load_split(tmp_path / "out", "train")
    assert images.shape[1:] == (32, 24, 3)
    assert sum(sizes.values()) == 20 and report["resized"]["images"] == 20


# ---- Fashion-MNIST as PNG folders: the same arrays as the IDX path


@pytest.fixture(scope="module")
def fashion_raw(tmp_path_factory):
    if not SYSTEM_FASHION_MNIST.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed")
    raw = tmp_path_factory.mktemp("raw")
    for path in SYSTEM_FASHION_MNIST.glob("*.gz"):
        (raw / path.name.removesuffix(".gz")).write_bytes(gzip.decompress(path.read_bytes()))
    return raw


def test_fashion_mnist_written_as_png_folders_gives_the_idx_paths_arrays(fashion_raw, tmp_path):
    names = DATASETS["fashion_mnist"].class_names
    folder_names = [name.replace("/", " or ") for name in names]
    images, labels = read_pair(
        fashion_raw / "t10k-images-idx3-ubyte", fashion_raw / "t10k-labels-idx1-ubyte"
    )
    images, labels = images[:300], labels[:300]
    for split, part in (("train", slice(0, 200)), ("test", slice(200, 300))):
        for index in range(part.start, part.stop):
            folder = tmp_path / "images" / split / folder_names[labels[index]]
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{index:05d}.png").write_bytes(png(images[index]))
    prepared(tmp_path / "images", tmp_path / "out", image_size=(28, 28), val_split=0.1)
    order = sorted(range(len(names)), key=lambda label: os.fsencode(folder_names[label]))
    to_idx_label = np.array(order)
    test_images, test_labels = load_split(tmp_path / "out", "test")
    # The folder's test split holds the same images, by class then file name.
    expected = sorted(range(200, 300), key=lambda index: (order.index(labels[index]), index))
    np.testing.assert_array_equal(test_images[..., 0], images[expected] / np.float32(255))
    np.testing.assert_array_equal(to_idx_label[test_labels], labels[expected])
    trained = np.concatenate([load_split(tmp_path / "out", s)[0] for s in ("train", "val")])
    expected_trained = images[:200, ..., None] / np.float32(255)
    made = sorted(image.tobytes() for image in trained)
    assert made == sorted(image.tobytes() for image in expected_trained)


def test_the_fashion_mnist_report_counts_its_test_images_that_occur_in_train(fashion_raw):
    splits = raw_splits(fashion_raw, 0.1, 0, seed=42)
    report = builtin_report(DATASETS["fashion_mnist"].class_names, splits)
    assert report["images"] == {"train": 54000, "val": 6000, "test": 10000}
    # The 10 test images that zalandoresearch/fashion-mnist#44 found in train (byte for
    # byte, in the first release) were replaced by its pull request #45; the files
    # served since (Debian's here) hold none: counted here from the raw files.
    assert report["duplicates"]["test_in_train"] == 0 == summary(report)["test_in_train"]
    assert report["counts"]["Bag"] == {"train": 5414, "val": 586, "test": 1000}


def test_the_built_in_prepare_still_writes_the_same_arrays(fashion_raw, tmp_path):
    prepare(fashion_raw, tmp_path / "out", 0.1, 1200, seed=42, dataset="fashion_mnist")
    splits = raw_splits(fashion_raw, 0.1, 1200, seed=42)
    for split, (images, labels) in splits.items():
        made, made_labels = load_split(tmp_path / "out", split)
        np.testing.assert_array_equal(made, images[..., None] / np.float32(255))
        np.testing.assert_array_equal(made_labels, labels)


# ---- archives: downloaded once, verified, unpacked safely


def zip_of(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return path


def test_an_archive_is_verified_then_unpacked_with_its_single_top_folder_as_root(tmp_path):
    source = make_folder(tmp_path / "src" / "pets", {"cat": 3, "dog": 3})
    archive = tmp_path / "pets.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(source, arcname="pets")
    checksum = hashlib.sha256(archive.read_bytes()).hexdigest()
    settings = {"path": archive.as_uri(), "sha256": checksum}
    raw = tmp_path / "raw"
    assert "6 files" in archives.download_folder(settings, raw, progress=False)
    assert "already" in archives.download_folder(settings, raw, progress=False)
    from mnistpipe.image_folder import folder_root

    root = folder_root(settings["path"], raw)
    assert root == raw / "images" / "pets"
    sizes, _ = prepared(root, tmp_path / "out")
    assert sum(sizes.values()) == 6
    with pytest.raises(PipelineError, match="content SHA-256 is .*expected the archive"):
        fetch_archive(archive.as_uri(), "0" * 64, tmp_path / "x.zip", progress=False)
    assert not (tmp_path / "x.zip").exists()


@pytest.mark.parametrize("name", ["../evil.png", "/etc/evil.png", "a/../../evil.png"])
def test_an_archive_member_outside_the_target_is_refused_before_anything_is_written(
    tmp_path, name
):
    archive = zip_of(tmp_path / "bad.zip", {"a/1.png": b"x", name: b"y"})
    with pytest.raises(PipelineError, match="a path outside the folder"):
        archives.unpack(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.png").exists()


def test_links_and_devices_in_an_archive_are_refused(tmp_path):
    archive = tmp_path / "links.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        link = tarfile.TarInfo("a/link.png")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(PipelineError, match="a link, device or other special file"):
        archives.unpack(archive, tmp_path / "out")
    device = tmp_path / "device.tar"
    with tarfile.open(device, "w") as tar:
        node = tarfile.TarInfo("a/null")
        node.type = tarfile.CHRTYPE
        tar.addfile(node)
    with pytest.raises(PipelineError, match="special file"):
        archives.unpack(device, tmp_path / "out")


def test_an_archive_over_the_bounds_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(archives, "MAX_FILES", 2)
    archive = zip_of(tmp_path / "many.zip", {f"a/{n}.png": b"x" for n in range(3)})
    with pytest.raises(
        PipelineError,
        match=r"unpacks to 3 files of 3 bytes; expected at most 2 files .*archive bomb",
    ):
        archives.unpack(archive, tmp_path / "out")


def test_a_directory_path_that_does_not_exist_is_one_line(tmp_path):
    settings = {"path": str(tmp_path / "nowhere"), "sha256": ""}
    with pytest.raises(PipelineError, match="nowhere is not a directory"):
        archives.download_folder(settings, tmp_path / "raw", progress=False)


def test_decoding_in_parallel_processes_gives_the_same_bytes(tmp_path, monkeypatch):
    from mnistpipe import folder_data

    root = make_folder(tmp_path / "images", {"a": 12, "b": 12})
    prepared(root, tmp_path / "serial")
    monkeypatch.setattr(folder_data, "PARALLEL_FROM", 1)
    monkeypatch.setattr(folder_data, "worker_count", lambda: 2)
    monkeypatch.setattr(folder_data, "BATCH_IMAGES", 5)
    prepared(root, tmp_path / "parallel")
    assert outputs(tmp_path / "serial") == outputs(tmp_path / "parallel")
