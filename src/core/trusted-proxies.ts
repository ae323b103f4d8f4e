/**
 * Which peers are trusted proxies: the configured addresses and CIDR ranges
 * (`trustedProxies`), checked when the config is validated and matched
 * against each request's peer address. Forwarded headers are believed only
 * from these peers.
 */
import { BlockList, isIPv6 } from 'node:net';

/** TrustedProxies matches peer addresses against CIDR ranges. */
export class TrustedProxies {
  readonly #list = new BlockList();
  readonly empty: boolean;

  constructor(cidrs: readonly string[]) {
    this.empty = cidrs.length === 0;
    for (const cidr of cidrs) {
      const [addr, bits] = cidr.split('/');
      const family = isIPv6(addr!) ? 'ipv6' : 'ipv4';
      if (bits === undefined) this.#list.addAddress(addr!, family);
      else this.#list.addSubnet(addr!, Number(bits), family);
    }
  }

  /** validate returns a message for each entry that is not an address or CIDR. */
  static validate(cidrs: readonly string[]): string[] {
    const problems: string[] = [];
    cidrs.forEach((cidr, i) => {
      const [addr, bits, extra] = cidr.split('/');
      const v6 = isIPv6(addr ?? '');
      const max = v6 ? 128 : 32;
      const okAddr = v6 || /^(\d{1,3})(\.\d{1,3}){3}$/.test(addr ?? '');
      const okBits = bits === undefined || (/^\d+$/.test(bits) && Number(bits) <= max);
      if (!okAddr || !okBits || extra !== undefined) problems.push(`trustedProxies[${i}]: expected an IP address or CIDR such as "10.0.0.0/8", got ${JSON.stringify(cidr)}`);
    });
    return problems;
  }

  has(address: string | undefined): boolean {
    if (this.empty || address === undefined) return false;
    const plain = stripMappedPrefix(address);
    return this.#list.check(plain, plain.includes(':') ? 'ipv6' : 'ipv4');
  }
}

/** stripMappedPrefix turns "::ffff:127.0.0.1" into "127.0.0.1". */
export function stripMappedPrefix(address: string): string {
  return address.startsWith('::ffff:') && address.indexOf('.') > 0 ? address.slice(7) : address;
}
