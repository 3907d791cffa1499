// corral's preload for node apps, loaded with `node --require <this file>`.
//
// - With a shared listening socket (LISTEN_FDS=1, LISTEN_PID = this process),
//   server.listen(PORT) listens on that socket (fd 3) instead of binding PORT.
// - In cluster mode without one, every server.listen(port[, host]) asks the
//   daemon for the socket, as node's cluster worker asks its primary:
//   {type: 'corral:listen', data: {id, host, port, ipv6Only}} on the channel;
//   the daemon answers with the fd (node's NODE_HANDLE passing) or an errno,
//   which the server emits as 'error' as node would. Every instance of the app
//   then accepts on one socket (listen(0): one shared ephemeral port). Unix
//   paths, fds, handles and `exclusive: true` are left to node.
// - Each server that starts listening is reported on the channel as
//   {type: 'corral:listening', data: {address}}.
// - On the stop signal (kill_signal, SIGINT by default), when the app has no
//   listener of its own for it, the servers stop accepting, the requests in
//   flight finish (idle keep-alive connections are closed, and responses from
//   then on close theirs), then the signal is raised again with node's default
//   action, as cluster's worker.disconnect() drains before the worker exits;
//   the daemon's kill_timeout bounds it. An app that handles the signal is left alone.
// - An uncaught exception is reported as {type: 'process:exception', data}
//   from 'uncaughtExceptionMonitor', which observes without changing what
//   node does next (print the stack, exit with code 1).
// No exports, no output, no dependencies.
'use strict';

(function () {
  const net = require('net');
  const env = process.env;
  const daemonSocket = env.LISTEN_FDS === '1' && Number(env.LISTEN_PID) === process.pid;
  const sharedSocket = daemonSocket && Boolean(env.PORT);
  const askDaemon =
    !daemonSocket && env.exec_mode === 'cluster_mode' && typeof process.send === 'function';
  const servers = new Set(); // every server that listened, for the drain on stop

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

  // -- cluster mode: the daemon binds, every instance accepts on that one socket --

  const pending = new Map(); // request id -> {server, request, listen, host, cancel}
  let lastId = 0;
  let keepAlive = null; // a timer keeps the process up while a socket is on its way

  // {host, port, backlog, ipv6Only, callback} when the daemon should bind, else null
  function tcpRequest(server, args) {
    if (server._handle) return null; // node says ERR_SERVER_ALREADY_LISTEN
    let normalized;
    try {
      normalized = net._normalizeArgs(args);
    } catch (_error) {
      return null;
    }
    const options = normalized[0] || {};
    const callback = normalized[1] || null;
    if (options.path !== undefined || options.fd !== undefined || options.handle !== undefined ||
      options._handle !== undefined || options.exclusive === true) return null;
    if (args.length > 0 && typeof args[0] === 'object' && args[0] !== null && !('port' in args[0]))
      return null; // a handle object, or options without a port: node decides
    let port = options.port === undefined || options.port === null ? 0 : options.port;
    if (typeof port === 'string' && port.trim() !== '') port = Number(port);
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535)
      return null; // node throws ERR_SOCKET_BAD_PORT
    // as node reads it: options.backlog, else a number in the 2nd or 3rd place
    const toNumber = (x) => ((x = Number(x)) >= 0 ? x : false);
    const backlog =
      options.backlog ||
      toNumber(args.length > 1 && args[1]) ||
      toNumber(args.length > 2 && args[2]) ||
      undefined;
    return {
      host: options.host || '',
      port,
      backlog,
      ipv6Only: Boolean(options.ipv6Only),
      callback,
    };
  }

  function errorFor(failure, host, port) {
    const errno = Number(failure.errno) || 22;
    let code = String(failure.code || 'EINVAL');
    let text = String(failure.message || code);
    try {
      const known = require('util').getSystemErrorMap().get(-errno);
      if (known) [code, text] = known;
    } catch (_error) {
      // an older node: the daemon's words
    }
    const where = host || (port === 0 ? '' : '::');
    const error = new Error(`listen ${code}: ${text} ${where}:${port}`);
    Object.assign(error, { code, errno: -errno, syscall: 'listen', address: where, port });
    return error;
  }

  function settle(id) {
    const entry = pending.get(id);
    pending.delete(id);
    if (pending.size === 0 && keepAlive !== null) {
      clearInterval(keepAlive);
      keepAlive = null;
    }
    return entry;
  }

  function askForSocket(server, request, listen) {
    if (request.callback) server.once('listening', request.callback);
    const ask = (host) => {
      const id = ++lastId;
      // closed before the answer came (node emits 'close' at once): no late listen
      const cancel = () => settle(id);
      server.once('close', cancel);
      pending.set(id, { server, request, listen, host, cancel });
      if (keepAlive === null) keepAlive = setInterval(() => {}, 1 << 30);
      report({
        type: 'corral:listen',
        data: { id, host, port: request.port, ipv6Only: request.ipv6Only },
      });
    };
    if (!request.host || net.isIP(request.host)) {
      ask(request.host);
      return;
    }
    require('dns').lookup(request.host, (error, ip) => {
      if (error) server.emit('error', error);
      else ask(ip);
    });
  }

  if (askDaemon) {
    process.on('internalMessage', (message, handle) => {
      if (message === null || typeof message !== 'object' || message.cmd !== 'NODE_CORRAL_LISTEN')
        return;
      const entry = settle(message.id);
      if (entry === undefined) {
        if (handle && typeof handle.close === 'function') handle.close();
        return;
      }
      const { server, request, listen, host, cancel } = entry;
      server.removeListener('close', cancel);
      if (message.error || !handle) {
        const failure = message.error || { errno: 22, code: 'EINVAL', message: 'no socket came' };
        server.emit('error', errorFor(failure, host, request.port));
        return;
      }
      try {
        if (request.backlog !== undefined) listen.call(server, handle, request.backlog);
        else listen.call(server, handle);
      } catch (error) {
        handle.close();
        server.emit('error', error);
      }
    });
  }

  // -- every server: reported when listening, drained on the stop signal --

  if (sharedSocket || typeof process.send === 'function') {
    const listen = net.Server.prototype.listen;
    net.Server.prototype.listen = function (...args) {
      const server = this;
      server.once('listening', () => {
        track(server);
        report({ type: 'corral:listening', data: { address: address(server) } });
      });
      const request = askDaemon && process.connected ? tcpRequest(server, args) : null;
      if (request !== null) {
        askForSocket(server, request, listen);
        return server;
      }
      return listen.apply(server, sharedSocket ? onSharedSocket(args) : args);
    };
  }

  let stopping = false;

  function track(server) {
    if (servers.has(server)) return;
    servers.add(server);
    server.once('close', () => servers.delete(server));
    if (typeof server.closeIdleConnections === 'function') {
      // an http server: from the stop on, each response closes its connection
      server.prependListener('request', (_request, response) => {
        if (stopping) response.shouldKeepAlive = false;
      });
    }
  }

  function drain(signal, onSignal) {
    stopping = true;
    const open = [...servers].filter((server) => server.listening);
    const raise = () => {
      process.removeListener(signal, onSignal);
      process.kill(process.pid, signal); // node's default action, as if we had not been here
    };
    if (open.length === 0) {
      raise();
      return;
    }
    let left = open.length;
    const sweep = () => {
      for (const server of open) {
        if (typeof server.closeIdleConnections === 'function') server.closeIdleConnections();
      }
    };
    for (const server of open) {
      // net's close: stop accepting, and keep the connections (http's would close the
      // idle ones now, with a just-accepted one whose request is not read yet)
      net.Server.prototype.close.call(server, () => {
        left -= 1;
        if (left === 0) raise();
      });
    }
    setTimeout(sweep, 100).unref();
    setInterval(sweep, 250).unref();
  }

  function stopSignal() {
    const name = env.kill_signal || 'SIGINT';
    return name === 'SIGKILL' || name === 'SIGSTOP' ? null : name;
  }

  const signal = stopSignal();
  if ((daemonSocket || askDaemon) && signal !== null) {
    const onSignal = () => {
      // the app's own handler decides; without one, node would exit at once
      if (process.listeners(signal).some((listener) => listener !== onSignal)) return;
      if (!stopping) drain(signal, onSignal);
    };
    try {
      process.on(signal, onSignal);
    } catch (_error) {
      // a signal node cannot watch here
    }
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
