"""The documentation site in docs/ is checked like code.

It builds with ``mkdocs build --strict`` (no broken link or anchor, no page outside the
navigation); its reference pages agree with the code they are made from (the params
schema, the commands' parsers, ``make help``); every param the pages name exists; the
first-run and own-images tutorials' shell blocks run, as written, in a copy of the project
on small data; and the built site, opened in headless Chromium with no network, renders
its home page and params reference, and its search finds a param.
"""

import contextlib
import html
import http.server
import importlib.util
import json
import os
import re
import select
import shutil
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

from mnistpipe.cli import COMMANDS
from mnistpipe.params import SCHEMA
from tests.conftest import REPOSITORY, SYSTEM_FASHION_MNIST, copy_project
from tests.test_pipeline import CHROMIUM_SERVICES, RefusingProxy, chromium_or_skip


def load_reference_hook():
    """docs/hooks/reference.py, the MkDocs hook that writes the reference pages."""
    path = REPOSITORY / "docs" / "hooks" / "reference.py"
    spec = importlib.util.spec_from_file_location("docs_reference_hook", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


reference = load_reference_hook()


def mkdocs_environment() -> dict[str, str]:
    bin_directory = Path(sys.executable).parent
    return {
        **os.environ,
        "PATH": f"{bin_directory}{os.pathsep}{os.environ['PATH']}",
        "NO_MKDOCS_2_WARNING": "1",
    }


def mkdocs_build(config: Path, site: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)],
        cwd=config.parent,
        env=mkdocs_environment(),
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site as `make docs` builds it, into a temporary directory."""
    site = tmp_path_factory.mktemp("site")
    result = mkdocs_build(REPOSITORY / "mkdocs.yml", site)
    assert result.returncode == 0, result.stderr[-5000:]
    return site


def page_text(site: Path, page: str) -> str:
    """The visible text of a built page's article, tags removed."""
    content = (site / page / "index.html").read_text(encoding="utf-8")
    article = content[content.index("<article") : content.index("</article>")]
    return html.unescape(re.sub(r"<[^>]+>", "", article))


# ---------------------------------------------------------------- the build


def test_a_broken_link_or_a_page_outside_the_navigation_fails_the_strict_build(tmp_path):
    # The site's own config on a copy of its pages, with the generated reference left out
    # (its markers removed, so that this build takes a second): the settings that make
    # --strict catch these are in mkdocs.yml, and this keeps them there.
    shutil.copy(REPOSITORY / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(REPOSITORY / "docs", tmp_path / "docs")
    for page in (tmp_path / "docs").rglob("*.md"):
        page.write_text(reference.MARKER.sub("", page.read_text()))
    result = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 0, result.stderr[-5000:]

    serve = tmp_path / "docs" / "how-to" / "serve.md"
    serve.write_text(serve.read_text() + "\n[a page that is not there](nowhere.md)\n")
    (tmp_path / "docs" / "how-to" / "orphan.md").write_text("# A page no one links to\n")
    result = mkdocs_build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode == 1
    assert "'nowhere.md'" in result.stderr
    assert "how-to/orphan.md" in result.stderr and "not included in the" in result.stderr


def test_make_lint_builds_the_site_strictly_and_never_quietly():
    makefile = (REPOSITORY / "Makefile").read_text()
    lint = re.search(r"^lint:.*\n((?:\t.*\n|\s*@?#.*\n)+)", makefile, re.M)[1]
    # `mkdocs build --strict --quiet` passes with warnings: --quiet stops their count.
    assert re.search(r"^\tmkdocs build --strict$", lint, re.M), lint


# ---------------------------------------------------------------- params reference


def default_of(key: str):
    value = yaml.safe_load((REPOSITORY / "params.yaml").read_text())
    for part in key.split("."):
        value = value[part]
    return value


def params_rows(site: Path) -> dict[str, str]:
    """The built params table's rows, by the key in their first cell."""
    content = (site / "reference" / "params" / "index.html").read_text(encoding="utf-8")
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", content, re.S):
        cells = [
            html.unescape(re.sub(r"<[^>]+>", "", cell)).strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        if len(cells) == 4:
            rows[cells[0]] = " | ".join(cells)
    return rows


def test_the_params_reference_lists_every_key_of_the_schema_with_its_rule_and_default(site):
    keys = reference.schema_keys(SCHEMA)
    rows = params_rows(site)
    assert set(rows) == set(keys)
    comments = reference.yaml_comments((REPOSITORY / "params.yaml").read_text())
    for key, rule in keys.items():
        row = rows[key]
        assert reference.describe_rule(rule).replace("`", "") in row, row
        default = default_of(key)
        if not isinstance(default, dict | list):
            shown = yaml.safe_dump(default).removesuffix("...\n").strip()
            assert f"| {shown} |" in row, row
        assert comments[key].replace("`", "") in row, row
    anchors = (site / "reference" / "params" / "index.html").read_text()
    assert '<span id="train-epochs"></span>' in anchors


def test_each_kind_of_rule_reads_as_its_type_and_range():
    keys = reference.schema_keys(SCHEMA)
    assert reference.describe_rule(keys["train.epochs"]) == "integer, 1 to 100,000"
    assert reference.describe_rule(keys["preprocess.val_split"]) == "number in (0, 1)"
    assert reference.describe_rule(keys["train.warmup_epochs"]) == "number ≥ 0"
    assert reference.describe_rule(keys["train.loop"]) == "one of `fit`, `custom`"
    assert reference.describe_rule(keys["train.deterministic"]) == "`true` or `false`"
    assert reference.describe_rule(keys["download.mirrors"]).startswith("A list of directories")


def test_the_meaning_of_a_key_is_its_comment_beside_it_or_just_above_it():
    comments = reference.yaml_comments(
        "# the file's header\n\n"
        "train:\n"
        "  epochs: 3          # passes over the data\n"
        "  # two lines that say\n"
        "  # what it is\n"
        "  tolerances:\n"
        "    evaluate.accuracy: 0.005\n"
        "  quiet: 1\n"
        "seed: 4  # a seed: with a colon\n"
    )
    assert comments == {
        "train.epochs": "passes over the data",
        "train.tolerances": "two lines that say what it is",
        "seed": "a seed: with a colon",
    }


def test_a_param_without_a_comment_fails_the_reference_naming_it(tmp_path):
    params = (REPOSITORY / "params.yaml").read_text()
    without = re.sub(r"^(  epochs: \d+)\s*#.*$", r"\1", params, flags=re.M)
    assert without != params
    (tmp_path / "params.yaml").write_text(without)
    with pytest.raises(reference.ReferenceError, match=r"no comment for train\.epochs;"):
        reference.params_reference(tmp_path)


# A dotted name in the docs that starts like a params section but is not a param.
NOT_PARAMS = {
    "train.epoch": "the misspelt key of the unknown-key example",
    "train.patience": "the param a recipe of the code layout page adds as an example",
    "train.accuracy": "dvclive's metric, a column of dvc exp show",
}


def test_every_param_the_pages_name_is_a_key_of_the_schema():
    keys = set(reference.schema_keys(SCHEMA))
    sections = {name for name, rule in SCHEMA.items() if isinstance(rule, dict)}
    # The gate's metric names (evaluate.accuracy) look like params; they are metrics.
    metrics = set(default_of("gate.tolerances"))
    pattern = re.compile(rf"\b((?:{'|'.join(sections)})\.[a-z_]+(?:\.[a-z_0-9]+)*)\b")
    unknown = set()
    for page in [REPOSITORY / "README.md", *sorted((REPOSITORY / "docs").rglob("*.md"))]:
        for name in pattern.findall(page.read_text()):
            if re.search(r"\.(json|md|py|npz|yaml|txt|keras)$", name):
                continue
            if name not in keys | metrics | set(NOT_PARAMS):
                unknown.add(f"{page.relative_to(REPOSITORY)}: {name}")
    assert unknown == set()


# ---------------------------------------------------------------- commands and make


def test_the_commands_reference_has_each_commands_own_help(site):
    text = page_text(site, "reference/commands")
    assert "usage: mnistpipe [-h]" in text or "usage: mnistpipe" in text
    for name in COMMANDS:
        assert f"$ mnistpipe {name} --help" in text
        assert re.search(rf"usage: (mnistpipe {name}|python -m mnistpipe\.{name})", text), name
    for module in reference.MODULES:
        assert f"$ python -m {module} --help" in text


def test_the_make_reference_lists_every_target_the_makefile_documents(site):
    makefile = (REPOSITORY / "Makefile").read_text()
    documented = re.findall(r"^([a-z-]+):.*## (.*)$", makefile, re.M)
    assert documented
    text = page_text(site, "reference/make")
    for target, summary in documented:
        assert f"make {target}" in text
        # make help writes in the values of the variables a summary names ($(LOCK)).
        parts = re.split(r"\$\([A-Z_]+\)", summary.replace("`", "").strip())
        assert re.search(r"\S+".join(map(re.escape, parts)), text), summary


# ---------------------------------------------------------------- tutorials that run

FENCE = re.compile(r"(?:^<!-- (not run[^>]*?) -->\n)?^```(sh|python)\n(.*?)^```$", re.M | re.S)


def code_blocks(page: Path) -> list[tuple[str, str, str | None]]:
    """(language, code, the reason it is not run or None) of each sh and python block."""
    return [
        (language, code, marker or None)
        for marker, language, code in FENCE.findall(page.read_text())
    ]


def test_every_block_left_unrun_says_why_and_none_waits_for_a_section_that_exists():
    for page in sorted((REPOSITORY / "docs" / "tutorials").glob("*.md")):
        for _, code, marker in code_blocks(page):
            if marker is None:
                continue
            assert re.match(r"not run( yet)?: \S", marker), (page.name, marker)
            # Blocks of a feature being built wait for its params; once they are in the
            # schema, the marker must go and the blocks run in a test like the first run's.
            waiting = re.match(r"not run yet: needs the params section (\w+)", marker)
            assert waiting or not marker.startswith("not run yet"), (page.name, marker)
            if waiting:
                assert waiting[1] not in SCHEMA, f"{page.name}: run this block now:\n{code}"


def run_block(
    root: Path, language: str, code: str, home: Path | None = None
) -> subprocess.CompletedProcess:
    command = ["bash", "-e", "-o", "pipefail", "-c", code]
    if language == "python":
        command = [str(root / ".venv" / "bin" / "python"), "-c", code]
    environment = {
        **os.environ,
        "PATH": f"{root / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "DVC_NO_ANALYTICS": "1",
    }
    if home is not None:
        environment["HOME"] = str(home)
    environment.pop("GITHUB_STEP_SUMMARY", None)
    return subprocess.run(
        command, cwd=root, env=environment, capture_output=True, text=True, timeout=900
    )


def set_up_project(root: Path) -> Path:
    """A copy of the project in ``root`` with this environment as its set-up .venv."""
    copy_project(root)
    for name in ("pyproject.toml", "requirements", "docs/examples"):
        source = REPOSITORY / name
        if source.is_dir():
            shutil.copytree(source, root / name, copy_function=shutil.copy)
        else:
            shutil.copy(source, root / name)
    # The tutorial's `make run` sets up .venv, then runs the pipeline. Here .venv is the
    # tests' own environment (its entries linked in), marked installed after the files
    # make compares it with were copied, so that make runs the pipeline and never
    # reinstalls it.
    (root / ".venv").mkdir()
    for entry in Path(sys.prefix).iterdir():
        if entry.name != ".installed":
            (root / ".venv" / entry.name).symlink_to(entry)
    (root / ".venv" / ".installed").touch()
    return root


def use_small_params(root: Path, **sections) -> None:
    """One epoch and no bar to meet, plus ``sections``' keys, in ``root``'s params.yaml."""
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["train"]["epochs"] = 1
    params["evaluate"]["min_accuracy"] = 0.0
    for section, values in sections.items():
        params[section].update(values)
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.mark.slow
def test_the_first_run_tutorial_runs_as_written_on_small_data(tmp_path):
    if not SYSTEM_FASHION_MNIST.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed (make setup installs it)")
    root = set_up_project(tmp_path / "project")
    # Small data: 1,200 training images.
    use_small_params(root, preprocess={"limit": 1200})
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)

    blocks = code_blocks(REPOSITORY / "docs" / "tutorials" / "first-run.md")
    runnable = [(language, code) for language, code, marker in blocks if marker is None]
    assert len(runnable) >= 3
    outputs = []
    for language, code in runnable:
        result = run_block(root, language, code)
        assert result.returncode == 0, f"{code}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        outputs.append(result.stdout)
    assert (root / "models" / "export" / "saved_model").is_dir()
    assert (root / "dvc_plots" / "index.html").is_file()
    joined = "\n".join(outputs)
    assert "metrics/evaluate.json" in joined
    assert re.search(r"^docs/examples/boot\.jpg: \S", joined, re.M), joined[-2000:]


def write_photos(folder: Path) -> None:
    """~/my-photos of the own-images tutorial: 3 classes of 12 distinct small pictures.

    Each class has its own colour, so that the names the tutorial uses (cat/0001.jpg)
    exist; JPEG and PNG mixed, as a camera folder is.
    """
    random = np.random.default_rng(0)
    for number, name in enumerate(["cat", "dog", "guinea pig"]):
        (folder / name).mkdir(parents=True)
        for index in range(1, 13):
            picture = random.integers(0, 96, (40, 30, 3), dtype=np.uint8)
            picture[..., number] += 150
            suffix = "jpg" if index % 2 else "png"
            Image.fromarray(picture).save(folder / name / f"{index:04d}.{suffix}")


@pytest.mark.slow
def test_the_own_images_tutorial_runs_as_written_on_a_small_folder(tmp_path):
    root = set_up_project(tmp_path / "project")
    use_small_params(root)
    home = tmp_path / "home"
    write_photos(home / "my-photos")
    # A clone: the project committed, as the tutorial's `git rm --cached` expects.
    for command in (
        ["git", "init", "-q"],
        ["git", "config", "user.name", "test"],
        ["git", "config", "user.email", "test@example.org"],
        ["git", "add", "-A"],
        ["git", "commit", "-qm", "the project"],
    ):
        subprocess.run(command, cwd=root, check=True)

    blocks = code_blocks(REPOSITORY / "docs" / "tutorials" / "own-images.md")
    runnable = [(language, code) for language, code, marker in blocks if marker is None]
    assert len(runnable) >= 3
    outputs = []
    for language, code in runnable:
        result = run_block(root, language, code, home=home)
        assert result.returncode == 0, f"{code}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        outputs.append(result.stdout)
    joined = "\n".join(outputs)
    # The images went to DVC, not git; the model is of their shape and classes.
    tracked = subprocess.run(
        ["git", "ls-files", "data"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.split()
    assert "data/images.dvc" in tracked and "data/images/cat/0001.jpg" not in tracked
    info = json.loads((root / "data" / "prepared" / "dataset.json").read_text())
    assert info == {"class_names": ["cat", "dog", "guinea pig"], "image_shape": [64, 64, 3]}
    assert (root / "models" / "export" / "saved_model").is_dir()
    assert "metrics/data.json" in joined
    assert re.search(r"^data/images/cat/0001\.jpg: \S", joined, re.M), joined[-2000:]


# ---------------------------------------------------------------- the site in Chromium


class DevToolsPipe:
    """Chromium driven through the DevTools protocol on its --remote-debugging-pipe.

    Chromium reads commands on its fd 3 and writes answers and events on fd 4, each a JSON
    object ended by a NUL byte: no WebSocket, so no library is needed for it.
    """

    def __init__(self, chromium: str, profile: Path, proxy_port: int):
        to_browser_read, self._to_browser = os.pipe()
        self._from_browser, from_browser_write = os.pipe()
        self.process = subprocess.Popen(
            [
                # bash: dash's redirections take one-digit descriptors only.
                "bash",
                "-c",
                f'exec "$0" "$@" 3<&{to_browser_read} 4>&{from_browser_write}',
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                # Every request off 127.0.0.1 goes to a proxy that refuses it.
                f"--proxy-server=http://127.0.0.1:{proxy_port}",
                "about:blank",
            ],
            pass_fds=(to_browser_read, from_browser_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=open(profile.parent / "chromium.log", "w"),  # noqa: SIM115
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._buffer = b""
        self._last_id = 0

    def send(self, method: str, params: dict | None = None, session: str | None = None):
        self._last_id += 1
        message = {"id": self._last_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        answer = self._receive(lambda message: message.get("id") == self._last_id)
        assert "error" not in answer, answer
        return answer["result"]

    def _receive(self, wanted, timeout: float = 60):
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buffer:
                raw, self._buffer = self._buffer.split(b"\0", 1)
                message = json.loads(raw)
                if wanted(message):
                    return message
            left = deadline - time.monotonic()
            assert left > 0, "Chromium did not answer within a minute"
            if select.select([self._from_browser], [], [], left)[0]:
                chunk = os.read(self._from_browser, 1 << 16)
                assert chunk, "Chromium closed its DevTools pipe"
                self._buffer += chunk

    def open(self, url: str) -> str:
        """A new tab at ``url``; returns its session for ``evaluate``."""
        target = self.send("Target.createTarget", {"url": url})["targetId"]
        return self.send("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"
        ]

    def evaluate(self, session: str, expression: str):
        result = self.send(
            "Runtime.evaluate", {"expression": expression, "returnByValue": True}, session
        )
        return result["result"].get("value")

    def wait_for(self, session: str, expression: str, timeout: float = 60):
        """The value of ``expression`` once it is truthy in the page (JavaScript ran)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(session, expression)
            if value:
                return value
            time.sleep(0.2)
        return self.evaluate(session, expression)

    def close(self):
        try:
            # Chromium may close the pipe before it answers: send, and wait for it to end.
            with contextlib.suppress(OSError):
                message = {"id": self._last_id + 1, "method": "Browser.close", "params": {}}
                os.write(self._to_browser, json.dumps(message).encode() + b"\0")
            self.process.wait(timeout=30)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            os.close(self._to_browser)
            os.close(self._from_browser)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_the_site_renders_and_its_search_finds_a_param_in_headless_chromium(site, tmp_path):
    chromium = chromium_or_skip()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(QuietHandler, directory=str(site))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with RefusingProxy() as proxy:
            browser = DevToolsPipe(chromium, tmp_path / "profile", proxy.server_address[1])
            try:
                home = browser.open(f"{address}/")
                loaded = "document.readyState == 'complete' && document.title"
                title = browser.wait_for(home, loaded)
                assert title == "mnistpipe"
                heading = browser.evaluate(
                    home, "document.querySelector('article h1').textContent"
                )
                assert heading.strip().startswith("mnistpipe")
                # Material's JavaScript ran: it filled in the navigation's search box.
                assert browser.evaluate(home, "!!document.querySelector('.md-search__input')")

                params_page = browser.open(f"{address}/reference/params/")
                rows = browser.wait_for(
                    params_page, "document.querySelectorAll('article table tbody tr').length"
                )
                assert rows == len(reference.schema_keys(SCHEMA))
                cell = browser.evaluate(
                    params_page,
                    "document.getElementById('train-shuffle_buffer').parentElement.textContent",
                )
                assert "train.shuffle_buffer" in cell

                # Material's search runs in the browser (a web worker over search_index.json);
                # ?q= types the query into its box, as a shared search link does.
                search = browser.open(f"{address}/?q=shuffle_buffer")
                found = browser.wait_for(
                    search,
                    "[...document.querySelectorAll('.md-search-result__item a')]"
                    ".map(link => link.getAttribute('href'))",
                )
                assert any("reference/params/" in link for link in found or []), found
            finally:
                browser.close()
        off_site = [request for request in proxy.requests if not CHROMIUM_SERVICES.match(request)]
        assert off_site == []
    finally:
        server.shutdown()
        server.server_close()
