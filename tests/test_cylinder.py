"""Cylindrical (layer, alpha, r) detectors and the CaloChallenge datasets 2 and 3 layout."""

import math

import h5py
import numpy as np
import pytest
import yaml

from calolab import CalolabError, load_detector
from calolab.evaluation import check_compatible, high_level_features
from calolab.geometry import CylindricalGrid, Detector, calochallenge_detector
from calolab.io import read_calochallenge, read_showers, write_calochallenge, write_showers
from calolab.showers import Showers
from calolab.simulation import Beam, simulate
from calolab.simulation.deposits import cell_index
from calolab.simulation.readout import read_out
from calolab.simulation.sampling import visible_per_mev

DS2_EDGES = [0, 4.65, 9.3, 13.95, 18.6, 23.25, 27.9, 32.55, 37.2, 41.85]


def binning_xml(path, layers, name="electron"):
    """A binning file in CaloChallenge's XML schema: ``layers`` is a list of (r_edges, n_alpha)."""
    rows = "".join(f'<Layer id="{k}" r_edges="{",".join(f"{r:g}" for r in edges)}" n_bin_alpha="{n}"/>'
                   for k, (edges, n) in enumerate(layers))
    path.write_text(f'<Bins><Bin pid="11" name="{name}">{rows}</Bin></Bins>')
    return path


def xmlhandler_voxels(layers):
    """(layer, r centre, alpha centre) of every voxel in the order of CaloChallenge's XMLHandler.

    Re-implements ``XMLHandler.SetNumberOfBins`` and ``fill_r_a_lists``: alpha centres are the
    midpoints of ``linspace(-pi, pi, n_alpha + 1)``; within a layer the loop runs over alpha
    outside and over r inside; layers follow each other (``bin_edges``).
    """
    out = []
    for k, (edges, n_alpha) in enumerate(layers):
        r_mid = [edges[i] + (edges[i + 1] - edges[i]) / 2 for i in range(len(edges) - 1)]
        a_edges = np.linspace(-math.pi, math.pi, n_alpha + 1)
        a_mid = [a_edges[i] + (a_edges[i + 1] - a_edges[i]) / 2 for i in range(n_alpha)]
        for j0 in range(n_alpha):
            for i0 in range(len(r_mid)):
                out.append((k, r_mid[i0], a_mid[j0]))
    return np.array(out)


def test_bins_at_known_points():
    grid = CylindricalGrid(tuple(DS2_EDGES), 16)
    width = 2 * math.pi / 16
    x = np.array([1.0, 0.0, -1.0, 0.0, 4.64, 4.66, 41.84, 41.86, -3.0, -3.0, 0.0])
    y = np.array([0.0, 1.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 1e-9, -1e-9, 0.0])
    ia, ir, inside = grid.bins(x, y)
    # alpha = atan2(y, x) in bins of 2 pi / 16 from -pi: +x is the start of bin 8, +y of bin 12, -y of bin 4
    assert ia[:4].tolist() == [8, 12, 15, 4]
    assert ir[4:8].tolist()[:3] == [0, 1, 8] and inside.tolist()[4:8] == [True, True, True, False]
    assert ia[8] == 15 and ia[9] == 0  # just above and below the -x axis, where alpha wraps from pi to -pi
    assert ia[10] == 8 and ir[10] == 0 and inside[10]  # the axis itself
    # every bin centre falls in its own bin, and the centres are r (cos alpha, sin alpha)
    ka, kr = np.meshgrid(np.arange(16), np.arange(9), indexing="ij")
    cx, cy = grid.centres(ka.ravel(), kr.ravel())
    back_a, back_r, ok = grid.bins(cx, cy)
    assert ok.all() and np.array_equal(back_a, ka.ravel()) and np.array_equal(back_r, kr.ravel())
    np.testing.assert_allclose(np.arctan2(cy, cx), -math.pi + (ka.ravel() + 0.5) * width, atol=1e-12)


def test_cell_index_is_calochallenges_voxel_order():
    det = load_detector("calochallenge-ds2")
    layers = [(DS2_EDGES, 16)] * 45
    voxels = xmlhandler_voxels(layers)  # (6480, 3): layer, r, alpha
    x, y = voxels[:, 1] * np.cos(voxels[:, 2]), voxels[:, 1] * np.sin(voxels[:, 2])
    cells = cell_index(det, voxels[:, 0].astype(np.int64), x, y)
    assert np.array_equal(cells, np.arange(6480))
    # and beyond the last r edge, or outside the layers, a deposit is lost
    assert cell_index(det, np.array([0, 45, -1]), np.array([50.0, 1.0, 1.0]), np.array([0.0, 0.0, 0.0])).tolist() \
        == [-1, -1, -1]


def test_presets_have_the_datasets_voxels_and_round_trip():
    ds2, ds3 = load_detector("calochallenge-ds2"), load_detector("calochallenge-ds3")
    assert ds2.n_cells == 6480 and ds2.shape == (45, 16, 9)
    assert ds3.n_cells == 40500 and ds3.shape == (45, 50, 18)
    for det in (ds2, ds3):
        assert det.cylinder is not None and "cylindrical" in det.summary()
        assert abs(det.z_bounds[-1] - 153.0) < 1e-9  # 45 x 3.4 mm
        assert Detector.from_dict(det.to_dict()) == det
        assert Detector.from_dict(yaml.safe_load(det.to_yaml())) == det
    assert ds3.cylinder.r_edges[-1] == ds2.cylinder.r_edges[-1] == 41.85
    assert ds3.layers[0].absorber == "W" and ds3.layers[0].active == "Si"


def test_cartesian_quantities_refuse_a_cylindrical_detector():
    det = load_detector("calochallenge-ds2")
    for name in ("pitch_x", "pitch_y", "x_edges", "y_edges"):
        with pytest.raises(CalolabError, match=f"cylindrical.*{name} does not apply"):
            getattr(det, name)
    spec = det.to_dict()
    with pytest.raises(CalolabError, match="share its"):
        Detector.from_dict({**spec, "layers": [{**spec["layers"][0], "cells": {"pitch": 9.3}}]})
    with pytest.raises(CalolabError, match="cells.kind"):
        Detector.from_dict({**spec, "cells": {**spec["cells"], "kind": "hexagonal"}})
    with pytest.raises(CalolabError, match="r_edges"):
        Detector.from_dict({**spec, "cells": {**spec["cells"], "r_edges": [0, 5, 3]}})
    with pytest.raises(CalolabError, match="n_alpha"):
        Detector.from_dict({**spec, "cells": {**spec["cells"], "n_alpha": 0}})


def test_electrons_land_in_the_central_r_bins():
    det = load_detector("calochallenge-ds2")
    s = simulate(det, Beam("e-", energy=1e4), 100, seed=3)
    per_r = s.dense().sum((0, 1, 2))  # (9,) MeV
    per_alpha = s.dense().sum((0, 1, 3))  # (16,)
    assert per_r[0] / per_r.sum() > 0.5 and np.all(np.diff(per_r[:6]) < 0)
    assert np.all(np.abs(per_alpha / per_alpha.mean() - 1) < 0.1)  # a shower on the axis fills alpha evenly
    # a beam 10 mm off the axis along +x lands around alpha = 0: bins 7 and 8
    off = simulate(det, Beam("e-", energy=1e4, position=(10.0, 0.0)), 100, seed=4)
    alpha = off.dense().sum((0, 1, 3))
    assert alpha[7:9].sum() / alpha.sum() > 0.5 and abs(alpha[7] / alpha[8] - 1) < 0.2
    x, y, _ = off.positions()
    assert abs(np.average(x, weights=off.energy) - 10.0) < 3.0 and abs(np.average(y, weights=off.energy)) < 1.0
    features = high_level_features(off)
    assert np.nanmean(features.center_x[:, 5:15]) > 5.0


def test_written_file_has_calochallenges_layout_and_scale(tmp_path):
    det = load_detector("calochallenge-ds2")
    s = simulate(det, Beam("e-", energy=2e4), 60, seed=5)
    path = write_calochallenge(s, tmp_path / "ds2.h5")
    with h5py.File(path) as f:
        assert {"incident_energies", "showers"} <= set(f)
        assert f["incident_energies"].shape == (60, 1) and f["incident_energies"].dtype == np.float64
        assert f["showers"].shape == (60, 6480) and f["showers"].dtype == np.float32
        shower, energy = f["showers"][:], f["incident_energies"][:]
        assert f.attrs["calolab_layout"] == "calochallenge"
    ratio = shower.sum(1) / energy[:, 0]
    assert 0.93 < ratio.mean() < 1.03  # contained 20 GeV electrons: the dataset's E_tot / E_inc near 1
    # voxel k of the file sits where CaloChallenge's XMLHandler puts it
    voxels = xmlhandler_voxels([(DS2_EDGES, 16)] * 45)
    layer, x, y = s.cell_coordinates()
    cx, cy = det.cell_centres(layer, x, y)
    k = s.cell
    np.testing.assert_allclose(cx, voxels[k, 1] * np.cos(voxels[k, 2]), atol=1e-9)
    np.testing.assert_allclose(cy, voxels[k, 1] * np.sin(voxels[k, 2]), atol=1e-9)
    # the file's voxel k holds cell k divided by the sampling fraction of its layer
    dense = s.dense().reshape(60, -1)
    fraction = np.repeat(visible_per_mev(det), 16 * 9)
    np.testing.assert_allclose(shower, dense / fraction, rtol=1e-6)
    # CaloChallenge's layer-wise centre of energy in eta (r cos alpha) is calolab's center_x
    eta = (voxels[:, 1] * np.cos(voxels[:, 2])).reshape(45, 144)
    e = shower.reshape(60, 45, 144)
    ec_eta = (e * eta).sum(-1) / (e.sum(-1) + 1e-16)
    features = high_level_features(s)
    live = np.isfinite(features.center_x)
    np.testing.assert_allclose(ec_eta[live], features.center_x[live], atol=1e-4)


def test_round_trip_through_read_showers(tmp_path):
    det = load_detector("calochallenge-ds3")
    s = simulate(det, Beam("e-", energy_min=1e3, energy_max=2e4, spectrum="log-uniform"), 20, seed=6)
    path = write_showers(s, tmp_path / "ds3.h5", format="calochallenge")
    back = read_showers(path)
    assert back.detector == det and np.array_equal(back.offsets, s.offsets) and np.array_equal(back.cell, s.cell)
    np.testing.assert_allclose(back.energy, s.energy, rtol=1e-6)
    np.testing.assert_array_equal(back.incident_energy, s.incident_energy)
    assert back.particle.tolist() == s.particle.tolist()
    # the calolab layout stores visible energies as they are
    plain = read_showers(write_calochallenge(s, tmp_path / "plain.h5", layout="calolab"))
    assert plain.energy.tobytes() == s.energy.tobytes()
    with pytest.raises(CalolabError, match="written with layout='calolab'"):
        read_calochallenge(tmp_path / "plain.h5", layout="calochallenge")
    with pytest.raises(CalolabError, match=r"ds3.h5: sampling_fraction: expected a number or 45 \(one per layer\)"):
        read_calochallenge(path, sampling_fraction=[0.02, 0.03])


def test_a_calochallenge_dataset_file_reads_with_the_preset(tmp_path):
    rng = np.random.default_rng(7)
    showers = rng.exponential(50.0, (5, 6480)) * (rng.random((5, 6480)) < 0.1)  # MeV, CaloChallenge scale
    path = tmp_path / "dataset_2_1.hdf5"
    with h5py.File(path, "w") as f:  # as the dataset-creation notebook writes them: two datasets, gzip
        f.create_dataset("incident_energies", data=np.array([[1e3], [5e3], [1e4], [5e4], [1e5]]), compression="gzip")
        f.create_dataset("showers", data=showers, compression="gzip")
    with pytest.raises(CalolabError, match="detector="):
        read_showers(path)
    s = read_showers(path, detector="calochallenge-ds2")
    assert s.incident_energy.tolist() == [1e3, 5e3, 1e4, 5e4, 1e5]
    fraction = visible_per_mev(s.detector)
    np.testing.assert_allclose(s.dense().reshape(5, 45, 144), showers.reshape(5, 45, 144) * fraction[None, :, None],
                               rtol=1e-6)
    # with an explicit fraction (the datasets' own 0.033) the visible energy is the silicon deposit
    raw = read_calochallenge(path, detector="calochallenge-ds2", sampling_fraction=0.033)
    np.testing.assert_allclose(raw.energy_sum(), showers.sum(1) * 0.033, rtol=1e-5)


def test_calochallenge_detector_from_binning_xml(tmp_path):
    xml = binning_xml(tmp_path / "binning_dataset_2.xml", [(DS2_EDGES, 16)] * 45)
    det = calochallenge_detector(xml)
    preset = load_detector("calochallenge-ds2")
    assert det.cylinder == preset.cylinder and det.layers == preset.layers and det.name == "binning_dataset_2"
    thin = calochallenge_detector(xml, layers=[{"absorber": "W", "absorber_thickness": 1.4, "active": "Si",
                                                "active_thickness": 0.3, "repeat": 45}])
    assert thin.n_cells == 6480 and thin.layers[0].thickness == pytest.approx(1.7)
    with pytest.raises(CalolabError, match="45 layers in the binning, but the layer stack has 30"):
        calochallenge_detector(xml, layers="calice-siw")
    ds1 = binning_xml(tmp_path / "ds1.xml", [([0, 5, 10, 30], 1), ([0, 2, 4], 10)], name="photon")
    with pytest.raises(CalolabError, match="layer 1 has 2 r x 10 alpha bins.*one binning for every layer"):
        calochallenge_detector(ds1)
    with pytest.raises(CalolabError, match="no <Bin name='pion'>"):
        calochallenge_detector(xml, particle="pion")
    # a binning file names a detector wherever a preset does
    assert load_detector(str(xml)).cylinder == preset.cylinder


def test_layout_calochallenge_needs_a_cylindrical_detector(tmp_path):
    det = load_detector("siw-ecal")
    s = Showers.from_dense(det, np.ones((1, *det.shape), np.float32), particle=11, incident_energy=[1e3])
    with pytest.raises(CalolabError, match="Cartesian grid"):
        write_calochallenge(s, tmp_path / "x.h5", layout="calochallenge")
    with pytest.raises(CalolabError, match="one per layer"):
        write_calochallenge(simulate(load_detector("calochallenge-ds2"), Beam("e-", energy=1e3), 2, seed=1),
                            tmp_path / "y.h5", sampling_fraction=[0.03, 0.02])


def test_readout_noise_hits_fill_the_cylindrical_bins():
    base = load_detector("calochallenge-ds2")
    det = Detector.from_dict({**base.to_dict(), "readout": {"noise_mip": 0.2, "threshold_mip": 0.5}})
    rng = np.random.default_rng(8)
    offsets, cell, energy = read_out(det, np.zeros(201, np.int64), np.zeros(0, np.int64),
                                     np.zeros(0, np.float32), rng)
    assert len(cell) > 0 and cell.min() >= 0 and cell.max() < det.n_cells
    per_r = np.bincount(cell % det.ny, minlength=det.ny)
    assert np.all(per_r > 0)  # noise lands in every r bin (each bin is a readout cell)


def test_evaluation_and_plots_on_a_cylindrical_detector(tmp_path):
    det = load_detector("calochallenge-ds2")
    wider = Detector.from_dict({**det.to_dict(), "cells": {**det.to_dict()["cells"],
                                                          "r_edges": [r * 2 for r in DS2_EDGES]}})
    a = simulate(det, Beam("e-", energy=5e3), 10, seed=9)
    b = simulate(wider, Beam("e-", energy=5e3), 10, seed=9)
    check_compatible(a, a)
    with pytest.raises(CalolabError, match="cells 16 alpha bins"):
        check_compatible(a, b)
    import matplotlib

    matplotlib.use("Agg")
    from calolab.plotting import event_display, overview, radial_profile

    assert event_display(a, 0, "xy").get_xlabel() == "x [mm]"
    assert radial_profile(a) is not None
    assert overview(a, tmp_path / "overview.png").stat().st_size > 0


def test_lateral_acceptance_of_both_kinds_of_cells():
    ds2, grid = load_detector("calochallenge-ds2"), load_detector("siw-ecal")
    rng = np.random.default_rng(10)
    for det in (ds2, grid):
        x, y = rng.uniform(-80, 80, (2, 20000))
        layer = np.zeros(len(x), np.int64)
        # contains is exactly "lands on a cell"
        assert np.array_equal(det.contains(x, y), cell_index(det, layer, x, y) >= 0)
    assert ds2.half_width == (41.85, 41.85)
    assert grid.half_width == (grid.x_edges[-1], grid.y_edges[-1])
    assert ds2.beyond_side(np.array([41.8, 30.0, 0.0]), np.array([0.0, 30.0, -42.0])).tolist() == [False, True, True]
    hx, hy = grid.half_width
    assert grid.beyond_side(np.array([hx, hx + 1e-9, 0.0]), np.array([-hy, 0.0, hy + 1e-9])).tolist() \
        == [False, True, True]
    # a cylinder with an inner hole: no cells there, but a track in it is still inside the detector
    holed = Detector.from_dict({**ds2.to_dict(), "cells": {**ds2.to_dict()["cells"], "r_edges": DS2_EDGES[2:]}})
    assert not holed.contains(np.array([1.0]), np.array([0.0]))[0] and not holed.beyond_side(1.0, 0.0)


def test_pions_and_muons_simulate_in_a_cylinder():
    det = load_detector("calochallenge-ds2")
    pions = simulate(det, Beam("pi+", energy=2e4), 200, seed=12)
    per_r = pions.dense().sum((0, 1, 2))  # (9,) MeV
    assert per_r.sum() > 0 and per_r.argmax() == 0 and np.all(np.diff(per_r[:4]) < 0)
    assert per_r[:3].sum() / per_r.sum() > 0.5
    assert np.isfinite(pions.extras["first_interaction_mm"]).mean() > 0.5  # 45 layers of W are 1.16 lambda_pi deep
    muons = simulate(det, Beam("mu-", energy=2e4), 200, seed=13)
    layer = muons.dense().sum(3)  # (N, layers, alpha) MeV
    per_layer = layer.sum(2)
    assert np.all(per_layer > 0)  # a 20 GeV muon crosses all 45 layers
    hist, edges = np.histogram(per_layer, np.linspace(0, 3 * det.mip_mpv[0], 61))
    peak = 0.5 * (edges[hist.argmax()] + edges[hist.argmax() + 1])
    assert abs(peak / det.mip_mpv[0] - 1) < 0.1  # the Landau MPV of 0.6 mm silicon
    assert np.mean(muons.dense().sum((1, 2))[:, 0] / muons.energy_sum()) > 0.9  # on the axis: the first r bin
    # at 30 degrees a muon leaves the cylinder through its side, at r_max, after about 72 mm of depth
    tilted = simulate(det, Beam("mu-", energy=2e4, theta=30.0), 50, seed=14)
    r_exit = np.hypot(tilted.extras["exit_x"], tilted.extras["exit_y"])
    step = det.layers[0].thickness * math.tan(math.radians(30.0))
    assert np.all((r_exit > det.cylinder.r_max) & (r_exit < det.cylinder.r_max + 2 * step))
    assert np.all(tilted.extras["exit_energy"] > 0.9 * 2e4)
    last = int(np.ceil(det.cylinder.r_max / math.tan(math.radians(30.0)) / det.layers[0].thickness))
    assert tilted.dense()[:, last + 2:].sum() < 0.01 * tilted.energy_sum().sum()  # nothing (but knock-ons) beyond


def test_reconstruction_features_on_cylinder_bins():
    from calolab.reconstruction.features import high_level_features as reco_features
    from calolab.reconstruction.muon_features import muon_features

    det = load_detector("calochallenge-ds2")
    off = simulate(det, Beam("e-", energy=1e4, position=(10.0, 0.0)), 50, seed=15)
    x, names = reco_features(off)
    column = dict(zip(names, x.T, strict=True))
    assert 6.0 < column["x_mean_mm"].mean() < 12.0 and abs(column["y_mean_mm"].mean()) < 1.5
    assert np.all(column["r_std_mm"] > 0) and np.all(column["r_std_mm"] < 20.0)
    # the centroid is the energy-weighted mean of the bin centres
    layer, ia, ir = off.cell_coordinates()
    cx, cy = det.cell_centres(layer, ia, ir)
    first = slice(off.offsets[0], off.offsets[1])  # all 45 layers alike: the sampling weights cancel
    assert column["x_mean_mm"][0] == pytest.approx(np.average(cx[first], weights=off.energy[first]), rel=1e-4)
    with pytest.raises(CalolabError, match="muon_features: detector 'calochallenge-ds2' has cylindrical"):
        muon_features(simulate(det, Beam("mu-", energy=1e4), 2, seed=16))


def test_dose_mass_is_the_bin_area_times_the_active_slab():
    from calolab.effects.dose import DoseConfig, active_mass, cell_mass, dose_map

    det = load_detector("calochallenge-ds2")
    mass = cell_mass(det)  # kg (45, 16, 9)
    edges = np.asarray(DS2_EDGES)
    area = math.pi * np.diff(edges**2) / 16  # mm2 per bin
    np.testing.assert_allclose(mass[3, 5], 2.33 * area / 100 * 0.06 / 1000, rtol=2e-3)  # Si, 0.6 mm
    assert np.all(mass[:, :, :] == mass[:, :1, :])  # alpha bins of one ring are alike
    s = simulate(det, Beam("e-", energy=1e4), 20, seed=17)
    dose = dose_map(s, DoseConfig())
    energy = np.bincount(s.cell, weights=s.energy, minlength=det.n_cells).reshape(det.shape)
    np.testing.assert_allclose(dose, energy * 1.602176634e-13 / mass / 10, rtol=1e-12)
    with pytest.raises(CalolabError, match="active_mass: detector 'calochallenge-ds2' has cylindrical"):
        active_mass(det)
    grid = load_detector("siw-ecal")
    assert np.all(cell_mass(grid) == active_mass(grid)[:, None, None])


def test_cartesian_only_tools_refuse_a_cylinder():
    from calolab.ml.mirror import check_mirror_grid
    from calolab.validation.em import crystal_matrix_resolution

    det = load_detector("calochallenge-ds2")
    with pytest.raises(CalolabError, match="mirror_y on calochallenge-ds2: its grid's y axis holds r bins"):
        check_mirror_grid(det, (1, 1, 1), "y")
    with pytest.raises(CalolabError, match="mirror_x on calochallenge-ds2: x -> -x maps its alpha bins"):
        check_mirror_grid(det, (1, 1, 1), "x")
    check_mirror_grid(load_detector("siw-ecal"), (1, 1, 1), "y")  # a grid mirrors
    with pytest.raises(CalolabError, match="crystal_matrix_resolution: detector 'calochallenge-ds2'"):
        crystal_matrix_resolution(det, [10.0], 2, seed=1)


def test_generative_rings_and_detector_check_on_a_cylinder():
    pytest.importorskip("torch")
    from types import SimpleNamespace

    from calolab.generative.placement import Rings, draw_cells_np
    from calolab.generative.sample import _check_detector

    ds2, ds3 = load_detector("calochallenge-ds2"), load_detector("calochallenge-ds3")
    rings = Rings.of(ds3)
    assert rings.n_rings == 18 and rings.count.tolist() == [50] * 18
    assert np.array_equal(rings.ring, np.arange(50 * 18) % 18)  # in-layer cell alpha * n_r + r: ring r
    # weights only on ring 0 (the r bin on the axis): the drawn cells are its 50 bins
    theta = np.full((1, 18), -30.0)
    theta[0, 0] = 0.0
    cells = draw_cells_np(rings, theta, np.array([50]), np.random.default_rng(18))[0]
    assert sorted((cells % 18).tolist()) == [0] * 50 and len(set(cells.tolist())) == 50
    _check_detector(SimpleNamespace(detector=ds2), ds2)
    with pytest.raises(CalolabError, match="calochallenge-ds3.*50 alpha x 18 r bins.*does not fit"):
        _check_detector(SimpleNamespace(detector=ds2), ds3)
