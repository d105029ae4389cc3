"""Reference catalogues (astrometric / photometric) into ``refcat_source`` columns.

Readers for: SCAMP FITS_LDAC reference catalogues (``XWIN_WORLD``...,
``OBSDATE``), the Tycho-2 CSV shipped in shared data, VizieR responses (CSV or
TSV, with or without unit/dash lines, VOTable, or the astropy Table astroquery
returns) of UCAC4 (I/322A), PPMXL (I/317), Gaia DR2/DR3 (I/345, I/355), PS1
(II/349), APASS (II/336), SDSS (V/147), 2MASS (II/246), USNO-B1 (I/284) and
Tycho-2 (I/259), and generic CSV/ECSV/Parquet/FITS/VOTable tables with
user-given column names.

Wiring: ``src = read_refcat(path)`` (a file) or ``refcat_from_table(table, profile=...)``
(an in-memory table) -> dict of arrays keyed by the
``refcat_source`` columns (``mags``/``mag_errs`` are dicts band -> array).
"""
from __future__ import annotations

import gzip
import re
import warnings
from io import BytesIO
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.io import ascii as asc
from astropy.io import fits
from astropy.table import Table
from astropy.utils.exceptions import AstropyWarning

from ..errors import InputError

__all__ = ["COLUMN_KEYS", "REFCAT_COLUMNS", "VIZIER_PROFILES", "read_refcat", "read_table_any", "refcat_from_table"]

#: Keys of the dict returned by :func:`read_refcat` (the lead's ``refcat_source`` columns).
REFCAT_COLUMNS = ("catalog", "source_id", "ra", "dec", "epoch", "pmra", "pmdec", "parallax",
                  "ra_err", "dec_err", "mags", "mag_errs")

# Column meanings and units from the VizieR ReadMe files of each catalogue.  Each value is
# (column, unit of the column when the file carries no unit).  Mags: band -> (mag col, err col, err unit).
# source_id: a column, a list of alternative columns, or a tuple of columns joined with '-'.
# epoch: a constant (Julian year) or a column (Julian year, or JD / MJD: see _epoch_years).
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
    # Pan-STARRS1 DR1 mean photometry, Chambers et al. 2016 (arXiv:1612.05560), Flewelling et al. 2020,
    # ApJS 251, 7; VizieR II/349/ps1.  e_RAJ2000/e_DEJ2000 in arcsec, Epoch = mean epoch of the detections.
    "PS1": dict(
        detect="objID", source_id="objID", ra=("RAJ2000", u.deg), dec=("DEJ2000", u.deg), epoch="Epoch",
        ra_err=("e_RAJ2000", u.arcsec), dec_err=("e_DEJ2000", u.arcsec),
        mags={b: (f"{b}mag", f"e_{b}mag", u.mag) for b in "grizy"}),
    # APASS DR9, Henden et al. 2016 (AAVSO Photometric All-Sky Survey, VizieR II/336/apass9).  Sloan
    # bands are named g'mag r'mag i'mag there; position errors in arcsec; no epoch (2009-2013 imaging).
    "APASS": dict(
        detect="g'mag", source_id="recno", ra=("RAJ2000", u.deg), dec=("DEJ2000", u.deg), epoch=float("nan"),
        ra_err=("e_RAJ2000", u.arcsec), dec_err=("e_DEJ2000", u.arcsec),
        mags={"B": ("Bmag", "e_Bmag", u.mag), "V": ("Vmag", "e_Vmag", u.mag), "g": ("g'mag", "e_g'mag", u.mag),
              "r": ("r'mag", "e_r'mag", u.mag), "i": ("i'mag", "e_i'mag", u.mag)}),
    # SDSS DR12 photometric catalogue, Alam et al. 2015, ApJS 219, 12; VizieR V/147/sdss12.  ObsDate is
    # the mean observation epoch (yr); position errors in arcsec; u g r i z model magnitudes.
    "SDSS": dict(
        detect="SDSS12", source_id="objID", ra=("RA_ICRS", u.deg), dec=("DE_ICRS", u.deg), epoch="ObsDate",
        ra_err=("e_RA_ICRS", u.arcsec), dec_err=("e_DE_ICRS", u.arcsec),
        mags={b: (f"{b}mag", f"e_{b}mag", u.mag) for b in "ugriz"}),
    # 2MASS Point Source Catalogue, Skrutskie et al. 2006, AJ 131, 1163; VizieR II/246/out.  Positions at
    # the observation date (JD); errMaj (arcsec, semi-major axis of the error ellipse) is taken as the
    # error in both coordinates (an upper bound).  astroquery names the identifier column _2MASS.
    "2MASS": dict(
        detect="errMaj", source_id=["_2MASS", "2MASS"], ra=("RAJ2000", u.deg), dec=("DEJ2000", u.deg),
        epoch="JD", ra_err=("errMaj", u.arcsec), dec_err=("errMaj", u.arcsec),
        mags={b: (f"{b}mag", f"e_{b}mag", u.mag) for b in "JHK"}),
    # USNO-B1.0, Monet et al. 2003, AJ 125, 984; VizieR I/284/out.  Positions at J2000 (proper motion
    # applied), Epoch = mean epoch of the plates (yr); photographic magnitudes without errors.
    "USNO-B1": dict(
        detect="USNO-B1.0", source_id="USNO-B1.0", ra=("RAJ2000", u.deg), dec=("DEJ2000", u.deg), epoch=2000.0,
        pmra=("pmRA", u.mas / u.yr), pmdec=("pmDE", u.mas / u.yr),
        ra_err=("e_RAJ2000", u.mas), dec_err=("e_DEJ2000", u.mas),
        mags={"B1": ("B1mag", None, None), "R1": ("R1mag", None, None), "B2": ("B2mag", None, None),
              "R2": ("R2mag", None, None), "I": ("Imag", None, None)}),
    # Tycho-2, Hog et al. 2000, A&A 355, L27; VizieR I/259/tyc2.  RAmdeg/DEmdeg: mean positions (ICRS) at
    # epoch J2000 with proper motions; stars without a mean position (pflag X, about 4 %) have none here.
    "TYCHO2": dict(
        detect="RAmdeg", source_id=("TYC1", "TYC2", "TYC3"), ra=("RAmdeg", u.deg), dec=("DEmdeg", u.deg),
        epoch=2000.0, pmra=("pmRA", u.mas / u.yr), pmdec=("pmDE", u.mas / u.yr),
        ra_err=("e_RAmdeg", u.mas), dec_err=("e_DEmdeg", u.mas),
        mags={"BT": ("BTmag", "e_BTmag", u.mag), "VT": ("VTmag", "e_VTmag", u.mag)}),
    # Gaia DR2 (I/345/gaia2, epoch 2015.5; Gaia Collaboration, Brown et al. 2018, A&A 616, A1) / DR3
    # (I/355/gaiadr3, epoch 2016.0; Vallenari et al. 2023, A&A 674, A1) as served by VizieR.
    "GAIA": dict(
        detect="RA_ICRS", source_id="Source", ra=("RA_ICRS", u.deg), dec=("DE_ICRS", u.deg), epoch="Epoch",
        pmra=("pmRA", u.mas / u.yr), pmdec=("pmDE", u.mas / u.yr), parallax=("Plx", u.mas),
        ra_err=("e_RA_ICRS", u.mas), dec_err=("e_DE_ICRS", u.mas),
        mags={"G": ("Gmag", "e_Gmag", u.mag), "BP": ("BPmag", "e_BPmag", u.mag),
              "RP": ("RPmag", "e_RPmag", u.mag)}),
}

#: user column-map keys (``columns=`` of :func:`read_refcat`; ``catdb refcat import --ra ...``)
COLUMN_KEYS = ("source_id", "ra", "dec", "epoch", "pmra", "pmdec", "parallax", "ra_err", "dec_err")

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
    """Read a reference table from FITS (LDAC or plain), VOTable, ECSV, Parquet or CSV/TSV.

    The format is recognised from the content, not the file name: Parquet by
    its ``PAR1`` magic bytes, ECSV by its ``# %ECSV`` first line (astropy's
    Enhanced CSV, with units), FITS by ``SIMPLE``, VOTable by its XML header;
    anything else is read as VizieR-style CSV/TSV.  Any of them may be gzipped.

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
        Unreadable or unrecognised file (or Parquet without pyarrow installed).
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read reference catalogue: {exc.strerror}", path=path) from None
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if raw[:4] == b"PAR1":  # Apache Parquet (magic bytes at both ends of the file)
        try:
            return Table.read(BytesIO(raw), format="parquet")
        except ImportError:
            raise InputError("reading Parquet needs pyarrow (pip install pyarrow)", path=path) from None
        except Exception as exc:  # noqa: BLE001 - any parser error: one clear message
            raise InputError(f"cannot read as Parquet: {exc}", path=path) from None
    if raw.lstrip()[:7] == b"# %ECSV":  # astropy ECSV: units and types in a YAML header
        try:
            return Table.read(raw.decode("utf-8"), format="ascii.ecsv")
        except Exception as exc:  # noqa: BLE001 - any parser error: one clear message
            raise InputError(f"cannot read as ECSV: {exc}", path=path) from None
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
def _epoch_years(a: np.ndarray) -> np.ndarray:
    """Epoch column to Julian years: values above 1e6 are JD, above 1e4 MJD (2MASS ``JD``, MJD epochs)."""
    a = np.asarray(a, dtype=float)
    out = a.copy()
    jd = a > 1e6
    mjd = (a > 1e4) & ~jd
    out[jd] = 2000.0 + (a[jd] - 2451545.0) / 365.25
    out[mjd] = 2000.0 + (a[mjd] - 51544.5) / 365.25
    return out


def _source_ids(t, spec):
    if isinstance(spec, tuple):
        if not all(c in t.colnames for c in spec):
            return None
        parts = [np.asarray(t[c]).astype(str) for c in spec]
        out = parts[0]
        for p_ in parts[1:]:
            out = np.char.add(np.char.add(out, "-"), p_)
        return out
    for c in ([spec] if isinstance(spec, str) else spec):
        if c in t.colnames:
            return np.asarray(t[c]).astype(str)
    return None


def _check_column_map(t, columns: dict, path) -> None:
    """Every column named in a user column map must exist in the table (clear error otherwise)."""
    named = [(k, v) for k, v in columns.items() if k in COLUMN_KEYS and isinstance(v, str)]
    named += [(f"mags[{b}]", c) for b, c in (columns.get("mags") or {}).items()]
    named += [(f"mag_errs[{b}]", c) for b, c in (columns.get("mag_errs") or {}).items()]
    for key, col in named:
        if col not in t.colnames:
            raise InputError(f"column {col!r} given for {key} is not in the file; its columns are "
                             f"{', '.join(t.colnames)}", path=path, keyword=col)
    unknown = set(columns) - set(COLUMN_KEYS) - {"mags", "mag_errs"}
    if unknown:
        raise InputError(f"unknown column-map keys {sorted(unknown)}; expected {COLUMN_KEYS + ('mags', 'mag_errs')}",
                         path=path)


def read_refcat(path, catalog: str | None = None, *, band: str | None = None, columns: dict | None = None,
                epoch: float | None = None) -> dict:
    """Read a reference catalogue file into ``refcat_source`` columns.

    Recognised without options: SCAMP FITS_LDAC reference catalogues
    (``XWIN_WORLD``, ``YWIN_WORLD``, ``ERRAWIN_WORLD``/``ERRBWIN_WORLD`` taken as
    the RA/Dec errors, ``MAG``/``MAGERR`` in the band given by ``band`` or
    guessed from the catalogue name, ``OBSDATE`` epoch); VizieR UCAC4, PPMXL,
    Gaia, PS1, APASS, SDSS, 2MASS, USNO-B1 and Tycho-2 responses
    (:data:`VIZIER_PROFILES`; units from the VizieR ReadMe when the file has
    none, e.g. UCAC4 APASS errors in 0.01 mag); the Tycho-2
    ``ra_deg,dec_deg,mag_vt`` CSV (epoch 1991.25, see the code); any table whose
    columns have usual names (``ra``/``RAJ2000``/``RA_ICRS``..., ``<band>mag``
    and ``e_<band>mag``).  File formats: see :func:`read_table_any` (FITS, LDAC,
    VOTable, ECSV, Parquet, CSV/TSV).

    Parameters
    ----------
    path : str or os.PathLike
        FITS / LDAC / VOTable / ECSV / Parquet / CSV / TSV, optionally gzipped.
    catalog : str, optional
        Catalogue name stored in ``catalog`` (default: profile name or file stem).
        A name containing ``DR3`` sets the Gaia epoch to 2016.0.
    band : str, optional
        Band of the single ``MAG`` column of SCAMP catalogues (default from the
        name: GAIA -> 'G', 2MASS -> 'J', else 'MAG').
    columns : dict, optional
        Explicit column map, overriding detection: keys among
        :data:`COLUMN_KEYS` (values: column names; ``epoch`` may also be a
        number, the Julian year of every row) and ``mags``/``mag_errs`` (dict
        band -> column).  Columns without units are taken in the target units
        (deg, mas, mas/yr, mag); epochs above 1e6 are read as JD, above 1e4 as MJD.
    epoch : float, optional
        Julian-year epoch of the positions when the file has none.

    Returns
    -------
    dict
        See :func:`refcat_from_table`.

    Raises
    ------
    catdb.errors.InputError
        Unreadable file, no RA/Dec column (the names tried are listed), a
        column of the column map missing from the file (named, with the file's
        columns), a column with incompatible units, or positions outside the
        valid range (row given).
    """
    p = Path(path)
    t = read_table_any(p)
    stem = re.sub(r"(\.csv|\.tsv|\.dat|\.txt|\.cat|\.fits?|\.xml|\.vot|\.ecsv|\.parquet|\.pq)(\.gz)?$", "",
                  p.name, flags=re.I)
    return refcat_from_table(t, catalog=catalog, band=band, columns=columns, epoch=epoch, path=p, stem=stem)


def refcat_from_table(t: Table, *, catalog: str | None = None, profile: str | None = None,
                      columns: dict | None = None, band: str | None = None, epoch: float | None = None,
                      path=None, stem: str | None = None, drop_missing: bool = False) -> dict:
    """Map a reference table (a file's, or a VizieR response from astroquery) to ``refcat_source`` columns.

    Parameters
    ----------
    t : astropy.table.Table
        N rows; units on the columns are used (and converted) when present.
    catalog : str, optional
        Name stored in ``catalog``.
    profile : str, optional
        Key of :data:`VIZIER_PROFILES` to use instead of detecting one (fetches
        know their catalogue).
    columns, band, epoch
        As in :func:`read_refcat`.
    path : str, optional
        File named in error messages.
    stem : str, optional
        Default catalogue name (file name without extension).
    drop_missing : bool
        Drop rows without a finite position instead of raising (VizieR Tycho-2
        rows without a mean position).

    Returns
    -------
    dict
        Keyed by :data:`REFCAT_COLUMNS`: ``catalog`` (str array), ``source_id``
        (str array; 1-based row numbers when the table has no identifier), ``ra``,
        ``dec`` (deg), ``epoch`` (Julian year), ``pmra`` (mas/yr, includes
        cos dec), ``pmdec`` (mas/yr), ``parallax`` (mas), ``ra_err``, ``dec_err``
        (mas), each shape (N,) float with NaN where unknown; ``mags`` and
        ``mag_errs``: dict band -> (N,) float array.  With ``drop_missing``
        also ``n_dropped`` (int).

    Raises
    ------
    catdb.errors.InputError
        As :func:`read_refcat`.
    """
    p = path
    n = len(t)
    stem = stem or "refcat"
    name = catalog
    out = {k: np.full(n, np.nan) for k in ("epoch", "pmra", "pmdec", "parallax", "ra_err", "dec_err")}
    mags, errs = {}, {}
    if columns:
        _check_column_map(t, columns, p)
        profile = None
    elif profile is None:
        for pname, prof in VIZIER_PROFILES.items():
            if prof["detect"] in t.colnames and prof["ra"][0] in t.colnames:
                profile = pname
                break
    if profile:
        prof = VIZIER_PROFILES[profile]
        name = name or profile
        for k in ("ra", "dec"):
            if prof[k][0] not in t.colnames:
                raise InputError(f"no {prof[k][0]} column in the {profile} table; columns are {t.colnames}",
                                 path=p, keyword=prof[k][0])
        out["ra"] = _num(t, prof["ra"][0], prof["ra"][1], u.deg, p)
        out["dec"] = _num(t, prof["dec"][0], prof["dec"][1], u.deg, p)
        for k in ("pmra", "pmdec", "parallax", "ra_err", "dec_err"):
            if k in prof and prof[k][0] in t.colnames:
                out[k] = _num(t, prof[k][0], prof[k][1], _TARGET_UNIT[k], p)
        ep = prof["epoch"]
        if isinstance(ep, str):
            if ep in t.colnames:
                out["epoch"] = _epoch_years(_num(t, ep))
            elif epoch is not None:
                out["epoch"][:] = epoch
            elif profile == "GAIA":
                out["epoch"][:] = 2016.0 if "DR3" in (name or "").upper() else 2015.5
        else:
            out["epoch"][:] = ep if epoch is None else epoch
        sid = _source_ids(t, prof["source_id"])
        for b, (mc, ec, eu) in prof["mags"].items():
            if mc in t.colnames:
                mags[b] = _num(t, mc, u.mag, u.mag, p)
                if ec and ec in t.colnames:
                    errs[b] = _num(t, ec, eu, u.mag, p)
    else:
        cols = {k: v for k, v in (columns or {}).items() if k in COLUMN_KEYS}
        ldac = bool(t.meta.get("LDAC"))
        for k, cands in _GENERIC_NAMES.items():
            if k not in cols:
                c = _first_col(t, cands)
                if c is None and k in ("ra", "dec"):  # VOTable UCD
                    ucd = f"pos.eq.{k};meta.main"
                    c = next((n_ for n_ in t.colnames if t[n_].meta.get("ucd", "").lower() == ucd), None)
                if c:
                    cols[k] = c
        if "ra" not in cols or "dec" not in cols:
            raise InputError(f"no RA/Dec columns found (tried {_GENERIC_NAMES['ra']} / {_GENERIC_NAMES['dec']}); "
                             f"columns are {t.colnames}; give them with --ra COL --dec COL (columns={{'ra': ..., "
                             f"'dec': ...}})", path=p, keyword="ra")
        if t[cols["ra"]].dtype.kind in "US":  # sexagesimal text: 'hh mm ss.s', '+dd mm ss'
            try:
                sc = SkyCoord(np.asarray(t[cols["ra"]]), np.asarray(t[cols["dec"]]), unit=(u.hourangle, u.deg))
            except ValueError as exc:
                raise InputError(f"cannot parse sexagesimal RA/Dec: {exc}", path=p, keyword=cols["ra"]) from None
            out["ra"], out["dec"] = sc.ra.deg, sc.dec.deg
        else:
            out["ra"] = _num(t, cols["ra"], u.deg, u.deg, p)
            out["dec"] = _num(t, cols["dec"], u.deg, u.deg, p)
        for k in ("pmra", "pmdec", "parallax", "ra_err", "dec_err"):
            if k in cols:
                out[k] = _num(t, cols[k], _TARGET_UNIT[k], _TARGET_UNIT[k], p)
        if "epoch" in cols and not isinstance(cols["epoch"], str):
            out["epoch"][:] = float(cols["epoch"])
        elif "epoch" in cols:
            out["epoch"] = _epoch_years(_num(t, cols["epoch"], path=p))
        elif epoch is not None:
            out["epoch"][:] = epoch
        elif stem.lower().startswith("tycho2"):
            # The astrometry.net Tycho-2 index holds the OBSERVED positions (Hog et al. 2000, A&A 355,
            # L27: epoch ~1991.25), not the J2000 mean positions: Arcturus, Capella and Procyon moved to
            # 1991.25 with their proper motions match to < 0.03"; at 2000.0 Arcturus is 20" off.
            out["epoch"][:] = 1991.25
        sid = np.asarray(t[cols["source_id"]]).astype(str) if "source_id" in cols else None
        if columns and columns.get("mags"):
            mcols, ecols = columns["mags"], columns.get("mag_errs") or {}
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
    if sid is None:
        sid = np.char.mod("%d", np.arange(1, n + 1))
    n_dropped = 0
    if drop_missing:
        keep = np.isfinite(out["ra"]) & np.isfinite(out["dec"])
        n_dropped = int(n - keep.sum())
        if n_dropped:
            out = {k: v[keep] for k, v in out.items()}
            mags = {k: v[keep] for k, v in mags.items()}
            errs = {k: v[keep] for k, v in errs.items()}
            sid = np.asarray(sid)[keep]
            n = int(keep.sum())
    _check_radec(out["ra"], out["dec"], p, "ra/dec")
    res = {"catalog": np.full(n, name, dtype=object), "source_id": np.asarray(sid, dtype=str)}
    res.update({k: out[k] for k in ("ra", "dec", "epoch", "pmra", "pmdec", "parallax", "ra_err", "dec_err")})
    res["mags"], res["mag_errs"] = mags, errs
    if drop_missing:
        res["n_dropped"] = n_dropped
    return res
