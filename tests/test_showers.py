import numpy as np
import pytest

from calolab import CalolabError, Showers


def _random_showers(det, n=7, seed=0):
    rng = np.random.default_rng(seed)
    dense = rng.exponential(1.0, (n, *det.shape)).astype(np.float32)
    dense[rng.random(dense.shape) < 0.9] = 0
    dense[2] = 0  # an event without hits
    return dense, Showers.from_dense(det, dense, particle=211, incident_energy=rng.uniform(1e3, 1e4, n),
                                     extras={"truth": np.arange(n, dtype=float)})


def test_dense_round_trip_and_sums(small_detector):
    dense, s = _random_showers(small_detector)
    assert np.array_equal(s.dense(), dense)
    assert np.allclose(s.energy_sum(), dense.sum(axis=(1, 2, 3)))
    assert np.allclose(s.layer_sums(), dense.sum(axis=(2, 3)))
    assert np.array_equal(s.hits_per_event(), (dense > 0).sum(axis=(1, 2, 3)))
    chunks = np.concatenate([c for _, c in s.iter_dense(chunk_size=3)])
    assert np.array_equal(chunks, dense)
    empty = Showers.from_dense(small_detector, dense[:0], particle=11, incident_energy=np.zeros(0))
    assert len(empty) == 0 and empty.n_hits == 0 and empty.dense().shape == (0, *small_detector.shape)


def test_selection_and_concatenation(small_detector):
    dense, s = _random_showers(small_detector)
    sub = s[[5, 1, 2]]
    assert np.array_equal(sub.dense(), dense[[5, 1, 2]])
    assert sub.extras["truth"].tolist() == [5.0, 1.0, 2.0]
    mask = s.energy_sum() > 0
    assert len(s[mask]) == mask.sum()
    joined = Showers.concatenate([s[:3], s[3:]])
    assert np.array_equal(joined.dense(), dense) and np.array_equal(joined.offsets, s.offsets)


def test_invalid_showers_are_rejected(small_detector):
    dense, s = _random_showers(small_detector)
    with pytest.raises(CalolabError, match="NaN"):
        Showers(small_detector, s.offsets, s.cell, np.full(s.n_hits, np.nan), s.particle, s.incident_energy)
    with pytest.raises(CalolabError, match="cell index outside"):
        Showers(small_detector, s.offsets, s.cell + small_detector.n_cells, s.energy, s.particle, s.incident_energy)
    with pytest.raises(CalolabError, match="do not fit small"):
        Showers.from_dense(small_detector, dense[:, :2], particle=11, incident_energy=np.ones(len(dense)))
