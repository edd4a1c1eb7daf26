"""Hit tables from elsewhere: Parquet, ROOT trees and HDF5 datasets with their own column names and units."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from test_io import assert_showers_equal, make_showers, toy_detector

from calolab.errors import CalolabError
from calolab.io import read_showers, write_showers
from calolab.io.hittable import parse_columns
from calolab.showers import Showers

MAPPING = {"event": "evt", "layer": "z", "ix": "i", "iy": "j", "energy_mev": "e", "incident_energy_mev": "E0"}

# a user's table: events numbered 10, 11, 13, rows out of order, two hits in one cell of event 13, energies in GeV
ROWS = {
    "evt": np.array([13, 10, 13, 11, 10, 13], np.int64),
    "z": np.array([2, 0, 2, 1, 0, 0], np.int32),
    "i": np.array([3, 1, 3, 0, 2, 0], np.int32),
    "j": np.array([0, 1, 0, 3, 2, 0], np.int32),
    "e": np.array([0.002, 0.001, 0.003, 0.0005, 0.004, 0.0015]),
    "E0": np.array([30.0, 10.0, 30.0, 20.0, 10.0, 30.0]),
}


def expected() -> Showers:
    """What ROWS mean, in MeV, built by hand."""
    det = toy_detector()
    dense = np.zeros((3, *det.shape), np.float32)
    dense[0, 0, 1, 1], dense[0, 0, 2, 2] = 1.0, 4.0
    dense[1, 1, 0, 3] = 0.5
    dense[2, 0, 0, 0], dense[2, 2, 3, 0] = 1.5, 5.0  # 2 + 3 MeV summed in one cell
    return Showers.from_dense(det, dense, particle=0, incident_energy=[1e4, 2e4, 3e4],
                              extras={"event_id": np.array([10, 11, 13])})


def assert_read_as_expected(back: Showers) -> None:
    want = expected()
    assert np.array_equal(back.offsets, want.offsets) and np.array_equal(back.cell, want.cell)
    assert np.allclose(back.energy, want.energy, rtol=1e-6)
    assert np.allclose(back.incident_energy, want.incident_energy)
    assert back.extras["event_id"].tolist() == [10, 11, 13] and back.particle.tolist() == [0, 0, 0]
    assert back.meta["hit_table"]["energy_unit"] == "GeV"


def parquet_table(path, rows=ROWS):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table(rows), path)
    return path


def test_parquet_table_with_its_own_names_and_units(tmp_path):
    path = parquet_table(tmp_path / "user.parquet")
    assert_read_as_expected(read_showers(path, detector=toy_detector(), columns=MAPPING, energy_unit="GeV"))


def test_parquet_with_calolab_columns_and_no_metadata_reads(tmp_path):
    """A user's own table with exactly calolab's columns (no 'calolab.format' metadata)."""
    rows = {key: ROWS[MAPPING[key]] for key in ("event", "layer", "ix", "iy", "energy_mev")}
    path = parquet_table(tmp_path / "own.parquet", rows)
    with pytest.raises(CalolabError, match="own.parquet: file carries no detector geometry: pass detector="):
        read_showers(path)
    back = read_showers(path, detector=toy_detector(), energy_unit="GeV")
    assert np.isnan(back.incident_energy).all() and back.n_hits == 5  # absent: unknown, as documented
    assert "E unknown" in back.summary()
    for name in ("h5", "parquet", "root"):  # NaN incident energies survive every format
        again = read_showers(write_showers(back, tmp_path / f"again.{name}"))
        assert np.isnan(again.incident_energy).all() and np.array_equal(again.cell, back.cell)


def test_hdf5_datasets_as_columns(tmp_path):
    path = tmp_path / "user.h5"
    with h5py.File(path, "w") as f:
        for name, values in ROWS.items():
            f["hits/" + name if name != "E0" else name] = values
        f["E0_per_event"] = np.array([10.0, 20.0, 30.0])  # one per event, in event-number order
    mapping = {key: ("hits/" + name if name != "E0" else name) for key, name in MAPPING.items()}
    assert_read_as_expected(read_showers(path, detector=toy_detector(), columns=mapping, energy_unit="GeV"))
    mapping["incident_energy_mev"] = "E0_per_event"
    assert_read_as_expected(read_showers(path, detector=toy_detector(), columns=mapping, energy_unit="GeV"))


def root_file(path, trees, rntuple=False):
    """TTrees (or RNTuples) of the given branches; a record of jagged arrays becomes jagged branches."""
    uproot = pytest.importorskip("uproot")
    ak = pytest.importorskip("awkward")
    with uproot.recreate(path) as file:
        for name, branches in trees.items():
            if rntuple:
                file[name] = branches
                continue
            types = {key: (ak.type(value) if isinstance(value, ak.Array) else np.asarray(value).dtype)
                     for key, value in branches.items()}
            tree = file.mktree(name, types, field_name=lambda _, inner: inner)
            tree.extend(branches)
    return path


def test_root_tree_one_entry_per_hit_any_name(tmp_path):
    path = root_file(tmp_path / "flat.root", {"hits": ROWS})
    assert_read_as_expected(read_showers(path, detector=toy_detector(), columns=MAPPING, energy_unit="GeV"))
    assert_read_as_expected(read_showers(path, detector=toy_detector(), columns=MAPPING, energy_unit="GeV",
                                         tree="hits"))
    path = root_file(tmp_path / "rntuple.root", {"hits": ROWS}, rntuple=True)  # ROOT's newer columnar store
    assert_read_as_expected(read_showers(path, detector=toy_detector(), columns=MAPPING, energy_unit="GeV"))


def test_root_tree_one_entry_per_event_with_jagged_branches(tmp_path):
    ak = pytest.importorskip("awkward")
    counts = [2, 0, 1, 3]  # entry 1 is an event without hits
    hits = {"z": [0, 0, 1, 2, 2, 0], "i": [1, 2, 0, 3, 3, 0], "j": [1, 2, 3, 0, 0, 0],
            "e": [1.0, 4.0, 0.5, 2.0, 3.0, 1.5]}  # keV
    branches = {"cells": ak.zip({k: ak.unflatten(np.asarray(v), counts) for k, v in hits.items()}),
                "E0": np.array([1e7, 5e6, 2e7, 3e7])}
    path = root_file(tmp_path / "jagged.root", {"events": branches})
    mapping = {"layer": "z", "ix": "i", "iy": "j", "energy_mev": "e", "incident_energy_mev": "E0"}
    back = read_showers(path, detector=toy_detector(), columns=mapping, energy_unit="keV")
    assert np.diff(back.offsets).tolist() == [2, 0, 1, 2] and "event_id" not in back.extras
    assert np.allclose(back.energy_sum(), [5e-3, 0.0, 0.5e-3, 6.5e-3])
    assert np.allclose(back.incident_energy, [1e4, 5e3, 2e4, 3e4])


def test_native_files_read_as_tables_with_the_mapping(tmp_path):
    s = make_showers(toy_detector())
    for name in ("s.parquet", "s.root"):
        path = write_showers(s, tmp_path / name)
        back = read_showers(path, columns={"energy_mev": "energy_mev"})
        assert np.array_equal(back.cell, s.cell) and np.array_equal(back.offsets, s.offsets)  # the empty event too
        assert "event_id" not in back.extras and back.meta["hit_table"]["columns"]["energy_mev"] == "energy_mev"
        assert np.array_equal(back.incident_energy, s.incident_energy)
        assert_showers_equal(s, read_showers(path))


# ------------------------------------------------------------------ errors
def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert "\n" not in message
    return message


def user_table(path, rows):
    """A user's hit table ``rows`` (column -> array) in the format of ``path``'s suffix, one row per hit."""
    if path.suffix == ".parquet":
        parquet_table(path, rows)
    elif path.suffix == ".root":
        root_file(path, {"hits": rows})
    else:
        with h5py.File(path, "w") as f:
            for name, values in rows.items():
                f[name] = values
    return path


@pytest.mark.parametrize("suffix", [".parquet", ".root", ".h5"])
def test_missing_mapped_column(suffix, tmp_path):
    path = user_table(tmp_path / f"user{suffix}", ROWS)
    with pytest.raises(CalolabError) as info:
        read_showers(path, detector=toy_detector(), columns={**MAPPING, "iy": "jj"})
    assert f"user{suffix}: no " in one_line(info) and "'jj' (for iy)" in one_line(info)
    with pytest.raises(CalolabError, match="'E1' .for incident_energy_mev."):  # asked for by name: must exist
        read_showers(path, detector=toy_detector(), columns={**MAPPING, "incident_energy_mev": "E1"})


@pytest.mark.parametrize("suffix", [".parquet", ".root", ".h5"])
def test_index_out_of_range(suffix, tmp_path):
    rows = dict(ROWS, i=np.array([3, 1, 4, 0, 2, 0], np.int32))  # nx = 4
    path = user_table(tmp_path / f"user{suffix}", rows)
    with pytest.raises(CalolabError) as info:
        read_showers(path, detector=toy_detector(), columns=MAPPING)
    assert f"user{suffix}:" in one_line(info) and "'i': value 4 outside [0, 4) for detector 'toy'" in one_line(info)


def test_unknown_unit_and_unknown_name(tmp_path):
    path = parquet_table(tmp_path / "user.parquet")
    with pytest.raises(CalolabError, match="unknown energy unit 'eV': expected one of GeV, MeV, keV"):
        read_showers(path, detector=toy_detector(), columns=MAPPING, energy_unit="eV")
    with pytest.raises(CalolabError, match="columns: unknown name 'x'"):
        read_showers(path, detector=toy_detector(), columns={"x": "i"})
    with pytest.raises(CalolabError, match="--columns: 'layer' is not NAME=COLUMN"):
        parse_columns("event=evt,layer")
    calolab_file = write_showers(make_showers(toy_detector()), tmp_path / "s.h5")
    with pytest.raises(CalolabError, match="s.h5: a hdf5 file, whose energies are MeV"):
        read_showers(calolab_file, energy_unit="GeV")


def test_inconsistent_per_event_column_and_fractional_index(tmp_path):
    path = parquet_table(tmp_path / "a.parquet", dict(ROWS, E0=np.array([30.0, 10.0, 31.0, 20.0, 10.0, 30.0])))
    with pytest.raises(CalolabError, match="a.parquet: column 'E0': differs between rows of event 13"):
        read_showers(path, detector=toy_detector(), columns=MAPPING)
    path = parquet_table(tmp_path / "b.parquet", dict(ROWS, z=np.array([2, 0, 2, 1.5, 0, 0])))
    with pytest.raises(CalolabError, match="b.parquet: column 'z' holds float64 values that are not whole numbers"):
        read_showers(path, detector=toy_detector(), columns=MAPPING)


def test_root_tree_choice(tmp_path):
    path = root_file(tmp_path / "two.root", {"hits": ROWS, "more": ROWS})
    with pytest.raises(CalolabError, match=r"two.root: 2 TTrees \(hits, more\): name one with tree="):
        read_showers(path, detector=toy_detector(), columns=MAPPING)
    with pytest.raises(CalolabError, match="two.root: no TTree 'other': the file has hits, more"):
        read_showers(path, detector=toy_detector(), columns=MAPPING, tree="other")
    assert read_showers(path, detector=toy_detector(), columns=MAPPING, tree="more").n_hits == 5
    with pytest.raises(CalolabError, match="tree= names a TTree of a ROOT file, not of a parquet file"):
        read_showers(parquet_table(tmp_path / "user.parquet"), detector=toy_detector(), tree="hits")


def test_root_tree_mixing_jagged_and_flat_hit_branches(tmp_path):
    ak = pytest.importorskip("awkward")
    branches = {"e": ak.unflatten(np.array([1.0, 2.0, 3.0]), [2, 1]), "z": np.array([0, 1]), "i": np.array([0, 1]),
                "j": np.array([0, 1])}
    path = root_file(tmp_path / "mixed.root", {"t": branches})
    with pytest.raises(CalolabError, match="mixed.root: TTree 't' mixes jagged and flat hit branches"):
        read_showers(path, detector=toy_detector(), columns={"layer": "z", "ix": "i", "iy": "j", "energy_mev": "e"})
