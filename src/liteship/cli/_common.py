"""Shared CLI plumbing: error handling, JSON output, consoles, progress, option parsers."""

from __future__ import annotations

import json
import logging
import os
import sys
import warnings
from typing import Any

import click
from rich.console import Console

from liteship.errors import LiteshipError
from liteship.types import to_jsonable

# Piped output (CI logs, files) gets 120 columns instead of rich's default 80; a terminal uses its width
# (COLUMNS overrides both).
_WIDTH = None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 120
console = Console(stderr=False, highlight=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, width=_WIDTH)


def quiet_tensorflow() -> None:
    """Silence TensorFlow/absl logging so users see liteship's output."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    logging.getLogger("absl").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module=r"(keras|tensorflow).*")


# Library messages speak of parameters (STYLE.md); on the command line the same advice names flags.
PARAMETER_FLAGS = {
    "liteship.inspect_model": "`liteship inspect`",
    "allow_select_tf_ops": "--allow-select-tf-ops",
    "allow_custom_ops": "--allow-custom-ops",
    "delegate_fallback=True": "--delegate-fallback",
    "keep_float_layers": "--keep-float",
    "LITESHIP_VERBOSE=1 (the CLI's -v)": "-v",
}


def as_cli_message(message: str) -> str:
    """Rewrite parameter names in a library message into the flags a CLI user types."""
    for param, flag in PARAMETER_FLAGS.items():
        message = message.replace(param, flag)
    return message


def run_cli(cli: click.Command, argv: list[str] | None = None) -> None:
    """Invoke ``cli``; turn errors into one ``error: …`` line on stderr and an exit code.

    LiteshipError → its exit code (1, usage 2, failed gate 3); an OSError (a path that cannot be read or
    written) → 1 with the path and the reason; anything else is a bug in liteship → 1 with a request to
    rerun with ``-v`` (which shows the traceback) and report it. Never a bare traceback.
    """
    from rich.markup import escape

    args = sys.argv[1:] if argv is None else argv
    verbose = "--verbose" in args or "-v" in args or bool(os.environ.get("LITESHIP_VERBOSE"))
    if not verbose:
        quiet_tensorflow()

    def fail(message: str, code: int) -> None:
        if verbose:
            import traceback

            traceback.print_exc()
        text = escape(as_cli_message(message))
        err_console.print(f"[bold red]error:[/] {text}", highlight=False, soft_wrap=True)
        sys.exit(code)

    try:
        cli.main(args=args, prog_name="liteship", standalone_mode=False)
    except LiteshipError as e:
        fail(str(e), e.exit_code)
    except click.exceptions.Abort as e:
        if isinstance(e.__cause__, EOFError) or isinstance(e.__context__, EOFError):
            # click turns any EOFError into Abort; only Ctrl-D at a prompt is the user's abort, and
            # liteship never prompts: this is a file that ended early (e.g. an empty .npy)
            cause = e.__cause__ or e.__context__
            fail(
                f"an input file ended before its data did (EOFError: {cause or 'empty file'}): it is empty "
                "or truncated. Check the files given (e.g. --input, --golden) and write them again.",
                1,
            )
        err_console.print("aborted.")
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        err_console.print("interrupted.")
        sys.exit(130)
    except OSError as e:
        where = f" {e.filename!r}" if getattr(e, "filename", None) else ""
        fail(f"cannot use{where}: {e.strerror or e}. Check the path and its permissions.", 1)
    except Exception as e:  # a bug: say so plainly instead of dumping a traceback on the user
        fail(
            f"internal error ({type(e).__name__}: {e}). This is a bug in liteship; rerun with -v to see "
            "the traceback and please report it.",
            1,
        )
    sys.exit(0)


def emit_json(obj: Any) -> None:
    """Print a report (dataclass with ``to_dict`` or plain data) as JSON on stdout."""
    data = obj.to_dict() if hasattr(obj, "to_dict") else to_jsonable(obj)
    click.echo(json.dumps(data, indent=2, sort_keys=False))


class FiniteRange(click.FloatRange):
    """A float in a range that is also finite (click's FloatRange lets NaN through every bound)."""

    name = "finite float range"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        import math

        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number; expected {self._describe_range()}.", param, ctx)
        return super().convert(number, param, ctx)


class ExistingPath(click.Path):
    """A path that must exist: a missing one is bad input (exit 1), the same for every command.

    click's ``Path(exists=True)`` makes it a usage error (exit 2), while commands that open the file
    themselves (inspect, run, convert, …) exit 1; docs/decisions.md (issue 21, item 15) chose 1.
    A file given where a folder is expected, or the reverse, is bad input too.
    """

    def __init__(self, *, file_okay: bool = True, dir_okay: bool = True, path_type: Any = None) -> None:
        super().__init__(exists=False, file_okay=file_okay, dir_okay=dir_okay, path_type=path_type)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        from pathlib import Path

        path = Path(os.fsdecode(value))
        what = param.human_readable_name if param is not None else "path"
        if not path.exists():
            raise LiteshipError(f"{what} {str(path)!r} does not exist.", hint="Check the path.")
        if path.is_dir() and not self.dir_okay:
            raise LiteshipError(f"{what} {str(path)!r} is a folder; expected a file.", hint="Check the path.")
        if not path.is_dir() and not self.file_okay:
            raise LiteshipError(f"{what} {str(path)!r} is a file; expected a folder.", hint="Check the path.")
        return super().convert(value, param, ctx)


json_option = click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")


def parse_floats(value: str | None, what: str) -> tuple[float, ...] | None:
    """Parse ``"127.5"`` or ``"123.7,116.3,103.5"`` into floats; usage error otherwise."""
    if value is None:
        return None
    try:
        return tuple(float(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(
            f"{what} must be a number or comma-separated numbers, got {value!r}."
        ) from None


def parse_ints(value: str | None, what: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    try:
        return tuple(int(v) for v in value.split(","))
    except ValueError:
        raise click.BadParameter(
            f"{what} must be an integer or comma-separated integers, got {value!r}."
        ) from None
