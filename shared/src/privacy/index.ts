// Client-level differential privacy: the Rényi-DP accountant and the DP-FedAvg arithmetic.
export * from './rdp.ts';
export * from './accountant.ts';
export * from './dp-fedavg.ts';
export * from './calibrate.ts';
