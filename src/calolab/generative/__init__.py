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
on the shared two-core machine while another job kept the other core busy:

* layerwise (``calolab generate train --model layerwise --seed 1``: 240 layouts x 250
  electrons at 0.5-150 GeV, 80 epochs, centre-of-gravity latent, 1121 s of training): mean
  energy sum within 0.4% from 5 GeV up and -1.4% at 1 GeV (floor -0.8%), mean hits within
  0.7%. Every layer's mean energy within 5% from 20 GeV up; at 1, 5 and 10 GeV 14 of 15 (the
  one outside is a far-tail layer, 5.6-7.6% off with 3-4% errors). With 16000 events (``-n
  16000 --energies 1,5,10``): all 15 layers within 5% at 5 and 10 GeV; at 1 GeV 12 of 15, the
  last three layers (0.6% of the energy) 7-10% low by 1.6-2.8 standard errors, where the
  simulator against itself misses 2. Classifier AUC high-level 0.583, 0.537, 0.537, 0.548,
  0.536, 0.550 and low-level 0.496-0.575 at 1-100 GeV; floor 0.478-0.517 high, 0.494-0.524
  low. One AUC scatters by 0.011-0.015 (standard deviation over 5 classifier seeds x 2
  generated samples, measured on the previous model). Speed: 8.9k generated against the
  simulator's 6.7k events/s over 1-100 GeV log-uniform (1.34x), 0.97x at 1 and 5 GeV, 1.02x at
  10 GeV, 1.3x to 3.4x from 20 to 100 GeV. Trained on 0.8-150 GeV instead, the first layer at
  1 GeV came out 8.0 +- 1.1% low (16000 events): 1 GeV sat at the edge of the training range.
* wgan (not measured again; ``--model wgan --events 50000 --energy-range 1GeV:100GeV --epochs 5
  --seed 1``, an option that then had no effect: it trained on the dataset's default range; 1397 s
  of training on a busy machine): energy sum -29% to +30%, hits -1.6% to -11%, AUC 1.0,
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
