/**
 * The OpenTelemetry packages, loaded on first use. Loading them takes from
 * a third of a second (the API) to two seconds (SDK, resources, OTLP
 * exporter) on a busy machine, so a balancer that never traces must not
 * load them at start-up: the modules of trace/ import only their types, and
 * get the code through these functions when a first request is traced.
 * They are CommonJS packages, so a synchronous require does it.
 */
import { createRequire } from 'node:module';

type Api = typeof import('@opentelemetry/api');
type Core = typeof import('@opentelemetry/core');
type Sdk = typeof import('@opentelemetry/sdk-trace-base');
type Resources = typeof import('@opentelemetry/resources');
type Exporter = typeof import('@opentelemetry/exporter-trace-otlp-http');

const load = createRequire(import.meta.url);

let api: Api | undefined;
let core: Core | undefined;
let sdk: Sdk | undefined;
let resources: Resources | undefined;
let exporter: Exporter | undefined;

export const otelApi = (): Api => (api ??= load('@opentelemetry/api') as Api);
export const otelCore = (): Core => (core ??= load('@opentelemetry/core') as Core);
export const otelSdk = (): Sdk => (sdk ??= load('@opentelemetry/sdk-trace-base') as Sdk);
export const otelResources = (): Resources => (resources ??= load('@opentelemetry/resources') as Resources);
export const otelExporter = (): Exporter => (exporter ??= load('@opentelemetry/exporter-trace-otlp-http') as Exporter);
