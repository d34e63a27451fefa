"""A labelled image folder (``dataset: folder``): finding its images, in a fixed order.

The layout is Keras' ``image_dataset_from_directory`` convention: ROOT holds one
folder per class, named after it; a class folder's images may sit in subfolders.
If ROOT holds ``train/`` and ``test/``, each with the class folders, those splits
are used as given.

What the scan guarantees, so that the same images give the same bytes on every
machine: relative paths are normalised to Unicode NFC (macOS writes names
decomposed, Linux as typed) and sorted by their UTF-8 bytes, never by the file
system's listing order. Hidden and system entries (any name starting with a dot,
``Thumbs.db``, ``desktop.ini``, ``__MACOSX/``) are never classes or images: they
are counted for the data report. A symbolic link is followed only when it stays
inside ROOT; a directory reached twice (a link back up the tree) is read once.
"""

import dataclasses
import os
import unicodedata
from pathlib import Path

from mnistpipe.errors import PipelineError
from mnistpipe.params import is_archive

# Entries that file managers and tools leave behind: never a class or an image.
SYSTEM_NAMES = frozenset({"Thumbs.db", "desktop.ini", "__MACOSX", "Icon\r"})
GIVEN_SPLITS = ("train", "test")
# The folder in data/raw/ that the download stage unpacks an archive into.
UNPACKED = "images"
# Shown for the first few problems of a kind; the data report lists them all.
SHOWN = 3


@dataclasses.dataclass(frozen=True)
class Entry:
    """One image file: its path relative to ROOT (NFC, "/"-separated), class and given split."""

    relative_path: str
    path: Path
    label: int
    # "train" or "test" where ROOT gives the splits; None where preprocess makes them.
    given_split: str | None


@dataclasses.dataclass
class Scan:
    class_names: tuple[str, ...]
    entries: list[Entry]
    given_splits: bool
    # Hidden and system entries, and files directly in ROOT (no class): relative paths.
    ignored: list[str]


def folder_root(path: str, raw_directory: Path) -> Path:
    """The image folder ``folder.path`` names: the directory itself, or the unpacked archive.

    An archive that holds one folder and nothing else (``images/cat/1.png``, as a zip
    of a folder is made) has its root in that folder.
    """
    if not is_archive(path):
        return Path(path)
    root = raw_directory / UNPACKED
    while root.is_dir():
        visible = [child for child in root.iterdir() if not is_hidden(child.name)]
        if len(visible) != 1 or not visible[0].is_dir() or visible[0].name in ("train", "test"):
            break
        root = visible[0]
    return root


def is_hidden(name: str) -> bool:
    return name.startswith(".") or name in SYSTEM_NAMES


def sort_key(relative_path: str) -> bytes:
    """The order of entries: by the bytes of the NFC path, the same on every file system."""
    return os.fsencode(relative_path)


def _name(path: Path, root: Path) -> str:
    """``path``'s name as text in NFC; a name that is not valid UTF-8 is refused."""
    try:
        os.fsencode(path.name).decode("utf-8")
    except UnicodeDecodeError:
        raise PipelineError(
            f"{path} has a name that is not valid UTF-8 ({os.fsencode(path.name)!r}); expected "
            f"UTF-8 file and folder names in {root}"
        ) from None
    return unicodedata.normalize("NFC", path.name)


def _inside(path: Path, root_real: Path, root: Path) -> Path:
    """``path``'s real location, refused if a symbolic link leads it out of ROOT."""
    real = Path(os.path.realpath(path))
    if real != root_real and root_real not in real.parents:
        raise PipelineError(
            f"{path} is a symbolic link to {real}, outside {root}; expected links that stay "
            "inside the image folder (copy the files in instead)"
        )
    return real


def scan_folder(root: str | os.PathLike) -> Scan:
    """The class folders and image files under ``root``, checked and in a fixed order."""
    root = Path(root)
    if not root.is_dir():
        raise PipelineError(
            f"{root} is not a directory; expected folder.path to name the image folder "
            "(ROOT/CLASS_NAME/images), or a URL of a .zip or .tar.gz with that layout"
        )
    root_real = Path(os.path.realpath(root))
    ignored: list[str] = []
    top = _children(root, root, root_real, "", ignored)
    directories = {name: path for name, path in top if path.is_dir()}
    for name, path in top:
        if not path.is_dir():
            # A README or labels.csv beside the class folders belongs to no class.
            ignored.append(name)
    given = all(split in directories for split in GIVEN_SPLITS)
    if not given and any(split in directories for split in GIVEN_SPLITS):
        present = next(split for split in GIVEN_SPLITS if split in directories)
        missing = next(split for split in GIVEN_SPLITS if split not in directories)
        raise PipelineError(
            f"{root} holds {present}/ but no {missing}/; expected both train/ and test/, each "
            "with the class folders, or only class folders (the test split is then made)"
        )
    visited = {root_real}
    if given:
        others = sorted(set(directories) - set(GIVEN_SPLITS), key=sort_key)
        if others:
            raise PipelineError(
                f"{root} holds train/ and test/ and also {others[0]}/; expected only train/ "
                "and test/ (the validation split is carved from train/)"
            )
        per_split = {}
        for split in GIVEN_SPLITS:
            split_root = directories[split]
            visited.add(_inside(split_root, root_real, root))
            children = _children(split_root, root, root_real, f"{split}/", ignored)
            per_split[split] = _class_folders(children, f"{split}/", ignored)
        names = {split: sorted(folders, key=sort_key) for split, folders in per_split.items()}
        if names["train"] != names["test"]:
            only = sorted(set(names["train"]) ^ set(names["test"]), key=sort_key)[0]
            where = "train" if only in per_split["train"] else "test"
            other = "test" if where == "train" else "train"
            raise PipelineError(
                f"{root / where / only} is a class folder with no {root / other / only}; "
                "expected the same class folders in train/ and test/"
            )
        class_names = tuple(names["train"])
        folders = [
            (split, name, per_split[split][name]) for split in GIVEN_SPLITS for name in class_names
        ]
    else:
        class_folders = _class_folders(top, "", ignored)
        class_names = tuple(sorted(class_folders, key=sort_key))
        folders = [(None, name, class_folders[name]) for name in class_names]
    _check_class_count(root, class_names)
    entries = []
    for split, name, path in folders:
        prefix = f"{split}/{name}/" if split else f"{name}/"
        files = _files(path, root, root_real, prefix, ignored, visited)
        if not files:
            raise PipelineError(
                f"class folder {path} holds no images; expected at least one PNG, JPEG, BMP, "
                "GIF or WebP file in each class folder (or remove the folder)"
            )
        label = class_names.index(name)
        entries.extend(Entry(relative, file, label, split) for relative, file in files)
    entries.sort(key=lambda entry: sort_key(entry.relative_path))
    ignored.sort(key=sort_key)
    return Scan(class_names, entries, given, ignored)


def _check_class_count(root: Path, class_names: tuple[str, ...]) -> None:
    if len(class_names) < 2:
        found = f"only the class {class_names[0]!r}" if class_names else "no class folder"
        raise PipelineError(
            f"{root} holds {found}; expected at least two class folders (one per class, named "
            "after it: ROOT/CLASS_NAME/images)"
        )


def _children(
    directory: Path, root: Path, root_real: Path, prefix: str, ignored: list[str]
) -> list[tuple[str, Path]]:
    """(NFC name, path) of the visible entries of ``directory``; hidden ones go to ``ignored``."""
    try:
        paths = list(directory.iterdir())
    except OSError as error:
        raise PipelineError(f"cannot list {directory}: {error.strerror}") from None
    children = []
    for path in paths:
        name = _name(path, root)
        if is_hidden(name):
            ignored.append(prefix + name + ("/" if path.is_dir() else ""))
            continue
        if path.is_symlink():
            _inside(path, root_real, root)
        children.append((name, path))
    return children


def _class_folders(
    children: list[tuple[str, Path]], prefix: str, ignored: list[str]
) -> dict[str, Path]:
    """Class name → folder, from the visible entries of ROOT (or of ROOT/train, ROOT/test)."""
    folders = {}
    for name, path in children:
        if not path.is_dir():
            if prefix:
                ignored.append(prefix + name)
            continue
        if name in folders:
            raise PipelineError(
                f"{path} and {folders[name]} are the same class name {name!r} written two ways "
                "(Unicode composed and decomposed); expected one folder per class"
            )
        folders[name] = path
    return folders


def _files(
    directory: Path,
    root: Path,
    root_real: Path,
    prefix: str,
    ignored: list[str],
    visited: set[Path],
) -> list[tuple[str, Path]]:
    """(relative path, path) of every visible file under a class folder, subfolders too."""
    real = _inside(directory, root_real, root)
    if real in visited:
        # A link to a folder already read (or to one of its parents): read once, no loop.
        ignored.append(prefix.rstrip("/") + " (a link to a folder read already)")
        return []
    visited.add(real)
    files = []
    for name, path in _children(directory, root, root_real, prefix, ignored):
        if path.is_dir():
            files.extend(_files(path, root, root_real, f"{prefix}{name}/", ignored, visited))
        elif path.is_file():
            files.append((prefix + name, path))
        else:
            raise PipelineError(
                f"{path} is neither a file nor a folder (a broken link, a device or a pipe); "
                "expected image files"
            )
    return files
