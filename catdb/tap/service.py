"""The TAP 1.1 service: a WSGI application (run by waitress in ``catdb serve``).

Resources under ``/tap`` (IVOA TAP 1.1, 2019-09-27, section 2):

``/sync``           GET/POST ``LANG=ADQL&QUERY=...`` -> VOTable (``MAXREC``, ``FORMAT``/``RESPONSEFORMAT``)
``/async``          UWS 1.1 job list; POST creates a job (303 to it)
``/async/{id}``     the job (``WAIT`` blocks), POST ``PHASE``/``ACTION=DELETE``, DELETE
``/async/{id}/...`` ``phase``, ``quote``, ``executionduration``, ``destruction``, ``error``, ``parameters``,
                    ``results``, ``results/result``, ``owner``
``/capabilities``   VOSI capabilities with the TAPRegExt description of the service
``/availability``   VOSI availability (the database answers)
``/tables``         VOSI 1.1 tableset (``/tables/{name}`` one table)

Every query runs as ``catdb query`` runs user SQL (:mod:`catdb.tap.query`).
Errors of a query are VOTable error documents (``QUERY_STATUS`` = ``ERROR``).
"""
from __future__ import annotations

import logging
import re
import urllib.parse
from email.parser import BytesParser
from email.policy import HTTP
from wsgiref.util import application_uri
from xml.sax.saxutils import escape, quoteattr

from ..db.safety import reader_connection, reader_session
from .adql import GEOMETRY_FORMS, UDF_FORMS
from .query import Cancel, QueryError, run_adql
from .review import ReviewError
from .tap_schema import Metadata
from .uws import PHASES, JobStore, iso, parse_iso
from .votable import error_document

log = logging.getLogger(__name__)

VOTABLE_MIME = "application/x-votable+xml"
#: FORMAT / RESPONSEFORMAT values -> VOTable serialisation
FORMATS = {
    "votable": "tabledata", "votable/td": "tabledata", "application/x-votable+xml": "tabledata",
    "text/xml": "tabledata", "application/x-votable+xml;serialization=tabledata": "tabledata",
    "votable/b2": "binary2", "binary2": "binary2", "application/x-votable+xml;serialization=binary2": "binary2",
}
_XSI = "http://www.w3.org/2001/XMLSchema-instance"


class HttpError(Exception):
    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class TapService:
    """The WSGI application.

    Parameters
    ----------
    url : str or None
        Database URL (``--db``); queries log in as ``catdb_reader`` as ``catdb query`` does.
    metadata : Metadata
        The tables published (:func:`catdb.tap.tap_schema.read_metadata`).
    timeout : float
        Statement timeout of /sync queries and the longest execution duration of a job [s].
    default_maxrec, max_rows : int
        MAXREC when not given, and its hard limit [rows].
    workers : int
        Async jobs executing at once.
    retention : int
        Seconds an async job (and its result) is kept.
    """

    def __init__(self, url, metadata: Metadata, *, timeout: float = 300.0, default_maxrec: int = 100_000,
                 max_rows: int = 1_000_000, workers: int = 2, retention: int = 172_800, review=None):
        self.url = url
        #: the candidate review page (:class:`catdb.tap.review.ReviewApp`) at /review, or None
        self.review = review
        self.meta = metadata
        self.timeout = float(timeout)
        self.default_maxrec = min(default_maxrec, max_rows)
        self.max_rows = max_rows
        self.jobs = JobStore(self._run_job, workers=workers, max_duration=int(max(1, round(timeout))),
                             retention=retention)

    # ---------------------------------------------------------------- WSGI
    def __call__(self, environ, start_response):
        try:
            status, headers, body = self.dispatch(environ)
        except HttpError as e:
            status, headers, body = e.status, [("Content-Type", "text/plain; charset=utf-8")], \
                (e.message + "\n").encode()
        except Exception:  # noqa: BLE001 - a server error is answered, and logged with its traceback
            log.exception("catdb serve: internal error")
            status, headers, body = "500 Internal Server Error", [("Content-Type", VOTABLE_MIME)], \
                error_document("internal error of the TAP service (see the server log)")
        if body is None:
            body = b""
        headers = list(headers) + [("Content-Length", str(len(body)))]
        start_response(status, headers)
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    def dispatch(self, environ):
        method = environ.get("REQUEST_METHOD", "GET").upper()
        path = environ.get("PATH_INFO", "") or "/"
        base = application_uri(environ).rstrip("/") + "/tap"
        if path in ("/", ""):
            return _redirect(base)
        if self.review is not None and (path == "/review" or path.startswith("/review/")):
            try:
                return self.review.dispatch(environ, method, path[7:].strip("/"))
            except ReviewError as e:
                raise HttpError(e.status, e.message) from None
        if not (path == "/tap" or path.startswith("/tap/")):
            raise HttpError("404 Not Found", f"no resource {path}: the TAP service is at /tap")
        rest = path[4:].strip("/")
        params, multi = _params(environ, method)
        if rest == "":
            return _ok("text/html; charset=utf-8", _landing(base).encode())
        if rest == "sync":
            if method not in ("GET", "POST", "HEAD"):
                raise HttpError("405 Method Not Allowed", "use GET or POST")
            return self.sync(params)
        if rest == "examples":
            return _ok("application/xhtml+xml", _examples().encode())
        if rest == "capabilities":
            return _ok("text/xml", self.capabilities(base).encode())
        if rest == "availability":
            return _ok("text/xml", self.availability().encode())
        if rest == "tables" or rest.startswith("tables/"):
            return self.tables(rest[7:], params)
        if rest == "async" or rest.startswith("async/"):
            return self.uws(method, rest.split("/")[1:], params, multi, base)
        raise HttpError("404 Not Found", f"no resource /tap/{rest}")

    # ---------------------------------------------------------------- TAP queries
    def _query_args(self, params):
        """(adql, maxrec, serialization) of a TAP request; ValueError when a parameter is wrong."""
        lang = params.get("LANG")
        if lang is None:
            raise ValueError("LANG is required (LANG=ADQL)")
        if lang.upper() not in ("ADQL", "ADQL-2.0", "ADQL-2.1"):
            raise ValueError(f"LANG={lang}: this service speaks ADQL only (LANG=ADQL)")
        req = params.get("REQUEST")
        if req is not None and req != "doQuery":
            raise ValueError(f"REQUEST={req}: the only request is doQuery")
        if params.get("UPLOAD"):
            raise ValueError("UPLOAD is not supported by this service")
        query = params.get("QUERY")
        if not query or not query.strip():
            raise ValueError("QUERY is required (an ADQL SELECT statement)")
        fmt = params.get("RESPONSEFORMAT", params.get("FORMAT"))
        serialization = "tabledata"
        if fmt is not None:
            key = re.sub(r"\s+", "", fmt).lower()
            if key not in FORMATS:
                raise ValueError(f"RESPONSEFORMAT={fmt}: supported are {', '.join(sorted(FORMATS))}")
            serialization = FORMATS[key]
        maxrec = self.default_maxrec
        if params.get("MAXREC") not in (None, ""):
            try:
                maxrec = int(params["MAXREC"])
            except ValueError:
                raise ValueError(f"MAXREC={params['MAXREC']}: expected a whole number of rows >= 0") from None
            if maxrec < 0:
                raise ValueError(f"MAXREC={maxrec}: expected a whole number of rows >= 0")
            maxrec = min(maxrec, self.max_rows)
        return query, maxrec, serialization

    def sync(self, params):
        try:
            query, maxrec, serialization = self._query_args(params)
            res = run_adql(self.url, query, maxrec=maxrec, timeout_s=self.timeout, serialization=serialization)
        except (ValueError, QueryError) as e:
            return "400 Bad Request", [("Content-Type", VOTABLE_MIME)], error_document(str(e))
        return _ok(VOTABLE_MIME, res.body)

    def _run_job(self, params, cancel: Cancel, duration):
        query, maxrec, serialization = self._query_args(params)
        res = run_adql(self.url, query, maxrec=maxrec, timeout_s=min(self.timeout, duration),
                       serialization=serialization, cancel=cancel)
        return res.body, res.n_rows

    # ---------------------------------------------------------------- UWS
    def uws(self, method, parts, params, multi, base):
        jobs = self.jobs
        if not parts:
            if method == "POST":
                phase = params.pop("PHASE", None)
                job = jobs.create(dict(params))
                if phase is not None:
                    if phase.upper() != "RUN":
                        jobs.delete(job)
                        raise HttpError("400 Bad Request", f"PHASE={phase}: a new job takes PHASE=RUN only")
                    jobs.run(job)
                return _redirect(f"{base}/async/{job.id}")
            phases = [p.upper() for p in multi.get("PHASE", [])]
            bad = [p for p in phases if p not in PHASES]
            if bad:
                raise HttpError("400 Bad Request", f"PHASE={bad[0]}: not a UWS phase ({', '.join(PHASES)})")
            try:
                after = parse_iso(params["AFTER"]) if "AFTER" in params else None
                last = int(params["LAST"]) if "LAST" in params else None
            except ValueError as e:
                raise HttpError("400 Bad Request", f"AFTER/LAST: {e}") from None
            if last is not None and last < 0:
                raise HttpError("400 Bad Request", "LAST: expected a whole number >= 0")
            return _ok("text/xml", jobs.list_xml(base, phases, after, last).encode())
        job = jobs.get(parts[0])
        if job is None:
            raise HttpError("404 Not Found", f"no job {parts[0]}")
        sub = "/".join(parts[1:])
        job_url = f"{base}/async/{job.id}"
        if sub == "":
            if method == "DELETE" or (method == "POST" and params.get("ACTION", "").upper() == "DELETE"):
                jobs.delete(job)
                return _redirect(f"{base}/async")
            if method == "POST":
                self._post_job(job, params)
                return _redirect(job_url)
            if "WAIT" in params:
                try:
                    wait = float(params["WAIT"])
                except ValueError:
                    raise HttpError("400 Bad Request", f"WAIT={params['WAIT']}: expected seconds") from None
                wait = 60.0 if wait < 0 else min(wait, 60.0)
                phase = params.get("PHASE")
                jobs.wait(job, wait, phase.upper() if phase else None)
            return _ok("text/xml", jobs.job_xml(job, base).encode())
        if sub == "phase":
            if method == "POST":
                phase = params.get("PHASE", "").upper()
                if phase == "RUN":
                    jobs.run(job)
                elif phase == "ABORT":
                    jobs.abort(job)
                else:
                    raise HttpError("400 Bad Request", f"PHASE={params.get('PHASE')}: expected RUN or ABORT")
                return _redirect(job_url)
            return _ok("text/plain", job.phase.encode())
        if sub == "executionduration":
            if method == "POST":
                self._post_job(job, {"EXECUTIONDURATION": params.get("EXECUTIONDURATION", "")})
                return _redirect(job_url)
            return _ok("text/plain", str(job.execution_duration).encode())
        if sub == "destruction":
            if method == "POST":
                self._post_job(job, {"DESTRUCTION": params.get("DESTRUCTION", "")})
                return _redirect(job_url)
            return _ok("text/plain", iso(job.destruction).encode())
        if sub == "quote":
            return _ok("text/plain", b"")
        if sub == "owner":
            return _ok("text/plain", b"")
        if sub == "error":
            if job.phase != "ERROR":
                raise HttpError("404 Not Found", f"job {job.id} is {job.phase}, not in ERROR")
            return _ok(VOTABLE_MIME, jobs.error_body(job))
        if sub == "parameters":
            if method == "POST":
                self._post_job(job, params)
                return _redirect(job_url)
            p = "".join(f'\n <uws:parameter id={quoteattr(k)}>{escape(str(v))}</uws:parameter>'
                        for k, v in job.params.items())
            return _ok("text/xml", (f'<?xml version="1.0" encoding="UTF-8"?>\n<uws:parameters '
                                    f'xmlns:uws="http://www.ivoa.net/xml/UWS/v1.0">{p}\n</uws:parameters>\n').encode())
        if sub == "results":
            r = ""
            if job.phase == "COMPLETED" and job.result is not None:
                r = (f'\n <uws:result id="result" xlink:href={quoteattr(job_url + "/results/result")} '
                     f'size="{len(job.result)}" mime-type="{job.result_type}"/>')
            return _ok("text/xml", (f'<?xml version="1.0" encoding="UTF-8"?>\n<uws:results '
                                    f'xmlns:uws="http://www.ivoa.net/xml/UWS/v1.0" '
                                    f'xmlns:xlink="http://www.w3.org/1999/xlink">{r}\n</uws:results>\n').encode())
        if sub == "results/result":
            if job.phase != "COMPLETED" or job.result is None:
                raise HttpError("404 Not Found", f"job {job.id} is {job.phase}: no result")
            return _ok(job.result_type, job.result)
        raise HttpError("404 Not Found", f"no resource {sub} of job {job.id}")

    def _post_job(self, job, params):
        """Job parameters posted to the job (or its sub-resources): UWS 1.1 section 2.2.3."""
        params = dict(params)
        if "EXECUTIONDURATION" in params:
            v = params.pop("EXECUTIONDURATION")
            try:
                d = int(float(v))
            except ValueError:
                raise HttpError("400 Bad Request", f"EXECUTIONDURATION={v}: expected seconds") from None
            if job.phase == "PENDING":
                job.execution_duration = self.jobs.max_duration if d <= 0 else min(d, self.jobs.max_duration)
        if "DESTRUCTION" in params:
            v = params.pop("DESTRUCTION")
            try:
                t = parse_iso(v)
            except ValueError:
                raise HttpError("400 Bad Request", f"DESTRUCTION={v}: expected an ISO 8601 time") from None
            job.destruction = min(t, job.destruction)
        phase = params.pop("PHASE", None)
        params.pop("ACTION", None)
        if params and job.phase == "PENDING":
            job.params.update(params)
        if phase is not None:
            if phase.upper() == "RUN":
                self.jobs.run(job)
            elif phase.upper() == "ABORT":
                self.jobs.abort(job)
            else:
                raise HttpError("400 Bad Request", f"PHASE={phase}: expected RUN or ABORT")

    # ---------------------------------------------------------------- VOSI
    def availability(self) -> str:
        try:
            with reader_session(reader_connection(self.url, 10.0)) as c:
                c.execute("SELECT 1").fetchone()
            up, note = "true", "the catdb database answers"
        except Exception as e:  # noqa: BLE001 - any failure means unavailable
            up, note = "false", f"the database does not answer: {e}"
        return ('<?xml version="1.0" encoding="UTF-8"?>\n'
                '<vosi:availability xmlns:vosi="http://www.ivoa.net/xml/VOSIAvailability/v1.0">\n'
                f' <vosi:available>{up}</vosi:available>\n <vosi:note>{escape(note)}</vosi:note>\n'
                '</vosi:availability>\n')

    def capabilities(self, base: str) -> str:
        udfs = "".join(f"\n    <feature>\n     <form>{escape(form)}</form>\n     <description>{escape(desc)}"
                       f"</description>\n    </feature>" for form, desc in UDF_FORMS.values())
        geo = "".join(f"\n    <feature><form>{g}</form></feature>" for g in GEOMETRY_FORMS)
        dur = int(round(self.timeout))

        def vosi(std, res):
            return (f'\n <capability standardID="ivo://ivoa.net/std/VOSI#{std}">\n'
                    f'  <interface xsi:type="vs:ParamHTTP" role="std">\n'
                    f'   <accessURL use="full">{escape(base)}/{res}</accessURL>\n  </interface>\n </capability>')

        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<vosi:capabilities xmlns:vosi="http://www.ivoa.net/xml/VOSICapabilities/v1.0" '
            'xmlns:vr="http://www.ivoa.net/xml/VOResource/v1.0" '
            'xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1" '
            'xmlns:tr="http://www.ivoa.net/xml/TAPRegExt/v1.0" '
            f'xmlns:xsi="{_XSI}">\n'
            ' <capability standardID="ivo://ivoa.net/std/TAP" xsi:type="tr:TableAccess">\n'
            '  <interface xsi:type="vs:ParamHTTP" role="std" version="1.1">\n'
            f'   <accessURL use="base">{escape(base)}</accessURL>\n'
            '  </interface>\n'
            '  <language>\n'
            '   <name>ADQL</name>\n'
            '   <version ivo-id="ivo://ivoa.net/std/ADQL#v2.0">2.0</version>\n'
            '   <description>ADQL 2.0 translated to PostgreSQL with q3c for the geometry (POINT against '
            'CIRCLE, BOX, POLYGON; DISTANCE); positions are ICRS ra/dec columns in degrees</description>\n'
            f'   <languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-udf">{udfs}\n   </languageFeatures>\n'
            f'   <languageFeatures type="ivo://ivoa.net/std/TAPRegExt#features-adqlgeo">{geo}\n'
            '   </languageFeatures>\n'
            '  </language>\n'
            '  <outputFormat ivo-id="ivo://ivoa.net/std/TAPRegExt#output-votable-td">\n'
            f'   <mime>{VOTABLE_MIME};serialization=TABLEDATA</mime>\n'
            '   <alias>votable</alias>\n   <alias>votable/td</alias>\n'
            '  </outputFormat>\n'
            '  <outputFormat ivo-id="ivo://ivoa.net/std/TAPRegExt#output-votable-binary2">\n'
            f'   <mime>{VOTABLE_MIME};serialization=BINARY2</mime>\n'
            '   <alias>votable/b2</alias>\n'
            '  </outputFormat>\n'
            f'  <retentionPeriod>\n   <default>{self.jobs.retention}</default>\n'
            f'   <hard>{self.jobs.retention}</hard>\n  </retentionPeriod>\n'
            f'  <executionDuration>\n   <default>{dur}</default>\n   <hard>{dur}</hard>\n  </executionDuration>\n'
            f'  <outputLimit>\n   <default unit="row">{self.default_maxrec}</default>\n'
            f'   <hard unit="row">{self.max_rows}</hard>\n  </outputLimit>\n'
            ' </capability>'
            + vosi("capabilities", "capabilities") + vosi("availability", "availability")
            + vosi("tables-1.1", "tables")
            + '\n <capability standardID="ivo://ivoa.net/std/DALI#examples">\n'
            '  <interface xsi:type="vr:WebBrowser">\n'
            f'   <accessURL use="full">{escape(base)}/examples</accessURL>\n  </interface>\n </capability>'
            + '\n</vosi:capabilities>\n')

    def tables(self, name: str, params):
        detail = params.get("DETAIL", "").lower()
        if name:
            t = self.meta.table(urllib.parse.unquote(name))
            if t is None:
                raise HttpError("404 Not Found", f"no table {name}")
            body = ('<?xml version="1.0" encoding="UTF-8"?>\n'
                    '<vosi:table xmlns:vosi="http://www.ivoa.net/xml/VOSITables/v1.0" '
                    'xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1" '
                    f'xmlns:xsi="{_XSI}" type="{t.type}">' + _table_xml(self.meta, t, True, inner=True)
                    + '\n</vosi:table>\n')
            return _ok("text/xml", body.encode())
        out = ['<?xml version="1.0" encoding="UTF-8"?>\n'
               '<vosi:tableset xmlns:vosi="http://www.ivoa.net/xml/VOSITables/v1.0" '
               f'xmlns:vs="http://www.ivoa.net/xml/VODataService/v1.1" xmlns:xsi="{_XSI}">']
        for sname, sdesc, _ in self.meta.schemas:
            out.append(f"\n <schema>\n  <name>{escape(sname)}</name>\n  <description>{escape(sdesc)}</description>")
            for t in self.meta.tables:
                if t.schema == sname:
                    out.append(_table_xml(self.meta, t, detail != "min"))
            out.append("\n </schema>")
        out.append("\n</vosi:tableset>\n")
        return _ok("text/xml", "".join(out).encode())


def _table_xml(meta: Metadata, t, columns: bool, inner: bool = False) -> str:
    out = [] if inner else [f'\n  <table type="{t.type}">']
    out.append(f"\n   <name>{escape(t.name)}</name>")
    if t.description:
        out.append(f"\n   <description>{escape(t.description)}</description>")
    if columns:
        for c in t.columns:
            out.append("\n   <column>")
            out.append(f"\n    <name>{escape(c.name)}</name>")
            if c.description:
                out.append(f"\n    <description>{escape(c.description)}</description>")
            if c.unit:
                out.append(f"\n    <unit>{escape(c.unit)}</unit>")
            if c.ucd:
                out.append(f"\n    <ucd>{escape(c.ucd)}</ucd>")
            attrs = f' arraysize="{c.arraysize}"' if c.arraysize else ""
            if c.xtype:
                attrs += f' extendedType="{c.xtype}"'
            out.append(f'\n    <dataType xsi:type="vs:VOTableType"{attrs}>{c.datatype}</dataType>')
            if c.indexed:
                out.append("\n    <flag>indexed</flag>")
            if c.principal:
                out.append("\n    <flag>principal</flag>")
            if c.std:
                out.append("\n    <flag>std</flag>")
            out.append("\n   </column>")
        for k in meta.keys:
            if k.from_table == t.name:
                out.append(f"\n   <foreignKey>\n    <targetTable>{escape(k.target_table)}</targetTable>")
                for f, tc in k.columns:
                    out.append(f"\n    <fkColumn>\n     <fromColumn>{escape(f)}</fromColumn>\n"
                               f"     <targetColumn>{escape(tc)}</targetColumn>\n    </fkColumn>")
                if k.description:
                    out.append(f"\n    <description>{escape(k.description)}</description>")
                out.append("\n   </foreignKey>")
    if not inner:
        out.append("\n  </table>")
    return "".join(out)


def _params(environ, method):
    """Request parameters (names upper-cased): (first value of each, all values of each)."""
    pairs = urllib.parse.parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
    if method in ("POST", "PUT"):
        try:
            n = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            n = 0
        body = environ["wsgi.input"].read(n) if n > 0 else b""
        ctype = environ.get("CONTENT_TYPE", "")
        if ctype.startswith("multipart/form-data"):
            pairs += _multipart(ctype, body)
        elif body:
            pairs += urllib.parse.parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    single, multi = {}, {}
    for k, v in pairs:
        single.setdefault(k.upper(), v)
        multi.setdefault(k.upper(), []).append(v)
    return single, multi


def _multipart(ctype, body):
    """Form fields of a multipart/form-data body (RFC 7578)."""
    msg = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {ctype}\r\n\r\n".encode() + body)
    out = []
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name and part.get_filename() is None:
            out.append((name, part.get_content() if part.get_content_maintype() == "text"
                        else part.get_payload(decode=True).decode("utf-8", errors="replace")))
        elif name:
            out.append((name, "(file)"))
    return out


def _ok(ctype, body):
    return "200 OK", [("Content-Type", ctype)], body


def _redirect(url):
    return "303 See Other", [("Location", url), ("Content-Type", "text/plain")], f"See {url}\n".encode()


#: (id, title, explanation, ADQL) of the examples document
EXAMPLES = [
    ("cone", "Detections in a cone",
     "Every detection within 0.01 deg of a position (here the Lowell 42-inch demo field), nearest first; "
     "the cone uses the q3c index.",
     "SELECT TOP 100 id, exposure_id, ra, dec, mag_auto, magerr_auto, flags,\n"
     "       DISTANCE(POINT('ICRS', ra, dec), POINT('ICRS', 124.63, 25.34)) AS dist\n"
     "FROM detection\n"
     "WHERE CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', 124.63, 25.34, 0.01)) = 1\n"
     "ORDER BY dist"),
    ("exposures", "Exposures of the night",
     "The science exposures in time order with their seeing, astrometric state and quality flags.",
     "SELECT id, night, mjd_mid, filter, exptime, airmass, fwhm, wcs_status, quality_flags\n"
     "FROM exposure WHERE image_type = 'science' ORDER BY mjd_mid"),
    ("tracks", "Moving-object candidates",
     "The tracks the movers stage kept, slowest first, with their SkyBoT identification when there is one.",
     "SELECT id, n_detections, rate, pa, mean_mag, designation, skybot_name\n"
     "FROM track WHERE status = 'candidate' ORDER BY rate"),
    ("lightcurve", "Light curve of an object",
     "Calibrated magnitudes of one associated object over the night (replace target_id).",
     "SELECT mjd_mid, band, mag_cal, magerr_cal, source, exposure_id\n"
     "FROM lightcurve_point WHERE kind = 'object' AND target_id = 1 ORDER BY mjd_mid"),
    ("units", "What the columns mean",
     "Units, UCDs and descriptions of the columns of a table, from TAP_SCHEMA.",
     "SELECT column_name, datatype, unit, ucd, description\n"
     "FROM TAP_SCHEMA.columns WHERE table_name = 'detection' ORDER BY column_index"),
]


def _examples() -> str:
    """The DALI 1.1 examples document (section 2.3): XHTML with RDFa."""
    divs = "".join(
        f'\n  <div typeof="example" id="{i}" resource="#{i}">\n   <h2 property="name">{escape(t)}</h2>\n'
        f'   <p>{escape(d)}</p>\n   <pre property="query">{escape(q)}</pre>\n  </div>'
        for i, t, d, q in EXAMPLES)
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE html>\n'
            '<html xmlns="http://www.w3.org/1999/xhtml">\n <head><title>catdb TAP examples</title></head>\n'
            ' <body vocab="http://www.ivoa.net/rdf/examples#">\n  <h1>catdb TAP examples</h1>'
            f'{divs}\n </body>\n</html>\n')


def _landing(base):
    return (f"<!DOCTYPE html><html><head><title>catdb TAP service</title></head><body>"
            f"<h1>catdb TAP service</h1><p>IVOA TAP 1.1 with ADQL 2.0. Point TOPCAT (VO &gt; Table Access "
            f"Protocol) or pyvo at <code>{escape(base)}</code>.</p><ul>"
            f'<li><a href="{escape(base)}/capabilities">capabilities</a></li>'
            f'<li><a href="{escape(base)}/tables">tables</a></li>'
            f'<li><a href="{escape(base)}/availability">availability</a></li>'
            f'<li><a href="{escape(base)}/async">async jobs</a></li></ul></body></html>')
