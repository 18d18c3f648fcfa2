// Imported by every benchmark server: on SIGUSR2 the server runs a full garbage collection and prints
// `gc done`, so the connection-scale scenario reads every server's memory after the same treatment.
// Bun: Bun.gc(true) (synchronous, full). Node: global.gc(), which the suite enables with --expose-gc; without the
// flag there is nothing to call and the server says so.
process.on('SIGUSR2', () => {
  if (globalThis.Bun) globalThis.Bun.gc(true);
  else if (typeof globalThis.gc === 'function') globalThis.gc();
  else {
    console.log('gc unavailable');
    return;
  }
  console.log('gc done');
});
