"""``catdb run PIPELINE.toml``: chain ingest, stages, exports and the report.

A pipeline file lists steps in order::

    [pipeline]
    name = "lowell42-5945"
    outdir = "catdb-out"              # relative to the current directory; input paths are
                                      # relative to the TOML file

    [[step]]
    ingest = "image"                  # image | catalog | refcat
    paths = ["raw/*.fits.fz"]
    obscode = "688"                   # optional: MPC code when the headers carry none

    [[step]]
    stage = "reduce"
    params = { outdir = "{outdir}/reduced" }
    where = "e.band = 'VR'"           # optional input selection

    [[step]]
    export = "catalog"                # catalog | tracks-mpc | tracks-ades | table | lightcurve
    path = "{outdir}/catalog.vot"

    [[step]]
    export = "lightcurve"             # the target's light curve; a .alcdef path (or
    path = "{outdir}/target.alcdef"   # options.format = "alcdef") writes ALCDEF
    options = { exclude_flagged = true }

Re-running is cheap: ingest skips files already loaded with the same content,
and a stage step is skipped when its last successful run had the same
parameters and inputs and no earlier step has run since.  Any failure stops
the run with the step that failed named; what earlier steps wrote stays.
"""
from __future__ import annotations

import glob
import json
import os
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from psycopg.pq import TransactionStatus

from .errors import CatdbError, InputError
from .export import api
from .export.report import write_report
from .ingest.load import ingest_catalogs, ingest_images, ingest_refcat
from .stages.base import StageContext, all_stages, get_stage, run_stage


@dataclass
class StepResult:
    index: int
    label: str
    status: str  # ran, skipped, failed
    seconds: float
    summary: str = ""
    run_id: int | None = None
    counts: dict = field(default_factory=dict)


@dataclass
class Pipeline:
    name: str
    path: Path | None
    outdir: Path
    steps: list[dict]
    extra: dict = field(default_factory=dict)
    #: ``[pipeline] database``: the embedded server's database this pipeline runs in (its own,
    #: e.g. ``catdb_demo``), unless ``--db``/``CATDB_URL`` or ``--database`` say otherwise
    database: str | None = None

    @classmethod
    def load(cls, path) -> Pipeline:
        """Read and validate a pipeline TOML file.

        Raises
        ------
        catdb.errors.InputError
            Unreadable TOML, unknown step kind, or unknown stage (naming the step).
        """
        path = Path(path)
        try:
            doc = tomllib.loads(path.read_text())
        except OSError as e:
            raise InputError(f"cannot read pipeline: {e.strerror}", path=path) from None
        except tomllib.TOMLDecodeError as e:
            raise InputError(f"not valid TOML: {e}", path=path) from None
        return cls.from_dict(doc, base=path.parent.resolve(), path=path)

    @classmethod
    def from_dict(cls, doc: dict, base: Path, path=None) -> Pipeline:
        meta = doc.get("pipeline", {})
        outdir = Path(meta.get("outdir", "catdb-out"))
        outdir = outdir if outdir.is_absolute() else (Path.cwd() / outdir)
        steps = doc.get("step", [])
        if not steps:
            raise InputError("no [[step]] entries", path=path)
        known = all_stages()
        for i, st in enumerate(steps, 1):
            kinds = [k for k in ("ingest", "stage", "export", "report") if k in st]
            if len(kinds) != 1:
                raise InputError(f"step {i} must have exactly one of ingest/stage/export/report, has {kinds}",
                                 path=path, row=i)
            if "stage" in st and st["stage"] not in known:
                raise InputError(f"step {i}: unknown stage {st['stage']!r}; known: {', '.join(known)}",
                                 path=path, row=i)
            if "ingest" in st and st["ingest"] not in ("image", "catalog", "refcat"):
                raise InputError(f"step {i}: ingest must be image, catalog or refcat", path=path, row=i)
        p = cls(name=meta.get("name", "pipeline"), path=path, outdir=outdir, steps=steps,
                extra={k: v for k, v in doc.items() if k not in ("pipeline", "step")},
                database=meta.get("database"))
        p.base = base
        return p

    # ------------------------------------------------------------------
    def _expand(self, value):
        if isinstance(value, str):
            return value.replace("{outdir}", str(self.outdir))
        if isinstance(value, list):
            return [self._expand(v) for v in value]
        if isinstance(value, dict):
            return {k: self._expand(v) for k, v in value.items()}
        return value

    def _paths(self, patterns, step_no):
        out = []
        for pat in patterns:
            pat = self._expand(pat)
            full = pat if os.path.isabs(pat) else str(self.base / pat)
            hits = sorted(glob.glob(full))
            if not hits:
                raise InputError(f"step {step_no}: no file matches {pat!r}", path=self.path, row=step_no)
            out += hits
        return out

    @staticmethod
    def label(st: dict) -> str:
        for k in ("stage", "ingest", "export", "report"):
            if k in st:
                return f"{k} {st[k]}" if k != "stage" else st[k]
        return "?"

    # ------------------------------------------------------------------
    def run(self, conn, *, echo=print, force: bool = False) -> list[StepResult]:
        """Run the steps in order (see the module docstring).

        Raises
        ------
        catdb.errors.CatdbError
            The first failing step, named ``step N (label)``.
        """
        self.outdir.mkdir(parents=True, exist_ok=True)
        results = []
        n = len(self.steps)
        dirty = False  # once a step changed data, every later stage step runs (make-like)
        for i, st in enumerate(self.steps, 1):
            label = self.label(st)
            t0 = time.time()
            echo(f"[{i}/{n}] {label} ...")
            try:
                if "ingest" in st:
                    res = self._ingest(conn, st, i)
                elif "stage" in st:
                    params = self._expand(st.get("params", {}))
                    where = st.get("where")
                    skip = None if (force or dirty) else _up_to_date(conn, st["stage"], params, where)
                    if skip:
                        res = StepResult(i, label, "skipped", 0.0, f"up to date (run {skip})", run_id=skip)
                    else:
                        r = run_stage(st["stage"], conn=conn, where=where, params=params,
                                      progress=False)
                        counts = {k: v for k, v in r.counts.items() if k != "replaced_rows"}
                        res = StepResult(i, label, "ran", 0.0, _fmt_counts(counts), run_id=r.run_id,
                                         counts=r.counts)
                elif "export" in st:
                    res = self._export(conn, st, i)
                else:
                    res = self._report(conn, st, i)
            except CatdbError as e:
                echo(f"[{i}/{n}] {label} FAILED after {time.time() - t0:.1f}s")
                raise CatdbError(f"pipeline stopped at step {i} ({label}): {e}") from e
            if conn.info.transaction_status == TransactionStatus.INTRANS:
                conn.commit()  # each step is its own unit of work
            res.index, res.label, res.seconds = i, label, time.time() - t0
            if res.status == "ran" and "export" not in st and "report" not in st:
                dirty = True
            echo(f"[{i}/{n}] {label}: {res.status} in {res.seconds:.1f}s  {res.summary}")
            results.append(res)
        return results

    def _ingest(self, conn, st, i) -> StepResult:
        kind = st["ingest"]
        if kind == "refcat":
            path = self._paths([st["path"]], i)[0]
            r = ingest_refcat(conn, path, catalog=st.get("catalog"), band=st.get("band"), epoch=st.get("epoch"))
            if r.status == "unchanged":
                return StepResult(i, "", "skipped", 0, "; ".join(r.notes))
            return StepResult(i, "", "ran", 0, f"{r.n_rows} stars ({'; '.join(r.notes)})")
        paths = self._paths(st["paths"], i)
        if kind == "image":
            res = ingest_images(conn, paths, instrument=st.get("instrument"), image_type=st.get("image_type"),
                                obscode=st.get("obscode"))
        else:
            res = ingest_catalogs(conn, paths, instrument=st.get("instrument"), obscode=st.get("obscode"))
        loaded = sum(r.status != "unchanged" for r in res)
        return StepResult(i, "", "ran" if loaded else "skipped", 0,
                          f"{len(res)} files, {loaded} new, {len(res) - loaded} unchanged")

    def _export(self, conn, st, i) -> StepResult:
        path = Path(self._expand(st["path"]))
        path.parent.mkdir(parents=True, exist_ok=True)
        n = api.export(conn, st["export"], path, **self._expand(st.get("options", {})))
        return StepResult(i, "", "ran", 0, f"{n} rows -> {path}")

    def _report(self, conn, st, i) -> StepResult:
        path = Path(self._expand(st.get("path", "{outdir}/report.html")))
        write_report(conn, path, **self._expand(st.get("options", {})))
        return StepResult(i, "", "ran", 0, f"-> {path}")


def _fmt_counts(counts: dict) -> str:
    parts = []
    for k, v in counts.items():
        if isinstance(v, (dict, list)):
            continue
        v = str(v)
        parts.append(f"{k}={v if len(v) <= 90 else v[:87] + '...'}")
    return ", ".join(parts[:8])


def _up_to_date(conn, stage: str, params: dict, where: str | None) -> int | None:
    """Id of the last successful run of ``stage`` if it is still up to date, else None.

    Up to date: same parameters and ``--where``, the same inputs selected now, no ingest
    that changed data since, and the run did not report itself incomplete (``counts.incomplete``,
    e.g. ``ephemeris`` when calls to the service failed: a later run retries them).  (Within a
    pipeline, every stage step after a step that ran is re-run regardless: see :meth:`Pipeline.run`.)
    """
    st = get_stage(stage)
    full = st.parse_params(params)
    # the latest run with these parameters: a pipeline may run a stage twice with different
    # targets (forced photometry of tracks, then of coadd objects), and a run whose results a
    # later run replaced is marked 'replaced', not 'ok'
    row = conn.execute(
        "SELECT id, status, input_ids, coalesce((counts->>'incomplete')::boolean, false) FROM stage_run "
        "WHERE stage = %s AND status IN ('ok', 'replaced') "
        "AND params = %s::jsonb AND coalesce(input_where, '') = %s ORDER BY id DESC LIMIT 1",
        (stage, json.dumps(full, default=str), where or "")).fetchone()
    if not row or row[1] != "ok" or row[3]:
        conn.commit()
        return None
    rid, _, ids, _ = row
    inputs = st.select(StageContext(conn=conn, run_id=0, params=full, where=where))
    changed = conn.execute(
        "SELECT count(*) FROM stage_run WHERE id > %s AND status IN ('ok', 'running') AND stage LIKE 'ingest-%%' "
        "AND NOT (counts->>'unchanged' IS NOT NULL AND counts->>'unchanged' = counts->>'files')",
        (rid,)).fetchone()[0]
    conn.commit()
    return rid if changed == 0 and sorted(inputs) == sorted(ids or []) else None
