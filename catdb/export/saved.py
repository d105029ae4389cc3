"""Named saved science queries (``catdb query --saved NAME --param k=v``).

Each saved query is fixed SQL text with ``%(name)s`` placeholders; the values the
user gives are parsed to their declared type (float, int or text) and *bound* by
the server, never formatted into the SQL.  The only parts of the text that vary
are chosen from fixed alternatives (which of ``object_id`` / ``track_id`` is
given, the table of a cone search from a fixed list) and composed with
:mod:`psycopg.sql`.  Spatial conditions come from :mod:`catdb.spatial.sql`.

The queries (see ``docs/queries.md``):

``lightcurve``
    Time series of one object (``object_id``) or one moving-object track (``track_id``):
    its linked detections with the calibrated magnitude ``mag_auto + zp`` and its forced
    photometry, from the view ``lightcurve_point`` (:mod:`catdb.export.lightcurve`).
``cone``
    Rows of ``object`` (default), ``detection``, ``refcat_source``, ``track`` or
    ``forced_source`` within ``radius_arcsec`` of (``ra``, ``dec``), nearest first,
    with their distance.
``calibrated-catalog``
    The calibrated catalogue of one exposure (as ``catdb export catalog``).
``stage-runs``
    The stage runs (provenance), newest first, optionally of one stage.
``veto-rejected``
    The detections a veto chain (``set_name``) rejected, each with the step and the veto
    (ledger ``filter``) that rejected it: in the survivor set after step k - 1, not after k.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from psycopg import sql

from ..errors import CatdbError
from ..spatial.sql import cone
from .formats import CATALOG_UNITS, catalog_query
from .lightcurve import lightcurve_sql


@dataclass(frozen=True)
class SavedParam:
    """One parameter of a saved query.

    Attributes
    ----------
    name : str
    type : {'float', 'int', 'text'}
    help : str
        One line, with the unit.
    default : object
        Default value; ``None`` with ``required`` means the user must give it.
    required : bool
    choices : tuple of str, optional
        Allowed values (text parameters).
    """

    name: str
    type: str
    help: str
    default: object = None
    required: bool = False
    choices: tuple = ()

    def parse(self, value):
        """The value of ``value`` (a string from the command line) as this parameter's type.

        Raises
        ------
        catdb.errors.CatdbError
            Not a number (float/int), not finite, or not one of ``choices``.
        """
        if not isinstance(value, str):
            return value
        try:
            if self.type == "float":
                v = float(value)
                if not math.isfinite(v):
                    raise ValueError
                return v
            if self.type == "int":
                return int(value)
        except ValueError:
            what = "a finite number" if self.type == "float" else "an integer"
            raise CatdbError(f"saved-query parameter {self.name}={value!r}: expected {what}") from None
        if self.choices and value not in self.choices:
            raise CatdbError(f"saved-query parameter {self.name}={value!r}: expected one of "
                             f"{', '.join(self.choices)}")
        return value


@dataclass(frozen=True)
class SavedQuery:
    """A named saved query: its parameters and the function composing its SQL."""

    name: str
    description: str
    params: tuple
    compose: object = field(repr=False)
    #: units/descriptions of computed columns: name -> (unit, description)
    overrides: dict = field(default_factory=dict, repr=False)
    example: str = ""


#: columns of the saved light curve, read from the view lightcurve_point (alias p)
_LC_SELECT = sql.SQL(
    "p.source, p.exposure_id, p.mjd_mid, p.filter, p.band, p.mag_cal AS mag, p.magerr_cal AS mag_err, "
    "p.mag_auto, p.magerr_auto, p.flux, p.flux_err, p.ra, p.dec, "
    "p.flags + CASE WHEN p.outlier THEN 65536 ELSE 0 END AS flags, p.detection_id")

_LC_UNITS = {
    "source": (None, "detection (SExtractor, linked by associate/movers) or forced (forced photometry)"),
    "exposure_id": (None, "Exposure"),
    "mjd_mid": ("d", "Mid-exposure time (MJD, UTC)"),
    "filter": (None, "Filter name as in the header"),
    "band": (None, "Band of the calibrated magnitude"),
    "mag": ("mag", "Calibrated magnitude (detections: MAG_AUTO + zeropoint; NULL without an ok zeropoint)"),
    "mag_err": ("mag", "Error of mag, zeropoint error included"),
    "mag_auto": ("mag", "SExtractor MAG_AUTO (instrumental; detections only)"),
    "magerr_auto": ("mag", "SExtractor MAGERR_AUTO (detections only)"),
    "flux": ("adu", "FLUX_AUTO (detections) or aperture flux (forced)"),
    "flux_err": ("adu", "Error of flux"),
    "ra": ("deg", "Right ascension (ICRS)"),
    "dec": ("deg", "Declination (ICRS)"),
    "flags": (None, "SExtractor FLAGS (detections; +65536 for a track's outlier epoch) or forced flags"),
    "detection_id": (None, "Detection id (detections only)"),
}


def _lightcurve(p):
    if (p.get("object_id") is None) == (p.get("track_id") is None):
        raise CatdbError("saved query lightcurve: give exactly one of --param object_id=N or --param track_id=N")
    kind = "object" if p.get("object_id") is not None else "track"
    q, params = lightcurve_sql(kind, sql.Placeholder("target_id"), select=_LC_SELECT, outliers=True)
    return q, {**params, "target_id": p[f"{kind}_id"]}


#: tables a cone search may read, and their position columns
CONE_TABLES = {"object": ("ra", "dec"), "detection": ("ra", "dec"), "refcat_source": ("ra", "dec"),
               "track": ("ra", "dec"), "forced_source": ("ra", "dec")}


def _cone(p):
    if not 0 < p["radius_arcsec"] <= 3600:
        raise CatdbError(f"saved query cone: radius_arcsec={p['radius_arcsec']:g} must be in (0, 3600] arcsec")
    if not (-90 <= p["dec"] <= 90):
        raise CatdbError(f"saved query cone: dec={p['dec']:g} must be in [-90, 90] deg")
    ra_col, dec_col = CONE_TABLES[p["table"]]
    frag = cone(p["table"], ra_col, dec_col, p["ra"] % 360.0, p["dec"], p["radius_arcsec"] / 3600.0)
    q = sql.SQL("SELECT * FROM ({}) AS _cone ORDER BY dist_arcsec LIMIT {}").format(
        frag.sql, sql.Placeholder("limit"))
    return q, {**frag.params, "limit": p["limit"]}


def _calibrated_catalog(p):
    q, params = catalog_query("d.exposure_id = %(exposure_id)s", p.get("zp_band"))
    return q, {**(params or {}), "exposure_id": p["exposure_id"]}


def _stage_runs(p):
    q = sql.SQL("SELECT id, stage, status, started_at, finished_at, "
                "round(extract(epoch FROM finished_at - started_at)::numeric, 2) AS seconds, "
                "input_count, input_where, params, counts, error, code_version, db_user "
                "FROM stage_run WHERE (%(stage)s::text IS NULL OR stage = %(stage)s::text) "
                "ORDER BY id DESC LIMIT %(limit)s")
    return q, {"stage": p.get("stage"), "limit": p["limit"]}


def _veto_rejected(p):
    q = sql.SQL(
        "SELECT s.step + 1 AS step, l.filter, s.detection_id, d.exposure_id, d.ra, d.dec "
        "FROM survivor s JOIN detection d ON d.id = s.detection_id "
        "JOIN ledger l ON l.stage_run_id = s.stage_run_id AND l.step = s.step + 1 "
        "WHERE s.set_name = %(set_name)s AND (%(step)s::int IS NULL OR s.step + 1 = %(step)s::int) "
        "AND NOT EXISTS (SELECT 1 FROM survivor k WHERE k.set_name = s.set_name AND k.step = s.step + 1 "
        "AND k.detection_id = s.detection_id) ORDER BY s.step, s.detection_id LIMIT %(limit)s")
    return q, {"set_name": p["set_name"], "step": p.get("step"), "limit": p["limit"]}


SAVED: dict[str, SavedQuery] = {q.name: q for q in [
    SavedQuery("lightcurve", "Time series of one object (its detections, calibrated, and forced photometry) "
               "or one moving-object track",
               (SavedParam("object_id", "int", "object.id (associate stage)"),
                SavedParam("track_id", "int", "track.id (movers stage)")),
               _lightcurve, _LC_UNITS, "catdb query --saved lightcurve --param track_id=503 -o lc.vot"),
    SavedQuery("cone", "Rows within radius_arcsec of (ra, dec), nearest first, with dist_arcsec",
               (SavedParam("ra", "float", "cone centre RA (ICRS) [deg]", required=True),
                SavedParam("dec", "float", "cone centre Dec (ICRS) [deg]", required=True),
                SavedParam("radius_arcsec", "float", "cone radius [arcsec]", default=5.0),
                SavedParam("table", "text", "table searched", default="object", choices=tuple(CONE_TABLES)),
                SavedParam("limit", "int", "at most this many rows", default=1000)),
               _cone, {"dist_arcsec": ("arcsec", "Distance from the cone centre")},
               "catdb query --saved cone --param ra=124.6266 --param dec=25.3429 --param radius_arcsec=3"),
    SavedQuery("calibrated-catalog", "Calibrated catalogue of one exposure: mag_cal = mag_auto + zp (latest ok "
               "zeropoint), object_id",
               (SavedParam("exposure_id", "int", "exposure.id", required=True),
                SavedParam("zp_band", "text", "use only zeropoints of this band")),
               _calibrated_catalog, None, "catdb query --saved calibrated-catalog --param exposure_id=7 -o e7.fits"),
    SavedQuery("stage-runs", "Stage runs (provenance), newest first: parameters, inputs, counts, status, errors",
               (SavedParam("stage", "text", "only runs of this stage"),
                SavedParam("limit", "int", "at most this many runs", default=50)),
               _stage_runs, {"seconds": ("s", "Run time")}, "catdb query --saved stage-runs --param stage=calibrate"),
    SavedQuery("veto-rejected", "Detections a veto chain rejected, with the step and veto that rejected each",
               (SavedParam("set_name", "text", "survivor set (stage veto --set)", required=True),
                SavedParam("step", "int", "only the rejections of this step"),
                SavedParam("limit", "int", "at most this many rows", default=1000000)),
               _veto_rejected, {"step": (None, "Veto step that rejected the detection"),
                                "filter": (None, "Veto of that step (ledger filter)")},
               "catdb query --saved veto-rejected --param set_name=vasco -o rejected.csv"),
]}


def _catalog_units():
    return CATALOG_UNITS


def list_saved() -> list[SavedQuery]:
    """The saved queries, by name."""
    return [SAVED[k] for k in sorted(SAVED)]


def saved_query(name: str, given: dict | None = None):
    """The SQL, bound values and unit overrides of saved query ``name``.

    Parameters
    ----------
    name : str
        One of :data:`SAVED` (``catdb query --list-saved``).
    given : dict of str -> str or value
        Parameter values (strings are parsed with the parameter's type).

    Returns
    -------
    query : psycopg.sql.Composable
        One SELECT with ``%(name)s`` placeholders.
    params : dict
        Values to bind.
    overrides : dict
        ``column -> (unit, description)`` for computed columns.

    Raises
    ------
    catdb.errors.CatdbError
        Unknown query, unknown or missing parameter, value of the wrong type.
    """
    if name not in SAVED:
        raise CatdbError(f"no saved query {name!r}; known: {', '.join(sorted(SAVED))} (catdb query --list-saved)")
    sq = SAVED[name]
    known = {p.name: p for p in sq.params}
    given = dict(given or {})
    unknown = [k for k in given if k not in known]
    if unknown:
        raise CatdbError(f"saved query {name}: unknown parameter {unknown[0]!r}; known: {', '.join(known)}")
    values = {}
    for p in sq.params:
        if p.name in given:
            values[p.name] = p.parse(given[p.name])
        elif p.required:
            raise CatdbError(f"saved query {name}: parameter {p.name} is required ({p.help}); "
                             f"give --param {p.name}=VALUE")
        else:
            values[p.name] = p.default
    q, params = sq.compose(values)
    overrides = _catalog_units() if sq.overrides is None else sq.overrides
    return q, params, overrides
