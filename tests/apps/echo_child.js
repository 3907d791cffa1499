// Sends back the data of every packet the daemon delivers, with node's own IPC;
// says a bare 'hello' (no type) first.
process.on('message', (m) => {
  process.send({ type: 'process:msg', data: m.data, topic: m.topic });
});
process.send('hello');
