"use strict";
function fail(job) {
    throw new Error(`job ${job.id} failed`);
}
console.log("started");
fail({ id: 7 });
//# sourceMappingURL=app.js.map
