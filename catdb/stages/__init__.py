"""Processing stages: one module a stage, registered with :func:`catdb.stages.base.register`.

``catdb stage list`` shows them; :func:`run_stage` runs one with provenance.
"""
from .base import Param, Stage, StageContext, StageResult, all_stages, get_stage, register, run_stage

__all__ = ["Param", "Stage", "StageContext", "StageResult", "all_stages", "get_stage", "register", "run_stage"]
