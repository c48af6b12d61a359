// What the parts of the fault run share: the log line, the run's tag (in
// every name it makes, so runs on one stack never mix), and the chat
// books' raw material: what was sent and what was acknowledged.

export const log = (...a) => console.log(`faults: ${new Date().toISOString().slice(11, 23)}`, ...a);

export const runTag = Math.random().toString(36).slice(2, 8);

export const stats = { sent: 0, resent: 0, acked: 0, redelivered: 0, reconnects: 0, polled: 0 };
export const sent = new Set();
export const acked = new Map();        // cmid -> {cid, seq}
