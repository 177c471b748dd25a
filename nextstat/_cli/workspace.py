"""Workspace-tool commands: combine, prune, rename, sort, digest, patchset, simplemodel, and
the Parquet conversions (pyhf CLI parity; see ``docs/workspace-tools.md``).

Workspaces are read from files (optionally gzip-compressed) or from stdin (``-``) and
written as JSON through :func:`nextstat.cli._emit` (stdout or ``--output``).
"""

from __future__ import annotations

import json
from typing import Any

import click

from nextstat.cli import UserError, _emit, _read_stdin, input_option, output_option

_JOINS = ("none", "outer", "left outer", "right outer")


def _read_workspace(source: str) -> dict:
    """A validated workspace from a path or ``-`` (stdin)."""
    from nextstat.model.workspace import load_workspace_spec

    if source == "-":
        return load_workspace_spec(_read_stdin())
    from pathlib import Path

    return load_workspace_spec(Path(source))


def _numbers(value: str, option: str) -> list[float]:
    """``"1,2,3"`` or ``"[1, 2, 3]"`` as a list of floats."""
    text = value.strip()
    try:
        parsed = json.loads(text) if text.startswith("[") else [
            float(v) for v in text.split(",") if v.strip()
        ]
    except ValueError:
        raise click.BadParameter(f"expected numbers like 1,2,3 or [1, 2, 3], got {value!r}",
                                 param_hint=option) from None
    if not isinstance(parsed, list) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in parsed
    ):
        raise click.BadParameter(f"expected a list of numbers, got {value!r}", param_hint=option)
    return [float(v) for v in parsed]


# --------------------------------------------------------------------------
# combine / prune / rename / sort / digest
# --------------------------------------------------------------------------


@click.command(short_help="Combine two workspaces (pyhf combine).")
@click.argument("workspace_one", metavar="WS1|-")
@click.argument("workspace_two", metavar="WS2|-")
@click.option("-j", "--join", type=click.Choice(_JOINS), default="none", show_default=True,
              help="How same-name channels, observations and measurements are joined.")
@click.option("--merge-channels/--no-merge-channels", default=False, show_default=True,
              help="Merge same-name channels sample by sample (outer joins only).")
@output_option
def combine(workspace_one: str, workspace_two: str, join: str, merge_channels: bool,
            output: str | None) -> None:
    """Combine two workspaces into one; prints the combined workspace.

    \b
    Example:
      nextstat combine sr.json cr.json --join outer -o combined.json
    """
    from nextstat.model.workspace_ops import combine as combine_ws

    if workspace_one == "-" and workspace_two == "-":
        raise UserError("only one of the two workspaces can come from stdin")
    left, right = _read_workspace(workspace_one), _read_workspace(workspace_two)
    _emit(combine_ws(left, right, join=join, merge_channels=merge_channels), output)


@click.command(short_help="Remove channels, samples, modifiers or measurements.")
@input_option
@click.option("-c", "--channel", multiple=True, metavar="NAME", help="Channel to remove.")
@click.option("-s", "--sample", multiple=True, metavar="NAME", help="Sample to remove.")
@click.option("-m", "--modifier", multiple=True, metavar="NAME", help="Modifier to remove.")
@click.option("-t", "--modifier-type", multiple=True, metavar="TYPE",
              help="Modifier type to remove (e.g. histosys).")
@click.option("--measurement", multiple=True, metavar="NAME", help="Measurement to remove.")
@output_option
def prune(input_path: str, channel: tuple, sample: tuple, modifier: tuple,
          modifier_type: tuple, measurement: tuple, output: str | None) -> None:
    """Remove parts of a workspace (options repeat); prints the pruned workspace.

    \b
    Example:
      nextstat prune -i ws.json -t shapesys -c VR
    """
    from nextstat.model.workspace_ops import prune as prune_ws

    ws = _read_workspace(input_path)
    _emit(prune_ws(ws, channels=channel, samples=sample, modifiers=modifier,
                   modifier_types=modifier_type, measurements=measurement), output)


def _pairs_option(flag: str, short: str | None, what: str):
    names = (short, flag) if short else (flag,)
    return click.option(*names, multiple=True, type=(str, str), metavar="OLD NEW",
                        help=f"Rename {what} OLD to NEW (repeatable).")


@click.command(short_help="Rename channels, samples, modifiers or measurements.")
@input_option
@_pairs_option("--channel", "-c", "channel")
@_pairs_option("--sample", "-s", "sample")
@_pairs_option("--modifier", "-m", "modifier (also in parameter configs and POIs)")
@_pairs_option("--measurement", None, "measurement")
@output_option
def rename(input_path: str, channel: tuple, sample: tuple, modifier: tuple,
           measurement: tuple, output: str | None) -> None:
    """Rename parts of a workspace; prints the renamed workspace.

    \b
    Example:
      nextstat rename -i ws.json -m mu mu_sig -c SR SR_2024
    """
    from nextstat.model.workspace_ops import rename as rename_ws

    ws = _read_workspace(input_path)
    _emit(rename_ws(ws, channels=dict(channel), samples=dict(sample),
                    modifiers=dict(modifier), measurements=dict(measurement)), output)


@click.command(short_help="Sort a workspace by names (pyhf sort).")
@input_option
@output_option
def sort(input_path: str, output: str | None) -> None:
    """Sort channels, samples, modifiers, measurements, parameters and observations by name."""
    from nextstat.model.workspace_ops import sorted_workspace

    _emit(sorted_workspace(_read_workspace(input_path)), output)


@click.command(short_help="Hash of a workspace, as recorded in pyhf patchsets.")
@input_option
@click.option("-a", "--algorithm", multiple=True, default=("sha256",), show_default=True,
              help="hashlib algorithm (repeatable), e.g. sha256, md5.")
@click.option("--plaintext", is_flag=True, help="Print 'algorithm:digest' lines, not JSON.")
@output_option
def digest(input_path: str, algorithm: tuple, plaintext: bool, output: str | None) -> None:
    """Digest of the workspace: the hash of its JSON with sorted keys (pyhf digest).

    Prints {"sha256": "..."}; with --plaintext, lines like sha256:....
    """
    from nextstat.model.workspace_ops import digest as digest_ws

    ws = _read_workspace(input_path)
    digests = {alg: digest_ws(ws, alg) for alg in algorithm}
    if plaintext:
        text = "\n".join(f"{alg}:{value}" for alg, value in digests.items())
        if output is None or output == "-":
            click.echo(text)
        else:
            from pathlib import Path

            Path(output).write_text(text + "\n", encoding="utf-8")
        return
    _emit(digests, output)


# --------------------------------------------------------------------------
# patchsets
# --------------------------------------------------------------------------


@click.group(short_help="List or apply the patches of a pyhf patchset.")
def patchset() -> None:
    """Patchsets: signal patches for a background-only workspace (pyhf schema 1.0.0)."""


@patchset.command("list", short_help="List the patches of a patchset.")
@click.argument("patchset_path", metavar="PATCHSET")
@output_option
def patchset_list(patchset_path: str, output: str | None) -> None:
    """Print the patchset's labels, digests and patches (name and values) as JSON."""
    from nextstat.model.workspace_ops import load_patchset

    ps = load_patchset(patchset_path)
    _emit({"labels": ps.labels, "digests": ps.digests, "description": ps.description,
           "patches": [{"name": p.name, "values": list(p.values)} for p in ps]}, output)


@patchset.command("apply", short_help="Apply one patch to a background-only workspace.")
@input_option
@click.argument("patchset_path", metavar="PATCHSET")
@click.option("--name", required=True, metavar="NAME", help="The patch to apply.")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Check the workspace digest recorded in the patchset first.")
@output_option
def patchset_apply(input_path: str, patchset_path: str, name: str, verify: bool,
                   output: str | None) -> None:
    """Apply patch NAME of PATCHSET to the background-only workspace; prints the result.

    \b
    Example:
      nextstat patchset apply -i BkgOnly.json patchset.json --name C1N2_Wh_hbb_700_200
    """
    from nextstat.model.workspace_ops import apply_patch

    ws = _read_workspace(input_path)
    _emit(apply_patch(ws, patchset_path, name, verify=verify), output)


@patchset.command("verify", short_help="Check a workspace against a patchset's digests.")
@input_option
@click.argument("patchset_path", metavar="PATCHSET")
def patchset_verify(input_path: str, patchset_path: str) -> None:
    """Exit 0 and print {"verified": true} if the workspace is the one the patchset expects."""
    from nextstat.model.workspace_ops import load_patchset

    load_patchset(patchset_path).verify(_read_workspace(input_path))
    _emit({"verified": True}, None)


# --------------------------------------------------------------------------
# simple models
# --------------------------------------------------------------------------


@click.group(short_help="One-channel signal + background workspaces (pyhf simplemodels).")
def simplemodel() -> None:
    """Write the workspaces of pyhf.simplemodels; numbers as 1,2,3 or [1, 2, 3]."""


def _numbers_option(flag: str, help_text: str, required: bool = True):
    return click.option(flag, required=required, metavar="N,N,...", help=help_text)


@simplemodel.command("uncorrelated")
@_numbers_option("--signal", "Signal yields per bin.")
@_numbers_option("--bkg", "Background yields per bin.")
@_numbers_option("--bkg-uncertainty", "Absolute background uncertainty per bin (shapesys).")
@_numbers_option("--observations", "Observed counts (default: the background).", False)
@output_option
def simplemodel_uncorrelated(signal: str, bkg: str, bkg_uncertainty: str,
                             observations: str | None, output: str | None) -> None:
    """Signal (normfactor mu) + background with an uncorrelated shapesys."""
    from nextstat.model.simplemodels import uncorrelated_background

    obs = None if observations is None else _numbers(observations, "--observations")
    _emit(uncorrelated_background(_numbers(signal, "--signal"), _numbers(bkg, "--bkg"),
                                  _numbers(bkg_uncertainty, "--bkg-uncertainty"), obs), output)


@simplemodel.command("correlated")
@_numbers_option("--signal", "Signal yields per bin.")
@_numbers_option("--bkg", "Background yields per bin.")
@_numbers_option("--bkg-up", "Background at alpha = +1 (histosys).")
@_numbers_option("--bkg-down", "Background at alpha = -1 (histosys).")
@_numbers_option("--observations", "Observed counts (default: the background).", False)
@output_option
def simplemodel_correlated(signal: str, bkg: str, bkg_up: str, bkg_down: str,
                           observations: str | None, output: str | None) -> None:
    """Signal (normfactor mu) + background with a correlated histosys."""
    from nextstat.model.simplemodels import correlated_background

    obs = None if observations is None else _numbers(observations, "--observations")
    _emit(correlated_background(_numbers(signal, "--signal"), _numbers(bkg, "--bkg"),
                                _numbers(bkg_up, "--bkg-up"), _numbers(bkg_down, "--bkg-down"),
                                obs), output)


# --------------------------------------------------------------------------
# Parquet
# --------------------------------------------------------------------------


@click.command("parquet-to-workspace", short_help="Histogram Parquet table(s) -> workspace.")
@click.argument("path", metavar="PATH")
@click.option("--modifiers", metavar="FILE", help="Modifiers table (Parquet).")
@click.option("--observations", metavar="FILE", help="Observations table (Parquet).")
@click.option("--measurements", metavar="FILE", help="Measurements table (Parquet).")
@click.option("--poi", default="mu", show_default=True,
              help="POI without a measurements table ('' for none).")
@click.option("--measurement-name", default="NormalMeasurement", show_default=True,
              help="Measurement name without a measurements table.")
@output_option
def parquet_to_workspace(path: str, modifiers: str | None, observations: str | None,
                         measurements: str | None, poi: str, measurement_name: str,
                         output: str | None) -> None:
    """Build a pyhf workspace from a yields Parquet file or a Parquet directory.

    PATH is a yields table (channel, sample, yields[, stat_error]) or a directory written
    by 'nextstat workspace-to-parquet'. Without observations the data are the sum of the
    nominal yields. See docs/formats-arrow.md for the schema.
    """
    from nextstat.io.arrow import parquet_to_workspace as convert

    _emit(convert(path, modifiers=modifiers, observations=observations,
                  measurements=measurements, poi=poi or None,
                  measurement_name=measurement_name), output)


@click.command("workspace-to-parquet", short_help="Workspace -> directory of Parquet tables.")
@input_option
@click.argument("directory", metavar="DIRECTORY")
@click.option("--compression", default="zstd", show_default=True,
              help="Parquet compression codec (zstd, snappy, gzip, none, ...).")
def workspace_to_parquet(input_path: str, directory: str, compression: str) -> None:
    """Write yields/modifiers/observations/measurements.parquet into DIRECTORY.

    Prints {"table": "path", ...}. 'nextstat parquet-to-workspace DIRECTORY' reads it back.
    """
    from nextstat.io.arrow import workspace_to_parquet as convert

    ws = _read_workspace(input_path)
    _emit(convert(ws, directory, compression=compression), None)


_COMMANDS: tuple[Any, ...] = (
    combine, prune, rename, sort, digest, patchset, simplemodel,
    parquet_to_workspace, workspace_to_parquet,
)


def register(cli: click.Group) -> None:
    """Add the workspace-tool commands to the ``nextstat`` group."""
    for command in _COMMANDS:
        cli.add_command(command)
