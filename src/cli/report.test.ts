import { describe, it, expect } from 'vitest';
import { reportJson } from './report.js';
import { reportSchemaErrors } from '../../test/support/report-schema.js';

describe('--json reports: one vocabulary, one schema', () => {
  it('an error is a report: schemaVersion, command, result "error", the message', () => {
    const doc = JSON.parse(reportJson({ command: 'plan', result: 'error', ok: false, exitCode: 2, errors: [{ message: 'upstreams[1].ip: 172.16.0.11 is listed twice' }] }));
    expect(doc).toEqual({ schemaVersion: 1, command: 'plan', result: 'error', ok: false, exitCode: 2, warnings: [], errors: [{ message: 'upstreams[1].ip: 172.16.0.11 is listed twice' }], hosts: [] });
    expect(reportSchemaErrors(doc)).toBe('');
  });
  it('the schema refuses an error report without its message, and an unknown command', () => {
    expect(reportSchemaErrors(JSON.parse(reportJson({ command: 'apply', result: 'error', ok: false, exitCode: 2 })))).not.toBe('');
    expect(reportSchemaErrors({ ...JSON.parse(reportJson({ command: 'verify', result: 'passed', ok: true, exitCode: 0, checks: [] })), command: 'deploy' })).not.toBe('');
  });
  it('DEL and C1 controls from hosts are escaped in JSON too', () => {
    const text = reportJson({ command: 'verify', result: 'failed', ok: false, exitCode: 1, checks: [], errors: [{ host: 'dev1', message: 'a\x7fb\x9bc' }] });
    expect(text).toContain('a\\u007fb\\u009bc');
  });
});
