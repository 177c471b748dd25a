"""Interpolation-code settings: parsing the user's choice and naming the codes.

Codes (CERN-OPEN-2012-016; formulas in ``kernels/histfactory_math.h``):

=====  ==============  ==========================================================
code   kind            shape
=====  ==============  ==========================================================
0      additive        piecewise linear
1      multiplicative  piecewise exponential
2      additive        quadratic inside |a| <= 1, linear outside (continuous)
4      multiplicative  6th-order polynomial inside, exponential outside
4p     additive        6th-order polynomial inside, linear outside
=====  ==============  ==========================================================

Any code can be used for either modifier type: an additive code applied to a normsys acts on
the factors ``(lo, 1, hi)``; a multiplicative code applied to a histosys acts per bin on the
ratios ``lo/nominal``, ``hi/nominal``.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import InvalidArgumentType, InvalidModel

#: Code name -> identifier used in the compiled tables (``NS_CODE*`` in the C header).
CODE_IDS = {"0": 0, "1": 1, "2": 2, "4": 4, "4p": 5}

#: Named presets. ``"pyhf"`` is pyhf's default (and the seeds'); ``"root"`` is classic ROOT
#: HistFactory (and pyhf's own ROOT-validation setting).
PRESETS = {
    "pyhf": {"normsys": "4", "histosys": "4p"},
    "root": {"normsys": "1", "histosys": "0"},
}


def normalize_code(code) -> str:
    """Map ``4``, ``"4"``, ``"code4"``, ``"4p"``, ``"code4p"`` ... to ``"4"``, ``"4p"`` ..."""
    text = str(code).strip().lower()
    text = text.removeprefix("code")
    if text not in CODE_IDS:
        raise InvalidModel(
            f"unknown interpolation code {code!r}; valid codes are 0, 1, 2, 4, 4p"
        )
    return text


def resolve_codes(interpolation) -> dict[str, str]:
    """Interpolation codes per modifier type from a preset name or a mapping.

    A mapping overrides the ``"pyhf"`` preset type by type (unlike pyhf's
    ``modifier_settings``, which silently resets the types it does not mention to code1 /
    code0).
    """
    if isinstance(interpolation, str):
        if interpolation not in PRESETS:
            raise InvalidModel(
                f"unknown interpolation preset {interpolation!r}; use 'pyhf', 'root' or a "
                "mapping like {'normsys': '4', 'histosys': '4p'}"
            )
        return dict(PRESETS[interpolation])
    if isinstance(interpolation, Mapping):
        codes = dict(PRESETS["pyhf"])
        for kind, code in interpolation.items():
            if kind not in codes:
                raise InvalidModel(
                    f"interpolation codes apply to 'normsys' and 'histosys', not {kind!r}"
                )
            codes[kind] = normalize_code(code)
        return codes
    raise InvalidArgumentType(
        f"interpolation must be a preset name or a mapping, not {type(interpolation).__name__}"
    )
