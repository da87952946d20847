/**
 * `addEventListener(type, fn, context)` / `removeEventListener` as Tianditu's classes have them
 * (Leaflet's `on`/`off` underneath: `this` in a handler is the context or the object, the event
 * object carries `type` and `target`). Pure.
 */

export class Evented {
  addEventListener(type, fn, context) {
    if (typeof fn !== "function") throw new TypeError(`${type}: the handler is not a function`);
    const all = (this._listeners ||= new Map());
    if (!all.has(type)) all.set(type, []);
    const list = all.get(type);
    if (!list.some((l) => l.fn === fn && l.context === context)) list.push({ fn, context });
    return this;
  }

  removeEventListener(type, fn, context) {
    const list = this._listeners && this._listeners.get(type);
    if (!list) return this;
    const i = list.findIndex((l) => l.fn === fn && (context === undefined || l.context === context));
    if (i >= 0) list.splice(i, 1);
    return this;
  }

  on(type, fn, context) { return this.addEventListener(type, fn, context); }

  off(type, fn, context) { return this.removeEventListener(type, fn, context); }

  /** True when someone listens to `type`. */
  listens(type) {
    const list = this._listeners && this._listeners.get(type);
    return !!(list && list.length);
  }

  /** Calls the listeners of `type` with `{type, target, ...data}`; a throwing listener is
   * reported and does not stop the others. */
  fire(type, data) {
    const list = this._listeners && this._listeners.get(type);
    if (!list || !list.length) return this;
    const event = Object.assign({}, data, { type, target: this });
    for (const l of list.slice()) {
      try {
        l.fn.call(l.context || this, event);
      } catch (err) {
        setTimeout(() => { throw err; });
      }
    }
    return this;
  }
}
