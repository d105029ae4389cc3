"""IAU ADES 2022: the XML form of catdb's ADES PSV, and its validation against the MPC's schema.

ADES (Astrometry Data Exchange Standard; IAU Commission 20, MPC "ADES Description", version
2022, https://minorplanetcenter.net/iau/info/ADES.html; reference implementation
IAU-ADES/ADES-Master) has two equivalent serialisations: PSV (pipe-separated values, written by
:func:`catdb.export.mpc.format_ades_psv`) and XML.  :func:`psv_to_xml` turns a PSV document into
the XML one (one source of values for both), :func:`validate_ades_xml` checks it:

* against the XML Schemas of the ADES master (``submit.xsd``: a submission, observations in an
  ``obsBlock`` whose ``obsContext`` names the observatory, submitter, measurers and telescope;
  ``general.xsd``: any ADES document, e.g. bare ``optical`` records) with lxml, the schemas
  read from the ``iau-ades`` package (the ADES master's own Python distribution, which ships
  ``ades/data/xsd/general.xsd`` and ``submit.xsd``);
* when lxml or the package is missing, against the documented field rules of those schemas
  written out here (:data:`FIELD_RULES`: element order, required elements, patterns, ranges and
  lengths of the fields catdb writes), so a file is never written unchecked.

``astCat`` is required for every optical observation.  :func:`ast_cat_code` maps a catdb
reference-catalogue name (``exposure.wcs_refcat``, e.g. ``gaia-dr2``) to its ADES code
(``Gaia2``); an astrometric catalogue catdb does not know is ``UNK``, ADES's own code for an
unknown catalogue (the MPC's conversion of a blank 80-column catalogue code), never a guess.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from importlib.resources import files
from xml.sax.saxutils import escape

from ..errors import InputError
from .mpc import parse_ades_psv

ADES_VERSION = "2022"

#: ADES astCat codes of catalogues by normalised name (lower case, letters and digits only);
#: the codes are the ADES master's (its 80-column catalogue-code table, packUtil.catCodes)
_AST_CAT = {
    "gaiadr1": "Gaia1", "gaia1": "Gaia1", "gaiadr2": "Gaia2", "gaia2": "Gaia2", "gaiadr3": "Gaia3",
    "gaia3": "Gaia3", "gaiaedr3": "Gaia3E", "gaia3e": "Gaia3E", "ucac2": "UCAC2", "ucac3": "UCAC3",
    "ucac4": "UCAC4", "ucac5": "UCAC5", "tycho2": "Tyc2", "tyc2": "Tyc2", "tycho1": "Tyc1", "2mass": "2MASS",
    "usnob1": "USNOB1", "usnoa2": "USNOA2", "urat1": "URAT1", "ppmxl": "PPMXL", "nomad": "NOMAD",
    "ps1dr1": "PS1_DR1", "ps1dr2": "PS1_DR2", "panstarrsdr1": "PS1_DR1", "panstarrsdr2": "PS1_DR2",
    "atlas2": "ATLAS2", "atlasrefcat2": "ATLAS2", "refcat2": "ATLAS2", "cmc14": "CMC14", "cmc15": "CMC15",
    "hipparcos": "Hip1", "hip2": "Hip2", "sdssdr7": "SDSS7", "sdssdr8": "SDSS8",
}

#: element order of an ADES ``optical`` record (submit.xsd / general.xsd OpticalType, the fields
#: catdb writes) and of an ``obsContext``
OPTICAL_ORDER = ("permID", "provID", "trkSub", "mode", "stn", "obsTime", "ra", "dec", "rmsRA", "rmsDec",
                 "astCat", "mag", "rmsMag", "band", "photCat", "remarks")
CONTEXT_BLOCKS = ("observatory", "submitter", "observers", "measurers", "telescope")

#: documented field rules (ADES 2022 general/submit.xsd) of the fields catdb writes:
#: name -> (regular expression, (min, max) or None, max length or None)
FIELD_RULES = {
    "permID": (r"\d+([IPD](-[A-Z]{1,2})?)?", None, 25),
    "provID": (r"\d{4} [A-HJ-Y][A-HJ-Z]\d*|\d{4} (P-L|T-[123])|[ADCPX]/\d{4} [A-Z]{1,2}\d*(-[A-Z])?", None, 25),
    "trkSub": (r"[-A-Za-z0-9_]+", None, 8),
    "mode": (r"[A-Za-z0-9_]+", None, 3),
    "stn": (r"[A-Za-z0-9_]{3,4}", None, 4),
    "obsTime": (r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z", None, None),
    "ra": (r"([1-3][0-9]{2}|[1-9]?[0-9])?(\.[0-9]{0,9})?", (0.0, 360.0), None),
    "dec": (r"[+\-]?([1-9]?[0-9])?(\.[0-9]{0,9})?", (-90.0, 90.0), None),
    "rmsRA": (r"[0-9.]{1,7}", (0.0, None), None),
    "rmsDec": (r"[0-9.]{1,7}", (0.0, None), None),
    "astCat": (r"[.A-Za-z0-9_]+", None, 8),
    "mag": (r"[+\-]?[0-9.]{1,7}", (-5.0, 35.0), None),
    "rmsMag": (r"[0-9.]{1,5}", (0.0, None), None),
    "band": (r"[A-Za-z0-9_]+", None, 3),
    "photCat": (r"[.A-Za-z0-9_]+", None, 8),
    "remarks": (r"[^|]*[^|\s][^|]*", None, 200),
}
#: what a submission's obsContext must hold (submit.xsd ObsContextType, TelescopeType)
REQUIRED_CONTEXT = {"observatory": ("mpcCode",), "submitter": ("name",), "measurers": ("name",),
                    "telescope": ("design", "aperture", "detector")}


def ast_cat_code(refcat) -> str | None:
    """The ADES ``astCat`` code of a reference catalogue name (``gaia-dr2`` -> ``Gaia2``), or None
    when catdb does not know it (the caller writes ``UNK``)."""
    if refcat is None:
        return None
    key = re.sub(r"[^a-z0-9]", "", str(refcat).lower())
    if key in _AST_CAT:
        return _AST_CAT[key]
    codes = {v.lower(): v for v in _AST_CAT.values()}
    return codes.get(key.replace("_", ""), None)


def context_complete(header: dict) -> bool:
    """Whether the PSV header blocks (``parse_ades_psv``'s dict) make a submission's obsContext."""
    return all(isinstance(header.get(b), dict) and all(header[b].get(k) not in (None, "", [])
                                                        for k in keys)
               for b, keys in REQUIRED_CONTEXT.items())


def psv_to_xml(text: str) -> bytes:
    """An ADES PSV document as ADES XML (same version, same values).

    With a complete context (observatory, submitter, measurers, telescope design, aperture and
    detector) the records go into one ``obsBlock`` with its ``obsContext`` (a submission,
    ``submit.xsd``); otherwise they are bare ``optical`` elements of an ``ades`` document
    (``general.xsd``).

    Raises
    ------
    catdb.errors.InputError
        The PSV does not parse (:func:`catdb.export.mpc.parse_ades_psv`).
    """
    header, t = parse_ades_psv(text)
    version = header.get("version") or ADES_VERSION
    names = [n for n in OPTICAL_ORDER if n in t.colnames]
    unknown = [n for n in t.colnames if n not in OPTICAL_ORDER]
    if unknown:
        raise InputError(f"ADES PSV field(s) {unknown} are not written by catdb (known: {', '.join(OPTICAL_ORDER)})",
                         keyword=unknown[0])
    cols = {n: [str(v).strip() for v in t[n]] for n in names}
    recs = []
    photometry = ("mag", "rmsMag", "band", "photCat")
    for i in range(len(t)):                                     # loop over records (text assembly)
        has_mag = bool(cols.get("mag", [""] * len(t))[i])      # band, rmsMag, photCat only with a mag
        fields = "".join(f"<{n}>{escape(cols[n][i])}</{n}>" for n in names
                         if cols[n][i] and (has_mag or n not in photometry))
        recs.append(f"<optical>{fields}</optical>")
    if context_complete(header):
        ctx = []
        for block in CONTEXT_BLOCKS:
            d = header.get(block)
            if not isinstance(d, dict) or not d:
                continue
            inner = []
            for k, v in d.items():
                for x in (v if isinstance(v, list) else [v]):
                    inner.append(f"<{k}>{escape(str(x))}</{k}>")
            ctx.append(f"<{block}>{''.join(inner)}</{block}>")
        body = (f"<obsBlock><obsContext>{''.join(ctx)}</obsContext><obsData>" + "\n".join(recs)
                + "</obsData></obsBlock>")
    else:
        body = "\n".join(recs)
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<ades version="{escape(version)}">\n{body}\n</ades>\n'
            ).encode()


def schema_file(kind: str):
    """Path of the ADES master's ``general.xsd`` / ``submit.xsd`` from the ``iau-ades`` package, or None."""
    if kind not in ("general", "submit"):
        raise InputError(f"schema {kind!r}: expected general or submit", keyword="schema")
    try:
        p = files("ades") / "data" / "xsd" / f"{kind}.xsd"
        return p if p.is_file() else None
    except (ImportError, ModuleNotFoundError, TypeError):
        return None


def validate_ades_xml(data: bytes, *, use_schema: bool = True) -> tuple[str, list[str]]:
    """Validate an ADES XML document.

    Parameters
    ----------
    data : bytes
        The document.
    use_schema : bool
        Use the XML Schema when lxml and the ``iau-ades`` package are installed (default);
        False checks the documented field rules (:data:`FIELD_RULES`) only.

    Returns
    -------
    how : str
        ``'submit.xsd'`` / ``'general.xsd'`` (the schema used: submit when the document has an
        ``obsBlock``) or ``'field rules'``.
    errors : list of str
        Empty when valid; else the validator's messages (line numbers of the XML).
    """
    kind = "submit" if b"<obsBlock>" in data else "general"
    xsd = schema_file(kind) if use_schema else None
    if xsd is not None:
        try:
            from lxml import etree
        except ImportError:
            xsd = None
    if xsd is not None:
        schema = _SCHEMAS.get(kind)
        if schema is None:
            with xsd.open("rb") as f:
                schema = _SCHEMAS[kind] = etree.XMLSchema(etree.parse(f))
        try:
            doc = etree.fromstring(data)
        except etree.XMLSyntaxError as e:
            return f"{kind}.xsd", [f"not well-formed XML: {e}"]
        ok = schema.validate(doc)
        return f"{kind}.xsd", [] if ok else [f"line {e.line}: {e.message}" for e in schema.error_log]
    return "field rules", _field_rules(data, kind)


_SCHEMAS: dict = {}


def _field_rules(data: bytes, kind: str) -> list[str]:
    """The documented rules of :data:`FIELD_RULES` / :data:`REQUIRED_CONTEXT`, checked with the standard library."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        return [f"not well-formed XML: {e}"]
    errs = []
    if root.tag != "ades":
        errs.append(f"root element <{root.tag}>: expected <ades>")
    if root.get("version") != ADES_VERSION:
        errs.append(f"ades version {root.get('version')!r}: expected {ADES_VERSION!r}")
    records = list(root.iter("optical"))
    if kind == "submit":
        for block in root.iter("obsBlock"):
            ctx = block.find("obsContext")
            for b, keys in REQUIRED_CONTEXT.items():
                el = None if ctx is None else ctx.find(b)
                for k in keys:
                    if el is None or el.find(k) is None or not (el.find(k).text or "").strip():
                        errs.append(f"obsContext: {b}/{k} is required")
    if not records:
        errs.append("no optical records")
    for i, rec in enumerate(records, 1):                       # loop over records (field checks)
        tags = [c.tag for c in rec]
        known = [t for t in tags if t in OPTICAL_ORDER]
        if len(known) != len(tags):
            errs.append(f"optical {i}: unknown elements {[t for t in tags if t not in OPTICAL_ORDER]}")
        if known != sorted(known, key=OPTICAL_ORDER.index):
            errs.append(f"optical {i}: elements out of order {known}")
        for req in ("mode", "stn", "obsTime", "ra", "dec", "astCat"):
            if req not in tags:
                errs.append(f"optical {i}: {req} is required")
        if not any(t in tags for t in ("permID", "provID", "trkSub")):
            errs.append(f"optical {i}: one of permID, provID, trkSub is required")
        if "mag" in tags and "band" not in tags:
            errs.append(f"optical {i}: mag needs band")
        for c in rec:
            rule = FIELD_RULES.get(c.tag)
            if rule is None:
                continue
            pat, rng, maxlen = rule
            v = (c.text or "").strip()
            if not re.fullmatch(pat, v):
                errs.append(f"optical {i}: {c.tag} {v!r} does not match {pat}")
            elif maxlen is not None and len(v) > maxlen:
                errs.append(f"optical {i}: {c.tag} {v!r} longer than {maxlen}")
            elif rng is not None:
                x = float(v)
                lo, hi = rng
                if (lo is not None and x < lo) or (hi is not None and x > hi) or (c.tag == "ra" and x >= 360.0):
                    errs.append(f"optical {i}: {c.tag} {v} outside [{lo}, {hi}]")
    return errs
