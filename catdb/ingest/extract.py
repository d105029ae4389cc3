"""Run SExtractor (the Debian ``source-extractor`` binary) on an image.

:func:`extract` writes a catalogue (FITS_LDAC by default, the format SCAMP reads and
catdb's SExtractor ingest reads) from any FITS image catdb handles, including
tile-compressed ``.fits.fz`` files and headers whose WCS cards are quoted strings:
the image HDU is always copied to a plain temporary FITS file with
:func:`catdb.wcsutil.clean_wcs_header` applied, so that SExtractor's ``ALPHA_J2000`` /
``DELTA_J2000`` (and the ``LDAC_IMHEAD`` header that goes to the database) carry the
real WCS.  NaN pixels (e.g. vignetted corners blanked by
:func:`catdb.algorithms.reduce.reduce_science`) are set to 0 and given weight 0 in a
``MAP_WEIGHT`` image.

Configuration precedence (lowest to highest): ``sex_defaults/catdb.sex`` <- values from
the image header (``GAIN``, ``SATUR_LEVEL``, ``PIXEL_SCALE``, ``SEEING_FWHM``; an extension's header
completed by the primary's non-WCS cards, as ``catdb ingest image`` reads it) <- ``config=``
overrides.  Reference: SExtractor manual (Bertin, "SExtractor Documentation", release 2.24+,
https://sextractor.readthedocs.io), sections "Configuration file" and "Weighting".
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs.utils import proj_plane_pixel_scales

from ..algorithms.astrometry import has_celestial_wcs, merge_wcs
from ..algorithms.imagehdu import first_image_hdu, is_2d_image
from ..errors import CatdbError, InputError
from ..wcsutil import clean_wcs_header, wcs_from_header
from .headers import inherit_header

__all__ = ["SExtractorError", "sextractor_binary", "default_config_dir", "header_config",
           "extract"]

#: directory holding catdb.sex, catdb.param, default.conv, default.nnw
SEX_DEFAULTS = Path(__file__).with_name("sex_defaults")
_SYSTEM_SHARE = Path("/usr/share/source-extractor")

#: header keywords tried, in order, for each SExtractor setting
GAIN_KEYS = ("GAIN", "EGAIN", "CCDGAIN", "AGAIN_01")
SATUR_KEYS = ("SATURATE", "SATLEVEL", "SATURATION")
SEEING_KEYS = ("SEEING",)


class SExtractorError(CatdbError):
    """SExtractor failed; the message holds its command line and stderr."""


def sextractor_binary() -> str:
    """Path of the SExtractor executable.

    Looks at ``$CATDB_SEXTRACTOR``, then ``source-extractor`` (Debian/Ubuntu name), then
    ``sex`` on ``PATH``.

    Raises
    ------
    SExtractorError
        None found.
    """
    env = os.environ.get("CATDB_SEXTRACTOR")
    for cand in ([env] if env else []) + ["source-extractor", "sex"]:
        found = shutil.which(cand)
        if found:
            return found
    raise SExtractorError("SExtractor not found: install the 'source-extractor' package or set "
                          "CATDB_SEXTRACTOR to the binary")


def default_config_dir() -> Path:
    """Directory of catdb's shipped SExtractor files (``catdb.sex``, ``catdb.param``, ...)."""
    return SEX_DEFAULTS


def _support_file(name: str) -> Path:
    """SExtractor's own support file (filter kernel, star/galaxy network) from its installation.

    They are part of SExtractor (GPL-3.0) and ship with Debian's ``source-extractor``;
    catdb (BSD) does not redistribute them.
    """
    for cand in (_SYSTEM_SHARE / name, SEX_DEFAULTS / name):
        if cand.is_file():
            return cand
    raise SExtractorError(f"SExtractor support file {name} not found in {_SYSTEM_SHARE}: install Debian's "
                          f"source-extractor (apt-get install source-extractor)")


def _first(header, keys):
    for k in keys:
        v = header.get(k)
        if v is None or isinstance(v, bool):
            continue
        try:
            return k, float(str(v).strip())
        except ValueError:
            continue
    return None, None


def header_config(header: fits.Header, path=None) -> dict:
    """SExtractor settings derived from an image header.

    Parameters
    ----------
    header : astropy.io.fits.Header
        Image header (quoted WCS strings allowed).
    path : str, optional
        For messages.

    Returns
    -------
    dict
        Any of ``GAIN`` (e-/ADU, from ``GAIN``/``EGAIN``/``CCDGAIN``/``AGAIN_01``),
        ``SATUR_LEVEL`` (ADU, from ``SATURATE``...), ``PIXEL_SCALE`` (arcsec/pixel, from the
        WCS, else ``SECPIXX`` or ``PIXSCAL`` x binning), ``SEEING_FWHM`` (arcsec, from
        ``SEEING``) that the header provides.
    """
    cfg = {}
    k, gain = _first(header, GAIN_KEYS)
    if gain is not None and gain > 0:
        cfg["GAIN"] = gain
    k, sat = _first(header, SATUR_KEYS)
    if sat is not None and sat > 0:
        cfg["SATUR_LEVEL"] = sat
    k, see = _first(header, SEEING_KEYS)
    if see is not None and see > 0:
        cfg["SEEING_FWHM"] = see
    try:
        w = wcs_from_header(header, path=path)
        cfg["PIXEL_SCALE"] = float(np.mean(proj_plane_pixel_scales(w)) * 3600.0)
    except InputError:
        k, sc = _first(header, ("SECPIXX", "PIXSCALE", "SECPIX"))
        if sc is None:
            k, unb = _first(header, ("PIXSCAL",))
            binning = str(header.get("CCDSUM", "1 1")).split()
            if unb is not None and binning:
                sc = unb * float(binning[0])
        if sc is not None:
            cfg["PIXEL_SCALE"] = sc
    return cfg


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "Y" if v else "N"
    if isinstance(v, (list, tuple, np.ndarray)):
        return ",".join(_fmt(x) for x in v)
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    return str(v)


def _image_hdu(hdul, hdu, path):
    if hdu is not None:
        if hdu >= len(hdul):
            raise InputError(f"HDU {hdu} requested, file has {len(hdul)} HDUs", path=path)
        h = hdul[hdu]
        if not is_2d_image(h):
            raise InputError(f"HDU {hdu} holds no 2-D image", path=path)
        return h
    return first_image_hdu(hdul, path)


def _write_plain_copy(image_path, hdu, workdir: Path, wcs_header=None):
    """Plain float32 primary-HDU copy with cleaned WCS; returns (image, weight or None, header)."""
    with fits.open(image_path) as hdul:
        h = _image_hdu(hdul, hdu, image_path)
        data = np.asarray(h.data, dtype=np.float32)
        header = h.header
        if h is not hdul[0]:  # an extension: the primary's GAIN, SATURATE, ... complete it (as at ingest), not its WCS
            header = inherit_header(hdul[0].header, header, wcs=False)
        header = clean_wcs_header(header, path=image_path)
    if wcs_header is not None:
        header = merge_wcs(header, clean_wcs_header(wcs_header, path=image_path))
    for k in ("XTENSION", "PCOUNT", "GCOUNT", "BZERO", "BSCALE", "BLANK", "EXTNAME", "SIMPLE",
              "EXTEND"):
        header.remove(k, ignore_missing=True, remove_all=True)
    bad = ~np.isfinite(data)
    weight = None
    if bad.any():
        if not data.flags.writeable:
            data = data.copy()
        data[bad] = 0.0
        weight = workdir / "weight.fits"
        # 0/1 weights as 8-bit integers: SExtractor converts any BITPIX (identical catalogue, a
        # quarter of the float32 file to write and read)
        fits.PrimaryHDU((~bad).astype(np.uint8)).writeto(weight, overwrite=True)
    img = workdir / "image.fits"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        fits.PrimaryHDU(data, header=header).writeto(img, overwrite=True, output_verify="silentfix")
    return img, weight, header


def _param_file(workdir: Path, naper: int, param_file=None) -> Path:
    text = Path(param_file or SEX_DEFAULTS / "catdb.param").read_text()
    text = re.sub(r"^(\w+_APER)\(\d+\)", lambda m: f"{m.group(1)}({naper})", text, flags=re.M)
    out = workdir / "catdb.param"
    out.write_text(text)
    return out


def _run(cmd, workdir, image_path):
    try:
        res = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=600)
    except subprocess.TimeoutExpired as exc:
        raise SExtractorError(f"SExtractor timed out on {image_path}: {' '.join(cmd)}") from exc
    err = (res.stderr or "") + (res.stdout or "")
    if res.returncode != 0 or "*ERROR*" in err.upper().replace(" ", ""):
        tail = "\n".join(err.strip().splitlines()[-15:])
        raise SExtractorError(f"SExtractor failed on {image_path} (exit {res.returncode}).\n"
                              f"command: {' '.join(cmd)}\nstderr:\n{tail}")
    return res


def _estimate_seeing(sex, img, workdir, base_args, pixscale) -> float | None:
    """First quick pass: median FWHM of clean, round, high-S/N point sources (arcsec)."""
    par = workdir / "seeing.param"
    par.write_text("FWHM_IMAGE\nFLAGS\nELONGATION\nFLUX_AUTO\nFLUXERR_AUTO\n")
    cat = workdir / "seeing.cat"
    cmd = [sex, str(img), *base_args, "-CATALOG_NAME", str(cat), "-CATALOG_TYPE", "FITS_1.0",
           "-PARAMETERS_NAME", str(par), "-DETECT_THRESH", "5", "-ANALYSIS_THRESH", "5"]
    _run(cmd, workdir, img)
    with fits.open(cat) as h:
        t = h[1].data
        ok = ((t["FLAGS"] == 0) & (t["ELONGATION"] < 1.3) & (t["FWHM_IMAGE"] > 0.5)
              & (t["FLUX_AUTO"] > 20 * t["FLUXERR_AUTO"]))
        if ok.sum() < 5:
            return None
        return float(np.median(t["FWHM_IMAGE"][ok]) * pixscale)


def extract(image_path, out_catalog, hdu: int | None = None, config: dict | None = None,
            catalog_type: str = "FITS_LDAC", *, param_file=None, config_file=None,
            estimate_seeing: bool = True, keep_temp: bool = False, wcs_header: fits.Header | None = None,
            require_wcs: bool = True, info: dict | None = None) -> Path:
    """Run SExtractor on one image HDU and write its catalogue.

    Parameters
    ----------
    image_path : str or os.PathLike
        FITS image; tile-compressed ``.fits.fz`` and string-valued WCS cards are fine.
    out_catalog : str or os.PathLike
        Output catalogue path (overwritten).
    hdu : int, optional
        0-based HDU index of the image; default the first HDU with a 2-D image
        (HDU 1 of a ``.fits.fz`` file).
    config : dict, optional
        SExtractor keyword overrides, e.g. ``{"DETECT_THRESH": 3, "PHOT_APERTURES":
        [6, 10], "MAG_ZEROPOINT": 25.1}``; lists are comma-joined, bools become Y/N.
        ``PHOT_APERTURES`` are *diameters* in pixels (SExtractor convention); the
        ``*_APER(n)`` vectors of the parameter file follow their number.
    catalog_type : str
        ``FITS_LDAC`` (default; SCAMP input), ``FITS_1.0``, ``ASCII_HEAD``, ...
    param_file : path, optional
        Alternative parameter (output column) file; default ``sex_defaults/catdb.param``.
    config_file : path, optional
        Alternative ``.sex`` file; default ``sex_defaults/catdb.sex``.
    estimate_seeing : bool
        If neither ``config`` nor the header (``SEEING``) gives ``SEEING_FWHM``, run a
        quick first pass (DETECT_THRESH 5) and use the median FWHM of unflagged, round
        (elongation < 1.3), S/N > 20 sources; CLASS_STAR depends on it (manual,
        "CLASS_STAR").  Otherwise 2.0 arcsec from ``catdb.sex``.
    keep_temp : bool
        Keep the temporary work directory (its path is in the SExtractorError message
        on failure) for debugging.
    wcs_header : astropy.io.fits.Header, optional
        The WCS to run with (e.g. the exposure's stored ``exposure.wcs_header``, which stage
        ``solve`` may have replaced): it replaces the image's own WCS cards (see
        :func:`catdb.algorithms.astrometry.merge_wcs`), so ``ALPHA_J2000``/``DELTA_J2000`` come from it.
    require_wcs : bool
        True (default): refuse an image (with ``wcs_header`` merged) without a celestial WCS,
        as SExtractor would write meaningless ``ALPHA``/``DELTA``.  False: pixel positions only
        (stage ``solve`` extracts to plate-solve).
    info : dict, optional
        Filled in place (for callers that need what the run used without reading the image
        again): ``header`` (the image header SExtractor ran with: cleaned WCS cards, the
        ``wcs_header`` merged), ``seeing_fwhm`` (arcsec given to SExtractor: from ``config``, the
        header, the first pass, or None for ``catdb.sex``'s default, when CLASS_STAR is computed for a
        seeing the image may not have), ``seeing_source`` (where it came from, or why it is unknown),
        ``weight_map`` (True when
        NaN pixels got weight 0), ``seconds`` (wall time of ``copy``, ``seeing`` and ``sextractor``).

    Returns
    -------
    pathlib.Path
        ``out_catalog``.  With FITS_LDAC: HDU 1 ``LDAC_IMHEAD`` (full image header with
        numeric WCS cards), HDU 2 ``LDAC_OBJECTS`` with the columns of ``catdb.param``.

    Raises
    ------
    catdb.errors.InputError
        Missing file or no 2-D image in it; no celestial WCS with ``require_wcs``.
    SExtractorError
        Binary missing, non-zero exit or an ``*ERROR*`` message; the message includes the
        command line and SExtractor's stderr.
    """
    image_path = Path(image_path)
    if not image_path.is_file():
        raise InputError("image file not found", path=image_path)
    out_catalog = Path(out_catalog).resolve()
    out_catalog.parent.mkdir(parents=True, exist_ok=True)
    sex = sextractor_binary()
    user = {str(k).upper(): v for k, v in (config or {}).items()}
    tmp = tempfile.mkdtemp(prefix="catdb_sex_")
    workdir = Path(tmp)
    info = {} if info is None else info
    seconds = info.setdefault("seconds", {})
    try:
        t0 = time.perf_counter()
        img, weight, header = _write_plain_copy(image_path, hdu, workdir, wcs_header)
        seconds["copy"] = time.perf_counter() - t0
        info.update(header=header, weight_map=weight is not None, seeing_fwhm=None)
        if require_wcs:
            if not has_celestial_wcs(header):
                raise InputError("no celestial WCS (CTYPE1/CTYPE2): SExtractor's ALPHA/DELTA would be "
                                 "invented; plate-solve the exposure first (catdb stage solve), or extract "
                                 "pixel positions only (require_wcs=False)", path=image_path, keyword="CTYPE1")
        cfg = header_config(header, path=image_path)
        base = {"FILTER_NAME": str(_support_file("default.conv")),
                "STARNNW_NAME": str(_support_file("default.nnw"))}
        if weight is not None and "WEIGHT_IMAGE" not in user:
            base.update(WEIGHT_TYPE="MAP_WEIGHT", WEIGHT_IMAGE=str(weight))
        merged = {**base, **cfg, **user}
        apers = merged.get("PHOT_APERTURES")
        if apers is None:
            m = re.search(r"^PHOT_APERTURES\s+([^#\n]+)",
                          Path(config_file or SEX_DEFAULTS / "catdb.sex").read_text(), re.M)
            apers = m.group(1).strip() if m else "5"
        naper = len(apers) if isinstance(apers, (list, tuple, np.ndarray)) \
            else len([a for a in str(apers).split(",") if a.strip()])
        params = _param_file(workdir, naper, param_file)
        args = ["-c", str(config_file or SEX_DEFAULTS / "catdb.sex")]
        for k, v in merged.items():
            if k in ("CATALOG_NAME", "CATALOG_TYPE", "PARAMETERS_NAME"):
                continue
            args += [f"-{k}", _fmt(v)]
        if "SEEING_FWHM" in merged:
            info["seeing_fwhm"] = float(merged["SEEING_FWHM"])
            info["seeing_source"] = "config" if "SEEING_FWHM" in user else "header SEEING"
        elif estimate_seeing and "PIXEL_SCALE" in merged:
            t0 = time.perf_counter()
            see = _estimate_seeing(sex, img, workdir, args, float(merged["PIXEL_SCALE"]))
            seconds["seeing"] = time.perf_counter() - t0
            if see is not None:
                args += ["-SEEING_FWHM", _fmt(see)]
                info["seeing_fwhm"] = see
                info["seeing_source"] = "first pass"
            else:
                info["seeing_source"] = ("unknown: fewer than 5 clean point sources with S/N > 20 in the "
                                         "first pass")
        else:
            info["seeing_source"] = ("unknown: no pixel scale (no WCS, no SECPIXX/PIXSCALE/PIXSCAL)"
                                     if estimate_seeing else "unknown: estimate_seeing=False")
        cmd = [sex, str(img), *args, "-CATALOG_NAME", str(out_catalog),
               "-CATALOG_TYPE", str(user.get("CATALOG_TYPE", catalog_type)),
               "-PARAMETERS_NAME", str(user.get("PARAMETERS_NAME", params))]
        t0 = time.perf_counter()
        _run(cmd, workdir, image_path)
        seconds["sextractor"] = time.perf_counter() - t0
        if not out_catalog.is_file():
            raise SExtractorError(f"SExtractor wrote no catalogue for {image_path}: {' '.join(cmd)}")
        return out_catalog
    finally:
        if not keep_temp:
            shutil.rmtree(tmp, ignore_errors=True)
