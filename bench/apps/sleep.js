// A long-running node app that does nothing: PM2's native case, reported beside the Python one.
setInterval(() => {}, 1 << 30);
