/**
 * WaitQueue holds the requests waiting for a backend below its connection
 * limit, oldest first. It is a ring buffer that grows by doubling: push and
 * shift are O(1) (Array.prototype.shift moves every element once the array
 * leaves V8's fast mode, which a long queue under overload does), and a
 * waiter that gave up is skipped when reached rather than searched for.
 */

/** Waiter is a request waiting in the queue. */
export interface Waiter {
  /** done: the request was answered meanwhile (queue timeout, client gone); it is skipped. */
  readonly done: boolean;
  /** leaveQueue is called when a slot frees up for it. */
  leaveQueue(): void;
}

const INITIAL_CAPACITY = 16;

export class WaitQueue<T extends Waiter = Waiter> {
  #items: (T | undefined)[] = new Array<T | undefined>(INITIAL_CAPACITY);
  #head = 0;
  #size = 0;

  get length(): number {
    return this.#size;
  }

  push(item: T): void {
    if (this.#size === this.#items.length) this.#grow();
    this.#items[(this.#head + this.#size) & (this.#items.length - 1)] = item;
    this.#size++;
  }

  /** shift removes and returns the oldest item, or undefined when empty. */
  shift(): T | undefined {
    if (this.#size === 0) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head] = undefined;
    this.#head = (this.#head + 1) & (this.#items.length - 1);
    this.#size--;
    return item;
  }

  /** wakeOne gives a freed slot to the waiter that has waited longest and is still waiting; false if none. */
  wakeOne(): boolean {
    for (let next = this.shift(); next !== undefined; next = this.shift()) {
      if (!next.done) {
        next.leaveQueue();
        return true;
      }
    }
    return false;
  }

  #grow(): void {
    // The capacity stays a power of two, so that indexes wrap with a mask.
    const items = new Array<T | undefined>(this.#items.length * 2);
    for (let i = 0; i < this.#size; i++) items[i] = this.#items[(this.#head + i) & (this.#items.length - 1)];
    this.#items = items;
    this.#head = 0;
  }
}
