#!/usr/bin/env bash
# Stress checks for the ext2 writer, beyond the test suite (minutes, not seconds):
#   1. many more seeded random trees (EXT2_SEEDS, default 1-3000) through e2fsck and debugfs;
#   2. a host tree (a copy of /etc plus sparse, large, linked and special files) at each
#      block size, read back by libguestfs (virt-ls checksums, virt-cat) and, as root, by
#      the kernel (loop mount, diff -r);
#   3. a copy of that tree (other inode numbers, other readdir order) gives the same bytes;
#   4. 100,000 small files: e2fsck clean and peak RSS under 200 MB.
set -euo pipefail
cd "$(dirname "$0")/.."

export LIBGUESTFS_BACKEND=direct LIBGUESTFS_BACKEND_SETTINGS=force_tcg
CLI="node dist/src/bin.cjs"
work=$(mktemp -d "${TMPDIR:-/tmp}/stress-ext2.XXXXXX")
mnt=""
cleanup() {
  if [ -n "$mnt" ] && mountpoint -q "$mnt"; then umount "$mnt"; fi
  rm -rf "$work"
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
fail() { echo "FAIL: $*" >&2; exit 1; }

# e2fsck -fn must print nothing but its five pass lines and the summary (some problems exit 0).
fsck_clean() {
  local out
  out=$(e2fsck -fn "$1" 2>&1) || fail "e2fsck -fn $1 exited $?: $out"
  if echo "$out" | grep -v -e '^Pass [1-5]: ' -e '^e2fsck [0-9]' -e ' files (.*non-contiguous), .* blocks$' | grep -q .; then
    fail "e2fsck -fn $1 reported problems:
$out"
  fi
}

npm run build >/dev/null

step "random trees ${EXT2_SEEDS:-1-3000}"
EXT2_SEEDS="${EXT2_SEEDS:-1-3000}" npx vitest run test/ext2-random.test.ts

step "host tree"
tree="$work/tree"
mkdir -p "$tree"
cp -a /etc "$tree/etc"
head -c 30000000 /dev/urandom > "$tree/random-30M"
truncate -s 3G "$tree/sparse-3G"
printf 'middle' | dd of="$tree/sparse-3G" bs=1 seek=2000000000 conv=notrunc status=none
printf 'mixed' > "$tree/mixed" && truncate -s 9M "$tree/mixed" && printf 'end' >> "$tree/mixed"
ln "$tree/random-30M" "$tree/etc/hardlink-to-random"
ln -s "$(printf 't%.0s' $(seq 1 300))" "$tree/long-symlink"
mkfifo "$tree/fifo"
if [ "$(id -u)" = 0 ]; then
  mknod "$tree/null" c 1 3
  mknod "$tree/bigdev" b 259 1048575
  chown 4000000000:3000000000 "$tree/mixed"
fi

for bs in 1024 2048 4096; do
  img="$work/host-$bs.img"
  $CLI mkext2 "$tree" "$img" --block-size "$bs" >/dev/null
  fsck_clean "$img"
  echo "block size $bs: e2fsck clean"
done
img="$work/host-4096.img"

step "libguestfs reads it back (virt-ls checksums, virt-cat)"
virt-ls -a "$img" -m /dev/sda --csv --checksum=sha256 -lR / > "$work/virt-ls.csv"
node - "$tree" "$work/virt-ls.csv" <<'EOF'
// Compares virt-ls's CSV (type,mode,size,sha256,path[,target]) with the host tree.
const fs = require('node:fs');
const { execFileSync } = require('node:child_process');
const [tree, csv] = process.argv.slice(2);
const rows = fs.readFileSync(csv, 'utf8').trim().split('\n');
const seen = new Set();
let problems = 0;
const problem = (m) => { problems++; if (problems < 20) console.error(m); };
for (const row of rows) {
  const [type, mode, size, sum, path, ...target] = row.split(',');
  if (path === '/' || path === '/lost+found') continue;
  seen.add(path);
  const host = tree + path;
  let st;
  try { st = fs.lstatSync(host); } catch { problem(`${path}: not in the host tree`); continue; }
  const hostType = st.isFile() ? '-' : st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : st.isFIFO() ? 'p' : st.isCharacterDevice() ? 'c' : st.isBlockDevice() ? 'b' : 's';
  if (type !== hostType) problem(`${path}: type ${type}, host ${hostType}`);
  if (parseInt(mode, 8) !== (st.mode & 0o7777)) problem(`${path}: mode ${mode}, host ${(st.mode & 0o7777).toString(8)}`);
  if (type === '-') {
    if (Number(size) !== st.size) problem(`${path}: size ${size}, host ${st.size}`);
    const want = execFileSync('sha256sum', [host], { encoding: 'utf8' }).split(' ')[0];
    if (sum !== want) problem(`${path}: sha256 differs`);
  }
  if (type === 'l' && target.join(',') !== fs.readlinkSync(host)) problem(`${path}: link target differs`);
}
const walk = (dir, rel) => {
  for (const name of fs.readdirSync(dir)) {
    const p = `${rel}/${name}`;
    if (!seen.has(p)) problem(`${p}: missing from virt-ls`);
    if (fs.lstatSync(`${dir}/${name}`).isDirectory()) walk(`${dir}/${name}`, p);
  }
};
walk(tree, '');
if (problems) { console.error(`${problems} differences`); process.exit(1); }
console.log(`virt-ls: ${rows.length} paths match the host tree`);
EOF
[ "$(virt-cat -a "$img" -m /dev/sda /etc/hostname)" = "$(cat "$tree/etc/hostname")" ] || fail "virt-cat /etc/hostname differs"
echo "virt-cat: /etc/hostname matches"

if [ "$(id -u)" = 0 ] && mnt=$(mktemp -d "$work/mnt.XXXXXX") && mount -o loop,ro -t ext2 "$img" "$mnt" 2>/dev/null; then
  step "the kernel reads it back (loop mount, diff -r)"
  # diff reports special files as differing whatever they are: those are checked with stat.
  diff -r --no-dereference -x lost+found -x fifo -x null -x bigdev "$tree" "$mnt" || fail "the mounted image differs from the tree"
  [ -p "$mnt/fifo" ] || fail "fifo is not a fifo"
  [ "$(stat -c '%F %t:%T' "$mnt/null")" = "character special file 1:3" ] || fail "null: $(stat -c '%F %t:%T' "$mnt/null")"
  [ "$(stat -c '%F %t:%T' "$mnt/bigdev")" = "block special file 103:fffff" ] || fail "bigdev: $(stat -c '%F %t:%T' "$mnt/bigdev")"
  [ "$(stat -c '%u:%g' "$mnt/mixed")" = "4000000000:3000000000" ] || fail "32-bit owners differ"
  umount "$mnt"
  echo "kernel: mounted tree identical"
else
  echo "(skipped the kernel mount: needs root and loop devices)"
fi

step "a copy of the tree gives the same bytes"
cp -a "$tree" "$work/tree-copy"
$CLI mkext2 "$work/tree-copy" "$work/copy.img" >/dev/null
cmp "$img" "$work/copy.img" || fail "the copy's image differs"
echo "identical"

step "100,000 small files"
many="$work/many"
node -e '
const fs = require("node:fs");
for (let d = 0; d < 200; d++) {
  fs.mkdirSync(`${process.argv[1]}/dir${d}/sub`, { recursive: true });
  for (let f = 0; f < 500; f++) fs.writeFileSync(`${process.argv[1]}/dir${d}/sub/file-with-a-longish-name-${f}.txt`, "x".repeat(f % 300));
}' "$many"
/usr/bin/time -v $CLI mkext2 "$many" "$work/many.img" 2> "$work/time.txt" >/dev/null
rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/time.txt")
fsck_clean "$work/many.img"
echo "e2fsck clean; peak RSS $((rss / 1024)) MiB; $(grep 'Elapsed (wall clock)' "$work/time.txt" | sed 's/.*: //') wall"
[ "$rss" -lt $((200 * 1024)) ] || fail "peak RSS ${rss} KB is over 200 MB"

step "all stress checks passed"
