"""Entry point: ``liteship <command>``.

Commands are imported only when invoked, so ``liteship --help`` and device-side commands never import
TensorFlow. Each command module holds a click command (or group) named ``cli``.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before anything could import TensorFlow

# name -> (module, one-line help shown by `liteship --help` without importing the module)
COMMANDS: dict[str, tuple[str, str]] = {
    "convert": (
        "liteship.cli.convert",
        "Convert a Keras/SavedModel, PyTorch or float .tflite model with a quantization recipe.",
    ),
    "inspect": (
        "liteship.cli.inspect",
        "Describe a .tflite: I/O, ops, quantization, deployability per target.",
    ),
    "run": (
        "liteship.cli.run",
        "Run a .tflite on an input (.npy or image) with LiteRT and print the result.",
    ),
    "validate": (
        "liteship.cli.validate",
        "Compare a converted model with its reference on a dataset; gates.",
    ),
    "bench": ("liteship.cli.bench", "Benchmark one or more models: init, latency percentiles, memory."),
    "pipeline": (
        "liteship.cli.pipeline",
        "Convert, validate, benchmark, select, package: from liteship.yaml.",
    ),
    "metadata": (
        "liteship.cli.metadata",
        "Show or write standard TFLite metadata (labels, normalization, …).",
    ),
    "keygen": ("liteship.cli.package", "Create an ed25519 key pair for signing packages."),
    "package": ("liteship.cli.package", "Build a signed, versioned package from a .tflite."),
    "verify": ("liteship.cli.package", "Verify a package's signature and every file's hash."),
    "serve": ("liteship.cli.fleet", "Start the fleet (OTA) server."),
    "fleet": ("liteship.cli.fleet", "Talk to a fleet server: publish, rollouts, devices, drift."),
    "agent": ("liteship.cli.agent", "Run the device agent, or show its status."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module_name, short = COMMANDS[name]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name and e.name.startswith("liteship"):
                return _unavailable(name, short, f"{module_name} is not part of this build")
            return _unavailable(
                name,
                short,
                f"it needs {e.name!r}, which is not installed "
                f"(install liteship[all], or the extra this command belongs to)",
            )
        cmd = getattr(module, name.replace("-", "_") + "_cmd", None) or module.cli
        return cmd

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple:
        name = click.utils.make_str(args[0]) if args else ""
        if name and name not in COMMANDS and not name.startswith("-"):
            import difflib

            close = difflib.get_close_matches(name, list(COMMANDS), n=2)
            hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            raise click.UsageError(f"no such command {name!r}.{hint} See `liteship --help`.", ctx)
        return super().resolve_command(ctx, args)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(n, h) for n, (_, h) in COMMANDS.items()])


def _unavailable(name: str, short: str, why: str) -> click.Command:
    @click.command(name=name, help=short, context_settings={"ignore_unknown_options": True})
    @click.argument("args", nargs=-1, type=click.UNPROCESSED)
    def cmd(args: tuple[str, ...]) -> None:
        click.echo(f"error: `liteship {name}` is unavailable: {why}.", err=True)
        sys.exit(1)

    return cmd


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--verbose", "-v", is_flag=True, help="Show tracebacks and library logs.")
@click.version_option(package_name="liteship")
@click.pass_context
def cli(ctx: click.Context, verbose: bool) -> None:
    """liteship: take a trained model (TensorFlow/Keras, PyTorch, float .tflite) to a fleet of edge devices.

    \b
    Typical flow:
      liteship convert model.keras -o model.tflite --quantize int8 --calibration data/
      liteship validate model.tflite --reference model.keras --data val.npz
      liteship bench model.tflite
      liteship pipeline run liteship.yaml

    Exit codes: 0 ok, 1 error, 2 usage error, 3 a quality gate failed.
    """
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        os.environ["LITESHIP_VERBOSE"] = "1"


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; LiteshipError becomes a one-line message and its exit code."""
    from liteship.cli._common import run_cli

    run_cli(cli, argv)


if __name__ == "__main__":
    main()
