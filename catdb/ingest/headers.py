"""Exposure metadata from observatory FITS headers, driven by TOML keyword maps.

Every observatory spells the same facts differently (``EGAIN`` vs ``GAIN`` vs
``AGAIN_01``; ``DATE-OBS`` with or without the time; ``ALTITUDE`` meaning the
site height at Lowell and the pointing altitude at LCO).  A *keymap* (one TOML
file per instrument in ``catdb/ingest/keymaps``, format documented at the top
of ``generic.toml``) lists, for each column of the ``exposure`` table, the
header keywords to try in order, the rules to get the mid-exposure time, the
image-type and band vocabularies, constants, and auto-detection rules.

Wiring (for the ingest stage)::

    hdr = read_header(path)                     # or SExCatalog.header
    km = load_keymap(detect_instrument(hdr))
    row = exposure_metadata(hdr, km, path=path, hdu=1)   # dict keyed by exposure columns
"""
from __future__ import annotations

import copy
import datetime
import fnmatch
import hashlib
import importlib.resources
import os
import re
import shutil
import tomllib
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import Angle, EarthLocation, SkyCoord
from astropy.io import fits
from astropy.time import Time
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs.utils import proj_plane_pixel_scales

from ..algorithms.astrometry import has_celestial_wcs
from ..errors import InputError
from ..imagetypes import normalise_image_type
from ..wcsutil import clean_wcs_header, wcs_from_header

__all__ = [
    "EXPOSURE_COLUMNS", "read_header", "read_text_header", "header_from_cards", "inherit_header", "inherits_wcs",
    "load_keymap", "keymap_names", "detect_instrument", "write_default_keymaps",
    "exposure_metadata", "mid_exposure_mjd", "normalise_band", "footprint", "wcs_cards", "observing_night",
    "gmst_deg", "check_obscode", "header_time_scale",
]

#: Columns of the ``exposure`` table filled by :func:`exposure_metadata` (the lead's schema).
EXPOSURE_COLUMNS = (
    "path", "sha256", "hdu", "instrument", "telescope", "observatory_code", "object", "filter",
    "band", "image_type", "mjd_mid", "exptime", "airmass", "fwhm", "gain", "readnoise",
    "saturation", "pixscale", "naxis1", "naxis2", "binning", "ra_center", "dec_center", "radius",
    "corners", "wcs_header", "header", "site_lat", "site_lon", "site_height", "date_obs",
    "night", "wcs_status", "wcs_source", "pointing_ra", "pointing_dec", "ccd_temp",
)
_KEYWORD_COLUMNS = (
    "instrument", "telescope", "observatory_code", "object", "filter", "image_type", "exptime",
    "airmass", "fwhm", "gain", "readnoise", "saturation", "pixscale", "naxis1", "naxis2",
    "binning", "site_lat", "site_lon", "site_height", "date_obs", "pointing_ra", "pointing_dec",
    "ccd_temp",
)
_FLOAT_COLUMNS = {"exptime", "airmass", "fwhm", "gain", "readnoise", "saturation", "pixscale",
                  "site_lat", "site_lon", "site_height", "ccd_temp"}
_INT_COLUMNS = {"naxis1", "naxis2"}
_TEXT_COLUMNS = {"instrument", "telescope", "observatory_code", "object", "filter", "image_type",
                 "binning", "date_obs"}
_KEYMAP_DIR = "keymaps"
_WCS_KEY = re.compile(
    r"^(WCSAXES|CTYPE\d|CUNIT\d|CRVAL\d|CRPIX\d|CDELT\d|CROTA\d|CD\d_\d|PC\d_\d|PV\d_\d+|"
    r"RADESYS|RADECSYS|EQUINOX|LONPOLE|LATPOLE|MJDREF|A_ORDER|B_ORDER|AP_ORDER|BP_ORDER|"
    r"A_\d+_\d+|B_\d+_\d+|AP_\d+_\d+|BP_\d+_\d+|WAT\d_\d+|WCSDIM|LTV\d|LTM\d_\d)$")
#: Band names recognised as they are (case-sensitive: 'R' Johnson-Cousins, 'r' SDSS).
_KNOWN_BANDS = {"U", "B", "V", "R", "I", "u", "g", "r", "i", "z", "y", "Y", "J", "H", "K", "Ks",
                "w", "VR", "G", "BP", "RP", "c", "o", "L", "clear"}


# --------------------------------------------------------------------------- reading headers
def sha256_file(path) -> str:
    """SHA-256 of a file's bytes (hex), read in 1 MiB blocks: the identity of an ingested file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def header_from_cards(text: str | bytes, path=None) -> fits.Header:
    """Build a header from card images, tolerant of the ways real files store them.

    Accepts newline-separated cards (lines may have lost their trailing blanks,
    blank lines and a trailing ``END`` are allowed) or one unbroken string of
    80-character cards (the ``LDAC_IMHEAD`` layout).  NUL padding is removed and
    non-ASCII bytes (e.g. Latin-1 accents in SCAMP's copyright line) become ``?``.

    Parameters
    ----------
    text : str or bytes
    path : str, optional
        Used in error messages.

    Returns
    -------
    astropy.io.fits.Header
        Cards up to the first ``END``; ``CONTINUE`` long strings are joined.

    Raises
    ------
    catdb.errors.InputError
        If no card could be parsed.
    """
    if isinstance(text, bytes):
        text = text.decode("latin-1")
    text = text.replace("\x00", " ")
    text = text.encode("ascii", "replace").decode("ascii")  # each non-ASCII character -> "?"
    if "\n" in text:
        lines = [ln.rstrip("\r") for ln in text.split("\n")]
    else:
        lines = [text[i:i + 80] for i in range(0, len(text), 80)]
    cards = []
    for ln in lines:
        if not ln.strip():
            continue
        if ln[:8].rstrip() == "END" and ln[8:].strip() == "":
            break
        cards.append(ln[:80].ljust(80))
    if not cards:
        raise InputError("no FITS header cards found", path=path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", AstropyUserWarning)
        warnings.simplefilter("ignore", fits.verify.VerifyWarning)
        try:
            hdr = fits.Header.fromstring("".join(cards))
        except Exception as exc:  # astropy raises ValueError / VerifyError on broken cards
            raise InputError(f"cannot parse header cards: {exc}", path=path) from None
    return hdr


def header_text(header: fits.Header) -> str:
    """The cards of ``header`` as newline-separated 80-character images (``exposure.header``).

    A card parsed from a file and not modified since keeps its image as read; astropy's ``str(card)``
    would verify and re-format every card first, which took more than half of
    :func:`exposure_metadata`'s time (one ``catdb ingest`` of 200 cards per file).  Cards created
    or modified in Python are formatted by astropy.
    """
    out = []
    for c in header.cards:
        img = getattr(c, "_image", None)
        out.append(img if img and not getattr(c, "_modified", True) else str(c))
    return "\n".join(out)


def read_text_header(path) -> fits.Header:
    """Read a FITS header stored as text (one card per line, e.g. ``imhead`` output).

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    astropy.io.fits.Header

    Raises
    ------
    catdb.errors.InputError
        If the file cannot be read or holds no cards.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read header file: {exc.strerror}", path=path) from None
    return header_from_cards(data, path=path)


def read_header(path, hdu: int | None = None) -> tuple[fits.Header, int]:
    """Read the header of a FITS image (``.fits``, ``.fits.fz``) or a text header file.

    Parameters
    ----------
    path : str or os.PathLike
    hdu : int, optional
        0-based HDU index.  Default: the first HDU holding an image (so HDU 1
        of a tile-compressed ``.fits.fz``), else HDU 0.  For a MEF extension
        with ``INHERIT = T`` the primary header is merged in (its WCS as :func:`inherits_wcs` says).

    Returns
    -------
    header : astropy.io.fits.Header
    hdu : int
        The HDU index read (0 for a text header).

    Raises
    ------
    catdb.errors.InputError
        Unreadable file or HDU out of range.
    """
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            start = fh.read(2880)
    except OSError as exc:
        raise InputError(f"cannot open: {exc.strerror}", path=path) from None
    if not start.startswith(b"SIMPLE  =") or b"\n" in start:  # text dump of a header
        return read_text_header(p), 0
    try:
        with fits.open(p, memmap=False) as hl:
            if hdu is None:
                hdu = next((i for i, h in enumerate(hl) if h.is_image and h.header.get("NAXIS", 0) >= 2
                            or isinstance(h, fits.CompImageHDU)), 0)
            if hdu >= len(hl):
                raise InputError(f"HDU {hdu} requested but the file has {len(hl)} HDUs", path=path)
            hdr = hl[hdu].header.copy()
            if hdu > 0 and hdr.get("INHERIT", False):
                n_ext = sum(i > 0 and _is_exposure_image(h, i) for i, h in enumerate(hl))
                hdr = inherit_header(hl[0].header, hdr, wcs=inherits_wcs(hdr, n_ext))
    except InputError:
        raise
    except (OSError, ValueError) as exc:
        raise InputError(f"not a readable FITS file: {exc}", path=path) from None
    return hdr, hdu


#: IRAF projections with a distortion polynomial in the ``WAT`` cards that WCSLIB does not implement:
#: astropy (and SExtractor) read them as the plain projection named here, the distortion dropped
#: (a KPNO MOSAIC TNX chip: up to ~8 arcsec)
IRAF_DISTORTED = {"TNX": "TAN", "ZPX": "ZPN"}

#: ``EXTNAME`` of image extensions that are per-pixel planes of another image (masks, errors, weights),
#: never exposures: LCO BANZAI writes ``SCI``, ``CAT``, ``BPM``, ``ERR``
#: (banzai.utils.fits_utils.to_fits_image_extension); HST/JWST ``DQ``/``ERR``/``VAR``; SWarp weights
AUXILIARY_EXTNAMES = frozenset({"BPM", "MASK", "DQ", "ERR", "UNCERT", "VAR", "VARIANCE", "IVAR", "WEIGHT", "WHT"})


def _is_exposure_image(h, i: int) -> bool:
    """HDU ``h`` (index ``i``) holds a 2-D image with pixels that is not a plane of another image."""
    hdr = h.header
    if not isinstance(h, (fits.PrimaryHDU, fits.ImageHDU, fits.CompImageHDU)):
        return False
    if not (hdr.get("NAXIS", 0) >= 2 and hdr.get("NAXIS1", 0) > 0 and hdr.get("NAXIS2", 0) > 0):
        return False
    return not (i > 0 and str(hdr.get("EXTNAME", "")).strip().upper() in AUXILIARY_EXTNAMES)


def inherits_wcs(extension: fits.Header, n_extensions: int) -> bool:
    """Whether an image extension may take its WCS from the primary header.

    A primary WCS places one pixel grid on the sky: it is the WCS of the only image extension of a
    file (a ``.fits.fz``'s compressed image, a BANZAI ``SCI``), but not of one of several image
    extensions without a WCS of their own (the amplifiers of an LCO Sinistro raw frame share a
    primary WCS of the whole trimmed detector: each amplifier would get the first quadrant's sky).

    Parameters
    ----------
    extension : astropy.io.fits.Header
        The extension's own header (before merging).
    n_extensions : int
        Image extensions in the file (HDU 1 and later holding exposures).

    Returns
    -------
    bool
        True when the extension has its own celestial WCS (the primary's other WCS cards, e.g.
        ``RADESYS``, may complete it) or is the file's only image extension.
    """
    return n_extensions <= 1 or has_celestial_wcs(extension)


def read_image_headers(path, hdu: int | None = None) -> tuple[fits.Header, list[tuple[int, fits.Header]]]:
    """Read, in one pass over the file, the primary header and the headers of its 2-D images.

    Opening a tile-compressed file costs the conversion of each compressed HDU's binary-table
    header into its image header (astropy does it on every ``fits.open``); reading everything
    once makes an ingest open the file once instead of three times.

    Parameters
    ----------
    path : str or os.PathLike
        ``.fits``, ``.fit``, ``.fits.fz`` (not a text header).
    hdu : int, optional
        Only this 0-based HDU (it must exist).  Default: every HDU holding a 2-D image with
        pixels (``NAXIS >= 2``, ``NAXIS1``, ``NAXIS2`` > 0; compressed or not), except the
        per-pixel planes of another image named by :data:`AUXILIARY_EXTNAMES` (an LCO BANZAI
        product's ``BPM`` and ``ERR`` beside its ``SCI``).

    Returns
    -------
    primary : astropy.io.fits.Header
        HDU 0's header.
    images : list of (int, astropy.io.fits.Header)
        The image HDUs' indices and headers, each with the primary merged in when it says
        ``INHERIT = T`` (as :func:`read_header` returns them), the primary's WCS cards only when
        :func:`inherits_wcs` allows it.

    Raises
    ------
    catdb.errors.InputError
        Unreadable file, ``hdu`` out of range, or (without ``hdu``) no 2-D image HDU (keyword
        ``NAXIS``).
    """
    try:
        with fits.open(path, memmap=False) as hl:
            n = len(hl)
            if hdu is not None and hdu >= n:
                raise InputError(f"HDU {hdu} requested but the file has {n} HDUs", path=path)
            primary = hl[0].header
            found = [i for i in range(n) if _is_exposure_image(hl[i], i)]
            n_ext = sum(i > 0 for i in found)
            images = []
            for i in ([hdu] if hdu is not None else found):
                hdr = hl[i].header
                if i > 0 and hdr.get("INHERIT", False):
                    hdr = inherit_header(primary, hdr, wcs=inherits_wcs(hdr, n_ext))
                images.append((i, hdr))
    except InputError:
        raise
    except (OSError, ValueError) as exc:
        raise InputError(f"not a readable FITS file: {exc}", path=path) from None
    if not images:
        raise InputError("no 2-D image HDU in file", path=path, keyword="NAXIS")
    return primary, images


def inherit_header(primary: fits.Header, extension: fits.Header, *, wcs: bool = True) -> fits.Header:
    """Merge a MEF primary header into an extension header (``INHERIT = T`` convention).

    Extension cards win; primary cards absent from the extension are appended
    (structural keywords ``SIMPLE``, ``BITPIX``, ``NAXIS*``, ``EXTEND``, ``NEXTEND`` excluded).

    Parameters
    ----------
    primary, extension : astropy.io.fits.Header
    wcs : bool
        False: the primary's WCS cards (``CTYPE*``, ``CRVAL*``, ``CD*``, ``WAT*``, ``LTV*``, ...) are not
        merged (see :func:`inherits_wcs`).

    Returns
    -------
    astropy.io.fits.Header
        A new header.
    """
    out = extension.copy()
    skip = re.compile(r"^(SIMPLE|BITPIX|NAXIS\d*|EXTEND|NEXTEND|COMMENT|HISTORY|)$")
    for card in primary.cards:
        if skip.match(card.keyword) or card.keyword in out or (not wcs and _WCS_KEY.match(card.keyword)):
            continue
        out.append(card, end=True)
    return out


# --------------------------------------------------------------------------- keymaps
def keymap_names() -> list[str]:
    """Names of the keymaps shipped with catdb (``generic`` last)."""
    files = importlib.resources.files(__package__).joinpath(_KEYMAP_DIR)
    names = sorted(f.name[:-5] for f in files.iterdir() if f.name.endswith(".toml"))
    names.remove("generic")
    return names + ["generic"]


#: parsed keymaps by (file, size, mtime): an ingest of many files reads its keymaps once
_TOML_CACHE: dict = {}


def _read_toml(path_or_res, label) -> dict:
    """The parsed TOML file (a fresh copy; parsed again when the file's size or mtime changed)."""
    try:
        try:
            st = os.stat(str(path_or_res))
            key = (str(path_or_res), st.st_size, st.st_mtime_ns)
        except (OSError, TypeError, ValueError):  # a resource that is not a plain file
            key = None
        if key is not None and key in _TOML_CACHE:
            return copy.deepcopy(_TOML_CACHE[key])
        with path_or_res.open("rb") as fh:
            data = tomllib.load(fh)
        if key is not None:
            _TOML_CACHE[key] = copy.deepcopy(data)
        return data
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"invalid TOML: {exc}", path=label) from None
    except OSError as exc:
        raise InputError(f"cannot read keymap: {exc.strerror}", path=label) from None


def load_keymap(name_or_path) -> dict:
    """Load a header keyword map, merged over the generic map.

    Parameters
    ----------
    name_or_path : str or os.PathLike
        A shipped map name (``'lowell42'``, ``'lco1m'``, ``'kpno_mosaic'``,
        ``'swope'``, ``'generic'``) or the path of a user TOML file (same format,
        see the top of ``generic.toml``).  A bare shipped name is the shipped map even when
        the working directory holds a file or directory of that name.

    Returns
    -------
    dict
        ``name``, ``required``, ``keywords`` (column -> list of keywords, the
        map's own lists replacing the generic ones), ``time`` (list of rules:
        the map's rules, then the generic ones), ``detect``, ``image_types``,
        ``bands``, ``constants``, ``lookup``, ``options``, ``source`` (file).

    Raises
    ------
    catdb.errors.InputError
        Unknown name, unreadable/invalid TOML, or a keymap naming an exposure
        column that does not exist.
    """
    res = importlib.resources.files(__package__).joinpath(_KEYMAP_DIR)
    generic = _read_toml(res.joinpath("generic.toml"), "generic.toml")
    p = Path(str(name_or_path))
    # a file path: '*.toml', or an existing FILE not named like a shipped map (a bare shipped name such as
    # 'swope' means the shipped map even when the working directory holds a 'swope' file or directory)
    shipped_name = len(p.parts) == 1 and res.joinpath(f"{p.name}.toml").is_file()
    if p.suffix == ".toml" or (p.is_file() and not shipped_name):
        own, label = _read_toml(p, str(p)), str(p)
    else:
        r = res.joinpath(f"{name_or_path}.toml")
        if not r.is_file():
            raise InputError(f"unknown keymap {name_or_path!r}; shipped maps are {keymap_names()} "
                             "or give the path of a .toml file", keyword=str(name_or_path))
        own, label = _read_toml(r, f"{name_or_path}.toml"), f"{name_or_path}.toml"
    for col in own.get("keywords", {}):
        if col not in _KEYWORD_COLUMNS:
            raise InputError(f"[keywords] names {col!r}, which is not an exposure column read from "
                             f"headers; expected one of {list(_KEYWORD_COLUMNS)}", path=label, keyword=col)
    for col in own.get("constants", {}):
        if col not in EXPOSURE_COLUMNS:
            raise InputError(f"[constants] names {col!r}, not an exposure column", path=label, keyword=col)
    km = copy.deepcopy(generic)
    if own is not generic and own.get("name") != "generic":
        km["name"] = own.get("name", p.stem)
        km["description"] = own.get("description", "")
        km["required"] = own.get("required", generic["required"])
        km["keywords"].update(own.get("keywords", {}))
        km["time"] = own.get("time", []) + generic.get("time", [])
        km["detect"] = own.get("detect", [])
        km["image_types"].update({k.lower(): v for k, v in own.get("image_types", {}).items()})
        km["bands"].update(own.get("bands", {}))
        km["constants"].update(own.get("constants", {}))
        km["lookup"] = own.get("lookup", {})
        km["options"].update(own.get("options", {}))
    km.setdefault("detect", [])
    km.setdefault("lookup", {})
    km["source"] = label
    return km


def detect_instrument(header: fits.Header) -> str:
    """Name of the shipped keymap whose ``[[detect]]`` rules match a header.

    Parameters
    ----------
    header : astropy.io.fits.Header

    Returns
    -------
    str
        e.g. ``'lowell42'``; ``'generic'`` when no rule matches.

    Notes
    -----
    Maps are tried in name order (``acp`` before ``maximdl``: an ACP header is a MaxIm DL
    header with ACP's cards added, and its rule asks for both).  A pattern is matched against
    the stripped string form of the value, so ``"*"`` matches any non-empty card, numeric or not.
    """
    for name in keymap_names()[:-1]:
        rules = _read_toml(importlib.resources.files(__package__).joinpath(_KEYMAP_DIR, f"{name}.toml"),
                           name).get("detect", [])
        for rule in rules:
            if rule and all(_present(header, k) is not None
                            and fnmatch.fnmatch(str(header[k]).strip().lower(), str(pat).lower())
                            for k, pat in rule.items()):
                return name
    return "generic"


def write_default_keymaps(directory) -> list[Path]:
    """Copy the shipped keymap TOML files into ``directory`` for users to edit.

    Parameters
    ----------
    directory : str or os.PathLike
        Created if missing.  Existing files are not overwritten.

    Returns
    -------
    list of pathlib.Path
        Files written.
    """
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for name in keymap_names():
        dst = d / f"{name}.toml"
        if dst.exists():
            continue
        src = importlib.resources.files(__package__).joinpath(_KEYMAP_DIR, f"{name}.toml")
        with src.open("rb") as fs, open(dst, "wb") as fd:
            shutil.copyfileobj(fs, fd)
        out.append(dst)
    return out


# --------------------------------------------------------------------------- values
def _present(header, key):
    if key not in header:
        return None
    v = header[key]
    if v is None or isinstance(v, fits.card.Undefined):
        return None
    if isinstance(v, str):
        v = v.strip()
        if v == "" or v.upper() in ("N/A", "UNKNOWN", "NONE", "NAN"):
            return None
    return v


def _first(header, keys):
    for k in keys:
        v = _present(header, k)
        if v is not None:
            return v, k
    return None, None


def _to_float(v, *, angle=False):
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float, np.number)):
        return float(v)
    s = str(v).strip()
    try:
        return float(s.replace("D", "E"))
    except ValueError:
        pass
    if angle and re.fullmatch(r"[+-]?\d{1,3}[: ]\d{1,2}[: ]\d{1,2}(\.\d*)?", s):
        return Angle(s.replace(" ", ":"), unit=u.deg).deg
    return None


_SEXAGESIMAL = re.compile(r"^[+-]?\d{1,3}([: ]+|[hd]\s*)\d{1,2}([: ]+|m\s*)\d{1,2}(\.\d*)?s?$", re.I)
_HOURS_COMMENT = re.compile(r"\[h\]|\bhours?\b|\bhrs?\b|\bhms\b|\[H M S\]", re.I)


def _ra_deg(value, comment="", hours: bool = False):
    """Right ascension in degrees from a header value.

    Rule (documented in ``generic.toml``): a sexagesimal string (``'04 12 12.262'``,
    ``'08:18:29.9'``, ``'4h12m12s'``) is in HOURS (every dialect writes RA as h m s); a
    number, or a numeric string, is in DEGREES unless ``hours`` (the keymap lists the keyword
    in ``ra_hours``) or the card comment says hours (``'[h]'``, ``'hours'``, ``'[H M S]'``).

    Returns
    -------
    float or None
        Degrees in [0, 360); ``None`` when the value does not parse or is out of range.
    """
    if isinstance(value, bool):
        return None
    s = str(value).strip()
    if isinstance(value, str) and _SEXAGESIMAL.match(s):
        try:
            deg = Angle(re.sub(r"\s+", ":", s.lower().replace("h", ":").replace("m", ":").rstrip("s").strip(":")),
                        unit=u.hourangle).deg
        except ValueError:
            return None
    else:
        f = _to_float(value)
        if f is None:
            return None
        deg = f * 15.0 if (hours or _HOURS_COMMENT.search(comment or "")) else f
    if not (0.0 <= deg <= 360.0):
        return None
    return float(deg % 360.0)


def _dec_deg(value):
    """Declination in degrees from a number or a sexagesimal ``'+22 53 01.76'`` string (degrees)."""
    if isinstance(value, bool):
        return None
    s = str(value).strip()
    if isinstance(value, str) and _SEXAGESIMAL.match(s):
        try:
            deg = Angle(re.sub(r"\s+", ":", s.lower().replace("d", ":").replace("m", ":").rstrip("s").strip(":")),
                        unit=u.deg).deg
        except ValueError:
            return None
    else:
        deg = _to_float(value)
        if deg is None:
            return None
    return float(deg) if -90.0 <= deg <= 90.0 else None


def gmst_deg(mjd_utc: float) -> float:
    """Greenwich mean sidereal time (deg) at an MJD (UTC taken for UT1).

    GMST = 18.697374558 h + 24.06570982441908 h x (JD - 2451545.0), the USNO approximation
    (Astronomical Almanac; error about 0.1 s per century).  Using UTC for UT1 adds < 0.9 s
    (< 0.004 deg), which does not matter for a sign check.  No IERS table is needed.
    """
    d = mjd_utc + 2400000.5 - 2451545.0
    return float((18.697374558 + 24.06570982441908 * d) % 24.0 * 15.0)


def _lst_longitude(header, keys, mjd_mid, exptime, seconds=()):
    """(east longitude implied by a local-sidereal-time card, keyword, tolerance deg) or None.

    ``LST - GMST`` is the east longitude.  The card may be written at the start of the
    exposure (TheSkyX, MaxIm ``ST``) while ``mjd_mid`` is the middle, so the tolerance is
    0.5 deg plus the sidereal angle of half the exposure.  A sexagesimal string is hours; a
    number is hours, or seconds of sidereal time for a keyword in ``seconds`` (Las Campanas
    ``ST = 82783.5 / sidereal time: 22:59:43``); a number outside 0-24 h (0-86400 s) gives no
    check (None): read in the wrong unit it would match the opposite longitude by chance.
    """
    v, k = _first(header, keys)
    if v is None or mjd_mid is None:
        return None
    s = str(v).strip()
    try:
        if isinstance(v, str) and _SEXAGESIMAL.match(s):
            lst = Angle(re.sub(r"\s+", ":", s), unit=u.hourangle).deg
        else:
            x, per_deg = float(_to_float(v)), (240.0 if k in seconds else 1.0 / 15.0)
            if not 0.0 <= x < 360.0 * per_deg:
                return None
            lst = x / per_deg
    except (TypeError, ValueError):
        return None
    lon = (lst - gmst_deg(mjd_mid) + 540.0) % 360.0 - 180.0
    tol = 0.5 + (exptime or 0.0) / 2.0 / 3600.0 * 15.04
    return lon, k, tol


def _angle_diff(a, b):
    return abs((a - b + 540.0) % 360.0 - 180.0)


#: MPC observatory codes: three characters, a digit or capital letter then two digits (e.g. 688, G96)
_OBSCODE = re.compile(r"^[0-9A-Z][0-9]{2}$")


def check_obscode(code, *, keyword="--obscode") -> str:
    """An MPC observatory code, stripped and upper-cased; InputError when not of the MPC form."""
    c = str(code).strip().upper()
    if not _OBSCODE.match(c):
        raise InputError(f"observatory code {code!r} is not an MPC code (three characters: a digit or capital "
                         f"letter then two digits, e.g. 688, G96, Z24)", keyword=keyword)
    return c


def normalise_band(filter_value, bands: dict | None = None) -> str | None:
    """Normalised band name from a FILTER header value.

    Order: exact match in the keymap's ``[bands]``; a known band name as is
    (``'VR'``, ``'r'``, ``'w'``, ``'R'``...); SDSS primes ``rp``/``r'`` -> ``r``;
    the first word if it is a known band (``'R Harris k1004'`` -> ``'R'``);
    else the stripped value itself.

    Parameters
    ----------
    filter_value : str or None
    bands : dict, optional
        The keymap ``[bands]`` table.

    Returns
    -------
    str or None
    """
    if filter_value is None:
        return None
    f = str(filter_value).strip()
    if bands and f in bands:
        return bands[f]
    if f in _KNOWN_BANDS:
        return f
    m = re.fullmatch(r"([ugriz])(p|'|_?prime|_?sdss)", f, flags=re.I)
    if m:
        return m.group(1).lower()
    word = f.split()[0] if f.split() else f
    if word in _KNOWN_BANDS:
        return word
    return f


def _normalise_binning(v):
    if v is None:
        return None
    nums = re.findall(r"\d+", str(v))
    if len(nums) >= 2:
        return f"{int(nums[0])}x{int(nums[1])}"
    if len(nums) == 1:
        return f"{int(nums[0])}x{int(nums[0])}"
    return str(v).strip()


_LEGACY_DATE = re.compile(r"^(\d{2})/(\d{2})/(\d{2})$")


def _date_part(v):
    s = str(v).strip()
    m = _LEGACY_DATE.match(s)  # FITS pre-2000 'dd/mm/yy' (19yy by the standard)
    if m:
        return f"19{m.group(3)}-{m.group(2)}-{m.group(1)}"
    return re.split(r"[T ]", s)[0]


#: FITS ``TIMESYS`` values -> (astropy time scale, seconds to add to read the value on that scale):
#: FITS 4.0 sect. 9.2.1, Table 30, with its deprecated synonyms (``TDT``, ``ET`` for TT; ``IAT``
#: for TAI; ``GMT``, ``UT()`` for UTC) and ``GPS`` = TAI - 19 s
_TIMESYS = {"UTC": ("utc", 0.0), "UT": ("utc", 0.0), "GMT": ("utc", 0.0), "Z": ("utc", 0.0),
            "TT": ("tt", 0.0), "TDT": ("tt", 0.0), "ET": ("tt", 0.0), "TAI": ("tai", 0.0), "IAT": ("tai", 0.0),
            "GPS": ("tai", 19.0), "UT1": ("ut1", 0.0), "TDB": ("tdb", 0.0), "TCG": ("tcg", 0.0),
            "TCB": ("tcb", 0.0)}


def header_time_scale(header: fits.Header, path=None) -> tuple[str, float, str]:
    """The time scale of a header's times from ``TIMESYS`` (FITS 4.0 sect. 9.2.1; UTC when absent).

    The first word counts (``'UTC approximate'`` is UTC); ``UT(NIST)``-style realisations are UTC.

    Returns
    -------
    scale : str
        astropy :class:`~astropy.time.Time` scale.
    offset : float
        Seconds to add to a time read on ``scale`` (19 for GPS, read as TAI).
    name : str
        The ``TIMESYS`` word as written (upper case), ``'UTC'`` when absent.

    Raises
    ------
    catdb.errors.InputError
        A ``TIMESYS`` that is no time scale catdb can convert to UTC (``LOCAL``, an unknown
        word): taking it for UTC would shift every time by an unknown amount.
    """
    raw = header.get("TIMESYS")
    words = str(raw).strip().upper().split() if raw is not None else []
    name = words[0] if words else "UTC"
    if re.fullmatch(r"UT\(.*\)", name):
        name = "UTC"
    if name not in _TIMESYS:
        raise InputError(f"TIMESYS {raw!r} is not a time scale catdb can convert to UTC (known: "
                         f"{', '.join(sorted(_TIMESYS))}); correct the card or give mjd_mid another way",
                         path=path, keyword="TIMESYS")
    scale, offset = _TIMESYS[name]
    return scale, offset, name


def mid_exposure_mjd(header: fits.Header, keymap: dict, path=None, exptime=None) -> tuple[float, str]:
    """Mid-exposure time (MJD, UTC) from a header, trying the keymap's ``[[time]]`` rules.

    Each rule reads a start, mid or end time: an MJD keyword, a JD keyword, an
    ISO date+time keyword, or a date keyword plus a separate time-of-day keyword
    (the Lowell ``DATE-OBS`` + ``UTCSTART`` case).  The first rule whose
    keywords are present and parse wins; ``mid = start + EXPTIME/2`` or
    ``end - EXPTIME/2``.  The time scale is taken from ``TIMESYS`` (default
    UTC; :func:`header_time_scale`) and converted to UTC with :class:`astropy.time.Time`.

    Parameters
    ----------
    header : astropy.io.fits.Header
    keymap : dict
        From :func:`load_keymap`.
    path : str, optional
        For error messages.
    exptime : float, optional
        Exposure time (s); needed by start/end rules.

    Returns
    -------
    mjd_mid : float
        MJD (UTC) of mid-exposure.
    source : str
        Human-readable description of the rule used, e.g. ``'DATE-OBS+UTCSTART (start) + EXPTIME/2'``.

    Raises
    ------
    catdb.errors.InputError
        No rule applies (naming the keywords tried), a time keyword holds an
        unparsable value, or ``TIMESYS`` names no convertible time scale.
    """
    scale, offset, sysname = header_time_scale(header, path=path)
    tried = []
    for rule in keymap.get("time", []):
        at = rule.get("at", "start")
        try:
            if "mjd" in rule:
                kw = rule["mjd"]
                tried.append(kw)
                v = _to_float(_present(header, kw)) if _present(header, kw) is not None else None
                if v is None:
                    continue
                t, src = Time(v, format="mjd", scale=scale), kw
            elif "jd" in rule:
                kw = rule["jd"]
                tried.append(kw)
                v = _to_float(_present(header, kw)) if _present(header, kw) is not None else None
                if v is None:
                    continue
                t, src = Time(v, format="jd", scale=scale), f"{kw} (JD)"
            elif "isot" in rule:
                kw = rule["isot"]
                tried.append(kw)
                v = _present(header, kw)
                if v is None or not re.search(r"\d[T ]\d", str(v).strip()):
                    continue
                t, src = Time(str(v).strip().replace(" ", "T"), format="isot", scale=scale), kw
            elif "date" in rule and "time" in rule:
                kd, kt = rule["date"], rule["time"]
                tried.append(f"{kd}+{kt}")
                d, tm = _present(header, kd), _present(header, kt)
                if d is None or tm is None or not re.fullmatch(r"\d{1,2}:\d{1,2}:\d{1,2}(\.\d*)?", str(tm).strip()):
                    continue
                t, src = Time(f"{_date_part(d)}T{str(tm).strip()}", format="isot", scale=scale), f"{kd}+{kt}"
            else:
                continue
        except ValueError as exc:
            if "date" in rule and "time" in rule:  # the time passed its pattern: the date is at fault
                kd, kt = rule["date"], rule["time"]
                raise InputError(f"cannot parse the date {kd}={header.get(kd)!r} (with {kt}="
                                 f"{header.get(kt)!r}): {exc}", path=path, keyword=kd) from None
            bad = rule.get("mjd") or rule.get("jd") or rule.get("isot")
            raise InputError(f"cannot parse time value {bad}={header.get(bad)!r}: {exc}", path=path,
                             keyword=bad) from None
        if offset:
            t = t + offset * u.s
        if sysname != "UTC":
            src = f"{src} (TIMESYS {sysname}, converted to UTC)"
        if at == "mid":
            return float(t.utc.mjd), src
        if exptime is None:
            raise InputError(f"{src} gives the {at} of the exposure but no exposure time was found",
                             path=path, keyword="EXPTIME")
        sign = 1.0 if at == "start" else -1.0
        mid = t + sign * exptime / 2.0 * u.s
        return float(mid.utc.mjd), f"{src} ({at}) {'+' if sign > 0 else '-'} EXPTIME/2"
    raise InputError(f"no usable observation time; keymap {keymap.get('name')!r} tried {tried}",
                     path=path, keyword="DATE-OBS")


def observing_night(mjd_mid: float, site_lon: float):
    """The observing night of an exposure: the local date at the start of the night.

    The night runs from local noon to local noon (local mean solar time, from the site
    longitude), so an exposure at 02:00 local time belongs to the previous date's night
    and a night never splits at local midnight.

    Parameters
    ----------
    mjd_mid : float
        Mid-exposure MJD (UTC).
    site_lon : float
        Site longitude, deg, east positive.

    Returns
    -------
    datetime.date
        ``MJD 0 (1858-11-17) + floor(mjd_mid + site_lon/360 - 0.5)`` days.
    """
    return datetime.date(1858, 11, 17) + datetime.timedelta(days=int(np.floor(mjd_mid + site_lon / 360.0 - 0.5)))


# --------------------------------------------------------------------------- WCS / footprint
def wcs_cards(header: fits.Header) -> str:
    """The WCS cards of a header (numeric strings cast), as 80-char cards joined by newlines."""
    h = clean_wcs_header(fits.Header([c for c in header.cards if _WCS_KEY.match(c.keyword or "")]))
    return "\n".join(str(c) for c in h.cards)


def footprint(header: fits.Header, naxis1: int, naxis2: int, path=None, wcs=None) -> dict:
    """Sky footprint of an image from its WCS.

    Parameters
    ----------
    header : astropy.io.fits.Header
        With a celestial WCS (quoted numeric cards are cast, see :mod:`catdb.wcsutil`).
    naxis1, naxis2 : int
        Image size (pixels).
    path : str, optional
    wcs : astropy.wcs.WCS, optional
        ``catdb.wcsutil.wcs_from_header(header)`` when the caller has it already.

    Returns
    -------
    dict
        ``ra_center``, ``dec_center`` (deg, WCS at the pixel centre
        ((naxis1+1)/2, (naxis2+1)/2), 1-based), ``corners`` (list of 8 floats
        ra1, dec1, ..., ra4, dec4 at the outer pixel edges (0.5, 0.5),
        (naxis1+0.5, 0.5), (naxis1+0.5, naxis2+0.5), (0.5, naxis2+0.5)),
        ``radius`` (deg, centre to farthest corner, great-circle),
        ``pixscale`` (arcsec/pix, mean of the projection-plane scales at CRPIX).

    Raises
    ------
    catdb.errors.InputError
        No celestial WCS.
    """
    w = wcs_from_header(header, path=path) if wcs is None else wcs
    xs = np.array([(naxis1 + 1) / 2.0, 0.5, naxis1 + 0.5, naxis1 + 0.5, 0.5])
    ys = np.array([(naxis2 + 1) / 2.0, 0.5, 0.5, naxis2 + 0.5, naxis2 + 0.5])
    ra, dec = w.all_pix2world(xs, ys, 1)
    c = SkyCoord(ra * u.deg, dec * u.deg)
    radius = c[1:].separation(c[0]).max().deg
    corners = np.column_stack([ra[1:], dec[1:]]).ravel()
    return {"ra_center": float(ra[0]), "dec_center": float(dec[0]), "radius": float(radius),
            "corners": [float(v) for v in corners],
            "pixscale": float(np.mean(proj_plane_pixel_scales(w)) * 3600.0)}


# --------------------------------------------------------------------------- main entry
def exposure_metadata(header: fits.Header, keymap: dict | str | None = None, path=None, hdu: int = 0,
                      *, return_sources: bool = False, sha256: str | None = None, obscode: str | None = None,
                      wcs=None):
    """One ``exposure`` row from an image (or catalogue image) header.

    Parameters
    ----------
    header : astropy.io.fits.Header
        Image header (for a MEF extension merge the primary first, see
        :func:`inherit_header`; :func:`read_header` does it).
    keymap : dict or str, optional
        From :func:`load_keymap`, or a name/path; default: :func:`detect_instrument`.
    path : str or os.PathLike, optional
        The image/catalogue file: stored as ``path``; its SHA-256 is computed when it exists
        (unless ``sha256`` gives it).
    hdu : int
        0-based HDU index stored in the row.
    return_sources : bool
        Also return where each value came from (keyword, constant, WCS, rule).
    sha256 : str, optional
        The SHA-256 of ``path`` when the caller has already computed it (the file is then not
        read again).
    obscode : str, optional
        MPC observatory code given by the user (``--obscode``); it wins over the header and
        the keymap.  Without it and without a header card or keymap constant the code is
        ``None`` (never guessed).
    wcs : astropy.wcs.WCS, optional
        ``catdb.wcsutil.wcs_from_header(header)`` when the caller has built it (for the footprint).

    Returns
    -------
    row : dict
        Keyed by :data:`EXPOSURE_COLUMNS`.  Missing optional values are ``None``.
        Units: mjd_mid MJD UTC; exptime s; fwhm arcsec; gain e-/ADU;
        readnoise e-; saturation ADU; pixscale arcsec/pix; angles deg;
        site_lon east-positive deg; site_height m; pointing_ra/pointing_dec deg (the
        commanded pointing, not a WCS); ccd_temp deg C.

        How values are derived beyond a plain keyword (see ``generic.toml``):
        pixscale: WCS, else a scale keyword, else ``pixscale_unbinned`` x binning, else
        206.265 x pixel size (um, binned, or unbinned x binning) / focal length (mm);
        binning: a binning keyword, else ``XBINNING``x``YBINNING``; site_lon: west-positive
        maps negated, and the sign checked against a local-sidereal-time card (``LST - GMST``)
        when there is one; image_type: :func:`catdb.imagetypes.normalise_image_type`;
        saturation: keyword, keymap constant, else (``saturation_adc`` maps) the integer
        data ceiling.  Footprint columns
        (ra_center, dec_center, radius, corners) are ``None`` when the header
        has no celestial WCS (e.g. bias/flat frames).
    sources : dict, only if ``return_sources``
        Column -> description of where its value came from.

    Raises
    ------
    catdb.errors.InputError
        A required column (keymap ``required``, default mjd_mid and exptime)
        cannot be found -- the message names the keywords tried and the file --
        or a keyword holds a value of the wrong type.
    """
    if keymap is None:
        keymap = detect_instrument(header)
    if isinstance(keymap, (str, Path)):
        keymap = load_keymap(keymap)
    row = dict.fromkeys(EXPOSURE_COLUMNS)
    src = {}
    kws, consts = keymap["keywords"], keymap.get("constants", {})
    opts = keymap.get("options", {})
    for col in _KEYWORD_COLUMNS:
        v, k = _first(header, kws.get(col, []))
        if v is None and col in keymap.get("lookup", {}):
            lk = keymap["lookup"][col]
            parts = [_present(header, kk) for kk in lk.get("keywords", [])]
            if all(p is not None for p in parts):
                joined = lk.get("join", "-").join(str(p) for p in parts)
                if joined in lk.get("map", {}):
                    v, k = lk["map"][joined], f"lookup {'+'.join(lk['keywords'])}={joined}"
        if v is None and col in consts:
            v, k = consts[col], "constant in keymap"
        if v is None:
            continue
        if col in ("pointing_ra", "pointing_dec"):
            com = header.comments[k] if k in header else ""
            f = (_ra_deg(v, com, hours=k in opts.get("ra_hours", [])) if col == "pointing_ra" else _dec_deg(v))
            if f is None:
                raise InputError(f"expected a {'right ascension' if col == 'pointing_ra' else 'declination'} "
                                 f"(sexagesimal or degrees) for {col}, found {v!r}", path=path, keyword=k)
            if col == "pointing_ra" and isinstance(v, str) and _SEXAGESIMAL.match(str(v).strip()):
                k = f"{k} (sexagesimal hours)"
            elif col == "pointing_ra":
                k = f"{k} ({'hours' if f != _to_float(v) else 'deg'})"
            row[col], src[col] = f, k
            continue
        if col in _FLOAT_COLUMNS:
            f = _to_float(v, angle=col in ("site_lat", "site_lon"))
            if f is None:
                raise InputError(f"expected a number for {col}, found {v!r}", path=path, keyword=k)
            v = f
        elif col in _INT_COLUMNS:
            f = _to_float(v)
            if f is None:
                raise InputError(f"expected an integer for {col}, found {v!r}", path=path, keyword=k)
            v = int(f)
        else:
            v = str(v).strip()
        row[col], src[col] = v, k
    if row["ccd_temp"] is not None and row["ccd_temp"] > 150.0:  # a CCD is never above 150 C: Kelvin
        row["ccd_temp"] -= 273.15
        src["ccd_temp"] += " (Kelvin, converted to C)"
    if row["binning"] is None:
        for pair in opts.get("binning_xy", []):
            bx, by = (_present(header, kk) for kk in pair)
            if bx is not None and _to_float(bx) is not None:
                by = bx if by is None or _to_float(by) is None else by
                row["binning"] = f"{int(_to_float(bx))}x{int(_to_float(by))}"
                src["binning"] = "+".join(pair)
                break
    if row["site_lon"] is not None and opts.get("lon_west_positive"):
        row["site_lon"] = -row["site_lon"]
        src["site_lon"] += " (west-positive, negated)"
    if row["site_lat"] is None and all(k in header for k in ("OBSGEO-X", "OBSGEO-Y", "OBSGEO-Z")):
        loc = EarthLocation.from_geocentric(*(float(header[k]) for k in ("OBSGEO-X", "OBSGEO-Y", "OBSGEO-Z")),
                                            unit=u.m)
        row["site_lat"], row["site_lon"], row["site_height"] = (float(loc.lat.deg), float(loc.lon.deg),
                                                                float(loc.height.to_value(u.m)))
        src["site_lat"] = src["site_lon"] = src["site_height"] = "OBSGEO-X/Y/Z"
    row["binning"] = _normalise_binning(row["binning"])
    row["band"] = normalise_band(row["filter"], keymap.get("bands"))
    if row["band"] is not None:
        src["band"] = f"normalised from filter {row['filter']!r}"
    if row["image_type"] is not None:
        src["image_type"] += f" ({row['image_type']!r}, catdb.imagetypes)"
        row["image_type"] = normalise_image_type(row["image_type"], keymap.get("image_types"))
    elif "image_type" in consts:
        row["image_type"] = consts["image_type"]
    # time
    try:
        row["mjd_mid"], src["mjd_mid"] = mid_exposure_mjd(header, keymap, path=path, exptime=row["exptime"])
    except InputError:
        if "mjd_mid" in keymap.get("required", []):
            raise
    # footprint
    has_wcs = any(str(header.get(f"CTYPE{i}", "")).startswith(("RA", "DEC")) for i in (1, 2))
    if has_wcs and row["naxis1"] and row["naxis2"]:
        fp = footprint(header, row["naxis1"], row["naxis2"], path=path, wcs=wcs)
        for k in ("ra_center", "dec_center", "radius", "corners"):
            row[k], src[k] = fp[k], "WCS"
        row["pixscale"], src["pixscale"] = fp["pixscale"], "WCS (CD matrix)"
        row["wcs_header"] = wcs_cards(header)
        row["wcs_status"], row["wcs_source"] = "header", "FITS header"
        proj = str(header.get("CTYPE1", "")).strip().upper()[-3:]
        if proj in IRAF_DISTORTED:  # astropy/WCSLIB (and SExtractor) read it as the plain projection
            row["wcs_source"] = (f"FITS header; IRAF {proj} read as {IRAF_DISTORTED[proj]}: its WAT distortion "
                                 "polynomial is dropped (positions off by up to arcseconds; solve the exposure "
                                 "for astrometry)")
    else:
        row["wcs_status"] = "none"
        row["wcs_source"] = ("no celestial WCS in the header" if not has_wcs
                             else "no image size (NAXIS1/NAXIS2) for the WCS footprint")
    src["wcs_status"] = "WCS cards" if row["wcs_status"] == "header" else "no WCS cards"
    if row["site_lon"] is not None and row["mjd_mid"] is not None:
        chk = _lst_longitude(header, opts.get("lst_keywords", []), row["mjd_mid"], row["exptime"],
                             opts.get("lst_seconds", []))
        if chk is not None:
            lon, kl, tol = chk
            if _angle_diff(row["site_lon"], lon) <= tol:
                src["site_lon"] += f" (sign agrees with {kl} - GMST = {lon:+.3f} deg)"
            elif _angle_diff(-row["site_lon"], lon) <= tol:
                row["site_lon"] = -row["site_lon"]
                src["site_lon"] += (f" (sign flipped: {kl} - GMST = {lon:+.3f} deg east; the keymap's "
                                    f"longitude convention does not fit this header)")
            else:
                src["site_lon"] += f" ({kl} - GMST = {lon:+.3f} deg east disagrees; kept as read)"
    if row["mjd_mid"] is not None and row["site_lon"] is not None:
        row["night"] = observing_night(row["mjd_mid"], row["site_lon"])
        src["night"] = "local date at the start of the night, from mjd_mid and site_lon"
    if row["pixscale"] is None:
        v, k = _first(header, opts.get("pixscale_unbinned", []))
        if v is not None and _to_float(v) is not None:
            b = int(re.findall(r"\d+", row["binning"])[0]) if row["binning"] else 1
            row["pixscale"], src["pixscale"] = _to_float(v) * b, f"{k} x binning {b}"
    if row["pixscale"] is None:
        f_mm, kf = _first(header, opts.get("focal_length", []))
        f_mm = _to_float(f_mm) if f_mm is not None else None
        px, kp = _first(header, opts.get("pixel_size_binned", []))
        factor, how = 1, "binned"
        if px is None:
            px, kp = _first(header, opts.get("pixel_size_unbinned", []))
            factor = int(re.findall(r"\d+", row["binning"])[0]) if row["binning"] else 1
            how = f"unbinned x binning {factor}"
        px = _to_float(px) if px is not None else None
        if f_mm and f_mm > 0 and px and px > 0:
            row["pixscale"] = 206.264806 * px * factor / f_mm
            src["pixscale"] = f"206.265 x {kp} ({how}, um) / {kf} (mm)"
    if row["saturation"] is None and opts.get("saturation_adc"):
        bitpix, bzero = header.get("BITPIX"), _to_float(header.get("BZERO", 0)) or 0.0
        ceiling = {(16, 32768.0): 65535.0, (8, 0.0): 255.0, (16, 0.0): 32767.0}.get((bitpix, bzero))
        if ceiling is not None:
            row["saturation"] = ceiling
            src["saturation"] = (f"integer data ceiling (BITPIX {bitpix}, BZERO {bzero:g}): the ADC limit; "
                                 f"non-linearity may start lower")
    if obscode is not None:
        code = check_obscode(obscode)
        if row["observatory_code"] not in (None, code):
            src["observatory_code"] = f"--obscode (header/keymap gave {row['observatory_code']!r})"
        else:
            src["observatory_code"] = "--obscode"
        row["observatory_code"] = code
    elif row["observatory_code"] is None:
        src["observatory_code"] = "unknown: not in the header or keymap (give --obscode)"
    row["header"] = header_text(header)
    row["hdu"] = int(hdu)
    if path is not None:
        row["path"] = str(path)
        if sha256 is not None:
            row["sha256"] = sha256
        elif Path(path).is_file():
            row["sha256"] = sha256_file(path)
    missing = [c for c in keymap.get("required", []) if row.get(c) is None]
    if missing:
        col = missing[0]
        tried = kws.get(col, []) if col != "mjd_mid" else [r for r in keymap.get("time", [])]
        raise InputError(f"required {col} not found; keymap {keymap.get('name')!r} tried {tried}",
                         path=path, keyword=(kws.get(col) or [col])[0])
    if return_sources:
        return row, src
    return row
