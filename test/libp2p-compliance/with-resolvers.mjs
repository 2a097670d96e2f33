// libp2p's packages call Promise.withResolvers (ES2024), which Node 20 lacks. Loaded before them.
if (typeof Promise.withResolvers !== 'function') {
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value() {
      const out = {};
      out.promise = new this((resolve, reject) => {
        out.resolve = resolve;
        out.reject = reject;
      });
      return out;
    },
  });
}
