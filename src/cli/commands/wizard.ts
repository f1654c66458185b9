/** `dsrctl wizard [-o FILE]`: asks what a network engineer knows and writes a commented inventory. */
export async function wizardCommand(_opts: { output?: string }): Promise<number> {
  throw new Error('wizard: being written (issue 5)');
}
