/**
 * Backup backends (HAProxy's `backup` servers, nginx's SRV priorities): a
 * service's backends with `backup: true` get traffic only while none of
 * its primary backends is healthy.
 *
 * The policy is built twice, once over the primaries and once over the
 * backups, when membership changes. At pick time the primaries' picker is
 * asked first; only when it finds nothing are the primaries' health bits
 * read, and the backups asked if none is healthy. So a request costs
 * nothing extra while a primary serves it, nothing is allocated, and the
 * first request after a primary recovers goes to it again. A primary that is
 * healthy but cannot take this request (already tried by it, at its
 * connection limit) does not open the backups: they stand in for a service
 * that is down, not for one busy or retried backend.
 */
import type { Backend } from '../backends/backend.js';
import type { PickContext, Picker } from './picker.js';

export class BackupPicker implements Picker {
  constructor(
    private readonly primary: Picker,
    private readonly primaries: readonly Backend[],
    private readonly backup: Picker,
  ) {}

  pick(ctx: PickContext): Backend | undefined {
    const chosen = this.primary.pick(ctx);
    if (chosen !== undefined) return chosen;
    const primaries = this.primaries;
    for (let i = 0; i < primaries.length; i++) if (primaries[i]!.state.reasons === 0) return undefined;
    return this.backup.pick(ctx);
  }
}

/** isBackup: the backend is one of its service's backups. */
export function isBackup(b: Backend): boolean {
  return b.config.backup === true;
}
