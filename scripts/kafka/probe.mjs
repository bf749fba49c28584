// Dependency-free Kafka readiness probe used by scripts/services.sh.
//
// Speaks the Kafka wire protocol directly (no node_modules needed):
//   1. ApiVersions v0 (every broker accepts it, KIP-896 kept it),
//   2. Metadata at the highest non-flexible version (1..8) the broker offers,
// and succeeds only when the broker lists at least one live broker and a
// controller, i.e. it actually serves metadata, not just an open port.
//
// With --warm-up it then also waits (up to 30 s) until the group coordinator
// (FindCoordinator, which creates __consumer_offsets on a fresh broker) and the
// producer-id manager (InitProducerId for an idempotent producer) answer
// without error, so the first client on a fresh broker does not hit
// retriable "coordinator is loading/not available" errors.
//
// usage: node probe.mjs [host:port] [--api-versions] [--warm-up]
//   exit 0 = ready, 1 = not ready (reason on stderr)
import net from 'node:net';

const args = process.argv.slice(2);
const target = args.find((a) => !a.startsWith('--')) ?? '127.0.0.1:9092';
const showVersions = args.includes('--api-versions');
const warmUp = args.includes('--warm-up');
const [host, portStr] = target.split(':');
const port = Number(portStr ?? 9092);

const API_NAMES = {
  0: 'Produce', 1: 'Fetch', 2: 'ListOffsets', 3: 'Metadata', 8: 'OffsetCommit',
  9: 'OffsetFetch', 10: 'FindCoordinator', 11: 'JoinGroup', 12: 'Heartbeat',
  13: 'LeaveGroup', 14: 'SyncGroup', 15: 'DescribeGroups', 16: 'ListGroups',
  17: 'SaslHandshake', 18: 'ApiVersions', 19: 'CreateTopics', 20: 'DeleteTopics',
  21: 'DeleteRecords', 22: 'InitProducerId', 23: 'OffsetForLeaderEpoch',
  24: 'AddPartitionsToTxn', 25: 'AddOffsetsToTxn', 26: 'EndTxn', 28: 'TxnOffsetCommit',
  29: 'DescribeAcls', 30: 'CreateAcls', 31: 'DeleteAcls', 32: 'DescribeConfigs',
  33: 'AlterConfigs', 36: 'SaslAuthenticate', 37: 'CreatePartitions', 42: 'DeleteGroups',
  47: 'OffsetDelete',
};

function fail(msg) {
  process.stderr.write(`probe: ${msg}\n`);
  process.exit(1);
}

const socket = net.connect({ host, port });
socket.setTimeout(5000, () => fail(`timeout talking to ${host}:${port}`));
socket.on('error', (e) => fail(`${host}:${port}: ${e.code ?? e.message}`));

let buf = Buffer.alloc(0);
const waiters = [];
socket.on('data', (chunk) => {
  buf = Buffer.concat([buf, chunk]);
  while (buf.length >= 4 && buf.length >= 4 + buf.readInt32BE(0)) {
    const size = buf.readInt32BE(0);
    const frame = buf.subarray(4, 4 + size);
    buf = buf.subarray(4 + size);
    const w = waiters.shift();
    if (w) w(frame);
  }
});
socket.on('close', () => { if (waiters.length) fail('connection closed by broker'); });

let corr = 0;
function request(apiKey, apiVersion, body) {
  const clientId = Buffer.from('services-probe');
  const header = Buffer.alloc(10);
  header.writeInt16BE(apiKey, 0);
  header.writeInt16BE(apiVersion, 2);
  header.writeInt32BE(++corr, 4);
  header.writeInt16BE(clientId.length, 8);
  const payload = Buffer.concat([header, clientId, body]);
  const size = Buffer.alloc(4);
  size.writeInt32BE(payload.length, 0);
  socket.write(Buffer.concat([size, payload]));
  return new Promise((resolve) => waiters.push(resolve));
}

class Reader {
  constructor(b) { this.b = b; this.o = 0; }
  i16() { const v = this.b.readInt16BE(this.o); this.o += 2; return v; }
  i32() { const v = this.b.readInt32BE(this.o); this.o += 4; return v; }
  str() { const n = this.i16(); if (n < 0) return null; const s = this.b.toString('utf8', this.o, this.o + n); this.o += n; return s; }
}

socket.on('connect', async () => {
  // ApiVersions v0: empty body.
  const av = new Reader(await request(18, 0, Buffer.alloc(0)));
  av.i32(); // correlation id
  const err = av.i16();
  if (err !== 0) fail(`ApiVersions error code ${err}`);
  const n = av.i32();
  const apis = new Map();
  for (let i = 0; i < n; i++) {
    const k = av.i16(); const min = av.i16(); const max = av.i16();
    apis.set(k, [min, max]);
  }
  if (showVersions) {
    for (const [k, [min, max]] of [...apis].sort((a, b) => a[0] - b[0])) {
      process.stdout.write(`${String(k).padStart(3)} ${(API_NAMES[k] ?? '?').padEnd(22)} v${min}-v${max}\n`);
    }
  }
  const md = apis.get(3);
  if (!md) fail('broker does not offer Metadata');
  const v = Math.min(8, md[1]);
  if (v < Math.max(1, md[0])) fail(`no usable Metadata version (broker offers v${md[0]}-v${md[1]})`);
  const parts = [Buffer.from([0xff, 0xff, 0xff, 0xff])]; // topics = null -> all topics
  if (v >= 4) parts.push(Buffer.from([0])); // allow_auto_topic_creation = false
  if (v >= 8) parts.push(Buffer.from([0, 0])); // include_*_authorized_operations
  const r = new Reader(await request(3, v, Buffer.concat(parts)));
  r.i32(); // correlation id
  if (v >= 3) r.i32(); // throttle_time_ms
  const nb = r.i32();
  const brokers = [];
  for (let i = 0; i < nb; i++) {
    const id = r.i32(); const h = r.str(); const p = r.i32(); r.str(); // rack
    brokers.push(`${id}@${h}:${p}`);
  }
  const clusterId = v >= 2 ? r.str() : null;
  const controller = r.i32();
  if (nb < 1) fail('metadata lists no live broker yet');
  if (controller < 0) fail('metadata has no controller yet');
  process.stdout.write(`kafka ready: cluster=${clusterId} brokers=[${brokers.join(',')}] controller=${controller} (Metadata v${v})\n`);
  if (warmUp) {
    socket.setTimeout(0);
    const deadline = Date.now() + 30000;
    const retry = async (what, call) => {
      for (;;) {
        const code = await call();
        if (code === 0) return;
        if (Date.now() > deadline) fail(`${what} still failing with error code ${code} after 30s`);
        await new Promise((res) => setTimeout(res, 200));
      }
    };
    // FindCoordinator v1: key, key_type=0 (group) -> throttle, error_code, ...
    const group = Buffer.from('services-warm-up');
    const fc = Buffer.alloc(2 + group.length + 1);
    fc.writeInt16BE(group.length, 0); group.copy(fc, 2); fc.writeInt8(0, 2 + group.length);
    await retry('FindCoordinator', async () => { const x = new Reader(await request(10, 1, fc)); x.i32(); x.i32(); return x.i16(); });
    // InitProducerId v1: transactional_id=null, transaction_timeout_ms -> throttle, error_code, ...
    const ip = Buffer.alloc(6);
    ip.writeInt16BE(-1, 0); ip.writeInt32BE(60000, 2);
    await retry('InitProducerId', async () => { const x = new Reader(await request(22, 1, ip)); x.i32(); x.i32(); return x.i16(); });
    process.stdout.write('kafka warmed up: group coordinator and producer ids available\n');
  }
  socket.end();
  process.exit(0);
});
