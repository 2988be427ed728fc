#!/usr/bin/env bash
# The library as a user's test suite uses it: the packed tarball installed in a fresh
# project with vitest, the README's global setup (prepare()), and tests over five shapes
# (boot with no disk, one disk, one read-write disk; inspect with one and two disks) run in
# parallel workers with vitest's default timeouts, on an empty cache; then a second pass,
# and a third with one worker (each call's own time).
# Prints each pass's time, its calls' slowest and median times, and the snapshots saved.
#
#   bash scripts/packed-suite.sh        (after npm run build; needs the npm registry)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d /tmp/appliance-packed-XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT
cd "$work"
tarball=$(cd "$repo" && npm pack --silent --pack-destination "$work" | tail -1)
mkdir project && cd project
npm init -y >/dev/null
npm pkg set type=module >/dev/null
npm install --no-audit --no-fund --silent "$work/$tarball" vitest@3 >/dev/null

mkdir -p tree/etc && echo 'port=8080' > tree/etc/app.conf
mkfs.ext4 -q -d tree -L data a.img 16M
cp a.img b.img
cp a.img c.img

cat > vitest.config.js <<'EOF'
import { defineConfig } from 'vitest/config';
export default defineConfig({ test: { globalSetup: ['./appliance-setup.js'] } });
EOF
cat > appliance-setup.js <<'EOF'
import { prepare } from 'appliance';
export default async function setup() {
  await prepare();
}
EOF
# Five shapes, three tests each, in five files (vitest's workers take a file each). The
# read-write disk is an image of its own: another VM reading it meanwhile would hold its lock.
for shape in boot0 boot1 boot1rw inspect1 inspect2; do
  cat > "$shape.test.js" <<EOF
import { appendFileSync } from 'node:fs';
import { expect, test } from 'vitest';
import { boot, inspect } from 'appliance';
const shape = '$shape';
const timed = async (fn) => {
  const t0 = performance.now();
  await fn();
  appendFileSync('calls.txt', \`\${shape} \${Math.round(performance.now() - t0)}\n\`);
};
for (const i of [1, 2, 3]) {
  test(\`\${shape} \${i}\`, () =>
    timed(async () => {
      if (shape.startsWith('boot')) {
        const disks = shape === 'boot0' ? [] : shape === 'boot1' ? [{ path: 'a.img', format: 'raw' }] : [{ path: 'c.img', format: 'raw', readonly: false }];
        const vm = await boot({ disks });
        try {
          const r = await vm.exec(['sh', '-c', 'ls /dev/disk/by-id | grep -c virtio-disk || true']);
          expect(r.stdout.toString().trim()).toBe(String(disks.length));
        } finally {
          await vm.close();
        }
      } else {
        const img = await inspect(shape === 'inspect1' ? ['a.img'] : ['a.img', 'b.img']);
        try {
          const fs = await img.mount('disk0');
          expect((await fs.readFile('/etc/app.conf')).toString()).toBe('port=8080\n');
        } finally {
          await img.close();
        }
      }
    }));
}
EOF
done

export APPLIANCE_CACHE_DIR="$work/cache"
# Passes 1 and 2 as a suite runs (three workers: on 2 cores, calls share the CPU); pass 3
# one worker, so each call's time is its own on a warm cache.
for pass in 1 2 3; do
  rm -f calls.txt
  workers=$([ "$pass" = 3 ] && echo 1 || echo 3)
  t0=$(date +%s.%N)
  npx vitest run --maxWorkers=$workers --minWorkers=1 --reporter=dot >"pass$pass.log" 2>&1 || { cat "pass$pass.log"; echo "pass $pass: FAILED"; exit 1; }
  t1=$(date +%s.%N)
  snaps=$(find "$APPLIANCE_CACHE_DIR/snapshots" -maxdepth 1 -regextype posix-extended -regex '.*/[0-9a-f]{32}' | wc -l)
  stats=$(awk '{print $2}' calls.txt | sort -n | awk '{a[NR]=$1} END {printf "%d calls, median %d ms, slowest %d ms", NR, a[int((NR+1)/2)], a[NR]}')
  printf 'pass %d (%d workers): green in %.1f s; %s; snapshots in the cache: %d\n' "$pass" "$workers" "$(echo "$t1 - $t0" | bc)" "$stats" "$snaps"
  echo "  slowest: $(sort -k2 -n -r calls.txt | head -4 | awk '{printf "%s %d ms; ", $1, $2}')"
done
