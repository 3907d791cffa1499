// A tiny TypeScript app; app.js is its compiled form, app.js.map the map between them.
interface Job {
  id: number;
}

function fail(job: Job): never {
  throw new Error(`job ${job.id} failed`);
}

console.log("started");
fail({ id: 7 });
