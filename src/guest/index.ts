// guest: what runs in the guest and what both sides share: the contract, the C programs and their compile step.
export * as contract from './contract.js';
export { buildGuestPrograms, type GuestPrograms } from './compile.js';
