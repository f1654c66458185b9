import type { ResourceKind } from './types.js';
import { sysctl } from './sysctl.js';
import { ipRule } from './ip-rule.js';
import { ipRoute } from './ip-route.js';
import { defaultRoute } from './default-route.js';
import { iptablesRule } from './iptables-rule.js';
import { nginxMainDirective, nginxManagedConfig, nginxStreamContext, nginxUser } from './nginx-files.js';
import { statelessNat } from './stateless-nat.js';
import { nginxExclusivePort } from './nginx-port.js';
import { forwardFilter, forwardingPutBack } from './forward-filter.js';
import { healthChecker } from './health-checker.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const RESOURCE_KINDS: Record<string, ResourceKind<any>> = Object.fromEntries(
  [sysctl, ipRule, ipRoute, defaultRoute, iptablesRule, nginxMainDirective, nginxUser, nginxStreamContext, nginxExclusivePort, nginxManagedConfig, statelessNat, forwardFilter, forwardingPutBack, healthChecker].map((k) => [k.kind, k]),
);
