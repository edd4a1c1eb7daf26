"""Design (paper 004): the differentiable resolution surrogate, the layout optimiser and the study."""

import json

import numpy as np
import pytest
import yaml

from calolab import CalolabError, load_detector
from calolab.reconstruction import weighted_sum
from calolab.simulation import Beam, simulate

torch = pytest.importorskip("torch")

from calolab.design import OptimiseConfig, ResolutionSurrogate, optimise_layout, thickness_from_logits  # noqa: E402
from calolab.design.check import layout_detector, sigma68  # noqa: E402


@pytest.fixture(scope="module")
def siw():
    return load_detector("siw-ecal")


@pytest.fixture(scope="module")
def model(siw):
    return ResolutionSurrogate(siw, quadrature=8)


def test_surrogate_medium_matches_the_detector(siw, model):
    thickness = model.initial_thickness()
    medium = model.effective_medium(thickness)
    assert float(medium["ec"]) == pytest.approx(siw.critical_energy, rel=1e-12)
    assert float(medium["f_s"]) == pytest.approx(siw.sampling_frequency, rel=1e-12)
    assert model.boundaries_x0(thickness).numpy() == pytest.approx(siw.x0_bounds[1:], rel=1e-12)
    uniform = layout_detector(siw, np.full(15, 72.8 / 15))
    assert uniform.x0_bounds[-1] == pytest.approx(siw.x0_bounds[-1], rel=1e-12)


def test_resolution_gradient_matches_finite_differences(model):
    """Raw thicknesses (not the constrained ones): alpha and T move with Ec and F_S too."""
    energies = torch.tensor([1.0, 10.0, 100.0], dtype=torch.float64)
    thickness = (model.initial_thickness() + torch.linspace(-1.0, 1.0, 15, dtype=torch.float64))
    thickness.requires_grad_(True)

    def f(t):
        return torch.sum(model.resolution(t, energies) ** 2)

    f(thickness).backward()
    grad = thickness.grad.numpy()
    h = 1e-5
    numeric = np.array([(float(f(thickness.detach() + h * e)) - float(f(thickness.detach() - h * e))) / (2 * h)
                        for e in torch.eye(15, dtype=torch.float64)])
    assert np.all(np.abs(grad) > 1e-7)
    np.testing.assert_allclose(grad, numeric, rtol=1e-3)


def test_constraint_holds_exactly_along_the_optimisation(model):
    config = OptimiseConfig(steps=40, energies=4, init_noise=0.3, seed=3, min_thickness=0.5)
    result = optimise_layout(model, config)
    total = 8 * 4.2 + 7 * 5.6
    assert result.trajectory.shape == (41, 15)
    np.testing.assert_allclose(result.trajectory.sum(axis=1), total, rtol=0, atol=1e-12)
    assert result.trajectory.min() >= 0.5
    # total absorber in X0 fixed at the prototype's
    x0 = [float(model.total_x0(torch.tensor(t))) for t in result.trajectory]
    np.testing.assert_allclose(x0, total / 3.504, rtol=1e-13)
    logits = torch.tensor([50.0, -50.0, 0.0], dtype=torch.float64)
    assert float(thickness_from_logits(logits, 10.0, 0.5).min()) >= 0.5


def test_optimiser_reduces_the_objective_deterministically(model):
    config = OptimiseConfig(steps=60, energies=4, init_noise=0.2, seed=5)
    first, second = optimise_layout(model, config), optimise_layout(model, config)
    assert np.array_equal(first.trajectory, second.trajectory)
    assert first.objective[-1] < 0.92 * first.objective[0]
    assert first.objective[-1] <= first.objective.min() + 1e-12
    # thin plates where the shower deposits most (layers 2-6), thick at the back
    assert first.thickness[2:7].max() < 4.2 < first.thickness[-3:].min()


def test_cost_term_flattens_the_layout(model):
    plain = optimise_layout(model, OptimiseConfig(steps=80, energies=4))
    flat = optimise_layout(model, OptimiseConfig(steps=80, energies=4, tv_weight=1.0))
    assert np.abs(np.diff(flat.thickness)).sum() < 0.7 * np.abs(np.diff(plain.thickness)).sum()


def test_surrogate_agrees_with_the_simulator_at_10_gev(siw):
    """Prototype, 10 GeV electrons, 3000 events: sigma68/E within 6% (statistical error about 1.5%)."""
    model = ResolutionSurrogate(siw)
    moments = model.moments(model.initial_thickness(), torch.tensor([10.0], dtype=torch.float64))
    rec = weighted_sum(simulate(siw, Beam("e-", energy=10e3), 3000, seed=11), rear_leakage=True)
    assert float(moments.mean[0]) == pytest.approx(rec.mean(), rel=0.02)
    assert float(moments.relative_resolution[0]) == pytest.approx(sigma68(rec) / rec.mean(), rel=0.06)


def test_surrogate_rejects_a_homogeneous_detector():
    with pytest.raises(CalolabError, match="absorber"):
        ResolutionSurrogate(load_detector("pbwo4"))
    with pytest.raises(CalolabError, match="start"):
        optimise_layout(ResolutionSurrogate(load_detector("siw-ecal"), quadrature=4), OptimiseConfig(start="random"))


def test_quick_design_study_writes_its_run_folder(tmp_path):
    from click.testing import CliRunner

    from calolab.studies.design import study_design

    out = tmp_path / "design"
    result = CliRunner().invoke(study_design, ["--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["events"] == 1500 and config["seed"] == 1
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["layouts"]) == {"prototype", "uniform", "optimised"}
    for layout in metrics["layouts"].values():
        assert layout["total_x0"] == pytest.approx(metrics["total_absorber_x0"], rel=1e-12)
    assert metrics["surrogate_validation"]["passed"]
    comp = metrics["comparison"]["optimised"]
    assert len(comp["resolution_diff_z"]) == 4 and comp["objective_diff_se"] > 0
    assert metrics["simulation"]["optimised"]["objective"] < metrics["simulation"]["prototype"]["objective"]
    assert metrics["optimised_vs_prototype"]["objective_diff_z"] == comp["objective_diff_z"]
    for figure in ("thickness.png", "resolution.png", "trajectory.png"):
        assert (out / figure).read_bytes()[:4] == b"\x89PNG"
    assert "optimised minus prototype in mean (sigma/E)^2" in result.output and "goal" not in result.output
