"""One vocabulary of image types (``IMAGETYP`` / ``OBSTYPE`` values) for ingest and reduction.

Every acquisition program spells the kind of a frame its own way: IRAF/NOAO ``object``,
``zero``, ``flat``; SBIG's FITS extensions (SBFITSEXT 1.0, used by CCDOps, TheSkyX, MaxIm DL,
CCDSoft, APT) ``Light Frame``, ``Bias Frame``, ``Dark Frame``, ``Flat Field`` and MaxIm DL's
``Tricolor Image``; N.I.N.A. ``LIGHT``, ``DARK``, ``BIAS``, ``FLAT``, ``DARKFLAT``,
``SNAPSHOT`` (its FITS documentation and ``FITSTest.FITSImageMetaDataSNAPPopulated``: a snapshot
is written as ``LIGHT``); LCO ``EXPOSE``, ``SKYFLAT``, ``LAMPFLAT``; Lowell ``object``,
``bias``, ``skyflat``, ``domeflat``; CCDAutoPilot's "IRAF/Mira standard set" ``LIGHT``,
``DARK``, ``BIAS``, ``Flat``.  :func:`normalise_image_type` maps them all to the catdb types
below, so that ``catdb ingest`` (``exposure.image_type``) and the reduce stage agree.
The module imports nothing from the database layer.

catdb image types
-----------------
``science``  a light frame of the sky (object, light, expose, standard, ...)
``bias``     zero-second read-out frame (bias, zero)
``dark``     shutter-closed exposure (dark; also N.I.N.A.'s DARKFLAT, a dark at the flats'
             exposure time)
``flat``     flat field of any source (flat, sky/dome/lamp/twilight flat, flat field)
``focus``    a focus frame labelled as such (``focus``); a focus run written as ``Light Frame``
             (TheSkyX) is ``science`` here and is left out by the reduce stage by its size
``arc``      comparison lamp (arc, comp)
``tricolor`` MaxIm DL's combined colour image (``Tricolor Image``): processed, never reduced
anything else: the value lower-cased and stripped (e.g. ``'test'``), never a guess.
"""
from __future__ import annotations

import re

__all__ = ["IMAGE_TYPES", "CATDB_TYPES", "normalise_image_type", "canonical_key"]

#: the types catdb assigns (anything else is a raw value kept as it was, lower case)
CATDB_TYPES = ("science", "bias", "dark", "flat", "focus", "arc", "tricolor")

#: canonical key (see :func:`canonical_key`) -> catdb image type
IMAGE_TYPES = {
    # science
    "object": "science", "science": "science", "sci": "science", "light": "science",
    "light frame": "science", "lightframe": "science", "expose": "science", "standard": "science",
    "target": "science", "snapshot": "science", "obj": "science",
    # bias
    "bias": "bias", "bias frame": "bias", "biasframe": "bias", "zero": "bias", "offset": "bias",
    # dark
    "dark": "dark", "dark frame": "dark", "darkframe": "dark", "darkflat": "dark", "dark flat": "dark",
    "flatdark": "dark", "flat dark": "dark",
    # flat
    "flat": "flat", "flat field": "flat", "flatfield": "flat", "flat frame": "flat", "flatframe": "flat",
    "skyflat": "flat", "sky flat": "flat", "domeflat": "flat", "dome flat": "flat", "twiflat": "flat",
    "twilight flat": "flat", "lampflat": "flat", "lamp flat": "flat",
    # others
    "focus": "focus", "arc": "arc", "comp": "arc", "comparison": "arc",
    "tricolor image": "tricolor", "tricolor": "tricolor",
}


def canonical_key(value) -> str:
    """Lower case, stripped, runs of blanks / ``_`` / ``-`` collapsed to one blank.

    ``'Light_Frame'``, ``'LIGHT FRAME '`` and ``'light-frame'`` all give ``'light frame'``.
    """
    return re.sub(r"[\s_\-]+", " ", str(value).strip().lower())


def normalise_image_type(value, overrides: dict | None = None) -> str | None:
    """The catdb image type of an ``IMAGETYP``/``OBSTYPE`` value.

    Parameters
    ----------
    value : str or None
        The header value as written (``'Bias Frame'``, ``'zero'``, ``'LIGHT'`` ...).
    overrides : dict, optional
        Instrument-specific table (a keymap's ``[image_types]``: lower-cased value -> type),
        consulted first, with the value lower-cased and stripped, then canonicalised.

    Returns
    -------
    str or None
        One of :data:`CATDB_TYPES`; the value lower-cased and stripped when it is in no
        table; ``None`` for ``None`` or an empty value.
    """
    if value is None or not str(value).strip():
        return None
    low = str(value).strip().lower()
    key = canonical_key(value)
    if overrides:
        for k in (low, key):
            if k in overrides:
                return overrides[k]
    if key in IMAGE_TYPES:
        return IMAGE_TYPES[key]
    if key.replace(" ", "") in IMAGE_TYPES:
        return IMAGE_TYPES[key.replace(" ", "")]
    return low
