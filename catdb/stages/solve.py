"""Stage ``solve``: give exposures an astrometric solution, or register a night's frames to each other.

As the Photometry Pipeline's ``pp_register`` does it (Mommert 2017, A&C 18, 47, section 3.2):

1. **Pixel positions**: SExtractor (:func:`catdb.ingest.extract.extract`, FITS_LDAC, no WCS
   needed) on each exposure's latest ``reduced`` product (the raw image with
   ``use_raw=true``); an exposure ingested from a catalogue uses that catalogue.
2. **Initial WCS**: the exposure's stored WCS when it has one, else a TAN projection centred on
   the pointing keywords (``exposure.pointing_ra/dec``, else ``OBJCTRA/OBJCTDEC``, ``RA/DEC``,
   ``TELRA/TELDEC`` of the stored header; sexagesimal RA in hours) with the pixel scale
   (``exposure.pixscale``, ``SECPIXX``..., ``206.265 XPIXSZ / FOCALLEN``); its rotation is
   unknown unless ``rotation`` is given, so SCAMP searches all position angles and both
   parities.
3. **Method** (``method``):

   * ``astrometry.net``: a blind solve with ``solve-field`` where it and index files are
     installed (:mod:`catdb.ingest.astrometry_net`); the run says when it is not installed or the
     field is smaller than the installed indexes' quads;
   * ``scamp``: SCAMP (:func:`catdb.ingest.scamp_run.solve_catalog`) against the stars of
     ``refcat`` in the field (``refcat_source``, propagated to the exposure's epoch with their
     proper motions), written as a FITS_LDAC reference catalogue; accepted with at least
     ``min_stars`` matched stars, an RMS <= ``max_rms`` and a clear pattern-matching contrast.
     ``wcs_status = 'solved'``, ``wcs_nstars`` / ``wcs_rms`` from SCAMP's XML;
   * ``register``: offline with no reference catalogue deep enough, the frames of one pointing
     and night (``exposure.night``; else the local date at the start of the night from ``mjd_mid``
     and ``site_lon``; else, no longitude being assumed, the instrument's observing session: a new
     one after a gap of more than 6 h, labelled ``session starting <UTC date-time>``, see
     :mod:`catdb.algorithms.nights`; the run counts which rule grouped its exposures in
     ``registration_night_from``) are registered to the frame with the most stars (then the smallest FWHM) by
     star-pattern matching and a least-squares affine fit on all matched stars
     (:func:`catdb.algorithms.astrometry.register_points`).  Positions then agree across the
     night to the registration RMS (``wcs_rms``), but the absolute frame is the reference frame's
     pointing keywords with an **assumed** rotation (``rotation``, default 0: north up, east left
     unless ``flip``): off by up to arcminutes and a rotation.  ``wcs_status = 'registered'``
     (never exported to the MPC); association, movers and light curves work on it.
   * ``auto``: astrometry.net if installed, else SCAMP when ``refcat`` has at least
     ``min_stars`` stars in the field, else register.

4. The solution goes through :func:`catdb.ingest.wcs_state.replace_exposure_wcs` (the exposure's
   WCS, footprint and detections' RA/Dec in this run's transaction; ``wcs_run_id`` = the run).
   An exposure that fails keeps its ``wcs_status`` and gets the reason in ``wcs_source``; the
   run's counts list it, and when it is left without a usable WCS it gets the ``not_solved``
   bit of ``exposure.quality_flags`` (cleared on the exposures the run solved or registered).
   Nothing is invented.

Exposures whose WCS came with their header (``wcs_status = 'header'``) are skipped unless
``redo_header=true``.  Re-running replaces the earlier solution.
"""
from __future__ import annotations

import logging
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from ..algorithms.astrometry import (
    header_ltv,
    initial_wcs_header,
    register_points,
    registered_wcs_header,
    shift_wcs_frame,
)
from ..errors import InputError
from ..ingest import astrometry_net
from ..ingest.extract import extract
from ..ingest.headers import read_header
from ..ingest.scamp_run import ScampError, solve_catalog, write_reference_ldac
from ..ingest.sextractor import read_catalogs
from ..ingest.wcs_state import detection_frame_ltv, exposure_pointing, replace_exposure_wcs, stored_wcs_header
from ..schema.tables import QUALITY_FLAGS, WCS_USABLE
from ..wcsutil import wcs_from_header
from ._common import IMAGE_SUFFIXES, file_stem, night_groups, reference_filter
from .base import Param, Stage, StageContext, register

log = logging.getLogger("catdb.stages.solve")

METHODS = ("auto", "scamp", "astrometry.net", "register")
_NOT_SOLVED = QUALITY_FLAGS["not_solved"]


#: image endings and catalogue endings (the SExtractor ``.cat``, LDAC ``.ldac``)
_STEM_SUFFIXES = IMAGE_SUFFIXES + (".cat", ".ldac")


def _stars(cat_path, min_snr: float):
    """Clean stars of a FITS_LDAC catalogue, brightest first: (xy (n, 2), median FWHM px).

    Unflagged, S/N >= ``min_snr``, not sharper than the PSF (FWHM_IMAGE >= max(0.5 median, 1.5 px)).
    """
    t = read_catalogs(cat_path)[0].table
    x = np.asarray(t["XWIN_IMAGE"] if "XWIN_IMAGE" in t.colnames else t["X_IMAGE"], float)
    y = np.asarray(t["YWIN_IMAGE"] if "YWIN_IMAGE" in t.colnames else t["Y_IMAGE"], float)
    flux = np.asarray(t["FLUX_AUTO"], float)
    ferr = np.asarray(t["FLUXERR_AUTO"], float) if "FLUXERR_AUTO" in t.colnames else np.full(len(t), np.nan)
    flags = np.asarray(t["FLAGS"]) if "FLAGS" in t.colnames else np.zeros(len(t), int)
    with np.errstate(divide="ignore", invalid="ignore"):
        ok = (flags == 0) & np.isfinite(x) & np.isfinite(y) & (flux > 0) & ~(flux < min_snr * ferr)
    fwhm = np.asarray(t["FWHM_IMAGE"], float) if "FWHM_IMAGE" in t.colnames else np.full(len(t), np.nan)
    if np.isfinite(fwhm[ok]).any():
        # hot pixels and cosmic rays (sharper than the PSF; fixed on the detector in raw frames, they
        # would register the detector, not the sky): FWHM below half the median, or below 1.5 px
        med = float(np.nanmedian(fwhm[ok]))
        ok &= fwhm >= max(0.5 * med, 1.5)
    order = np.argsort(-flux[ok], kind="stable")
    xy = np.column_stack([x[ok], y[ok]])[order]
    f = fwhm[ok]
    f = f[np.isfinite(f) & (f > 0)]
    return xy, (float(np.median(f)) if f.size else float("nan"))


@register
class Solve(Stage):
    name = "solve"
    description = "astrometric solution (astrometry.net / SCAMP against a refcat) or frame-to-frame registration"
    params = [
        Param("method", str, "auto", "auto | scamp | astrometry.net | register (see catdb stage solve docs)",
              choices=METHODS),
        Param("refcat", str, None, "Reference catalogue (refcat_source.catalog) for SCAMP"),
        Param("outdir", str, "./catdb-products/", "Directory for solve/ (SExtractor catalogues, SCAMP files)"),
        Param("use_raw", bool, False, "Extract the raw image instead of the latest reduced product"),
        Param("redo_header", bool, False, "Also solve exposures whose WCS came with their header"),
        Param("detect_thresh", float, 5.0, "SExtractor DETECT_THRESH for the solving catalogue (sigma)"),
        Param("min_snr", float, 10.0, "S/N of the stars used for matching"),
        Param("min_stars", int, 8, "Fewest matched stars accepted (SCAMP reference stars, registration pairs)"),
        Param("max_rms", float, 1.0, "Largest accepted SCAMP RMS about the reference (arcsec)"),
        Param("position_maxerr", float, 10.0, "How far the initial WCS may be off (arcmin; SCAMP POSITION_MAXERR)"),
        Param("rotation", float, None, "Known position angle of the image +y axis (deg E of N); "
                                       "unknown: SCAMP searches, registration assumes 0"),
        Param("flip", bool, False, "Image is mirrored (east right) - with rotation, or for registration"),
        Param("distort_degrees", int, 1, "SCAMP TPV polynomial degree (1 linear; 3 needs many stars)"),
        Param("match_radius", float, 2.0, "Registration: pairing radius after the pattern match (pixels)"),
        Param("workers", int, 2, "SExtractor processes run at once"),
    ]
    outputs: list = []

    # ------------------------------------------------------------------ helpers
    def _exposures(self, ctx):
        rows = ctx.execute(
            "SELECT e.id, e.path, e.hdu, e.wcs_status, e.wcs_source, e.catalog_path, e.mjd_mid, "
            "r.path, r.hdu FROM exposure e "
            "LEFT JOIN LATERAL (SELECT path, hdu FROM image_product p WHERE p.exposure_id = e.id "
            "AND p.kind = 'reduced' ORDER BY p.id DESC LIMIT 1) r ON true WHERE e.id = ANY(%s) ORDER BY e.id",
            (ctx.inputs,)).fetchall()
        keys = ("id", "path", "hdu", "status", "source", "catalog_path", "mjd", "red", "red_hdu")
        exps = [dict(zip(keys, r)) for r in rows]
        # the night of registration groups: stored night, else from site_lon, else the time-gap session
        # (no longitude is assumed; catdb.algorithms.nights)
        nights, basis = night_groups(ctx.conn, [e["id"] for e in exps])
        for e, nt, b in zip(exps, nights, basis):
            e.update(night=nt, night_basis=b)
        return exps

    def _fail(self, ctx, e, reason, failed):
        failed.append({"exposure": e["id"], "path": e["path"], "reason": reason})
        kept = f"; WCS kept: {e['source']}" if e["status"] in ("header", "solved", "registered") else ""
        ctx.execute("UPDATE exposure SET wcs_source = %s WHERE id = %s",
                    (f"solve run {ctx.run_id} failed: {reason}{kept}", e["id"]))

    def _refcat_stars(self, ctx, refcat, ra, dec, radius, mjd):
        """Reference stars in a cone, at the exposure's epoch: arrays ra, dec, err (arcsec), mag, epoch (yr)."""
        rows = ctx.execute(
            "SELECT r.ra, r.dec, COALESCE(greatest(r.ra_err, r.dec_err) / 1000.0, 0.1), r.epoch, r.pmra, r.pmdec, "
            "(SELECT value::float FROM jsonb_each_text(r.mags) ORDER BY key LIMIT 1) FROM refcat_source r "
            "WHERE r.catalog = %s AND q3c_radial_query(r.ra, r.dec, %s, %s, %s)",
            (refcat, float(ra), float(dec), float(radius))).fetchall()
        a = np.array(rows, dtype=float).reshape(-1, 7)
        if mjd is not None and len(a):
            t = 2000.0 + (float(mjd) - 51544.5) / 365.25
            dt = np.where(np.isfinite(a[:, 3]), t - a[:, 3], 0.0)
            pmra = np.nan_to_num(a[:, 4])
            pmdec = np.nan_to_num(a[:, 5])
            a[:, 0] = a[:, 0] + pmra * dt / 3.6e6 / np.cos(np.radians(a[:, 1]))
            a[:, 1] = a[:, 1] + pmdec * dt / 3.6e6
            a[:, 3] = np.where(np.isfinite(a[:, 3]), t, a[:, 3])
        return a

    # ------------------------------------------------------------------ run
    def run(self, ctx: StageContext) -> dict:
        p = ctx.params
        if p["workers"] < 1 or p["min_stars"] < 3:
            raise InputError("parameters workers >= 1 and min_stars >= 3 expected")
        anet = astrometry_net.status()
        counts: dict = {"astrometry_net": anet["message"]}
        if not anet["installed"]:
            log.warning("solve: %s", anet["message"])
        if p["method"] == "astrometry.net" and not anet["usable"]:
            raise InputError(f"method=astrometry.net: {anet['message']}")
        if p["method"] == "scamp" and not p["refcat"]:
            raise InputError("method=scamp needs a reference catalogue: --param refcat=NAME "
                             "(catdb refcat import / catdb refcat fetch)")
        if p["refcat"]:
            reference_filter(ctx.conn, p["refcat"])  # refuses an unknown catalogue
        outdir = Path(p["outdir"]).expanduser().resolve() / "solve"
        exps = self._exposures(ctx)
        failed: list = []
        skipped = [e["id"] for e in exps if e["status"] == "header" and not p["redo_header"]]
        todo = [e for e in exps if e["id"] not in skipped]

        # 1. pixel positions -----------------------------------------------------------------
        jobs = []
        for e in todo:
            is_cat = e["catalog_path"] and e["catalog_path"] == e["path"]
            if is_cat:
                e.update(image=None, cat=Path(e["catalog_path"]), kind="catalogue")
            elif p["use_raw"] or e["red"] is None:
                if not p["use_raw"]:
                    self._fail(ctx, e, "no reduced product (run catdb stage reduce, or use_raw=true)", failed)
                    continue
                e.update(image=e["path"], image_hdu=e["hdu"], kind="raw")
            else:
                e.update(image=e["red"], image_hdu=e["red_hdu"], kind="reduced")
            if e["image"] is not None:
                if not Path(e["image"]).is_file():
                    self._fail(ctx, e, f"{e['kind']} image not found: {e['image']}", failed)
                    continue
                e["cat"] = outdir / f"e{e['id']}_{file_stem(e['image'], _STEM_SUFFIXES)}.cat"
                jobs.append(e)
            pt = exposure_pointing(ctx.conn, e["id"])
            e["pointing"] = pt
        todo = [e for e in todo if "pointing" in e]
        outdir.mkdir(parents=True, exist_ok=True)

        def _one(e):
            cfg = {"DETECT_THRESH": p["detect_thresh"], "ANALYSIS_THRESH": p["detect_thresh"]}
            if e["pointing"]["pixscale"]:
                cfg["PIXEL_SCALE"] = e["pointing"]["pixscale"]
            try:
                extract(e["image"], e["cat"], hdu=e["image_hdu"], config=cfg, require_wcs=False)
            except Exception as exc:  # one exposure's failure is a reason, not the run's
                return f"SExtractor: {' '.join(str(exc).split())[:300]}"
            return None

        with ThreadPoolExecutor(max_workers=p["workers"]) as pool:
            errs = list(pool.map(_one, jobs))
        for e, err in zip(jobs, errs):
            if err:
                self._fail(ctx, e, err, failed)
                e["dead"] = True
        todo = [e for e in todo if not e.get("dead")]
        for e in todo:
            hdr = read_header(e["image"], e["image_hdu"])[0] if e["image"] else None
            e["ltv"] = header_ltv(hdr) if hdr is not None else None
            if e["ltv"] is None:
                e["ltv"] = detection_frame_ltv(ctx.conn, e["id"])
            if hdr is not None:
                e["naxis"] = (int(hdr.get("ZNAXIS1", hdr.get("NAXIS1"))), int(hdr.get("ZNAXIS2", hdr.get("NAXIS2"))))
            else:
                e["naxis"] = (e["pointing"]["naxis1"], e["pointing"]["naxis2"])
            e["xy"], e["fwhm"] = _stars(e["cat"], p["min_snr"])

        # 2. method per exposure ---------------------------------------------------------------
        to_register, methods = [], {}
        for e in todo:
            pt = e["pointing"]
            stored, status = stored_wcs_header(ctx.conn, e["id"])
            usable = stored is not None and status in ("header", "solved")
            if usable:
                e["init"] = shift_wcs_frame(stored, e["ltv"])
                e["init_from"] = f"stored WCS ({status})"
            elif pt["ra"] is not None and pt["pixscale"] and e["naxis"][0]:
                n1, n2 = e["naxis"]
                e["init"] = initial_wcs_header(pt["ra"], pt["dec"], pt["pixscale"], n1, n2,
                                               rotation=p["rotation"] or 0.0, flip=p["flip"])
                e["init_from"] = f"pointing keywords ({pt['source']})"
            else:
                e["init"] = None
            method = p["method"]
            anet_here = anet["usable"]
            if anet["installed"] and pt["pixscale"] and e["naxis"][0]:
                field = min(e["naxis"]) * pt["pixscale"] / 60.0
                st = astrometry_net.status(field_arcmin=field)
                anet_here = st["usable"]
                if not anet_here:
                    counts.setdefault("astrometry_net_not_used", {})[str(e["id"])] = st["message"]
            if method == "astrometry.net" and not anet_here:
                self._fail(ctx, e, f"astrometry.net: {counts['astrometry_net_not_used'][str(e['id'])]}", failed)
                continue
            if method == "auto":
                if anet_here:
                    method = "astrometry.net"
                elif p["refcat"] and e["init"] is not None and self._n_in_field(ctx, e) >= p["min_stars"]:
                    method = "scamp"
                else:
                    method = "register"
            methods[e["id"]] = method
            if e["init"] is None and method != "astrometry.net":
                self._fail(ctx, e, "no WCS, and no pointing keywords (OBJCTRA/OBJCTDEC, RA/DEC, TELRA/TELDEC) "
                                   "or pixel scale (SECPIXX, XPIXSZ/FOCALLEN) for an initial one", failed)
                continue
            if method == "register":
                to_register.append(e)
            elif method == "scamp":
                self._scamp(ctx, e, p, outdir, failed, counts, write_reference_ldac, solve_catalog,
                            replace_exposure_wcs)
            else:
                res = astrometry_net.solve(e["cat"], outdir / f"e{e['id']}_anet", e["naxis"],
                                           e["pointing"], timeout=300)
                if res["header"] is None:
                    self._fail(ctx, e, f"astrometry.net: {res['reason']}", failed)
                else:
                    replace_exposure_wcs(ctx.conn, e["id"], res["header"], status="solved",
                                         source="astrometry.net solve-field (blind)", refcat=res.get("index"),
                                         nstars=res.get("nstars"), rms=None, run_id=ctx.run_id, frame_ltv=e["ltv"])
                    counts.setdefault("solved", []).append(e["id"])
        if to_register:
            self._register(ctx, to_register, p, failed, counts, replace_exposure_wcs)

        # quality bit not_solved: set on the exposures this run left without a usable WCS, cleared on the others
        # it worked on (the stages' QA selections and the report see it; wcs_source says why)
        worked = [e["id"] for e in exps if e["id"] not in skipped]
        ctx.execute("UPDATE exposure SET quality_flags = CASE WHEN id = ANY(%s) AND wcs_status <> ALL(%s) "
                    "THEN quality_flags | %s::int ELSE quality_flags & ~%s::int END WHERE id = ANY(%s)",
                    ([f["exposure"] for f in failed], list(WCS_USABLE), _NOT_SOLVED, _NOT_SOLVED, worked))
        counts.update({"exposures": len(exps), "skipped_header": skipped,
                       "solved": counts.get("solved", []), "registered": counts.get("registered", []),
                       "failed": failed, "n_solved": len(counts.get("solved", [])),
                       "n_registered": len(counts.get("registered", [])), "n_failed": len(failed),
                       "method": {str(k): v for k, v in methods.items()}})
        if failed:
            log.warning("solve: %d exposure(s) not solved: %s", len(failed),
                        "; ".join(f"{f['exposure']}: {f['reason']}" for f in failed[:5]))
        return counts

    def _n_in_field(self, ctx, e):
        n1, n2 = e["naxis"]
        scale = e["pointing"]["pixscale"] or 1.0
        w = wcs_from_header(e["init"])
        ra, dec = w.all_pix2world([(n1 + 1) / 2], [(n2 + 1) / 2], 1)
        radius = np.hypot(n1, n2) / 2 * scale / 3600.0
        e["field"] = (float(ra[0]), float(dec[0]), radius)
        return ctx.execute("SELECT count(*) FROM refcat_source r WHERE r.catalog = %s AND "
                           "q3c_radial_query(r.ra, r.dec, %s, %s, %s)",
                           (ctx.params["refcat"], float(ra[0]), float(dec[0]), radius)).fetchone()[0]

    def _scamp(self, ctx, e, p, outdir, failed, counts, write_reference_ldac, solve_catalog, replace_exposure_wcs):
        if "field" not in e:
            self._n_in_field(ctx, e)
        ra, dec, radius = e["field"]
        ref = self._refcat_stars(ctx, p["refcat"], ra, dec, radius + p["position_maxerr"] / 60.0, e["mjd"])
        if len(ref) < p["min_stars"]:
            self._fail(ctx, e, f"{len(ref)} stars of {p['refcat']} in the field ({p['min_stars']} needed)", failed)
            return
        work = outdir / f"e{e['id']}_scamp"
        work.mkdir(parents=True, exist_ok=True)
        refpath = write_reference_ldac(work / "reference.ldac", ref[:, 0], ref[:, 1], ref[:, 2], ref[:, 6],
                                       np.full(len(ref), np.nan),
                                       np.where(np.isfinite(ref[:, 3]), ref[:, 3], 2000.0))
        blind = e["init_from"].startswith("pointing") and p["rotation"] is None
        try:
            sol = solve_catalog(e["cat"], refpath, e["init"], work, naxis=e["naxis"],
                                position_maxerr=p["position_maxerr"], posangle_maxerr=180.0 if blind else 5.0,
                                match_flipped=blind, distort_degrees=p["distort_degrees"], min_stars=p["min_stars"],
                                max_rms=p["max_rms"])
        except ScampError as exc:  # a timeout or crash on one exposure is its reason, not the run's
            self._fail(ctx, e, " ".join(str(exc).split())[:400], failed)
            return
        if not sol.ok:
            self._fail(ctx, e, f"SCAMP against {p['refcat']}: {sol.reason}", failed)
            return
        replace_exposure_wcs(ctx.conn, e["id"], sol.header, status="solved",
                             source=f"SCAMP against {p['refcat']} (from {e['init_from']}; {sol.n_ref} stars, "
                                    f"RMS {sol.rms:.3f}\", contrast AS {sol.as_contrast:.1f} XY {sol.xy_contrast:.1f})",
                             refcat=p["refcat"], nstars=sol.n_ref, rms=sol.rms, run_id=ctx.run_id, frame_ltv=e["ltv"])
        counts.setdefault("solved", []).append(e["id"])
        counts.setdefault("rms_arcsec", {})[str(e["id"])] = round(sol.rms, 4)

    def _register(self, ctx, exps, p, failed, counts, replace_exposure_wcs):
        # groups: one night, one pointing (within a quarter of the field); which rule gave the night is counted
        # (night: exposure.night; site_lon: local noon at the site; time_gap: session of the instrument, no site
        # known; unknown: no mjd_mid)
        counts["registration_night_from"] = dict(Counter(e["night_basis"] for e in exps))
        groups: list[list] = []
        for e in sorted(exps, key=lambda e: (e["night"] or "", e["mjd"] or 0)):
            pt = e["pointing"]
            for g in groups:
                h = g[0]
                sep = np.hypot((pt["ra"] - h["pointing"]["ra"]) * np.cos(np.radians(pt["dec"])),
                               pt["dec"] - h["pointing"]["dec"]) * 3600.0 if pt["ra"] is not None else np.inf
                field = min(h["naxis"]) * (h["pointing"]["pixscale"] or 0.0)
                if g[0]["night"] == e["night"] and sep <= field / 4:
                    g.append(e)
                    break
            else:
                groups.append([e])
        rms_out = counts.setdefault("registration_rms_arcsec", {})
        for g in groups:
            ok = [e for e in g if len(e["xy"]) >= p["min_stars"]]
            for e in g:
                if len(e["xy"]) < p["min_stars"]:
                    self._fail(ctx, e, f"{len(e['xy'])} stars with S/N >= {p['min_snr']} ({p['min_stars']} needed "
                                       "to register)", failed)
            if not ok:
                continue
            ref = sorted(ok, key=lambda e: (-len(e["xy"]), e["fwhm"] if np.isfinite(e["fwhm"]) else np.inf))[0]
            pt = ref["pointing"]
            if pt["ra"] is None or not pt["pixscale"]:
                for e in g:
                    self._fail(ctx, e, f"registration reference exposure {ref['id']} has no pointing keywords or "
                                       "pixel scale for the frame of the night", failed)
                continue
            n1, n2 = ref["naxis"]
            rot = p["rotation"] if p["rotation"] is not None else 0.0
            ref_wcs = initial_wcs_header(pt["ra"], pt["dec"], pt["pixscale"], n1, n2, rotation=rot, flip=p["flip"])
            frame = (f"frame: pointing keywords of exposure {ref['id']} ({pt['source']}), rotation "
                     f"{'given' if p['rotation'] is not None else 'ASSUMED'} {rot:g} deg, "
                     f"{'east right' if p['flip'] else 'north up east left'}; absolute position unverified")
            replace_exposure_wcs(ctx.conn, ref["id"], ref_wcs, status="registered",
                                 source=f"registration reference of {len(ok)} exposures ({frame})",
                                 nstars=len(ref["xy"]), rms=None, run_id=ctx.run_id, frame_ltv=ref["ltv"])
            counts.setdefault("registered", []).append(ref["id"])
            counts.setdefault("registration_reference", []).append(ref["id"])
            for e in ok:
                if e is ref:
                    continue
                try:
                    reg = register_points(e["xy"], ref["xy"], match_radius=p["match_radius"],
                                          min_matched=p["min_stars"])
                except InputError as exc:
                    self._fail(ctx, e, f"registration to exposure {ref['id']}: {exc.message}", failed)
                    continue
                rms = reg.rms_px * pt["pixscale"]
                replace_exposure_wcs(ctx.conn, e["id"], registered_wcs_header(ref_wcs, reg), status="registered",
                                     source=f"registered to exposure {ref['id']} ({frame}); {reg.n_matched} stars, "
                                            f"affine least squares",
                                     nstars=reg.n_matched, rms=rms, run_id=ctx.run_id, frame_ltv=e["ltv"])
                counts.setdefault("registered", []).append(e["id"])
                rms_out[str(e["id"])] = round(rms, 4)
