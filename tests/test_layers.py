"""The code keeps the layers docs/explanation/code-layout.md draws, and has no import circles.

The diagram there is the one definition of each module's layer (stages → commands → core
→ plumbing); this test reads it, reads every import of every module with Python's ``ast``
(imports inside functions too, where a circle hides best), and fails when a module is not
in the diagram, imports from a layer above its own, or takes part in a circle.
"""

import ast
import re
from pathlib import Path

import pytest

from tests.conftest import REPOSITORY

PACKAGE = REPOSITORY / "src" / "mnistpipe"
LAYOUT_PAGE = REPOSITORY / "docs" / "explanation" / "code-layout.md"
LAYER_ORDER = ("plumbing", "core", "commands", "stages")

# None: every circle is an error.
ALLOWED_CIRCLES: set[frozenset[str]] = set()


def diagram_layers(page: str) -> dict[str, list[str]]:
    """Layer → module names, from the first ``text`` block under "## The layers"."""
    section = page[page.index("## The layers") :]
    block = re.search(r"^```text\n(.*?)^```$", section, re.S | re.M)[1]
    layers: dict[str, list[str]] = {}
    current = None
    for line in block.splitlines():
        heading = re.match(r"^([a-z]+)\s{2,}([\w ]+)$", line)
        continuation = re.match(r"^\s+([\w ]+)$", line)
        if heading:
            current = heading[1]
            layers[current] = heading[2].split()
        elif continuation and current is not None:
            layers[current] += continuation[1].split()
    return layers


def module_name(path: Path) -> str:
    """The dotted name a file is imported as: mnistpipe.data, bench.arms, stages.train."""
    relative = path.relative_to(PACKAGE.parent if PACKAGE in path.parents else REPOSITORY)
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def our_files() -> list[Path]:
    return [
        *sorted(PACKAGE.glob("*.py")),
        *sorted((REPOSITORY / "bench").glob("*.py")),
        *sorted((REPOSITORY / "stages").glob("*.py")),
    ]


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The modules of ours that ``path`` imports, anywhere in it (functions included)."""

    def ours(name: str) -> str:
        # The longest module of ours that the name is or starts with: mnistpipe.errors for
        # mnistpipe.errors.shown; "" for a module of the standard library or a package.
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name

    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {ours(alias.name) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}: a relative import; write the module's full name"
            for alias in node.names:
                # `from mnistpipe import paths` imports the module mnistpipe.paths;
                # `from mnistpipe.errors import shown`, mnistpipe.errors.
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in known else ours(node.module))
        elif (
            isinstance(node, ast.Call)
            and ast.unparse(node.func) in ("importlib.import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            # importlib.import_module("bench.__main__") imports as surely as a statement.
            found.add(ours(str(node.args[0].value)))
    return found - {""}


def import_graph() -> dict[str, set[str]]:
    """Module → the modules of ours it imports, for the package, bench/ and stages/."""
    files = our_files()
    known = {module_name(path) for path in files}
    return {module_name(path): imports_of(path, known) - {module_name(path)} for path in files}


def layer_of() -> dict[str, str]:
    layers = diagram_layers(LAYOUT_PAGE.read_text())
    assert tuple(layers) == tuple(reversed(LAYER_ORDER)), list(layers)
    placed = {}
    for layer, names in layers.items():
        for name in names:
            module = f"stages.{name}" if layer == "stages" else f"mnistpipe.{name}"
            if name == "__init__":
                module = "mnistpipe"
            assert module not in placed, f"{name} is drawn in two layers"
            placed[module] = layer
    return placed


def test_the_diagram_places_every_module_of_the_package_and_every_stage_once():
    placed = layer_of()
    modules = {module_name(path) for path in our_files() if not path.parts[-2] == "bench"}
    assert set(placed) == modules, (
        f"not in the diagram: {sorted(modules - set(placed))}; "
        f"in the diagram, no such module: {sorted(set(placed) - modules)}"
    )


def test_every_import_goes_down_or_stays_in_its_layer():
    placed = layer_of()
    upward = []
    for module, imported in import_graph().items():
        if module not in placed:
            continue
        for target in imported:
            if target in placed and (
                LAYER_ORDER.index(placed[target]) > LAYER_ORDER.index(placed[module])
            ):
                upward.append(f"{module} ({placed[module]}) imports {target} ({placed[target]})")
    assert upward == []


def test_the_package_imports_neither_the_benchmark_nor_the_stages():
    outside = {
        f"{module} imports {target}"
        for module, imported in import_graph().items()
        if module.split(".")[0] == "mnistpipe"
        for target in imported
        if target.split(".")[0] in ("bench", "stages")
    }
    assert outside == set()


def strongly_connected_components(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's algorithm: the groups of modules that reach each other through imports."""
    index: dict[str, int] = {}
    lowest: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(node: str) -> None:
        index[node] = lowest[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                lowest[node] = min(lowest[node], lowest[target])
            elif target in on_stack:
                lowest[node] = min(lowest[node], index[target])
        if lowest[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_no_two_modules_import_each_other_directly_or_through_others():
    circles = [
        sorted(component)
        for component in strongly_connected_components(import_graph())
        if len(component) > 1 and frozenset(component) not in ALLOWED_CIRCLES
    ]
    assert circles == []


@pytest.mark.parametrize(
    ("graph", "circles"),
    [
        ({"a": {"b"}, "b": {"c"}, "c": set()}, []),
        ({"a": {"b"}, "b": {"c"}, "c": {"a"}}, [["a", "b", "c"]]),
        ({"a": {"b"}, "b": {"a"}, "c": {"a"}}, [["a", "b"]]),
    ],
)
def test_a_circle_through_others_is_found(graph, circles):
    found = [sorted(c) for c in strongly_connected_components(graph) if len(c) > 1]
    assert found == circles


def test_an_import_inside_a_function_counts(tmp_path):
    module = tmp_path / "module.py"
    module.write_text(
        "import os\n\ndef later():\n    from mnistpipe import errors\n    import mnistpipe.paths\n"
    )
    known = {"mnistpipe", "mnistpipe.errors", "mnistpipe.paths", "bench.arms"}
    assert imports_of(module, known) == {"mnistpipe.errors", "mnistpipe.paths"}
    module.write_text("import importlib\n\ndef f():\n    importlib.import_module('bench.arms')\n")
    assert imports_of(module, known) == {"bench.arms"}
