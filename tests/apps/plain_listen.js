// A node web app as PM2's docs write one: http.createServer(...).listen(port),
// no signal handler, no process.send. Listens on APP_PORT (0: any free port) and
// HOST when set; answers "<pid> <port>", after SLOW_MS milliseconds for /slow.
const http = require('http');

let port = null;
const server = http.createServer((req, res) => {
  const answer = () => res.end(`${process.pid} ${port}\n`);
  if (req.url === '/slow') setTimeout(answer, Number(process.env.SLOW_MS || 300));
  else answer();
});

if (process.env.HOST) server.listen(Number(process.env.APP_PORT), process.env.HOST);
else server.listen(Number(process.env.APP_PORT));
server.on('listening', () => {
  port = server.address().port;
  console.log(`listening on ${port}`);
});
