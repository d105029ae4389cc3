"""Run SCAMP (the Debian ``scamp`` binary) to plate-solve one catalogue against a local reference catalogue.

:func:`solve_catalog` is the SCAMP step of stage ``solve`` (as the Photometry Pipeline's
``pp_register`` runs it: Mommert 2017, A&C 18, 47, section 3.2): a SExtractor FITS_LDAC
catalogue, an initial WCS (``.ahead``, SCAMP guide "Input headers": its cards override the
catalogue's image header), and a reference catalogue written from catdb's ``refcat_source``
as a FITS_LDAC file SCAMP reads with ``-ASTREF_CATALOG FILE`` (SCAMP guide, "Astrometric
reference catalogs": ``ASTREFCENT_KEYS`` (deg), ``ASTREFERR_KEYS`` (deg), ``ASTREFMAG_KEY``,
``ASTREFOBSDATE_KEY`` (yr)).  SCAMP pattern-matches the detections with the reference stars
(``MATCH Y``: position, scale and position-angle search within ``POSITION_MAXERR``,
``PIXSCALE_MAXERR``, ``POSANGLE_MAXERR``; ``MATCH_FLIPPED`` for mirrored images), fits a TAN +
TPV polynomial (``DISTORT_DEGREES``) and writes the ``.head`` and an XML report
(``Fields``: ``NDeg_Reference`` matched reference stars, ``AstromSigma_Reference`` (arcsec),
``AS_Contrast``/``XY_Contrast``).  SCAMP writes a ``.head`` even when the match failed, so
the solution is accepted only with enough matched stars, a small RMS and a clear contrast.

Reference: SCAMP user's guide (Bertin, https://scamp.readthedocs.io), Bertin 2006, ASP Conf.
Ser. 351, 112.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits

from ..algorithms.astrometry import strip_wcs
from ..errors import CatdbError, InputError
from .headers import header_from_cards
from .scamp import read_scamp_heads, read_scamp_xml
from .sextractor import read_catalogs

__all__ = ["ScampError", "ScampSolution", "scamp_binary", "write_ldac", "write_reference_ldac",
           "write_scamp_input", "solve_catalog"]


class ScampError(CatdbError):
    """SCAMP failed to run; the message holds its command line and output."""


def scamp_binary() -> str:
    """Path of SCAMP: ``$CATDB_SCAMP``, else ``scamp`` on ``PATH``.

    Raises
    ------
    ScampError
        Not found.
    """
    env = os.environ.get("CATDB_SCAMP")
    for cand in ([env] if env else []) + ["scamp"]:
        found = shutil.which(cand)
        if found:
            return found
    raise ScampError("SCAMP not found: install the 'scamp' package (apt-get install scamp) or set CATDB_SCAMP")


def write_ldac(path, header: fits.Header, table) -> Path:
    """A FITS_LDAC file: ``LDAC_IMHEAD`` (the header as one string of 80-char cards) + ``LDAC_OBJECTS``.

    Parameters
    ----------
    path : path
    header : astropy.io.fits.Header
    table : FITS_rec or ndarray
        The objects.
    """
    cards = ("".join(str(c) for c in header.cards) + "END".ljust(80)).encode("ascii", "replace")
    n = len(cards) // 80
    # one row holding the cards, TDIM (80, ncards), as SExtractor/LDACTools write it; SCAMP 2.10 crashes
    # (segmentation fault) when the END card is padded with NULs, which astropy writes in place of the
    # trailing blanks of a string column: the bytes are put back as they are after writing
    imhead = fits.BinTableHDU.from_columns(
        [fits.Column(name="Field Header Card", format=f"{len(cards)}A",
                     array=np.frombuffer(cards, dtype=f"S{len(cards)}"))], name="LDAC_IMHEAD")
    imhead.header["TDIM1"] = f"(80, {n})"
    objects = fits.BinTableHDU(table, name="LDAC_OBJECTS")
    fits.HDUList([fits.PrimaryHDU(), imhead, objects]).writeto(path, overwrite=True)
    with open(path, "r+b") as f:
        raw = f.read()
        start = raw.find(cards.rstrip(b" "))
        if start < 0:  # pragma: no cover - astropy wrote the cards elsewhere
            raise ScampError(f"{path}: LDAC_IMHEAD cards not found after writing")
        f.seek(start)
        f.write(cards)
    return Path(path)


def write_reference_ldac(path, ra, dec, err_arcsec, mag, magerr, epoch_yr) -> Path:
    """SCAMP reference catalogue (FITS_LDAC) of stars, all arrays of shape (n,).

    Columns ``XWIN_WORLD``, ``YWIN_WORLD`` (deg), ``ERRAWIN_WORLD``, ``ERRBWIN_WORLD`` (deg; the
    position error, both axes), ``MAG``, ``MAGERR`` (mag; NaN -> 99 / 1), ``OBSDATE`` (yr), ``FLAGS``.
    """
    n = len(ra)
    err = np.asarray(err_arcsec, float) / 3600.0
    mag = np.asarray(mag, float)
    magerr = np.asarray(magerr, float)
    cols = [fits.Column(name="XWIN_WORLD", format="1D", unit="deg", array=np.asarray(ra, float)),
            fits.Column(name="YWIN_WORLD", format="1D", unit="deg", array=np.asarray(dec, float)),
            fits.Column(name="ERRAWIN_WORLD", format="1E", unit="deg", array=err),
            fits.Column(name="ERRBWIN_WORLD", format="1E", unit="deg", array=err),
            fits.Column(name="MAG", format="1E", unit="mag", array=np.where(np.isfinite(mag), mag, 99.0)),
            fits.Column(name="MAGERR", format="1E", unit="mag", array=np.where(np.isfinite(magerr), magerr, 1.0)),
            fits.Column(name="OBSDATE", format="1D", unit="yr", array=np.asarray(epoch_yr, float)),
            fits.Column(name="FLAGS", format="1I", array=np.zeros(n, dtype=np.int16))]
    hdr = fits.Header()
    hdr["COMMENT"] = "astrometric reference stars written by catdb (refcat_source)"
    return write_ldac(path, hdr, fits.BinTableHDU.from_columns(cols).data)


def write_scamp_input(catalog_path, out_path, naxis: tuple[int, int] | None = None) -> Path:
    """Copy a SExtractor FITS_LDAC catalogue for SCAMP with every WCS card of its image header removed.

    The initial WCS then comes from the ``.ahead`` alone (no stale TPV/SIP term of the old
    header survives under it).

    Parameters
    ----------
    catalog_path : path
        FITS_LDAC (``LDAC_IMHEAD`` + ``LDAC_OBJECTS``).
    out_path : path
    naxis : (int, int), optional
        Image size to set (SCAMP needs ``NAXIS1``/``NAXIS2``).

    Raises
    ------
    catdb.errors.InputError
        Not a FITS_LDAC catalogue.
    """
    cats = read_catalogs(catalog_path)
    if len(cats) != 1 or cats[0].format != "FITS_LDAC":
        raise InputError("SCAMP needs a single-extension FITS_LDAC catalogue (LDAC_IMHEAD + LDAC_OBJECTS)",
                         path=catalog_path)
    hdr = strip_wcs(cats[0].header)
    if naxis is not None:
        hdr["NAXIS1"], hdr["NAXIS2"] = int(naxis[0]), int(naxis[1])
    with fits.open(catalog_path) as hl:
        data = hl["LDAC_OBJECTS"].data.copy()
    return write_ldac(out_path, hdr, data)


@dataclass
class ScampSolution:
    """What SCAMP made of one catalogue.

    Attributes
    ----------
    header : astropy.io.fits.Header or None
        The ``.head`` (TAN + TPV); None when SCAMP did not write one.
    ok : bool
        Accepted (``n_ref >= min_stars``, ``rms <= max_rms``, contrasts >= ``min_contrast``).
    reason : str
        Why not accepted (empty when ok).
    n_ref : int
        Detections matched to reference stars (XML ``NDeg_Reference``).
    rms : float
        RMS about the reference, both axes combined (hypot of ``AstromSigma_Reference``), arcsec; NaN
        without a match.
    as_contrast, xy_contrast : float
        Pattern-matching contrasts (XML ``AS_Contrast``, ``XY_Contrast``).
    head_path, xml_path : Path
    command : list of str
    """

    header: fits.Header | None
    ok: bool
    reason: str
    n_ref: int
    rms: float
    as_contrast: float
    xy_contrast: float
    head_path: Path
    xml_path: Path
    command: list = field(default_factory=list)


def solve_catalog(catalog_path, reference_ldac, initial_header: fits.Header, workdir, *,
                  naxis: tuple[int, int], position_maxerr: float = 10.0, posangle_maxerr: float = 5.0,
                  pixscale_maxerr: float = 1.2, match_flipped: bool = False, distort_degrees: int = 1,
                  sn_thresholds=(5.0, 50.0), min_stars: int = 6, max_rms: float = 1.0,
                  min_contrast: float = 2.0, timeout: float = 180.0) -> ScampSolution:
    """Plate-solve one SExtractor catalogue with SCAMP against a local reference catalogue.

    Parameters
    ----------
    catalog_path : path
        FITS_LDAC with ``XWIN_IMAGE``, ``YWIN_IMAGE``, ``ERRAWIN_IMAGE``, ``ERRBWIN_IMAGE``,
        ``ERRTHETAWIN_IMAGE``, ``FLUX_AUTO``, ``FLUXERR_AUTO``, ``FLAGS`` (catdb's ``catdb.param``).
    reference_ldac : path
        From :func:`write_reference_ldac`.
    initial_header : astropy.io.fits.Header
        Initial WCS (written as the ``.ahead``), in the catalogue's pixel frame.
    workdir : path
        Created; SCAMP's files go there (``<stem>.cat``, ``.ahead``, ``.head``, ``scamp.xml``).
    naxis : (int, int)
        Image size, pixels.
    position_maxerr : float
        arcmin: how far the initial WCS may be off (SCAMP ``POSITION_MAXERR``).
    posangle_maxerr : float
        deg (``POSANGLE_MAXERR``; 180 when the rotation is unknown).
    pixscale_maxerr : float
        Scale factor (``PIXSCALE_MAXERR``).
    match_flipped : bool
        Also try mirrored axes (``MATCH_FLIPPED``).
    distort_degrees : int
        TPV polynomial degree (1: linear; 3 needs many stars).
    sn_thresholds : (float, float)
        S/N of the detections used / of the high-S/N subset (``SN_THRESHOLDS``).
    min_stars, max_rms, min_contrast :
        Acceptance: matched reference stars, arcsec, pattern-matching contrast.
    timeout : float
        Seconds (SCAMP 2.10 can search for minutes when no reference star is in the field).

    Returns
    -------
    ScampSolution

    Raises
    ------
    ScampError
        SCAMP missing, timed out or exited non-zero.
    catdb.errors.InputError
        Catalogue not FITS_LDAC.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    stem = "solve"
    cat = write_scamp_input(catalog_path, workdir / f"{stem}.cat", naxis=naxis)
    ahead = "\n".join(str(c) for c in initial_header.cards) + "\n" + "END".ljust(80) + "\n"
    (workdir / f"{stem}.ahead").write_text(ahead)
    head, xml = workdir / f"{stem}.head", workdir / "scamp.xml"
    for p in (head, xml):
        p.unlink(missing_ok=True)
    cmd = [scamp_binary(), cat.name,
           "-ASTREF_CATALOG", "FILE", "-ASTREFCAT_NAME", str(Path(reference_ldac).resolve()),
           "-ASTREFCENT_KEYS", "XWIN_WORLD,YWIN_WORLD", "-ASTREFERR_KEYS", "ERRAWIN_WORLD,ERRBWIN_WORLD",
           "-ASTREFMAG_KEY", "MAG", "-ASTREFMAGERR_KEY", "MAGERR", "-ASTREFOBSDATE_KEY", "OBSDATE",
           "-MATCH", "Y", "-MATCH_FLIPPED", "Y" if match_flipped else "N",
           "-POSITION_MAXERR", repr(float(position_maxerr)), "-POSANGLE_MAXERR", repr(float(posangle_maxerr)),
           "-PIXSCALE_MAXERR", repr(float(pixscale_maxerr)),
           "-SOLVE_ASTROM", "Y", "-SOLVE_PHOTOM", "N", "-DISTORT_DEGREES", str(int(distort_degrees)),
           "-STABILITY_TYPE", "EXPOSURE", "-MOSAIC_TYPE", "UNCHANGED",
           "-SN_THRESHOLDS", f"{float(sn_thresholds[0])!r},{float(sn_thresholds[1])!r}",
           "-AHEADER_SUFFIX", ".ahead", "-AHEADER_GLOBAL", "/nonexistent/catdb.ahead", "-HEADER_SUFFIX", ".head",
           "-CHECKPLOT_DEV", "NULL", "-CHECKPLOT_TYPE", "NONE",
           "-WRITE_XML", "Y", "-XML_NAME", xml.name, "-FULLOUTCAT_TYPE", "NONE", "-MERGEDOUTCAT_TYPE", "NONE",
           "-NTHREADS", "1", "-VERBOSE_TYPE", "NORMAL"]
    try:
        res = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise ScampError(f"SCAMP timed out after {timeout} s on {catalog_path}: {' '.join(cmd)}") from exc
    (workdir / "scamp.log").write_text((res.stdout or "") + (res.stderr or ""))
    if res.returncode != 0:
        tail = "\n".join(((res.stderr or "") + (res.stdout or "")).strip().splitlines()[-15:])
        raise ScampError(f"SCAMP failed on {catalog_path} (exit {res.returncode}).\ncommand: {' '.join(cmd)}\n"
                         f"output:\n{tail}")
    if not head.is_file() or not xml.is_file():
        return ScampSolution(None, False, "SCAMP wrote no .head / XML", 0, float("nan"), float("nan"),
                             float("nan"), head, xml, cmd)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hdr = read_scamp_heads(head)[0]
        report = read_scamp_xml(xml)
    f = report.fields
    row = f[0]

    def scal(name, default=np.nan):
        if name not in f.colnames:
            return default
        v = np.asarray(row[name], dtype=float).ravel()
        return float(v[0]) if v.size else default

    n_ref = int(scal("NDeg_Reference", 0))
    s = np.asarray(row["AstromSigma_Reference"], dtype=float).ravel() if "AstromSigma_Reference" in f.colnames \
        else np.array([np.nan, np.nan])
    rms = float(np.hypot(s[0], s[1])) if n_ref > 0 and s.size >= 2 else float("nan")
    asc, xyc = scal("AS_Contrast"), scal("XY_Contrast")
    reasons = []
    if n_ref < min_stars:
        reasons.append(f"{n_ref} reference stars matched ({min_stars} needed)")
    if not (np.isfinite(rms) and rms <= max_rms):
        reasons.append(f"RMS about the reference {rms:.3f}\" (at most {max_rms}\" accepted)")
    if not (np.isfinite(asc) and asc >= min_contrast and np.isfinite(xyc) and xyc >= min_contrast):
        reasons.append(f"pattern-matching contrast AS {asc:.2f} / XY {xyc:.2f} (at least {min_contrast} needed)")
    hdr = header_from_cards("\n".join(str(c) for c in hdr.cards))
    return ScampSolution(hdr, not reasons, "; ".join(reasons), n_ref, rms, asc, xyc, head, xml, cmd)
