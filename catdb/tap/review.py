"""The candidate review page of ``catdb serve``: ``/review``.

A person looks at each moving-object candidate (``track.status = 'candidate'``) and decides
``real``, ``artefact`` or ``known`` (:mod:`catdb.review`).  Per candidate the page shows

* the cutout strip of the report (:func:`catdb.export.report.track_stamps`, stamps centred on
  the detections: the candidate stays in the middle, the stars move) and a blink: an animated
  GIF of stamps on a fixed sky position (the track's position at ``mjd_ref``) with one zscale
  for all frames (Tody 1986), in which the stars stay and the candidate moves;
* the motion fit: offsets in RA cos(Dec) and Dec from the track's reference position against
  time with the linear motion of ``track`` (``rate_ra``, ``rate_dec``, ``mjd_ref``), and the
  residuals from it, outlier epochs of the fit marked;
* the light curve (:func:`catdb.export.lightcurve.lightcurve`: forced photometry and detections);
* the identification: ``track.designation``, the SkyBoT match (``skybot_name``, separation, rate
  difference, class from ``skybot_object``) and the JPL Horizons target linked by the ephemeris
  stage (``ephemeris_target``);
* the decision history, and buttons and keyboard shortcuts (``r`` real, ``a`` artefact, ``k``
  known, ``c`` comment, ``n``/``p`` next/previous, ``b`` blink on/off).

Resources (under ``/review``): ``GET /review`` the page; ``GET /review/candidates.json``;
``GET /review/track/<id>/{strip.png, blink.gif, motion.png, lightcurve.png}``;
``POST /review/decision`` (JSON ``{"track_id", "decision", "comment"}``).

The review writes: it connects with the URL ``catdb serve`` was given (the database owner, not
``catdb_reader`` as the TAP queries do).  A POST must carry the per-server token embedded in
the page (header ``X-Catdb-Review-Token``) and be ``application/json``, so another web site
cannot make a browser post a decision (CSRF); the reviewer recorded is the server's
(``--reviewer``, else the operating-system user), never a name the browser sends.
"""
from __future__ import annotations

import hmac
import html
import io
import json
import logging
import secrets
import threading

import numpy as np
from astropy.visualization import ZScaleInterval

from ..db.engine import connect
from ..errors import InputError
from ..export.lightcurve import lightcurve
from ..export.report import strip_png_bytes, track_stamps
from ..review import LATEST_SQL, record_decision

log = logging.getLogger(__name__)

TOKEN_HEADER = "HTTP_X_CATDB_REVIEW_TOKEN"
#: blink stamps: side = motion during the track + this margin, within these limits [arcsec]
BLINK_MARGIN, BLINK_MIN, BLINK_MAX = 20.0, 30.0, 240.0
#: largest request body accepted by POST /review/decision [bytes]
MAX_BODY = 64 * 1024


class ReviewError(Exception):
    def __init__(self, status: str, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class ReviewApp:
    """The review resources, mounted at ``/review`` by :class:`catdb.tap.service.TapService`.

    Parameters
    ----------
    url : str or None
        Database URL of a login that may write (the owner's, as ``catdb serve`` is given it).
    reviewer : str
        Name recorded with every decision.
    status : str
        Tracks reviewed: those with this ``track.status``.
    token : str, optional
        The CSRF token (default a random one per server).
    allowed_hosts : collection of str, optional
        Host names (without port) the review answers to; other ``Host`` headers get 403, so a web
        page whose own name resolves to 127.0.0.1 (DNS rebinding) cannot read the page and its
        token.  None answers any host (a server listening on a public address).
    """

    def __init__(self, url, reviewer: str, *, status: str = "candidate", token: str | None = None,
                 allowed_hosts=None):
        self.url = url
        self.allowed_hosts = None if allowed_hosts is None else {h.lower() for h in allowed_hosts}
        self.reviewer = reviewer
        self.status = status
        self.token = token or secrets.token_urlsafe(32)
        self._cache: dict = {}
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- dispatch
    def dispatch(self, environ, method: str, rest: str):
        """(status, headers, body) of a request for ``/review/<rest>``; raises ReviewError."""
        if self.allowed_hosts is not None:
            host = environ.get("HTTP_HOST", "").lower()
            host = host[1:host.index("]")] if host.startswith("[") and "]" in host else host.rsplit(":", 1)[0]
            if host not in self.allowed_hosts:
                raise ReviewError("403 Forbidden", f"host {host!r} not served: open the review page as "
                                                   "http://127.0.0.1:PORT/review")
        if rest in ("", "index.html"):
            status, headers, body = _ok("text/html; charset=utf-8", self.page(
                environ.get("SCRIPT_NAME", "").rstrip("/") + "/review/").encode())
            # no framing (a page of another site cannot overlay its keys and buttons); no sniffing
            headers += [("X-Frame-Options", "DENY"), ("Content-Security-Policy", "frame-ancestors 'none'"),
                        ("X-Content-Type-Options", "nosniff"), ("Cache-Control", "no-store")]
            return status, headers, body
        if rest == "candidates.json":
            return _ok("application/json", json.dumps(self.candidates(), default=str).encode())
        if rest == "decision":
            if method != "POST":
                raise ReviewError("405 Method Not Allowed", "POST a decision")
            return _ok("application/json", json.dumps(self.post_decision(environ)).encode())
        parts = rest.split("/")
        if len(parts) == 3 and parts[0] == "track" and parts[1].isdigit():
            tid, what = int(parts[1]), parts[2]
            makers = {"strip.png": ("image/png", self._strip), "blink.gif": ("image/gif", self._blink),
                      "motion.png": ("image/png", self._motion), "lightcurve.png": ("image/png", self._lightcurve)}
            if what in makers:
                ctype, fn = makers[what]
                body = self._cached((what, tid), fn, tid)
                if body is None:
                    raise ReviewError("404 Not Found", f"track {tid}: no {what} (no images or no data)")
                return "200 OK", [("Content-Type", ctype), ("Cache-Control", "max-age=3600")], body
        raise ReviewError("404 Not Found", f"no resource /review/{rest}")

    def _conn(self):
        return connect(self.url)

    def _cached(self, key, fn, tid):
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        with self._conn() as c:
            if c.execute("SELECT 1 FROM track WHERE id = %s", (tid,)).fetchone() is None:
                raise ReviewError("404 Not Found", f"no track {tid}")
            body = fn(c, tid)
        with self._lock:
            if len(self._cache) > 512:
                self._cache.clear()
            self._cache[key] = body
        return body

    # ---------------------------------------------------------------- decisions
    def post_decision(self, environ) -> dict:
        sent = environ.get(TOKEN_HEADER, "")
        if not sent or not hmac.compare_digest(sent.encode(), self.token.encode()):
            raise ReviewError("403 Forbidden", "missing or wrong review token: reload the review page")
        if not environ.get("CONTENT_TYPE", "").split(";")[0].strip().lower() == "application/json":
            raise ReviewError("415 Unsupported Media Type", "POST the decision as application/json")
        try:
            n = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            n = 0
        if n <= 0 or n > MAX_BODY:
            raise ReviewError("400 Bad Request", f"expected a JSON body of 1 to {MAX_BODY} bytes")
        try:
            body = json.loads(environ["wsgi.input"].read(n).decode("utf-8"))
            tid, decision = body["track_id"], body["decision"]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise ReviewError("400 Bad Request", 'expected {"track_id": N, "decision": "real|artefact|known", '
                                                 '"comment": "..."}') from None
        try:
            with self._conn() as c:
                return record_decision(c, tid, decision, reviewer=self.reviewer, comment=body.get("comment"))
        except InputError as e:
            raise ReviewError("400 Bad Request", str(e)) from None

    # ---------------------------------------------------------------- data
    def candidates(self) -> list[dict]:
        """The tracks to review with their facts, identification and decisions (newest first)."""
        with self._conn() as c:
            rows = c.execute(
                """SELECT t.id, t.n_detections, t.mjd_first, t.mjd_last, t.ra, t.dec, t.rate, t.rate_ra,
                          t.rate_dec, t.pa, t.rms, t.mean_mag, t.designation, t.skybot_name, t.skybot_sep,
                          t.skybot_rate_diff, t.skybot_delta,
                          (SELECT class FROM skybot_object s WHERE s.name = t.skybot_name LIMIT 1),
                          (SELECT json_agg(json_build_object('target', e.target, 'name', e.target_name,
                                  'mode', e.mode, 'sep', e.sep_median, 'n', e.n_exposures))
                           FROM ephemeris_target e WHERE e.track_id = t.id),
                          (SELECT json_agg(json_build_object('decision', v.decision, 'comment', v.comment,
                                  'reviewer', v.reviewer, 'decided_at',
                                  to_char(v.decided_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'))
                                  ORDER BY v.decided_at DESC, v.id DESC)
                           FROM track_review v WHERE v.track_id = t.id),
                          (SELECT count(*) FROM track_detection td WHERE td.track_id = t.id AND td.outlier)
                   FROM track t WHERE t.status = %s ORDER BY t.id""", (self.status,)).fetchall()
            latest = {r[0]: r[1] for r in c.execute(f"SELECT track_id, decision FROM ({LATEST_SQL}) x").fetchall()}
        keys = ("id", "n_detections", "mjd_first", "mjd_last", "ra", "dec", "rate", "rate_ra", "rate_dec", "pa",
                "rms", "mean_mag", "designation", "skybot_name", "skybot_sep", "skybot_rate_diff", "skybot_delta",
                "skybot_class", "horizons", "history", "n_outliers")
        out = []
        for r in rows:
            d = dict(zip(keys, r))
            d["history"] = d["history"] or []
            d["horizons"] = d["horizons"] or []
            d["decision"] = latest.get(d["id"])
            out.append(d)
        return out

    # ---------------------------------------------------------------- figures
    def _strip(self, conn, tid):
        stamps, labels = track_stamps(conn, tid)
        if not stamps:
            return None
        return strip_png_bytes(stamps, labels, f"track {tid}: centred on each detection")

    def _blink(self, conn, tid):
        """Animated GIF of stamps on the track's reference position, one zscale for all frames."""
        from PIL import Image, ImageDraw

        ra, dec, rate, t0, t1 = conn.execute("SELECT ra, dec, rate, mjd_first, mjd_last FROM track WHERE id = %s",
                                             (tid,)).fetchone()
        if ra is None or dec is None:
            return None
        travel = (rate or 0.0) * ((t1 or 0.0) - (t0 or 0.0)) * 24.0
        size = float(np.clip(travel + BLINK_MARGIN, BLINK_MIN, BLINK_MAX))
        stamps, labels = track_stamps(conn, tid, max_epochs=12, size_arcsec=size, centre=(ra, dec))
        stamps = [s for s in stamps if np.isfinite(s).sum() > 10]
        if not stamps:
            return None
        allpix = np.concatenate([s[np.isfinite(s)] for s in stamps])
        lo, hi = ZScaleInterval().get_limits(allpix)
        frames = []
        scale = max(1, int(240 // stamps[0].shape[0]))
        for s, lab in zip(stamps, labels):                     # loop over frames (<= 12)
            g = np.clip((np.nan_to_num(s, nan=lo) - lo) / ((hi - lo) or 1.0), 0, 1)
            im = Image.fromarray((g[::-1] * 255).astype(np.uint8)).resize(
                (s.shape[1] * scale, s.shape[0] * scale), Image.NEAREST).convert("P")
            ImageDraw.Draw(im).text((3, 2), lab, fill=255)
            frames.append(im)
        buf = io.BytesIO()
        frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=500, loop=0,
                       disposal=1, optimize=False)
        return buf.getvalue()

    def _motion(self, conn, tid):
        """Offsets from the reference position against time, the linear motion, and residuals."""
        from matplotlib.figure import Figure

        tr = conn.execute("SELECT ra, dec, mjd_ref, rate_ra, rate_dec FROM track WHERE id = %s", (tid,)).fetchone()
        pts = conn.execute(
            """SELECT e.mjd_mid, d.ra, d.dec, td.outlier FROM track_detection td
               JOIN detection d ON d.id = td.detection_id JOIN exposure e ON e.id = d.exposure_id
               WHERE td.track_id = %s ORDER BY e.mjd_mid""", (tid,)).fetchall()
        if not pts:
            return None
        mjd, ra, dec = (np.array([p[i] for p in pts], dtype=float) for i in range(3))
        out = np.array([bool(p[3]) for p in pts])
        ra0, dec0, t_ref, rra, rde = tr
        if ra0 is None:
            ra0, dec0, t_ref = float(np.mean(ra)), float(np.mean(dec)), float(np.mean(mjd))
        h = (mjd - t_ref) * 24.0
        dx = ((ra - ra0 + 180.0) % 360.0 - 180.0) * np.cos(np.radians(dec0)) * 3600.0
        dy = (dec - dec0) * 3600.0
        fig = Figure(figsize=(5.6, 3.6), dpi=100, layout="constrained")
        ax1, ax2 = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
        for v, lab, col in ((dx, "RA cos(Dec)", "tab:blue"), (dy, "Dec", "tab:orange")):
            ax1.plot(h[~out], v[~out], "o", ms=3, color=col, label=lab)
            ax1.plot(h[out], v[out], "x", ms=5, color=col)
        fitted = rra is not None and rde is not None
        if fitted:
            hh = np.linspace(h.min(), h.max(), 2)
            ax1.plot(hh, rra * hh, "-", color="tab:blue", lw=1)
            ax1.plot(hh, rde * hh, "-", color="tab:orange", lw=1)
            ax2.axhline(0, color="0.6", lw=0.8)
            ax2.plot(h[~out], (dx - rra * h)[~out], "o", ms=3, color="tab:blue")
            ax2.plot(h[~out], (dy - rde * h)[~out], "o", ms=3, color="tab:orange")
            ax2.plot(h[out], (dx - rra * h)[out], "x", ms=5, color="tab:blue")
            ax2.plot(h[out], (dy - rde * h)[out], "x", ms=5, color="tab:orange")
            ax1.set_title(f"track {tid}: {np.hypot(rra, rde):.2f}\"/h; x = outlier epoch", fontsize=8)
        else:
            ax1.set_title(f"track {tid}: no linear fit stored", fontsize=8)
        ax1.set_ylabel("offset [arcsec]")
        ax1.legend(fontsize=7)
        ax2.set_ylabel("residual [\"]")
        ax2.set_xlabel(f"hours from MJD {t_ref:.4f}")
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()

    def _lightcurve(self, conn, tid):
        from matplotlib.figure import Figure

        t = lightcurve(conn, track=tid, outliers=True)
        ok = np.isfinite(np.asarray(t["mag"], dtype=float))
        if not ok.any():
            return None
        fig = Figure(figsize=(5.6, 2.6), dpi=100, layout="constrained")
        ax = fig.subplots()
        mjd = np.asarray(t["mjd"], dtype=float)
        t0 = mjd[ok].min()
        for src, mk in (("forced", "o"), ("detection", "s")):
            m = ok & (np.asarray(t["source"]) == src)
            if m.any():
                cal = np.asarray(t["calibrated"])[m]
                kind = "calibrated" if cal.all() else "instrumental" if not cal.any() else "mixed"
                ax.errorbar((mjd[m] - t0) * 24, np.asarray(t["mag"], float)[m],
                            yerr=np.asarray(t["mag_err"], float)[m], fmt=mk, ms=3, label=f"{src} ({kind})")
        ax.invert_yaxis()
        ax.set_xlabel(f"hours from MJD {t0:.4f}")
        ax.set_ylabel("mag")
        ax.legend(fontsize=7)
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return buf.getvalue()

    # ---------------------------------------------------------------- the page
    def page(self, base: str = "/review/") -> str:
        """The review page; ``base`` is the URL path of the review resources (ends with '/')."""
        cands = self.candidates()
        n_rev = sum(1 for c in cands if c["decision"])
        cards = "\n".join(_card(c, base) for c in cands) or "<p>No moving-object candidates (run the movers stage).</p>"
        return (PAGE.replace("{{TOKEN}}", html.escape(self.token)).replace("{{BASE}}", html.escape(base))
                .replace("{{REVIEWER}}", html.escape(self.reviewer))
                .replace("{{COUNTS}}", f"{len(cands)} candidates, <span id='n-reviewed'>{n_rev}</span> reviewed")
                .replace("{{CARDS}}", cards))


def _f(v, fmt):
    return "&mdash;" if v is None else format(v, fmt)


def _card(c, base) -> str:
    e = html.escape
    tid = int(c["id"])
    ident = []
    if c["designation"]:
        ident.append(f"designation <b>{e(c['designation'])}</b>")
    if c["skybot_name"]:
        ident.append(f"SkyBoT <b>{e(c['skybot_name'])}</b>"
                     + (f" ({e(c['skybot_class'])})" if c["skybot_class"] else "")
                     + f": {_f(c['skybot_sep'], '.1f')}\" off, rate differs by "
                     f"{_f(c['skybot_rate_diff'], '.1f')}\"/h")
    for hz in c["horizons"]:
        ident.append(f"JPL Horizons <b>{e(str(hz.get('name') or hz.get('target')))}</b> ({e(str(hz.get('mode')))}"
                     + (f", {hz['sep']:.1f}\" median" if hz.get("sep") is not None else "") + ")")
    ident = "; ".join(ident) or "not identified (no designation, SkyBoT match or Horizons target)"
    hist = "".join(f"<li><b>{e(h['decision'])}</b> by {e(h['reviewer'])} at {e(h['decided_at'])}"
                   + (f": {e(h['comment'])}" if h["comment"] else "") + "</li>" for h in c["history"])
    dec = c["decision"] or "not reviewed"
    span = (c["mjd_last"] - c["mjd_first"]) * 24 if c["mjd_first"] is not None and c["mjd_last"] is not None else None
    return f"""<section class="cand" id="track-{tid}" data-track="{tid}" data-decision="{e(c['decision'] or '')}">
 <h2>Track {tid} <span class="badge {e(c['decision'] or 'none')}">{e(dec)}</span></h2>
 <p class="facts">{c['n_detections']} detections ({c['n_outliers']} outlier epochs) over {_f(span, '.2f')} h;
  rate {_f(c['rate'], '.2f')}"/h (RA cos Dec {_f(c['rate_ra'], '+.2f')}, Dec {_f(c['rate_dec'], '+.2f')}), PA {_f(c['pa'], '.1f')}&deg;;
  fit RMS {_f(c['rms'], '.2f')}"; mean mag {_f(c['mean_mag'], '.2f')}; RA {_f(c['ra'], '.5f')}, Dec {_f(c['dec'], '+.5f')}</p>
 <p class="ident">{ident}</p>
 <div class="figs">
  <figure class="strip"><img loading="lazy" src="{base}track/{tid}/strip.png" alt="cutout strip of track {tid}"><figcaption>cutouts centred on each detection</figcaption></figure>
  <figure class="blink"><img loading="lazy" src="{base}track/{tid}/blink.gif" alt="blink of track {tid}"><figcaption>blink: fixed sky position, the candidate moves (b)</figcaption></figure>
  <figure><img loading="lazy" src="{base}track/{tid}/motion.png" alt="motion fit of track {tid}"><figcaption>motion fit and residuals</figcaption></figure>
  <figure><img loading="lazy" src="{base}track/{tid}/lightcurve.png" alt="light curve of track {tid}"><figcaption>light curve</figcaption></figure>
 </div>
 <div class="act"><textarea class="comment" rows="2" placeholder="comment (c to write, Esc to leave)"></textarea>
  <button data-d="real">Real (r)</button><button data-d="artefact">Artefact (a)</button><button data-d="known">Known (k)</button>
  <span class="saved"></span></div>
 <ul class="history">{hist}</ul>
</section>"""


def _ok(ctype, body):
    return "200 OK", [("Content-Type", ctype)], body


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>catdb candidate review</title>
<meta name="catdb-review-token" content="{{TOKEN}}"><meta name="catdb-review-base" content="{{BASE}}">
<style>
body{font:14px/1.35 system-ui,sans-serif;margin:0;background:#f4f4f2;color:#222}
header{position:sticky;top:0;background:#223;color:#eee;padding:.5em 1em;z-index:2}
header b{color:#fff} kbd{background:#445;border-radius:3px;padding:0 .3em;color:#fff}
main{padding:0 1em 50vh}
.cand{background:#fff;margin:1em 0;padding:.6em 1em;border:2px solid #ddd;border-radius:6px}
.cand.current{border-color:#36c;box-shadow:0 0 0 3px #9bd}
.figs{display:flex;flex-wrap:wrap;gap:.6em;align-items:flex-start}
figure{margin:0} figure img{max-width:560px;display:block;border:1px solid #ccc}
figure.strip{flex-basis:100%} figure.strip img{max-width:100%}
.blink img{image-rendering:pixelated;width:240px}
figcaption{font-size:11px;color:#666}
.badge{font-size:12px;padding:.1em .5em;border-radius:9px;background:#bbb;color:#fff;vertical-align:middle}
.badge.real{background:#2a7}.badge.artefact{background:#c33}.badge.known{background:#36c}
.act{margin:.5em 0;display:flex;gap:.5em;align-items:center}.act textarea{flex:1;font:inherit}
.saved{color:#2a7;font-size:12px}.err{color:#c33}
.history{font-size:12px;color:#555;margin:.2em 0}
.hideblink .blink{display:none}
</style></head>
<body>
<header>catdb candidate review &middot; reviewing as <b id="reviewer">{{REVIEWER}}</b> &middot; {{COUNTS}}
 &middot; keys: <kbd>r</kbd> real <kbd>a</kbd> artefact <kbd>k</kbd> known <kbd>c</kbd> comment
 <kbd>Esc</kbd> leave comment <kbd>n</kbd>/<kbd>&darr;</kbd> next <kbd>p</kbd>/<kbd>&uarr;</kbd> previous
 <kbd>b</kbd> blink on/off &middot; <span id="status"></span></header>
<main id="cands">
{{CARDS}}
</main>
<script>
"use strict";
const TOKEN = document.querySelector('meta[name="catdb-review-token"]').content;
const BASE = document.querySelector('meta[name="catdb-review-base"]').content;
const cards = Array.from(document.querySelectorAll(".cand"));
let cur = 0;
function select(i, scroll) {
  if (!cards.length) return;
  cur = Math.max(0, Math.min(cards.length - 1, i));
  cards.forEach((c, k) => c.classList.toggle("current", k === cur));
  if (scroll !== false) cards[cur].scrollIntoView({block: "start"});
}
function status(text, bad) {
  const s = document.getElementById("status");
  s.textContent = text; s.className = bad ? "err" : "";
}
async function decide(card, decision) {
  const tid = Number(card.dataset.track);
  const comment = card.querySelector(".comment").value;
  status("saving track " + tid + " ...");
  let r;
  try {
    r = await fetch(BASE + "decision", {method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-Catdb-Review-Token": TOKEN},
      body: JSON.stringify({track_id: tid, decision: decision, comment: comment})});
  } catch (e) { status("not saved: " + e, true); return; }
  const text = await r.text();
  if (!r.ok) { status("not saved: " + text, true); card.querySelector(".saved").textContent = ""; return; }
  const row = JSON.parse(text);
  const was = card.dataset.decision;
  card.dataset.decision = row.decision;
  const b = card.querySelector(".badge"); b.textContent = row.decision; b.className = "badge " + row.decision;
  card.querySelector(".saved").textContent = "saved: " + row.decision + " by " + row.reviewer + " at " + row.decided_at;
  const li = document.createElement("li");
  li.innerHTML = "<b></b> by <span></span> at <span></span>";
  li.children[0].textContent = row.decision; li.children[1].textContent = row.reviewer;
  li.children[2].textContent = row.decided_at + (row.comment ? ": " + row.comment : "");
  card.querySelector(".history").prepend(li);
  card.querySelector(".comment").value = "";
  if (!was) { const n = document.getElementById("n-reviewed"); n.textContent = Number(n.textContent) + 1; }
  status("track " + tid + ": " + row.decision + " saved");
  if (cards.indexOf(card) === cur) select(cur + 1);
}
cards.forEach((c, k) => {
  c.addEventListener("click", () => select(k, false));
  c.querySelectorAll("button").forEach(b => b.addEventListener("click", ev => {
    ev.stopPropagation(); select(k, false); decide(c, b.dataset.d); }));
});
document.addEventListener("keydown", ev => {
  const t = ev.target;
  if (t && t.tagName === "TEXTAREA") {
    if (ev.key === "Escape") { t.blur(); ev.preventDefault(); }
    return;
  }
  if (ev.ctrlKey || ev.metaKey || ev.altKey || !cards.length) return;
  const card = cards[cur];
  const k = ev.key;
  if (k === "r") decide(card, "real");
  else if (k === "a") decide(card, "artefact");
  else if (k === "k") decide(card, "known");
  else if (k === "c") { card.querySelector(".comment").focus(); }
  else if (k === "n" || k === "ArrowDown" || k === "j") select(cur + 1);
  else if (k === "p" || k === "ArrowUp") select(cur - 1);
  else if (k === "b") document.body.classList.toggle("hideblink");
  else return;
  ev.preventDefault();
});
select(0, false);
</script>
</body></html>
"""
