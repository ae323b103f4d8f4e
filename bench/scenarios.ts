/**
 * Benchmark scenarios: each is a config for the balancer under test. The
 * "default" scenario is Fulcrum with every default feature on (health
 * checks, metrics, forwarded headers, access log, retries).
 */
export interface ScenarioContext {
  port: number;
  targets: string[];
  [key: string]: unknown;
}

export interface Scenario {
  title: string;
  config(ctx: ScenarioContext): Record<string, unknown>;
  url?(port: number): string;
  env?(ctx: Record<string, unknown>): NodeJS.ProcessEnv;
  setup?(dir: string): Promise<Record<string, unknown>>;
  teardown?(ctx: Record<string, unknown>): Promise<void>;
}

const base = (ctx: ScenarioContext): Record<string, unknown> => ({
  listen: { host: '127.0.0.1', port: ctx.port },
  backends: ctx.targets,
  logLevel: 'warn',
});

export const scenarios: Record<string, Scenario> = {
  default: {
    title: 'defaults (health checks, metrics, forwarded headers, access log)',
    config: (ctx) => ({ ...base(ctx), logLevel: 'info' }),
  },
  'no-access-log': {
    title: 'defaults, access log off',
    config: (ctx) => ({ ...base(ctx), accessLog: false }),
  },
  'no-retries': {
    title: 'access log off, retries off',
    config: (ctx) => ({ ...base(ctx), accessLog: false, retries: { attempts: 0 } }),
  },
  'least-connections': {
    title: 'least-connections, access log off',
    config: (ctx) => ({ ...base(ctx), accessLog: false, algorithm: 'least-connections' }),
  },
};
