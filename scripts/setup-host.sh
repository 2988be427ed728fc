#!/usr/bin/env bash
# Installs, idempotently, every Debian package the project uses. Fast when all is there:
# it asks dpkg first and only calls apt-get for what is missing.
set -euo pipefail

# Runtime: qemu, a kernel with modules, the C toolchain for the init, ext2 tools, cpio.
# Test oracles and benchmark peers: libguestfs-tools (virt-ls, virt-cat, guestfish),
# supermin, hyperfine, GNU time, xz/zstd (compressed-module tests).
# Disk inspection oracles (test/inspect-probe.test.ts): the real mkfs tools of every format
# we recognise, partitioning, LVM, md, LUKS, ISO makers, and blkid/losetup to compare with.
# OS inspection's oracles: rpm (databases written by rpm itself, rpmbuild), db5.3-util
# (Berkeley DB files), sqlite3, gnupg (an rpm gpg-pubkey), hivex's tools and chntpw's reged
# (Windows registry hives from .reg files),
# xmllint (virt-inspector's schema), osinfo-db (the short ids virt-inspector prints).
PACKAGES=(
  qemu-system-x86 qemu-utils linux-image-cloud-amd64 musl-tools gcc libc6-dev e2fsprogs cpio
  libguestfs-tools supermin hyperfine time xz-utils zstd gzip file
  util-linux mount fdisk xfsprogs btrfs-progs dosfstools exfatprogs ntfs-3g squashfs-tools
  xorriso lvm2 mdadm cryptsetup-bin f2fs-tools
  rpm db5.3-util sqlite3 gnupg libwin-hivex-perl libhivex-bin chntpw libxml2-utils osinfo-db
)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
echo "setup-host: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
