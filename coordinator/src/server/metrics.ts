// The coordinator's Prometheus metrics, one registry per process (GET /metrics, ./http-server.ts).
// Every fedit series carries the `federation` label, so one process serving several federations is
// read federation by federation:
//
//   fedit_rounds_total{outcome="closed"|"aborted"}             rounds ended, by outcome
//   fedit_updates_counted_total                                updates counted into a round
//   fedit_updates_refused_total{code}                          update requests refused, by the
//                                                              refusal's code (UPLOAD_TOO_LARGE, ...)
//   fedit_round_duration_seconds{outcome}                      round-open to its end (histogram)
//   fedit_round_phase_duration_seconds{phase}                  "waiting": from the previous round's
//                                                              end (or the start) to round-open;
//                                                              "collecting": round-open to its end;
//                                                              secure rounds: "secagg-advertise",
//                                                              "secagg-shares", "secagg-masked",
//                                                              "secagg-reveal", each phase's length
//   fedit_secagg_aborts_total{phase}                           secure rounds aborted below the
//                                                              threshold, by phase
//   fedit_participants_online / _ready / _selected             now (gauges; selected: of the open
//                                                              round, 0 between rounds)
//   fedit_bytes_received_total / fedit_bytes_sent_total        bytes on every connection of the
//                                                              process (no federation label)
//
// and prom-client's default process metrics, nodejs_eventloop_lag_seconds among them. The series
// are driven by the coordinator's events (./events.ts) and by the update handlers' refusals, so no
// part of the round logic knows about metrics.

import type { Socket } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { FeditError } from '@fedit/shared';
import type { CoordinatorEvent } from './events.ts';

/** Round lengths span seconds (tests, small models) to a day (a deadline of hours). */
const DURATION_BUCKETS = [1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600];

export class CoordinatorMetrics {
  readonly registry = new Registry();
  readonly #rounds = new Counter({
    name: 'fedit_rounds_total',
    help: 'Rounds ended, by outcome (closed: aggregated; aborted: not applied)',
    labelNames: ['federation', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly #counted = new Counter({
    name: 'fedit_updates_counted_total',
    help: 'Updates counted into a round',
    labelNames: ['federation'] as const,
    registers: [this.registry],
  });
  readonly #refused = new Counter({
    name: 'fedit_updates_refused_total',
    help: 'Update requests (update:begin, chunk, commit) refused, by refusal code',
    labelNames: ['federation', 'code'] as const,
    registers: [this.registry],
  });
  readonly #roundDuration = new Histogram({
    name: 'fedit_round_duration_seconds',
    help: 'From round-open to the round closing or aborting',
    labelNames: ['federation', 'outcome'] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  readonly #phaseDuration = new Histogram({
    name: 'fedit_round_phase_duration_seconds',
    help: 'waiting: until a round opens; collecting: from round-open to its end',
    labelNames: ['federation', 'phase'] as const,
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  readonly #secaggAborts = new Counter({
    name: 'fedit_secagg_aborts_total',
    help: 'Secure rounds aborted because fewer than the threshold remained, by the phase it happened in',
    labelNames: ['federation', 'phase'] as const,
    registers: [this.registry],
  });
  readonly #online = this.#gauge('fedit_participants_online', 'Participants authenticated and connected');
  readonly #ready = this.#gauge('fedit_participants_ready', 'Participants that said they can train now');
  readonly #selected = this.#gauge('fedit_participants_selected', 'Participants selected for the open round');

  constructor() {
    collectDefaultMetrics({ register: this.registry });
    this.#bytesCounters();
  }

  /** The observer of one federation's events (its coordinator's onEvent, besides the operator's). */
  observer(federation: string): (e: CoordinatorEvent) => void {
    const online = new Set<string>();
    const ready = new Set<string>();
    let waitingSince = performance.now();
    let openedAt = waitingSince;
    const seconds = (since: number) => (performance.now() - since) / 1000;
    const ended = (outcome: 'closed' | 'aborted') => {
      this.#rounds.inc({ federation, outcome });
      this.#roundDuration.observe({ federation, outcome }, seconds(openedAt));
      this.#phaseDuration.observe({ federation, phase: 'collecting' }, seconds(openedAt));
      this.#selected.set({ federation }, 0);
      waitingSince = performance.now();
    };
    const setOf = (set: Set<string>, participant: string, member: boolean) => {
      if (member) set.add(participant);
      else set.delete(participant);
    };
    for (const gauge of [this.#online, this.#ready, this.#selected]) gauge.set({ federation }, 0);
    return (e) => {
      switch (e.type) {
        case 'connected':
        case 'disconnected':
          setOf(online, e.participant, e.type === 'connected');
          this.#online.set({ federation }, online.size);
          break;
        case 'readiness':
          setOf(ready, e.participant, e.ready);
          this.#ready.set({ federation }, ready.size);
          break;
        case 'round-open':
          this.#phaseDuration.observe({ federation, phase: 'waiting' }, seconds(waitingSince));
          openedAt = performance.now();
          this.#selected.set({ federation }, e.selected.length);
          break;
        case 'update-counted':
          this.#counted.inc({ federation });
          break;
        case 'round-closed':
          ended('closed');
          break;
        case 'round-aborted':
          ended('aborted');
          break;
        case 'secagg-phase':
          if (e.outcome === 'abort') this.#secaggAborts.inc({ federation, phase: e.phase });
          else if (e.seconds !== undefined)
            this.#phaseDuration.observe({ federation, phase: `secagg-${e.phase}` }, e.seconds);
          break;
      }
    };
  }

  /** `handler`, with each refusal it throws counted by code before it is sent as the answer. */
  countRefusals<A extends unknown[], R>(
    federation: string,
    handler: (...args: A) => R | Promise<R>,
  ): (...args: A) => Promise<R> {
    return async (...args) => {
      try {
        return await handler(...args);
      } catch (err) {
        this.#refused.inc({ federation, code: err instanceof FeditError ? err.code : 'INTERNAL' });
        throw err;
      }
    };
  }

  /** Counts `socket`'s bytes in and out, while open (at each scrape) and once closed. */
  track(socket: Socket): void {
    this.#open.add(socket);
    socket.once('close', () => {
      this.#open.delete(socket);
      this.#closedBytes.read += socket.bytesRead;
      this.#closedBytes.written += socket.bytesWritten;
    });
  }

  readonly #open = new Set<Socket>();
  readonly #closedBytes = { read: 0, written: 0 };

  #bytesCounters(): void {
    const total = (field: 'read' | 'written') => {
      let sum = this.#closedBytes[field];
      for (const socket of this.#open) sum += field === 'read' ? socket.bytesRead : socket.bytesWritten;
      return sum;
    };
    for (const [name, field, help] of [
      ['fedit_bytes_received_total', 'read', 'Bytes received on every connection'],
      ['fedit_bytes_sent_total', 'written', 'Bytes sent on every connection'],
    ] as const) {
      let reported = 0;
      new Counter({
        name,
        help,
        registers: [this.registry],
        collect() {
          const now = total(field);
          this.inc(Math.max(0, now - reported));
          reported = now;
        },
      });
    }
  }

  #gauge(name: string, help: string): Gauge<'federation'> {
    return new Gauge({ name, help, labelNames: ['federation'] as const, registers: [this.registry] });
  }
}
