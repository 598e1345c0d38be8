#!/usr/bin/env bash
# Installs pgvector (the `vector` extension search-service needs) into the machine's PostgreSQL server.
#
# Debian 12 has no pgvector package, but Debian trixie's source package builds against bookworm's
# postgresql-server-dev-<major>: this script adds a deb-src entry for trixie (sources only, so no
# trixie binary is ever installed), fetches the source with `apt-get source`, builds it without LLVM
# bitcode (no clang needed) and installs it. Then, when the server answers, it checks the extension
# in a scratch database: CREATE EXTENSION, an HNSW index and a `<=>` (cosine distance) query.
#
#   sudo scripts/install-pgvector.sh
#
# Idempotent: when the extension's files are already installed it says so and does nothing.
# Run as root on Debian 12 (bookworm) with PostgreSQL from Debian.
# Env: PG_MAJOR (default: the installed server's major version), PGHOST (127.0.0.1), PGPORT (5432),
# PGUSER (postgres): where the check connects.
set -euo pipefail

log() { printf '== %s\n' "$*"; }
fail() { printf 'install-pgvector: %s\n' "$*" >&2; exit 1; }

major="${PG_MAJOR:-}"
if [ -z "$major" ]; then
  # The newest server installed from Debian's packages (/usr/lib/postgresql/<major>/bin/postgres).
  major=$(find /usr/lib/postgresql -mindepth 3 -maxdepth 3 -path '*/bin/postgres' 2>/dev/null | awk -F/ '{print $5}' | sort -n | tail -n1)
fi
[ -n "$major" ] || fail "no PostgreSQL server found under /usr/lib/postgresql: install one first (apt-get install postgresql)"
pg_config="/usr/lib/postgresql/$major/bin/pg_config"
share="/usr/share/postgresql/$major/extension"
lib="/usr/lib/postgresql/$major/lib"

if [ -f "$share/vector.control" ] && [ -f "$lib/vector.so" ]; then
  log "pgvector is already installed for PostgreSQL $major ($(sed -n "s/^default_version = '\(.*\)'/\1/p" "$share/vector.control")): nothing to do"
  exit 0
fi

[ "$(id -u)" = 0 ] || fail "pgvector is missing for PostgreSQL $major; run this script as root to build and install it (it uses apt-get and writes to /usr/lib/postgresql)"

log "pgvector is missing for PostgreSQL $major: building it from Debian trixie's source package"

# Debian 12 describes its archive in deb822 files (/etc/apt/sources.list.d/*.sources); older
# machines use one-line entries in sources.list. Either way, add trixie's sources once.
trixie_sources=/etc/apt/sources.list.d/trixie-src.sources
if [ ! -f "$trixie_sources" ] && ! grep -rqsE '^deb-src\s+\S+\s+trixie\s' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  log "adding trixie's source packages to apt ($trixie_sources)"
  cat >"$trixie_sources" <<'EOF'
# Source packages only (pgvector for Debian 12, built by scripts/install-pgvector.sh).
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
fi

export DEBIAN_FRONTEND=noninteractive
apt_get() { apt-get -o DPkg::Lock::Timeout=300 -qq "$@"; }
log "apt-get update"
apt_get update
log "build tools and postgresql-server-dev-$major"
apt_get install -y --no-install-recommends build-essential dpkg-dev "postgresql-server-dev-$major" >/dev/null

workdir=$(mktemp -d /tmp/pgvector-build.XXXXXX)
trap 'rm -rf "$workdir"' EXIT
cd "$workdir"
log "apt-get source pgvector (in $workdir)"
apt_get source --only-source pgvector 2>&1 | grep -v -e '^W: Download is performed unsandboxed' || true
source_dir=$(find . -mindepth 1 -maxdepth 1 -type d -name 'pgvector-*' | head -n1)
[ -n "$source_dir" ] || fail "apt-get source pgvector fetched nothing: is trixie's deb-src entry reachable? (apt-get update above)"
cd "$source_dir"
log "make (${source_dir#./}, PostgreSQL $major, no LLVM bitcode, portable CPU flags)"
# OPTFLAGS="" instead of pgvector's default -march=native, as Debian builds it: the binary then runs on
# any x86-64 machine this one's image is copied to.
make -s PG_CONFIG="$pg_config" with_llvm=no OPTFLAGS="" >/dev/null
make -s PG_CONFIG="$pg_config" with_llvm=no OPTFLAGS="" install >/dev/null
[ -f "$share/vector.control" ] || fail "make install did not put vector.control in $share"
log "installed pgvector $(sed -n "s/^default_version = '\(.*\)'/\1/p" "$share/vector.control") for PostgreSQL $major"

host="${PGHOST:-127.0.0.1}" port="${PGPORT:-5432}" user="${PGUSER:-postgres}"
if ! pg_isready -h "$host" -p "$port" -q 2>/dev/null; then
  log "the server at $host:$port is not running: check skipped (start it and run: CREATE EXTENSION vector)"
  exit 0
fi
scratch="pgvector_check_$$"
psql_run() { psql -h "$host" -p "$port" -U "$user" -v ON_ERROR_STOP=1 -qAt "$@"; }
log "checking the extension in a scratch database ($scratch on $host:$port)"
psql_run -d postgres -c "CREATE DATABASE $scratch" >/dev/null
check=$(psql_run -d "$scratch" <<'SQL' || true
CREATE EXTENSION IF NOT EXISTS vector;
CREATE TABLE items (id int PRIMARY KEY, embedding vector(3));
INSERT INTO items VALUES (1, '[1,0,0]'), (2, '[0,1,0]'), (3, '[0.9,0.1,0]');
CREATE INDEX ON items USING hnsw (embedding vector_cosine_ops);
SET enable_seqscan = off;
SELECT string_agg(id::text, ',' ORDER BY embedding <=> '[1,0,0]') FROM (SELECT id, embedding FROM items ORDER BY embedding <=> '[1,0,0]' LIMIT 2) nearest;
SQL
)
psql_run -d postgres -c "DROP DATABASE $scratch" >/dev/null
[ "$check" = "1,3" ] || fail "the check query answered '$check' instead of '1,3': the extension does not work"
log "ok: CREATE EXTENSION vector, an HNSW index and <=> work on $host:$port"
