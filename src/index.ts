/**
 * dsrctl as a library: the same engine the CLI runs.
 *
 *   import { plan, apply, verify, rollback, applyReport } from 'dsrctl';
 *   const r = await apply('inventory/prod.yaml');            // no question: like `apply --yes`
 *   if (r.exitCode !== 0) console.error(r.failure, r.message);
 *   console.log(JSON.stringify(applyReport(r)));              // the `--json` document
 *
 * Every function takes an inventory file and returns a typed result with the contract's exit
 * code; bad input throws a UserError (exitCode 2) before any host is touched. Progress comes as
 * events through `runner: eventRunner(onEvent)`. The JSON documents are described by
 * `dsrctl/schema/dsrctl-report.schema.json`.
 */
export { plan, type PlanResult } from './engine/plan.js';
export { apply, Interrupted, type ApplyOptions, type ApplyResult, type ApplyEvent, type ApplyOutcome, type ApplyHostResult } from './engine/apply.js';
export { verify, type VerifyResult } from './engine/verify.js';
export { rollback, type RollbackOptions, type RollbackResult, type RollbackOutcome } from './engine/rollback.js';
export { eventRunner, type Step, type StepRunner, type StepOptions, type ProgressEvent } from './engine/steps.js';
export type { HostSummary } from './engine/host-summary.js';
export type { HostApplyResult, HostRollbackResult } from './engine/apply-host.js';
export { loadInventory, type LoadedInventory } from './inventory/load.js';
export type { Inventory } from './inventory/schema.js';
export type { HostPlan, Change } from './plan/types.js';
export type { CheckResult } from './verify/checks.js';
export type { PendingUndo } from './apply/journal-list.js';
export { planReport, applyReport, verifyReport, rollbackReport, doctorReport, reportDocument, SCHEMA_VERSION, type Report } from './report/documents.js';
export { EXIT, UserError } from './util/errors.js';
export type { Connector } from './engine/connector.js';
export { doctor, type DoctorOptions, type DoctorResult } from './engine/doctor.js';
