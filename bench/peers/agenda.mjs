// Agenda 6 on MongoDB as its documentation recommends for throughput: several processes, a
// process-wide `maxConcurrency` and the job type's `concurrency` raised for I/O-bound jobs, no
// lock limit, and a short `processEvery` so jobs due at a time are locked just before it
// (MongoBackend has no notifications without a replica set's change streams). Agenda has no
// bulk insert: jobs are saved one by one, many at a time.
//   node agenda.mjs create --db URI --count N --at EPOCH_MS [--spread S]   prints {"created_per_s"}
//   node agenda.mjs work --db URI --concurrency C                            prints "ready"
import { Agenda } from 'agenda';
import { MongoBackend } from '@agendajs/mongo-backend';
import { deliver, dueTimes, parseArgs, untilSignalled } from './deliver.mjs';

const IN_FLIGHT = 64;
const args = parseArgs(process.argv.slice(2));
const concurrency = Number(args.concurrency || 64);
const agenda = new Agenda({
  backend: new MongoBackend({ address: args.db }),
  processEvery: '1 second',
  maxConcurrency: concurrency,
  defaultConcurrency: concurrency,
  lockLimit: 0,
  defaultLockLimit: 0,
});
agenda.define('publish', async (job) => deliver({ ...job.attrs.data, system: 'agenda' }),
  { concurrency });
agenda.on('error', (error) => console.error('agenda:', error));

if (args.command === 'create') {
  await agenda.ready;
  const times = dueTimes(args);
  const started = performance.now();
  let next = 0;
  async function saver() {
    while (next < times.length) {
      const i = next++;
      await agenda.schedule(new Date(times[i]), 'publish',
        { jobId: `agenda-${args.run}-${i}`, scheduledFor: new Date(times[i]).toISOString() });
    }
  }
  await Promise.all(Array.from({ length: IN_FLIGHT }, saver));
  const seconds = (performance.now() - started) / 1000;
  console.log(JSON.stringify({ created_per_s: times.length / seconds }));
  await agenda.stop(true);
  process.exit(0);
} else if (args.command === 'work') {
  await agenda.start();
  console.log('ready');
  await untilSignalled();
  await agenda.stop(true);
  process.exit(0);
} else {
  console.error('usage: node agenda.mjs create|work ...');
  process.exit(2);
}
