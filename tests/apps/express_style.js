// What an express app does, without express: app.listen(process.env.PORT || N)
// creates an http server with the app as its handler and passes its arguments on.
const http = require('http');

function app(req, res) {
  res.end(`${process.pid}\n`);
}
app.listen = function listen(...args) {
  const server = http.createServer(this);
  return server.listen(...args);
};

app.listen(process.env.PORT || Number(process.env.FALLBACK_PORT), () => {
  console.log(`app listening on ${process.env.PORT || process.env.FALLBACK_PORT}`);
});
