"""Read SCAMP outputs: ``.head`` astrometric solutions and the XML run report.

SCAMP (Bertin 2006, ASP Conf. Ser. 351, 112; SCAMP user's guide, "Output
files"): the ``.head`` file holds, per extension of the input catalogue, a block
of FITS cards (WCS with TPV ``PV`` distortion terms, ``FGROUPNO``, ``ASTIRMS*``,
``ASTRRMS*``, ``FLXSCALE``, ``MAGZEROP``...) closed by ``END``, as text lines
without padding; the XML report (``WRITE_XML``) is a VOTable whose ``Fields``
table has one row per input catalogue and ``FGroups`` one per field group.

Wiring: ``apply_scamp_head(image_header, read_scamp_head(head))`` gives the
header with the SCAMP WCS for :func:`catdb.ingest.headers.exposure_metadata`;
``read_scamp_xml(xml).fields`` gives per-exposure astrometric QA values.
"""
from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from astropy.io import fits
from astropy.io.votable import parse
from astropy.io.votable.exceptions import VOWarning
from astropy.table import Table

from ..errors import InputError
from .headers import header_from_cards

__all__ = ["read_scamp_head", "read_scamp_heads", "apply_scamp_head", "ScampReport", "read_scamp_xml"]

_WCS_REPLACED = re.compile(r"^(CTYPE\d|CUNIT\d|CRVAL\d|CRPIX\d|CDELT\d|CROTA\d|CD\d_\d|PC\d_\d|PV\d_\d+|"
                           r"A_\d+_\d+|B_\d+_\d+|AP_\d+_\d+|BP_\d+_\d+|A_ORDER|B_ORDER|AP_ORDER|BP_ORDER|"
                           r"A_DMAX|B_DMAX|WAT\d_\d+|LONPOLE|LATPOLE|RADESYS|RADECSYS|EQUINOX|WCSAXES)$")


def read_scamp_heads(path) -> list[fits.Header]:
    """Read every header block of a SCAMP ``.head`` file.

    Parameters
    ----------
    path : str or os.PathLike
        Text file of card images, one per line, blocks closed by ``END``
        (the last block may lack it); ``CONTINUE`` cards are joined; non-ASCII
        bytes (Latin-1 accents in some SCAMP versions' copyright line) become ``?``.

    Returns
    -------
    list of astropy.io.fits.Header
        One per extension (one for a single-extension image).

    Raises
    ------
    catdb.errors.InputError
        Unreadable file, no cards, or a block without ``CTYPE1``/``CRVAL1``
        (not an astrometric solution).
    """
    try:
        text = Path(path).read_bytes().decode("latin-1")
    except OSError as exc:
        raise InputError(f"cannot read SCAMP .head: {exc.strerror}", path=path) from None
    blocks, cur = [], []
    for line in text.splitlines():
        if line[:8].rstrip() == "END" and not line[8:].strip():
            blocks.append(cur)
            cur = []
        elif line.strip():
            cur.append(line)
    if any(ln.strip() for ln in cur):
        blocks.append(cur)
    if not blocks:
        raise InputError("SCAMP .head holds no header cards", path=path)
    out = []
    for i, blk in enumerate(blocks):
        h = header_from_cards("\n".join(blk), path=path)
        if "CTYPE1" not in h or "CRVAL1" not in h:
            raise InputError(f"header block {i + 1} has no CTYPE1/CRVAL1: not a SCAMP astrometric solution",
                             path=path, row=i + 1, keyword="CTYPE1")
        out.append(h)
    return out


def read_scamp_head(path, extension: int = 0) -> fits.Header:
    """Read one header block (0-based ``extension``) of a SCAMP ``.head`` file.

    Parameters
    ----------
    path : str or os.PathLike
    extension : int
        Which block (the image extension it belongs to), default the first.

    Returns
    -------
    astropy.io.fits.Header

    Raises
    ------
    catdb.errors.InputError
        See :func:`read_scamp_heads`; also ``extension`` out of range.
    """
    heads = read_scamp_heads(path)
    if not 0 <= extension < len(heads):
        raise InputError(f"extension {extension} requested, .head has {len(heads)} blocks", path=path)
    return heads[extension]


def apply_scamp_head(image_header: fits.Header, head: fits.Header) -> fits.Header:
    """Image header with its WCS replaced by a SCAMP solution.

    All WCS cards of the image (including SIP ``A_*``/``B_*``, IRAF ``WAT*``,
    ``PV*``) are removed first, so no stale distortion term survives, then every
    card of ``head`` is set (as SCAMP's ``.head`` convention: the ``.head``
    overrides the image header).

    Parameters
    ----------
    image_header, head : astropy.io.fits.Header

    Returns
    -------
    astropy.io.fits.Header
        A new header.
    """
    out = image_header.copy()
    for key in [k for k in out.keys() if _WCS_REPLACED.match(k)]:
        out.remove(key, ignore_missing=True, remove_all=True)
    for card in head.cards:
        if card.keyword in ("COMMENT", "HISTORY", ""):
            out.append(card)
        else:
            out[card.keyword] = (card.value, card.comment)
    return out


@dataclass
class ScampReport:
    """Contents of a SCAMP XML report.

    Attributes
    ----------
    fields : astropy.table.Table
        One row per input catalogue: ``Catalog_Name``, ``NDetect``, ``Group``,
        ``Observation_Date`` (yr), ``Exposure_Time``, ``AirMass``,
        ``Field_Coordinates`` (deg, 2), ``Pixel_Scale`` (arcsec, 2),
        ``AS_Contrast`` / ``XY_Contrast`` (pattern-matching contrast; SCAMP
        guide: below ~2-3 the match is doubtful), ``DX``/``DY`` (deg),
        ``AstromSigma_Reference`` (arcsec, 2: RA, Dec dispersion vs the
        reference catalogue), ``AstromOffset_Reference``, ``Chi2_Reference``,
        ``NDeg_Reference``, ... (all columns SCAMP writes, with units).
    fgroups : astropy.table.Table
        One row per field group: ``AstRef_Catalog``, ``AstRef_Band``,
        ``AstromSigma_Internal`` / ``AstromSigma_Reference`` (arcsec, 2),
        ``AstromNDets_Internal`` / ``AstromNDets_Reference``, ``AstromChi2_*``, photometric stats.
    tables : dict of str -> astropy.table.Table
        Every table of the report by name (also ``Astrometric_Instruments``,
        ``Photometric_Instruments``, ``Warnings``).
    meta : dict
        The run's PARAMs (``Version``, ``Date``, ``Time``, ...).
    """

    fields: Table
    fgroups: Table
    tables: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)


def read_scamp_xml(path) -> ScampReport:
    """Read a SCAMP XML run report (a VOTable) with :mod:`astropy.io.votable`.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    ScampReport

    Raises
    ------
    catdb.errors.InputError
        Not readable as a VOTable, or no ``Fields`` table (not a SCAMP report,
        or SCAMP failed before writing it).
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", VOWarning)
            vot = parse(str(path), verify="ignore")
    except OSError as exc:
        raise InputError(f"cannot read SCAMP XML: {exc}", path=path) from None
    except Exception as exc:  # expat / votable parse errors
        raise InputError(f"not a VOTable (SCAMP XML report expected): {exc}", path=path) from None
    tables = {}
    for t in vot.iter_tables():
        tables[t.name or t.ID] = t.to_table()
    meta = {}
    stack = list(vot.resources)
    while stack:
        res = stack.pop(0)
        for p in res.params:
            meta[p.name] = p.value
        stack.extend(res.resources)
    if "Fields" not in tables:
        raise InputError(f"no 'Fields' table in the report (tables: {list(tables)}); not a SCAMP XML report",
                         path=path)
    return ScampReport(tables["Fields"], tables.get("FGroups", Table()), tables, meta)
