import numpy as np
import pytest

from calolab import CalolabError, load_detector, preset_names
from calolab.geometry import Detector, get_material


def test_presets_match_the_papers():
    assert set(preset_names()) >= {"ahcal", "cusi", "pbwo4", "siw-ecal"}
    assert load_detector("ahcal").shape == (40, 24, 24)
    assert load_detector("cusi").shape == (75, 50, 50)
    pbwo4 = load_detector("pbwo4")
    assert pbwo4.shape == (50, 32, 32) and pbwo4.homogeneous and pbwo4.field_tesla == 2.0
    assert pbwo4.z_bounds[-1] == pytest.approx(2032.0) and pbwo4.nx * pbwo4.pitch_x == pytest.approx(120.0)
    siw = load_detector("siw-ecal")
    assert siw.shape == (15, 32, 32)
    w = [layer.absorber_thickness for layer in siw.layers]
    assert w == [4.2] * 8 + [5.6] * 7
    assert sum(w) / get_material("W").x0 == pytest.approx(20.8, abs=0.05)
    assert {layer.active_thickness for layer in siw.layers} == {0.32, 0.5, 0.65}


def test_mip_most_probable_loss_in_silicon_matches_pdg():
    si = get_material("Si")
    # PDG (Bichsel) most probable / mean losses: 320 um 90/124 keV, 500 um 145/194, 650 um 191/252
    for thickness, mpv, mean in ((0.32, 0.090, 0.124), (0.5, 0.145, 0.194), (0.65, 0.191, 0.252)):
        assert si.mip_mpv(thickness) == pytest.approx(mpv, rel=0.02)
        assert si.mip_mean(thickness) == pytest.approx(mean, rel=0.02)


def test_effective_medium_of_a_sampling_calorimeter():
    det = load_detector("siw-ecal")
    assert get_material("W").x0 < det.x0_eff < 1.2 * get_material("W").x0
    assert 0.6 < det.e_hat < 0.8
    assert np.all(np.diff(det.x0_bounds) > 0)


def test_yaml_round_trip(tmp_path):
    det = load_detector("siw-ecal")
    path = tmp_path / "det.yaml"
    path.write_text(det.to_yaml())
    assert load_detector(str(path)) == det


@pytest.mark.parametrize(("patch", "message"), [
    ({"absorber": "Unobtainium"}, "layers[0].absorber: unknown material 'Unobtainium'"),
    ({"absorber_thickness": -1.0}, "layers[0].absorber_thickness: must be >= 0"),
    ({"active_thickness": 0}, "layers[0].active_thickness: must be positive"),
    ({"repeat": 0}, "layers[0].repeat"),
    ({"colour": "red"}, "unknown field 'colour'"),
])
def test_bad_yaml_names_the_field(tmp_path, patch, message):
    layer = {"absorber": "W", "absorber_thickness": 3.5, "active": "Si", "active_thickness": 0.5, **patch}
    spec = {"name": "bad", "cells": {"nx": 4, "ny": 4, "pitch": 5}, "layers": [layer]}
    path = tmp_path / "bad.yaml"
    import yaml

    path.write_text(yaml.safe_dump(spec))
    with pytest.raises(CalolabError, match=r"bad\.yaml") as info:
        Detector.from_yaml(path)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_fields_are_named():
    with pytest.raises(CalolabError, match="missing field 'cells'"):
        Detector.from_dict({"name": "x", "layers": []})
    with pytest.raises(CalolabError, match="missing field 'active'"):
        Detector.from_dict({"name": "x", "cells": {"nx": 1, "ny": 1, "pitch": 1}, "layers": [{"active_thickness": 1}]})


def test_unknown_preset():
    with pytest.raises(CalolabError, match="unknown detector 'hcal'"):
        load_detector("hcal")
