"""High-level shower features for energy regression (trees, and the body of the CNNs).

All features are computed from the sparse hits of a :class:`~calolab.showers.Showers`
batch in one pass, vectorised over hits (per-event sums with ``np.bincount``, maxima with
``np.maximum.reduceat``); an event's features depend on its own hits only, so any slice
of a batch gives the same rows as the whole batch. Names, in order (``{t}`` for each MIP
threshold, ``{k}`` for each depth segment):

================================  ============================================================
``e_visible``                     visible energy, MeV
``e_weighted``                    sampling-weighted sum (:func:`~calolab.reconstruction.sums.weighted_sum`), MeV
``e_above_{t}mip``                visible energy in hits at or above ``t`` MIPs of their layer, MeV
``e_below_{t}mip``                visible energy in hits below ``t`` MIPs, MeV
``n_above_{t}mip``                number of hits at or above ``t`` MIPs
``e_seg{k}``                      sampling-weighted energy of depth segment ``k``, MeV
``n_hits``, ``n_hits_seg{k}``     hit counts, all and per segment
``z_mean_mm``, ``x_mean_mm``,     energy-weighted centroid: depth of the active slab from the front
``y_mean_mm``                     face, and transverse position of the cell centre, mm
``z_std_mm``, ``r_std_mm``        longitudinal width, and transverse width sqrt(var x + var y), mm
``z_skew``                        skewness of the depth distribution
``start_layer``                   first layer with at least ``start_mip`` MIPs (shower start);
                                  ``n_layers`` if none
``max_layer``                     layer with the most visible energy
``density_mip``                   local energy density: energy-weighted mean over hits of the
                                  visible energy in the hit's 3x3 cells of its layer, in MIPs
                                  (on a cylindrical detector 3 alpha x 3 r bins, not wrapped
                                  around alpha = +-pi)
``hottest_fraction``              visible energy of the hottest cell / ``e_visible``
================================  ============================================================

Moments weight hits by their sampling-weighted energy. Events without hits get 0 for
every moment. Depth segments are contiguous groups of layers, as equal in number as
possible (:func:`segment_index`), so ``F`` stays modest for the 75 layers of ``cusi``.

>>> import numpy as np
>>> from calolab.geometry import Detector
>>> from calolab.showers import Showers
>>> det = Detector.from_dict({"name": "toy", "cells": {"nx": 4, "ny": 4, "pitch": 10.0},
...     "layers": [{"active": "PbWO4", "active_thickness": 10, "repeat": 4}]})
>>> dense = np.zeros((1, 4, 4, 4), np.float32); dense[0, 1, 2, 2] = 30.0; dense[0, 2, 2, 2] = 10.0
>>> x, names = high_level_features(Showers.from_dense(det, dense, particle=211, incident_energy=[1e3]), segments=2)
>>> x.shape, names[:2]
((1, 26), ['e_visible', 'e_weighted'])
>>> float(x[0, names.index("z_mean_mm")])  # (15 mm * 30 + 25 mm * 10) / 40
17.5
"""

from __future__ import annotations

import numpy as np

from calolab.errors import CalolabError
from calolab.reconstruction.hits import HitGrid, event_max, in_event_chunks
from calolab.reconstruction.sums import layer_weights
from calolab.showers import Showers

DEFAULT_THRESHOLDS_MIP = (0.5, 5.0, 20.0)
DEFAULT_SEGMENTS = 10


def segment_index(n_layers: int, segments: int) -> np.ndarray:
    """Depth segment of each layer: ``segments`` contiguous groups, int64 (n_layers,).

    >>> segment_index(5, 2).tolist()
    [0, 0, 0, 1, 1]
    """
    if segments < 1:
        raise CalolabError(f"segments must be >= 1, got {segments}")
    segments = min(segments, n_layers)
    return (np.arange(n_layers) * segments) // n_layers


def segment_sums(showers: Showers, segments: int = DEFAULT_SEGMENTS, weighted: bool = True) -> np.ndarray:
    """Energy per depth segment, MeV, float64 (N, min(segments, layers)).

    With ``weighted`` each layer is multiplied by its sampling weight (the MIP scale of
    :func:`~calolab.reconstruction.sums.weighted_sum`); otherwise the visible energy.
    """
    det = showers.detector
    layers = showers.layer_sums()
    if weighted:
        layers = layers * layer_weights(det)
    seg = segment_index(det.n_layers, segments)
    out = np.zeros((len(showers), seg.max() + 1))
    np.add.at(out.T, seg, layers.T)
    return out


def _label(t: float) -> str:
    return f"{t:g}".replace(".", "p")


def feature_names(n_segments: int, thresholds_mip=DEFAULT_THRESHOLDS_MIP) -> list[str]:
    """Names of :func:`high_level_features` for ``n_segments`` segments and these thresholds."""
    labels = [_label(t) for t in thresholds_mip]
    return (["e_visible", "e_weighted"]
            + [f"e_above_{t}mip" for t in labels] + [f"e_below_{t}mip" for t in labels]
            + [f"n_above_{t}mip" for t in labels]
            + [f"e_seg{k}" for k in range(n_segments)]
            + ["n_hits"] + [f"n_hits_seg{k}" for k in range(n_segments)]
            + ["z_mean_mm", "x_mean_mm", "y_mean_mm", "z_std_mm", "r_std_mm", "z_skew", "start_layer", "max_layer",
               "density_mip", "hottest_fraction"])


def high_level_features(showers: Showers, thresholds_mip=DEFAULT_THRESHOLDS_MIP, segments: int = DEFAULT_SEGMENTS,
                        start_mip: float = 4.0) -> tuple[np.ndarray, list[str]]:
    """High-level features of every event.

    Parameters
    ----------
    showers
        Any batch (or slice of one).
    thresholds_mip
        Hit thresholds in MIPs of each layer (``detector.mip_mpv``).
    segments
        Number of depth segments for the per-segment sums and hit counts (at most the
        number of layers).
    start_mip
        Layer energy, in MIPs, that marks the shower start.

    Returns
    -------
    features : float32 (N, F)
    names : list of F str
        See the module docstring.
    """
    chunked = in_event_chunks(high_level_features, showers, thresholds_mip, segments, start_mip)
    if chunked is not None:
        return chunked
    det = showers.detector
    n = len(showers)
    grid = HitGrid(showers)
    mip = det.mip_mpv[grid.layer]
    e = grid.energy  # visible MeV (n_hits,)
    w = e * layer_weights(det)[grid.layer]  # sampling-weighted MeV
    seg = segment_index(det.n_layers, segments)
    n_seg = int(seg.max()) + 1
    cols: list[np.ndarray] = []

    e_visible = grid.event_sum(e)
    e_weighted = grid.event_sum(w)
    cols += [e_visible, e_weighted]
    above = [e >= t * mip for t in thresholds_mip]
    cols += [grid.event_sum(np.where(a, e, 0.0)) for a in above]
    cols += [grid.event_sum(np.where(a, 0.0, e)) for a in above]
    cols += [grid.event_count(a) for a in above]

    hit_seg = seg[grid.layer]
    seg_key = grid.event * n_seg + hit_seg
    cols += list(np.bincount(seg_key, weights=w, minlength=n * n_seg).reshape(n, n_seg).T)
    cols.append(grid.event_count())
    cols += list(np.bincount(seg_key, minlength=n * n_seg).reshape(n, n_seg).T)

    cols += _moments(grid, w, det)

    layer_sums = np.bincount(grid.event * det.n_layers + grid.layer, weights=e,
                             minlength=n * det.n_layers).reshape(n, det.n_layers)
    started = layer_sums >= start_mip * det.mip_mpv
    cols.append(np.where(started.any(axis=1), started.argmax(axis=1), det.n_layers))
    cols.append(layer_sums.argmax(axis=1))

    density = grid.box_sum(e / mip, layers=0, cells=1)  # MIPs in the 3x3 cells around each hit
    cols.append(_safe_ratio(grid.event_sum(e * density), e_visible))
    cols.append(_safe_ratio(event_max(e, grid.event, n), e_visible))

    names = feature_names(n_seg, thresholds_mip)
    out = np.column_stack(cols).astype(np.float32) if n else np.zeros((0, len(names)), np.float32)
    return out, names


def _safe_ratio(num: np.ndarray, den: np.ndarray, tiny: float = 0.0) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > tiny)


def _moments(grid: HitGrid, w: np.ndarray, det) -> list[np.ndarray]:
    """Energy-weighted centroid (z, x, y), widths (z, r) and depth skewness, each (N,).

    Computed from the per-event projections on depth, x and y (one ``bincount`` over the hits
    each), so the cost barely grows with the number of hits (noise-flooded events). On a
    cylindrical detector x and y are those of the bin centres (``Detector.cell_centres``).
    """
    n = grid.n_events
    _, nx, ny = grid.shape

    def projection(index: np.ndarray, size: int) -> np.ndarray:
        return np.bincount(grid.event * size + index, weights=w, minlength=n * size).reshape(n, size)

    w_z = projection(grid.layer, det.n_layers)
    total = w_z.sum(axis=1)
    z = det.z_active

    def mean(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
        return _safe_ratio((weights * values).sum(axis=1), total)

    zm = mean(w_z, z)
    if det.cylinder is not None:  # a bin's x and y depend on both its alpha and r: sum over the hits
        cx, cy = det.cell_centres(grid.layer, grid.ix, grid.iy)
        xm, ym = _safe_ratio(grid.event_sum(w * cx), total), _safe_ratio(grid.event_sum(w * cy), total)
        var_r = _safe_ratio(grid.event_sum(w * ((cx - xm[grid.event]) ** 2 + (cy - ym[grid.event]) ** 2)), total)
    else:
        w_x, w_y = projection(grid.ix, nx), projection(grid.iy, ny)
        x = det.x_edges[0] + (np.arange(nx) + 0.5) * det.pitch_x
        y = det.y_edges[0] + (np.arange(ny) + 0.5) * det.pitch_y
        xm, ym = mean(w_x, x), mean(w_y, y)
        var_r = mean(w_x, (x - xm[:, None]) ** 2) + mean(w_y, (y - ym[:, None]) ** 2)
    dz = z - zm[:, None]
    var_z = mean(w_z, dz**2)
    z_std = np.sqrt(var_z)
    skew = _safe_ratio(mean(w_z, dz**3), z_std**3, tiny=1e-9)  # 0 for showers in one layer
    return [zm, xm, ym, z_std, np.sqrt(var_r), skew]
