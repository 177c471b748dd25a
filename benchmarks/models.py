"""Deterministic synthetic pyhf workspaces for the benchmarks.

Three models, all built without random numbers (every number is a closed-form function of
the channel, sample and bin indices), so every run and every machine benchmarks exactly the
same likelihood:

``god_run`` (201 parameters)
    50 channels x 4 bins; signal (normfactor ``mu``) + one background with a per-channel
    ``shapesys`` (4 gammas per channel). Observations equal the background.
``medium`` (209 parameters)
    20 channels x 10 bins; signal (``mu``) + 2 or 3 backgrounds, 5 shared ``normsys``,
    3 shared ``histosys`` and one ``staterror`` per channel (on the backgrounds).
``large`` (2,113 parameters)
    105 channels x 20 bins (2,100 bins), built like ``medium`` with 8 shared ``normsys``
    and 4 shared ``histosys``: 2,100 staterror gammas + 12 systematics + ``mu``.

Observations of ``medium``/``large`` are a rounded, deterministically perturbed
background + signal (``mu = 1``), see :func:`structured`.

Usage as a module::

    from benchmarks.models import MODELS, make_model
    ws = make_model("medium")          # a pyhf workspace dict

Usage as a script (dump the workspaces as JSON files)::

    python benchmarks/models.py --out /tmp/bench_ws          # all three
    python benchmarks/models.py --out /tmp/bench_ws medium   # one
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from pathlib import Path

__all__ = ["MODELS", "make_model", "god_run", "medium", "large", "structured"]


def _measurement() -> list[dict]:
    return [{"name": "m", "config": {"poi": "mu", "parameters": []}}]


def god_run() -> dict:
    """50 channels x 4 bins, signal + background with shapesys: 201 parameters."""
    channels, observations = [], []
    for i in range(50):
        name = f"ch{i:02d}"
        bkg = [50.0 + 0.25 * j + 0.1 * (i % 5) for j in range(4)]
        channels.append(
            {
                "name": name,
                "samples": [
                    {
                        "name": "signal",
                        "data": [2.0, 2.05, 2.1, 2.0],
                        "modifiers": [{"name": "mu", "type": "normfactor", "data": None}],
                    },
                    {
                        "name": "background",
                        "data": bkg,
                        "modifiers": [
                            {
                                "name": f"shapesys_{name}",
                                "type": "shapesys",
                                "data": [5.0] * 4,
                            }
                        ],
                    },
                ],
            }
        )
        observations.append({"name": name, "data": list(bkg)})
    return {
        "channels": channels,
        "observations": observations,
        "measurements": _measurement(),
        "version": "1.0.0",
    }


def _r(x: float) -> float:
    """Round to 6 decimals so the JSON is short and identical everywhere."""
    return round(x, 6)


def structured(
    n_channels: int,
    n_bins: int,
    n_normsys: int,
    n_histosys: int,
    *,
    per_channel_normsys: bool = False,
) -> dict:
    """A ``medium``/``large``-style workspace.

    Per channel ``i`` and bin ``j`` (``x = (j + 0.5) / n_bins`` in (0, 1)):

    * ``signal``: a Gaussian peak, normfactor ``mu`` (and shared normsys ``sys_0``);
    * ``bkg_falling``: ``120 exp(-2.5 x)`` scaled per channel;
    * ``bkg_flat``: ``25 + 4 sin(...)``;
    * ``bkg_rising``: ``8 + 20 x^2`` (only in channels with ``i % 3 != 2``, so that channels
      have 3 or 4 samples).

    The ``n_normsys`` shared normsys ``sys_k`` act on the backgrounds (each on two of the
    three, round-robin); the ``n_histosys`` shared histosys ``shape_k`` tilt the falling and
    flat backgrounds; every channel has ``staterror_chXXX`` on all backgrounds and (if
    ``per_channel_normsys``) a normsys ``norm_chXXX`` on ``bkg_falling``. Observations are
    ``round(t + 0.8 sqrt(t) sin(1.7 i + 0.9 j + 0.3))`` with ``t`` = background + signal
    (``mu = 1``), so that the fitted ``mu`` lies inside its bounds.
    """
    width = 3 if n_channels >= 100 else 2
    channels, observations = [], []
    for i in range(n_channels):
        name = f"ch{i:0{width}d}"
        xs = [(j + 0.5) / n_bins for j in range(n_bins)]
        scale = 1.0 + 0.04 * (i % 7)
        sig = [_r(6.0 * math.exp(-0.5 * ((x - 0.3 - 0.4 * (i % 5) / 4) / 0.08) ** 2)) for x in xs]
        bkgs = {
            "bkg_falling": [_r(120.0 * scale * math.exp(-2.5 * x)) for x in xs],
            "bkg_flat": [_r(25.0 + 4.0 * math.sin(3.0 * x + 0.5 * i)) for x in xs],
        }
        if i % 3 != 2:
            bkgs["bkg_rising"] = [_r(8.0 + 20.0 * x * x) for x in xs]
        bnames = list(bkgs)
        samples = [
            {
                "name": "signal",
                "data": sig,
                "modifiers": [
                    {"name": "mu", "type": "normfactor", "data": None},
                    {"name": "sys_0", "type": "normsys", "data": {"hi": 1.04, "lo": 0.96}},
                ],
            }
        ]
        for b, (bname, nom) in enumerate(bkgs.items()):
            mods: list[dict] = []
            for k in range(n_normsys):
                # each shared normsys acts on two of the three background kinds
                if (k + b) % 3 == 2:
                    continue
                hi = 1.0 + 0.02 + 0.01 * ((k + b) % 4)
                lo = 1.0 - 0.015 - 0.01 * ((k + 2 * b) % 3)
                mods.append(
                    {"name": f"sys_{k}", "type": "normsys", "data": {"hi": _r(hi), "lo": _r(lo)}}
                )
            if bname != "bkg_rising":
                for h in range(n_histosys):
                    amp_hi = 0.03 + 0.01 * h
                    amp_lo = 0.025 + 0.008 * h
                    phase = 0.7 * h + 0.3 * b
                    hi = [
                        _r(v * (1.0 + amp_hi * math.sin(math.pi * x + phase)))
                        for v, x in zip(nom, xs, strict=True)
                    ]
                    lo = [
                        _r(v * (1.0 - amp_lo * math.sin(math.pi * x + phase)))
                        for v, x in zip(nom, xs, strict=True)
                    ]
                    mods.append(
                        {
                            "name": f"shape_{h}",
                            "type": "histosys",
                            "data": {"hi_data": hi, "lo_data": lo},
                        }
                    )
            mods.append(
                {
                    "name": f"staterror_{name}",
                    "type": "staterror",
                    "data": [_r(0.05 * v + 0.3 * math.sqrt(v)) for v in nom],
                }
            )
            if per_channel_normsys and bname == "bkg_falling":
                mods.append(
                    {"name": f"norm_{name}", "type": "normsys", "data": {"hi": 1.1, "lo": 0.9}}
                )
            samples.append({"name": bname, "data": nom, "modifiers": mods})
        total = [sig[j] + sum(bkgs[b][j] for b in bnames) for j in range(n_bins)]
        obs = [
            float(max(0, round(t + 0.8 * math.sqrt(t) * math.sin(1.7 * i + 0.9 * j + 0.3))))
            for j, t in enumerate(total)
        ]
        channels.append({"name": name, "samples": samples})
        observations.append({"name": name, "data": obs})
    return {
        "channels": channels,
        "observations": observations,
        "measurements": _measurement(),
        "version": "1.0.0",
    }


def medium() -> dict:
    """20 channels x 10 bins, 5 normsys, 3 histosys, staterror: 209 parameters."""
    return structured(20, 10, n_normsys=5, n_histosys=3)


def large() -> dict:
    """105 channels x 20 bins, 8 normsys, 4 histosys, staterror: 2,113 parameters."""
    return structured(105, 20, n_normsys=8, n_histosys=4)


MODELS: dict[str, Callable[[], dict]] = {"god_run": god_run, "medium": medium, "large": large}


def make_model(name: str) -> dict:
    """The workspace dict of the benchmark model ``name`` (a fresh copy each call)."""
    try:
        return MODELS[name]()
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose from {sorted(MODELS)}") from None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="directory to write <name>.json into")
    ap.add_argument("models", nargs="*", default=list(MODELS), help="model names (default all)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in args.models:
        path = out / f"{name}.json"
        path.write_text(json.dumps(make_model(name), indent=1))
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
