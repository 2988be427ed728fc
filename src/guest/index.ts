// guest: what runs in the guest and what both sides share: the contract, the frame protocol, the agent client, the C programs and their compile step.
export * as contract from './contract.js';
export { AgentClient, AgentError, type ExecOptions, type ExecResult, type ExecStream, type Input, type SpawnError } from './agent-client.js';
export { buildInitBinaries, type InitBinaries } from './compile.js';
