// Runs an example from examples/ in its own process, as its README command would, and follows its output.

import path from 'node:path';

const repo = path.resolve(import.meta.dir, '..');
const running = new Set();

/**
 * Starts `bun <script> ...args` (a path under examples/) with extra `env`. Returns `{ child, lines, waitForLine, stop }`:
 * `lines` is every stdout line so far, `waitForLine(regex)` resolves with the match of the first line (seen
 * or to come) matching it, `stop()` sends SIGTERM and resolves with the exit code (SIGKILL after 5 s).
 */
export function startExample(script, env = {}, args = []) {
  const child = Bun.spawn([process.execPath, path.join(repo, 'examples', script), ...args], {
    cwd: repo,
    env: { ...process.env, ...env },
    stdout: 'pipe',
    stderr: 'inherit',
  });
  const lines = [];
  const waiters = new Set();
  let exited = false;
  (async () => {
    const decoder = new TextDecoder();
    let partial = '';
    for await (const chunk of child.stdout) {
      partial += decoder.decode(chunk, { stream: true });
      const complete = partial.split('\n');
      partial = complete.pop();
      for (const line of complete) {
        lines.push(line);
        for (const waiter of [...waiters]) waiter();
      }
    }
  })();
  child.exited.then(() => {
    exited = true;
    for (const waiter of [...waiters]) waiter();
  });
  const example = {
    child,
    lines,
    waitForLine(regex, timeout = 10000) {
      return new Promise((resolve, reject) => {
        let seen = 0;
        const check = () => {
          for (; seen < lines.length; seen += 1) {
            const match = regex.exec(lines[seen]);
            if (match) return finish(() => resolve(match));
          }
          if (exited) finish(() => reject(new Error(`${script} exited before printing ${regex}; it printed:\n${lines.join('\n')}`)));
        };
        const timer = setTimeout(
          () => finish(() => reject(new Error(`${script} did not print ${regex} within ${timeout} ms; it printed:\n${lines.join('\n')}`))),
          timeout,
        );
        const finish = (settle) => {
          clearTimeout(timer);
          waiters.delete(check);
          settle();
        };
        waiters.add(check);
        check();
      });
    },
    async stop() {
      running.delete(example);
      if (!exited) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      const code = await child.exited;
      clearTimeout(timer);
      return code;
    },
  };
  running.add(example);
  return example;
}

/** Stops every example still running (for afterEach/afterAll). */
export async function stopExamples() {
  await Promise.all([...running].map((example) => example.stop()));
}
