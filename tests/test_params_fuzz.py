"""Property-based tests: random values into every params key and every command argument.

Each result is the checked params (or a normal exit) or one PipelineError (one
``error:`` line) naming the key: never another exception, never a traceback.
"""

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mnistpipe import gate, predict
from mnistpipe.errors import PipelineError
from mnistpipe.params import SCHEMA, load_params
from tests.conftest import REPOSITORY

FUZZ = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
VALID = yaml.safe_load((REPOSITORY / "params.yaml").read_text())


def keys_of(schema: dict, prefix: str = "") -> list[str]:
    keys = []
    for key, rule in schema.items():
        keys.append(prefix + key)
        if isinstance(rule, dict):
            keys.extend(keys_of(rule, f"{prefix}{key}."))
    return keys


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["convnet", "npy", "fit", "nan", ".inf", "1e999", "０", "ünï", "\x00"]),
)
values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(max_size=8) | st.integers(), children, max_size=3)
    ),
    max_leaves=6,
)
# Raw YAML text for a value: tags, aliases, huge literals, things safe_dump never writes.
raw_yaml = st.sampled_from(
    [
        "!!python/object/apply:os.system ['true']",
        "!!binary aGVsbG8=",
        "!!set {a, b}",
        "!!timestamp 2001-12-14",
        "!!float 'nan'",
        "!!int '0x10'",
        "&a [*a]",
        "9" * 5000,
        "1e400",
        "-.inf",
        ".NaN",
        "[[[[[[[[[[[[1]]]]]]]]]]]]",
        "{? [1, 2] : 3}",
        "0o777",
        "0x_ff",
        "1_000",
        "'\\u2028'",
        '"\\ud800"',
        "!custom tag",
        "@",
        "{",
    ]
)


def params_with(key: str, value_text: str) -> str:
    """The valid params.yaml with the value at ``key`` replaced by the YAML ``value_text``."""
    marker = "__FUZZ_VALUE__"
    params = yaml.safe_load(yaml.safe_dump(VALID))
    section = params
    parts = key.split(".")
    for part in parts[:-1]:
        section = section[part]
    section[parts[-1]] = marker
    return (
        yaml.safe_dump(params, sort_keys=False)
        .replace(f"'{marker}'", value_text)
        .replace(marker, value_text)
    )


def assert_loads_or_names_the_key(path: Path, key: str) -> None:
    try:
        load_params(path)
    except PipelineError as error:
        message = str(error)
        assert "\n" not in message, message
        assert len(message) < 2000, message[:300]
        # The key, or the file when the YAML itself cannot be read.
        assert key in message or str(path) in message, message


@FUZZ
@given(key=st.sampled_from(keys_of(SCHEMA)), value=values)
def test_any_value_at_any_key_gives_the_params_or_one_error_naming_the_key(tmp_path, key, value):
    path = tmp_path / "params.yaml"
    text = yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()
    path.write_text(params_with(key, text))
    assert_loads_or_names_the_key(path, key)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(key=st.sampled_from(keys_of(SCHEMA)), text=raw_yaml)
def test_raw_yaml_tags_and_literals_give_the_params_or_one_error(tmp_path, key, text):
    path = tmp_path / "params.yaml"
    path.write_text(params_with(key, text))
    assert_loads_or_names_the_key(path, key)


@pytest.mark.parametrize(
    ("key", "value", "fragment"),
    [
        ("seed", 2**40, "expected an integer <= 4,294,967,295"),
        ("train.batch_size", 10**12, "train.batch_size"),
        ("train.shuffle_buffer", 10**12, "train.shuffle_buffer"),
        ("preprocess.shard_size", 10**12, "preprocess.shard_size"),
        ("preprocess.limit", 10**12, "preprocess.limit"),
        ("train.learning_rate", "1" + "0" * 400, "expected a number in (0, 10]"),
        # PyYAML itself refuses an integer longer than Python converts: the file is named.
        ("train.epochs", "9" * 5000, "5000 digits"),
    ],
)
def test_sizes_far_beyond_the_data_or_the_machine_are_refused_at_load(
    tmp_path, key, value, fragment
):
    path = tmp_path / "params.yaml"
    path.write_text(params_with(key, str(value)))
    with pytest.raises(PipelineError) as raised:
        load_params(path)
    message = str(raised.value)
    assert fragment in message and (key in message or str(path) in message), message


def exit_status(main, arguments: list[str]) -> int:
    """main(argv)'s status; argparse's own SystemExit (2 for bad arguments) counts too."""
    try:
        return main(arguments)
    except SystemExit as leaving:
        return leaving.code if isinstance(leaving.code, int) else 2


arguments = st.lists(
    st.one_of(
        st.text(max_size=30),
        st.sampled_from(["--json", "--no-invert", "--model", "--help", "-", "--", "x.png"]),
    ),
    max_size=5,
)


@FUZZ
@given(argv=arguments)
def test_predict_arguments_give_a_status_never_a_traceback(tmp_path, monkeypatch, capsys, argv):
    monkeypatch.chdir(tmp_path)
    # No exported model here: every run ends in argparse's 2 or the one-line error 1.
    argv = [item for item in argv if "\x00" not in item]
    assert exit_status(predict.main, argv) in (0, 1, 2)
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr


tolerance_values = st.one_of(
    st.text(max_size=20),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-(10**400), max_value=10**400).map(str),
    st.sampled_from(["nan", "inf", "-0", "1e999", "0x10", "1_0", "٣"]),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(metric=st.text(max_size=20) | st.just("evaluate.accuracy"), value=tolerance_values)
def test_gate_tolerance_gives_a_status_never_a_traceback(
    tmp_path, monkeypatch, capsys, metric, value
):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(VALID))
    status = exit_status(
        gate.main,
        ["--against", "HEAD", "--tolerance", f"{metric}={value}", "--params", "params.yaml"],
    )
    # No git repository here: a good tolerance still ends in the one-line error 2.
    assert status == 2
    stderr = capsys.readouterr().err
    assert "Traceback" not in stderr
    assert (
        stderr.strip().split("\n")[-1].startswith(("error: ", "python -m mnistpipe.gate: error:"))
    ), stderr


def test_a_nan_tolerance_is_refused_naming_the_option(capsys):
    assert (
        exit_status(gate.main, ["--against", "HEAD", "--tolerance", "evaluate.accuracy=nan"]) == 2
    )
    assert "--tolerance" in capsys.readouterr().err
