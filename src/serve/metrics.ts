// The server's Prometheus metrics: a fixed set of series (routes are a closed list), so no
// request can add one.
import * as prom from 'prom-client'

export type Metrics = ReturnType<typeof metrics>

export function metrics(registry: prom.Registry, queueDepth: () => number, inFlight: () => number) {
  // Process and Node.js metrics under their standard names (process_cpu_seconds_total,
  // nodejs_eventloop_lag_seconds, ...), so the usual dashboards find them.
  prom.collectDefaultMetrics({ register: registry })
  return {
    requests: new prom.Counter({ name: 'eurobert_ner_requests_total', help: 'HTTP requests by route and status', labelNames: ['route', 'status'], registers: [registry] }),
    latency: new prom.Histogram({
      name: 'eurobert_ner_request_duration_seconds',
      help: 'NER request latency',
      labelNames: ['route'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    batchTexts: new prom.Histogram({ name: 'eurobert_ner_batch_texts', help: 'Texts per merged forward batch', buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256], registers: [registry] }),
    batchCalls: new prom.Histogram({ name: 'eurobert_ner_batch_calls', help: 'Requests merged per forward batch', buckets: [1, 2, 4, 8, 16, 32, 64], registers: [registry] }),
    cancelled: new prom.Counter({ name: 'eurobert_ner_requests_cancelled_total', help: 'NER requests whose client went away before the answer', registers: [registry] }),
    tokens: new prom.Counter({ name: 'eurobert_ner_tokens_total', help: 'Tokens run through the model (rate() gives tokens/s)', registers: [registry] }),
    queue: new prom.Gauge({
      name: 'eurobert_ner_queue_depth',
      help: 'Texts waiting for the next batch',
      registers: [registry],
      collect() {
        this.set(queueDepth())
      },
    }),
    // What a drain waits for, and what a load balancer's scale decision reads.
    inFlight: new prom.Gauge({
      name: 'eurobert_ner_requests_in_flight',
      help: 'NER requests being answered',
      registers: [registry],
      collect() {
        this.set(inFlight())
      },
    }),
  }
}
