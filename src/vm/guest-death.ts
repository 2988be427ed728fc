/**
 * A booted guest that dies by itself (a kernel panic, a reboot, a power-off, qemu killed):
 * its pending and later requests fail with EGUESTDIED, with the kernel's last words and
 * the console's last lines, instead of the bare channel loss (EAGENTGONE) they see.
 */
import { PassThrough, type Readable } from 'node:stream';
import { AgentError } from '../agent/agent-client.js';
import type { Launched } from '../launcher/index.js';
import type { ExitStatus } from '../launcher/process.js';

/** How long a lost channel waits for qemu's exit: the two come in either order, a few ms apart. */
const EXIT_GRACE_MS = 1000;

/** The guest died under its caller: how (the kernel's words, qemu's exit) and the console's last lines. */
export class GuestDiedError extends AgentError {
  readonly consoleTail: string[];
  readonly status: ExitStatus;
  constructor(lastWords: string | undefined, status: ExitStatus, consoleTail: string[], lost: AgentError) {
    const qemu = status.signal ? `qemu was killed by ${status.signal}` : `qemu exited with code ${status.code}`;
    const how = `the guest died: ${lastWords ?? 'it said nothing about it on its console'}; ${qemu}`;
    const tail = consoleTail.length ? `\nlast console lines:\n${consoleTail.map((l) => `  ${l}`).join('\n')}` : '\n(no console output)';
    super('EGUESTDIED', how + tail, { cause: lost });
    this.consoleTail = consoleTail;
    this.status = status;
    this.result = lost.result;
  }
}

/** Watches a VM for its guest's death and turns the requests it ends into GuestDiedErrors. */
export class GuestDeath {
  private launched: Launched<unknown> | undefined;
  private died: ExitStatus | undefined;

  /** The guest is up: from now on qemu's exit is its death, unless the caller was closing the VM. */
  watch(launched: Launched<unknown>, closing: () => boolean): void {
    this.launched = launched;
    void launched.exited.then((status) => {
      if (!closing()) this.died = status;
    });
  }

  /** `request`, failing with EGUESTDIED instead if the guest died under it. */
  guard<T>(request: Promise<T>): Promise<T> {
    return request.catch(async (err: unknown) => {
      throw await this.explain(err);
    });
  }

  /** `source` piped through, its error replaced by EGUESTDIED if the guest died under it. */
  stream(source: Readable): Readable {
    const out = new PassThrough();
    source.once('error', (err) => void this.explain(err).then((e) => out.destroy(e as Error)));
    // A reader that gives up releases the guest's side too.
    out.once('close', () => source.destroy());
    return source.pipe(out);
  }

  private async explain(err: unknown): Promise<unknown> {
    const launched = this.launched;
    if (!launched || !(err instanceof AgentError) || err.code !== 'EAGENTGONE') return err;
    await Promise.race([launched.exited, new Promise((resolve) => setTimeout(resolve, EXIT_GRACE_MS).unref())]);
    return this.died ? new GuestDiedError(launched.lastWords(), this.died, launched.consoleTail(), err) : err;
  }
}
