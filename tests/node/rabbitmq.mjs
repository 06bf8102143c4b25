// A private RabbitMQ node for the bridge tests: Debian's rabbitmq-server (installed by
// scripts/setup), with the rabbitmq_web_stomp plugin enabled offline, bound to 127.0.0.1 on free
// ports, its data and logs in a temp dir, started and stopped by the test. No mock: the bridge
// talks to the real server, and pika (tests/bridge/*.py) talks to the same server over AMQP.
//
//   const rabbit = await startRabbit();   // { amqpPort, wsUrl, start(), stop(), close() }
//   await rabbit.stop(); ...; await rabbit.start();   // the same node, durable queues kept
//   await rabbit.close();                 // stops it and removes its directory
import { spawn, execFile } from 'node:child_process';
import { createServer } from 'node:net';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { removeDir, tempDir } from './browser.mjs';

const run = promisify(execFile);
const BIN = process.env.RABBITMQ_BIN ?? '/usr/lib/rabbitmq/bin';

/** A TCP port free on 127.0.0.1 now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** Whether rabbitmq-server is installed here (scripts/setup installs it). */
export async function rabbitAvailable() {
  try {
    await run(`${BIN}/rabbitmqctl`, ['version'], { timeout: 30_000 });
    return true;
  } catch {
    return false;
  }
}

export async function startRabbit() {
  const dir = await tempDir('tabbit-rabbitmq-');
  const [amqpPort, wsPort, stompPort, distPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
  const node = `tabbit-test-${process.pid}-${Date.now() % 100000}@localhost`;
  writeFileSync(
    join(dir, 'rabbitmq.conf'),
    [
      `listeners.tcp.default = 127.0.0.1:${amqpPort}`,
      `stomp.listeners.tcp.1 = 127.0.0.1:${stompPort}`,
      'web_stomp.tcp.ip = 127.0.0.1',
      `web_stomp.tcp.port = ${wsPort}`,
      // Binary WebSocket frames: a message body need not be UTF-8.
      'web_stomp.ws_frame = binary',
      'log.console = false',
      '',
    ].join('\n'),
  );
  const env = {
    ...process.env,
    RABBITMQ_NODENAME: node,
    RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq.conf'),
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    RABBITMQ_PID_FILE: join(dir, 'rabbit.pid'),
    ERL_EPMD_ADDRESS: '127.0.0.1',
  };
  await run(`${BIN}/rabbitmq-plugins`, ['enable', '--offline', 'rabbitmq_web_stomp'], { env, timeout: 60_000 });
  let proc = null;
  const ctl = (...args) => run(`${BIN}/rabbitmqctl`, ['-n', node, ...args], { env, timeout: 90_000 });

  const rabbit = {
    amqpPort,
    wsUrl: `ws://127.0.0.1:${wsPort}/ws`,
    node,
    /** Starts the node and waits until it serves (about 6 s). */
    async start() {
      if (proc) return;
      proc = spawn(`${BIN}/rabbitmq-server`, [], { env, stdio: 'ignore' });
      const exited = new Promise((resolve) => proc.once('exit', (code) => resolve(code)));
      const started = ctl('wait', '--timeout', '60', env.RABBITMQ_PID_FILE);
      const code = await Promise.race([started.then(() => null), exited.then((c) => `exited with ${c}`)]);
      if (code) {
        proc = null;
        throw new Error(`rabbitmq-server ${code} (logs in ${env.RABBITMQ_LOG_BASE})`);
      }
    },
    /** Stops the node (its durable queues and persistent messages stay on disk). */
    async stop() {
      if (!proc) return;
      const p = proc;
      proc = null;
      const exited = new Promise((resolve) => (p.exitCode !== null ? resolve() : p.once('exit', resolve)));
      await ctl('stop').catch(() => p.kill('SIGKILL'));
      await exited;
    },
    /** Runs rabbitmqctl with `args` on this node: its stdout. */
    async ctl(...args) {
      return (await ctl(...args)).stdout;
    },
    async close() {
      await rabbit.stop().catch(() => {});
      await removeDir(dir);
    },
  };
  await rabbit.start();
  return rabbit;
}
