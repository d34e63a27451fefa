"""The real `dvc repro` in a temporary copy of the repository, on a slice of real Fashion-MNIST."""

import csv
import http.server
import itertools
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
import yaml
from PIL import Image

from mnistpipe.idx import read_images
from tests.conftest import SYSTEM_FASHION_MNIST, copy_project, set_params, use_this_virtualenv

pytestmark = pytest.mark.slow

METRICS_FILES = ("metrics/train.json", "metrics/evaluate.json", "metrics/export.json")


def command_environment() -> dict[str, str]:
    # Stages run `python` (and make runs `dvc`) from PATH: make them this interpreter's.
    bin_directory = Path(sys.executable).parent
    environment = {**os.environ, "PATH": f"{bin_directory}{os.pathsep}{os.environ['PATH']}"}
    environment.pop("GITHUB_STEP_SUMMARY", None)
    return environment


def run(root: Path, *command: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        command, cwd=root, env=command_environment(), capture_output=True, text=True, timeout=600
    )
    if check:
        assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


def dvc(root: Path, *arguments: str) -> str:
    return run(root, sys.executable, "-m", "dvc", *arguments).stdout


def git_commit(root: Path, message: str) -> None:
    run(root, "git", "add", "-A")
    identity = ("-c", "user.name=test", "-c", "user.email=test@example.org")
    run(root, "git", *identity, "commit", "-qm", message)


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    if not SYSTEM_FASHION_MNIST.is_dir():
        pytest.skip("Debian's dataset-fashion-mnist is not installed (make setup installs it)")
    root = tmp_path_factory.mktemp("pipeline")
    copy_project(root)
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["preprocess"]["limit"] = 1200
    params["train"]["epochs"] = 1
    params["evaluate"]["min_accuracy"] = 0.0
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    # `make ci-report` sets up first, as `make run` does: here, set up already.
    use_this_virtualenv(root)
    first_run = dvc(root, "repro")
    git_commit(root, "the base run")
    return root, first_run


def test_a_full_repro_runs_every_stage_and_writes_the_metrics(project):
    root, first_run = project
    for stage in ("download", "preprocess", "train", "evaluate", "export"):
        assert f"Running stage '{stage}'" in first_run
    live = json.loads((root / "dvclive/metrics.json").read_text())
    assert {"loss", "accuracy"} <= set(live["train"]) and {"loss", "accuracy"} <= set(live["eval"])
    evaluate = json.loads((root / "metrics/evaluate.json").read_text())
    assert {"loss", "accuracy", "macro_avg", "meets_min_accuracy", "min_accuracy"} <= set(evaluate)
    per_class = json.loads((root / "metrics/classes.json").read_text())["per_class"]
    assert set(per_class["Ankle boot"]) == {"precision", "recall", "f1", "support"}
    export = json.loads((root / "metrics/export.json").read_text())
    assert export["argmax_disagreements"] == 0 and export["max_probability_difference_ppm"] <= 10
    shown = json.dumps(json.loads(dvc(root, "metrics", "show", "--json")))
    assert "metrics/evaluate.json" in shown and "meets_min_accuracy" in shown
    # A table a person can read: no per-class columns, no lineage hashes.
    assert "Ankle boot" not in shown and "weights_sha256" not in shown


def test_a_second_repro_runs_no_stage(project):
    root, _ = project
    output = dvc(root, "repro")
    assert "Running stage" not in output
    assert "Data and pipelines are up to date." in output


def test_a_forced_rerun_gives_byte_identical_metrics_and_weights(project):
    root, _ = project
    before = {name: (root / name).read_bytes() for name in METRICS_FILES}
    # From train on: the data stages' reruns are test_reproducible's (two fresh clones).
    output = dvc(root, "repro", "--force", "--downstream", "train")
    assert "Running stage 'train'" in output and "Running stage 'export'" in output
    assert "Running stage 'preprocess'" not in output
    for name in METRICS_FILES:
        assert (root / name).read_bytes() == before[name], f"{name} changed between reruns"
    # lineage.json carries the SHA-256 of the trained weights: equal bytes mean equal weights.
    assert json.loads((root / "metrics/lineage.json").read_text())["weights_sha256"]


def test_changing_the_gate_reruns_evaluate_but_not_train(project):
    root, _ = project
    set_params(root, "evaluate", min_accuracy=0.05)
    output = dvc(root, "repro")
    assert "Running stage 'evaluate'" in output
    assert "Running stage 'train'" not in output
    assert "Running stage 'preprocess'" not in output


def predictions(path: Path) -> list[tuple[str, str]]:
    with open(path, newline="") as stream:
        return [(row["actual"], row["predicted"]) for row in csv.DictReader(stream)]


def test_ci_report_on_a_branch_has_the_diffs_the_verdict_pictures_and_the_flips(project, tmp_path):
    root, _ = project
    base_predictions = tmp_path / "base_predictions.csv"
    shutil.copy(root / "plots/predictions.csv", base_predictions)
    base = run(root, "git", "rev-parse", "--abbrev-ref", "HEAD").stdout.strip()
    run(root, "git", "checkout", "-q", "-b", "higher-learning-rate")
    set_params(root, "evaluate", min_accuracy=0.0)
    set_params(root, "train", learning_rate=0.003)
    set_params(root, "gate", tolerances={"evaluate.accuracy": 1.0, "evaluate.loss": 100.0})
    try:
        result = run(root, "make", "--no-print-directory", "ci-report", f"BASE={base}")
    finally:
        # The params' changes go along: the next tests start from them or restore them.
        run(root, "git", "checkout", "-q", base)

    report = (root / "ci-report.md").read_text()
    assert report in result.stdout
    assert f"## Params against `{base}`" in report
    assert re.search(r"\| params\.yaml +\| train\.learning_rate +\| 0\.002 +\| 0\.003 +\|", report)
    assert f"## Metrics against `{base}`" in report
    assert re.search(r"\| dvclive/metrics\.json +\| eval\.accuracy +\|", report)
    assert "| evaluate.accuracy |" in report and "| pass (tolerance 1," in report
    pictures = dict(re.findall(r"!\[([^\]]+)\]\((ci-report/[^)]+\.png)\)", report))
    for title in ("Accuracy", "Loss", "Confusion matrix"):
        assert title in pictures, report
    opened = {}
    for title, path in pictures.items():
        with Image.open(root / path) as image:
            opened[title] = np.asarray(image.convert("RGB"))
        assert opened[title].shape[0] > 100 and opened[title].shape[1] > 100
    base_matrix = opened[f"confusion matrix, base ({base})"]
    branch_matrix = opened["confusion matrix, branch"]
    assert base_matrix.shape != branch_matrix.shape or (base_matrix != branch_matrix).any()

    before, after = predictions(base_predictions), predictions(root / "plots/predictions.csv")
    pairs = list(zip(before, after, strict=True))
    right_to_wrong = sum(b == a and n != a for (a, b), (_, n) in pairs)
    wrong_to_right = sum(b != a and n == a for (a, b), (_, n) in pairs)
    assert right_to_wrong + wrong_to_right > 0, "the changed param flipped no test image"
    assert f"| right to wrong | {right_to_wrong} |" in report
    assert f"| wrong to right | {wrong_to_right} |" in report
    with Image.open(root / pictures["test images that flipped"]) as sheet:
        assert sheet.size[0] > 500


def test_ci_report_fails_when_the_gate_fails(project):
    root, _ = project
    # A learning rate this small leaves the model near chance: accuracy drops far.
    set_params(root, "train", learning_rate=1e-7)
    set_params(root, "evaluate", min_accuracy=0.5)
    set_params(root, "gate", tolerances={"evaluate.accuracy": 0.005})
    result = run(root, "make", "--no-print-directory", "ci-report", "BASE=HEAD", check=False)
    assert result.returncode != 0
    # The bar judges, it does not block: every stage ran, and the gate refused the model.
    assert "Running stage 'export'" in result.stdout
    assert "**FAIL**" in result.stdout
    assert "gate failed: evaluate.accuracy" in result.stderr
    assert re.search(
        r"gate failed: test accuracy 0\.\d{4} is below evaluate.min_accuracy 0\.5000",
        result.stderr,
    )


def restore_committed_run(root: Path) -> None:
    run(root, "git", "checkout", "--", "params.yaml")
    dvc(root, "checkout", "--force")


def test_a_failed_train_keeps_the_export_and_dvc_checkout_restores_the_rest(project):
    root, _ = project
    restore_committed_run(root)
    model = (root / "models/model.keras").read_bytes()
    exported = (root / "models/export/saved_model/saved_model.pb").read_bytes()
    set_params(root, "train", epochs=0)

    result = run(root, sys.executable, "-m", "dvc", "repro", check=False)

    assert result.returncode != 0, result.stdout
    assert "error: train.epochs is 0" in result.stdout + result.stderr
    assert "Running stage 'export'" not in result.stdout
    assert (root / "models/export/saved_model/saved_model.pb").read_bytes() == exported
    restore_committed_run(root)
    assert (root / "models/model.keras").read_bytes() == model


def checkpoint_epochs_done(path: Path) -> int:
    try:
        with np.load(path, allow_pickle=False) as archive:
            return json.loads(archive["state"].tobytes())["epochs_done"]
    except (OSError, ValueError, KeyError):
        return 0


def test_a_train_killed_mid_epoch_resumes_and_ends_as_an_uninterrupted_run(project):
    root, _ = project
    restore_committed_run(root)
    # Params no run has used yet, so that DVC's run-cache cannot stand in for training.
    set_params(root, "train", epochs=4, learning_rate=0.0025)
    checkpoint = root / "checkpoints/train.npz"
    # The train stage alone (with what it depends on): what follows it is not the question.
    process = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro", "train"],
        cwd=root,
        env=command_environment(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        # Its own process group: the kill reaches DVC and the stage it runs.
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while checkpoint_epochs_done(checkpoint) < 2:
            assert process.poll() is None, "dvc repro ended before its second epoch"
            assert time.monotonic() < deadline, "no checkpoint after 2 epochs in 5 minutes"
            time.sleep(0.02)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    epochs_done = checkpoint_epochs_done(checkpoint)
    assert 2 <= epochs_done < 4 and not (root / "metrics/train.json").exists()

    output = dvc(root, "repro", "train")

    assert f"train: resuming from checkpoints/train.npz after epoch {epochs_done}" in output
    assert f"epoch {epochs_done + 1}/4" in output and "epoch 1/4" not in output
    assert not checkpoint.exists()
    outputs = (
        "metrics/train.json",
        "dvclive/metrics.json",
        *(
            f"dvclive/plots/metrics/{split}/{figure}.tsv"
            for split in ("train", "eval")
            for figure in ("loss", "accuracy")
        ),
    )
    resumed = {name: (root / name).read_bytes() for name in outputs}
    dvc(root, "repro", "--force", "--no-run-cache", "--single-item", "train")
    for name, content in resumed.items():
        assert (root / name).read_bytes() == content, f"{name} differs from an uninterrupted run"


def test_a_queued_two_point_sweep_runs_in_parallel_and_dvc_exp_show_lists_both(project):
    root, _ = project
    restore_committed_run(root)
    dvc(root, "exp", "run", "--queue", "-S", "train.learning_rate=0.001,0.003")
    dvc(root, "queue", "start", "--jobs", "2")
    deadline = time.monotonic() + 400
    for poll in itertools.count(1):
        # Each finished experiment is a git ref: reading them costs the two running
        # experiments nothing, where each `dvc queue status` takes a second of CPU
        # from them. That one only every 30 s, to see a failed experiment early.
        finished = run(root, "git", "for-each-ref", "--format=%(refname)", "refs/exps/")
        # A saved experiment's ref: refs/exps/<baseline commit, split 2/38>/<name>.
        saved = re.findall(r"^refs/exps/[0-9a-f]{2}/[0-9a-f]{38}/\S+$", finished.stdout, re.M)
        status = dvc(root, "queue", "status") if poll % 15 == 0 or len(saved) >= 2 else ""
        if status and not re.search(r"\b(Queued|Running)\b", status):
            break
        assert time.monotonic() < deadline, f"the sweep did not finish in 400 s:\n{status}"
        time.sleep(2)
    assert status.count("Success") == 2, status
    shown = json.loads(dvc(root, "exp", "show", "--json"))
    experiments = [
        experiment["data"]
        for entry in shown
        for experiment_range in entry.get("experiments") or []
        for experiment in experiment_range["revs"]
    ]
    results = {
        experiment["params"]["params.yaml"]["data"]["train"]["learning_rate"]: experiment[
            "metrics"
        ]["metrics/evaluate.json"]["data"]["accuracy"]
        for experiment in experiments
    }
    assert set(results) == {0.001, 0.003}
    assert all(0.0 < accuracy <= 1.0 for accuracy in results.values())
    # The table a user reads: params and metrics as columns, best first.
    table = dvc(
        root,
        "exp",
        "show",
        "--csv",
        "--sort-by",
        "metrics/evaluate.json:accuracy",
        "--sort-order",
        "desc",
    )
    # csv, not split(","): a list param (folder.image_size [28, 28]) is one quoted cell.
    header, *lines = list(csv.reader(table.splitlines()))
    # DVC prefixes a column with its file only where two files share the name.
    accuracy_column = "accuracy"
    assert {"train.learning_rate", accuracy_column, "macro_avg.f1"} <= set(header), header
    rows = [dict(zip(header, line, strict=False)) for line in lines]
    swept = [row for row in rows if row["train.learning_rate"] in ("0.001", "0.003")]
    accuracies = [float(row[accuracy_column]) for row in swept]
    assert len(accuracies) == 2 and accuracies == sorted(accuracies, reverse=True)


class _RefusingProxyHandler(http.server.BaseHTTPRequestHandler):
    def _refuse(self):
        self.server.requests.append(f"{self.command} {self.path}")
        self.send_error(403)

    def do_GET(self):  # noqa: N802 (the names http.server calls)
        self._refuse()

    def do_POST(self):  # noqa: N802
        self._refuse()

    def do_HEAD(self):  # noqa: N802
        self._refuse()

    def do_CONNECT(self):  # noqa: N802
        self._refuse()

    def log_message(self, *args):
        pass


class RefusingProxy(http.server.ThreadingHTTPServer):
    """A proxy on 127.0.0.1 that forwards nothing: it notes each request and refuses it."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _RefusingProxyHandler)
        self.requests: list[str] = []

    def __enter__(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exception):
        self.shutdown()
        self.server_close()


# Chromium's own calls home (component updates, network time, sign-in), made
# whatever the page; with the proxy they fail like the page's would.
CHROMIUM_SERVICES = re.compile(
    r"^\S+ (https?://)?[^/]*\b(google\.com|googleapis\.com|gvt1\.com)\b"
)


def chromium_or_skip() -> str:
    chromium = shutil.which("chromium")
    if chromium is None:
        if os.environ.get("MNISTPIPE_REQUIRE_CHROMIUM"):
            pytest.fail("chromium is not installed (make test-packages installs it)")
        pytest.skip("chromium is not installed (make test-packages installs it)")
    return chromium


def test_dvc_plots_show_draws_every_plot_in_headless_chromium_with_no_network(project):
    chromium = chromium_or_skip()
    root, _ = project
    restore_committed_run(root)
    dvc(root, "plots", "show")
    # The page as DVC writes it from the repository's template (.dvc/config).
    page_path = root / "dvc_plots" / "index.html"
    page = page_path.read_text()
    assert re.findall(r"<script[^>]*\bsrc=", page) == []

    # The network is cut: every request, to loopback too, goes to a proxy that refuses it.
    with RefusingProxy() as proxy:
        result = subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--enable-logging=stderr",
                f"--proxy-server=http://127.0.0.1:{proxy.server_address[1]}",
                "--proxy-bypass-list=<-loopback>",
                "--virtual-time-budget=30000",
                "--dump-dom",
                page_path.as_uri(),
            ],
            capture_output=True,
            text=True,
            timeout=180,
        )

    rendered = result.stdout
    assert result.returncode == 0, result.stderr[-3000:]
    assert [request for request in proxy.requests if not CHROMIUM_SERVICES.match(request)] == []
    # Every Vega-Lite plot on the page drew its marks.
    vega_plots = page.count("vegaEmbed(")
    assert vega_plots >= 1
    assert rendered.count('class="marks"') == vega_plots, rendered[-3000:]
    assert "Uncaught" not in result.stderr, result.stderr[-3000:]
    # Every picture is on the page, as an image file DVC copied beside it.
    images = re.findall(r'<img src="([^"$]+)"', rendered)
    assert images
    for source in images:
        assert (root / "dvc_plots" / source).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_predict_on_real_test_images_saved_as_png_agrees_with_evaluate(project, tmp_path):
    root, _ = project
    restore_committed_run(root)
    test_images = read_images(root / "data" / "raw" / "t10k-images-idx3-ubyte")[:20]
    with open(root / "plots" / "predictions.csv", newline="") as stream:
        evaluated = [row["predicted"] for row in csv.DictReader(stream)][:20]
    pictures = []
    for index, image in enumerate(test_images):
        pictures.append(tmp_path / f"test-{index}.png")
        pictures[-1].write_bytes(tf.io.encode_png(image[..., np.newaxis]).numpy())

    result = run(root, sys.executable, "-m", "mnistpipe.predict", "--json", *map(str, pictures))

    predictions = json.loads(result.stdout)["predictions"]
    assert [prediction["top"][0]["class"] for prediction in predictions] == evaluated


def test_every_stage_ends_with_a_one_line_summary_and_logs_have_no_carriage_returns(project):
    _, first_run = project
    assert "\r" not in first_run
    lines = first_run.splitlines()
    for stage in ("download", "preprocess", "train", "evaluate", "export"):
        summaries = [line for line in lines if line.startswith(f"{stage}: ")]
        assert len(summaries) == 1, f"{stage}: {summaries}"
        assert re.search(r"\(\d+\.\d s\)$", summaries[0]), summaries[0]
    assert re.search(r"^epoch 1/1: loss \d", first_run, re.MULTILINE)


def training_process(root: Path) -> int | None:
    """The pid of the train stage running in ``root``, if one is."""
    for entry in Path("/proc").iterdir():
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            if b"stages/train.py" in command and (entry / "cwd").resolve() == root.resolve():
                return int(entry.name)
        except (OSError, ValueError):
            continue
    return None


def test_dvc_exp_show_reads_dvclive_metrics_while_training_runs_and_at_the_end(project):
    root, _ = project
    live_metrics = root / "dvclive" / "metrics.json"
    experiment = subprocess.Popen(
        # The train stage alone: its live metrics are the question, not what follows.
        [
            sys.executable,
            "-m",
            "dvc",
            "exp",
            "run",
            "-S",
            "train.epochs=3",
            "-n",
            "live-3",
            "train",
        ],
        cwd=root,
        env=command_environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    pid = None
    try:
        deadline = time.monotonic() + 300
        # DVC removes the stage's outputs before it runs it: the first metrics.json
        # that appears with the train stage running is this run's epoch 1.
        while time.monotonic() < deadline:
            pid = pid or training_process(root)
            if pid and live_metrics.exists() and '"step": 0' in live_metrics.read_text():
                break
            assert experiment.poll() is None, experiment.stdout.read()
            time.sleep(0.2)
        # Held still after epoch 1, so that what dvc reads is the running experiment's.
        os.kill(pid, signal.SIGSTOP)
        shown = json.loads(dvc(root, "exp", "show", "--json"))
        os.kill(pid, signal.SIGCONT)
        workspace = shown[0]
        assert workspace["rev"] == "workspace"
        running = workspace["data"]["metrics"]["dvclive/metrics.json"]["data"]
        assert running["step"] == 0 and set(running) == {"train", "eval", "step"}
    finally:
        if pid:
            os.kill(pid, signal.SIGCONT)
        output, _ = experiment.communicate(timeout=600)
    assert experiment.returncode == 0, output
    assert "epoch 3/3" in output
    # dvclive wrote no dvc.yaml entries of its own: the stage edits no tracked file.
    assert run(root, "git", "diff", "--stat", "HEAD", "--", "dvc.yaml").stdout == ""
    shown = json.loads(dvc(root, "exp", "show", "--json"))
    (saved,) = [
        experiment
        for row in shown
        for experiment in row.get("experiments") or []
        if experiment.get("name") == "live-3"
    ]
    final = saved["revs"][0]["data"]["metrics"]["dvclive/metrics.json"]["data"]
    assert final["step"] == 2 and 0 < final["eval"]["accuracy"] <= 1
