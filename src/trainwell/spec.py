"""``trainwell.spec``: the import path the documentation uses for the spec's sections
(``from trainwell.spec import OptimSpec``, docs/practices/). They are defined in ``trainwell/core/spec.py``,
in the base layer every other package may import (docs/architecture.md); trainwell's own modules import
them from there."""
from trainwell.core.spec import (AugmentSpec, CheckpointSpec, DataSpec, ModelSpec, OptimSpec, RegularizeSpec,
                                 ScheduleSpec, Spec, StopSpec, TrackSpec, TrainSpec)

__all__ = ["AugmentSpec", "CheckpointSpec", "DataSpec", "ModelSpec", "OptimSpec", "RegularizeSpec", "ScheduleSpec",
           "Spec", "StopSpec", "TrackSpec", "TrainSpec"]
