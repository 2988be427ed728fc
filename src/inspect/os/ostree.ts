/**
 * OSTree systems (Fedora CoreOS, Silverblue, RHEL for Edge…) hold no root at the top of
 * their filesystem: each deployment, /ostree/deploy/STATEROOT/deploy/CHECKSUM.SERIAL, is a
 * whole root of its own, whose /var is the stateroot's /ostree/deploy/STATEROOT/var.
 * libguestfs finds none of them (no /etc at the top); we inspect each deployment as a
 * root, its files read with the deployment's folder as the root of the reads.
 */

/** What marks a filesystem as an OSTree sysroot (read with the OS files, limit 0). */
export const OSTREE_MARKER = '/ostree/repo/config';
/** Where the deployments are, and the depth of a walk of it that lists them. */
export const OSTREE_DEPLOY = '/ostree/deploy';
export const OSTREE_DEPLOY_DEPTH = 3;

export interface Deployment {
  /** The deployment's folder in the filesystem: its OS's "/". */
  path: string;
  /** Its stateroot's /var, the OS's /var. */
  var: string;
}

const DEPLOYMENT = /^\/ostree\/deploy\/([^/]+)\/deploy\/[0-9a-f]{64}\.\d+$/;

/** The deployments among the folders a walk of OSTREE_DEPLOY listed, by path. */
export function deploymentsOf(folders: string[]): Deployment[] {
  return folders
    .map((path) => ({ path, m: DEPLOYMENT.exec(path) }))
    .filter((d) => d.m)
    .map((d) => ({ path: d.path, var: `${OSTREE_DEPLOY}/${d.m![1]}/var` }))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}
