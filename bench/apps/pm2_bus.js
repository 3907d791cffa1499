// PM2's subscriber for bench/busbench.py: `node pm2_bus.js <pm2 module> throughput <seconds>`
// counts log:out events for a window from the first one; `... latency <count>` times
// process:msg events from the child's send. Prints "ready" once subscribed, then one JSON line.
'use strict';

const [pm2Module, mode, arg] = process.argv.slice(2);
const pm2 = require(pm2Module);
// CLOCK_MONOTONIC, the clock of Python's time.monotonic_ns() in the sender
const nowNs = () => process.hrtime.bigint();

function finish(result) {
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(0));
}

function throughput(bus, seconds) {
  let first = null;
  let events = 0;
  let lines = 0;
  let bytes = 0;
  let ended = false;
  // counted: the events in [first, first + seconds), so the divisor is the window itself
  const end = () => {
    if (!ended) finish({ events, lines, bytes, seconds, dropped: null });
    ended = true;
  };
  bus.on('log:out', (packet) => {
    const now = nowNs();
    if (first === null) {
      first = now;
      setTimeout(end, seconds * 1000);
      return;
    }
    if (Number(now - first) / 1e9 >= seconds) return end();
    events += 1;
    const data = String(packet.data);
    bytes += Buffer.byteLength(data);
    for (let i = data.indexOf('\n'); i !== -1; i = data.indexOf('\n', i + 1)) lines += 1;
  });
}

function latency(bus, count) {
  const samples = [];
  bus.on('process:msg', (packet) => {
    const now = nowNs();
    const data = packet.data;
    if (!data || data.warm || typeof data.t !== 'number') return;
    samples.push(Number(now - BigInt(data.t)) / 1000);
    if (samples.length >= count) finish({ latencies_us: samples });
  });
}

setTimeout(() => finish({ error: 'timed out' }), 120000).unref();
pm2.connect((error) => {
  if (error) return finish({ error: String(error) });
  pm2.launchBus((err, bus) => {
    if (err) return finish({ error: String(err) });
    if (mode === 'throughput') throughput(bus, Number(arg));
    else latency(bus, Number(arg));
    process.stdout.write('ready\n');
  });
});
