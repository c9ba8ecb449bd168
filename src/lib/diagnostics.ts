/**
 * What the lowest layers have to say without a Reporter to say it through: the programs
 * darch starts (for -vv) and waits for another darch's lock (worth a line, a wait can be
 * long). They publish on node:diagnostics_channel; the CLI subscribes and prints, library
 * callers (tests, the update agent) may listen or not. Publishing with no subscriber costs
 * nothing.
 */
import diagnostics from 'node:diagnostics_channel';

export interface CommandEvent {
  kind: 'run' | 'spawn';
  cmd: string;
  args: string[];
}

export interface LockWaitEvent {
  what: string;
  pid: number;
}

export const commandChannel = diagnostics.channel('darch:command');
export const lockWaitChannel = diagnostics.channel('darch:lock-wait');

export function publishCommand(e: CommandEvent): void {
  if (commandChannel.hasSubscribers) commandChannel.publish(e);
}

export function publishLockWait(e: LockWaitEvent): void {
  if (lockWaitChannel.hasSubscribers) lockWaitChannel.publish(e);
}
