/**
 * Hooks: a closed list of named extension points (fastify's lib/hooks.js).
 * The names are fixed when the list is made, so a feature cannot invent a
 * slot nor replace another feature's function: it can only add its own,
 * and the owner calls them in the order they were added.
 */
/** HookMap: each hook's name and the type of its functions. */
type HookMap<M> = { [K in keyof M]: (...args: never[]) => unknown };

export class Hooks<M extends HookMap<M>> {
  readonly #lists = new Map<keyof M, M[keyof M][]>();

  constructor(names: readonly (keyof M)[]) {
    for (const name of names) this.#lists.set(name, []);
  }

  /** add appends `fn` to the hook `name`; it returns the function that removes it again. */
  add<K extends keyof M>(name: K, fn: M[K]): () => void {
    const list = this.#lists.get(name);
    if (list === undefined) throw new Error(`unknown hook "${String(name)}"`);
    list.push(fn);
    return () => {
      const i = list.indexOf(fn);
      if (i >= 0) list.splice(i, 1);
    };
  }

  /** list is the hook's functions in the order they were added. */
  list<K extends keyof M>(name: K): readonly M[K][] {
    return (this.#lists.get(name) ?? []) as M[K][];
  }
}
