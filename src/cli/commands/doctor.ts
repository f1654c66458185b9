import type { GlobalOptions } from '../prepare.js';

export interface DoctorOptions extends GlobalOptions {
  capture?: string | boolean;
}

/** `dsrctl doctor -i FILE [--capture SECONDS]`: the guide's Troubleshooting, automated and read-only. */
export async function doctorCommand(_file: string, _opts: DoctorOptions): Promise<number> {
  throw new Error('doctor: being written (issue 5)');
}
