#!/bin/sh
# Regenerates qjobd/client/, the typed Python client for the bundled schema that qjob
# uses (tests/clientgen/test_committed_client.py fails when it is stale).  Run it after
# any schema change; contrib/gen-qmp-reference.sh runs it too.
set -eu
cd "$(dirname "$0")/.."
python3 -m qjobd.clientgen schema/qjobd.json -o qjobd/client
