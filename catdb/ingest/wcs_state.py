"""An exposure's astrometric state in the database: read it, check it, replace it.

``exposure.wcs_status`` says what the exposure's sky positions are worth
(:data:`catdb.schema.WCS_STATUS`): ``header`` and ``solved`` are absolute, ``registered`` is
consistent across a night but tied to the sky only through the reference frame's pointing,
``approximate`` and ``none`` give no position a stage may store.  :func:`replace_exposure_wcs`
is the one place that writes a new WCS (SCAMP ``.head`` applied by ``catdb ingest scamp``, stage
``solve``) and moves the exposure's detections with it, in the caller's transaction.

Pixel frames: ``exposure.wcs_header`` is kept in the pixel frame of the file the exposure was
ingested from (the frame of ``exposure.header``, ``naxis1``/``naxis2``); a trimmed product says
where it lies with IRAF's ``LTV1``/``LTV2`` (see :mod:`catdb.algorithms.astrometry`).
"""
from __future__ import annotations

import numpy as np
from astropy.io import fits

from ..algorithms.sphere import separation_deg
from ..algorithms.astrometry import header_ltv, pixscale_from_header, pointing_from_header, shift_wcs_frame
from ..db.copy import copy_table
from ..errors import InputError
from ..schema import WCS_ABSOLUTE, WCS_STATUS, WCS_USABLE
from ..wcsutil import wcs_from_header
from .headers import footprint, header_from_cards, wcs_cards
from .scamp import apply_scamp_head

__all__ = ["exposure_header", "stored_wcs_header", "exposure_pointing", "detection_frame_ltv",
           "replace_exposure_wcs", "unusable_exposures", "refuse_unusable", "solve_hint"]


def solve_hint(eid) -> str:
    """The command that gives exposure ``eid`` a WCS."""
    return (f"catdb stage solve --where \"e.id = {int(eid)}\" (with a reference catalogue: "
            f"--param refcat=NAME; see README 'Astrometry')")


def exposure_header(conn, eid) -> fits.Header:
    """The stored full header of exposure ``eid`` (``exposure.header``; empty when none)."""
    row = conn.execute("SELECT header FROM exposure WHERE id = %s", (eid,)).fetchone()
    if row is None:
        raise InputError(f"exposure {eid} does not exist")
    return header_from_cards(row[0]) if row[0] and row[0].strip() else fits.Header()


def stored_wcs_header(conn, eid) -> tuple[fits.Header | None, str]:
    """``(WCS header or None, wcs_status)`` of exposure ``eid`` from ``exposure.wcs_header``."""
    text, status = conn.execute("SELECT wcs_header, wcs_status FROM exposure WHERE id = %s", (eid,)).fetchone()
    if not text or not text.strip():
        return None, status
    return header_from_cards(text), status


def exposure_pointing(conn, eid) -> dict:
    """Commanded pointing and pixel scale of an exposure, for an initial WCS.

    ``exposure.pointing_ra``, ``pointing_dec`` and ``pixscale`` when filled (at ingest), else
    parsed from the stored header text (:func:`catdb.algorithms.astrometry.pointing_from_header`,
    :func:`~catdb.algorithms.astrometry.pixscale_from_header`).

    Returns
    -------
    dict
        ``ra``, ``dec`` (deg), ``pixscale`` (arcsec/pixel), ``naxis1``, ``naxis2``, each None when
        unknown, and ``source`` (where each came from, text).
    """
    ra, dec, scale, n1, n2 = conn.execute(
        "SELECT pointing_ra, pointing_dec, pixscale, naxis1, naxis2 FROM exposure WHERE id = %s", (eid,)).fetchone()
    src = []
    hdr = None
    if ra is None or dec is None:
        hdr = exposure_header(conn, eid)
        p = pointing_from_header(hdr)
        if p is not None:
            ra, dec = p[0], p[1]
            src.append(f"pointing {p[2]}")
    else:
        src.append("pointing exposure.pointing_ra/dec")
    if scale is None:
        hdr = exposure_header(conn, eid) if hdr is None else hdr
        s = pixscale_from_header(hdr)
        if s is not None:
            scale = s[0]
            src.append(f"scale {s[1]}")
    else:
        src.append("scale exposure.pixscale")
    if n1 is None or n2 is None:
        hdr = exposure_header(conn, eid) if hdr is None else hdr
        n1, n2 = hdr.get("NAXIS1"), hdr.get("NAXIS2")
    return {"ra": ra, "dec": dec, "pixscale": scale, "naxis1": n1, "naxis2": n2, "source": ", ".join(src)}


def detection_frame_ltv(conn, eid) -> tuple[float, float]:
    """``LTV1``, ``LTV2`` of the pixel frame of exposure ``eid``'s detections (``x``, ``y``).

    The image of the latest ``catalog`` product (stage ``extract``: ``meta.ltv1/ltv2``, or the
    ``reduced`` product it names); without one, the frame of the ingested file.
    """
    row = conn.execute("SELECT meta FROM image_product WHERE exposure_id = %s AND kind = 'catalog' "
                       "ORDER BY id DESC LIMIT 1", (eid,)).fetchone()
    meta = (row[0] or {}) if row else None
    if meta is not None:
        if "ltv1" in meta:
            return float(meta.get("ltv1") or 0.0), float(meta.get("ltv2") or 0.0)
        if meta.get("image_kind") == "reduced":
            red = conn.execute("SELECT meta FROM image_product WHERE exposure_id = %s AND kind = 'reduced' "
                               "AND path = %s ORDER BY id DESC LIMIT 1", (eid, meta.get("image"))).fetchone()
            if red and red[0]:
                return float(red[0].get("ltv1") or 0.0), float(red[0].get("ltv2") or 0.0)
    return header_ltv(exposure_header(conn, eid))


def replace_exposure_wcs(conn, eid: int, wcs_header: fits.Header, *, status: str, source: str,
                         refcat: str | None = None, nstars: int | None = None, rms: float | None = None,
                         run_id: int | None = None, frame_ltv: tuple[float, float] | None = None,
                         path_for_errors=None) -> dict:
    """Replace an exposure's WCS and recompute its detections' RA/Dec from their pixel positions.

    In the caller's transaction: ``exposure.wcs_header``, ``header`` (WCS cards replaced, see
    :func:`catdb.ingest.scamp.apply_scamp_head`), the footprint (``ra_center``, ``dec_center``,
    ``radius``, ``corners``, ``pixscale``), ``wcs_status``, ``wcs_source``, ``wcs_refcat``,
    ``wcs_nstars``, ``wcs_rms``, ``wcs_run_id``; then ``detection.ra``/``dec`` of every detection
    of the exposure, ``WCS.all_pix2world(xwin, ywin, 1)`` (``x``/``y`` where the windowed centroid
    is NULL; TAN, TPV and SIP through astropy/WCSLIB; Greisen & Calabretta 2002, Calabretta &
    Greisen 2002) with the WCS moved to the detections' pixel frame
    (:func:`detection_frame_ltv`).  One set-based UPDATE from a COPY-loaded temporary table.

    Parameters
    ----------
    conn : psycopg.Connection
    eid : int
    wcs_header : astropy.io.fits.Header
        The new WCS (celestial; cards replace the old WCS cards).
    status : str
        New ``wcs_status`` (one of :data:`catdb.schema.WCS_STATUS`).
    source, refcat, nstars, rms, run_id :
        ``wcs_source`` (text), ``wcs_refcat``, ``wcs_nstars``, ``wcs_rms`` (arcsec), ``wcs_run_id``;
        None is stored as NULL.
    frame_ltv : (float, float), optional
        ``LTV1``, ``LTV2`` of the pixel frame ``wcs_header`` is in; default its own LTV cards (absent: 0).
    path_for_errors : str, optional
        File named in error messages (the ``.head``).

    Returns
    -------
    dict
        ``n`` detections moved, ``shift_median``, ``shift_max`` (arcsec; NaN without detections),
        ``old_wcs`` (previous ``wcs_header`` text).

    Raises
    ------
    catdb.errors.InputError
        No image size (NAXIS1/NAXIS2), no celestial WCS in ``wcs_header``, or detections without a
        pixel position.
    """
    if status not in WCS_STATUS:
        raise ValueError(f"status must be one of {list(WCS_STATUS)}, got {status!r}")
    where = path_for_errors
    row = conn.execute("SELECT header, wcs_header, naxis1, naxis2, path, hdu FROM exposure WHERE id = %s",
                       (eid,)).fetchone()
    if row is None:
        raise InputError(f"exposure {eid} does not exist", path=where)
    hdr_text, old_text, n1, n2, epath, ehdu = row
    old_hdr = header_from_cards(hdr_text or old_text or "") if (hdr_text or old_text or "").strip() else fits.Header()
    n1 = n1 if n1 is not None else old_hdr.get("NAXIS1")
    n2 = n2 if n2 is not None else old_hdr.get("NAXIS2")
    if not n1 or not n2:
        raise InputError(f"exposure {eid} ({epath}, HDU {ehdu}) has no image size (NAXIS1/NAXIS2): "
                         "cannot compute its footprint", path=where, keyword="NAXIS1")
    exp_ltv = header_ltv(old_hdr)
    head = wcs_header.copy()
    if frame_ltv is not None:
        for i in (1, 2):
            head[f"LTV{i}"] = float(frame_ltv[i - 1])
    head = shift_wcs_frame(head, exp_ltv)  # into the exposure's own frame
    new_hdr = apply_scamp_head(old_hdr, head)
    for i, v in zip((1, 2), exp_ltv):
        if v == 0.0 and f"LTV{i}" not in old_hdr:
            new_hdr.remove(f"LTV{i}", ignore_missing=True)
    new_hdr["NAXIS1"], new_hdr["NAXIS2"] = int(n1), int(n2)
    wcs_from_header(new_hdr, path=where)  # refuse a header without a celestial WCS
    fp = footprint(new_hdr, int(n1), int(n2), path=where)
    conn.execute(
        "UPDATE exposure SET wcs_header = %s, header = %s, ra_center = %s, dec_center = %s, radius = %s, "
        "corners = %s, pixscale = %s, wcs_status = %s, wcs_source = %s, wcs_refcat = %s, wcs_nstars = %s, "
        "wcs_rms = %s, wcs_run_id = %s WHERE id = %s",
        (wcs_cards(new_hdr), "\n".join(str(c) for c in new_hdr.cards), fp["ra_center"], fp["dec_center"],
         fp["radius"], fp["corners"], fp["pixscale"], status, source, refcat,
         None if nstars is None else int(nstars), None if rms is None or not np.isfinite(rms) else float(rms),
         run_id, eid))
    out = {"n": 0, "shift_median": float("nan"), "shift_max": float("nan"), "old_wcs": old_text}
    det = np.array(conn.execute(
        "SELECT id, COALESCE(xwin, x), COALESCE(ywin, y), ra, dec FROM detection WHERE exposure_id = %s ORDER BY id",
        (eid,)).fetchall(), dtype=float).reshape(-1, 5)
    if not len(det):
        return out
    bad = ~(np.isfinite(det[:, 1]) & np.isfinite(det[:, 2]))
    if bad.any():
        raise InputError(f"exposure {eid} has {int(bad.sum())} detections without pixel position "
                         "(xwin/ywin and x/y NULL): their RA/Dec cannot be recomputed", path=where,
                         keyword="XWIN_IMAGE")
    w = wcs_from_header(shift_wcs_frame(new_hdr, detection_frame_ltv(conn, eid)), path=where)
    ra, dec = w.all_pix2world(det[:, 1], det[:, 2], 1)
    ra = np.mod(ra, 360.0)
    conn.execute("DROP TABLE IF EXISTS _wcs_radec")
    conn.execute("CREATE TEMP TABLE _wcs_radec (id bigint, ra double precision, dec double precision) "
                 "ON COMMIT DROP")
    copy_table(conn, "_wcs_radec", {"id": det[:, 0].astype(np.int64), "ra": ra, "dec": dec})
    conn.execute("UPDATE detection d SET ra = t.ra, dec = t.dec FROM _wcs_radec t WHERE d.id = t.id")
    conn.execute("DROP TABLE _wcs_radec")
    sep = separation_deg(det[:, 3], det[:, 4], ra, dec) * 3600.0
    out.update(n=len(det), shift_median=float(np.median(sep)), shift_max=float(np.max(sep)), sep=sep)
    return out


def unusable_exposures(conn, ids, allowed=WCS_USABLE) -> list[tuple]:
    """``(id, path, hdu, wcs_status, wcs_source)`` of the exposures among ``ids`` whose status is not in ``allowed``."""
    return conn.execute(
        "SELECT id, path, hdu, wcs_status, wcs_source FROM exposure WHERE id = ANY(%s) "
        "AND wcs_status <> ALL(%s) ORDER BY id", (list(ids), list(allowed))).fetchall()


def refuse_unusable(conn, ids, what: str, allowed=WCS_USABLE) -> None:
    """Raise when an exposure among ``ids`` has no usable WCS (status not in ``allowed``).

    Raises
    ------
    catdb.errors.InputError
        Naming each exposure (id, path, status, why) and the command that fixes it.
    """
    bad = unusable_exposures(conn, ids, allowed)
    if not bad:
        return
    lines = [f"exposure {e} ({p}, HDU {h}): wcs_status {s!r} ({src or 'no reason recorded'})"
             for e, p, h, s, src in bad[:10]]
    more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
    ok = "/".join(allowed)
    fix = ("solve it against a reference catalogue: " + solve_hint(bad[0][0])) if allowed == WCS_ABSOLUTE \
        else "give it a WCS first: " + solve_hint(bad[0][0])
    raise InputError(f"{what}: {len(bad)} exposure(s) without a usable WCS (status must be {ok}): "
                     + "; ".join(lines) + more + f"; {fix}")
