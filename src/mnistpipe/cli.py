"""``mnistpipe``: the project's tools beside dvc, as one command.

    mnistpipe predict IMAGE ...      the three likeliest classes of each image
    mnistpipe gate --against REV     the quality gate against a git revision
    mnistpipe release VERSION        register the exported model with GTO
    mnistpipe experiments            the experiments with the figures that decide

Each subcommand is the module's own ``main(argv)`` (``python -m mnistpipe.predict``
and ``python -m mnistpipe.gate`` still work); ``mnistpipe COMMAND --help`` shows its
options. Bad arguments give one ``error:`` line and exit status 2.

The benchmark is no command of the installed package: it lives in the repository's
``bench/``, beside the tutorial code it measures, and runs as ``python -m bench``
(``make bench``) from the project's root.
"""

import argparse
import contextlib
import importlib.metadata
import sys
from collections.abc import Callable, Iterator

from mnistpipe.errors import PipelineError


def _predict(argv: list[str]) -> int:
    from mnistpipe import predict

    return predict.main(argv)


def _gate(argv: list[str]) -> int:
    from mnistpipe import gate

    return gate.main(argv)


def _release(argv: list[str]) -> int:
    from mnistpipe import release

    return release.main(argv)


def _experiments(argv: list[str]) -> int:
    from mnistpipe import experiments

    return experiments.main(argv)


COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "predict": (_predict, "the three likeliest classes of each image (PNG, JPEG, IDX)"),
    "gate": (_gate, "compare the metrics with a git revision's and check the bar"),
    "release": (_release, "register the exported model as a version with GTO"),
    "experiments": (_experiments, "DVC's experiments, a line each with the figures that decide"),
}


@contextlib.contextmanager
def one_line_argument_errors(command: str) -> Iterator[None]:
    """Make every argparse parser used meanwhile name itself ``command``, and report a bad
    argument on one line.

    argparse prints its usage block and then the error; a user gets the one line the
    project promises, and ``--help`` for the rest, whose usage line says
    ``mnistpipe predict``, not ``python -m mnistpipe.predict``. The subcommands build
    their own parsers (they are also run as ``python -m``), so their class is patched,
    not each.
    """

    def error(parser: argparse.ArgumentParser, message: str) -> None:
        parser.exit(2, f"error: {command}: {message}; see {command} --help\n")

    def parse_known_args(parser: argparse.ArgumentParser, *arguments, **options):
        parser.prog = command
        return original_parse(parser, *arguments, **options)

    original_error = argparse.ArgumentParser.error
    original_parse = argparse.ArgumentParser.parse_known_args
    argparse.ArgumentParser.error = error
    argparse.ArgumentParser.parse_known_args = parse_known_args
    try:
        yield
    finally:
        argparse.ArgumentParser.error = original_error
        argparse.ArgumentParser.parse_known_args = original_parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="mnistpipe",
        description="The project's tools beside dvc, as one command.",
        epilog="\n".join(f"  {name:<9}{summary}" for name, (_, summary) in COMMANDS.items()),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"mnistpipe {importlib.metadata.version('mnistpipe')}",
    )
    parser.add_argument("command", choices=sorted(COMMANDS), metavar="COMMAND")
    parser.add_argument(
        "arguments", nargs=argparse.REMAINDER, metavar="...", help="the command's arguments"
    )
    argv = sys.argv[1:] if argv is None else argv
    with one_line_argument_errors("mnistpipe"):
        if not argv:
            parser.error(f"expected a command: {', '.join(COMMANDS)}")
        arguments = parser.parse_args(argv)
    function = COMMANDS[arguments.command][0]
    with one_line_argument_errors(f"mnistpipe {arguments.command}"):
        try:
            return function(arguments.arguments)
        except PipelineError as error:
            print(f"error: {error}", file=sys.stderr)
            return 1


if __name__ == "__main__":
    raise SystemExit(main())
