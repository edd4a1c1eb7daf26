"""Round trips through every showers file format, chunked reading, errors and atomic writes."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

import calolab
from calolab.errors import CalolabError
from calolab.geometry import Detector
from calolab.io import iter_showers, read_calochallenge, read_showers, write_calochallenge, write_showers
from calolab.io.atomic import atomic_path
from calolab.showers import Showers

FORMATS = {  # name -> (file name, format argument)
    "hdf5": ("showers.h5", None),
    "hdf5-long-suffix": ("showers.hdf5", None),
    "calochallenge": ("showers_cc.h5", "calochallenge"),
    "parquet": ("showers.parquet", None),
    "root": ("showers.root", None),
}


def toy_detector(name: str = "toy", nx: int = 4) -> Detector:
    """3 layers of 4 x 4 cells: 2 of Fe + scintillator, 1 of W + Si."""
    return Detector.from_dict({
        "name": name,
        "cells": {"nx": nx, "ny": 4, "pitch": 10.0},
        "layers": [
            {"absorber": "Fe", "absorber_thickness": 20, "active": "Scintillator", "active_thickness": 5, "repeat": 2},
            {"absorber": "W", "absorber_thickness": 3.5, "active": "Si", "active_thickness": 0.5},
        ],
    })


def make_showers(det: Detector, n: int = 12, occupancy: float = 0.2, seed: int = 7) -> Showers:
    """Random sparse showers; event 1 has no hits; extras of three dtypes; a rich ``meta``."""
    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((n, det.n_cells)) < occupancy, rng.exponential(2.0, (n, det.n_cells)) + 1e-3, 0.0)
    dense[1] = 0.0
    direction = rng.normal([0, 0, 5], 1, (n, 3))
    meta = {
        "seed": seed,
        "config": {"energies": (1e3, 5e4), "particle": "e-", "thresholds": [0.5, 1.0]},
        "gains": rng.normal(1, 0.05, det.shape).astype(np.float32),
        "dead": np.zeros(det.n_layers, bool),
        "labels": np.array(["front", "back"]),
        "scale": np.float32(0.25),
        "count": np.int64(3),
        7: "a non-string key",
        "nothing": None,
    }
    return Showers.from_dense(
        det,
        dense.astype(np.float32),
        particle=rng.choice([11, 22, -211], n),
        incident_energy=rng.uniform(1e3, 5e4, n),
        entry=rng.normal(0, 3, (n, 2)),
        direction=direction / np.linalg.norm(direction, axis=1, keepdims=True),
        extras={
            "first_interaction": rng.exponential(20.0, n),
            "n_tracks": rng.integers(0, 100, n).astype(np.int32),
            "contained": rng.random(n) < 0.5,
        },
        meta=meta,
    )


def assert_same(a, b) -> None:
    """Equal values of the same types (and dtypes), recursively."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, np.ndarray | np.generic):
        assert a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, list | tuple):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    else:
        assert a == b


def assert_showers_equal(a: Showers, b: Showers) -> None:
    assert a.detector == b.detector
    for name in ("offsets", "cell", "energy", "particle", "incident_energy", "entry", "direction"):
        assert_same(getattr(a, name), getattr(b, name))
    assert_same(dict(sorted(a.extras.items())), dict(sorted(b.extras.items())))
    assert_same(a.meta, b.meta)


@pytest.fixture(params=["toy", "siw-ecal"])
def showers(request) -> Showers:
    if request.param == "toy":
        return make_showers(toy_detector())
    return make_showers(calolab.load_detector("siw-ecal"), n=10, occupancy=0.01)


# ------------------------------------------------------------------ round trips
@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_is_exact(showers, fmt, tmp_path):
    name, format = FORMATS[fmt]
    assert np.diff(showers.offsets)[1] == 0  # an event without hits is part of the test
    path = write_showers(showers, tmp_path / name, format=format)
    assert path == tmp_path / name
    back = read_showers(path)
    assert_showers_equal(showers, back)
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary file left


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_of_no_events(fmt, tmp_path):
    empty = make_showers(toy_detector())[np.zeros(12, bool)]
    name, format = FORMATS[fmt]
    assert_showers_equal(empty, read_showers(write_showers(empty, tmp_path / name, format=format)))


@pytest.mark.parametrize("fmt", FORMATS)
def test_round_trip_of_events_without_any_hits(fmt, tmp_path):
    s = make_showers(toy_detector(), occupancy=0.0)
    assert s.n_hits == 0 and len(s) == 12
    name, format = FORMATS[fmt]
    assert_showers_equal(s, read_showers(write_showers(s, tmp_path / name, format=format)))


@pytest.mark.parametrize("fmt", ["hdf5", "calochallenge"])
def test_chunked_reader_equals_full_read(showers, fmt, tmp_path):
    name, format = FORMATS[fmt]
    path = write_showers(showers, tmp_path / name, format=format)
    batches = list(iter_showers(path, chunk_events=4))
    assert [len(b) for b in batches] == [4, 4, len(showers) - 8]
    assert_showers_equal(Showers.concatenate(batches), read_showers(path))


def test_hdf5_layout_is_chunked_and_compressed(tmp_path):
    s = make_showers(toy_detector())
    path = write_showers(s, tmp_path / "s.h5")
    with h5py.File(path) as f:
        assert f.attrs["format"] == "calolab-showers" and f.attrs["format_version"] == 1
        assert f.attrs["calolab_version"] == calolab.__version__
        assert Detector.from_dict(yaml.safe_load(f.attrs["geometry"])) == s.detector
        for name in ("cell", "energy"):
            assert f[name].compression == "gzip" and f[name].chunks is not None
        assert sorted(f["extras"]) == ["contained", "first_interaction", "n_tracks"]


def test_calochallenge_layout(tmp_path):
    s = make_showers(toy_detector())
    path = write_calochallenge(s, tmp_path / "cc.h5", chunk_events=5)  # three dense blocks
    with h5py.File(path) as f:
        assert f["incident_energies"].shape == (12, 1) and f["showers"].shape == (12, 48)
        assert np.array_equal(f["showers"][:], s.dense().reshape(12, 48))
        assert np.array_equal(f["incident_energies"][:, 0], s.incident_energy)


def test_parquet_is_a_plain_hit_table(tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    pd = pytest.importorskip("pandas")
    s = make_showers(toy_detector())
    path = write_showers(s, tmp_path / "s.parquet")
    table = pq.read_table(path)
    assert table.column_names == ["event", "layer", "ix", "iy", "energy_mev", "x_mm", "y_mm", "z_mm", "particle",
                                  "incident_energy_mev", "entry_x_mm", "entry_y_mm", "dir_x", "dir_y", "dir_z",
                                  "extra_first_interaction", "extra_n_tracks", "extra_contained"]
    assert str(table.schema.field("layer").type) == "int16" and table.num_rows == s.n_hits + 1  # + the empty event
    kv = pq.ParquetFile(path).metadata.metadata
    assert b"calolab.events" not in kv and json.loads(kv[b"calolab.format"])["format_version"] == 2
    df = pd.read_parquet(path, dtype_backend="numpy_nullable")  # what a pandas user does
    hits = df[df.energy_mev.notna()]
    layer, ix, iy = s.cell_coordinates()
    assert np.array_equal(hits.layer.to_numpy(), layer) and np.array_equal(hits.iy.to_numpy(), iy)
    for column, values in zip(("x_mm", "y_mm", "z_mm"), s.positions(), strict=True):
        assert np.array_equal(hits[column].to_numpy(np.float64), values.astype(np.float32).astype(np.float64))
    empty = df[df.event == 1]
    assert len(empty) == 1 and empty.energy_mev.isna().all() and empty.ix.isna().all()
    events = df.groupby("event").first()  # per-event truth without calolab
    assert np.array_equal(events.incident_energy_mev.to_numpy(np.float64), s.incident_energy)
    assert np.array_equal(events.particle.to_numpy(np.int64), s.particle)
    assert np.array_equal(events.extra_contained.to_numpy(bool), s.extras["contained"])
    sums = df.groupby("event").energy_mev.sum().to_numpy(np.float64)
    assert np.allclose(sums, s.energy_sum(), rtol=1e-6) and sums[1] == 0


def test_root_branches_name_indices_positions_and_units(tmp_path):
    uproot = pytest.importorskip("uproot")
    s = make_showers(toy_detector())
    with uproot.open(write_showers(s, tmp_path / "s.root")) as file:
        tree = file["showers"]
        assert json.loads(str(file["calolab"]))["format_version"] == 2
        assert {"layer", "ix", "iy", "energy_mev", "x_mm", "y_mm", "z_mm", "incident_energy_mev", "entry_x_mm",
                "entry_y_mm", "dir_x", "extra_contained"} <= set(tree.keys())
        x = np.concatenate(tree["x_mm"].array(library="np"))
        z = np.concatenate(tree["z_mm"].array(library="np"))
        assert np.array_equal(tree["incident_energy_mev"].array(library="np"), s.incident_energy)
    assert np.array_equal(x, s.positions()[0].astype(np.float32))
    assert np.array_equal(z, s.positions()[2].astype(np.float32))


def test_positions_are_cell_centres():
    det = toy_detector()  # 4 x 4 cells of 10 mm, centred on the axis
    dense = np.zeros((1, *det.shape), np.float32)
    dense[0, 0, 0, 3] = dense[0, 2, 1, 0] = 1.0
    x, y, z = Showers.from_dense(det, dense, particle=11, incident_energy=[1e3]).positions()
    assert x.tolist() == [-15.0, -5.0] and y.tolist() == [15.0, -15.0]
    assert z.tolist() == [22.5, 53.75]  # the middle of the active slab: 20 + 2.5; 50 + 3.5 + 0.25


# ------------------------------------------------------------------ files of format version 1
def write_parquet_v1(showers: Showers, path: Path) -> Path:
    """A Parquet file as calolab wrote it before format version 2 (the old writer, kept here)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from calolab.io.encoding import array_to_json, meta_to_json

    layer, x, y = showers.cell_coordinates()
    table = pa.table({"event": showers.event_index.astype(np.int64), "layer": layer.astype(np.int16),
                      "x": x.astype(np.int16), "y": y.astype(np.int16), "energy": showers.energy})
    events = {name: array_to_json(getattr(showers, name)) for name in ("particle", "incident_energy", "entry",
                                                                       "direction")}
    events["extras"] = {name: array_to_json(np.asarray(arr)) for name, arr in showers.extras.items()}
    metadata = {"calolab.format": json.dumps({"format": "calolab-showers", "format_version": 1,
                                              "calolab_version": "0.9", "n_events": len(showers)}),
                "calolab.geometry": showers.detector.to_yaml(), "calolab.events": json.dumps(events),
                "calolab.meta": meta_to_json(showers.meta)}
    pq.write_table(table.replace_schema_metadata(metadata), path)
    return path


def write_root_v1(showers: Showers, path: Path) -> Path:
    """A ROOT file as calolab wrote it before format version 2 (the old writer, kept here)."""
    import awkward as ak
    import uproot

    from calolab.io.encoding import meta_to_json

    names = ("particle", "incident_energy", "entry_x", "entry_y", "dir_x", "dir_y", "dir_z")
    types = {"hits": "var * {layer: int16, x: int16, y: int16, energy: float32}"}
    types |= {name: np.float64 for name in names} | {"particle": np.int32}
    types |= {f"extra_{name}": np.asarray(arr).dtype for name, arr in showers.extras.items()}
    layer, x, y = (c.astype(np.int16) for c in showers.cell_coordinates())
    counts = np.diff(showers.offsets)
    hits = {"layer": layer, "x": x, "y": y, "energy": showers.energy}
    branches = {"hits": ak.zip({k: ak.unflatten(v, counts) for k, v in hits.items()}),
                "particle": showers.particle, "incident_energy": showers.incident_energy,
                "entry_x": showers.entry[:, 0], "entry_y": showers.entry[:, 1]}
    branches |= {f"dir_{c}": showers.direction[:, i] for i, c in enumerate("xyz")}
    branches |= {f"extra_{name}": np.asarray(arr) for name, arr in showers.extras.items()}
    with uproot.recreate(path) as file:
        file["geometry"] = showers.detector.to_yaml()
        file["calolab"] = json.dumps({"format": "calolab-showers", "format_version": 1, "calolab_version": "0.9"})
        file["meta"] = meta_to_json(showers.meta)
        tree = file.mktree("showers", types, counter_name=lambda _: "n_hits", field_name=lambda _, inner: inner)
        tree.extend(branches)
    return path


@pytest.mark.parametrize("writer", [write_parquet_v1, write_root_v1], ids=["parquet", "root"])
def test_files_of_format_version_1_still_read(writer, showers, tmp_path):
    pytest.importorskip("pyarrow" if writer is write_parquet_v1 else "uproot")
    path = writer(showers, tmp_path / ("old.parquet" if writer is write_parquet_v1 else "old.root"))
    assert np.diff(showers.offsets)[1] == 0  # the empty event has no row in a version-1 Parquet file
    assert_showers_equal(showers, read_showers(path))
    empty = showers[np.zeros(len(showers), bool)]
    assert_showers_equal(empty, read_showers(writer(empty, tmp_path / ("empty" + path.suffix))))


def test_parquet_without_add_key_value_metadata(monkeypatch, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    monkeypatch.delattr(pq.ParquetWriter, "add_key_value_metadata", raising=False)  # pyarrow < 17
    s = make_showers(toy_detector())
    assert_showers_equal(s, read_showers(write_showers(s, tmp_path / "s.parquet")))


def test_calochallenge_from_elsewhere_needs_a_detector(tmp_path):
    det = toy_detector()
    s = make_showers(det)
    path = tmp_path / "foreign.h5"
    with h5py.File(path, "w") as f:
        f["incident_energies"] = s.incident_energy[:, None]
        f["showers"] = s.dense().reshape(len(s), -1).astype(np.float64)
    with pytest.raises(CalolabError, match="foreign.h5: file carries no detector geometry"):
        read_showers(path)
    back = read_showers(path, detector=det)
    assert np.array_equal(back.dense(), s.dense()) and set(back.particle) == {0}
    assert read_calochallenge(path, detector=det, particle="gamma").particle.tolist() == [22] * len(s)


def test_detector_override(tmp_path):
    s = make_showers(toy_detector())
    path = write_showers(s, tmp_path / "s.h5")
    renamed = toy_detector("renamed")
    assert read_showers(path, detector=renamed).detector.name == "renamed"
    with pytest.raises(CalolabError, match=r"written for detector 'toy' of shape \(3, 4, 4\)"):
        read_showers(path, detector=toy_detector(nx=5))


# ------------------------------------------------------------------ errors
def test_calochallenge_width_mismatch(tmp_path):
    path = tmp_path / "wide.h5"
    with h5py.File(path, "w") as f:
        f["incident_energies"] = np.full((3, 1), 1e4)
        f["showers"] = np.zeros((3, 50), np.float32)
    with pytest.raises(CalolabError) as err:
        read_calochallenge(path, detector=toy_detector())
    message = str(err.value)
    assert "wide.h5" in message and "50 cells" in message and "expected 48" in message
    assert "\n" not in message


@pytest.mark.parametrize("bad", [np.nan, -1.0, np.inf])
def test_calochallenge_invalid_energies(bad, tmp_path):
    path = tmp_path / "bad.h5"
    showers = np.zeros((4, 48), np.float32)
    showers[2, 7] = bad
    with h5py.File(path, "w") as f:
        f["incident_energies"] = np.full((4, 1), 1e4)
        f["showers"] = showers
    with pytest.raises(CalolabError, match=r"bad.h5: .*'showers'.*event 2.*expected finite energies >= 0 MeV"):
        read_calochallenge(path, detector=toy_detector())


@pytest.mark.parametrize(("fmt", "dataset"), [("hdf5", "energy"), ("hdf5", "particle"),
                                              ("calochallenge", "incident_energies")])
def test_missing_dataset_is_named(fmt, dataset, tmp_path):
    name, format = FORMATS[fmt]
    path = write_showers(make_showers(toy_detector()), tmp_path / name, format=format)
    with h5py.File(path, "a") as f:
        del f[dataset]
    with pytest.raises(CalolabError, match=f"{name}: missing dataset '{dataset}'"):
        read_showers(path)


def test_wrong_shape_is_named(tmp_path):
    path = write_showers(make_showers(toy_detector()), tmp_path / "s.h5")
    with h5py.File(path, "a") as f:
        del f["entry"]
        f["entry"] = np.zeros((12, 3))
    with pytest.raises(CalolabError, match=r"s.h5: dataset 'entry' has shape \(12, 3\), expected \(12, 2\)"):
        read_showers(path)


@pytest.mark.parametrize("suffix", [".h5", ".parquet", ".root"])
def test_missing_and_foreign_files(suffix, tmp_path):
    with pytest.raises(CalolabError, match=f"nowhere{suffix}: no such file"):
        read_showers(tmp_path / f"nowhere{suffix}")
    junk = tmp_path / f"junk{suffix}"
    junk.write_text("not a showers file\n")
    with pytest.raises(CalolabError, match=f"junk{suffix}: not an? (HDF5|Parquet|ROOT) file"):
        read_showers(junk)


def test_foreign_hdf5_and_unknown_extension(tmp_path):
    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.zeros(3)
    with pytest.raises(CalolabError, match="other.h5: neither a calolab showers file"):
        read_showers(path)
    with pytest.raises(CalolabError, match=r"unknown showers file extension '\.npz'"):
        write_showers(make_showers(toy_detector()), tmp_path / "s.npz")
    with pytest.raises(CalolabError, match="unknown showers format 'csv'"):
        read_showers(path, format="csv")


def test_newer_format_version_is_refused(tmp_path):
    path = write_showers(make_showers(toy_detector()), tmp_path / "s.h5")
    with h5py.File(path, "a") as f:
        f.attrs["format_version"] = 2
    with pytest.raises(CalolabError, match="format_version 2 is newer"):
        read_showers(path)


def test_meta_that_cannot_be_stored(tmp_path):
    s = make_showers(toy_detector())
    s.meta = {"config": {"path": Path("run.yaml")}}
    with pytest.raises(CalolabError, match=r"meta\['config'\]\['path'\] is a PosixPath"):
        write_showers(s, tmp_path / "s.h5")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("module", "fmt", "extra"), [("pyarrow", "parquet", "parquet"), ("uproot", "root", "root")])
def test_missing_optional_library(module, fmt, extra, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    with pytest.raises(CalolabError, match=rf"pip install 'calolab\[{extra}\]'"):
        write_showers(make_showers(toy_detector()), tmp_path / FORMATS[fmt][0])
    with pytest.raises(CalolabError, match=rf"reading .* needs the '{extra}' extra"):
        read_showers(tmp_path / FORMATS[fmt][0])


# ------------------------------------------------------------------ atomic writes
class Interrupted(Exception):
    pass


def _interrupt(*args, **kwargs):
    raise Interrupted("simulated crash in the middle of a write")


INTERRUPTIONS = {  # format -> (object, attribute) called after the temporary file exists
    "hdf5": ("calolab.io.hdf5", "write_event_info"),
    "calochallenge": ("calolab.showers.Showers", "dense"),
    "parquet": ("pyarrow.parquet.ParquetWriter", "write_table"),
    "root": ("calolab.io.root", "_branches"),
}


@pytest.mark.parametrize("old", [True, False], ids=["old-file", "no-file"])
@pytest.mark.parametrize("fmt", INTERRUPTIONS)
def test_interrupted_write_leaves_target_alone(fmt, old, monkeypatch, tmp_path):
    name, format = FORMATS[fmt]
    target = tmp_path / name
    if old:
        target.write_bytes(b"the previous file")
    monkeypatch.setattr(".".join(INTERRUPTIONS[fmt]), _interrupt)
    with pytest.raises(Interrupted):
        write_showers(make_showers(toy_detector()), target, format=format)
    assert sorted(p.name for p in tmp_path.iterdir()) == ([name] if old else [])
    if old:
        assert target.read_bytes() == b"the previous file"


def test_atomic_path_on_keyboard_interrupt(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(KeyboardInterrupt), atomic_path(target) as tmp:
        assert tmp.parent == tmp_path and tmp.name.startswith(".out.txt.tmp-")
        tmp.write_text("half")
        raise KeyboardInterrupt
    assert not list(tmp_path.iterdir())


def test_atomic_path_turns_os_errors_into_one_line(tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "file").write_text("x")
    with pytest.raises(CalolabError, match="taken: could not write"), atomic_path(tmp_path / "taken") as tmp:
        tmp.write_text("new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
