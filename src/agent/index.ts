// agent: the host's side of the guest channel: the frame codec, the socket, one command, the client.
export { AgentClient, type ReadFileOptions, type ReadFileStreamOptions } from './agent-client.js';
export { AgentError, type ExecResult, type SpawnError } from './results.js';
export { type ExecOptions, type ExecStream, type Input } from './exec.js';
