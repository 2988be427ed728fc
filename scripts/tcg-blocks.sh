#!/usr/bin/env bash
# How much guest code qemu translates per call under TCG: the blocks qemu's translator
# makes (a uprobe on its tb_gen_code, in our processes only), counted over N calls of each shape on a warm cache.
# Under TCG a call's time is mostly this translation (a restored VM starts with none), and
# unlike seconds the count does not depend on how busy the host is: compare a guest-side
# change by it (the same count twice in a row is the norm; a few dozen blocks of jitter).
#
#   bash scripts/tcg-blocks.sh [N]      (after npm run build; root, for perf's uprobes)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-4}
qemu=$(command -v qemu-system-x86_64)
command -v perf >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf >/dev/null
perf probe -q -x "$qemu" tb_gen_code 2>/dev/null || true
event=$(perf probe -l 2>/dev/null | awk '/tb_gen_code/ {print $1; exit}')
[ -n "$event" ] || { echo "no uprobe on $qemu's tb_gen_code (is its symbol table there?)" >&2; exit 1; }
work=$(mktemp -d /tmp/appliance-tcg-XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/tree/etc" && echo 'port=8080' >"$work/tree/etc/app.conf"
mkfs.ext4 -q -d "$work/tree" -L data "$work/a.img" 16M >/dev/null
cat >"$work/calls.mjs" <<EOF
import { boot, inspect } from '$repo/dist/src/appliance.js';
const [shape, what, n] = process.argv.slice(2);
const disks = shape === 'boot1' ? [{ path: '$work/a.img', format: 'raw' }] : [];
for (let i = 0; i < Number(n); i++) {
  if (shape.startsWith('boot')) {
    const vm = await boot({ disks });
    if (what === 'call') await vm.exec(['sh', '-c', 'ls /dev/disk/by-id | grep -c virtio-disk || true']);
    await vm.close();
  } else {
    const img = await inspect(['$work/a.img']);
    if (what === 'call') await (await img.mount('disk0')).readFile('/etc/app.conf');
    await img.close();
  }
}
EOF
count() { perf stat -x, -e "$event" -- node "$work/calls.mjs" "$1" "$2" "$n" 2>&1 >/dev/null | awk -F, -v n="$n" '/tb_gen_code/ {printf "%d", $1 / n}'; }
node "$work/calls.mjs" boot1 call 1 # warm: the appliance and its snapshot
printf '%-9s %10s %10s\n' shape ready whole
for shape in boot0 boot1 inspect1; do
  printf '%-9s %10s %10s\n' "$shape" "$(count "$shape" ready)" "$(count "$shape" call)"
done
echo "(blocks translated per call, mean of $n: to ready; to the end of a call as the packed suite makes it)"
