// One signed HTTP POST per job to the benchmark's receiver, in the same wire format as
// Herald's webhook provider (API.md "webhook"), so every system does the same work per job
// and tests/emulators/webhook.py accepts, deduplicates and timestamps it the same way.
import { createHmac } from 'node:crypto';

const RECEIVER = process.env.BENCH_RECEIVER_URL;
const SECRET = process.env.BENCH_SECRET;

export async function deliver({ jobId, scheduledFor, system }) {
  const body = JSON.stringify({
    post_id: jobId, job_id: jobId, account_id: system, scheduled_for: scheduledFor,
    text: 'benchmark', media: [],
  });
  const timestamp = String(Math.floor(Date.now() / 1000));
  const signature = 'sha256=' + createHmac('sha256', SECRET).update(`${timestamp}.${body}`).digest('hex');
  const response = await fetch(RECEIVER, {
    method: 'POST', body,
    headers: {
      'Content-Type': 'application/json', 'Idempotency-Key': jobId,
      'X-Herald-Timestamp': timestamp, 'X-Herald-Signature': signature,
    },
  });
  await response.arrayBuffer();
  if (response.status >= 300) throw new Error(`receiver answered ${response.status}`);
}

/** The workload's due times, as the driver passes them: `--at MS --spread S --count N`. */
export function dueTimes(args) {
  const at = Number(args.at), spread = Number(args.spread || 0) * 1000, n = Number(args.count);
  return Array.from({ length: n }, (_, i) => at + (n > 1 ? (spread * i) / n : 0));
}

export function parseArgs(argv) {
  const [command, ...rest] = argv;
  const args = { command };
  for (let i = 0; i < rest.length; i += 2) args[rest[i].replace(/^--/, '')] = rest[i + 1];
  return args;
}

/** Resolves on SIGTERM/SIGINT, so a worker can close its connections before it exits. */
export function untilSignalled() {
  return new Promise((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
}
