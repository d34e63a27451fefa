"""MkDocs hook: the reference pages, written from the code at every build, never by hand.

A page holds a marker line, ``<!-- generated: params -->`` (or ``commands``, ``make``), and
the build replaces it with:

- params: every key of ``params.SCHEMA`` with its type and range (from the rule the schema
  checks it with), its default (the value in ``params.yaml``) and its meaning (the comment
  beside the key in ``params.yaml``, or the comment block just above it);
- commands: the ``--help`` of ``mnistpipe`` and of each of its commands, and of the modules
  the Makefile runs with ``python -m``;
- make: the targets ``make help`` lists.

A new param, command or target so appears on the next build. A key without a comment in
``params.yaml`` fails the build (strict or not), naming the key. ``tests/test_docs.py``
checks the built pages against the schema.
"""

import concurrent.futures
import math
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPOSITORY = Path(__file__).resolve().parents[2]
MARKER = re.compile(r"^<!-- generated: (\w+) -->$", re.M)

# Modules the Makefile runs with `python -m`, beside the `mnistpipe` command.
MODULES = ("mnistpipe.remote", "mnistpipe.report", "bench")


def help_commands() -> list[tuple[str, tuple[str, ...]]]:
    """(what a user types, the arguments of ``python`` that print its help), in page order.

    ``mnistpipe COMMAND`` for every command of ``cli.COMMANDS``, so that a new one appears
    here by itself; ``python -m mnistpipe.cli`` is what the ``mnistpipe`` script runs.
    """
    from mnistpipe.cli import COMMANDS

    commands = [("mnistpipe", ("-m", "mnistpipe.cli"))]
    commands += [(f"mnistpipe {name}", ("-m", "mnistpipe.cli", name)) for name in COMMANDS]
    commands += [(f"python -m {module}", ("-m", module)) for module in MODULES]
    return commands


class ReferenceError(Exception):
    """The code and its documentation disagree (a param without a meaning, a failing --help)."""


# ---------------------------------------------------------------- params


def schema_keys(schema: dict, prefix: str = "") -> dict[str, Any]:
    """Every leaf of the (nested) schema, by its dotted key: ``{"train.epochs": Integer(...)}``."""
    keys = {}
    for name, rule in schema.items():
        if isinstance(rule, dict):
            keys.update(schema_keys(rule, f"{prefix}{name}."))
        else:
            keys[f"{prefix}{name}"] = rule
    return keys


def _number(value: float) -> str:
    if math.isinf(value):
        return "∞"
    if float(value).is_integer() and abs(value) >= 10_000:
        return f"{int(value):,}"
    return f"{value:g}"


def describe_rule(rule: Any) -> str:
    """The type and range a schema rule accepts, in words."""
    kind = type(rule).__name__
    if kind == "Integer":
        low, high = rule.minimum, rule.maximum
        if low is not None and high is not None:
            return f"integer, {_number(low)} to {_number(high)}"
        if low is not None:
            return f"integer ≥ {_number(low)}"
        return "integer"
    if kind == "Number":
        if math.isinf(rule.maximum):
            sign = ">" if rule.exclusive_minimum else "≥"
            return f"number {sign} {_number(rule.minimum)}"
        low = "(" if rule.exclusive_minimum else "["
        high = ")" if rule.exclusive_maximum else "]"
        return f"number in {low}{_number(rule.minimum)}, {_number(rule.maximum)}{high}"
    if kind == "Choice":
        return "one of " + ", ".join(f"`{choice}`" for choice in rule.allowed)
    if kind == "Flag":
        return "`true` or `false`"
    # A rule of another kind says what it accepts in its docstring's first line.
    doc = (type(rule).__doc__ or "").strip()
    return doc.splitlines()[0].rstrip(".") if doc else kind


def yaml_comments(text: str) -> dict[str, str]:
    """The comment of each key of a YAML file, by dotted key.

    The comment on the key's line wins; else the comment lines just above the key at its
    indentation (no blank line between). Only block mappings, as params.yaml is written.
    """
    comments: dict[str, str] = {}
    path: list[tuple[int, str]] = []
    block: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            block = []
            continue
        if stripped.startswith("#"):
            block.append(stripped.lstrip("#").strip())
            continue
        match = re.match(r"( *)([^\s:#][^:#]*?):(?:\s|$)(.*)", line)
        if not match:
            block = []
            continue
        indent, key, rest = len(match[1]), match[2].strip(), match[3]
        while path and path[-1][0] >= indent:
            path.pop()
        path.append((indent, key))
        dotted = ".".join(name for _, name in path)
        trailing = rest.split(" #", 1)[1].strip() if " #" in f" {rest}" else ""
        if rest.lstrip().startswith("#"):
            trailing = rest.lstrip().lstrip("#").strip()
        comment = trailing or " ".join(block)
        if comment:
            comments[dotted] = comment
        block = []
    return comments


def _default(value: Any) -> str:
    if isinstance(value, dict):
        return "<br>".join(f"`{key}: {_default(item).strip('`')}`" for key, item in value.items())
    shown = yaml.safe_dump(value, default_flow_style=True, width=1000).strip()
    shown = shown.removesuffix("\n...").removesuffix("...").strip()
    return f"`{shown}`"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def params_reference(root: Path = REPOSITORY) -> str:
    """The params table: key, type and range, default, meaning."""
    from mnistpipe.params import SCHEMA

    params_text = (root / "params.yaml").read_text(encoding="utf-8")
    defaults = yaml.safe_load(params_text)
    comments = yaml_comments(params_text)
    rows = ["| key | type and range | default | meaning |", "|---|---|---|---|"]
    missing = []
    for key, rule in schema_keys(SCHEMA).items():
        value: Any = defaults
        for part in key.split("."):
            value = value[part]
        meaning = comments.get(key)
        if not meaning:
            missing.append(key)
            continue
        rows.append(
            # The span gives each key an anchor: reference/params.md#train-epochs.
            f'| <span id="{key.replace(".", "-")}"></span>`{key}` | {_cell(describe_rule(rule))} '
            f"| {_cell(_default(value))} | {_cell(meaning)} |"
        )
    if missing:
        raise ReferenceError(
            f"params.yaml has no comment for {', '.join(missing)}; expected one beside each "
            "key (or just above it) saying what it does: the params reference is made from it"
        )
    return "\n".join(rows) + "\n"


# ---------------------------------------------------------------- commands


def command_help(arguments: tuple[str, ...], root: Path = REPOSITORY) -> str:
    """What ``python ARGUMENTS --help`` prints, as a user sees it on a 100-column terminal."""
    environment = {**os.environ, "COLUMNS": "100", "PYTHONIOENCODING": "utf-8"}
    result = subprocess.run(
        [sys.executable, *arguments, "--help"],
        cwd=root,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise ReferenceError(
            f"python {' '.join(arguments)} --help exited with status {result.returncode}: "
            f"{result.stderr.strip()[-500:]}"
        )
    return result.stdout.rstrip() + "\n"


def commands_reference(root: Path = REPOSITORY) -> str:
    commands = help_commands()
    # Side by side: each is a Python start-up, predict's with TensorFlow's.
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        helps = list(pool.map(lambda command: command_help(command[1], root), commands))
    sections = []
    for (typed, _), help_text in zip(commands, helps, strict=True):
        sections.append(f"## `{typed}`\n\n```text\n$ {typed} --help\n{help_text}```\n")
    return "\n".join(sections)


# ---------------------------------------------------------------- make


def make_targets(root: Path = REPOSITORY) -> list[tuple[str, str]]:
    """(target, what it does) for each line of ``make help``."""
    result = subprocess.run(
        ["make", "--no-print-directory", "-s", "help"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if result.returncode != 0:
        raise ReferenceError(f"make help exited with status {result.returncode}: {result.stderr}")
    targets = []
    for line in result.stdout.splitlines():
        match = re.match(r"\s*make (\S+)\s+(.*)", line)
        if match:
            targets.append((match[1], match[2].strip()))
    if not targets:
        raise ReferenceError(f"make help listed no target: {result.stdout!r}")
    return targets


def make_reference(root: Path = REPOSITORY) -> str:
    rows = ["| command | what it does |", "|---|---|"]
    rows += [f"| `make {target}` | {_cell(summary)} |" for target, summary in make_targets(root)]
    return "\n".join(rows) + "\n"


GENERATORS = {
    "params": params_reference,
    "commands": commands_reference,
    "make": make_reference,
}


def generate(markdown: str, root: Path = REPOSITORY) -> str:
    """``markdown`` with each marker line replaced by what it names."""

    def replace(match: re.Match) -> str:
        name = match[1]
        if name not in GENERATORS:
            raise ReferenceError(f"unknown marker <!-- generated: {name} -->")
        return GENERATORS[name](root)

    return MARKER.sub(replace, markdown)


# ---------------------------------------------------------------- the MkDocs hook


def on_page_markdown(markdown, page, config, files):
    if not MARKER.search(markdown):
        return markdown
    from mkdocs.exceptions import PluginError

    try:
        return generate(markdown, Path(config["config_file_path"]).parent)
    except ReferenceError as error:
        raise PluginError(f"{page.file.src_path}: {error}") from None
