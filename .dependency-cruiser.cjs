/**
 * Fulcrum's layering, checked by dependency-cruiser (`npm run deps`).
 *
 * Dependencies point one way. The layers, lowest first, and what each may
 * import besides itself, node built-ins and npm packages:
 *
 *   core/       nothing of Fulcrum
 *   config/     core
 *   http1/      core
 *   backends/   core, config
 *   observe/    core, config, backends (types only)
 *   trace/      core, config
 *   balancer/   backends, core, config
 *   upstream/   http1, backends, observe, core, config
 *   health/     upstream, backends, observe, core, config
 *   service/    balancer, health, upstream, backends, observe, core, config
 *   listen/     http1, observe, core, config
 *   routing/    service, core, config
 *   proxy/      every layer before it but listen/ (trace/ included)
 *   features    every layer before them, app/host.ts, and the features ranked
 *               before them: state/ < acme/ < ratelimit/ < discovery/ < cluster/ < admin/
 *   app/        every layer and feature
 *   entry points (src/cli.ts, src/index.ts, src/demo/): anything
 *
 * Each layer's rule reads "from X, only to the layers listed": a module under
 * X may import X itself, the paths listed in its rule (`to.pathNot`), node
 * built-ins and npm packages, and nothing else of src/. The rules list what
 * is allowed, not what is forbidden, so a module in a new folder of src/ is
 * out of bounds for every layer until the rules name it.
 *
 * test/unit/layers.test.ts runs these rules on small fixture trees, to show
 * that they report a wrong-way import and pass a clean one.
 */

/** layer: a path pattern matching the modules under the given folders of src/. */
const layer = (...folders) => `^src/(${folders.join('|')})/`;

/** Everything below the features: what a feature, and app/, may build on. */
const BELOW_FEATURES = ['core', 'config', 'http1', 'backends', 'observe', 'trace', 'balancer', 'upstream', 'health', 'service', 'listen', 'routing', 'proxy'];
/** The features, lowest first: each may import only those before it. */
const FEATURES = ['state', 'acme', 'ratelimit', 'discovery', 'cluster', 'admin'];
/** The type-only interface through which features see a running Fulcrum (allowed before it exists). */
const HOST = '^src/app/host[.]ts$';

/**
 * onlyTo: a rule that a module under `from` imports nothing of src/ but its
 * own folder and the `allowed` paths.
 */
function onlyTo(name, from, allowed, comment) {
  return {
    name,
    severity: 'error',
    comment,
    from: { path: from },
    to: { path: '^src/', pathNot: [from, ...allowed] },
  };
}

/** featureRule: the rule for the feature at FEATURES[rank]: the layers, app/host.ts and the features ranked before it. */
function featureRule(rank, comment) {
  const feature = FEATURES[rank];
  const earlier = FEATURES.slice(0, rank);
  const allowed = [layer(...BELOW_FEATURES), HOST, ...(earlier.length > 0 ? [layer(...earlier)] : [])];
  return onlyTo(`${feature}-only-to-layers${earlier.length > 0 ? '-and-earlier-features' : ''}`, layer(feature), allowed, comment);
}

/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment:
        'A cycle makes its modules one unit: none can be understood, tested or loaded without the others, ' +
        'and the load order decides which of them sees another half-initialised. Break it by moving the ' +
        'shared part down a layer or by passing it in.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'An import that does not resolve to a file is a typo, a moved module, or a missing package.',
      from: {},
      to: { couldNotResolve: true },
    },

    onlyTo('core-imports-nothing', layer('core'), [],
      'core/ holds what more than one layer shares (errors, events, the downstream request, the ' +
      'shapes of filters and internal routes, small helpers); it depends on nothing of Fulcrum, so ' +
      'any layer can use it without pulling in another.'),
    onlyTo('config-only-to-core', layer('config'), [layer('core')],
      'config/ parses and checks the configuration file; it must not know the code that acts on it, ' +
      'so loading a config never loads a balancer, a proxy or a feature.'),
    onlyTo('http1-only-to-core', layer('http1'), [layer('core')],
      'http1/ is the HTTP/1.1 wire format (characters, parsers); it knows nothing of backends, ' +
      'connections or configuration, which keeps the parsers testable on bytes alone.'),
    onlyTo('backends-only-to-core-config', layer('backends'), [layer('core', 'config')],
      'backends/ is the model of a backend and its pool; pickers, health, upstream and features all ' +
      'read it, so it must not depend on any of them.'),
    onlyTo('observe-only-to-core-config-backends', layer('observe'), [layer('core', 'config', 'backends')],
      'observe/ (log, metrics, access log) is used from every layer above it; it may describe ' +
      'backends but must not know anything that serves traffic.'),
    {
      name: 'observe-to-backends-types-only',
      severity: 'error',
      comment:
        'observe/ only describes backends (names, per-backend gauges): importing their types alone keeps ' +
        'the backend model out of its load graph, so logging and metrics load and test without it.',
      from: { path: layer('observe') },
      to: { path: layer('backends'), dependencyTypesNot: ['type-only'] },
    },
    onlyTo('trace-only-to-core-config', layer('trace'), [layer('core', 'config')],
      'trace/ (W3C trace context, request ids, spans and their OTLP export) sits beside observe/: ' +
      'it describes requests but serves none, so it may read the config and core/ (the span channel) ' +
      'and nothing that carries traffic. The proxy calls it through RequestTracer, whose `active` is ' +
      'false when tracing is off and nobody subscribes to fulcrum:span, so an untraced request does no more.'),
    onlyTo('balancer-only-to-backends-core-config', layer('balancer'), [layer('backends', 'core', 'config')],
      'balancer/ chooses a backend from a list; a picker works on backends and its config alone, ' +
      'and must not reach into the proxy that calls it or the features that install it.'),
    onlyTo('upstream-only-to-lower-layers', layer('upstream'), [layer('http1', 'backends', 'observe', 'core', 'config')],
      'upstream/ is the clients that talk to backends (HTTP/1 pool, dispatch, backend TLS); it sits ' +
      'below health and the proxy, which both use it.'),
    onlyTo('health-only-to-lower-layers', layer('health'), [layer('upstream', 'backends', 'observe', 'core', 'config')],
      'health/ (active probes, passive outlier detection) marks backends up or down; it uses the ' +
      'upstream clients but must not know the pickers, the proxy or the features.'),
    onlyTo('service-only-to-lower-layers', layer('service'), [layer('balancer', 'health', 'upstream', 'backends', 'observe', 'core', 'config')],
      'service/ (retry) combines the pickers, health and the upstream clients; it knows nothing of ' +
      'the listeners or of the proxy pipeline above it.'),
    onlyTo('listen-only-to-lower-layers', layer('listen'), [layer('http1', 'observe', 'core', 'config')],
      'listen/ accepts connections (fast path, TLS, HTTP/2, redirect) and hands requests on through ' +
      'core/ types; it must not import the proxy, so servers can be built and tested without one.'),
    onlyTo('routing-only-to-service-and-below', layer('routing'), [layer('service', 'core', 'config')],
      'routing/ compiles the routes and matches requests against them; it knows the services routes ' +
      'lead to, but nothing of the listeners, the pipeline that asks it, or the features.'),
    onlyTo('proxy-not-to-listen', layer('proxy'), [layer('routing', 'service', 'upstream', 'balancer', 'health', 'backends', 'observe', 'trace', 'core', 'config', 'http1')],
      'proxy/ (pipeline, exchange, headers, upgrade, runtime) turns a downstream request into an ' +
      'upstream exchange; it gets requests through core/ types and must not import listen/: app/ ' +
      'wires the servers to it.'),

    // Features plug into a running Fulcrum through the type-only interface app/host.ts, never through
    // app/fulcrum.ts or app/features.ts: those compose and install the features, so importing them
    // would make the composition and its plug-ins one cycle. Among themselves the features are ranked
    // (FEATURES), each importing only those before it, so no two feature folders import each other.
    // (A folder-scoped no-circular rule cannot say this: app/ imports every feature and every feature
    // imports app/host.ts, so each feature folder is in a folder cycle through app/.)
    featureRule(0,
      'state/ (shared backend state and counters, their memory, Redis and IPC stores) is the lowest ' +
      'feature: it works in one process or many, so it imports no other feature, cluster/ least of all.'),
    featureRule(1,
      'acme/ (automatic certificates) keeps its lease, challenge tokens and shared certificates in the ' +
      'state/ store; it knows no other feature, and the listeners see its certificates only through core/.'),
    featureRule(2,
      'ratelimit/ may keep its counters in a state/ store (Redis client, IPC) and works without a ' +
      'cluster: cluster/ serves its IPC store, so ratelimit/ must not import cluster/.'),
    featureRule(3,
      'discovery/ (DNS, Kubernetes) adds and removes backends; it may use state/ and ratelimit/, ' +
      'never cluster/ or admin/, which may build on it.'),
    featureRule(4,
      'cluster/ runs Fulcrum over worker processes and carries state/ and ratelimit/ between them ' +
      '(hubs in the primary, IPC clients in the workers): it depends on them, not the other way round.'),
    featureRule(5,
      "admin/ (API, dashboard, watch) is the operator's view onto everything, so it is ranked last: " +
      'it may show any feature, and no feature may import it.'),

    onlyTo('app-not-to-entry-points', layer('app'), [layer(...BELOW_FEATURES), layer(...FEATURES)],
      'app/ composes the layers and features into a Fulcrum; the entry points (cli, index, demo) ' +
      'use it, not the other way round.'),
  ],
  options: {
    doNotFollow: { path: ['node_modules'] },
    exclude: { path: ['^dist/', '(^|/)node_modules/'] },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
    skipAnalysisNotInRules: true,
  },
};
