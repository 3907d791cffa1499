// An unchanged node web app, as PM2 users write it: listen(PORT), say 'ready',
// and on SIGINT stop accepting and exit once the requests in flight are done.
// Answers with "<pid> <NODE_APP_INSTANCE> <CORRAL_INSTANCE>".
const http = require('http');

const server = http.createServer((req, res) => {
  res.setHeader('Connection', 'close');
  res.end(`${process.pid} ${process.env.NODE_APP_INSTANCE} ${process.env.CORRAL_INSTANCE}\n`);
});

server.listen(process.env.PORT, () => {
  if (process.send) process.send('ready');
});

process.on('SIGINT', () => {
  server.close(() => process.exit(0));
});
