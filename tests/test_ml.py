"""CNN energy regression (papers 002/003): sparse batches, pooling, losses, training, resume, ensembles, CLI."""

import dataclasses
import json
import re
from dataclasses import replace

import h5py
import numpy as np
import pytest

from calolab import CalolabError
from calolab.geometry import Detector
from calolab.io import read_showers, write_showers
from calolab.reconstruction.regressor import Regressor
from calolab.reconstruction.sums import weighted_sum
from calolab.showers import Showers

torch = pytest.importorskip("torch")

from calolab.ml.commands import predict as predict_command  # noqa: E402
from calolab.ml.commands import train as train_command  # noqa: E402
from calolab.ml.data import ShowerBatches, hit_inputs, pooled_shape  # noqa: E402
from calolab.ml.ensemble import CNNEnsemble, train_ensemble  # noqa: E402
from calolab.ml.losses import BinnedHuberMFSE, make_loss, mfse, mse  # noqa: E402
from calolab.ml.model import EnergyCNN, RegressorConfig  # noqa: E402
from calolab.ml.train import MIRROR_ODD, TrainConfig, load_model, mirror_batch, train  # noqa: E402

SMALL = {"channels": (4, 8), "hidden": (16,)}
FAST = {"epochs": 3, "batch_size": 16, "lr_max": 3e-3}


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread: the tiny convolutions here gain nothing from two, and lose much on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def detector() -> Detector:
    """7 layers x 8 x 9 cells (no axis divisible by the pooling used below)."""
    return Detector.from_dict({
        "name": "toy", "cells": {"nx": 8, "ny": 9, "pitch": 20.0},
        "layers": [{"absorber": "Fe", "absorber_thickness": 20, "active": "Scintillator",
                    "active_thickness": 5, "repeat": 7}],
    })


def toy_showers(det: Detector, n: int, seed: int, centre: tuple[float, float] = (3.5, 4.0)) -> Showers:
    """Events of 10-100 GeV whose response falls with the depth of the shower (a learnable correction), centred on
    cell ``centre`` (x, y)."""
    rng = np.random.default_rng(seed)
    energy = rng.uniform(10.0, 100.0, n)  # GeV
    depth = rng.uniform(0, det.shape[0] - 1, n)
    layer, x, y = np.meshgrid(*(np.arange(k) for k in det.shape), indexing="ij")
    profile = np.exp(-((layer[None] - depth[:, None, None, None]) ** 2) / 2
                     - ((x[None] - centre[0]) ** 2 + (y[None] - centre[1]) ** 2) / 3)
    profile *= rng.random(profile.shape) < 0.7  # sparse hits
    profile /= profile.sum(axis=(1, 2, 3), keepdims=True)
    response = 1.0 - 0.4 * depth / (det.shape[0] - 1)  # deep showers leak
    visible = profile * (energy * 1e3 * response / (det.mip_loss[0] / det.mip_mpv[0]))[:, None, None, None]
    return Showers.from_dense(det, visible.astype(np.float32), particle=211, incident_energy=energy * 1e3)


@pytest.fixture(scope="module")
def events(detector):
    return toy_showers(detector, 96, seed=1)


# ------------------------------------------------------------------ data
def test_sparse_pooling_equals_pooling_the_dense_grid(events, detector):
    pool = (2, 3, 4)
    grid = pooled_shape(detector.shape, pool)
    assert grid == (4, 3, 3)
    dense = events.dense() / detector.mip_mpv[None, :, None, None]  # MIPs, (N, 7, 8, 9)
    padded = np.zeros((len(events), *(g * p for g, p in zip(grid, pool, strict=True))))
    padded[:, :7, :8, :9] = dense
    expected = padded.reshape(len(events), grid[0], pool[0], grid[1], pool[1], grid[2], pool[2]).sum(axis=(2, 4, 6))
    batches = list(ShowerBatches(events, batch_size=40, pool=pool))
    assert [len(b) for b in batches] == [40, 40, 16]
    x = torch.cat([b.x for b in batches]).numpy()[:, 0]
    np.testing.assert_allclose(x, expected, rtol=1e-5, atol=1e-6)
    unmerged = list(ShowerBatches(events, batch_size=40, pool=pool, hit_inputs=True))  # one entry per hit
    assert sum(len(b.hits.mips) for b in unmerged) == events.n_hits
    np.testing.assert_allclose(torch.cat([b.x for b in unmerged]).numpy()[:, 0], x, rtol=1e-5, atol=1e-6)
    esum = torch.cat([b.esum for b in batches]).numpy()
    np.testing.assert_allclose(esum, weighted_sum(events) / 1e3, rtol=1e-6)
    np.testing.assert_allclose(torch.cat([b.target for b in batches]).numpy(), events.incident_energy / 1e3, rtol=1e-7)


def test_shuffling_is_seeded_complete_and_same_from_a_file(events, tmp_path):
    feats = np.arange(len(events), dtype=np.float32)[:, None] * np.ones((1, 2), np.float32)
    select = np.arange(len(events)) % 4 != 0
    kwargs = {"batch_size": 10, "features": feats, "select": select, "shuffle": True, "seed": 3,
              "shuffle_buffer": 30, "chunk_events": 25}
    ds = ShowerBatches(events, **kwargs)

    def order(dataset, epoch):
        dataset.set_epoch(epoch)
        batches = list(dataset)
        for b in batches:  # features and targets travel with their events
            np.testing.assert_array_equal(b.features[:, 0].numpy(), b.index)
            np.testing.assert_allclose(b.target.numpy(), events.incident_energy[b.index] / 1e3, rtol=1e-6)
        assert all(len(b) == 10 for b in batches[:-1])
        return np.concatenate([b.index for b in batches])

    first = order(ds, 0)
    assert sorted(first) == list(np.flatnonzero(select)) and not np.array_equal(first, np.sort(first))
    assert np.array_equal(order(ds, 0), first) and not np.array_equal(order(ds, 1), first)
    path = write_showers(events, tmp_path / "toy.h5")
    from_file = ShowerBatches(path, **kwargs)
    assert np.array_equal(order(from_file, 0), first)
    from_file.set_epoch(0)
    ds.set_epoch(0)
    assert all(torch.equal(a.x, b.x) for a, b in zip(ds, from_file, strict=True))


def test_a_file_is_read_once_when_its_converted_events_fit_the_cache(events, tmp_path):
    kwargs = {"batch_size": 16, "pool": (2, 3, 4), "shuffle": True, "seed": 5, "chunk_events": 30}
    kept = ShowerBatches(write_showers(events, tmp_path / "kept.h5"), **kwargs)
    first = list(kept)
    (tmp_path / "kept.h5").unlink()  # the next passes come from memory
    kept.set_epoch(0)
    assert all(torch.equal(a.x, b.x) for a, b in zip(first, kept, strict=True))
    kept.set_epoch(1)
    assert sorted(np.concatenate([b.index for b in kept])) == list(range(len(events)))
    tiny = ShowerBatches(write_showers(events, tmp_path / "tiny.h5"), **kwargs, cache_gib=1e-6)  # 1 kB: too small
    assert len(list(tiny)) == len(first)
    (tmp_path / "tiny.h5").unlink()
    with pytest.raises(CalolabError, match="tiny.h5"):
        list(tiny)


def test_batches_carry_their_hits_for_hit_classes(events, tmp_path):
    """The hits of a batch rebuild its pooled grid, with their neighbourhoods; in memory and from a file alike."""
    kwargs = {"batch_size": 16, "pool": (2, 3, 4), "shuffle": True, "seed": 2, "shuffle_buffer": 40,
              "chunk_events": 30, "hit_inputs": True}
    ds = ShowerBatches(events, **kwargs)
    inputs = hit_inputs(events)
    first = list(ds)
    for batch in first:
        rebuilt = torch.zeros(batch.x.numel()).index_add_(0, batch.hits.voxel, batch.hits.mips)
        assert torch.allclose(rebuilt, batch.x.reshape(-1), rtol=1e-6)
        sub = events[batch.index]
        expected = np.concatenate([inputs[events.offsets[i]:events.offsets[i + 1]] for i in batch.index])
        np.testing.assert_array_equal(batch.hits.inputs.numpy(), expected)
        assert len(batch.hits.mips) == sub.n_hits
    assert all(torch.equal(a.hits.inputs, b.hits.inputs) for a, b in zip(first, ds, strict=True))  # kept, same
    from_file = ShowerBatches(write_showers(events, tmp_path / "toy.h5"), **kwargs)
    assert all(torch.equal(a.hits.voxel, b.hits.voxel) and torch.equal(a.hits.inputs, b.hits.inputs)
               for a, b in zip(first, from_file, strict=True))


def test_hit_inputs_follow_the_hits_in_any_order(events):
    sub = events[:5]
    order = np.concatenate([sub.offsets[i] + np.random.default_rng(i).permutation(np.diff(sub.offsets)[i])
                            for i in range(len(sub))])
    shuffled = Showers(sub.detector, sub.offsets, sub.cell[order], sub.energy[order], particle=sub.particle,
                       incident_energy=sub.incident_energy)
    np.testing.assert_array_equal(hit_inputs(shuffled), hit_inputs(sub)[order])


# ------------------------------------------------------------------ losses
def test_huber_mfse_matches_a_hand_computation():
    loss = BinnedHuberMFSE(torch.tensor([0.0, 10.0, 100.0]), percentile=0.68, momentum=0.1)
    t = torch.tensor([4.0, 4.0, 4.0, 4.0, 4.0, 50.0, 50.0])
    err = torch.tensor([0.0, 1.0, -2.0, 3.0, -10.0, 5.0, 1.0])
    # bin 0: squared errors 0, 1, 4, 9, 100: the (1 + round(0.68 * 4)) = 4th smallest, T = 9, d = 3
    # bin 1: 25, 1: the (1 + round(0.68)) = 2nd smallest, T = 25: nothing above it
    hand = (0 + 1 + 4 + 9 + (9 + 2 * 3 * (10 - 3))) / 4 + (25 + 1) / 50
    assert float(loss(t + err, t)) == pytest.approx(hand / 7, rel=1e-6)
    assert loss.thresholds.tolist() == [9.0, 25.0]
    # second batch: bin 0 only, squared errors 0, 0, 16 -> T_batch = 0 (the 1 + round(1.36) = 2nd smallest),
    # T = 0.9 * 9 + 0.1 * 0 = 8.1
    t2, err2 = torch.full((3,), 4.0), torch.tensor([0.0, 0.0, 4.0])
    d = 8.1**0.5
    assert float(loss(t2 + err2, t2)) == pytest.approx((8.1 + 2 * d * (4 - d)) / 4 / 3, rel=1e-6)
    assert loss.thresholds.tolist() == pytest.approx([8.1, 25.0])
    # evaluation: thresholds frozen; outside the edges: plain fractional squared error
    loss.eval()
    t3, err3 = torch.tensor([4.0, 200.0]), torch.tensor([10.0, 10.0])
    assert float(loss(t3 + err3, t3)) == pytest.approx(((8.1 + 2 * d * (10 - d)) / 4 + 100 / 200) / 2, rel=1e-6)
    assert loss.thresholds.tolist() == pytest.approx([8.1, 25.0])
    # the gradient of a Huberised term is linear: d/dy = 2 d / t
    y = (t3 + err3).clone().requires_grad_(True)
    loss(y, t3).backward()
    assert y.grad.tolist() == pytest.approx([2 * d / 4 / 2, 2 * 10 / 200 / 2], rel=1e-6)
    p, q = torch.tensor([12.0, 90.0]), torch.tensor([10.0, 100.0])
    assert float(mse(p, q)) == pytest.approx(52.0) and float(mfse(p, q)) == pytest.approx(0.7)
    with pytest.raises(CalolabError, match="unknown loss"):
        make_loss("mae")


# ------------------------------------------------------------------ model
def test_model_overfits_a_tiny_dataset(detector):
    showers = toy_showers(detector, 64, seed=5)
    torch.manual_seed(0)
    model = EnergyCNN(RegressorConfig(pool=(1, 1, 1), channels=(8, 16), hidden=(32,)))
    (batch,) = list(ShowerBatches(showers, batch_size=64, pool=(1, 1, 1)))
    model.fit_scaling(batch.esum.double().numpy(), batch.target.double().numpy())
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        optimiser.zero_grad()
        loss = mse(model(batch.x, batch.esum), batch.target)
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    assert losses[0] > 20  # the calibrated sum alone: the response varies by 40% with depth
    assert min(losses[-10:]) < losses[0] / 10


def isolated_or_clustered(det: Detector, n: int, seed: int) -> Showers:
    """100 MIPs per event, a share p in isolated cells and the rest in a 3x3 cluster; E_true = (1 + p) E_sum."""
    rng = np.random.default_rng(seed)
    share = rng.uniform(0.0, 0.8, n)
    dense = np.zeros((n, *det.shape), np.float32)
    dense[:, 3, 3:6, 3:6] = (100.0 * (1 - share) / 9)[:, None, None]
    for layer, x, y in ((0, 0, 0), (0, 7, 8), (6, 0, 8), (6, 7, 0)):  # far from each other and from the cluster
        dense[:, layer, x, y] = 100.0 * share / 4
    dense *= det.mip_mpv[None, :, None, None].astype(np.float32)
    energy = weighted_sum(Showers.from_dense(det, dense, particle=211, incident_energy=np.ones(n))) * (1 + share)
    return Showers.from_dense(det, dense, particle=211, incident_energy=energy)


def test_learned_hit_classes_see_what_pooling_hides(detector):
    """Pooled into one voxel, isolated and clustered energy look alike; the hit classes tell them apart."""
    train_set, test_set = isolated_or_clustered(detector, 64, 1), isolated_or_clustered(detector, 64, 2)
    pool = detector.shape  # the whole event in one voxel
    errors = {}
    for classes in (0, 2):
        torch.manual_seed(0)
        model = EnergyCNN(RegressorConfig(pool=pool, channels=(4,), hidden=(16,), hit_classes=classes))
        (batch,) = list(ShowerBatches(train_set, batch_size=64, pool=pool, hit_inputs=classes > 0))
        model.fit_scaling(batch.esum.double().numpy(), batch.target.double().numpy())
        optimiser = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(300):
            optimiser.zero_grad()
            mfse(model(batch.x, batch.esum, hits=batch.hits), batch.target).backward()
            optimiser.step()
        (test,) = list(ShowerBatches(test_set, batch_size=64, pool=pool, hit_inputs=classes > 0))
        with torch.inference_mode():
            errors[classes] = float(torch.std(model(test.x, test.esum, hits=test.hits) / test.target - 1))
    assert errors[0] > 0.12  # the spread of (1 + p) / <1 + p>: the sum alone cannot know p
    assert errors[2] < 0.03
    with pytest.raises(CalolabError, match="hit classes"):
        model(test.x, test.esum)


def test_hit_class_channels_are_halved_sums(events):
    """At every block's resolution the class channels are the sums of the input grid's, as halving gives."""
    from calolab.ml.model import halve

    torch.manual_seed(0)
    model = EnergyCNN(RegressorConfig(pool=(1, 1, 1), channels=(4, 4, 4), hit_classes=3, transform="linear"))
    (batch,) = list(ShowerBatches(events[:20], batch_size=20, pool=(1, 1, 1), hit_inputs=True))
    energy = model.class_energy(batch.hits)
    cell = batch.hits.occupied % batch.x[0, 0].numel()
    nx, ny = batch.x.shape[3:]
    voxel = (batch.hits.occupied // batch.x[0, 0].numel(), cell // (nx * ny), cell // ny % nx, cell % ny)
    first = model.first_input(batch.x, energy, batch.hits.occupied)
    assert torch.equal(first[:, :1], batch.x)  # linear transform, scale 1
    dense = first[:, 1:]
    assert torch.allclose(dense.sum(dim=(2, 3, 4)), torch.zeros(20, 3).index_add(0, voxel[0], energy), rtol=1e-5)
    like = batch.x
    for level in range(1, 4):
        like, dense = halve(like, divisor=1), halve(dense, divisor=1)
        assert torch.allclose(model.class_grid(energy, voxel, level, like), dense, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ training
def _state(path):
    return torch.load(path, weights_only=True)


def test_resume_after_a_kill_ends_with_the_same_weights(events, tmp_path):
    config = TrainConfig(**FAST, loss="huber", seed=7)
    rng_before = torch.get_rng_state()
    straight = train(events, tmp_path / "straight", RegressorConfig(**SMALL, dropout=0.2), config)
    assert torch.equal(torch.get_rng_state(), rng_before)  # the caller's generator is left alone
    assert len(straight.history) == 3

    def kill(record):
        if record["epoch"] == 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(events, tmp_path / "resumed", RegressorConfig(**SMALL, dropout=0.2), config, callback=kill)
    assert json.loads(_state(tmp_path / "resumed" / "checkpoint.pt")["state"])["epoch"] == 1  # one epoch done
    resumed = train(events, tmp_path / "resumed", RegressorConfig(**SMALL, dropout=0.2), config)
    a, b = _state(tmp_path / "straight" / "checkpoint.pt"), _state(tmp_path / "resumed" / "checkpoint.pt")
    for key in ("model", "loss"):
        assert a[key].keys() == b[key].keys()
        assert all(torch.equal(a[key][k], b[key][k]) for k in a[key])
    for sa, sb in zip(a["optimiser"]["state"].values(), b["optimiser"]["state"].values(), strict=True):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert b["loss"]["thresholds"].min() > 0  # the Huber thresholds were restored, not reset
    for ra, rb in zip(straight.history, resumed.history, strict=True):
        assert {k: v for k, v in ra.items() if "time" not in k and "per_s" not in k} == \
               {k: v for k, v in rb.items() if "time" not in k and "per_s" not in k}
    best_a, best_b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(best_a[k], best_b[k]) for k in best_a)
    assert (tmp_path / "resumed" / "config.yaml").is_file() and (tmp_path / "resumed" / "metrics.json").is_file()
    assert "command" in json.loads((tmp_path / "resumed" / "provenance.json").read_text())
    # a finished run is not trained again
    again = train(events, tmp_path / "resumed", RegressorConfig(**SMALL, dropout=0.2), config)
    assert again.history == resumed.history


def mirrored(showers: Showers, axis: str) -> Showers:
    """The same events reflected in ``axis``: cell index i -> n - 1 - i along it, entry and direction negated."""
    _, nx, ny = showers.detector.shape
    layer, ix, iy = np.unravel_index(showers.cell.astype(np.int64), showers.detector.shape)
    if axis == "y":
        iy = ny - 1 - iy
    else:
        ix = nx - 1 - ix
    entry, direction = showers.entry.copy(), showers.direction.copy()
    k = 1 if axis == "y" else 0
    entry[:, k] *= -1
    direction[:, k] *= -1
    return Showers(showers.detector, showers.offsets, (layer * nx + ix) * ny + iy, showers.energy, showers.particle,
                   showers.incident_energy, entry, direction)


@pytest.mark.parametrize("axis, n_odd", [("y", 2), ("x", 3)])
def test_mirroring_a_batch_equals_the_batch_of_the_mirrored_muons(axis, n_odd):
    """Grid and features of the mirrored muons (in a 2 T field along y) are those of the mirrored batch, so
    MIRROR_ODD lists every feature that changes sign and mirroring shows the CNN real events only (in x, of
    the opposite charge: the batch is mirrored as geometry here, whatever the field)."""
    from calolab.geometry import load_detector
    from calolab.ml.fit import transform_features
    from calolab.simulation import Beam, simulate
    from calolab.studies.muons import muon_inputs

    beam = Beam("mu-", energy_min=500e3, energy_max=8e6, spectrum="uniform", position=(3.0, 7.0), spot_sigma=5.0)
    muons = simulate(load_detector("pbwo4"), beam, 12, seed=5)
    mirrored_muons = mirrored(muons, axis)
    (x, names), (x_m, _) = (muon_inputs(s) for s in (muons, mirrored_muons))
    odd = np.isin(names, list(MIRROR_ODD[axis]))
    assert odd.sum() == n_odd and np.all(x[:, odd] != 0)  # the beam is off the axis: the odd features are not 0
    signs = torch.tensor(np.where(odd, -1.0, 1.0))

    def batch(showers, values):
        return next(iter(ShowerBatches(showers, 12, (2, 4, 4), transform_features(values, "signed-log"),
                                       hit_inputs=True)))

    def hits_on_grid(b):  # each voxel's hit energies and inputs, summed: independent of the hits' order
        h = b.hits
        values = torch.cat([h.mips[:, None], h.inputs], dim=1).double()
        return torch.zeros(b.x.numel(), values.shape[1], dtype=torch.float64).index_add(0, h.voxel, values)

    b, b_m = batch(muons, x), batch(mirrored_muons, x_m)
    flip = np.arange(12) % 2 == 0
    m = mirror_batch(b, signs, flip, axis)
    torch.testing.assert_close(m.x[flip], b_m.x[flip], rtol=1e-6, atol=0)
    torch.testing.assert_close(m.features[flip], b_m.features[flip], rtol=1e-5, atol=1e-6)
    assert torch.equal(m.x[~flip], b.x[~flip]) and torch.equal(m.features[~flip], b.features[~flip])
    per_event = b.x[0].numel()
    grid, grid_m, grid_b = (hits_on_grid(v).view(12, per_event, -1) for v in (m, b_m, b))
    torch.testing.assert_close(grid[flip], grid_m[flip], rtol=1e-5, atol=1e-4)
    assert torch.equal(grid[~flip], grid_b[~flip])
    assert not torch.equal(b.x[flip], b_m.x[flip])  # the showers are not symmetric themselves


def assert_resumes_bit_for_bit(straight, events, run_dir, model, config):
    """A run of ``config`` killed after its first epoch and started again ends with the weights of ``straight``."""
    def kill(record):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(events, run_dir, model, config, callback=kill)
    a, b = straight.model.state_dict(), train(events, run_dir, model, config).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_training_with_mirror_y_resumes_bit_for_bit_and_checks_its_grid(events, detector, tmp_path):
    model = RegressorConfig(**SMALL, pool=(3, 4, 3))  # 9 cells in y: 3 whole pooled cells
    config = TrainConfig(**{**FAST, "epochs": 2}, seed=7, mirror_y=True)
    straight = train(events, tmp_path / "straight", model, config)
    plain = train(events, tmp_path / "plain", model, TrainConfig(**{**FAST, "epochs": 2}, seed=7))
    assert straight.history[0]["train_loss"] != plain.history[0]["train_loss"]  # half the events were mirrored
    assert_resumes_bit_for_bit(straight, events, tmp_path / "resumed", model, config)
    # such a model predicts the mean of each event and its mirror image
    ensemble = CNNEnsemble.load(tmp_path / "straight")
    assert ensemble.mirror_y and not CNNEnsemble.load(tmp_path / "plain").mirror_y
    mirrored_events = mirrored(events, "y")
    np.testing.assert_allclose(ensemble.predict(mirrored_events), ensemble.predict(events), rtol=1e-5)
    one_way = CNNEnsemble(ensemble.models, ensemble.weights, ensemble.info, mirror_y=False)
    both_images = 0.5 * (one_way.predict(events) + one_way.predict(mirrored_events))
    np.testing.assert_allclose(ensemble.predict(events), both_images, rtol=1e-5)
    assert not np.allclose(one_way.predict(events), one_way.predict(mirrored_events), rtol=1e-3)
    plain = CNNEnsemble.load(tmp_path / "plain")
    forced = CNNEnsemble([train(events, tmp_path / "pool2", RegressorConfig(**SMALL, pool=(3, 2, 2)),
                                TrainConfig(**{**FAST, "epochs": 1})).model], [1.0], plain.info, mirror_y=True)
    with pytest.raises(CalolabError, match="9 cells, pooled by 2"):
        forced.predict(events)
    with pytest.raises(CalolabError, match="9 cells, pooled by 2"):
        train(events, tmp_path / "odd", RegressorConfig(**SMALL, pool=(3, 2, 2)), config)
    classes = train(events, tmp_path / "classes", RegressorConfig(**SMALL, pool=(3, 4, 3), hit_classes=2), config)
    ensemble = CNNEnsemble.load(tmp_path / "classes")
    np.testing.assert_allclose(ensemble.predict(mirrored_events), ensemble.predict(events), rtol=1e-5)
    assert len(classes.history) == 2


def test_training_with_mirror_x_averages_four_images_resumes_and_needs_a_detector_without_field(detector, tmp_path):
    events = toy_showers(detector, 96, seed=1, centre=(2.0, 3.0))  # off the axis: its mirror images differ
    model = RegressorConfig(**SMALL, pool=(3, 4, 3), hit_classes=2)  # 8 cells in x: 2 whole pooled cells
    config = TrainConfig(**{**FAST, "epochs": 2}, seed=7, mirror_y=True, mirror_x=True)
    both = train(events, tmp_path / "both", model, config)
    y_only = train(events, tmp_path / "y", model, replace(config, mirror_x=False))
    assert both.history[0]["train_loss"] != y_only.history[0]["train_loss"]  # a quarter of the events in each image
    assert_resumes_bit_for_bit(both, events, tmp_path / "resumed", model, config)
    ensemble = CNNEnsemble.load(tmp_path / "both")
    assert ensemble.mirror_x and ensemble.mirror_y and not CNNEnsemble.load(tmp_path / "y").mirror_x
    images = [events, mirrored(events, "x"), mirrored(events, "y"), mirrored(mirrored(events, "x"), "y")]
    for image in images[1:]:  # hits of the learned classes follow their cells too
        np.testing.assert_allclose(ensemble.predict(image), ensemble.predict(events), rtol=1e-5)
    one_way = CNNEnsemble(ensemble.models, ensemble.weights, ensemble.info, mirror_y=False, mirror_x=False)
    np.testing.assert_allclose(ensemble.predict(events), np.mean([one_way.predict(i) for i in images], axis=0),
                               rtol=1e-5)
    differ = [np.abs(one_way.predict(i) / one_way.predict(events) - 1).max() for i in images[1:]]
    assert min(differ) > 1e-5, differ  # the models are not symmetric themselves (float32 noise is about 1e-7)
    field = Detector.from_dict({**events.detector.to_dict(), "name": "toy-field", "field_tesla": 2.0})
    with pytest.raises(CalolabError, match="mirror_x needs a detector without a field: toy-field has 2 T"):
        train(toy_showers(field, 40, seed=2), tmp_path / "field", model, config)
    with pytest.raises(CalolabError, match="mirror_x needs whole pooled cells in x: toy has 8 cells, pooled by 3"):
        train(events, tmp_path / "odd", RegressorConfig(**SMALL, pool=(3, 3, 3)), config)


def test_early_stopping_waits_for_the_learning_rate_to_peak(events, tmp_path):
    """A model that cannot learn (lr 1e-12) stops after the warm-up (3 of 6 epochs) and `patience` more, no sooner."""
    config = TrainConfig(epochs=6, batch_size=16, lr_max=1e-12, pct_start=0.5, patience=1, seed=2)
    result = train(events, tmp_path / "run", RegressorConfig(**SMALL), config)
    assert len(result.history) == 4 and result.best_epoch == 0
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["stopped_early"]


def test_corrupt_or_mismatched_checkpoints_raise_a_calolab_error(events, tmp_path):
    config = TrainConfig(**{**FAST, "epochs": 1})
    train(events, tmp_path / "run", RegressorConfig(**SMALL), config)
    with pytest.raises(CalolabError, match=r"checkpoint\.pt: checkpoint of a different run \(train_config differ"):
        train(events, tmp_path / "run", RegressorConfig(**SMALL), TrainConfig(**{**FAST, "epochs": 2}))
    with pytest.raises(CalolabError, match=r"checkpoint\.pt: checkpoint of a different run \(data, model_config"):
        train(events[:90], tmp_path / "run", RegressorConfig(channels=(4, 4)), config)
    ckpt = tmp_path / "run" / "checkpoint.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:1000])  # truncated, as by a full disk
    with pytest.raises(CalolabError, match=rf"{ckpt}: not a readable checkpoint"):
        train(events, tmp_path / "run", RegressorConfig(**SMALL), config)
    ckpt.write_text("not a checkpoint")
    with pytest.raises(CalolabError, match=rf"{ckpt}: not a readable checkpoint"):
        train(events, tmp_path / "run", RegressorConfig(**SMALL), config)
    torch.save({"format": "something else"}, ckpt)
    with pytest.raises(CalolabError, match="not a calolab energy-CNN file"):
        train(events, tmp_path / "run", RegressorConfig(**SMALL), config)
    best = tmp_path / "run" / "best.pt"
    data = _state(best)
    data["model_config"]["channels"] = [4, 4]
    torch.save(data, best)
    with pytest.raises(CalolabError, match=rf"{best}: not a matching calolab energy-CNN model"):
        load_model(best)


# ------------------------------------------------------------------ ensembles and the CLI
def test_ensemble_members_trained_in_parallel_processes_equal_those_trained_one_by_one(events, tmp_path):
    """workers=2 trains two members at once, each in a spawned process with one torch thread: the same
    weights, ensemble.yaml and predictions as one after the other with one thread."""
    torch.set_num_threads(1)
    config = TrainConfig(**{**FAST, "epochs": 2})
    one_by_one = train_ensemble(events, tmp_path / "seq", 3, RegressorConfig(**SMALL), config)
    torch.set_num_threads(2)
    parallel = train_ensemble(events, tmp_path / "par", 3, RegressorConfig(**SMALL), config, workers=2)
    for a, b in zip(one_by_one.models, parallel.models, strict=True):
        for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
            assert torch.equal(x, y), name
    assert (tmp_path / "seq" / "ensemble.yaml").read_text() == (tmp_path / "par" / "ensemble.yaml").read_text()
    np.testing.assert_array_equal(one_by_one.predict(events), parallel.predict(events))
    with pytest.raises(CalolabError, match="workers >= 1"):
        train_ensemble(events, tmp_path / "none", 2, RegressorConfig(**SMALL), config, workers=0)


def test_ensemble_with_features_weights_members_by_inverse_validation_loss(events, detector, tmp_path):
    depth = (events.layer_sums() * np.arange(7)).sum(1) / events.layer_sums().sum(1)  # a hand-made feature
    features = np.stack([depth, np.log(events.energy_sum())], axis=1).astype(np.float32)
    ensemble = train_ensemble(events, tmp_path / "ens", 2, RegressorConfig(**SMALL), TrainConfig(**FAST),
                              features, ["depth", "log_sum"])
    assert isinstance(ensemble, Regressor) and ensemble.n_features == 2
    members = [load_model(tmp_path / "ens" / f"member-{i}" / "best.pt")[1]["val_loss"] for i in range(2)]
    expected = (1 / np.array(members)) / (1 / np.array(members)).sum()
    np.testing.assert_allclose(ensemble.weights, expected, rtol=1e-12)
    test = toy_showers(detector, 20, seed=9)
    test_features = np.stack([(test.layer_sums() * np.arange(7)).sum(1) / test.layer_sums().sum(1),
                              np.log(test.energy_sum())], axis=1)
    pred = ensemble.predict(test, test_features)
    np.testing.assert_allclose(pred, 1e3 * expected @ ensemble.predict_members(test, test_features), rtol=1e-12)
    assert pred.shape == (20,) and np.all(pred > 0)
    with pytest.raises(CalolabError, match=r"features must have shape \(20, 2\)"):
        ensemble.predict(test, test_features[:, :1])
    wrong = Showers.from_dense(Detector.from_dict({**detector.to_dict(), "name": "other",
                                                   "cells": {"nx": 8, "ny": 8, "pitch": 20.0}}),
                               np.ones((1, 7, 8, 8), np.float32), particle=211, incident_energy=[1e4])
    with pytest.raises(CalolabError, match=r"trained on a \(7, 8, 9\) grid"):
        ensemble.predict(wrong, np.zeros((1, 2)))
    sensor = detector.layers[0].active_slab
    thicker = dataclasses.replace(detector, layers=tuple(
        dataclasses.replace(la, slabs=(*la.passive, dataclasses.replace(sensor, thickness=2 * sensor.thickness)))
        for la in detector.layers))
    same_grid = Showers.from_dense(thicker, np.ones((1, 7, 8, 9), np.float32), particle=211, incident_energy=[1e4])
    with pytest.raises(CalolabError, match="other layers"):
        ensemble.predict(same_grid, np.zeros((1, 2)))


def test_cli_train_then_predict_round_trip(events, tmp_path):
    from click.testing import CliRunner

    data = write_showers(events, tmp_path / "pions.h5")
    runner = CliRunner()
    result = runner.invoke(train_command, [str(data), "--out", str(tmp_path / "run"), "--pool", "1,2,2",
                                           "--channels", "4,8", "--epochs", "2", "--ensemble", "2", "--loss", "mfse",
                                           "--batch-size", "16", "--seed", "3", "--features", "--hit-classes", "2",
                                           "--weight-decay", "0.003", "--workers", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "2 model(s) trained on 77 events (19 for validation)" in result.output
    configs = sorted((tmp_path / "run").glob("*/config.yaml"))
    assert len(configs) == 2 and all("weight_decay: 0.003" in c.read_text() for c in configs)
    out = tmp_path / "pred.h5"
    result = runner.invoke(predict_command, [str(tmp_path / "run"), str(data), "-o", str(out)])
    assert result.exit_code == 0, result.output
    with h5py.File(out) as f:
        assert f.attrs["format"] == "calolab-predictions" and f.attrs["members"] == 2
        np.testing.assert_array_equal(f["event"][:], np.arange(len(events)))
        np.testing.assert_array_equal(f["true_energy"][:], events.incident_energy)
        pred = f["predicted_energy"][:]
    ensemble = CNNEnsemble.load(tmp_path / "run")  # with --features: predict computes them from the showers
    assert ensemble.n_features == len(ensemble.info["feature_names"]) > 0
    assert ensemble.models[0].config.hit_classes == 2  # the hits were read from the file at the native cell size
    np.testing.assert_allclose(pred, ensemble.predict(read_showers(data)), rtol=1e-12)
    assert np.all(np.isfinite(pred)) and 0.5 < np.median(pred / events.incident_energy) < 1.5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pions.h5", "pred.h5", "run"]  # no temporary files left
    bad = runner.invoke(train_command, [str(data), "--out", str(tmp_path / "x"), "--pool", "1,2"])
    assert isinstance(bad.exception, CalolabError) and "--pool must be three positive integers" in str(bad.exception)
    missing = runner.invoke(predict_command, [str(tmp_path / "nothing"), str(data), "-o", str(out)])
    assert isinstance(missing.exception, CalolabError) and "not a trained energy-CNN run folder" in str(
        missing.exception)


def test_cli_features_of_muon_files_include_the_muon_features(tmp_path):
    """calolab train --features on a muon file adds paper 003's muon features, as the muon study does;
    calolab predict computes the same set from the showers."""
    from click.testing import CliRunner

    from calolab.geometry import load_detector
    from calolab.ml.ensemble import event_features, source_features
    from calolab.reconstruction.features import feature_names
    from calolab.reconstruction.muon_features import muon_feature_names
    from calolab.simulation import Beam, simulate
    from calolab.studies.muons import muon_inputs

    muons = simulate(load_detector("pbwo4"), Beam("mu-", energy_min=1e6, energy_max=4e6, spectrum="uniform"), 48,
                     seed=4)
    data = write_showers(muons, tmp_path / "muons.h5")
    values, names = source_features(data, chunk_events=20)  # chunks of a muon file: all muons, muon features
    expected, expected_names = muon_inputs(muons)
    assert names == expected_names and "bend_x_mm" in names
    np.testing.assert_allclose(values, expected, rtol=1e-6)
    mixed = Showers.concatenate([muons[:30], simulate(muons.detector, Beam("pi+", energy=5e4), 10, seed=1)])
    values, names = source_features(mixed, chunk_events=20)  # a pion in the last chunk: high-level only
    assert values.shape == (40, len(names)) and "bend_x_mm" not in names
    assert event_features(muons[:5], muon=False)[1] == names
    runner = CliRunner()
    result = runner.invoke(train_command, [str(data), "--out", str(tmp_path / "run"), "--pool", "5,8,8",
                                           "--channels", "4", "--epochs", "1", "--batch-size", "16", "--features",
                                           "--no-progress"])
    assert result.exit_code == 0, result.output
    ensemble = CNNEnsemble.load(tmp_path / "run")
    hl = feature_names(10)
    assert ensemble.info["feature_names"][len(ensemble.info["feature_names"]) - len(muon_feature_names()):] == \
        muon_feature_names() and ensemble.n_features == len(expected_names) > len(hl)
    out = tmp_path / "pred.h5"
    result = runner.invoke(predict_command, [str(tmp_path / "run"), str(data), "-o", str(out)])
    assert result.exit_code == 0, result.output
    with h5py.File(out) as f:
        np.testing.assert_allclose(f["predicted_energy"][:], ensemble.predict(muons, expected), rtol=1e-6)


def test_cli_trains_mirrored_and_says_so_in_the_predictions(events, tmp_path):
    from click.testing import CliRunner

    data = write_showers(events, tmp_path / "pions.h5")
    runner = CliRunner()
    args = [str(data), "--out", str(tmp_path / "run"), "--channels", "4,8", "--epochs", "1", "--batch-size", "16",
            "--mirror-y", "--no-progress"]
    bad = runner.invoke(train_command, [*args, "--pool", "1,2,2"])
    assert isinstance(bad.exception, CalolabError) and "toy has 9 cells, pooled by 2" in str(bad.exception)
    bad = runner.invoke(train_command, [*args, "--pool", "1,2,2", "--ensemble", "2", "--workers", "2"])
    assert isinstance(bad.exception, CalolabError) and "toy has 9 cells, pooled by 2" in str(bad.exception)
    result = runner.invoke(train_command, [*args, "--pool", "3,4,3"])
    assert result.exit_code == 0, result.output
    assert "mirror_y: true" in (tmp_path / "run" / "member-0" / "config.yaml").read_text()
    out = tmp_path / "pred.h5"
    assert runner.invoke(predict_command, [str(tmp_path / "run"), str(data), "-o", str(out)]).exit_code == 0
    with h5py.File(out) as f:
        assert bool(f.attrs["mirror_y"]) and not bool(f.attrs["mirror_x"])
    both = runner.invoke(train_command, [*args, "--pool", "3,4,3", "--mirror-x", "--out", str(tmp_path / "both")])
    assert both.exit_code == 0, both.output
    assert "mirror_x: true" in (tmp_path / "both" / "member-0" / "config.yaml").read_text()
    assert runner.invoke(predict_command, [str(tmp_path / "both"), str(data), "-o", str(out)]).exit_code == 0
    with h5py.File(out) as f:
        assert bool(f.attrs["mirror_y"]) and bool(f.attrs["mirror_x"])


def test_progress_lines_of_a_run_and_of_ensemble_members(events, tmp_path, capsys):
    """One line per epoch, the same fields for a single run and for each member of an ensemble."""
    config = TrainConfig(**{**FAST, "epochs": 1})
    train(events, tmp_path / "one", RegressorConfig(**SMALL), config, progress=True)
    single = capsys.readouterr().out.splitlines()
    assert len(single) == 1 and re.fullmatch(r"epoch 0: train \S+ val \S+ \(\d+ events/s\)", single[0])
    train_ensemble(events, tmp_path / "ens", 2, RegressorConfig(**SMALL), config, progress=True)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" epoch")[0] for line in lines if " epoch " in line] == ["member 1/2", "member 2/2"]
    assert all(re.fullmatch(r"member \d/2 epoch 0: train \S+ val \S+ \(\d+ events/s\)", line)
               for line in lines if " epoch " in line)
