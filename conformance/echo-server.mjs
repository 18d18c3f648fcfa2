// An echo server for Autobahn|Testsuite: Helios with `echo: true` sends every text and binary message back
// as it came, skipping the Helios protocol, so the suite tests only the WebSocket layer (the Rust core).
// Prints `listening <port>` once it serves; stops on SIGTERM/SIGINT.
import { Helios } from '@aionbuilders/helios';

const helios = new Helios({
  echo: true,
  healthCheck: { enabled: false },
  maxPayload: 16 * 1024 * 1024, // cases 9.x send messages of up to 16 MiB
});

const port = Number(process.env.PORT ?? 0);
const address = helios.serve({ port, hostname: '127.0.0.1' });
console.log(`listening ${address.port}`);

let stopping = false;
const stop = async () => {
  if (stopping) return;
  stopping = true;
  await helios.stop();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
