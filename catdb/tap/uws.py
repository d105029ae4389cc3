"""UWS 1.1 asynchronous jobs for the TAP ``/async`` endpoint.

A job is created PENDING (or QUEUED at once with ``PHASE=RUN``), queued to a
small thread pool, EXECUTING while its query runs, then COMPLETED (its VOTable
kept in memory for the retention period), ERROR (the error document kept) or
ABORTED (the running statement is cancelled).  Jobs are destroyed at their
destruction time.  ``WAIT`` blocks a job request until the phase changes
(UWS 1.1 section 2.2.3.6), which is how pyvo waits.

Source: IVOA UWS 1.1 (2016-10-24): sections 2.1.3 (phases), 2.2.2 (resources),
2.2.3 (actions), 2.2.3.6 (blocking), 3 (XML schema).
"""
from __future__ import annotations

import datetime as dt
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

from .query import Cancel, QueryError, run_adql
from .votable import error_document

UWS_NS = "http://www.ivoa.net/xml/UWS/v1.0"
XLINK_NS = "http://www.w3.org/1999/xlink"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
ACTIVE = ("QUEUED", "EXECUTING")
FINAL = ("COMPLETED", "ERROR", "ABORTED")
PHASES = ("PENDING",) + ACTIVE + FINAL + ("HELD", "SUSPENDED", "ARCHIVED", "UNKNOWN")


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(t: dt.datetime | None) -> str | None:
    if t is None:
        return None
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def parse_iso(text: str) -> dt.datetime:
    """An ISO 8601 time (``Z`` or offset; naive = UTC)."""
    t = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


@dataclass
class Job:
    id: str
    params: dict
    execution_duration: int
    destruction: dt.datetime
    run_id: str | None = None
    phase: str = "PENDING"
    creation: dt.datetime = field(default_factory=now)
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    result: bytes | None = None
    result_type: str = "application/x-votable+xml"
    n_rows: int | None = None
    error: str | None = None
    cancel: Cancel = field(default_factory=Cancel)


class JobStore:
    """The jobs of one service, their execution and their XML.

    Parameters
    ----------
    runner : callable
        ``runner(params, cancel) -> (bytes, n_rows)`` runs a job's query; raises
        :class:`~catdb.tap.query.QueryError` (or ValueError for bad parameters).
    workers : int
        Jobs executing at once.
    max_duration : int
        Longest execution duration a job may ask [s] (and the default).
    retention : int
        Seconds from creation to destruction (default and maximum).
    """

    def __init__(self, runner, *, workers: int = 2, max_duration: int = 3600, retention: int = 172800):
        self.runner = runner
        self.max_duration = max_duration
        self.retention = retention
        self._jobs: dict[str, Job] = {}
        self._cond = threading.Condition()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="catdb-tap-job")

    # ---------------------------------------------------------------- lifecycle
    def create(self, params: dict) -> Job:
        self.purge()
        run_id = params.pop("RUNID", None)
        job = Job(id=uuid.uuid4().hex[:16], params=params, execution_duration=self.max_duration,
                  destruction=now() + dt.timedelta(seconds=self.retention), run_id=run_id)
        with self._cond:
            self._jobs[job.id] = job
        return job

    def get(self, job_id: str) -> Job | None:
        self.purge()
        with self._cond:
            return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        self.purge()
        with self._cond:
            return sorted(self._jobs.values(), key=lambda j: j.creation)

    def run(self, job: Job) -> None:
        """PHASE=RUN: PENDING -> QUEUED (other phases: no change, as UWS allows)."""
        with self._cond:
            if job.phase != "PENDING":
                return
            job.phase = "QUEUED"
            self._cond.notify_all()
        self._pool.submit(self._execute, job)

    def abort(self, job: Job) -> None:
        with self._cond:
            if job.phase in FINAL:
                return
            job.phase = "ABORTED"
            job.end = now()
            self._cond.notify_all()
        job.cancel.cancel()

    def delete(self, job: Job) -> None:
        self.abort(job)
        with self._cond:
            self._jobs.pop(job.id, None)
            self._cond.notify_all()

    def purge(self) -> None:
        """Destroy the jobs past their destruction time."""
        t = now()
        with self._cond:
            dead = [j for j in self._jobs.values() if j.destruction <= t]
        for j in dead:
            self.delete(j)

    def wait(self, job: Job, timeout: float, phase: str | None = None) -> None:
        """Block until the job leaves ``phase`` (default: its current active phase) or ``timeout`` [s]."""
        with self._cond:
            start_phase = phase or job.phase
            if job.phase not in ("PENDING",) + ACTIVE or job.phase != start_phase:
                return
            self._cond.wait_for(lambda: job.phase != start_phase, timeout=timeout)

    def _execute(self, job: Job) -> None:
        with self._cond:
            if job.phase != "QUEUED":
                return
            job.phase = "EXECUTING"
            job.start = now()
            self._cond.notify_all()
        try:
            body, n = self.runner(job.params, job.cancel, job.execution_duration)
        except (QueryError, ValueError) as e:
            self._finish(job, "ERROR", error=str(e))
        except Exception as e:  # noqa: BLE001 - a job must end in a phase, whatever went wrong
            self._finish(job, "ERROR", error=f"internal error: {type(e).__name__}: {e}")
        else:
            self._finish(job, "COMPLETED", result=body, n_rows=n)

    def _finish(self, job, phase, *, result=None, n_rows=None, error=None):
        with self._cond:
            if job.phase == "ABORTED":
                return
            job.phase, job.end = phase, now()
            job.result, job.n_rows, job.error = result, n_rows, error
            self._cond.notify_all()

    def shutdown(self):
        """Abort every job (a running query is cancelled) and join the job threads."""
        for j in self.jobs():
            self.abort(j)
        self._pool.shutdown(wait=True, cancel_futures=True)

    # ---------------------------------------------------------------- XML
    def job_xml(self, job: Job, base: str) -> str:
        p = "".join(f'\n  <uws:parameter id={quoteattr(k)}>{escape(str(v))}</uws:parameter>'
                    for k, v in job.params.items())
        results = ""
        if job.phase == "COMPLETED" and job.result is not None:
            results = (f'\n  <uws:result id="result" xlink:href={quoteattr(f"{base}/async/{job.id}/results/result")}'
                       f' size="{len(job.result)}" mime-type="{job.result_type}"/>')
        err = ""
        if job.phase == "ERROR":
            err = (f'\n <uws:errorSummary type="fatal" hasDetail="true">\n  <uws:message>{escape(job.error or "")}'
                   '</uws:message>\n </uws:errorSummary>')
        run_id = f"\n <uws:runId>{escape(job.run_id)}</uws:runId>" if job.run_id else ""
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n'
                f'<uws:job xmlns:uws="{UWS_NS}" xmlns:xlink="{XLINK_NS}" xmlns:xsi="{XSI_NS}" version="1.1">\n'
                f' <uws:jobId>{job.id}</uws:jobId>{run_id}\n'
                f' <uws:ownerId xsi:nil="true"/>\n'
                f' <uws:phase>{job.phase}</uws:phase>\n'
                f' <uws:quote xsi:nil="true"/>\n'
                f' <uws:creationTime>{iso(job.creation)}</uws:creationTime>\n'
                f' {_nillable("startTime", iso(job.start))}\n'
                f' {_nillable("endTime", iso(job.end))}\n'
                f' <uws:executionDuration>{job.execution_duration}</uws:executionDuration>\n'
                f' <uws:destruction>{iso(job.destruction)}</uws:destruction>\n'
                f' <uws:parameters>{p}\n </uws:parameters>\n'
                f' <uws:results>{results}\n </uws:results>{err}\n'
                f'</uws:job>\n')

    def list_xml(self, base: str, phases=None, after=None, last=None) -> str:
        jobs = self.jobs()
        if phases:
            jobs = [j for j in jobs if j.phase in phases]
        else:
            jobs = [j for j in jobs if j.phase != "ARCHIVED"]
        if after is not None:
            jobs = [j for j in jobs if j.creation > after]
        if last is not None:
            jobs = sorted(jobs, key=lambda j: j.creation, reverse=True)[:last]
        refs = "".join(
            f'\n <uws:jobref id="{j.id}" xlink:href={quoteattr(f"{base}/async/{j.id}")}>'
            f'\n  <uws:phase>{j.phase}</uws:phase>'
            + (f"\n  <uws:runId>{escape(j.run_id)}</uws:runId>" if j.run_id else "")
            + f'\n  <uws:ownerId xsi:nil="true"/>'
            f'\n  <uws:creationTime>{iso(j.creation)}</uws:creationTime>\n </uws:jobref>' for j in jobs)
        return (f'<?xml version="1.0" encoding="UTF-8"?>\n'
                f'<uws:jobs xmlns:uws="{UWS_NS}" xmlns:xlink="{XLINK_NS}" xmlns:xsi="{XSI_NS}" version="1.1">'
                f'{refs}\n</uws:jobs>\n')

    def error_body(self, job: Job) -> bytes:
        return error_document(job.error or "")


def _nillable(tag, value):
    if value is None:
        return f'<uws:{tag} xsi:nil="true"/>'
    return f"<uws:{tag}>{value}</uws:{tag}>"


__all__ = ["Job", "JobStore", "PHASES", "iso", "parse_iso", "run_adql"]
