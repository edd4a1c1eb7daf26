"""Fast parametrised Monte Carlo of showers in granular calorimeters."""

from calolab.simulation.beam import Beam
from calolab.simulation.deposits import Deposits, to_sparse
from calolab.simulation.em import em_showers
from calolab.simulation.sharded import simulate_sharded
from calolab.simulation.simulate import default_chunk_size, simulate

__all__ = ["Beam", "Deposits", "default_chunk_size", "em_showers", "simulate", "simulate_sharded", "to_sparse"]
