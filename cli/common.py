"""What both command-line apps share: the consoles, one logging set-up, one error handler
(the project's errors become one line and exit code 2), the command class that applies them
to every command, and option defaults read from the dataclasses that own them."""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.text import Text
from typer.core import TyperCommand, TyperGroup

from unitaf_pipelines.runtime import lost_cluster_process

# Markup and emoji codes off: what is printed includes names and texts from datasets that
# someone else made, which must appear as written, never as rich markup.
console = Console(markup=False, emoji=False)
errors = Console(stderr=True, markup=False, emoji=False)

# Errors that mean "this input or this state cannot be used": one line, exit code 2.
# Anything else is a bug: one line saying so, exit code 3 (the traceback with -v).
USER_ERRORS = (ValueError, OSError, RuntimeError, KeyError, ImportError)
BUG_EXIT = 3
TOOLKIT_LOGGERS = ("unitaf_data", "unitaf_model", "unitaf_pipelines", "unitaf_cli")

Verbose = Annotated[bool, typer.Option(
    "--verbose", "-v", help="Debug logs (one line per rejected item) and, on an error, "
                            "its traceback.")]
Public = Annotated[bool, typer.Option(
    "--public", help="Create a new Hub repository public (default: private). An existing "
                     "repository keeps its visibility.")]


def field_defaults(cls: type) -> SimpleNamespace:
    """The defaults a dataclass declares, by field name (fields without one are left out),
    so that a command-line option shows and passes the value the dataclass owns."""
    found = {}
    for spec in dataclasses.fields(cls):
        if spec.default is not dataclasses.MISSING:
            found[spec.name] = spec.default
        elif spec.default_factory is not dataclasses.MISSING:
            found[spec.name] = spec.default_factory()
    return SimpleNamespace(**found)


class _PlainLines(logging.Handler):
    """`time level logger: message` lines, unwrapped, on the stderr of the moment."""

    def emit(self, record: logging.LogRecord) -> None:
        errors.out(self.format(record), highlight=False)


def setup_logging(verbose: bool) -> None:
    """The toolkit's loggers at INFO (DEBUG with -v), other libraries at WARNING; rich lines
    on a terminal, plain timestamped lines otherwise (logs, CI)."""
    if errors.is_terminal:
        handler: logging.Handler = RichHandler(console=errors, show_path=False, markup=False)
    else:
        handler = _PlainLines()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: "
                                               "%(message)s", "%H:%M:%S"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler], force=True)
    for name in TOOLKIT_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.INFO)


def error_line(error: BaseException) -> str:
    """The message of `error`, without the remote traceback Ray wraps a task's error in."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, BaseException):
        error = cause
    if isinstance(error, KeyError) and error.args:
        return f"missing {error.args[0]!r}"
    return str(error) or type(error).__name__


@contextmanager
def user_errors(verbose: bool = False) -> Iterator[None]:
    """The project's errors as `error: MESSAGE` on stderr and exit code 2; any other error
    is a bug, never bad input: `internal error: TYPE: MESSAGE` and exit code 3. Under -v the
    traceback comes first. typer's own exits pass through."""
    try:
        yield
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except USER_ERRORS as error:
        if verbose:
            errors.print_exception()
        errors.print(Text.assemble(("error: ", "bold red"), error_line(error)), soft_wrap=True)
        raise typer.Exit(2) from error
    except Exception as error:
        if lost_cluster_process(error):
            errors.print(Text.assemble(
                ("error: ", "bold red"), f"the cluster lost a node or worker mid-run "
                f"({type(error).__name__}: {error_line(error)}); finished work is kept: rerun "
                "the same command to resume"), soft_wrap=True)
            raise typer.Exit(2) from error
        # a programming error: surfaced as one, never as bad input
        if verbose:
            errors.print_exception()
        errors.print(Text.assemble(("internal error: ", "bold red"),
                                   f"{type(error).__name__}: {error_line(error)}",
                                   " (a bug in unitaf, not a problem with the input"
                                   f"{'' if verbose else '; -v shows the traceback'})"),
                     soft_wrap=True)
        raise typer.Exit(BUG_EXIT) from error


def say(*parts: str | tuple[str, str]) -> None:
    """One line on stdout: plain strings, or (text, style) pairs."""
    console.print(Text.assemble(*parts), soft_wrap=True)


def print_visibility(private: bool, restrictions: list[str]) -> None:
    """How a push creates its repository, and the restricted terms of what it publishes."""
    say("a new repository is created ", ("private" if private else "PUBLIC", "bold"),
        "" if private else " (--public)", "; an existing one keeps its visibility")
    for line in restrictions:
        say(("restricted terms: ", "bold yellow"), line)


def _no_type(ctx) -> None:
    return None


class _NoFlagTypes:
    """Typer 0.29 labels every flag `<bool>` in help (--help included), shows an argument's
    type (`<path>`) beside its metavar and writes it `{METAVAR}` in the usage line: flags
    show no type, and a named argument shows its metavar alone."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
            elif param.param_type_name == "argument" and param.metavar:
                param.display_type_rich = _no_type
                param._usage_display_name = functools.partial(str, param.metavar)
        return params


class Command(_NoFlagTypes, TyperCommand):
    """Every command: logging set up once, the project's errors as one line and exit code 2
    (`-v`, where the command has it, adds debug logs and the traceback)."""

    def invoke(self, ctx):
        verbose = bool(ctx.params.get("verbose"))
        setup_logging(verbose)
        with user_errors(verbose):
            return super().invoke(ctx)


class Group(_NoFlagTypes, TyperGroup):
    pass


def make_app(help: str) -> App:
    return App(help=help, cls=Group, no_args_is_help=True, rich_markup_mode="markdown",
               pretty_exceptions_show_locals=False)


class App(typer.Typer):
    """A Typer app whose commands are `Command`s."""

    def command(self, *args: Any, **kwargs: Any):
        return super().command(*args, cls=kwargs.pop("cls", Command), **kwargs)
