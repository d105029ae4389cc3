"""Loading parsed inputs into the database: one transaction per file, COPY for rows.

Each public function takes an open psycopg connection (not in autocommit),
records one ``stage_run`` (stage ``ingest-catalog``, ``ingest-image`` or
``ingest-refcat``) for the call, and loads each file in its own transaction:
a bad file raises :class:`~catdb.errors.InputError` naming it, and nothing of
it is written (files before it stay loaded).

Re-ingesting a file that is already in the database with the same SHA-256 is
a no-op ("unchanged"); with a different SHA-256 it is an error unless
``replace=True``, which deletes the old exposure (and everything derived from
it) in the same transaction as the new load.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..db.copy import copy_table
from ..errors import CatdbError, InputError
from ..stages.base import fail_run, finish_run, start_run

log = logging.getLogger("catdb.ingest")


@dataclass
class IngestResult:
    """What one file contributed."""

    path: str
    status: str  # loaded, unchanged, replaced, skipped
    exposure_ids: list = field(default_factory=list)
    n_rows: int = 0
    notes: list = field(default_factory=list)


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_EXPOSURE_JSON = {"corners"}


def insert_exposure(conn, row: dict, run_id: int) -> int:
    """INSERT one exposure row (dict keyed by exposure columns); returns its id."""
    from psycopg import sql

    from ..schema import exposure

    cols = [k for k in row if k in exposure.c and k != "id"]
    vals = [row[k] for k in cols]
    q = sql.SQL("INSERT INTO exposure ({c}, stage_run_id) VALUES ({v}, %s) RETURNING id").format(
        c=sql.SQL(", ").join(map(sql.Identifier, cols)), v=sql.SQL(", ").join(sql.Placeholder() * len(cols)))
    return conn.execute(q, [*vals, run_id]).fetchone()[0]


def _existing(conn, path: str, hdu: int, column: str = "path"):
    from psycopg import sql

    return conn.execute(
        sql.SQL("SELECT id, sha256, catalog_sha256 FROM exposure WHERE {c} = %s AND hdu = %s").format(
            c=sql.Identifier(column)), (path, hdu)).fetchone()


def _resolve(path) -> str:
    return str(Path(path).expanduser().resolve())


# --------------------------------------------------------------------------- catalogues
def load_detections(conn, exposure_id: int, cat, wcs=None, run_id: int | None = None,
                    pixscale: float | None = None) -> tuple[int, dict]:
    """COPY the detections of one parsed SExtractor catalogue into ``detection``.

    Parameters
    ----------
    conn : psycopg.Connection
    exposure_id : int
    cat : catdb.ingest.sextractor.SExCatalog
    wcs : astropy.wcs.WCS, optional
        Used when the catalogue has no ALPHA/DELTA columns.
    run_id : int
        stage_run of the ingest.

    Returns
    -------
    n : int
        Rows loaded.
    source : dict
        Detection column -> SExtractor column (or rule) it came from.

    Raises
    ------
    catdb.errors.InputError
        No usable position (no ALPHA/DELTA and no WCS), or NUMBER missing.
    """
    from .sextractor import detection_columns

    dc = detection_columns(cat, wcs=wcs, pixscale=pixscale)
    cols = dict(dc.columns)
    if not np.all(np.isfinite(cols["ra"])) or not np.all(np.isfinite(cols["dec"])):
        bad = int(np.flatnonzero(~(np.isfinite(cols["ra"]) & np.isfinite(cols["dec"])))[0]) + 1
        raise InputError("no sky position: need ALPHA(WIN)_J2000/DELTA(WIN)_J2000 or X/Y_IMAGE with an image WCS",
                         path=cat.path, row=bad, keyword="ALPHA_J2000")
    _fill_instrumental_mags(cols, dc.source)
    for k in ("flags",):
        cols[k] = np.where(np.asarray(cols[k]) < 0, 0, cols[k]).astype(np.int64)
    if "imaflags" in cols:
        im = np.asarray(cols["imaflags"]).astype(np.float64)
        cols["imaflags"] = np.where(im < 0, np.nan, im)
    # aperture arrays: drop when entirely missing
    for k in ("flux_aper", "fluxerr_aper", "mag_aper", "magerr_aper"):
        a = np.asarray(cols.get(k))
        if a is None or a.size == 0 or not np.isfinite(a).any():
            cols.pop(k, None)
    extra = {k: np.asarray(v) for k, v in dc.extra.items() if np.asarray(v).ndim == 1}
    n = copy_table(conn, "detection", cols, constants={"exposure_id": exposure_id, "stage_run_id": run_id},
                   json_column="extra" if extra else None, json_values=extra)
    return n, dc.source


def _fill_instrumental_mags(cols: dict, source: dict) -> None:
    """MAG_x = -2.5 log10(FLUX_x) (SExtractor's default MAG_ZEROPOINT 0) where a catalogue has flux only.

    MAGERR_x = 1.0857 FLUXERR_x / FLUX_x (SExtractor manual, section "Photometry").  Non-positive
    fluxes give NULL magnitudes, as SExtractor's 99.0 would be meaningless in SQL.
    """
    for kind in ("auto", "iso", "psf", "aper"):
        mag, flux = cols.get(f"mag_{kind}"), cols.get(f"flux_{kind}")
        if flux is None:
            continue
        flux = np.asarray(flux, dtype=float)
        if flux.size == 0 or not np.isfinite(flux).any():
            continue
        if mag is not None and np.isfinite(np.asarray(mag, dtype=float)).any():
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            m = np.where(flux > 0, -2.5 * np.log10(flux), np.nan)
            ferr = np.asarray(cols.get(f"fluxerr_{kind}", np.full_like(flux, np.nan)), dtype=float)
            e = np.where(flux > 0, 2.5 / np.log(10) * ferr / flux, np.nan)
        cols[f"mag_{kind}"], cols[f"magerr_{kind}"] = m, e
        source[f"mag_{kind}"] = f"-2.5 log10(FLUX_{kind.upper()}) (zeropoint 0)"


def ingest_catalogs(conn, paths, *, instrument: str | None = None, image: str | None = None,
                    replace: bool = False, progress: bool = False) -> list[IngestResult]:
    """Ingest SExtractor catalogues (FITS_LDAC, FITS_1.0, ASCII_HEAD): exposure + detection rows.

    Parameters
    ----------
    conn : psycopg.Connection
    paths : sequence of path
    instrument : str, optional
        Keyword map name or TOML path (default: auto-detected from the header).
    image : path, optional
        The image the catalogue was extracted from (one catalogue only): its
        header is used when the catalogue carries none (ASCII_HEAD).
    replace : bool
        Replace a catalogue already ingested whose content changed.

    Returns
    -------
    list of IngestResult

    Raises
    ------
    catdb.errors.InputError
        The first bad file (named, with the row or keyword); earlier files stay loaded.
    """
    from ..wcsutil import wcs_from_header
    from .headers import exposure_metadata, load_keymap, detect_instrument, read_header
    from .sextractor import read_catalogs

    paths = [str(p) for p in paths]
    run_id = start_run(conn, "ingest-catalog", {"paths": paths, "instrument": instrument, "image": image,
                                               "replace": replace})
    results, n_total, exp_ids = [], 0, []
    it = _progress(paths, "catalogues", progress)
    try:
        for path in it:
            with conn.transaction():
                res = _ingest_one_catalog(conn, path, run_id, instrument, image, replace,
                                          read_catalogs, read_header, exposure_metadata, load_keymap,
                                          detect_instrument, wcs_from_header)
            results.append(res)
            n_total += res.n_rows
            exp_ids += res.exposure_ids
        with conn.transaction():
            if n_total:
                conn.execute("ANALYZE detection")
            finish_run(conn, run_id, inputs=exp_ids,
                       counts={"files": len(paths), "detection": n_total,
                               "unchanged": sum(r.status == "unchanged" for r in results)})
    except Exception as e:
        fail_run(conn, run_id, e)
        raise
    return results


def _ingest_one_catalog(conn, path, run_id, instrument, image, replace, read_catalogs, read_header,
                        exposure_metadata, load_keymap, detect_instrument, wcs_from_header):
    if not os.path.exists(path):
        raise InputError("no such file", path=path)
    cats = read_catalogs(path)
    cat_sha = sha256_file(path)
    res = IngestResult(path=path, status="loaded")
    img_header = None
    if image:
        img_header, img_hdu = read_header(image)
    for i, cat in enumerate(cats):
        header = cat.header if len(cat.header) else img_header
        if header is None or not len(header):
            raise InputError(f"{cat.format} catalogue carries no image header: give the image with --image",
                             path=path)
        key = _resolve(image) if image else _resolve(path)
        hdu = (img_hdu if image else i) if len(cats) == 1 or not image else i
        old = _existing(conn, key, hdu)
        if old is not None:
            if old[2] == cat_sha:
                res.status = "unchanged"
                res.exposure_ids.append(old[0])
                continue
            if not replace:
                raise InputError(f"already ingested as exposure {old[0]} with different content "
                                 f"(use --replace to replace it)", path=path)
            conn.execute("DELETE FROM exposure WHERE id = %s", (old[0],))
            res.status = "replaced"
        km = load_keymap(instrument) if instrument else load_keymap(detect_instrument(header))
        row = exposure_metadata(header, km, path=image or path, hdu=hdu)
        row["path"] = key
        row["catalog_path"] = _resolve(path)
        row["catalog_sha256"] = cat_sha
        if not image:
            row["sha256"] = None  # the image itself was not read
        try:
            wcs = wcs_from_header(header, path=path)
        except CatdbError:
            wcs = None
        eid = insert_exposure(conn, row, run_id)
        n, source = load_detections(conn, eid, cat, wcs=wcs, run_id=run_id, pixscale=row.get("pixscale"))
        res.exposure_ids.append(eid)
        res.n_rows += n
        res.notes.append(f"positions from {source.get('ra')}")
    return res


def attach_catalog(conn, exposure_id: int, catalog_path, run_id: int, replace: bool = True) -> int:
    """Load the detections of a catalogue extracted from an exposure already in the database.

    Used by ``catdb extract`` / the ``extract`` stage: positions from the
    catalogue's ALPHA/DELTA (SExtractor used the image WCS), or from X/Y with
    the exposure's stored WCS.  Earlier detections of the exposure are deleted
    first when ``replace``.  Runs in the caller's transaction.

    Returns
    -------
    int
        Rows loaded.
    """
    from astropy.io import fits

    from ..wcsutil import wcs_from_header
    from .sextractor import read_catalog

    cat = read_catalog(catalog_path)
    wcs_text, pixscale = conn.execute("SELECT wcs_header, pixscale FROM exposure WHERE id = %s",
                                      (exposure_id,)).fetchone()
    wcs = None
    if wcs_text:
        try:
            wcs = wcs_from_header(fits.Header.fromstring(wcs_text, sep="\n"))
        except CatdbError:
            wcs = None
    if replace:
        conn.execute("DELETE FROM detection WHERE exposure_id = %s", (exposure_id,))
    n, _ = load_detections(conn, exposure_id, cat, wcs=wcs, run_id=run_id, pixscale=pixscale)
    conn.execute("UPDATE exposure SET catalog_path = %s, catalog_sha256 = %s WHERE id = %s",
                 (_resolve(catalog_path), sha256_file(catalog_path), exposure_id))
    return n


# --------------------------------------------------------------------------- images
def _image_hdus(path, hdu):
    """0-based indices of the HDUs holding a 2-D image (compressed or not) with pixels."""
    from astropy.io import fits

    if hdu is not None:
        return [hdu]
    try:
        with fits.open(path) as hl:
            out = []
            for i, h in enumerate(hl):
                if not isinstance(h, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)):
                    continue
                hdr = h.header
                naxis = [hdr.get(f"NAXIS{k}", 0) for k in (1, 2)]
                if hdr.get("NAXIS", 0) >= 2 and naxis[0] > 0 and naxis[1] > 0:
                    out.append(i)
    except OSError as e:
        raise InputError(f"not a readable FITS file: {e}", path=path) from None
    if not out:
        raise InputError("no 2-D image HDU in file", path=path, keyword="NAXIS")
    return out


def ingest_images(conn, paths, *, instrument: str | None = None, hdu: int | None = None,
                  image_type: str | None = None, replace: bool = False,
                  progress: bool = False) -> list[IngestResult]:
    """Ingest exposures from FITS images (science or calibration; MEF: one exposure per image HDU).

    Parameters
    ----------
    conn : psycopg.Connection
    paths : sequence of path
        ``.fits``, ``.fit``, ``.fits.fz`` (tile-compressed) files.
    instrument : str, optional
        Keyword map name or TOML path (default: auto-detected).
    hdu : int, optional
        Only this HDU (0-based).
    image_type : str, optional
        Override the header's IMAGETYP (science, bias, flat, dark).
    replace : bool
        Replace an image already ingested whose content changed.

    Returns
    -------
    list of IngestResult

    Raises
    ------
    catdb.errors.InputError
        The first bad file (named, with the keyword at fault); earlier files stay loaded.
    """
    from .headers import detect_instrument, exposure_metadata, inherit_header, load_keymap, read_header

    paths = [str(p) for p in paths]
    run_id = start_run(conn, "ingest-image", {"paths": paths, "instrument": instrument, "hdu": hdu,
                                             "image_type": image_type, "replace": replace})
    results, exp_ids = [], []
    try:
        for path in _progress(paths, "images", progress):
            if not os.path.exists(path):
                raise InputError("no such file", path=path)
            sha = sha256_file(path)
            res = IngestResult(path=path, status="loaded")
            with conn.transaction():
                hdus = _image_hdus(path, hdu)
                primary = read_header(path, 0)[0] if hdus[0] > 0 else None
                for h in hdus:
                    header, h_read = read_header(path, h)
                    if primary is not None and len(hdus) > 1:
                        header = inherit_header(primary, header)  # MEF: the primary holds the shared cards
                    key = _resolve(path)
                    old = _existing(conn, key, h_read)
                    if old is not None:
                        if old[1] == sha:
                            res.status = "unchanged"
                            res.exposure_ids.append(old[0])
                            continue
                        if not replace:
                            raise InputError(f"already ingested as exposure {old[0]} with different content "
                                             f"(use --replace to replace it)", path=path)
                        conn.execute("DELETE FROM exposure WHERE id = %s", (old[0],))
                        res.status = "replaced"
                    km = load_keymap(instrument) if instrument else load_keymap(detect_instrument(header))
                    row = exposure_metadata(header, km, path=path, hdu=h_read)
                    row["path"] = key
                    row["sha256"] = sha
                    if image_type:
                        row["image_type"] = image_type
                    eid = insert_exposure(conn, row, run_id)
                    res.exposure_ids.append(eid)
                    res.n_rows += 1
            results.append(res)
            exp_ids += res.exposure_ids
        with conn.transaction():
            finish_run(conn, run_id, inputs=exp_ids,
                       counts={"files": len(paths), "exposure": sum(r.n_rows for r in results),
                               "unchanged": sum(r.status == "unchanged" for r in results)})
    except Exception as e:
        fail_run(conn, run_id, e)
        raise
    return results


# --------------------------------------------------------------------------- reference catalogues
def ingest_refcat(conn, path, *, catalog: str | None = None, band: str | None = None,
                  epoch: float | None = None, replace: bool = True) -> IngestResult:
    """Ingest a reference catalogue file into ``refcat_source`` (one transaction).

    Rows of the same ``catalog`` name loaded earlier from the same file are
    replaced.  See :func:`catdb.ingest.refcat.read_refcat` for the formats.

    Returns
    -------
    IngestResult
        ``n_rows`` stars loaded.
    """
    from .refcat import read_refcat

    path = str(path)
    if not os.path.exists(path):
        raise InputError("no such file", path=path)
    sha = sha256_file(path)
    data = read_refcat(path, catalog=catalog, band=band, epoch=epoch)
    name = str(np.asarray(data["catalog"])[0]) if len(data["ra"]) else (catalog or Path(path).stem)
    params = {"path": _resolve(path), "catalog": name, "band": band, "epoch": epoch, "sha256": sha}
    with conn.transaction():
        same = conn.execute(
            "SELECT r.id, (SELECT count(*) FROM refcat_source s WHERE s.stage_run_id = r.id) FROM stage_run r "
            "WHERE r.stage = 'ingest-refcat' AND r.status = 'ok' AND r.params = %s::jsonb ORDER BY r.id DESC LIMIT 1",
            (json.dumps(params),)).fetchone()
    if same and same[1] == len(data["ra"]):
        return IngestResult(path=path, status="unchanged", n_rows=0, notes=[f"catalog {name} already loaded "
                                                                             f"(run {same[0]})"])
    run_id = start_run(conn, "ingest-refcat", params)
    try:
        with conn.transaction():
            deleted = 0
            if replace:
                deleted = conn.execute(
                    "DELETE FROM refcat_source WHERE catalog = %s AND stage_run_id IN (SELECT id FROM stage_run "
                    "WHERE stage = 'ingest-refcat' AND params->>'path' = %s)", (name, _resolve(path))).rowcount
            mags = data.get("mags") or {}
            errs = data.get("mag_errs") or {}
            cols = {k: np.asarray(data[k]) for k in ("source_id", "ra", "dec", "epoch", "pmra", "pmdec",
                                                     "parallax", "ra_err", "dec_err") if k in data}
            n = len(cols["ra"])
            cols["mags"] = _json_dicts(mags, n)
            cols["mag_errs"] = _json_dicts(errs, n)
            n = copy_table(conn, "refcat_source", cols, constants={"catalog": name, "stage_run_id": run_id})
            conn.execute("ANALYZE refcat_source")  # fresh statistics: q3c joins plan well only with them
            finish_run(conn, run_id, counts={"refcat_source": n, "replaced_rows": deleted})
    except Exception as e:
        fail_run(conn, run_id, e)
        raise
    return IngestResult(path=path, status="loaded", n_rows=n, notes=[f"catalog {name}, bands {sorted(mags)}"])


def _json_dicts(values: dict, n: int) -> np.ndarray:
    from ..db.copy import json_text

    if not values:
        return np.full(n, None, dtype=object)
    return json_text({k: np.asarray(v, dtype=float) for k, v in values.items()}, n)


def _progress(items, what, enabled):
    if not enabled or len(items) < 2:
        return items
    from tqdm import tqdm

    return tqdm(items, desc=f"ingest {what}", unit="file")
