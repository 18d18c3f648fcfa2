// The auth example (examples/auth): tokens checked at the upgrade, protected rooms decided from captures,
// driven through real sockets against the example's own process; and `run.js`, the README's command.
import { test, expect, describe, beforeAll, afterAll } from 'bun:test';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Starling } from '../client/index.js';
import { issueToken } from '../examples/auth/tokens.js';
import { tcpSocket, runScript, runtimes, nextTopic } from './helpers.js';
import { startExample, stopExamples } from './example_process.js';

const secret = randomBytes(32).toString('hex');

describe('auth server', () => {
  let port;
  const clients = [];
  const connectAs = async (userId) => {
    const client = new Starling({ url: `ws://127.0.0.1:${port}/?token=${issueToken(secret, userId)}` });
    clients.push(client);
    await client.connect();
    return client;
  };
  beforeAll(async () => {
    const server = startExample('auth/server.js', { PORT: '0', AUTH_SECRET: secret });
    [, port] = await server.waitForLine(/listening on port (\d+)/);
  });
  afterAll(async () => {
    await Promise.all(clients.map((client) => client.close()));
    await stopExamples();
  });

  test('no token, a forged, expired or unknown user token: 401 at the upgrade', async () => {
    const refused = [
      '/',
      '/?token=',
      `/?token=${issueToken('another-secret-another-secret-another-secret', 'alice')}`,
      `/?token=${issueToken(secret, 'alice', -1)}`,
      `/?token=${issueToken(secret, 'mallory')}`,
      `/?token=${issueToken(secret, 'alice')}x`,
    ];
    for (const target of refused) {
      await expect(tcpSocket(Number(port), target), target).rejects.toThrow(/HTTP\/1.1 401/);
    }
  });

  test('a valid token connects; the upgrade put the user in connection.data', async () => {
    const alice = await connectAs('alice');
    expect((await alice.request('me')).data).toEqual({ userId: 'alice', role: 'admin' });
  });

  test('protected rooms admit by captures: own inbox, own projects, audit for admins', async () => {
    const bob = await connectAs('bob');
    const alice = await connectAs('alice');
    const joins = async (client, topic) => (await client.subscribe(topic)).success;
    expect(await joins(bob, 'user:bob')).toBe(true);
    expect(await joins(bob, 'user:alice')).toBe(false);
    expect(await joins(bob, 'project:apollo')).toBe(true);
    expect(await joins(bob, 'project:zeus')).toBe(false);
    expect(await joins(bob, 'project:nowhere')).toBe(false);
    expect(await joins(bob, 'audit:apollo:posts')).toBe(false);
    expect(await joins(bob, 'lobby')).toBe(false); // undeclared topics are denied
    expect(await joins(alice, 'project:apollo')).toBe(true);
    expect(await joins(alice, 'audit:apollo:posts')).toBe(true);
    expect(await joins(alice, 'audit:nowhere:posts')).toBe(false);

    const post = nextTopic(bob, 'project:apollo');
    const audit = nextTopic(alice, 'audit:apollo:posts');
    expect((await alice.request('project.post', { projectId: 'apollo', text: 'go' })).data).toEqual({ targets: 1, sent: 1 }) // the sender is excluded;
    expect((await post)[0]).toEqual({ projectId: 'apollo', from: 'alice', text: 'go' });
    expect((await audit)[0]).toEqual({ projectId: 'apollo', from: 'alice', length: 2 });
    expect((await bob.request('project.post', { projectId: 'zeus', text: 'x' })).status).toBe(403);

    const inbox = nextTopic(bob, 'user:bob');
    await alice.request('user.notify', { userId: 'bob', text: 'hi' });
    expect((await inbox)[0]).toEqual({ from: 'alice', text: 'hi' });
  });
});

test('run.js shows refusals, joins and denials, and stops the server', async () => {
  const result = await runScript(runtimes.bun, path.join('examples', 'auth', 'run.js'), path.resolve(import.meta.dir, '..'), 20000);
  expect(result.exitCode, result.stderr).toBe(0);
  expect(result.stdout).toContain('[client] no token: refused');
  expect(result.stdout).toContain('[bob] subscribe user:alice → permission denied');
  expect(result.stdout).toContain('[bob] project:apollo → {"projectId":"apollo","from":"alice","text":"launch at noon"}');
  expect(result.stdout).toContain('[auth] stopped');
}, 30000);
