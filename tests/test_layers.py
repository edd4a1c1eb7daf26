"""Layer stacks, YAML materials, per-layer readout and beam energy spread."""

import numpy as np
import pytest
import yaml
from scipy.special import ndtr

from calolab.errors import CalolabError
from calolab.geometry import Detector, Readout, load_detector, preset_names
from calolab.simulation import Beam, simulate
from calolab.simulation.readout import read_out

CELLS = {"nx": 12, "ny": 12, "pitch": 30.0}


def _detector(layers, name="stack", **extra):
    return Detector.from_dict({"name": name, "cells": CELLS, "layers": layers, **extra})


TWO_SLAB = [{"absorber": "Fe", "absorber_thickness": 20.0, "active": "Scintillator", "active_thickness": 5.0,
             "repeat": 30}]
SPLIT = [{"slabs": [{"material": "Fe", "thickness": 12.0}, {"material": "Fe", "thickness": 8.0},
                    {"material": "Scintillator", "thickness": 5.0, "active": True}], "repeat": 30}]


def test_a_split_absorber_is_the_same_layer_in_depth_and_sampling():
    two, split = _detector(TWO_SLAB), _detector(SPLIT)
    for attr in ("x0_bounds", "lambda_bounds", "lambda_pi_bounds", "z_active", "mip_sampling_fraction"):
        np.testing.assert_allclose(getattr(split, attr), getattr(two, attr), rtol=1e-12)
    assert (split.e_hat, split.homogeneous, split.layers[0].absorber) == (two.e_hat, False, "Fe")
    assert split.layers[0].absorber_thickness == 12.0  # the main slab, by radiation lengths


@pytest.mark.parametrize(("particle", "energy"), [("e-", 10e3), ("pi+", 10e3)])
def test_a_stacked_layer_gives_the_showers_of_the_two_slab_layer(particle, energy):
    n = 600
    sums = [simulate(det, Beam(particle, energy=energy), n, seed=4).energy_sum()
            for det in (_detector(TWO_SLAB), _detector(SPLIT))]
    means = [s.mean() for s in sums]
    error = np.hypot(*(s.std() / np.sqrt(n) for s in sums))
    assert abs(means[1] - means[0]) < 4 * error
    widths = [s.std() for s in sums]
    assert widths[1] == pytest.approx(widths[0], rel=4 / np.sqrt(n))  # 4 sigma of a difference of two widths


def test_slabs_behind_the_sensor_move_it_forward():
    det = _detector([{"slabs": [{"material": "Fe", "thickness": 10.0},
                                {"material": "Scintillator", "thickness": 5.0, "active": True},
                                {"material": "G10", "thickness": 2.0}], "repeat": 3}])
    np.testing.assert_allclose(det.z_active, [12.5, 29.5, 46.5])
    assert det.z_bounds[-1] == pytest.approx(51.0)


def test_muons_see_only_the_active_slab():
    det = _detector([{"slabs": [{"material": "Pb", "thickness": 5.0}, {"material": "air", "thickness": 10.0},
                                {"material": "Si", "thickness": 0.3, "active": True},
                                {"material": "G10", "thickness": 1.6}], "repeat": 20}])
    per_layer = simulate(det, Beam("mu-", energy=10e3), 300, seed=2).layer_sums()
    median = np.median(per_layer[per_layer > 0])
    assert median == pytest.approx(det.mip_mpv[0], rel=0.08)  # 300 um Si: about 84 keV, not the lead's MeV


def test_yaml_materials_and_round_trip():
    det = _detector([{"slabs": [{"material": "WCu90", "thickness": 1.2}, {"material": "Pb", "thickness": 2.1},
                                {"material": "Si", "thickness": 0.3, "active": True}],
                      "readout": {"noise_mip": 0.1, "threshold_mip": 0.5}, "repeat": 4},
                     {"absorber": "Fe", "absorber_thickness": 20, "active": "Scintillator", "active_thickness": 3,
                      "repeat": 2}],
                    materials={"WCu90": {"density": 17.2, "composition": {"W": 0.9, "Cu": 0.1}}},
                    readout={"photoelectrons_per_mip": 20, "sipm_pixels": 1600})
    assert det.layers[0].slabs[0].material.name == "WCu90" and det.layers[0].absorber == "Pb"
    assert det.layers[0].readout == Readout(photoelectrons_per_mip=20, sipm_pixels=1600, noise_mip=0.1,
                                            threshold_mip=0.5)
    assert det.layers[5].readout == Readout(photoelectrons_per_mip=20, sipm_pixels=1600)
    back = Detector.from_dict(det.to_dict())
    assert back == det and back.materials == det.materials
    assert Detector.from_dict(yaml.safe_load(det.to_yaml())) == det


@pytest.mark.parametrize("name", preset_names())
def test_presets_round_trip_in_the_stack_form(name):
    det = load_detector(name)
    spec = det.to_dict()
    assert all("slabs" in group for group in spec["layers"])
    assert Detector.from_dict(spec) == det


def test_old_files_still_load():
    old = {"name": "old", "cells": CELLS, "photoelectrons_per_mev": 4.5, "excess_noise_factor": 2.0,
           "layers": [{"active": "PbWO4", "active_thickness": 23.0, "repeat": 3}]}
    assert Detector.from_dict(old).readout == Readout(photoelectrons_per_mev=4.5, excess_noise_factor=2.0)


@pytest.mark.parametrize(("patch", "message"), [
    ({"layers": [{"slabs": [{"material": "Fe", "thickness": 2}]}]}, "exactly one slab must be active: true, found 0"),
    ({"layers": [{"slabs": [{"material": "Si", "thickness": 1, "active": True}], "active": "Si"}]},
     "give either slabs or"),
    ({"layers": [{"slabs": [{"material": "Si", "thickness": 0, "active": True}]}]}, "thickness: must be positive"),
    ({"layers": [{"slabs": [{"material": "Xenonite", "thickness": 1, "active": True}]}]}, "unknown material"),
    ({"readout": {"noise_mip": 0.2, "threshold_mip": 0.3}}, "at least twice noise_mip"),
    ({"readout": {"sipm_pixels": 100}}, "a SiPM needs photoelectrons_per_mip"),
    ({"readout": {"photoelectrons_per_mip": 10, "photoelectrons_per_mev": 1}}, "not both"),
    ({"readout": {"gain": 2}}, "unknown field 'gain'"),
    ({"readout": {"excess_noise_factor": 2}, "photoelectrons_per_mev": 3}, "move photoelectrons_per_mev into readout"),
    ({"colour": "red"}, "unknown field 'colour'"),
])
def test_bad_layer_specs_name_what_to_change(patch, message):
    spec = {"name": "bad", "cells": CELLS, "layers": [{"active": "Si", "active_thickness": 1}], **patch}
    with pytest.raises(CalolabError, match=message):
        Detector.from_dict(spec, source="bad.yaml")


# ------------------------------------------------------------------ readout
def _one_layer(**readout):
    return Detector.from_dict({"name": "ro", "cells": {"nx": 10, "ny": 10, "pitch": 10.0}, "readout": readout,
                               "layers": [{"active": "Scintillator", "active_thickness": 5.0}]})


def _single_hits(det, energy, n):
    offsets = np.arange(n + 1)
    return read_out(det, offsets, np.full(n, 55), np.full(n, energy, np.float32), np.random.default_rng(3))


def test_sipm_saturation_follows_the_pixel_formula():
    det = _one_layer(photoelectrons_per_mip=15.0, sipm_pixels=500)
    mpv = det.mip_mpv[0]
    for mips in (1.0, 20.0, 100.0):
        _, _, signal = _single_hits(det, mips * mpv, 4000)
        n_pe = 15.0 * mips
        expected = 500 * (1 - np.exp(-n_pe / 500)) / 15.0 * mpv
        assert signal.mean() == pytest.approx(expected, rel=0.02 if mips > 1 else 0.05)


def test_excess_noise_factor_scales_the_photostatistics_variance():
    n_pe = 50.0
    spreads = []
    for enf in (1.0, 2.0):
        det = _one_layer(photoelectrons_per_mip=n_pe, excess_noise_factor=enf)
        _, _, signal = _single_hits(det, det.mip_mpv[0], 20000)
        spreads.append(signal.std() / signal.mean())
    assert spreads[0] == pytest.approx(1 / np.sqrt(n_pe), rel=0.03)
    assert spreads[1] == pytest.approx(np.sqrt(2 / n_pe), rel=0.03)


def test_noise_threshold_and_noise_hits():
    det = _one_layer(noise_mip=0.15, threshold_mip=0.45)
    mpv = det.mip_mpv[0]
    n = 3000
    offsets, cell, signal = _single_hits(det, 0.3 * mpv, n)  # below threshold: only its noise can lift it
    tail = ndtr(-3.0)
    hit = cell == 55
    # empty cells pass on their noise alone (a noise hit drawn on the hit cell is dropped)
    assert (~hit).sum() / n == pytest.approx(99 * tail, rel=0.15)
    assert signal.min() >= 0.45 * mpv
    assert hit.sum() == pytest.approx(n * ndtr(-1.0), rel=0.1)  # 0.3 + noise > 0.45: one sigma
    for i in range(50):  # cells stay sorted and unique within an event
        c = cell[offsets[i]:offsets[i + 1]]
        assert np.all(np.diff(c) > 0)


def test_ideal_readout_draws_nothing_and_presets_keep_their_bits():
    det = load_detector("ahcal")
    a = simulate(det, Beam("e-", energy=5e3), 50, seed=1)
    b = simulate(det.with_readout(Readout()), Beam("e-", energy=5e3), 50, seed=1)
    assert np.array_equal(a.cell, b.cell) and np.array_equal(a.energy, b.energy)


def test_a_realistic_sipm_readout_changes_the_signal_as_expected():
    det = load_detector("ahcal")
    read = det.with_readout(Readout(photoelectrons_per_mip=15, sipm_pixels=1156, noise_mip=0.08,
                                    threshold_mip=0.5))
    beam = Beam("e-", energy=20e3)
    ideal, real = (simulate(d, beam, 300, seed=5) for d in (det, read))
    mpv = det.mip_mpv[0]
    assert real.energy.min() >= 0.5 * mpv
    # saturation compresses: the response falls a few percent below the ideal one
    ratio = real.energy_sum().mean() / ideal.energy_sum().mean()
    assert 0.85 < ratio < 1.0


# --------------------------------------------------------------- energy spread
def test_beam_energy_spread():
    beam = Beam("e-", energy=10e3, energy_spread=0.01)
    energy, _, _ = beam.sample(20000, np.random.default_rng(2))
    assert energy.mean() == pytest.approx(10e3, rel=1e-3)
    assert energy.std() / energy.mean() == pytest.approx(0.01, rel=0.03)
    same, _, _ = Beam("e-", energy=10e3).sample(3, np.random.default_rng(2))
    assert same.tolist() == [10e3] * 3
    with pytest.raises(CalolabError, match="energy spread"):
        Beam("e-", energy=10e3, energy_spread=-0.1)


# ------------------------------------------------------- tiles and strips
STRIPS = {"name": "strips", "cells": {"nx": 36, "ny": 36, "pitch": 5.0},
          "layers": [{"repeat": 10, "layers": [
              {"absorber": "W", "absorber_thickness": 3.5, "active": "Scintillator", "active_thickness": 3.0,
               "cells": {"pitch_x": 10.0, "pitch_y": 45.0}},
              {"absorber": "W", "absorber_thickness": 3.5, "active": "Scintillator", "active_thickness": 3.0,
               "cells": {"pitch_x": 45.0, "pitch_y": 10.0}}]},
              {"absorber": "Fe", "absorber_thickness": 20.0, "active": "Scintillator", "active_thickness": 5.0,
               "cells": {"pitch": 30.0}, "repeat": 4}]}


def test_strips_and_coarse_tiles_collect_their_grid_cells():
    det = Detector.from_dict(STRIPS)
    fine = Detector.from_dict({**STRIPS, "layers": [
        {k: v for k, v in g.items() if k != "cells"} if "layers" not in g else
        {"repeat": 10, "layers": [{k: v for k, v in la.items() if k != "cells"} for la in g["layers"]]}
        for g in STRIPS["layers"]]})
    assert det.gang[:3].tolist() == [[2, 9], [9, 2], [2, 9]] and det.gang[-1].tolist() == [6, 6]
    beam = Beam("e-", energy=10e3, spot_sigma=10.0)
    strips, cells = simulate(det, beam, 100, seed=3), simulate(fine, beam, 100, seed=3)
    np.testing.assert_allclose(strips.energy_sum(), cells.energy_sum(), rtol=1e-5)  # same deposits, regrouped
    layer, ix, iy = strips.cell_coordinates()
    gang = det.gang[layer]
    assert np.all(ix % gang[:, 0] == 0) and np.all(iy % gang[:, 1] == 0)  # stored at each strip's first cell
    assert strips.n_hits < 0.7 * cells.n_hits
    x, y = det.cell_centres(np.array([0, 1]), np.array([0, 0]), np.array([0, 0]))
    np.testing.assert_allclose(x, [-90 + 5, -90 + 22.5])
    np.testing.assert_allclose(y, [-90 + 22.5, -90 + 5])
    assert Detector.from_dict(det.to_dict()) == det


@pytest.mark.parametrize("suffix", [".h5", ".parquet", ".root", ".cc.h5"])
def test_a_strip_detector_round_trips_through_every_format(tmp_path, suffix):
    from calolab.io import read_showers, write_showers

    det = Detector.from_dict(STRIPS)
    showers = simulate(det, Beam("e-", energy=5e3, spot_sigma=5.0), 20, seed=1)
    fmt = "calochallenge" if suffix == ".cc.h5" else None
    back = read_showers(write_showers(showers, tmp_path / f"strips{suffix.removeprefix('.cc')}", format=fmt))
    assert back.detector == det
    assert np.array_equal(back.offsets, showers.offsets) and np.array_equal(back.cell, showers.cell)
    assert np.array_equal(back.energy, showers.energy)


@pytest.mark.parametrize(("cells", "message"), [
    ({"pitch": 7.0}, "whole number of the grid's 5 mm cells"),
    ({"pitch_x": 35.0}, "divides its 36 cells along x"),
    ({"size": 3}, "unknown field 'size'"),
])
def test_bad_layer_cells(cells, message):
    spec = {"name": "bad", "cells": {"nx": 36, "ny": 36, "pitch": 5.0},
            "layers": [{"active": "Si", "active_thickness": 1, "cells": cells}]}
    with pytest.raises(CalolabError, match=message):
        Detector.from_dict(spec, source="bad.yaml")


def test_noise_hits_land_on_readout_cells():
    det = Detector.from_dict({**STRIPS, "readout": {"noise_mip": 0.2, "threshold_mip": 0.5}})
    showers = simulate(det, Beam("mu-", energy=10e3), 50, seed=2)
    layer, ix, iy = showers.cell_coordinates()
    gang = det.gang[layer]
    assert np.all(ix % gang[:, 0] == 0) and np.all(iy % gang[:, 1] == 0)
    # about (readout cells per layer) x P(noise > 2.5 sigma) noise hits per layer and event
    per_layer = np.bincount(layer, minlength=det.n_layers) / 50
    expected = (36 // det.gang[:, 0]) * (36 // det.gang[:, 1]) * ndtr(-2.5)
    assert per_layer[:20].mean() == pytest.approx(expected[:20].mean() + 1, rel=0.25)  # + the muon's own hit


def test_hit_positions_are_readout_cell_centres():
    det = Detector.from_dict(STRIPS)
    showers = simulate(det, Beam("e-", energy=5e3), 5, seed=1)
    x, y, _ = showers.positions()
    layer, ix, iy = showers.cell_coordinates()
    strip_x = det.gang[layer, 0] * det.pitch_x
    np.testing.assert_allclose((x - det.x_edges[0]) % strip_x, strip_x / 2)  # the middle of each strip


RINGS = {"name": "rings", "cells": {"nx": 32, "ny": 32, "pitch": 30.0},
         "readout": {"noise_mip": 0.1, "threshold_mip": 0.5},
         "layers": [{"absorber": "Fe", "absorber_thickness": 20.0, "active": "Scintillator", "active_thickness": 5.0,
                     "cells": [{"pitch": 30.0, "within": 240.0}, {"pitch": 60.0, "within": 360.0}, {"pitch": 120.0}],
                     "repeat": 12}]}


def test_rings_of_tile_sizes():
    det = Detector.from_dict(RINGS)
    size = det.tile_size[0]
    assert size[16, 16].tolist() == [1, 1] and size[5, 16].tolist() == [2, 2] and size[0, 0].tolist() == [4, 4]
    offsets, cells = det.readout_cells
    assert np.diff(offsets)[0] == 16 * 16 + (24 * 24 - 16 * 16) // 4 + (32 * 32 - 24 * 24) // 16
    assert Detector.from_dict(det.to_dict()) == det
    beam = Beam("pi+", energy=20e3, spot_sigma=60.0)
    showers = simulate(det, beam, 60, seed=4)
    layer, ix, iy = showers.cell_coordinates()
    anchor = det.tile_anchor[layer, ix, iy]
    assert np.array_equal(anchor, ix * det.ny + iy)  # every hit sits on its tile's first grid cell
    x, y, _ = showers.positions()
    tile = det.tile_size[layer, ix, iy] * det.pitch_x  # mm
    np.testing.assert_allclose((x - det.x_edges[0]) % tile[:, 0], tile[:, 0] / 2)
    from calolab.effects.dose import cell_mass

    mass = cell_mass(det)
    assert mass[0, 0, 0] == pytest.approx(16 * mass[0, 16, 16]) and mass[0, 4, 4] == pytest.approx(4 * mass[0, 16, 16])


@pytest.mark.parametrize(("cells", "message"), [
    ([{"pitch": 30.0, "within": 150.0}, {"pitch": 60.0}], "must fall on whole 2-cell tiles"),
    ([{"pitch": 30.0}, {"pitch": 60.0}], "every region but the last needs 'within'"),
    ([{"pitch": 30.0, "within": 480.0}, {"pitch": 60.0, "within": 240.0}, {"pitch": 120.0}], "grow outwards"),
])
def test_bad_rings(cells, message):
    spec = {**RINGS, "layers": [{**RINGS["layers"][0], "cells": cells}]}
    with pytest.raises(CalolabError, match=message):
        Detector.from_dict(spec, source="rings.yaml")


def test_a_readout_built_in_code_is_checked_too():
    with pytest.raises(CalolabError, match="at least twice noise_mip"):
        Readout(noise_mip=0.2)
    with pytest.raises(CalolabError, match="a SiPM needs"):
        Readout(sipm_pixels=1600)
