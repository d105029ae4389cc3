"""Reference catalogues (astrometric / photometric) into ``refcat_source`` columns.

Readers for: SCAMP FITS_LDAC reference catalogues (``XWIN_WORLD``...,
``OBSDATE``), the Tycho-2 CSV shipped in shared data, VizieR responses (CSV or
TSV, with or without unit/dash lines, VOTable) of UCAC4 (I/322A), PPMXL (I/317),
Gaia DR2/DR3 (I/345, I/355), and generic CSV/FITS/VOTable tables with
user-given column names.

Wiring: ``src = read_refcat(path)`` -> dict of arrays keyed by the
``refcat_source`` columns (``mags``/``mag_errs`` are dicts band -> array).
"""
from __future__ import annotations

import gzip
import re
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.table import Table
from astropy.utils.exceptions import AstropyWarning

from ..errors import InputError

__all__ = ["REFCAT_COLUMNS", "VIZIER_PROFILES", "read_refcat", "read_table_any"]

#: Keys of the dict returned by :func:`read_refcat` (the lead's ``refcat_source`` columns).
REFCAT_COLUMNS = ("catalog", "source_id", "ra", "dec", "epoch", "pmra", "pmdec", "parallax",
                  "ra_err", "dec_err", "mags", "mag_errs")

# Column meanings and units from the VizieR ReadMe files of each catalogue.  Each value is
# (column, unit of the column when the file carries no unit).  Mags: band -> (mag col, err col, err unit).
_CMAG = u.def_unit("cmag_vizier", 0.01 * u.mag)
VIZIER_PROFILES = {
    # UCAC4, Zacharias et al. 2013, AJ 145, 44; VizieR I/322A.  RAJ2000/DEJ2000 at epoch J2000
    # (proper motion applied); e_RAJ2000 (mas) at the mean epoch; APASS errors e_Bmag.. in 0.01 mag.
    "UCAC4": dict(
        detect="UCAC4", source_id="UCAC4", ra=("RAJ2000", u.deg), dec=("DEJ2000", u.deg), epoch=2000.0,
        pmra=("pmRA", u.mas / u.yr), pmdec=("pmDE", u.mas / u.yr),
        ra_err=("e_RAJ2000", u.mas), dec_err=("e_DEJ2000", u.mas),
        mags={"B": ("Bmag", "e_Bmag", _CMAG), "V": ("Vmag", "e_Vmag", _CMAG), "g": ("gmag", "e_gmag", _CMAG),
              "r": ("rmag", "e_rmag", _CMAG), "i": ("imag", "e_imag", _CMAG),
              "J": ("Jmag", "e_Jmag", u.mag), "H": ("Hmag", "e_Hmag", u.mag), "K": ("Kmag", "e_Kmag", u.mag),
              "UCAC": ("f.mag", None, None)}),
    # PPMXL, Roeser et al. 2010, AJ 139, 2440; VizieR I/317.  USNO-B photographic b1 b2 r1 r2 i
    # have no errors; 2MASS J H K do.
    "PPMXL": dict(
        detect="PPMXL", source_id="PPMXL", ra=("RAJ2000", u.deg), dec=("DEJ2000", u.deg), epoch=2000.0,
        pmra=("pmRA", u.mas / u.yr), pmdec=("pmDE", u.mas / u.yr),
        ra_err=("e_RAJ2000", u.mas), dec_err=("e_DEJ2000", u.mas),
        mags={"J": ("Jmag", "e_Jmag", u.mag), "H": ("Hmag", "e_Hmag", u.mag), "K": ("Kmag", "e_Kmag", u.mag),
              "b1": ("b1mag", None, None), "b2": ("b2mag", None, None), "r1": ("r1mag", None, None),
              "r2": ("r2mag", None, None), "i": ("imag", None, None)}),
    # Gaia DR2 (I/345/gaia2, epoch 2015.5) / DR3 (I/355/gaiadr3, epoch 2016.0) as served by VizieR.
    "GAIA": dict(
        detect="RA_ICRS", source_id="Source", ra=("RA_ICRS", u.deg), dec=("DE_ICRS", u.deg), epoch="Epoch",
        pmra=("pmRA", u.mas / u.yr), pmdec=("pmDE", u.mas / u.yr), parallax=("Plx", u.mas),
        ra_err=("e_RA_ICRS", u.mas), dec_err=("e_DE_ICRS", u.mas),
        mags={"G": ("Gmag", "e_Gmag", u.mag), "BP": ("BPmag", "e_BPmag", u.mag),
              "RP": ("RPmag", "e_RPmag", u.mag)}),
}

_GENERIC_NAMES = {
    "source_id": ["source_id", "id", "ID", "name", "Name", "objID", "Source"],
    "ra": ["ra", "RA", "ra_deg", "RAJ2000", "RA_ICRS", "RAdeg", "ALPHA_J2000", "X_WORLD", "XWIN_WORLD",
           "_RAJ2000"],
    "dec": ["dec", "DEC", "Dec", "de", "dec_deg", "DEJ2000", "DE_ICRS", "DEdeg", "DELTA_J2000", "Y_WORLD",
            "YWIN_WORLD", "_DEJ2000"],
    "epoch": ["epoch", "Epoch", "ref_epoch", "OBSDATE"],
    "pmra": ["pmra", "pmRA", "PMRA", "PMALPHA_J2000"],
    "pmdec": ["pmdec", "pmDE", "PMDEC", "PMDELTA_J2000"],
    "parallax": ["parallax", "Plx", "PARALLAX"],
    "ra_err": ["ra_error", "ra_err", "e_RAJ2000", "e_RA_ICRS", "ERRAWIN_WORLD", "ERRA_WORLD"],
    "dec_err": ["dec_error", "dec_err", "e_DEJ2000", "e_DE_ICRS", "ERRBWIN_WORLD", "ERRB_WORLD"],
}
_TARGET_UNIT = {"ra": u.deg, "dec": u.deg, "pmra": u.mas / u.yr, "pmdec": u.mas / u.yr, "parallax": u.mas,
                "ra_err": u.mas, "dec_err": u.mas}


# --------------------------------------------------------------------------- table reading
def _vizier_text(path, text: str) -> Table:
    """VizieR CSV/TSV: header line, optional units line and dashes line, '#' comments."""
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if not lines:
        raise InputError("no data lines", path=path)
    delim = "\t" if "\t" in lines[0] else ("," if "," in lines[0] else None)
    header = lines[0].split(delim) if delim else lines[0].split()
    body = lines[1:]
    units = None
    if len(body) >= 2 and re.fullmatch(r"[-\s" + (delim or "") + r"]+", body[1]):
        units, body = (body[0].split(delim) if delim else body[0].split()), body[2:]
    elif body and re.fullmatch(r"[-\s" + (delim or "") + r"]+", body[0]):
        body = body[1:]
    from astropy.io import ascii as asc
    lines = [delim.join(header) if delim else " ".join(header)] + body
    fmt = "csv" if delim == "," else ("tab" if delim == "\t" else "basic")
    try:
        t = asc.read(lines, format=fmt, fast_reader=True, guess=False)
    except Exception:
        t = asc.read(lines, format=fmt, fast_reader=False, guess=False)
    if units:
        for name, un in zip(header, units):
            un = un.strip()
            if un and name in t.colnames:
                try:
                    t[name].unit = u.Unit(un, format="cds")
                except ValueError:
                    pass
    return t


def read_table_any(path) -> Table:
    """Read a reference table from FITS (LDAC or plain), VOTable, CSV/TSV (optionally gzipped).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    astropy.table.Table
        Empty fields are masked.  Units kept where the file has them.

    Raises
    ------
    catdb.errors.InputError
        Unreadable or unrecognised file.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read reference catalogue: {exc.strerror}", path=path) from None
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", AstropyWarning)
            warnings.simplefilter("ignore", fits.verify.VerifyWarning)
            if raw.startswith(b"SIMPLE"):
                with fits.open(p, memmap=False) as hl:
                    names = [h.name for h in hl]
                    idx = names.index("LDAC_OBJECTS") if "LDAC_OBJECTS" in names else 1
                    t = Table(hl[idx].data, copy=True)
                    for c in hl[idx].columns:
                        if c.unit:
                            try:
                                t[c.name].unit = u.Unit(c.unit)
                            except ValueError:
                                pass
                    t.meta["LDAC"] = "LDAC_OBJECTS" in names
                    return t
            head = raw[:1000].lstrip()
            if head.startswith(b"<?xml") or b"<VOTABLE" in head:
                from io import BytesIO
                return Table.read(BytesIO(raw), format="votable")
            return _vizier_text(path, raw.decode("latin-1"))
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"cannot read as FITS, VOTable or CSV/TSV: {exc}", path=path) from None


# --------------------------------------------------------------------------- helpers
def _num(t, col, unit=None, target=None, path=None):
    """Float array of a column (masked/empty -> NaN), converted to ``target`` unit."""
    c = t[col]
    try:
        a = np.asarray(np.ma.filled(np.ma.asarray(c, dtype=float), np.nan), dtype=float)
    except (ValueError, TypeError):
        raise InputError(f"column {col} is not numeric", path=path, keyword=col) from None
    src_unit = c.unit if c.unit is not None else unit
    if target is not None and src_unit is not None:
        try:
            a = (a * u.Unit(src_unit)).to_value(target)
        except u.UnitConversionError:
            raise InputError(f"column {col} has unit {src_unit}, expected something convertible to {target}",
                             path=path, keyword=col) from None
    return a


def _first_col(t, names):
    return next((n for n in names if n in t.colnames), None)


def _check_radec(ra, dec, path, cols):
    bad = ~((ra >= 0) & (ra < 360) & (dec >= -90) & (dec <= 90))
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"position out of range (ra {ra[i]}, dec {dec[i]}); expected degrees", path=path,
                         row=i + 1, keyword=cols)


def _mag_columns(t):
    """Generic magnitude columns: ``<band>mag`` (VizieR style) / ``mag_<band>``, with errors."""
    mags, errs = {}, {}
    for c in t.colnames:
        m = (re.fullmatch(r"([A-Za-z][A-Za-z0-9]*)mag", c) or re.fullmatch(r"mag_([A-Za-z0-9]+)", c)
             or re.fullmatch(r"mag([A-Z][A-Za-z0-9]*)", c))
        if m and not c.startswith("e_"):
            band = m.group(1)
            mags[band] = c
            e = _first_col(t, [f"e_{c}", f"{c}_err", f"{c}err", f"magerr_{band}", f"{c}_error"])
            if e:
                errs[band] = e
    return mags, errs


# --------------------------------------------------------------------------- main
def read_refcat(path, catalog: str | None = None, *, band: str | None = None, columns: dict | None = None,
                epoch: float | None = None) -> dict:
    """Read a reference catalogue into ``refcat_source`` columns.

    Recognised without options: SCAMP FITS_LDAC reference catalogues
    (``XWIN_WORLD``, ``YWIN_WORLD``, ``ERRAWIN_WORLD``/``ERRBWIN_WORLD`` taken as
    the RA/Dec errors, ``MAG``/``MAGERR`` in the band given by ``band`` or
    guessed from the catalogue name, ``OBSDATE`` epoch); VizieR UCAC4, PPMXL and
    Gaia responses (:data:`VIZIER_PROFILES`; units from the VizieR ReadMe when the
    file has none, e.g. UCAC4 APASS errors in 0.01 mag); the Tycho-2
    ``ra_deg,dec_deg,mag_vt`` CSV (epoch 1991.25, see the code); any table whose columns have usual names
    (``ra``/``RAJ2000``/``RA_ICRS``..., ``<band>mag`` and ``e_<band>mag``).

    Parameters
    ----------
    path : str or os.PathLike
        FITS / LDAC / VOTable / CSV / TSV, optionally gzipped.
    catalog : str, optional
        Catalogue name stored in ``catalog`` (default: profile name or file stem).
        A name containing ``DR3`` sets the Gaia epoch to 2016.0.
    band : str, optional
        Band of the single ``MAG`` column of SCAMP catalogues (default from the
        name: GAIA -> 'G', 2MASS -> 'J', else 'MAG').
    columns : dict, optional
        Explicit column names, overriding detection: keys among ``source_id, ra,
        dec, epoch, pmra, pmdec, parallax, ra_err, dec_err`` (values: column
        names) and ``mags``/``mag_errs`` (dict band -> column).  Columns without
        units are taken in the target units (deg, mas, mas/yr, mag).
    epoch : float, optional
        Julian-year epoch of the positions when the file has none.

    Returns
    -------
    dict
        Keyed by :data:`REFCAT_COLUMNS`: ``catalog`` (str array), ``source_id``
        (str array; 1-based row numbers when the file has no identifier), ``ra``,
        ``dec`` (deg), ``epoch`` (Julian year), ``pmra`` (mas/yr, includes
        cos dec), ``pmdec`` (mas/yr), ``parallax`` (mas), ``ra_err``, ``dec_err``
        (mas), each shape (N,) float with NaN where unknown; ``mags`` and
        ``mag_errs``: dict band -> (N,) float array.

    Raises
    ------
    catdb.errors.InputError
        Unreadable file, no RA/Dec column (the names tried are listed), a column
        with incompatible units, or positions outside the valid range (row given).
    """
    p = Path(path)
    t = read_table_any(p)
    n = len(t)
    name = catalog
    stem = re.sub(r"(\.csv|\.tsv|\.dat|\.txt|\.cat|\.fits?|\.xml|\.vot)(\.gz)?$", "", p.name, flags=re.I)
    out = {k: np.full(n, np.nan) for k in ("epoch", "pmra", "pmdec", "parallax", "ra_err", "dec_err")}
    mags, errs = {}, {}
    profile = None
    if columns is None:
        for pname, prof in VIZIER_PROFILES.items():
            if prof["detect"] in t.colnames and prof["ra"][0] in t.colnames:
                profile = pname
                break
    if profile:
        prof = VIZIER_PROFILES[profile]
        name = name or profile
        out["ra"] = _num(t, prof["ra"][0], prof["ra"][1], u.deg, p)
        out["dec"] = _num(t, prof["dec"][0], prof["dec"][1], u.deg, p)
        for k in ("pmra", "pmdec", "parallax", "ra_err", "dec_err"):
            if k in prof and prof[k][0] in t.colnames:
                out[k] = _num(t, prof[k][0], prof[k][1], _TARGET_UNIT[k], p)
        ep = prof["epoch"]
        if isinstance(ep, str):
            if ep in t.colnames:
                out["epoch"] = _num(t, ep)
            else:
                out["epoch"][:] = epoch if epoch is not None else (2016.0 if "DR3" in (name or "").upper()
                                                                   else 2015.5)
        else:
            out["epoch"][:] = ep
        sid = np.asarray(t[prof["source_id"]]).astype(str) if prof["source_id"] in t.colnames else None
        for b, (mc, ec, eu) in prof["mags"].items():
            if mc in t.colnames:
                mags[b] = _num(t, mc, u.mag, u.mag, p)
                if ec and ec in t.colnames:
                    errs[b] = _num(t, ec, eu, u.mag, p)
    else:
        cols = dict(columns or {})
        ldac = bool(t.meta.get("LDAC"))
        for k, cands in _GENERIC_NAMES.items():
            if k not in cols:
                c = _first_col(t, cands)
                if c is None and k in ("ra", "dec"):  # VOTable UCD
                    ucd = f"pos.eq.{k};meta.main"
                    c = next((n for n in t.colnames if t[n].meta.get("ucd", "").lower() == ucd), None)
                if c:
                    cols[k] = c
        if "ra" not in cols or "dec" not in cols or cols["ra"] not in t.colnames or cols["dec"] not in t.colnames:
            raise InputError(f"no RA/Dec columns found (tried {_GENERIC_NAMES['ra']} / {_GENERIC_NAMES['dec']}); "
                             f"columns are {t.colnames}; pass columns={{'ra': ..., 'dec': ...}}", path=path,
                             keyword="ra")
        if t[cols["ra"]].dtype.kind in "US":  # sexagesimal text: 'hh mm ss.s', '+dd mm ss'
            from astropy.coordinates import SkyCoord
            try:
                sc = SkyCoord(np.asarray(t[cols["ra"]]), np.asarray(t[cols["dec"]]), unit=(u.hourangle, u.deg))
            except ValueError as exc:
                raise InputError(f"cannot parse sexagesimal RA/Dec: {exc}", path=path, keyword=cols["ra"]) from None
            out["ra"], out["dec"] = sc.ra.deg, sc.dec.deg
        else:
            out["ra"] = _num(t, cols["ra"], u.deg, u.deg, p)
            out["dec"] = _num(t, cols["dec"], u.deg, u.deg, p)
        for k in ("pmra", "pmdec", "parallax", "ra_err", "dec_err"):
            if k in cols:
                out[k] = _num(t, cols[k], _TARGET_UNIT[k], _TARGET_UNIT[k], p)
        if "epoch" in cols:
            out["epoch"] = _num(t, cols["epoch"])
        elif epoch is not None:
            out["epoch"][:] = epoch
        elif stem.lower().startswith("tycho2"):
            # The astrometry.net Tycho-2 index holds the OBSERVED positions (Hog et al. 2000, A&A 355,
            # L27: epoch ~1991.25), not the J2000 mean positions: Arcturus, Capella and Procyon moved to
            # 1991.25 with their proper motions match to < 0.03"; at 2000.0 Arcturus is 20" off.
            out["epoch"][:] = 1991.25
        sid = np.asarray(t[cols["source_id"]]).astype(str) if "source_id" in cols else None
        if columns and "mags" in columns:
            mcols, ecols = columns["mags"], columns.get("mag_errs", {})
        elif ldac and "MAG" in t.colnames:
            nm = (catalog or stem).upper()
            b = band or ("G" if "GAIA" in nm else "J" if "2MASS" in nm else "MAG")
            mcols, ecols = {b: "MAG"}, ({b: "MAGERR"} if "MAGERR" in t.colnames else {})
        else:
            mcols, ecols = _mag_columns(t)
            if "mag_vt" in t.colnames:  # Tycho-2 VT
                mcols.pop("vt", None)
                mcols["VT"] = "mag_vt"
        for b, c in mcols.items():
            mags[b] = _num(t, c, u.mag, u.mag, p)
            # 99 / -99 are "no magnitude" in SExtractor/SCAMP-style catalogues
            mags[b][np.abs(mags[b]) >= 99] = np.nan
        for b, c in ecols.items():
            errs[b] = _num(t, c, u.mag, u.mag, p)
        name = name or ("TYCHO2" if stem.lower().startswith("tycho2") else stem)
    _check_radec(out["ra"], out["dec"], p, "ra/dec")
    if sid is None:
        sid = np.char.mod("%d", np.arange(1, n + 1))
    res = {"catalog": np.full(n, name, dtype=object), "source_id": np.asarray(sid, dtype=str)}
    res.update({k: out[k] for k in ("ra", "dec", "epoch", "pmra", "pmdec", "parallax", "ra_err", "dec_err")})
    res["mags"], res["mag_errs"] = mags, errs
    return res
