/**
 * How a change reads once it is undone: what the host has now, and what dsrctl had made of it.
 * The journal keeps the apply-time summary ("set K A -> B"); read as "undone: set K A -> B" it
 * reads backwards, so the summaries dsrctl writes are turned around here.
 */
export function undoneText(summary: string): string {
  let m: RegExpExecArray | null;
  const partial = summary.startsWith('(partial) ');
  const s = partial ? summary.slice(10) : summary;
  const tag = partial ? ' (it was only partly applied)' : '';
  if ((m = /^set (\S+) (.+?) -> (.+)$/.exec(s))) return `${m[1]} is ${m[2]} again (dsrctl had set ${m[3]})${tag}`;
  if ((m = /^default route (.+?) -> (via .+)$/.exec(s))) return `default route ${m[1]} again (dsrctl had set ${m[2]})${tag}`;
  if ((m = /^(\/\S+): (.+?) -> (.+)$/.exec(s))) return `${m[1]}: ${m[2]} again (dsrctl had set ${m[3]})${tag}`;
  if ((m = /^(\/\S+): add (?:a stream \{ \} block with )?(.+)$/.exec(s))) return `${m[1]}: ${m[2]} removed${tag}`;
  if ((m = /^rewrite (\/\S+)(?: \(.*\))?$/.exec(s))) return `${m[1]}: its earlier content is back${tag}`;
  if ((m = /^create (\/\S+)(?: \(.*\))?$/.exec(s))) return `${m[1]} removed${tag}`;
  if ((m = /^(?:add to|add|replace) (.+)$/.exec(s))) return `removed: ${m[1]}${tag}`;
  if ((m = /^remove (.+?)(?: \((?:left by|the nft backend).*\))?$/.exec(s))) return `put back: ${m[1]}${tag}`;
  return `undone: ${s}${tag}`;
}
