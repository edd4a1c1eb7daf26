"""Differentiable generative shower models of ``siw-ecal`` with varied absorbers (paper 004).

Two models, conditioned on the incident energy and on the 15 tungsten thicknesses (X0):

* ``wgan`` (:mod:`~calolab.generative.wgan`): the paper's conditional 2D WGAN-GP with
  energy-sum and hit-count conservation penalties;
* ``layerwise`` (:mod:`~calolab.generative.layerwise`): calolab's layer-by-layer
  autoregressive model (total energy, the shower's centre of gravity, stick-breaking layer
  shares, hit counts, radial placement without replacement, hit energies), fitted by maximum
  likelihood.

Pipeline: :func:`build_dataset` (simulated layouts, :mod:`~calolab.generative.data`) ->
:func:`train` (run folder, resumable, :mod:`~calolab.generative.train`) -> :func:`load_model`
and :func:`generate` (:mod:`~calolab.generative.sample`) -> ``Showers``. The command-line
face is :mod:`~calolab.generative.commands`. Names are imported on first use, so that the
commands load without torch.

Measured with ``calolab generate benchmark RUN -o OUT`` (defaults: prototype layout; 4000
simulated, 4000 independently simulated and 4000 generated electrons at each of 1, 5, 10, 20,
50, 100 GeV; one torch thread; speeds the best of three alternating timings after a warm-up)
on the shared two-core machine while another engineer's job kept one core busy (load average
2.5-2.9):

* layerwise (``calolab generate train --model layerwise --seed 1``: 240 layouts x 250
  electrons at 0.8-150 GeV, 80 epochs, centre-of-gravity latent, 774 s of training on the
  other core): mean energy sum within 0.6% from 5 GeV up and -1.5% at 1 GeV (floor -0.8%),
  mean hits within 0.7%; every layer's mean energy within 5% or 2 standard errors from 5 GeV
  up except layer 12 at 10 GeV (+5.3 +- 1.9%; with 16000 events every layer within 3% at 5 and
  10 GeV); at 1 GeV 13 of 15 layers within 5%, as the floor. Classifier AUC high-level 0.582,
  0.550, 0.544, 0.552, 0.543, 0.593 and low-level 0.486-0.580 at 1-100 GeV; floor 0.478-0.517
  high, 0.494-0.524 low. One AUC scatters by 0.011-0.015 (standard deviation over 5 classifier
  seeds x 2 generated samples, 0.007-0.017 for the floor); at 100 GeV 0.587 +- 0.015 (the
  previous model's 0.705 was 0.70 within that). Speed: 11.9k generated against the simulator's
  9.8k events/s over 1-100 GeV log-uniform (1.22x), 0.90x at 1 GeV, 1.00x at 5 GeV, 1.04x at
  10 GeV, 1.3x to 2.9x from 20 to 100 GeV.
* wgan (not measured again; ``--model wgan --events 50000 --energy-range 1GeV:100GeV --epochs 5
  --seed 1``, 1397 s of training on a busy machine): energy sum -29% to +30%, hits -1.6% to -11%, AUC 1.0,
  about 1.2k events/s.
"""

from importlib import import_module

_EXPORTS = {
    "DatasetConfig": "data",
    "GenerativeDataset": "data",
    "build_dataset": "data",
    "save_dataset": "data",
    "load_dataset": "data",
    "make_conditions": "data",
    "with_absorbers": "data",
    "absorber_x0": "data",
    "LayerwiseConfig": "layerwise",
    "LayerwiseModel": "layerwise",
    "WGANConfig": "wgan",
    "WGAN": "wgan",
    "TrainConfig": "train",
    "train": "train",
    "TrainedModel": "sample",
    "load_model": "sample",
    "generate": "sample",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"calolab.generative.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'calolab.generative' has no attribute {name!r}")
