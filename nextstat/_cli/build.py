"""``nextstat build`` (ntuple builder config) and ``nextstat trex-config`` (TRExFitter)."""

from __future__ import annotations

import click

from nextstat.cli import _emit, output_option

__all__ = ["register"]


def _progress_option(func):
    return click.option(
        "--progress/--no-progress",
        default=False,
        help="Print reading progress on stderr.",
    )(func)


@click.command("build")
@click.option(
    "--config",
    "config",
    required=True,
    metavar="FILE",
    help="Builder config (YAML or JSON): regions, samples, systematics.",
)
@click.option(
    "--base-dir",
    default=None,
    metavar="DIR",
    help="Directory that ntuple paths are relative to (default: the config's directory).",
)
@output_option
@_progress_option
def build_command(config, base_dir, output, progress):
    """Fill histograms from ROOT ntuples and write the pyhf workspace (JSON)."""
    from nextstat.ntuple.config import build_from_config

    ws = build_from_config(config, base_dir=base_dir, progress=True if progress else None)
    _emit(ws, output)


@click.command("trex-config")
@click.option("--config", "config", required=True, metavar="FILE", help="TRExFitter .config file.")
@click.option(
    "--base-dir",
    default=None,
    metavar="DIR",
    help="Directory that ntuple / histogram paths are relative to "
    "(default: the config's directory).",
)
@output_option
@click.option(
    "--report",
    default=None,
    metavar="FILE",
    help="Write the report of keys and blocks that were not understood (JSON).",
)
@_progress_option
def trex_command(config, base_dir, output, report, progress):
    """Import a TRExFitter config (ReadFrom NTUP or HIST) as a pyhf workspace (JSON).

    Keys and blocks that were not used are listed with their line numbers on stderr
    (and in --report FILE).
    """
    from nextstat.ntuple.trex import trex_to_workspace

    ws, rep = trex_to_workspace(config, base_dir=base_dir, progress=True if progress else None)
    for item in rep["ignored"]:
        click.echo(
            f"nextstat: note: {rep['config']}:{item['line']}: ignored {item['what']} "
            f"({item['reason']})",
            err=True,
        )
    if report is not None:
        _emit(rep, report)
    _emit(ws, output)


def register(cli) -> None:
    """Add ``build`` and ``trex-config`` to the main group."""
    cli.add_command(build_command)
    cli.add_command(trex_command)
