"""The stage framework: the one mechanism every processing stage uses.

A stage is a class registered with :func:`register` in its own module under
``catdb/stages/``.  :func:`run_stage`

1. records a ``stage_run`` row (name, parameters, catdb version, status
   ``running``) and commits it, so even a crash leaves a trace;
2. in ONE transaction: selects the inputs (by default science exposures
   matching ``--where``), deletes what earlier runs of the same stage wrote
   for those inputs (re-running replaces instead of duplicating), runs the
   stage, and stores the input ids and output counts with status ``ok``;
3. on error rolls that transaction back (nothing half-written) and marks the
   run ``failed`` with the error message.

No stage imports another; shared algorithms live in :mod:`catdb.algorithms`.
"""
from __future__ import annotations

import importlib
import json
import logging
import math
import pkgutil
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg import sql
from psycopg.pq import TransactionStatus

from ..db.engine import connect
from ..db.provenance import exposure_set_condition, fail_run, finish_run, start_run
from ..db.revision import require_head
from ..errors import CatdbError, StageError

# provenance (start_run, finish_run, fail_run, reap_dead_runs) lives in catdb.db.provenance
__all__ = ["Param", "Stage", "StageContext", "StageResult", "all_stages", "get_stage", "register", "run_stage"]

log = logging.getLogger("catdb.stages")

_REGISTRY: dict[str, type[Stage]] = {}


@dataclass
class Param:
    """A stage parameter: ``--param name=value`` or the stage's own option."""

    name: str
    type: Callable = str
    default: Any = None
    help: str = ""
    choices: tuple | None = None

    def parse(self, value):
        if value is None:
            return None
        if self.type is bool and isinstance(value, str):
            v = value.strip().lower()
            if v in ("1", "true", "yes", "on"):
                return True
            if v in ("0", "false", "no", "off"):
                return False
            raise CatdbError(f"parameter {self.name}: expected true/false, got {value!r}")
        try:
            out = self.type(value)
        except (TypeError, ValueError):
            raise CatdbError(f"parameter {self.name}: expected {self.type.__name__}, got {value!r}") from None
        if self.type is float and not math.isfinite(out):  # NaN/inf: no threshold, and not storable as JSON
            raise CatdbError(f"parameter {self.name}: expected a finite number, got {value!r}")
        if self.choices and out not in self.choices:
            raise CatdbError(f"parameter {self.name}: expected one of {self.choices}, got {value!r}")
        return out


@dataclass
class StageContext:
    """What a stage's ``select`` and ``run`` receive."""

    conn: Any  # psycopg.Connection, inside the run's transaction
    run_id: int
    params: dict
    where: str | None
    inputs: list = field(default_factory=list)
    progress: bool = True
    counts: dict = field(default_factory=dict)
    #: name of the exposure set (``--exposures``) the inputs were restricted to; already part of ``where``
    exposures: str | None = None
    #: True when the run's transaction is the connection's outermost one, so the run commits
    #: when it ends (False inside a caller's open transaction: locks last until the caller commits)
    commits: bool = True

    def execute(self, query, params=None):
        return self.conn.execute(query, params)


class Stage:
    """Base class of a stage.

    Subclasses set ``name``, ``description``, ``params`` and implement
    :meth:`run`; they may override :meth:`select` (inputs) and
    :meth:`replace` (removal of earlier results for the same inputs).

    Attributes
    ----------
    outputs : list of str
        Tables with ``exposure_id`` and ``stage_run_id`` columns that the
        stage writes; the default :meth:`replace` deletes rows of earlier runs
        of this stage for the selected exposures.
    """

    name: str = ""
    description: str = ""
    params: list[Param] = []
    outputs: list[str] = []
    #: default input selection (SQL condition on exposure, alias e): science exposures, except those
    #: the reduce stage left out (quality bit ``not_reduced`` = 32, e.g. focus-run subframes), which
    #: no later stage can use; ``--where`` narrows this further.  The reduce stage itself selects
    #: every science exposure so that a re-run reconsiders them.
    default_where: str = "e.image_type = 'science' AND (e.quality_flags & 32) = 0"
    #: parameters that name the output set (e.g. the veto survivor set): an earlier run is
    #: marked ``replaced`` only when these equal the new run's
    scope_params: tuple = ()
    #: True when an earlier run is replaced only by a run on exactly the same inputs (coadds)
    exact_inputs: bool = False

    def param_defaults(self) -> dict:
        return {p.name: p.default for p in self.params}

    def parse_params(self, given: dict | None) -> dict:
        out = self.param_defaults()
        known = {p.name: p for p in self.params}
        for k, v in (given or {}).items():
            if k not in known:
                raise CatdbError(f"stage {self.name}: unknown parameter {k!r}; known: {', '.join(known) or 'none'}")
            # strings are parsed; Python floats are checked (finite) the same way
            out[k] = known[k].parse(v) if isinstance(v, str) or (known[k].type is float and isinstance(v, float)) \
                else v
        return out

    def select(self, ctx: StageContext) -> list[int]:
        """Input exposure ids: science exposures matching ``--where`` (alias ``e`` for exposure)."""
        q = sql.SQL("SELECT e.id FROM exposure e WHERE {d}").format(d=sql.SQL(self.default_where))
        if ctx.where:
            q = q + sql.SQL(" AND ({w})").format(w=sql.SQL(ctx.where))
        q = q + sql.SQL(" ORDER BY e.id")
        # prepared (extended protocol): a --where holding "...; other statement" is a parse error
        return [r[0] for r in ctx.conn.execute(q, prepare=True).fetchall()]

    def replace(self, ctx: StageContext) -> int:
        """Delete what earlier runs of this stage wrote for the selected inputs; returns rows deleted."""
        n = 0
        for table in self.outputs:
            cur = ctx.conn.execute(
                sql.SQL("DELETE FROM {t} WHERE exposure_id = ANY(%s) AND stage_run_id IN "
                        "(SELECT id FROM stage_run WHERE stage = %s AND id <> %s)").format(t=sql.Identifier(table)),
                (ctx.inputs, self.name, ctx.run_id))
            n += cur.rowcount
        return n

    def run(self, ctx: StageContext) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError


def register(cls: type[Stage]) -> type[Stage]:
    """Class decorator adding a stage to the registry."""
    if not cls.name:
        raise ValueError(f"{cls} has no name")
    _REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    for mod in pkgutil.iter_modules([str(Path(__file__).parent)]):  # the modules of catdb.stages
        if mod.name not in ("base",) and not mod.name.startswith("_"):
            importlib.import_module(f"{__package__}.{mod.name}")


def all_stages() -> dict[str, type[Stage]]:
    """Registered stages by name (imports every module under catdb/stages)."""
    _discover()
    return dict(sorted(_REGISTRY.items()))


def get_stage(name: str) -> Stage:
    stages = all_stages()
    if name not in stages:
        raise CatdbError(f"no stage named {name!r}; known stages: {', '.join(stages)}")
    return stages[name]()


@dataclass
class StageResult:
    run_id: int
    stage: str
    status: str
    input_count: int
    counts: dict


def run_stage(name: str, *, conn=None, url=None, where: str | None = None, params: dict | None = None,
              progress: bool = True, exposures: str | None = None) -> StageResult:
    """Run a registered stage with provenance (see the module docstring).

    Parameters
    ----------
    name : str
        Stage name (``catdb stage list``).
    conn : psycopg.Connection, optional
        Connection to use (not in autocommit); otherwise one is opened from ``url``.
    where : str, optional
        SQL condition on ``exposure`` (alias ``e``) narrowing the inputs.
    params : dict, optional
        Stage parameters (strings are parsed with the parameter's type).
    exposures : str, optional
        Name of an exposure set (``catdb exposures select --name``): the inputs are restricted to
        its exposures (AND-ed to ``where``); recorded in ``stage_run.params['exposures']`` and in
        ``stage_run.input_where``.

    Returns
    -------
    StageResult

    Raises
    ------
    catdb.errors.StageError
        The stage failed; nothing it did is kept and its stage_run says why.
    catdb.errors.CatdbError
        Unknown stage, bad parameter, or unknown exposure set (nothing recorded).
    catdb.db.revision.SchemaRevisionError
        The database is not at this catdb's schema revision (``run `catdb db upgrade``` when
        behind); nothing recorded.
    """
    stage = get_stage(name)
    p = stage.parse_params(params)
    own = conn is None
    if own:
        conn = connect(url)  # checks the schema revision
    try:
        require_head(conn)  # a connection the caller opened (cached: one query per connection)
        recorded = p
        if exposures is not None:
            cond = exposure_set_condition(conn, exposures)
            where = f"({where}) AND {cond}" if where else cond
            recorded = {**p, "exposures": exposures}
        run_id = start_run(conn, stage.name, recorded, where)
        ctx = StageContext(conn=conn, run_id=run_id, params=p, where=where, progress=progress, exposures=exposures,
                           commits=conn.info.transaction_status == TransactionStatus.IDLE)
        try:
            with conn.transaction():
                ctx.inputs = stage.select(ctx)
                replaced = stage.replace(ctx)
                counts = stage.run(ctx) or {}
                counts = {**ctx.counts, **counts, "replaced_rows": replaced}
                scope = json.dumps({k: p[k] for k in stage.scope_params}, default=str)
                same = "input_ids = %s::bigint[]" if stage.exact_inputs else "input_ids <@ %s::bigint[]"
                conn.execute(
                    "UPDATE stage_run SET status = 'replaced' WHERE stage = %s AND status = 'ok' AND id <> %s "
                    f"AND {same} AND params @> %s::jsonb", (stage.name, run_id, ctx.inputs, scope))
                finish_run(conn, run_id, inputs=ctx.inputs, counts=counts)
        except KeyboardInterrupt as e:  # Ctrl-C: the transaction is rolled back, the run says so
            fail_run(conn, run_id, e)
            raise
        except Exception as e:
            log.debug("stage %s failed:\n%s", name, traceback.format_exc())
            fail_run(conn, run_id, e)
            if isinstance(e, CatdbError):
                raise StageError(f"stage {name} failed (stage_run {run_id}): {e}") from e
            raise StageError(f"stage {name} failed (stage_run {run_id}): {type(e).__name__}: {e}") from e
        return StageResult(run_id, stage.name, "ok", len(ctx.inputs), counts)
    finally:
        if own:
            conn.close()
