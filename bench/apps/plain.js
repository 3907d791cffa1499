// The cluster benchmarks' app as PM2's docs write one and most users leave it:
// listen(process.env.PORT || 3000), no signal handler, no process.send. It
// answers every request with its pid.
require('http')
  .createServer((q, r) => r.end(String(process.pid)))
  .listen(process.env.PORT || 3000);
