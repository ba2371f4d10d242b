// BullMQ as its documentation recommends for throughput: several worker processes, each with
// a concurrency factor for I/O-bound jobs, delayed jobs added with `addBulk`, finished jobs
// removed (`removeOnComplete`) so Redis holds only the queue.
//   node bullmq.mjs create --queue Q --count N --at EPOCH_MS [--spread S]   prints {"created_per_s"}
//   node bullmq.mjs work --queue Q --concurrency C                            prints "ready"
import { Queue, Worker } from 'bullmq';
import { deliver, dueTimes, parseArgs, untilSignalled } from './deliver.mjs';

const CHUNK = 1000;
const args = parseArgs(process.argv.slice(2));
const url = new URL(process.env.REDIS_URL);
const connection = { host: url.hostname, port: Number(url.port), maxRetriesPerRequest: null };

if (args.command === 'create') {
  const queue = new Queue(args.queue, { connection });
  const times = dueTimes(args);
  const started = performance.now();
  for (let lo = 0; lo < times.length; lo += CHUNK) {
    const now = Date.now();
    await queue.addBulk(times.slice(lo, lo + CHUNK).map((due, k) => {
      const jobId = `${args.queue}-${lo + k}`;
      return {
        name: 'publish',
        data: { jobId, scheduledFor: new Date(due).toISOString() },
        opts: { jobId, delay: Math.max(0, due - now), removeOnComplete: true, removeOnFail: 1000 },
      };
    }));
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(JSON.stringify({ created_per_s: times.length / seconds }));
  await queue.close();
  process.exit(0);
} else if (args.command === 'work') {
  const worker = new Worker(args.queue, async (job) => deliver({ ...job.data, system: 'bullmq' }),
    { connection, concurrency: Number(args.concurrency) });
  await worker.waitUntilReady();
  console.log('ready');
  await untilSignalled();
  await worker.close();
  process.exit(0);
} else {
  console.error('usage: node bullmq.mjs create|work ...');
  process.exit(2);
}
