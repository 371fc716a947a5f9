// `GET /openapi.json`: the server's routes, bodies and errors as an OpenAPI 3.1 document, for
// client generators and API explorers (text-embeddings-inference serves one too).
import { AGGREGATION_STRATEGIES } from '../pipeline/aggregate'
import { servedOptionsSchema } from '../pipeline/options'
import { ERROR_TYPES } from './http'

const error = (description: string) => ({ description, content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } } })
const entities = { type: 'array', items: { $ref: '#/components/schemas/Entity' } }
const json = (schema: object) => ({ 'application/json': { schema } })
const errors = {
  '400': error('Bad JSON, options or inputs (error_type validation)'),
  '403': error('A Host this server does not answer to (error_type forbidden): see --allowed-hosts'),
  '405': error('Wrong method (error_type method_not_allowed); see Allow'),
  '408': error('The body did not arrive in time (error_type timeout)'),
  '413': error('Body, texts, characters, window tokens or the answer over the limits (error_type payload_too_large)'),
  '415': error('Not application/json, or compressed (error_type unsupported_media_type)'),
  '429': error('Too many requests at once (error_type overloaded); see Retry-After'),
  '500': error('The model failed on this input (error_type backend)'),
  '503': error('Shutting down (error_type unhealthy); see Retry-After'),
}

export function openApi(version: string, labels: readonly string[]): object {
  return {
    openapi: '3.1.0',
    info: {
      title: 'eurobert-ner',
      version,
      description: 'Named-entity recognition with a EuroBERT token classifier. Every answer carries x-request-id (the client\'s, or a new one).',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    paths: {
      '/': {
        post: {
          summary: "Hugging Face Inference API's token classification",
          operationId: 'inference',
          requestBody: { required: true, content: json({ $ref: '#/components/schemas/InferenceRequest' }) },
          responses: {
            '200': { description: 'Entities per input (offsets in code points, as Python counts)', content: json({ oneOf: [entities, { type: 'array', items: entities }] }) },
            ...errors,
          },
        },
        get: { summary: 'A page to try the model', operationId: 'page', responses: { '200': { description: 'HTML', content: { 'text/html': { schema: { type: 'string' } } } } } },
      },
      '/ner': {
        post: {
          summary: "ner() over HTTP (offsets in UTF-16 code units, as JavaScript counts)",
          operationId: 'ner',
          requestBody: { required: true, content: json({ $ref: '#/components/schemas/NerRequest' }) },
          responses: { '200': { description: 'Entities of the text, or per text', content: json({ oneOf: [entities, { type: 'array', items: entities }] }) }, ...errors },
        },
      },
      '/health': {
        get: { summary: 'Liveness', operationId: 'health', responses: { '200': { description: 'Serving', content: json({ type: 'object', properties: { status: { const: 'ok' } } }) }, '503': errors['503'] } },
      },
      '/info': { get: { summary: 'The model and the server limits', operationId: 'info', responses: { '200': { description: 'Info', content: json({ $ref: '#/components/schemas/Info' }) } } } },
      '/metrics': { get: { summary: 'Prometheus metrics', operationId: 'metrics', responses: { '200': { description: 'Prometheus text format', content: { 'text/plain': { schema: { type: 'string' } } } } } } },
      '/openapi.json': { get: { summary: 'This document', operationId: 'openapi', responses: { '200': { description: 'OpenAPI 3.1', content: json({ type: 'object' }) } } } },
    },
    components: {
      schemas: {
        Error: { type: 'object', required: ['error', 'error_type'], properties: { error: { type: 'string' }, error_type: { enum: [...ERROR_TYPES] } } },
        Entity: {
          type: 'object',
          required: ['score', 'word', 'start', 'end'],
          properties: {
            entity_group: { type: 'string', description: 'With an aggregation strategy', enum: [...new Set(labels.map((l) => l.replace(/^[BI]-/, '')))] },
            entity: { type: 'string', description: "Strategy 'none': the token's label", enum: [...labels] },
            index: { type: 'integer', description: "Strategy 'none': the token's position" },
            score: { type: 'number' },
            word: { type: 'string' },
            start: { type: 'integer' },
            end: { type: 'integer' },
          },
        },
        InferenceRequest: {
          type: 'object',
          required: ['inputs'],
          properties: {
            inputs: { oneOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' } }] },
            parameters: {
              type: 'object',
              additionalProperties: false,
              properties: {
                aggregation_strategy: { enum: [...AGGREGATION_STRATEGIES], default: 'simple' },
                ignore_labels: { type: 'array', items: { type: 'string' } },
                stride: { type: 'integer', minimum: 0 },
              },
            },
          },
        },
        NerRequest: {
          type: 'object',
          properties: {
            text: { type: 'string' },
            texts: { type: 'array', items: { type: 'string' } },
            // ner()'s options a client may set, from the one options table.
            options: servedOptionsSchema(),
          },
          oneOf: [{ required: ['text'] }, { required: ['texts'] }],
        },
        Info: {
          type: 'object',
          properties: {
            model_id: { type: 'string' },
            model_dtype: { type: 'string' },
            model_type: { type: 'object' },
            architecture: { type: 'string' },
            config_model_type: { type: 'string' },
            labels: { type: 'array', items: { type: 'string' } },
            device: { type: 'string' },
            version: { type: 'string' },
            max_input_length: { type: 'integer' },
            window_length: { type: 'integer' },
            max_concurrent_requests: { type: 'integer' },
            max_batch_tokens: { type: 'integer' },
            max_client_batch_size: { type: 'integer' },
            max_client_chars: { type: 'integer' },
            max_request_tokens: { type: 'integer' },
            max_answer_bytes: { type: 'integer' },
            threads: { type: 'integer' },
          },
        },
      },
    },
  }
}
