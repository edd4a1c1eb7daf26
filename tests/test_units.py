import pytest

from calolab import CalolabError
from calolab.units import parse_energy, parse_energy_range


@pytest.mark.parametrize(("text", "mev"), [("10GeV", 1e4), ("1.5 TeV", 1.5e6), ("250MeV", 250.0), ("42", 42.0)])
def test_energies(text, mev):
    assert parse_energy(text) == pytest.approx(mev)


@pytest.mark.parametrize("text", ["ten GeV", "10 parsec", "-5GeV", "0GeV"])
def test_bad_energies(text):
    with pytest.raises(CalolabError):
        parse_energy(text)


def test_range():
    assert parse_energy_range("50GeV:8TeV") == (5e4, 8e6)
    with pytest.raises(CalolabError, match="upper end"):
        parse_energy_range("8TeV:50GeV")
