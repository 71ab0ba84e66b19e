"""Everything trainwell can build, by area, for ``trainwell list`` and the docs."""
from __future__ import annotations

from trainwell.nn.activations import ACTIVATIONS
from trainwell.nn.init import INITIALIZERS
from trainwell.nn.presets import PRESETS
from trainwell.nn.topologies import TOPOLOGIES
from trainwell.optim.optimizers import OPTIMIZERS
from trainwell.optim.regularizers import REGULARIZERS
from trainwell.optim.schedules import SCHEDULES


def catalogue() -> dict[str, dict[str, str]]:
    """Area -> {spec name -> one-line description}, read from the registries themselves."""
    return {
        "activations": dict(ACTIVATIONS),
        "initializers": dict(INITIALIZERS),
        "optimizers": {name: o.description for name, o in OPTIMIZERS.items()},
        "schedules": dict(SCHEDULES),
        "regularizers": dict(REGULARIZERS),
        "model types": {name: t.description for name, t in TOPOLOGIES.items()},
        "model presets": dict(PRESETS),
    }
