// The HTTP app of the cluster benchmarks, the same file for every tool: it
// answers every request with its pid and closes gracefully on SIGINT. It listens
// on PORT (corral and PM2), or on the fd given as its argument (circus's sockets).
const s = require('http').createServer((q, r) => r.end(String(process.pid)));
const fd = process.argv[2];
s.listen(fd ? { fd: Number(fd) } : process.env.PORT);
process.on('SIGINT', () => s.close(() => process.exit(0)));
