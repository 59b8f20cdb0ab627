#!/usr/bin/env bash
# orm_node.sh - node-postgres (pg.Pool), knex, Sequelize (authenticate(),
# which runs Sequelize's connect-time type query), postgres.js (its
# array-type query on connect) and TypeORM with default options
# against a real PostgreSQL 15 and against `pgfault serve`: same script,
# same output. The packages come from tests/clients/node's committed lock
# file (`npm ci`, run by scripts/install-deps); missing ones FAIL.
set -euo pipefail
here=$(dirname "$0")
. "$here/orm_lib.bash"
command -v node >/dev/null || fail "node not found (scripts/install-deps installs nodejs)"
nm=$here/../clients/node/node_modules
for m in pg knex sequelize postgres typeorm reflect-metadata; do
    [ -d "$nm/$m" ] || fail "$nm/$m missing: run scripts/install-deps (npm ci in tests/clients/node)"
done
orm_setup
orm_both node node "$here/../clients/node/clients.js" @CONN@
stop_serve "$ORM_TMP/fake"
echo PASS
