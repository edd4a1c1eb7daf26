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
    with pytest.raises(CalolabError, match=r"layers\[0\].cells: a cylindrical detector's layers have \(alpha, r\)"):
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
    with pytest.raises(CalolabError, match="2 layers with voxels and no preset stack of that many: pass layers="):
        calochallenge_detector(ds1)
    two = calochallenge_detector(ds1, layers=[{"absorber": "Pb", "absorber_thickness": 2.0, "active": "LAr",
                                               "active_thickness": 4.0, "repeat": 2}])
    assert two.shape == (2, 10, 3) and int(two.cylinder.mask(2).sum()) == 3 + 20
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


# ------------------------------------------------ dataset 1: per-layer bins
# binning_dataset_1_photons.xml and _pions.xml of github.com/CaloChallenge/homepage, as (r_edges, n_alpha)
# per ATLAS layer 0..23; r_edges [0] is a layer without voxels
EMPTY = ([0], 1)
DS1_PHOTONS = ([([0, 5, 10, 30, 50, 100, 200, 400, 600], 1),
                ([0, 2, 4, 6, 8, 10, 12, 15, 20, 30, 40, 50, 70, 90, 120, 150, 200], 10),
                ([0, 2, 5, 10, 15, 20, 25, 30, 40, 50, 60, 80, 100, 130, 160, 200, 250, 300, 350, 400], 10),
                ([0, 50, 100, 200, 400, 600], 1)] + [EMPTY] * 8
               + [([0, 100, 200, 400, 1000, 2000], 1)] + [EMPTY] * 11)
DS1_PIONS = ([([0, 5, 10, 30, 50, 100, 200, 400, 600], 1), ([0, 1, 4, 7, 10, 15, 30, 50, 90, 150, 200], 10),
              ([0, 5, 10, 20, 30, 50, 80, 130, 200, 300, 400], 10), ([0, 50, 100, 200, 400, 600], 1)]
             + [EMPTY] * 8
             + [([0, 10, 20, 30, 50, 80, 100, 130, 160, 200, 250, 300, 350, 400, 1000, 2000], 10),
                ([0, 10, 20, 30, 50, 80, 100, 130, 160, 200, 250, 300, 350, 400, 600, 1000, 2000], 10),
                ([0, 50, 100, 150, 200, 250, 300, 400, 600, 1000, 2000], 1)] + [EMPTY] * 9)


def xmlhandler_bin_edges(layers):
    """``XMLHandler.GetBinEdges``: the first voxel of each layer, (r_bins * a_bins) summed."""
    return np.concatenate([[0], np.cumsum([(len(e) - 1) * n for e, n in layers])]).tolist()


@pytest.mark.parametrize(("preset", "layers", "voxels", "name"), [
    ("calochallenge-ds1-photons", DS1_PHOTONS, 368, "photon"), ("calochallenge-ds1-pions", DS1_PIONS, 533, "pion")])
def test_ds1_presets_have_the_xml_bins_in_xmlhandlers_order(tmp_path, preset, layers, voxels, name):
    from calolab.io.calochallenge import cell_voxels, voxel_cells

    det = load_detector(preset)
    binned = [k for k, (e, _) in enumerate(layers) if len(e) > 1]  # XMLHandler.GetRelevantLayers
    assert det.n_layers == len(binned) and det.nx == 10 and det.ny == max(len(layers[k][0]) - 1 for k in binned)
    assert int(det.cylinder.mask(det.n_layers).sum()) == voxels == xmlhandler_bin_edges(layers)[-1]
    assert det.n_cells > voxels  # padded
    # the same bins as the XML file, whose empty layers are left out
    xml = binning_xml(tmp_path / f"binning_dataset_1_{name}s.xml", layers, name=name)
    from_xml = calochallenge_detector(xml)
    assert from_xml.cylinder == det.cylinder and from_xml.layers == det.layers and from_xml.shape == det.shape
    # voxel v is the cell whose layer, r centre and alpha centre XMLHandler gives it
    cells = voxel_cells(det)
    assert len(cells) == voxels and np.all(np.diff(cells) > 0)
    expected = xmlhandler_voxels(layers)
    layer, rest = np.divmod(cells, det.nx * det.ny)
    ia, ir = np.divmod(rest, det.ny)
    assert layer.tolist() == [binned.index(int(k)) for k in expected[:, 0]]
    x, y = det.cell_centres(layer, ia, ir)
    np.testing.assert_allclose(np.hypot(x, y), expected[:, 1], atol=1e-9)
    one_bin = expected[:, 2] == 0.0  # n_alpha = 1: the centre sits at alpha = 0
    np.testing.assert_allclose(np.arctan2(y, x)[~one_bin], expected[~one_bin, 2], atol=1e-9)
    # each layer's voxels start at XMLHandler's bin edge
    starts = np.searchsorted(layer, np.arange(det.n_layers))
    assert starts.tolist() == [xmlhandler_bin_edges(layers)[k] for k in binned]
    back = cell_voxels(det)
    assert back[cells].tolist() == list(range(voxels)) and int((back < 0).sum()) == det.n_cells - voxels
    # the YAML form round-trips, each group with its own cells
    spec = yaml.safe_load(det.to_yaml())
    assert spec["cells"] == {"kind": "cylindrical"} and all("r_edges" in g["cells"] for g in spec["layers"])
    assert Detector.from_dict(spec) == det


def test_ds1_photons_simulate_write_and_read_in_calochallenges_layout(tmp_path):
    from calolab.io.calochallenge import voxel_cells

    det = load_detector("calochallenge-ds1-photons")
    s = simulate(det, Beam("gamma", energy=2e4), 6, seed=3)
    real = det.cylinder.mask(det.n_layers).ravel()
    assert s.n_hits > 0 and real[s.cell].all()  # deposits land only on real bins
    path = write_calochallenge(s, tmp_path / "dataset_1_photons.h5")
    with h5py.File(path) as f:
        stored = f["showers"][:]
    assert stored.shape == (6, 368)
    fraction = visible_per_mev(det)
    layer = voxel_cells(det) // (det.nx * det.ny)
    dense = s.dense().reshape(6, -1)
    np.testing.assert_allclose(stored, dense[:, voxel_cells(det)] / fraction[layer], rtol=1e-5)
    back = read_showers(path)
    assert back.detector == det
    stray = np.zeros((1, *det.shape), np.float32)
    stray[0, 0, 3, 0] = 1.0  # layer 0 has a single alpha bin
    with pytest.raises(CalolabError, match="hits on padded cells that are no bin of their layer"):
        write_calochallenge(Showers.from_dense(det, stray, particle=22, incident_energy=[1e3]), tmp_path / "x.h5")
    np.testing.assert_allclose(back.dense(), s.dense(), rtol=1e-5)
    # a bare dataset-1 file (two datasets, as CaloChallenge ships them) reads with the preset
    rng = np.random.default_rng(4)
    showers = rng.exponential(30.0, (3, 368)) * (rng.random((3, 368)) < 0.3)
    bare = tmp_path / "dataset_1_photons_1.hdf5"
    with h5py.File(bare, "w") as f:
        f.create_dataset("incident_energies", data=np.array([[256.0], [1024.0], [4096.0]]))
        f.create_dataset("showers", data=showers)
    with pytest.raises(CalolabError, match="368 cells per event, expected 6480"):
        read_calochallenge(bare, detector="calochallenge-ds2")
    r = read_calochallenge(bare, detector="calochallenge-ds1-photons")
    assert real[r.cell].all()
    np.testing.assert_allclose(r.dense().reshape(3, -1)[:, voxel_cells(det)], showers * fraction[layer], rtol=1e-5)


def test_ds1_cells_follow_each_layers_bins():
    from calolab.effects.dose import cell_mass, energy_to_dose

    det = load_detector("calochallenge-ds1-pions")  # layer 0: 1 alpha x 8 r, r < 600; layer 4: 10 x 15, r < 2000
    layer = np.array([0, 0, 3, 4, 1, 1])
    x, y = np.array([3.0, -3.0, 700.0, 700.0, 3.0, 0.0]), np.array([0.0, 0.0, 0.0, 0.0, 0.0, 300.0])
    cell = cell_index(det, layer, x, y)
    per_layer = det.nx * det.ny
    assert cell[0] == cell[1] == 0  # one alpha bin: both sides of the axis share it
    assert cell[2] == -1 and cell[3] >= 0 and cell[5] == -1  # r_max 600 in layer 3, 2000 in 4, 200 in 1
    assert cell[4] == per_layer + 5 * det.ny + 1  # +x starts alpha bin 5 of 10; r in [1, 4)
    assert det.contains(x, y, layer).tolist() == [True, True, False, True, True, False]
    assert det.contains(x, y).tolist() == [True] * 6  # on a bin of some layer
    assert det.beyond_side(x, y, layer).tolist() == [False, False, True, False, False, True]
    assert not det.beyond_side(x, y).any() and det.half_width == (2000.0, 2000.0)
    cx, cy = det.cell_centres(np.array([0, 1, 0]), np.array([0, 5, 1]), np.array([0, 1, 0]))
    assert (cx[0], cy[0]) == (2.5, 0.0) and cx[1] > 0 and np.isnan(cx[2])  # layer 0 has no alpha bin 1
    mass = cell_mass(det)
    real = det.cylinder.mask(det.n_layers)
    assert np.all(mass[real] > 0) and np.all(mass[~real] == 0)
    assert mass[0, 0, 1] / mass[0, 0, 0] == pytest.approx((10**2 - 5**2) / 5**2)
    pions = simulate(det, Beam("pi+", energy=2e4), 3, seed=5)
    assert pions.n_hits > 0 and real.ravel()[pions.cell].all()
    energy = np.zeros(det.shape)
    energy[0, 0, 0] = 1.0
    dose = energy_to_dose(det, energy)
    assert dose[0, 0, 0] > 0 and np.count_nonzero(dose) == 1


def test_ds1_noise_hits_only_on_real_bins_in_proportion_to_each_layer():
    from scipy.special import ndtr

    from calolab.geometry import Readout

    det = load_detector("calochallenge-ds1-photons").with_readout(Readout(noise_mip=0.2, threshold_mip=0.5))
    n_events = 400
    offsets, cell, energy = read_out(det, np.zeros(n_events + 1, np.int64), np.zeros(0, np.int64),
                                     np.zeros(0, np.float32), np.random.default_rng(9))
    real = det.cylinder.mask(det.n_layers)
    assert len(cell) > 0 and real.ravel()[cell].all()
    per_layer = np.bincount(cell // (det.nx * det.ny), minlength=det.n_layers)
    expected = n_events * real.sum(axis=(1, 2)) * ndtr(-0.5 / 0.2)  # bins of the layer x P(noise > threshold)
    assert np.all(np.abs(per_layer - expected) < 5 * np.sqrt(expected))


def test_yaml_layer_groups_give_their_own_bins():
    base = {"name": "two", "cells": {"kind": "cylindrical", "r_edges": [0, 5, 10], "n_alpha": 4},
            "layers": [{"absorber": "Pb", "absorber_thickness": 2.0, "active": "LAr", "active_thickness": 4.0,
                        "repeat": 2},
                       {"absorber": "Pb", "absorber_thickness": 2.0, "active": "LAr", "active_thickness": 4.0,
                        "cells": {"r_edges": [0, 5, 10, 20, 40]}, "repeat": 3}]}
    det = Detector.from_dict(base)
    assert det.shape == (5, 4, 4) and int(det.cylinder.mask(5).sum()) == 2 * 8 + 3 * 16  # n_alpha from the top
    again = Detector.from_dict(det.to_dict())
    assert again == det and [g["repeat"] for g in det.to_dict()["layers"]] == [2, 3]
    # equal bins everywhere are one grid, as in datasets 2 and 3
    same = Detector.from_dict({**base, "layers": base["layers"][:1]})
    assert isinstance(same.cylinder, CylindricalGrid) and same.to_dict()["cells"]["n_alpha"] == 4
    bare = {**base, "cells": {"kind": "cylindrical"}}
    with pytest.raises(CalolabError, match=r"layers\[0\].cells: missing field 'r_edges'"):
        Detector.from_dict(bare)
    with pytest.raises(CalolabError, match=r"layers\[1\].cells: n_alpha: expected an integer >= 1"):
        Detector.from_dict({**base, "layers": [base["layers"][0], {**base["layers"][1], "cells": {"n_alpha": 0}}]})


def test_layers_with_their_own_bins_plot_and_compare(tmp_path):
    from calolab.evaluation.features import check_compatible, high_level_features
    from calolab.plotting import overview

    det = load_detector("calochallenge-ds1-photons")
    showers = simulate(det, Beam("gamma", energy=10e3), 10, seed=1)
    check_compatible(showers, showers)
    assert overview(showers, tmp_path / "o.png").stat().st_size > 0
    features = high_level_features(showers)
    live = features.layer_energy > 0  # a layer without energy has no centre (NaN)
    assert np.all(np.isfinite(features.center_x[live])) and np.all(np.isnan(features.center_x[~live]))
    assert det.cylinder.r_edges[0] == 0.0 and det.cylinder.r_edges[-1] == det.cylinder.r_max
