// A node app: prints its pid and env, then stays alive.
console.log(JSON.stringify({ pid: process.pid, pm_id: process.env.pm_id, name: process.env.name }));
console.error("node stderr line");
setInterval(() => {}, 1 << 30);
