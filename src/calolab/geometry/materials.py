"""Material constants (PDG Atomic and Nuclear Properties) and the MIP energy loss in thin layers.

Lengths in mm, energies in MeV, densities in g/cm3. Besides the seven typed from the PDG pages,
``MATERIALS`` holds materials computed from their composition (BGO, Kapton, G10/FR4, air, LAr,
lead glass, WNiCu, CuW, brass; see :mod:`calolab.geometry.compounds`).

>>> round(MATERIALS["W"].x0, 3)
3.504
>>> round(MATERIALS["Si"].mip_mpv(0.32) * 1e3)  # keV, most probable loss of a MIP in 320 um Si
90
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass

from calolab.errors import CalolabError

K_BETHE = 0.307075  # MeV cm2 / mol
ELECTRON_MASS = 0.51099895  # MeV
LANDAU_J = 0.200  # Bichsel's constant in the most-probable-loss formula


@dataclass(frozen=True)
class Material:
    """A material: ``x0``, ``moliere_radius``, ``lambda_int``, ``lambda_pi`` in mm, ``critical_energy`` in MeV.

    ``lambda_int`` is the nuclear (nucleon) interaction length, ``lambda_pi`` the pion
    interaction length, both as the PDG tabulates them; a pion's first interaction follows
    ``lambda_pi``, a proton's or neutron's ``lambda_int``.

    ``z`` and ``a`` are the mass-weighted effective atomic number and mass (for shower
    parametrisations), ``dedx_min`` the minimum ionisation in MeV cm2/g. ``z_over_a`` is the
    electron count per nucleon <Z/A> = sum_j w_j Z_j / A_j that ionisation needs; for a compound
    it is not ``z / a`` (polystyrene: 0.538 against 5.61 / 11.16 = 0.503, because of its hydrogen).
    """

    name: str
    z: float
    a: float
    density: float
    x0: float
    moliere_radius: float
    critical_energy: float
    lambda_int: float
    dedx_min: float
    z_over_a: float
    lambda_pi: float

    @classmethod
    def from_composition(cls, name: str, density: float, composition: Mapping[str, float], by: str = "mass",
                         gas: bool = False) -> "Material":
        """Material of ``density`` g/cm3 from element mass fractions or atom counts (PDG mixing rules).

        See :func:`calolab.geometry.compounds.compound`.

        >>> round(Material.from_composition("LAr", 1.396, {"Ar": 1}).x0)  # mm
        140
        """
        from calolab.geometry.compounds import compound

        return compound(name, density, composition, by=by, gas=gas)

    @property
    def mip_dedx(self) -> float:
        """Mean energy loss of a minimum-ionising particle in MeV/mm."""
        return self.dedx_min * self.density / 10.0

    def mip_mean(self, thickness: float) -> float:
        """Mean MIP energy loss in MeV in a layer of ``thickness`` mm."""
        return self.mip_dedx * thickness

    def landau_xi(self, thickness: float) -> float:
        """Landau width parameter xi in MeV for a layer of ``thickness`` mm (beta = 1)."""
        return 0.5 * K_BETHE * self.z_over_a * self.density * thickness / 10.0

    @property
    def plasma_energy(self) -> float:
        """Plasma energy hbar omega_p = 28.816 sqrt(rho <Z/A>) eV, in MeV."""
        return 28.816e-6 * math.sqrt(self.density * self.z_over_a)

    def mip_mpv(self, thickness: float) -> float:
        """Most probable MIP loss in MeV in ``thickness`` mm (Bichsel, density-effect plateau).

        Delta_p = xi [ln(2 m c^2 xi / (hbar omega_p)^2) + j], hbar omega_p = 28.816 sqrt(rho Z/A) eV.
        """
        xi = self.landau_xi(thickness)
        return xi * (math.log(2.0 * ELECTRON_MASS * xi / self.plasma_energy**2) + LANDAU_J)


def _m(name, z, a, rho, x0_cm, rm_cm, ec, lam_cm, dedx, lam_pi_gcm2, z_over_a=None):
    return Material(name, z, a, rho, x0_cm * 10, rm_cm * 10, ec, lam_cm * 10, dedx,
                    z / a if z_over_a is None else z_over_a, lam_pi_gcm2 / rho * 10)


# Z and A of compounds are mass-weighted: PbWO4 (Pb 0.455, W 0.404, O 0.141), polystyrene C8H8;
# their <Z/A> is PDG's (0.41315, 0.53768). Pion interaction lengths in g/cm2 (PDG); for the
# compounds, 1/lambda = sum_j w_j / lambda_j over the elements (Pb, W, O; C, H).
MATERIALS: dict[str, Material] = {
    m.name: m
    for m in (
        _m("W", 74, 183.84, 19.30, 0.3504, 0.9327, 7.97, 9.95, 1.145, 218.7),
        _m("Pb", 82, 207.2, 11.35, 0.5612, 1.602, 7.43, 17.59, 1.122, 226.2),
        _m("Cu", 29, 63.546, 8.96, 1.436, 1.568, 19.42, 15.32, 1.403, 165.9),
        _m("Fe", 26, 55.845, 7.874, 1.757, 1.719, 21.68, 16.77, 1.451, 160.8),
        _m("Si", 14, 28.0855, 2.329, 9.37, 4.944, 40.19, 46.52, 1.664, 136.7),
        _m("PbWO4", 68.4, 168.0, 8.30, 0.8903, 1.959, 9.64, 20.28, 1.229, 196.8, 0.41315),
        _m("Scintillator", 5.61, 11.16, 1.06, 41.3, 9.4, 93.0, 77.0, 1.936, 113.4, 0.53768),
    )
}
_ALIASES = {"polystyrene": "Scintillator", "scintillator": "Scintillator", "steel": "Fe"}


def get_material(name: str, extra: Mapping[str, Material] | None = None) -> Material:
    """Look up a material by name (case-insensitive), first in ``extra`` (user materials), then built in.

    ``extra`` is what :func:`calolab.geometry.compounds.materials_from_spec` returns; an unknown
    name raises :class:`~calolab.errors.CalolabError` listing what is known.

    >>> get_material("lar").name, get_material("steel").name
    ('LAr', 'Fe')
    """
    for table in (extra or {}, MATERIALS):
        if name in table:
            return table[name]
        for key, mat in table.items():
            if key.lower() == name.lower():
                return mat
    alias = _ALIASES.get(name.lower())
    if alias in MATERIALS:
        return MATERIALS[alias]
    known = [*(extra or {}), *MATERIALS]
    raise CalolabError(f"unknown material {name!r}: expected one of {', '.join(known)}")


# Materials built from their composition (calolab.geometry.compounds needs Material, defined above).
from calolab.geometry.compounds import BUILTIN_ALIASES, BUILTIN_COMPOUNDS  # noqa: E402

MATERIALS.update(BUILTIN_COMPOUNDS)
_ALIASES.update(BUILTIN_ALIASES)
