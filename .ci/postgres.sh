# Source me: start a throwaway PostgreSQL server for the tune tests and export its URL.
# Returns non-zero when no server could be started (.ci/run then fails unless TRAINWELL_ALLOW_SKIP names postgres).
#   TRAINWELL_TEST_PG_URL=postgresql+psycopg2://postgres@127.0.0.1:54329/trainwell_test
_tw_pg() {
  local port="${TRAINWELL_PG_PORT:-54329}" bin dir as=""
  if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      echo "postgres: installing Debian's postgresql (apt-get)"
      (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null 2>&1 \
        || { echo "postgres: apt-get install failed"; return 1; }
    else
      echo "postgres: not installed and cannot install (not root or no apt-get)"
      return 1
    fi
  fi
  bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)"
  [ -n "$bin" ] || bin="$(dirname "$(command -v initdb)")"
  dir="$(mktemp -d /tmp/trainwell-pg.XXXXXX)"
  if [ "$(id -u)" = 0 ]; then
    id postgres >/dev/null 2>&1 || useradd -r -M postgres 2>/dev/null || true
    chown postgres "$dir"; as="runuser -u postgres --"
  fi
  $as "$bin/initdb" -D "$dir/data" -A trust -U postgres >/dev/null 2>&1 \
    || { echo "postgres: initdb failed"; return 1; }
  $as "$bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w -o "-p $port -k /tmp -c listen_addresses=127.0.0.1" start >/dev/null 2>&1 \
    || { echo "postgres: server did not start (see $dir/log)"; return 1; }
  $as "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres trainwell_test >/dev/null 2>&1 || true
  export TRAINWELL_TEST_PG_URL="postgresql+psycopg2://postgres@127.0.0.1:$port/trainwell_test"
  TRAINWELL_PG_STOP="$as $bin/pg_ctl -D $dir/data -m fast stop"
  trap 'eval "$TRAINWELL_PG_STOP" >/dev/null 2>&1; rm -rf '"$dir"' 2>/dev/null' EXIT
  echo "postgres: server on 127.0.0.1:$port ($TRAINWELL_TEST_PG_URL)"
}
