"""ADQL 2.0 (with a few ADQL 2.1 forms) translated to PostgreSQL + q3c.

A small tokenizer and recursive-descent translator for the subset of ADQL a TAP
client sends: ADQL is SQL-92 ``SELECT`` with ``TOP``, the geometry functions and a
set of math functions, and PostgreSQL parses the rest of SQL-92 as it is.  The
translator therefore walks the query's parenthesised structure, passes the SQL
it does not need to change through token by token, and rewrites:

* ``SELECT TOP n ...`` -> ``SELECT ... LIMIT n`` (at the end of the same query
  block, after ``ORDER BY``; subqueries keep their own ``TOP``);
* ``CONTAINS(POINT('ICRS', ra, dec), CIRCLE('ICRS', ra0, dec0, r)) = 1`` ->
  ``q3c_radial_query(ra, dec, ra0, dec0, r)`` (the q3c index is used);
  ``CONTAINS(POINT, POLYGON(...))`` and ``CONTAINS(POINT, BOX(...))`` ->
  ``q3c_poly_query(ra, dec, ARRAY[corners])``; ``= 0`` -> ``NOT (...)``;
  ``INTERSECTS`` with a POINT is the same; ``INTERSECTS(CIRCLE, CIRCLE)`` is a
  distance test;
* ``DISTANCE(POINT, POINT)`` -> ``q3c_dist(ra1, dec1, ra2, dec2)`` [deg];
* ``POINT``/``CIRCLE``/``BOX``/``POLYGON`` in a select list -> a double-precision
  array that the VOTable writer labels with the DALI xtype (``point``, ``circle``,
  ``polygon``); ``COORD1``/``COORD2``/``COORDSYS`` of a POINT;
* the ADQL math functions to their PostgreSQL names (``CEILING`` -> ``ceil``,
  ``LOG`` -> ``ln`` (ADQL's LOG is natural), ``LOG10`` -> ``log10``,
  ``TRUNCATE``/``ROUND(x, n)`` through ``numeric``, ``MOD`` through ``numeric``,
  ``RAND()`` -> ``random()``);
* delimited ``"TAP_SCHEMA"`` -> the PostgreSQL schema ``tap_schema``.

Everything else is refused with an :class:`AdqlError` naming what and where:
functions outside the allow-list (:data:`FUNCTIONS`), ``;`` (stacked
statements), PostgreSQL-only syntax (``::`` casts, ``LIMIT``), statements other
than ``SELECT``, coordinate systems other than ICRS, and the geometry ADQL
defines but catdb cannot evaluate (``AREA``, ``CENTROID``, ``REGION``, region-in-
region ``CONTAINS``).  The translated SQL still runs read-only (role
``catdb_reader``, read-only transaction, :func:`catdb.db.safety.check_query`).

Sources: IVOA ADQL 2.0 Recommendation (2008-10-30), sections 2.2 (syntax), 2.4
(geometry: POINT, CIRCLE, BOX, POLYGON, CONTAINS, INTERSECTS, DISTANCE), 2.3.2
(math functions); ADQL 2.1 (2023-12-15) sections 4.2 (optional coordinate
system) and 4.7 (``DISTANCE`` with four numbers); DALI 1.1 section 3.3 (xtypes
point, circle, polygon); q3c (Koposov & Bartunov 2006, ASP Conf. Ser. 351, 735)
for the index functions; BOX corners: the gnomonic (TAN) projection of
Calabretta & Greisen 2002, A&A 395, 1077, section 5.1.3.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from ..errors import CatdbError


class AdqlError(CatdbError):
    """An ADQL query the translator cannot (or will not) turn into SQL.

    The message names the construct and, where known, its position (1-based
    character offset in the query text).
    """


# --------------------------------------------------------------------------- tokens
_TOKEN = re.compile(r"""
  (?P<ws>\s+)
| (?P<comment>--[^\n]*)
| (?P<str>'(?:[^']|'')*')
| (?P<qid>"(?:[^"]|"")+")
| (?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
| (?P<id>[A-Za-z][A-Za-z0-9_]*|_[A-Za-z0-9_]+)
| (?P<op>\|\||<=|>=|<>|!=|::|[=<>+\-*/(),.;])
""", re.X)


@dataclass
class Tok:
    kind: str   # str, qid, num, id, op
    text: str
    pos: int    # 1-based character offset

    @property
    def low(self) -> str:
        return self.text.lower()

    def is_op(self, *ops) -> bool:
        return self.kind == "op" and self.text in ops

    def is_kw(self, *words) -> bool:
        return self.kind == "id" and self.low in words


@dataclass
class Group:
    """A parenthesised sequence (``items`` between ``(`` and ``)``)."""
    items: list
    pos: int


def tokenize(text: str) -> list[Tok]:
    """ADQL text as tokens (whitespace and ``--`` comments dropped).

    Raises
    ------
    AdqlError
        A character no ADQL token starts with, or an unterminated string.
    """
    out, i, n = [], 0, len(text)
    while i < n:
        m = _TOKEN.match(text, i)
        if m is None:
            ch = text[i]
            if ch == "'":
                raise AdqlError(f"unterminated string literal starting at character {i + 1}")
            if ch == '"':
                raise AdqlError(f"unterminated delimited identifier starting at character {i + 1}")
            raise AdqlError(f"unexpected character {ch!r} at character {i + 1} (not ADQL)")
        kind = m.lastgroup
        if kind not in ("ws", "comment"):
            out.append(Tok(kind, m.group(), i + 1))
        i = m.end()
    return out


def _group(tokens: list[Tok]) -> list:
    """Nest the tokens by parentheses."""
    stack: list[list] = [[]]
    opens: list[int] = []
    for t in tokens:
        if t.is_op("("):
            stack.append([])
            opens.append(t.pos)
        elif t.is_op(")"):
            if len(stack) == 1:
                raise AdqlError(f"unbalanced ')' at character {t.pos}")
            items = stack.pop()
            stack[-1].append(Group(items, opens.pop()))
        else:
            stack[-1].append(t)
    if len(stack) != 1:
        raise AdqlError(f"unbalanced '(' at character {opens[-1]}: missing ')'")
    return stack[0]


# --------------------------------------------------------------------------- allow-lists
#: ADQL function -> PostgreSQL function (same arguments); see also _SPECIAL
FUNCTIONS = {
    # ADQL 2.0 section 2.3.2 math functions
    "abs": "abs", "ceiling": "ceil", "degrees": "degrees", "exp": "exp", "floor": "floor",
    "log": "ln", "log10": "log10", "pi": "pi", "power": "power", "radians": "radians", "sqrt": "sqrt",
    "sin": "sin", "cos": "cos", "tan": "tan", "asin": "asin", "acos": "acos", "atan": "atan", "atan2": "atan2",
    # aggregates (ADQL 2.0 section 2.2)
    "count": "count", "sum": "sum", "avg": "avg", "min": "min", "max": "max",
    # strings (ADQL 2.1 section 4.8)
    "lower": "lower", "upper": "upper",
    # ADQL 2.1 section 4.9
    "coalesce": "coalesce",
    # q3c user-defined functions (declared in /capabilities)
    "q3c_dist": "q3c_dist", "q3c_radial_query": "q3c_radial_query",
}
#: functions with their own translation
_SPECIAL = {"truncate", "round", "mod", "rand", "cast", "point", "circle", "box", "polygon", "contains",
            "intersects", "distance", "coord1", "coord2", "coordsys", "area", "centroid", "region"}

#: the q3c UDFs as TAPRegExt feature forms (for /capabilities)
UDF_FORMS = {
    "q3c_dist": ("q3c_dist(ra1 DOUBLE, dec1 DOUBLE, ra2 DOUBLE, dec2 DOUBLE) -> DOUBLE",
                 "Great-circle distance between two ICRS positions, in degrees (q3c)."),
    "q3c_radial_query": ("q3c_radial_query(ra DOUBLE, dec DOUBLE, ra0 DOUBLE, dec0 DOUBLE, radius DOUBLE) -> INTEGER",
                         "True (1) when (ra, dec) is within radius degrees of (ra0, dec0); uses the q3c index "
                         "when ra, dec are indexed columns."),
}
#: ADQL geometry functions supported (TAPRegExt features-adqlgeo forms)
GEOMETRY_FORMS = ("POINT", "CIRCLE", "BOX", "POLYGON", "CONTAINS", "INTERSECTS", "DISTANCE", "COORD1", "COORD2",
                  "COORDSYS")

#: words that may stand before "(" without being a function call
_KEYWORDS = {
    "select", "from", "where", "and", "or", "not", "in", "exists", "on", "as", "join", "by", "having", "union",
    "intersect", "except", "all", "any", "some", "distinct", "between", "like", "ilike", "is", "then", "else",
    "when", "case", "end", "using", "order", "group", "inner", "outer", "left", "right", "full", "natural",
    "cross", "asc", "desc", "offset", "with", "null",
}
#: SQL words that are not ADQL and are refused (with the reason)
_REFUSED_WORDS = {
    "limit": "LIMIT is not ADQL: use SELECT TOP n",
    "into": "SELECT ... INTO writes a table: the TAP service is read-only",
    "lateral": "LATERAL is not ADQL",
    "returning": "RETURNING is not ADQL",
    "for": "SELECT ... FOR UPDATE/SHARE is not ADQL",
}
#: ADQL 2.1 CAST target types (section 4.9) accepted in CAST(x AS type)
_CAST_TYPES = {"smallint", "integer", "int", "bigint", "real", "double", "precision", "char", "varchar",
               "character", "varying", "timestamp"}

#: ADQL 2.0 reserved words (section 2.1.2: the SQL-92 reserved words and the ADQL function names);
#: a column with such a name is published delimited ("size") and must be written so in queries
RESERVED = set("""
ABSOLUTE ACTION ADD ALL ALLOCATE ALTER AND ANY ARE AS ASC ASSERTION AT AUTHORIZATION AVG BEGIN BETWEEN BIT
BIT_LENGTH BOTH BY CASCADE CASCADED CASE CAST CATALOG CHAR CHARACTER CHAR_LENGTH CHARACTER_LENGTH CHECK CLOSE
COALESCE COLLATE COLLATION COLUMN COMMIT CONNECT CONNECTION CONSTRAINT CONSTRAINTS CONTINUE CONVERT CORRESPONDING
COUNT CREATE CROSS CURRENT CURRENT_DATE CURRENT_TIME CURRENT_TIMESTAMP CURRENT_USER CURSOR DATE DAY DEALLOCATE
DECIMAL DECLARE DEFAULT DEFERRABLE DEFERRED DELETE DESC DESCRIBE DESCRIPTOR DIAGNOSTICS DISCONNECT DISTINCT DOMAIN
DOUBLE DROP ELSE END END-EXEC ESCAPE EXCEPT EXCEPTION EXEC EXECUTE EXISTS EXTERNAL EXTRACT FALSE FETCH FIRST FLOAT
FOR FOREIGN FOUND FROM FULL GET GLOBAL GO GOTO GRANT GROUP HAVING HOUR IDENTITY IMMEDIATE IN INDICATOR INITIALLY
INNER INPUT INSENSITIVE INSERT INT INTEGER INTERSECT INTERVAL INTO IS ISOLATION JOIN KEY LANGUAGE LAST LEADING LEFT
LEVEL LIKE LOCAL LOWER MATCH MAX MIN MINUTE MODULE MONTH NAMES NATIONAL NATURAL NCHAR NEXT NO NOT NULL NULLIF
NUMERIC OCTET_LENGTH OF ON ONLY OPEN OPTION OR ORDER OUTER OUTPUT OVERLAPS PAD PARTIAL POSITION PRECISION PREPARE
PRESERVE PRIMARY PRIOR PRIVILEGES PROCEDURE PUBLIC READ REAL REFERENCES RELATIVE RESTRICT REVOKE RIGHT ROLLBACK ROWS
SCHEMA SCROLL SECOND SECTION SELECT SESSION SESSION_USER SET SIZE SMALLINT SOME SPACE SQL SQLCODE SQLERROR SQLSTATE
SUBSTRING SUM SYSTEM_USER TABLE TEMPORARY THEN TIME TIMESTAMP TIMEZONE_HOUR TIMEZONE_MINUTE TO TRAILING TRANSACTION
TRANSLATE TRANSLATION TRIM TRUE UNION UNIQUE UNKNOWN UPDATE UPPER USAGE USER USING VALUE VALUES VARCHAR VARYING VIEW
WHEN WHENEVER WHERE WITH WORK WRITE YEAR ZONE
ABS ACOS AREA ASIN ATAN ATAN2 BOX CEILING CENTROID CIRCLE CONTAINS COORD1 COORD2 COORDSYS COS COT DEGREES DISTANCE
EXP FLOOR INTERSECTS LOG LOG10 MOD PI POINT POLYGON POWER RADIANS REGION RAND ROUND SIN SQRT TOP TAN TRUNCATE
""".split())
_REGULAR = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def adql_name(name: str) -> str:
    """``name`` as an ADQL query must write it: delimited (``"size"``) when it is a reserved
    word or not a regular identifier, else as it is."""
    if _REGULAR.match(name) and name.upper() not in RESERVED:
        return name
    return '"' + name.replace('"', '""') + '"'


_COORDSYS = re.compile(r"^\s*(icrs)?(\s+\w+)*\s*$", re.I)


@dataclass
class Translation:
    """The SQL of an ADQL query and what the VOTable writer needs to know of its columns.

    Attributes
    ----------
    sql : str
        PostgreSQL text (one ``SELECT``).
    xtypes : dict of int -> str
        0-based select-list position -> DALI xtype (``point``, ``circle``, ``polygon``)
        of geometry values returned as double-precision arrays.
    units : dict of int -> (str, str)
        0-based select-list position -> (unit, UCD) of computed values whose unit
        ADQL defines (``DISTANCE``: degrees).
    top : int or None
        The outer query's ``TOP n``.
    """
    sql: str
    xtypes: dict = field(default_factory=dict)
    top: int | None = None
    units: dict = field(default_factory=dict)


@dataclass
class _Geom:
    kind: str            # point, circle, polygon
    parts: list          # translated SQL of the numbers: point ra,dec; circle ra,dec,r; polygon ra1,dec1,...
    pos: int

    def array(self) -> str:
        return "CAST(ARRAY[" + ", ".join(self.parts) + "] AS double precision[])"


def translate(adql: str) -> Translation:
    """Translate one ADQL query to PostgreSQL + q3c.

    Parameters
    ----------
    adql : str
        The ADQL text (``QUERY`` of a TAP request).

    Returns
    -------
    Translation

    Raises
    ------
    AdqlError
        Empty text, several statements, a statement other than ``SELECT``, a
        function outside the allow-list, unsupported geometry or syntax; the
        message names the construct and its character position.
    """
    if adql is None or not adql.strip():
        raise AdqlError("empty query: give an ADQL SELECT statement in QUERY")
    tokens = tokenize(adql)
    while tokens and tokens[-1].is_op(";"):  # a trailing ';' is harmless
        tokens.pop()
    for t in tokens:
        if t.is_op(";"):
            raise AdqlError(f"several statements (';' at character {t.pos}): the TAP service runs ONE ADQL "
                            "SELECT query")
    if not tokens:
        raise AdqlError("empty query: give an ADQL SELECT statement in QUERY")
    items = _group(tokens)
    first = items[0]
    while isinstance(first, Group) and first.items:
        first = first.items[0]
    if not (isinstance(first, Tok) and first.is_kw("select", "with")):
        what = first.text if isinstance(first, Tok) else "("
        raise AdqlError(f"the query must be an ADQL SELECT statement (it starts with {what!r}); "
                        "the TAP service is read-only")
    tr = _Translator()
    sql, top = tr.block(items, outer=True)
    return Translation(sql=sql, xtypes=tr.xtypes, top=top, units=tr.units)


def _split_args(items: list) -> list[list]:
    """Items of a group split at its top-level commas."""
    args, cur = [], []
    for it in items:
        if isinstance(it, Tok) and it.is_op(","):
            args.append(cur)
            cur = []
        else:
            cur.append(it)
    if cur or args:
        args.append(cur)
    return args


def _join(parts: list[str]) -> str:
    """SQL pieces joined by spaces (none around the '.' of qualified names)."""
    out = ""
    for p in parts:
        if not out or p == "." or out.endswith("."):
            out += p
        else:
            out += " " + p
    return out


class _Translator:
    def __init__(self):
        self.xtypes: dict[int, str] = {}
        self.units: dict[int, tuple] = {}

    # ----------------------------------------------------------------- query blocks
    def block(self, items: list, outer: bool = False) -> tuple[str, int | None]:
        """Translate a sequence; returns (sql, TOP n of this block)."""
        items = list(items)
        top = None
        # SELECT [ALL|DISTINCT] TOP n
        for k, it in enumerate(items):
            if isinstance(it, Tok) and it.is_kw("select"):
                j = k + 1
                if j < len(items) and isinstance(items[j], Tok) and items[j].is_kw("all", "distinct"):
                    j += 1
                if j < len(items) and isinstance(items[j], Tok) and items[j].is_kw("top"):
                    if j + 1 >= len(items) or not (isinstance(items[j + 1], Tok) and items[j + 1].kind == "num"
                                                   and items[j + 1].text.isdigit()):
                        raise AdqlError(f"TOP at character {items[j].pos} must be followed by a whole number")
                    if top is not None:
                        raise AdqlError(f"a second TOP at character {items[j].pos} in the same query block "
                                        "(UNION with TOP is not supported)")
                    top = int(items[j + 1].text)
                    del items[j:j + 2]
        if top is not None and any(isinstance(it, Tok) and it.is_kw("union", "intersect", "except")
                                   for it in items):
            raise AdqlError("TOP together with UNION/INTERSECT/EXCEPT is not supported: put the set operation "
                            "in a subquery and apply TOP outside it")
        if outer:
            self._select_xtypes(items)
        parts = self.seq(items)
        sql = _join(parts)
        if top is not None:
            sql += f" LIMIT {top}"
        return sql, top

    def _select_xtypes(self, items):
        """DALI xtypes of the outer select list's geometry items, by position."""
        try:
            k = next(i for i, it in enumerate(items) if isinstance(it, Tok) and it.is_kw("select"))
        except StopIteration:
            return
        j = k + 1
        if j < len(items) and isinstance(items[j], Tok) and items[j].is_kw("all", "distinct"):
            j += 1
        end = next((i for i in range(j, len(items)) if isinstance(items[i], Tok) and items[i].is_kw("from")),
                   len(items))
        for pos, arg in enumerate(_split_args(items[j:end])):
            if any(isinstance(it, Tok) and it.is_op("*") and len(arg) <= 3 for it in arg):
                return  # positions after a * are unknown
            if len(arg) >= 2 and isinstance(arg[0], Tok) and arg[0].kind == "id" and isinstance(arg[1], Group):
                name = arg[0].low
                if name == "point":
                    self.xtypes[pos] = "point"
                elif name == "circle":
                    self.xtypes[pos] = "circle"
                elif name in ("polygon", "box"):
                    self.xtypes[pos] = "polygon"
                elif name == "distance":
                    self.units[pos] = ("deg", "pos.angDistance")

    def seq(self, items: list) -> list[str]:
        out: list[str] = []
        i, n = 0, len(items)
        while i < n:
            it = items[i]
            if isinstance(it, Group):
                inner = it.items
                head = inner[0] if inner else None
                if isinstance(head, Tok) and head.is_kw("select", "with"):
                    sql, _ = self.block(inner)
                    out.append(f"({sql})")
                else:
                    out.append("(" + _join(self.seq(inner)) + ")")
                i += 1
                continue
            t = it
            nxt = items[i + 1] if i + 1 < n else None
            if t.kind == "op":
                if t.text == "::":
                    raise AdqlError(f"'::' at character {t.pos} is PostgreSQL, not ADQL: use CAST(x AS type)")
                if t.text == "!=":
                    out.append("<>")
                else:
                    out.append(t.text)
                i += 1
                continue
            if t.kind == "qid":
                if isinstance(nxt, Group):
                    raise AdqlError(f"function {t.text} at character {t.pos} is not supported")
                out.append("tap_schema" if t.text.strip('"').upper() == "TAP_SCHEMA" else t.text)
                i += 1
                continue
            if t.kind in ("str", "num"):
                out.append(t.text)
                i += 1
                continue
            # identifiers and keywords
            low = t.low
            if low in _REFUSED_WORDS:
                raise AdqlError(f"{_REFUSED_WORDS[low]} (character {t.pos})")
            if isinstance(nxt, Group) and low not in _KEYWORDS and not (i > 0 and isinstance(items[i - 1], Tok)
                                                                       and items[i - 1].is_op(".")):
                # a function call
                if low in ("contains", "intersects"):
                    pred = self._region_predicate(low, nxt)
                    # "= 1" / "= 0" after, or "1 =" / "0 =" before
                    after = items[i + 2:i + 4]
                    if (len(after) == 2 and isinstance(after[0], Tok) and after[0].is_op("=")
                            and isinstance(after[1], Tok) and after[1].text in ("1", "0")):
                        out.append(f"({pred})" if after[1].text == "1" else f"(NOT ({pred}))")
                        i += 4
                        continue
                    if len(out) >= 2 and out[-1] == "=" and out[-2] in ("1", "0"):
                        val = out[-2]
                        del out[-2:]
                        out.append(f"({pred})" if val == "1" else f"(NOT ({pred}))")
                        i += 2
                        continue
                    out.append(f"CAST(({pred}) AS integer)")
                    i += 2
                    continue
                out.append(self.call(t, nxt))
                i += 2
                continue
            out.append(t.text)
            i += 1
        return out

    # ----------------------------------------------------------------- functions
    def args(self, g: Group) -> list[str]:
        return [_join(self.seq(a)) for a in _split_args(g.items)]

    def call(self, name: Tok, g: Group) -> str:
        low = name.low
        if low in FUNCTIONS:
            return FUNCTIONS[low] + "(" + _join(self.seq(g.items)) + ")"
        if low not in _SPECIAL:
            raise AdqlError(f"function {name.text}() at character {name.pos} is not supported by this TAP "
                            "service (ADQL math, string and aggregate functions, the geometry functions and the "
                            "q3c_* UDFs of /capabilities are)")
        if low == "cast":
            return self._cast(name, g)
        if low in ("point", "circle", "box", "polygon"):
            return self.geom([name, g]).array()
        if low == "distance":
            return self._distance(name, g)
        if low in ("coord1", "coord2", "coordsys"):
            a = _split_args(g.items)
            if len(a) != 1:
                raise AdqlError(f"{name.text.upper()} at character {name.pos} takes one POINT")
            p = self.geom(a[0], want="point")
            if low == "coordsys":
                return "'ICRS'"
            return f"({p.parts[0] if low == 'coord1' else p.parts[1]})"
        if low in ("area", "centroid", "region"):
            raise AdqlError(f"{name.text.upper()} at character {name.pos} is not supported (catdb evaluates "
                            "geometry with q3c: POINT, CIRCLE, BOX, POLYGON, CONTAINS, INTERSECTS, DISTANCE, "
                            "COORD1, COORD2)")
        a = self.args(g)
        if low == "rand":
            if a:
                raise AdqlError(f"RAND(seed) at character {name.pos}: a seeded RAND is not supported; use RAND()")
            return "random()"
        if low == "mod":
            if len(a) != 2:
                raise AdqlError(f"MOD at character {name.pos} takes two arguments")
            return f"mod(CAST({a[0]} AS numeric), CAST({a[1]} AS numeric))"
        if low in ("truncate", "round"):
            pg = "trunc" if low == "truncate" else "round"
            if len(a) == 1:
                return f"{pg}({a[0]})"
            if len(a) == 2:
                return f"CAST({pg}(CAST({a[0]} AS numeric), CAST({a[1]} AS integer)) AS double precision)"
            raise AdqlError(f"{name.text.upper()} at character {name.pos} takes one or two arguments")
        raise AdqlError(f"function {name.text}() at character {name.pos} is not supported")  # pragma: no cover

    def _cast(self, name, g):
        items = g.items
        k = next((j for j, it in enumerate(items) if isinstance(it, Tok) and it.is_kw("as")), None)
        if k is None:
            raise AdqlError(f"CAST at character {name.pos}: expected CAST(value AS type)")
        typ = items[k + 1:]
        words = []
        for it in typ:
            if isinstance(it, Group):
                if not (len(it.items) == 1 and isinstance(it.items[0], Tok) and it.items[0].text.isdigit()):
                    raise AdqlError(f"CAST at character {name.pos}: a type length must be a whole number")
                words.append(f"({it.items[0].text})")
            elif isinstance(it, Tok) and it.kind == "id" and it.low in _CAST_TYPES:
                words.append(it.low)
            else:
                raise AdqlError(f"CAST at character {name.pos}: type {getattr(it, 'text', '?')!r} is not an ADQL "
                                f"type ({', '.join(sorted(_CAST_TYPES))})")
        if not words:
            raise AdqlError(f"CAST at character {name.pos}: missing type after AS")
        return "CAST(" + _join(self.seq(items[:k])) + " AS " + "".join(
            w if w.startswith("(") else (" " + w) for w in words).strip() + ")"

    # ----------------------------------------------------------------- geometry
    def geom(self, arg: list, want: str | None = None) -> _Geom:
        """A geometry literal (POINT/CIRCLE/BOX/POLYGON call) as a :class:`_Geom`."""
        if not (len(arg) == 2 and isinstance(arg[0], Tok) and arg[0].kind == "id" and isinstance(arg[1], Group)
                and arg[0].low in ("point", "circle", "box", "polygon")):
            pos = next((x.pos for x in arg if isinstance(x, (Tok, Group))), 0)
            raise AdqlError(f"expected a {(want or 'geometry').upper()} (POINT, CIRCLE, BOX or POLYGON call) at "
                            f"character {pos}: catdb stores positions as ra/dec columns, so geometry "
                            "arguments must be written out, e.g. POINT('ICRS', ra, dec)")
        name, g = arg
        kind = name.low
        raw = _split_args(g.items)
        # optional coordinate system (ADQL 2.0: required; 2.1: optional)
        if raw and len(raw[0]) == 1 and isinstance(raw[0][0], Tok) and raw[0][0].kind == "str":
            sysname = raw[0][0].text[1:-1].replace("''", "'")
            if not _COORDSYS.match(sysname):
                raise AdqlError(f"coordinate system {sysname!r} of {kind.upper()} at character {name.pos}: catdb "
                                "positions are ICRS; give 'ICRS' (or '')")
            raw = raw[1:]
        if kind == "point":
            if len(raw) != 2:
                raise AdqlError(f"POINT at character {name.pos} takes ('ICRS', ra, dec)")
            geo = _Geom("point", [_join(self.seq(a)) for a in raw], name.pos)
        elif kind == "circle":
            if len(raw) == 2:  # CIRCLE(POINT, r), ADQL 2.1
                c = self.geom(raw[0], want="point")
                geo = _Geom("circle", c.parts + [_join(self.seq(raw[1]))], name.pos)
            elif len(raw) == 3:
                geo = _Geom("circle", [_join(self.seq(a)) for a in raw], name.pos)
            else:
                raise AdqlError(f"CIRCLE at character {name.pos} takes ('ICRS', ra, dec, radius)")
        elif kind == "box":
            if len(raw) == 3:  # BOX(POINT, w, h)
                c = self.geom(raw[0], want="point").parts
                w, h = (_join(self.seq(a)) for a in raw[1:])
            elif len(raw) == 4:
                c = [_join(self.seq(a)) for a in raw[:2]]
                w, h = (_join(self.seq(a)) for a in raw[2:])
            else:
                raise AdqlError(f"BOX at character {name.pos} takes ('ICRS', ra, dec, width, height)")
            geo = _Geom("polygon", _box_corners(c[0], c[1], w, h), name.pos)
        else:  # polygon
            if raw and all(len(a) == 2 and isinstance(a[0], Tok) and a[0].is_kw("point") for a in raw):
                parts = []
                for a in raw:
                    parts += self.geom(a, want="point").parts
            else:
                parts = [_join(self.seq(a)) for a in raw]
            if len(parts) < 6 or len(parts) % 2:
                raise AdqlError(f"POLYGON at character {name.pos} takes ('ICRS', ra1, dec1, ra2, dec2, ra3, dec3, "
                                "...): at least three vertices")
            geo = _Geom("polygon", parts, name.pos)
        if want and geo.kind != want:
            raise AdqlError(f"expected a {want.upper()} at character {name.pos}, got {kind.upper()}")
        return geo

    def _region_predicate(self, low: str, g: Group) -> str:
        a = _split_args(g.items)
        if len(a) != 2:
            raise AdqlError(f"{low.upper()} at character {g.pos} takes two geometries")
        g1, g2 = self.geom(a[0]), self.geom(a[1])
        if low == "intersects" and g2.kind == "point" and g1.kind != "point":
            g1, g2 = g2, g1
        if g1.kind == "point":
            ra, dec = g1.parts
            if g2.kind == "circle":
                return f"q3c_radial_query({ra}, {dec}, {g2.parts[0]}, {g2.parts[1]}, {g2.parts[2]})"
            if g2.kind == "polygon":
                return f"q3c_poly_query({ra}, {dec}, {g2.array()})"
            return f"q3c_dist({ra}, {dec}, {g2.parts[0]}, {g2.parts[1]}) = 0"
        if low == "intersects" and g1.kind == "circle" and g2.kind == "circle":
            return (f"q3c_dist({g1.parts[0]}, {g1.parts[1]}, {g2.parts[0]}, {g2.parts[1]}) "
                    f"<= ({g1.parts[2]}) + ({g2.parts[2]})")
        if low == "contains" and g1.kind == "circle" and g2.kind == "circle":
            return (f"q3c_dist({g1.parts[0]}, {g1.parts[1]}, {g2.parts[0]}, {g2.parts[1]}) + ({g1.parts[2]}) "
                    f"<= ({g2.parts[2]})")
        raise AdqlError(f"{low.upper()}({g1.kind.upper()}, {g2.kind.upper()}) at character {g.pos} is not "
                        "supported: catdb tests a POINT against a CIRCLE, BOX or POLYGON (and circles against "
                        "circles)")

    def _distance(self, name, g):
        a = _split_args(g.items)
        if len(a) == 2:
            p1, p2 = self.geom(a[0], want="point"), self.geom(a[1], want="point")
            nums = p1.parts + p2.parts
        elif len(a) == 4:  # ADQL 2.1: DISTANCE(ra1, dec1, ra2, dec2)
            nums = [_join(self.seq(x)) for x in a]
        else:
            raise AdqlError(f"DISTANCE at character {name.pos} takes two POINTs")
        return "q3c_dist(" + ", ".join(nums) + ")"


def _box_corners(ra0: str, dec0: str, w: str, h: str) -> list[str]:
    """SQL of the four corners (ra1, dec1, ..., ra4, dec4) of an ADQL BOX [deg].

    The box is centred on (ra0, dec0) with full width ``w`` and height ``h`` [deg]
    measured along great circles through the centre (east-west and north-south);
    its sides are great circles.  In the gnomonic (TAN) projection about the
    centre, great circles are straight lines, so the corners are the standard
    coordinates (xi, eta) = (+-tan(w/2), +-tan(h/2)) deprojected (Calabretta &
    Greisen 2002, eq. 54 inverted):

        ra  = ra0 + atan2(xi, cos(dec0) - eta sin(dec0))
        dec = atan2(sin(dec0) + eta cos(dec0), sqrt(xi^2 + (cos(dec0) - eta sin(dec0))^2))

    RA is reduced to [0, 360).
    """
    try:
        c = [float(x.replace(" ", "")) for x in (ra0, dec0, w, h)]
    except ValueError:
        c = None
    if c is not None:  # numbers: the corners computed here, readable in the SQL
        out = []
        for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            xi, eta = sx * math.tan(math.radians(c[2]) / 2), sy * math.tan(math.radians(c[3]) / 2)
            d0 = math.radians(c[1])
            den = math.cos(d0) - eta * math.sin(d0)
            ra = (c[0] + math.degrees(math.atan2(xi, den))) % 360.0
            dec = math.degrees(math.atan2(math.sin(d0) + eta * math.cos(d0), math.hypot(xi, den)))
            out += [repr(ra), repr(dec)]
        return out
    corners = []
    for sx, sy in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
        xi = f"({sx} * tand(({w}) / 2.0))"
        eta = f"({sy} * tand(({h}) / 2.0))"
        den = f"(cosd({dec0}) - {eta} * sind({dec0}))"
        ra = f"(({ra0}) + atan2d({xi}, {den}))"
        corners.append(f"({ra} - 360.0 * floor({ra} / 360.0))")
        corners.append(f"atan2d(sind({dec0}) + {eta} * cosd({dec0}), sqrt({xi} * {xi} + {den} * {den}))")
    return corners
