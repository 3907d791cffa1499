// corral's preload for node apps, loaded with `node --require <this file>`.
//
// - With a shared listening socket (LISTEN_FDS=1, LISTEN_PID = this process),
//   server.listen(PORT) listens on that socket (fd 3) instead of binding PORT.
// - Each server that starts listening is reported on the channel as
//   {type: 'corral:listening', data: {address}}.
// - An uncaught exception is reported as {type: 'process:exception', data}
//   from 'uncaughtExceptionMonitor', which observes without changing what
//   node does next (print the stack, exit with code 1).
// No exports, no output, no dependencies.
'use strict';

(function () {
  const net = require('net');
  const env = process.env;
  const sharedSocket =
    env.LISTEN_FDS === '1' && Number(env.LISTEN_PID) === process.pid && Boolean(env.PORT);

  function report(message) {
    // without the callback, a closed channel would emit an unhandled 'error' on process
    if (typeof process.send === 'function' && process.connected) {
      try {
        process.send(message, undefined, undefined, () => {});
      } catch (_error) {
        // the channel went away: nothing to report to
      }
    }
  }

  function isPort(value) {
    return (typeof value === 'number' || typeof value === 'string') && String(value) === env.PORT;
  }

  // listen(PORT, ...) and listen({port: PORT, ...}) become listen({fd: 3}, callback)
  function onSharedSocket(args) {
    const first = args[0];
    const wanted =
      isPort(first) ||
      (first !== null && typeof first === 'object' && isPort(first.port) &&
        first.path === undefined && first.fd === undefined && first.handle === undefined);
    if (!wanted) return args;
    const last = args[args.length - 1];
    const options = { fd: 3 };
    if (typeof first === 'object' && first.backlog !== undefined) options.backlog = first.backlog;
    return typeof last === 'function' ? [options, last] : [options];
  }

  function address(server) {
    try {
      return server.address() || 'fd:3';
    } catch (_error) {
      return 'fd:3';
    }
  }

  if (sharedSocket || typeof process.send === 'function') {
    const listen = net.Server.prototype.listen;
    net.Server.prototype.listen = function (...args) {
      const server = this;
      server.once('listening', () => {
        report({ type: 'corral:listening', data: { address: address(server) } });
      });
      return listen.apply(server, sharedSocket ? onSharedSocket(args) : args);
    };
  }

  if (typeof process.send === 'function') {
    process.on('uncaughtExceptionMonitor', (error) => {
      const isError = error instanceof Error;
      report({
        type: 'process:exception',
        data: {
          name: isError ? error.name : typeof error,
          message: isError ? error.message : String(error),
          stack: isError ? String(error.stack) : '',
        },
      });
    });
  }
})();
