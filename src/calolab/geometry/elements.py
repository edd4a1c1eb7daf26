"""Element table for building materials from their composition (PDG Atomic and Nuclear Properties).

Each :class:`Element` carries what the PDG mixing rules need, per unit mass: radiation length,
nuclear and pion interaction lengths (g/cm2), minimum ionisation (MeV cm2/g), electron critical
energy (MeV), plus Z, A, the density of the standard state (g/cm3) and the mean excitation
energy I (eV).

Where each number comes from (``Element.source`` names it per field):

* Z, A, density, I and the Sternheimer density-effect parameters (x0, x1, a, k, Cbar, delta0):
  the PDG pages ``pdg.lbl.gov/2020/AtomicNuclearProperties/HTML/<page>.html`` named in the table
  (Groom, Mokhov, Striganov; Sternheimer, Berger, Seltzer, At. Data Nucl. Data Tables 30 (1984) 261).
* x0: Tsai's formula, RPP "Passage of particles through matter" eq. (34.26) with the Coulomb
  correction f(Z) of eq. (34.27) and Table 34.2 for Z <= 4, as the PDG computes it for elements.
* dedx_min: the Bethe formula (RPP eq. 34.5) for a muon with the Sternheimer density effect
  (eq. 34.7), minimised over beta*gamma.
* lambda_int, lambda_pi, critical_energy of W, Pb, Cu, Fe, Si: the PDG pages (as typed in
  :mod:`calolab.geometry.materials`).
* lambda_int and lambda_pi of H, C and O: inverted with the mixing rule 1/lambda = sum_j w_j/lambda_j
  from the compound values of :mod:`calolab.geometry.materials` and one PDG page: O from PbWO4
  (20.28 cm; 196.6 g/cm2), H and C from polystyrene (77.0 cm; 113.4 g/cm2) together with ICRP soft
  tissue (PDG page soft_tissue_ICRP: 83.0 and 114.9 g/cm2). The pion lengths of PbWO4 and
  polystyrene there were themselves mixed from element values, so these three are only as good as
  that bookkeeping; they are not element pages.
* other interaction lengths: a power law lambda = c A^p fitted to W, Pb, Cu, Fe, Si and O; it is
  *not* a PDG tabulation.
* other critical energies: the PDG fits Ec = 610 MeV/(Z + 1.24) (solids, liquids) and
  710 MeV/(Z + 0.92) (gases), RPP section 34.4.4, Fig. 34.13.

>>> round(ELEMENTS["W"].x0, 2)  # g/cm2
6.76
>>> ELEMENTS["Pb"].source["lambda_int"]
'PDG'
"""

import math
from dataclasses import dataclass, field

import numpy as np

from calolab.errors import CalolabError

K_BETHE = 0.307075  # MeV cm2 / mol, RPP Table 34.1
ELECTRON_MASS = 0.51099895  # MeV
MUON_MASS = 105.6583755  # MeV
FINE_STRUCTURE = 1.0 / 137.035999084
TSAI_CONSTANT = 716.408  # g cm-2, RPP eq. (34.26): 1/(4 alpha r_e^2 N_A / A)
PDG_URL = "https://pdg.lbl.gov/2020/AtomicNuclearProperties/HTML/{}.html"

# RPP Table 34.2: Tsai's L_rad and L'_rad for Z <= 4.
_LRAD = {1: (5.31, 6.144), 2: (4.79, 5.621), 3: (4.74, 5.805), 4: (4.71, 5.924)}


@dataclass(frozen=True)
class Element:
    """One element: lengths per unit mass (g/cm2), ``dedx_min`` in MeV cm2/g, energies in MeV, I in eV.

    ``density`` (g/cm3) is that of the standard state (gas at 1 atm and 20 C for H, N, O, F, Cl, Ar);
    ``gas`` says which. ``source`` maps each derived field to where its value comes from:
    ``"PDG"`` (a PDG page), ``"Tsai"``, ``"Bethe"``, ``"PDG compounds"`` (inverted from PDG
    compound values), ``"fit"`` (power law in A or the PDG Ec fit).
    """

    symbol: str
    z: int
    a: float
    density: float
    mean_excitation: float
    gas: bool
    x0: float
    lambda_int: float
    lambda_pi: float
    dedx_min: float
    critical_energy: float
    page: str
    source: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def url(self) -> str:
        """The PDG page of this element."""
        return PDG_URL.format(self.page)


def tsai_x0(z: int, a: float) -> float:
    """Radiation length in g/cm2 of element (Z, A) from Tsai's formula (RPP eq. 34.26, 34.27).

    >>> round(tsai_x0(82, 207.2), 2)
    6.37
    """
    if z in _LRAD:
        lrad, lrad_prime = _LRAD[z]
    else:
        lrad, lrad_prime = math.log(184.15 * z ** (-1 / 3)), math.log(1194.0 * z ** (-2 / 3))
    a2 = (FINE_STRUCTURE * z) ** 2
    f_z = a2 * (1 / (1 + a2) + 0.20206 - 0.0369 * a2 + 0.0083 * a2**2 - 0.002 * a2**3)
    return TSAI_CONSTANT * a / (z * z * (lrad - f_z) + z * lrad_prime)


def bethe_min(z_over_a: float, mean_excitation: float, sternheimer: tuple[float, ...]) -> float:
    """Minimum over beta*gamma of the muon Bethe mean loss in MeV cm2/g (RPP eqs. 34.5, 34.7).

    ``mean_excitation`` in eV; ``sternheimer`` = (x0, x1, a, k, Cbar, delta0) as the PDG lists them.

    >>> round(bethe_min(0.49848, 173.0, (0.2015, 2.8716, 0.1492, 3.2546, 4.4355, 0.14)), 3)  # Si
    1.663
    """
    x0, x1, a_s, k, cbar, delta0 = sternheimer
    bg = np.logspace(0.0, 1.5, 3001)  # (N,) beta*gamma grid around the minimum (~3-4)
    gamma = np.sqrt(1 + bg**2)
    beta2 = bg**2 / gamma**2
    ratio = ELECTRON_MASS / MUON_MASS
    w_max = 2 * ELECTRON_MASS * bg**2 / (1 + 2 * gamma * ratio + ratio**2)
    x = np.log10(bg)
    two_ln10 = 2 * math.log(10)
    delta = np.where(x >= x1, two_ln10 * x - cbar,
                     np.where(x >= x0, two_ln10 * x - cbar + a_s * np.clip(x1 - x, 0, None) ** k,
                              delta0 * 10 ** (2 * (x - x0))))
    i_mev = mean_excitation * 1e-6
    loss = K_BETHE * z_over_a / beta2 * (0.5 * np.log(2 * ELECTRON_MASS * bg**2 * w_max / i_mev**2) - beta2 - delta / 2)
    return float(loss.min())


def pdg_ec_fit(z: float, gas: bool = False) -> float:
    """PDG fit to the electron critical energy in MeV: 610/(Z+1.24), gases 710/(Z+0.92) (RPP Fig. 34.13)."""
    return 710.0 / (z + 0.92) if gas else 610.0 / (z + 1.24)


# symbol, Z, A (g/mol), density (g/cm3), I (eV), gas, Sternheimer (x0, x1, a, k, Cbar, delta0), PDG page.
# From the PDG 2020 pages named (A of H, Si, Fe, Cu, W, Pb as in calolab.geometry.materials: 1.00794,
# 28.0855, 55.845, 63.546, 183.84, 207.2).
_PDG_ELEMENTS = (
    ("H", 1, 1.00794, 8.376e-05, 19.2, True, (1.8639, 3.2718, 0.1409, 5.7273, 9.5834, 0.0), "hydrogen_gas"),
    ("B", 5, 10.817, 2.37, 76.0, False, (0.0305, 1.9688, 0.5622, 2.4512, 2.8477, 0.14), "boron_B"),
    ("C", 6, 12.0108, 2.0, 78.0, False, (0.0351, 2.486, 0.2024, 3.0036, 2.9925, 0.1), "carbon_amorphous_C"),
    ("N", 7, 14.0072, 0.001165, 82.0, True, (1.7378, 4.1323, 0.1535, 3.2125, 10.54, 0.0), "nitrogen_gas"),
    ("O", 8, 15.9993, 0.001332, 95.0, True, (1.7541, 4.3213, 0.1178, 3.2913, 10.7004, 0.0), "oxygen_gas"),
    ("F", 9, 18.9984, 0.00158, 115.0, True, (1.8433, 4.4096, 0.1108, 3.2962, 10.9653, 0.0), "fluorine_gas"),
    ("Na", 11, 22.9898, 0.971, 149.0, False, (0.288, 3.1962, 0.0777, 3.6452, 5.0526, 0.08), "sodium_Na"),
    ("Mg", 12, 24.3056, 1.74, 156.0, False, (0.1499, 3.0668, 0.0816, 3.6166, 4.5297, 0.08), "magnesium_Mg"),
    ("Al", 13, 26.9815, 2.699, 166.0, False, (0.1708, 3.0127, 0.0802, 3.6345, 4.2395, 0.12), "aluminum_Al"),
    ("Si", 14, 28.0855, 2.329, 173.0, False, (0.2015, 2.8716, 0.1492, 3.2546, 4.4355, 0.14), "silicon_Si"),
    ("P", 15, 30.9738, 2.2, 173.0, False, (0.1696, 2.7815, 0.2361, 2.9158, 4.5214, 0.14), "phosphorus_P"),
    ("S", 16, 32.0655, 2.0, 180.0, False, (0.158, 2.7159, 0.3399, 2.6456, 4.6659, 0.14), "sulfur_S"),
    ("Cl", 17, 35.4532, 0.00298, 174.0, True, (1.5566, 4.3005, 0.1985, 2.9702, 11.147, 0.0), "chlorine_gas"),
    ("Ar", 18, 39.9481, 0.001662, 188.0, True, (1.7635, 4.4855, 0.1971, 2.9618, 11.948, 0.0), "argon_gas_Ar"),
    ("K", 19, 39.0983, 0.862, 190.0, False, (0.3851, 3.1724, 0.1983, 2.9233, 5.6423, 0.1), "potassium_K"),
    ("Ca", 20, 40.0784, 1.55, 191.0, False, (0.3228, 3.1191, 0.1564, 3.0745, 5.0396, 0.14), "calcium_Ca"),
    ("Ti", 22, 47.8671, 4.54, 233.0, False, (0.0957, 3.0386, 0.1566, 3.0302, 4.445, 0.12), "titanium_Ti"),
    ("Fe", 26, 55.845, 7.874, 286.0, False, (0.0012, 3.1531, 0.1468, 2.9632, 4.2911, 0.12), "iron_Fe"),
    ("Ni", 28, 58.6934, 8.902, 311.0, False, (0.0566, 3.1851, 0.165, 2.843, 4.3115, 0.1), "nickel_Ni"),
    ("Cu", 29, 63.546, 8.96, 322.0, False, (0.0254, 3.2792, 0.1434, 2.9044, 4.419, 0.08), "copper_Cu"),
    ("Zn", 30, 65.382, 7.133, 330.0, False, (0.0049, 3.3668, 0.1471, 2.8652, 4.6906, 0.08), "zinc_Zn"),
    ("Ge", 32, 72.6301, 5.323, 350.0, False, (0.3376, 3.6096, 0.0719, 3.3306, 5.1411, 0.14), "germanium_Ge"),
    ("As", 33, 74.9216, 5.73, 347.0, False, (0.1767, 3.5702, 0.0663, 3.4176, 5.051, 0.08), "arsenic_As"),
    ("Sn", 50, 118.711, 7.31, 488.0, False, (0.2879, 3.2959, 0.1869, 2.8576, 5.534, 0.14), "tin_Sn"),
    ("I", 53, 126.904, 4.93, 491.0, False, (0.0549, 3.2596, 0.2377, 2.7276, 5.9488, 0.0), "iodine_I"),
    ("Cs", 55, 132.905, 1.873, 488.0, False, (0.5473, 3.5914, 0.1823, 2.8866, 6.9135, 0.14), "caesium_Cs"),
    ("W", 74, 183.84, 19.3, 727.0, False, (0.2167, 3.496, 0.1551, 2.8447, 5.4059, 0.14), "tungsten_W"),
    ("Pb", 82, 207.2, 11.35, 823.0, False, (0.3776, 3.8073, 0.0936, 3.1608, 6.2018, 0.14), "lead_Pb"),
    ("Bi", 83, 208.98, 9.747, 823.0, False, (0.4152, 3.8248, 0.0941, 3.1671, 6.3505, 0.14), "bismuth_Bi"),
)

# PDG pages: nuclear interaction length (cm, times density), pion interaction length (g/cm2),
# electron critical energy (MeV); the values calolab.geometry.materials carries.
_PDG_HADRONIC = {
    "W": (9.95 * 19.30, 218.7, 7.97),
    "Pb": (17.59 * 11.35, 226.2, 7.43),
    "Cu": (15.32 * 8.96, 165.9, 19.42),
    "Fe": (16.77 * 7.874, 160.8, 21.68),
    "Si": (46.52 * 2.329, 136.7, 40.19),
}
# Inverted from PDG compounds with 1/lambda = sum_j w_j/lambda_j (see the module docstring):
# O from PbWO4 (Pb 0.455347, W 0.404011, O 0.140462); H and C from polystyrene (C 0.922582,
# H 0.077418) and ICRP soft tissue, the latter's N and trace elements from the power law.
_DERIVED_LAMBDA = {"O": (90.25, 115.12), "C": (85.63, 113.18), "H": (52.40, 116.08)}


def _power_law(index: int) -> tuple[float, float]:
    """(c, p) of lambda = c A^p fitted in log-log to the PDG (and O) values; index 0 nuclear, 1 pion."""
    pts = [(_A[s], v[index]) for s, v in _PDG_HADRONIC.items()] + [(_A["O"], _DERIVED_LAMBDA["O"][index])]
    p, log_c = np.polyfit(np.log([a for a, _ in pts]), np.log([lam for _, lam in pts]), 1)
    return float(math.exp(log_c)), float(p)


# Checks (tests/test_materials.py): Tsai X0 matches the W, Pb, Cu, Fe, Si pages to 0.06%, the Bethe
# minimum the PDG minimum ionisation of W, Pb, Cu, Fe, Si, PbWO4, polystyrene, soft tissue to 0.1%;
# the power law leaves residuals up to 0.85% (lambda_int) and 1.6% (lambda_pi) on its six points.
_A = {row[0]: row[2] for row in _PDG_ELEMENTS}
_FIT = (_power_law(0), _power_law(1))


def _build(row) -> Element:
    symbol, z, a, density, i_ev, gas, stern, page = row
    source = {"x0": "Tsai", "dedx_min": "Bethe"}
    if symbol in _PDG_HADRONIC:
        lam_i, lam_pi, ec = _PDG_HADRONIC[symbol]
        source.update(lambda_int="PDG", lambda_pi="PDG", critical_energy="PDG")
    else:
        if symbol in _DERIVED_LAMBDA:
            lam_i, lam_pi = _DERIVED_LAMBDA[symbol]
            source.update(lambda_int="PDG compounds", lambda_pi="PDG compounds")
        else:
            (ci, pi_), (cp, pp) = _FIT
            lam_i, lam_pi = ci * a**pi_, cp * a**pp
            source.update(lambda_int="fit", lambda_pi="fit")
        ec = pdg_ec_fit(z, gas)
        source["critical_energy"] = "fit"
    return Element(symbol, z, a, density, i_ev, gas, tsai_x0(z, a), lam_i, lam_pi,
                   bethe_min(z / a, i_ev, stern), ec, page, source)


ELEMENTS: dict[str, Element] = {row[0]: _build(row) for row in _PDG_ELEMENTS}


def get_element(symbol: str) -> Element:
    """Look up an element by its chemical symbol (``"W"``, ``"Pb"``; case-sensitive like chemistry)."""
    try:
        return ELEMENTS[symbol]
    except KeyError:
        raise CalolabError(f"unknown element {symbol!r}: expected one of {', '.join(ELEMENTS)}") from None
