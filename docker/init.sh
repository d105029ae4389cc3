#!/bin/sh
# First start: initdb, a catdb superuser with password $CATDB_PASSWORD (default catdb), jit off.
set -e
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  initdb -D "$PGDATA" -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8
  echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
  echo "jit = off" >> "$PGDATA/postgresql.conf"
  echo "host all all 0.0.0.0/0 scram-sha-256" >> "$PGDATA/pg_hba.conf"
  pg_ctl -D "$PGDATA" -w start -o "-c listen_addresses=''"
  psql -U postgres -c "CREATE ROLE catdb LOGIN SUPERUSER PASSWORD '${CATDB_PASSWORD:-catdb}'"
  psql -U postgres -c "CREATE DATABASE catdb OWNER catdb"
  pg_ctl -D "$PGDATA" -w stop
fi
exec postgres -D "$PGDATA"
