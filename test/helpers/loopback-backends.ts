/**
 * Demo backends on one port at several loopback addresses (127.0.0.1,
 * 127.0.0.2, ...), the way discovered endpoints look: DNS A records and
 * Kubernetes EndpointSlices give addresses that share a port.
 */
import { startDemoBackend, type DemoBackend } from '../../src/demo/backend.js';
import { freePort } from './backends.js';

export interface LoopbackBackends {
  readonly port: number;
  /** backends[i] listens on address(i) and is named "Backend <i+1>". */
  readonly backends: DemoBackend[];
  address(i: number): string;
  close(): Promise<void>;
}

export async function startLoopbackBackends(n: number): Promise<LoopbackBackends> {
  const address = (i: number): string => `127.0.0.${i + 1}`;
  for (let attempt = 0; ; attempt++) {
    const port = await freePort();
    const backends: DemoBackend[] = [];
    try {
      for (let i = 0; i < n; i++) backends.push(await startDemoBackend({ port, host: address(i), name: `Backend ${i + 1}` }));
      return { port, backends, address, close: async () => { await Promise.all(backends.map((b) => b.close())); } };
    } catch (err) {
      // Another process took the port on one of the addresses meanwhile: try another port.
      await Promise.all(backends.map((b) => b.close()));
      if (attempt >= 5) throw err;
    }
  }
}
