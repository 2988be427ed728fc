#!/usr/bin/env bash
# All ten of libguestfs's phony guests compared with virt-inspector (CI compares seven:
# see test/phony-guests.test.ts). Builds them with guestfish on first use (cached in /tmp).
#
#   bash scripts/phony-guests.sh        (after npm run build and scripts/setup-host.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
APPLIANCE_PHONY_GUESTS=all exec npx vitest run test/phony-guests.test.ts
