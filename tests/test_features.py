"""High-level and muon features against hand-computed values and dense cross-checks."""

import numpy as np
import pytest
from scipy import ndimage

from calolab.geometry import load_detector
from calolab.reconstruction.features import high_level_features, segment_index, segment_sums
from calolab.reconstruction.muon_features import muon_features
from calolab.reconstruction.sums import weighted_sum
from calolab.showers import Showers
from calolab.simulation import Beam, simulate


def _showers(det, cells: list[dict], **kwargs) -> Showers:
    """Events from ``{(layer, x, y): MIPs}`` dicts, energies in MIPs of the small detector."""
    dense = np.zeros((len(cells), *det.shape), np.float32)
    for i, hits in enumerate(cells):
        for (layer, x, y), mips in hits.items():
            dense[i, layer, x, y] = mips * det.mip_mpv[layer]
    return Showers.from_dense(det, dense, particle=211, incident_energy=np.full(len(cells), 1e4), **kwargs)


def test_high_level_features_by_hand(small_detector):
    det = small_detector  # 6 layers of 25 mm, 8 x 8 cells of 20 mm, one MIP scale
    mip = det.mip_mpv[0]
    event = {(1, 3, 3): 10.0, (1, 3, 4): 2.0, (3, 4, 4): 4.0, (3, 0, 0): 0.3}
    x, names = high_level_features(_showers(det, [event, {}, {(2, 5, 5): 7.0}]), segments=3)
    assert x.shape == (3, len(names)) and x.dtype == np.float32
    f = dict(zip(names, x[0].astype(float), strict=True))
    rel = 1e-5
    assert f["e_visible"] == pytest.approx(16.3 * mip, rel=rel)
    assert f["e_weighted"] == pytest.approx(16.3 * det.mip_loss[0], rel=rel)
    assert f["e_above_0p5mip"] == pytest.approx(16.0 * mip, rel=rel)
    assert f["e_below_0p5mip"] == pytest.approx(0.3 * mip, rel=rel)
    assert f["e_above_5mip"] == pytest.approx(10.0 * mip, rel=rel)
    assert f["e_above_20mip"] == 0.0
    assert (f["n_above_0p5mip"], f["n_above_5mip"], f["n_hits"]) == (3, 1, 4)
    # segments of layers (0, 1), (2, 3), (4, 5)
    assert f["e_seg0"] == pytest.approx(12.0 * det.mip_loss[0], rel=rel)
    assert f["e_seg1"] == pytest.approx(4.3 * det.mip_loss[0], rel=rel)
    assert (f["n_hits_seg0"], f["n_hits_seg1"], f["n_hits_seg2"]) == (2, 2, 0)
    # z of the active slabs: 47.5 mm (layer 1), 97.5 mm (layer 3); cell centres -80 + 20 (i + 0.5) mm
    z_mean = (12 * 47.5 + 4.3 * 97.5) / 16.3
    x_mean = (10 * -10 + 2 * -10 + 4 * 10 + 0.3 * -70) / 16.3
    y_mean = (10 * -10 + 2 * 10 + 4 * 10 + 0.3 * -70) / 16.3
    assert f["z_mean_mm"] == pytest.approx(z_mean, rel=rel)
    assert f["x_mean_mm"] == pytest.approx(x_mean, rel=rel)
    assert f["y_mean_mm"] == pytest.approx(y_mean, rel=rel)
    var_z = (12 * (47.5 - z_mean) ** 2 + 4.3 * (97.5 - z_mean) ** 2) / 16.3
    assert f["z_std_mm"] == pytest.approx(np.sqrt(var_z), rel=rel)
    skew = (12 * (47.5 - z_mean) ** 3 + 4.3 * (97.5 - z_mean) ** 3) / 16.3 / var_z**1.5
    assert f["z_skew"] == pytest.approx(skew, rel=1e-4)
    var_x = (10 * (-10 - x_mean) ** 2 + 2 * (-10 - x_mean) ** 2 + 4 * (10 - x_mean) ** 2 + 0.3 * (-70 - x_mean) ** 2)
    var_y = (10 * (-10 - y_mean) ** 2 + 2 * (10 - y_mean) ** 2 + 4 * (10 - y_mean) ** 2 + 0.3 * (-70 - y_mean) ** 2)
    assert f["r_std_mm"] == pytest.approx(np.sqrt((var_x + var_y) / 16.3), rel=rel)
    assert (f["start_layer"], f["max_layer"]) == (1, 1)  # first layer with >= 4 MIPs
    # 3x3 in-layer sums: 12, 12, 4 and 0.3 MIPs, energy weighted
    assert f["density_mip"] == pytest.approx((10 * 12 + 2 * 12 + 4 * 4 + 0.3 * 0.3) / 16.3, rel=rel)
    assert f["hottest_fraction"] == pytest.approx(10 / 16.3, rel=rel)
    # the empty event: all zero, no shower start; a one-hit event: no widths
    empty = dict(zip(names, x[1], strict=True))
    assert empty["start_layer"] == det.n_layers and all(v == 0 for k, v in empty.items() if k != "start_layer")
    single = dict(zip(names, x[2], strict=True))
    assert [single[k] for k in ("z_std_mm", "r_std_mm", "z_skew")] == pytest.approx([0, 0, 0], abs=1e-6)
    assert single["density_mip"] == pytest.approx(7.0, rel=rel) and single["hottest_fraction"] == pytest.approx(1.0)


@pytest.fixture(scope="module")
def pions() -> Showers:
    return simulate(load_detector("cusi"), Beam("pi+", energy_min=10e3, energy_max=100e3, spectrum="uniform"), 60,
                    seed=3)


def test_features_are_per_event_and_match_dense(pions):
    x, names = high_level_features(pions)
    assert np.array_equal(high_level_features(pions[17:41])[0], x[17:41])  # any slice gives the same rows
    assert np.array_equal(high_level_features(pions)[0], x)  # deterministic
    assert len(names) == len(set(names)) == x.shape[1] == 2 + 9 + 10 + 11 + 10
    assert np.allclose(segment_sums(pions).sum(axis=1), weighted_sum(pions), rtol=1e-9)
    assert np.bincount(segment_index(75, 10)).tolist() == [8, 7, 8, 7, 8, 7, 8, 7, 8, 7]
    # local density cross-checked on the dense events with a 3x3 in-layer box filter
    det = pions.detector
    dense = pions.dense(0, 5) / det.mip_mpv[None, :, None, None]
    box = ndimage.convolve(dense, np.ones((1, 1, 3, 3)), mode="constant")
    expected = (dense * box).sum(axis=(1, 2, 3)) / dense.sum(axis=(1, 2, 3))
    assert np.allclose(x[:5, names.index("density_mip")], expected, rtol=1e-4)


def test_muon_features_by_hand(small_detector):
    det = small_detector
    mip = det.mip_mpv[0]
    track = {(layer, 2, 4): 1.0 for layer in range(6)}  # entry (-30, 10) mm is cell (2, 4); straight along z
    hits = {**track, (2, 3, 4): 3.0, (2, 2, 6): 0.5, (4, 6, 1): 5.0, (5, 6, 1): 4.0, (5, 7, 2): 2.5, (0, 7, 7): 3.0}
    s = _showers(det, [hits], entry=[[-30.0, 10.0]])
    x, names = muon_features(s, cluster_mip=2.0)
    f = {k: v / mip if k.startswith("e_") else v for k, v in zip(names, x[0].astype(float), strict=True)}
    expected = {"e_track_0": 6, "e_track_1": 9, "e_track_2": 9.5, "e_off_track": 14.5, "e_cell_max": 5,
                "e_layer_max": 7.5, "n_layers_above_2mip": 4, "n_layers_above_10mip": 0, "n_cells_cluster": 5,
                "n_clusters": 3, "n_clusters_off_track": 2, "e_clusters_on_track": 3, "e_clusters_off_track": 14.5,
                "e_cluster_max": 11.5, "e_cluster_max_off_track": 11.5, "e_box3_max_off_track": 11.5}
    for key, value in expected.items():
        assert f[key] == pytest.approx(value, rel=1e-5), key
    # offsets from the track (x_t, y_t) = (-30, 10) mm of each cell centre, energy weighted
    mean_x = (3 * 20 + 5 * 80 + 4 * 80 + 2.5 * 100 + 3 * 100) / 24
    mean_y = (0.5 * 40 + 5 * -60 + 4 * -60 + 2.5 * -40 + 3 * 60) / 24
    assert f["imbalance_x_mm"] == pytest.approx(mean_x, rel=1e-5)
    assert f["imbalance_y_mm"] == pytest.approx(mean_y, rel=1e-5)
    assert f["imbalance_mm"] == pytest.approx(np.hypot(mean_x, mean_y), rel=1e-5)


def test_muon_track_follows_the_direction(small_detector):
    # x_t = 10 + 0.8 z; active slabs at z = 22.5 + 25 l mm, so the track is in cell 5 + l
    det = small_detector
    s = _showers(det, [{(0, 5, 4): 1.0, (1, 6, 4): 1.0, (2, 7, 4): 1.0, (2, 4, 4): 1.0}], entry=[[10.0, 10.0]],
                 direction=np.array([[0.8, 0.0, 1.0]]) / np.hypot(0.8, 1.0))
    x, names = muon_features(s)
    assert x[0, names.index("e_track_0")] == pytest.approx(3 * det.mip_mpv[0], rel=1e-5)
    assert x[0, names.index("e_off_track")] == pytest.approx(det.mip_mpv[0], rel=1e-5)


def test_muon_bend_by_hand(small_detector):
    """bend_x_mm fits c_l = k z_l^2 / 2 to the two nearest columns' centroid offsets, less the track's MIP."""
    det = small_detector  # active slabs at z = 22.5 + 25 l mm, 8 x 8 cells of 20 mm from -80 mm
    u = (det.z_active - det.z_bounds[0]) ** 2 / 2
    # entry x = 0 lies on the edge of columns 3 and 4: the track's cell is column 4 (centre +10 mm), its
    # neighbour column 3 (-10 mm); column 5 and layers holding only the MIP do not count
    first = {(layer, 4, 2): 1.0 for layer in range(6)}
    first.update({(2, 4, 2): 4.0, (2, 3, 6): 1.0, (2, 5, 2): 5.0, (4, 3, 2): 3.0})
    # entry x = 15 mm: track cell column 4 (-5 mm from it), neighbour column 5 (+15 mm); column 3 ignored
    second = {(layer, 4, 2): 1.0 for layer in range(6)}
    second.update({(3, 4, 2): 2.0, (3, 5, 2): 2.0, (3, 3, 2): 4.0})
    s = _showers(det, [first, second], entry=[[0.0, 0.0], [15.0, 0.0]])
    x, names = muon_features(s)
    bend = x[:, names.index("bend_x_mm")].astype(float)
    # per layer, in MIPs: numerator sum(e * offset) - MIP * track-cell offset, weight sum(e) - MIP
    num2, den2 = 4 * 10 + 1 * -10 - 10, 5 - 1
    num4, den4 = 1 * 10 + 3 * -10 - 10, 4 - 1
    expected_first = u[-1] * (u[2] * num2 + u[4] * num4) / (u[2] ** 2 * den2 + u[4] ** 2 * den4)
    num3, den3 = 2 * -5 + 2 * 15 - (-5), 4 - 1
    expected_second = u[-1] * num3 / (u[3] * den3)
    assert bend == pytest.approx([expected_first, expected_second], rel=1e-5)
    # a straight muon with nothing but its MIPs has no bend to show
    alone = muon_features(_showers(det, [{(layer, 4, 2): 1.0 for layer in range(6)}], entry=[[0.0, 0.0]]))
    assert alone[0][0, alone[1].index("bend_x_mm")] == 0.0


def test_muon_bend_follows_the_field():
    """In pbwo4 (2 T along y) bend_x_mm follows the true displacement: 1/p, and its sign is the charge's."""
    det = load_detector("pbwo4")
    shown = {}
    for particle, energy in (("mu-", 2e6), ("mu-", 6e6), ("mu+", 2e6)):
        muons = simulate(det, Beam(particle, energy=energy), 300, seed=3)
        x, names = muon_features(muons)
        shown[particle, energy] = (np.median(x[:, names.index("bend_x_mm")]), np.median(muons.extras["exit_x"]))
    bend, exit_x = shown["mu-", 2e6]
    assert exit_x > 0.3 and bend == pytest.approx(exit_x, rel=0.3)  # mu- bends to +x by about 0.5 mm at 2 TeV
    assert 0 < shown["mu-", 6e6][0] < bend / 2
    assert shown["mu+", 2e6][0] < -0.5 * bend


def test_muon_clusters_and_boxes_match_dense():
    det = load_detector("pbwo4")
    muons = simulate(det, Beam("mu-", energy_min=500e3, energy_max=8e6, spectrum="uniform"), 12, seed=5)
    x, names = muon_features(muons, cluster_mip=2.0)
    assert np.array_equal(muon_features(muons[3:9], cluster_mip=2.0)[0], x[3:9])
    dense = muons.dense()
    above = dense >= 2.0 * det.mip_mpv[None, :, None, None]
    boxes = ndimage.convolve(dense.astype(np.float64), np.ones((1, 3, 3, 3)), mode="constant")
    for i in range(len(muons)):
        labels, count = ndimage.label(above[i], structure=np.ones((3, 3, 3)))
        assert x[i, names.index("n_clusters")] == count
        sums = ndimage.sum(dense[i], labels, index=np.arange(1, count + 1))
        assert x[i, names.index("e_cluster_max")] == pytest.approx(max(sums, default=0.0), rel=1e-5)
    # off-track 3x3x3 maximum: boxes centred on hits at least 2 cells from the straight track
    layer, ix, iy = np.nonzero(dense[0])
    z = det.z_active[layer]
    it = np.floor((muons.entry[0] + muons.direction[0, :2] / muons.direction[0, 2] * z[:, None]
                   - det.x_edges[0]) / det.pitch_x).astype(int)
    far = np.maximum(np.abs(ix - it[:, 0]), np.abs(iy - it[:, 1])) >= 2
    expected = boxes[0][layer[far], ix[far], iy[far]].max(initial=0.0)
    assert x[0, names.index("e_box3_max_off_track")] == pytest.approx(expected, rel=1e-5)
    assert x[:, names.index("e_track_0")].min() > 0


def test_large_batches_are_built_in_event_ranges_with_the_same_features(pions, monkeypatch):
    """A batch over CHUNK_HITS hits goes through in event ranges (one event alone may exceed it)."""
    from calolab.reconstruction import hits

    muons = simulate(load_detector("pbwo4"), Beam("mu-", energy_min=50e3, energy_max=8e6, spectrum="uniform"), 12,
                     seed=6)
    whole = [high_level_features(pions), muon_features(muons), high_level_features(muons)]
    calls = []
    monkeypatch.setattr(hits, "CHUNK_HITS", int(np.max(np.diff(muons.offsets))) - 1)  # the largest muon alone
    original = hits.HitGrid.__init__
    monkeypatch.setattr(hits.HitGrid, "__init__", lambda self, showers, *a, **k: (calls.append(len(showers)),
                                                                                  original(self, showers, *a, **k))[1])
    for (x, names), (y, names_y) in zip(whole, [high_level_features(pions), muon_features(muons),
                                                 high_level_features(muons)], strict=True):
        assert names == names_y and x.shape == y.shape
        np.testing.assert_allclose(y, x, rtol=1e-6, atol=1e-6)
    assert max(calls) < max(len(pions), len(muons)) and len(calls) > 6


def test_features_command(pions, tmp_path):
    from click.testing import CliRunner

    from calolab.io import write_showers
    from calolab.reconstruction.commands import features

    write_showers(pions[:10], tmp_path / "pions.h5")
    result = CliRunner().invoke(features, [str(tmp_path / "pions.h5"), "-o", str(tmp_path / "f.npz")])
    assert result.exit_code == 0, result.output
    x, names = high_level_features(pions[:10])
    with np.load(tmp_path / "f.npz") as data:
        assert np.allclose(data["features"], x, rtol=1e-6) and data["names"].tolist() == names


@pytest.mark.parametrize("layers", [0, 1])
def test_box_sum_dense_and_sparse_paths_agree(pions, monkeypatch, layers):
    """Box sums read through dense grids (noise-flooded events) equal the sparse look-ups and a convolution."""
    from calolab.reconstruction import hits

    grid = hits.HitGrid(pions[:7])
    monkeypatch.setattr(hits, "DENSE_BOX_RATIO", np.inf)
    sparse = grid.box_sum(grid.energy, layers=layers, cells=1)
    monkeypatch.setattr(hits, "DENSE_BOX_RATIO", 0.0)
    monkeypatch.setattr(hits, "DENSE_BOX_CELLS", 2 * pions.detector.n_cells)  # several chunks, one of 1 event
    dense = grid.box_sum(grid.energy, layers=layers, cells=1)
    assert np.allclose(dense, sparse, rtol=1e-12, atol=1e-9)
    cube = ndimage.convolve(pions[:7].dense().astype(np.float64), np.ones((1, 2 * layers + 1, 3, 3)),
                            mode="constant")
    assert np.allclose(sparse, cube.reshape(-1)[grid.key], rtol=1e-5)


def test_box_sums_of_several_boxes_equal_convolutions(pions, monkeypatch):
    """One pass of look-ups, over groups of events, gives each box's sum of each quantity (as a convolution)."""
    from calolab.reconstruction import hits

    showers = pions[:7]
    monkeypatch.setattr(hits, "LOOKUP_CELLS", 3 * showers.detector.n_cells)  # groups of 3, 3 and 1 events
    grid = hits.HitGrid(showers)
    boxes = [(0, 1), (1, 1), (0, 2)]
    sums = grid.box_sums(np.column_stack([grid.energy, np.ones(len(grid))]), boxes)
    assert sums.shape == (3, len(grid), 2)
    dense = showers.dense().astype(np.float64)
    for (layers, cells), got in zip(boxes, sums, strict=True):
        kernel = np.ones((1, 2 * layers + 1, 2 * cells + 1, 2 * cells + 1))
        for column, grid_values in enumerate((dense, (dense > 0).astype(np.float64))):
            expected = ndimage.convolve(grid_values, kernel, mode="constant").reshape(-1)[grid.key]
            assert np.allclose(got[:, column], expected, rtol=1e-5)
    assert np.array_equal(sums[1, :, 0], grid.box_sum(grid.energy, layers=1, cells=1))
    monkeypatch.setattr(hits, "DENSE_BOX_RATIO", 0.0)  # the dense path, as for noise-flooded events
    assert np.allclose(grid.box_sums(np.column_stack([grid.energy, np.ones(len(grid))]), boxes), sums, rtol=1e-12)
