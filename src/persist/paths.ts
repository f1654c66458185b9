/** Where persistence lives on a systemd host (issue 8). Every file here is a journaled change. */
export const UNIT_DIR = '/etc/systemd/system';
/** the generated restore of the host's kernel state, run at boot by PERSIST_UNIT */
export const PERSIST_SCRIPT = '/var/lib/dsrctl/persist.sh';
export const PERSIST_UNIT = 'dsrctl-persist.service';
/** reverts an unconfirmed run early at boot (`rollback.sh --boot`) */
export const BOOT_REVERT_UNIT = 'dsrctl-boot-revert.service';
export const unitPath = (unit: string) => `${UNIT_DIR}/${unit}`;
/** the targets whose .wants/ enable each unit, as `systemctl enable` would from its [Install] */
export const PERSIST_TARGET = 'multi-user.target';
export const BOOT_REVERT_TARGET = 'sysinit.target';
export const wantsDir = (target: string) => `${UNIT_DIR}/${target}.wants`;
export const wantsLink = (target: string, unit: string) => `${wantsDir(target)}/${unit}`;
