"""Materials from their elemental composition, by the PDG mixing rules.

For mass fractions w_j of elements j (RPP "Passage of particles through matter", sections 34.4.2,
34.5; PDG Atomic and Nuclear Properties, "Explanation of some entries"):

* radiation length 1/X0 = sum_j w_j / X0_j (lengths per unit mass, g/cm2);
* <Z/A> = sum_j w_j Z_j / A_j;
* nuclear and pion interaction lengths 1/lambda = sum_j w_j / lambda_j;
* minimum ionisation by Bragg additivity, dE/dx = sum_j w_j (dE/dx)_j. This ignores the density
  effect of the compound itself (and the shift of its minimum in beta*gamma): the elements enter in
  their standard state, H, N, O as gases. Pass ``dedx_min`` where a better value is known; the
  built-in materials with a PDG page use the Bethe minimum with the compound's own Sternheimer
  parameters;
* Moliere radius 1/R_M = (1/E_s) sum_j w_j E_cj / X0_j, E_s = 21.2052 MeV (RPP eq. 34.38);
* critical energy of the mixture E_c = E_s X0 / R_M (chosen over 610/(Z_eff + 1.24), which matches
  PDG's tabulated compounds worse); elements without a PDG critical energy enter with the PDG fit
  610/(Z+1.24), or 710/(Z+0.92) when ``gas`` is set;
* ``z`` and ``a`` mass-weighted, as for the built-in PbWO4 and polystyrene.

Lengths of the returned :class:`~calolab.geometry.materials.Material` are in mm.

>>> bgo = compound("BGO", 7.13, {"Bi": 4, "Ge": 3, "O": 12}, by="atoms")
>>> round(bgo.x0, 2), round(bgo.z_over_a, 4)  # mm; PDG BGO page: <Z/A> 0.42061
(11.18, 0.4206)
"""

from collections.abc import Mapping

from calolab.config import check_fields
from calolab.errors import CalolabError
from calolab.geometry.elements import bethe_min, get_element, pdg_ec_fit
from calolab.geometry.materials import Material

MOLIERE_ES = 21.2052  # MeV, RPP eq. (34.38): E_s = sqrt(4 pi / alpha) m_e c^2
# Measured against PDG pages (tests/test_materials.py): E_c = E_s X0 / R_M is off by -2.0% (PbWO4),
# +1.5% (polystyrene), +0.8% (ICRP soft tissue); 610/(Z_eff+1.24) with mass-weighted Z_eff by -9%,
# -4%, -8%. Bragg additivity differs in dE/dx_min by -0.2% (PbWO4), -0.3% (polystyrene), +2.3%
# (soft tissue), +1.9% (BGO), +0.4% (Kapton), +0.8% (LAr), +1.7% (lead glass), +9.6% (G10, 28% H by
# mass) against the Bethe minimum with each compound's own density effect.
MASS_TOLERANCE = 1e-3


def mass_fractions(composition: Mapping[str, float], by: str = "mass", where: str = "composition") -> dict[str, float]:
    """Mass fractions of ``composition`` given by mass (must sum to 1 within 1e-3) or by atom counts.

    >>> mass_fractions({"Cu": 7, "Zn": 3}, by="mass")
    Traceback (most recent call last):
    ...
    calolab.errors.CalolabError: composition: mass fractions sum to 10, not 1
    >>> {k: round(v, 3) for k, v in mass_fractions({"H": 2, "O": 1}, by="atoms").items()}
    {'H': 0.112, 'O': 0.888}
    """
    if by not in ("mass", "atoms"):
        raise CalolabError(f"{where}: by must be 'mass' or 'atoms', not {by!r}")
    if not composition:
        raise CalolabError(f"{where}: no elements given")
    weights = {}
    for symbol, amount in composition.items():
        try:
            element = get_element(str(symbol))
        except CalolabError as err:
            raise CalolabError(f"{where}: {err}") from None
        if not isinstance(amount, (int, float)) or isinstance(amount, bool) or not amount > 0:
            raise CalolabError(f"{where}: amount of {symbol} must be a positive number, not {amount!r}")
        weights[symbol] = float(amount) * (element.a if by == "atoms" else 1.0)
    total = sum(weights.values())
    if by == "mass" and abs(total - 1.0) > MASS_TOLERANCE:
        raise CalolabError(f"{where}: mass fractions sum to {total:g}, not 1")
    return {symbol: w / total for symbol, w in weights.items()}


def compound(name: str, density: float, composition: Mapping[str, float], by: str = "mass",
             gas: bool = False, dedx_min: float | None = None) -> Material:
    """Build a :class:`Material` of ``density`` g/cm3 from ``composition`` (element symbol -> amount).

    ``by="mass"``: amounts are mass fractions summing to 1; ``by="atoms"``: atom counts (a formula,
    normalised). ``gas`` selects the PDG gas fit for critical energies the PDG does not tabulate.
    ``dedx_min`` (MeV cm2/g) replaces the Bragg-additivity minimum ionisation when given.
    Lengths are returned in mm, the critical energy in MeV.

    >>> brass = compound("brass", 8.53, {"Cu": 0.7, "Zn": 0.3})
    >>> round(brass.x0, 1), round(brass.z, 1)  # mm, mass-weighted Z
    (14.9, 29.3)
    """
    where = f"material {name!r}"
    if not isinstance(density, (int, float)) or isinstance(density, bool) or not density > 0:
        raise CalolabError(f"{where}: density must be a positive number in g/cm3, not {density!r}")
    fractions = mass_fractions(composition, by, where)
    elements = {symbol: get_element(symbol) for symbol in fractions}
    inv_x0 = sum(w / elements[s].x0 for s, w in fractions.items())
    inv_lam = sum(w / elements[s].lambda_int for s, w in fractions.items())
    inv_lam_pi = sum(w / elements[s].lambda_pi for s, w in fractions.items())

    def ec(symbol: str) -> float:
        el = elements[symbol]
        return el.critical_energy if el.source.get("critical_energy") == "PDG" else pdg_ec_fit(el.z, gas)

    inv_rm = sum(w * ec(s) / elements[s].x0 for s, w in fractions.items()) / MOLIERE_ES  # cm2/g
    x0 = 1.0 / inv_x0  # g/cm2
    rm = 1.0 / inv_rm  # g/cm2
    bragg = sum(w * elements[s].dedx_min for s, w in fractions.items())
    return Material(
        name=name,
        z=sum(w * elements[s].z for s, w in fractions.items()),
        a=sum(w * elements[s].a for s, w in fractions.items()),
        density=float(density),
        x0=x0 / density * 10.0,
        moliere_radius=rm / density * 10.0,
        critical_energy=MOLIERE_ES * x0 / rm,
        lambda_int=1.0 / inv_lam / density * 10.0,
        dedx_min=bragg if dedx_min is None else float(dedx_min),
        z_over_a=sum(w * elements[s].z / elements[s].a for s, w in fractions.items()),
        lambda_pi=1.0 / inv_lam_pi / density * 10.0,
    )


# Built-in materials from composition. Mass fractions, densities (g/cm3), mean excitation energies
# (eV) and Sternheimer parameters (x0, x1, a, k, Cbar, delta0) of the PDG 2020 pages
# pdg.lbl.gov/2020/AtomicNuclearProperties/HTML/<page>.html; for these dE/dx_min is the Bethe
# minimum with the compound's own density effect, which reproduces PDG's minimum ionisation to 0.1%.
PDG_COMPOUNDS = (
    # name, density, mass fractions, gas, I (eV), Sternheimer, PDG page
    ("BGO", 7.13, {"Bi": 0.671054, "Ge": 0.17482, "O": 0.154126}, False, 534.1,
     (0.0456, 3.7816, 0.0957, 3.0781, 5.7409, 0.0), "bismuth_germanate_BGO"),
    ("Kapton", 1.42, {"C": 0.691133, "H": 0.026362, "N": 0.07327, "O": 0.209235}, False, 79.6,
     (0.1509, 2.5631, 0.1597, 3.1921, 3.3497, 0.0), "polyimide_film"),
    ("G10", 1.80, {"H": 0.275853, "B": 0.01864, "C": 0.003583, "N": 0.027945, "O": 0.385764,
                   "Mg": 0.010842, "Al": 0.044453, "Si": 0.151423, "Ca": 0.081496}, False, 110.4,
     (0.2, 3.0, 0.1297, 3.0, 3.7685, 0.0), "G10"),
    # Dry air near sea level; the PDG page lists 1.205e-3 g/cm3.
    ("air", 0.0012048, {"C": 0.000124, "N": 0.755267, "O": 0.231781, "Ar": 0.012827}, True, 85.7,
     (1.7418, 4.2759, 0.1091, 3.3994, 10.5961, 0.0), "air_dry_1_atm"),
    ("LAr", 1.396, {"Ar": 1.0}, False, 188.0, (0.2, 3.0, 0.1956, 3.0, 5.2146, 0.0), "liquid_argon"),
    ("leadglass", 6.22, {"Pb": 0.751938, "O": 0.156453, "Si": 0.080866, "Ti": 0.008092, "As": 0.002651},
     False, 526.4, (0.0614, 3.8146, 0.0954, 3.074, 5.8476, 0.0), "lead_glass"),
)
# Alloys without a PDG page of their own: dE/dx_min by Bragg additivity.
_ALLOYS = (
    # W 90 / Ni 6 / Cu 4 by mass (the composition of PDG's "heavymet in Rochester gamma stop", whose
    # page lists 19.3 g/cm3, the density of pure W). 17.0 g/cm3 is the specified nominal density;
    # no published source for it was found (vendors quote 17-19 g/cm3 for W heavy alloys).
    ("WNiCu", 17.0, {"W": 0.90, "Ni": 0.06, "Cu": 0.04}),
    # W 75 / Cu 25 by mass, 14.50 g/cm3: typical properties of copper-tungsten (Wikipedia,
    # "Copper-tungsten", table of commonly used compositions).
    ("CuW", 14.50, {"W": 0.75, "Cu": 0.25}),
    # Cu 70 / Zn 30 (cartridge brass), 8.53 g/cm3.
    ("brass", 8.53, {"Cu": 0.70, "Zn": 0.30}),
)


def _pdg_compound(row) -> Material:
    name, density, fractions, gas, i_ev, stern, _page = row
    z_over_a = sum(w * get_element(s).z / get_element(s).a for s, w in fractions.items())
    return compound(name, density, fractions, gas=gas, dedx_min=bethe_min(z_over_a, i_ev, stern))


BUILTIN_COMPOUNDS: dict[str, Material] = {
    **{row[0]: _pdg_compound(row) for row in PDG_COMPOUNDS},
    **{name: compound(name, density, fractions) for name, density, fractions in _ALLOYS},
}
BUILTIN_ALIASES: dict[str, str] = {"lar": "LAr", "liquidargon": "LAr", "g10": "G10", "fr4": "G10", "kapton": "Kapton",
                   "polyimide": "Kapton", "bgo": "BGO", "leadglass": "leadglass", "lead glass": "leadglass",
                   "wnicu": "WNiCu", "w-ni-cu": "WNiCu", "heavymet": "WNiCu", "cuw": "CuW", "wcu": "CuW"}

SPEC_FIELDS = ("density", "composition", "by", "gas")


def materials_from_spec(spec: Mapping[str, Mapping], source: str) -> dict[str, Material]:
    """Materials defined by a YAML-like mapping name -> {density, composition, by, gas}.

    ``density`` in g/cm3, ``composition`` element symbol -> mass fraction (``by: mass``, the
    default; must sum to 1 within 1e-3) or atom count (``by: atoms``, normalised); ``gas``
    (default false) selects the gas fit for critical energies. ``source`` (a file name) starts
    every error message.

    >>> mats = materials_from_spec({"MyGlass": {"density": 3.6, "composition": {"Pb": 1, "O": 1},
    ...                                         "by": "atoms"}}, "det.yaml")
    >>> round(mats["MyGlass"].x0, 1)  # mm
    18.8
    >>> materials_from_spec({"X": {"density": 1, "composition": {"Xx": 1}}}, "det.yaml")
    Traceback (most recent call last):
    ...
    calolab.errors.CalolabError: det.yaml: materials.X: unknown element 'Xx': expected one of H, B, ...
    """
    if not isinstance(spec, Mapping):
        raise CalolabError(f"{source}: materials must be a mapping of name to definition")
    out: dict[str, Material] = {}
    for name, entry in spec.items():
        where = f"{source}: materials.{name}"
        if not isinstance(entry, Mapping):
            raise CalolabError(f"{where}: must be a mapping with fields {', '.join(SPEC_FIELDS)}")
        check_fields(entry, SPEC_FIELDS, where)
        for key in ("density", "composition"):
            if key not in entry:
                raise CalolabError(f"{where}: missing field {key!r}")
        composition = entry["composition"]
        if not isinstance(composition, Mapping):
            raise CalolabError(f"{where}.composition: must map element symbols to amounts")
        gas = entry.get("gas", False)
        if not isinstance(gas, bool):
            raise CalolabError(f"{where}.gas: must be true or false, not {gas!r}")
        try:
            out[str(name)] = compound(str(name), entry["density"], composition, by=entry.get("by", "mass"), gas=gas)
        except CalolabError as err:
            raise CalolabError(f"{where}: {str(err).removeprefix(f'material {str(name)!r}: ')}") from None
    return out
