"""mmengine adapters for SR (the only sr modules that import mmengine): the model, the BasicSR-exact
metric and the pruning hooks."""

from mnemovision.sr.engine.hooks import FilterPruneHook, ISSPHook, MagnitudePruneHook, MaskedTrainingHook
from mnemovision.sr.engine.model import SRMetric, SRModel, to_uint8

__all__ = ["FilterPruneHook", "ISSPHook", "MagnitudePruneHook", "MaskedTrainingHook", "SRMetric", "SRModel", "to_uint8"]
