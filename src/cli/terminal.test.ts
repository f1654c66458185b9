import { describe, it, expect, vi, afterEach } from 'vitest';
import { escapeControls, terminalText, toJson, print, COLOR_MARK, safeError } from './terminal.js';
import { formatChecks } from './output.js';

// what the lab's hostile upstream answers the HTTP probe with (captured with curl -s | od -c)
const HOSTILE = 'dev1 \x1b]0;PWNED-TITLE\x07\x1b[31mFAKE ok\x1b[0m\r\x9b2J\x7f\n';

afterEach(() => vi.restoreAllMocks());

describe('the output boundary', () => {
  it('shows C0, C1 and DEL from a host as visible \\xHH, keeping newlines and tabs', () => {
    expect(escapeControls(HOSTILE)).toBe('dev1 \\x1b]0;PWNED-TITLE\\x07\\x1b[31mFAKE ok\\x1b[0m\\x0d\\x9b2J\\x7f\n');
    expect(escapeControls('a\tb\nc')).toBe('a\tb\nc');
  });

  it('prints a probe answer in a verify line with no escape byte left', () => {
    const line = formatChecks([{ kind: 'probe', host: 'probe', ok: false, description: 'HTTP via the proxy', detail: `answer ${HOSTILE}` } as never]);
    const out: string[] = [];
    vi.spyOn(process.stdout, 'write').mockImplementation((s) => (out.push(String(s)), true));
    print(line);
    expect(out.join('')).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/);
    expect(out.join('')).toContain('\\x1b]0;PWNED-TITLE\\x07');
  });

  it("keeps dsrctl's own colours, and only those", () => {
    expect(terminalText(`${COLOR_MARK}31mFAIL${COLOR_MARK}0m \x1b[32m`)).toBe('\x1b[31mFAIL\x1b[0m \\x1b[32m');
  });

  it('escapes DEL and C1 in JSON, which JSON.stringify leaves raw', () => {
    const json = toJson({ detail: HOSTILE });
    expect(json).toContain('\\u001b]0;PWNED-TITLE\\u0007');
    expect(json).toContain('\\u009b2J\\u007f');
    expect(json).not.toMatch(/[\x7f-\x9f]/);
    expect(JSON.parse(json)).toEqual({ detail: HOSTILE });
  });

  it('gives listr2 an error whose message is safe', () => {
    expect(safeError(new Error('nginx -t: \x1b[2J')).message).toBe('nginx -t: \\x1b[2J');
  });
});
