'use strict';
// A prefix for method names and middleware patterns: `helios.namespace('api').register('users.list')`
// registers `api.users.list`, and its middleware only sees methods under `api.`.

class Namespace {
  #helios;

  constructor(helios, prefix) {
    if (typeof prefix !== 'string' || prefix.length === 0) throw new TypeError('namespace must be a non-empty string');
    this.#helios = helios;
    /** The full prefix, without the trailing dot. */
    this.prefix = prefix;
  }

  /** Registers a method under this namespace. */
  method(name, handler) {
    this.#helios.method(`${this.prefix}.${name}`, handler);
    return this;
  }

  /** Same as `method`. */
  register(name, handler) {
    return this.method(name, handler);
  }

  /** Adds middleware for the methods of this namespace matching `pattern`. */
  use(pattern, middleware) {
    if (typeof pattern === 'function') return this.use('**', pattern);
    this.#helios.use(`${this.prefix}.${pattern}`, middleware);
    return this;
  }

  /** A nested namespace. */
  namespace(name) {
    return new Namespace(this.#helios, `${this.prefix}.${name}`);
  }
}

module.exports = { Namespace };
