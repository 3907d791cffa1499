// PM2's half of api_list_warm: `node pm2_list.js <pm2 module> <calls>` connects once
// with the pm2 package, warms the connection with WARM calls of pm2.list, then times
// <calls> more; prints {"ms": [...], "apps": n} as bench/apps/api_list.py does. With
// `stdin` for <calls>: prints `ready` after the warm calls, then one {"ms", "apps"} line
// per line read from stdin, until stdin closes (bench/scale.py).
'use strict';

const [pm2Module, callsArg] = process.argv.slice(2);
const pm2 = require(pm2Module);
const WARM = 3;
const calls = Number(callsArg);

function list() {
  return new Promise((resolve, reject) =>
    pm2.list((err, apps) => (err ? reject(err) : resolve(apps.length))),
  );
}

pm2.connect(async (err) => {
  if (err) {
    console.error(String(err));
    process.exit(1);
  }
  try {
    for (let i = 0; i < WARM; i += 1) await list();
    if (callsArg === 'stdin') return onDemand();
    const ms = [];
    let apps = 0;
    for (let i = 0; i < calls; i += 1) {
      const t0 = process.hrtime.bigint();
      apps = await list();
      ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    process.stdout.write(JSON.stringify({ ms, apps }) + '\n', () => {
      pm2.disconnect();
      process.exit(0);
    });
  } catch (e) {
    console.error(String(e));
    process.exit(1);
  }
});

function onDemand() {
  const lines = require('readline').createInterface({ input: process.stdin });
  let queue = Promise.resolve();
  lines.on('line', () => {
    queue = queue.then(async () => {
      const t0 = process.hrtime.bigint();
      const apps = await list();
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      process.stdout.write(JSON.stringify({ ms, apps }) + '\n');
    });
  });
  lines.on('close', () => queue.then(() => { pm2.disconnect(); process.exit(0); }));
  process.stdout.write('ready\n');
}
