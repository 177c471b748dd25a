"""nextstat.io.root: TH1 and TTree reading against files written here with uproot.

Every file is written in the test with known contents, so the expected numbers are the
inputs themselves (and numpy computations on them), never values read back through the
code under test.
"""

from __future__ import annotations

import dataclasses

import awkward as ak
import numpy as np
import pytest
import uproot
from uproot.writing.identify import to_TAxis, to_TH1x

from nextstat.errors import InvalidFormat
from nextstat.io.root import Jagged, iter_tree, list_objects, open_root, read_hist, read_tree

# Histogram contents go through float64 TArrayD unchanged: compare exactly.
EXACT = 0.0


def _th1(name, values_with_flow, sumw2_with_flow, edges, title="t", cls_float32=False):
    n = len(edges) - 1
    axis = to_TAxis("xaxis", "", n, float(edges[0]), float(edges[-1]), np.asarray(edges, float))
    data = np.asarray(values_with_flow, np.float32 if cls_float32 else np.float64)
    w2 = np.asarray(sumw2_with_flow, float)
    return to_TH1x(name, title, data, 7.0, float(data.sum()), float(w2.sum()), 0.0, 0.0, w2,
                   axis)


@pytest.fixture(scope="module")
def hist_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("root") / "hists.root"
    with uproot.recreate(path) as f:
        f["weighted"] = _th1(
            "weighted", [0.5, 1.0, 2.0, 3.0, 4.5], [0.25, 1.5, 2.5, 3.5, 9.0],
            [0.0, 1.0, 2.5, 4.0], title="a weighted histogram",
        )
        # unweighted: no fSumw2, contents include a negative bin
        f["plain"] = (np.array([4.0, -1.0, 9.0]), np.array([0.0, 1.0, 2.0, 3.0]))
        f["dir/sub/nested"] = (np.array([1.0, 2.0]), np.array([0.0, 0.5, 1.0]))
        f["h2d"] = (np.ones((2, 2)), np.array([0.0, 1.0, 2.0]), np.array([0.0, 1.0, 2.0]))
        f.mktree("tree", {"x": np.float64})
        f["tree"].extend({"x": np.arange(3.0)})
    return path


def test_weighted_th1_values_variances_edges(hist_file):
    h = read_hist(hist_file, "weighted")
    assert h.classname == "TH1D" and h.title == "a weighted histogram"
    np.testing.assert_array_equal(h.values, [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(h.variances, [1.5, 2.5, 3.5])
    np.testing.assert_array_equal(h.sumw2, h.variances)
    np.testing.assert_allclose(h.errors, np.sqrt([1.5, 2.5, 3.5]), rtol=EXACT, atol=1e-15)
    np.testing.assert_array_equal(h.edges, [0.0, 1.0, 2.5, 4.0])
    assert h.has_sumw2 and h.nbins == 3 and not h.flow
    assert (h.underflow, h.overflow) == (0.5, 4.5)
    assert (h.underflow_variance, h.overflow_variance) == (0.25, 9.0)
    assert h.entries == 7.0


def test_flow_true_includes_flow_bins_with_infinite_edges(hist_file):
    h = read_hist(hist_file, "weighted", flow=True)
    np.testing.assert_array_equal(h.values, [0.5, 1.0, 2.0, 3.0, 4.5])
    np.testing.assert_array_equal(h.variances, [0.25, 1.5, 2.5, 3.5, 9.0])
    np.testing.assert_array_equal(h.edges, [-np.inf, 0.0, 1.0, 2.5, 4.0, np.inf])
    np.testing.assert_array_equal(h.in_range_edges, [0.0, 1.0, 2.5, 4.0])
    assert h.nbins == 3 and h.flow


def test_unweighted_th1_variances_are_abs_contents(hist_file):
    """ROOT's GetBinError is sqrt(|content|) when fSumw2 is empty."""
    h = read_hist(hist_file, "plain")
    assert not h.has_sumw2
    np.testing.assert_array_equal(h.values, [4.0, -1.0, 9.0])
    np.testing.assert_array_equal(h.variances, [4.0, 1.0, 9.0])


def test_histogram_in_subdirectory_and_cycle(hist_file):
    np.testing.assert_array_equal(read_hist(hist_file, "dir/sub/nested").values, [1.0, 2.0])
    np.testing.assert_array_equal(read_hist(hist_file, "/dir/sub/nested;1").edges,
                                  [0.0, 0.5, 1.0])


def test_result_is_frozen_and_read_only(hist_file):
    h = read_hist(hist_file, "weighted")
    with pytest.raises(dataclasses.FrozenInstanceError):
        h.values = np.zeros(3)
    with pytest.raises(ValueError):
        h.values[0] = 5.0


def test_list_objects_and_open_root_reuse(hist_file):
    objects = list_objects(hist_file)
    assert objects["weighted"] == "TH1D" and objects["tree"] == "TTree"
    assert objects["dir/sub/nested"].startswith("TH1")
    with open_root(hist_file) as f:
        assert f.hist("plain").nbins == 3 and f.hist("weighted").nbins == 3


def test_missing_histogram_lists_histograms_and_suggests(hist_file):
    with pytest.raises(InvalidFormat) as info:
        read_hist(hist_file, "weigthed")
    msg = str(info.value)
    assert f"{hist_file}:weigthed" in msg
    assert "did you mean 'weighted'?" in msg
    assert "dir/sub/nested" in msg and "plain" in msg


@pytest.mark.parametrize(("name", "kind"), [("tree", "TTree"), ("h2d", "TH2")])
def test_wrong_object_type(hist_file, name, kind):
    with pytest.raises(InvalidFormat, match=f"is a {kind}.*expected a 1-D histogram"):
        read_hist(hist_file, name)


def test_missing_and_non_root_files(tmp_path):
    with pytest.raises(InvalidFormat, match="ROOT file not found"):
        read_hist(tmp_path / "absent.root", "h")
    text = tmp_path / "text.root"
    text.write_text("this is not a ROOT file" * 10)
    with pytest.raises(InvalidFormat, match="not a ROOT file"):
        read_hist(text, "h")
    with pytest.raises(InvalidFormat, match="is a directory"):
        read_hist(tmp_path, "h")


def test_inconsistent_sumw2_names_file_and_object(tmp_path):
    path = str(tmp_path / "bad_sumw2.root")
    axis = to_TAxis("xaxis", "", 2, 0.0, 2.0, np.array([0.0, 1.0, 2.0]))
    h = to_TH1x("h", "h", np.array([0.0, 1.0, 2.0, 0.0]), 3.0, 3.0, 3.0, 0.0, 0.0,
                np.array([1.0, 2.0, 3.0]), axis)
    with uproot.recreate(path) as f:
        f["d/h"] = h
    with pytest.raises(InvalidFormat, match="fSumw2 has 3 entries for 4 bins") as exc:
        read_hist(path, "d/h")
    assert exc.value.where == f"{path}:d/h"


@pytest.mark.parametrize("fraction", [0.02, 0.5, 0.95])
def test_truncated_file_is_reported(hist_file, tmp_path, fraction):
    raw = hist_file.read_bytes()
    cut = tmp_path / "cut.root"
    cut.write_bytes(raw[: int(len(raw) * fraction)])
    with pytest.raises(InvalidFormat, match="truncated"):
        read_hist(cut, "weighted")


# ---------------------------------------------------------------------------
# trees
# ---------------------------------------------------------------------------

N_EVENTS = 7
X = np.linspace(-1.0, 2.0, N_EVENTS)
N = np.arange(N_EVENTS, dtype=np.int32)
FIXED = np.arange(3 * N_EVENTS, dtype=np.float32).reshape(N_EVENTS, 3)
JAGGED = [[1.0, 2.0], [], [3.0], [4.0, 5.0, 6.0], [7.0], [], [8.0, 9.0]]


@pytest.fixture(scope="module")
def tree_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("tree") / "tree.root"
    with uproot.recreate(path) as f:
        f.mktree("events", {"x": np.float64, "n": np.int32, "p": ("f4", (3,)),
                            "v": "var * float64"})
        # two baskets, to exercise chunked reading across basket boundaries
        for lo, hi in ((0, 4), (4, N_EVENTS)):
            f["events"].extend({"x": X[lo:hi], "n": N[lo:hi], "p": FIXED[lo:hi],
                                "v": ak.Array(JAGGED[lo:hi])})
        f["hist"] = (np.array([1.0]), np.array([0.0, 1.0]))
        f["ntuple"] = {"a": np.arange(4.0), "b": ak.Array([[1], [], [2, 3], [4]])}  # RNTuple
    return path


def _padded(rows, width, fill):
    out = np.full((len(rows), width), fill, dtype=float)
    for i, r in enumerate(rows):
        k = min(len(r), width)
        out[i, :k] = r[:k]
    return out


def test_scalar_and_fixed_array_branches(tree_file):
    cols = read_tree(tree_file, "events", ["x", "n", "p"])
    assert isinstance(cols["x"], np.ndarray) and cols["x"].dtype == np.float64
    np.testing.assert_array_equal(cols["x"], X)
    assert cols["n"].dtype == np.int32
    np.testing.assert_array_equal(cols["n"], N)
    assert cols["p"].shape == (N_EVENTS, 3) and cols["p"].dtype == np.float32
    np.testing.assert_array_equal(cols["p"], FIXED)


def test_jagged_as_awkward(tree_file):
    v = read_tree(tree_file, "events", ["v"])["v"]
    assert isinstance(v, ak.Array)
    assert ak.to_list(v) == JAGGED


def test_jagged_padded(tree_file):
    v = read_tree(tree_file, "events", ["v"], jagged="pad", pad_value=-99.0)["v"]
    np.testing.assert_array_equal(v, _padded(JAGGED, 3, -99.0))
    clipped = read_tree(tree_file, "events", ["v"], jagged="pad", pad_length=1)["v"]
    np.testing.assert_array_equal(clipped, _padded(JAGGED, 1, 0.0))


def test_jagged_ragged(tree_file):
    v = read_tree(tree_file, "events", ["v"], jagged="ragged")["v"]
    assert isinstance(v, Jagged) and len(v) == N_EVENTS
    np.testing.assert_array_equal(v.content, [x for row in JAGGED for x in row])
    np.testing.assert_array_equal(v.counts, [len(r) for r in JAGGED])
    np.testing.assert_array_equal(v[3], JAGGED[3])
    np.testing.assert_array_equal(v.pad(2, 0.5), _padded(JAGGED, 2, 0.5))


def test_all_branches_and_entry_range(tree_file):
    cols = read_tree(tree_file, "events", entry_start=2, entry_stop=5)
    assert set(cols) >= {"x", "n", "p", "v"}
    np.testing.assert_array_equal(cols["x"], X[2:5])
    assert ak.to_list(cols["v"]) == JAGGED[2:5]


@pytest.mark.parametrize("step", [1, 3, 100])
def test_iter_tree_chunks_concatenate_to_full_read(tree_file, step):
    chunks = list(iter_tree(tree_file, "events", ["x", "v"], step_size=step, jagged="ragged"))
    assert len(chunks) == -(-N_EVENTS // step)
    np.testing.assert_array_equal(np.concatenate([c["x"] for c in chunks]), X)
    rows = [list(c["v"][i]) for c in chunks for i in range(len(c["v"]))]
    assert rows == JAGGED


def test_rntuple_is_read_like_a_tree(tree_file):
    cols = read_tree(tree_file, "ntuple", jagged="ragged")
    np.testing.assert_array_equal(cols["a"], np.arange(4.0))
    np.testing.assert_array_equal(cols["b"].counts, [1, 0, 2, 1])


def test_missing_branch_and_tree(tree_file):
    with pytest.raises(InvalidFormat, match=r"no branch 'xx' \(did you mean 'x'\?\); branches"):
        read_tree(tree_file, "events", ["x", "xx"])
    with pytest.raises(InvalidFormat, match=r"did you mean 'events'\?.*trees in the file"):
        read_tree(tree_file, "event")
    with pytest.raises(InvalidFormat, match="is a TH1D, expected a tree"):
        read_tree(tree_file, "hist")
    with pytest.raises(ValueError, match="jagged must be one of"):
        read_tree(tree_file, "events", jagged="list")


def test_jagged_pad_matches_python_loop_on_random_rows():
    rng = np.random.default_rng(7)
    counts = rng.integers(0, 5, size=50)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    content = rng.normal(size=offsets[-1])
    rows = [content[offsets[i]:offsets[i + 1]] for i in range(50)]
    j = Jagged(content, offsets)
    for width in (None, 0, 2, 6):
        expected = _padded(rows, int(counts.max()) if width is None else width, -1.0)
        np.testing.assert_array_equal(j.pad(width, -1.0), expected)
