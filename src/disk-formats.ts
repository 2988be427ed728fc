/**
 * The image formats a disk may be given in (qemu's names): the one list the launcher checks
 * images against and the CLI offers. In the base layer so that the CLI's option parsing
 * does not load the launcher.
 */
export const DISK_FORMATS = ['raw', 'qcow2', 'qcow', 'qed', 'vmdk', 'vdi', 'vhdx', 'vpc'] as const;
export type DiskFormat = (typeof DISK_FORMATS)[number];

/** What a disk's format may be given as: a format the library knows, or auto (the header's). */
export const DISK_FORMAT_CHOICES: readonly string[] = [...DISK_FORMATS, 'auto'];
export const isDiskFormat = (v: unknown): v is DiskFormat | 'auto' => DISK_FORMAT_CHOICES.includes(v as string);
