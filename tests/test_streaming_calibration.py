"""Calibration streamed shard by shard: per-cell sums merge exactly, results do not depend on storage."""

import sys

import numpy as np
import pytest

from calolab import CalolabError, load_detector
from calolab.calibration import apply_calibration, calibrate, passes, read_calibration
from calolab.calibration.bootstrap import ReplicaSums
from calolab.calibration.cellstats import CellStats, LogStats
from calolab.effects import AgeingConfig, age, zero_suppress
from calolab.io import read_sharded, read_showers, write_sharded, write_showers
from calolab.simulation import Beam, simulate


@pytest.fixture(scope="module")
def stored(tmp_path_factory):
    """ahcal 10 GeV pions above half a MIP, reference and aged: in memory, as HDF5 files and as
    sharded datasets whose 70-event shards do not line up with the 100-event chunks."""
    det = load_detector("ahcal")
    threshold = 0.5 * float(det.mip_mpv[0])
    beam = Beam("pi+", energy=10e3)
    reference = zero_suppress(simulate(det, beam, 450, seed=21), threshold)
    aged, _ = age(simulate(det, beam, 450, seed=22), AgeingConfig(model="linear", target_mae=0.03), seed=2)
    damaged = zero_suppress(aged, threshold)
    folder = tmp_path_factory.mktemp("stored")
    runs = {"memory": (reference, damaged)}
    runs["file"] = tuple(write_showers(s, folder / f"{n}.h5") for s, n in ((reference, "ref"), (damaged, "dam")))
    runs["sharded"] = tuple(write_sharded(s, folder / n, shard_events=70) for s, n in ((reference, "ref"),
                                                                                       (damaged, "dam")))
    return runs, threshold


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(passes, "CHUNK_EVENTS", 100)


def _sums(source, threshold):
    run = passes.open_run(source, "reference")
    return passes.over(run, lambda chunk, _: CellStats.of(chunk), lambda chunk, _: LogStats.of(chunk, threshold),
                       lambda chunk, index: ReplicaSums.of(chunk, index, 5, 3, 0, threshold))


def _arrays(stats):
    cells, logs, replicas = stats
    return [cells.hits, cells.sum, cells.sum2, logs.hits, logs.sum, logs.sum2, replicas.log.hits, replicas.log.sum,
            replicas.log.sum2, replicas.energy, replicas.weight]


def test_sums_over_a_file_its_sharded_copy_and_memory_are_the_same_bits(stored, small_chunks):
    runs, threshold = stored
    found = {how: _sums(pair[0], threshold) for how, pair in runs.items()}
    assert found["memory"][0].n_events == found["sharded"][0].n_events == 450
    for how in ("file", "sharded"):
        for a, b in zip(_arrays(found["memory"]), _arrays(found[how]), strict=True):
            assert np.array_equal(a, b), how


def test_merged_halves_equal_the_whole_run(stored):
    """Counts are exact under any split; sums agree to rounding (they are added in another order)."""
    reference = stored[0]["memory"][0]
    whole = CellStats.of(reference)
    merged = CellStats.of(reference[:200]) + CellStats.of(reference[200:])
    assert merged.n_events == whole.n_events and np.array_equal(merged.hits, whole.hits)
    np.testing.assert_allclose(merged.sum, whole.sum, rtol=1e-12, atol=0)
    np.testing.assert_allclose(merged.var, whole.var, rtol=1e-12, atol=0)
    log_whole = LogStats.of(reference, 0.3)
    log_merged = LogStats.of(reference[:123], 0.3) + LogStats.of(reference[123:], 0.3)
    assert np.array_equal(log_merged.hits, log_whole.hits) and log_merged.hits.dtype == np.int64
    np.testing.assert_allclose(log_merged.sum2, log_whole.sum2, rtol=1e-12, atol=0)
    np.testing.assert_allclose(log_merged.mean, log_whole.mean, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("method", ["hierarchical", "moments"])
def test_streamed_calibration_equals_the_in_memory_one(stored, small_chunks, method):
    runs, threshold = stored
    options = {"threshold": threshold} if method == "hierarchical" else {}
    results = {how: calibrate(*pair, method, **options) for how, pair in runs.items()}
    for how in ("file", "sharded"):
        for field in ("coefficients", "uncertainty", "calibrated"):
            assert np.array_equal(getattr(results[how], field), getattr(results["memory"], field), equal_nan=True)
    assert results["memory"].calibrated.sum() > 100


def test_methods_that_need_sorted_deposits_refuse_paths(stored):
    runs, _ = stored
    for method in ("quantile", "mip", "wgan"):
        with pytest.raises(CalolabError, match="streams? files and sharded datasets are hierarchical, moments"):
            calibrate(*runs["file"], method)
    with pytest.raises(CalolabError, match="different geometries"):
        calibrate(runs["file"][0], simulate(load_detector("siw-ecal"), Beam("e-", energy=1e3), 5, seed=1))


def test_calibrate_command_streams_and_writes_the_corrected_shards(stored, small_chunks, tmp_path, monkeypatch,
                                                                    capsys):
    """The command on files and on sharded datasets: no whole-run read, the same figures, the
    corrected events written chunk by chunk as a sharded dataset (or whole, to one file)."""
    import calolab.io
    from calolab.cli import main

    runs, _ = stored

    def cli(*args):
        monkeypatch.setattr(sys, "argv", ["calolab", "calibrate", *args])
        main()
        return capsys.readouterr()

    def whole_read(*args, **kwargs):
        raise AssertionError("a streamed calibration read a whole run")

    monkeypatch.setattr(calolab.io, "read_showers", whole_read)
    lines = {}
    for how in ("file", "sharded"):
        ref, dam = map(str, runs[how])
        lines[how] = cli(ref, dam, "-o", str(tmp_path / f"{how}.h5"), "--apply", str(tmp_path / f"{how}-fixed")).out
        lines[how] = lines[how].splitlines()
        assert lines[how][1] == f"{tmp_path / f'{how}-fixed'}: corrected 450 events"
    assert "threshold" in lines["file"][0] and "against the stored ageing truth" in lines["file"][0]
    assert lines["file"][0].split("; ", 1)[1] == lines["sharded"][0].split("; ", 1)[1]
    monkeypatch.setattr(calolab.io, "read_showers", read_showers)
    damaged = runs["memory"][1]
    result = read_calibration(tmp_path / "sharded.h5")
    fixed = read_sharded(tmp_path / "sharded-fixed")
    assert np.array_equal(fixed.energy, apply_calibration(damaged, result).energy)
    assert fixed.meta["calibration"]["method"] == "hierarchical"
    # a single output file holds the whole corrected run, as it always did
    cli(*map(str, runs["file"]), "-o", str(tmp_path / "c.h5"), "--apply", str(tmp_path / "out.h5"))
    expected = apply_calibration(damaged, read_calibration(tmp_path / "c.h5")).energy
    assert np.array_equal(read_showers(tmp_path / "out.h5").energy, expected)
