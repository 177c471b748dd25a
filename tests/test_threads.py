"""Evaluations spread over threads give the same numbers as one thread, bit for bit."""

from __future__ import annotations

import numpy as np
import pytest
from nextstat._ext.fit import nll_grad_batch
from zoo import ZOO

import nextstat


@pytest.mark.parametrize("name", ["realistic", "multichannel"])
@pytest.mark.parametrize("mode", ["parity", "fast"])
def test_batch_identical_for_one_and_two_threads(name, mode):
    model = nextstat.from_pyhf(ZOO[name], unknown_parameters="ignore")
    rng = np.random.default_rng(0)
    init = model.suggested_init()
    lo, hi = np.array(model.suggested_bounds()).T
    thetas = np.clip(init + 0.05 * rng.standard_normal((64, init.size)), lo, hi)
    main, aux, const = model.dataset()
    kahan = mode == "parity"
    f1, g1 = nll_grad_batch(model.compiled, thetas, main, aux, const, kahan, n_threads=1)
    f2, g2 = nll_grad_batch(model.compiled, thetas, main, aux, const, kahan, n_threads=2)
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(g1, g2)
    # ... and the same as one call at a time through the model.
    for k in (0, 31, 63):
        f, g = model.nll_and_grad(thetas[k], mode=mode)
        assert f == f1[k]
        np.testing.assert_array_equal(g, g1[k])


def test_batch_rejects_bad_shapes():
    model = nextstat.from_pyhf(ZOO["multichannel"])
    main, aux, const = model.dataset()
    with pytest.raises(ValueError, match="columns"):
        nll_grad_batch(model.compiled, np.zeros((2, 1)), main, aux, const)
    with pytest.raises(ValueError, match="n_threads"):
        nll_grad_batch(model.compiled, np.zeros((2, model.n_params())), main, aux, const,
                       n_threads=0)
