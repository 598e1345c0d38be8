#!/bin/bash
# Run once by the postgres image on an empty data directory (mounted into /docker-entrypoint-initdb.d
# by docker-compose.yml): one database and one login role of the same name per service that owns a
# database (the `database.name` of SERVICES in common/src/topology; e2e/test/compose.test.ts checks
# this list against it). Each role owns its database and only it may connect there: services never
# read each other's tables. The search database gets pgvector now, as the superuser: the extension
# is not "trusted", so search-service's own CREATE EXTENSION IF NOT EXISTS then finds it there.
set -euo pipefail

password="${CIVILDIY_DB_PASSWORD:?CIVILDIY_DB_PASSWORD must be set (docker-compose.yml passes it)}"
databases=(auth profile posts search orders notifications)

for database in "${databases[@]}"; do
  echo "civildiy: database and role ${database}"
  psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres -v name="$database" -v password="$password" <<'SQL'
CREATE ROLE :"name" LOGIN PASSWORD :'password';
CREATE DATABASE :"name" OWNER :"name";
REVOKE ALL ON DATABASE :"name" FROM PUBLIC;
SQL
done

echo 'civildiy: pgvector in the search database'
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname search -c 'CREATE EXTENSION IF NOT EXISTS vector'
