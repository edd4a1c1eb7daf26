"""Sharded datasets and simulation on Dask: the same events, bit for bit, as one file."""

import json
import sys

import numpy as np
import pytest

from calolab.errors import CalolabError
from calolab.geometry import load_detector
from calolab.io import iter_showers, read_showers, write_sharded, write_showers
from calolab.simulation import Beam, simulate, simulate_sharded

FIELDS = ("offsets", "cell", "energy", "particle", "incident_energy", "entry", "direction")


def assert_same(a, b):
    assert len(a) == len(b)
    for name in FIELDS:
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and np.array_equal(x, y), name
    assert set(a.extras) == set(b.extras) and all(np.array_equal(a.extras[k], b.extras[k]) for k in a.extras)


@pytest.fixture(scope="module")
def pions():
    det, beam = load_detector("ahcal"), Beam("pi+", energy_min=2e3, energy_max=20e3, spectrum="uniform")
    return det, beam, simulate(det, beam, 700, seed=9, chunk_size=100)


def test_dask_local_cluster_gives_the_single_process_bits(pions, tmp_path):
    det, beam, whole = pions
    folder = simulate_sharded(det, beam, 700, seed=9, directory=tmp_path / "run", chunk_size=100, shard_events=200,
                              dask="local:2")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [s["events"] for s in manifest["shards"]] == [200, 200, 200, 100]
    back = read_showers(folder)
    assert_same(back, whole)
    assert back.meta == whole.meta  # the whole run's provenance: seed, chunk size, beam
    # a process pool and this process give the same shards
    local = simulate_sharded(det, beam, 700, seed=9, directory=tmp_path / "local", chunk_size=100, shard_events=200,
                             workers=2)
    for shard in manifest["shards"]:
        assert_same(read_showers(local / shard["file"]), read_showers(folder / shard["file"]))


def test_a_sharded_dataset_reads_the_events_of_the_file_it_was_split_from(pions, tmp_path):
    _, _, whole = pions
    single = write_showers(whole, tmp_path / "whole.h5")
    folder = write_sharded(read_showers(single), tmp_path / "shards", shard_events=250)
    assert_same(read_showers(folder), whole)
    assert read_showers(folder).meta == whole.meta
    # streamed in batches that cross shard boundaries, the same batches as the single file
    for a, b in zip(iter_showers(folder, chunk_events=300), iter_showers(single, chunk_events=300), strict=True):
        assert_same(a, b)
    # a glob of the shard files is the same dataset
    assert_same(read_showers(str(folder / "shard-*.h5")), whole)
    # shards in another format
    assert_same(read_showers(write_sharded(whole, tmp_path / "pq", shard_events=300, format="parquet")), whole)


def test_a_sharded_dataset_is_checked_against_its_manifest(pions, tmp_path):
    _, _, whole = pions
    folder = write_sharded(whole[:300], tmp_path / "run", shard_events=100)
    (folder / "shard-00002.h5").unlink()
    with pytest.raises(CalolabError, match="shard 'shard-00002.h5' is missing"):
        read_showers(folder)
    (folder / "shard-00001.h5").write_bytes((folder / "shard-00001.h5").read_bytes()[:-10])
    with pytest.raises(CalolabError, match="shard-00001.h5: .* bytes, the manifest says"):
        iter_showers(folder)
    with pytest.raises(CalolabError, match="without manifest.json"):
        read_showers(tmp_path)
    # a folder that is not a dataset is never replaced
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    with pytest.raises(CalolabError, match="not a sharded dataset .*not replacing it"):
        write_sharded(whole[:10], tmp_path / "mine")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep"
    with pytest.raises(CalolabError, match="unknown shard format 'csv'"):
        write_sharded(whole[:10], tmp_path / "csv", format="csv")
    assert not (tmp_path / "csv").exists()
    with pytest.raises(CalolabError, match="no files match"):
        read_showers(str(tmp_path / "nothing-*.h5"))


def test_bad_scheduler_addresses_are_one_line_errors(pions, tmp_path, monkeypatch, capsys):
    from calolab.cli import main
    from calolab.simulation import sharded

    monkeypatch.setattr(sharded, "CONNECT_TIMEOUT", "1s")
    det, beam, _ = pions
    for address, message in [("tcp://127.0.0.1:1", "cannot reach the Dask scheduler at tcp://127.0.0.1:1"),
                             ("local:0", "expected local, local:N with N >= 1"), ("nowhere", "scheduler address")]:
        monkeypatch.setattr(sys, "argv", ["calolab", "simulate", "-d", "ahcal", "-p", "pi+", "-E", "5GeV", "-n", "10",
                                          "--dask", address, "-o", str(tmp_path / "run"), "--no-progress"])
        with pytest.raises(SystemExit) as info:
            main()
        err = capsys.readouterr().err.strip().splitlines()
        assert info.value.code == 2 and len(err) == 1 and message in err[0], (address, err)
        assert not (tmp_path / "run").exists() and not list(tmp_path.iterdir())


def test_commands_take_a_sharded_dataset(tmp_path, monkeypatch, capsys):
    from calolab.cli import main

    def cli(*args):
        monkeypatch.setattr(sys, "argv", ["calolab", *args])
        main()
        return capsys.readouterr().out

    out = cli("simulate", "-d", "siw-ecal", "-E", "3GeV", "-n", "120", "--shard-events", "50", "--chunk-size", "25",
              "-o", str(tmp_path / "run"), "--no-progress")
    assert "120 events of e-" in out and "(sharded)" in out
    assert "120 events of e-" in cli("info", str(tmp_path / "run"))
    cli("features", str(tmp_path / "run"), "-o", str(tmp_path / "f.npz"))
    assert np.load(tmp_path / "f.npz")["features"].shape[0] == 120


def test_features_stream_by_chunks_and_equal_the_whole_file(tmp_path, monkeypatch):
    """calolab features reads HDF5 files and sharded datasets a chunk at a time: same numbers."""
    from calolab.reconstruction import commands
    from calolab.reconstruction.features import high_level_features
    from calolab.reconstruction.muon_features import muon_features

    det = load_detector("pbwo4")
    muons = simulate(det, Beam("mu-", energy_min=50e3, energy_max=500e3, spectrum="uniform"), 90, seed=3)
    path = write_sharded(muons, tmp_path / "muons", shard_events=40)
    monkeypatch.setattr(commands, "CHUNK_EVENTS", 25)
    commands.features.main([str(path), "-o", str(tmp_path / "f.npz")], standalone_mode=False)
    found = np.load(tmp_path / "f.npz")
    whole = np.hstack([high_level_features(muons)[0], muon_features(muons)[0]])
    assert np.array_equal(found["features"], whole) and np.array_equal(found["incident_energy"], muons.incident_energy)
    mixed = write_sharded(list(iter_showers(path, 45))[:1] + [simulate(det, Beam("e-", energy=5e3), 10, seed=1)],
                          tmp_path / "mixed")
    with pytest.raises(CalolabError, match="mixes muons with other particles"):
        commands.features.main([str(mixed), "-o", str(tmp_path / "g.npz")], standalone_mode=False)
