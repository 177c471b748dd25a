"""A zoo of small, deterministic pyhf workspaces for tests (imported, not collected).

``ZOO`` maps a case name to a pyhf 0.7.6 workspace (a plain JSON-compatible
dict); ``ZOO_DESCRIPTIONS`` says what each case covers. Use :func:`zoo_case`
to get a private deep copy and :func:`pyhf_model` to build the pyhf oracle.

All yields are closed-form numbers rounded to a few decimals (no random
numbers), so the zoo is identical on every platform.
"""

from __future__ import annotations

import copy
import math

__all__ = ["ZOO", "ZOO_DESCRIPTIONS", "INTERPOLATION_SETTINGS", "zoo_case", "pyhf_model"]

# ---------------------------------------------------------------------------
# building blocks
# ---------------------------------------------------------------------------


def _normfactor(name):
    return {"name": name, "type": "normfactor", "data": None}


def _normsys(name, hi, lo):
    return {"name": name, "type": "normsys", "data": {"hi": hi, "lo": lo}}


def _histosys(name, hi_data, lo_data):
    return {"name": name, "type": "histosys", "data": {"hi_data": hi_data, "lo_data": lo_data}}


def _staterror(name, data):
    return {"name": name, "type": "staterror", "data": data}


def _shapesys(name, data):
    return {"name": name, "type": "shapesys", "data": data}


def _shapefactor(name):
    return {"name": name, "type": "shapefactor", "data": None}


def _lumi():
    return {"name": "lumi", "type": "lumi", "data": None}


def _sample(name, data, modifiers=()):
    return {"name": name, "data": [float(x) for x in data], "modifiers": list(modifiers)}


def _channel(name, samples):
    return {"name": name, "samples": list(samples)}


def _measurement(name, poi, parameters=()):
    return {"name": name, "config": {"poi": poi, "parameters": list(parameters)}}


def _workspace(channels, observations, measurements):
    return {
        "channels": list(channels),
        "observations": [{"name": k, "data": [float(x) for x in v]} for k, v in observations],
        "measurements": list(measurements),
        "version": "1.0.0",
    }


def _lumi_config(sigma=0.017, **extra):
    """The lumi parameter entry pyhf's XML importer writes (Lumi = 1)."""
    entry = {
        "name": "lumi",
        "auxdata": [1.0],
        "sigmas": [sigma],
        "inits": [1.0],
        "bounds": [[round(1.0 - 5 * sigma, 6), round(1.0 + 5 * sigma, 6)]],
    }
    entry.update(extra)
    return entry


def _scaled(values, factors):
    return [round(v * f, 4) for v, f in zip(values, factors, strict=True)]


def _shape(nbins, scale, slope, phase=0.0, wiggle=0.05):
    """A falling spectrum ``scale * exp(-slope * b)`` with a small deterministic wiggle."""
    return [
        round(scale * math.exp(-slope * b) * (1.0 + wiggle * math.sin(1.7 * b + phase)), 3)
        for b in range(nbins)
    ]


def _one_channel(samples, observed, poi="mu", parameters=(), channel="SR"):
    return _workspace(
        [_channel(channel, samples)],
        [(channel, observed)],
        [_measurement("meas", poi, parameters)],
    )


SIG = [5.0, 10.0]
BKG = [50.0, 60.0]


def _signal(data=SIG, extra=()):
    return _sample("signal", data, [_normfactor("mu"), *extra])


# ---------------------------------------------------------------------------
# the cases
# ---------------------------------------------------------------------------

ZOO: dict[str, dict] = {}
ZOO_DESCRIPTIONS: dict[str, str] = {}


def _case(name, description, ws):
    ZOO[name] = ws
    ZOO_DESCRIPTIONS[name] = description


# --- every modifier alone (next to the POI normfactor) ----------------------

_case(
    "normfactor_only",
    "1 channel x 2 bins; signal x mu (normfactor); background without modifiers",
    _one_channel([_signal(), _sample("background", BKG)], [53.0, 65.0]),
)

_case(
    "normsys_only",
    "1 channel x 2 bins; one asymmetric normsys on the background",
    _one_channel(
        [_signal(), _sample("background", BKG, [_normsys("bkg_norm", 1.12, 0.92)])],
        [57.0, 71.0],
    ),
)

_case(
    "histosys_only",
    "1 channel x 2 bins; one histosys (shape) on the background",
    _one_channel(
        [
            _signal(),
            _sample("background", BKG, [_histosys("bkg_shape", [55.0, 62.0], [46.0, 57.0])]),
        ],
        [57.0, 71.0],
    ),
)

_case(
    "staterror_only",
    "1 channel x 3 bins; staterror on the background only",
    _one_channel(
        [
            _signal([4.0, 8.0, 3.0]),
            _sample(
                "background", [40.0, 30.0, 10.0], [_staterror("staterror_SR", [4.0, 3.5, 2.0])]
            ),
        ],
        [45.0, 37.0, 14.0],
    ),
)

_case(
    "shapesys_only",
    "1 channel x 2 bins; uncorrelated shapesys on the background (pyhf's simplemodels layout)",
    _one_channel(
        [_signal(), _sample("background", BKG, [_shapesys("bkg_uncorr", [5.0, 12.0])])],
        [53.0, 65.0],
    ),
)

_case(
    "shapefactor_only",
    "1 channel x 3 bins; free per-bin shapefactor on the background",
    _one_channel(
        [
            _signal([2.0, 6.0, 3.0]),
            _sample("background", [30.0, 20.0, 12.0], [_shapefactor("sf_bkg")]),
        ],
        [33.0, 25.0, 16.0],
    ),
)

_case(
    "lumi_only",
    "1 channel x 2 bins; lumi on both samples, lumi config (auxdata/sigmas/inits/bounds)",
    _one_channel(
        [
            _signal(extra=[_lumi()]),
            _sample("background", BKG, [_lumi()]),
        ],
        [55.0, 68.0],
        parameters=[_lumi_config(0.02)],
    ),
)

# --- combinations --------------------------------------------------------------

_case(
    "all_modifiers",
    "1 channel x 3 bins; all seven modifier types combined on four samples",
    _one_channel(
        [
            _signal([3.0, 7.0, 5.0], [_lumi(), _normsys("sig_xsec", 1.05, 0.94)]),
            _sample(
                "ttbar",
                [40.0, 25.0, 10.0],
                [
                    _lumi(),
                    _histosys("jes", [42.0, 27.0, 11.5], [38.5, 23.0, 9.0]),
                    _staterror("staterror_SR", [2.0, 1.5, 1.0]),
                ],
            ),
            _sample(
                "wjets",
                [20.0, 12.0, 6.0],
                [
                    _lumi(),
                    _shapefactor("sf_wjets"),
                    _staterror("staterror_SR", [1.5, 1.2, 0.8]),
                ],
            ),
            _sample(
                "fakes",
                [8.0, 5.0, 2.0],
                [_shapesys("fakes_unc", [2.0, 1.5, 1.0]), _normsys("fakes_norm", 1.3, 0.7)],
            ),
        ],
        [74.0, 50.0, 20.0],
        parameters=[_lumi_config()],
    ),
)

_case(
    "multichannel",
    "3 channels with 1, 2 and 4 bins; POI in two channels, a free background norm in all "
    "three, per-channel staterror, a normsys coupled across channels",
    _workspace(
        [
            _channel(
                "SR",
                [
                    _signal([6.0]),
                    _sample(
                        "bkg",
                        [12.0],
                        [
                            _normfactor("mu_bkg"),
                            _normsys("bkg_xsec", 1.1, 0.9),
                            _staterror("staterror_SR", [1.5]),
                        ],
                    ),
                ],
            ),
            _channel(
                "CR",
                [
                    _sample(
                        "bkg",
                        [100.0, 80.0],
                        [
                            _normfactor("mu_bkg"),
                            _normsys("bkg_xsec", 1.1, 0.9),
                            _staterror("staterror_CR", [5.0, 4.0]),
                        ],
                    ),
                ],
            ),
            _channel(
                "VR",
                [
                    _signal([0.5, 1.0, 1.5, 0.8]),
                    _sample(
                        "bkg",
                        [30.0, 22.0, 15.0, 9.0],
                        [
                            _normfactor("mu_bkg"),
                            _normsys("bkg_xsec", 1.1, 0.9),
                            _staterror("staterror_VR", [2.0, 1.8, 1.5, 1.0]),
                        ],
                    ),
                ],
            ),
        ],
        [("SR", [20.0]), ("CR", [104.0, 79.0]), ("VR", [31.0, 25.0, 16.0, 11.0])],
        [_measurement("meas", "mu", [{"name": "mu_bkg", "bounds": [[0.0, 5.0]]}])],
    ),
)

_case(
    "shared_staterror",
    "1 channel x 3 bins; three samples sharing one staterror (combined relative uncertainty)",
    _one_channel(
        [
            _signal([3.0, 6.0, 2.0], [_staterror("staterror_SR", [0.5, 0.8, 0.4])]),
            _sample("bkg1", [30.0, 20.0, 8.0], [_staterror("staterror_SR", [3.0, 2.5, 1.5])]),
            _sample("bkg2", [15.0, 10.0, 5.0], [_staterror("staterror_SR", [2.0, 1.5, 1.2])]),
        ],
        [50.0, 37.0, 16.0],
    ),
)

_case(
    "partial_staterror",
    "1 channel x 3 bins; staterror on two of four samples (signal and bkg3 carry none)",
    _one_channel(
        [
            _signal([3.0, 6.0, 2.0]),
            _sample("bkg1", [30.0, 20.0, 8.0], [_staterror("staterror_SR", [3.0, 2.5, 1.5])]),
            _sample("bkg2", [15.0, 10.0, 5.0], [_staterror("staterror_SR", [2.0, 1.5, 1.2])]),
            _sample("bkg3", [5.0, 4.0, 3.0], [_normsys("bkg3_norm", 1.2, 0.8)]),
        ],
        [55.0, 41.0, 18.0],
    ),
)

_case(
    "coupled_systematics",
    "2 channels (2 and 3 bins); histosys 'jes' and normsys 'xsec_bkg' correlated across "
    "channels and samples",
    _workspace(
        [
            _channel(
                "SR",
                [
                    _signal([4.0, 9.0], [_histosys("jes", [4.4, 9.6], [3.7, 8.3])]),
                    _sample(
                        "bkg",
                        [20.0, 15.0],
                        [
                            _histosys("jes", [21.5, 16.2], [18.8, 14.1]),
                            _normsys("xsec_bkg", 1.08, 0.93),
                        ],
                    ),
                    _sample("other", [6.0, 4.0], [_normsys("xsec_bkg", 1.08, 0.93)]),
                ],
            ),
            _channel(
                "CR",
                [
                    _sample(
                        "bkg",
                        [60.0, 45.0, 30.0],
                        [
                            _histosys("jes", [63.0, 47.5, 31.0], [57.5, 43.0, 28.5]),
                            _normsys("xsec_bkg", 1.08, 0.93),
                        ],
                    ),
                    _sample(
                        "other",
                        [10.0, 8.0, 5.0],
                        [_histosys("jes", [10.5, 8.2, 5.4], [9.6, 7.7, 4.8])],
                    ),
                ],
            ),
        ],
        [("SR", [31.0, 30.0]), ("CR", [72.0, 52.0, 36.0])],
        [_measurement("meas", "mu")],
    ),
)

_case(
    "normsys_histosys_same_name",
    "1 channel x 2 bins; parameter 'jes' is a normsys on the signal and a histosys on the "
    "background (one shared parameter)",
    _one_channel(
        [
            _signal(extra=[_normsys("jes", 1.06, 0.95)]),
            _sample("background", BKG, [_histosys("jes", [53.0, 61.0], [47.5, 58.0])]),
        ],
        [56.0, 70.0],
    ),
)

_case(
    "coupled_shapefactor",
    "2 channels x 2 bins; one shapefactor shared by the background in both channels "
    "(pyhf validation 2bin_2channel_coupledshapefactor layout)",
    _workspace(
        [
            _channel(
                "SR",
                [_signal([5.0, 3.0]), _sample("bkg", [20.0, 10.0], [_shapefactor("sf_bkg")])],
            ),
            _channel("CR", [_sample("bkg", [100.0, 50.0], [_shapefactor("sf_bkg")])]),
        ],
        [("SR", [24.0, 14.0]), ("CR", [105.0, 48.0])],
        [_measurement("meas", "mu")],
    ),
)

_case(
    "zero_bins",
    "1 channel x 3 bins; signal with a 0 bin; staterror with 0 uncertainty in bin 0 "
    "(fixed gamma); shapesys with 0 uncertainty in bin 1 and on a 0 nominal bin (fixed gammas)",
    _one_channel(
        [
            _signal([0.0, 4.0, 8.0], [_staterror("staterror_SR", [0.0, 1.0, 1.5])]),
            _sample("bkg", [20.0, 10.0, 6.0], [_staterror("staterror_SR", [0.0, 1.0, 0.5])]),
            _sample("bkg_ss", [30.0, 15.0, 5.0], [_shapesys("bkg_ss_unc", [3.0, 0.0, 1.0])]),
            _sample("bkg_empty", [0.0, 2.0, 3.0], [_shapesys("bkg_empty_unc", [0.5, 0.5, 0.5])]),
        ],
        [52.0, 31.0, 21.0],
    ),
)

_case(
    "measurement_overrides",
    "1 channel x 2 bins; measurement config: inits/bounds for mu, a fixed normsys at a "
    "non-default init, lumi auxdata/sigmas, and an entry for an unknown parameter (ignored)",
    _one_channel(
        [
            _signal(extra=[_lumi()]),
            _sample(
                "background",
                BKG,
                [
                    _lumi(),
                    _normsys("bkg_norm", 1.1, 0.9),
                    _histosys("bkg_shape", [52.0, 63.0], [48.5, 57.5]),
                ],
            ),
        ],
        [58.0, 74.0],
        parameters=[
            {"name": "mu", "inits": [1.5], "bounds": [[0.0, 20.0]]},
            {"name": "bkg_norm", "fixed": True, "inits": [0.5]},
            {"name": "bkg_shape", "bounds": [[-3.0, 3.0]]},
            _lumi_config(0.05, inits=[1.02]),
            {"name": "mu_BG", "fixed": True},
        ],
    ),
)

_case(
    "two_measurements",
    "1 channel x 2 bins; two measurements with different POIs (mu_sig, mu_bkg) and bounds",
    _workspace(
        [
            _channel(
                "SR",
                [
                    _sample("signal", SIG, [_normfactor("mu_sig")]),
                    _sample(
                        "background",
                        BKG,
                        [_normfactor("mu_bkg"), _normsys("bkg_norm", 1.1, 0.9)],
                    ),
                ],
            )
        ],
        [("SR", [53.0, 65.0])],
        [
            _measurement("signal_strength", "mu_sig", [{"name": "mu_sig", "bounds": [[0.0, 8.0]]}]),
            _measurement(
                "background_norm",
                "mu_bkg",
                [{"name": "mu_bkg", "bounds": [[0.0, 3.0]]}, {"name": "mu_sig", "fixed": True}],
            ),
        ],
    ),
)

_case(
    "noninteger_obs",
    "1 channel x 3 bins; non-integer observed counts (continuous Poisson)",
    _one_channel(
        [
            _signal([2.0, 5.0, 3.0]),
            _sample("background", [40.0, 30.0, 7.0], [_normsys("bkg_norm", 1.1, 0.9)]),
        ],
        [42.3, 36.71, 9.5],
    ),
)


# --- a larger, realistic one ------------------------------------------------------


def _realistic():
    nb = 10
    channels, observations = [], []
    # (channel, signal scale, ttbar scale, wjets scale, diboson scale, fakes scale)
    layout = [
        ("SR_low", 12.0, 40.0, 25.0, 6.0, 8.0),
        ("SR_high", 8.0, 15.0, 10.0, 4.0, 3.0),
        ("CR_ttbar", 0.0, 300.0, 40.0, 10.0, 12.0),
        ("CR_wjets", 0.0, 35.0, 250.0, 12.0, 10.0),
        ("VR", 2.0, 60.0, 50.0, 8.0, 6.0),
    ]
    for ci, (ch, s_sig, s_tt, s_w, s_vv, s_fk) in enumerate(layout):
        stat = f"staterror_{ch}"
        samples = []
        tot = [0.0] * nb
        if s_sig > 0:
            sig = _shape(nb, s_sig, 0.05, phase=ci, wiggle=0.3)
            samples.append(
                _sample(
                    "signal",
                    sig,
                    [
                        _normfactor("mu"),
                        _lumi(),
                        _normsys("sig_xsec", 1.08, 0.93),
                        _histosys(
                            "jes",
                            _scaled(sig, [1.03 + 0.004 * b for b in range(nb)]),
                            _scaled(sig, [0.975 - 0.003 * b for b in range(nb)]),
                        ),
                        _staterror(stat, [round(0.1 * math.sqrt(v), 4) for v in sig]),
                    ],
                )
            )
            tot = [t + v for t, v in zip(tot, sig, strict=True)]
        tt = _shape(nb, s_tt, 0.25, phase=ci + 0.5)
        samples.append(
            _sample(
                "ttbar",
                tt,
                [
                    _normfactor("mu_ttbar"),
                    _lumi(),
                    _histosys(
                        "jes",
                        _scaled(tt, [1.04 + 0.003 * b for b in range(nb)]),
                        _scaled(tt, [0.965 - 0.002 * b for b in range(nb)]),
                    ),
                    # one-sided: lo equals the nominal
                    _histosys("ttbar_gen", _scaled(tt, [1.0 + 0.01 * b for b in range(nb)]), tt),
                    _normsys("ttbar_isr", 1.05, 0.97),
                    _staterror(stat, [round(0.08 * math.sqrt(v), 4) for v in tt]),
                ],
            )
        )
        w = _shape(nb, s_w, 0.3, phase=ci + 1.0)
        samples.append(
            _sample(
                "wjets",
                w,
                [
                    _shapefactor("sf_wjets"),
                    _lumi(),
                    _histosys(
                        "jes",
                        _scaled(w, [1.05 - 0.002 * b for b in range(nb)]),
                        _scaled(w, [0.955 + 0.001 * b for b in range(nb)]),
                    ),
                    _staterror(stat, [round(0.1 * math.sqrt(v), 4) for v in w]),
                ],
            )
        )
        vv = _shape(nb, s_vv, 0.15, phase=ci + 2.0)
        samples.append(
            _sample(
                "diboson",
                vv,
                [_lumi(), _normsys("diboson_xsec", 1.2, 0.8), _normsys("pileup", 1.02, 0.99)],
            )
        )
        fk = _shape(nb, s_fk, 0.2, phase=ci + 3.0)
        samples.append(
            _sample(
                "fakes",
                fk,
                [
                    _shapesys(f"fakes_stat_{ch}", [round(0.3 * v, 4) for v in fk]),
                    _normsys("fakes_norm", 1.4, 0.6),
                ],
            )
        )
        for part in (tt, w, vv, fk):
            tot = [t + v for t, v in zip(tot, part, strict=True)]
        channels.append(_channel(ch, samples))
        observations.append(
            (
                ch,
                [
                    float(round(t * (1.0 + 0.06 * math.sin(2.3 * b + ci))))
                    for b, t in enumerate(tot)
                ],
            )
        )
    return _workspace(
        channels,
        observations,
        [
            _measurement(
                "NormalMeasurement",
                "mu",
                [
                    _lumi_config(0.017),
                    {"name": "mu", "bounds": [[0.0, 10.0]], "inits": [1.0]},
                    {"name": "mu_ttbar", "bounds": [[0.0, 5.0]]},
                ],
            )
        ],
    )


_case(
    "realistic",
    "5 channels x 10 bins, 5 samples (signal, ttbar, wjets, diboson, fakes), all seven modifier "
    "types: lumi, POI + free ttbar norm, shapefactor on wjets, coupled histosys 'jes', one-sided "
    "histosys, normsys, per-channel staterror, per-channel shapesys",
    _realistic(),
)


# ---------------------------------------------------------------------------
# accessors
# ---------------------------------------------------------------------------

#: ``modifier_settings`` per interpolation scheme; both keys are always given
#: because pyhf replaces the whole dict (a missing type falls back to code1/code0).
INTERPOLATION_SETTINGS = {
    "pyhf": {"normsys": {"interpcode": "code4"}, "histosys": {"interpcode": "code4p"}},
    "root": {"normsys": {"interpcode": "code1"}, "histosys": {"interpcode": "code0"}},
}


def zoo_case(name):
    """Return a deep copy of the zoo workspace ``name`` (a ``KeyError`` lists the names)."""
    try:
        return copy.deepcopy(ZOO[name])
    except KeyError:
        raise KeyError(f"no zoo case {name!r}; cases are: {', '.join(ZOO)}") from None


def pyhf_model(ws, interpolation="pyhf", measurement=None):
    """Build the pyhf 0.7.6 oracle for a workspace.

    Parameters
    ----------
    ws : dict
        A pyhf workspace (e.g. ``zoo_case(name)``).
    interpolation : {'pyhf', 'root'}
        ``'pyhf'``: normsys code4 + histosys code4p (pyhf's defaults);
        ``'root'``: normsys code1 + histosys code0 (ROOT HistFactory).
    measurement : str or int, optional
        Measurement name (str) or index (int); the first one by default.

    Returns
    -------
    (pyhf.pdf.Model, list)
        The model and its data (observations in sorted-channel order followed by
        the auxiliary data).
    """
    import pyhf  # lazily: only oracle tests need it

    if interpolation not in INTERPOLATION_SETTINGS:
        raise ValueError(
            f"interpolation must be one of {sorted(INTERPOLATION_SETTINGS)}, got {interpolation!r}"
        )
    workspace = pyhf.Workspace(copy.deepcopy(ws))
    kwargs = {"modifier_settings": copy.deepcopy(INTERPOLATION_SETTINGS[interpolation])}
    if isinstance(measurement, int) and not isinstance(measurement, bool):
        kwargs["measurement_index"] = measurement
    elif measurement is not None:
        kwargs["measurement_name"] = measurement
    model = workspace.model(**kwargs)
    return model, workspace.data(model)
