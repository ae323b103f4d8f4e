/**
 * From Kubernetes EndpointSlices (discovery.k8s.io/v1) to backend specs:
 * which port to use, which endpoints take traffic and which are going away.
 * Pure functions over the API's object shape, so they read the same for
 * listed objects and for watch events.
 */
import { readySpec, specId, endpointUrl, type BackendSpec } from './source.js';

/** EndpointSlice is the part of the API object that discovery reads. */
export interface EndpointSlice {
  metadata?: { name?: string; resourceVersion?: string };
  addressType?: string;
  endpoints?: readonly {
    addresses?: readonly string[];
    conditions?: { ready?: boolean | null; serving?: boolean | null; terminating?: boolean | null } | null;
  }[] | null;
  ports?: readonly { name?: string | null; port?: number | null; protocol?: string | null }[] | null;
}

export type WantedPort = number | string | undefined;

/**
 * slicePort picks the port of the slice to send traffic to: by name (the
 * Service port's name), by number (the container port), or the only TCP
 * port when none is configured. A string explains why there is none.
 */
export function slicePort(slice: EndpointSlice, wanted: WantedPort): number | string {
  const tcp = (slice.ports ?? []).filter((p) => (p.protocol ?? 'TCP') === 'TCP' && typeof p.port === 'number');
  if (typeof wanted === 'string') {
    const named = tcp.find((p) => (p.name ?? '') === wanted);
    return named?.port ?? `has no TCP port named "${wanted}" (ports: ${describePorts(tcp)})`;
  }
  if (typeof wanted === 'number') {
    // A slice with no ports at all means "all ports" in the API.
    if (slice.ports === undefined || slice.ports === null || slice.ports.length === 0) return wanted;
    return tcp.some((p) => p.port === wanted) ? wanted : `has no TCP port ${wanted} (ports: ${describePorts(tcp)})`;
  }
  if (tcp.length === 1) return tcp[0]!.port!;
  return `has ${tcp.length} TCP ports (${describePorts(tcp)}): set discovery.kubernetes.port to one of them`;
}

function describePorts(ports: readonly { name?: string | null; port?: number | null }[]): string {
  if (ports.length === 0) return 'none';
  return ports.map((p) => (p.name ? `${p.name}=${p.port}` : String(p.port))).join(', ');
}

/**
 * isReady follows the API's rules: `ready` unset means ready, and an
 * endpoint that is terminating takes no new traffic even while it serves.
 */
function isReady(conditions: { ready?: boolean | null; terminating?: boolean | null } | null | undefined): boolean {
  if (conditions === null || conditions === undefined) return true;
  return conditions.terminating !== true && conditions.ready !== false;
}

export interface SliceSpecs {
  readonly specs: BackendSpec[];
  /** problems names the slices skipped, e.g. for a port that is not there. */
  readonly problems: string[];
}

/**
 * specsFromSlices merges every slice of the Service into one snapshot. An
 * address listed twice (two slices during a move) counts as ready if any of
 * them says so.
 */
export function specsFromSlices(slices: Iterable<EndpointSlice>, wanted: WantedPort, prefix = 'k8s'): SliceSpecs {
  const byId = new Map<string, BackendSpec>();
  const problems: string[] = [];
  for (const slice of slices) {
    if (slice.addressType !== 'IPv4' && slice.addressType !== 'IPv6' && slice.addressType !== 'FQDN') continue;
    const port = slicePort(slice, wanted);
    if (typeof port === 'string') {
      problems.push(`EndpointSlice ${slice.metadata?.name ?? '?'} ${port}`);
      continue;
    }
    for (const endpoint of slice.endpoints ?? []) {
      // Endpoints carry one address in practice; the API allows more, all equivalent.
      const address = endpoint.addresses?.[0];
      if (address === undefined || address === '') continue;
      const ready = isReady(endpoint.conditions);
      const id = specId(prefix, address, port);
      if (byId.get(id)?.state === 'ready') continue;
      byId.set(id, ready ? readySpec(prefix, address, port) : { id, url: endpointUrl(address, port), weight: 1, state: 'terminating' });
    }
  }
  return { specs: [...byId.values()], problems };
}
