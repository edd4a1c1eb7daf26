"""Calibration streamed shard by shard: per-cell sums merge exactly, results do not depend on storage."""

import sys
import warnings

import numpy as np
import pytest

from calolab import CalolabError, load_detector
from calolab.calibration import apply_calibration, calibrate, hit_cells, passes, read_calibration, score
from calolab.calibration.bootstrap import ReplicaSums
from calolab.calibration.cellstats import CellStats, LogStats
from calolab.calibration.sketch import Binning, QuantileSketch, Spectrum
from calolab.effects import AgeingConfig, age, read_truth, zero_suppress
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


def test_wgan_refuses_paths(stored):
    runs, _ = stored
    with pytest.raises(CalolabError, match="streams? files and sharded datasets are hierarchical, moments, quantile"):
        calibrate(*runs["file"], "wgan")
    with pytest.raises(CalolabError, match="different geometries"):
        calibrate(runs["file"][0], simulate(load_detector("siw-ecal"), Beam("e-", energy=1e3), 5, seed=1))


def test_merged_sketches_equal_the_one_pass_sketch(stored, small_chunks):
    """Sketch counts are integers: any split of the events, and any storage, gives the same sketch."""
    reference = stored[0]["memory"][0]
    binning = Binning.of(reference.detector)
    whole = QuantileSketch.of(reference, binning)
    for cut in (200, 123, 1):
        merged = QuantileSketch.of(reference[:cut], binning) + QuantileSketch.of(reference[cut:], binning)
        assert merged == whole and merged.counts.dtype == np.int64
    assert whole.n_events == 450 and int(whole.hits.sum()) == int((reference.energy > 0).sum())
    for how, (ref, _) in stored[0].items():
        [streamed] = passes.over(passes.open_run(ref, "reference"), lambda chunk, _: QuantileSketch.of(chunk, binning))
        assert streamed == whole, how
    assert whole != QuantileSketch.of(reference[1:], binning)
    with pytest.raises(CalolabError, match="only sketches of the same binning merge"):
        whole + QuantileSketch.of(reference, Binning.of(reference.detector, per_decade=32))


def test_sketch_quantiles_are_within_a_bin_of_the_sorted_deposits():
    rng = np.random.default_rng(5)
    energy = rng.lognormal(0.0, 1.0, 20000)
    binning = Binning(1e-3, 64, 6 * 64)
    bins, counts = np.unique(binning.index(energy), return_counts=True)
    spectrum = Spectrum.of(binning, bins, counts)
    ranks = np.array([10, 100, 1000, 5000, 10000, 19000])
    exact = np.sort(energy)[::-1][ranks]
    np.testing.assert_allclose(spectrum.from_top(ranks), exact, rtol=binning.relative_width)
    assert spectrum.above(1.0) == pytest.approx((energy > 1.0).sum(), rel=0.02)


@pytest.mark.parametrize("method", ["quantile", "mip"])
def test_streamed_quantile_and_mip_agree_with_the_exact_in_memory_ones(stored, small_chunks, method):
    """Streamed runs are matched on sketches: the same bits from a file, its sharded copy and the
    run in memory sketched; against the exact in-memory result the MAE differs by < 0.002."""
    runs, threshold = stored
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "the mip method measures MIP peaks in muon runs")
        results = {how: calibrate(*pair, method, threshold=threshold) for how, pair in runs.items()}
        sketched = calibrate(*runs["memory"], method, threshold=threshold, sketch=True)
    for how in ("file", "sharded"):
        for field in ("coefficients", "uncertainty", "calibrated"):
            assert np.array_equal(getattr(results[how], field), getattr(sketched, field), equal_nan=True), how
        assert results[how].run_stats[0].n_events == 450
    exact = results["memory"]
    truth = np.asarray(read_truth(runs["memory"][1].meta, "ageing").coefficients, float)
    cells = hit_cells(runs["memory"][0])
    assert exact.calibrated.sum() > 200
    assert (exact.calibrated != sketched.calibrated).sum() <= 0.01 * exact.calibrated.sum()
    assert abs(score(sketched, truth, cells)["mae"] - score(exact, truth, cells)["mae"]) < 0.002
    both = exact.calibrated & sketched.calibrated
    shift = np.abs(sketched.coefficients[both] - exact.coefficients[both]) / exact.uncertainty[both]
    assert np.median(shift) < 0.15  # well inside the statistical error of a cell
    if method == "mip":
        warning = results["file"].diagnostics["warning"]
        assert "muon runs, but the reference run holds 450 of 450 events of pi+" in warning


def test_streamed_mip_on_muon_runs_recovers_the_ageing(tmp_path, small_chunks):
    det = load_detector("ahcal")
    threshold = 0.5 * float(det.mip_mpv[0])
    beam = Beam("mu-", energy=10e3, spot_sigma=50.0)
    reference = zero_suppress(simulate(det, beam, 1500, seed=31), threshold)
    aged, truth = age(simulate(det, beam, 1500, seed=32), AgeingConfig(model="linear", target_mae=0.03), seed=3)
    damaged = zero_suppress(aged, threshold)
    paths = [write_sharded(s, tmp_path / n, shard_events=70) for s, n in ((reference, "ref"), (damaged, "dam"))]
    streamed = calibrate(*paths, "mip", threshold=threshold)
    exact = calibrate(reference, damaged, "mip", threshold=threshold)
    assert "warning" not in streamed.diagnostics
    good = streamed.calibrated & exact.calibrated
    assert good.sum() > 50
    t = truth.coefficients.astype(float)[good]
    error_streamed, error_exact = (np.mean(np.abs(r.coefficients[good] - t)) for r in (streamed, exact))
    assert error_streamed < 0.5 * np.mean(np.abs(1 - t))
    assert abs(error_streamed - error_exact) < 0.002


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


def test_calibrate_command_streams_quantile(stored, small_chunks, tmp_path, monkeypatch, capsys):
    """-m quantile on files and sharded datasets: no whole-run read, the same line for both."""
    import calolab.io
    from calolab.cli import main

    def whole_read(*args, **kwargs):
        raise AssertionError("a streamed calibration read a whole run")

    monkeypatch.setattr(calolab.io, "read_showers", whole_read)
    lines = {}
    for how in ("file", "sharded"):
        monkeypatch.setattr(sys, "argv", ["calolab", "calibrate", *map(str, stored[0][how]), "-m", "quantile",
                                          "-o", str(tmp_path / f"{how}.h5")])
        main()
        lines[how] = capsys.readouterr().out.strip()
    assert "quantile calibrated" in lines["file"] and "against the stored ageing truth" in lines["file"]
    assert lines["file"].split("; ", 1)[1] == lines["sharded"].split("; ", 1)[1]
    monkeypatch.setattr(calolab.io, "read_showers", read_showers)
    found = read_calibration(tmp_path / "sharded.h5")
    expected = calibrate(*stored[0]["memory"], "quantile", threshold=stored[1], sketch=True)
    assert np.array_equal(found.coefficients, expected.coefficients, equal_nan=True)
