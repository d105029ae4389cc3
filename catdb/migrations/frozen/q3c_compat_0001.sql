-- q3c_compat.sql: q3c 2.0 functions in plain SQL / PL/pgSQL for PostgreSQL servers
-- that cannot install the q3c C extension (managed services).
--
-- Installed by catdb.spatial.install(conn, backend='sql'), which replaces the
-- placeholder @extschema@ with the (quoted) target schema, so the functions can live in
-- any schema, next to or instead of the real extension.
--
-- Contract (tested in tests/test_spatial_golden.py against q3c 2.0.0 in the same server):
--  * q3c_ang2ipix(ra, dec) returns the extension's value bit for bit (cube-face gnomonic
--    projection, 2^30 x 2^30 pixels per face, x bits at even and y bits at odd positions
--    of the Morton code, face * 2^60 added; NULL for NaN/infinite input).
--  * The exact tests (q3c_sindist, q3c_in_ellipse, q3c_in_poly, q3c_sindist_pm) are
--    ports of the extension's C formulas evaluated with the same libm (PostgreSQL's
--    sin/cos/tan call the C library), in the same order of operations, so queries
--    return the same rows, including points exactly on the radius (strict <) and the
--    NULL/NaN cases.
--  * The index pre-filter (q3c_radial_query_it, q3c_nearby_it, ...) is NOT q3c's
--    quadtree: it is a conservative cover of the region by at most 16 (cones, ellipses,
--    polygons) or 4 (joins) ranges of q3c_ang2ipix, computed from the region's RA/Dec
--    bounding box projected onto each cube face.  Because it is a superset of the
--    region and is ANDed with the exact test, the rows returned are the same; only the
--    pixel-range values differ from the extension's.
--  * Use a B-tree index on q3c_ang2ipix(ra, dec) exactly as with the extension:
--        CREATE INDEX ON t (q3c_ang2ipix(ra, dec));
--    the SQL wrappers below are inlined by the planner and become index range scans.
--
-- Algorithms: Koposov & Bartunov 2006, "Q3C, Quad Tree Cube", ASP Conf. Ser. 351, 735;
-- q3c source https://github.com/segasai/q3c (q3cube.c, q3c_poly.c, q3c.c, v2.0.0).
-- Known differences are listed in catdb/spatial/__init__.py.

-- ---------------------------------------------------------------------------------
-- internal helpers (prefix q3c_compat_)
-- ---------------------------------------------------------------------------------

-- C fmod(a, b) for finite a and b > 0: result has the sign of a, |result| < b, exact
-- for |a| < 2^53 (a - q*b is exactly representable; a wrong-sided result from a
-- rounded quotient is shifted back by b).
CREATE OR REPLACE FUNCTION @extschema@.q3c_compat_fmod(a double precision, b double precision)
RETURNS double precision LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE r double precision;
BEGIN
  r := a - b * trunc(a / b);
  IF a >= 0 AND r < 0 THEN r := r + b;
  ELSIF a < 0 AND r > 0 THEN r := r - b;
  END IF;
  IF abs(r) >= b THEN r := 0.0 * r; END IF;
  RETURN r;
END $$;

-- Morton code: the low 30 bits of xi at even, of yi at odd bit positions
CREATE OR REPLACE FUNCTION @extschema@.q3c_compat_interleave(xi bigint, yi bigint)
RETURNS bigint LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE x bigint := xi; y bigint := yi;
BEGIN
  x := (x | (x << 16)) & 281470681808895;
  x := (x | (x << 8)) & 71777214294589695;
  x := (x | (x << 4)) & 1085102592571150095;
  x := (x | (x << 2)) & 3689348814741910323;
  x := (x | (x << 1)) & 6148914691236517205;
  y := (y | (y << 16)) & 281470681808895;
  y := (y | (y << 8)) & 71777214294589695;
  y := (y | (y << 4)) & 1085102592571150095;
  y := (y | (y << 2)) & 3689348814741910323;
  y := (y | (y << 1)) & 6148914691236517205;
  RETURN x | (y << 1);
END $$;

-- q3c's face number of (ra, dec) (q3cube.c q3c_get_facenum; no RA normalisation)
CREATE OR REPLACE FUNCTION @extschema@.q3c_compat_facenum(ra double precision, decl double precision)
RETURNS integer LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE f integer; y0 double precision;
BEGIN
  IF decl >= 90 THEN RETURN 0; ELSIF decl <= -90 THEN RETURN 5; END IF;
  f := trunc(@extschema@.q3c_compat_fmod((ra + 45) / 90, 4))::integer;
  y0 := tan(decl * 0.0174532925199432957692369076848861271344::double precision)
        / cos(0.0174532925199432957692369076848861271344::double precision * (ra - 90 * f::double precision));
  IF y0 > 1 THEN RETURN 0; ELSIF y0 < -1 THEN RETURN 5; END IF;
  RETURN f + 1;
END $$;

-- ---------------------------------------------------------------------------------
-- public: version, pixel numbers, distances
-- ---------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION @extschema@.q3c_version()
RETURNS text LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$ SELECT '2.0.0-catdb-sql'::text $$;
COMMENT ON FUNCTION @extschema@.q3c_version() IS 'q3c API version emulated by the catdb SQL port (the C extension returns 2.0.0)';

CREATE OR REPLACE FUNCTION @extschema@.q3c_ang2ipix(ra double precision, decl double precision)
RETURNS bigint LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  r double precision := ra;
  f integer;
  ra1 double precision; dec1 double precision;
  x0 double precision; y0 double precision; t double precision;
  xi bigint; yi bigint; dc double precision;
BEGIN
  IF NOT (abs(ra) < 'Infinity'::double precision AND abs(decl) < 'Infinity'::double precision) THEN
    RETURN NULL;
  END IF;
  IF r < 0 THEN r := @extschema@.q3c_compat_fmod(r, 360) + 360;
  ELSIF r > 360 THEN r := @extschema@.q3c_compat_fmod(r, 360);
  END IF;
  -- q3c 2.0 clamps |dec| > 90 to the pole and has no special case at the pole itself
  -- (the pixel of (ra, +-90) then depends on ra through the rounding of cot(pi/2))
  IF decl > 90 THEN dc := 90; ELSIF decl < -90 THEN dc := -90; ELSE dc := decl; END IF;
    f := trunc(@extschema@.q3c_compat_fmod((r + 45) / 90, 4))::integer;
    ra1 := 0.0174532925199432957692369076848861271344::double precision * (r - 90 * f::double precision);
    dec1 := 0.0174532925199432957692369076848861271344::double precision * dc;
    x0 := tan(ra1);
    y0 := tan(dec1) / cos(ra1);
    f := f + 1;
    IF y0 > 1 THEN
      f := 0;
      ra1 := 0.0174532925199432957692369076848861271344::double precision * r;
      t := 1 / tan(dec1);
      x0 := sin(ra1) * t;
      y0 := cos(ra1) * (-t);
    ELSIF y0 < -1 THEN
      f := 5;
      ra1 := 0.0174532925199432957692369076848861271344::double precision * r;
      t := 1 / tan(dec1);
      x0 := sin(ra1) * (-t);
      y0 := cos(ra1) * (-t);
    END IF;
    x0 := (x0 + 1) / 2;
    y0 := (y0 + 1) / 2;
  xi := trunc(x0 * 1073741824.0::double precision)::bigint;
  yi := trunc(y0 * 1073741824.0::double precision)::bigint;
  IF xi = 1073741824 THEN xi := xi - 1; END IF;
  IF yi = 1073741824 THEN yi := yi - 1; END IF;
  RETURN f::bigint * 1152921504606846976 + @extschema@.q3c_compat_interleave(xi, yi);
END $$;
COMMENT ON FUNCTION @extschema@.q3c_ang2ipix(double precision, double precision)
  IS 'Function converting Ra and Dec to the Q3C ipix value (catdb SQL port, identical values)';

CREATE OR REPLACE FUNCTION @extschema@.q3c_ang2ipix(ra real, decl real)
RETURNS bigint LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
SELECT @extschema@.q3c_ang2ipix($1::double precision, $2::double precision)
$$;

-- q3c_sindist = x*(z-y)+y with x = sin^2(dRA/2), y = sin^2(dDec/2), z = cos^2(mean Dec)
-- (q3cube.c q3c_sindist). Infinite arguments give NaN as in C (PostgreSQL's sin would raise).
-- Not declared STRICT so that the planner can inline it (NULL in -> NULL out all the same).
-- A sine below 1e-125 is squared as 0: PostgreSQL raises on float underflow where C
-- silently returns a denormal or 0; this changes sindist by < 1e-250 (radii < 1e-117 rad).
CREATE OR REPLACE FUNCTION @extschema@.q3c_sindist(ra1 double precision, dec1 double precision,
                                                   ra2 double precision, dec2 double precision)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT (CASE WHEN abs(sin(CASE WHEN abs((ra1 - ra2) / 2) = 'Infinity'::double precision THEN 'NaN'::double precision ELSE (ra1 - ra2) / 2 * 0.0174532925199432957692369076848861271344::double precision END)) < 1e-125 THEN 0::double precision ELSE sin(CASE WHEN abs((ra1 - ra2) / 2) = 'Infinity'::double precision THEN 'NaN'::double precision ELSE (ra1 - ra2) / 2 * 0.0174532925199432957692369076848861271344::double precision END) * sin(CASE WHEN abs((ra1 - ra2) / 2) = 'Infinity'::double precision THEN 'NaN'::double precision ELSE (ra1 - ra2) / 2 * 0.0174532925199432957692369076848861271344::double precision END) END)
  * ((cos(CASE WHEN abs((dec1 + dec2) / 2) = 'Infinity'::double precision THEN 'NaN'::double precision ELSE (dec1 + dec2) / 2 * 0.0174532925199432957692369076848861271344::double precision END) * cos(CASE WHEN abs((dec1 + dec2) / 2) = 'Infinity'::double precision THEN 'NaN'::double precision ELSE (dec1 + dec2) / 2 * 0.0174532925199432957692369076848861271344::double precision END))
     - (CASE WHEN abs(sin(CASE WHEN abs((dec1 - dec2) / 2) = 'Infinity'::double precision THEN 'NaN'::double precision ELSE (dec1 - dec2) / 2 * 0.0174532925199432957692369076848861271344::double precision END)) < 1e-125 THEN 0::double precision ELSE sin(CASE WHEN abs((dec1 - dec2) / 2) = 'Infinity'::double precision THEN 'NaN'::double precision ELSE (dec1 - dec2) / 2 * 0.0174532925199432957692369076848861271344::double precision END) * sin(CASE WHEN abs((dec1 - dec2) / 2) = 'Infinity'::double precision THEN 'NaN'::double precision ELSE (dec1 - dec2) / 2 * 0.0174532925199432957692369076848861271344::double precision END) END))
  + (CASE WHEN abs(sin(CASE WHEN abs((dec1 - dec2) / 2) = 'Infinity'::double precision THEN 'NaN'::double precision ELSE (dec1 - dec2) / 2 * 0.0174532925199432957692369076848861271344::double precision END)) < 1e-125 THEN 0::double precision ELSE sin(CASE WHEN abs((dec1 - dec2) / 2) = 'Infinity'::double precision THEN 'NaN'::double precision ELSE (dec1 - dec2) / 2 * 0.0174532925199432957692369076848861271344::double precision END) * sin(CASE WHEN abs((dec1 - dec2) / 2) = 'Infinity'::double precision THEN 'NaN'::double precision ELSE (dec1 - dec2) / 2 * 0.0174532925199432957692369076848861271344::double precision END) END)
$$;

-- q3c_dist = 2 asin(sqrt(sindist)) in degrees (NaN where C's asin would return NaN)
CREATE OR REPLACE FUNCTION @extschema@.q3c_dist(ra1 double precision, dec1 double precision,
                                                ra2 double precision, dec2 double precision)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE WHEN sqrt(@extschema@.q3c_sindist(ra1, dec1, ra2, dec2)) > 1 THEN 'NaN'::double precision
            ELSE 2 * asin(sqrt(@extschema@.q3c_sindist(ra1, dec1, ra2, dec2)))
                 * 57.2957795130823208767981548141051703324122::double precision END
$$;
COMMENT ON FUNCTION @extschema@.q3c_dist(double precision, double precision, double precision, double precision)
  IS 'Function q3c_dist(ra1, dec1, ra2, dec2) computing the distance between points (ra1, dec1) and (ra2, dec2)';

-- proper-motion shifted sindist (q3c.c pgq3c_sindist_pm): not strict; the motion is
-- applied only when pmra, pmdec, epoch1 and epoch2 are all non-NULL.
CREATE OR REPLACE FUNCTION @extschema@.q3c_sindist_pm(
       ra1 double precision, dec1 double precision,
       pmra1 double precision, pmdec1 double precision,
       cosdec_flag integer,
       epoch1 double precision, ra2 double precision, dec2 double precision,
       epoch2 double precision)
RETURNS double precision LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE cdec double precision; r double precision := ra1; d double precision := dec1;
BEGIN
  IF ra1 IS NULL OR dec1 IS NULL OR ra2 IS NULL OR dec2 IS NULL THEN
    RAISE EXCEPTION 'The RA, DEC columns are not allowed to be null';
  END IF;
  IF pmra1 IS NOT NULL AND pmdec1 IS NOT NULL AND epoch1 IS NOT NULL AND epoch2 IS NOT NULL THEN
    IF coalesce(cosdec_flag, 0) <> 0 THEN
      cdec := cos(dec1 * 0.0174532925199432957692369076848861271344::double precision);
    ELSE
      cdec := 1;
    END IF;
    r := ra1 + pmra1 * (epoch2 - epoch1) / cdec / 3600000;
    d := dec1 + pmdec1 * (epoch2 - epoch1) / 3600000;
  END IF;
  RETURN @extschema@.q3c_sindist(r, d, ra2, dec2);
END $$;

CREATE OR REPLACE FUNCTION @extschema@.q3c_dist_pm(
       ra1 double precision, dec1 double precision,
       pmra1 double precision, pmdec1 double precision,
       cosdec_flag integer,
       epoch1 double precision, ra2 double precision, dec2 double precision,
       epoch2 double precision)
RETURNS double precision LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT CASE WHEN sqrt(s) <= 1 THEN 2 * asin(sqrt(s)) * 57.2957795130823208767981548141051703324122::double precision
            ELSE 'NaN'::double precision END
FROM (SELECT @extschema@.q3c_sindist_pm($1, $2, $3, $4, $5, $6, $7, $8, $9) AS s) AS q
$$;

-- ---------------------------------------------------------------------------------
-- the index pre-filter: a conservative cover of a cap by ranges of q3c_ang2ipix
-- ---------------------------------------------------------------------------------

-- Returns a flat array [lo1, hi1, lo2, hi2, ...] of sorted, merged, inclusive ipix ranges
-- (at most maxranges of them) covering every point whose angular distance from
-- (ra0, dec0) is <= |rad| (deg), with a margin of ~1e-9 relative.  Method: the cap's
-- RA/Dec bounding box is projected onto each cube face (equatorial faces: x = tan(dRA),
-- y = tan(dec)/cos(dRA); polar faces: x, y = cot(|dec|) (sin RA, -+cos RA)), giving a
-- box in face coordinates; the boxes are covered by quadtree cells at the finest depth
-- for which the merged ranges number <= maxranges.  |rad| >= 90 (or infinite): the
-- whole sphere; NaN radius or centre: no range.
CREATE OR REPLACE FUNCTION @extschema@.q3c_compat_cover(ra0 double precision, dec0 double precision,
                                                        rad double precision, maxranges integer)
RETURNS bigint[] LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  deg constant double precision := 0.0174532925199432957692369076848861271344;
  eps constant double precision := 1e-9;
  r double precision; rac double precision; d1 double precision; d2 double precision;
  da double precision; lo double precision; hi double precision; fullra boolean := false;
  fx1 double precision[] := '{}'; fx2 double precision[] := '{}';
  fy1 double precision[] := '{}'; fy2 double precision[] := '{}'; ff integer[] := '{}';
  f integer; c double precision; lo1 double precision; hi1 double precision;
  a1 double precision; a2 double precision; b1 double precision; b2 double precision;
  cmin double precision; cmax double precision; smin double precision; smax double precision;
  t double precision; rho1 double precision; rho2 double precision;
  x1 double precision; x2 double precision; y1 double precision; y2 double precision;
  ext double precision := 0; lev integer; n0 bigint; ncell bigint; k integer;
  ix1 bigint; ix2 bigint; iy1 bigint; iy2 bigint; ix bigint; iy bigint; sh integer;
  los bigint[]; out bigint[]; plo bigint; phi bigint; cur_lo bigint; cur_hi bigint;
BEGIN
  IF NOT (abs(ra0) < 'Infinity'::double precision AND abs(dec0) < 'Infinity'::double precision)
     OR rad = 'NaN'::double precision THEN
    RETURN '{}'::bigint[];
  END IF;
  r := abs(rad);
  IF r >= 90 OR abs(dec0) > 90 THEN
    RETURN ARRAY[0::bigint, 6917529027641081855::bigint];
  END IF;
  r := r * (1 + 1e-9) + 1e-9;
  rac := ra0 - 360 * floor(ra0 / 360);
  d1 := dec0 - r; d2 := dec0 + r;
  IF d2 >= 90 OR d1 <= -90 THEN
    fullra := true;
  ELSE
    t := sin(r * deg) / cos(dec0 * deg);
    IF t >= 1 THEN fullra := true;
    ELSE
      da := asin(t) / deg * (1 + 1e-9) + 1e-9;
      lo := rac - da; hi := rac + da;
    END IF;
  END IF;
  d1 := greatest(d1, -90); d2 := least(d2, 90);

  -- equatorial faces 1..4 (centre RA 0, 90, 180, 270)
  FOR f IN 1..4 LOOP
    c := 90 * (f - 1);
    IF fullra THEN
      a1 := -45.000001; a2 := 45.000001;
    ELSE
      lo1 := lo - c; lo1 := lo1 - 360 * floor((lo1 + 180) / 360); hi1 := lo1 + (hi - lo);
      a1 := NULL; a2 := NULL;
      IF hi1 >= -45.000001 AND lo1 <= 45.000001 THEN
        a1 := greatest(lo1, -45.000001); a2 := least(hi1, 45.000001);
      END IF;
      IF hi1 - 360 >= -45.000001 THEN   -- the wrapped piece
        a1 := least(coalesce(a1, 1e9), -45.000001);
        a2 := greatest(coalesce(a2, -1e9), least(hi1 - 360, 45.000001));
        a1 := greatest(a1, -45.000001);
      END IF;
      CONTINUE WHEN a1 IS NULL;
    END IF;
    cmin := least(cos(a1 * deg), cos(a2 * deg));
    cmax := CASE WHEN a1 <= 0 AND a2 >= 0 THEN 1 ELSE greatest(cos(a1 * deg), cos(a2 * deg)) END;
    t := tan(least(d2, 89.9999999) * deg);
    y2 := CASE WHEN t >= 0 THEN t / cmin ELSE t / cmax END;
    t := tan(greatest(d1, -89.9999999) * deg);
    y1 := CASE WHEN t >= 0 THEN t / cmax ELSE t / cmin END;
    x1 := (tan(a1 * deg) + 1) / 2 - eps; x2 := (tan(a2 * deg) + 1) / 2 + eps;
    y1 := (y1 + 1) / 2 - eps; y2 := (y2 + 1) / 2 + eps;
    CONTINUE WHEN y1 > 1 OR y2 < 0 OR x1 > 1 OR x2 < 0;
    ff := ff || f; fx1 := fx1 || greatest(x1, 0); fx2 := fx2 || least(x2, 1);
    fy1 := fy1 || greatest(y1, 0); fy2 := fy2 || least(y2, 1);
  END LOOP;

  -- polar faces: sin/cos ranges of RA over the box
  IF fullra THEN
    smin := -1; smax := 1; cmin := -1; cmax := 1;
  ELSE
    smin := least(sin(lo * deg), sin(hi * deg)); smax := greatest(sin(lo * deg), sin(hi * deg));
    cmin := least(cos(lo * deg), cos(hi * deg)); cmax := greatest(cos(lo * deg), cos(hi * deg));
    IF ceil((lo - 90) / 360) <= floor((hi - 90) / 360) THEN smax := 1; END IF;
    IF ceil((lo - 270) / 360) <= floor((hi - 270) / 360) THEN smin := -1; END IF;
    IF ceil(lo / 360) <= floor(hi / 360) THEN cmax := 1; END IF;
    IF ceil((lo - 180) / 360) <= floor((hi - 180) / 360) THEN cmin := -1; END IF;
  END IF;
  FOR f IN 0..5 BY 5 LOOP
    IF f = 0 THEN
      CONTINUE WHEN d2 < 35;
      rho1 := CASE WHEN d2 >= 89.9999999 THEN 0 ELSE 1 / tan(d2 * deg) END;
      rho2 := 1 / tan(greatest(d1, 35) * deg);
      b1 := -cmax; b2 := -cmin;           -- y = rho * (-cos RA)
    ELSE
      CONTINUE WHEN d1 > -35;
      rho1 := CASE WHEN d1 <= -89.9999999 THEN 0 ELSE 1 / tan(-d1 * deg) END;
      rho2 := 1 / tan(greatest(-d2, 35) * deg);
      b1 := cmin; b2 := cmax;             -- y = rho * cos RA
    END IF;
    x1 := least(rho1 * smin, rho1 * smax, rho2 * smin, rho2 * smax);
    x2 := greatest(rho1 * smin, rho1 * smax, rho2 * smin, rho2 * smax);
    y1 := least(rho1 * b1, rho1 * b2, rho2 * b1, rho2 * b2);
    y2 := greatest(rho1 * b1, rho1 * b2, rho2 * b1, rho2 * b2);
    x1 := (x1 + 1) / 2 - eps; x2 := (x2 + 1) / 2 + eps;
    y1 := (y1 + 1) / 2 - eps; y2 := (y2 + 1) / 2 + eps;
    CONTINUE WHEN y1 > 1 OR y2 < 0 OR x1 > 1 OR x2 < 0;
    ff := ff || f; fx1 := fx1 || greatest(x1, 0); fx2 := fx2 || least(x2, 1);
    fy1 := fy1 || greatest(y1, 0); fy2 := fy2 || least(y2, 1);
  END LOOP;

  IF cardinality(ff) = 0 THEN RETURN '{}'::bigint[]; END IF;
  FOR k IN 1..cardinality(ff) LOOP
    ext := greatest(ext, fx2[k] - fx1[k], fy2[k] - fy1[k]);
  END LOOP;
  lev := least(30, greatest(0, floor(-ln(greatest(ext, 1e-300)) / ln(2))::integer + 2));

  LOOP
    n0 := (1::bigint << lev);
    ncell := 0;
    FOR k IN 1..cardinality(ff) LOOP
      ncell := ncell + (least(floor(fx2[k] * n0)::bigint, n0 - 1) - least(floor(fx1[k] * n0)::bigint, n0 - 1) + 1)
                     * (least(floor(fy2[k] * n0)::bigint, n0 - 1) - least(floor(fy1[k] * n0)::bigint, n0 - 1) + 1);
    END LOOP;
    IF ncell <= 4 * maxranges OR lev = 0 THEN
      sh := 30 - lev;
      los := '{}';
      FOR k IN 1..cardinality(ff) LOOP
        ix1 := least(floor(fx1[k] * n0)::bigint, n0 - 1); ix2 := least(floor(fx2[k] * n0)::bigint, n0 - 1);
        iy1 := least(floor(fy1[k] * n0)::bigint, n0 - 1); iy2 := least(floor(fy2[k] * n0)::bigint, n0 - 1);
        FOR ix IN ix1..ix2 LOOP
          FOR iy IN iy1..iy2 LOOP
            los := los || (ff[k]::bigint * 1152921504606846976
                           + @extschema@.q3c_compat_interleave(ix << sh, iy << sh));
          END LOOP;
        END LOOP;
      END LOOP;
      SELECT array_agg(v ORDER BY v) INTO los FROM unnest(los) AS v;
      out := '{}'; cur_lo := NULL;
      FOREACH plo IN ARRAY los LOOP
        phi := plo + ((1::bigint << (2 * sh)) - 1);
        IF cur_lo IS NULL THEN cur_lo := plo; cur_hi := phi;
        ELSIF plo <= cur_hi + 1 THEN cur_hi := greatest(cur_hi, phi);
        ELSE out := out || ARRAY[cur_lo, cur_hi]; cur_lo := plo; cur_hi := phi;
        END IF;
      END LOOP;
      out := out || ARRAY[cur_lo, cur_hi];
      IF cardinality(out) <= 2 * maxranges OR lev = 0 THEN
        RETURN out;
      END IF;
    END IF;
    lev := lev - 1;
  END LOOP;
END $$;

-- element `iteration` (0-based) of a cover padded with empty ranges (1, pad_hi)
CREATE OR REPLACE FUNCTION @extschema@.q3c_compat_cover_it(cover bigint[], iteration integer,
                                                           half_open boolean)
RETURNS bigint LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
SELECT CASE WHEN iteration < cardinality(cover)
            THEN cover[iteration + 1] + CASE WHEN half_open AND iteration % 2 = 1 THEN 1 ELSE 0 END
            WHEN iteration % 2 = 0 THEN 1::bigint
            ELSE CASE WHEN half_open THEN -1::bigint ELSE 0::bigint END END
$$;

-- cone pre-filter (same signature as the extension; iteration 0..31 with full_flag = 1
-- are 16 half-open ranges [it(2k), it(2k+1)); full_flag = 0 gives empty ranges)
CREATE OR REPLACE FUNCTION @extschema@.q3c_radial_query_it(ra_cen double precision, dec_cen double precision,
                                                           radius double precision,
                                                           iteration integer, full_flag integer)
RETURNS bigint LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
  IF abs(dec_cen) > 90 AND abs(dec_cen) < 'Infinity'::double precision THEN
    RAISE EXCEPTION 'The absolute value of declination > 90!';
  END IF;
  IF full_flag = 0 THEN RETURN CASE WHEN iteration % 2 = 0 THEN 1 ELSE -1 END; END IF;
  RETURN @extschema@.q3c_compat_cover_it(@extschema@.q3c_compat_cover(ra_cen, dec_cen, radius, 16),
                                         iteration, true);
END $$;

-- join cover: 4 ranges; a NaN radius gives the whole cube face of the centre, as in
-- q3c 2.0 (where  sindist < POW(SIN(RADIANS('NaN')/2), 2)  is then true on that face,
-- because PostgreSQL sorts NaN above every number)
CREATE OR REPLACE FUNCTION @extschema@.q3c_compat_nearby_cover(ra0 double precision, dec0 double precision,
                                                               rad double precision)
RETURNS bigint[] LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE r double precision := ra0; f bigint;
BEGIN
  IF rad = 'NaN'::double precision THEN
    IF r < 0 THEN r := @extschema@.q3c_compat_fmod(r, 360) + 360;
    ELSIF r > 360 THEN r := @extschema@.q3c_compat_fmod(r, 360);
    END IF;
    f := @extschema@.q3c_compat_facenum(r, dec0);
    RETURN ARRAY[f * 1152921504606846976, (f + 1) * 1152921504606846976 - 1];
  END IF;
  RETURN @extschema@.q3c_compat_cover(ra0, dec0, rad, 4);
END $$;

-- join pre-filter (same signature and error as the extension: 4 inclusive ranges)
CREATE OR REPLACE FUNCTION @extschema@.q3c_nearby_it(ra_cen double precision, dec_cen double precision,
                                                     radius double precision, iteration integer)
RETURNS bigint LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE d double precision := dec_cen;
BEGIN
  IF NOT (abs(ra_cen) < 'Infinity'::double precision AND abs(dec_cen) < 'Infinity'::double precision) THEN
    RAISE EXCEPTION 'The values of ra,dec are infinites or NaNs';
  END IF;
  IF abs(d) > 90 THEN d := @extschema@.q3c_compat_fmod(d, 90); END IF;   -- as q3c 2.0 does
  RETURN @extschema@.q3c_compat_cover_it(@extschema@.q3c_compat_nearby_cover(ra_cen, d, radius),
                                         iteration, false);
END $$;

CREATE OR REPLACE FUNCTION @extschema@.q3c_nearby_pm_it(
       ra1 double precision, dec1 double precision,
       pmra1 double precision, pmdec1 double precision,
       cosdec_flag integer,
       maxepoch_delta double precision, rad double precision, iteration integer)
RETURNS bigint LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
  pmra double precision := pmra1; pmdec double precision := pmdec1;
  med double precision := maxepoch_delta; newrad double precision; d double precision := dec1;
  pm_enabled boolean := true;
BEGIN
  IF ra1 IS NULL OR dec1 IS NULL OR rad IS NULL THEN
    RAISE EXCEPTION 'Right Ascensions and raddii must be not null';
  END IF;
  IF pmra IS NULL OR pmdec IS NULL OR med IS NULL THEN
    pm_enabled := false; pmra := 0; pmdec := 0; med := 0;
  END IF;
  IF NOT (abs(ra1) < 'Infinity'::double precision AND abs(dec1) < 'Infinity'::double precision) THEN
    RAISE EXCEPTION 'The values of ra,dec are infinites or NaNs';
  END IF;
  IF NOT (abs(pmra) < 'Infinity'::double precision AND abs(pmdec) < 'Infinity'::double precision
          AND abs(med) < 'Infinity'::double precision) THEN
    pmra := 0; pmdec := 0; med := 0;
  END IF;
  IF med < 0 THEN
    RAISE EXCEPTION 'The maximum epoch difference must be >=0 ';
  END IF;
  IF pm_enabled THEN
    IF coalesce(cosdec_flag, 0) = 0 THEN
      pmra := pmra * cos(0.0174532925199432957692369076848861271344::double precision * dec1);
    END IF;
    newrad := sqrt(pmra * pmra + pmdec * pmdec) / 3600000 * med + rad;
  ELSE
    newrad := rad;
  END IF;
  IF abs(d) > 90 THEN d := @extschema@.q3c_compat_fmod(d, 90); END IF;
  RETURN @extschema@.q3c_compat_cover_it(@extschema@.q3c_compat_nearby_cover(ra1, d, newrad),
                                         iteration, false);
END $$;

-- ---------------------------------------------------------------------------------
-- ellipses (q3cube.c q3c_in_ellipse)
-- ---------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION @extschema@.q3c_compat_in_ellipse(alpha double precision, delta0 double precision,
       alpha1 double precision, delta01 double precision, d0 double precision,
       e double precision, pa0 double precision)
RETURNS boolean LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  deg constant double precision := 0.0174532925199432957692369076848861271344;
  d_alpha double precision; delta1 double precision; delta double precision;
  pa double precision; d double precision;
  t1 double precision; t22 double precision; t3 double precision; t32 double precision;
  t6 double precision; t26 double precision; t9 double precision; t55 double precision;
  t2 double precision; t4 double precision; t5 double precision; t7 double precision;
  t8 double precision; t10 double precision; t11 double precision; t13 double precision;
  t14 double precision; t15 double precision; t18 double precision; t19 double precision;
  t24 double precision; t31 double precision; t36 double precision; t37 double precision;
  t38 double precision; t45 double precision; t56 double precision; t57 double precision;
  t60 double precision; t61 double precision; t63 double precision;
BEGIN
  -- C comparisons with NaN are false: the C function then returns 0
  IF NOT (abs(alpha) < 'Infinity'::double precision AND abs(delta0) < 'Infinity'::double precision
      AND abs(alpha1) < 'Infinity'::double precision AND abs(delta01) < 'Infinity'::double precision
      AND abs(d0) < 'Infinity'::double precision AND abs(e) < 'Infinity'::double precision
      AND abs(pa0) < 'Infinity'::double precision) THEN
    RETURN false;
  END IF;
  d_alpha := (alpha1 - alpha) * deg;
  delta1 := delta01 * deg;
  delta := delta0 * deg;
  pa := pa0 * deg;
  d := d0 * deg;
  t1 := cos(d_alpha); t22 := sin(d_alpha);
  t3 := cos(delta1); t32 := sin(delta1);
  t6 := cos(delta); t26 := sin(delta);
  t9 := cos(d); t55 := sin(d);
  -- sines below 1e-100 -> 0: PostgreSQL raises on float underflow, C would not
  IF abs(t22) < 1e-100 THEN t22 := 0; END IF;
  IF abs(t32) < 1e-100 THEN t32 := 0; END IF;
  IF abs(t26) < 1e-100 THEN t26 := 0; END IF;
  IF abs(t55) < 1e-100 THEN t55 := 0; END IF;
  IF (t3 * t6 * t1 + t32 * t26) < 0 THEN RETURN false; END IF;
  t2 := t1 * t1;
  t4 := t3 * t3;
  t5 := t2 * t4;
  t7 := t6 * t6;
  t8 := t5 * t7;
  t10 := t9 * t9;
  t11 := t7 * t10;
  t13 := cos(pa);
  t14 := t13 * t13;
  t15 := t14 * t10;
  t18 := t7 * t14;
  t19 := t18 * t10;
  t24 := sin(pa);
  IF abs(t24) < 1e-100 THEN t24 := 0; END IF;
  t31 := t1 * t3;
  t36 := 2.0 * t31 * t32 * t26 * t6;
  t37 := t31 * t32;
  t38 := t26 * t6;
  t45 := t4 * t10;
  t56 := t55 * t55;
  t57 := t4 * t7;
  t60 := -t8 + t5 * t11 + 2.0 * t5 * t15 - t5 * t19
         - 2.0 * t1 * t4 * t22 * t10 * t24 * t13 * t26 - t36
         + 2.0 * t37 * t38 * t10 - 2.0 * t37 * t38 * t15 - t45 * t14 - t45 * t2
         + 2.0 * t22 * t3 * t32 * t6 * t24 * t10 * t13 - t56 + t7 - t11 + t4 - t57
         + t57 * t10 + t19 - t18 * t45;
  t61 := e * e;
  t63 := t60 * t61 + t8 + t57 - t4 - t7 + t56 + t36;
  RETURN t63 > 0;
END $$;

CREATE OR REPLACE FUNCTION @extschema@.q3c_in_ellipse(ra0 double precision, dec0 double precision,
       ra_ell double precision, dec_ell double precision,
       maj_ax double precision, axis_ratio double precision, pa double precision)
RETURNS boolean LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
SELECT @extschema@.q3c_compat_in_ellipse(ra_ell, dec_ell, ra0, dec0, maj_ax,
       CASE WHEN 1 - axis_ratio * axis_ratio >= 0 THEN sqrt(1 - axis_ratio * axis_ratio)
            ELSE 'NaN'::double precision END, pa)
$$;

CREATE OR REPLACE FUNCTION @extschema@.q3c_ellipse_query_it(ra_ell double precision, dec_ell double precision,
       majax double precision, axis_ratio double precision, pa double precision,
       iteration integer, full_flag integer)
RETURNS bigint LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
  IF abs(dec_ell) > 90 AND abs(dec_ell) < 'Infinity'::double precision THEN
    RAISE EXCEPTION 'The absolute value of declination > 90!';
  END IF;
  IF full_flag = 0 THEN RETURN CASE WHEN iteration % 2 = 0 THEN 1 ELSE -1 END; END IF;
  RETURN @extschema@.q3c_compat_cover_it(@extschema@.q3c_compat_cover(ra_ell, dec_ell, majax, 16),
                                         iteration, true);
END $$;

CREATE OR REPLACE FUNCTION @extschema@.q3c_ellipse_nearby_it(ra_cen double precision, dec_cen double precision,
       majax double precision, axis_ratio double precision, pa double precision, iteration integer)
RETURNS bigint LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE d double precision := dec_cen;
BEGIN
  IF NOT (abs(ra_cen) < 'Infinity'::double precision AND abs(dec_cen) < 'Infinity'::double precision
          AND abs(majax) < 'Infinity'::double precision) THEN
    RAISE EXCEPTION 'The values of ra,dec,radius are infinites or NaNs';
  END IF;
  IF abs(d) > 90 THEN d := @extschema@.q3c_compat_fmod(d, 90); END IF;
  RETURN @extschema@.q3c_compat_cover_it(@extschema@.q3c_compat_cover(ra_cen, d, majax, 4),
                                         iteration, false);
END $$;

-- ---------------------------------------------------------------------------------
-- polygons (q3c_poly.c: projection on the cube face of the first vertex and its
-- neighbours, crossing-number test on the face of the point)
-- ---------------------------------------------------------------------------------

-- project polygon vertices on face f: returns [x1..xn, y1..yn] (face coords in
-- [-0.5, 0.5]) or raises the extension's "too large" error
CREATE OR REPLACE FUNCTION @extschema@.q3c_compat_project_poly(ra double precision[], decl double precision[],
                                                               f integer)
RETURNS double precision[] LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  deg constant double precision := 0.0174532925199432957692369076848861271344;
  n integer := cardinality(ra); i integer; ra1 double precision; dec1 double precision;
  tv double precision; t0 double precision; xs double precision[] := '{}'; ys double precision[] := '{}';
BEGIN
  FOR i IN 1..n LOOP
    IF f > 0 AND f < 5 THEN
      ra1 := deg * (ra[i] - 90 * (f - 1)::double precision);
      dec1 := deg * decl[i];
      tv := cos(ra1);
      IF NOT (tv >= 1e-10) THEN
        RAISE EXCEPTION 'The polygon is too large. Polygons having diameter >~23 degrees are unsupported';
      END IF;
      xs := xs || (tan(ra1) / 2);
      ys := ys || (tan(dec1) / tv / 2);
    ELSE
      ra1 := deg * ra[i];
      dec1 := deg * decl[i];
      tv := tan(dec1);
      IF (f = 0 AND NOT (tv >= 1e-10)) OR (f = 5 AND NOT (tv <= -1e-10)) THEN
        RAISE EXCEPTION 'The polygon is too large. Polygons having diameter >~23 degrees are unsupported';
      END IF;
      t0 := 1 / tv;
      IF f = 0 THEN
        xs := xs || ((sin(ra1) * t0) / 2);
        ys := ys || ((cos(ra1) * (-t0)) / 2);
      ELSE
        xs := xs || ((sin(ra1) * (-t0)) / 2);
        ys := ys || ((cos(ra1) * (-t0)) / 2);
      END IF;
    END IF;
  END LOOP;
  RETURN xs || ys;
END $$;

-- face number of point (x, y) given in [-1, 1]-scaled coordinates of face f0
-- (q3cube.c q3c_xy2facenum)
CREATE OR REPLACE FUNCTION @extschema@.q3c_compat_xy2facenum(x double precision, y double precision, f0 integer)
RETURNS integer LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  radeg constant double precision := 57.2957795130823208767981548141051703324122;
  ra double precision := 0; dc double precision := 0; rr double precision;
BEGIN
  IF f0 >= 1 AND f0 <= 4 THEN
    ra := atan(x);
    dc := radeg * atan(y * cos(ra));
    ra := ra * radeg + (f0 - 1)::double precision * 90;
    IF ra < 0 THEN ra := ra + 360; END IF;
  ELSE
    rr := sqrt(x * x + y * y);
    IF f0 = 0 THEN
      ra := radeg * atan2(x, -y);
      dc := radeg * CASE WHEN rr = 0 THEN pi() / 2 ELSE atan(1 / rr) END;
    ELSE
      ra := radeg * atan2(x, y);
      dc := -radeg * CASE WHEN rr = 0 THEN pi() / 2 ELSE atan(1 / rr) END;
    END IF;
    IF ra < 0 THEN ra := ra + 360; END IF;
  END IF;
  RETURN @extschema@.q3c_compat_facenum(ra, dc);
END $$;

-- Validates the polygon array like q3c does and prepares its projections:
-- returns rows (face, x[], y[]) for the face of the first vertex and the faces its
-- bounding box spills onto (q3cube.c q3c_multi_face_check).
CREATE OR REPLACE FUNCTION @extschema@.q3c_compat_poly_faces(poly double precision[])
RETURNS TABLE(face integer, xs double precision[], ys double precision[])
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  v double precision[]; n integer; i integer; ra double precision[] := '{}';
  dc double precision[] := '{}'; f0 integer; p double precision[];
  xmin double precision; xmax double precision; ymin double precision; ymax double precision;
  pts double precision[]; multi integer; k integer; fk integer;
BEGIN
  n := cardinality(poly);
  IF n % 2 <> 0 THEN
    RAISE EXCEPTION E'Invalid array argument!\nThe array should contain even number of elements';
  ELSIF n <= 4 THEN
    RAISE EXCEPTION 'Invalid polygon! The polygon must have more than two vertices';
  END IF;
  IF array_position(poly, NULL) IS NOT NULL THEN
    RAISE EXCEPTION 'null array element not allowed in this context' USING ERRCODE = '22004';
  END IF;
  v := ARRAY(SELECT unnest(poly));
  FOR i IN 1..n / 2 LOOP
    ra := ra || v[2 * i - 1]; dc := dc || v[2 * i];
  END LOOP;
  f0 := @extschema@.q3c_compat_facenum(ra[1], dc[1]);
  p := @extschema@.q3c_compat_project_poly(ra, dc, f0);
  face := f0; xs := p[1:n / 2]; ys := p[n / 2 + 1:n];
  RETURN NEXT;
  SELECT min(x), max(x) INTO xmin, xmax FROM unnest(xs) AS x;
  SELECT min(y), max(y) INTO ymin, ymax FROM unnest(ys) AS y;
  multi := 0;
  IF xmin < -0.5 THEN
    IF ymin < -0.5 THEN pts := ARRAY[xmax, ymin, xmin, ymax]; multi := 2;
    ELSIF ymax > 0.5 THEN pts := ARRAY[xmax, ymax, xmin, ymin]; multi := 2;
    ELSE pts := ARRAY[xmin, (ymin + ymax) / 2]; multi := 1;
    END IF;
  ELSIF xmax > 0.5 THEN
    IF ymin < -0.5 THEN pts := ARRAY[xmin, ymin, xmax, ymax]; multi := 2;
    ELSIF ymax > 0.5 THEN pts := ARRAY[xmin, ymax, xmax, ymin]; multi := 2;
    ELSE pts := ARRAY[xmax, (ymin + ymax) / 2]; multi := 1;
    END IF;
  ELSIF ymin < -0.5 THEN pts := ARRAY[(xmin + xmax) / 2, ymin]; multi := 1;
  ELSIF ymax > 0.5 THEN pts := ARRAY[(xmin + xmax) / 2, ymax]; multi := 1;
  END IF;
  FOR k IN 1..multi LOOP
    fk := @extschema@.q3c_compat_xy2facenum(2 * pts[2 * k - 1], 2 * pts[2 * k], f0);
    p := @extschema@.q3c_compat_project_poly(ra, dc, fk);
    face := fk; xs := p[1:n / 2]; ys := p[n / 2 + 1:n];
    RETURN NEXT;
  END LOOP;
END $$;

CREATE OR REPLACE FUNCTION @extschema@.q3c_in_poly(ra double precision, decl double precision,
                                                   poly double precision[])
RETURNS boolean LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  deg constant double precision := 0.0174532925199432957692369076848861271344;
  f integer; x0 double precision; y0 double precision; ra1 double precision; dec1 double precision;
  t double precision; r double precision; dc double precision; xs double precision[]; ys double precision[]; n integer; i integer; j integer;
  inside boolean := false; found boolean := false; rec record;
BEGIN
  -- where the point lies (q3cube.c q3c_ang2ipix_xy, face coordinates in [-0.5, 0.5])
  IF NOT (abs(ra) < 'Infinity'::double precision) OR decl = 'NaN'::double precision THEN
    f := -1;   -- C: NaN face coordinates fail every comparison: outside
  ELSE
    r := ra;
    IF r < 0 THEN r := @extschema@.q3c_compat_fmod(r, 360) + 360;
    ELSIF r > 360 THEN r := @extschema@.q3c_compat_fmod(r, 360);
    END IF;
    dc := least(greatest(decl, -90), 90);
    f := trunc(@extschema@.q3c_compat_fmod((r + 45) / 90, 4))::integer;
    ra1 := deg * (r - 90 * f::double precision);
    dec1 := deg * dc;
    x0 := tan(ra1);
    y0 := tan(dec1) / cos(ra1);
    f := f + 1;
    IF y0 > 1 THEN
      f := 0; t := 1 / tan(dec1);
      x0 := sin(deg * r) * t; y0 := cos(deg * r) * (-t);
    ELSIF y0 < -1 THEN
      f := 5; t := 1 / tan(dec1);
      x0 := sin(deg * r) * (-t); y0 := cos(deg * r) * (-t);
    END IF;
    x0 := x0 / 2; y0 := y0 / 2;
  END IF;
  -- the polygon's projections (validates it and raises q3c's errors even for NaN points)
  FOR rec IN SELECT * FROM @extschema@.q3c_compat_poly_faces(poly) LOOP
    IF NOT found AND rec.face = f THEN
      found := true; xs := rec.xs; ys := rec.ys;
    END IF;
  END LOOP;
  IF NOT found THEN RETURN false; END IF;
  n := cardinality(xs);
  FOR i IN 1..n LOOP
    j := i % n + 1;
    IF (y0 <= ys[i]) = (y0 > ys[j]) THEN
      IF (x0 - xs[i]) < (y0 - ys[i]) * (xs[j] - xs[i]) / (ys[j] - ys[i]) THEN
        inside := NOT inside;
      END IF;
    END IF;
  END LOOP;
  RETURN inside;
END $$;

CREATE OR REPLACE FUNCTION @extschema@.q3c_compat_poly2array(poly polygon)
RETURNS double precision[] LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
  IF npoints(poly) < 3 THEN
    RAISE EXCEPTION 'Invalid polygon! The polygon must have more than two vertices';
  END IF;
  RETURN string_to_array(translate(poly::text, '()', ''), ',')::double precision[];
END $$;

CREATE OR REPLACE FUNCTION @extschema@.q3c_in_poly(ra double precision, decl double precision, poly polygon)
RETURNS boolean LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
SELECT @extschema@.q3c_in_poly(ra, decl, @extschema@.q3c_compat_poly2array(poly))
$$;

-- polygon pre-filter: the cap around the normalised vertex mean that holds all
-- vertices (edges are great circles, inside that cap when its radius < 90 deg)
CREATE OR REPLACE FUNCTION @extschema@.q3c_compat_poly_cover(poly double precision[])
RETURNS bigint[] LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
  deg constant double precision := 0.0174532925199432957692369076848861271344;
  v double precision[]; n integer; i integer; sx double precision := 0; sy double precision := 0;
  sz double precision := 0; nn double precision; rac double precision; dcc double precision;
  rmax double precision := 0;
BEGIN
  PERFORM count(*) FROM @extschema@.q3c_compat_poly_faces(poly);   -- validation and errors
  v := ARRAY(SELECT unnest(poly)); n := cardinality(v) / 2;
  FOR i IN 1..n LOOP
    sx := sx + cos(v[2 * i] * deg) * cos(v[2 * i - 1] * deg);
    sy := sy + cos(v[2 * i] * deg) * sin(v[2 * i - 1] * deg);
    sz := sz + sin(v[2 * i] * deg);
  END LOOP;
  nn := sqrt(sx * sx + sy * sy + sz * sz);
  IF NOT (nn > 1e-12) THEN RETURN ARRAY[0::bigint, 6917529027641081855::bigint]; END IF;
  rac := atan2(sy, sx) / deg; dcc := asin(least(1, greatest(-1, sz / nn))) / deg;
  FOR i IN 1..n LOOP
    rmax := greatest(rmax, @extschema@.q3c_dist(rac, dcc, v[2 * i - 1], v[2 * i]));
  END LOOP;
  RETURN @extschema@.q3c_compat_cover(rac, dcc, rmax * (1 + 1e-6) + 1e-6, 16);
END $$;

CREATE OR REPLACE FUNCTION @extschema@.q3c_poly_query_it(poly double precision[], iteration integer,
                                                         full_flag integer)
RETURNS bigint LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
  IF full_flag = 0 THEN
    PERFORM count(*) FROM @extschema@.q3c_compat_poly_faces(poly);
    RETURN CASE WHEN iteration % 2 = 0 THEN 1 ELSE -1 END;
  END IF;
  RETURN @extschema@.q3c_compat_cover_it(@extschema@.q3c_compat_poly_cover(poly), iteration, true);
END $$;

CREATE OR REPLACE FUNCTION @extschema@.q3c_poly_query_it(poly polygon, iteration integer, full_flag integer)
RETURNS bigint LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
SELECT @extschema@.q3c_poly_query_it(@extschema@.q3c_compat_poly2array(poly), iteration, full_flag)
$$;

-- ---------------------------------------------------------------------------------
-- the query wrappers (inlined by the planner: ranges of q3c_ang2ipix AND exact test)
-- ---------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION @extschema@.q3c_join(leftra double precision, leftdec double precision,
                                                rightra double precision, rightdec double precision,
                                                radius double precision)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT ((@extschema@.q3c_ang2ipix($3, $4) >= @extschema@.q3c_nearby_it($1, $2, $5, 0) AND @extschema@.q3c_ang2ipix($3, $4) <= @extschema@.q3c_nearby_it($1, $2, $5, 1))
    OR (@extschema@.q3c_ang2ipix($3, $4) >= @extschema@.q3c_nearby_it($1, $2, $5, 2) AND @extschema@.q3c_ang2ipix($3, $4) <= @extschema@.q3c_nearby_it($1, $2, $5, 3))
    OR (@extschema@.q3c_ang2ipix($3, $4) >= @extschema@.q3c_nearby_it($1, $2, $5, 4) AND @extschema@.q3c_ang2ipix($3, $4) <= @extschema@.q3c_nearby_it($1, $2, $5, 5))
    OR (@extschema@.q3c_ang2ipix($3, $4) >= @extschema@.q3c_nearby_it($1, $2, $5, 6) AND @extschema@.q3c_ang2ipix($3, $4) <= @extschema@.q3c_nearby_it($1, $2, $5, 7)))
   AND @extschema@.q3c_sindist($1, $2, $3, $4) < POW(SIN(RADIANS($5) / 2), 2)
   AND ($5 IS NOT NULL OR NULL::boolean)
$$;

CREATE OR REPLACE FUNCTION @extschema@.q3c_join(leftra double precision, leftdec double precision,
                                                rightra real, rightdec real,
                                                radius double precision)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT ((@extschema@.q3c_ang2ipix($3, $4) >= @extschema@.q3c_nearby_it($1, $2, $5, 0) AND @extschema@.q3c_ang2ipix($3, $4) <= @extschema@.q3c_nearby_it($1, $2, $5, 1))
    OR (@extschema@.q3c_ang2ipix($3, $4) >= @extschema@.q3c_nearby_it($1, $2, $5, 2) AND @extschema@.q3c_ang2ipix($3, $4) <= @extschema@.q3c_nearby_it($1, $2, $5, 3))
    OR (@extschema@.q3c_ang2ipix($3, $4) >= @extschema@.q3c_nearby_it($1, $2, $5, 4) AND @extschema@.q3c_ang2ipix($3, $4) <= @extschema@.q3c_nearby_it($1, $2, $5, 5))
    OR (@extschema@.q3c_ang2ipix($3, $4) >= @extschema@.q3c_nearby_it($1, $2, $5, 6) AND @extschema@.q3c_ang2ipix($3, $4) <= @extschema@.q3c_nearby_it($1, $2, $5, 7)))
   AND @extschema@.q3c_sindist($1, $2, $3, $4) < POW(SIN(RADIANS($5) / 2), 2)
   AND ($5 IS NOT NULL OR NULL::boolean)
$$;

CREATE OR REPLACE FUNCTION @extschema@.q3c_join_pm(
       left_ra double precision, left_dec double precision,
       left_pmra double precision, left_pmdec double precision,
       cosdec_flag integer, left_epoch double precision,
       right_ra double precision, right_dec double precision, right_epoch double precision,
       max_epoch_delta double precision, radius double precision)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT ((@extschema@.q3c_ang2ipix($7, $8) >= @extschema@.q3c_nearby_pm_it($1, $2, $3, $4, $5, $10, $11, 0) AND @extschema@.q3c_ang2ipix($7, $8) <= @extschema@.q3c_nearby_pm_it($1, $2, $3, $4, $5, $10, $11, 1))
    OR (@extschema@.q3c_ang2ipix($7, $8) >= @extschema@.q3c_nearby_pm_it($1, $2, $3, $4, $5, $10, $11, 2) AND @extschema@.q3c_ang2ipix($7, $8) <= @extschema@.q3c_nearby_pm_it($1, $2, $3, $4, $5, $10, $11, 3))
    OR (@extschema@.q3c_ang2ipix($7, $8) >= @extschema@.q3c_nearby_pm_it($1, $2, $3, $4, $5, $10, $11, 4) AND @extschema@.q3c_ang2ipix($7, $8) <= @extschema@.q3c_nearby_pm_it($1, $2, $3, $4, $5, $10, $11, 5))
    OR (@extschema@.q3c_ang2ipix($7, $8) >= @extschema@.q3c_nearby_pm_it($1, $2, $3, $4, $5, $10, $11, 6) AND @extschema@.q3c_ang2ipix($7, $8) <= @extschema@.q3c_nearby_pm_it($1, $2, $3, $4, $5, $10, $11, 7)))
   AND @extschema@.q3c_sindist_pm($1, $2, $3, $4, $5, $6, $7, $8, $9) < POW(SIN(RADIANS($11) / 2), 2)
   AND ($10 IS NOT NULL OR NULL::boolean)
$$;

CREATE OR REPLACE FUNCTION @extschema@.q3c_ellipse_join(leftra double precision, leftdec double precision,
       rightra double precision, rightdec double precision,
       majoraxis double precision, axisratio double precision, pa double precision)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT ((@extschema@.q3c_ang2ipix($3, $4) >= @extschema@.q3c_ellipse_nearby_it($1, $2, $5, $6, $7, 0) AND @extschema@.q3c_ang2ipix($3, $4) <= @extschema@.q3c_ellipse_nearby_it($1, $2, $5, $6, $7, 1))
    OR (@extschema@.q3c_ang2ipix($3, $4) >= @extschema@.q3c_ellipse_nearby_it($1, $2, $5, $6, $7, 2) AND @extschema@.q3c_ang2ipix($3, $4) <= @extschema@.q3c_ellipse_nearby_it($1, $2, $5, $6, $7, 3))
    OR (@extschema@.q3c_ang2ipix($3, $4) >= @extschema@.q3c_ellipse_nearby_it($1, $2, $5, $6, $7, 4) AND @extschema@.q3c_ang2ipix($3, $4) <= @extschema@.q3c_ellipse_nearby_it($1, $2, $5, $6, $7, 5))
    OR (@extschema@.q3c_ang2ipix($3, $4) >= @extschema@.q3c_ellipse_nearby_it($1, $2, $5, $6, $7, 6) AND @extschema@.q3c_ang2ipix($3, $4) <= @extschema@.q3c_ellipse_nearby_it($1, $2, $5, $6, $7, 7)))
   AND @extschema@.q3c_in_ellipse($3, $4, $1, $2, $5, $6, $7)
   AND ($5 IS NOT NULL OR NULL::boolean)
$$;

CREATE OR REPLACE FUNCTION @extschema@.q3c_radial_query(real, real,
       double precision, double precision, double precision)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT ((@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 0, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 1, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 2, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 3, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 4, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 5, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 6, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 7, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 8, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 9, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 10, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 11, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 12, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 13, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 14, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 15, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 16, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 17, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 18, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 19, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 20, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 21, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 22, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 23, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 24, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 25, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 26, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 27, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 28, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 29, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 30, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 31, 1)))
   AND @extschema@.q3c_sindist($1, $2, $3, $4) < POW(SIN(RADIANS($5) / 2), 2)
$$;

CREATE OR REPLACE FUNCTION @extschema@.q3c_radial_query(double precision, double precision,
       double precision, double precision, double precision)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT ((@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 0, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 1, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 2, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 3, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 4, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 5, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 6, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 7, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 8, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 9, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 10, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 11, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 12, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 13, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 14, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 15, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 16, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 17, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 18, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 19, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 20, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 21, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 22, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 23, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 24, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 25, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 26, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 27, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 28, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 29, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_radial_query_it($3, $4, $5, 30, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_radial_query_it($3, $4, $5, 31, 1)))
   AND @extschema@.q3c_sindist($1, $2, $3, $4) < POW(SIN(RADIANS($5) / 2), 2)
$$;

CREATE OR REPLACE FUNCTION @extschema@.q3c_ellipse_query(ra_col double precision, dec_col double precision,
       ra_ell double precision, dec_ell double precision,
       majax double precision, axis_ratio double precision, pa double precision)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT ((@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 0, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 1, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 2, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 3, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 4, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 5, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 6, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 7, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 8, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 9, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 10, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 11, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 12, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 13, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 14, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 15, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 16, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 17, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 18, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 19, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 20, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 21, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 22, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 23, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 24, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 25, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 26, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 27, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 28, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 29, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 30, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_ellipse_query_it($3, $4, $5, $6, $7, 31, 1)))
   AND @extschema@.q3c_in_ellipse($1, $2, $3, $4, $5, $6, $7)
$$;

CREATE OR REPLACE FUNCTION @extschema@.q3c_poly_query(double precision, double precision, double precision[])
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT ((@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 0, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 1, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 2, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 3, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 4, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 5, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 6, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 7, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 8, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 9, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 10, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 11, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 12, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 13, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 14, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 15, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 16, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 17, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 18, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 19, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 20, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 21, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 22, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 23, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 24, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 25, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 26, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 27, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 28, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 29, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 30, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 31, 1)))
   AND @extschema@.q3c_in_poly($1, $2, $3)
$$;

CREATE OR REPLACE FUNCTION @extschema@.q3c_poly_query(real, real, double precision[])
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT ((@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 0, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 1, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 2, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 3, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 4, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 5, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 6, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 7, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 8, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 9, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 10, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 11, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 12, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 13, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 14, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 15, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 16, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 17, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 18, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 19, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 20, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 21, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 22, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 23, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 24, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 25, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 26, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 27, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 28, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 29, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 30, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 31, 1)))
   AND @extschema@.q3c_in_poly($1, $2, $3)
$$;

CREATE OR REPLACE FUNCTION @extschema@.q3c_poly_query(double precision, double precision, polygon)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT ((@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 0, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 1, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 2, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 3, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 4, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 5, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 6, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 7, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 8, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 9, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 10, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 11, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 12, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 13, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 14, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 15, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 16, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 17, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 18, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 19, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 20, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 21, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 22, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 23, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 24, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 25, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 26, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 27, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 28, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 29, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 30, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 31, 1)))
   AND @extschema@.q3c_in_poly($1, $2, $3)
$$;

CREATE OR REPLACE FUNCTION @extschema@.q3c_poly_query(real, real, polygon)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
SELECT ((@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 0, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 1, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 2, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 3, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 4, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 5, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 6, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 7, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 8, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 9, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 10, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 11, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 12, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 13, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 14, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 15, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 16, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 17, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 18, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 19, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 20, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 21, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 22, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 23, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 24, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 25, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 26, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 27, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 28, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 29, 1))
    OR (@extschema@.q3c_ang2ipix($1, $2) >= @extschema@.q3c_poly_query_it($3, 30, 1) AND @extschema@.q3c_ang2ipix($1, $2) < @extschema@.q3c_poly_query_it($3, 31, 1)))
   AND @extschema@.q3c_in_poly($1, $2, $3)
$$;
