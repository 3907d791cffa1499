// The HTTP app of the cluster benchmarks, the same file for both tools: it
// answers every request with its pid and closes gracefully on SIGINT.
const s = require('http').createServer((q, r) => r.end(String(process.pid)));
s.listen(process.env.PORT);
process.on('SIGINT', () => s.close(() => process.exit(0)));
