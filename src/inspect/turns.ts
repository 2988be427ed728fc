/**
 * Turns: at most one holder per group at a time, shared by any number of users. Clones of
 * one btrfs filesystem (the same fsid and devid on two disks: a copied image) need it: Linux
 * 6.1 keeps one device per fsid and devid, so a second clone cannot be mounted while the
 * first is ("duplicate device", EEXIST), and mounting it while the first is only scanned
 * would read the first's blocks. A clone is mounted when its turn comes, after its twin was
 * unmounted, and it keeps the turn while anyone uses it (a walk, a stream), so nothing is
 * ever unmounted under a reader.
 */

interface Group<H> {
  holder?: H;
  users: number;
  /** A change of holder in progress (its unmounts): everyone else waits. */
  changing: boolean;
  waiting: (() => void)[];
}

export class Turns<H> {
  private groups = new Map<string, Group<H>>();

  /**
   * Waits for `who`'s turn in `group` and holds it until the returned release is called.
   * When the turn passes from another holder, `change(previous)` runs first (with nobody
   * using the previous holder); if it fails, the previous holder keeps the turn and the
   * error is thrown.
   */
  async acquire(group: string, who: H, change: (previous: H) => Promise<void>): Promise<() => void> {
    let g = this.groups.get(group);
    if (!g) this.groups.set(group, (g = { users: 0, changing: false, waiting: [] }));
    for (;;) {
      if (!g.changing && (g.holder === undefined || g.holder === who)) {
        g.holder = who;
        g.users++;
        return once(() => this.release(g));
      }
      if (!g.changing && g.users === 0) {
        const previous = g.holder as H;
        g.changing = true;
        try {
          await change(previous);
          g.holder = undefined;
        } finally {
          g.changing = false;
          this.wake(g);
        }
        continue;
      }
      await new Promise<void>((resolve) => g.waiting.push(resolve));
    }
  }

  private release(g: Group<H>): void {
    g.users--;
    if (g.users === 0) this.wake(g);
  }

  private wake(g: Group<H>): void {
    for (const w of g.waiting.splice(0)) w();
  }
}

function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (!done) {
      done = true;
      fn();
    }
  };
}
