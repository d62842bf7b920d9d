#!/usr/bin/env bash
# Make sure Redis (127.0.0.1:6379) and PostgreSQL (127.0.0.1:5432, trust auth, database
# "test") are up for the integration tests. Starts them if installed but stopped; on CI
# (CI=true, root, apt) installs them if missing. Never fails the build by itself: the
# tests report a missing service (and fail on CI, where LOOPBRIDGE_REQUIRE_SERVICES=1).
set -u
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
can_install() { [ "${CI:-}" = "true" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; }

if ! up 6379; then
  if ! command -v redis-server >/dev/null && can_install; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server
  fi
  if command -v redis-server >/dev/null; then
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
      --dir /var/lib/redis --logfile /var/log/redis/ci.log
  fi
fi

if ! up 5432; then
  if ! command -v pg_ctlcluster >/dev/null && can_install; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
    ver=$(ls /etc/postgresql | sort -n | tail -1)
    hba="/etc/postgresql/$ver/main/pg_hba.conf"
    # test machine only: trust local TCP connections, as the provided machines do
    printf 'local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n' > "$hba"
  fi
  if command -v pg_ctlcluster >/dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -n | tail -1)" main start
  fi
fi

for _ in $(seq 1 30); do up 6379 && up 5432 && break; sleep 0.5; done
if up 5432 && command -v psql >/dev/null; then
  psql -h 127.0.0.1 -U postgres -tAc "select 1 from pg_database where datname='test'" 2>/dev/null \
    | grep -q 1 || psql -h 127.0.0.1 -U postgres -c "create database test" >/dev/null 2>&1
fi
up 6379 && echo "redis: up" || echo "redis: NOT reachable"
up 5432 && echo "postgresql: up" || echo "postgresql: NOT reachable"
exit 0
