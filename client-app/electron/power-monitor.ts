// The training limits ("only when plugged in", "only when idle") answered by Electron's
// powerMonitor. Written against the few members it uses, so it runs without Electron in tests.

import type { SystemMonitor } from '../src/app/system-monitor.ts';

/** The part of Electron's powerMonitor this uses. */
export interface PowerMonitorLike {
  isOnBatteryPower(): boolean;
  getSystemIdleState(idleThresholdSeconds: number): 'active' | 'idle' | 'locked' | 'unknown';
  on(event: PowerEvent, listener: () => void): unknown;
  removeListener(event: PowerEvent, listener: () => void): unknown;
}

/** The events after which power or idle state may have changed (the backend also polls). */
const POWER_EVENTS = [
  'on-ac',
  'on-battery',
  'lock-screen',
  'unlock-screen',
  'suspend',
  'resume',
  'user-did-become-active',
  'user-did-resign-active',
] as const;
type PowerEvent = (typeof POWER_EVENTS)[number];

/** No keyboard or mouse input for this long counts as idle. */
export const IDLE_AFTER_SECONDS = 5 * 60;

export function powerSystemMonitor(
  power: PowerMonitorLike,
  idleAfterSeconds: number = IDLE_AFTER_SECONDS,
): SystemMonitor {
  return {
    onBattery: () => power.isOnBatteryPower(),
    // 'unknown' is what a system answers that cannot tell (some Linux desktops under Wayland):
    // the limit then does not hold training back forever; docs/install.md says so.
    isIdle: () => power.getSystemIdleState(idleAfterSeconds) !== 'active',
    subscribe(listener) {
      const changed = () => listener();
      for (const event of POWER_EVENTS) power.on(event, changed);
      return () => {
        for (const event of POWER_EVENTS) power.removeListener(event, changed);
      };
    },
  };
}
