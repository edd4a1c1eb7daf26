"""Response calibration, per-bin metrics, resolution fits and estimator combinations on known inputs."""

import json
import math

import matplotlib
import numpy as np
import pytest

from calolab.errors import CalolabError
from calolab.reconstruction.metrics import (
    ResolutionFit,
    binned_metrics,
    combine_estimates,
    combined_resolution,
    crossover_energy,
    fit_resolution,
    resolution_model,
    tracker_resolution,
)
from calolab.reconstruction.plots import plot_prediction_vs_truth, plot_resolution, plot_response
from calolab.reconstruction.response import ResponseCalibration

matplotlib.use("Agg")


def test_linear_response_is_restored():
    rng = np.random.default_rng(7)
    e = rng.uniform(10e3, 200e3, 20000)
    pred = 0.9 * e + 2e3 + rng.normal(0, 0.5 * np.sqrt(e / 1e3) * 1e3)  # 50%/sqrt(E) noise
    cal = ResponseCalibration.fit(e, pred, bins=np.linspace(10e3, 200e3, 11))
    (a, b), (a_err, b_err) = cal.params, cal.errors
    # within 4 standard errors (a_err ~ 1e-3, b_err ~ 70 MeV here) and within 0.5% / 0.5 GeV
    assert abs(a - 0.9) < min(4 * a_err, 0.005) and abs(b - 2e3) < min(4 * b_err, 500)
    assert cal.chi2 / cal.ndf < 3
    corrected = cal.correct(pred)
    for lo in range(10, 200, 38):
        sel = (e >= lo * 1e3) & (e < (lo + 38) * 1e3)
        assert abs(np.mean(corrected[sel] / e[sel]) - 1) < 0.005
    again = ResponseCalibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert np.array_equal(again.correct(pred[:10]), corrected[:10])


def test_power_law_response():
    rng = np.random.default_rng(8)
    e = rng.uniform(50e3, 8e6, 20000)  # muons of paper 003: 50 GeV - 8 TeV
    pred = 1.4e3 * (e / 1e3) ** 0.93 * (1 + 0.1 * rng.standard_normal(len(e)))
    cal = ResponseCalibration.fit(e, pred, bins=12, model="power")
    assert cal.params[1] == pytest.approx(0.93, abs=max(4 * cal.errors[1], 1e-3))
    assert abs(np.median(cal.correct(pred) / e) - 1) < 0.01
    with pytest.raises(CalolabError, match="response model"):
        ResponseCalibration.fit(e, pred, model="spline")


def _median_ratios(e, corrected, edges):
    idx = np.digitize(e, edges) - 1
    return np.array([np.median(corrected[idx == k] / e[idx == k]) for k in range(len(edges) - 1)])


def test_binned_response_restores_a_non_linear_response():
    rng = np.random.default_rng(12)
    # log-uniform 10 GeV - 1 TeV: away from its ends the median true energy at a given
    # prediction is the inverse of the response, so the binned model must restore it
    e = np.exp(rng.uniform(np.log(10e3), np.log(1e6), 40000))
    edges = np.geomspace(10e3, 1e6, 13)
    responses = {"0.7 E^0.9": lambda x: 0.7e3 * (x / 1e3) ** 0.9, "saturating": lambda x: x / (1 + x / 300e3)}
    for name, response in responses.items():
        pred = response(e) * (1 + 0.08 * rng.standard_normal(len(e)))  # 8% noise
        fit, test = slice(0, 20000), slice(20000, None)
        cal = ResponseCalibration.fit(e[fit], pred[fit], bins=edges, model="binned")
        binned = _median_ratios(e[test], cal.correct(pred[test]), edges)
        linear = _median_ratios(e[test], ResponseCalibration.fit(e[fit], pred[fit], bins=edges).correct(pred[test]),
                                edges)
        if name == "0.7 E^0.9":
            # median E_corr/E within 2% per bin (statistics ~0.3%), 5% in the lowest, where the
            # spectrum's lower end pulls the median true energy of the lowest predictions up
            assert np.all(np.abs(binned[1:] - 1) < 0.02) and abs(binned[0] - 1) < 0.05, binned
            assert np.max(np.abs(linear - 1)) > 0.08, linear  # a line through all bins misses by 8-10%
        else:
            # below 200 GeV within 2%; above, the flattening response turns 8% in E_pred into up to 35% in E
            assert np.all(np.abs(binned[:8] - 1) < 0.02), binned
            assert np.max(np.abs(linear[:8] - 1)) > 0.5, linear
        assert np.all(np.diff(cal.knots) > 0) and np.all(np.diff(cal.params) > 0) and cal.chi2 == 0
        assert cal.response(cal.correct(pred[:100])) == pytest.approx(pred[:100], rel=1e-9)
        again = ResponseCalibration.from_dict(json.loads(json.dumps(cal.to_dict())))
        assert again == cal and np.array_equal(again.correct(pred[:100]), cal.correct(pred[:100]))


def test_binned_response_ends_and_bad_input():
    rng = np.random.default_rng(13)
    e = rng.uniform(50e3, 8e6, 4000)
    pred = 0.8 * e * (1 + 0.3 * rng.standard_normal(len(e)))
    cal = ResponseCalibration.fit(e, pred, bins=np.geomspace(50e3, 8e6, 13), model="binned")
    # beyond the end nodes the correction is proportional: zero stays zero, the sign is kept, no jump at the node
    low, high = cal.knots[0], cal.knots[-1]
    out = cal.correct(np.array([-low, 0.0, 0.5 * low, low, high, 2 * high]))
    assert out[0] < 0 == out[1] < out[2] < out[3] < out[4] < out[5]
    assert out[2] == pytest.approx(0.5 * out[3]) and out[5] == pytest.approx(2 * out[4])
    # a prediction that falls as the energy rises cannot be made increasing: one node, a plain scale
    falling = 1e7 - e
    scale = ResponseCalibration.fit(e, falling, bins=12, model="binned")
    assert scale.knots == (pytest.approx(np.median(falling)),) and scale.params == (pytest.approx(np.median(e)),)
    with pytest.raises(CalolabError, match="calibration events"):
        ResponseCalibration.fit(e[:50], pred[:50], model="binned")
    with pytest.raises(CalolabError, match="increasing positive knots"):
        ResponseCalibration.from_dict({**cal.to_dict(), "knots": list(cal.knots[::-1])})


def test_metrics_of_a_known_gaussian_smearing():
    rng = np.random.default_rng(9)
    e = rng.uniform(20e3, 100e3, 40000)
    pred = e * 1.02 * (1 + 0.1 * rng.standard_normal(len(e)))  # 2% bias, 10% resolution
    table = binned_metrics(e, pred, bins=np.linspace(20e3, 100e3, 5), n_boot=100, seed=3)
    assert table.n.sum() == len(e) and len(table.n) == 4
    # per bin, n ~ 10000: the median and resolution to within 4 of their errors
    assert np.all(np.abs(table.response_median - 1.02) < 4 * table.response_median_err)
    assert np.all(np.abs(table.response_mean - 1.02) < 4 * table.response_mean_err)
    assert np.all(np.abs(table.resolution - 0.1) < 4 * table.resolution_err)
    expected_rmse = math.hypot(0.02, 0.102)  # bias and spread in quadrature
    assert np.all(np.abs(table.rmse - expected_rmse) < 4 * table.rmse_err)
    # std of the central 94% of a Gaussian: 0.8528 sigma
    assert np.all(np.abs(table.sigma_3_97 - 0.08528) < 4 * table.sigma_3_97_err)
    # bootstrap errors agree with the large-sample ones: sigma/sqrt(n) for the mean, ~ sigma/sqrt(2n) widths
    n = table.n
    assert table.response_mean_err == pytest.approx(0.102 / np.sqrt(n), rel=0.05)
    assert np.all((table.resolution_err > 0.5 * 0.1 / np.sqrt(2 * n)) & (table.resolution_err < 3 * 0.1 / np.sqrt(n)))
    again = binned_metrics(e, pred, bins=np.linspace(20e3, 100e3, 5), n_boot=100, seed=3)
    assert np.array_equal(again.resolution_err, table.resolution_err)  # seeded bootstrap
    assert json.loads(json.dumps(table.to_dict()))["n"] == table.n.tolist()


@pytest.fixture(scope="module")
def synthetic_resolution():
    """Gaussian smearing with sigma/E = 50%/sqrt(E) ⊕ 1 GeV/E ⊕ 3%, 3000 events at each of 7 energies."""
    rng = np.random.default_rng(10)
    energies = np.array([5.0, 10, 20, 50, 100, 200, 400])
    e = np.repeat(energies, 3000) * 1e3
    pred = e * (1 + resolution_model(e / 1e3, 0.5, 1.0, 0.03) * rng.standard_normal(len(e)))
    edges = np.sqrt(energies[1:] * energies[:-1]) * 1e3
    return binned_metrics(e, pred, bins=np.concatenate([[1e3], edges, [1e6]]), n_boot=200, seed=1)


def test_resolution_fit_recovers_known_terms(synthetic_resolution):
    table = synthetic_resolution
    fit = fit_resolution(table.energy_gev, table.resolution, table.resolution_err)
    assert abs(fit.a - 0.5) < max(3 * fit.a_err, 0.02)
    assert abs(fit.b - 1.0) < max(3 * fit.b_err, 0.3)
    assert abs(fit.c - 0.03) < max(3 * fit.c_err, 0.005)
    assert fit.ndf == 4 and fit.chi2 / fit.ndf < 4
    stochastic_only = fit_resolution(table.energy_gev, table.resolution, table.resolution_err, terms="ac")
    assert stochastic_only.b == 0.0 and stochastic_only.chi2 > fit.chi2
    assert json.dumps(fit.to_dict())
    pure = fit_resolution(table.energy_gev, 0.5 / np.sqrt(table.energy_gev), 0.01 / np.sqrt(table.energy_gev))
    assert pure.a == pytest.approx(0.5) and math.isinf(pure.c_err) and pure.to_dict()["c_err"] is None
    assert fit(np.array([100.0]))[0] == pytest.approx(resolution_model(100.0, fit.a, fit.b, fit.c))


def test_combination_and_crossover():
    assert combined_resolution(0.1, 0.1) == pytest.approx(0.1 / math.sqrt(2))
    assert combined_resolution(np.array([0.3]), np.array([0.4]))[0] == pytest.approx(0.24)
    calorimeter = ResolutionFit(a=2.0, b=0.0, c=0.05, a_err=0, b_err=0, c_err=0, chi2=0, ndf=0)
    # 2/sqrt(E) ⊕ 5% against 2e-4 E: solve (2e-4 E)^2 = 4/E + 0.0025
    cross = crossover_energy(calorimeter, tracker_resolution, 10.0, 1e5)
    assert (2e-4 * cross) ** 2 == pytest.approx(4 / cross + 0.0025, rel=1e-8)
    assert math.isnan(crossover_energy(calorimeter, lambda e: 0.5 * calorimeter(e), 10.0, 1e5))
    # a measured curve that dips below the tracker at low energy (few events, a misplaced
    # response) crosses it three times: the crossover is the last crossing, 2.5e3^(2/3) GeV
    wiggly = lambda e: np.where(e < 100, 1e-3, 0.5 / np.sqrt(e))  # noqa: E731
    assert crossover_energy(wiggly, tracker_resolution, 1.0, 1e4) == pytest.approx(2500 ** (2 / 3), rel=1e-8)
    # per-event combination reaches the combined resolution
    rng = np.random.default_rng(11)
    e = np.full(20000, 1.5e6)  # 1.5 TeV muons
    e1 = e * (1 + calorimeter(1500.0) * rng.standard_normal(len(e)))
    e2 = e * (1 + tracker_resolution(1500.0) * rng.standard_normal(len(e)))
    both = combine_estimates(e1, e2, calorimeter, tracker_resolution)
    expected = combined_resolution(calorimeter(1500.0), tracker_resolution(1500.0))
    assert np.std(both / e) == pytest.approx(expected, rel=0.05)


def test_plots_take_and_return_axes(synthetic_resolution):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3)
    table = synthetic_resolution
    fit = fit_resolution(table.energy_gev, table.resolution, table.resolution_err)
    assert plot_response({"toy": table}, ax=axes[0]) is axes[0]
    assert plot_resolution({"toy": table}, {"toy": fit}, ax=axes[1], log_x=True) is axes[1]
    assert any(t.get_text().startswith("toy: ") and "%/√E" in t.get_text() for t in axes[1].get_legend().get_texts())
    e = np.linspace(10e3, 100e3, 500)
    assert plot_prediction_vs_truth(e, 1.1 * e, ax=axes[2]) is axes[2]
    plt.close(fig)


def test_likelihood_combination_is_not_pulled_by_the_tracker_tail():
    """At 4 TeV (calorimeter 40%, tracker 80%) weights taken at the running estimate broaden the combination."""
    rng = np.random.default_rng(5)
    e = np.full(20000, 4e6)
    e_cal = e * (1 + 0.4 * rng.standard_normal(len(e)))
    e_trk = e * (1 + tracker_resolution(4000.0) * rng.standard_normal(len(e)))

    def calorimeter(e_gev):
        return np.full_like(np.asarray(e_gev, float), 0.4)

    def width(x):
        q = np.percentile(x / e, [16, 50, 84])
        return (q[2] - q[0]) / 2 / q[1]

    inverse_variance = combined_resolution(0.4, tracker_resolution(4000.0))  # 0.358
    likelihood = width(combine_estimates(e_cal, e_trk, calorimeter, tracker_resolution))
    iterated = width(combine_estimates(e_cal, e_trk, calorimeter, tracker_resolution, method="iterated"))
    assert likelihood < inverse_variance < iterated and iterated > 0.39  # iterated: worse than the calorimeter alone
    with pytest.raises(CalolabError, match="combination method"):
        combine_estimates(e_cal, e_trk, calorimeter, tracker_resolution, method="mean")
