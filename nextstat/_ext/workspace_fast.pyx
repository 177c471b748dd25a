"""Fast paths for workspaces made of plain JSON values.

* :func:`channels_fast_accept` walks ``ws["channels"]`` once at C speed and answers whether
  every check that :func:`nextstat.model.workspace.validate_workspace` makes on the
  channels (schema phase and semantic phase) passes. It never explains a failure: when it
  answers ``None``, the pure-Python checks run and name the offending place. Those checks
  are the reference; ``tests/test_workspace_fast.py`` compares the two on valid and
  broken workspaces.
* :func:`float_array` converts a list of numbers to a float64 array in one C loop.
* :func:`plain_copy` deep-copies a document of plain JSON values; the pure-Python
  ``_to_plain`` of :mod:`nextstat.model.workspace` (which also converts NumPy values) is its
  reference and takes over when it declines.

Plain JSON values are what ``json.loads`` makes: ``dict`` (with ``str`` keys), ``list``,
``str``, ``float``, ``int``, ``bool`` and ``None``. Anything else (NumPy arrays and
scalars, subclasses) is left to the Python code.
"""

from cpython.float cimport PyFloat_AS_DOUBLE, PyFloat_CheckExact
from cpython.long cimport PyLong_AsDouble, PyLong_CheckExact
from libc.math cimport isfinite

import numpy as np

_NULL_DATA = frozenset(("lumi", "normfactor", "shapefactor"))
_ARRAY_DATA = frozenset(("shapesys", "staterror"))


cdef int _number(object x, double* out):
    """1 and ``*out`` set if ``x`` is a finite float or an int that fits a double."""
    cdef double v
    if PyFloat_CheckExact(x):
        v = PyFloat_AS_DOUBLE(x)
    elif PyLong_CheckExact(x):
        try:
            v = PyLong_AsDouble(x)
        except OverflowError:
            return 0
    else:
        return 0
    if not isfinite(v):
        return 0
    out[0] = v
    return 1


cdef int _numbers(object arr, Py_ssize_t n, bint nonnegative):
    """1 if ``arr`` is a list of ``n`` finite numbers (all >= 0 if ``nonnegative``)."""
    cdef double v
    cdef list items
    if type(arr) is not list:
        return 0
    items = <list> arr
    if len(items) != n:
        return 0
    for x in items:
        if not _number(x, &v):
            return 0
        if nonnegative and v < 0:
            return 0
    return 1


cdef int _keys(object obj, tuple keys):
    """1 if ``obj`` is a dict with exactly ``keys``."""
    cdef dict d
    if type(obj) is not dict:
        return 0
    d = <dict> obj
    if len(d) != len(keys):
        return 0
    for k in keys:
        if k not in d:
            return 0
    return 1


cdef int _modifier(object mod, Py_ssize_t nbins, set names_types, set names):
    """1 if the modifier passes every schema and semantic check; registers its name."""
    cdef double v
    if not _keys(mod, ("name", "type", "data")):
        return 0
    name, mtype, data = mod["name"], mod["type"], mod["data"]
    if type(name) is not str or type(mtype) is not str:
        return 0
    key = (name, mtype)
    if key in names_types:
        return 0
    names_types.add(key)
    names.add(name)
    if mtype == "normsys":
        return (_keys(data, ("hi", "lo")) and _number(data["hi"], &v)
                and _number(data["lo"], &v))
    if mtype == "histosys":
        return (_keys(data, ("hi_data", "lo_data"))
                and _numbers(data["hi_data"], nbins, False)
                and _numbers(data["lo_data"], nbins, False))
    if mtype in _ARRAY_DATA:
        return _numbers(data, nbins, True)
    if mtype in _NULL_DATA:
        return data is None and (mtype != "lumi" or name == "lumi")
    return 0


def channels_fast_accept(object channels):
    """Accept ``ws["channels"]`` if every channel check of ``validate_workspace`` passes.

    Parameters
    ----------
    channels : object
        ``ws["channels"]`` of a parsed workspace.

    Returns
    -------
    tuple or None
        ``(nbins_of, lumi_at, modifier_names)``: bins per channel name, the
        ``(channel, sample, modifier)`` indices of the first ``lumi`` modifier (``None``
        if there is none) and the set of modifier names; ``None`` when any check fails
        or a value is not a plain JSON type.
    """
    cdef dict nbins_of = {}
    cdef set names = set()
    cdef set sample_names, names_types
    cdef Py_ssize_t ci, si, mi, nbins
    lumi_at = None
    if type(channels) is not list or not channels:
        return None
    for ci, channel in enumerate(<list> channels):
        if not _keys(channel, ("name", "samples")):
            return None
        cname, samples = channel["name"], channel["samples"]
        if type(cname) is not str or cname in nbins_of:
            return None
        if type(samples) is not list or not samples:
            return None
        first = (<list> samples)[0]
        if type(first) is not dict or type(first.get("data")) is not list:
            return None
        nbins = len(<list> first["data"])
        if nbins == 0:
            return None
        nbins_of[cname] = nbins
        sample_names = set()
        for si, sample in enumerate(<list> samples):
            if not _keys(sample, ("name", "data", "modifiers")):
                return None
            sname, mods = sample["name"], sample["modifiers"]
            if type(sname) is not str or sname in sample_names:
                return None
            sample_names.add(sname)
            if not _numbers(sample["data"], nbins, False) or type(mods) is not list:
                return None
            names_types = set()
            for mi, mod in enumerate(<list> mods):
                if not _modifier(mod, nbins, names_types, names):
                    return None
                if lumi_at is None and mod["type"] == "lumi":
                    lumi_at = (ci, si, mi)
    return nbins_of, lumi_at, names


class NotPlain(Exception):
    """A value that is not a plain JSON value was met (see :func:`plain_copy`)."""


#: Deeper nesting than any workspace has (about 6 levels) is left to the Python copy, which
#: reports it instead of overflowing the C stack.
cdef int MAX_DEPTH = 64


cdef object _copy(object obj, int depth):
    cdef type t = type(obj)
    cdef list src, out
    cdef Py_ssize_t i, n
    if t is float or t is int or t is str or t is bool or obj is None:
        return obj
    if t is list:
        src = <list> obj
        n = len(src)
        for i in range(n):
            t = type(src[i])
            if not (t is float or t is int):
                break
        else:
            return src[:]  # the bin contents: a flat copy
        if depth >= MAX_DEPTH:
            raise NotPlain
        out = []
        for item in src:
            out.append(_copy(item, depth + 1))
        return out
    if t is dict:
        if depth >= MAX_DEPTH:
            raise NotPlain
        d = {}
        for k, v in (<dict> obj).items():
            if type(k) is not str:
                raise NotPlain
            d[k] = _copy(v, depth + 1)
        return d
    raise NotPlain


def plain_copy(object obj):
    """A deep copy of ``obj`` if it is made of plain JSON values only.

    Raises
    ------
    NotPlain
        At the first other value, or nesting deeper than 64 levels; the caller falls back
        to a converting copy.
    """
    return _copy(obj, 0)


def float_array(list values):
    """``numpy.asarray(values, dtype=float64)`` for a list of floats and ints, in one C loop.

    Other items (NumPy scalars, ints too large for a double) are left to NumPy, which
    converts or rejects them as ``numpy.asarray`` does.
    """
    cdef Py_ssize_t i, n = len(values)
    out = np.empty(n, dtype=np.float64)
    cdef double[::1] o = out
    for i in range(n):
        x = values[i]
        if PyFloat_CheckExact(x):
            o[i] = PyFloat_AS_DOUBLE(x)
        elif PyLong_CheckExact(x):
            try:
                o[i] = PyLong_AsDouble(x)
            except OverflowError:
                return np.asarray(values, dtype=np.float64)
        else:
            return np.asarray(values, dtype=np.float64)
    return out
