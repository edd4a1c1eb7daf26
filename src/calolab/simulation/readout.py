"""Readout of the active layers: photostatistics, SiPM saturation, electronic noise, threshold.

Each layer's :class:`~calolab.geometry.layer.Readout` turns the energy deposited in a cell
(MeV) into the recorded signal, expressed in MeV of deposit again:

1. photoelectrons N ~ Poisson(E * pe/MeV), the pe/MeV of a layer given per MIP is over its
   MIP MPV;
2. a SiPM of N_pix pixels fires N_pix (1 - exp(-N / N_pix)) of them (no desaturation is
   applied: the signal is what the detector records);
3. each fired pixel or photoelectron has its own gain, so the charge has variance F N for an
   excess noise factor F (a Gamma draw of mean N);
4. Gaussian electronic noise on every cell: on hit cells it is added to the signal, and empty
   cells whose noise passes the threshold become hits (their number drawn per event and layer
   from the Gaussian tail, their cells uniformly in the layer);
5. cells below the threshold, or without signal, are dropped.

A layer with an ideal readout keeps its deposits as they are; a detector whose layers are
all ideal draws nothing.

>>> import numpy as np
>>> from calolab.geometry import Readout, load_detector
>>> det = load_detector("ahcal").with_readout(Readout(photoelectrons_per_mip=15, sipm_pixels=1156))
>>> offsets, cell, energy = read_out(det, np.array([0, 2]), np.array([3, 7]), np.array([0.8, 80.0], np.float32),
...                                  np.random.default_rng(1))
>>> cell.tolist(), bool(energy[1] < 60)  # 80 MeV is about 100 MIPs: about 1,450 pe on 1,156 pixels
([3, 7], True)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.special import ndtr, ndtri

from calolab.geometry import Detector
from calolab.simulation.sampling import gamma_sum


@dataclass(frozen=True)
class LayerReadout:
    """Per-layer readout constants, arrays of shape ``(layers,)`` (0 where a layer has none)."""

    pe_per_mev: np.ndarray
    gain_variance: np.ndarray  # F - 1
    pixels: np.ndarray
    noise_mev: np.ndarray
    threshold_mev: np.ndarray


@lru_cache(maxsize=64)
def layer_readout(detector: Detector) -> LayerReadout | None:
    """The readout constants of every layer, or ``None`` when every layer's readout is ideal."""
    if all(layer.readout.is_ideal for layer in detector.layers):
        return None
    mpv = detector.mip_mpv
    r = [layer.readout for layer in detector.layers]
    return LayerReadout(
        pe_per_mev=np.array([x.pe_per_mev(m) for x, m in zip(r, mpv, strict=True)], float),
        gain_variance=np.array([x.excess_noise_factor - 1.0 for x in r]),
        pixels=np.array([x.sipm_pixels or 0 for x in r], float),
        noise_mev=np.array([x.noise_mip for x in r]) * mpv,
        threshold_mev=np.array([x.threshold_mip for x in r]) * mpv,
    )


def read_out(detector: Detector, offsets: np.ndarray, cell: np.ndarray, energy: np.ndarray,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse hits after the detector's readout.

    Parameters
    ----------
    offsets : int64 (N + 1,)
        Event ``i`` owns hits ``offsets[i]:offsets[i + 1]``.
    cell : (H,)
        Flat cell indices, sorted and unique within an event.
    energy : float32 (H,)
        Deposited (visible) energy, MeV.

    Returns
    -------
    offsets, cell, energy
        The same three arrays for the recorded hits (float32 signal in MeV).
    """
    constants = layer_readout(detector)
    if constants is None:
        return offsets, cell, energy
    per_layer = detector.nx * detector.ny
    layer = cell // per_layer
    signal = energy.astype(np.float64)
    pe = constants.pe_per_mev[layer]
    photo = pe > 0
    if photo.any():
        n = np.zeros(len(signal))
        n[photo] = rng.poisson(signal[photo] * pe[photo])
        pixels = constants.pixels[layer]
        saturating = photo & (pixels > 0)
        n[saturating] = -pixels[saturating] * np.expm1(-n[saturating] / pixels[saturating])
        gain_var = constants.gain_variance[layer]
        gained = photo & (gain_var > 0)
        if gained.any():  # N photoelectrons, each with its own gain: mean N, variance F N
            n[gained] = gamma_sum(n[gained], gain_var[gained], rng)
        signal[photo] = n[photo] / pe[photo]
    event = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    noise = constants.noise_mev[layer]
    if np.any(constants.noise_mev > 0):
        signal += noise * rng.standard_normal(len(signal))
        event, cell, signal = _with_noise_hits(detector, constants, len(offsets) - 1, event, cell, signal, rng)
        layer = cell // per_layer
    keep = (signal > 0) & (signal >= constants.threshold_mev[layer])
    event, cell, signal = event[keep], cell[keep], signal[keep]
    new_offsets = np.concatenate([[0], np.cumsum(np.bincount(event, minlength=len(offsets) - 1))])
    return new_offsets, cell, signal.astype(np.float32)


def _with_noise_hits(detector: Detector, constants: LayerReadout, n_events: int, event: np.ndarray,
                     cell: np.ndarray, signal: np.ndarray,
                     rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Add the empty cells whose noise passes the threshold, as (event, cell, signal) sorted by event and cell."""
    noisy = np.flatnonzero(constants.noise_mev > 0)
    tail = ndtr(-constants.threshold_mev[noisy] / constants.noise_mev[noisy])  # P(noise > threshold)
    offsets, cells = detector.readout_cells  # every layer's readout cells
    readout_cells = np.diff(offsets)[noisy]
    counts = rng.poisson(readout_cells * tail, size=(n_events, len(noisy)))  # (N, noisy layers)
    ev, which = np.nonzero(counts)
    reps = counts[ev, which]
    ev, which = np.repeat(ev, reps), np.repeat(which, reps)
    layer = noisy[which]
    new_cell = cells[offsets[layer] + rng.integers(0, readout_cells[which])]
    # the noise above threshold: the Gaussian tail beyond it, by inversion
    new_signal = constants.noise_mev[layer] * -ndtri((1.0 - rng.random(len(layer))) * tail[which])
    all_event = np.concatenate([event, ev])
    all_cell = np.concatenate([cell, new_cell.astype(cell.dtype)])
    key = all_event.astype(np.int64) * detector.n_cells + all_cell
    _, first = np.unique(key, return_index=True)  # sorted; a hit cell keeps its own signal
    return all_event[first], all_cell[first], np.concatenate([signal, new_signal])[first]
