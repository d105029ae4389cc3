"""SCAMP results into the database: astrometric solutions (``.head``), associations (full catalogue), proper
motions (merged catalogue).

Three entry points, each recording one ``stage_run`` of stage ``ingest-scamp``
(``params.kind`` is ``head``, ``full`` or ``merged``) and writing in one transaction:

:func:`apply_scamp_solution`
    A SCAMP ``.head`` (one header block per extension) replaces the WCS of the
    matching exposure(s) through :func:`catdb.ingest.wcs_state.replace_exposure_wcs`
    (``wcs_status = 'solved'``, ``wcs_source`` the ``.head``, ``wcs_refcat``, ``wcs_nstars``
    and ``wcs_rms`` from the XML report when given, ``wcs_run_id`` the ingest-scamp run):
    ``exposure.wcs_header``, ``header``, the footprint
    columns (``ra_center``, ``dec_center``, ``radius``, ``corners``,
    ``pixscale``), and the ``ra``/``dec`` of every detection, recomputed from
    its ``xwin``/``ywin`` (``x``/``y`` where the windowed centroid is missing)
    with the new WCS (TAN, TPV, SIP: astropy ``all_pix2world``, 1-based pixels
    as SExtractor writes them).  The detections keep the ``stage_run_id`` of
    the ingest that created them (the row's *origin*); the re-positioning is
    audited in the ``ingest-scamp`` run: ``counts.old_wcs`` holds each
    exposure's previous WCS cards and ``counts.shift_arcsec`` the median and
    maximum position change.  With the SCAMP XML report the per-exposure
    statistics go to ``exposure_qa`` (metrics ``scamp_*``, see
    :data:`QA_METRICS`; statistics of a fit SCAMP did not make, which it
    reports as 0, e.g. the reference RMS when no reference star matched, are
    left out).

:func:`ingest_scamp_full`
    SCAMP's full output catalogue (``FULLOUTCAT_TYPE FITS_LDAC`` or
    ``ASCII_HEAD``: one row per detection with ``SOURCE_NUMBER`` (the merged
    source), ``CATALOG_NUMBER`` (1-based order of the input catalogues on
    SCAMP's command line, 0 for the astrometric reference catalogue),
    ``EXTENSION``, ``X_IMAGE``/``Y_IMAGE``...) becomes ``object`` rows (kind
    ``static``) and ``detection_object`` links.  SCAMP's full catalogue does
    not carry SExtractor's ``NUMBER``: a row is identified with our detection
    by its exposure (catalogue number and extension) and its pixel centroid
    (SCAMP copies ``CENTROID_KEYS``, default ``XWIN_IMAGE,YWIN_IMAGE``, into
    ``X_IMAGE``/``Y_IMAGE``), to within ``tolerance`` pixels.  Each object
    keeps its ``SOURCE_NUMBER`` in ``object.scamp_source``.  With the merged
    catalogue of the same run (``merged_path``) the objects get SCAMP's
    position, reference ``epoch`` and proper motion (``pmra``, ``pmdec``,
    ``pmra_err``, ``pmdec_err`` in mas/yr, Julian year).

:func:`ingest_scamp_merged`
    SCAMP's merged output catalogue (``MERGEDOUTCAT_TYPE FITS_LDAC``: one row
    per merged source) for objects already loaded from the full catalogue:
    the same columns, matched by ``scamp_source = SOURCE_NUMBER``.  Proper
    motions need ``-COMPUTE_PROPERMOTIONS Y`` and catalogues whose headers give
    SCAMP the time of each exposure (``MJD-OBS``; see :func:`read_scamp_merged`).

Reference: SCAMP user's guide (Bertin, https://scamp.readthedocs.io), sections
"Output headers", "Merged and full output catalogs", "XML output"; Bertin 2006,
ASP Conf. Ser. 351, 112.

Running SCAMP offline (no VizieR): ``-ASTREF_CATALOG FILE -ASTREFCAT_NAME ref.ldac
-ASTREFCENT_KEYS XWIN_WORLD,YWIN_WORLD -ASTREFERR_KEYS ERRAWIN_WORLD,ERRBWIN_WORLD``
with a local FITS_LDAC reference catalogue; ``-CHECKPLOT_DEV NULL``;
``-FULLOUTCAT_TYPE FITS_LDAC`` (SCAMP appends the field-group number:
``full.cat`` is written as ``full_1.cat``).  SCAMP 2.10.0 (Debian 12) crashes
(segmentation fault) in the cross-identification with ``-ASTREF_CATALOG NONE``.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.io import fits
from astropy.table import Table
from scipy.spatial import cKDTree

from ..algorithms.sphere import group_mean_direction
from ..db.copy import copy_table
from ..db.provenance import fail_run, finish_run, start_run
from ..errors import InputError
from .load import sha256_file
from .scamp import read_scamp_heads, read_scamp_xml
from .wcs_state import detection_frame_ltv, replace_exposure_wcs

__all__ = ["MERGED_REQUIRED", "QA_METRICS", "MergedCatalog", "ScampApplyResult", "ScampFullResult",
           "ScampMergedResult", "apply_scamp_solution", "file_stem", "ingest_scamp_full", "ingest_scamp_merged",
           "read_scamp_merged", "read_scamp_table"]

STAGE = "ingest-scamp"

#: exposure_qa metrics written from a SCAMP XML report (name -> description [unit]).
QA_METRICS = {
    "scamp_sigma_ref": "RMS of the positions about the reference catalogue, both axes combined "
                       "(hypot of AstromSigma_Reference) [arcsec]",
    "scamp_sigma_ref_ra": "RMS about the reference along RA (AstromSigma_Reference[0]) [arcsec]",
    "scamp_sigma_ref_dec": "RMS about the reference along Dec (AstromSigma_Reference[1]) [arcsec]",
    "scamp_sigma_ref_highsn": "as scamp_sigma_ref for high-S/N detections [arcsec]",
    "scamp_offset_ref": "mean offset from the reference catalogue (hypot of AstromOffset_Reference) [arcsec]",
    "scamp_chi2_ref": "reduced chi2 about the reference (Chi2_Reference)",
    "scamp_ndets_ref": "detections matched to the reference catalogue (NDeg_Reference)",
    "scamp_chi2_int": "internal reduced chi2 between overlapping detections (Chi2_Internal)",
    "scamp_ndets_int": "detections in the internal (overlap) solution (NDeg_Internal)",
    "scamp_sigma_int": "internal RMS of the field group (FGroups AstromSigma_Internal, hypot) [arcsec]",
    "scamp_as_contrast": "pattern-matching contrast in angle/scale (AS_Contrast; below ~2-3 doubtful)",
    "scamp_xy_contrast": "pattern-matching contrast in position (XY_Contrast)",
    "scamp_ndetect": "detections SCAMP loaded from the catalogue (NDetect)",
}

_COMPRESSED = (".fz", ".gz", ".bz2", ".z", ".xz")
_KNOWN_SUFFIXES = (".fits", ".fit", ".fts", ".cat", ".ldac", ".head", ".ahead", ".txt", ".asc", ".sex")


def file_stem(path) -> str:
    """Name of a file without directory, compression suffix and data-type suffix.

    ``frame.head``, ``frame.cat``, ``frame.ldac``, ``frame.fits`` and
    ``frame.fits.fz`` all give ``frame`` (SCAMP names the ``.head`` after the
    catalogue with its suffix replaced); ``20190326.0129.fits.fz`` gives
    ``20190326.0129``.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    str
    """
    name = Path(str(path)).name
    low = name.lower()
    for s in _COMPRESSED:
        if low.endswith(s):
            name, low = name[: -len(s)], low[: -len(s)]
            break
    for s in _KNOWN_SUFFIXES:
        if low.endswith(s) and len(name) > len(s):
            return name[: -len(s)]
    return name


def _resolve(path) -> str:
    return str(Path(path).expanduser().resolve())


def _sha256(path) -> str:
    return sha256_file(path)


# --------------------------------------------------------------------------- .head
@dataclass
class ScampApplyResult:
    """What one ``.head`` file changed.

    Attributes
    ----------
    head_path : str
    run_id : int
        The ``ingest-scamp`` stage_run.
    exposure_ids : list of int
        Exposures whose WCS was replaced, in header-block order.
    n_detections : int
        Detections re-positioned.
    shift_median_arcsec, shift_max_arcsec : float
        Median / maximum change of the detection positions (arcsec; NaN without detections).
    n_qa : int
        ``exposure_qa`` rows written from the XML report.
    """

    head_path: str
    run_id: int
    exposure_ids: list = field(default_factory=list)
    n_detections: int = 0
    shift_median_arcsec: float = float("nan")
    shift_max_arcsec: float = float("nan")
    n_qa: int = 0


def _exposure_rows(conn, head_path, n_blocks, exposure_id, catalog_path):
    """Exposures a .head applies to, ordered by HDU: list of (id, path, hdu, catalog_path)."""
    cols = "SELECT id, path, hdu, catalog_path FROM exposure "
    if exposure_id is not None:
        row = conn.execute(cols + "WHERE id = %s", (int(exposure_id),)).fetchone()
        if row is None:
            raise InputError(f"exposure {exposure_id} does not exist", path=head_path)
        if n_blocks == 1:
            return [row]
        rows = conn.execute(cols + "WHERE path = %s ORDER BY hdu", (row[1],)).fetchall()
        what = f"exposure {exposure_id} ({row[1]})"
    elif catalog_path is not None:
        key = _resolve(catalog_path)
        rows = conn.execute(cols + "WHERE catalog_path = %s OR path = %s ORDER BY hdu", (key, key)).fetchall()
        what = f"catalogue/image {key}"
        if not rows:
            raise InputError(f"no exposure was ingested from {key} (ingest the catalogue first)", path=head_path)
    else:
        stem = file_stem(head_path)
        pattern = "%" + re.sub(r"([\\%_])", r"\\\1", stem) + "%"
        cand = conn.execute(cols + "WHERE catalog_path LIKE %s OR path LIKE %s ORDER BY path, hdu",
                            (pattern, pattern)).fetchall()
        rows = [r for r in cand if file_stem(r[3] or "") == stem or file_stem(r[1]) == stem]
        what = f"catalogue/image named {stem}.*"
        if not rows:
            raise InputError(f"SCAMP .head matches no exposure: no catalogue or image named '{stem}.*' is in the "
                             "database (ingest it first, or give exposure_id / catalog_path)", path=head_path)
        files = sorted({r[3] or r[1] for r in rows})
        if len(files) > 1 and len({r[1] for r in rows}) > 1:
            raise InputError(f"ambiguous: {len(files)} ingested files are named '{stem}.*' ({', '.join(files)}); "
                             "give exposure_id or catalog_path", path=head_path)
    if len(rows) != n_blocks:
        raise InputError(f"the .head has {n_blocks} header blocks (one per extension) but {what} has "
                         f"{len(rows)} exposures (HDUs {[r[2] for r in rows]})", path=head_path)
    return rows


def _qa_values(report, catalog_names, head_path, xml_path):
    """Metric -> value for the XML Fields row whose Catalog_Name stem is one of ``catalog_names``."""
    f = report.fields
    names = [str(n) for n in f["Catalog_Name"]]
    hit = [i for i, n in enumerate(names) if file_stem(n) in catalog_names]
    if not hit:
        raise InputError(f"no row of the XML report's Fields table is for {sorted(catalog_names)} "
                         f"(Catalog_Name values: {names})", path=xml_path, keyword="Catalog_Name")
    row = f[hit[0]]
    cols = f.colnames

    def vec(name):
        if name not in cols:
            return None
        v = np.asarray(row[name], dtype=float).ravel()
        return v if v.size else None

    def scal(name):
        v = vec(name)
        return None if v is None else float(v[0])

    out = {}
    s = vec("AstromSigma_Reference")
    if s is not None and s.size >= 2:
        out["scamp_sigma_ref"] = float(np.hypot(s[0], s[1]))
        out["scamp_sigma_ref_ra"], out["scamp_sigma_ref_dec"] = float(s[0]), float(s[1])
    s = vec("AstromSigma_Reference_HighSN")
    if s is not None and s.size >= 2:
        out["scamp_sigma_ref_highsn"] = float(np.hypot(s[0], s[1]))
    s = vec("AstromOffset_Reference")
    if s is not None and s.size >= 2:
        out["scamp_offset_ref"] = float(np.hypot(s[0], s[1]))
    for metric, col in (("scamp_chi2_ref", "Chi2_Reference"), ("scamp_ndets_ref", "NDeg_Reference"),
                        ("scamp_chi2_int", "Chi2_Internal"), ("scamp_ndets_int", "NDeg_Internal"),
                        ("scamp_as_contrast", "AS_Contrast"), ("scamp_xy_contrast", "XY_Contrast"),
                        ("scamp_ndetect", "NDetect")):
        v = scal(col)
        if v is not None:
            out[metric] = v
    # SCAMP writes 0 for the statistics of a fit it did not make (no reference star matched, a single
    # catalogue without overlaps): those are absent values, not perfect ones
    if out.get("scamp_ndets_ref") == 0:
        for k in ("scamp_sigma_ref", "scamp_sigma_ref_ra", "scamp_sigma_ref_dec", "scamp_sigma_ref_highsn",
                  "scamp_offset_ref", "scamp_chi2_ref"):
            out.pop(k, None)
    if out.get("scamp_ndets_int") == 0:
        out.pop("scamp_chi2_int", None)
    g = report.fgroups
    if len(g) and "Group" in cols and "AstromSigma_Internal" in g.colnames:
        grp = int(row["Group"])
        idx = [i for i, x in enumerate(np.asarray(g["Index"] if "Index" in g.colnames else np.arange(1, len(g) + 1)))
               if int(x) == grp]
        if idx:
            s = np.asarray(g[idx[0]]["AstromSigma_Internal"], dtype=float).ravel()
            nint = (float(np.asarray(g[idx[0]]["AstromNDets_Internal"]).ravel()[0])
                    if "AstromNDets_Internal" in g.colnames else 1.0)
            if s.size >= 2 and nint > 0:
                out["scamp_sigma_int"] = float(np.hypot(s[0], s[1]))
    return {k: v for k, v in out.items() if np.isfinite(v)}


def apply_scamp_solution(conn, head_path, exposure_id: int | None = None, catalog_path=None,
                         xml_path=None) -> ScampApplyResult:
    """Replace the WCS of exposure(s) by a SCAMP ``.head`` and recompute their detections' RA/Dec.

    Parameters
    ----------
    conn : psycopg.Connection
        Not in autocommit.
    head_path : str or os.PathLike
        SCAMP ``.head``: one header block per extension (read with
        :func:`catdb.ingest.scamp.read_scamp_heads`).  Block *i* applies to the
        *i*-th exposure of the file by HDU order.
    exposure_id : int, optional
        The exposure (for a multi-extension file, any exposure of it: all its
        HDUs are taken).  Default: match by file name.
    catalog_path : path, optional
        The SExtractor catalogue (or image) the exposure was ingested from.
        Default: the exposure whose catalogue or image has the ``.head``'s stem
        (``frame.head`` <-> ``frame.cat``/``frame.ldac``/``frame.fits[.fz]``).
    xml_path : path, optional
        SCAMP XML report of the run; its ``Fields`` row for the catalogue gives
        the :data:`QA_METRICS` written to ``exposure_qa`` (replacing earlier
        ``scamp_*`` rows of the exposure).

    Returns
    -------
    ScampApplyResult

    Raises
    ------
    catdb.errors.InputError
        Unreadable ``.head`` / XML; no exposure (or an ambiguous set) matches,
        naming the ``.head``; block count different from the exposure's HDU
        count; exposure without image size (NAXIS1/2); detections without
        pixel positions; XML without a row for the catalogue.  Nothing is
        changed and the ``ingest-scamp`` run is marked failed.

    Notes
    -----
    Positions: ``(ra, dec) = WCS.all_pix2world(xwin, ywin, 1)`` (``x``/``y``
    where ``xwin``/``ywin`` is NULL), the FITS WCS papers (Greisen & Calabretta
    2002; Calabretta & Greisen 2002) with SCAMP's TPV distortion, as SCAMP
    writes it (SCAMP guide, "Output headers"), evaluated by astropy/WCSLIB.
    Only ``ra``/``dec`` are recomputed; ``a_world``/``fwhm`` etc. keep the
    values SExtractor computed with the old WCS.  Objects' mean positions
    computed earlier are not updated.
    """
    head_path = str(head_path)
    heads = read_scamp_heads(head_path)
    report = read_scamp_xml(xml_path) if xml_path is not None else None
    params = {"kind": "head", "head": _resolve(head_path), "sha256": _sha256(head_path),
              "exposure_id": exposure_id, "catalog_path": None if catalog_path is None else _resolve(catalog_path),
              "xml": None if xml_path is None else _resolve(xml_path)}
    run_id = start_run(conn, STAGE, params)
    res = ScampApplyResult(head_path=head_path, run_id=run_id)
    try:
        with conn.transaction():
            rows = _exposure_rows(conn, head_path, len(heads), exposure_id, catalog_path)
            old_wcs, shifts, all_shift, qa_cols = {}, {}, [], {"exposure_id": [], "metric": [], "value": []}
            refcat = None
            if report is not None and len(report.fgroups) and "AstRef_Catalog" in report.fgroups.colnames:
                refcat = str(report.fgroups[0]["AstRef_Catalog"]).strip() or None
            for (eid, path, _hdu, cat_path), head in zip(rows, heads):
                vals = {}
                if report is not None:
                    names = {file_stem(head_path), file_stem(path)} | ({file_stem(cat_path)} if cat_path else set())
                    vals = _qa_values(report, names, head_path, xml_path)
                    qa_cols["exposure_id"] += [eid] * len(vals)
                    qa_cols["metric"] += list(vals)
                    qa_cols["value"] += list(vals.values())
                # the .head is in the pixel frame of the catalogue SCAMP read: the detections' frame
                moved = replace_exposure_wcs(
                    conn, eid, head, status="solved", source=f"SCAMP .head {_resolve(head_path)}", refcat=refcat,
                    nstars=int(vals["scamp_ndets_ref"]) if "scamp_ndets_ref" in vals else None,
                    rms=vals.get("scamp_sigma_ref"), run_id=run_id, frame_ltv=detection_frame_ltv(conn, eid),
                    path_for_errors=head_path)
                old_wcs[str(eid)] = moved["old_wcs"]
                if moved["n"]:
                    shifts[str(eid)] = {"median": moved["shift_median"], "max": moved["shift_max"], "n": moved["n"]}
                    all_shift.append(moved["sep"])
                    res.n_detections += moved["n"]
                res.exposure_ids.append(eid)
            if res.n_detections:
                sep = np.concatenate(all_shift)
                res.shift_median_arcsec, res.shift_max_arcsec = float(np.median(sep)), float(np.max(sep))
            if report is not None:
                conn.execute("DELETE FROM exposure_qa WHERE exposure_id = ANY(%s) AND metric = ANY(%s)",
                             (res.exposure_ids, list(QA_METRICS)))
                res.n_qa = copy_table(conn, "exposure_qa",
                                      {"exposure_id": np.asarray(qa_cols["exposure_id"], dtype=np.int64),
                                       "metric": np.asarray(qa_cols["metric"], dtype=object),
                                       "value": np.asarray(qa_cols["value"], dtype=float)},
                                      constants={"stage_run_id": run_id})
            conn.execute("UPDATE stage_run SET status = 'replaced' WHERE stage = %s AND status = 'ok' AND id <> %s "
                         "AND params->>'kind' = 'head' AND input_ids <@ %s::bigint[]",
                         (STAGE, run_id, res.exposure_ids))
            finish_run(conn, run_id, inputs=res.exposure_ids,
                       counts={"exposure": len(res.exposure_ids), "detection": res.n_detections,
                               "exposure_qa": res.n_qa, "old_wcs": old_wcs, "shift_arcsec": shifts})
    except Exception as e:
        fail_run(conn, run_id, e)
        raise
    return res


# --------------------------------------------------------------------------- full catalogue
@dataclass
class ScampFullResult:
    """What one SCAMP full catalogue contributed.

    Attributes
    ----------
    path : str
    run_id : int
    exposure_ids : list of int
        Exposures of the input catalogues, in SCAMP's catalogue order.
    n_objects : int
        ``object`` rows written (merged sources with at least one of our detections).
    n_links : int
        ``detection_object`` rows written.
    n_reference_rows : int
        Rows of the reference catalogue (``CATALOG_NUMBER`` 0), not linked.
    centroid : str
        Detection columns the rows were identified by (``xwin/ywin`` or ``x/y``).
    replaced_objects : int
        Objects of earlier ``ingest-scamp`` runs on these exposures deleted.
    n_merged : int
        Sources in the merged catalogue (0 without one).
    n_pm : int
        Objects given a proper motion from the merged catalogue.
    """

    path: str
    run_id: int
    exposure_ids: list = field(default_factory=list)
    n_objects: int = 0
    n_links: int = 0
    n_reference_rows: int = 0
    centroid: str = ""
    replaced_objects: int = 0
    n_merged: int = 0
    n_pm: int = 0


_FULL_REQUIRED = ("SOURCE_NUMBER", "CATALOG_NUMBER", "EXTENSION", "X_IMAGE", "Y_IMAGE", "ALPHA_J2000", "DELTA_J2000")


def read_scamp_table(path, required=_FULL_REQUIRED, what: str = "SCAMP full/merged catalogue"):
    """Read a SCAMP full or merged output catalogue (FITS_LDAC or ASCII_HEAD).

    Parameters
    ----------
    path : str or os.PathLike
        ``FULLOUTCAT_NAME`` / ``MERGEDOUTCAT_NAME`` file: FITS_LDAC (table in
        ``LDAC_OBJECTS``) or ASCII_HEAD (``#   1 NAME  description [unit]``
        header lines, SExtractor's ASCII layout).
    required : sequence of str
        Columns that must be present.
    what : str
        What the file should be, for the missing-column message.

    Returns
    -------
    astropy.table.Table

    Raises
    ------
    catdb.errors.InputError
        Unreadable file, neither format, or a required column missing (named).
    """
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            start = fh.read(80)
    except OSError as exc:
        raise InputError(f"cannot read SCAMP catalogue: {exc.strerror}", path=path) from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            if start.startswith(b"SIMPLE  ="):
                with fits.open(p, memmap=False) as hl:
                    names = [h.name for h in hl]
                    if "LDAC_OBJECTS" in names:
                        hdu = hl["LDAC_OBJECTS"]
                    elif len(hl) > 1 and isinstance(hl[1], fits.BinTableHDU):
                        hdu = hl[1]
                    else:
                        raise InputError(f"no LDAC_OBJECTS table (HDUs: {names}): not a SCAMP FITS_LDAC catalogue",
                                         path=path)
                    if not isinstance(hdu, fits.BinTableHDU):
                        raise InputError(f"HDU {hdu.name} is not a table: not a SCAMP FITS_LDAC catalogue",
                                         path=path)
                    t = Table(hdu.data)
                    for c in hdu.columns:  # keep the file's units (TUNITn) for conversions
                        if c.unit:
                            t[c.name].unit = u.Unit(c.unit, parse_strict="silent")
            elif start.lstrip().startswith(b"#"):
                t = Table.read(p, format="ascii.sextractor")
            else:
                raise InputError("neither FITS_LDAC nor ASCII_HEAD: not a SCAMP output catalogue", path=path)
        except InputError:
            raise
        except Exception as exc:  # noqa: BLE001 - any parse failure becomes a one-line error naming the file
            raise InputError(f"cannot parse SCAMP catalogue: {exc}", path=path) from None
    if not len(t.colnames):
        raise InputError(f"empty table ({what} expected)", path=path)
    missing = [c for c in required if c not in t.colnames]
    if missing:
        raise InputError(f"column {missing[0]} missing ({what} expected; columns: "
                         f"{', '.join(t.colnames)})", path=path, keyword=missing[0])
    return t


# --------------------------------------------------------------------------- merged catalogue
#: Columns a SCAMP merged catalogue must have (SCAMP 2.x ``MERGEDOUTCAT``).
MERGED_REQUIRED = ("SOURCE_NUMBER", "ALPHA_J2000", "DELTA_J2000", "ERRA_WORLD", "ERRB_WORLD", "EPOCH",
                   "PMALPHA_J2000", "PMDELTA_J2000", "PMALPHAERR_J2000", "PMDELTAERR_J2000")


def _column_in(t, name, scamp_unit, to, path):
    """Column ``name`` of ``t`` as floats in unit ``to`` (astropy units).

    From the file's unit, or ``scamp_unit`` (what SCAMP writes) when the column has none.
    """
    col = t[name]
    have = getattr(col, "unit", None)
    try:
        src = u.Unit(scamp_unit) if have is None or str(have) in ("", "None") else u.Unit(str(have))
        return (np.asarray(col, dtype=float) * src).to_value(to)
    except (ValueError, u.UnitConversionError) as exc:
        raise InputError(f"unit {have!s} of column {name} cannot be converted to {to}: {exc}",
                         path=path, keyword=name) from None


@dataclass
class MergedCatalog:
    """A SCAMP merged catalogue, one entry per source, sorted by ``source``.

    Attributes
    ----------
    path : str
    source : ndarray of int64
        ``SOURCE_NUMBER``: the key shared with the full catalogue of the same run.
    ra, dec : ndarray
        ``ALPHA_J2000``, ``DELTA_J2000`` (deg, ICRS), SCAMP's position at ``epoch``.
    ra_err, dec_err : ndarray
        ``ERRA_WORLD``, ``ERRB_WORLD`` converted to arcsec (semi-major and
        semi-minor axis of the position error ellipse).
    epoch : ndarray
        ``EPOCH`` (Julian year): SCAMP's reference epoch of the position, the
        weighted mean epoch of the detections.
    pmra, pmdec, pmra_err, pmdec_err : ndarray
        ``PMALPHA_J2000`` (mu_alpha* = mu_alpha cos(dec)), ``PMDELTA_J2000`` and
        their errors in mas/yr (Julian year), NaN where SCAMP fitted no proper
        motion: it writes 0 with a 0 error when it kept fewer than two
        positions of the source (``NPOS_OK`` 1, also for a source seen on
        three frames with two of them flagged) or with ``COMPUTE_PROPERMOTIONS N``.
    npos_ok : ndarray of int64
        ``NPOS_OK``: positions SCAMP used (-1 when the column is absent).
    """

    path: str
    source: np.ndarray
    ra: np.ndarray
    dec: np.ndarray
    ra_err: np.ndarray
    dec_err: np.ndarray
    epoch: np.ndarray
    pmra: np.ndarray
    pmdec: np.ndarray
    pmra_err: np.ndarray
    pmdec_err: np.ndarray
    npos_ok: np.ndarray

    def object_columns(self) -> dict:
        """``object`` column name -> array (per source, in ``source`` order)."""
        return {"ra": self.ra, "dec": self.dec, "ra_err": self.ra_err, "dec_err": self.dec_err,
                "epoch": self.epoch, "pmra": self.pmra, "pmdec": self.pmdec, "pmra_err": self.pmra_err,
                "pmdec_err": self.pmdec_err}

    def rows_for(self, sources, path, what) -> np.ndarray:
        """Indices of ``sources`` (SOURCE_NUMBERs); InputError naming the first one not in this catalogue."""
        sources = np.asarray(sources, dtype=np.int64)
        pos = np.clip(np.searchsorted(self.source, sources), 0, max(len(self.source) - 1, 0))
        found = (self.source[pos] == sources) if len(self.source) else np.zeros(len(sources), bool)
        if not found.all():
            raise InputError(f"SOURCE_NUMBER {sources[~found][0]} of {what} is not in the merged catalogue "
                             f"({int((~found).sum())} of {len(sources)} missing: not from the same SCAMP run?)",
                             path=path, keyword="SOURCE_NUMBER")
        return pos


def read_scamp_merged(path) -> MergedCatalog:
    """Read a SCAMP merged output catalogue (``MERGEDOUTCAT_TYPE`` FITS_LDAC or ASCII_HEAD).

    Parameters
    ----------
    path : str or os.PathLike
        ``merged_N.cat`` (SCAMP appends the field-group number N to
        ``MERGEDOUTCAT_NAME``): one row per merged source, table in
        ``LDAC_OBJECTS``, columns :data:`MERGED_REQUIRED` among others.

    Returns
    -------
    MergedCatalog
        Units converted with astropy from the file's column units (SCAMP
        writes deg, mas/yr, yr; a column without unit is taken in SCAMP's).

    Raises
    ------
    catdb.errors.InputError
        Unreadable file, no table (wrong HDU), a required column missing
        (named: a full catalogue given as merged lacks ``PMALPHA_J2000``), a
        unit that does not convert, duplicate ``SOURCE_NUMBER``.

    Notes
    -----
    SCAMP's ``EPOCH`` is a Julian epoch, ``2000 + (MJD - 51544.5) / 365.25``
    (checked on a real run: the full catalogue's per-detection ``EPOCH`` is
    this of the mid-exposure MJD to 1e-9 yr, when the catalogues carry
    ``MJD-OBS``), and the proper motions are per Julian year: a rate in
    arcsec/h is ``pm * u.mas / u.yr`` converted by astropy, whose ``yr`` is
    the Julian year of 365.25 d exactly (1 mas/yr = 1 / 8 766 000 arcsec/h).
    SCAMP reads the epoch of a catalogue from ``MJD-OBS`` or else
    ``DATE-OBS``; a date-only ``DATE-OBS`` (Lowell) gives every exposure the
    same epoch and proper motions of 0.  SCAMP user's guide, "Merged and full
    output catalogs" (https://scamp.readthedocs.io).
    """
    path = str(path)
    t = read_scamp_table(path, MERGED_REQUIRED, what="SCAMP merged catalogue (MERGEDOUTCAT)")
    src = np.asarray(t["SOURCE_NUMBER"], dtype=np.int64)
    order = np.argsort(src, kind="stable")
    src = src[order]
    dup = np.flatnonzero(np.diff(src) == 0)
    if len(dup):
        raise InputError(f"SOURCE_NUMBER {src[dup[0]]} appears more than once: not a merged catalogue of one "
                         "field group", path=path, keyword="SOURCE_NUMBER")
    t = t[order]
    pm = {k: _column_in(t, c, "mas/yr", "mas/yr", path) for k, c in
          (("pmra", "PMALPHA_J2000"), ("pmdec", "PMDELTA_J2000"), ("pmra_err", "PMALPHAERR_J2000"),
           ("pmdec_err", "PMDELTAERR_J2000"))}
    none = (pm["pmra_err"] == 0) & (pm["pmdec_err"] == 0)
    for v in pm.values():
        v[none] = np.nan
    epoch = _column_in(t, "EPOCH", "yr", "yr", path)
    return MergedCatalog(
        path=path, source=src, ra=np.mod(_column_in(t, "ALPHA_J2000", "deg", "deg", path), 360.0),
        dec=_column_in(t, "DELTA_J2000", "deg", "deg", path),
        ra_err=_column_in(t, "ERRA_WORLD", "deg", "arcsec", path),
        dec_err=_column_in(t, "ERRB_WORLD", "deg", "arcsec", path), epoch=epoch, **pm,
        npos_ok=(np.asarray(t["NPOS_OK"], dtype=np.int64) if "NPOS_OK" in t.colnames
                 else np.full(len(t), -1, dtype=np.int64)))


def _input_exposures(conn, path, catalogs, exposure_ids):
    """list (per CATALOG_NUMBER 1..N) of lists of exposure ids ordered by HDU (one per EXTENSION)."""
    if (catalogs is None) == (exposure_ids is None):
        raise InputError("give the input catalogues in SCAMP's order (catalogs=) or their exposure ids "
                         "(exposure_ids=), one of the two", path=path)
    out = []
    if catalogs is not None:
        for c in catalogs:
            key = _resolve(c)
            ids = [r[0] for r in conn.execute("SELECT id FROM exposure WHERE catalog_path = %s ORDER BY hdu",
                                              (key,)).fetchall()]
            if not ids:
                raise InputError(f"catalogue {key} was given to SCAMP but is not in the database "
                                 "(catdb ingest catalog it first)", path=path)
            out.append(ids)
    else:
        found = {r[0] for r in conn.execute("SELECT id FROM exposure WHERE id = ANY(%s)",
                                            ([int(e) for e in exposure_ids],)).fetchall()}
        for e in exposure_ids:
            if int(e) not in found:
                raise InputError(f"exposure {e} does not exist", path=path)
            out.append([int(e)])
    return out


def _match_rows(conn, eid, xs, ys, tolerance):
    """Detection ids of exposure ``eid`` at pixel positions (xs, ys), and the centroid used (vectorised KD-tree)."""
    det = np.array(conn.execute("SELECT id, xwin, ywin, x, y FROM detection WHERE exposure_id = %s ORDER BY id",
                                (eid,)).fetchall(), dtype=float).reshape(-1, 5)
    best = None
    for name, cx, cy in (("xwin/ywin", 1, 2), ("x/y", 3, 4)):
        ok = np.isfinite(det[:, cx]) & np.isfinite(det[:, cy])
        if not ok.any():
            continue
        tree = cKDTree(np.column_stack([det[ok, cx], det[ok, cy]]))
        dist, idx = tree.query(np.column_stack([xs, ys]), distance_upper_bound=tolerance)
        hit = np.isfinite(dist)
        ids = np.full(len(xs), -1, dtype=np.int64)
        ids[hit] = det[ok, 0][idx[hit]].astype(np.int64)
        if best is None or hit.sum() > (best[0] >= 0).sum():
            best = (ids, name)
        if hit.all():
            break
    if best is None:
        return np.full(len(xs), -1, dtype=np.int64), "none"
    return best


def ingest_scamp_full(conn, full_path, *, catalogs=None, exposure_ids=None, merged_path=None,
                      tolerance: float = 0.01) -> ScampFullResult:
    """Link detections to SCAMP's merged sources: ``object`` (kind static) + ``detection_object`` rows.

    Parameters
    ----------
    conn : psycopg.Connection
        Not in autocommit.
    full_path : str or os.PathLike
        SCAMP full output catalogue (``FULLOUTCAT_TYPE`` FITS_LDAC or ASCII_HEAD).
    catalogs : sequence of path, optional
        The SExtractor catalogues in the order they were given to SCAMP
        (``CATALOG_NUMBER`` 1, 2, ...), each already ingested
        (``exposure.catalog_path``).  ``EXTENSION`` *k* is the *k*-th exposure
        of the catalogue by HDU.
    exposure_ids : sequence of int, optional
        Instead of ``catalogs``: the exposure of each (single-extension) catalogue, in SCAMP's order.
    merged_path : path, optional
        SCAMP merged output catalogue of the same run (``MERGEDOUTCAT``, read
        with :func:`read_scamp_merged`): object positions, errors, reference
        epoch and proper motions are SCAMP's (``ALPHA_J2000``, ``DELTA_J2000``,
        ``ERRA_WORLD``, ``ERRB_WORLD``, ``EPOCH``, ``PMALPHA_J2000``, ...).
        Default: mean of the unit vectors of the full catalogue's positions of
        the source's detections (reference rows excluded), errors the standard
        error of the mean per axis (the row's ``ERRA_WORLD`` for a single
        detection); no epoch or proper motion.  :func:`ingest_scamp_merged`
        adds a merged catalogue to objects loaded without one.
    tolerance : float
        Pixels: a SCAMP row is our detection when their centroids agree to
        this (SCAMP's ASCII output rounds to 1e-4 pix).

    Returns
    -------
    ScampFullResult

    Raises
    ------
    catdb.errors.InputError
        Unreadable catalogue or missing column; a catalogue not ingested; a
        ``CATALOG_NUMBER``/``EXTENSION`` beyond the inputs given; rows that
        match no detection of their exposure (wrong catalogue order, or the
        catalogue was re-extracted since); detections of these exposures already
        linked to objects by another stage.  Nothing is written; the
        ``ingest-scamp`` run is marked failed.

    Notes
    -----
    Re-ingesting replaces: objects of earlier ``ingest-scamp`` runs linked to
    detections of these exposures are deleted (with all their links) first.
    ``object.n_detections``, ``n_epochs``, ``mjd_first``, ``mjd_last`` are set
    from the links; no photometry (``band``, ``mean_mag``) is set.
    SCAMP user's guide, "Merged and full output catalogs".
    """
    full_path = str(full_path)
    t = read_scamp_table(full_path)
    merged = read_scamp_merged(merged_path) if merged_path else None
    params = {"kind": "full", "full": _resolve(full_path), "sha256": _sha256(full_path),
              "catalogs": None if catalogs is None else [_resolve(c) for c in catalogs],
              "exposure_ids": None if exposure_ids is None else [int(e) for e in exposure_ids],
              "merged": None if merged_path is None else _resolve(merged_path), "tolerance": tolerance}
    run_id = start_run(conn, STAGE, params)
    res = ScampFullResult(path=full_path, run_id=run_id)
    try:
        with conn.transaction():
            inputs = _input_exposures(conn, full_path, catalogs, exposure_ids)
            res.exposure_ids = [e for ids in inputs for e in ids]
            src = np.asarray(t["SOURCE_NUMBER"], dtype=np.int64)
            catn = np.asarray(t["CATALOG_NUMBER"], dtype=np.int64)
            ext = np.asarray(t["EXTENSION"], dtype=np.int64)
            x = np.asarray(t["X_IMAGE"], dtype=float)
            y = np.asarray(t["Y_IMAGE"], dtype=float)
            ref = catn == 0
            res.n_reference_rows = int(ref.sum())
            if (catn > len(inputs)).any() or (catn < 0).any():
                bad = int(np.flatnonzero((catn > len(inputs)) | (catn < 0))[0])
                raise InputError(f"CATALOG_NUMBER {catn[bad]} but {len(inputs)} input catalogues were given "
                                 "(give all catalogues, in SCAMP's command-line order)",
                                 path=full_path, row=bad + 1, keyword="CATALOG_NUMBER")
            det_id = np.full(len(t), -1, dtype=np.int64)
            centroids = set()
            for k, ids in enumerate(inputs, start=1):  # loop over catalogues and extensions, not rows
                in_cat = catn == k
                if in_cat.any() and ((ext[in_cat] < 1).any() or (ext[in_cat] > len(ids)).any()):
                    bad = int(np.flatnonzero(in_cat & ((ext < 1) | (ext > len(ids))))[0])
                    raise InputError(f"EXTENSION {ext[bad]} of catalogue {k}, which has {len(ids)} exposure(s)",
                                     path=full_path, row=bad + 1, keyword="EXTENSION")
                for e, eid in enumerate(ids, start=1):
                    sel = np.flatnonzero(in_cat & (ext == e))
                    if not len(sel):
                        continue
                    matched, name = _match_rows(conn, eid, x[sel], y[sel], tolerance)
                    if (matched < 0).any():
                        bad = sel[int(np.flatnonzero(matched < 0)[0])]
                        raise InputError(
                            f"{int((matched < 0).sum())} of {len(sel)} rows of catalogue {k} extension {e} match no "
                            f"detection of exposure {eid} within {tolerance} pix (first at X_IMAGE {x[bad]:.4f}, "
                            f"Y_IMAGE {y[bad]:.4f}): are the catalogues given in SCAMP's order, unchanged since?",
                            path=full_path, row=int(bad) + 1, keyword="X_IMAGE")
                    if len(np.unique(matched)) != len(matched):
                        raise InputError(f"two rows of catalogue {k} extension {e} match the same detection of "
                                         f"exposure {eid}; lower the tolerance", path=full_path, keyword="X_IMAGE")
                    det_id[sel] = matched
                    centroids.add(name)
            res.centroid = ",".join(sorted(centroids))
            ours = np.flatnonzero(~ref)
            # replace earlier SCAMP associations of these exposures; refuse to overwrite another stage's links
            res.replaced_objects = conn.execute(
                "DELETE FROM object WHERE id IN (SELECT l.object_id FROM detection_object l "
                "JOIN detection d ON d.id = l.detection_id JOIN stage_run r ON r.id = l.stage_run_id "
                "WHERE d.exposure_id = ANY(%s) AND r.stage = %s)", (res.exposure_ids, STAGE)).rowcount
            other = conn.execute(
                "SELECT count(*), min(r.stage), min(r.id) FROM detection_object l JOIN stage_run r "
                "ON r.id = l.stage_run_id WHERE l.detection_id = ANY(%s)", (det_id[ours].tolist(),)).fetchone()
            if other[0]:
                raise InputError(f"{other[0]} of these detections are already linked to objects by stage "
                                 f"'{other[1]}' (stage_run {other[2]}); delete that run's objects before loading "
                                 "SCAMP's associations", path=full_path)
            n_obj, n_links = _write_objects(conn, run_id, t, ours, src, det_id, merged, merged_path)
            res.n_objects, res.n_links = n_obj, n_links
            if merged is not None:
                res.n_merged = len(merged.source)
                res.n_pm = int(conn.execute("SELECT count(pmra) FROM object WHERE stage_run_id = %s",
                                            (run_id,)).fetchone()[0])
            conn.execute("UPDATE stage_run r SET status = 'replaced' WHERE r.stage = %s AND r.status = 'ok' "
                         "AND r.id <> %s AND r.params->>'kind' = 'full' AND NOT EXISTS "
                         "(SELECT 1 FROM object o WHERE o.stage_run_id = r.id)", (STAGE, run_id))
            finish_run(conn, run_id, inputs=res.exposure_ids,
                       counts={"object": n_obj, "detection_object": n_links, "reference_rows": res.n_reference_rows,
                               "merged_sources": res.n_merged, "proper_motions": res.n_pm,
                               "replaced_objects": res.replaced_objects, "centroid": res.centroid})
    except Exception as e:
        fail_run(conn, run_id, e)
        raise
    return res


def _write_objects(conn, run_id, t, ours, src, det_id, merged, merged_path):
    """COPY objects (one per SCAMP source among ``ours`` rows) and their links; returns (n_objects, n_links)."""
    if not len(ours):
        return 0, 0
    sources, inv = np.unique(src[ours], return_inverse=True)
    n = len(sources)
    ids = np.array(conn.execute(
        "SELECT nextval(pg_get_serial_sequence('object', 'id')) FROM generate_series(1, %s)", (n,)).fetchall(),
        dtype=np.int64).ravel()
    cnt = np.bincount(inv, minlength=n)
    cols = {"scamp_source": sources}
    if merged is not None:
        m = merged.rows_for(sources, merged_path, what="the full catalogue")
        cols.update({k: v[m] for k, v in merged.object_columns().items()})
    else:
        a = np.asarray(t["ALPHA_J2000"], dtype=float)[ours]
        d = np.asarray(t["DELTA_J2000"], dtype=float)[ours]
        ra, dec = group_mean_direction(a, d, inv, n)
        # residuals about the mean in the tangent plane (arcsec), standard error of the mean per axis
        dra = ((a - ra[inv] + 180.0) % 360.0 - 180.0) * np.cos(np.radians(d)) * 3600.0
        ddec = (d - dec[inv]) * 3600.0
        with np.errstate(invalid="ignore", divide="ignore"):
            sra = np.sqrt(np.bincount(inv, dra ** 2, n) / np.maximum(cnt - 1, 1)) / np.sqrt(cnt)
            sdec = np.sqrt(np.bincount(inv, ddec ** 2, n) / np.maximum(cnt - 1, 1)) / np.sqrt(cnt)
        single = np.full(n, np.nan)
        if "ERRA_WORLD" in t.colnames:
            single[inv] = np.asarray(t["ERRA_WORLD"], dtype=float)[ours] * 3600.0
        cols.update(ra=ra, dec=dec, ra_err=np.where(cnt > 1, sra, single), dec_err=np.where(cnt > 1, sdec, single))
    copy_table(conn, "object", {"id": ids, **cols, "n_detections": cnt.astype(np.int64)},
               constants={"kind": "static", "stage_run_id": run_id})
    n_links = copy_table(conn, "detection_object", {"detection_id": det_id[ours], "object_id": ids[inv]},
                         constants={"stage_run_id": run_id})
    conn.execute(
        "UPDATE object o SET n_detections = s.n, n_epochs = s.ne, mjd_first = s.mn, mjd_last = s.mx FROM "
        "(SELECT l.object_id, count(*) AS n, count(DISTINCT d.exposure_id) AS ne, min(e.mjd_mid) AS mn, "
        "max(e.mjd_mid) AS mx FROM detection_object l JOIN detection d ON d.id = l.detection_id "
        "JOIN exposure e ON e.id = d.exposure_id WHERE l.stage_run_id = %s GROUP BY l.object_id) s "
        "WHERE o.id = s.object_id", (run_id,))
    return n, n_links


@dataclass
class ScampMergedResult:
    """What one SCAMP merged catalogue changed.

    Attributes
    ----------
    path : str
    run_id : int
        The ``ingest-scamp`` stage_run (``params.kind`` ``merged``).
    full_run_id : int
        The full-catalogue run whose objects were updated.
    n_merged : int
        Sources in the merged catalogue.
    n_objects : int
        Objects updated (the full run's objects: every one has its source in the file).
    n_pm : int
        Of those, objects with a proper motion (SCAMP fitted one).
    """

    path: str
    run_id: int
    full_run_id: int = 0
    n_merged: int = 0
    n_objects: int = 0
    n_pm: int = 0


def _full_run(conn, path, run_id, catalogs, exposure_ids):
    """(id, exposure ids) of the ok ``ingest-scamp`` full-catalogue run a merged catalogue belongs to."""
    q = ("SELECT id, input_ids FROM stage_run WHERE stage = %s AND status = 'ok' AND params->>'kind' = 'full' "
         "AND EXISTS (SELECT 1 FROM object o WHERE o.stage_run_id = stage_run.id) ")
    if run_id is not None:
        row = conn.execute(q + "AND id = %s", (STAGE, int(run_id))).fetchone()
        if row is None:
            raise InputError(f"stage_run {run_id} is not a successful ingest-scamp full-catalogue load with objects",
                             path=path)
        return row[0], list(row[1] or [])
    if catalogs is None and exposure_ids is None:
        raise InputError("give the SCAMP input catalogues (or their exposure ids, or the full-catalogue run) "
                         "whose objects the merged catalogue updates", path=path)
    ids = [e for grp in _input_exposures(conn, path, catalogs, exposure_ids) for e in grp]
    row = conn.execute(q + "AND input_ids = %s::bigint[] ORDER BY id DESC LIMIT 1", (STAGE, ids)).fetchone()
    if row is None:
        raise InputError(f"no SCAMP full catalogue was loaded for exposures {ids} (load full_N.cat first: "
                         "catdb ingest scamp CATALOGS --full full_N.cat --merged merged_N.cat)", path=path)
    return row[0], ids


def ingest_scamp_merged(conn, merged_path, *, run_id: int | None = None, catalogs=None,
                        exposure_ids=None) -> ScampMergedResult:
    """Give the objects of a SCAMP full-catalogue load SCAMP's merged positions and proper motions.

    Parameters
    ----------
    conn : psycopg.Connection
        Not in autocommit.
    merged_path : str or os.PathLike
        SCAMP merged output catalogue (:func:`read_scamp_merged`) of the run
        whose full catalogue was loaded by :func:`ingest_scamp_full`.
    run_id : int, optional
        That full-catalogue ``ingest-scamp`` run.  Default: the latest one on
        the exposures of ``catalogs`` / ``exposure_ids`` (in SCAMP's order).
    catalogs, exposure_ids : sequence, optional
        As for :func:`ingest_scamp_full`.

    Returns
    -------
    ScampMergedResult

    Raises
    ------
    catdb.errors.InputError
        Unreadable or incomplete merged catalogue (see :func:`read_scamp_merged`);
        no full-catalogue load to update; objects of that load without
        ``scamp_source`` (loaded before migration 0009: load the full catalogue
        again) or whose ``SOURCE_NUMBER`` is not in the file.  Nothing is
        written (a bad file is refused before a run is recorded; the other
        errors mark the run failed).

    Notes
    -----
    Objects are matched by key, ``object.scamp_source = SOURCE_NUMBER`` within
    the full run's objects; ``ra``, ``dec``, ``ra_err``, ``dec_err``,
    ``epoch``, ``pmra``, ``pmdec``, ``pmra_err``, ``pmdec_err`` are replaced
    (loading the file again rewrites the same values; no row is added).
    Merged sources without one of our detections (reference-catalogue stars
    only) have no object and are skipped.
    """
    merged_path = str(merged_path)
    merged = read_scamp_merged(merged_path)
    params = {"kind": "merged", "merged": _resolve(merged_path), "sha256": _sha256(merged_path),
              "full_run": run_id,
              "catalogs": None if catalogs is None else [_resolve(c) for c in catalogs],
              "exposure_ids": None if exposure_ids is None else [int(e) for e in exposure_ids]}
    new_run = start_run(conn, STAGE, params)
    res = ScampMergedResult(path=merged_path, run_id=new_run, n_merged=len(merged.source))
    try:
        with conn.transaction():
            full_run, expo = _full_run(conn, merged_path, run_id, catalogs, exposure_ids)
            res.full_run_id = full_run
            obj = np.array(conn.execute("SELECT id, coalesce(scamp_source, -1) FROM object WHERE stage_run_id = %s "
                                        "ORDER BY id", (full_run,)).fetchall(), dtype=np.int64).reshape(-1, 2)
            if (obj[:, 1] < 0).any():
                raise InputError(f"{int((obj[:, 1] < 0).sum())} objects of stage_run {full_run} have no "
                                 "scamp_source (loaded before catdb stored SCAMP's SOURCE_NUMBER): load the full "
                                 "catalogue again, with --merged", path=merged_path)
            m = merged.rows_for(obj[:, 1], merged_path, what=f"the objects of stage_run {full_run}")
            conn.execute("DROP TABLE IF EXISTS _scamp_merged")
            conn.execute("CREATE TEMP TABLE _scamp_merged (id bigint, ra double precision, dec double precision, "
                         "ra_err real, dec_err real, epoch double precision, pmra real, pmdec real, pmra_err real, "
                         "pmdec_err real) ON COMMIT DROP")
            cols = merged.object_columns()
            copy_table(conn, "_scamp_merged", {"id": obj[:, 0], **{k: v[m] for k, v in cols.items()}})
            res.n_objects = conn.execute(
                "UPDATE object o SET " + ", ".join(f"{k} = t.{k}" for k in cols)
                + " FROM _scamp_merged t WHERE o.id = t.id", ()).rowcount
            res.n_pm = int(np.isfinite(cols["pmra"][m]).sum())
            conn.execute("UPDATE stage_run SET status = 'replaced' WHERE stage = %s AND status = 'ok' AND id <> %s "
                         "AND params->>'kind' = 'merged' AND (counts->>'full_run')::bigint = %s",
                         (STAGE, new_run, full_run))
            finish_run(conn, new_run, inputs=expo,
                       counts={"object": res.n_objects, "proper_motions": res.n_pm, "merged_sources": res.n_merged,
                               "full_run": full_run})
    except Exception as e:
        fail_run(conn, new_run, e)
        raise
    return res
