#!/usr/bin/env bash
# The README's first command: install what the project needs, build it, then do the main
# job: build the default appliance (cached after the first time), boot it and run a command.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-host.sh
npm install --no-audit --no-fund --loglevel=error  # not `npm ci`: see .ci/run
npm run build --silent
node dist/src/bin.cjs boot -- sh -c 'echo "hello from the appliance: $(uname -sr), root $(findmnt -no FSTYPE,OPTIONS / 2>/dev/null || grep " / " /proc/mounts)"'
