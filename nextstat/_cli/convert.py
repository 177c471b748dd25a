"""``nextstat import ...`` and ``nextstat export ...``: format conversion commands.

The groups are module-level (:data:`import_group`, :data:`export_group`) so other command
modules can add subcommands (``export hs3``). Heavy imports (uproot, numpy) happen inside
the commands.
"""

from __future__ import annotations

from pathlib import Path

import click

from nextstat.cli import _emit, input_option, output_option

__all__ = ["import_group", "export_group", "register"]


@click.group("import", short_help="Convert another format into a pyhf JSON workspace.")
def import_group() -> None:
    """Convert another format into a pyhf JSON workspace."""


@click.group("export", short_help="Write a workspace in another format.")
def export_group() -> None:
    """Write a pyhf JSON workspace in another format."""


@import_group.command("histfactory")
@click.option("--xml", "xml_path", required=True, metavar="FILE",
              type=click.Path(dir_okay=False),
              help="The top-level combination.xml.")
@click.option("--basedir", metavar="DIR", default=None, type=click.Path(file_okay=False),
              help="Folder that relative paths in the XML are relative to "
              "(default: the XML's folder, then its parent, then the current directory).")
@click.option("--compat", type=click.Choice(["root", "pyhf"]), default="root",
              show_default=True,
              help="'root': ROOT HistFactory's semantics (Poisson stat errors, 5% threshold, "
              "Gaussian ShapeSys by default); 'pyhf': the numbers of pyhf xml2json.")
@output_option
def import_histfactory(xml_path: str, basedir: str | None, compat: str,
                       output: str | None) -> None:
    """HistFactory XML + ROOT histograms -> pyhf JSON workspace.

    \b
    Example:
      nextstat import histfactory --xml config/combination.xml -o workspace.json
    """
    from nextstat.io.histfactory_xml import xml_to_workspace

    _emit(xml_to_workspace(xml_path, basedir, compat=compat), output)


@export_group.command("histfactory")
@input_option
@click.option("--out-dir", "out_dir", required=True, metavar="DIR",
              type=click.Path(file_okay=False),
              help="Folder for combination.xml, the channel XMLs and the ROOT file.")
@click.option("--prefix", default="nextstat", show_default=True,
              help="Prefix of the channel XML and ROOT file names.")
def export_histfactory(input_path: str, out_dir: str, prefix: str) -> None:
    """pyhf JSON workspace -> HistFactory XML + one ROOT file (written with uproot).

    Prints the path of the written combination.xml.

    \b
    Example:
      nextstat export histfactory -i workspace.json --out-dir xml/
    """
    from nextstat.cli import _read_stdin
    from nextstat.io.histfactory_xml import to_xml

    source = _read_stdin() if input_path == "-" else Path(input_path)  # a path, even "{x}.json"
    click.echo(str(to_xml(source, out_dir, prefix=prefix)))


@import_group.command("hs3")
@input_option
@click.option("--analysis", default=None, help="HS3 analysis to convert (default: the observed "
              "one; see nextstat.io.hs3.hs3_to_workspace).")
@click.option("--parameter-point", default=None,
              help="HS3 parameter point for initial values and constant flags.")
@output_option
def import_hs3(input_path: str, analysis: str | None, parameter_point: str | None,
               output: str | None) -> None:
    """HS3 JSON (as ROOT >= 6.30 writes it) -> pyhf JSON workspace.

    The interpolation codes the HS3 file asks for are printed on stderr: a pyhf workspace
    cannot carry them, so use them with --interpolation when fitting the converted file.

    \b
    Example:
      nextstat import hs3 -i model_hs3.json -o workspace.json
    """
    from nextstat.cli import _read_stdin
    from nextstat.io.hs3 import hs3_to_workspace
    from nextstat.io.load import read_json_document

    doc = _read_stdin() if input_path == "-" else read_json_document(Path(input_path))[0]
    ws, info = hs3_to_workspace(doc, analysis=analysis, parameter_point=parameter_point)
    codes = info.get("interpolation")
    if codes:
        click.echo(f"nextstat: interpolation codes of the HS3 file: {codes}", err=True)
    _emit(ws, output)


@export_group.command("hs3")
@input_option
@click.option("--measurement", default=None, help="Measurement to use (default: the first).")
@click.option("--interpolation", type=click.Choice(["pyhf", "root"]), default=None,
              help="Interpolation codes of the exported model (default: the input's).")
@click.option("--fit", "with_fit", is_flag=True,
              help="Also fit, and store the best fit as the parameter point 'bestfit'.")
@output_option
def export_hs3(input_path: str, measurement: str | None, interpolation: str | None,
               with_fit: bool, output: str | None) -> None:
    """Any workspace nextstat reads -> HS3 v0.2 JSON (round-trips through nextstat.load).

    \b
    Example:
      nextstat export hs3 -i workspace.json --fit -o model_hs3.json
    """
    from nextstat.cli import _load_model
    from nextstat.infer.mle import fit
    from nextstat.io.hs3 import to_hs3

    model = _load_model(input_path, measurement, interpolation).model
    _emit(to_hs3(model, bestfit=fit(model) if with_fit else None), output)


def register(cli: click.Group) -> None:
    """Add the ``import`` and ``export`` groups to ``cli``."""
    cli.add_command(import_group)
    cli.add_command(export_group)
