"""Muon features of paper 003 (multi-TeV muon energy from radiative losses in PbWO4).

The muon's track is the straight line from ``entry`` along ``direction``: in layer ``l``
it crosses the middle of the active slab (depth ``z_active[l]``) at
``entry + z * (dx/dz, dy/dz)``, in cell ``(ix_t, iy_t)``. The track bends in the field,
but for the multi-TeV muons of the paper the bend is below a cell: in ``pbwo4`` (2 T,
2032 mm, 3.75 mm cells) a muon drifts 0.3 B L^2 / (2 p) = 24 mm from its entry tangent
at 50 GeV, 1.2 mm at 1 TeV, and less than a cell above about 320 GeV. Below that the
"on track" features smear out; the regressors see it in the data.

Above a few TeV that sub-cell bend is the calorimeter's best measure of the energy: the muon's
radiative losses shower around the bent track, so the share of their energy on either side of
the boundary between the two cell columns nearest the straight track follows its displacement
(``bend_x_mm``; the field of every calolab detector lies along y and bends tracks in x). The
bend is read against the straight track from ``entry`` along ``direction``, so it is only as
good as they are (the muon study's ``track_sigma_mm`` and ``track_sigma_mrad`` smear them).

A hit's distance from the track is ``d = max(|ix - ix_t|, |iy - iy_t|)`` in cells. The features
need a Cartesian grid: on a cylindrical detector (alpha, r bins) they raise
:class:`~calolab.errors.CalolabError`.
Names, in order (``{r}`` for each track radius, ``{t}`` for each layer threshold):

=================================  ==========================================================
``e_track_{r}``                    visible energy with ``d <= r`` (``r = 0``: the track cell), MeV
``e_off_track``                    visible energy beyond the largest radius, MeV
``imbalance_x_mm``,                energy-weighted mean transverse offset (x, y) of the hits
``imbalance_y_mm``, ``imbalance_mm``  from the track, and its magnitude, mm
``mean_distance_mm``               energy-weighted mean transverse distance from the track, mm
``bend_x_mm``                      displacement in x at the back face, mm: the offsets ``c_l`` of
                                   the energy centroid of the two cell columns nearest the straight
                                   track in each layer (less the muon's own MIP, taken in the
                                   track's cell; layers with no more than that MIP skipped), fitted
                                   to ``c_l = k u_l`` with ``u_l = z_l^2 / 2`` from the front face
                                   and weights the columns' energy; ``k u`` at the last layer
``e_cell_max``                     hottest cell, MeV
``e_layer_max``                    hottest layer, MeV
``n_layers_above_{t}mip``          layers with at least ``t`` MIPs of visible energy
``n_cells_cluster``                cells at or above the cluster threshold
``n_clusters``,                    clusters: 26-connected groups of such cells; *on track* when
``n_clusters_off_track``           one of their cells has ``d <= 1``
``e_clusters_on_track``,           energy in clusters on and off the track, MeV
``e_clusters_off_track``
``e_cluster_max``,                 largest cluster, and largest off-track cluster, MeV
``e_cluster_max_off_track``
``e_box3_max_off_track``           largest 3x3x3 sum centred on a hit with ``d >= 2`` (so the
                                   box never holds the track cell), MeV
=================================  ==========================================================

>>> import numpy as np
>>> from calolab.geometry import load_detector
>>> from calolab.showers import Showers
>>> det = load_detector("pbwo4")
>>> dense = np.zeros((1, *det.shape), np.float32); dense[0, :, 16, 16] = 40.0; dense[0, 10, 20, 16] = 500.0
>>> x, names = muon_features(Showers.from_dense(det, dense, particle=13, incident_energy=[1e6],
...                                             entry=[[1.0, 1.0]]))
>>> [float(x[0, names.index(k)]) for k in ("e_track_0", "e_off_track", "e_box3_max_off_track")]
[2000.0, 500.0, 500.0]
"""

from __future__ import annotations

import numpy as np

from calolab.errors import CalolabError
from calolab.reconstruction.features import _label
from calolab.reconstruction.hits import HitGrid, event_max, in_event_chunks
from calolab.showers import Showers

DEFAULT_TRACK_RADII = (0, 1, 2)
DEFAULT_LAYER_THRESHOLDS_MIP = (2.0, 10.0, 50.0)
DEFAULT_CLUSTER_MIP = 2.0


def track_cells(showers: Showers, grid: HitGrid) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Straight track at each hit's layer: cell indices ``(ix_t, iy_t)`` (int64) and position ``(x_t, y_t)`` mm."""
    det = showers.detector
    _require_grid(det, "track_cells")
    slope = showers.direction[:, :2] / np.maximum(showers.direction[:, 2:3], 1e-9)  # (N, 2)
    z = det.z_active[grid.layer]
    x_t = showers.entry[grid.event, 0] + slope[grid.event, 0] * z
    y_t = showers.entry[grid.event, 1] + slope[grid.event, 1] * z
    ix_t = np.floor((x_t - det.x_edges[0]) / det.pitch_x).astype(np.int64)
    iy_t = np.floor((y_t - det.y_edges[0]) / det.pitch_y).astype(np.int64)
    return ix_t, iy_t, x_t, y_t


def _require_grid(det, feature: str) -> None:
    if det.cylinder is not None:
        raise CalolabError(f"{feature}: detector {det.name!r} has cylindrical (alpha, r) cells; the track-cell "
                           "distances and x columns of the muon features need a Cartesian grid")


def muon_feature_names(track_radii=DEFAULT_TRACK_RADII, layer_thresholds_mip=DEFAULT_LAYER_THRESHOLDS_MIP) -> list[str]:
    """Names of :func:`muon_features` for these radii and thresholds."""
    return ([f"e_track_{r}" for r in track_radii] + ["e_off_track", "imbalance_x_mm", "imbalance_y_mm", "imbalance_mm",
                                                     "mean_distance_mm", "bend_x_mm", "e_cell_max", "e_layer_max"]
            + [f"n_layers_above_{_label(t)}mip" for t in layer_thresholds_mip]
            + ["n_cells_cluster", "n_clusters", "n_clusters_off_track", "e_clusters_on_track",
               "e_clusters_off_track", "e_cluster_max", "e_cluster_max_off_track", "e_box3_max_off_track"])


def muon_features(showers: Showers, track_radii=DEFAULT_TRACK_RADII,
                  layer_thresholds_mip=DEFAULT_LAYER_THRESHOLDS_MIP,
                  cluster_mip: float = DEFAULT_CLUSTER_MIP) -> tuple[np.ndarray, list[str]]:
    """Track, imbalance, cluster and hot-spot features of every event (see the module docstring).

    Parameters
    ----------
    showers
        Any batch; ``entry`` (mm) and ``direction`` define the track.
    track_radii
        Chebyshev radii in cells for ``e_track_{r}``.
    layer_thresholds_mip
        Layer-energy thresholds in MIPs (``detector.mip_mpv``) for ``n_layers_above``.
    cluster_mip
        Cell threshold for clustering, in MIPs of the cell's layer.

    Returns
    -------
    features : float32 (N, F)
    names : list of F str
    """
    _require_grid(showers.detector, "muon_features")
    chunked = in_event_chunks(muon_features, showers, track_radii, layer_thresholds_mip, cluster_mip)
    if chunked is not None:
        return chunked
    det = showers.detector
    n = len(showers)
    grid = HitGrid(showers)
    e = grid.energy
    ix_t, iy_t, x_t, y_t = track_cells(showers, grid)
    dist = np.maximum(np.abs(grid.ix - ix_t), np.abs(grid.iy - iy_t))
    cols: list[np.ndarray] = [grid.event_sum(np.where(dist <= r, e, 0.0)) for r in track_radii]
    cols.append(grid.event_sum(np.where(dist > max(track_radii), e, 0.0)))

    total = grid.event_sum(e)
    off_x = det.x_edges[0] + (grid.ix + 0.5) * det.pitch_x - x_t
    off_y = det.y_edges[0] + (grid.iy + 0.5) * det.pitch_y - y_t
    mean_x, mean_y = (np.divide(grid.event_sum(e * v), total, out=np.zeros(n), where=total > 0) for v in (off_x, off_y))
    mean_r = np.divide(grid.event_sum(e * np.hypot(off_x, off_y)), total, out=np.zeros(n), where=total > 0)
    cols += [mean_x, mean_y, np.hypot(mean_x, mean_y), mean_r, _bend_x(showers, grid, ix_t, x_t, off_x)]

    cols.append(event_max(e, grid.event, n))
    layer_sums = np.bincount(grid.event * det.n_layers + grid.layer, weights=e,
                             minlength=n * det.n_layers).reshape(n, det.n_layers)
    cols.append(layer_sums.max(axis=1) if n else np.zeros(0))
    cols += [np.sum(layer_sums >= t * det.mip_mpv, axis=1) for t in layer_thresholds_mip]

    cols += _cluster_features(showers, grid, dist, cluster_mip)
    box = grid.box_sum(e, layers=1, cells=1)
    cols.append(grid.event_max(box, mask=dist >= 2))

    names = muon_feature_names(track_radii, layer_thresholds_mip)
    out = np.column_stack(cols).astype(np.float32) if n else np.zeros((0, len(names)), np.float32)
    return out, names


def _bend_x(showers: Showers, grid: HitGrid, ix_t: np.ndarray, x_t: np.ndarray, off_x: np.ndarray) -> np.ndarray:
    """``bend_x_mm`` of every event (see the module docstring), (N,)."""
    det = showers.detector
    n, n_layers = len(showers), det.n_layers
    # the two columns nearest the straight track: its own and the neighbour on its side of the cell centre
    side = np.where((x_t - det.x_edges[0]) / det.pitch_x - ix_t < 0.5, -1, 1)
    near = (grid.ix == ix_t) | (grid.ix == ix_t + side)
    key = grid.event * n_layers + grid.layer
    num = np.bincount(key, weights=np.where(near, grid.energy * off_x, 0.0), minlength=n * n_layers)
    den = np.bincount(key, weights=np.where(near, grid.energy, 0.0), minlength=n * n_layers)
    # the muon's own MIP in the track's cell, whose centre is off_x of any hit in that cell
    track_off = np.zeros(n * n_layers)
    track_off[key] = det.x_edges[0] + (ix_t + 0.5) * det.pitch_x - x_t
    mip = np.tile(det.mip_mpv, n)
    shower = den > mip * (1 + 1e-4)  # float32 hits: a lone MIP may sum to a hair above the float64 MPV
    num = np.where(shower, num - mip * track_off, 0.0).reshape(n, n_layers)
    den = np.where(shower, den - mip, 0.0).reshape(n, n_layers)
    u = (det.z_active - det.z_bounds[0]) ** 2 / 2
    weight = den @ (u * u)
    return np.divide(u[-1] * (num @ u), weight, out=np.zeros(n), where=weight > 0)


def _cluster_features(showers: Showers, grid: HitGrid, dist: np.ndarray, cluster_mip: float) -> list[np.ndarray]:
    """Connected components (26-neighbourhood) of the hits above threshold, summarised per event."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(showers)
    keep = grid.energy >= cluster_mip * showers.detector.mip_mpv[grid.layer]
    sub = grid.subset(keep)
    near = dist[keep] <= 1
    m = len(sub)
    # each undirected edge once: the 13 offsets that come after (0, 0, 0) in (layer, x, y) order
    forward = [o for o in sub.offsets(1, 1) if o > (0, 0, 0)]
    rows, cols = [], []
    for o in forward:
        j = sub.neighbour(*o)
        rows.append(np.flatnonzero(j >= 0))
        cols.append(j[j >= 0])
    i, j = (np.concatenate(rows), np.concatenate(cols)) if rows else (np.zeros(0, int), np.zeros(0, int))
    n_labels, label = connected_components(coo_matrix((np.ones(len(i)), (i, j)), shape=(m, m)), directed=False)
    energy = np.bincount(label, weights=sub.energy, minlength=n_labels)
    event = np.zeros(n_labels, np.int64)
    event[label] = sub.event
    on_track = np.bincount(label, weights=near, minlength=n_labels) > 0
    order = np.argsort(event, kind="stable")  # event_max needs clusters grouped by event
    energy, event, on_track = energy[order], event[order], on_track[order]
    off = ~on_track
    return [
        np.bincount(sub.event, minlength=n),
        np.bincount(event, minlength=n),
        np.bincount(event[off], minlength=n),
        np.bincount(event, weights=np.where(on_track, energy, 0.0), minlength=n),
        np.bincount(event, weights=np.where(off, energy, 0.0), minlength=n),
        event_max(energy, event, n),
        event_max(energy[off], event[off], n),
    ]
