/** `DSRCTL_DEBUG=timing` prints how long each SSH connect and exec took, on stderr. */
const on = () => /\btiming\b/.test(process.env.DSRCTL_DEBUG ?? '');
const t0 = Date.now();

export async function timed<T>(what: string, f: () => Promise<T>): Promise<T> {
  if (!on()) return f();
  const start = Date.now();
  try {
    return await f();
  } finally {
    process.stderr.write(`[timing] +${String(start - t0).padStart(5)} ms  ${what}: ${Date.now() - start} ms\n`);
  }
}
