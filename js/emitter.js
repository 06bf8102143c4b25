// Emitter: the small EventEmitter the package's connections and channels extend.

/** A small EventEmitter: on/once/off/emit, as amqplib's objects are emitters (exported: the types name it). */
export class Emitter {
  #listeners = new Map();

  on(name, fn) {
    const list = this.#listeners.get(name) ?? [];
    list.push(fn);
    this.#listeners.set(name, list);
    return this;
  }

  once(name, fn) {
    const wrapper = (...args) => {
      this.off(name, wrapper);
      fn(...args);
    };
    wrapper.listener = fn;
    return this.on(name, wrapper);
  }

  off(name, fn) {
    const list = this.#listeners.get(name);
    if (list) {
      const i = list.findIndex((f) => f === fn || f.listener === fn);
      if (i >= 0) list.splice(i, 1);
    }
    return this;
  }

  addListener(name, fn) {
    return this.on(name, fn);
  }

  removeListener(name, fn) {
    return this.off(name, fn);
  }

  listenerCount(name) {
    return this.#listeners.get(name)?.length ?? 0;
  }

  emit(name, ...args) {
    const list = this.#listeners.get(name);
    if (!list?.length) {
      // As an EventEmitter does, an 'error' nobody listens to is not silent.
      if (name === 'error') report(args[0]);
      return false;
    }
    for (const fn of [...list]) {
      try {
        fn(...args);
      } catch (e) {
        report(e);
      }
    }
    return true;
  }
}

function report(e) {
  if (typeof globalThis.reportError === 'function') globalThis.reportError(e);
  else setTimeout(() => { throw e; });
}
