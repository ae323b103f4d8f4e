/**
 * A tiny authoritative DNS server over UDP on 127.0.0.1, for discovery
 * tests: A, AAAA and SRV records that a test changes while it runs, NXDOMAIN
 * for unknown names, and a switch to answer SERVFAIL (an outage).
 */
import dgram from 'node:dgram';
import dnsPacket from 'dns-packet';

export interface AddressRecord { address: string; ttl?: number }
export interface SrvRecord { target: string; port: number; priority?: number; weight?: number; ttl?: number }
export interface NameRecords { A?: AddressRecord[]; AAAA?: AddressRecord[]; SRV?: SrvRecord[] }

export interface TestDnsServer {
  readonly port: number;
  /** server is "127.0.0.1:<port>", as `discovery.dns.servers` takes it. */
  readonly server: string;
  /** set replaces every record of a name. */
  set(name: string, records: NameRecords): void;
  /** failing: answer every query with SERVFAIL while true. */
  failing: boolean;
  /** queries counts the questions received, by "TYPE name". */
  readonly queries: Map<string, number>;
  close(): Promise<void>;
}

const RCODE_SERVFAIL = 2;
const RCODE_NXDOMAIN = 3;
const DEFAULT_TTL = 1;

/** startDnsServer binds 127.0.0.1:`port`; 0 (the default) picks a free port, another restarts a stopped server where it was. */
export async function startDnsServer(port = 0): Promise<TestDnsServer> {
  const zone = new Map<string, NameRecords>();
  const queries = new Map<string, number>();
  const socket = dgram.createSocket('udp4');
  const state = { failing: false };

  socket.on('message', (message, peer) => {
    let query: dnsPacket.DecodedPacket;
    try {
      query = dnsPacket.decode(message);
    } catch {
      return;
    }
    const question = query.questions?.[0];
    if (question === undefined) return;
    const name = question.name.toLowerCase();
    const key = `${question.type} ${name}`;
    queries.set(key, (queries.get(key) ?? 0) + 1);
    const records = zone.get(name);
    let rcode = 0;
    const answers: dnsPacket.Answer[] = [];
    if (state.failing) rcode = RCODE_SERVFAIL;
    else if (records === undefined) rcode = RCODE_NXDOMAIN;
    else if (question.type === 'A' || question.type === 'AAAA') {
      for (const r of records[question.type] ?? []) answers.push({ type: question.type, name: question.name, ttl: r.ttl ?? DEFAULT_TTL, data: r.address });
    } else if (question.type === 'SRV') {
      for (const r of records.SRV ?? []) {
        answers.push({ type: 'SRV', name: question.name, ttl: r.ttl ?? DEFAULT_TTL, data: { target: r.target, port: r.port, priority: r.priority ?? 10, weight: r.weight ?? 1 } });
      }
    }
    const response = dnsPacket.encode({
      type: 'response',
      id: query.id ?? 0,
      flags: dnsPacket.AUTHORITATIVE_ANSWER | (query.flags ?? 0) & dnsPacket.RECURSION_DESIRED | rcode,
      questions: [question],
      answers,
    });
    socket.send(response, peer.port, peer.address);
  });

  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(port, '127.0.0.1', () => { socket.off('error', reject); resolve(); });
  });
  const bound = socket.address().port;
  return {
    port: bound,
    server: `127.0.0.1:${bound}`,
    set: (name, records) => { zone.set(name.toLowerCase(), records); },
    get failing() { return state.failing; },
    set failing(value: boolean) { state.failing = value; },
    queries,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}
