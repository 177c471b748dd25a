"""The ``nextstat`` command-line interface.

One click group, :func:`cli`, with one subcommand per task. The options every
command shares (``--input``, ``--measurement``, ``--interpolation``, ``--output``,
``--threads``) are reusable decorators, so a new command is a function over the
public API::

    @cli.command("upper-limit")
    @input_option
    @measurement_option
    @interpolation_option
    @output_option
    @threads_option
    def upper_limit(input_path, measurement, interpolation, output, threads):
        import nextstat
        _set_threads(nextstat, threads)
        model = _load_model(input_path, measurement, interpolation).model
        _emit(nextstat.upper_limit(model).to_dict(), output)

Conventions:

* Results are JSON (pretty, 2-space indent) on stdout or in ``--output FILE``;
  non-finite numbers are written as ``null``.
* ``--input -`` reads the workspace from stdin.
* Every :class:`nextstat.errors.NextStatError` and every ``OSError`` becomes one
  line, ``nextstat: error: <message>``, on stderr with exit status 2; there is
  no traceback. Usage errors (unknown options) keep click's own message, also
  with status 2. Anything else is a bug and keeps its traceback.
* The numerical parts of nextstat are imported inside the commands, so
  ``nextstat version`` and ``nextstat --help`` stay fast.
"""

from __future__ import annotations

import errno
import gzip
import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

from nextstat.errors import InvalidArgumentType, InvalidWorkspace, NextStatError

__all__ = ["cli", "main"]

F = TypeVar("F", bound=Callable[..., Any])

#: Exit status of a command that failed because of its input.
EXIT_USER_ERROR = 2

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


# ---------------------------------------------------------------------------
# Error handling
# ---------------------------------------------------------------------------


def _one_line(message: str) -> str:
    """Collapse a message onto one line (multi-line messages are joined with '; ')."""
    parts = [line.strip() for line in str(message).splitlines() if line.strip()]
    return "; ".join(parts) if parts else "unknown error"


class UserError(click.ClickException):
    """A failure caused by the user's input, shown as ``nextstat: error: <message>``."""

    exit_code = EXIT_USER_ERROR

    def __init__(self, message: str):
        super().__init__(_one_line(message))

    def show(self, file: Any = None) -> None:
        click.echo(f"nextstat: error: {self.format_message()}", err=True, file=file)


def _describe_os_error(exc: OSError) -> str:
    """``missing.json: No such file or directory`` rather than ``[Errno 2] ...``."""
    if exc.strerror and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror}"
    if exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


class NextStatGroup(click.Group):
    """A click group that turns input errors into one-line messages (exit status 2)."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except NextStatError as exc:
            raise UserError(str(exc)) from None
        except OSError as exc:
            if exc.errno == errno.EPIPE:  # `nextstat fit ... | head`: let click handle it
                raise
            raise UserError(_describe_os_error(exc)) from None


# ---------------------------------------------------------------------------
# Shared options
# ---------------------------------------------------------------------------


def input_option(func: F) -> F:
    """``-i/--input PATH|-``: the workspace (pyhf JSON); ``-`` reads stdin."""
    return click.option(
        "-i",
        "--input",
        "input_path",
        metavar="PATH|-",
        default="-",
        show_default=True,
        help="Workspace in pyhf JSON; '-' reads it from stdin.",
    )(func)


def measurement_option(func: F) -> F:
    """``--measurement NAME``: which measurement of the workspace to build."""
    return click.option(
        "--measurement",
        metavar="NAME",
        default=None,
        help="Measurement to use (default: the first one in the workspace).",
    )(func)


def interpolation_option(func: F) -> F:
    """``--interpolation pyhf|root``: the normsys/histosys interpolation codes."""
    return click.option(
        "--interpolation",
        type=click.Choice(["pyhf", "root"]),
        default=None,
        help="Interpolation codes: 'pyhf' = normsys code4 + histosys code4p; "
        "'root' = normsys code1 + histosys code0 (classic HistFactory). Default: the input "
        "format's: code4/code4p for pyhf JSON and for HistFactory XML (what ROOT 6.40 "
        "builds), the codes the file names for HS3.",
    )(func)


def output_option(func: F) -> F:
    """``-o/--output FILE``: write the JSON result to a file instead of stdout."""
    return click.option(
        "-o",
        "--output",
        metavar="FILE",
        default=None,
        help="Write the JSON result to FILE instead of stdout ('-' is stdout).",
    )(func)


def threads_option(func: F) -> F:
    """``--threads N``: OpenMP threads for the compiled kernels (0 = all cores).

    For commands that run many independent fits (toys, scans, ranking). The
    value reaches the library through ``nextstat.set_threads`` (see
    :func:`_set_threads`).
    """
    return click.option(
        "--threads",
        type=click.IntRange(min=0),
        default=None,
        metavar="N",
        help="Threads for the compiled kernels; 0 = all cores "
        "(default: OMP_NUM_THREADS, else all cores).",
    )(func)


# ---------------------------------------------------------------------------
# Helpers shared by commands
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedWorkspace:
    """A workspace as read by the CLI: its source label, raw spec and built model."""

    label: str
    spec: dict[str, Any]
    model: Any


def _read_stdin() -> dict[str, Any]:
    """Parse a workspace (JSON, optionally gzip-compressed) from standard input."""
    stdin = sys.stdin
    if stdin is None or stdin.isatty():
        raise click.UsageError("no input: pass --input FILE or pipe a workspace on stdin")
    buffer = getattr(stdin, "buffer", None)
    raw = buffer.read() if buffer is not None else stdin.read().encode("utf-8")
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise InvalidWorkspace(f"corrupt gzip data on stdin: {exc}") from None
    if not raw.strip():
        raise InvalidWorkspace("stdin is empty, expected a pyhf workspace (a JSON object)")
    try:
        spec = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise InvalidWorkspace(
            f"malformed JSON on stdin at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except UnicodeDecodeError as exc:
        raise InvalidWorkspace(f"stdin is not valid UTF-8 JSON text: {exc}") from None
    except RecursionError:
        raise InvalidWorkspace("the JSON on stdin is nested too deeply to be a workspace") from None
    if not isinstance(spec, dict):
        raise InvalidWorkspace(
            f"stdin holds a JSON {type(spec).__name__}, expected a pyhf workspace (a JSON object)"
        )
    return spec


def _load_model(source: str, measurement: str | None,
                interpolation: str | None) -> LoadedWorkspace:
    """Read and build the model of ``--input`` (pyhf JSON, HS3 or HistFactory XML, detected
    by :func:`nextstat.load`); failures are NextStatError or OSError."""
    import nextstat

    if source == "-":
        label, spec = "<stdin>", _read_stdin()
    else:
        label, spec = source, Path(source)  # a path even if the name starts with '{'
    model = nextstat.load(spec, measurement=measurement, interpolation=interpolation)
    return LoadedWorkspace(label=label, spec=model.spec, model=model)


def _jsonable(obj: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays to Python, NaN and +-inf to None."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "tolist"):  # numpy arrays and scalars
        return _jsonable(obj.tolist())
    raise InvalidArgumentType(f"cannot write a {type(obj).__name__} as JSON")


def _emit(payload: Any, output: str | None) -> None:
    """Write ``payload`` as pretty JSON to stdout or to ``output``."""
    text = json.dumps(_jsonable(payload), indent=2, allow_nan=False) + "\n"
    if output is None or output == "-":
        click.echo(text, nl=False)
    else:
        Path(output).write_text(text, encoding="utf-8")


def _set_threads(ns: Any, threads: int | None) -> None:
    """Apply ``--threads`` through the API (``None`` leaves the default alone)."""
    if threads is None:
        return
    setter = getattr(ns, "set_threads", None)
    if setter is None:
        raise UserError("--threads is not supported by this build of nextstat")
    setter(threads)


# ---------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------


@click.group(cls=NextStatGroup, context_settings=CONTEXT_SETTINGS)
def cli() -> None:
    """nextstat: HistFactory / pyhf-workspace inference, compiled with Cython.

    Reads pyhf JSON workspaces and writes JSON results. Run
    'nextstat COMMAND --help' for the options of a command.
    """


@cli.command()
@click.option(
    "--verbose", "-v", is_flag=True, help="Also list dependency versions and build options."
)
def version(verbose: bool) -> None:
    """Print the nextstat version."""
    from nextstat import __version__

    click.echo(f"nextstat {__version__}")
    if verbose:
        import nextstat

        nextstat.show_versions()


@cli.command(short_help="Maximum-likelihood fit; prints the FitResult as JSON.")
@input_option
@measurement_option
@interpolation_option
@output_option
@click.option(
    "--parity",
    is_flag=True,
    help="Parity mode: Kahan-compensated sums, one thread, deterministic.",
)
def fit(
    input_path: str,
    measurement: str | None,
    interpolation: str,
    output: str | None,
    parity: bool,
) -> None:
    """Maximum-likelihood fit to the observed data; prints the FitResult as JSON.

    \b
    Example:
      nextstat fit -i nextstat/examples/simple_workspace.json
    """
    import nextstat

    loaded = _load_model(input_path, measurement, interpolation)
    result = nextstat.fit(loaded.model, mode="parity" if parity else None)
    _emit(result.to_dict(), output)


def _measurements(spec: dict[str, Any], in_use: str) -> list[dict[str, Any]]:
    out = []
    for meas in spec.get("measurements") or []:
        name = meas.get("name")
        config = meas.get("config") or {}
        fixed = [p.get("name") for p in config.get("parameters") or [] if p.get("fixed")]
        active = name == in_use
        out.append({"name": name, "poi": config.get("poi"), "fixed": fixed, "in_use": active})
    return out


def _summary(loaded: LoadedWorkspace, measurement: str | None) -> dict[str, Any]:
    """Everything ``inspect`` reports, as plain data."""
    model = loaded.model
    names = list(model.parameter_names())
    init = list(model.suggested_init())
    bounds = list(model.suggested_bounds())
    fixed = list(model.suggested_fixed())
    poi_index = model.poi_index()
    bins = dict(model.channel_bins())
    in_use = model.measurement
    return {
        "input": loaded.label,
        "measurement": in_use,
        "poi": names[poi_index] if poi_index is not None else None,
        "interpolation": dict(model.interpolation_codes()),
        "n_channels": len(bins),
        "n_bins": sum(bins.values()),
        "n_params": model.n_params(),
        "channels": [
            {"name": ch, "n_bins": bins[ch], "samples": list(model.sample_names(ch))}
            for ch in model.channel_names()
        ],
        "modifiers": {kind: list(mods) for kind, mods in model.modifier_summary().items()},
        "parameters": [
            {
                "name": name,
                "init": init[i],
                "bounds": [bounds[i][0], bounds[i][1]],
                "fixed": bool(fixed[i]),
                "poi": i == poi_index,
            }
            for i, name in enumerate(names)
        ],
        "measurements": _measurements(loaded.spec, in_use),
    }


def _fmt(x: float) -> str:
    return f"{x:.6g}"


def _render_summary(s: dict[str, Any]) -> str:
    lines = [f"Workspace: {s['input']}"]
    lines.append(f"Measurement: {s['measurement']}    POI: {s['poi'] or '(none)'}")
    codes = ", ".join(f"{k} code{v}" for k, v in s["interpolation"].items())
    lines.append(f"Interpolation: {codes}")

    lines.append("")
    lines.append(f"Channels ({s['n_channels']}, {s['n_bins']} bins):")
    width = max((len(c["name"]) for c in s["channels"]), default=0)
    for ch in s["channels"]:
        nb = f"{ch['n_bins']} bin" + ("" if ch["n_bins"] == 1 else "s")
        lines.append(f"  {ch['name']:<{width}}  {nb:>8}   samples: {', '.join(ch['samples'])}")

    lines.append("")
    n_mods = sum(len(v) for v in s["modifiers"].values())
    lines.append(f"Modifiers ({n_mods}):")
    width = max((len(k) for k in s["modifiers"]), default=0)
    for kind in sorted(s["modifiers"]):
        lines.append(f"  {kind:<{width}}  {', '.join(s['modifiers'][kind])}")

    lines.append("")
    lines.append(f"Parameters ({s['n_params']}):")
    rows = [
        (
            p["name"] + (" (POI)" if p["poi"] else ""),
            _fmt(p["init"]),
            f"[{_fmt(p['bounds'][0])}, {_fmt(p['bounds'][1])}]",
            "fixed" if p["fixed"] else "",
        )
        for p in s["parameters"]
    ]
    header = ("name", "init", "bounds", "")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    lines.append(f"  {header[0]:<{widths[0]}}  {header[1]:>{widths[1]}}  {header[2]}")
    for r in rows:
        line = f"  {r[0]:<{widths[0]}}  {r[1]:>{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}"
        lines.append(line.rstrip())

    lines.append("")
    lines.append(f"Measurements ({len(s['measurements'])}):")
    width = max((len(str(m["name"])) for m in s["measurements"]), default=0)
    for m in s["measurements"]:
        mark = "*" if m["in_use"] else " "
        extra = f"   fixed: {', '.join(m['fixed'])}" if m["fixed"] else ""
        lines.append(f"  {mark} {m['name']!s:<{width}}   POI: {m['poi']}{extra}")
    lines.append("  (* = in use)")
    return "\n".join(lines)


@cli.command(short_help="Summarise a workspace: channels, samples, modifiers, parameters.")
@input_option
@measurement_option
@interpolation_option
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON instead of text.")
def inspect(input_path: str, measurement: str | None, interpolation: str, as_json: bool) -> None:
    """Summarise a workspace: channels, samples, modifiers, parameters, measurements.

    \b
    Example:
      nextstat inspect -i nextstat/examples/simple_workspace.json
    """
    loaded = _load_model(input_path, measurement, interpolation)
    summary = _summary(loaded, measurement)
    if as_json:
        _emit(summary, None)
    else:
        click.echo(_render_summary(summary))


# ---------------------------------------------------------------------------
# Inference commands
# ---------------------------------------------------------------------------


def test_stat_option(func: F) -> F:
    """``--test-stat qtilde|q``: the one-sided test statistic for limits and CLs."""
    return click.option(
        "--test-stat",
        type=click.Choice(["qtilde", "q"]),
        default="qtilde",
        show_default=True,
        help="Test statistic: qtilde (POI >= 0) or q.",
    )(func)


def plot_option(func: F) -> F:
    """``--plot FILE``: also draw the result (PNG, PDF or SVG by suffix; needs matplotlib)."""
    return click.option(
        "--plot",
        "plot_path",
        metavar="FILE",
        default=None,
        help="Also draw the result to FILE (.png, .pdf or .svg; needs matplotlib).",
    )(func)


class _Progress:
    """A progress callable ``(i, n)`` drawing a bar on stderr when it is a terminal."""

    def __init__(self, label: str):
        self.label = label
        self.enabled = sys.stderr.isatty()

    def __call__(self, i: int, n: int | None) -> None:
        if not self.enabled:
            return
        total = f"/{n}" if n else ""
        width = 30
        done = int(width * i / n) if n else 0
        bar = "#" * done + "-" * (width - done) if n else ""
        click.echo(f"\r{self.label} [{bar}] {i}{total}", err=True, nl=False)
        if n and i >= n:
            click.echo("", err=True)


def _grid(start: float, stop: float, points: int) -> list[float]:
    if points < 2 or not stop > start:
        raise UserError(f"need stop > start and points >= 2 (got {start}, {stop}, {points})")
    step = (stop - start) / (points - 1)
    return [start + i * step for i in range(points)]


def _save_plot(draw: Callable[[], Any], path: str) -> None:
    """Draw and save; matplotlib is imported lazily by the renderers, so both steps can
    raise ImportError when it is missing."""
    from nextstat.viz import plots

    try:
        plots.save(draw(), path)
    except ImportError as exc:  # matplotlib missing
        hint = "pip install 'nextstat[plot]'"
        raise UserError(f"plotting needs matplotlib ({exc}); {hint}") from None
    click.echo(f"nextstat: wrote {path}", err=True)


@cli.command(short_help="Asymptotic CLs hypothesis test of one POI value.")
@input_option
@measurement_option
@interpolation_option
@output_option
@click.option("--mu", type=float, required=True, help="Tested POI value.")
@test_stat_option
def hypotest(input_path, measurement, interpolation, output, mu, test_stat) -> None:
    """Asymptotic CLs of --mu with CLs+b, CLb, q_mu and the expected band.

    \b
    Example:
      nextstat hypotest -i nextstat/examples/simple_workspace.json --mu 1
    """
    import nextstat

    model = _load_model(input_path, measurement, interpolation).model
    res = nextstat.hypotest(mu, model, test_stat=test_stat, return_result=True)
    out = res.to_dict()
    out["nsigma_order"] = [2, 1, 0, -1, -2]
    _emit(out, output)


@cli.command("upper-limit", short_help="Observed and expected CLs upper limits on the POI.")
@input_option
@measurement_option
@interpolation_option
@output_option
@test_stat_option
@click.option("--alpha", type=float, default=0.05, show_default=True, help="CLs level.")
@click.option("--method", type=click.Choice(["root", "scan"]), default="root", show_default=True,
              help="Root finding, or pyhf-style interpolation on a grid.")
@click.option("--scan-start", type=float, default=0.0, show_default=True)
@click.option("--scan-stop", type=float, default=5.0, show_default=True)
@click.option("--scan-points", type=int, default=21, show_default=True)
@plot_option
def upper_limit_cmd(input_path, measurement, interpolation, output, test_stat, alpha, method,
                    scan_start, scan_stop, scan_points, plot_path) -> None:
    """Observed and expected (-2..+2 sigma) upper limits at CLs = --alpha.

    With --plot, also draws the Brazil band: CLs on a grid from 0 to 1.5 times the
    largest limit (or the --scan grid with --method scan).

    \b
    Example:
      nextstat upper-limit -i nextstat/examples/simple_workspace.json --plot brazil.png
    """
    import nextstat

    model = _load_model(input_path, measurement, interpolation).model
    progress = _Progress("upper limit")
    scan = _grid(scan_start, scan_stop, scan_points) if method == "scan" else None
    res = nextstat.upper_limit(model, alpha=alpha, method=method, scan=scan,
                               test_stat=test_stat, progress=progress)
    _emit(res.to_dict(), output)
    if plot_path:
        if scan is None:
            top = 1.5 * max([res.obs_limit, *res.exp_limits])
            lo = model.suggested_bounds()[model.poi_index()][0]
            scan = _grid(max(lo, 0.0), top, 41)
        curve = nextstat.cls_curve(model, scan, alpha=alpha, test_stat=test_stat,
                                   progress=_Progress("CLs curve"))
        from nextstat.viz import plots

        _save_plot(lambda: plots.plot_brazil(curve), plot_path)


@cli.command(short_help="Profile-likelihood scan of the POI.")
@input_option
@measurement_option
@interpolation_option
@output_option
@click.option("--start", type=float, default=0.0, show_default=True)
@click.option("--stop", type=float, default=5.0, show_default=True)
@click.option("--points", type=int, default=21, show_default=True)
@plot_option
def scan(input_path, measurement, interpolation, output, start, stop, points, plot_path) -> None:
    """Profile likelihood of the POI on a grid: -2 Delta ln L (two-sided) and q_mu.

    \b
    Example:
      nextstat scan -i nextstat/examples/simple_workspace.json --stop 4 --points 41
    """
    import nextstat

    model = _load_model(input_path, measurement, interpolation).model
    res = nextstat.profile_scan(model, _grid(start, stop, points), progress=_Progress("scan"))
    _emit(res.to_dict(), output)
    if plot_path:
        from nextstat.viz import plots

        _save_plot(lambda: plots.plot_profile(res), plot_path)


@cli.command(short_help="Discovery significance (q0): observed and expected Z.")
@input_option
@measurement_option
@interpolation_option
@output_option
def significance(input_path, measurement, interpolation, output) -> None:
    """Discovery test of mu = 0: q0, p0, observed Z and the median expected Z.

    \b
    Example:
      nextstat significance -i nextstat/examples/simple_workspace.json
    """
    from nextstat.infer.significance import significance as run

    model = _load_model(input_path, measurement, interpolation).model
    _emit(run(model).to_dict(), output)


@cli.command("goodness-of-fit", short_help="Saturated-model goodness of fit.")
@input_option
@measurement_option
@interpolation_option
@output_option
def goodness_of_fit(input_path, measurement, interpolation, output) -> None:
    """Saturated-model goodness of fit: chi2 = 2 (NLL_fit - NLL_saturated), ndof, p-value.

    \b
    Example:
      nextstat goodness-of-fit -i nextstat/examples/simple_workspace.json
    """
    from nextstat.infer.gof import goodness_of_fit as run

    model = _load_model(input_path, measurement, interpolation).model
    _emit(run(model).to_dict(), output)


@cli.command(short_help="Impacts of the nuisance parameters on the POI.")
@input_option
@measurement_option
@interpolation_option
@output_option
@threads_option
@plot_option
@click.option("--top", type=int, default=20, show_default=True,
              help="Parameters shown with --plot.")
def ranking(input_path, measurement, interpolation, output, threads, plot_path, top) -> None:
    """Pre- and post-fit impacts of every constrained nuisance parameter on the POI.

    The refits run in parallel (--threads).

    \b
    Example:
      nextstat ranking -i nextstat/examples/simple_workspace.json --plot ranking.png
    """
    import nextstat
    from nextstat.infer.ranking import ranking as run

    _set_threads(nextstat, threads)
    model = _load_model(input_path, measurement, interpolation).model
    res = run(model, n_threads=nextstat.get_threads(), progress=_Progress("ranking"))
    _emit(res.to_dict(), output)
    if plot_path:
        from nextstat.viz import plots

        _save_plot(lambda: plots.plot_ranking(res, top=top), plot_path)


@cli.command(short_help="Pulls and constraints of the nuisance parameters after a fit.")
@input_option
@measurement_option
@interpolation_option
@output_option
@plot_option
def pulls(input_path, measurement, interpolation, output, plot_path) -> None:
    """Pulls (theta_hat - theta0) / sigma0 and constraints sigma_hat / sigma0 from a fit.

    \b
    Example:
      nextstat pulls -i nextstat/examples/simple_workspace.json --plot pulls.png
    """
    import nextstat
    from nextstat.infer.ranking import pulls as run

    model = _load_model(input_path, measurement, interpolation).model
    res = run(nextstat.fit(model), model)
    _emit(res.to_dict(), output)
    if plot_path:
        from nextstat.viz import plots

        _save_plot(lambda: plots.plot_pulls(res), plot_path)


@cli.command(short_help="Pre- or post-fit yields per bin, sample and channel.")
@input_option
@measurement_option
@interpolation_option
@output_option
@click.option("--prefit", is_flag=True, help="Pre-fit yields (default: post-fit).")
@click.option("--format", "fmt", type=click.Choice(["json", "csv", "latex"]), default="json",
              show_default=True)
@plot_option
def yields(input_path, measurement, interpolation, output, prefit, fmt, plot_path) -> None:
    """Expected yields with uncertainties propagated through the covariance, and data.

    \b
    Example:
      nextstat yields -i nextstat/examples/simple_workspace.json --format latex
    """
    import nextstat
    from nextstat.infer.yields import yields as run

    model = _load_model(input_path, measurement, interpolation).model
    res = run(model, None if prefit else nextstat.fit(model))
    if fmt == "json":
        _emit(res.to_dict(), output)
    else:
        text = res.to_csv() if fmt == "csv" else res.to_latex()
        if output is None or output == "-":
            click.echo(text, nl=not text.endswith("\n"))
        else:
            Path(output).write_text(text, encoding="utf-8")
    if plot_path:
        from nextstat.viz import plots

        _save_plot(lambda: plots.plot_yields(res), plot_path)


_PLOTS = {
    "brazil": "plot_brazil",
    "profile": "plot_profile",
    "pulls": "plot_pulls",
    "ranking": "plot_ranking",
    "corr": "plot_corr",
    "yields": "plot_yields",
    "toys": "plot_toys",
}


@cli.command(short_help="Draw a saved JSON result (PNG, PDF or SVG).")
@click.argument("kind", type=click.Choice(sorted(_PLOTS)))
@click.option("-i", "--input", "input_path", metavar="RESULT.json", required=True,
              help="JSON written by the matching command (upper-limit, scan, pulls, "
              "ranking, fit for corr, yields); for toys the .npz/.parquet of --save-toys.")
@click.option("-o", "--output", metavar="FILE", required=True,
              help="Image file; the suffix picks the format (.png, .pdf, .svg).")
def plot(kind, input_path, output) -> None:
    """Draw KIND from a result saved as JSON by another nextstat command.

    \b
    Example:
      nextstat scan -i ws.json -o scan.json && nextstat plot profile -i scan.json -o scan.pdf
    """
    if kind == "toys" and Path(input_path).suffix in (".npz", ".parquet"):
        from nextstat.infer.toys import load_toys

        payload = load_toys(input_path)
    else:
        try:
            payload = json.loads(Path(input_path).read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise UserError(
                f"{input_path}: not JSON ({exc.msg} at line {exc.lineno})") from None
    import nextstat.viz

    draw = getattr(nextstat.viz, _PLOTS[kind])

    def drawn():
        try:
            return draw(payload)
        except (KeyError, TypeError) as exc:
            raise UserError(f"{input_path} does not hold a '{kind}' result ({exc})") from None

    _save_plot(drawn, output)


@cli.command("hypotest-toys", short_help="Toy-based CLs hypothesis test of one POI value.")
@input_option
@measurement_option
@interpolation_option
@output_option
@threads_option
@click.option("--mu", type=float, required=True, help="Tested POI value.")
@test_stat_option
@click.option("--n-toys", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Toys per hypothesis (s+b and b-only).")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Key of the per-toy random streams.")
@click.option("--expected-set", is_flag=True, help="Also compute the expected CLs band.")
@click.option("--fixed-aux", is_flag=True,
              help="Keep auxiliary data at their observed values in the toys.")
@click.option("--shard", default=None, metavar="I/N",
              help="Run only shard I of N (0-based) of the toys; combine with merge-toys.")
@click.option("--save-toys", "save_path", default=None, metavar="FILE",
              help="Save the per-toy test statistics (.npz or .parquet) for merge-toys "
              "and plot toys.")
@plot_option
def hypotest_toys_cmd(input_path, measurement, interpolation, output, threads, mu, test_stat,
                      n_toys, seed, expected_set, fixed_aux, shard, save_path,
                      plot_path) -> None:
    """Toy-based CLs of --mu (pyhf's ToyCalculator): CLs, CLs+b, CLb with Monte-Carlo
    errors, q_obs, failed and non-converged toy fits; --expected-set adds the band.

    A run split with --shard I/N over N jobs (same --seed and --n-toys) and put back
    together with 'nextstat merge-toys' gives the result of one run.

    \b
    Example:
      nextstat hypotest-toys -i nextstat/examples/simple_workspace.json --mu 1 --n-toys 2000
      nextstat hypotest-toys -i ws.json --mu 1 --shard 0/4 --save-toys part0.npz
    """
    import nextstat

    _set_threads(nextstat, threads)
    parsed = _parse_shard(shard)
    model = _load_model(input_path, measurement, interpolation).model
    res = nextstat.hypotest_toys(mu, model, n_toys=n_toys, seed=seed, test_stat=test_stat,
                                 return_expected_set=expected_set, fixed_aux=fixed_aux,
                                 progress=_Progress("toys"), return_result=True,
                                 shard=parsed)
    _emit_toys(res, output, expected_set, save_path, plot_path)


def _parse_shard(text: str | None):
    if text is None:
        return None
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise UserError(f"--shard must look like I/N (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise UserError(f"--shard {text}: need N >= 1 and 0 <= I < N")
    return i, n


def _emit_toys(res, output, expected_set, save_path, plot_path) -> None:
    out = res.to_dict()
    if not expected_set:
        for k in ("cls_exp", "clsb_exp", "clb_exp"):
            out.pop(k, None)
    _emit(out, output)
    if save_path:
        res.save(save_path)
    if plot_path:
        from nextstat.viz import toys as toy_plots

        _save_plot(lambda: toy_plots.plot_toys(res), plot_path)


@cli.command("merge-toys", short_help="Combine toy shards into the result of one run.")
@click.argument("files", nargs=-1, required=True, metavar="FILES...")
@output_option
@click.option("--save-toys", "save_path", default=None, metavar="FILE",
              help="Also save the merged per-toy test statistics (.npz or .parquet).")
@plot_option
def merge_toys_cmd(files, output, save_path, plot_path) -> None:
    """Merge files written by 'hypotest-toys --shard I/N --save-toys FILE' (all N
    shards of one run, any order) and print the combined result with its expected set.

    \b
    Example:
      nextstat merge-toys part0.npz part1.npz part2.npz part3.npz -o toys.json
    """
    from nextstat.infer.toys import load_toys, merge_toys

    res = merge_toys(load_toys(f) for f in files)
    _emit_toys(res, output, True, save_path, plot_path)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``nextstat`` script."""
    cli.main(args=argv, prog_name="nextstat")


if __name__ == "__main__":
    # ``python -m nextstat.cli``: run the group of the imported module, where the commands
    # of nextstat/_cli/ registered themselves (they import nextstat.cli, not __main__).
    from nextstat.cli import main as _main

    _main()
else:
    from nextstat._cli import register_all

    register_all(cli)
