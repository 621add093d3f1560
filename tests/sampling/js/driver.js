// Test driver (tests/sampling/test_remote.py): the OpenTelemetry JS SDK with its Jaeger remote
// sampler (@opentelemetry/sampler-jaeger-remote) fetches each service's strategy from Clew's
// remote-sampling endpoint, then a real tracer starts root spans and we count which were sampled.
//
// usage: node driver.js ENDPOINT PLAN_JSON
//   ENDPOINT  e.g. http://127.0.0.1:5778 (the sampler appends /sampling?service=NAME)
//   PLAN_JSON {"services": [{"service": "s", "initial": "on"|"off", "spans": {"name": count}}]}
// prints {"results": [{"service", "sampler", "sampled": {"name": n}, "total": {"name": n}}]}
'use strict';

const { diag, DiagLogLevel } = require('@opentelemetry/api');
const { JaegerRemoteSampler } = require('@opentelemetry/sampler-jaeger-remote');
const { TracerProvider, AlwaysOnSampler, AlwaysOffSampler } = require('@opentelemetry/sdk-trace');

const warnings = [];
diag.setLogger({
  error: (...a) => warnings.push(a.map(String).join(' ')),
  warn: (...a) => warnings.push(a.map(String).join(' ')),
  info: () => {}, debug: () => {}, verbose: () => {},
}, DiagLogLevel.WARN);

async function run(endpoint, entry) {
  const initialSampler = entry.initial === 'off' ? new AlwaysOffSampler() : new AlwaysOnSampler();
  const sampler = new JaegerRemoteSampler({
    endpoint,
    serviceName: entry.service,
    poolingInterval: 3600 * 1000, // we fetch once below; no second poll during the test
    initialSampler,
  });
  // What the sampler's polling timer runs: fetch /sampling?service=NAME and build the sampler.
  await sampler.getAndUpdateSampler();
  const provider = new TracerProvider({ sampler });
  const tracer = provider.getTracer('clew-remote-sampling-test');
  const sampled = {};
  const total = {};
  for (const [name, count] of Object.entries(entry.spans)) {
    sampled[name] = 0;
    total[name] = count;
    for (let i = 0; i < count; i++) {
      const span = tracer.startSpan(name); // a root span: the sampler decides
      if (span.spanContext().traceFlags & 1) sampled[name] += 1;
      span.end();
    }
  }
  return { service: entry.service, sampler: sampler.toString(), sampled, total };
}

async function main() {
  const [endpoint, planText] = process.argv.slice(2);
  const plan = JSON.parse(planText);
  const results = [];
  for (const entry of plan.services) {
    results.push(await run(endpoint, entry));
  }
  process.stdout.write(JSON.stringify({ results, warnings }) + '\n');
  process.exit(0); // the samplers' polling timers would keep the process alive
}

main().catch((err) => {
  process.stderr.write(`driver failed: ${err && err.stack ? err.stack : err}\n`);
  process.exit(1);
});
