// PM2's test/fixtures/stdin/stdin.js: answers every line of its stdin.
const readline = require("readline");

const rl = readline.createInterface({ input: process.stdin });
rl.on("line", (line) => console.log(`got: ${line} (instance ${process.env.NODE_APP_INSTANCE})`));
setInterval(() => {}, 1 << 30);
