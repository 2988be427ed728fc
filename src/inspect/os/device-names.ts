/**
 * Our filesystem ids as libguestfs names the same devices, for virt-inspector's XML: the
 * disks in the order they are given are /dev/sda, /dev/sdb… (…/dev/sdz, /dev/sdaa), a
 * partition /dev/sdaN, a logical volume /dev/VG/LV, an md array /dev/<its kernel name>, a
 * LUKS container opened by UUID /dev/mapper/luks-UUID, a btrfs subvolume
 * btrfsvol:<device>/<path>.
 *
 * Where they may not agree: an md array is named by the kernel of the appliance that
 * assembled it (ours and libguestfs's may number it differently); a LUKS container
 * virt-inspector opened with a key given by device name is /dev/mapper/cryptsdaN there.
 */
/** 0 → a, 25 → z, 26 → aa: libguestfs's drive letters. */
function driveLetters(index: number): string {
  let s = '';
  for (let n = index + 1; n > 0; n = Math.floor((n - 1) / 26)) s = String.fromCharCode(97 + ((n - 1) % 26)) + s;
  return s;
}

/**
 * libguestfs's name of the filesystem with this id (info.ts: disk0, disk0:2, VG/LV, md:NAME,
 * luks:UUID, btrfsvol:ID/PATH — the ID of a subvolume's filesystem has at most the one "/"
 * of an LV, so the PATH is what follows). A subvolume's PATH as an fstab line spells it
 * (`subvol`, "/@/home") replaces ours: libguestfs names it so (btrfsvol:/dev/sda1//@/home).
 */
export function libguestfsDevice(id: string, subvol?: string): string {
  let m: RegExpExecArray | null;
  if ((m = /^btrfsvol:(disk\d+(?::\d+)?|(?:md|luks):[^/]+|[^/]+\/[^/]+)\/(.*)$/s.exec(id))) return `btrfsvol:${libguestfsDevice(m[1]!)}/${subvol ?? m[2]}`;
  if ((m = /^disk(\d+)(?::(\d+))?$/.exec(id))) return `/dev/sd${driveLetters(Number(m[1]))}${m[2] ?? ''}`;
  if (id.startsWith('md:')) return `/dev/${id.slice(3)}`;
  if (id.startsWith('luks:')) return `/dev/mapper/luks-${id.slice(5)}`;
  return `/dev/${id}`;
}

/**
 * guestfs_canonical_device_name, for device names as a guest's fstab writes them:
 * /dev/vda1, /dev/hda1, /dev/xvda1 → /dev/sda1; everything else as it is (a /dev/mapper
 * name libguestfs would turn into /dev/VG/LV is one of an LV we have, so never given here).
 */
export function canonicalDeviceName(device: string): string {
  const rest = device.slice(5);
  const d = rest.indexOf('d');
  const len = d < 0 ? rest.length : d;
  if (device.startsWith('/dev/') && !rest.includes('/') && rest[0] !== 'm' && len > 0 && len <= 2) return `/dev/sd${rest.slice(len + 1)}`;
  return device;
}
