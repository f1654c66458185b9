/** `DSRCTL_DEBUG=timing` prints how long each SSH connect and exec took, on stderr. */
const on = () => /\btiming\b/.test(process.env.DSRCTL_DEBUG ?? '');

export async function timed<T>(what: string, f: () => Promise<T>): Promise<T> {
  if (!on()) return f();
  // performance.now(): ms since the process started, so start-up shows too
  const start = performance.now();
  try {
    return await f();
  } finally {
    process.stderr.write(`[timing] +${String(Math.round(start)).padStart(5)} ms  ${what}: ${Math.round(performance.now() - start)} ms\n`);
  }
}
