import type { Step } from './types.js';
import { renderStep } from '../apply/render-step.js';
import { runDir } from '../apply/paths.js';

/** A step as a person reads it (shell-quote escapes `=`, which only matters in a command's first word). */
export function displayStep(s: Step, runId = 'RUN'): string {
  if ('sh' in s && s.display) return s.display;
  const text = renderStep(s, runDir(runId));
  return 'run' in s ? text.replace(/\\=/g, '=') : text;
}

