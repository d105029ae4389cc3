"""Minor Planet Center observation formats: 80-column records and ADES PSV.

80-column format (MPC, "Format For Optical Astrometric Observations Of
Comets, Minor Planets and Natural Satellites",
https://minorplanetcenter.net/iau/info/OpticalObs.html):

=======  ==================================================================
cols     content
=======  ==================================================================
1-5      packed permanent number (``13553``, ``L5426`` = 215426, ``~0000``)
6-12     packed provisional (``K02J45F`` = 2002 JF45) or temporary designation
13       discovery asterisk
14       note 1 (program code / note)
15       note 2 (``C`` CCD, ``S`` satellite, ``A`` reduced photographic, ...)
16-32    date UTC ``YYYY MM DD.dddddd`` (5 or 6 decimals)
33-44    RA ``HH MM SS.ddd``
45-56    Dec ``sDD MM SS.dd``
57-65    blank
66-70    magnitude
71       band
72       astrometric catalogue code (new-style records)
73-77    reference
78-80    observatory code
=======  ==================================================================

A satellite observation (note 2 ``S``) is followed by a second line with note
2 ``s``: col 33 units (1 = km, 2 = AU), cols 35-45, 47-57, 59-69 the signed
geocentric X, Y, Z of the observer.

ADES PSV (IAU ADES, MPC "ADES Description", version 2022): ``# version=2022``,
header blocks (``# observatory``, ``# submitter``, ``# observers``,
``# measurers``, ``# telescope``) with ``! key value`` lines, then a
pipe-separated table whose first line names the fields.

Wiring: the ``export mpc`` command selects accepted tracks and their member
detections (``mjd_mid``, ``ra``, ``dec``, ``ra_err``, ``dec_err``,
``mag_auto`` calibrated, exposure ``band`` and ``observatory_code``) and calls
:func:`format_mpc80` or :func:`format_ades_psv`.
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from astropy.table import Table
from astropy.time import Time

from catdb.errors import InputError
from catdb.ingest.wcs_state import refuse_unusable
from catdb.schema import WCS_ABSOLUTE

__all__ = ["pack_number", "unpack_number", "pack_provisional", "unpack_provisional",
           "format_mpc80", "parse_mpc80", "format_ades_psv", "parse_ades_psv", "check_absolute_astrometry"]


def check_absolute_astrometry(conn, exposure_ids) -> None:
    """Refuse astrometry for the MPC from exposures whose positions are not absolute.

    Only ``wcs_status`` ``header`` or ``solved`` (:data:`catdb.schema.WCS_ABSOLUTE`) give sky
    positions tied to a reference catalogue; ``registered`` positions agree across a night but
    their frame comes from pointing keywords (off by up to arcminutes), and ``approximate`` /
    ``none`` are not positions at all.

    Parameters
    ----------
    conn : psycopg.Connection
    exposure_ids : sequence of int
        The exposures of the detections to export.

    Raises
    ------
    catdb.errors.InputError
        Naming the exposures (id, path, status, why) and what to do (solve against a reference
        catalogue: ``catdb stage solve --param refcat=NAME``).
    """
    refuse_unusable(conn, sorted({int(i) for i in exposure_ids}),
                    "MPC/ADES astrometry needs absolute positions (a WCS from the header or solved against a "
                    "reference catalogue)", allowed=WCS_ABSOLUTE)

_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_CENTURY = {"I": 18, "J": 19, "K": 20, "L": 21}
_PROV_RE = re.compile(r"^(\d{4}) ([A-HJ-Y])([A-HJ-Z])(\d*)$")


def pack_number(number):
    """Pack a permanent minor-planet number into the 5-character MPC form.

    ``1..99999`` as digits, ``100000..619999`` as letter + 4 digits
    (``A`` = 10, ..., ``z`` = 61), ``>= 620000`` as ``~`` + 4 base-62 digits.

    Raises
    ------
    InputError
        For numbers < 1 or > 15,396,335.
    """
    n = int(number)
    if n < 1:
        raise InputError(f"minor-planet number must be >= 1, got {number!r}", keyword="number")
    if n < 100000:
        return f"{n:05d}"
    if n < 620000:
        return _B62[n // 10000] + f"{n % 10000:04d}"
    k = n - 620000
    if k >= 62**4:
        raise InputError(f"number {n} too large for the packed format", keyword="number")
    return "~" + "".join(_B62[(k // 62**p) % 62] for p in (3, 2, 1, 0))


def unpack_number(packed):
    """Inverse of :func:`pack_number`; returns None if ``packed`` is not a valid packed number."""
    s = packed.strip()
    if len(packed) != 5 or not s:
        return None
    if packed.isdigit():
        return int(packed)
    if packed[0] == "~" and all(c in _B62 for c in packed[1:]):
        return 620000 + sum(_B62.index(c) * 62**p for c, p in zip(packed[1:], (3, 2, 1, 0)))
    if packed[0] in _B62[10:] and packed[1:].isdigit():
        return _B62.index(packed[0]) * 10000 + int(packed[1:])
    return None


def pack_provisional(desig):
    """Pack a provisional designation (``'2002 JF45'`` -> ``'K02J45F'``).

    Raises
    ------
    InputError
        If ``desig`` is not of the form ``YYYY LL[n]`` (years 1800-2199).
    """
    m = _PROV_RE.match(desig.strip())
    if not m:
        raise InputError(f"not a provisional designation like '2002 JF45': {desig!r}",
                         keyword="designation")
    year, half, second, cycle = m.groups()
    century = {v: k for k, v in _CENTURY.items()}.get(int(year[:2]))
    cyc = int(cycle) if cycle else 0
    if century is None or cyc > 619:
        raise InputError(f"provisional designation out of range: {desig!r}", keyword="designation")
    return f"{century}{year[2:]}{half}{_B62[cyc // 10]}{cyc % 10}{second}"


def unpack_provisional(packed):
    """Inverse of :func:`pack_provisional`; returns None if not a packed provisional."""
    if len(packed) != 7 or packed[0] not in _CENTURY or not packed[1:3].isdigit():
        return None
    if packed[4] not in _B62 or not packed[5].isdigit() or not packed[3].isalpha() \
            or not packed[6].isalpha():
        return None
    cyc = _B62.index(packed[4]) * 10 + int(packed[5])
    year = _CENTURY[packed[0]] * 100 + int(packed[1:3])
    return f"{year} {packed[3]}{packed[6]}{cyc if cyc else ''}"


def _bcast(n, value, dtype=object):
    arr = np.asarray(value, dtype=dtype)
    if arr.ndim == 0:
        arr = np.full(n, arr.item(), dtype=dtype)
    if arr.shape != (n,):
        raise InputError(f"expected a scalar or {n} values, got shape {arr.shape}")
    return arr


def _dates(mjd, ndec):
    """'YYYY MM DD.ddddd' strings (UTC) with ``ndec`` decimals, correctly rounded."""
    scale = 10 ** ndec.astype(np.int64)
    units = np.round(mjd * scale).astype(np.int64)
    day = units // scale
    frac = units - day * scale
    iso = Time(day.astype(float), format="mjd", scale="utc").iso
    return [f"{s[:4]} {s[5:7]} {s[8:10]}.{f:0{d}d}" for s, f, d in zip(iso, frac, ndec)]


def _sexa(values, unit_per_deg, ndec, sign):
    """Sexagesimal 'DD MM SS.s' strings with correct carry after rounding."""
    scale = 10 ** ndec.astype(np.int64)
    neg = values < 0
    units = np.round(np.abs(values) * unit_per_deg * 3600.0 * scale).astype(np.int64)
    whole, frac = np.divmod(units, scale)
    dd, rest = np.divmod(whole, 3600)
    mm, ss = np.divmod(rest, 60)
    if not sign:
        dd = dd % 24
    out = []
    for n, d, m, s, f, k in zip(neg, dd, mm, ss, frac, ndec):
        sec = f"{s:02d}" + (f".{f:0{k}d}" if k > 0 else "")
        out.append(("-" if n else "+") * sign + f"{d:02d} {m:02d} {sec}")
    return out


def format_mpc80(mjd, ra, dec, *, number="", provid="", mag=np.nan, band="", obscode="500",
                 note1=" ", note2="C", discovery=False, catalog=" ", reference="",
                 time_decimals=5, ra_decimals=2, dec_decimals=1, mag_decimals=1,
                 sat_units=None, sat_x=None, sat_y=None, sat_z=None, sat_decimals=4):
    """Format observations as MPC 80-column records.

    Parameters
    ----------
    mjd : array_like, shape (N,)
        Mid-exposure times, MJD UTC (``exposure.mjd_mid``).
    ra, dec : array_like, shape (N,)
        Astrometric ICRS positions, degrees.
    number : int, str or array_like, optional
        Permanent number (int, packed if needed) or an already packed 5-char
        string; ``''`` for none.
    provid : str or array_like, optional
        Provisional designation (``'2002 JF45'``, packed automatically), an
        already packed one (``'K02J45F'``) or a temporary designation of at
        most 7 characters (``'WSAE9A6'``).
    mag : float or array_like, optional
        Magnitude; NaN leaves cols 66-70 blank.
    band, obscode, note1, note2, catalog, reference : str or array_like
        Band letter (col 71), MPC observatory code (cols 78-80,
        ``exposure.observatory_code``), notes (cols 14, 15; note 2 ``C`` =
        CCD), catalogue code (col 72, e.g. ``V`` = Gaia DR2, ``W`` = Gaia
        DR3) and reference (cols 73-77).
    discovery : bool or array_like
        Discovery asterisk in col 13.
    time_decimals, ra_decimals, dec_decimals, mag_decimals : int or array_like
        Precision: time 5 (1e-5 d) or 6, RA seconds of time 2 or 3, Dec
        arcsec 1 or 2, magnitude 0-2.
    sat_units, sat_x, sat_y, sat_z, sat_decimals : array_like, optional
        For note 2 ``S`` (satellite) records: units (1 = km, 2 = AU) and the
        observer's geocentric X, Y, Z; a second ``s`` line is written.

    Returns
    -------
    list of str
        80-character lines (no newline), two per satellite observation.

    Raises
    ------
    InputError
        On a bad designation, an observatory code that is not 3 characters,
        a field that does not fit its columns, or RA/Dec out of range.
    """
    mjd = np.atleast_1d(np.asarray(mjd, dtype=float))
    n = mjd.size
    ra = _bcast(n, ra, float)
    dec = _bcast(n, dec, float)
    if np.any(~np.isfinite(ra) | ~np.isfinite(dec) | (np.abs(dec) > 90) | ~np.isfinite(mjd)):
        raise InputError("ra, dec and mjd must be finite, |dec| <= 90", keyword="ra/dec")
    ra = ra % 360.0
    f = {k: _bcast(n, v) for k, v in dict(number=number, provid=provid, band=band, obscode=obscode,
                                           note1=note1, note2=note2, discovery=discovery,
                                           catalog=catalog, reference=reference).items()}
    mag = _bcast(n, mag, float)
    tdec = _bcast(n, time_decimals, np.int64)
    rdec = _bcast(n, ra_decimals, np.int64)
    ddec = _bcast(n, dec_decimals, np.int64)
    mdec = _bcast(n, mag_decimals, np.int64)
    dates = _dates(mjd, tdec)
    ras = _sexa(ra, 1.0 / 15.0, rdec, sign=False)
    decs = _sexa(dec, 1.0, ddec, sign=True)
    sat = None
    if sat_x is not None:
        sat = (_bcast(n, sat_units), _bcast(n, sat_x, float), _bcast(n, sat_y, float),
               _bcast(n, sat_z, float), _bcast(n, sat_decimals, np.int64))
    lines = []
    for i in range(n):
        num = f["number"][i]
        if isinstance(num, (int, np.integer)) or (isinstance(num, str) and num.strip().isdigit()
                                                   and len(num.strip()) < 5):
            num = pack_number(num)
        num = "" if num is None else str(num)
        prov = "" if f["provid"][i] is None else str(f["provid"][i])
        if _PROV_RE.match(prov.strip()):
            prov = pack_provisional(prov)
        code = str(f["obscode"][i])
        if len(num) > 5 or len(prov) > 7 or len(code) != 3:
            raise InputError(f"designation {num!r}/{prov!r} or observatory code {code!r} does not "
                             "fit its columns (5, 7, 3 characters)", row=i + 1, keyword="designation")
        m = mag[i]
        mtxt = "" if not np.isfinite(m) else f"{m:.{mdec[i]}f}"
        band_i = str(f["band"][i] or " ")
        ref = str(f["reference"][i] or "")
        line = (f"{num:>5}{prov:<7}{'*' if f['discovery'][i] else ' '}{str(f['note1'][i] or ' '):1}"
                f"{str(f['note2'][i] or ' '):1}{dates[i]:<17}{ras[i]:<12}{decs[i]:<12}{'':9}"
                f"{mtxt:<5}{band_i:1}{str(f['catalog'][i] or ' '):1}{ref:>5}{code}")
        if len(line) != 80:
            raise InputError(f"formatted record is {len(line)} characters, expected 80: {line!r}",
                             row=i + 1)
        lines.append(line)
        if sat is not None and str(f["note2"][i]) == "S" and np.isfinite(sat[1][i]):
            u, x, y, z, k = (s[i] for s in sat)
            xyz = " ".join(f"{'+' if v >= 0 else '-'}{abs(v):>10.{k}f}" for v in (x, y, z))
            line2 = (f"{num:>5}{prov:<7} {str(f['note1'][i] or ' '):1}s{dates[i]:<17}"
                     f"{int(u):1d} {xyz}  {'':1}{ref:>5}{code}")
            if len(line2) != 80:
                raise InputError(f"satellite line is {len(line2)} characters", row=i + 1)
            lines.append(line2)
    return lines


def _decimals(text):
    text = text.strip()
    return len(text.split(".")[1]) if "." in text else 0


def parse_mpc80(source):
    """Parse MPC 80-column observation records.

    Parameters
    ----------
    source : str, os.PathLike or iterable of str
        A file path or the lines themselves.  Blank lines are skipped.

    Returns
    -------
    astropy.table.Table
        One row per observation: ``number`` (packed, cols 1-5, as written),
        ``provid`` (cols 6-12 as written), ``designation`` (unpacked number,
        or unpacked provisional, or the temporary designation), ``discovery``,
        ``note1``, ``note2``, ``mjd`` (UTC), ``ra``, ``dec`` (deg), ``mag``
        (NaN if blank), ``band``, ``catalog``, ``reference``, ``obscode``, the
        precisions ``time_decimals``, ``ra_decimals``, ``dec_decimals``,
        ``mag_decimals``, and for satellite observations ``sat_units``,
        ``sat_x``, ``sat_y``, ``sat_z``, ``sat_decimals`` from the ``s`` line
        (NaN otherwise).  ``line`` is the file line number.
        :func:`format_mpc80` on these columns reproduces the records.

    Raises
    ------
    InputError
        On a record that is not 80 characters, an unparsable date or
        position, or a second line without its first (names file and line).
    """
    path = None
    if isinstance(source, (str, Path)) and "\n" not in str(source) and Path(source).exists():
        path = Path(source)
        lines = path.read_text().splitlines()
    else:
        lines = list(source)
    rows = []
    for ln, raw in enumerate(lines, 1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        if len(line) != 80:
            raise InputError(f"MPC record has {len(line)} characters, expected 80", path=path, row=ln)
        note2 = line[14]
        if note2 in ("s", "v", "r"):
            if note2 != "s":
                raise InputError(f"second-line type {note2!r} (roving/radar) is not supported",
                                 path=path, row=ln)
            if not rows or rows[-1]["note2"] != "S":
                raise InputError("satellite 's' line without a preceding 'S' record",
                                 path=path, row=ln)
            try:
                rows[-1].update(sat_units=int(line[32]),
                                sat_x=float(line[34:45].replace(" ", "")),
                                sat_y=float(line[46:57].replace(" ", "")),
                                sat_z=float(line[58:69].replace(" ", "")),
                                sat_decimals=_decimals(line[35:45]))
            except ValueError:
                raise InputError("bad satellite position line", path=path, row=ln) from None
            continue
        try:
            date = line[15:32]
            y, mo, dfrac = date.split()
            day = float(dfrac)
            mjd0 = Time(f"{y}-{mo}-01", scale="utc").mjd
            mjd = mjd0 + day - 1.0
            h, m, s = line[32:44].split()
            ra = (int(h) + int(m) / 60 + float(s) / 3600) * 15.0
            d_txt = line[44:56]
            dd, dm, ds = d_txt[1:].split()
            dec = (int(dd) + int(dm) / 60 + float(ds) / 3600) * (-1 if d_txt[0] == "-" else 1)
        except (ValueError, IndexError):
            raise InputError(f"cannot parse date/RA/Dec in {line[15:56]!r}", path=path, row=ln) from None
        mag_txt = line[65:70]
        number, provid = line[0:5], line[5:12].strip()
        unpacked = unpack_number(number) if number.strip() else None
        desig = str(unpacked) if unpacked else (unpack_provisional(provid) or provid or number.strip())
        rows.append(dict(
            number=number.strip(), provid=provid, designation=desig, discovery=line[12] == "*",
            note1=line[13], note2=note2, mjd=mjd, ra=ra, dec=dec,
            mag=float(mag_txt) if mag_txt.strip() else np.nan, band=line[70].strip(),
            catalog=line[71], reference=line[72:77].strip(), obscode=line[77:80],
            time_decimals=_decimals(dfrac), ra_decimals=_decimals(s), dec_decimals=_decimals(ds),
            mag_decimals=_decimals(mag_txt), sat_units=0, sat_x=np.nan, sat_y=np.nan,
            sat_z=np.nan, sat_decimals=4, line=ln))
    names = ["number", "provid", "designation", "discovery", "note1", "note2", "mjd", "ra", "dec",
             "mag", "band", "catalog", "reference", "obscode", "time_decimals", "ra_decimals",
             "dec_decimals", "mag_decimals", "sat_units", "sat_x", "sat_y", "sat_z",
             "sat_decimals", "line"]
    t = Table(rows=[[r[k] for k in names] for r in rows] or None, names=names,
              dtype=[str, str, str, bool, str, str, float, float, float, float, str, str, str, str,
                     int, int, int, int, int, float, float, float, int, int])
    t["ra"].unit = t["dec"].unit = "deg"
    return t


def table_to_mpc80(t):
    """Format a table with the columns of :func:`parse_mpc80` (round trip)."""
    return format_mpc80(
        t["mjd"], t["ra"], t["dec"], number=np.asarray(t["number"], dtype=object),
        provid=np.asarray(t["provid"], dtype=object), mag=t["mag"], band=t["band"],
        obscode=t["obscode"], note1=t["note1"], note2=t["note2"], discovery=t["discovery"],
        catalog=t["catalog"], reference=t["reference"], time_decimals=t["time_decimals"],
        ra_decimals=t["ra_decimals"], dec_decimals=t["dec_decimals"],
        mag_decimals=t["mag_decimals"], sat_units=t["sat_units"], sat_x=t["sat_x"],
        sat_y=t["sat_y"], sat_z=t["sat_z"], sat_decimals=t["sat_decimals"])


# ----------------------------------------------------------------------------
# ADES PSV

#: the fields catdb writes, in the order of the ADES 2022 schema's optical record (submit.xsd OpticalType)
ADES_FIELDS = ("permID", "provID", "trkSub", "mode", "stn", "obsTime", "ra", "dec", "rmsRA",
               "rmsDec", "astCat", "mag", "rmsMag", "band", "photCat", "remarks")
#: ADES version written (IAU ADES 2022; :mod:`catdb.export.ades` validates against its schema)
ADES_VERSION = "2022"


def format_ades_psv(mjd, ra, dec, *, stn, perm_id="", prov_id="", trk_sub="", mode="CCD",
                    rms_ra=np.nan, rms_dec=np.nan, mag=np.nan, rms_mag=np.nan, band="",
                    ast_cat="", phot_cat="", remarks="", observatory_name=None,
                    submitter=None, observers=(), measurers=(), telescope=None):
    """Format observations as an ADES pipe-separated-value (PSV) document.

    Parameters
    ----------
    mjd : array_like, shape (N,)
        Mid-exposure MJD UTC; written as ``obsTime`` ISO 8601 with
        millisecond precision and ``Z``.
    ra, dec : array_like, shape (N,)
        Degrees, written with 7 decimals (0.36 mas, well below astrometric
        errors).
    stn : str
        MPC observatory code (``exposure.observatory_code``).
    perm_id, prov_id, trk_sub : str or array_like
        Permanent number, provisional designation, and the observer's own
        tracklet name (e.g. ``catdb`` track id); at least one is required by
        the MPC.
    mode : str
        ``CCD`` (default), ``CMO`` ...
    rms_ra, rms_dec : float or array_like
        Uncertainties in arcsec (``rmsRA`` includes cos dec).
    mag, rms_mag, band : float, float, str or array_like
        Photometry; NaN is left empty.
    ast_cat, phot_cat : str or array_like
        ADES catalogue names, e.g. ``Gaia2``, ``Gaia3``, ``PS1_DR2`` (``UNK``: unknown); ``astCat``
        is required by ADES for every optical observation.
    remarks : str or array_like
    observatory_name, submitter : str, optional
    observers, measurers : sequence of str
    telescope : dict, optional
        e.g. ``{'aperture': 1.1, 'design': 'reflector', 'detector': 'CCD'}``.

    Returns
    -------
    str
        The PSV document (header blocks, field-name line, one line per
        observation), newline-terminated.

    Raises
    ------
    InputError
        If ``stn`` is not a 3-character code or an observation has neither
        ``perm_id``, ``prov_id`` nor ``trk_sub``.
    """
    mjd = np.atleast_1d(np.asarray(mjd, dtype=float))
    n = mjd.size
    if not isinstance(stn, str) or len(stn) != 3:
        raise InputError(f"stn must be a 3-character MPC observatory code, got {stn!r}", keyword="stn")
    cols = {k: _bcast(n, v) for k, v in dict(permID=perm_id, provID=prov_id, trkSub=trk_sub,
                                              mode=mode, band=band, astCat=ast_cat,
                                              photCat=phot_cat, remarks=remarks).items()}
    for i in range(n):
        if not any(str(cols[k][i] or "").strip() for k in ("permID", "provID", "trkSub")):
            raise InputError("observation without permID, provID or trkSub", row=i + 1,
                             keyword="trkSub")
    t = Time(mjd, format="mjd", scale="utc")
    t.precision = 3
    cols["obsTime"] = np.array([s + "Z" for s in t.isot], dtype=object)
    cols["stn"] = np.full(n, stn, dtype=object)

    def num(v, fmt):
        v = _bcast(n, v, float)
        return np.array(["" if not np.isfinite(x) else format(x, fmt) for x in v], dtype=object)

    cols["ra"] = num(np.asarray(ra, dtype=float) % 360.0, ".7f")
    cols["dec"] = num(dec, "+.7f")
    cols["rmsRA"] = num(rms_ra, ".3f")
    cols["rmsDec"] = num(rms_dec, ".3f")
    cols["mag"] = num(mag, ".2f")
    cols["rmsMag"] = num(rms_mag, ".2f")
    fields = [f for f in ADES_FIELDS if f in ("permID", "provID", "trkSub", "mode", "stn", "obsTime",
                                               "ra", "dec")
              or any(str(x).strip() for x in cols[f])]
    width = {f: max([len(f)] + [len(str(x or "")) for x in cols[f]]) for f in fields}
    out = [f"# version={ADES_VERSION}", "# observatory", f"! mpcCode {stn}"]
    if observatory_name:
        out.append(f"! name {observatory_name}")
    if submitter:
        out += ["# submitter", f"! name {submitter}"]
    for block, names in (("observers", observers), ("measurers", measurers)):
        if names:
            out.append(f"# {block}")
            out += [f"! name {nm}" for nm in names]
    if telescope:
        out.append("# telescope")
        out += [f"! {k} {v}" for k, v in telescope.items()]
    out.append("|".join(f"{f:<{width[f]}}" for f in fields))
    for i in range(n):
        out.append("|".join(f"{str(cols[f][i] or ''):<{width[f]}}" for f in fields))
    return "\n".join(out) + "\n"


def parse_ades_psv(text):
    """Parse an ADES PSV document into (header dict, astropy Table of strings).

    Header blocks become ``{'observatory': {'mpcCode': '688'}, 'measurers':
    {'name': [...]}, ...}`` (repeated keys are collected in lists).
    """
    header, block, rows, names = {"version": None}, None, [], None
    for ln, line in enumerate(text.splitlines(), 1):
        if line.startswith("# version="):
            header["version"] = line.split("=", 1)[1].strip()
        elif line.startswith("# "):
            block = line[2:].strip()
            header.setdefault(block, {})
        elif line.startswith("!"):
            key, _, val = line[1:].strip().partition(" ")
            d = header.setdefault(block, {})
            if key in d:
                d[key] = (d[key] if isinstance(d[key], list) else [d[key]]) + [val]
            else:
                d[key] = val
        elif line.strip():
            parts = [p.strip() for p in line.split("|")]
            if names is None:
                names = parts
            elif len(parts) != len(names):
                raise InputError(f"{len(parts)} fields, header has {len(names)}", row=ln)
            else:
                rows.append(parts)
    return header, Table(rows=rows or None, names=names, dtype=[str] * len(names))
