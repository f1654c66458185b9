import { describe, expect, it } from 'vitest';
import { interpolate, lookup } from './interpolate.js';

const ctx = {
  proxy: { private_ip: '172.16.0.1', masquerade: false, ssh: undefined, nothing: null },
  service: { upstream_port: 8080, l4: 'tcp' },
  upstream: { name: 'dev1', ip: '172.16.0.11' },
};

describe('interpolate', () => {
  it('replaces {{a.b}} (with or without spaces) by the value, numbers as decimal text', () => {
    expect(interpolate('{{proxy.private_ip}}', ctx, 'e')).toBe('172.16.0.1');
    expect(interpolate('{{ upstream.ip }}/32', ctx, 'e')).toBe('172.16.0.11/32');
    expect(interpolate('{{service.upstream_port}}', ctx, 'e')).toBe('8080');
    expect(interpolate('-m {{service.l4}} --sport {{service.upstream_port}}', ctx, 'e')).toBe('-m tcp --sport 8080');
    expect(interpolate('{{proxy.masquerade}}', ctx, 'e')).toBe('false');
  });

  it('walks arrays and objects, leaves other values and plain text alone', () => {
    const entry = { via: '{{proxy.private_ip}}', rule: ['-s', '{{upstream.ip}}/32'], n: 3, on: true, none: null, nested: { a: ['{{upstream.name}}'] } };
    expect(interpolate(entry, ctx, 'e')).toEqual({ via: '172.16.0.1', rule: ['-s', '172.16.0.11/32'], n: 3, on: true, none: null, nested: { a: ['dev1'] } });
    expect(interpolate('$remote_addr transparent', ctx, 'e')).toBe('$remote_addr transparent');
    expect(interpolate('{ not a ref }', ctx, 'e')).toBe('{ not a ref }');
  });

  it('does not modify its input', () => {
    const entry = { rule: ['{{upstream.ip}}'] };
    interpolate(entry, ctx, 'e');
    expect(entry).toEqual({ rule: ['{{upstream.ip}}'] });
  });

  it('throws naming the entry and the reference when a value is missing', () => {
    expect(() => interpolate({ via: '{{proxy.gateway}}' }, ctx, 'playbook entry 3 (default-route)')).toThrow(
      'playbook entry 3 (default-route): {{proxy.gateway}} has no value',
    );
    expect(() => interpolate(['ok', '{{nope.deeper.still}}'], ctx, 'entry 0')).toThrow('entry 0: {{nope.deeper.still}} has no value');
    // a host without an upstream (the proxy) cannot use upstream.* outside foreach
    expect(() => interpolate('{{upstream.ip}}', { ...ctx, upstream: undefined }, 'playbook entry 5 (iptables-rule)')).toThrow(
      'playbook entry 5 (iptables-rule): {{upstream.ip}} has no value',
    );
  });

  it('refuses null, undefined and objects as values (never "null" or "[object Object]" in a command)', () => {
    expect(() => interpolate('{{proxy.nothing}}', ctx, 'e')).toThrow('e: {{proxy.nothing}} has no value');
    expect(() => interpolate('{{proxy.ssh}}', ctx, 'e')).toThrow('has no value');
    expect(() => interpolate('{{proxy}}', ctx, 'e')).toThrow('e: {{proxy}} has no value');
  });
});

describe('lookup', () => {
  it('follows dotted paths and gives undefined past a missing or non-object step', () => {
    expect(lookup(ctx, 'proxy.masquerade')).toBe(false);
    expect(lookup(ctx, 'service')).toEqual({ upstream_port: 8080, l4: 'tcp' });
    expect(lookup(ctx, 'proxy.private_ip.length')).toBeUndefined();
    expect(lookup(ctx, 'missing.x')).toBeUndefined();
    expect(lookup(null, 'a')).toBeUndefined();
  });
});
