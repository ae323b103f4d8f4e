/**
 * compileRoutes turns the configuration's routes into a RouteTable, with
 * the services they lead to and the filters features give them (the
 * per-route rate limit). It throws a ConfigError naming the route for what
 * only compiling can find; the schema and config/services.ts have checked
 * the rest.
 */
import { ConfigError, type ConfigProblem } from '../core/config-error.js';
import type { RequestFilter } from '../core/request-filter.js';
import { isGroup, parseTemplate, REDIRECT_PLACEHOLDERS, type Template } from '../core/template.js';
import type { RouteConfig } from '../config/schema.js';
import { routeName } from '../config/services.js';
import type { Service } from '../service/service.js';
import { Route, type RouteAction } from './route.js';
import { RouteTable } from './table.js';
import { compileHeaderTransform, compileRewrite } from './transforms.js';

/** RouteFilterFactory lets a feature give a route its filters (null: none), e.g. the route's own rate limit. */
export type RouteFilterFactory = (route: RouteConfig, name: string) => RequestFilter | null;

export interface CompileOptions {
  readonly services: (name: string) => Service | undefined;
  readonly filters: readonly RouteFilterFactory[];
  readonly source?: string;
}

export function compileRoutes(configs: readonly RouteConfig[], options: CompileOptions): RouteTable {
  const problems: ConfigProblem[] = [];
  const source = options.source ?? 'config';
  const routes: Route[] = [];
  configs.forEach((config, index) => {
    const name = routeName(config, index);
    const at = (key: string): string => `routes[${index}]${key === '' ? '' : `.${key}`}`;
    try {
      const action = actionOf(config, options.services, (key, message) => problems.push({ source, path: at(key), message }));
      if (action === null) return;
      const filters: RequestFilter[] = [];
      for (const factory of options.filters) {
        const filter = factory(config, name);
        if (filter !== null) filters.push(filter);
      }
      routes.push(new Route({
        index, name, config, action, filters,
        rewrite: config.rewrite === undefined ? null : compileRewrite(config.rewrite),
        requestHeaders: compileHeaderTransform(config.requestHeaders),
        responseHeaders: compileHeaderTransform(config.responseHeaders),
      }));
    } catch (err) {
      if (err instanceof ConfigError) problems.push(...err.problems);
      else problems.push({ source, path: at(''), message: (err as Error).message });
    }
  });
  if (problems.length > 0) throw new ConfigError(problems);
  return new RouteTable(routes);
}

function actionOf(config: RouteConfig, services: CompileOptions['services'], problem: (key: string, message: string) => void): RouteAction | null {
  if (config.service !== undefined) {
    const service = services(config.service);
    if (service === undefined) {
      problem('service', `no service "${config.service}"`);
      return null;
    }
    return { kind: 'service', service };
  }
  if (config.redirect !== undefined) {
    const groups = config.match.path?.regex === undefined ? 0 : countGroups(config.match.path.regex);
    let to: Template;
    try {
      to = parseTemplate(config.redirect.to, (name) => REDIRECT_PLACEHOLDERS.has(name) || (isGroup(name) && Number(name) >= 1 && Number(name) <= groups));
    } catch (err) {
      const hint = groups === 0 ? ' (groups such as {1} need a match.path.regex with groups)' : '';
      problem('redirect.to', `${(err as Error).message}${hint}`);
      return null;
    }
    return { kind: 'redirect', to, status: config.redirect.status };
  }
  const respond = config.respond!;
  return { kind: 'respond', status: respond.status, body: respond.body, headers: respond.headers };
}

/** countGroups: how many capture groups a regex has (a match against "" tells, whatever the pattern). */
function countGroups(source: string): number {
  return new RegExp(`${source}|`).exec('')!.length - 1;
}
