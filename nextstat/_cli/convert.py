"""``nextstat import ...`` and ``nextstat export ...``: format conversion commands.

The groups are module-level (:data:`import_group`, :data:`export_group`) so other command
modules can add subcommands (``export hs3``). Heavy imports (uproot, numpy) happen inside
the commands.
"""

from __future__ import annotations

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

    source = _read_stdin() if input_path == "-" else input_path
    click.echo(str(to_xml(source, out_dir, prefix=prefix)))


def register(cli: click.Group) -> None:
    """Add the ``import`` and ``export`` groups to ``cli``."""
    cli.add_command(import_group)
    cli.add_command(export_group)
