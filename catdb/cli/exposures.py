"""catdb exposures select|list|delete: named sets of exposures, usable as stage inputs.

``catdb exposures select`` picks science exposures by seeing, airmass, band, zeropoint and
quality flags (plus any ``--where`` SQL) and, with ``--name``, saves them in ``exposure_set``
(replacing a set of the same name); every stage then accepts ``--exposures NAME``.
"""
from __future__ import annotations

import json

import click
import psycopg
from psycopg import sql

from ..db.engine import connect
from ..errors import CatdbError

_SEEING = "COALESCE(e.fwhm, (SELECT s.fwhm_median FROM exposure_summary s WHERE s.exposure_id = e.id))"
_LATEST_ZP = ("(SELECT z.zp FROM zeropoint z WHERE z.exposure_id = e.id AND z.ok AND z.zp IS NOT NULL "
              "ORDER BY z.stage_run_id DESC, z.id DESC LIMIT 1)")


def selection_sql(criteria: dict):
    """SELECT of the exposures meeting ``criteria`` (one set-based query).

    Parameters
    ----------
    criteria : dict
        ``max_seeing`` (arcsec; ``exposure.fwhm``, else the exposure-summary median FWHM; an
        exposure of unknown seeing is left out), ``max_airmass`` (unknown airmass is left out),
        ``require_zeropoint`` (an ok zeropoint exists), ``not_flagged`` (``quality_flags = 0``),
        ``band`` (``exposure.band``), ``where`` (SQL on ``exposure e``), ``image_type``
        (default ``science``).

    Returns
    -------
    query : psycopg.sql.Composed
        Columns id, mjd_mid, band, seeing, airmass, zp, quality_flags, path, ordered by mjd_mid, id.
    params : dict
        Values to bind.
    """
    conds = [sql.SQL("e.image_type = %(image_type)s")]
    params = {"image_type": criteria.get("image_type") or "science"}
    if criteria.get("max_seeing") is not None:
        conds.append(sql.SQL(_SEEING + " <= %(max_seeing)s"))
        params["max_seeing"] = float(criteria["max_seeing"])
    if criteria.get("max_airmass") is not None:
        conds.append(sql.SQL("e.airmass <= %(max_airmass)s"))
        params["max_airmass"] = float(criteria["max_airmass"])
    if criteria.get("require_zeropoint"):
        conds.append(sql.SQL(_LATEST_ZP + " IS NOT NULL"))
    if criteria.get("not_flagged"):
        conds.append(sql.SQL("e.quality_flags = 0"))
    if criteria.get("band") is not None:
        conds.append(sql.SQL("e.band = %(band)s"))
        params["band"] = criteria["band"]
    if criteria.get("where"):
        conds.append(sql.SQL("({})").format(sql.SQL(criteria["where"])))
    q = sql.SQL("SELECT e.id, e.mjd_mid, e.band, " + _SEEING + " AS seeing, e.airmass, " + _LATEST_ZP +
                " AS zp, e.quality_flags, e.path FROM exposure e WHERE {} ORDER BY e.mjd_mid, e.id").format(
        sql.SQL(" AND ").join(conds))
    return q, params


def select_exposures(conn, criteria: dict, name: str | None = None) -> list[tuple]:
    """Exposures meeting ``criteria``; with ``name`` they are saved as that set (replacing it).

    Parameters
    ----------
    conn : psycopg.Connection
    criteria : dict
        See :func:`selection_sql`.
    name : str, optional
        Set name to save under; an earlier set of that name is replaced (one transaction).

    Returns
    -------
    list of tuple
        Rows (id, mjd_mid, band, seeing, airmass, zp, quality_flags, path).

    Raises
    ------
    catdb.errors.CatdbError
        A bad ``--where`` condition, an empty name, or a criterion of the wrong sign.
    """
    for k in ("max_seeing", "max_airmass"):
        if criteria.get(k) is not None and not criteria[k] > 0:
            raise CatdbError(f"--{k.replace('_', '-')}: expected a positive number, got {criteria[k]}")
    if name is not None and not name.strip():
        raise CatdbError("--name: expected a non-empty set name")
    q, params = selection_sql(criteria)
    try:
        with conn.transaction():
            rows = conn.execute(q, params).fetchall()
            if name is not None:
                conn.execute("DELETE FROM exposure_set WHERE name = %s", (name,))
                conn.execute(sql.SQL("INSERT INTO exposure_set (name, exposure_id, criteria) "
                                     "SELECT %(name)s, s.id, %(crit)s::jsonb FROM ({}) s").format(q),
                             {**params, "name": name, "crit": json.dumps(criteria)})
    except psycopg.errors.Error as e:
        raise CatdbError(f"exposure selection failed (check --where {criteria.get('where')!r}): "
                         f"{str(e).strip().splitlines()[0]}") from None
    return rows


def list_sets(conn) -> list[tuple]:
    """(name, n_exposures, created_at, criteria) of every saved set, by name."""
    return conn.execute("SELECT name, count(*), max(created_at), (array_agg(criteria))[1] FROM exposure_set "
                        "GROUP BY name ORDER BY name").fetchall()


def _print_rows(rows):
    click.echo(f"{'id':>6} {'mjd_mid':>13} {'band':6} {'seeing':>6} {'airmass':>7} {'zp':>8} {'flags':>5}  path")
    def f(v, fmt):
        return "-" if v is None else format(v, fmt)

    for eid, mjd, band, see, am, zp, fl, path in rows:
        click.echo(f"{eid:>6} {f(mjd, '13.6f')} {band or '-':6} {f(see, '6.2f')} {f(am, '7.3f')} {f(zp, '8.4f')} "
                   f"{fl:>5}  {path}")


@click.group("exposures", epilog="""\b
Examples:
  catdb exposures select --max-seeing 2.0 --max-airmass 1.8 --require-zeropoint --not-flagged --name good
  catdb exposures select --band VR --where "e.night = '2019-03-25'" --name night1
  catdb exposures list
  catdb stage associate --exposures good""")
def command():
    """Named sets of exposures (stage inputs with --exposures NAME)."""


@command.command("select")
@click.option("--max-seeing", type=float, help="Largest seeing FWHM (arcsec; exposure.fwhm or summary median).")
@click.option("--max-airmass", type=float, help="Largest airmass.")
@click.option("--require-zeropoint", is_flag=True, help="Only exposures with an ok zeropoint.")
@click.option("--not-flagged", is_flag=True, help="Only exposures with quality_flags = 0.")
@click.option("--band", help="Only this band (exposure.band).")
@click.option("--where", metavar="SQL", help="Further SQL condition on exposure (alias e).")
@click.option("--image-type", default="science", show_default=True, help="exposure.image_type.")
@click.option("--name", help="Save the selection as this set (replaces a set of the same name).")
@click.pass_obj
def select_(obj, max_seeing, max_airmass, require_zeropoint, not_flagged, band, where, image_type, name):
    """Select exposures by quality criteria; print them, and save them with --name."""
    crit = {"max_seeing": max_seeing, "max_airmass": max_airmass, "require_zeropoint": require_zeropoint,
            "not_flagged": not_flagged, "band": band, "where": where, "image_type": image_type}
    crit = {k: v for k, v in crit.items() if v not in (None, False)}
    with connect(obj["url"]) as conn:
        rows = select_exposures(conn, crit, name)
    _print_rows(rows)
    click.echo(f"{len(rows)} exposures" + (f" saved as set {name!r}" if name else " (not saved: give --name)"))


@command.command("list")
@click.pass_obj
def list_(obj):
    """Show the saved sets: name, number of exposures, when saved, criteria."""
    with connect(obj["url"]) as conn:
        rows = list_sets(conn)
    click.echo(f"{'name':20s} {'n':>5} {'saved':19s}  criteria")
    for name, n, t, crit in rows:
        click.echo(f"{name:20s} {n:>5} {t:%Y-%m-%d %H:%M:%S}  {json.dumps(crit)}")


@command.command("delete")
@click.argument("name")
@click.pass_obj
def delete(obj, name):
    """Delete a saved set (the exposures stay)."""
    with connect(obj["url"]) as conn, conn.transaction():
        n = conn.execute("DELETE FROM exposure_set WHERE name = %s", (name,)).rowcount
    if n == 0:
        raise CatdbError(f"no exposure set named {name!r}")
    click.echo(f"set {name!r} deleted ({n} exposures)")
