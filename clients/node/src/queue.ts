// The outgoing half of a session: messages queued by attempts, heartbeats and progress,
// read by the stream as it can send them.

export class Outbox<T> implements AsyncIterable<T> {
  #items: T[] = [];
  #waiting: ((result: IteratorResult<T>) => void) | undefined;
  #closed = false;

  /** Queues a message; dropped once the session is closed (the server forgets its attempts). */
  push(item: T): void {
    if (this.#closed) return;
    const waiting = this.#waiting;
    if (waiting) {
      this.#waiting = undefined;
      waiting({ value: item, done: false });
    } else {
      this.#items.push(item);
    }
  }

  close(): void {
    this.#closed = true;
    this.#items = [];
    const waiting = this.#waiting;
    this.#waiting = undefined;
    waiting?.({ value: undefined, done: true });
  }

  /** The next message, or undefined once closed. */
  #next(): Promise<T | undefined> {
    const item = this.#items.shift();
    if (item !== undefined) return Promise.resolve(item);
    if (this.#closed) return Promise.resolve(undefined);
    return new Promise((resolve) => (this.#waiting = (result) => resolve(result.value)));
  }

  // A generator: the transport may end the iteration early (return) or with an error (throw).
  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    try {
      for (let item = await this.#next(); item !== undefined; item = await this.#next()) {
        yield item;
      }
    } finally {
      this.close();
    }
  }
}
