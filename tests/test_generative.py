"""Generative shower models (paper 004): data, training with resume, sampling, CLI."""

import json

import numpy as np
import pytest
import yaml

from calolab import CalolabError, load_detector
from calolab.generative.data import (
    DatasetConfig,
    absorber_mm,
    absorber_x0,
    build_dataset,
    draw_layouts,
    load_dataset,
    save_dataset,
    with_absorbers,
)
from calolab.io import read_showers, write_showers

torch = pytest.importorskip("torch")

from calolab.generative.sample import generate, load_model  # noqa: E402
from calolab.generative.train import TrainConfig, load_checkpoint, train  # noqa: E402

TINY_DATA = DatasetConfig(n_layouts=2, events_per_layout=24, energy_min_gev=5, energy_max_gev=20, seed=3)
TINY = {"layerwise": {"hidden": 16, "head_hidden": 16, "components": 2, "hit_components": 2, "batch_size": 16},
        "wgan": {"latent": 8, "filters": 4, "batch_size": 16, "n_critic": 2}}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: on a shared two-core machine more threads mostly wait for each other."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def runs(one_thread, tmp_path_factory):
    """A two-epoch run of each model on 48 events of two layouts."""
    out = {}
    for name in TINY:
        run_dir = tmp_path_factory.mktemp(name)
        train(run_dir, TrainConfig(model=name, epochs=2, seed=5), TINY_DATA, TINY[name])
        out[name] = run_dir
    return out


def test_dataset_is_reproducible_and_round_trips(tmp_path):
    config = DatasetConfig(n_layouts=3, events_per_layout=10, seed=4)
    data, again = build_dataset(config), build_dataset(config)
    assert np.array_equal(data.showers.energy, again.showers.energy) and np.array_equal(data.conditions(),
                                                                                       again.conditions())
    base = absorber_mm(load_detector("siw-ecal"))
    assert np.allclose(data.absorber_mm[0], base)
    ratio = data.absorber_mm / base
    assert np.all((ratio >= 0.5) & (ratio <= 1.5)) and not np.allclose(ratio[1:], 1.0)
    cond = data.conditions()
    assert cond.shape == (30, 16)
    assert np.allclose(cond[:, 0], np.log(data.showers.incident_energy / 1e3))
    assert np.allclose(cond[:, 1:], data.absorber_x0[data.layout])
    # the simulated detector of a layout has those thicknesses
    det = with_absorbers(load_detector("siw-ecal"), data.absorber_mm[2])
    assert np.allclose(absorber_x0(det), data.absorber_x0[2])
    back = load_dataset(save_dataset(data, tmp_path / "data.h5"))
    assert back.config == config and np.array_equal(back.conditions(), cond)
    assert np.array_equal(back.showers.cell, data.showers.cell)
    assert "absorber_x0_14" in read_showers(tmp_path / "data.h5").extras  # conditions readable by anyone
    fixed = draw_layouts(DatasetConfig(n_layouts=5, keep_total_x0=True))
    assert np.allclose(fixed.sum(1), base.sum())  # all absorbers are W: equal mm means equal X0
    with pytest.raises(CalolabError, match="not a generative training set"):
        load_dataset(write_showers(data.showers[:2].__class__(data.showers.detector, np.zeros(2, int), [], [], 11,
                                                              [1e3]), tmp_path / "plain.h5"))


def test_layerwise_overfits_one_energy_point(tmp_path):
    """10 GeV electrons in the prototype: the generated mean energy sum and hits are within 3% of the
    training sample's (hits within 5%), its energy resolution within 15%, the layer energies of layers 1-10 (95% of
    the energy) within 8%."""
    config = DatasetConfig(n_layouts=1, events_per_layout=800, energy_min_gev=10, energy_max_gev=10, seed=2)
    _, history = train(tmp_path, TrainConfig(epochs=60, seed=1), config, {"hidden": 64, "batch_size": 64})
    assert history[-1]["nll"] < history[0]["nll"] - 50
    real = load_dataset(tmp_path / "data.h5").showers
    fake = generate(load_model(tmp_path), None, 10e3, 800, seed=3)
    assert fake.energy_sum().mean() == pytest.approx(real.energy_sum().mean(), rel=0.03)
    # layers without a crossing get one low-energy spot for their local deposits: the flow's hit
    # count is a few per cent off at this size
    assert fake.hits_per_event().mean() == pytest.approx(real.hits_per_event().mean(), rel=0.05)
    assert fake.energy_sum().std() == pytest.approx(real.energy_sum().std(), rel=0.15)
    core = slice(1, 11)
    assert np.allclose(fake.layer_sums().mean(0)[core], real.layer_sums().mean(0)[core], rtol=0.08)


@pytest.mark.parametrize("name", ["layerwise", "wgan"])
def test_resume_after_a_kill_equals_an_uninterrupted_run(runs, tmp_path, name):
    class Killed(Exception):
        pass

    def kill(epoch, losses):
        if epoch == 1:
            raise Killed

    with pytest.raises(Killed):
        train(tmp_path, TrainConfig(model=name, epochs=2, seed=5), TINY_DATA, TINY[name], on_epoch=kill)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 1
    train(tmp_path, TrainConfig(model=name, epochs=2, seed=5), TINY_DATA, TINY[name])
    resumed, straight = load_checkpoint(tmp_path / "checkpoint.pt"), load_checkpoint(runs[name] / "checkpoint.pt")
    assert resumed["epoch"] == straight["epoch"] == 2
    for key, value in straight["model_state"].items():
        assert torch.equal(resumed["model_state"][key], value), key
    assert torch.equal(resumed["rng"], straight["rng"])
    drop = lambda h: [{k: v for k, v in e.items() if k != "seconds"} for e in h]  # noqa: E731
    assert drop(resumed["history"]) == drop(straight["history"])
    assert len(json.loads((tmp_path / "losses.json").read_text())["epochs"]) == 2
    with pytest.raises(CalolabError, match="different model config"):
        train(tmp_path, TrainConfig(model=name, epochs=3, seed=5), TINY_DATA, {**TINY[name], "batch_size": 8})


@pytest.mark.parametrize("name", ["layerwise", "wgan"])
def test_sampling_is_reproducible_and_fits_the_detector(runs, tmp_path, name):
    model = load_model(runs[name])
    first, again = (generate(model, None, (5e3, 20e3), 40, seed=7) for _ in range(2))
    other = generate(model, None, (5e3, 20e3), 40, seed=8)
    assert np.array_equal(first.offsets, again.offsets) and np.array_equal(first.energy, again.energy)
    assert np.array_equal(first.incident_energy, again.incident_energy)
    assert not np.array_equal(first.incident_energy, other.incident_energy)
    assert first.detector.shape == (15, 32, 32) and len(first) == 40
    assert np.all(first.energy >= 0) and np.all(np.isfinite(first.energy))
    assert first.n_hits > 0 or name == "wgan"  # two epochs of a tiny WGAN may leave every cell empty
    assert np.all((first.incident_energy >= 5e3) & (first.incident_energy <= 20e3))
    for i in range(len(first)):  # every cell at most once per event, in increasing order
        cells = first.cell[first.offsets[i]:first.offsets[i + 1]]
        assert np.all(np.diff(cells) > 0)
    back = read_showers(write_showers(first, tmp_path / "cc.h5", format="calochallenge"))
    assert np.allclose(back.dense(), first.dense())
    # another absorber layout of the same grid is a condition; other silicon is refused
    thick = with_absorbers(first.detector, absorber_mm(first.detector) * 1.3)
    assert len(generate(model, thick, 10e3, 5, seed=1)) == 5
    spec = first.detector.to_dict()
    spec["layers"][0]["slabs"][-1]["thickness"] = 0.3  # the silicon
    with pytest.raises(CalolabError, match="varies only the absorber"):
        generate(model, first.detector.from_dict(spec), 10e3, 5)
    with pytest.raises(CalolabError, match="outside the model's training range"):
        generate(model, None, 50e3, 5)


def test_cells_are_a_plackett_luce_draw_without_replacement():
    """Exactly n distinct cells per group; the first cell's ring follows the ring weights."""
    from calolab.generative.placement import Rings, draw_cells

    rings = Rings.of(load_detector("siw-ecal"))
    rng = np.random.default_rng(0)
    theta = torch.tensor(rng.normal(0.0, 3.0, (2000, rings.n_rings)))
    n = torch.tensor(rng.integers(0, 120, 2000))
    cells = draw_cells(rings, theta, n, torch.Generator().manual_seed(1)).numpy()
    for row, k in zip(cells, n.tolist(), strict=True):
        assert np.all(row[:k] >= 0) and np.all(row[k:] == -1) and len(np.unique(row[:k])) == k
    level = -0.35 * np.arange(rings.n_rings) ** 1.1  # a core and a long tail
    first = draw_cells(rings, torch.tensor(level).expand(20000, -1), torch.full((20000,), 30),
                       torch.Generator().manual_seed(2)).numpy()[:, 0]
    p = rings.count * np.exp(level) / np.sum(rings.count * np.exp(level))
    seen = np.bincount(rings.ring[first], minlength=rings.n_rings) / 20000
    tail = slice(12, None)  # the rings drawn through the binomial path
    assert seen[tail].sum() == pytest.approx(p[tail].sum(), abs=4 * np.sqrt(p[tail].sum() / 20000))
    assert np.allclose(seen[:12], p[:12], atol=4 * np.sqrt(p[:12] / 20000) + 1e-4)


def test_numpy_mixture_draws_follow_the_torch_mixture():
    """The hit-energy draws (numpy, one column per component) and the reparameterised torch draws
    have the same distribution: means and widths within 4 standard errors, the same seed the same bits."""
    from calolab.generative.mixtures import gaussian_mixture_sample, gaussian_mixture_sample_np

    params = np.array([[0.0, 1.0, -1.0, 2.0, 4.0, -1.5, -1.0, -0.5, 0.0],
                       [2.0, 0.0, 0.0, -3.0, 0.5, 1.0, -2.0, -0.3, -1.0]], np.float32)  # K = 3
    index = np.repeat([0, 1], 20000)
    x = gaussian_mixture_sample_np(params, index, np.random.default_rng(3))
    assert np.array_equal(x, gaussian_mixture_sample_np(params, index, np.random.default_rng(3)))
    y = gaussian_mixture_sample(torch.from_numpy(params[index]), torch.Generator().manual_seed(3)).numpy()
    for m in (0, 1):
        a, b = x[index == m], y[index == m]
        assert abs(a.mean() - b.mean()) < 4 * np.hypot(a.std(), b.std()) / np.sqrt(20000)
        assert a.std() == pytest.approx(b.std(), rel=0.03)


def test_lateral_draws_are_sorted_distinct_cells_with_shares_summing_to_one():
    from calolab.generative.placement import Rings, draw_lateral

    rings = Rings.of(load_detector("siw-ecal"))
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 150, 500)
    theta = rng.normal(0.0, 2.0, (500, rings.n_rings))
    hit_params = rng.normal(0.0, 0.5, (500, rings.n_rings, 6)).astype(np.float32)
    cells, share = draw_lateral(rings, theta, hit_params, counts, np.random.default_rng(1))
    assert cells.shape == share.shape == (500, counts.max())
    for row, w, k in zip(cells, share, counts, strict=True):
        assert np.all(np.diff(row[:k]) > 0) and row[0] >= 0 and np.all(row[k:] == -1)
        assert np.all(w[:k] > 0) and np.all(w[k:] == 0) and w.sum() == pytest.approx(1.0, rel=1e-5)


def test_outer_ring_counts_are_binomial():
    """The zero test and the walk up the distribution function (beyond its first columns too) give
    binomial counts: frequencies of every count within 4 standard errors of the binomial pmf."""
    from scipy.stats import binom

    from calolab.generative.placement import _binomial

    count = np.array([3, 40, 150])
    rate = np.array([0.2, 0.024, 0.0066])  # count * rate just under 1: all through the walk
    n = 100000
    draws = _binomial(count, np.tile(rate, (n, 1)), np.random.default_rng(5))
    for j, (c, r) in enumerate(zip(count, rate, strict=True)):
        freq = np.bincount(draws[:, j], minlength=12)[:12] / n
        p = binom.pmf(np.arange(12), c, -np.expm1(-r))
        assert np.all(np.abs(freq - p) <= 4 * np.sqrt(p * (1 - p) / n) + 1e-5), (c, freq, p)
    assert draws[:, 1].max() > 6  # some went beyond the first columns


def test_depth_moments_of_a_known_profile():
    """Energy in two layers: the centre of gravity halfway in X0, the spread half their distance."""
    from calolab.generative.layerwise import LayerwiseConfig, LayerwiseModel

    det = load_detector("siw-ecal")
    model = LayerwiseModel(LayerwiseConfig(hidden=8, head_hidden=8), det)
    x0 = absorber_x0(det)
    cond = torch.tensor(np.r_[np.log(10.0), x0][None, :], dtype=torch.float32)
    energy = torch.zeros(1, 15)
    energy[0, 2] = energy[0, 6] = 50.0
    cog, spread = model.depth_moments(cond, energy)
    depth = np.cumsum(x0)
    assert cog.item() == pytest.approx((depth[2] + depth[6]) / 2, rel=1e-5)
    assert spread.item() == pytest.approx((depth[6] - depth[2]) / 2, rel=1e-5)
    for latents in (0, 2):  # the other choices of depth latents draw events too, with the total's energy
        torch.manual_seed(0)
        other = LayerwiseModel(LayerwiseConfig(hidden=8, head_hidden=8, depth_latents=latents), det)
        sample = other.sample(cond.expand(20, -1), torch.Generator().manual_seed(1))
        assert sample.energy.shape == (20, 15) and torch.all(sample.energy >= 0)
        assert torch.all(sample.hits[sample.energy > 0] > 0) and torch.all(sample.hits[sample.energy == 0] == 0)
    with pytest.raises(CalolabError, match="depth_latents"):
        LayerwiseConfig(depth_latents=3)


def test_layer_energies_are_differentiable_in_the_thicknesses(runs):
    module = load_model(runs["layerwise"]).module
    det = load_detector("siw-ecal")
    cond = torch.tensor(np.tile(np.r_[np.log(10.0), absorber_x0(det)], (64, 1)), dtype=torch.float32,
                        requires_grad=True)
    sample = module.sample(cond, torch.Generator().manual_seed(0))
    sample.energy[:, 3:8].sum().backward()
    grad = cond.grad[:, 1:]
    assert torch.all(torch.isfinite(grad)) and grad.abs().sum() > 0


def test_a_corrupt_checkpoint_is_a_clear_error(runs, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(runs["layerwise"], run)
    raw = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CalolabError, match=r"checkpoint\.pt: corrupt or unreadable checkpoint"):
        load_model(run)
    with pytest.raises(CalolabError, match=r"checkpoint\.pt: corrupt"):
        train(run, TrainConfig(epochs=3, seed=5), TINY_DATA, TINY["layerwise"])
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CalolabError, match=r"checkpoint\.pt"):
        load_model(run)
    with pytest.raises(CalolabError, match="not a generative run folder"):
        load_model(tmp_path / "nowhere")


def test_cli_train_and_sample(tmp_path):
    from click.testing import CliRunner

    from calolab.generative.commands import generate as group

    runner = CliRunner()
    run = tmp_path / "run"
    result = runner.invoke(group, ["train", "--model", "layerwise", "--out", str(run), "--events", "40",
                                   "--events-per-layout", "20", "--epochs", "1", "--seed", "2", "--no-progress",
                                   "--energy-range", "0.9GeV:110GeV"])
    assert result.exit_code == 0, result.output
    assert "trained 1 epochs on 2 layouts x 20 events" in result.output
    written = {p.name for p in run.iterdir()}
    assert {"config.yaml", "provenance.json", "data.h5", "checkpoint.pt", "losses.json"} <= written
    dataset = yaml.safe_load((run / "config.yaml").read_text())["dataset"]
    assert (dataset["energy_min_gev"], dataset["energy_max_gev"]) == (0.9, 110.0)
    energies = read_showers(run / "data.h5").incident_energy
    assert energies.min() >= 0.9e3 and energies.max() <= 110e3
    out = tmp_path / "gen.h5"
    result = runner.invoke(group, ["sample", str(run), "--energy", "1GeV:100GeV", "-n", "30", "-o", str(out),
                                   "--format", "calochallenge", "--seed", "4"])
    assert result.exit_code == 0, result.output
    showers = read_showers(out)
    assert len(showers) == 30 and showers.detector.shape == (15, 32, 32)
    assert np.all((showers.incident_energy >= 1e3) & (showers.incident_energy <= 1e5))
    result = runner.invoke(group, ["sample", str(tmp_path / "missing"), "-E", "10GeV", "-n", "3", "-o", str(out)])
    assert isinstance(result.exception, CalolabError)
    result = runner.invoke(group, ["benchmark", str(run), "-o", str(tmp_path / "bench"), "--energies", "10",
                                   "-n", "60", "--speed-events", "60", "--no-classifiers"])
    assert result.exit_code == 0, result.output
    metrics = json.loads((tmp_path / "bench" / "metrics.json").read_text())
    row = metrics["energies"]["10"]
    assert row["reference"]["energy_sum"]["mean"] > 0 and row["speed"]["generator"] > 0
    assert abs(row["floor"]["energy_sum"]["difference"]) < 0.1  # the simulator against itself
